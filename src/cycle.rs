//! One reconcile cycle: read both sides completely, classify, plan, guard, apply, record.
//!
//! This is the retry-safe `reconcile` of the kube-rs pattern: it holds no state between calls
//! (the ledger file is the only memory), so running it again after any failure is always safe.
//! Scheduling, signals and error policy belong to the caller (`daemon`, `main`).

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use std::collections::BTreeSet;

use crate::action::ActionStatus;
use crate::apply::{apply_until, Outcome, Outcomes, RoleResolver};
use crate::config::Settings;
use crate::events::decide::WATCH_POLLS;
use crate::guard::guard;
use crate::ledger::{EventsState, LastRun, Ledger, LedgerStore, LedgerWriter, RetryUser, Watch};
use crate::model::{IdentitySource, OktaSnapshot, OktaUserId, SpotDirectory, SpotUsers};
use crate::okta::classify::classify;
use crate::plan::{plan, plan_partial};
use crate::report::{Mode, Report};
use crate::Error;

/// One-shot overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct CycleOptions {
    /// `reconcile --allow-deletes N`.
    pub allow_deletes: Option<usize>,
    /// `reconcile --allow-empty-source`.
    pub allow_empty_source: bool,
}

/// Runs one cycle in `mode` (`Plan`, `DryRun` or `Apply`). Reads are all-or-nothing: any read
/// error returns before anything is planned, so a failed read can never cause a delete.
pub async fn run_cycle<I: IdentitySource, D: SpotDirectory>(
    settings: &Settings,
    okta: &I,
    spot: &D,
    store: &LedgerStore,
    mode: Mode,
    options: &CycleOptions,
) -> Result<Report, Error> {
    let control = CycleControl::default();
    run_cycle_controlled(settings, okta, spot, store, mode, options, &control).await
}

/// What the daemon passes into a cycle: when to stop starting actions, and whom to tell that
/// both sides were read.
#[derive(Clone, Default)]
pub struct CycleControl {
    /// Cancelled on shutdown: actions in flight finish, no new one starts.
    pub stop: CancellationToken,
    /// Called once both APIs have been read completely (systemd `READY=1`).
    pub after_read: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Events mode: the position in Okta's System Log to record once the cycle's results are
    /// recorded (a full cycle restarts polling from a point taken before its read).
    pub commit_events: Option<EventsState>,
    /// Events mode: what was recorded, `commit_events` with the users the next poll must read
    /// again (`events::batch::read_again`); set once the cycle's results are saved.
    pub events_recorded: Arc<std::sync::Mutex<Option<EventsState>>>,
    /// Events mode: how many batches already read each user this one reads again (the
    /// attempts of [`EventsState::retry`]).
    pub retry_attempts: std::collections::BTreeMap<OktaUserId, u32>,
}

/// [`run_cycle`] with a [`CycleControl`].
pub async fn run_cycle_controlled<I: IdentitySource, D: SpotDirectory>(
    settings: &Settings,
    okta: &I,
    spot: &D,
    store: &LedgerStore,
    mode: Mode,
    options: &CycleOptions,
    control: &CycleControl,
) -> Result<Report, Error> {
    // The state file is read (a blocking read and parse: tens of MB at 100,000 users) while
    // both APIs are read; its error, if any, wins over theirs.
    let loading = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let loaded = store.load();
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "state file loaded"
            );
            loaded
        })
    };
    let reads = tokio::try_join!(okta.read_assignments(), spot.list_users());
    let ledger = loading.await.map_err(|e| Error::Ledger {
        path: store.path().to_path_buf(),
        detail: format!("loading it was interrupted: {e}"),
    })??;
    let (rows, spot_users) = reads?;
    if let Some(after_read) = &control.after_read {
        after_read();
    }
    let started = std::time::Instant::now();
    let snapshot = classify(rows, &settings.classify_rules());
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "classified"
    );
    info!(
        okta_listed = snapshot.listed,
        provision = snapshot.provision.len(),
        held = snapshot.held.len(),
        absent = snapshot.absent.len(),
        spot_users = spot_users.len(),
        managed = ledger.managed_count(),
        "read both sides"
    );
    let decided = Decide {
        settings,
        store,
        mode,
        options,
        control,
        scope: None,
        save: Save::Whole,
    };
    decided
        .run(snapshot, spot_users, ledger, spot)
        .await
        .map(|(report, _)| report)
}

