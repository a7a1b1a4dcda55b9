//! One poll of events mode, the I/O shell around [`super::decide`]: read the System Log from
//! the stored position to its end, read each named user's assignment again, plan those users
//! (a partial plan, [`crate::plan::plan_partial`]) with the same guards as a full cycle,
//! apply, and record the new position with the results.
//!
//! Retry-safe like a cycle: the position is recorded only with (after) the batch's results, so
//! a failure anywhere leaves the old position and the next poll reads the same events again.
//! A user whose read fails is kept in [`EventsState::retry`] and read again next time; a
//! failed read never makes a user "not assigned". A Spot user deleted lately is in
//! [`EventsState::watch`]: while it is, each poll reads Spot's user list, and if the user is
//! listed (a delete that did nothing, a list that missed it) its Okta user is planned again,
//! as a full cycle would on seeing the tombstone. It never decides when to poll, and never
//! runs a full cycle itself: it says why one is needed ([`Poll::FullCycle`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use tracing::{debug, info, warn};

use super::decide::{self, FullCycleReason, MAX_RETRY_ATTEMPTS};
use super::EventSource;
use crate::action::ActionStatus;
use crate::config::Settings;
use crate::cycle::{CycleControl, CycleOptions, Decide, Save};
use crate::ledger::{EventsState, LedgerStore, LogCursor, RetryUser, Watch};
use crate::model::{AppUserRow, OktaUserId, SpotDirectory, SpotUsers};
use crate::okta::classify::classify;
use crate::okta::logs::{LogPosition, LogsError, MAX_LOGS_LIMIT};
use crate::report::{Mode, Report};
use crate::Error;

/// Pages of 1,000 events one poll reads at most; the rest waits for the next poll (the
/// position then says where this one stopped, so nothing is skipped).
pub const MAX_PAGES_PER_POLL: u32 = 20;

/// Named users read again at once (each read is one request of the `/api/v1/apps/*` bucket;
/// the client paces them to the configured share of it).
pub const READ_CONCURRENCY: usize = 4;

/// Journal records after which a batch saves the whole state file instead of appending (the
/// journal is replayed on every load).
pub const COMPACT_AFTER_RECORDS: usize = 2_000;

/// What one poll came to.
#[derive(Debug)]
pub enum Poll {
    /// Nothing new names a user: no state file read, no Spot request.
    Quiet,
    /// The named users were read again and brought in line.
    Batch(Box<Report>),
    /// Only a full cycle can answer. `resume`: the position to record with that cycle's results
    /// (`None`: take a new start point before its read).
    FullCycle {
        reason: FullCycleReason,
        resume: Option<EventsState>,
    },
    /// Okta refused to let this client read the System Log (the message names the fix).
    Refused(String),
}

/// What a poll saw, for the metrics.
#[derive(Debug, Clone, Default)]
pub struct PollStats {
    /// Events read, by type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Named users whose assignment was read again.
    pub users_reread: usize,
    /// The newest `published` among the events read (none: the log had nothing new).
    pub newest: Option<DateTime<Utc>>,
    /// For each Spot change applied: from the earliest event that named its user to now.
    pub propagation: Vec<Duration>,
}

/// A poll's outcome: what it came to, the events state to keep in memory after it (recorded
/// in the state file with a batch's results; a quiet poll's moved position is recorded with
/// the next batch or full cycle), and what it saw.
#[derive(Debug)]
pub struct PollOutcome {
    pub poll: Poll,
    pub state: EventsState,
    pub stats: PollStats,
}

