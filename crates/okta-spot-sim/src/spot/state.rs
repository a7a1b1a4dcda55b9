//! The Spot emulator's data: the organization's accounts, users (personal and programmatic),
//! built-in and custom policies, and the operations on them (create with validation, delete
//! with the last-admin rule, policy-mapping replacement).
//!
//! This module owns Spot's object semantics (docs/api-facts.md, Spot). It must not know about
//! HTTP, envelopes, rate limits or faults. Errors are `(code, message, field)` triples; the HTTP
//! layer wraps them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::quirks::SpotQuirks;
use crate::common::{random_hex, Clock, SlidingWindows, Traffic};
use crate::fixture::SpotFixture;

/// Default per-route limit: high enough not to bother ordinary tests.
pub(crate) const DEFAULT_RATE_LIMIT: u32 = 100_000;

/// A user of the Spot organization as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimSpotUser {
    pub user_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `admin`, `editor` or `viewer` for personal users; empty for programmatic users.
    pub role: String,
    /// `personal` or `programmatic`.
    pub kind: String,
    /// Direct policies: (policy id, account ids).
    pub policies: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct UserRec {
    pub user: SimSpotUser,
    pub legacy_id: i64,
    pub mfa: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Account {
    pub account_id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Policy {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub created_at: String,
}

/// A refusal: Spot's string error code, message and optional field.
#[derive(Debug, Clone)]
pub(crate) struct SpotRefusal {
    pub code: &'static str,
    pub message: String,
    pub field: Option<&'static str>,
}

fn refuse(
    code: &'static str,
    message: impl Into<String>,
    field: Option<&'static str>,
) -> SpotRefusal {
    SpotRefusal {
        code,
        message: message.into(),
        field,
    }
}

/// Built-in policies. Only `"3"` = Account Viewer is backed by the reference (Terraform's
/// `accountViewerPolicy`); `"2"` Account Editor and `"4"` Admin are this emulator's guesses
/// (docs/api-facts.md "Spot policy mapping": unconfirmed), so clients must resolve ids by name.
const BUILT_IN_POLICIES: &[(&str, &str, &str, &str)] = &[
    (
        "2",
        "Account Editor",
        "ACCOUNT",
        "Full access to the account",
    ),
    (
        "3",
        "Account Viewer",
        "ACCOUNT",
        "Read-only access to the account",
    ),
    ("4", "Admin", "ORGANIZATION", "Organization administrator"),
];
pub(crate) const ACCOUNT_VIEWER_ID: &str = "3";

pub(crate) struct SpotState {
    pub token: String,
    pub organization_id: u64,
    pub accounts: Vec<Account>,
    /// Users in list order.
    pub users: BTreeMap<u64, UserRec>,
    by_id: HashMap<String, u64>,
    by_email: HashMap<String, u64>,
    next_seq: u64,
    next_legacy_id: i64,
    pub policies: Vec<Policy>,
    pub limits: HashMap<String, u32>,
    pub windows: SlidingWindows,
    pub traffic: Traffic,
    /// The list/delete knobs (held here so one lock covers them; used by `http`, not here).
    pub quirks: SpotQuirks,
    bulk_seq: u64,
    /// Every password received on create, so secrecy tests can look for them in the client's
    /// output. (Real Spot keeps a hash; the emulator keeps them only in memory.)
    pub received_passwords: Vec<String>,
}

/// Plausible address: one `@`, non-empty local part, dotted domain, no spaces.
pub(crate) fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|l| !l.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Console password rule: at least 8 characters, 1 number, 1 upper, 1 lower, 1 special.
pub(crate) fn strong_password(p: &str) -> bool {
    p.chars().count() >= 8
        && p.chars().any(|c| c.is_ascii_digit())
        && p.chars().any(|c| c.is_uppercase())
        && p.chars().any(|c| c.is_lowercase())
        && p.chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
}

impl SpotState {
    pub(crate) fn from_fixture(fx: &SpotFixture, clock: &Clock) -> Result<SpotState, String> {
        let now = clock.timestamp();
        let mut st = SpotState {
            received_passwords: Vec::new(),
            token: fx.token.clone(),
            organization_id: fx.organization_id,
            accounts: fx
                .accounts
                .iter()
                .map(|a| Account {
                    account_id: a.account_id.clone(),
                    name: a.name.clone(),
                    created_at: now.clone(),
                })
                .collect(),
            users: BTreeMap::new(),
            by_id: HashMap::new(),
            by_email: HashMap::new(),
            next_seq: 1,
            next_legacy_id: 9000,
            policies: BUILT_IN_POLICIES
                .iter()
                .map(|(id, name, kind, desc)| Policy {
                    id: id.to_string(),
                    name: name.to_string(),
                    description: desc.to_string(),
                    kind: kind.to_string(),
                    created_at: now.clone(),
                })
                .collect(),
            limits: HashMap::new(),
            windows: SlidingWindows::default(),
            traffic: Traffic::default(),
            quirks: SpotQuirks::default(),
            bulk_seq: 0,
        };
        for p in &fx.policies {
            st.policies.push(Policy {
                id: p
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("pol-{}", random_hex(8))),
                name: p.name.clone(),
                description: p.description.clone().unwrap_or_default(),
                kind: p.kind.clone().unwrap_or_else(|| "ACCOUNT".to_string()),
                created_at: now.clone(),
            });
        }
        for (k, v) in &fx.rate_limits {
            st.limits.insert(k.clone(), *v);
        }
        for u in &fx.users {
            if u.kind.as_deref() == Some("programmatic") {
                st.add_programmatic(&u.first_name, u.user_id.clone())
                    .map_err(|e| format!("spot.users: {e}"))?;
                continue;
            }
            st.add_personal(
                u.user_id.clone(),
                &u.email,
                &u.first_name,
                &u.last_name,
                &u.role,
            )
            .map_err(|e| format!("spot.users: {e}"))?;
        }
        for p in &fx.programmatic {
            st.add_programmatic(&p.name, p.user_id.clone())
                .map_err(|e| format!("spot.programmatic: {e}"))?;
        }
        Ok(st)
    }

    pub(crate) fn limit_of(&self, route: &str) -> u32 {
        self.limits
            .get(route)
            .copied()
            .unwrap_or(DEFAULT_RATE_LIMIT)
    }

    pub(crate) fn get(&self, user_id: &str) -> Option<&UserRec> {
        self.by_id.get(user_id).and_then(|s| self.users.get(s))
    }

    pub(crate) fn seq_by_email(&self, email: &str) -> Option<u64> {
        self.by_email.get(&email.to_lowercase()).copied()
    }

    fn fresh_id(&self, prefix: &str) -> String {
        loop {
            let id = format!("{prefix}{}", random_hex(8));
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    fn insert(&mut self, rec: UserRec) -> String {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = rec.user.user_id.clone();
        self.by_id.insert(id.clone(), seq);
        if rec.user.kind == "personal" {
            self.by_email.insert(rec.user.email.to_lowercase(), seq);
        }
        self.users.insert(seq, rec);
        id
    }

    /// Adds a personal user without the API's validation (fixtures and scripting). A viewer
    /// is linked to the default account, as `POST /setup/user` does.
    pub(crate) fn add_personal(
        &mut self,
        user_id: Option<String>,
        email: &str,
        first: &str,
        last: &str,
        role: &str,
    ) -> Result<String, String> {
        if self.seq_by_email(email).is_some() {
            return Err(format!("a user with email {email:?} already exists"));
        }
        let user_id = match user_id {
            Some(id) if self.by_id.contains_key(&id) => {
                return Err(format!("user id {id:?} already exists"))
            }
            Some(id) => id,
            None => self.fresh_id("u-"),
        };
        let policies = self.initial_policies(role);
        let legacy_id = self.next_legacy_id;
        self.next_legacy_id += 1;
        Ok(self.insert(UserRec {
            user: SimSpotUser {
                user_id,
                email: email.to_string(),
                first_name: first.to_string(),
                last_name: last.to_string(),
                role: role.to_string(),
                kind: "personal".to_string(),
                policies,
            },
            legacy_id,
            mfa: false,
        }))
    }

    /// "If the role is a viewer, the user is also linked to the default account" (OAS create
    /// user). Recorded as the Account Viewer policy on the first (default) account.
    fn initial_policies(&self, role: &str) -> Vec<(String, Vec<String>)> {
        match (role, self.accounts.first()) {
            ("viewer", Some(a)) => {
                vec![(ACCOUNT_VIEWER_ID.to_string(), vec![a.account_id.clone()])]
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn add_programmatic(
        &mut self,
        name: &str,
        user_id: Option<String>,
    ) -> Result<String, String> {
        let user_id = match user_id {
            Some(id) if self.by_id.contains_key(&id) => {
                return Err(format!("user id {id:?} already exists"))
            }
            Some(id) => id,
            None => self.fresh_id("pu-"),
        };
        let legacy_id = self.next_legacy_id;
        self.next_legacy_id += 1;
        Ok(self.insert(UserRec {
            user: SimSpotUser {
                user_id,
                email: String::new(),
                first_name: name.to_string(),
                last_name: String::new(),
                role: String::new(),
                kind: "programmatic".to_string(),
                policies: Vec::new(),
            },
            legacy_id,
            mfa: false,
        }))
    }

    /// `POST /setup/user` validation and creation. Error codes are this emulator's choice:
    /// no source gives a verbatim body for any of them (docs/api-facts.md "Spot create user").
    pub(crate) fn create_user(
        &mut self,
        first: Option<&str>,
        last: Option<&str>,
        email: Option<&str>,
        password: Option<&str>,
        role: Option<&str>,
    ) -> Result<&UserRec, SpotRefusal> {
        for (field, v) in [("firstName", first), ("lastName", last)] {
            let v = v.unwrap_or("");
            if v.trim().is_empty() {
                return Err(refuse(
                    "INVALID_NAME",
                    format!("{field} is required"),
                    Some(field),
                ));
            }
            if v.contains(['+', '=', '@']) {
                return Err(refuse(
                    "INVALID_NAME",
                    format!("{field} cannot include these characters: + = @"),
                    Some(field),
                ));
            }
        }
        let email = email.unwrap_or("");
        if !valid_email(email) {
            return Err(refuse(
                "INVALID_EMAIL",
                "email is not a valid email address",
                Some("email"),
            ));
        }
        if !strong_password(password.unwrap_or("")) {
            return Err(refuse(
                "INVALID_PASSWORD",
                "password must be at least 8 characters long and contain at least 1 number, 1 uppercase letter, 1 lowercase letter and 1 special character",
                Some("password"),
            ));
        }
        let role = role.unwrap_or("");
        if !matches!(role, "viewer" | "admin" | "editor") {
            return Err(refuse(
                "INVALID_ROLE",
                format!("role {role:?} is not one of viewer, admin, editor"),
                Some("role"),
            ));
        }
        // Unconfirmed shape: no verbatim user-already-exists body is published.
        if self.seq_by_email(email).is_some() {
            return Err(refuse(
                "USER_ALREADY_EXISTS",
                format!("User with email {email} already exists in organization"),
                Some("email"),
            ));
        }
        let id = self
            .add_personal(None, email, first.unwrap_or(""), last.unwrap_or(""), role)
            .map_err(|e| refuse("USER_ALREADY_EXISTS", e, Some("email")))?;
        self.get(&id)
            .ok_or_else(|| refuse("INTERNAL_ERROR", "created user vanished", None))
    }

    /// `DELETE /setup/user/{userId}`. Unknown user → `USER_DOESNT_EXIST` (400; unconfirmed:
    /// the reference documents only 400 for user endpoints). The only organization admin
    /// cannot be removed → `CANT_DELETE_LAST_ADMIN` (code unconfirmed).
    pub(crate) fn delete_user(&mut self, user_id: &str) -> Result<(), SpotRefusal> {
        self.check_delete(user_id)?;
        self.remove(user_id);
        Ok(())
    }

    /// The refusals of `DELETE /setup/user/{userId}` without deleting (see `delete_user`).
    pub(crate) fn check_delete(&self, user_id: &str) -> Result<(), SpotRefusal> {
        let rec = self
            .get(user_id)
            .ok_or_else(|| user_doesnt_exist(user_id))?;
        if rec.user.kind == "personal" && rec.user.role == "admin" {
            let admins = self
                .users
                .values()
                .filter(|r| r.user.kind == "personal" && r.user.role == "admin")
                .count();
            if admins <= 1 {
                return Err(refuse(
                    "CANT_DELETE_LAST_ADMIN",
                    "You cannot remove a user from an organization if that user is the only Organization Admin",
                    None,
                ));
            }
        }
        Ok(())
    }

    /// Out-of-band removal (no rules).
    pub(crate) fn remove(&mut self, user_id: &str) -> bool {
        let Some(seq) = self.by_id.remove(user_id) else {
            return false;
        };
        if let Some(rec) = self.users.remove(&seq) {
            if rec.user.kind == "personal" {
                self.by_email.remove(&rec.user.email.to_lowercase());
            }
        }
        true
    }

    /// `PUT /setup/user/{userId}/policyMapping`: replaces the user's direct policies.
    pub(crate) fn set_policies(
        &mut self,
        user_id: &str,
        policies: Vec<(String, Vec<String>)>,
    ) -> Result<(), SpotRefusal> {
        let seq = *self
            .by_id
            .get(user_id)
            .ok_or_else(|| user_doesnt_exist(user_id))?;
        for (pid, accounts) in &policies {
            if !self.policies.iter().any(|p| &p.id == pid) {
                return Err(refuse(
                    "POLICY_DOESNT_EXIST",
                    format!("Policy {pid} does not exist in organization"),
                    Some("policyId"),
                ));
            }
            for a in accounts {
                if a != "*" && !self.accounts.iter().any(|x| &x.account_id == a) {
                    return Err(refuse(
                        "ACCOUNT_DOESNT_EXIST",
                        format!("Account {a} does not exist in organization"),
                        Some("accountIds"),
                    ));
                }
            }
        }
        if let Some(rec) = self.users.get_mut(&seq) {
            rec.user.policies = policies;
        }
        Ok(())
    }

    pub(crate) fn policy(&self, id: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    /// `n` personal viewers `userNNNNNN@domain` with Account Viewer on every account; the
    /// i-th matches the i-th bulk user of the Okta emulator.
    pub(crate) fn bulk_add(&mut self, n: usize, domain: &str) {
        let all: Vec<String> = self.accounts.iter().map(|a| a.account_id.clone()).collect();
        for _ in 0..n {
            let i = self.bulk_seq;
            self.bulk_seq += 1;
            let email = format!("user{i:06}@{domain}");
            if let Ok(id) = self.add_personal(None, &email, "User", &format!("{i:06}"), "viewer") {
                if let Some(seq) = self.by_id.get(&id).copied() {
                    if let Some(rec) = self.users.get_mut(&seq) {
                        rec.user.policies = vec![(ACCOUNT_VIEWER_ID.to_string(), all.clone())];
                    }
                }
            }
        }
    }
}

pub(crate) fn user_doesnt_exist(user_id: &str) -> SpotRefusal {
    refuse(
        "USER_DOESNT_EXIST",
        format!("User {user_id} does not exist in organization"),
        None,
    )
}
