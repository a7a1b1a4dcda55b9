//! One reconcile cycle: read both sides completely, classify, plan, guard, apply, record.
//!
//! This is the retry-safe `reconcile` of the kube-rs pattern: it holds no state between calls
//! (the ledger file is the only memory), so running it again after any failure is always safe.
//! Scheduling, signals and error policy belong to the caller (`daemon`, `main`).

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::action::ActionStatus;
use crate::apply::{apply_until, Outcomes, RoleResolver};
use crate::config::Settings;
use crate::guard::guard;
use crate::ledger::{LastRun, LedgerStore, LedgerWriter};
use crate::model::{IdentitySource, SpotDirectory};
use crate::okta::classify::classify;
use crate::plan::plan;
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
    let managed = ledger.managed_count();
    info!(
        okta_listed = snapshot.listed,
        provision = snapshot.provision.len(),
        held = snapshot.held.len(),
        absent = snapshot.absent.len(),
        spot_users = spot_users.len(),
        managed,
        "read both sides"
    );
    let started = std::time::Instant::now();
    let the_plan = plan(&snapshot, &spot_users, &ledger, &settings.plan_options());
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "planned");
    let verdicts = guard(
        &the_plan,
        &spot_users,
        &ledger,
        &settings.guard_limits(options),
    );
    for trip in verdicts.trips() {
        warn!(guard = %trip.guard, "{}", trip.message);
    }
    // Neither is needed past this point; at scale they are most of the memory.
    drop(snapshot);
    drop(spot_users);
    if mode == Mode::Apply {
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
        let changed_nothing = the_plan.is_empty();
        let mut report = Report::new(mode, the_plan, verdicts, &outcomes);
        let not_started = report
            .actions
            .iter()
            .filter(|a| a.status == ActionStatus::Planned)
            .count();
        if not_started > 0 {
            warn!(not_started, "stopping: {not_started} planned action(s) were not started; the next run applies them");
        }
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
        report.managed_users = Some(writer.managed_count());
        let not_recorded = |report: Report, error: Error| Error::NotRecorded {
            report: Box::new(report),
            error: Box::new(error),
        };
        if let Err(error) = applied {
            return Err(not_recorded(report, error));
        }
        // See `Ledger::last_run`: an idle cycle leaves an existing file alone.
        if changed_nothing && store.path().exists() {
            return Ok(report);
        }
        let saved = writer.update(|l| {
            l.last_run = Some(LastRun {
                finished_at: Utc::now(),
                mode: "apply".into(),
                summary: report.summary_map(),
            })
        });
        return match saved {
            Ok(()) => Ok(report),
            Err(error) => Err(not_recorded(report, error)),
        };
    }
    let outcomes = Outcomes::none(&the_plan);
    let mut report = Report::new(mode, the_plan, verdicts, &outcomes);
    report.managed_users = Some(managed);
    Ok(report)
}
