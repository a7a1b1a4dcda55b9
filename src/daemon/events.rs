//! Events mode in the daemon's loop: when to poll Okta's System Log, what each poll's outcome
//! calls for (nothing, a full cycle, falling back to full cycles when Okta refuses the log),
//! and what each full cycle records as the next position to poll from.
//!
//! It owns the in-memory copy of the state file's events part (loaded once at start, then
//! replaced by what each poll and full cycle recorded) and the daemon's part of the events
//! metrics. Polls run in the same loop as cycles and audits, so never at the same time as
//! either. It must never decide what a poll's events mean (that is `crate::events`), and never
//! keep polling after Okta refused the log (only a reload or a restart tries again).

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{error, info, info_span, warn, Instrument};

use super::{Daemon, Notice};
use crate::config::Schedule;
use crate::cycle::CycleControl;
use crate::error::Api;
use crate::events::batch::{Poll, PollOutcome};
use crate::events::decide::{self, FullCycleReason};
use crate::ledger::EventsState;
use crate::metrics::poll_result;
use crate::okta::oauth::ROUTE_TOKEN;
use crate::Error;

/// Why the loop stops after a poll.
pub(super) enum PollStop {
    /// Shutdown came and the grace period ran out.
    Abandoned,
    /// A permanent error before the daemon was ever ready: `run` returns it.
    Fatal(Error),
}

/// Is `e` Okta's token endpoint refusing the events client (the scope it asks for)?
fn is_token_refusal(e: &Error) -> bool {
    matches!(e, Error::Credentials { what, .. } if what.contains(ROUTE_TOKEN))
}

/// Events mode's part of the daemon.
pub(super) struct EventsMode {
    /// Polling the System Log (`events.enabled`, and Okta has not refused it).
    pub active: bool,
    /// Why Okta refused the System Log, once it did.
    pub refused: Option<String>,
    /// The state file's events part as last recorded (or as a quiet poll moved it).
    pub state: EventsState,
    pub poll: Option<Interval>,
    /// The next full cycle: why, and the position to record with it (`None`: a new start
    /// point, taken before its read).
    pub next_full: Option<(FullCycleReason, Option<EventsState>)>,
}

impl EventsMode {
    pub fn new() -> EventsMode {
        EventsMode {
            active: false,
            refused: None,
            state: EventsState::default(),
            poll: None,
            next_full: None,
        }
    }
}

/// Polls every `every`, the first one interval from now (after the full cycle that starts the
/// mode).
fn poll_interval(every: Duration) -> Interval {
    poll_interval_from(Instant::now() + every, every)
}

