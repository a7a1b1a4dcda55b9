//! The vocabulary shared by every layer: normalised emails, roles, the rows read from Okta,
//! the users read from Spot, and the two I/O traits the reconciler talks through.
//!
//! This module owns no I/O and no policy. It must stay free of HTTP, files and clocks so the
//! pure core (`plan`, `guard`) can be tested without either API.

use std::fmt;
use std::future::Future;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Declares a string id newtype: compared, ordered and hashed as its text, serialised as a
/// plain string (so the state file and reports keep their shape), and never converted to or
/// from another id type.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        /// Reads as its text (`as_deref`, `starts_with`, formatting). The other way is explicit
        /// (`new`, `From`), and every function that acts on a user takes the typed id, so an
        /// Okta user id given where a Spot user id is expected does not compile.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        /// Maps keyed by this id can be asked with the id's text.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// An Okta user id (`00u…`). A distinct type from [`SpotUserId`]: passing one where the
    /// other is expected does not compile.
    ///
    /// ```
    /// use okta_spot_sync::ledger::Ledger;
    /// use okta_spot_sync::model::{OktaUserId, SpotUserId};
    /// let mut ledger = Ledger::default();
    /// ledger.retire(&OktaUserId::new("00u1"), Some(&SpotUserId::new("u-1")));
    /// ```
    ///
    /// The same call with the two ids swapped:
    ///
    /// ```compile_fail
    /// use okta_spot_sync::ledger::Ledger;
    /// use okta_spot_sync::model::{OktaUserId, SpotUserId};
    /// let mut ledger = Ledger::default();
    /// ledger.retire(&SpotUserId::new("u-1"), Some(&OktaUserId::new("00u1")));
    /// ```
    OktaUserId
);

string_id!(
    /// A Spot user id (`u-…` personal, `pu-…` programmatic). A distinct type from
    /// [`OktaUserId`].
    SpotUserId
);

impl SpotUserId {
    /// Spot's prefix for programmatic users, which are never touched.
    pub fn is_programmatic(&self) -> bool {
        self.0.starts_with("pu-")
    }
}

