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
//! Tokens are never read from the command line. For each API the first source present wins:
//! `okta.token` (inline in the file or `OKTA_SPOT_SYNC__OKTA__TOKEN`; allowed but discouraged,
//! it yields a warning), `okta.token_file`, `$CREDENTIALS_DIRECTORY/okta-token` (systemd
//! `LoadCredential=`), then `OKTA_SPOT_SYNC_OKTA_TOKEN` (likewise `spot.*`, `spot-token`,
//! `OKTA_SPOT_SYNC_SPOT_TOKEN`). An empty `token_file` counts as unset (so an override can
//! clear it); a relative one is relative to the working directory. Token files are trimmed
//! and a leading UTF-8 byte-order mark is dropped; an empty token is an error; a token file
//! accessible by group or others yields a warning.
//! Tokens go straight into [`SecretString`].
//!
//! Okta authentication (`okta.auth`): `ssws` (the default) uses the token above; `oauth`
//! uses an OAuth 2.0 service app instead (`okta.client_id`, `okta.private_key_file` or
//! `$CREDENTIALS_DIRECTORY/okta-private-key`, `okta.key_id`, `okta.scopes`, `okta.dpop`), and
//! then no SSWS token is read. The private key is parsed and test-signed at load, so a bad key
//! is an error at start; it lives in a [`SecretString`] and is never shown.
//!
//! Nothing here logs: non-fatal findings are returned in [`Loaded::warnings`] for the caller
//! to log once logging is set up. This module must never log or print a token; errors and
//! `Debug` output never contain one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, ConfigError, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use url::{Host, Url};

use crate::error::Error;
use crate::model::{Email, Role};

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

/// Token files larger than this are refused (a token is a few dozen bytes).
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

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

const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

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
fn key_for_env_var(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_ascii_lowercase();
    lower
        .strip_prefix(&prefix)
        .map(|rest| rest.replace(ENV_SEPARATOR, "."))
}

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

/// Token values that arrived through the environment, so that an error message that quotes a
/// value (the `config` crate's type errors do) can never show one.
struct Secrets(Vec<String>);

impl Secrets {
    fn from_env(vars: &BTreeMap<String, String>) -> Secrets {
        let mut found = Vec::new();
        for (name, value) in vars {
            let is_token_var = name == OKTA_TOKEN_ENV
                || name == SPOT_TOKEN_ENV
                || key_for_env_var(name).is_some_and(|k| k == "okta.token" || k == "spot.token");
            let value = value.trim();
            if is_token_var && !value.is_empty() {
                found.push(value.to_string());
            }
        }
        Secrets(found)
    }

