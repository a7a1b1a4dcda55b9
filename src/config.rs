//! Configuration: the raw, layered input (defaults, TOML file, `OKTA_SPOT_SYNC__SECTION__KEY`
//! environment overrides, token files) and the validated [`Settings`] the rest of the program
//! uses. Raw and validated are different types so nothing downstream can see an unchecked value.
//!
//! This module reads the config file and token files; it must never log or print a token and
//! never accept one from the command line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::model::{Email, Role};

/// Validated settings. Every field has been checked; see `README.md` for each key.
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
    /// Scheme, host and port only; no trailing slash.
    pub org_url: Url,
    pub app_id: String,
    pub token: SecretString,
    pub role_attribute: String,
    /// 1..=500.
    pub page_size: u32,
    /// Upper-cased.
    pub provision_statuses: Vec<String>,
    /// Upper-cased.
    pub hold_statuses: Vec<String>,
    /// 1..=100.
    pub max_api_capacity_percent: u8,
}

#[derive(Debug, Clone)]
pub struct SpotSettings {
    pub base_url: Url,
    pub token: SecretString,
    /// 1..=64.
    pub write_concurrency: usize,
    /// What each Okta role means in Spot.
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
    /// `None` when `listen = ""`.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}