/// An email address as a join key: trimmed, with **ASCII** letters lower-cased and nothing
/// else changed.
///
/// Okta keeps the case the admin typed and Spot's handling is undocumented, so every
/// comparison across the two systems goes through this type. The original spelling is kept
/// separately where it is shown to people or sent to Spot.
///
/// Only ASCII case is folded: no Unicode lower-casing, case folding or normalisation. Unicode
/// lower-casing maps some non-ASCII characters onto ASCII ones (U+212A KELVIN SIGN becomes
/// `k`, U+0130 becomes `i̇`), so `\u{212A}im@example.com` would match `kim@example.com`, a
/// different mailbox and a different person, whose Spot user would then be adopted and
/// later deleted. Two addresses that a mail system might deliver to different mailboxes are
/// different people (docs: README "Safety", email identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Normalises `raw`; `None` when it is not a plausible address (one `@`, a non-empty local
    /// part, a dotted domain, no whitespace or control characters, at most 254 bytes).
    pub fn parse(raw: &str) -> Option<Email> {
        let trimmed = raw.trim();
        match check(trimmed)? {
            Spelling::Normalised => Some(Email(trimmed.to_string())),
            Spelling::Other => Some(Email(lower_case(trimmed))),
        }
    }

    /// [`Email::parse`] for an owned string, for the classifier, which runs it once per user
    /// per cycle: when `raw` is already normalised (trimmed, lower case: the usual case) its
    /// buffer becomes the email, so nothing is allocated. The second value is Okta's spelling
    /// (trimmed) when it differs from the normalised form, `None` when it is the same.
    /// `Err` gives `raw` back when it is not a plausible address.
    pub fn parse_owned(raw: String) -> Result<(Email, Option<String>), String> {
        let trimmed = raw.trim();
        match check(trimmed) {
            None => Err(raw),
            Some(Spelling::Normalised) if trimmed.len() == raw.len() => Ok((Email(raw), None)),
            Some(_) => {
                let email = Email(lower_case(trimmed));
                let spelling = (email.0 != trimmed).then(|| trimmed.to_string());
                Ok((email, spelling))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a plausible address is spelled.
enum Spelling {
    /// ASCII without upper-case letters: lower-casing changes nothing.
    Normalised,
    Other,
}

/// The checks of [`Email::parse`] on an already trimmed address: `None` when it fails them.
///
/// ASCII addresses (the usual case) are checked in one pass over the bytes, a third of the
/// time of the `char` checks below, which they match exactly: in ASCII, `char::is_whitespace`
/// and `char::is_control` are "at most a space, or DEL".
fn check(trimmed: &str) -> Option<Spelling> {
    if trimmed.is_empty() || trimmed.len() > 254 {
        return None;
    }
    if !trimmed.is_ascii() {
        return is_plausible(trimmed).then_some(Spelling::Other);
    }
    let mut at = None;
    let mut domain_dots = 0;
    let mut previous = 0;
    let mut upper = false;
    for (i, &byte) in trimmed.as_bytes().iter().enumerate() {
        match byte {
            0..=b' ' | 0x7f | b'<' | b'>' | b',' => return None,
            b'@' if at.is_some() => return None,
            b'@' => at = Some(i),
            // A dot in the domain must not start it or follow another: no empty label.
            b'.' if at.is_some() => {
                if matches!(previous, b'@' | b'.') {
                    return None;
                }
                domain_dots += 1;
            }
            b'A'..=b'Z' => upper = true,
            _ => {}
        }
        previous = byte;
    }
    // A non-empty local part and at least two domain labels, the last one not empty.
    if at? == 0 || domain_dots == 0 || previous == b'.' {
        return None;
    }
    Some(if upper {
        Spelling::Other
    } else {
        Spelling::Normalised
    })
}

/// The `char` checks of [`Email::parse`], for addresses that are not ASCII.
fn is_plausible(trimmed: &str) -> bool {
    if trimmed
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ',')
    {
        return false;
    }
    let Some((local, domain)) = trimmed.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') {
        return false;
    }
    // At least two labels, none empty (no Vec: this runs once per user per cycle).
    domain.contains('.') && !domain.split('.').any(str::is_empty)
}

/// ASCII letters lower-cased, every other character as it is (see [`Email`]).
fn lower_case(trimmed: &str) -> String {
    trimmed.to_ascii_lowercase()
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
    pub okta_user_id: OktaUserId,
    /// `USER` or `GROUP`.
    ///
    /// This field, the statuses and the role are short words kept inline
    /// ([`CompactString`]) rather than on the heap: at 1,000,000 rows, four small heap strings a
    /// row were 4,000,000 allocations during the walk and as many frees when classify drops
    /// them, about a third of the planner's time.
    pub scope: Option<CompactString>,
    /// The app-user (assignment) status.
    pub app_user_status: Option<CompactString>,
    /// The embedded Okta user's status.
    pub user_status: Option<CompactString>,
    /// The embedded user's `profile.email`, as Okta returned it.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The app-user profile's role attribute, when it is a string.
    pub role: Option<CompactString>,
    /// Set when the row had an id but some field could not be understood; the row is held
    /// with this as its reason instead of being guessed at.
    pub malformed: Option<String>,
}

/// An Okta user who should have a Spot user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredUser {
    pub okta_user_id: OktaUserId,
    pub email: Email,
    /// Okta's spelling of the address (trimmed) when it differs from `email` in letter case;
    /// `None` when it is the same, which saves a copy of every address. Read it through
    /// [`DesiredUser::email_display`].
    pub email_spelling: Option<String>,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
}

impl DesiredUser {
    /// The address as Okta spells it; shown to people and sent to Spot on create.
    pub fn email_display(&self) -> &str {
        self.email_spelling
            .as_deref()
            .unwrap_or(self.email.as_str())
    }
}

