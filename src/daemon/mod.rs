//! The daemon (`okta-spot-sync run`): scheduled cycles, error policy, reload and shutdown.
//!
//! [`run`] is the loop, with everything from the outside passed in so tests drive it with
//! tokio's paused clock: the schedule's ticks ([`Ticker`]), the cycle itself
//! ([`CycleRunner`]), reload requests, systemd notifications ([`Notifier`]), the [`Metrics`]
//! handle it records into (and `/metrics` renders, and the cycle's HTTP observer feeds; kube-rs
//! style, metrics in the context, so each test counts exactly) and the shutdown signal as a
//! future (mini-redis style). [`service`] wires the real ones: the cron scheduler, the Okta and
//! Spot clients, SIGHUP/SIGTERM/SIGINT, `sd_notify` and one `Metrics` for the process. The
//! loop never installs a global recorder.
//!
//! Rules the loop keeps:
//! - one cycle at a time: a tick that arrives while a cycle runs is skipped and counted, never
//!   queued;
//! - the access audit (`sync.audit_schedule`, repairing when `sync.audit_repair`) runs in the
//!   same loop, so never at the same time as a cycle: an audit tick that arrives during a
//!   cycle waits for it to end (and a cycle tick during an audit waits for the audit); a
//!   halted daemon skips audits. An audit's failure is logged and counted, never retried
//!   early and never halts cycling;
//! - error policy (kube-rs `error_policy` style: the pure [`error_policy`] decides a [`Next`],
//!   one function, `Daemon::carry_out`, does every effect of it): after `n` failed cycles in a
//!   row the next one runs `backoff(n)` later (5 s doubling, capped at 5 min), ticks before
//!   that are skipped; a completed cycle resets it;
//! - a permanent error ([`Error::is_permanent`]: configuration, credentials, state file) stops
//!   cycling: before the first successful cycle `run` returns it (the service fails to start);
//!   after, the daemon stays up, says so in the log, systemd's STATUS, `/readyz` and the
//!   `okta_spot_sync_halted` gauge, and resumes on a reload that succeeds;
//! - shutdown: no new cycle and no new action starts; the actions in flight get
//!   [`SHUTDOWN_GRACE`] to finish and be recorded (each create's `pending` record is durable
//!   before it is sent, and results are flushed before the cycle ends: see
//!   [`crate::ledger::LedgerWriter`]);
//! - reload: the new configuration is loaded and validated in full; if it is invalid it is
//!   rejected, logged, and the running one kept. `sync.state_file`, `daemon.listen` and
//!   `log.*` only change on restart (the lock and the listener are bound to the old ones).

mod events;
mod server;
mod service;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, Interval};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument};

use crate::audit::AuditReport;
use crate::config::{Schedule, Settings};
use crate::cycle::CycleControl;
use crate::events::batch::PollOutcome;
use crate::events::FullCycleReason;
use crate::http::Observer;
use crate::ledger::{EventsState, LedgerStore};
use crate::metrics::{self, Metrics};
use crate::report::Report;
use crate::Error;

pub use server::serve;
pub use service::{service, ApiCycles, CronTicker, SdNotifier};

/// How long actions in flight may take to finish after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// First retry delay after a failed cycle; doubles per failure in a row.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// The longest delay between retries of failing cycles.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// The delay before the next cycle after `failures` failed cycles in a row (≥ 1).
pub fn backoff(failures: u32) -> Duration {
    crate::backoff::exponential(BACKOFF_BASE, BACKOFF_CAP, failures.saturating_sub(1))
}

/// What the loop does after a failed cycle: the daemon's error policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A transient failure, the `failures`-th in a row: the next cycle runs `wait` later
    /// (ticks before then are skipped).
    RetryAfter { failures: u32, wait: Duration },
    /// A permanent error after the daemon was ready: stop cycling, stay up, resume on a
    /// reload that succeeds.
    Halt,
    /// A permanent error before the daemon was ever ready: `run` returns it (the service
    /// fails to start).
    Exit,
}

