//! The Okta Management API emulator: `OktaSim`, a cheap clonable handle over the shared state,
//! with the in-process scripting API (the same operations the `/__admin/` HTTP API offers).
//!
//! This module owns the handle and the scripting surface only. Object semantics live in
//! `state`, HTTP in `http`, the admin API in `admin`. Scripting calls are for tests and the
//! demo: they panic on an unknown user (a bug in the script), whereas HTTP input never panics.

mod admin;
mod http;
mod logs;
mod oauth;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;

pub use logs::SimLogEvent;
pub(crate) use state::OktaState;
pub use state::OktaUserSpec;

use super::common::{Clock, Fault};
use super::fixture::{OAuthClientFixture, OktaFixture};

struct Inner {
    state: Mutex<OktaState>,
    clock: Clock,
    addr: SocketAddr,
}

/// Handle on a running (or runnable) Okta emulator. Clones share the same state.
#[derive(Clone)]
pub struct OktaSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OktaSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaSim").field("url", &self.url()).finish()
    }
}

impl OktaSim {
    pub(crate) fn new(fx: &OktaFixture, clock: Clock, addr: SocketAddr) -> Result<OktaSim, String> {
        let state = OktaState::from_fixture(fx, &clock)?;
        Ok(OktaSim {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                clock,
                addr,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, OktaState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub(crate) fn router(&self) -> Router {
        Router::new().fallback(http::entry).with_state(self.clone())
    }

    fn with_user<T>(&self, user: &str, f: impl FnOnce(&mut OktaState, usize, &Clock) -> T) -> T {
        let mut st = self.lock();
        let idx = st
            .resolve(user)
            .unwrap_or_else(|| panic!("okta emulator: no user {user:?}"));
        f(&mut st, idx, self.clock())
    }

    /// `http://127.0.0.1:PORT`, no trailing slash (an unspecified bind address is shown as
    /// loopback).
    pub fn url(&self) -> String {
        let a = self.inner.addr;
        if a.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", a.port())
        } else {
            format!("http://{a}")
        }
    }

    /// The SSWS token it accepts.
    pub fn token(&self) -> String {
        self.lock().token.clone()
    }

    /// Registers an OAuth 2.0 service app (replacing one with the same client id).
    pub fn add_oauth_client(&self, client: OAuthClientFixture) {
        self.lock().oauth.add_client(client)
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: std::time::Duration) {
        self.lock().oauth.token_lifetime = lifetime.max(std::time::Duration::from_secs(1));
    }

    /// Moves the authorization server's clock ahead of the emulator's (and the client's): a
    /// client assertion that is fresh for the client then looks expired, as with a client
    /// whose clock is behind.
    pub fn set_oauth_clock_offset(&self, offset: std::time::Duration) {
        self.lock().oauth.clock_offset = offset;
    }

    /// A new DPoP nonce: the next token request gets `use_dpop_nonce` again.
    pub fn rotate_dpop_nonce(&self) {
        self.lock().oauth.rotate_nonce()
    }

    /// Invalidates every issued access token (API calls then get `invalid_token`).
    pub fn revoke_access_tokens(&self) {
        self.lock().oauth.revoke_all()
    }

    /// Every access token issued so far and not revoked (for tests that check no output
    /// leaks one).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.lock().oauth.issued_tokens()
    }

    /// The token endpoint's route key, for [`OktaSim::request_count`].
    pub const TOKEN_ROUTE: &'static str = oauth::ROUTE_TOKEN;

    pub fn app_id(&self) -> String {
        self.lock().app_id.clone()
    }

    /// The app-user profile attribute that holds the role.
    pub fn role_attribute(&self) -> String {
        self.lock().role_attribute.clone()
    }

    /// Adds a user (not assigned); returns its `00u…` id.
    ///
    /// # Panics
    /// When the login or id already exists.
    pub fn add_user(&self, u: OktaUserSpec) -> String {
        let clock = *self.clock();
        self.lock()
            .add_user(u, &clock)
            .unwrap_or_else(|e| panic!("okta emulator: {e}"))
    }

    /// Direct (`USER`) assignment; `role` goes to the app-user profile's role attribute.
    /// Assigning again updates the role. `user_id` may also be a login or an email.
    pub fn assign(&self, user_id: &str, role: Option<&str>) {
        self.with_user(user_id, |st, i, c| {
            st.assign_direct(i, role, None, c);
        })
    }

    /// Adds a `GROUP`-scoped grant through membership of `group`.
    pub fn assign_via_group(&self, user_id: &str, group: &str, role: Option<&str>) {
        self.with_user(user_id, |st, i, c| {
            st.assign_group(i, group, role, c);
        })
    }

    /// Removes the direct grant (group grants stay).
    pub fn unassign(&self, user_id: &str) {
        self.with_user(user_id, |st, i, c| {
            st.unassign(i, c);
        })
    }

    /// Status DEPROVISIONED, every app grant removed (group memberships kept).
    pub fn deactivate(&self, user_id: &str) {
        self.with_user(user_id, |st, i, c| st.deactivate(i, c))
    }

    /// Status ACTIVE; group-based grants come back, direct grants do not.
    pub fn reactivate(&self, user_id: &str) {
        self.with_user(user_id, |st, i, c| st.reactivate(i, c))
    }

    /// Status SUSPENDED; grants retained.
    pub fn suspend(&self, user_id: &str) {
        self.with_user(user_id, |st, i, c| st.suspend(i, c))
    }

    pub fn unsuspend(&self, user_id: &str) {
        self.with_user(user_id, |st, i, c| st.unsuspend(i, c))
    }

    /// Activation, Okta's operation for a `DEPROVISIONED` or `STAGED` user: the same effect
    /// as [`OktaSim::reactivate`] (which records `user.lifecycle.activate` from those
    /// statuses too).
    pub fn activate(&self, user_id: &str) {
        self.with_user(user_id, |st, i, c| st.reactivate(i, c))
    }

    /// Deletes the user (deactivated first unless `DEPROVISIONED`): it is gone from every
    /// lookup, list and `GET /api/v1/users/{id}` (404).
    pub fn delete_user(&self, user_id: &str) {
        self.with_user(user_id, |st, i, c| st.delete_user(i, c))
    }

    /// Changes the login (unique ignoring case).
    ///
    /// # Panics
    /// When another user has that login.
    pub fn set_login(&self, user_id: &str, login: &str) {
        self.with_user(user_id, |st, i, c| {
            st.set_login(i, login, c)
                .unwrap_or_else(|e| panic!("okta emulator: {e}"))
        })
    }

    /// Ends the user's membership of `group` and the grant it gave; false when not a member.
    pub fn remove_from_group(&self, user_id: &str, group: &str) -> bool {
        self.with_user(user_id, |st, i, c| st.remove_from_group(i, group, c))
    }

    /// Unassigns `group` from the app (its grants go); false when it was not assigned.
    pub fn unassign_group(&self, group: &str) -> bool {
        let clock = *self.clock();
        self.lock().unassign_group(group, &clock)
    }

    /// Moves the emulators' clock ahead (both emulators share it): `published` times, log
    /// visibility and retention, rate-limit windows, `Date` headers. Tests use this (or
    /// tokio's paused clock) instead of sleeping.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.clock().advance(by)
    }

