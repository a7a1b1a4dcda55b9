//! The Okta emulator's data: users, app grants (one row per grant), group memberships, the
//! lifecycle operations that change them, and the serde shapes of `AppUser` and `User`.
//!
//! This module owns Okta's object semantics (docs/api-facts.md, Okta). It must not know about
//! HTTP, headers, rate limits or faults, and it must stay cheap at scale: no per-page O(N)
//! work, pages are serialized from borrowed structs, never through `serde_json::Value` trees.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use serde::Serialize;
use serde_json::{Map, Value};

use super::logs::{SystemLog, Target};
use crate::common::{random_alnum, Clock, FixedWindows, Traffic};
use crate::fixture::OktaFixture;

/// Bucket names and their documented defaults (docs/api-facts.md "Okta rate limits", Workforce).
pub(crate) const BUCKET_APPS: &str = "/api/v1/apps/*";
pub(crate) const BUCKET_USERS: &str = "/api/v1/users";
pub(crate) const BUCKET_USER: &str = "/api/v1/users/{id}";
pub(crate) const BUCKET_LOGS: &str = "/api/v1/logs";

/// The app's label (an `AppInstance` target's `alternateId` and `displayName`).
pub(crate) const APP_LABEL: &str = "Spot";

pub(crate) fn default_limits() -> BTreeMap<String, u32> {
    [
        (BUCKET_APPS, 100),
        (BUCKET_USERS, 600),
        (BUCKET_USER, 2000),
        (BUCKET_LOGS, 120),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A user to add to the Okta org.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OktaUserSpec {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Defaults to the email.
    pub login: Option<String>,
    /// A `UserStatus`; default `ACTIVE`.
    pub status: Option<String>,
    /// Defaults to a fresh `00u…` id.
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) enum Scope {
    #[serde(rename = "USER")]
    User,
    #[serde(rename = "GROUP")]
    Group,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct User {
    pub id: String,
    pub status: String,
    pub created: String,
    pub activated: Option<String>,
    pub status_changed: Option<String>,
    pub last_login: Option<String>,
    pub last_updated: String,
    pub password_changed: Option<String>,
    pub login: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Groups that grant the app, with the app-user profile each grants. Kept across
    /// deactivation (Okta keeps group memberships).
    pub memberships: Vec<(String, Map<String, Value>)>,
    /// Sequence numbers of this user's grants.
    pub grants: Vec<u64>,
    /// Deleted: gone from every lookup and list (the slot stays so indices hold).
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Grant {
    pub user: usize,
    pub scope: Scope,
    pub group: Option<String>,
    pub status: String,
    pub profile: Map<String, Value>,
    pub created: String,
    pub last_updated: String,
    pub status_changed: String,
    pub user_name: String,
    /// Scripting only: this row's embedded user shows this email instead of the user's (two
    /// rows of one user id with conflicting emails, as a stale row or a replica could show).
    pub embedded_email: Option<String>,
}

pub(crate) struct OktaState {
    pub org_name: Option<String>,
    pub app_id: String,
    pub token: String,
    pub role_attribute: String,
    pub type_id: String,
    pub users: Vec<User>,
    by_id: HashMap<String, usize>,
    by_login: HashMap<String, usize>,
    /// Grants in list order; the key is the cursor position.
    pub grants: BTreeMap<u64, Grant>,
    next_seq: u64,
    pub groups: BTreeMap<String, String>,
    pub max_limit: Option<u32>,
    pub limits: BTreeMap<String, u32>,
    pub enforce: bool,
    pub windows: FixedWindows,
    pub traffic: Traffic,
    cursor_salt: u64,
    bulk_seq: u64,
    /// The org authorization server (OAuth clients, issued tokens, DPoP nonce).
    pub oauth: super::oauth::OAuthState,
    /// The System Log: an event per admin change (none for the fixture or bulk users).
    pub log: SystemLog,
}

impl OktaState {
    pub(crate) fn from_fixture(fx: &OktaFixture, clock: &Clock) -> Result<OktaState, String> {
        let mut limits = default_limits();
        for (k, v) in &fx.rate_limits {
            if !limits.contains_key(k) {
                return Err(format!(
                    "okta.rate_limits: unknown bucket {k:?} (known: {BUCKET_APPS}, {BUCKET_USERS}, {BUCKET_USER}, {BUCKET_LOGS})"
                ));
            }
            limits.insert(k.clone(), *v);
        }
        let mut st = OktaState {
            org_name: fx.org_name.clone(),
            app_id: fx.app_id.clone(),
            token: fx.token.clone(),
            role_attribute: fx.role_attribute.clone(),
            type_id: format!("oty{}", random_alnum(17)),
            users: Vec::new(),
            by_id: HashMap::new(),
            by_login: HashMap::new(),
            grants: BTreeMap::new(),
            next_seq: 1,
            groups: BTreeMap::new(),
            max_limit: fx.max_limit,
            limits,
            enforce: fx.enforce_rate_limits,
            windows: FixedWindows::default(),
            traffic: Traffic::default(),
            cursor_salt: rand::random::<u64>() | 1,
            bulk_seq: 0,
            oauth: super::oauth::OAuthState::new(&fx.oauth_clients, fx.token_lifetime_secs),
            log: SystemLog::default(),
        };
        // The fixture is the org's starting state, not a history.
        st.log.recording = false;
        for u in &fx.users {
            st.add_user(
                OktaUserSpec {
                    email: u.email.clone(),
                    first_name: u.first_name.clone(),
                    last_name: u.last_name.clone(),
                    login: u.login.clone(),
                    status: u.status.clone(),
                    id: u.id.clone(),
                },
                clock,
            )
            .map_err(|e| format!("okta.users: {e}"))?;
        }
        for a in &fx.assignments {
            let idx = st
                .resolve(&a.user)
                .ok_or_else(|| format!("okta.assignments: no user {:?}", a.user))?;
            match a.scope.to_ascii_uppercase().as_str() {
                "USER" => st.assign_direct(idx, a.role.as_deref(), None, clock),
                "GROUP" => {
                    let group = a.group.as_deref().unwrap_or("Everyone");
                    st.assign_group(idx, group, a.role.as_deref(), clock)
                }
                other => {
                    return Err(format!(
                        "okta.assignments: scope {other:?} is not USER or GROUP"
                    ))
                }
            };
        }
        st.log.recording = true;
        Ok(st)
    }

    /// A user by id, login or (first match) email; all but the id case-insensitively.
    pub(crate) fn resolve(&self, key: &str) -> Option<usize> {
        if let Some(&i) = self.by_id.get(key) {
            return Some(i);
        }
        let lower = key.to_lowercase();
        if let Some(&i) = self.by_login.get(&lower) {
            return Some(i);
        }
        self.users
            .iter()
            .position(|u| !u.deleted && u.email.to_lowercase() == lower)
    }

    pub(crate) fn user_by_id_or_login(&self, key: &str) -> Option<usize> {
        self.by_id
            .get(key)
            .or_else(|| self.by_login.get(&key.to_lowercase()))
            .copied()
    }

    pub(crate) fn user_by_id(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub(crate) fn add_user(&mut self, spec: OktaUserSpec, clock: &Clock) -> Result<String, String> {
        let now = clock.timestamp();
        self.insert_user(spec, &now)
    }

    fn insert_user(&mut self, spec: OktaUserSpec, now: &str) -> Result<String, String> {
        let login = spec.login.unwrap_or_else(|| spec.email.clone());
        let login_key = login.to_lowercase();
        if self.by_login.contains_key(&login_key) {
            return Err(format!(
                "login {login:?} already exists (logins are unique ignoring case)"
            ));
        }
        let id = match spec.id {
            Some(id) => {
                if self.by_id.contains_key(&id) {
                    return Err(format!("user id {id:?} already exists"));
                }
                id
            }
            None => loop {
                let id = format!("00u{}", random_alnum(17));
                if !self.by_id.contains_key(&id) {
                    break id;
                }
            },
        };
        let status = spec.status.unwrap_or_else(|| "ACTIVE".to_string());
        let activated = (status != "STAGED").then(|| now.to_string());
        let idx = self.users.len();
        self.users.push(User {
            id: id.clone(),
            status,
            created: now.to_string(),
            activated: activated.clone(),
            status_changed: activated,
            last_login: None,
            last_updated: now.to_string(),
            password_changed: Some(now.to_string()),
            login,
            email: spec.email,
            first_name: spec.first_name,
            last_name: spec.last_name,
            memberships: Vec::new(),
            grants: Vec::new(),
            deleted: false,
        });
        self.by_id.insert(id.clone(), idx);
        self.by_login.insert(login_key, idx);
        Ok(id)
    }

    // ----- System Log events -----

    fn t_user(&self, user: usize) -> Target {
        let u = &self.users[user];
        Target {
            id: u.id.clone(),
            kind: "User",
            alternate_id: u.login.clone(),
            display_name: format!("{} {}", u.first_name, u.last_name)
                .trim()
                .to_string(),
        }
    }

    /// The `AppUser` target: an `0ua…` id the Apps API never shows (derived from the user id).
    fn t_app_user(&self, user: usize) -> Target {
        let u = self.t_user(user);
        Target {
            id: format!("0ua{}", u.id.get(3..).unwrap_or_default()),
            kind: "AppUser",
            alternate_id: u.alternate_id,
            display_name: u.display_name,
        }
    }

    fn t_app(&self) -> Target {
        Target {
            id: self.app_id.clone(),
            kind: "AppInstance",
            alternate_id: APP_LABEL.to_string(),
            display_name: APP_LABEL.to_string(),
        }
    }

    fn t_group(&self, name: &str) -> Target {
        Target {
            id: self.groups.get(name).cloned().unwrap_or_default(),
            kind: "UserGroup",
            alternate_id: "unknown".to_string(),
            display_name: name.to_string(),
        }
    }

    /// An `application.user_membership.*` event: targets AppUser, AppInstance, User.
    fn log_app_user(&mut self, clock: &Clock, event_type: &str, user: usize, job: bool) {
        let targets = vec![self.t_app_user(user), self.t_app(), self.t_user(user)];
        let uri = format!("/api/v1/apps/{}/users/{}", self.app_id, self.users[user].id);
        self.log
            .record(clock.system_now(), event_type, targets, job, Some(uri));
    }

    /// A `user.*` event: target User.
    fn log_user(&mut self, clock: &Clock, event_type: &str, user: usize, uri_tail: &str) {
        let targets = vec![self.t_user(user)];
        let uri = format!("/api/v1/users/{}{uri_tail}", self.users[user].id);
        self.log
            .record(clock.system_now(), event_type, targets, false, Some(uri));
    }

    /// A `group.user_membership.*` event: targets User, UserGroup.
    fn log_membership(&mut self, clock: &Clock, event_type: &str, user: usize, group: &str) {
        let targets = vec![self.t_user(user), self.t_group(group)];
        let uri = format!(
            "/api/v1/groups/{}/users/{}",
            self.groups.get(group).cloned().unwrap_or_default(),
            self.users[user].id
        );
        self.log
            .record(clock.system_now(), event_type, targets, false, Some(uri));
    }

    /// A `group.application_assignment.*` event: targets UserGroup, AppInstance.
    fn log_group_app(&mut self, clock: &Clock, event_type: &str, group: &str) {
        let targets = vec![self.t_group(group), self.t_app()];
        self.log
            .record(clock.system_now(), event_type, targets, false, None);
    }

    fn role_profile(&self, role: Option<&str>) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(r) = role {
            m.insert(self.role_attribute.clone(), Value::String(r.to_string()));
        }
        m
    }

    fn push_grant(
        &mut self,
        user: usize,
        scope: Scope,
        group: Option<String>,
        profile: Map<String, Value>,
        user_name: Option<String>,
        now: &str,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let user_name = user_name.unwrap_or_else(|| self.users[user].login.clone());
        self.grants.insert(
            seq,
            Grant {
                user,
                scope,
                group,
                status: "ACTIVE".to_string(),
                profile,
                created: now.to_string(),
                last_updated: now.to_string(),
                status_changed: now.to_string(),
                user_name,
                embedded_email: None,
            },
        );
        self.users[user].grants.push(seq);
        seq
    }

    pub(crate) fn direct_grant(&self, user: usize) -> Option<u64> {
        self.users[user]
            .grants
            .iter()
            .copied()
            .find(|s| self.grants.get(s).is_some_and(|g| g.scope == Scope::User))
    }

    /// Adds (or updates the role of) the user's direct grant; returns its sequence number.
    pub(crate) fn assign_direct(
        &mut self,
        user: usize,
        role: Option<&str>,
        user_name: Option<String>,
        clock: &Clock,
    ) -> u64 {
        let now = clock.timestamp();
        if let Some(seq) = self.direct_grant(user) {
            let attr = self.role_attribute.clone();
            if let Some(g) = self.grants.get_mut(&seq) {
                match role {
                    Some(r) => {
                        g.profile.insert(attr, Value::String(r.to_string()));
                    }
                    None => {
                        g.profile.remove(&attr);
                    }
                }
                g.last_updated = now;
            }
            self.log_app_user(clock, "application.user_membership.update", user, false);
            return seq;
        }
        let profile = self.role_profile(role);
        let seq = self.push_grant(user, Scope::User, None, profile, user_name, &now);
        self.log_app_user(clock, "application.user_membership.add", user, false);
        seq
    }

    /// Assigns with an explicit app-user profile (the HTTP assign call).
    pub(crate) fn assign_direct_profile(
        &mut self,
        user: usize,
        profile: Option<Map<String, Value>>,
        user_name: Option<String>,
        clock: &Clock,
    ) -> u64 {
        let now = clock.timestamp();
        if let Some(seq) = self.direct_grant(user) {
            if let Some(g) = self.grants.get_mut(&seq) {
                if let Some(p) = profile {
                    for (k, v) in p {
                        g.profile.insert(k, v);
                    }
                }
                if let Some(n) = user_name {
                    g.user_name = n;
                }
                g.last_updated = now;
            }
            self.log_app_user(clock, "application.user_membership.update", user, false);
            return seq;
        }
        let seq = self.push_grant(
            user,
            Scope::User,
            None,
            profile.unwrap_or_default(),
            user_name,
            &now,
        );
        self.log_app_user(clock, "application.user_membership.add", user, false);
        seq
    }

    /// Makes the user a member of `group` (which is assigned to the app) and adds the GROUP
    /// grant unless the user is deactivated.
    pub(crate) fn assign_group(
        &mut self,
        user: usize,
        group: &str,
        role: Option<&str>,
        clock: &Clock,
    ) -> u64 {
        let profile = self.role_profile(role);
        self.assign_group_profile(user, group, profile, clock)
    }

    fn assign_group_profile(
        &mut self,
        user: usize,
        group: &str,
        profile: Map<String, Value>,
        clock: &Clock,
    ) -> u64 {
        let now = clock.timestamp();
        if !self.groups.contains_key(group) {
            self.groups
                .insert(group.to_string(), format!("00g{}", random_alnum(17)));
            self.log_group_app(clock, "group.application_assignment.add", group);
        }
        let u = &mut self.users[user];
        match u.memberships.iter_mut().find(|(g, _)| g == group) {
            Some(m) => m.1 = profile.clone(),
            None => {
                u.memberships.push((group.to_string(), profile.clone()));
                self.log_membership(clock, "group.user_membership.add", user, group);
            }
        }
        if self.users[user].status == "DEPROVISIONED" {
            return 0;
        }
        let existing = self.users[user].grants.iter().copied().find(|s| {
            self.grants
                .get(s)
                .is_some_and(|g| g.scope == Scope::Group && g.group.as_deref() == Some(group))
        });
        if let Some(seq) = existing {
            let changed = self.grants.get(&seq).is_some_and(|g| g.profile != profile);
            if let Some(g) = self.grants.get_mut(&seq) {
                g.profile = profile;
                g.last_updated = now;
            }
            if changed {
                self.log_app_user(clock, "application.user_membership.update", user, true);
            }
            return seq;
        }
        let seq = self.push_grant(
            user,
            Scope::Group,
            Some(group.to_string()),
            profile,
            None,
            &now,
        );
        // Okta grants the app to a group's member in a background job.
        self.log_app_user(clock, "application.user_membership.add", user, true);
        seq
    }

    /// Ends the user's membership of `group` (and the grant it gave). Returns whether the
    /// user was a member.
    pub(crate) fn remove_from_group(&mut self, user: usize, group: &str, clock: &Clock) -> bool {
        let before = self.users[user].memberships.len();
        self.users[user].memberships.retain(|(g, _)| g != group);
        if self.users[user].memberships.len() == before {
            return false;
        }
        self.log_membership(clock, "group.user_membership.remove", user, group);
        if let Some(seq) = self.grant_of(user, Some(group)) {
            self.remove_grant(seq);
            self.log_app_user(clock, "application.user_membership.remove", user, true);
        }
        true
    }

    /// Unassigns `group` from the app: every grant through it goes, and it no longer grants
    /// the app to its members. One `group.application_assignment.remove` event, no per-member
    /// events (docs/api-facts.md "Okta System Log"). Returns whether the group was assigned.
    pub(crate) fn unassign_group(&mut self, group: &str, clock: &Clock) -> bool {
        if !self.groups.contains_key(group) {
            return false;
        }
        self.log_group_app(clock, "group.application_assignment.remove", group);
        for user in 0..self.users.len() {
            if self.users[user].memberships.iter().any(|(g, _)| g == group) {
                self.users[user].memberships.retain(|(g, _)| g != group);
                if let Some(seq) = self.grant_of(user, Some(group)) {
                    self.remove_grant(seq);
                }
            }
        }
        self.groups.remove(group);
        true
    }

    fn remove_grant(&mut self, seq: u64) {
        if let Some(g) = self.grants.remove(&seq) {
            self.users[g.user].grants.retain(|s| *s != seq);
        }
    }

    /// Removes the direct grant (group grants stay), recording
    /// `application.user_membership.remove`. Returns whether there was one.
    pub(crate) fn unassign(&mut self, user: usize, clock: &Clock) -> bool {
        match self.direct_grant(user) {
            Some(seq) => {
                self.remove_grant(seq);
                self.log_app_user(clock, "application.user_membership.remove", user, false);
                true
            }
            None => false,
        }
    }

    fn set_user_status(&mut self, user: usize, status: &str, clock: &Clock) {
        let now = clock.timestamp();
        let u = &mut self.users[user];
        if u.status != status {
            u.status = status.to_string();
            u.status_changed = Some(now.clone());
            if status == "ACTIVE" && u.activated.is_none() {
                u.activated = Some(now.clone());
            }
        }
        u.last_updated = now;
    }

    /// DEPROVISIONED; every app grant removed, group memberships kept
    /// (docs/api-facts.md "Okta lifecycle").
    pub(crate) fn deactivate(&mut self, user: usize, clock: &Clock) {
        self.set_user_status(user, "DEPROVISIONED", clock);
        for seq in self.users[user].grants.clone() {
            self.remove_grant(seq);
        }
        self.log_user(
            clock,
            "user.lifecycle.deactivate",
            user,
            "/lifecycle/deactivate",
        );
    }

    /// ACTIVE; group-based grants come back (memberships survived), direct grants do not
    /// ("you need to reassign their apps"). The returning grants are new rows at the end of
    /// the list.
    ///
    /// The event is `user.lifecycle.activate` from `DEPROVISIONED` or `STAGED` (Okta's only
    /// operation from there), `user.lifecycle.reactivate` otherwise.
    pub(crate) fn reactivate(&mut self, user: usize, clock: &Clock) {
        let from = self.users[user].status.clone();
        self.set_user_status(user, "ACTIVE", clock);
        if from == "DEPROVISIONED" || from == "STAGED" {
            self.log_user(
                clock,
                "user.lifecycle.activate",
                user,
                "/lifecycle/activate",
            );
        } else {
            self.log_user(
                clock,
                "user.lifecycle.reactivate",
                user,
                "/lifecycle/reactivate",
            );
        }
        for (group, profile) in self.users[user].memberships.clone() {
            self.assign_group_profile(user, &group, profile, clock);
        }
    }

    /// Sets the raw status; grants are untouched (use `deactivate` for the lifecycle). No
    /// event: this is a knob for odd data.
    pub(crate) fn set_status(&mut self, user: usize, status: &str, clock: &Clock) {
        self.set_user_status(user, status, clock);
    }

    /// Deletes the user (deactivating it first unless `DEPROVISIONED`, as Okta's first
    /// delete call does): `user.lifecycle.delete.initiated` then `.delete.completed`. The user
    /// is gone from lookups and lists; its login may be reused.
    pub(crate) fn delete_user(&mut self, user: usize, clock: &Clock) {
        if self.users[user].status != "DEPROVISIONED" {
            self.deactivate(user, clock);
        }
        self.log_user(clock, "user.lifecycle.delete.initiated", user, "");
        self.users[user].memberships.clear();
        let (id, login) = (
            self.users[user].id.clone(),
            self.users[user].login.to_lowercase(),
        );
        self.by_id.remove(&id);
        self.by_login.remove(&login);
        self.users[user].deleted = true;
        self.log_user(clock, "user.lifecycle.delete.completed", user, "");
    }

    /// SUSPENDED, grants kept; `user.lifecycle.suspend`.
    pub(crate) fn suspend(&mut self, user: usize, clock: &Clock) {
        self.set_user_status(user, "SUSPENDED", clock);
        self.log_user(clock, "user.lifecycle.suspend", user, "/lifecycle/suspend");
    }

    /// ACTIVE again; `user.lifecycle.unsuspend`.
    pub(crate) fn unsuspend(&mut self, user: usize, clock: &Clock) {
        self.set_user_status(user, "ACTIVE", clock);
        self.log_user(
            clock,
            "user.lifecycle.unsuspend",
            user,
            "/lifecycle/unsuspend",
        );
    }

    pub(crate) fn set_app_user_status(&mut self, user: usize, status: &str, clock: &Clock) {
        let now = clock.timestamp();
        for seq in self.users[user].grants.clone() {
            if let Some(g) = self.grants.get_mut(&seq) {
                g.status = status.to_string();
                g.status_changed = now.clone();
                g.last_updated = now.clone();
            }
        }
    }

    /// Sets (or with `None` removes) one app-profile key on every grant of the user and on
    /// the profiles its groups grant.
    pub(crate) fn set_app_profile(
        &mut self,
        user: usize,
        key: &str,
        value: Option<Value>,
        clock: &Clock,
    ) {
        let now = clock.timestamp();
        for seq in self.users[user].grants.clone() {
            if let Some(g) = self.grants.get_mut(&seq) {
                match &value {
                    Some(v) => {
                        g.profile.insert(key.to_string(), v.clone());
                    }
                    None => {
                        g.profile.remove(key);
                    }
                }
                g.last_updated = now.clone();
            }
        }
        for (_, p) in &mut self.users[user].memberships {
            match &value {
                Some(v) => {
                    p.insert(key.to_string(), v.clone());
                }
                None => {
                    p.remove(key);
                }
            }
        }
        if !self.users[user].grants.is_empty() {
            self.log_app_user(clock, "application.user_membership.update", user, false);
        }
    }

    /// The row of the user's direct grant (`group: None`) or of its grant through `group`.
    pub(crate) fn grant_of(&self, user: usize, group: Option<&str>) -> Option<u64> {
        self.users[user].grants.iter().copied().find(|s| {
            self.grants.get(s).is_some_and(|g| match group {
                None => g.scope == Scope::User,
                Some(name) => g.scope == Scope::Group && g.group.as_deref() == Some(name),
            })
        })
    }

    /// Makes one row's embedded user show `email` (`None`: the user's own again). False when
    /// the user has no such row.
    pub(crate) fn set_row_email(
        &mut self,
        user: usize,
        group: Option<&str>,
        email: Option<&str>,
    ) -> bool {
        let Some(seq) = self.grant_of(user, group) else {
            return false;
        };
        if let Some(g) = self.grants.get_mut(&seq) {
            g.embedded_email = email.map(str::to_string);
        }
        true
    }

    pub(crate) fn set_email(&mut self, user: usize, email: &str, clock: &Clock) {
        let u = &mut self.users[user];
        u.email = email.to_string();
        u.last_updated = clock.timestamp();
        self.log_user(clock, "user.account.update_profile", user, "");
    }

    /// Changes the login (unique ignoring case); `user.account.update_profile`.
    pub(crate) fn set_login(
        &mut self,
        user: usize,
        login: &str,
        clock: &Clock,
    ) -> Result<(), String> {
        let key = login.to_lowercase();
        match self.by_login.get(&key) {
            Some(&i) if i != user => {
                return Err(format!(
                    "login {login:?} already exists (logins are unique ignoring case)"
                ))
            }
            _ => {}
        }
        let old = self.users[user].login.to_lowercase();
        self.by_login.remove(&old);
        self.by_login.insert(key, user);
        let u = &mut self.users[user];
        u.login = login.to_string();
        u.last_updated = clock.timestamp();
        self.log_user(clock, "user.account.update_profile", user, "");
        Ok(())
    }

    /// `n` ACTIVE users `user000000@domain`, … each directly assigned with role `viewer`.
    /// The i-th bulk user here has the same email as the i-th bulk user of the Spot emulator.
    pub(crate) fn bulk_add_assigned(&mut self, n: usize, domain: &str, clock: &Clock) {
        self.bulk_add(n, domain, true, clock)
    }

    /// `n` ACTIVE bulk users as in [`OktaState::bulk_add_assigned`] (sharing its numbering),
    /// directly assigned with role `viewer` only when `assigned`.
    pub(crate) fn bulk_add(&mut self, n: usize, domain: &str, assigned: bool, clock: &Clock) {
        let now = clock.timestamp();
        self.users.reserve(n);
        let profile = self.role_profile(Some("viewer"));
        for _ in 0..n {
            let i = self.bulk_seq;
            self.bulk_seq += 1;
            let spec = OktaUserSpec {
                email: format!("user{i:06}@{domain}"),
                first_name: "User".to_string(),
                last_name: format!("{i:06}"),
                ..OktaUserSpec::default()
            };
            // A clash (same bulk domain used by hand) just skips that user.
            if let Ok(id) = self.insert_user(spec, &now) {
                if !assigned {
                    continue;
                }
                let idx = self.by_id[&id];
                self.push_grant(idx, Scope::User, None, profile.clone(), None, &now);
            }
        }
    }

    // ----- cursors -----

    fn cursor_check(&self, kind: u64, pos: u64) -> u64 {
        (pos ^ kind)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(self.cursor_salt)
            >> 44
    }

    /// An opaque cursor for position `pos` in list `kind` (never equal to an object id).
    pub(crate) fn cursor(&self, kind: u64, pos: u64) -> String {
        format!("{pos:x}{:05x}", self.cursor_check(kind, pos))
    }

    pub(crate) fn parse_cursor(&self, kind: u64, s: &str) -> Option<u64> {
        if s.len() < 6 || !s.bytes().all(|b| b.is_ascii_hexdigit()) || s.len() > 21 {
            return None;
        }
        let (p, c) = s.split_at(s.len() - 5);
        let pos = u64::from_str_radix(p, 16).ok()?;
        let check = u64::from_str_radix(c, 16).ok()?;
        (check == self.cursor_check(kind, pos)).then_some(pos)
    }

    /// Grants after `after` (exclusive), in list order.
    pub(crate) fn grants_after(&self, after: Option<u64>) -> impl Iterator<Item = (&u64, &Grant)> {
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        self.grants.range((lower, Bound::Unbounded))
    }

    // ----- serialization shapes -----

    pub(crate) fn app_user_out<'a>(
        &'a self,
        base: &str,
        g: &'a Grant,
        expand: bool,
    ) -> AppUserOut<'a> {
        let u = &self.users[g.user];
        AppUserOut {
            id: &u.id,
            external_id: None,
            created: &g.created,
            last_updated: &g.last_updated,
            scope: &g.scope,
            status: &g.status,
            status_changed: &g.status_changed,
            password_changed: None,
            sync_state: "DISABLED",
            credentials: AppCredentials {
                user_name: &g.user_name,
            },
            profile: &g.profile,
            links: AppUserLinks {
                app: Href {
                    href: format!("{base}/api/v1/apps/{}", self.app_id),
                },
                user: Href {
                    href: format!("{base}/api/v1/users/{}", u.id),
                },
                group: g.group.as_ref().and_then(|name| {
                    self.groups.get(name).map(|gid| Href {
                        href: format!("{base}/api/v1/groups/{gid}"),
                    })
                }),
            },
            embedded: expand.then(|| Embedded {
                user: self.user_out_as(base, u, true, g.embedded_email.as_deref()),
            }),
        }
    }

    pub(crate) fn user_out<'a>(
        &'a self,
        base: &str,
        u: &'a User,
        lifecycle_links: bool,
    ) -> UserOut<'a> {
        self.user_out_as(base, u, lifecycle_links, None)
    }

    /// `user_out` with the email replaced (a row's `embedded_email`).
    fn user_out_as<'a>(
        &'a self,
        base: &str,
        u: &'a User,
        lifecycle_links: bool,
        email: Option<&'a str>,
    ) -> UserOut<'a> {
        let email = email.unwrap_or(&u.email);
        let self_href = format!("{base}/api/v1/users/{}", u.id);
        let life = |op: &str| {
            lifecycle_links.then(|| MethodHref {
                href: format!("{self_href}/lifecycle/{op}"),
                method: "POST",
            })
        };
        let active = u.status == "ACTIVE";
        UserOut {
            id: &u.id,
            status: &u.status,
            created: &u.created,
            activated: u.activated.as_deref(),
            status_changed: u.status_changed.as_deref(),
            last_login: u.last_login.as_deref(),
            last_updated: &u.last_updated,
            password_changed: u.password_changed.as_deref(),
            kind: TypeRef { id: &self.type_id },
            profile: UserProfileOut {
                first_name: &u.first_name,
                last_name: &u.last_name,
                mobile_phone: None,
                second_email: None,
                login: &u.login,
                email,
            },
            credentials: UserCredentials {
                password: EmptyObject {},
                emails: [CredentialEmail {
                    value: email,
                    status: "VERIFIED",
                    kind: "PRIMARY",
                }],
                provider: Provider {
                    kind: "OKTA",
                    name: "OKTA",
                },
            },
            links: UserLinks {
                suspend: if active { life("suspend") } else { None },
                deactivate: if u.status != "DEPROVISIONED" {
                    life("deactivate")
                } else {
                    None
                },
                reset_password: if active { life("reset_password") } else { None },
                activate: if u.status == "DEPROVISIONED" || u.status == "STAGED" {
                    life("activate")
                } else {
                    None
                },
                unsuspend: if u.status == "SUSPENDED" {
                    life("unsuspend")
                } else {
                    None
                },
                kind: lifecycle_links.then(|| Href {
                    href: format!("{base}/api/v1/meta/types/user/{}", self.type_id),
                }),
                self_: Href {
                    href: self_href.clone(),
                },
            },
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Href {
    pub href: String,
}

#[derive(Serialize)]
pub(crate) struct MethodHref {
    href: String,
    method: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppUserOut<'a> {
    id: &'a str,
    external_id: Option<&'a str>,
    created: &'a str,
    last_updated: &'a str,
    scope: &'a Scope,
    status: &'a str,
    status_changed: &'a str,
    password_changed: Option<&'a str>,
    sync_state: &'static str,
    credentials: AppCredentials<'a>,
    profile: &'a Map<String, Value>,
    #[serde(rename = "_links")]
    links: AppUserLinks,
    #[serde(rename = "_embedded", skip_serializing_if = "Option::is_none")]
    embedded: Option<Embedded<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AppCredentials<'a> {
    user_name: &'a str,
}

#[derive(Serialize)]
struct AppUserLinks {
    app: Href,
    user: Href,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Href>,
}

#[derive(Serialize)]
struct Embedded<'a> {
    user: UserOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserOut<'a> {
    id: &'a str,
    status: &'a str,
    created: &'a str,
    activated: Option<&'a str>,
    status_changed: Option<&'a str>,
    last_login: Option<&'a str>,
    last_updated: &'a str,
    password_changed: Option<&'a str>,
    #[serde(rename = "type")]
    kind: TypeRef<'a>,
    profile: UserProfileOut<'a>,
    credentials: UserCredentials<'a>,
    #[serde(rename = "_links")]
    links: UserLinks,
}

#[derive(Serialize)]
struct TypeRef<'a> {
    id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserProfileOut<'a> {
    first_name: &'a str,
    last_name: &'a str,
    mobile_phone: Option<&'a str>,
    second_email: Option<&'a str>,
    login: &'a str,
    email: &'a str,
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
struct UserCredentials<'a> {
    password: EmptyObject,
    emails: [CredentialEmail<'a>; 1],
    provider: Provider,
}

#[derive(Serialize)]
struct CredentialEmail<'a> {
    value: &'a str,
    status: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Provider {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserLinks {
    #[serde(skip_serializing_if = "Option::is_none")]
    suspend: Option<MethodHref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsuspend: Option<MethodHref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activate: Option<MethodHref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_password: Option<MethodHref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deactivate: Option<MethodHref>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<Href>,
    #[serde(rename = "self")]
    self_: Href,
}