    fn redact(&self, msg: &str) -> String {
        let mut out = msg.to_string();
        for s in &self.0 {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The raw layer.

/// A token as read from the file or an override: never printed.
#[derive(Clone)]
struct RawSecret(SecretString);

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
const EXPLICITLY_EMPTY_LIST: &str = "[]";

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

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    okta: RawOkta,
    spot: RawSpot,
    sync: RawSync,
    http: RawHttp,
    daemon: RawDaemon,
    log: RawLog,
}

// Numbers are read as i64 and range-checked in `validate`, so an out-of-range value gets a
// message with the key, the value and the range instead of a serde overflow error.

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawOkta {
    org_url: Option<String>,
    app_id: Option<String>,
    token: Option<RawSecret>,
    token_file: Option<String>,
    role_attribute: String,
    page_size: i64,
    #[serde(deserialize_with = "string_list")]
    provision_statuses: Vec<String>,
    #[serde(deserialize_with = "string_list")]
    hold_statuses: Vec<String>,
    max_api_capacity_percent: i64,
    max_read_pages: i64,
    max_read_rows: i64,
    max_read_time: String,
    auth: String,
    client_id: Option<String>,
    private_key_file: Option<String>,
    key_id: Option<String>,
    #[serde(deserialize_with = "string_list")]
    scopes: Vec<String>,
    dpop: bool,
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
struct RawSpot {
    base_url: String,
    token: Option<RawSecret>,
    token_file: Option<String>,
    write_concurrency: i64,
    roles: RawRoles,
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
/// are optional because the defaults differ per role (see [`role_defaults`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRoles {
    viewer: RawRole,
    editor: RawRole,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRole {
    spot_role: Option<String>,
    #[serde(deserialize_with = "opt_string_list")]
    policies: Option<Vec<String>>,
}

/// The Spot realisation of each role when the file says nothing; it follows Spot's own Okta
/// integration.
fn role_defaults(role: Role) -> SpotRoleSettings {
    match role {
        Role::Viewer => SpotRoleSettings {
            spot_role: "viewer".into(),
            policies: strings(&["Account Viewer"]),
        },
        Role::Editor => SpotRoleSettings {
            spot_role: "admin".into(),
            policies: Vec::new(),
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSync {
    schedule: String,
    run_on_start: bool,
    state_file: String,
    default_role: String,
    adopt_existing: bool,
    update_roles: bool,
    max_deletes: i64,
    max_delete_percent: i64,
    #[serde(deserialize_with = "string_list")]
    protected_emails: Vec<String>,
}

impl Default for RawSync {
    fn default() -> Self {
        RawSync {
            schedule: "0 */10 * * * *".into(),
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
struct RawHttp {
    timeout: String,
    max_retries: i64,
    allow_insecure_http: bool,
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
struct RawDaemon {
    listen: String,
    readiness_max_age: String,
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
struct RawLog {
    format: String,
    level: String,
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
fn read_raw(path: &Path, vars: &BTreeMap<String, String>) -> Result<RawConfig, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read config file {shown}: {e}; create it (config/okta-spot-sync.example.toml \
             lists every key), or pass --config PATH or set {CONFIG_PATH_ENV} to the right file"
        )
    })?;

    let mut overrides = config::Map::new();
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

/// Validated settings. Every field has been checked; see
/// `config/okta-spot-sync.example.toml` for each key and its default.
#[derive(Debug, Clone)]
pub struct Settings {
    pub okta: OktaSettings,
    pub spot: SpotSettings,
    pub sync: SyncSettings,
    pub http: HttpSettings,
    pub daemon: DaemonSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// Scheme, host and port only: no credentials, path `/`, no query or fragment. `Url`
    /// always prints the `/` path of an http(s) URL, so `as_str()` ends with `/`: use
    /// `join("api/v1/…")` or trim it when concatenating.
    pub org_url: Url,
    pub app_id: String,
    /// The SSWS API token; empty when `auth` is [`OktaAuth::OAuth`].
    pub token: SecretString,
    /// How to authenticate (`okta.auth`).
    pub auth: OktaAuth,
    pub role_attribute: String,
    /// 1..=500.
    pub page_size: u32,
    /// Upper-cased.
    pub provision_statuses: Vec<String>,
    /// Upper-cased.
    pub hold_statuses: Vec<String>,
    /// 1..=100.
    pub max_api_capacity_percent: u8,
    /// How far one paged read may go (`okta.max_read_pages`, `okta.max_read_rows`,
    /// `okta.max_read_time`).
    pub read_bounds: ReadBounds,
}

/// The bounds of one paged Okta read (the assignment walk; `import`'s user searches and
/// walk). A read that reaches one is aborted as incomplete, so nothing is planned from it.
///
/// The defaults are sized for 1,000,000 assigned users: at `limit=500` that is 2,000 pages
/// of the app's assignments (5,000 pages of 200 for `import`'s walk of the org's users), so
/// 10,000 pages leave a factor of 2 for the smaller page and for a server that caps `limit`;
/// 2,000,000 rows leave room for every user to be listed twice (a direct and a group grant);
/// and 2,000 pages at 50 a minute (half of Okta's 100/min `/api/v1/apps` bucket, the default
/// `okta.max_api_capacity_percent`) take 40 minutes, so 2 hours leave a factor of 3 for
/// 429 waits and retries. A runaway next link (thousands of pages a minute) still stops
/// within a few minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBounds {
    /// `okta.max_read_pages`: pages of one read.
    pub max_pages: NonZeroU32,
    /// `okta.max_read_rows`: rows (list entries) of one read.
    pub max_rows: NonZeroU64,
    /// `okta.max_read_time`: wall time of one read, waits included; never zero.
    pub max_time: Duration,
}

impl ReadBounds {
    pub const DEFAULT_MAX_PAGES: u32 = 10_000;
    pub const DEFAULT_MAX_ROWS: u64 = 2_000_000;
    pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(2 * 3600);

    /// Bounds with these limits; `None` for a zero limit.
    pub fn new(max_pages: u32, max_rows: u64, max_time: Duration) -> Option<ReadBounds> {
        if max_time.is_zero() {
            return None;
        }
        Some(ReadBounds {
            max_pages: NonZeroU32::new(max_pages)?,
            max_rows: NonZeroU64::new(max_rows)?,
            max_time,
        })
    }
}

impl Default for ReadBounds {
    fn default() -> Self {
        ReadBounds::new(
            Self::DEFAULT_MAX_PAGES,
            Self::DEFAULT_MAX_ROWS,
            Self::DEFAULT_MAX_TIME,
        )
        .expect("the defaults are not zero")
    }
}

/// How the tool authenticates to Okta (`okta.auth`).
#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// `Authorization: SSWS <okta.token>`.
    Ssws,
    /// An OAuth 2.0 service app: `private_key_jwt` client credentials, with DPoP.
    OAuth(OAuthSettings),
}

/// The OAuth 2.0 service app (`okta.auth = "oauth"`).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// `okta.client_id`: the service app's client ID.
    pub client_id: String,
    /// The client-authentication key from `okta.private_key_file` (with `okta.key_id` as
    /// `kid`), parsed and checked at load. Its `Debug` never shows the key.
    pub key: crate::okta::jwt::ClientKey,
    /// `okta.scopes`, de-duplicated, in order.
    pub scopes: Vec<String>,
    /// `okta.dpop`: send DPoP proofs (required by new service apps).
    pub dpop: bool,
}

#[derive(Debug, Clone)]
pub struct SpotSettings {
    /// Same shape as [`OktaSettings::org_url`].
    pub base_url: Url,
    pub token: SecretString,
    /// 1..=64.
    pub write_concurrency: usize,
    /// What each Okta role means in Spot; always holds both roles.
    pub roles: BTreeMap<Role, SpotRoleSettings>,
}

/// How one Okta role is realised in Spot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotRoleSettings {
    /// `role` sent on `POST /setup/user` (`viewer`, `admin`).
    pub spot_role: String,
    /// Policy names granted on every account of the organization with
    /// `PUT /setup/user/{id}/policyMapping`; resolved to ids at run time. Empty: no mapping call.
    pub policies: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Cron expression with seconds (six or seven fields).
    pub schedule: String,
    pub run_on_start: bool,
    pub state_file: PathBuf,
    pub default_role: Role,
    pub adopt_existing: bool,
    pub update_roles: bool,
    pub max_deletes: usize,
    /// 0..=100.
    pub max_delete_percent: u8,
    pub protected_emails: Vec<Email>,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub max_retries: u32,
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// `None` when `listen = ""` (the health/metrics server is off).
    pub listen: Option<SocketAddr>,
    /// `/readyz` answers 200 only while the last complete cycle is younger than this.
    pub readiness_max_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A level (`error`, `warn`, `info`, `debug`, `trace`, lower-cased) or an `EnvFilter`
    /// directive list such as `info,okta_spot_sync=debug`.
    pub level: String,
}

// ---------------------------------------------------------------------------------------------
// Validation: raw -> Settings.

fn join_problems(mut problems: Vec<String>) -> String {
    if problems.len() == 1 {
        return problems.remove(0);
    }
    let mut out = format!("{} problems:", problems.len());
    for p in problems {
        out.push_str("\n  - ");
        out.push_str(&p);
    }
    out
}

/// Collects problems so one run reports all of them.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check<T>(&mut self, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }
}

fn validate(raw: RawConfig, vars: &BTreeMap<String, String>) -> Result<Loaded, String> {
    let mut p = Problems::default();
    let mut warnings = Vec::new();
    let insecure = raw.http.allow_insecure_http;

    // [okta]
    let org_url = match raw.okta.org_url.as_deref().map(str::trim) {
        None | Some("") => {
            p.0.push(format!(
                "okta.org_url is not set; add org_url = \"https://<your-org>.okta.com\" under \
                 [okta], or set {}",
                env_var_for_key("okta.org_url")
            ));
            None
        }
        Some(u) => p.check(validate_base_url("okta.org_url", u, insecure)),
    };
    let app_id = p.check(validate_app_id(raw.okta.app_id.as_deref()));
    let (okta_token, okta_auth) = match raw.okta.auth.trim().to_ascii_lowercase().as_str() {
        "oauth" => {
            for (key, set) in [
                ("okta.token", raw.okta.token.is_some()),
                (
                    "okta.token_file",
                    raw.okta
                        .token_file
                        .as_deref()
                        .is_some_and(|f| !f.trim().is_empty()),
                ),
            ] {
                if set {
                    warnings.push(format!(
                        "{key} is ignored because okta.auth = \"oauth\"; remove it (the service \
                         app authenticates with okta.private_key_file)"
                    ));
                }
            }
            let oauth = p.check(validate_oauth(&raw.okta, vars, &mut warnings));
            (
                Some(SecretString::from(String::new())),
                oauth.map(OktaAuth::OAuth),
            )
        }
        "ssws" => {
            for (key, set) in [
                ("okta.client_id", raw.okta.client_id.is_some()),
                ("okta.private_key_file", raw.okta.private_key_file.is_some()),
                ("okta.key_id", raw.okta.key_id.is_some()),
            ] {
                if set {
                    warnings.push(format!(
                        "{key} is ignored because okta.auth = \"ssws\"; set okta.auth = \
                         \"oauth\" to use the OAuth service app, or remove it"
                    ));
                }
            }
            let token = resolve_token(
                &TokenSource::OKTA,
                raw.okta.token,
                raw.okta.token_file.as_deref(),
                vars,
                &mut warnings,
            )
            .map_err(|e| {
                if raw.okta.client_id.is_some() {
                    format!(
                        "{e}; okta.client_id is set: to use the OAuth service app instead, set \
                         okta.auth = \"oauth\""
                    )
                } else {
                    e
                }
            });
            (p.check(token), Some(OktaAuth::Ssws))
        }
        _ => {
            p.0.push(format!(
                "okta.auth = {:?} is not an authentication method; use \"ssws\" (API token) or \
                 \"oauth\" (OAuth 2.0 service app, preferred)",
                raw.okta.auth
            ));
            (None, None)
        }
    };
    let role_attribute = p.check(validate_role_attribute(&raw.okta.role_attribute));
    let page_size = p.check(in_range("okta.page_size", raw.okta.page_size, 1, 500));
    let max_api_capacity_percent = p.check(in_range(
        "okta.max_api_capacity_percent",
        raw.okta.max_api_capacity_percent,
        1,
        100,
    ));
    let max_read_pages = p.check(in_range(
        "okta.max_read_pages",
        raw.okta.max_read_pages,
        1,
        i64::from(u32::MAX),
    ));
    let max_read_rows = p.check(in_range(
        "okta.max_read_rows",
        raw.okta.max_read_rows,
        1,
        i64::MAX,
    ));
    let max_read_time = p.check(validate_duration(
        "okta.max_read_time",
        &raw.okta.max_read_time,
        "\"2h\" (a read that takes longer is aborted; raise it for a very large app)",
    ));
    let provision_statuses = p.check(validate_statuses(
        "okta.provision_statuses",
        &raw.okta.provision_statuses,
    ));
    let hold_statuses = p.check(validate_statuses(
        "okta.hold_statuses",
        &raw.okta.hold_statuses,
    ));
    if let Some(prov) = &provision_statuses {
        if prov.is_empty() {
            p.0.push(format!(
                "okta.provision_statuses is empty, so no Okta user would be provisioned; list at \
                 least one of {}",
                OKTA_USER_STATUSES.join(", ")
            ));
        }
    }
    if let (Some(prov), Some(hold)) = (&provision_statuses, &hold_statuses) {
        let both: Vec<&str> = prov
            .iter()
            .filter(|s| hold.contains(s))
            .map(String::as_str)
            .collect();
        if !both.is_empty() {
            p.0.push(format!(
                "okta.provision_statuses and okta.hold_statuses both list {}; a status must be \
                 in at most one of them, remove it from one list",
                both.join(", ")
            ));
        }
    }

    // [spot]
    let base_url = p.check(validate_base_url(
        "spot.base_url",
        raw.spot.base_url.trim(),
        insecure,
    ));
    let spot_token = p.check(resolve_token(
        &TokenSource::SPOT,
        raw.spot.token,
        raw.spot.token_file.as_deref(),
        vars,
        &mut warnings,
    ));
    let write_concurrency = p.check(in_range(
        "spot.write_concurrency",
        raw.spot.write_concurrency,
        1,
        64,
    ));
    let mut roles = BTreeMap::new();
    for (role, raw_role) in [
        (Role::Viewer, raw.spot.roles.viewer),
        (Role::Editor, raw.spot.roles.editor),
    ] {
        if let Some(r) = p.check(validate_role(role, raw_role)) {
            roles.insert(role, r);
        }
    }

    // [sync]
    let schedule = p.check(validate_schedule(&raw.sync.schedule));
    let state_file = match raw.sync.state_file.trim() {
        "" => {
            p.0.push(
                "sync.state_file is empty; set it to a writable path such as \
                 /var/lib/okta-spot-sync/state.json"
                    .to_string(),
            );
            None
        }
        s => Some(PathBuf::from(s)),
    };
    let default_role = match Role::parse(&raw.sync.default_role) {
        Some(r) => Some(r),
        None => {
            p.0.push(format!(
                "sync.default_role = {:?} is not a role; use \"viewer\" or \"editor\"",
                raw.sync.default_role
            ));
            None
        }
    };
    let max_deletes = p.check(in_range(
        "sync.max_deletes",
        raw.sync.max_deletes,
        0,
        i64::MAX,
    ));
    let max_delete_percent = p.check(in_range(
        "sync.max_delete_percent",
        raw.sync.max_delete_percent,
        0,
        100,
    ));
    let protected_emails = p
        .check(validate_protected_emails_override(vars))
        .and_then(|()| p.check(validate_emails(&raw.sync.protected_emails)));

    // [http]
    let timeout = p.check(validate_timeout(&raw.http.timeout));
    let max_retries = p.check(in_range("http.max_retries", raw.http.max_retries, 0, 20));

    // [daemon]
    let listen = p.check(validate_listen(&raw.daemon.listen));
    if let Some(warning) = listen.flatten().as_ref().and_then(listen_warning) {
        warnings.push(warning);
    }
    let readiness_max_age = p.check(validate_duration(
        "daemon.readiness_max_age",
        &raw.daemon.readiness_max_age,
        "\"30m\" (keep it above the schedule's interval)",
    ));

    // [log]
    let format = match raw.log.format.trim().to_ascii_lowercase().as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        _ => {
            p.0.push(format!(
                "log.format = {:?} is not a format; use \"text\" or \"json\"",
                raw.log.format
            ));
            None
        }
    };
    let level = p.check(validate_log_level(&raw.log.level));

    if !p.0.is_empty() {
        return Err(join_problems(p.0));
    }
    // Every `None` above pushed a problem, so all are `Some` here.
    let missing = || "internal error: a setting was neither valid nor reported".to_string();
    let settings = Settings {
        okta: OktaSettings {
            org_url: org_url.ok_or_else(missing)?,
            app_id: app_id.ok_or_else(missing)?,
            token: okta_token.ok_or_else(missing)?,
            auth: okta_auth.ok_or_else(missing)?,
            role_attribute: role_attribute.ok_or_else(missing)?,
            page_size: page_size.ok_or_else(missing)?,
            provision_statuses: provision_statuses.ok_or_else(missing)?,
            hold_statuses: hold_statuses.ok_or_else(missing)?,
            max_api_capacity_percent: max_api_capacity_percent.ok_or_else(missing)?,
            read_bounds: ReadBounds::new(
                max_read_pages.ok_or_else(missing)?,
                max_read_rows.ok_or_else(missing)?,
                max_read_time.ok_or_else(missing)?,
            )
            .ok_or_else(missing)?,
        },
        spot: SpotSettings {
            base_url: base_url.ok_or_else(missing)?,
            token: spot_token.ok_or_else(missing)?,
            write_concurrency: write_concurrency.ok_or_else(missing)?,
            roles,
        },
        sync: SyncSettings {
            schedule: schedule.ok_or_else(missing)?,
            run_on_start: raw.sync.run_on_start,
            state_file: state_file.ok_or_else(missing)?,
            default_role: default_role.ok_or_else(missing)?,
            adopt_existing: raw.sync.adopt_existing,
            update_roles: raw.sync.update_roles,
            max_deletes: max_deletes.ok_or_else(missing)?,
            max_delete_percent: max_delete_percent.ok_or_else(missing)?,
            protected_emails: protected_emails.ok_or_else(missing)?,
        },
        http: HttpSettings {
            timeout: timeout.ok_or_else(missing)?,
            max_retries: max_retries.ok_or_else(missing)?,
            allow_insecure_http: insecure,
        },
        daemon: DaemonSettings {
            listen: listen.ok_or_else(missing)?,
            readiness_max_age: readiness_max_age.ok_or_else(missing)?,
        },
        log: LogSettings {
            format: format.ok_or_else(missing)?,
            level: level.ok_or_else(missing)?,
        },
    };
    Ok(Loaded { settings, warnings })
}

/// `lo..=hi`, converted to the target type.
fn in_range<T: TryFrom<i64>>(key: &str, v: i64, lo: i64, hi: i64) -> Result<T, String> {
    let range = if hi == i64::MAX {
        format!("a whole number of at least {lo}")
    } else {
        format!("a whole number in {lo}..={hi}")
    };
    if v < lo || v > hi {
        return Err(format!("{key} = {v} is out of range; use {range}"));
    }
    T::try_from(v).map_err(|_| format!("{key} = {v} is too large on this platform; use {range}"))
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            d.eq_ignore_ascii_case("localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An API base URL: http(s), scheme + host (+ port) only, https unless
/// `http.allow_insecure_http` and the host is loopback.
fn validate_base_url(key: &str, raw: &str, allow_insecure: bool) -> Result<Url, String> {
    let example = if key.starts_with("okta") {
        "https://<your-org>.okta.com"
    } else {
        "https://api.spotinst.io"
    };
    // Never echo a value that may carry credentials (userinfo, a query or fragment).
    let shown = if raw.contains(['@', '?', '#']) {
        "(value not shown: it contains '@', '?' or '#')".to_string()
    } else {
        format!("{raw:?}")
    };
    if raw.is_empty() {
        return Err(format!("{key} is empty; set it to a URL such as {example}"));
    }
    let url = Url::parse(raw).map_err(|e| {
        format!("{key} = {shown} is not an absolute URL ({e}); use a URL such as {example}")
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!(
            "{key} = {shown} has scheme {:?}; use an https:// URL such as {example}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{key} = {shown} contains credentials; remove them (tokens go in {}.token_file)",
            key.split('.').next().unwrap_or("okta")
        ));
    }
    let Some(host) = url.host() else {
        return Err(format!(
            "{key} = {shown} has no host; use a URL such as {example}"
        ));
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{key} = {shown} must be scheme and host only (no path, query or fragment); use a \
             URL such as {example}"
        ));
    }
    if url.scheme() == "http" {
        if !is_loopback(&host) {
            return Err(format!(
                "{key} = {shown} is not https; plain http is only allowed for a loopback host \
                 (127.0.0.1, ::1, localhost) with http.allow_insecure_http = true; use https://"
            ));
        }
        if !allow_insecure {
            return Err(format!(
                "{key} = {shown} is not https; set http.allow_insecure_http = true to allow \
                 plain http to this loopback host (emulators only), or use https://"
            ));
        }
    }
    let mut origin = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        origin.push_str(&format!(":{port}"));
    }
    Url::parse(&origin).map_err(|e| format!("{key} = {shown}: {e}"))
}

fn validate_app_id(raw: Option<&str>) -> Result<String, String> {
    let id = raw.map(str::trim).unwrap_or("");
    if id.is_empty() {
        return Err(format!(
            "okta.app_id is not set; add app_id = \"0oa…\" under [okta] (the id in the Okta \
             admin console URL of the Spot app), or set {}",
            env_var_for_key("okta.app_id")
        ));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "okta.app_id = {id:?} is not an Okta id (letters and digits only, e.g. \
             \"0oa1example\"); copy the app id from the Okta admin console"
        ));
    }
    Ok(id.to_string())
}

fn validate_role_attribute(raw: &str) -> Result<String, String> {
    let attr = raw.trim();
    if attr.is_empty() || attr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "okta.role_attribute = {raw:?} is not an attribute name; use the variable name of \
             the app-user profile attribute, e.g. \"role\""
        ));
    }
    Ok(attr.to_string())
}