fn poll_interval_from(first: Instant, every: Duration) -> Interval {
    let mut i = tokio::time::interval_at(first, every);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// Waits for the next poll tick; never, when not polling.
pub(super) async fn poll_tick(poll: &mut Option<Interval>) {
    match poll {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Daemon {
    /// The schedule full cycles run on now: `sync.schedule` while events mode polls, the
    /// fallback (`sync.schedule` when set, every 10 minutes otherwise) when it cannot.
    pub(super) fn full_cycle_schedule(&self) -> &Schedule {
        if self.events.active || !self.settings.events.enabled {
            &self.settings.sync.schedule
        } else {
            &self.settings.sync.fallback_schedule
        }
    }

    /// Starts (or, after a reload, restarts) events mode. Returns `true` when a full cycle
    /// should run now: at start, unless polling can resume from the stored position.
    pub(super) async fn start_events(&mut self, at_start: bool) -> bool {
        self.events.refused = None;
        self.metrics.set_events_refused(false);
        if !self.settings.events.enabled {
            self.events.active = false;
            self.events.poll = None;
            self.publish_events("off (events.enabled = false): full cycles on sync.schedule");
            let now = at_start && self.settings.sync.run_on_start;
            if now {
                self.events.next_full = Some((FullCycleReason::Start, None));
            }
            return now;
        }
        self.events.active = true;
        self.events.poll = Some(poll_interval(self.settings.events.poll_interval));
        if at_start {
            match self.runner.load_events(self.settings.clone()).await {
                Ok(state) => self.events.state = state,
                // The full cycle reads the state file too, and reports its error.
                Err(e) => warn!("events mode: the state file could not be read ({e})"),
            }
        }
        let every = humantime::format_duration(self.settings.events.poll_interval);
        match decide::resumable(self.events.state.cursor.as_ref(), crate::clock::now()) {
            Ok(()) => {
                // Resuming: the first poll comes at once.
                self.events.poll = Some(poll_interval_from(
                    Instant::now(),
                    self.settings.events.poll_interval,
                ));
                info!(
                    poll_interval = %every,
                    "events mode: resuming the System Log from the stored position, no full cycle needed"
                );
                self.publish_events(&format!("following the System Log every {every}"));
                false
            }
            Err(reason) => {
                info!(
                    poll_interval = %every,
                    reason = reason.as_str(),
                    "events mode: a full cycle first, then the System Log from a point taken before its read"
                );
                self.publish_events(&format!(
                    "following the System Log every {every} (after a full cycle)"
                ));
                self.events.next_full = Some((reason, None));
                // Without `run_on_start`, the first poll asks for it.
                !at_start || self.settings.sync.run_on_start
            }
        }
    }

    fn publish_events(&self, line: &str) {
        self.status().events = Some(line.to_string());
    }

    /// Why the next full cycle runs (`default` unless a poll or a failed cycle said), the
    /// position a poll asked it to record, and the position it records (see
    /// [`CycleControl::commit_events`]).
    pub(super) fn full_cycle_plan(&mut self, default: FullCycleReason) -> FullCyclePlan {
        let (reason, resume) = self.events.next_full.take().unwrap_or((default, None));
        if !self.events.active {
            return FullCyclePlan {
                reason,
                resume,
                commit: None,
            };
        }
        let commit = match &resume {
            Some(resume) => resume.clone(),
            // A usable position is kept: polling goes on from it. Otherwise a new start point,
            // taken now, before the read.
            None => match decide::resumable(self.events.state.cursor.as_ref(), crate::clock::now())
            {
                // (A full cycle reads every user and sees every tombstone: nothing is left to
                // read again or to watch but what it does itself.)
                Ok(()) if reason != FullCycleReason::CursorRejected => EventsState {
                    cursor: self.events.state.cursor.clone(),
                    ..EventsState::default()
                },
                _ => EventsState {
                    cursor: Some(decide::start_point(crate::clock::now())),
                    ..EventsState::default()
                },
            },
        };
        FullCyclePlan {
            reason,
            resume,
            commit: Some(commit),
        }
    }

    /// A full cycle ended: when it completed, what it recorded (its position, and the size of
    /// its read) is what the next poll starts from; when it failed, the next full cycle (after
    /// the back-off) keeps its reason and the position a poll asked for (a new start point is
    /// taken again then).
    pub(super) fn after_full_cycle(
        &mut self,
        plan: FullCyclePlan,
        completed: bool,
        recorded: Option<EventsState>,
    ) {
        if completed {
            if let Some(state) = recorded.or(plan.commit) {
                self.events.state = state;
            }
        } else if self.events.next_full.is_none() {
            self.events.next_full = Some((plan.reason, plan.resume));
        }
    }

    /// One poll of the System Log and its batch. Returns whether a full cycle should run now.
    pub(super) async fn poll(&mut self) -> Result<bool, PollStop> {
        let span = info_span!("events");
        let control = CycleControl {
            stop: self.stop.clone(),
            ..CycleControl::default()
        };
        let started = Instant::now();
        let mut fut = self
            .runner
            .poll(
                self.settings.clone(),
                self.generation,
                self.events.state.clone(),
                control,
                self.metrics.observer(),
            )
            .instrument(span.clone());
        let result = self
            .supervise(&mut fut, &span, "the events batch", "starts no new action")
            .await;
        let Some(result) = result else {
            return Err(PollStop::Abandoned);
        };
        if matches!(
            &result,
            Ok(PollOutcome {
                poll: Poll::Batch(_),
                ..
            })
        ) {
            crate::memory::give_back();
        }
        match result {
            Ok(outcome) => Ok(self.polled(outcome, started).await),
            // The token endpoint refusing the poll's client (an OAuth app not granted
            // okta.logs.read: `invalid_scope`): events mode stops; full cycles go on.
            Err(e @ Error::Credentials { api: Api::Okta, .. }) if is_token_refusal(&e) => {
                self.metrics
                    .record_poll(poll_result::REFUSED, &Default::default());
                self.refused(e.to_string()).await;
                Ok(true)
            }
            // A credential, configuration or state-file error is the error policy's, as after a
            // cycle (halt, or exit before the daemon was ever ready).
            Err(e) if e.is_permanent() => {
                self.metrics
                    .record_poll(poll_result::ERROR, &Default::default());
                warn!("events poll failed: {e}");
                self.after_cycle(Err(e)).map_err(PollStop::Fatal)?;
                Ok(false)
            }
            Err(e) => {
                self.metrics
                    .record_poll(poll_result::ERROR, &Default::default());
                warn!("events poll failed; the next poll reads the same events again: {e}");
                Ok(false)
            }
        }
    }

    async fn polled(&mut self, outcome: PollOutcome, started: Instant) -> bool {
        let PollOutcome { poll, state, stats } = outcome;
        let result = match &poll {
            Poll::Quiet => poll_result::QUIET,
            Poll::Batch(_) => poll_result::BATCH,
            Poll::FullCycle { .. } => poll_result::FULL_CYCLE,
            Poll::Refused(_) => poll_result::REFUSED,
        };
        self.metrics.record_poll(result, &stats);
        match poll {
            Poll::Refused(why) => {
                self.refused(why).await;
                return true;
            }
            Poll::Quiet => {}
            Poll::Batch(report) => {
                self.metrics.record_actions(&report);
                if !report.actions.is_empty() || !report.blocked_by.is_empty() {
                    info!(
                        duration_ms = started.elapsed().as_millis() as u64,
                        users = stats.users_reread,
                        "events batch: {}",
                        report.one_line()
                    );
                }
                for trip in &report.blocked_by {
                    warn!(guard = %trip.guard, "{}", trip.message);
                }
            }
            Poll::FullCycle { reason, resume } => {
                self.events.state = state;
                self.events.next_full = Some((reason, resume));
                self.mark_alive();
                return true;
            }
        }
        self.events.state = state;
        self.mark_alive();
        false
    }

    /// A poll completed: the daemon is in line with Okta as of now (for `/readyz` and the
    /// last-success metric), as after a completed cycle.
    fn mark_alive(&mut self) {
        if !self.ready.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.notifier.notify(Notice::Ready);
        }
        self.metrics.mark_success();
        self.status().last_complete = Some(Instant::now());
    }

    /// Okta refused the System Log: say so once (log, `/readyz`, metric), stop polling and run
    /// full cycles on the fallback schedule, starting now.
    async fn refused(&mut self, why: String) {
        let fallback = self.settings.sync.fallback_schedule.clone();
        error!(
            "events mode is off until a reload or restart: {why}. Running full cycles on \
             {fallback} instead (the first one now); `okta-spot-sync check` says whether the \
             System Log is readable"
        );
        self.metrics.set_events_refused(true);
        self.publish_events(&format!(
            "refused by Okta, running full cycles on {fallback} instead: {why}"
        ));
        self.events.active = false;
        self.events.refused = Some(why);
        self.events.poll = None;
        self.events.next_full = Some((FullCycleReason::EventsOff, None));
        self.restart_ticker().await;
    }
}

/// What a full cycle is for, in events mode.
#[derive(Debug, Clone)]
pub(super) struct FullCyclePlan {
    pub reason: FullCycleReason,
    /// The position a poll asked this cycle to record (kept for a retry when it fails).
    pub resume: Option<EventsState>,
    /// The position it records when it completes (`None`: events mode is not polling).
    pub commit: Option<EventsState>,
}
