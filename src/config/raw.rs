//! The raw input: what serde reads, before anything is checked. Built-in defaults (the
//! `Default` impls below; every key has one except `okta.org_url`, `okta.app_id` and the
//! tokens), the TOML file over them, and the `OKTA_SPOT_SYNC__SECTION__KEY` overrides over
//! that; an override variable that names no key is refused here.
//!
//! Numbers are read as `i64` and durations, URLs and enums as strings, so `validate` can name
//! the key, the value and the range instead of passing on a serde overflow error. This file
//! must never judge a value (ranges, formats, required keys: `validate`) and never read a
//! token file (`secrets`); a `config` crate error is turned into a message that names the key
//! and never quotes the file (a TOML snippet could hold a token).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ::config::{Config, ConfigError, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::keys::{
    env_var_for_key, key_for_env_var, CONFIG_PATH_ENV, DEFAULT_OKTA_SCOPES, ENV_PREFIX,
    ENV_SEPARATOR, KEYS,
};
use super::settings::ReadBounds;
use super::validate::join_problems;

/// A token as read from the file or an override: never printed.
#[derive(Clone)]
pub(super) struct RawSecret(pub(super) SecretString);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| RawSecret(SecretString::from(s)))
    }
}

/// How an override says "an empty list" on purpose: `OKTA_SPOT_SYNC__SYNC__PROTECTED_EMAILS=[]`.
pub(super) const EXPLICITLY_EMPTY_LIST: &str = "[]";

/// A list given as a TOML array or as one comma-separated string (how overrides arrive).
/// Entries are trimmed; empty entries are dropped; the string `[]` is the empty list.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings or a comma-separated string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            if v.trim() == EXPLICITLY_EMPTY_LIST {
                return Ok(Vec::new());
            }
            Ok(v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                let item = item.trim();
                if !item.is_empty() {
                    out.push(item.to_string());
                }
            }
            Ok(out)
        }
    }

    d.deserialize_any(ListVisitor)
}