fn validate_statuses(key: &str, raw: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for s in raw {
        let up = s.trim().to_ascii_uppercase();
        if !OKTA_USER_STATUSES.contains(&up.as_str()) {
            bad.push(format!("{s:?}"));
        } else if !out.contains(&up) {
            out.push(up);
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "{key} contains {} which {} not an Okta user status; use only {}",
            bad.join(", "),
            if bad.len() == 1 { "is" } else { "are" },
            OKTA_USER_STATUSES.join(", ")
        ));
    }
    Ok(out)
}

fn validate_role(role: Role, raw: RawRole) -> Result<SpotRoleSettings, String> {
    let defaults = role_defaults(role);
    let key = format!("spot.roles.{role}");
    let spot_role = match raw.spot_role {
        None => defaults.spot_role,
        Some(s) => {
            let t = s.trim().to_ascii_lowercase();
            if !SPOT_ROLES.contains(&t.as_str()) {
                return Err(format!(
                    "{key}.spot_role = {s:?} is not a Spot organization role; use one of {} \
                     (the default for {role} is \"{}\")",
                    SPOT_ROLES
                        .iter()
                        .map(|r| format!("\"{r}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    defaults.spot_role
                ));
            }
            t
        }
    };
    let mut policies: Vec<String> = Vec::new();
    for p in raw.policies.unwrap_or(defaults.policies) {
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    Ok(SpotRoleSettings {
        spot_role,
        policies,
    })
}

/// Six or seven fields (seconds first) of cron characters, which the daemon's scheduler
/// (`tokio-cron-scheduler`, in UTC) accepts and which fires at least once after now: a
/// schedule such as `0 0 0 30 2 *` (February 30) or a past year would let `run` start and
/// then never cycle again.
fn validate_schedule(raw: &str) -> Result<String, String> {
    let fields: Vec<&str> = raw.split_whitespace().collect();
    let fix = "use a cron expression with seconds, e.g. \"0 */10 * * * *\" (every 10 minutes)";
    if !(6..=7).contains(&fields.len()) {
        return Err(format!(
            "sync.schedule = {raw:?} has {} fields, expected 6 or 7 (sec min hour day month \
             weekday [year]); {fix}",
            fields.len()
        ));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "*/,-?#".contains(c);
    if let Some(f) = fields.iter().find(|f| !f.chars().all(ok_char)) {
        return Err(format!(
            "sync.schedule = {raw:?}: field {f:?} has characters cron does not use; {fix}"
        ));
    }
    let schedule = fields.join(" ");
    // Asked exactly as the daemon's scheduler is (UTC); a job is only a value until added.
    let mut job = tokio_cron_scheduler::Job::new(schedule.as_str(), |_, _| {}).map_err(|e| {
        format!("sync.schedule = {raw:?} is not a valid cron expression ({e}); {fix}")
    })?;
    let next_tick = job
        .job_data()
        .map(|data| data.next_tick)
        .map_err(|e| format!("sync.schedule = {raw:?} cannot be scheduled ({e}); {fix}"))?;
    if next_tick == 0 {
        return Err(format!(
            "sync.schedule = {raw:?} never fires: no time from now on matches it (a day the \
             month does not have, such as February 30, or a year in the past; the day of the \
             month and the weekday must both match); {fix}"
        ));
    }
    Ok(schedule)
}

/// An override of `sync.protected_emails` that lists no address (`""`, `" "`, `","`) is
/// refused: it would silently drop every protection of the file, and an empty variable is
/// far more often a template or a secret store that lost its value than a decision. An
/// empty list is said explicitly with `[]`.
fn validate_protected_emails_override(vars: &BTreeMap<String, String>) -> Result<(), String> {
    let var = env_var_for_key("sync.protected_emails");
    let Some(value) = vars.get(&var) else {
        return Ok(());
    };
    if value.trim() == EXPLICITLY_EMPTY_LIST || value.split(',').any(|e| !e.trim().is_empty()) {
        return Ok(());
    }
    Err(format!(
        "{var} = {value:?} lists no address, which would empty sync.protected_emails (the Spot \
         users never touched); list the addresses, comma-separated, or unset {var} to keep the \
         file's list. To protect no one on purpose, set {var}=[] (or protected_emails = [] in \
         the file)"
    ))
}

fn validate_emails(raw: &[String]) -> Result<Vec<Email>, String> {
    let mut out: Vec<Email> = Vec::new();
    let mut bad = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        match Email::parse(s) {
            Some(e) if !out.contains(&e) => out.push(e),
            Some(_) => {}
            None => bad.push(format!("[{i}] = {s:?}")),
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "sync.protected_emails{}; list full addresses such as \"admin@example.com\"",
            if bad.len() == 1 {
                format!("{} is not a valid email address", bad[0])
            } else {
                format!(": {} are not valid email addresses", bad.join(", "))
            }
        ));
    }
    Ok(out)
}

fn validate_timeout(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim()).map_err(|e| {
        format!(
            "http.timeout = {raw:?} is not a duration ({e}); use a number with a unit, e.g. \
             \"30s\" or \"2m\""
        )
    })?;
    if d.is_zero() {
        return Err(format!(
            "http.timeout = {raw:?} must be greater than zero; use e.g. \"30s\""
        ));
    }
    Ok(d)
}

/// A positive humantime duration for `key`; `example` is the fix offered.
fn validate_duration(key: &str, raw: &str, example: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!(
            "{key} = {raw:?} must be greater than zero; use e.g. {example}"
        )),
        Err(e) => Err(format!(
            "{key} = {raw:?} is not a duration ({e}); use a number with a unit, e.g. {example}"
        )),
    }
}