/// One poll from `state` (which must have a position: see [`decide::resumable`]).
pub async fn poll<S: EventSource, D: SpotDirectory>(
    settings: &Settings,
    okta: &S,
    spot: &D,
    store: &LedgerStore,
    state: &EventsState,
    control: &CycleControl,
) -> Result<PollOutcome, Error> {
    let started = crate::clock::now();
    let mut stats = PollStats::default();
    let full = |reason, resume, state: EventsState, stats| PollOutcome {
        poll: Poll::FullCycle { reason, resume },
        state,
        stats,
    };
    let cursor = match decide::resumable(state.cursor.as_ref(), started) {
        Ok(()) => state.cursor.clone().expect("resumable has a cursor"),
        Err(reason) => return Ok(full(reason, None, state.clone(), stats)),
    };
    let filter = decide::filter_expression();
    let mut position = match &cursor.after {
        Some(after) => LogPosition::After(after.clone()),
        None => LogPosition::Since(cursor.since),
    };
    let mut after = cursor.after.clone();
    let mut events = Vec::new();
    let mut caught_up = false;
    for _ in 0..MAX_PAGES_PER_POLL {
        match okta
            .poll_logs(&position, Some(&filter), MAX_LOGS_LIMIT)
            .await
        {
            Ok(page) => {
                let n = page.events.len();
                events.extend(page.events);
                if !page.after.is_empty() {
                    after = Some(page.after);
                }
                position = page.next;
                if n < MAX_LOGS_LIMIT as usize {
                    caught_up = true;
                    break;
                }
            }
            Err(refused @ LogsError::Refused { .. }) => {
                return Ok(PollOutcome {
                    poll: Poll::Refused(refused.to_string()),
                    state: state.clone(),
                    stats,
                })
            }
            Err(LogsError::BadPosition(detail)) => {
                warn!("Okta refused the stored System Log position ({detail}); a full cycle starts polling over");
                return Ok(full(
                    FullCycleReason::CursorRejected,
                    None,
                    state.clone(),
                    stats,
                ));
            }
            Err(LogsError::Failed(e)) => return Err(e),
        }
    }
    let moved = LogCursor {
        after,
        since: cursor.since,
        // Only a poll that reached the end of the log proves everything before it seen.
        polled_at: if caught_up { started } else { cursor.polled_at },
    };
    let hints = decide::hints(&events, &settings.okta.app_id);
    stats.events_by_type = hints.by_type.clone();
    stats.newest = hints.newest;
    let mut named: BTreeMap<OktaUserId, DateTime<Utc>> = hints.users;
    for r in &state.retry {
        named.entry(r.okta_user_id.clone()).or_insert(started);
    }
    let attempts: BTreeMap<OktaUserId, u32> = state
        .retry
        .iter()
        .map(|r| (r.okta_user_id.clone(), r.attempts))
        .collect();
    if !events.is_empty() {
        debug!(
            events = events.len(),
            users = named.len(),
            "System Log read"
        );
    }
    // Watched Spot users (deleted lately) that Spot still lists, or lists again: their
    // users are planned again. The others are looked for again by the next polls.
    let mut spot_list: Option<SpotUsers> = None;
    let mut watch = Vec::new();
    if !state.watch.is_empty() {
        let listed = spot.list_users().await?;
        for w in &state.watch {
            if listed.lists(&w.spot_user_id) {
                info!(
                    okta_user_id = %w.okta_user_id,
                    spot_user_id = %w.spot_user_id,
                    "a Spot user deleted lately is listed: planning its Okta user again"
                );
                named.entry(w.okta_user_id.clone()).or_insert(started);
            } else if w.checks_left > 1 {
                watch.push(Watch {
                    checks_left: w.checks_left - 1,
                    ..w.clone()
                });
            }
        }
        spot_list = Some(listed);
    }
    // Whatever comes next covers the retried users: the new state starts without them.
    let resume = EventsState {
        cursor: Some(moved),
        retry: Vec::new(),
        watch,
        listed: state.listed,
    };
    if let Some(reason) = hints.full_cycle {
        info!(
            reason = reason.as_str(),
            "the System Log names a change only a full read can answer; running a full cycle"
        );
        return Ok(full(reason, Some(resume.clone()), resume, stats));
    }
    let most = decide::max_batch_users(state.listed, settings.okta.page_size);
    if named.len() > most {
        info!(
            users = named.len(),
            most, "the events name more users than a full read costs; running a full cycle"
        );
        return Ok(full(
            FullCycleReason::TooManyUsers,
            Some(resume.clone()),
            resume,
            stats,
        ));
    }
    if named.is_empty() {
        return Ok(PollOutcome {
            poll: Poll::Quiet,
            state: resume,
            stats,
        });
    }

    // Each named user's truth, read again; a failed read keeps the user for the next poll.
    let reads: Vec<(OktaUserId, Result<Option<AppUserRow>, Error>)> =
        stream::iter(named.keys().cloned())
            .map(|id| async move {
                let read = okta.get_app_user(&id).await;
                (id, read)
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
    stats.users_reread = reads.len();
    let mut scope = BTreeSet::new();
    let mut rows = Vec::new();
    let mut retry = Vec::new();
    for (id, read) in reads {
        match read {
            Ok(row) => {
                rows.extend(row);
                scope.insert(id);
            }
            Err(e @ Error::Credentials { .. }) => return Err(e),
            Err(e) => {
                warn!(okta_user_id = %id, "reading the user's assignment failed, trying again next poll: {e}");
                let attempts = attempts.get(&id).copied().unwrap_or(0) + 1;
                retry.push(RetryUser {
                    okta_user_id: id,
                    attempts,
                });
            }
        }
    }
    let mut commit = resume;
    commit.retry = retry;
    if scope.is_empty() {
        // No read succeeded (Okta is failing): nothing to plan. The position moves on and the
        // users are read again by the next polls (kept in memory: a restart reads their
        // events again from the recorded position), up to `MAX_RETRY_ATTEMPTS` times each.
        give_up_after_attempts(&mut commit.retry);
        return Ok(PollOutcome {
            poll: Poll::Quiet,
            state: commit,
            stats,
        });
    }

    let loading = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.load_counting_journal())
    };
    let spot_users = match spot_list {
        Some(listed) => Ok(listed),
        None => spot.list_users().await,
    };
    let (ledger, journal) = loading.await.map_err(|e| Error::Ledger {
        path: store.path().to_path_buf(),
        detail: format!("loading it was interrupted: {e}"),
    })??;
    let spot_users = spot_users?;
    let snapshot = classify(rows, &settings.classify_rules());
    info!(
        users = scope.len(),
        provision = snapshot.provision.len(),
        held = snapshot.held.len(),
        absent = snapshot.absent.len(),
        "events batch: the named users read again"
    );
    let control = CycleControl {
        commit_events: Some(commit.clone()),
        retry_attempts: attempts,
        ..control.clone()
    };
    let decided = Decide {
        settings,
        store,
        mode: Mode::Apply,
        options: &CycleOptions::default(),
        control: &control,
        scope: Some(&scope),
        save: if journal >= COMPACT_AFTER_RECORDS {
            Save::Compact
        } else {
            Save::Journal
        },
    };
    let (report, recorded) = decided.run(snapshot, spot_users, ledger, spot).await?;
    let done = crate::clock::now();
    for action in &report.actions {
        if action.status == ActionStatus::Applied {
            if let Some(at) = named.get(action.okta_user_id.as_str()) {
                stats
                    .propagation
                    .push((done - *at).to_std().unwrap_or(Duration::ZERO));
            }
        }
    }
    let state = recorded.unwrap_or(commit);
    Ok(PollOutcome {
        poll: Poll::Batch(Box::new(report)),
        state,
        stats,
    })
}

/// Drops the users read again [`MAX_RETRY_ATTEMPTS`] times already, saying so: the next full
/// cycle brings them in line.
pub(crate) fn give_up_after_attempts(retry: &mut Vec<RetryUser>) {
    retry.retain(|r| {
        let keep = r.attempts <= MAX_RETRY_ATTEMPTS;
        if !keep {
            warn!(
                okta_user_id = %r.okta_user_id,
                attempts = r.attempts,
                "events mode stops reading this user again; the next full cycle (sync.schedule) brings it in line"
            );
        }
        keep
    });
}

/// The users a batch (or a full cycle of events mode) hands to the next poll to read again:
/// those whose action failed or was not started. (Those whose Spot user it deleted are
/// watched instead: [`EventsState::watch`].)
pub(crate) fn read_again(report: &Report) -> Vec<OktaUserId> {
    report
        .actions
        .iter()
        .filter(|a| matches!(a.status, ActionStatus::Failed | ActionStatus::Planned))
        .map(|a| OktaUserId::new(a.okta_user_id.as_str()))
        .collect()
}
