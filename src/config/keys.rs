//! The names of the configuration: every settable key, the environment variables that
//! override them (`OKTA_SPOT_SYNC__SECTION__KEY`) and the other variables and credential names
//! the loader looks up, and the fixed vocabularies values are checked against (Okta user
//! statuses, Spot organization roles, log levels).
//!
//! This file only names things. It must never read a file or the environment, and never
//! decide whether a value is valid: that is `validate`'s job.

/// Prefix of the override variables: `OKTA_SPOT_SYNC__SECTION__KEY`.
pub const ENV_PREFIX: &str = "OKTA_SPOT_SYNC";
/// Separator between prefix, section and key in override variables.
pub const ENV_SEPARATOR: &str = "__";
/// The config-path variable (single underscore: not an override).
pub const CONFIG_PATH_ENV: &str = "OKTA_SPOT_SYNC_CONFIG";
/// Used when neither `--config` nor [`CONFIG_PATH_ENV`] is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/okta-spot-sync/config.toml";
/// Last-resort source of the Okta API token.
pub const OKTA_TOKEN_ENV: &str = "OKTA_SPOT_SYNC_OKTA_TOKEN";
/// Last-resort source of the Spot API token.
pub const SPOT_TOKEN_ENV: &str = "OKTA_SPOT_SYNC_SPOT_TOKEN";
/// Set by systemd for units with `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY_ENV: &str = "CREDENTIALS_DIRECTORY";
/// Credential names looked up in `$CREDENTIALS_DIRECTORY`.
pub const OKTA_TOKEN_CREDENTIAL: &str = "okta-token";
pub const SPOT_TOKEN_CREDENTIAL: &str = "spot-token";
/// Credential name of the Okta service app's private key in `$CREDENTIALS_DIRECTORY`.
pub const OKTA_PRIVATE_KEY_CREDENTIAL: &str = "okta-private-key";
/// Scopes requested when `okta.scopes` is not set: listing the app's users and reading users.
pub const DEFAULT_OKTA_SCOPES: &[&str] = &["okta.apps.read", "okta.users.read"];

/// Every settable key, dotted. Override variables are checked against this list.
pub const KEYS: &[&str] = &[
    "okta.org_url",
    "okta.app_id",
    "okta.token",
    "okta.token_file",
    "okta.role_attribute",
    "okta.page_size",
    "okta.provision_statuses",
    "okta.hold_statuses",
    "okta.max_api_capacity_percent",
    "okta.max_read_pages",
    "okta.max_read_rows",
    "okta.max_read_time",
    "okta.auth",
    "okta.client_id",
    "okta.private_key_file",
    "okta.key_id",
    "okta.scopes",
    "okta.dpop",
    "spot.base_url",
    "spot.token",
    "spot.token_file",
    "spot.write_concurrency",
    "spot.roles.viewer.spot_role",
    "spot.roles.viewer.policies",
    "spot.roles.editor.spot_role",
    "spot.roles.editor.policies",
    "sync.schedule",
    "sync.audit_schedule",
    "sync.audit_repair",
    "sync.run_on_start",
    "sync.state_file",
    "sync.default_role",
    "sync.adopt_existing",
    "sync.update_roles",
    "sync.max_deletes",
    "sync.max_delete_percent",
    "sync.protected_emails",
    "http.timeout",
    "http.max_retries",
    "http.allow_insecure_http",
    "daemon.listen",
    "daemon.readiness_max_age",
    "log.format",
    "log.level",
    "events.enabled",
    "events.poll_interval",
];

/// Okta's `UserStatus` values.
pub const OKTA_USER_STATUSES: &[&str] = &[
    "ACTIVE",
    "DEPROVISIONED",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "PROVISIONED",
    "RECOVERY",
    "STAGED",
    "SUSPENDED",
];

/// The organization roles `POST /setup/user` takes in `role` (README, "Configuration").
pub const SPOT_ROLES: &[&str] = &["viewer", "editor", "admin"];

/// The bare levels `log.level` takes (besides `off` and `EnvFilter` directives).
pub(super) const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// The override variable for a dotted key: `sync.max_deletes` ->
/// `OKTA_SPOT_SYNC__SYNC__MAX_DELETES`.
pub fn env_var_for_key(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.replace('.', ENV_SEPARATOR).to_ascii_uppercase()
    )
}

/// The dotted key an override variable names, if it has the override prefix (any case).
/// The key is not checked against [`KEYS`].
pub(super) fn key_for_env_var(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_ascii_lowercase();
    lower
        .strip_prefix(&prefix)
        .map(|rest| rest.replace(ENV_SEPARATOR, "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_round_trip_for_every_key() {
        for key in KEYS {
            let var = env_var_for_key(key);
            assert!(var.starts_with("OKTA_SPOT_SYNC__"), "{var}");
            assert_eq!(key_for_env_var(&var).as_deref(), Some(*key), "{var}");
        }
        assert_eq!(
            env_var_for_key("sync.max_deletes"),
            "OKTA_SPOT_SYNC__SYNC__MAX_DELETES"
        );
        assert_eq!(
            env_var_for_key("spot.roles.viewer.spot_role"),
            "OKTA_SPOT_SYNC__SPOT__ROLES__VIEWER__SPOT_ROLE"
        );
        for not_override in [
            CONFIG_PATH_ENV,
            OKTA_TOKEN_ENV,
            SPOT_TOKEN_ENV,
            "OKTA_SPOT_SYNC",
        ] {
            assert_eq!(key_for_env_var(not_override), None, "{not_override}");
        }
    }
}