fn validate_listen(raw: &str) -> Result<Option<SocketAddr>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "daemon.listen = {raw:?} is not an IP address and port; use e.g. \
             \"127.0.0.1:9464\", or \"\" to turn the health/metrics server off"
        )
    })
}

/// The warning a `daemon.listen` address draws: any address but loopback serves `/metrics`
/// (user counts, API routes, rate limits) and the health endpoints to the network, without
/// authentication.
pub fn listen_warning(addr: &SocketAddr) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "daemon.listen = \"{addr}\" is not a loopback address: /metrics, /healthz and /readyz \
         are served without authentication to whoever can reach it; use \"127.0.0.1:{}\" \
         (scrape through a local agent or an authenticating proxy), or \"\" to turn the \
         server off",
        addr.port()
    ))
}

fn validate_log_level(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    let lower = t.to_ascii_lowercase();
    if LOG_LEVELS.contains(&lower.as_str()) || lower == "off" {
        return Ok(lower);
    }
    let fix = format!(
        "use one of {} or a tracing EnvFilter directive such as \"info,okta_spot_sync=debug\"",
        LOG_LEVELS.join(", ")
    );
    // A bare word that is not a level would be taken by EnvFilter as a target name, which is
    // almost certainly a typo ("verbose", "warning").
    if !t.contains('=') && !t.contains(',') {
        return Err(format!("log.level = {raw:?} is not a log level; {fix}"));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(t)
        .map(|_| t.to_string())
        .map_err(|e| format!("log.level = {raw:?} is not a valid filter ({e}); {fix}"))
}

// ---------------------------------------------------------------------------------------------
// OAuth service app.

/// `okta.client_id`, `okta.private_key_file` (or the systemd credential), `okta.key_id`,
/// `okta.scopes`, `okta.dpop` for `okta.auth = "oauth"`.
fn validate_oauth(
    raw: &RawOkta,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<OAuthSettings, String> {
    let mut p = Problems::default();
    let client_id = match raw.client_id.as_deref().map(str::trim) {
        None | Some("") => {
            p.0.push(format!(
                "okta.client_id is not set but okta.auth = \"oauth\"; set it to the Client ID of \
                 the Okta API Services app (Applications → the app → General), or set {}",
                env_var_for_key("okta.client_id")
            ));
            None
        }
        Some(id)
            if id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Some(id.to_string())
        }
        Some(id) => {
            p.0.push(format!(
                "okta.client_id = {id:?} is not an Okta client ID (letters, digits, '-' and '_', \
                 e.g. \"0oa1serviceapp\"); copy it from the service app's General tab"
            ));
            None
        }
    };
    let key_id = match raw.key_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(k) if k.len() <= 200 && !k.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Some(k.to_string())
        }
        Some(k) => {
            p.0.push(format!(
                "okta.key_id = {k:?} is not a key ID; copy the KID of the public key from the \
                 service app (General → Public keys), or remove it"
            ));
            None
        }
    };
    let pem = p.check(resolve_private_key(
        raw.private_key_file.as_deref(),
        vars,
        warnings,
    ));
    let key = pem.and_then(|(label, pem)| {
        p.check(
            crate::okta::jwt::ClientKey::from_pem(pem, key_id.clone())
                .map_err(|e| format!("{label}: {e}")),
        )
    });
    let scopes = p.check(validate_scopes(&raw.scopes));
    if let Some(scopes) = &scopes {
        for (needed, why) in [
            ("okta.apps.read", "listing the app's users"),
            ("okta.users.read", "reading users"),
        ] {
            let manage = needed.replace(".read", ".manage");
            if !scopes.iter().any(|s| *s == needed || *s == manage) {
                warnings.push(format!(
                    "okta.scopes does not include {needed}, which {why} needs; add it (and grant \
                     it to the service app under Okta API Scopes)"
                ));
            }
        }
    }
    if !p.0.is_empty() {
        return Err(join_problems(p.0));
    }
    let missing = || "internal error: an OAuth setting was neither valid nor reported".to_string();
    Ok(OAuthSettings {
        client_id: client_id.ok_or_else(missing)?,
        key: key.ok_or_else(missing)?,
        scopes: scopes.ok_or_else(missing)?,
        dpop: raw.dpop,
    })
}