fn opt_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    string_list(d).map(Some)
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) okta: RawOkta,
    pub(super) spot: RawSpot,
    pub(super) sync: RawSync,
    pub(super) http: RawHttp,
    pub(super) daemon: RawDaemon,
    pub(super) log: RawLog,
    pub(super) events: RawEvents,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawEvents {
    pub(super) enabled: bool,
    pub(super) poll_interval: String,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents {
            enabled: true,
            poll_interval: "15s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawOkta {
    pub(super) org_url: Option<String>,
    pub(super) app_id: Option<String>,
    pub(super) token: Option<RawSecret>,
    pub(super) token_file: Option<String>,
    pub(super) role_attribute: String,
    pub(super) page_size: i64,
    #[serde(deserialize_with = "string_list")]
    pub(super) provision_statuses: Vec<String>,
    #[serde(deserialize_with = "string_list")]
    pub(super) hold_statuses: Vec<String>,
    pub(super) max_api_capacity_percent: i64,
    pub(super) max_read_pages: i64,
    pub(super) max_read_rows: i64,
    pub(super) max_read_time: String,
    pub(super) auth: String,
    pub(super) client_id: Option<String>,
    pub(super) private_key_file: Option<String>,
    pub(super) key_id: Option<String>,
    #[serde(deserialize_with = "string_list")]
    pub(super) scopes: Vec<String>,
    pub(super) dpop: bool,
}

impl Default for RawOkta {
    fn default() -> Self {
        RawOkta {
            org_url: None,
            app_id: None,
            token: None,
            token_file: None,
            role_attribute: "role".into(),
            page_size: 500,
            provision_statuses: strings(&[
                "ACTIVE",
                "PROVISIONED",
                "PASSWORD_EXPIRED",
                "RECOVERY",
                "LOCKED_OUT",
            ]),
            hold_statuses: strings(&["SUSPENDED", "STAGED"]),
            max_api_capacity_percent: 50,
            max_read_pages: i64::from(ReadBounds::DEFAULT_MAX_PAGES),
            max_read_rows: ReadBounds::DEFAULT_MAX_ROWS as i64,
            max_read_time: humantime::format_duration(ReadBounds::DEFAULT_MAX_TIME).to_string(),
            auth: "ssws".into(),
            client_id: None,
            private_key_file: None,
            key_id: None,
            scopes: strings(DEFAULT_OKTA_SCOPES),
            dpop: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSpot {
    pub(super) base_url: String,
    pub(super) token: Option<RawSecret>,
    pub(super) token_file: Option<String>,
    pub(super) write_concurrency: i64,
    pub(super) roles: RawRoles,
}

impl Default for RawSpot {
    fn default() -> Self {
        RawSpot {
            base_url: "https://api.spotinst.io".into(),
            token: None,
            token_file: None,
            write_concurrency: 4,
            roles: RawRoles::default(),
        }
    }
}

/// `[spot.roles.viewer]` and `[spot.roles.editor]`; any other role key is an error. Fields
/// are optional because the defaults differ per role (see [`super::SpotRoles::default`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRoles {
    pub(super) viewer: RawRole,
    pub(super) editor: RawRole,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRole {
    pub(super) spot_role: Option<String>,
    #[serde(deserialize_with = "opt_string_list")]
    pub(super) policies: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSync {
    /// `None`: the default, which depends on `events.enabled` (`validate::sync`).
    pub(super) schedule: Option<String>,
    pub(super) audit_schedule: String,
    pub(super) audit_repair: bool,
    pub(super) run_on_start: bool,
    pub(super) state_file: String,
    pub(super) default_role: String,
    pub(super) adopt_existing: bool,
    pub(super) update_roles: bool,
    pub(super) max_deletes: i64,
    pub(super) max_delete_percent: i64,
    #[serde(deserialize_with = "string_list")]
    pub(super) protected_emails: Vec<String>,
}

impl Default for RawSync {
    fn default() -> Self {
        RawSync {
            schedule: None,
            audit_schedule: "0 0 3 * * *".into(),
            audit_repair: true,
            run_on_start: true,
            state_file: "/var/lib/okta-spot-sync/state.json".into(),
            default_role: "viewer".into(),
            adopt_existing: true,
            update_roles: true,
            max_deletes: 10,
            max_delete_percent: 20,
            protected_emails: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) timeout: String,
    pub(super) max_retries: i64,
    pub(super) allow_insecure_http: bool,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            timeout: "30s".into(),
            max_retries: 5,
            allow_insecure_http: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) listen: String,
    pub(super) readiness_max_age: String,
}

impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon {
            listen: "127.0.0.1:9464".into(),
            readiness_max_age: "30m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: String,
    pub(super) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Reads the file, layers the overrides over it and deserializes the result. Errors are
/// operator-facing messages.
pub(super) fn read_raw(path: &Path, vars: &BTreeMap<String, String>) -> Result<RawConfig, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read config file {shown}: {e}; create it (config/okta-spot-sync.example.toml \
             lists every key), or pass --config PATH or set {CONFIG_PATH_ENV} to the right file"
        )
    })?;

    let mut overrides = ::config::Map::new();
    let mut unknown = Vec::new();
    for (name, value) in vars {
        let Some(key) = key_for_env_var(name) else {
            continue;
        };
        if KEYS.contains(&key.as_str()) {
            overrides.insert(name.clone(), value.clone());
        } else {
            unknown.push(format!(
                "environment variable {name} names no setting (`{key}` is not a key); remove it \
                 or fix its name: overrides have the form {ENV_PREFIX}__SECTION__KEY, e.g. {}",
                env_var_for_key("sync.max_deletes")
            ));
        }
    }
    if !unknown.is_empty() {
        return Err(join_problems(unknown));
    }

    let built = Config::builder()
        .add_source(File::from_str(&text, FileFormat::Toml))
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .separator(ENV_SEPARATOR)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|e| describe_config_error(e, path))?;
    built
        .try_deserialize::<RawConfig>()
        .map_err(|e| describe_config_error(e, path))
}

/// Turns a `config` crate error into a message that names the file or variable, the key and
/// the fix. TOML error snippets are dropped because they could quote a token.
fn describe_config_error(e: ConfigError, path: &Path) -> String {
    let file = path.display();
    let source_of = |origin: &Option<String>, key: &Option<String>| match (origin, key) {
        (Some(_), Some(k)) => format!("set by {}", env_var_for_key(k)),
        (Some(o), None) => format!("from {o}"),
        (None, _) => format!("in {file}"),
    };
    match e {
        ConfigError::FileParse { cause, .. } => {
            let text = cause.to_string();
            let kept: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !is_snippet_line(l))
                .collect();
            format!(
                "{file} is not valid TOML: {}; fix the file",
                kept.join(": ")
            )
        }
        ConfigError::Type {
            origin,
            unexpected,
            expected,
            key,
        } => {
            let where_ = source_of(&origin, &key);
            let key = key.unwrap_or_else(|| "(top level)".into());
            format!("{key} ({where_}): expected {expected}, found {unexpected}; fix the value")
        }
        ConfigError::At { error, origin, key } => {
            let inner = match *error {
                ConfigError::Message(m) => m,
                other => other.to_string(),
            };
            if let Some(msg) = unknown_key_message(&inner, key.as_deref(), path) {
                return msg;
            }
            let where_ = source_of(&origin, &key);
            match key {
                Some(k) => format!("{k} ({where_}): {inner}; fix the value"),
                None => format!("{where_}: {inner}"),
            }
        }
        ConfigError::Message(m) => {
            unknown_key_message(&m, None, path).unwrap_or_else(|| format!("{file}: {m}"))
        }
        ConfigError::NotFound(k) => format!("{k} is missing in {file}; add it"),
        other => format!("{file}: {other}"),
    }
}

