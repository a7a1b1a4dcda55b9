//! Events mode end to end: the daemon (`daemon::run`, the real cycle and the real events poll)
//! against the bundled emulators, on tokio's paused clock. Okta changes are made through the
//! emulator's handle, which records a System Log event for each (docs/api-facts.md "Okta
//! System Log"); the tests then let virtual time pass, poll by poll, and look at Spot and at
//! what was asked of Okta. Nothing waits on wall time and nothing asserts a duration.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use okta_spot_sim::{Emulators, FailSpec, Fault, Fixture, Section};
use okta_spot_sync::config::{self, Settings};
use okta_spot_sync::daemon::{
    self, ApiCycles, ChannelTicker, Deps, NoNotifier, SharedStatus, Status,
};
use okta_spot_sync::ledger::LedgerStore;
use okta_spot_sync::metrics::Metrics;
use okta_spot_sync::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const OKTA_LIST: &str = "GET /api/v1/apps/{appId}/users";
const OKTA_ONE: &str = "GET /api/v1/apps/{appId}/users/{userId}";
const OKTA_LOGS: &str = "GET /api/v1/logs";
const POLL: Duration = Duration::from_secs(15);

const ALICE: &str = "00uDemoAlice000000x7";
const BOB: &str = "00uDemoBob00000000x7";
const DAVE: &str = "00uDemoDave0000000x7";
const ERIN: &str = "00uDemoErin0000000x7";

struct Daemon {
    state: PathBuf,
    ticks: mpsc::Sender<()>,
    status: SharedStatus,
    metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
    // Keeps the state directory of a test that starts several daemons on it.
    _dir: Option<Arc<tempfile::TempDir>>,
}

/// Settings with the state file in `dir` (the configuration and token files go elsewhere, so
/// that several daemons can share one state file).
fn settings(dir: &std::path::Path, emu: &Emulators, more_sync: &str) -> Settings {
    let config_dir = tempfile::tempdir().unwrap().keep();
    let path = emu
        .client_config(&config_dir)
        .keys(Section::Spot, "write_concurrency = 1")
        .max_retries(0)
        .without_state_file()
        .without_daemon_listen()
        .append(&format!(
            "[sync]\nstate_file = {:?}\nrun_on_start = true\n{more_sync}\n\n[daemon]\nlisten = \"\"\n\n[events]\npoll_interval = \"15s\"\n",
            dir.join("state.json")
        ))
        .write()
        .unwrap();
    config::load_from_env_vars(&path, Vec::<(String, String)>::new())
        .unwrap()
        .settings
}

async fn start_in(dir: Arc<tempfile::TempDir>, emu: &Emulators, more_sync: &str) -> Daemon {
    let settings = settings(dir.path(), emu, more_sync);
    let reload_settings = settings.clone();
    let (ticks, ticker) = ChannelTicker::new();
    let (_audit, audit_ticker) = ChannelTicker::new();
    let (_reload_tx, reloads) = mpsc::channel(1);
    let status: SharedStatus = Arc::new(Mutex::new(Status::default()));
    let metrics = Metrics::new();
    let deps = Deps {
        settings,
        reload: Box::new(move || Ok(reload_settings.clone())),
        reloads,
        runner: Arc::new(ApiCycles::default()),
        ticker: Box::new(ticker),
        audit_ticker: Box::new(audit_ticker),
        notifier: Arc::new(NoNotifier),
        listener: None,
        watchdog: None,
        status: status.clone(),
        metrics: metrics.clone(),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(deps, async move {
        let _ = stop_rx.await;
    }));
    Daemon {
        state: dir.path().join("state.json"),
        ticks,
        status,
        metrics,
        stop: Some(stop_tx),
        task,
        _dir: Some(dir),
    }
}

async fn start(emu: &Emulators, more_sync: &str) -> Daemon {
    start_in(Arc::new(tempfile::tempdir().unwrap()), emu, more_sync).await
}

impl Daemon {
    async fn stop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self.metrics.render();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("the exposition parses");
        let mut found = false;
        let sum = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .inspect(|_| found = true)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                other => panic!("{name}: {other:?}"),
            })
            .sum();
        assert!(found, "no {name} in\n{text}");
        sum
    }

    fn full_cycles(&self, reason: &str) -> f64 {
        self.metric("okta_spot_sync_full_cycles_total", &[("reason", reason)])
    }

    fn status(&self) -> Status {
        self.status.lock().unwrap().clone()
    }
}