/// Okta API scopes: `okta.<resource>.<read|manage|…>`, de-duplicated, at least one.
fn validate_scopes(raw: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for s in raw {
        let t = s.trim();
        let ok = t.starts_with("okta.")
            && t.len() > 5
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        if !ok {
            bad.push(format!("{s:?}"));
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "okta.scopes contains {} which {} not an Okta API scope; use scopes such as {}",
            bad.join(", "),
            if bad.len() == 1 { "is" } else { "are" },
            DEFAULT_OKTA_SCOPES.join(", ")
        ));
    }
    if out.is_empty() {
        return Err(format!(
            "okta.scopes is empty; list the scopes to request, e.g. [{}]",
            DEFAULT_OKTA_SCOPES
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

/// The PEM text of the client key and the label to name it by: `okta.private_key_file`, else
/// `$CREDENTIALS_DIRECTORY/okta-private-key`.
fn resolve_private_key(
    file: Option<&str>,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<(String, SecretString), String> {
    if let Some(f) = file.map(str::trim).filter(|f| !f.is_empty()) {
        let label = "okta.private_key_file".to_string();
        let fix = "create the file with the service app's private key (PEM), or set \
                   okta.private_key_file to the right path";
        return read_secret_file(&label, Path::new(f), fix, warnings).map(|pem| (label, pem));
    }
    if let Some(dir) = vars
        .get(CREDENTIALS_DIRECTORY_ENV)
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
    {
        let path = Path::new(dir).join(OKTA_PRIVATE_KEY_CREDENTIAL);
        if path.exists() {
            let label = format!("${CREDENTIALS_DIRECTORY_ENV}/{OKTA_PRIVATE_KEY_CREDENTIAL}");
            let fix = format!(
                "check the LoadCredential={OKTA_PRIVATE_KEY_CREDENTIAL}:… line of the service unit"
            );
            return read_secret_file(&label, &path, &fix, warnings).map(|pem| (label, pem));
        }
    }
    Err(format!(
        "okta.auth = \"oauth\" needs the service app's private key: set okta.private_key_file to \
         a PEM file holding it (mode 0600), or load it with systemd \
         LoadCredential={OKTA_PRIVATE_KEY_CREDENTIAL}:/path"
    ))
}

/// Reads a small secret file (a PEM key) whole, warning when group or others can read it.
/// Messages never include its content.
fn read_secret_file(
    label: &str,
    path: &Path,
    fix: &str,
    warnings: &mut Vec<String>,
) -> Result<SecretString, String> {
    let shown = path.display();
    let cannot = |e: &dyn fmt::Display| format!("{label}: cannot read {shown}: {e}; {fix}");
    let file = std::fs::File::open(path).map_err(|e| cannot(&e))?;
    let meta = file.metadata().map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{label}: {shown} is accessible by group or others (mode {mode:04o}); restrict \
                 it with chmod 600 {shown}"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = warnings;
    let mut buf = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| cannot(&e))?;
    if buf.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "{label}: {shown} is larger than {MAX_TOKEN_FILE_BYTES} bytes; it must hold only \
             the private key; {fix}"
        ));
    }
    let text =
        String::from_utf8(buf).map_err(|_| format!("{label}: {shown} is not UTF-8 text; {fix}"))?;
    let text = strip_bom(text);
    if text.trim().is_empty() {
        return Err(format!("{label}: {shown} is empty; {fix}"));
    }
    Ok(SecretString::from(text))
}