    // ----- System Log knobs -----

    /// Ingestion delay: each event becomes visible to `GET /api/v1/logs` a delay after its
    /// `published`, drawn uniformly from `min..=max` (so events can become visible out of
    /// order). Applies to events recorded from now on. Default: none.
    pub fn set_log_ingestion_delay(&self, min: std::time::Duration, max: std::time::Duration) {
        self.lock().log.delay = (min, max.max(min));
    }

    /// When on, every event recorded from now on is delivered twice: a copy with the same
    /// `uuid` is persisted 1 s after the original.
    pub fn set_log_duplicates(&self, on: bool) {
        self.lock().log.duplicate = on;
    }

    /// Drops (`true`) or records again (`false`) events of one type from now on.
    pub fn drop_log_event_type(&self, event_type: &str, drop: bool) {
        let mut st = self.lock();
        if drop {
            st.log.dropped.insert(event_type.to_string());
        } else {
            st.log.dropped.remove(event_type);
        }
    }

    /// Events published longer ago than this are gone (default 90 days, Okta's).
    pub fn set_log_retention(&self, retention: std::time::Duration) {
        self.lock().log.retention = retention;
    }

    /// `GET /api/v1/logs` answers `403 E0000006`, as for a token whose admin may not read
    /// the System Log.
    pub fn set_logs_forbidden(&self, forbidden: bool) {
        self.lock().log.forbidden = forbidden;
    }

    /// Every retained event, visible yet or not, in persistence order.
    pub fn log_events(&self) -> Vec<SimLogEvent> {
        self.lock().log.all()
    }

    /// Sets the raw user status (any string, so invalid statuses can be tested); grants are
    /// untouched.
    pub fn set_status(&self, user_id: &str, status: &str) {
        self.with_user(user_id, |st, i, c| st.set_status(i, status, c))
    }