/// Lets virtual time pass in one-second steps until `done` holds; panics after `limit`.
async fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = tokio::time::Instant::now();
    while !done() {
        assert!(started.elapsed() <= limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    started.elapsed()
}

/// Waits for the first full cycle (the start) to have completed.
async fn started(emu: &Emulators, d: &Daemon) {
    within(Duration::from_secs(60), "the first full cycle", || {
        d.status().last_complete.is_some()
    })
    .await;
    assert!(emu.spot.user_by_email("alice@example.com").is_some());
    assert_eq!(emu.okta.request_count(OKTA_LIST), 1);
}

fn has(emu: &Emulators, email: &str) -> bool {
    emu.spot.user_by_email(email).is_some()
}

/// Every kind of change reaches Spot within 3 poll intervals, without another read of the
/// app's user list: an unassignment, a deactivation, an assignment, a reactivation (a
/// returning user is activated) and a role change.
#[tokio::test(start_paused = true)]
async fn each_change_reaches_spot_within_three_polls_without_a_full_read() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut d = start(&emu, "").await;
    started(&emu, &d).await;
    let three_polls = 3 * POLL;

    emu.okta.unassign(ALICE);
    within(three_polls, "unassignment", || {
        !has(&emu, "alice@example.com")
    })
    .await;
    for other in ["bob@example.com", "carol@example.com", "dave@example.com"] {
        assert!(
            has(&emu, other),
            "{other} is out of the batch's scope, never absent"
        );
    }

    emu.okta.deactivate(DAVE);
    within(three_polls, "deactivation", || {
        !has(&emu, "dave@example.com")
    })
    .await;

    emu.okta.assign(ERIN, Some("viewer"));
    within(three_polls, "assignment", || has(&emu, "erin@example.com")).await;

    emu.okta.activate(DAVE);
    emu.okta.assign(DAVE, Some("viewer"));
    within(three_polls, "reactivation", || {
        has(&emu, "dave@example.com")
    })
    .await;

    // bob is an editor (Spot role admin); as a viewer he is recreated with Spot's viewer role.
    let before = emu.spot.user_by_email("bob@example.com").unwrap();
    emu.okta.set_role(BOB, Some("viewer"));
    within(three_polls, "role change", || {
        emu.spot
            .user_by_email("bob@example.com")
            .is_some_and(|u| u.user_id != before.user_id)
    })
    .await;

    assert_eq!(
        emu.okta.request_count(OKTA_LIST),
        1,
        "no change needed a full read"
    );
    assert!(emu.okta.request_count(OKTA_ONE) >= 5);
    assert_eq!(d.full_cycles("start"), 1.0);
    assert_eq!(d.metric("okta_spot_sync_full_cycles_total", &[]), 1.0);
    assert!(d.metric("okta_spot_sync_event_polls_total", &[("result", "batch")]) >= 5.0);
    assert!(
        d.metric(
            "okta_spot_sync_events_total",
            &[("type", "application.user_membership.remove")]
        ) >= 1.0
    );
    assert!(d.metric("okta_spot_sync_propagation_delay_seconds_count", &[]) >= 5.0);
    // Every change reached Spot within a minute of its event (on the paused clock, both the
    // daemon's and the emulators' clocks follow tokio's).
    let text = d.metrics.render();
    let sample = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert_eq!(
        sample("okta_spot_sync_propagation_delay_seconds_bucket{le=\"60\"}"),
        sample("okta_spot_sync_propagation_delay_seconds_count")
    );
    // The state file keeps the position.
    let ledger = LedgerStore::new(&d.state).load().unwrap();
    assert!(ledger.events.cursor.unwrap().after.is_some());
    d.stop().await;
}

/// A quiet hour costs only System Log polls: no read of the app's users, no Spot request.
#[tokio::test(start_paused = true)]
async fn a_quiet_hour_reads_only_the_system_log() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut d = start(&emu, "").await;
    started(&emu, &d).await;
    let okta_before = emu.okta.total_requests();
    let spot_before = emu.spot.total_requests();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let okta = emu.okta.total_requests() - okta_before;
    let logs = emu.okta.request_count(OKTA_LOGS);
    assert_eq!(emu.okta.request_count(OKTA_LIST), 1);
    assert_eq!(emu.okta.request_count(OKTA_ONE), 0);
    assert_eq!(emu.spot.total_requests(), spot_before, "no Spot request");
    assert!(
        (230..=250).contains(&okta),
        "{okta} Okta requests in a quiet hour"
    );
    assert!(logs >= 230, "{logs}");
    assert!(d.status().readiness(tokio::time::Instant::now()).is_ok());
    d.stop().await;
}