/// How a cycle's results are saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Save {
    /// The whole state file when something changed (a full cycle).
    Whole,
    /// Only the journal (an events batch: a few users; the file is rewritten whole by the
    /// next full cycle that changes something, or once the journal is long).
    Journal,
    /// The whole state file, changed or not, `last_run` kept (an events batch once the journal
    /// is long: it is replayed on every load).
    Compact,
}

/// The part of a cycle after the reads, shared by full cycles and events batches: plan, guard,
/// apply, record. `scope` makes the plan partial (events mode).
pub(crate) struct Decide<'a> {
    pub settings: &'a Settings,
    pub store: &'a LedgerStore,
    pub mode: Mode,
    pub options: &'a CycleOptions,
    pub control: &'a CycleControl,
    pub scope: Option<&'a BTreeSet<OktaUserId>>,
    pub save: Save,
}

impl Decide<'_> {
    /// The report, and the events state recorded with the results (`None`: none was asked
    /// for, `control.commit_events`).
    pub(crate) async fn run<D: SpotDirectory>(
        self,
        snapshot: OktaSnapshot,
        spot_users: SpotUsers,
        ledger: Ledger,
        spot: &D,
    ) -> Result<(Report, Option<EventsState>), Error> {
        let Decide {
            settings,
            store,
            mode,
            options,
            control,
            scope,
            save,
        } = self;
        let managed = ledger.managed_count();
        let started = std::time::Instant::now();
        let the_plan = match scope {
            None => plan(&snapshot, &spot_users, &ledger, &settings.plan_options()),
            Some(scope) => plan_partial(
                &snapshot,
                &spot_users,
                &ledger,
                &settings.plan_options(),
                scope,
            ),
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "planned");
        let mut limits = settings.guard_limits(options);
        limits.recent_deletes = ledger.deletes_in_window(crate::clock::now());
        let verdicts = guard(&the_plan, &spot_users, &ledger, &limits);
        for trip in verdicts.trips() {
            warn!(guard = %trip.guard, "{}", trip.message);
        }
        // Neither is needed past this point; at scale they are most of the memory.
        drop(snapshot);
        drop(spot_users);
        if mode != Mode::Apply {
            let outcomes = Outcomes::none(&the_plan);
            let mut report = Report::new(mode, the_plan, verdicts, &outcomes);
            report.managed_users = Some(managed);
            return Ok((report, None));
        }
        // Events mode watches what this cycle lets go of without a delete (`forget`: the Spot
        // list did not show the user): its Spot user, as the ledger has it now.
        let forgotten: Vec<Watch> = match control.commit_events {
            Some(_) => the_plan
                .forget
                .iter()
                .filter_map(|id| {
                    let entry = ledger.users.get(id)?;
                    Some(Watch {
                        okta_user_id: id.clone(),
                        spot_user_id: entry.spot_user_id.clone()?,
                        checks_left: WATCH_POLLS,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let writer = LedgerWriter::new(store.clone(), ledger);
        let roles = RoleResolver::new(spot, &settings.spot.roles);
        // A failed save stops the actions but not the report: Spot was changed, so what was
        // applied is reported with the error (`Error::NotRecorded`).
        let (outcomes, applied) = apply_until(
            &the_plan,
            &verdicts,
            spot,
            &writer,
            &roles,
            settings.spot.write_concurrency,
            &control.stop,
        )
        .await;
        let deleted: Vec<Watch> = the_plan
            .actions
            .iter()
            .enumerate()
            .filter(|(i, _)| matches!(outcomes.get(*i), Some(Outcome::Applied { .. })))
            .filter_map(|(_, a)| {
                Some(Watch {
                    okta_user_id: a.okta_user_id.clone(),
                    spot_user_id: a.deleted_spot_user()?.clone(),
                    checks_left: WATCH_POLLS,
                })
            })
            .collect();
        let deletes_applied = deleted.len();
        let changed_nothing = the_plan.is_empty();
        let listed = the_plan.okta_users;
        let mut report = Report::new(mode, the_plan, verdicts, &outcomes);
        let not_started = report
            .actions
            .iter()
            .filter(|a| a.status == ActionStatus::Planned)
            .count();
        if not_started > 0 {
            warn!(not_started, "stopping: {not_started} planned action(s) were not started; the next run applies them");
        }
        log_outcomes(&report);
        report.managed_users = Some(writer.managed_count());
        let not_recorded = |report: Report, error: Error| Error::NotRecorded {
            report: Box::new(report),
            error: Box::new(error),
        };
        if let Err(error) = applied {
            return Err(not_recorded(report, error));
        }
        // The rolling hour of deletes, and events mode's position: recorded only once the
        // results they follow are (so a crash never moves the cursor past an unapplied change).
        // After a batch or a full cycle of events mode: the users the next poll reads again
        // (`events::batch::read_again`), and the Spot users the next polls watch.
        let events = control.commit_events.clone().map(|mut events| {
            for id in crate::events::batch::read_again(&report) {
                if events.retry.iter().any(|r| r.okta_user_id == id) {
                    continue;
                }
                let attempts = control.retry_attempts.get(&id).copied().unwrap_or(0) + 1;
                events.retry.push(RetryUser {
                    okta_user_id: id,
                    attempts,
                });
            }
            crate::events::batch::give_up_after_attempts(&mut events.retry);
            if scope.is_none() {
                events.listed = listed;
            }
            events.retry.sort();
            let watched: Vec<Watch> = deleted.into_iter().chain(forgotten).collect();
            events
                .watch
                .retain(|w| !watched.iter().any(|n| n.spot_user_id == w.spot_user_id));
            events.watch.extend(watched);
            events
        });
        let recorded = events.clone();
        let state_changed = deletes_applied > 0 || events.is_some();
        if state_changed {
            writer.record_state(|l| {
                l.note_deletes(crate::clock::now(), deletes_applied);
                if let Some(events) = events {
                    l.events = events;
                }
            });
        }
        let saved = match save {
            // See `Ledger::last_run`: an idle cycle leaves an existing file alone.
            Save::Whole if changed_nothing && store.path().exists() => writer.flush().await,
            Save::Whole => writer.update(|l| {
                l.last_run = Some(LastRun {
                    finished_at: Utc::now(),
                    mode: "apply".into(),
                    summary: report.summary_map(),
                })
            }),
            Save::Journal => writer.flush().await,
            Save::Compact => writer.update(|_| {}),
        };
        match saved {
            Ok(()) => {
                if recorded.is_some() {
                    *control
                        .events_recorded
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = recorded.clone();
                }
                Ok((report, recorded))
            }
            Err(error) => Err(not_recorded(report, error)),
        }
    }
}

/// Logs each applied and failed action.
fn log_outcomes(report: &Report) {
    for action in &report.actions {
        match action.status {
            ActionStatus::Applied => info!(
                action = action.action.as_str(),
                email = %action.email,
                okta_user_id = %action.okta_user_id,
                spot_user_id = action.spot_user_id.as_deref().unwrap_or("-"),
                "applied: {}",
                action.reason
            ),
            ActionStatus::Failed => warn!(
                action = action.action.as_str(),
                email = %action.email,
                okta_user_id = %action.okta_user_id,
                "failed: {}",
                action.error.as_deref().unwrap_or("?")
            ),
            _ => {}
        }
    }
}