/// An Okta user whose Spot user is kept as it is (never created, never deleted) this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldUser {
    pub okta_user_id: OktaUserId,
    pub email: Option<String>,
    pub reason: String,
}

/// An Okta user listed by the app but not entitled (e.g. deactivated): treated as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsentUser {
    pub okta_user_id: OktaUserId,
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
    pub user_id: SpotUserId,
    /// Normalised email; `None` when Spot returned none or an unparsable one.
    pub email: Option<Email>,
    pub username: String,
    pub kind: SpotUserKind,
}

impl SpotUser {
    pub fn is_personal(&self) -> bool {
        self.kind == SpotUserKind::Personal && !self.user_id.is_programmatic()
    }
}

/// The users of the Spot organization, one per Spot user id: the only form in which a Spot
/// user list reaches the planner, the guards and `import`.
///
/// An API may list an object twice. Counting list entries instead of users once let the
/// guard that keeps the last personal user believe there were two personal users when the
/// token's owner was listed twice, and delete it. So a list is made distinct here, once, when
/// it is read ([`SpotUsers::distinct`]), and everything downstream counts and decides on
/// distinct ids; the caller logs [`SpotUsers::repeated`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpotUsers {
    users: Vec<SpotUser>,
    repeated: Vec<SpotUserId>,
}

impl SpotUsers {
    /// One user per id, in the order each id was first listed. When the entries of one id
    /// differ (two different users cannot share an id, so one entry is wrong), the user is
    /// kept with kind [`SpotUserKind::Unknown`], which is never touched.
    pub fn distinct(listed: Vec<SpotUser>) -> SpotUsers {
        // The usual list repeats nothing: one pass of borrowed keys finds that, and the list
        // is kept as it is (no copy of 100,000 ids).
        let mut seen = rustc_hash::FxHashSet::default();
        seen.reserve(listed.len());
        if listed.iter().all(|u| seen.insert(u.user_id.as_str())) {
            return SpotUsers {
                users: listed,
                repeated: Vec::new(),
            };
        }
        drop(seen);
        let mut first: rustc_hash::FxHashMap<SpotUserId, usize> = rustc_hash::FxHashMap::default();
        first.reserve(listed.len());
        let mut users: Vec<SpotUser> = Vec::with_capacity(listed.len());
        let mut repeated = Vec::new();
        for user in listed {
            match first.get(user.user_id.as_str()) {
                None => {
                    first.insert(user.user_id.clone(), users.len());
                    users.push(user);
                }
                Some(&kept) => {
                    if !repeated.contains(&user.user_id) {
                        repeated.push(user.user_id.clone());
                    }
                    if users[kept] != user {
                        users[kept].kind = SpotUserKind::Unknown;
                    }
                }
            }
        }
        SpotUsers { users, repeated }
    }

    /// The personal user with `email`, the lowest id when several have it: the same choice the
    /// planner makes, so that every decision by email picks the same user.
    pub fn personal_with_email(&self, email: &Email) -> Option<&SpotUser> {
        self.users
            .iter()
            .filter(|u| u.is_personal() && u.email.as_ref() == Some(email))
            .min_by(|a, b| a.user_id.cmp(&b.user_id))
    }

    /// Does the list have a user with this id?
    pub fn lists(&self, spot_user_id: &SpotUserId) -> bool {
        self.users.iter().any(|u| &u.user_id == spot_user_id)
    }

    /// The ids the list had more than once, in the order first repeated.
    pub fn repeated(&self) -> &[SpotUserId] {
        &self.repeated
    }

    pub fn into_vec(self) -> Vec<SpotUser> {
        self.users
    }
}

impl std::ops::Deref for SpotUsers {
    type Target = [SpotUser];