/// An event persisted 3 s after it happened (the System Log's ingestion delay) is not missed:
/// polling follows persistence order from the stored position.
#[tokio::test(start_paused = true)]
async fn an_event_visible_only_three_seconds_late_is_not_missed() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    emu.okta
        .set_log_ingestion_delay(Duration::from_secs(3), Duration::from_secs(3));
    let mut d = start(&emu, "").await;
    started(&emu, &d).await;
    // Just before a poll, so the event is not yet visible to it.
    emu.okta.unassign(ALICE);
    within(3 * POLL, "late unassignment", || {
        !has(&emu, "alice@example.com")
    })
    .await;
    assert_eq!(emu.okta.request_count(OKTA_LIST), 1);
    d.stop().await;
}

/// An event Okta never delivers is repaired by the next full cycle (the safety net).
#[tokio::test(start_paused = true)]
async fn a_dropped_event_is_repaired_by_the_next_full_cycle() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    emu.okta
        .drop_log_event_type("application.user_membership.remove", true);
    let mut d = start(&emu, "").await;
    started(&emu, &d).await;
    emu.okta.unassign(ALICE);
    tokio::time::sleep(4 * POLL).await;
    assert!(has(&emu, "alice@example.com"), "no event, no change yet");
    d.ticks.send(()).await.unwrap(); // sync.schedule: the safety net
    within(Duration::from_secs(60), "full cycle", || {
        !has(&emu, "alice@example.com")
    })
    .await;
    assert_eq!(emu.okta.request_count(OKTA_LIST), 2);
    assert_eq!(d.full_cycles("schedule"), 1.0);
    d.stop().await;
}

/// A restart resumes from the position in the state file: the change made while the daemon
/// was down reaches Spot without a full cycle.
#[tokio::test(start_paused = true)]
async fn a_restart_resumes_from_the_stored_position_without_a_full_cycle() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut d = start_in(dir.clone(), &emu, "").await;
    started(&emu, &d).await;
    tokio::time::sleep(2 * POLL).await;
    d.stop().await;

    emu.okta.unassign(ALICE);
    tokio::time::sleep(Duration::from_secs(600)).await;
    let mut d = start_in(dir, &emu, "").await;
    within(3 * POLL, "resumed unassignment", || {
        !has(&emu, "alice@example.com")
    })
    .await;
    assert_eq!(emu.okta.request_count(OKTA_LIST), 1, "no second full read");
    assert_eq!(d.metric("okta_spot_sync_full_cycles_total", &[]), 0.0);
    assert!(d.status().readiness(tokio::time::Instant::now()).is_ok());
    d.stop().await;
}

/// Okta refuses the System Log (403: no `okta.logs.read`): the daemon says so (log, `/readyz`
/// detail, metric), stops polling, and keeps the users in line with full cycles.
#[tokio::test(start_paused = true)]
async fn a_refused_system_log_falls_back_to_full_cycles() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    emu.okta.set_logs_forbidden(true);
    // (Set, it is also the fallback: the test's ticker keeps ticking the same schedule.)
    let mut d = start(&emu, "schedule = \"0 */10 * * * *\"").await;
    started(&emu, &d).await;
    within(3 * POLL, "the refusal", || {
        d.status().events.is_some_and(|e| e.contains("refused"))
    })
    .await;
    assert_eq!(d.metric("okta_spot_sync_events_refused", &[]), 1.0);
    assert_eq!(d.full_cycles("events_off"), 1.0);
    let logs = emu.okta.request_count(OKTA_LOGS);
    emu.okta.unassign(ALICE);
    tokio::time::sleep(10 * POLL).await;
    assert_eq!(emu.okta.request_count(OKTA_LOGS), logs, "no more polls");
    d.ticks.send(()).await.unwrap();
    within(Duration::from_secs(60), "full cycle", || {
        !has(&emu, "alice@example.com")
    })
    .await;
    d.stop().await;
}

/// Deletes of events batches count toward `sync.max_deletes` per rolling hour: a slow drip
/// trips the guard like one cycle with all of them would.
#[tokio::test(start_paused = true)]
async fn a_drip_of_deletes_trips_the_rolling_hour_guard() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut d = start(&emu, "max_deletes = 1").await;
    started(&emu, &d).await;
    emu.okta.unassign(ALICE);
    within(3 * POLL, "first delete", || !has(&emu, "alice@example.com")).await;
    emu.okta.unassign(DAVE);
    tokio::time::sleep(4 * POLL).await;
    assert!(
        has(&emu, "dave@example.com"),
        "the second delete within the hour is held"
    );
    assert_eq!(
        d.metric(
            "okta_spot_sync_guard_trips_total",
            &[("guard", "max_deletes")]
        ),
        1.0
    );
    d.stop().await;
}