/// The error policy (kube-rs `error_policy` style), pure: from the error, how many cycles
/// failed in a row before this one, and whether the daemon has been ready (both APIs read
/// once), what to do next. Retrying cannot fix a permanent error ([`Error::is_permanent`]:
/// configuration, credentials, state file); anything else is retried with [`backoff`].
pub fn error_policy(error: &Error, failures_before: u32, ready: bool) -> Next {
    match (error.is_permanent(), ready) {
        (true, false) => Next::Exit,
        (true, true) => Next::Halt,
        (false, _) => {
            let failures = failures_before.saturating_add(1);
            Next::RetryAfter {
                failures,
                wait: backoff(failures),
            }
        }
    }
}

/// What a reload changes, beyond taking the new settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadChange {
    /// Settings that changed but take effect only on restart, one message each.
    pub on_restart: Vec<String>,
    /// `sync.schedule` changed: the ticker is restarted with the new one.
    pub schedule: bool,
    /// `sync.audit_schedule` changed: the audit ticker is restarted (or stopped).
    pub audit_schedule: bool,
    /// `[events]` changed: events mode restarts (a refused System Log is tried again only
    /// then, or on restart).
    pub events: bool,
}

/// Decides what a reload from `old` to `new` changes, pure: keeps in `new` what only a restart
/// can change (`sync.state_file`: the lock is held on the old one) and says so.
/// `daemon.listen` and `log.*` are read only at start, so their change is only reported.
pub fn reload_change(old: &Settings, new: &mut Settings) -> ReloadChange {
    let mut change = ReloadChange::default();
    if new.sync.state_file != old.sync.state_file {
        change.on_restart.push(format!(
            "sync.state_file changed; it takes effect on restart (the lock is held on {})",
            old.sync.state_file.display()
        ));
        new.sync.state_file = old.sync.state_file.clone();
    }
    if new.daemon.listen != old.daemon.listen {
        change
            .on_restart
            .push("daemon.listen changed; it takes effect on restart".into());
    }
    if new.log.format != old.log.format || new.log.level != old.log.level {
        change
            .on_restart
            .push("log.format and log.level take effect on restart".into());
    }
    change.schedule = new.sync.schedule != old.sync.schedule
        || new.sync.fallback_schedule != old.sync.fallback_schedule;
    change.events = new.events != old.events;
    change.audit_schedule = new.sync.audit_schedule != old.sync.audit_schedule;
    change
}

/// What the daemon tells its supervisor (systemd's `sd_notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`: both APIs have been read once.
    Ready,
    /// `STATUS=…`: one line for `systemctl status`.
    Status(String),
    /// `WATCHDOG=1`: the loop is alive.
    Watchdog,
    /// `STOPPING=1`.
    Stopping,
}

pub trait Notifier: Send + Sync {
    fn notify(&self, notice: Notice);
}

/// A notifier that does nothing (no supervisor).
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify(&self, _: Notice) {}
}

/// Runs one cycle with the given settings. The production runner is [`ApiCycles`].
pub trait CycleRunner: Send + Sync {
    /// `observer` counts every HTTP attempt in the daemon's [`Metrics`]: install it on the
    /// clients (`with_observer`). The daemon records the cycle itself from the result.
    fn run(
        &self,
        settings: Settings,
        control: CycleControl,
        observer: Observer,
    ) -> BoxFuture<'static, Result<Report, Error>>;

    /// Events mode: reads the System Log position from the state file (once, at start).
    fn load_events(&self, settings: Settings) -> BoxFuture<'static, Result<EventsState, Error>> {
        Box::pin(async move {
            let store = LedgerStore::new(&settings.sync.state_file);
            tokio::task::spawn_blocking(move || store.load_events())
                .await
                .map_err(|e| Error::Ledger {
                    path: settings.sync.state_file.clone(),
                    detail: format!("loading it was interrupted: {e}"),
                })?
        })
    }

    /// Events mode: one poll of the System Log from `state` and its batch
    /// ([`crate::events::poll`]); `generation` changes whenever the settings do (a runner may
    /// keep its clients, and their tokens, between polls of one generation). By default,
    /// against the real APIs with new clients each time.
    fn poll(
        &self,
        settings: Settings,
        _generation: u64,
        state: EventsState,
        control: CycleControl,
        observer: Observer,
    ) -> BoxFuture<'static, Result<PollOutcome, Error>> {
        Box::pin(async move {
            let (okta, spot) = service::poll_clients(&settings, observer)?;
            let store = LedgerStore::new(&settings.sync.state_file);
            crate::events::poll(&settings, &okta, &spot, &store, &state, &control).await
        })
    }

    /// Runs one access audit (adding missing grants when `repair`), every request reported to
    /// `observer`; no new write starts once `stop` is cancelled. The daemon records it from the
    /// result. By default, against the real Spot API ([`crate::audit::run_with_api`]).
    fn audit(
        &self,
        settings: Settings,
        repair: bool,
        observer: Observer,
        stop: CancellationToken,
    ) -> BoxFuture<'static, Result<AuditReport, Error>> {
        Box::pin(async move {
            crate::audit::run_with_api(&settings, repair, Some(observer), &stop).await
        })
    }
}