/// Lines of a TOML error that quote the file (`3 | token = "…`, `  |     ^`).
fn is_snippet_line(line: &str) -> bool {
    let rest = line
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    rest.starts_with('|')
}

/// serde's "unknown field `x`, expected one of …" with the section prepended.
fn unknown_key_message(msg: &str, section: Option<&str>, path: &Path) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (name, tail) = rest.split_once('`')?;
    let full = match section {
        Some(s) => format!("{s}.{name}"),
        None => name.to_string(),
    };
    let expected = tail.trim_start_matches(',').trim();
    let expected = if expected.is_empty() {
        String::new()
    } else {
        format!(" ({expected})")
    };
    Some(format!(
        "unknown key `{full}` in {}{expected}; remove it or fix its spelling",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry of `KEYS` is a field of the raw layer (the reverse direction is covered by
    /// `deny_unknown_fields` and the example-file test).
    #[test]
    fn every_listed_key_is_accepted_by_the_raw_layer() {
        for key in KEYS {
            let overrides: ::config::Map<String, String> =
                [(env_var_for_key(key), "1".to_string())]
                    .into_iter()
                    .collect();
            let raw = Config::builder()
                .add_source(
                    Environment::with_prefix(ENV_PREFIX)
                        .separator(ENV_SEPARATOR)
                        .source(Some(overrides)),
                )
                .build()
                .unwrap()
                .try_deserialize::<RawConfig>();
            assert!(raw.is_ok(), "{key}: {:?}", raw.err());
        }
    }

    #[test]
    fn raw_defaults_match_the_design() {
        let raw = RawConfig::default();
        assert_eq!(raw.okta.org_url, None);
        assert_eq!(raw.okta.app_id, None);
        assert!(raw.okta.token.is_none() && raw.okta.token_file.is_none());
        assert!(raw.spot.token.is_none() && raw.spot.token_file.is_none());
        assert_eq!(raw.okta.page_size, 500);
        assert_eq!(raw.spot.base_url, "https://api.spotinst.io");
        assert_eq!(raw.sync.schedule, None);
        assert_eq!(raw.http.timeout, "30s");
        assert_eq!(raw.daemon.listen, "127.0.0.1:9464");
        // The roles' defaults are the validated type's: `settings::tests`.
        assert!(raw.spot.roles.viewer.spot_role.is_none());
        assert!(raw.spot.roles.editor.policies.is_none());
    }

    #[test]
    fn raw_secret_debug_is_redacted() {
        let s = RawSecret(SecretString::from("hunter2".to_string()));
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        let raw = RawOkta {
            token: Some(s),
            ..RawOkta::default()
        };
        assert!(!format!("{raw:?}").contains("hunter2"));
    }

    #[test]
    fn toml_snippet_lines_are_recognised() {
        assert!(is_snippet_line("3 | token = \"abc"));
        assert!(is_snippet_line("|         ^"));
        assert!(is_snippet_line("12 |"));
        assert!(!is_snippet_line("TOML parse error at line 3, column 9"));
        assert!(!is_snippet_line("invalid basic string"));
    }
}