    fn deref(&self) -> &[SpotUser] {
        &self.users
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
/// success and must never be handed a programmatic user. A user's access (role, policies) is
/// read through the supertrait.
pub trait SpotDirectory: crate::spot::access::SpotUserDetails + Send + Sync {
    /// The complete user list, one entry per Spot user id ([`SpotUsers::distinct`]).
    fn list_users(&self) -> impl Future<Output = Result<SpotUsers, crate::Error>> + Send;
    fn list_account_ids(&self) -> impl Future<Output = Result<Vec<String>, crate::Error>> + Send;
    fn list_policies(&self) -> impl Future<Output = Result<Vec<SpotPolicy>, crate::Error>> + Send;
    /// Creates the user and returns its Spot user id.
    fn create_user(
        &self,
        user: &NewSpotUser,
    ) -> impl Future<Output = Result<SpotUserId, crate::Error>> + Send;
    fn delete_user(
        &self,
        user_id: &SpotUserId,
    ) -> impl Future<Output = Result<(), crate::Error>> + Send;
    fn set_policy_mapping(
        &self,
        user_id: &SpotUserId,
        grants: &[PolicyGrant],
    ) -> impl Future<Output = Result<(), crate::Error>> + Send;
}

/// Strips the characters Spot rejects in names (`+ = @`) and falls back to a placeholder
/// so a create is never refused for an empty name.
pub fn spot_safe_name(raw: Option<&str>, fallback: &str) -> String {
    match raw {
        Some(raw) if is_spot_safe(raw) => raw.to_string(),
        _ => cleaned_name(raw, fallback),
    }
}

/// [`spot_safe_name`] for an owned name, which is returned as it is when nothing needs
/// stripping, trimming or cutting (the usual case): no allocation per user.
pub fn spot_safe_name_owned(raw: Option<String>, fallback: &str) -> String {
    match raw {
        Some(raw) if is_spot_safe(&raw) => raw,
        raw => cleaned_name(raw.as_deref(), fallback),
    }
}

fn is_spot_char(c: char) -> bool {
    !matches!(c, '+' | '=' | '@') && !c.is_control()
}

/// Would [`cleaned_name`] return `raw` unchanged? (Nothing to strip, trim or cut.)
fn is_spot_safe(raw: &str) -> bool {
    if raw.is_empty() || raw.len() > 50 {
        return false;
    }
    if raw.is_ascii() {
        // Byte by byte (the usual case): in ASCII the only whitespace that is not a control
        // character is the space, allowed inside a name but not around it.
        let bytes = raw.as_bytes();
        return bytes[0] != b' '
            && bytes[bytes.len() - 1] != b' '
            && bytes
                .iter()
                .all(|&b| b >= b' ' && b != 0x7f && !matches!(b, b'+' | b'=' | b'@'));
    }
    raw.trim().len() == raw.len() && raw.chars().all(is_spot_char)
}

fn cleaned_name(raw: Option<&str>, fallback: &str) -> String {
    let cleaned: String = raw
        .unwrap_or("")
        .chars()
        .filter(|&c| is_spot_char(c))
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

    /// Unicode lower-casing would make these the ASCII address of someone else.
    #[test]
    fn only_ascii_case_is_folded() {
        let kim = Email::parse("kim@example.com").unwrap();
        for other in [
            "\u{212A}im@example.com",
            "KIM@EXAMPLE.COM\u{212A}",
            "\u{130}nes@example.com",
        ] {
            let parsed = Email::parse(other).unwrap();
            assert_ne!(parsed, kim, "{other:?}");
            assert!(!parsed.as_str().is_ascii(), "{other:?} became {parsed}");
            let (owned, _) = Email::parse_owned(other.to_string()).unwrap();
            assert_eq!(owned, parsed);
        }
        assert_eq!(
            Email::parse("\u{212A}IM@Example.com").unwrap().as_str(),
            "\u{212A}im@example.com"
        );
        assert_eq!(
            Email::parse("ZOË@Exämple.DE").unwrap().as_str(),
            "zoË@exämple.de"
        );
        assert_ne!(
            Email::parse("ZOË@example.de"),
            Email::parse("zoë@example.de")
        );
    }

    #[test]
    fn a_spot_list_is_made_distinct_by_id_and_a_conflicting_id_is_never_touched() {
        let user = |id: &str, email: &str, kind| SpotUser {
            user_id: id.into(),
            email: Email::parse(email),
            username: email.into(),
            kind,
        };
        let owner = user("u-1", "owner@example.com", SpotUserKind::Personal);
        let ann = user("u-2", "ann@example.com", SpotUserKind::Personal);
        let users = SpotUsers::distinct(vec![
            owner.clone(),
            ann.clone(),
            owner.clone(),
            user("u-2", "bob@example.com", SpotUserKind::Personal),
            owner.clone(),
        ]);
        assert_eq!(users.len(), 2);
        assert_eq!(users[0], owner);
        assert_eq!(users[1].kind, SpotUserKind::Unknown);
        assert!(!users[1].is_personal());
        assert_eq!(users.repeated(), ["u-1", "u-2"]);
        assert!(SpotUsers::distinct(vec![owner, ann]).repeated().is_empty());
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
    fn parse_owned_reuses_a_normalised_address_and_keeps_another_spelling() {
        let (email, spelling) = Email::parse_owned("jane@example.com".into()).unwrap();
        assert_eq!(email.as_str(), "jane@example.com");
        assert_eq!(spelling, None);
        let (email, spelling) = Email::parse_owned(" Jane@Example.com ".into()).unwrap();
        assert_eq!(email.as_str(), "jane@example.com");
        assert_eq!(spelling.as_deref(), Some("Jane@Example.com"));
        let (_, spelling) = Email::parse_owned(" jane@example.com\t".into()).unwrap();
        assert_eq!(spelling, None);
        assert_eq!(
            Email::parse_owned("not-an-email".into()),
            Err("not-an-email".to_string())
        );
    }

    #[test]
    fn parse_owned_accepts_exactly_what_parse_accepts() {
        for raw in [
            "jane@example.com",
            "  Jane.Doe@Example.COM ",
            "Zoë@Exämple.de",
            "a\u{85}b@example.com",
            "a\u{a0}b@example.com",
            "a\u{7f}b@example.com",
            "a\u{1c}b@example.com",
            "a\tb@example.com",
            "a<b@example.com",
            "a,b@example.com",
            "a@b@example.com",
            "a@example.",
            "ǅ@example.com",
        ] {
            let owned = Email::parse_owned(raw.to_string()).ok();
            assert_eq!(
                owned.as_ref().map(|(e, _)| e),
                Email::parse(raw).as_ref(),
                "{raw:?}"
            );
            if let Some((email, spelling)) = owned {
                assert_eq!(
                    spelling.as_deref().unwrap_or(email.as_str()),
                    raw.trim(),
                    "{raw:?}"
                );
            }
        }
    }

    #[test]
    fn owned_names_are_made_safe_like_borrowed_ones() {
        let long = "x".repeat(60);
        for raw in [
            None,
            Some(""),
            Some(" "),
            Some("Ann"),
            Some("Ann Marie"),
            Some(" Ann"),
            Some("Ann "),
            Some("\tAnn"),
            Some("Jo+hn="),
            Some("a@b"),
            Some("Zoë"),
            Some("Zoë\u{85}"),
            Some("\u{a0}Zoë"),
            Some(long.as_str()),
        ] {
            assert_eq!(
                spot_safe_name_owned(raw.map(String::from), "Fallback"),
                spot_safe_name(raw, "Fallback"),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn names_lose_spot_forbidden_characters() {
        assert_eq!(spot_safe_name(Some("Ann+Marie=@"), "x"), "AnnMarie");
        assert_eq!(spot_safe_name(Some("+=@"), "user"), "user");
        assert_eq!(spot_safe_name(None, "user"), "user");
    }
}