/// Produces the schedule's ticks.
pub trait Ticker: Send {
    /// (Re)starts ticking on `schedule` (cron with seconds, checked at load); ticks arrive on
    /// the receiver.
    fn start(&mut self, schedule: &Schedule) -> BoxFuture<'_, Result<mpsc::Receiver<()>, Error>>;
    /// Stops ticking.
    fn stop(&mut self) -> BoxFuture<'_, ()>;
}

/// A ticker whose ticks are sent by hand (tests only: the `testing` feature): `start` hands
/// out the receiver once.
#[cfg(any(test, feature = "testing"))]
pub struct ChannelTicker(Option<mpsc::Receiver<()>>);

#[cfg(any(test, feature = "testing"))]
impl ChannelTicker {
    pub fn new() -> (mpsc::Sender<()>, ChannelTicker) {
        let (tx, rx) = mpsc::channel(16);
        (tx, ChannelTicker(Some(rx)))
    }
}

#[cfg(any(test, feature = "testing"))]
impl Ticker for ChannelTicker {
    fn start(&mut self, _schedule: &Schedule) -> BoxFuture<'_, Result<mpsc::Receiver<()>, Error>> {
        let rx = self.0.take().unwrap_or_else(|| mpsc::channel(1).1);
        Box::pin(async move { Ok(rx) })
    }
    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Loads and validates the configuration again (on SIGHUP).
pub type Reload = Box<dyn Fn() -> Result<Settings, Error> + Send + Sync>;

/// What the daemon knows about itself, shared with `/readyz` and with tests.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// When the last complete cycle (anything but an error) finished.
    pub last_complete: Option<Instant>,
    pub readiness_max_age: Duration,
    pub consecutive_failures: u32,
    /// Why cycling is stopped, when a permanent error stopped it.
    pub halted: Option<String>,
    /// The last cycle's one-line summary or error.
    pub last_summary: Option<String>,
    pub last_reload_error: Option<String>,
    /// `sync.max_deletes` of the running configuration (lets tests see which one runs).
    pub max_deletes: usize,
    /// Events mode in one line, for `/readyz` (`None`: off).
    pub events: Option<String>,
}

impl Status {
    /// `Ok(age)` while ready; `Err(reason)` otherwise.
    pub fn readiness(&self, now: Instant) -> Result<Duration, String> {
        if let Some(why) = &self.halted {
            return Err(format!("halted: {why}"));
        }
        match self.last_complete {
            None => Err("no cycle has completed yet".into()),
            Some(at) => {
                let age = now.saturating_duration_since(at);
                if age <= self.readiness_max_age {
                    Ok(age)
                } else {
                    Err(format!(
                        "the last complete cycle finished {}s ago, more than daemon.readiness_max_age ({}s){}",
                        age.as_secs(),
                        self.readiness_max_age.as_secs(),
                        match self.consecutive_failures {
                            0 => String::new(),
                            n => format!("; {n} cycle(s) in a row failed"),
                        }
                    ))
                }
            }
        }
    }
}

pub type SharedStatus = Arc<Mutex<Status>>;

