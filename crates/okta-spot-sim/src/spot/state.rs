//! The Spot emulator's data: the organization's accounts, users (personal and programmatic),
//! built-in and custom policies, and the operations on them (create with validation, delete
//! with the last-admin rule, policy-mapping replacement, `"*"` = every account present and
//! future), plus the console's hand edits (grants, removals, role changes) and accounts being
//! added or removed.
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
/// The `accountIds` entry that means "all current accounts and any accounts created in the
/// future" (OAS `updatePolicyMapping.yaml`).
pub(crate) const ALL_ACCOUNTS: &str = "*";

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

    /// The refusals of a policy mapping (the PUT's and a hand edit's): every policy must
    /// exist in the organization (`POLICY_DOESNT_EXIST`) and every account id must be one of
    /// its accounts or `"*"` (`ACCOUNT_DOESNT_EXIST`). Both codes are this emulator's choice:
    /// the reference documents only `400 "Bad Request"` for the PUT.
    fn check_grants(&self, policies: &[(String, Vec<String>)]) -> Result<(), SpotRefusal> {
        for (pid, accounts) in policies {
            if !self.policies.iter().any(|p| &p.id == pid) {
                return Err(refuse(
                    "POLICY_DOESNT_EXIST",
                    format!("Policy {pid} does not exist in organization"),
                    Some("policyId"),
                ));
            }
            for a in accounts {
                if a != ALL_ACCOUNTS && !self.has_account(a) {
                    return Err(refuse(
                        "ACCOUNT_DOESNT_EXIST",
                        format!("Account {a} does not exist in organization"),
                        Some("accountIds"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn has_account(&self, account_id: &str) -> bool {
        self.accounts.iter().any(|a| a.account_id == account_id)
    }

    fn seq_of(&self, user_id: &str) -> Result<u64, SpotRefusal> {
        self.by_id
            .get(user_id)
            .copied()
            .ok_or_else(|| user_doesnt_exist(user_id))
    }

    /// `PUT /setup/user/{userId}/policyMapping`: replaces the user's direct policies with the
    /// body's, stored as sent (a `"*"` stays `"*"` and so covers accounts added later).
    pub(crate) fn set_policies(
        &mut self,
        user_id: &str,
        policies: Vec<(String, Vec<String>)>,
    ) -> Result<(), SpotRefusal> {
        let seq = self.seq_of(user_id)?;
        self.check_grants(&policies)?;
        if let Some(rec) = self.users.get_mut(&seq) {
            rec.user.policies = policies;
        }
        Ok(())
    }

    /// The account ids a stored mapping covers now: every current account when it holds
    /// `"*"`, otherwise the ids as stored.
    pub(crate) fn effective_accounts(&self, stored: &[String]) -> Vec<String> {
        if stored.iter().any(|a| a == ALL_ACCOUNTS) {
            self.accounts.iter().map(|a| a.account_id.clone()).collect()
        } else {
            stored.to_vec()
        }
    }

    // ----- hand edits (the console's, through `/__admin` and `SpotSim`) -----

    /// A grant made by hand: adds `accounts` to the user's mapping of `policy_id` (a new
    /// mapping when it has none); what the user has is kept. Validated like the PUT.
    pub(crate) fn grant(
        &mut self,
        user_id: &str,
        policy_id: &str,
        accounts: &[String],
    ) -> Result<(), SpotRefusal> {
        let seq = self.seq_of(user_id)?;
        self.check_grants(&[(policy_id.to_string(), accounts.to_vec())])?;
        let Some(rec) = self.users.get_mut(&seq) else {
            return Err(user_doesnt_exist(user_id));
        };
        match rec.user.policies.iter_mut().find(|(p, _)| p == policy_id) {
            Some((_, have)) => {
                for a in accounts {
                    if !have.contains(a) {
                        have.push(a.clone());
                    }
                }
            }
            None => rec
                .user
                .policies
                .push((policy_id.to_string(), accounts.to_vec())),
        }
        Ok(())
    }

    /// A removal made by hand: the user's whole mapping of `policy_id` (`account: None`), or
    /// one account of it. Removing one account from a `"*"` mapping leaves the other current
    /// accounts, explicitly (the emulator's choice; the console's behaviour is unknown); a
    /// mapping left with no account is dropped. `Ok(false)` when there was nothing to remove.
    pub(crate) fn revoke(
        &mut self,
        user_id: &str,
        policy_id: &str,
        account: Option<&str>,
    ) -> Result<bool, SpotRefusal> {
        let seq = self.seq_of(user_id)?;
        let all: Vec<String> = self.accounts.iter().map(|a| a.account_id.clone()).collect();
        let Some(rec) = self.users.get_mut(&seq) else {
            return Err(user_doesnt_exist(user_id));
        };
        let Some(i) = rec.user.policies.iter().position(|(p, _)| p == policy_id) else {
            return Ok(false);
        };
        let Some(account) = account else {
            rec.user.policies.remove(i);
            return Ok(true);
        };
        let have = &mut rec.user.policies[i].1;
        if have.iter().any(|a| a == ALL_ACCOUNTS) {
            if !all.iter().any(|a| a == account) {
                return Ok(false);
            }
            *have = all.into_iter().filter(|a| a != account).collect();
        } else {
            let before = have.len();
            have.retain(|a| a != account);
            if have.len() == before {
                return Ok(false);
            }
        }
        if have.is_empty() {
            rec.user.policies.remove(i);
        }
        Ok(true)
    }

    /// An organization role changed by hand (policies are left as they are). Personal users
    /// only; the role must be one `POST /setup/user` accepts.
    pub(crate) fn set_role(&mut self, user_id: &str, role: &str) -> Result<(), String> {
        if !matches!(role, "viewer" | "admin" | "editor") {
            return Err(format!("role {role:?} is not one of viewer, admin, editor"));
        }
        let seq = self
            .by_id
            .get(user_id)
            .copied()
            .ok_or_else(|| format!("no user {user_id:?}"))?;
        let Some(rec) = self.users.get_mut(&seq) else {
            return Err(format!("no user {user_id:?}"));
        };
        if rec.user.kind != "personal" {
            return Err(format!(
                "{user_id} is a programmatic user: it has no organization role"
            ));
        }
        rec.user.role = role.to_string();
        Ok(())
    }

    // ----- accounts (the organization onboarding or dropping cloud accounts) -----

    /// Adds an account (a fresh `act-…` id unless one is given); returns its id.
    pub(crate) fn add_account(
        &mut self,
        account_id: Option<String>,
        name: &str,
        created_at: String,
    ) -> Result<String, String> {
        let account_id = match account_id {
            Some(id) if id.trim().is_empty() || id.contains(['/', '*']) => {
                return Err(format!("account id {id:?} is not usable"))
            }
            Some(id) if self.has_account(&id) => {
                return Err(format!("account {id:?} already exists"))
            }
            Some(id) => id,
            None => loop {
                let id = format!("act-{}", random_hex(8));
                if !self.has_account(&id) {
                    break id;
                }
            },
        };
        self.accounts.push(Account {
            account_id: account_id.clone(),
            name: name.to_string(),
            created_at,
        });
        Ok(account_id)
    }

    /// Removes an account; it leaves every explicit mapping that named it (a mapping left
    /// with no account is dropped; `"*"` mappings are unchanged and simply cover one account
    /// fewer). The organization keeps at least one account (the default one).
    pub(crate) fn remove_account(&mut self, account_id: &str) -> Result<(), String> {
        let Some(i) = self
            .accounts
            .iter()
            .position(|a| a.account_id == account_id)
        else {
            return Err(format!("no account {account_id:?}"));
        };
        if self.accounts.len() == 1 {
            return Err(format!(
                "{account_id} is the organization's only account; add another first"
            ));
        }
        self.accounts.remove(i);
        for rec in self.users.values_mut() {
            rec.user.policies.retain_mut(|(_, have)| {
                let named = have.iter().any(|a| a == account_id);
                have.retain(|a| a != account_id);
                !(named && have.is_empty())
            });
        }
        Ok(())
    }

    pub(crate) fn policy(&self, id: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    /// `n` personal viewers `userNNNNNN@domain` with Account Viewer on every account; the
    /// i-th matches the i-th bulk user of the Okta emulator.
    /// Adds `n` viewers mapped as a client in line with the access model leaves them: the
    /// Account Viewer policy on every account (`"*"`).
    pub(crate) fn bulk_add(&mut self, n: usize, domain: &str) {
        let all = vec!["*".to_string()];
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
