//! The Spot organization API emulator: `SpotSim`, a cheap clonable handle over the shared
//! state, with the in-process scripting and inspection API (the same operations the
//! `/__admin/` HTTP API offers).
//!
//! Access scripting (accounts added and removed, a user's policies and role edited by hand)
//! goes through the same `state` operations as the HTTP API, validated the same way.
//!
//! This module owns the handle only. Object semantics live in `state`, HTTP in `http`, the
//! admin API in `admin`. Scripting calls are for tests and the demo; HTTP input never panics.

mod admin;
mod http;
mod quirks;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;

pub use quirks::{QuirkRule, SpotQuirks};
pub use state::SimSpotUser;
pub(crate) use state::SpotState;

use super::common::{Clock, Fault, LoggedRequest};
use super::fixture::SpotFixture;

struct Inner {
    state: Mutex<SpotState>,
    clock: Clock,
    addr: SocketAddr,
}

/// Handle on a running (or runnable) Spot emulator. Clones share the same state.
#[derive(Clone)]
pub struct SpotSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SpotSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpotSim").field("url", &self.url()).finish()
    }
}

impl SpotSim {
    pub(crate) fn new(fx: &SpotFixture, clock: Clock, addr: SocketAddr) -> Result<SpotSim, String> {
        let state = SpotState::from_fixture(fx, &clock)?;
        Ok(SpotSim {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                clock,
                addr,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SpotState> {
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

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        let a = self.inner.addr;
        if a.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", a.port())
        } else {
            format!("http://{a}")
        }
    }

    /// The Bearer token it accepts.
    pub fn token(&self) -> String {
        self.lock().token.clone()
    }

    pub fn organization_id(&self) -> u64 {
        self.lock().organization_id
    }

    /// Adds a personal user (no API validation; a viewer is linked to the default account);
    /// returns its `u-…` id.
    ///
    /// # Panics
    /// When the email already exists in the organization.
    pub fn add_user(&self, email: &str, first: &str, last: &str, role: &str) -> String {
        self.lock()
            .add_personal(None, email, first, last, role)
            .unwrap_or_else(|e| panic!("spot emulator: {e}"))
    }

    /// Adds a programmatic user; returns its `pu-…` id.
    pub fn add_programmatic_user(&self, name: &str) -> String {
        self.lock()
            .add_programmatic(name, None)
            .unwrap_or_else(|e| panic!("spot emulator: {e}"))
    }

    /// Every user, in list order.
    pub fn users(&self) -> Vec<SimSpotUser> {
        self.lock().users.values().map(|r| r.user.clone()).collect()
    }

    /// A personal user by email, case-insensitively.
    pub fn user_by_email(&self, email: &str) -> Option<SimSpotUser> {
        let st = self.lock();
        st.seq_by_email(email)
            .and_then(|s| st.users.get(&s))
            .map(|r| r.user.clone())
    }

    pub fn user(&self, user_id: &str) -> Option<SimSpotUser> {
        self.lock().get(user_id).map(|r| r.user.clone())
    }

    /// Out-of-band deletion (no last-admin rule).
    pub fn remove_user(&self, user_id: &str) {
        self.lock().remove(user_id);
    }

    pub fn account_ids(&self) -> Vec<String> {
        self.lock()
            .accounts
            .iter()
            .map(|a| a.account_id.clone())
            .collect()
    }

    /// Adds an account to the organization (as onboarding a cloud account does); returns its
    /// fresh `act-…` id. Mappings with `"*"` cover it at once; explicit ones do not.
    pub fn add_account(&self, name: &str) -> String {
        let now = self.clock().timestamp();
        self.lock()
            .add_account(None, name, now)
            .unwrap_or_else(|e| panic!("spot emulator: {e}"))
    }

    /// Removes an account; explicit mappings lose it (see `state`).
    ///
    /// # Panics
    /// When the account does not exist or is the organization's only account.
    pub fn remove_account(&self, account_id: &str) {
        self.lock()
            .remove_account(account_id)
            .unwrap_or_else(|e| panic!("spot emulator: {e}"))
    }

    /// A grant made by hand in the console: adds `account_ids` (or `"*"`) to the user's
    /// mapping of `policy_id`, keeping what it has.
    ///
    /// # Panics
    /// When the user, the policy or an account does not exist.
    pub fn grant_policy(&self, user_id: &str, policy_id: &str, account_ids: &[&str]) {
        let accounts: Vec<String> = account_ids.iter().map(|a| a.to_string()).collect();
        self.lock()
            .grant(user_id, policy_id, &accounts)
            .unwrap_or_else(|e| panic!("spot emulator: {}: {}", e.code, e.message))
    }

    /// A removal made by hand: the user's whole mapping of `policy_id`, or (`Some`) one
    /// account of it. Returns false when there was nothing to remove.
    ///
    /// # Panics
    /// When the user does not exist.
    pub fn revoke_policy(&self, user_id: &str, policy_id: &str, account_id: Option<&str>) -> bool {
        self.lock()
            .revoke(user_id, policy_id, account_id)
            .unwrap_or_else(|e| panic!("spot emulator: {}: {}", e.code, e.message))
    }

    /// An organization role changed by hand (`viewer`, `editor` or `admin`); the user's
    /// policies are left as they are.
    ///
    /// # Panics
    /// When the user does not exist, is programmatic, or the role is not one of those.
    pub fn set_role(&self, user_id: &str, role: &str) {
        self.lock()
            .set_role(user_id, role)
            .unwrap_or_else(|e| panic!("spot emulator: {e}"))
    }

    /// The user's direct policies with `"*"` resolved to the accounts it covers now: what the
    /// user can actually see. `None` for an unknown user.
    pub fn effective_policies(&self, user_id: &str) -> Option<Vec<(String, Vec<String>)>> {
        let st = self.lock();
        let rec = st.get(user_id)?;
        Some(
            rec.user
                .policies
                .iter()
                .map(|(p, a)| (p.clone(), st.effective_accounts(a)))
                .collect(),
        )
    }

    pub fn policy_id_by_name(&self, name: &str) -> Option<String> {
        self.lock()
            .policies
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id.clone())
    }

    /// Requests served on one route key ("POST /setup/user"); admin calls are not counted.
    pub fn request_count(&self, route: &str) -> u64 {
        self.lock().traffic.count_of(route)
    }

    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().traffic.counts()
    }