/// Everything [`run`] needs from the outside.
pub struct Deps {
    pub settings: Settings,
    pub reload: Reload,
    /// One message per reload request (SIGHUP).
    pub reloads: mpsc::Receiver<()>,
    pub runner: Arc<dyn CycleRunner>,
    pub ticker: Box<dyn Ticker>,
    /// Ticks of `sync.audit_schedule` (not started when it is `""`).
    pub audit_ticker: Box<dyn Ticker>,
    pub notifier: Arc<dyn Notifier>,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`, already bound.
    pub listener: Option<TcpListener>,
    /// systemd's watchdog interval (`WATCHDOG_USEC`); pings go out at half of it.
    pub watchdog: Option<Duration>,
    pub status: SharedStatus,
    /// Where the daemon and the HTTP clients record, and `/metrics` renders from.
    pub metrics: Metrics,
}

/// Runs the daemon until `shutdown` completes. `Ok` on a clean stop; `Err` when it could not
/// start, or a permanent error came before the first successful cycle.
pub async fn run<F>(deps: Deps, shutdown: F) -> Result<(), Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        });
    }
    let result = Daemon::new(deps, stop.clone()).run().await;
    stop.cancel();
    result
}

struct Daemon {
    settings: Settings,
    reload: Reload,
    reloads: mpsc::Receiver<()>,
    reloads_open: bool,
    runner: Arc<dyn CycleRunner>,
    ticker: Box<dyn Ticker>,
    ticks: mpsc::Receiver<()>,
    ticks_open: bool,
    audit_ticker: Box<dyn Ticker>,
    audit_ticks: mpsc::Receiver<()>,
    audit_ticks_open: bool,
    notifier: Arc<dyn Notifier>,
    listener: Option<TcpListener>,
    watchdog: Option<Interval>,
    status: SharedStatus,
    metrics: Metrics,
    stop: CancellationToken,
    ready: Arc<AtomicBool>,
    retry_at: Option<Instant>,
    pending_reload: bool,
    events: events::EventsMode,
    /// Counts applied reloads: a runner may keep clients for one generation of settings.
    generation: u64,
    /// The schedule the ticker runs on.
    ticking: Option<Schedule>,
}

/// How a cycle ended, from the loop's point of view.
enum CycleEnd {
    Done(Box<Result<Report, Error>>),
    /// Shutdown came and the grace period ran out; the cycle was abandoned.
    Abandoned,
}

impl Daemon {
    fn new(deps: Deps, stop: CancellationToken) -> Daemon {
        let watchdog = deps.watchdog.filter(|d| !d.is_zero()).map(|d| {
            let mut i = tokio::time::interval(d / 2);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        Daemon {
            settings: deps.settings,
            reload: deps.reload,
            reloads: deps.reloads,
            reloads_open: true,
            runner: deps.runner,
            ticker: deps.ticker,
            ticks: mpsc::channel(1).1,
            ticks_open: false,
            audit_ticker: deps.audit_ticker,
            audit_ticks: mpsc::channel(1).1,
            audit_ticks_open: false,
            notifier: deps.notifier,
            listener: deps.listener,
            watchdog,
            status: deps.status,
            metrics: deps.metrics,
            stop,
            ready: Arc::new(AtomicBool::new(false)),
            retry_at: None,
            pending_reload: false,
            events: events::EventsMode::new(),
            generation: 0,
            ticking: None,
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_settings(&self) {
        let mut s = self.status();
        s.readiness_max_age = self.settings.daemon.readiness_max_age;
        s.max_deletes = self.settings.sync.max_deletes;
    }

    async fn run(mut self) -> Result<(), Error> {
        self.publish_settings();
        if let Some(listener) = self.listener.take() {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "serving /healthz, /readyz and /metrics");
            }
            tokio::spawn(serve(
                listener,
                self.status.clone(),
                self.metrics.clone(),
                self.stop.clone(),
            ));
        }
        let mut run_now = self.start_events(true).await;
        let schedule = self.full_cycle_schedule().clone();
        self.ticks = self.ticker.start(&schedule).await?;
        self.ticks_open = true;
        self.ticking = Some(schedule.clone());
        self.start_audit_ticker().await?;
        info!(
            schedule = %schedule,
            run_on_start = self.settings.sync.run_on_start,
            events = self.settings.events.enabled,
            "daemon started; cron schedule in UTC"
        );
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            if run_now {
                run_now = false;
                match self.cycle().await {
                    CycleEnd::Abandoned => break,
                    CycleEnd::Done(result) => self.after_cycle(*result)?,
                }
                if self.pending_reload {
                    self.pending_reload = false;
                    run_now |= self.reload().await;
                }
                continue;
            }
            let retry_at = self.retry_at;
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                r = self.reloads.recv(), if self.reloads_open => match r {
                    Some(()) => run_now = self.reload().await,
                    None => self.reloads_open = false,
                },
                t = self.ticks.recv(), if self.ticks_open => match t {
                    Some(()) => run_now = self.on_tick(),
                    None => {
                        warn!("the scheduler stopped ticking; only retries and reloads start cycles now");
                        self.ticks_open = false;
                    }
                },
                a = self.audit_ticks.recv(), if self.audit_ticks_open => match a {
                    Some(()) => {
                        if self.audit().await {
                            break;
                        }
                        if self.pending_reload {
                            self.pending_reload = false;
                            run_now |= self.reload().await;
                        }
                    }
                    None => {
                        warn!("the audit scheduler stopped ticking; no more scheduled audits");
                        self.audit_ticks_open = false;
                    }
                },
                _ = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                    run_now = self.status().halted.is_none();
                }
                _ = events::poll_tick(&mut self.events.poll), if self.events.active => {
                    if self.status().halted.is_some() {
                        continue;
                    }
                    match self.poll().await {
                        Err(events::PollStop::Abandoned) => break,
                        Err(events::PollStop::Fatal(e)) => return Err(e),
                        // During a back-off the full cycle waits for its retry.
                        Ok(full) => run_now = full && self.retry_at.is_none(),
                    }
                    if self.pending_reload {
                        self.pending_reload = false;
                        run_now |= self.reload().await;
                    }
                }
                _ = watchdog_tick(&mut self.watchdog) => self.notifier.notify(Notice::Watchdog),
            }
        }
        self.notifier.notify(Notice::Stopping);
        self.ticker.stop().await;
        info!("daemon stopped; the state file is up to date");
        Ok(())
    }

    /// (Re)starts the audit ticker on `sync.audit_schedule`, or stops it when that is off.
    async fn start_audit_ticker(&mut self) -> Result<(), Error> {
        match &self.settings.sync.audit_schedule {
            Some(schedule) => {
                self.audit_ticks = self.audit_ticker.start(schedule).await?;
                self.audit_ticks_open = true;
                info!(audit_schedule = %schedule, repair = self.settings.sync.audit_repair, "access audits scheduled (UTC)");
            }
            None => {
                self.audit_ticker.stop().await;
                self.audit_ticks_open = false;
                info!("access audits are off (sync.audit_schedule = \"\")");
            }
        }
        Ok(())
    }

    /// One scheduled access audit, between cycles. Returns `true` when shutdown came and the
    /// grace period ran out (the audit was abandoned).
    async fn audit(&mut self) -> bool {
        let halted = self.status().halted.clone();
        if let Some(why) = halted {
            info!("scheduled audit skipped: halted: {why}");
            return false;
        }
        let repair = self.settings.sync.audit_repair;
        let span = info_span!("audit", repair);
        span.in_scope(|| info!("access audit started"));
        let mut fut = self
            .runner
            .audit(
                self.settings.clone(),
                repair,
                self.metrics.observer(),
                self.stop.clone(),
            )
            .instrument(span.clone());
        let Some(result) = self
            .supervise(&mut fut, &span, "the audit", "starts no new repair")
            .await
        else {
            return true;
        };
        self.metrics.record_audit(result.as_ref().ok());
        span.in_scope(|| match &result {
            Ok(report) if report.summary.drift > 0 || report.summary.unread > 0 => {
                warn!("{}", report.one_line());
                for d in &report.drift {
                    warn!(
                        email = %d.email,
                        spot_user_id = %d.spot_user_id,
                        kind = d.kind.as_str(),
                        status = d.status.as_str(),
                        "access drift: {}",
                        d.detail
                    );
                }
            }
            Ok(report) => info!("{}", report.one_line()),
            Err(e) => warn!("access audit failed: {e}"),
        });
        false
    }

    /// Runs `fut` (an audit or an events poll, between cycles) to its end, while keeping the
    /// loop's duties: a shutdown gives it [`SHUTDOWN_GRACE`] (`None` when that ran out: it was
    /// abandoned), a reload request waits for its end, the watchdog is fed.
    async fn supervise<T>(
        &mut self,
        fut: &mut (impl Future<Output = T> + Unpin),
        span: &tracing::Span,
        what: &str,
        on_stop: &str,
    ) -> Option<T> {
        let mut deadline: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                r = &mut *fut => return Some(r),
                _ = self.stop.cancelled(), if deadline.is_none() => {
                    span.in_scope(|| info!("shutdown requested: {what} {on_stop}"));
                    self.notifier.notify(Notice::Stopping);
                    deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    span.in_scope(|| warn!("{what} is still running after {}s; stopping anyway", SHUTDOWN_GRACE.as_secs()));
                    return None;
                }
                r = self.reloads.recv(), if self.reloads_open => match r {
                    Some(()) => self.pending_reload = true,
                    None => self.reloads_open = false,
                },
                _ = watchdog_tick(&mut self.watchdog) => self.notifier.notify(Notice::Watchdog),
            }
        }
    }

    /// A schedule tick while idle: `true` when it should start a cycle.
    fn on_tick(&mut self) -> bool {
        // (Not `if let Some(..) = self.status()…`: the guard would live through the body,
        // and `skip` locks the status again.)
        let halted = self.status().halted.clone();
        if let Some(why) = halted {
            self.skip("halted", &format!("halted: {why}"));
            return false;
        }
        if let Some(at) = self.retry_at {
            if at > Instant::now() {
                let wait = at - Instant::now();
                self.skip(
                    "backoff",
                    &format!(
                        "backing off after failed cycles, next try in {}s",
                        wait.as_secs()
                    ),
                );
                return false;
            }
        }
        self.retry_at = None;
        true
    }

    fn skip(&self, reason: &'static str, why: &str) {
        info!(reason, "schedule tick skipped: {why}");
        self.metrics.tick_skipped(reason);
    }

    async fn cycle(&mut self) -> CycleEnd {
        let cycle_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let span = info_span!("cycle", cycle_id = %cycle_id);
        span.in_scope(|| info!("cycle started"));
        let started = Instant::now();
        let after_read: Arc<dyn Fn() + Send + Sync> = {
            let ready = self.ready.clone();
            let notifier = self.notifier.clone();
            Arc::new(move || {
                if !ready.swap(true, Ordering::SeqCst) {
                    info!("both APIs read: ready");
                    notifier.notify(Notice::Ready);
                }
            })
        };
        let plan = self.full_cycle_plan(FullCycleReason::Schedule);
        span.in_scope(|| info!(reason = plan.reason.as_str(), "full cycle"));
        self.metrics.full_cycle(plan.reason);
        let control = CycleControl {
            stop: self.stop.clone(),
            after_read: Some(after_read),
            commit_events: plan.commit.clone(),
            ..CycleControl::default()
        };
        let recorded = control.events_recorded.clone();
        let mut fut: Pin<Box<dyn Future<Output = Result<Report, Error>> + Send>> = Box::pin(
            self.runner
                .run(self.settings.clone(), control, self.metrics.observer())
                .instrument(span.clone()),
        );
        let mut deadline: Option<Instant> = None;
        let end = loop {
            tokio::select! {
                biased;
                r = &mut fut => break CycleEnd::Done(Box::new(r)),
                _ = self.stop.cancelled(), if deadline.is_none() => {
                    span.in_scope(|| info!(
                        grace_s = SHUTDOWN_GRACE.as_secs(),
                        "shutdown requested: letting the actions in flight finish, starting no new ones"
                    ));
                    self.notifier.notify(Notice::Stopping);
                    deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    span.in_scope(|| warn!(
                        "actions still in flight after {}s; stopping anyway. The state file records \
                         each create as pending before it is sent, so the next run completes it",
                        SHUTDOWN_GRACE.as_secs()
                    ));
                    break CycleEnd::Abandoned;
                }
                r = self.reloads.recv(), if self.reloads_open => match r {
                    Some(()) => {
                        span.in_scope(|| info!("reload requested during a cycle; applying it when the cycle ends"));
                        self.pending_reload = true;
                    }
                    None => self.reloads_open = false,
                },
                t = self.ticks.recv(), if self.ticks_open => match t {
                    Some(()) => span.in_scope(|| self.skip("cycle_running", "the previous cycle is still running")),
                    None => self.ticks_open = false,
                },
                _ = watchdog_tick(&mut self.watchdog) => self.notifier.notify(Notice::Watchdog),
            }
        };
        let elapsed = started.elapsed();
        crate::memory::give_back();
        if let CycleEnd::Done(result) = &end {
            let result: &Result<Report, Error> = result;
            let recorded = recorded.lock().unwrap_or_else(|e| e.into_inner()).take();
            self.after_full_cycle(plan, result.is_ok(), recorded);
            self.metrics.record_cycle(result.as_ref().ok(), elapsed);
            span.in_scope(|| match result {
                Ok(report) => info!(
                    duration_ms = elapsed.as_millis() as u64,
                    result = metrics::cycle_result(report),
                    "cycle finished: {}",
                    report.one_line()
                ),
                Err(e) => warn!(
                    duration_ms = elapsed.as_millis() as u64,
                    permanent = e.is_permanent(),
                    "cycle failed: {e}"
                ),
            });
        }
        end
    }

    /// What a cycle's end calls for: a completed cycle resets the failures; for a failed one
    /// [`error_policy`] decides and [`Daemon::carry_out`] does it.
    fn after_cycle(&mut self, result: Result<Report, Error>) -> Result<(), Error> {
        match result {
            Ok(report) => {
                self.completed(&report);
                Ok(())
            }
            Err(error) => {
                let failures_before = self.status().consecutive_failures;
                let ready = self.ready.load(Ordering::SeqCst);
                let next = error_policy(&error, failures_before, ready);
                self.carry_out(next, error)
            }
        }
    }

    fn completed(&mut self, report: &Report) {
        if !self.ready.swap(true, Ordering::SeqCst) {
            self.notifier.notify(Notice::Ready);
        }
        let line = report.one_line();
        self.retry_at = None;
        self.metrics.set_consecutive_failures(0);
        {
            let mut s = self.status();
            s.last_complete = Some(Instant::now());
            s.consecutive_failures = 0;
            s.last_summary = Some(line.clone());
        }
        self.notifier
            .notify(Notice::Status(format!("last cycle: {line}")));
    }

    /// Carries out the error policy's decision for a failed cycle: every effect (the retry
    /// timer, the metrics, `/readyz`'s status, the log and systemd's STATUS) is here. `Exit`
    /// hands the error back for `run` to return.
    fn carry_out(&mut self, next: Next, error: Error) -> Result<(), Error> {
        let summary = match next {
            Next::Exit => return Err(error),
            Next::Halt => {
                error!(
                    "stopping the schedule: {error}. This will not go away by retrying; fix the \
                     configuration, credentials or state file, then reload (systemctl reload \
                     okta-spot-sync) or restart"
                );
                self.retry_at = None;
                self.metrics.set_halted(true);
                self.status().halted = Some(error.to_string());
                format!("halted: {error}; fix it, then reload")
            }
            Next::RetryAfter { failures, wait } => {
                warn!(
                    failures,
                    retry_in_s = wait.as_secs(),
                    "cycle failed ({failures} in a row); retrying in {}s",
                    wait.as_secs()
                );
                self.retry_at = Some(Instant::now() + wait);
                self.metrics.set_consecutive_failures(failures);
                self.status().consecutive_failures = failures;
                format!(
                    "last cycle failed ({failures} in a row, retry in {}s): {error}",
                    wait.as_secs()
                )
            }
        };
        {
            let mut s = self.status();
            s.last_summary = Some(summary.clone());
        }
        self.notifier.notify(Notice::Status(summary));
        Ok(())
    }

    /// Loads the configuration again. Returns `true` when a halted daemon should resume now.
    async fn reload(&mut self) -> bool {
        let mut new = match (self.reload)() {
            Ok(s) => s,
            Err(e) => {
                error!("configuration reload rejected, keeping the running configuration: {e}");
                self.metrics.config_reload(false);
                self.status().last_reload_error = Some(e.to_string());
                return false;
            }
        };
        let change = reload_change(&self.settings, &mut new);
        for message in &change.on_restart {
            warn!("{message}");
        }
        if change.schedule {
            let schedule = match self.events.active || !new.events.enabled {
                true => &new.sync.schedule,
                false => &new.sync.fallback_schedule,
            };
            match self.ticker.start(schedule).await {
                Ok(rx) => {
                    self.ticks = rx;
                    self.ticks_open = true;
                    self.ticking = Some(schedule.clone());
                    info!(schedule = %schedule, "schedule changed");
                }
                Err(e) => {
                    error!("configuration reload rejected, keeping the running configuration: {e}");
                    self.metrics.config_reload(false);
                    self.status().last_reload_error = Some(e.to_string());
                    // Put the old schedule back.
                    let old = self.full_cycle_schedule().clone();
                    if let Ok(rx) = self.ticker.start(&old).await {
                        self.ticks = rx;
                        self.ticking = Some(old);
                    }
                    return false;
                }
            }
        }
        let audit_schedule = change.audit_schedule;
        self.settings = new;
        self.generation += 1;
        let mut resume = false;
        if change.events || self.events.refused.is_some() {
            resume = self.start_events(false).await;
            self.restart_ticker().await;
        }
        if audit_schedule {
            if let Err(e) = self.start_audit_ticker().await {
                error!("sync.audit_schedule could not be scheduled, no audits until it is: {e}");
                self.audit_ticks_open = false;
            }
        }
        self.publish_settings();
        self.metrics.config_reload(true);
        let was_halted = {
            let mut s = self.status();
            s.last_reload_error = None;
            s.halted.take().is_some()
        };
        info!("configuration reloaded");
        if was_halted {
            self.events
                .next_full
                .get_or_insert((FullCycleReason::Other, None));
            self.metrics.set_halted(false);
            info!("resuming the schedule after the reload");
            self.notifier
                .notify(Notice::Status("configuration reloaded; resuming".into()));
        }
        was_halted || resume
    }

    /// Restarts the schedule's ticker on [`Daemon::full_cycle_schedule`] (events mode started,
    /// stopped or refused).
    async fn restart_ticker(&mut self) {
        let schedule = self.full_cycle_schedule().clone();
        if self.ticking.as_ref() == Some(&schedule) {
            return;
        }
        match self.ticker.start(&schedule).await {
            Ok(rx) => {
                self.ticks = rx;
                self.ticks_open = true;
                self.ticking = Some(schedule.clone());
                info!(schedule = %schedule, "full cycles now run on this schedule");
            }
            Err(e) => error!("the schedule {schedule} could not be started: {e}"),
        }
    }
}

async fn watchdog_tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    /// The error policy, as a table: (error, failures before, ready) → next.
    #[test]
    fn error_policy_table() {
        use crate::error::Api;
        let transport = || Error::Transport {
            api: Api::Okta,
            what: "GET /api/v1/apps/{appId}/users".into(),
            detail: "connection reset".into(),
        };
        let credentials = || Error::Credentials {
            api: Api::Spot,
            what: "GET /setup/organization/user".into(),
            status: 401,
            detail: "bad token".into(),
        };
        let config = || Error::Config("sync.schedule".into());
        let read = || Error::IncompleteRead("page 3".into());
        let retry = |failures, secs| Next::RetryAfter {
            failures,
            wait: Duration::from_secs(secs),
        };
        let table: Vec<(Error, u32, bool, Next)> = vec![
            (transport(), 0, false, retry(1, 5)),
            (transport(), 0, true, retry(1, 5)),
            (read(), 1, true, retry(2, 10)),
            (read(), 3, false, retry(4, 40)),
            (transport(), 6, true, retry(7, 300)),
            (transport(), u32::MAX, true, retry(u32::MAX, 300)),
            (credentials(), 0, false, Next::Exit),
            (credentials(), 0, true, Next::Halt),
            (config(), 5, true, Next::Halt),
            (config(), 5, false, Next::Exit),
        ];
        for (error, failures, ready, next) in table {
            assert_eq!(
                error_policy(&error, failures, ready),
                next,
                "{error} after {failures} failures, ready {ready}"
            );
        }
    }

    #[test]
    fn readiness_needs_a_recent_complete_cycle() {
        let now = Instant::now();
        let mut s = Status {
            readiness_max_age: Duration::from_secs(60),
            ..Status::default()
        };
        assert!(s.readiness(now).is_err());
        s.last_complete = Some(now);
        assert!(s.readiness(now + Duration::from_secs(60)).is_ok());
        assert!(s.readiness(now + Duration::from_secs(61)).is_err());
        s.halted = Some("bad token".into());
        assert!(s.readiness(now).unwrap_err().contains("bad token"));
    }
}