    /// Sets the app-user (assignment) status on every grant of the user.
    pub fn set_app_user_status(&self, user_id: &str, status: &str) {
        self.with_user(user_id, |st, i, c| st.set_app_user_status(i, status, c))
    }

    /// Sets (or with `None` removes) the role attribute on every grant of the user.
    pub fn set_role(&self, user_id: &str, role: Option<&str>) {
        self.with_user(user_id, |st, i, c| {
            let attr = st.role_attribute.clone();
            let v = role.map(|r| serde_json::Value::String(r.to_string()));
            st.set_app_profile(i, &attr, v, c)
        })
    }

    /// Sets any app-user profile value on every grant (e.g. `role = 42` for bad-input tests).
    pub fn set_app_profile_value(&self, user_id: &str, key: &str, value: serde_json::Value) {
        self.with_user(user_id, |st, i, c| {
            st.set_app_profile(i, key, Some(value), c)
        })
    }

    /// Changes `profile.email` (the login stays).
    pub fn set_email(&self, user_id: &str, email: &str) {
        self.with_user(user_id, |st, i, c| st.set_email(i, email, c))
    }

    /// Makes one app-user row of the user — its direct grant (`group: None`) or its grant
    /// through `group` — embed `email` instead of the user's own (`None`: its own again), so
    /// the list shows two rows of one user id with conflicting emails. The override goes with
    /// the row (a grant removed and given again starts without it). Status knobs
    /// ([`OktaSim::set_status`]) take any string, including `""` and undocumented ones.
    ///
    /// # Panics
    /// When the user has no such row.
    pub fn set_row_email(&self, user_id: &str, group: Option<&str>, email: Option<&str>) {
        self.with_user(user_id, |st, i, _| {
            assert!(
                st.set_row_email(i, group, email),
                "okta emulator: user {user_id:?} has no {} row",
                group.map_or("direct".to_string(), |g| format!("group {g:?}"))
            );
        })
    }

    /// Caps the app-users `limit` below what was asked (the links still carry the request's
    /// `limit`).
    pub fn set_max_limit(&self, max: u32) {
        self.lock().max_limit = Some(max.max(1));
    }

    /// Requests per minute of a bucket (`/api/v1/apps/*`, `/api/v1/users`,
    /// `/api/v1/users/{id}`, `/api/v1/logs`).
    ///
    /// # Panics
    /// On an unknown bucket.
    pub fn set_rate_limit(&self, bucket: &str, per_minute: u32) {
        let mut st = self.lock();
        match st.limits.get_mut(bucket) {
            Some(l) => *l = per_minute,
            None => panic!("okta emulator: unknown rate-limit bucket {bucket:?}"),
        }
    }

    /// When off, rate-limit headers are still sent but nothing is refused.
    pub fn set_rate_limit_enforced(&self, enforce: bool) {
        self.lock().enforce = enforce;
    }

    /// The id of the user with this id, login or email.
    pub fn user_id(&self, key: &str) -> Option<String> {
        let st = self.lock();
        st.resolve(key).map(|i| st.users[i].id.clone())
    }

    /// Requests served on one route key ("GET /api/v1/apps/{appId}/users"); admin calls are
    /// not counted.
    pub fn request_count(&self, route: &str) -> u64 {
        self.lock().traffic.count_of(route)
    }

    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().traffic.counts()
    }

    pub fn total_requests(&self) -> u64 {
        self.lock().traffic.total()
    }

    pub fn reset_counts(&self) {
        self.lock().traffic.reset_counts()
    }

    /// Injects a fault on a route key (or `"*"` for every route without its own fault).
    pub fn set_fault(&self, route: &str, fault: Fault) {
        self.lock().traffic.set_fault(route, fault)
    }

    pub fn clear_faults(&self) {
        self.lock().traffic.clear_faults()
    }

    /// `n` ACTIVE users `userNNNNNN@email_domain`, directly assigned with role `viewer`.
    pub fn bulk_add_assigned_users(&self, n: usize, email_domain: &str) {
        let clock = *self.clock();
        self.lock().bulk_add_assigned(n, email_domain, &clock)
    }

    /// `n` ACTIVE users `userNNNNNN@email_domain` (the numbering continues that of
    /// `bulk_add_assigned_users`, and matches the Spot emulator's `bulk_add_users`), directly
    /// assigned with role `viewer` only when `assigned`.
    pub fn bulk_add_users(&self, n: usize, email_domain: &str, assigned: bool) {
        let clock = *self.clock();
        self.lock().bulk_add(n, email_domain, assigned, &clock)
    }
}
