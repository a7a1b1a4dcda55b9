//! The real world around [`super::run`]: the instance lock, Unix signals, the cron scheduler
//! (`tokio-cron-scheduler`), systemd notifications (`sd-notify`), the daemon's one [`Metrics`]
//! handle, and the cycle against the real Okta and Spot clients with the metrics observer
//! installed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::{info, warn};

use super::{CycleRunner, Deps, Notice, Notifier, Status, Ticker};
use crate::commands::clients;
use crate::config::{self, Schedule, Settings};
use crate::cycle::{run_cycle_controlled, CycleControl, CycleOptions};
use crate::events::batch::PollOutcome;
use crate::http::Observer;
use crate::ledger::{EventsState, LedgerStore};
use crate::lock::InstanceLock;
use crate::metrics::Metrics;
use crate::okta::oauth::SCOPE_LOGS_READ;
use crate::okta::OktaClient;
use crate::report::{exit, Mode, Report};
use crate::spot::SpotClient;
use crate::Error;

/// `okta-spot-sync run`: takes the lock, wires signals, systemd and the scheduler, and runs
/// until SIGTERM or SIGINT. Returns the exit code.
pub async fn service(settings: Settings, config_path: PathBuf) -> Result<i32, Error> {
    let _lock = InstanceLock::acquire(&settings.sync.state_file, "run")?;
    let signal_error =
        |e: std::io::Error| Error::Config(format!("cannot install a signal handler: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut hup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let (reload_tx, reloads) = mpsc::channel(4);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading the configuration");
            let _ = reload_tx.try_send(());
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
    };
    let listener = match settings.daemon.listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            Error::Config(format!(
                "daemon.listen = \"{addr}\": cannot listen there ({e}); pick a free port, or \"\" to turn the server off"
            ))
        })?),
        None => None,
    };
    let watchdog = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
    );
    let reload = Box::new(move || {
        let loaded = config::load_from_process_env(&config_path)?;
        for warning in &loaded.warnings {
            warn!("{warning}");
        }
        Ok(loaded.settings)
    });
    let deps = Deps {
        settings,
        reload,
        reloads,
        runner: Arc::new(ApiCycles::default()),
        ticker: Box::new(CronTicker::default()),
        audit_ticker: Box::new(CronTicker::default()),
        notifier: Arc::new(SdNotifier),
        listener,
        watchdog,
        status: Arc::new(Mutex::new(Status::default())),
        metrics: Metrics::new(),
    };
    super::run(deps, shutdown).await?;
    Ok(exit::OK)
}

/// systemd's watchdog interval, as `sd_watchdog_enabled(3)` reads it: `WATCHDOG_USEC`, for
/// this process when `WATCHDOG_PID` is unset or names it. (`sd_notify::watchdog_enabled`
/// insists on `WATCHDOG_PID`.)
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    match pid {
        Some(p) if p.trim().parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

/// The clients of an events poll, with the daemon's observer installed; the Okta client asks
/// for `okta.logs.read` on top of `okta.scopes` (OAuth).
pub fn poll_clients(
    settings: &Settings,
    observer: Observer,
) -> Result<(OktaClient, SpotClient), Error> {
    let (okta, spot) = clients(settings)?;
    let okta = okta
        .with_extra_scopes(&[SCOPE_LOGS_READ])
        .with_observer(observer.clone());
    Ok((okta, spot.with_observer(observer)))
}

/// Cycles against the real APIs, every request reported to the daemon's observer. The events
/// polls' clients are kept for a generation of settings (a poll every 15 s must not open new
/// connections, nor fetch a new OAuth token, each time).
#[derive(Default)]
pub struct ApiCycles {
    polling: Mutex<Option<PollClients>>,
}

/// One generation's events clients.
type PollClients = (u64, Arc<OktaClient>, Arc<SpotClient>);

impl ApiCycles {
    fn poll_clients(
        &self,
        settings: &Settings,
        generation: u64,
        observer: Observer,
    ) -> Result<(Arc<OktaClient>, Arc<SpotClient>), Error> {
        let mut kept = self.polling.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, okta, spot)) = kept.as_ref() {
            if *g == generation {
                return Ok((okta.clone(), spot.clone()));
            }
        }
        let (okta, spot) = poll_clients(settings, observer)?;
        let (okta, spot) = (Arc::new(okta), Arc::new(spot));
        *kept = Some((generation, okta.clone(), spot.clone()));
        Ok((okta, spot))
    }
}