// ---------------------------------------------------------------------------------------------
// Tokens.

/// Where one API's token may come from.
struct TokenSource {
    /// `okta` or `spot`: the section, so keys are `okta.token`, `okta.token_file`.
    section: &'static str,
    /// What the token is, for messages.
    what: &'static str,
    credential: &'static str,
    env: &'static str,
}

impl TokenSource {
    const OKTA: TokenSource = TokenSource {
        section: "okta",
        what: "Okta API token",
        credential: OKTA_TOKEN_CREDENTIAL,
        env: OKTA_TOKEN_ENV,
    };
    const SPOT: TokenSource = TokenSource {
        section: "spot",
        what: "Spot API token",
        credential: SPOT_TOKEN_CREDENTIAL,
        env: SPOT_TOKEN_ENV,
    };
}

/// The first token source present wins; see the module docs for the order.
fn resolve_token(
    src: &TokenSource,
    inline: Option<RawSecret>,
    token_file: Option<&str>,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<SecretString, String> {
    let sec = src.section;
    let token_file = token_file.map(str::trim).filter(|f| !f.is_empty());
    if let Some(RawSecret(secret)) = inline {
        warnings.push(format!(
            "{sec}.token is set inline (in the config file or {}); prefer {sec}.token_file or \
             systemd LoadCredential={}:…, which keep the token out of the config and the \
             environment",
            env_var_for_key(&format!("{sec}.token")),
            src.credential
        ));
        if let Some(f) = token_file {
            warnings.push(format!(
                "{sec}.token_file = {f:?} is ignored because {sec}.token is set; remove one of them"
            ));
        }
        return check_token(secret.expose_secret(), &format!("{sec}.token"), || {
            format!(
                "set it to the {}, or remove it and use {sec}.token_file",
                src.what
            )
        });
    }
    if let Some(f) = token_file {
        let fix = format!(
            "create the file with the {}, or set {sec}.token_file to the right path",
            src.what
        );
        return read_token_file(&format!("{sec}.token_file"), Path::new(f), &fix, warnings);
    }
    if let Some(dir) = vars
        .get(CREDENTIALS_DIRECTORY_ENV)
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
    {
        let path = Path::new(dir).join(src.credential);
        if path.exists() {
            let fix = format!(
                "check the LoadCredential={}:… line of the service unit",
                src.credential
            );
            return read_token_file(
                &format!("${CREDENTIALS_DIRECTORY_ENV}/{}", src.credential),
                &path,
                &fix,
                warnings,
            );
        }
    }
    if let Some(v) = vars.get(src.env) {
        return check_token(v, src.env, || {
            format!("put the {} in it, or unset it", src.what)
        });
    }
    Err(format!(
        "no {what}: set {sec}.token_file to a file holding it, or load it with systemd \
         LoadCredential={cred}:/path (read from $CREDENTIALS_DIRECTORY/{cred}), or set {env}",
        what = src.what,
        cred = src.credential,
        env = src.env
    ))
}

/// The text without a leading UTF-8 byte-order mark, which editors on Windows (and
/// PowerShell's `Out-File`) put at the start of a file: it is not part of the token, and
/// `trim` does not remove it (U+FEFF is not whitespace). The text is moved, not copied,
/// when there is none.
fn strip_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// Trims and checks a token; messages never include it.
fn check_token(raw: &str, label: &str, fix: impl Fn() -> String) -> Result<SecretString, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(format!("{label} is empty; {}", fix()));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{label} contains whitespace or control characters inside the token; it must hold \
             only the token; {}",
            fix()
        ));
    }
    Ok(SecretString::from(t.to_string()))
}

