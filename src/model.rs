//! The vocabulary shared by every layer: normalised emails, roles, the rows read from Okta,
//! the users read from Spot, and the two I/O traits the reconciler talks through.
//!
//! This module owns no I/O and no policy. It must stay free of HTTP, files and clocks so the
//! pure core (`plan`, `guard`) can be tested without either API.

use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

/// An email address as a join key: trimmed and lower-cased.
///
/// Okta keeps the case the admin typed and Spot's handling is undocumented, so every
/// comparison across the two systems goes through this type. The original spelling is kept
/// separately where it is shown to people or sent to Spot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Normalises `raw`; `None` when it is not a plausible address (one `@`, a non-empty local
    /// part, a dotted domain, no whitespace or control characters, at most 254 bytes).
    pub fn parse(raw: &str) -> Option<Email> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > 254 {
            return None;
        }
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ',')
        {
            return None;
        }
        let (local, domain) = trimmed.split_once('@')?;
        if local.is_empty() || domain.contains('@') {
            return None;
        }
        // At least two labels, none empty (no Vec: this runs once per user per cycle).
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return None;
        }
        if trimmed.is_ascii() {
            return Some(Email(trimmed.to_ascii_lowercase()));
        }
        Some(Email(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two roles the Okta app grants. What each means in Spot is configuration
/// (`[spot.roles.*]`), not code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
}

impl Role {
    /// Case-insensitive, surrounding whitespace ignored.
    pub fn parse(raw: &str) -> Option<Role> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("viewer") {
            Some(Role::Viewer)
        } else if raw.eq_ignore_ascii_case("editor") {
            Some(Role::Editor)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `GET /api/v1/apps/{appId}/users?expand=user`, reduced to what the reconciler
/// needs. Fields are optional because Okta data is not always complete; deciding what a
/// missing field means is the classifier's job, not the parser's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct AppUserRow {
    /// The Okta user id (`AppUser.id` is the user id, not an assignment id).
    pub okta_user_id: String,
    /// `USER` or `GROUP`.
    pub scope: Option<String>,
    /// The app-user (assignment) status.
    pub app_user_status: Option<String>,
    /// The embedded Okta user's status.
    pub user_status: Option<String>,
    /// The embedded user's `profile.email`, as Okta returned it.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The app-user profile's role attribute, when it is a string.
    pub role: Option<String>,
    /// Set when the row had an id but some field could not be understood; the row is held
    /// with this as its reason instead of being guessed at.
    pub malformed: Option<String>,
}

/// An Okta user who should have a Spot user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredUser {
    pub okta_user_id: String,
    pub email: Email,
    /// The address as Okta spells it; sent to Spot on create.
    pub email_display: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
}

/// An Okta user whose Spot user is kept as it is (never created, never deleted) this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldUser {
    pub okta_user_id: String,
    pub email: Option<String>,
    pub reason: String,
}

/// An Okta user listed by the app but not entitled (e.g. deactivated): treated as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsentUser {
    pub okta_user_id: String,
    pub reason: String,
}

/// Okta's side after classification: who should exist, who is held, who is listed but absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OktaSnapshot {
    pub provision: Vec<DesiredUser>,
    pub held: Vec<HeldUser>,
    pub absent: Vec<AbsentUser>,
    /// Distinct Okta users listed by the app (after dedup).
    pub listed: usize,
}

/// What kind of Spot user this is. Only `Personal` users can ever be touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpotUserKind {
    Personal,
    Programmatic,
    /// A type this tool does not know; treated like programmatic: never touched.
    Unknown,
}

/// One user of the Spot organization, from `GET /setup/organization/user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotUser {
    pub user_id: String,
    /// Normalised email; `None` when Spot returned none or an unparsable one.
    pub email: Option<Email>,
    pub username: String,
    pub kind: SpotUserKind,
}

impl SpotUser {
    pub fn is_personal(&self) -> bool {
        self.kind == SpotUserKind::Personal && !self.user_id.starts_with("pu-")
    }
}

/// A built-in or custom Spot policy, from `GET /setup/organization/policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotPolicy {
    pub id: String,
    pub name: String,
}

/// One entry of a policy mapping body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyGrant {
    pub policy_id: String,
    pub account_ids: Vec<String>,
}

/// The body of `POST /setup/user`, minus the password (generated at the last moment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSpotUser {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Spot's organization role on create (`viewer`, `admin`, …).
    pub spot_role: String,
}

/// Reads the Okta side. A read is all or nothing: any failure is an `Err`, never a short list.
pub trait IdentitySource: Send + Sync {
    fn read_assignments(
        &self,
    ) -> impl Future<Output = Result<Vec<AppUserRow>, crate::Error>> + Send;
}

/// Reads and writes the Spot side. Implementations must treat "already gone" on delete as
/// success and must never be handed a programmatic user.
pub trait SpotDirectory: Send + Sync {
    fn list_users(&self) -> impl Future<Output = Result<Vec<SpotUser>, crate::Error>> + Send;
    fn list_account_ids(&self) -> impl Future<Output = Result<Vec<String>, crate::Error>> + Send;
    fn list_policies(&self) -> impl Future<Output = Result<Vec<SpotPolicy>, crate::Error>> + Send;
    /// Creates the user and returns its Spot user id.
    fn create_user(
        &self,
        user: &NewSpotUser,
    ) -> impl Future<Output = Result<String, crate::Error>> + Send;
    fn delete_user(&self, user_id: &str) -> impl Future<Output = Result<(), crate::Error>> + Send;
    fn set_policy_mapping(
        &self,
        user_id: &str,
        grants: &[PolicyGrant],
    ) -> impl Future<Output = Result<(), crate::Error>> + Send;
}

/// Strips the characters Spot rejects in names (`+ = @`) and falls back to a placeholder
/// so a create is never refused for an empty name.
pub fn spot_safe_name(raw: Option<&str>, fallback: &str) -> String {
    let clean = |c: char| !matches!(c, '+' | '=' | '@') && !c.is_control();
    if let Some(raw) = raw {
        // Fast path (one allocation): nothing to strip, trim or cut.
        let trimmed = raw.trim();
        if !trimmed.is_empty()
            && trimmed.len() == raw.len()
            && raw.len() <= 50
            && raw.chars().all(clean)
        {
            return raw.to_string();
        }
    }
    let cleaned: String = raw
        .unwrap_or("")
        .chars()
        .filter(|c| !matches!(c, '+' | '=' | '@') && !c.is_control())
        .collect();
    let cleaned = cleaned.trim();
    let cleaned: String = cleaned.chars().take(50).collect();
    if cleaned.is_empty() {
        fallback.to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let e = Email::parse("  Jane.Doe@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "jane.doe@example.com");
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@b.com",
            "a@b..com",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(Role::parse(" Editor "), Some(Role::Editor));
        assert_eq!(Role::parse("VIEWER"), Some(Role::Viewer));
        assert_eq!(Role::parse("owner"), None);
    }

    #[test]
    fn names_lose_spot_forbidden_characters() {
        assert_eq!(spot_safe_name(Some("Ann+Marie=@"), "x"), "AnnMarie");
        assert_eq!(spot_safe_name(Some("+=@"), "user"), "user");
        assert_eq!(spot_safe_name(None, "user"), "user");
    }
}