impl CycleRunner for ApiCycles {
    fn poll(
        &self,
        settings: Settings,
        generation: u64,
        state: EventsState,
        control: CycleControl,
        observer: Observer,
    ) -> BoxFuture<'static, Result<PollOutcome, Error>> {
        let clients = self.poll_clients(&settings, generation, observer);
        Box::pin(async move {
            let (okta, spot) = clients?;
            let store = LedgerStore::new(&settings.sync.state_file);
            crate::events::poll(
                &settings,
                okta.as_ref(),
                spot.as_ref(),
                &store,
                &state,
                &control,
            )
            .await
        })
    }

    fn run(
        &self,
        settings: Settings,
        control: CycleControl,
        observer: Observer,
    ) -> BoxFuture<'static, Result<Report, Error>> {
        Box::pin(async move {
            let mut settings = settings;
            if settings.events.enabled {
                // Leaves the events batches part of the share (see the constant).
                let share = &mut settings.okta.max_api_capacity_percent;
                *share = share
                    .saturating_sub(crate::events::decide::FULL_READ_HEADROOM_PERCENT)
                    .max(1);
            }
            let (okta, spot) = clients(&settings)?;
            let okta = okta.with_observer(observer.clone());
            let spot = spot.with_observer(observer);
            let store = LedgerStore::new(&settings.sync.state_file);
            run_cycle_controlled(
                &settings,
                &okta,
                &spot,
                &store,
                Mode::Apply,
                &CycleOptions::default(),
                &control,
            )
            .await
        })
    }
}

/// Ticks on a cron schedule (with seconds, in UTC) with `tokio-cron-scheduler`.
#[derive(Default)]
pub struct CronTicker {
    scheduler: Option<JobScheduler>,
}

fn scheduler_error(schedule: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "sync.schedule = {schedule:?} cannot be scheduled ({e}); use a cron expression with seconds, e.g. \"0 */10 * * * *\""
    ))
}

impl Ticker for CronTicker {
    fn start(&mut self, schedule: &Schedule) -> BoxFuture<'_, Result<mpsc::Receiver<()>, Error>> {
        let schedule = schedule.as_str().to_string();
        Box::pin(async move {
            // Build the new one first, so a bad schedule leaves the old one running.
            let (tx, rx) = mpsc::channel(1);
            let job = Job::new_async(schedule.as_str(), move |_, _| {
                // Full channel: a tick is already waiting; this one adds nothing.
                let _ = tx.try_send(());
                Box::pin(async {})
            })
            .map_err(|e| scheduler_error(&schedule, e))?;
            let scheduler = JobScheduler::new()
                .await
                .map_err(|e| scheduler_error(&schedule, e))?;
            scheduler
                .add(job)
                .await
                .map_err(|e| scheduler_error(&schedule, e))?;
            scheduler
                .start()
                .await
                .map_err(|e| scheduler_error(&schedule, e))?;
            if let Some(mut old) = self.scheduler.replace(scheduler) {
                let _ = old.shutdown().await;
            }
            Ok(rx)
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(mut s) = self.scheduler.take() {
                let _ = s.shutdown().await;
            }
        })
    }
}

/// Notifies systemd through `$NOTIFY_SOCKET`; does nothing without it.
pub struct SdNotifier;

impl Notifier for SdNotifier {
    fn notify(&self, notice: Notice) {
        use sd_notify::NotifyState;
        let result = match &notice {
            Notice::Ready => sd_notify::notify(false, &[NotifyState::Ready]),
            Notice::Status(s) => sd_notify::notify(false, &[NotifyState::Status(s)]),
            Notice::Watchdog => sd_notify::notify(false, &[NotifyState::Watchdog]),
            Notice::Stopping => sd_notify::notify(false, &[NotifyState::Stopping]),
        };
        if let Err(e) = result {
            tracing::debug!("sd_notify {notice:?} failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_follows_sd_watchdog_enabled() {
        let me = std::process::id().to_string();
        let two_s = Some(Duration::from_secs(2));
        assert_eq!(watchdog_interval(Some("2000000"), None), two_s);
        assert_eq!(watchdog_interval(Some("2000000"), Some(&me)), two_s);
        assert_eq!(watchdog_interval(Some("2000000"), Some("1")), None);
        assert_eq!(watchdog_interval(Some("0"), None), None);
        assert_eq!(watchdog_interval(None, None), None);
    }
}
