//! The validated settings the rest of the program uses. Every value here has been checked by
//! `validate`, and the types say what can be: an Okta credential is either an SSWS token or
//! an OAuth service app ([`OktaAuth`]), both roles are always present ([`SpotRoles`]), the
//! schedule is one the scheduler accepts and that fires ([`Schedule`]), read bounds are never
//! zero ([`ReadBounds`]).
//!
//! This file only declares types and small accessors. It must never read a file or the
//! environment, and never build a value from raw input: that is `validate`'s job.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::model::{Email, Role};

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
    pub events: EventsSettings,
}

/// `[events]`: events mode of `run` (README "Events mode").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsSettings {
    /// `run` follows Okta's System Log between full cycles.
    pub enabled: bool,
    /// How often the System Log is polled; 1 s to 1 h.
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// Scheme, host and port only: no credentials, path `/`, no query or fragment. `Url`
    /// always prints the `/` path of an http(s) URL, so `as_str()` ends with `/`: use
    /// `join("api/v1/…")` or trim it when concatenating.
    pub org_url: Url,
    pub app_id: String,
    /// How to authenticate (`okta.auth`), with the credential.
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

/// How the tool authenticates to Okta (`okta.auth`), with the credential it uses.
#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// `Authorization: SSWS <token>`: the API token from `okta.token_file` (or the other
    /// token sources). Its `Debug` never shows the token.
    Ssws(SecretString),
    /// An OAuth 2.0 service app: `private_key_jwt` client credentials, with DPoP. No SSWS
    /// token is read.
    OAuth(OAuthSettings),
}

impl OktaAuth {
    /// The SSWS API token; `None` for an OAuth service app.
    pub fn ssws_token(&self) -> Option<&SecretString> {
        match self {
            OktaAuth::Ssws(token) => Some(token),
            OktaAuth::OAuth(_) => None,
        }
    }
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
    /// What each Okta role means in Spot.
    pub roles: SpotRoles,
}

/// What each Okta role means in Spot (`[spot.roles.viewer]`, `[spot.roles.editor]`): one
/// field per [`Role`], so every role has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotRoles {
    pub viewer: SpotRoleSettings,
    pub editor: SpotRoleSettings,
}

impl SpotRoles {
    /// How `role` is realised in Spot.
    pub fn get(&self, role: Role) -> &SpotRoleSettings {
        match role {
            Role::Viewer => &self.viewer,
            Role::Editor => &self.editor,
        }
    }

    /// Every role with its settings, in [`Role`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Role, &SpotRoleSettings)> {
        [(Role::Viewer, &self.viewer), (Role::Editor, &self.editor)].into_iter()
    }
}

/// The Spot realisation of each role when the file says nothing; it follows Spot's own Okta
/// integration: a viewer is Spot's `viewer` with the "Account Viewer" policy, an editor is
/// Spot's `admin` with no policy.
impl Default for SpotRoles {
    fn default() -> Self {
        SpotRoles {
            viewer: SpotRoleSettings {
                spot_role: "viewer".into(),
                policies: vec!["Account Viewer".into()],
            },
            editor: SpotRoleSettings {
                spot_role: "admin".into(),
                policies: Vec::new(),
            },
        }
    }
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
    /// When the daemon cycles.
    /// The full cycles of `run`: the safety net in events mode, every cycle otherwise.
    pub schedule: Schedule,
    /// The full cycles when events mode cannot run (off, or the System Log refused):
    /// `sync.schedule` when it is set, [`DEFAULT_SCHEDULE`] otherwise.
    pub fallback_schedule: Schedule,
    /// When the daemon audits every managed user's access (`sync.audit_schedule`); `None`:
    /// never (`""`).
    pub audit_schedule: Option<Schedule>,
    /// Whether the daemon's audit adds missing grants (`sync.audit_repair`).
    pub audit_repair: bool,
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

/// `sync.schedule` when it is not set and events mode is off: every 10 minutes.
pub const DEFAULT_SCHEDULE: &str = "0 */10 * * * *";

/// `sync.schedule` when it is not set and events mode is on: the safety-net full cycle, every
/// 6 hours (at 100,000 users a full read is 200 requests of Okta's `/api/v1/apps/*` bucket; a
/// quiet hour without it costs the 240 polls of the System Log alone).
pub const DEFAULT_EVENTS_SCHEDULE: &str = "0 15 */6 * * *";

/// `sync.schedule`: a cron expression with seconds (six or seven fields, single-spaced), in
/// UTC, that the daemon's scheduler (`tokio-cron-scheduler`) accepts and that fired at least
/// once from the time it was checked on. Only [`Schedule::parse`] (in `validate::sync`) makes
/// one, so the daemon never sees a schedule that `check` or a reload would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub(super) String);

impl Schedule {
    /// The normalised expression, as handed to the scheduler.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_defaults_match_the_design() {
        let roles = SpotRoles::default();
        assert_eq!(roles.get(Role::Viewer).spot_role, "viewer");
        assert_eq!(roles.get(Role::Viewer).policies, ["Account Viewer"]);
        assert_eq!(roles.get(Role::Editor).spot_role, "admin");
        assert!(roles.get(Role::Editor).policies.is_empty());
        let listed: Vec<Role> = roles.iter().map(|(r, _)| r).collect();
        assert_eq!(listed, [Role::Viewer, Role::Editor]);
    }

    #[test]
    fn an_ssws_token_is_never_shown() {
        let auth = OktaAuth::Ssws(SecretString::from("hunter2".to_string()));
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert!(auth.ssws_token().is_some());
    }
}