/// A batch whose Spot read is refused (401: the Spot token was revoked) deletes nothing and
/// halts the daemon as a failed cycle would; a transient failure (500) only makes the next
/// poll read the same events again.
#[tokio::test(start_paused = true)]
async fn a_failed_read_in_a_batch_deletes_nothing() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut d = start(&emu, "").await;
    started(&emu, &d).await;
    let fail = |status| Fault {
        fail: Some(FailSpec {
            status,
            nth: 1,
            times: None,
        }),
        ..Fault::default()
    };
    emu.spot
        .set_fault("GET /setup/organization/user", fail(500));
    emu.okta.unassign(ALICE);
    tokio::time::sleep(4 * POLL).await;
    assert!(has(&emu, "alice@example.com"), "no delete on a failed read");
    assert!(d.metric("okta_spot_sync_event_polls_total", &[("result", "error")]) >= 1.0);
    // The read works again: the same events are read again and the change is made.
    emu.spot.clear_faults();
    within(3 * POLL, "unassignment after the outage", || {
        !has(&emu, "alice@example.com")
    })
    .await;

    emu.spot
        .set_fault("GET /setup/organization/user", fail(401));
    emu.okta.unassign(DAVE);
    within(3 * POLL, "halt", || d.status().halted.is_some()).await;
    assert!(has(&emu, "dave@example.com"));
    assert_eq!(d.metric("okta_spot_sync_halted", &[]), 1.0);
    d.stop().await;
}

/// A change made while the start cycle reads the app's users is not lost: polling starts from
/// a point taken before that read began.
#[tokio::test(start_paused = true)]
async fn a_change_made_during_the_start_read_is_not_lost() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    emu.okta.set_fault(
        OKTA_LIST,
        Fault {
            latency: Some(Duration::from_secs(20)),
            ..Fault::default()
        },
    );
    let mut d = start(&emu, "").await;
    within(Duration::from_secs(10), "the start read", || {
        emu.okta.request_count(OKTA_LIST) == 1
    })
    .await;
    // The page was taken before this change and arrives 20 s later: the start cycle creates
    // alice; the System Log, polled from before the read, then removes her.
    tokio::time::sleep(Duration::from_secs(5)).await;
    emu.okta.unassign(ALICE);
    emu.okta.clear_faults();
    within(Duration::from_secs(60), "the start cycle", || {
        d.status().last_complete.is_some()
    })
    .await;
    within(3 * POLL, "the change made during the read", || {
        !has(&emu, "alice@example.com")
    })
    .await;
    assert_eq!(emu.okta.request_count(OKTA_LIST), 1);
    d.stop().await;
}

/// An action Spot keeps refusing is retried by a few polls, then left to the next full cycle:
/// it never costs an Okta request every poll for ever.
#[tokio::test(start_paused = true)]
async fn a_change_spot_keeps_refusing_is_retried_a_few_times_then_left_to_the_full_cycle() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut d = start(&emu, "").await;
    started(&emu, &d).await;
    emu.spot.set_fault(
        "DELETE /setup/user/{userId}",
        Fault {
            fail: Some(FailSpec {
                status: 400,
                nth: 1,
                times: None,
            }),
            ..Fault::default()
        },
    );
    emu.okta.unassign(ALICE);
    tokio::time::sleep(20 * POLL).await;
    assert!(has(&emu, "alice@example.com"));
    // The event's batch, then one read per retry.
    let reads = emu.okta.request_count(OKTA_ONE);
    assert_eq!(
        reads,
        1 + u64::from(okta_spot_sync::events::decide::MAX_RETRY_ATTEMPTS)
    );
    assert!(
        d.metric(
            "okta_spot_sync_actions_total",
            &[("action", "delete"), ("result", "failed")]
        ) >= 2.0
    );
    // Spot accepts again: the safety-net full cycle deletes her.
    emu.spot.clear_faults();
    d.ticks.send(()).await.unwrap();
    within(Duration::from_secs(60), "full cycle", || {
        !has(&emu, "alice@example.com")
    })
    .await;
    d.stop().await;
}
