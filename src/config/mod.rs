//! Configuration: the raw, layered input and the validated [`Settings`] the rest of the
//! program uses. Raw and validated are different types so nothing downstream can see an
//! unchecked value.
//!
//! Layers, lowest first:
//! 1. built-in defaults (the `Default` impls of the private `Raw*` structs; every key has one
//!    except `okta.org_url`, `okta.app_id` and the tokens);
//! 2. the TOML file (`--config`, else `OKTA_SPOT_SYNC_CONFIG`, else
//!    `/etc/okta-spot-sync/config.toml`; see [`default_config_path`]);
//! 3. environment overrides `OKTA_SPOT_SYNC__SECTION__KEY` (double underscores; e.g.
//!    `OKTA_SPOT_SYNC__SYNC__MAX_DELETES=3`, `OKTA_SPOT_SYNC__SPOT__ROLES__VIEWER__POLICIES=a,b`).
//!    List values are comma-separated. An override variable that names no key is an error.
//!
//! Unknown keys are errors (`deny_unknown_fields`); every error names the full key, the bad
//! value (unless it is a secret) and the fix. All problems found are reported together in
//! one [`Error::Config`]. Beyond types and ranges: `sync.schedule` must fire at least once
//! from now on (asked of the scheduler's own parser), `spot_role` must be one of
//! [`SPOT_ROLES`], an override that lists no `sync.protected_emails` address is refused
//! (`[]` says "none" on purpose), and a non-loopback `daemon.listen` yields a warning.
//!
//! The rooms, by concern:
//! - `keys`: every key, the override variable names, the fixed vocabularies;
//! - `raw`: what serde reads (defaults, file, overrides) and its error messages;
//! - `secrets`: token and private-key sources, secret files, redaction (the order of the
//!   token sources is documented there);
//! - `validate`: raw -> settings, one function per section (`validate/okta.rs`, …);
//! - `settings`: the validated types;
//! - `conversions`: settings -> `ClassifyRules`, `PlanOptions`, `GuardLimits`.
//!
//! Okta authentication (`okta.auth`): `ssws` (the default) uses the token; `oauth` uses an
//! OAuth 2.0 service app instead (`okta.client_id`, `okta.private_key_file` or
//! `$CREDENTIALS_DIRECTORY/okta-private-key`, `okta.key_id`, `okta.scopes`, `okta.dpop`), and
//! then no SSWS token is read ([`OktaAuth`] holds one or the other). The private key is
//! parsed and test-signed at load, so a bad key is an error at start; it lives in a
//! [`SecretString`](secrecy::SecretString) and is never shown.
//!
//! Nothing here logs: non-fatal findings are returned in [`Loaded::warnings`] for the caller
//! to log once logging is set up. This module must never log or print a token; errors and
//! `Debug` output never contain one.

mod conversions;
mod keys;
mod raw;
mod secrets;
mod settings;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;

pub use keys::{
    env_var_for_key, CONFIG_PATH_ENV, CREDENTIALS_DIRECTORY_ENV, DEFAULT_CONFIG_PATH,
    DEFAULT_OKTA_SCOPES, ENV_PREFIX, ENV_SEPARATOR, KEYS, OKTA_PRIVATE_KEY_CREDENTIAL,
    OKTA_TOKEN_CREDENTIAL, OKTA_TOKEN_ENV, OKTA_USER_STATUSES, SPOT_ROLES, SPOT_TOKEN_CREDENTIAL,
    SPOT_TOKEN_ENV,
};
pub use settings::{
    DaemonSettings, EventsSettings, HttpSettings, LogFormat, LogSettings, OAuthSettings, OktaAuth,
    OktaSettings, ReadBounds, Schedule, Settings, SpotRoleSettings, SpotRoles, SpotSettings,
    SyncSettings, DEFAULT_EVENTS_SCHEDULE, DEFAULT_SCHEDULE,
};
pub use validate::listen_warning;

use raw::read_raw;
use secrets::Secrets;
use validate::validate;

/// The result of loading: the settings and the non-fatal findings (an inline token, a token
/// file readable by others, an ignored `token_file`), for the caller to log. Warnings never
/// contain a token.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

/// `OKTA_SPOT_SYNC_CONFIG` when set and non-empty, else `/etc/okta-spot-sync/config.toml`.
pub fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match env(CONFIG_PATH_ENV) {
        Some(p) if !p.trim().is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// Loads and validates `path` with environment variables looked up through `env`.
///
/// Only the variables this module knows are looked up (one per entry of [`KEYS`], plus
/// `CREDENTIALS_DIRECTORY` and the two token variables), so a misspelt override variable
/// cannot be noticed here; [`load_from_env_vars`] and [`load_from_process_env`] see every
/// variable and reject unknown `OKTA_SPOT_SYNC__*` names.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, Error> {
    let names = KEYS.iter().map(|k| env_var_for_key(k)).chain(
        [CREDENTIALS_DIRECTORY_ENV, OKTA_TOKEN_ENV, SPOT_TOKEN_ENV]
            .iter()
            .map(|s| s.to_string()),
    );
    let vars: BTreeMap<String, String> = names
        .filter_map(|name| env(&name).map(|value| (name, value)))
        .collect();
    load_vars(path, vars)
}

/// Loads and validates `path` with the given complete environment (name, value pairs).
/// Unlike [`load`], an `OKTA_SPOT_SYNC__*` variable that names no key is an error.
pub fn load_from_env_vars<I>(path: &Path, vars: I) -> Result<Loaded, Error>
where
    I: IntoIterator<Item = (String, String)>,
{
    load_vars(path, vars.into_iter().collect())
}

/// Loads and validates `path` with the process environment. Variables that are not valid
/// Unicode are skipped.
pub fn load_from_process_env(path: &Path) -> Result<Loaded, Error> {
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    load_from_env_vars(path, vars)
}

fn load_vars(path: &Path, vars: BTreeMap<String, String>) -> Result<Loaded, Error> {
    let secrets = Secrets::from_env(&vars);
    let raw = read_raw(path, &vars).map_err(|msg| Error::Config(secrets.redact(&msg)))?;
    let loaded = validate(raw, &vars).map_err(|msg| Error::Config(secrets.redact(&msg)))?;
    Ok(loaded)
}
