//! Events mode: between full cycles, the daemon follows Okta's System Log and brings only the
//! users an event names in line (README "Events mode").
//!
//! It owns the poll and the incremental batch: `decide` (pure: which events matter, which
//! users they name, when only a full cycle can answer, whether a stored position is still
//! good) and `batch` (the I/O shell: poll from the stored position, read each named user's
//! assignment again, plan those users with the same planner and guards, apply, and record the
//! new position with the results). Scheduling, the fallback to full cycles and the metrics
//! belong to the daemon.
//!
//! It must never act on an event's content (events are hints: each named user's truth is read
//! again), never skip an event (one it cannot resolve to users asks for a full cycle), never
//! treat a user it did not read as gone (a partial plan: users not named are out of scope),
//! and never move the position past a change that is not recorded.

pub mod batch;
pub mod decide;

use std::future::Future;

use crate::model::{AppUserRow, IdentitySource, OktaUserId};
use crate::okta::logs::{LogPage, LogPosition, LogsError};
use crate::okta::OktaClient;
use crate::Error;

pub use batch::{poll, Poll, PollStats};
pub use decide::FullCycleReason;

/// Okta as events mode reads it: the System Log and one user's assignment, besides the full
/// list ([`IdentitySource`]).
pub trait EventSource: IdentitySource {
    /// One polling request of the System Log (see [`OktaClient::poll_logs`]).
    fn poll_logs(
        &self,
        position: &LogPosition,
        filter: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<LogPage, LogsError>> + Send;

    /// The user's assignment to the app; `None` when it has none (see
    /// [`OktaClient::get_app_user`]).
    fn get_app_user(
        &self,
        okta_user_id: &OktaUserId,
    ) -> impl Future<Output = Result<Option<AppUserRow>, Error>> + Send;
}

impl EventSource for OktaClient {
    async fn poll_logs(
        &self,
        position: &LogPosition,
        filter: Option<&str>,
        limit: u32,
    ) -> Result<LogPage, LogsError> {
        OktaClient::poll_logs(self, position, filter, limit).await
    }

    async fn get_app_user(&self, okta_user_id: &OktaUserId) -> Result<Option<AppUserRow>, Error> {
        OktaClient::get_app_user(self, okta_user_id).await
    }
}