    pub fn total_requests(&self) -> u64 {
        self.lock().traffic.total()
    }

    /// Requests with method POST, PUT or DELETE.
    pub fn write_requests(&self) -> u64 {
        self.lock()
            .traffic
            .counts()
            .iter()
            .filter(|(k, _)| {
                k.starts_with("POST ") || k.starts_with("PUT ") || k.starts_with("DELETE ")
            })
            .map(|(_, v)| v)
            .sum()
    }

    pub fn reset_counts(&self) {
        self.lock().traffic.reset_counts()
    }

    /// The passwords received on `POST /setup/user`, for secrecy tests.
    pub fn received_passwords(&self) -> Vec<String> {
        self.lock().received_passwords.clone()
    }

    /// Resolves once at least `n` write requests (POST, PUT, DELETE) have arrived: tests wait
    /// on traffic with this instead of sleeping.
    pub async fn wait_for_writes(&self, n: u64) {
        let mut seen = self.lock().traffic.watch();
        while self.write_requests() < n {
            if seen.changed().await.is_err() {
                return;
            }
        }
    }

    /// Injects a fault on a route key (or `"*"` for every route without its own fault).
    pub fn set_fault(&self, route: &str, fault: Fault) {
        self.lock().traffic.set_fault(route, fault)
    }

    pub fn clear_faults(&self) {
        self.lock().traffic.clear_faults()
    }

    /// Requests per 60 s sliding window on one route key (default 100000).
    pub fn set_rate_limit(&self, route: &str, per_minute: u32) {
        self.lock().limits.insert(route.to_string(), per_minute);
    }

    /// `n` personal viewers `userNNNNNN@email_domain` with Account Viewer on every account.
    pub fn bulk_add_users(&self, n: usize, email_domain: &str) {
        self.lock().bulk_add(n, email_domain)
    }

    // ----- list and delete quirks (see `quirks`) -----

    /// `GET /setup/organization/user` lists `user_id` (`None`: every user) twice, the repeat
    /// at the end of the list, in the next `responses` list responses (`None`: until cleared).
    pub fn duplicate_in_list(&self, user_id: Option<&str>, responses: Option<u64>) {
        self.lock().quirks.duplicate.push(QuirkRule {
            user_id: user_id.map(str::to_string),
            times: responses,
        });
    }

    /// The next `responses` list responses leave `user_id` out (it still exists).
    pub fn omit_from_list(&self, user_id: &str, responses: u64) {
        let mut st = self.lock();
        if responses == 0 {
            st.quirks.omit.remove(user_id);
        } else {
            st.quirks.omit.insert(user_id.to_string(), responses);
        }
    }

    /// From now on, a user created by `POST /setup/user` is left out of the `responses` list
    /// responses that follow its creation (0 turns it off; users already lagging stay hidden
    /// for their count). It exists meanwhile: creating its email again is refused.
    pub fn set_list_lag_after_create(&self, responses: u64) {
        self.lock().quirks.lag_after_create = responses;
    }

    /// `DELETE /setup/user/{id}` of `user_id` (`None`: any user) answers 200 as usual and
    /// leaves the user in place, for the next `deletes` such deletes (`None`: always). A delete
    /// Spot would refuse (unknown user, last admin) is still refused and not counted.
    pub fn noop_delete(&self, user_id: Option<&str>, deletes: Option<u64>) {
        self.lock().quirks.noop_delete.push(QuirkRule {
            user_id: user_id.map(str::to_string),
            times: deletes,
        });
    }

    /// `GET /setup/user/{id}` shows a `"*"` mapping expanded to the accounts it covers now
    /// (`true`) or as stored, `["*"]` (`false`, the default).
    pub fn set_expand_star_in_details(&self, on: bool) {
        self.lock().quirks.expand_star_in_details = on;
    }

    /// The list and delete quirks in force.
    pub fn quirks(&self) -> SpotQuirks {
        self.lock().quirks.clone()
    }

    /// Clears every list and delete quirk, users still lagging after a create included.
    pub fn clear_quirks(&self) {
        self.lock().quirks = SpotQuirks::default();
    }

    /// Turns the request log on (or off, dropping it): every non-admin request with its
    /// method, path and answered status, in order.
    pub fn set_request_log(&self, on: bool) {
        self.lock().traffic.set_logging(on)
    }

    /// The request log so far (empty while it is off).
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().traffic.logged()
    }

    pub fn clear_request_log(&self) {
        self.lock().traffic.clear_log()
    }
}