fn read_token_file(
    label: &str,
    path: &Path,
    fix: &str,
    warnings: &mut Vec<String>,
) -> Result<SecretString, String> {
    let shown = path.display();
    let cannot = |e: &dyn fmt::Display| format!("{label}: cannot read {shown}: {e}; {fix}");
    let file = std::fs::File::open(path).map_err(|e| cannot(&e))?;
    let meta = file.metadata().map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{label}: {shown} is accessible by group or others (mode {mode:04o}); restrict \
                 it with chmod 600 {shown}"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = warnings;
    let mut buf = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| cannot(&e))?;
    if buf.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "{label}: {shown} is larger than {MAX_TOKEN_FILE_BYTES} bytes; it must hold only \
             the token; {fix}"
        ));
    }
    let text =
        String::from_utf8(buf).map_err(|_| format!("{label}: {shown} is not UTF-8 text; {fix}"))?;
    check_token(&strip_bom(text), &format!("{label} ({shown})"), || {
        fix.to_string()
    })
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

    /// Every entry of `KEYS` is a field of the raw layer (the reverse direction is covered by
    /// `deny_unknown_fields` and the example-file test).
    #[test]
    fn every_listed_key_is_accepted_by_the_raw_layer() {
        for key in KEYS {
            let overrides: config::Map<String, String> = [(env_var_for_key(key), "1".to_string())]
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
        assert_eq!(raw.sync.schedule, "0 */10 * * * *");
        assert_eq!(raw.http.timeout, "30s");
        assert_eq!(raw.daemon.listen, "127.0.0.1:9464");
        assert_eq!(role_defaults(Role::Viewer).spot_role, "viewer");
        assert_eq!(role_defaults(Role::Viewer).policies, ["Account Viewer"]);
        assert_eq!(role_defaults(Role::Editor).spot_role, "admin");
        assert!(role_defaults(Role::Editor).policies.is_empty());
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
    fn secrets_from_the_environment_are_redacted() {
        let vars: BTreeMap<String, String> = [
            (OKTA_TOKEN_ENV, " tok-a \n"),
            ("OKTA_SPOT_SYNC__SPOT__TOKEN", "tok-b"),
            ("OKTA_SPOT_SYNC__SPOT__TOKEN_FILE", "/run/file"),
            ("OKTA_SPOT_SYNC__LOG__LEVEL", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = Secrets::from_env(&vars);
        assert_eq!(
            s.redact("x tok-a y tok-b /run/file info"),
            "x [REDACTED] y [REDACTED] /run/file info"
        );
    }

    #[test]
    fn toml_snippet_lines_are_recognised() {
        assert!(is_snippet_line("3 | token = \"abc"));
        assert!(is_snippet_line("|         ^"));
        assert!(is_snippet_line("12 |"));
        assert!(!is_snippet_line("TOML parse error at line 3, column 9"));
        assert!(!is_snippet_line("invalid basic string"));
    }

    #[test]
    fn base_urls_are_reduced_to_scheme_host_port() {
        let ok = |raw: &str, insecure: bool| validate_base_url("okta.org_url", raw, insecure);
        assert_eq!(
            ok("https://Example.Okta.com/", false).unwrap().as_str(),
            "https://example.okta.com/"
        );
        assert_eq!(
            ok("https://example.okta.com:443", false).unwrap().as_str(),
            "https://example.okta.com/"
        );
        assert_eq!(
            ok("https://example.okta.com:8443", false).unwrap().port(),
            Some(8443)
        );
        assert!(ok("http://127.0.0.1:1", true).is_ok());
        assert!(ok("http://127.0.0.1:1", false).is_err());
        assert!(ok("http://192.168.1.1", true).is_err());
        assert!(ok("https://example.okta.com//", false).is_err());
        assert!(ok("https://example.okta.com/#x", false).is_err());
        assert!(ok("mailto:a@b.com", false).is_err());
        assert!(ok("", false).is_err());
    }

    #[test]
    fn loopback_hosts() {
        for (url, expected) in [
            ("http://localhost", true),
            ("http://localhost.", true),
            ("http://127.0.0.1", true),
            ("http://127.255.0.9", true),
            ("http://[::1]", true),
            ("http://[::2]", false),
            ("http://128.0.0.1", false),
            ("http://mylocalhost", false),
        ] {
            let u = Url::parse(url).unwrap();
            assert_eq!(is_loopback(&u.host().unwrap()), expected, "{url}");
        }
    }

    #[test]
    fn ranges_are_inclusive() {
        assert_eq!(in_range::<u32>("k", 1, 1, 500), Ok(1));
        assert_eq!(in_range::<u32>("k", 500, 1, 500), Ok(500));
        assert!(in_range::<u32>("k", 0, 1, 500).is_err());
        assert!(in_range::<u32>("k", 501, 1, 500).is_err());
        assert!(in_range::<usize>("k", -1, 0, i64::MAX)
            .unwrap_err()
            .contains("at least 0"));
    }

    #[test]
    fn statuses_are_uppercased_and_deduplicated() {
        assert_eq!(
            validate_statuses("k", &["active".into(), " Active ".into(), "staged".into()]),
            Ok(vec!["ACTIVE".to_string(), "STAGED".to_string()])
        );
        let err = validate_statuses("k", &["ACTIVE".into(), "INACTIVE".into()]).unwrap_err();
        assert!(err.contains("\"INACTIVE\""), "{err}");
    }

    #[test]
    fn schedules_need_six_or_seven_cron_fields() {
        for good in [
            "0 */10 * * * *",
            "0 0 9 * * MON-FRI",
            "0 0 0 1 JAN ? 2099",
            "  0   0 * * *  * ",
            "0 0 12 ? * 2#1",
        ] {
            assert!(validate_schedule(good).is_ok(), "{good}");
        }
        assert_eq!(validate_schedule(" 0  1 * * * * ").unwrap(), "0 1 * * * *");
        for bad in [
            "",
            "*/10 * * * *",
            "0 0 0 0 0 0 0 0",
            "0 0 * * * ;",
            "@hourly",
        ] {
            assert!(validate_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_that_never_fire_are_refused() {
        for never in [
            "0 0 0 30 2 *",
            "0 0 0 31 4 *",
            "0 0 0 1 1 * 2020",
            "0 0 0 31 FEB ?",
        ] {
            let err = validate_schedule(never).unwrap_err();
            assert!(
                err.contains("sync.schedule") && err.contains("never fires"),
                "{never}: {err}"
            );
        }
        // Once every four years still fires.
        assert!(validate_schedule("0 0 0 29 2 *").is_ok());
        let err = validate_schedule("0 0 0 32 1 *").unwrap_err();
        assert!(err.contains("not a valid cron expression"), "{err}");
    }

    #[test]
    fn spot_roles_are_spot_s_organization_roles() {
        let role = |s: &str| {
            validate_role(
                Role::Viewer,
                RawRole {
                    spot_role: Some(s.to_string()),
                    policies: None,
                },
            )
        };
        assert_eq!(role(" Admin ").unwrap().spot_role, "admin");
        assert_eq!(role("editor").unwrap().spot_role, "editor");
        for bad in ["viwer", "owner", "", "read_only"] {
            let err = role(bad).unwrap_err();
            assert!(
                err.contains("spot.roles.viewer.spot_role")
                    && err.contains("\"viewer\", \"editor\", \"admin\""),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_bom_is_not_part_of_a_token() {
        assert_eq!(strip_bom("\u{feff}tok\n".into()), "tok\n");
        assert_eq!(strip_bom("tok".into()), "tok");
        assert_eq!(strip_bom("t\u{feff}k".into()), "t\u{feff}k");
    }

    #[test]
    fn only_loopback_listen_addresses_are_quiet() {
        for quiet in ["127.0.0.1:9464", "[::1]:9464", "127.0.0.2:1"] {
            assert_eq!(listen_warning(&quiet.parse().unwrap()), None, "{quiet}");
        }
        for loud in ["0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464"] {
            let w = listen_warning(&loud.parse().unwrap()).unwrap();
            assert!(w.contains("daemon.listen") && w.contains("loopback"), "{w}");
        }
    }

    #[test]
    fn log_levels() {
        assert_eq!(validate_log_level(" WARN "), Ok("warn".to_string()));
        assert!(validate_log_level("info,hyper=warn").is_ok());
        assert!(validate_log_level("okta_spot_sync=trace").is_ok());
        assert!(validate_log_level("warning").is_err());
        assert!(validate_log_level("").is_err());
        assert!(validate_log_level("x=nope").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(validate_listen(""), Ok(None));
        assert_eq!(validate_listen("  "), Ok(None));
        assert_eq!(
            validate_listen("[::1]:9464"),
            Ok(Some("[::1]:9464".parse().unwrap()))
        );
        assert!(validate_listen("127.0.0.1").is_err());
        assert!(validate_listen("localhost:9464").is_err());
    }

    #[test]
    fn tokens_are_trimmed_and_checked() {
        let fix = || "fix".to_string();
        assert_eq!(
            check_token("  abc\n", "k", fix).unwrap().expose_secret(),
            "abc"
        );
        let err = check_token(" \n", "k", fix).unwrap_err();
        assert!(err.starts_with("k is empty"), "{err}");
        let err = check_token("ab cd", "k", fix).unwrap_err();
        assert!(!err.contains("ab") && !err.contains("cd"), "{err}");
    }
}
