//! The emulators' starting data: one JSON document with an `okta` and a `spot` section
//! (`config/demo-fixture.json` is the demo's story). Loading, defaults and fresh credentials.
//!
//! This module only describes data. It must not start servers or apply the data: the
//! emulators' state modules turn a fixture into state and report what they cannot use.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::common::{random_alnum, random_hex};

/// Everything both emulators start with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fixture {
    pub okta: OktaFixture,
    pub spot: SpotFixture,
}

impl Fixture {
    /// Reads a fixture file; the error names the file and what is wrong.
    pub fn load(path: impl AsRef<Path>) -> Result<Fixture, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read fixture {}: {e}", path.display()))?;
        Fixture::from_json(&text).map_err(|e| format!("fixture {}: {e}", path.display()))
    }

    /// Parses fixture JSON.
    pub fn from_json(text: &str) -> Result<Fixture, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The demo's story (`config/demo-fixture.json`, compiled in).
    pub fn demo() -> Fixture {
        // The file is part of the crate and covered by a test; a broken file is a build bug.
        Fixture::from_json(include_str!("../../../config/demo-fixture.json"))
            .unwrap_or_else(|e| panic!("config/demo-fixture.json is invalid: {e}"))
    }
}

/// The Okta org: one app, its users and its assignments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OktaFixture {
    pub org_name: Option<String>,
    pub app_id: String,
    /// The SSWS token the emulator accepts.
    pub token: String,
    /// App-user profile attribute holding the role.
    pub role_attribute: String,
    pub users: Vec<OktaUserFixture>,
    pub assignments: Vec<AssignmentFixture>,
    /// Requests per minute per bucket: `/api/v1/apps/*` (default 100), `/api/v1/users`
    /// (600), `/api/v1/users/{id}` (2000), `/api/v1/logs` (120). Missing buckets keep their
    /// default.
    pub rate_limits: BTreeMap<String, u32>,
    /// When false, rate-limit headers are still sent but no request is refused.
    pub enforce_rate_limits: bool,
    /// Server-side cap on `limit` for the app-users list (below the documented 500).
    pub max_limit: Option<u32>,
    /// OAuth 2.0 service apps that may get access tokens from `POST /oauth2/v1/token`
    /// (alongside the SSWS token, which keeps working).
    pub oauth_clients: Vec<OAuthClientFixture>,
    /// Lifetime of issued access tokens in seconds (Okta's is fixed at 3600).
    pub token_lifetime_secs: u64,
}

/// An API Services app (`private_key_jwt` client credentials).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthClientFixture {
    pub client_id: String,
    /// The registered public keys (JWKs: RSA, or EC P-256), chosen by `kid` when the client
    /// assertion names one.
    pub jwks: Vec<serde_json::Value>,
    /// The Okta API scopes granted to the app (Okta API Scopes tab).
    pub scopes: Vec<String>,
    /// "Require Demonstrating Proof of Possession (DPoP) header in token requests".
    pub dpop_required: bool,
}

impl Default for OktaFixture {
    fn default() -> OktaFixture {
        OktaFixture {
            org_name: None,
            app_id: format!("0oa{}", random_alnum(17)),
            token: format!("00{}", random_alnum(40)),
            role_attribute: "role".to_string(),
            users: Vec::new(),
            assignments: Vec::new(),
            rate_limits: BTreeMap::new(),
            enforce_rate_limits: true,
            max_limit: None,
            oauth_clients: Vec::new(),
            token_lifetime_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OktaUserFixture {
    pub id: Option<String>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Defaults to the email.
    pub login: Option<String>,
    /// A `UserStatus`; default `ACTIVE`.
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentFixture {
    /// User id, login or email.
    pub user: String,
    #[serde(default)]
    pub role: Option<String>,
    /// `USER` (direct, the default) or `GROUP`.
    #[serde(default = "user_scope")]
    pub scope: String,
    /// Group name for `GROUP` scope.
    #[serde(default)]
    pub group: Option<String>,
}

fn user_scope() -> String {
    "USER".to_string()
}

/// The Spot organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpotFixture {
    /// The Bearer token the emulator accepts.
    pub token: String,
    pub organization_id: u64,
    /// The first account is the organization's default account. An org always has one, so
    /// the default fixture has one account.
    pub accounts: Vec<SpotAccountFixture>,
    pub users: Vec<SpotUserFixture>,
    pub programmatic: Vec<SpotProgrammaticFixture>,
    /// Custom policies (`pol-…`), added to the built-in ones.
    pub policies: Vec<SpotPolicyFixture>,
    /// Requests per minute per route key ("POST /setup/user"); default 100000.
    pub rate_limits: BTreeMap<String, u32>,
}

impl Default for SpotFixture {
    fn default() -> SpotFixture {
        SpotFixture {
            token: random_hex(64),
            organization_id: 606_079_860_000 + u64::from(rand::random::<u16>()),
            accounts: vec![SpotAccountFixture {
                account_id: format!("act-{}", random_hex(8)),
                name: "default".to_string(),
            }],
            users: Vec::new(),
            programmatic: Vec::new(),
            policies: Vec::new(),
            rate_limits: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotAccountFixture {
    pub account_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpotUserFixture {
    pub user_id: Option<String>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `admin`, `editor` or `viewer`.
    pub role: String,
    /// `personal` (default) or `programmatic`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotProgrammaticFixture {
    pub name: String,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotPolicyFixture {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// `ACCOUNT` (default) or `ORGANIZATION`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_fixture_parses() {
        let f = Fixture::demo();
        assert!(!f.okta.users.is_empty());
        assert_eq!(f.spot.accounts.len(), 2);
    }

    #[test]
    fn default_fixture_has_fresh_tokens() {
        let a = Fixture::default();
        let b = Fixture::default();
        assert_ne!(a.okta.token, b.okta.token);
        assert_ne!(a.spot.token, b.spot.token);
        assert!(a.okta.app_id.starts_with("0oa"));
    }
}
