//! The daemon loop in-process, on tokio's paused clock: `daemon::run` with hand-sent schedule
//! ticks, the real cycle against the bundled emulators, and a notifier that records what
//! systemd would be told. Nothing here waits on wall time and nothing asserts a duration:
//! virtual sleeps only place events on the paused timeline. Each test passes the daemon its
//! own `Metrics`, so the counts it reads back (from the rendered exposition) are exact.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use okta_spot_sim::{Emulators, FailSpec, Fault, Fixture, Section};
use okta_spot_sync::config::{self, Settings};
use okta_spot_sync::cycle::CycleControl;
use okta_spot_sync::daemon::{
    self, reload_change, ApiCycles, ChannelTicker, CycleRunner, Deps, Notice, Notifier,
    ReloadChange, SharedStatus, Status,
};
use okta_spot_sync::http::Observer;
use okta_spot_sync::ledger::{EntryState, LedgerStore};
use okta_spot_sync::metrics::Metrics;
use okta_spot_sync::report::{Mode, Report};
use okta_spot_sync::{Api, Error};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const OKTA_LIST: &str = "GET /api/v1/apps/{appId}/users";

/// Forwards every notice to the test.
struct ChannelNotifier(mpsc::UnboundedSender<Notice>);

impl Notifier for ChannelNotifier {
    fn notify(&self, notice: Notice) {
        let _ = self.0.send(notice);
    }
}

struct Harness {
    dir: tempfile::TempDir,
    config: PathBuf,
    ticks: mpsc::Sender<()>,
    audit_ticks: mpsc::Sender<()>,
    reloads: mpsc::Sender<()>,
    notices: mpsc::UnboundedReceiver<Notice>,
    status: SharedStatus,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
    addr: Option<std::net::SocketAddr>,
    metrics: Metrics,
}

fn write_config(dir: &Path, emu: &Emulators, extra: &str) -> PathBuf {
    emu.client_config(dir)
        .keys(Section::Spot, "write_concurrency = 1")
        .max_retries(0)
        .without_state_file()
        .without_daemon_listen()
        .append(extra)
        .write()
        .unwrap()
}

fn load(path: &Path) -> Result<Settings, Error> {
    config::load_from_env_vars(path, Vec::<(String, String)>::new()).map(|l| l.settings)
}

/// `[sync]` and `[daemon]` for a test: state file in `dir`, run_on_start as given; events mode
/// off (these are the full cycles' tests; `tests/events.rs` has events mode's).
fn sync_section(dir: &Path, run_on_start: bool, more_sync: &str, daemon: &str) -> String {
    format!(
        "[sync]\nstate_file = {:?}\nrun_on_start = {run_on_start}\n{more_sync}\n\n[daemon]\n{daemon}\n\n[events]\nenabled = false\n",
        dir.join("state.json")
    )
}

async fn start(
    emu: &Emulators,
    run_on_start: bool,
    more_sync: &str,
    daemon_section: &str,
    serve: bool,
    runner: Arc<dyn CycleRunner>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let extra = sync_section(dir.path(), run_on_start, more_sync, daemon_section);
    let config = write_config(dir.path(), emu, &extra);
    let settings = load(&config).unwrap();
    let (ticks, ticker) = ChannelTicker::new();
    let (audit_ticks, audit_ticker) = ChannelTicker::new();
    let (reload_tx, reloads) = mpsc::channel(4);
    let (notice_tx, notices) = mpsc::unbounded_channel();
    let status: SharedStatus = Arc::new(Mutex::new(Status::default()));
    let listener = if serve {
        Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let addr = listener.as_ref().map(|l| l.local_addr().unwrap());
    let reload_path = config.clone();
    let metrics = Metrics::new();
    let deps = Deps {
        settings,
        reload: Box::new(move || load(&reload_path)),
        reloads,
        runner,
        ticker: Box::new(ticker),
        audit_ticker: Box::new(audit_ticker),
        notifier: Arc::new(ChannelNotifier(notice_tx)),
        listener,
        watchdog: None,
        status: status.clone(),
        metrics: metrics.clone(),
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(daemon::run(deps, async move {
        let _ = stop_rx.await;
    }));
    Harness {
        dir,
        config,
        ticks,
        audit_ticks,
        reloads: reload_tx,
        notices,
        status,
        stop: Some(stop_tx),
        task,
        addr,
        metrics,
    }
}

/// One scrape of a `Metrics`, parsed as Prometheus would.
struct Scraped {
    text: String,
    scrape: prometheus_parse::Scrape,
}

impl Scraped {
    fn parse(text: String) -> Scraped {
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("the exposition parses");
        Scraped { text, scrape }
    }

    /// The sum of the counter, gauge or histogram `_count` samples of `name` whose labels
    /// include `labels` (0 when none do). Panics when `name` has no sample at all, so a
    /// misspelt name cannot pass as 0.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut named = self
            .scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .peekable();
        assert!(named.peek().is_some(), "no {name} in\n{}", self.text);
        named
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name} {labels:?}: {other:?}"),
            })
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.scrape.samples.iter().any(|s| s.metric == name)
    }

    /// `okta_spot_sync_cycles_total` by result: (ok, blocked, actions_failed, error).
    fn cycles(&self) -> (f64, f64, f64, f64) {
        let r = |result| self.get("okta_spot_sync_cycles_total", &[("result", result)]);
        (r("ok"), r("blocked"), r("actions_failed"), r("error"))
    }

    /// `okta_spot_sync_ticks_skipped_total` by reason: (cycle_running, backoff, halted).
    fn skipped(&self) -> (f64, f64, f64) {
        let r = |reason| self.get("okta_spot_sync_ticks_skipped_total", &[("reason", reason)]);
        (r("cycle_running"), r("backoff"), r("halted"))
    }

    /// `okta_spot_sync_config_reloads_total` by result: (applied, rejected).
    fn reloads(&self) -> (f64, f64) {
        let r = |result| self.get("okta_spot_sync_config_reloads_total", &[("result", result)]);
        (r("applied"), r("rejected"))
    }

    /// (consecutive failures, halted) gauges.
    fn failing(&self) -> (f64, f64) {
        (
            self.get("okta_spot_sync_consecutive_failures", &[]),
            self.get("okta_spot_sync_halted", &[]),
        )
    }

    fn actions(&self, action: &str, result: &str) -> f64 {
        self.get(
            "okta_spot_sync_actions_total",
            &[("action", action), ("result", result)],
        )
    }

    /// Cycles in the duration histogram.
    fn timed_cycles(&self) -> f64 {
        self.get("okta_spot_sync_cycle_duration_seconds_count", &[])
    }
}

impl Harness {
    /// Waits until `n` audits have been recorded (on the paused clock: each poll lets virtual
    /// time pass only while everything waits).
    async fn audits_recorded(&self, n: f64) -> Scraped {
        for _ in 0..600 {
            let m = self.metrics();
            if m.get("okta_spot_sync_audits_total", &[]) >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{n} audit(s) not recorded:\n{}", self.metrics().text);
    }

    /// Waits for the next cycle's end (every cycle ends with a STATUS notice).
    async fn cycle_end(&mut self) -> String {
        loop {
            match self.notices.recv().await.expect("the daemon stopped") {
                Notice::Status(s) => return s,
                _ => continue,
            }
        }
    }

    fn status(&self) -> Status {
        self.status.lock().unwrap().clone()
    }

    /// What this daemon's `Metrics` renders now (the same text `/metrics` serves).
    fn metrics(&self) -> Scraped {
        Scraped::parse(self.metrics.render())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.addr.unwrap());
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Forgets the notices sent so far.
    fn drain(&mut self) {
        while self.notices.try_recv().is_ok() {}
    }

    async fn stop(&mut self) -> Result<(), Error> {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn two_scheduled_cycles_run_and_a_tick_during_a_slow_cycle_is_skipped() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut h = start(
        &emu,
        false,
        "",
        "listen = \"\"",
        false,
        Arc::new(ApiCycles::default()),
    )
    .await;

    // Nothing runs before the first tick (run_on_start = false).
    emu.okta.set_fault(
        OKTA_LIST,
        Fault {
            latency: Some(Duration::from_secs(20)),
            ..Fault::default()
        },
    );
    h.ticks.send(()).await.unwrap();
    // 5 virtual seconds into the slow read, the schedule ticks again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.ticks.send(()).await.unwrap();
    let first = h.cycle_end().await;
    assert!(first.contains("3 create"), "{first}");
    let m = h.metrics();
    assert_eq!((m.cycles().0, m.skipped().0), (1.0, 1.0));
    assert_eq!(
        emu.okta.request_count(OKTA_LIST),
        1,
        "the skipped tick read nothing"
    );

    // The next tick runs the second cycle, which finds nothing to do.
    emu.okta.clear_faults();
    h.ticks.send(()).await.unwrap();
    let second = h.cycle_end().await;
    assert!(second.contains("0 create, 0 delete"), "{second}");
    let m = h.metrics();
    assert_eq!((m.cycles().0, m.skipped().0), (2.0, 1.0));
    assert_eq!(emu.okta.request_count(OKTA_LIST), 2);

    let ledger = LedgerStore::new(h.dir.path().join("state.json"))
        .load()
        .unwrap();
    assert_eq!(ledger.managed_count(), 4);

    let m = h.metrics();
    assert_eq!(m.cycles(), (2.0, 0.0, 0.0, 0.0));
    assert_eq!(m.timed_cycles(), 2.0);
    assert_eq!(m.skipped(), (1.0, 0.0, 0.0));
    assert_eq!(m.actions("create", "applied"), 3.0);
    assert_eq!(m.actions("adopt", "applied"), 1.0);
    assert_eq!(m.get("okta_spot_sync_actions_total", &[]), 4.0);
    assert_eq!(m.get("okta_spot_sync_guard_trips_total", &[]), 0.0);
    assert_eq!(m.get("okta_spot_sync_managed_users", &[]), 4.0);
    assert_eq!(m.failing(), (0.0, 0.0));
    assert_eq!(m.reloads(), (0.0, 0.0));
    let requests = "okta_spot_sync_api_requests_total";
    assert_eq!(
        m.get(
            requests,
            &[("route", "/api/v1/apps/:appId/users"), ("status", "200")]
        ),
        2.0
    );
    // Every attempt on either API is counted once, with its duration.
    for (api, served) in [
        ("okta", emu.okta.total_requests()),
        ("spot", emu.spot.total_requests()),
    ] {
        assert_eq!(m.get(requests, &[("api", api)]), served as f64, "{api}");
        assert_eq!(
            m.get(
                "okta_spot_sync_api_request_duration_seconds_count",
                &[("api", api)]
            ),
            served as f64,
            "{api}"
        );
    }
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn readyz_turns_503_when_cycles_fail_past_the_staleness_and_metrics_parse() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut h = start(
        &emu,
        true,
        "max_deletes = 0",
        "listen = \"127.0.0.1:0\"\nreadiness_max_age = \"2m\"",
        true,
        Arc::new(ApiCycles::default()),
    )
    .await;
    assert_eq!(h.get("/healthz").await.0, 200);
    h.cycle_end().await;
    let (code, body) = h.get("/readyz").await;
    assert_eq!(code, 200, "{body}");

    // A delete over sync.max_deletes = 0: the guard trips, the cycle still completes.
    emu.okta.unassign("00uDemoAlice000000x7");
    h.ticks.send(()).await.unwrap();
    let blocked = h.cycle_end().await;
    assert!(blocked.contains("1 blocked"), "{blocked}");

    // From now on every Okta read fails: the daemon backs off and retries by itself.
    emu.okta.set_fault(
        OKTA_LIST,
        Fault {
            fail: Some(FailSpec {
                status: 500,
                nth: 1,
                times: None,
            }),
            ..Fault::default()
        },
    );
    h.ticks.send(()).await.unwrap();
    h.cycle_end().await;
    assert_eq!(h.status().consecutive_failures, 1);
    // Still within readiness_max_age of the last complete cycle.
    assert_eq!(h.get("/readyz").await.0, 200);
    // The retries come by themselves, 5, 10, 20 and 40 s apart: the 5th failure is 75 s after
    // the last complete cycle, still within readiness_max_age (2 min).
    for _ in 0..4 {
        h.cycle_end().await;
    }
    assert_eq!(h.status().consecutive_failures, 5);
    assert_eq!(h.get("/readyz").await.0, 200);
    // The 6th, 80 s later, is past it.
    h.cycle_end().await;
    let s = h.status();
    assert_eq!(s.consecutive_failures, 6, "{s:?}");
    assert_eq!(h.metrics().cycles().3, 6.0);
    let (code, body) = h.get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("6 cycle(s) in a row failed"), "{body}");

    let (code, text) = h.get("/metrics").await;
    assert_eq!(code, 200);
    // The same series as the daemon's handle (the exporter's order of families is not fixed).
    let sorted = |t: &str| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        sorted(&text),
        sorted(&h.metrics.render()),
        "/metrics renders the daemon's handle"
    );
    let m = Scraped::parse(text);
    assert_eq!(m.cycles(), (1.0, 1.0, 0.0, 6.0));
    assert_eq!(m.timed_cycles(), 8.0);
    assert!(m.get("okta_spot_sync_last_success_timestamp_seconds", &[]) > 0.0);
    assert_eq!(m.actions("create", "applied"), 3.0);
    assert_eq!(m.actions("adopt", "applied"), 1.0);
    assert_eq!(m.actions("delete", "blocked"), 1.0);
    assert_eq!(m.get("okta_spot_sync_actions_total", &[]), 5.0);
    assert_eq!(
        m.get(
            "okta_spot_sync_guard_trips_total",
            &[("guard", "max_deletes")]
        ),
        1.0
    );
    assert_eq!(m.get("okta_spot_sync_guard_trips_total", &[]), 1.0);
    assert_eq!(
        m.get("okta_spot_sync_managed_users", &[]),
        4.0,
        "the blocked delete left 4"
    );
    assert_eq!(m.failing(), (6.0, 0.0));
    assert_eq!(m.skipped(), (0.0, 0.0, 0.0));
    assert_eq!(m.reloads(), (0.0, 0.0));
    let requests = "okta_spot_sync_api_requests_total";
    let list = [("api", "okta"), ("route", "/api/v1/apps/:appId/users")];
    assert_eq!(m.get(requests, &[list[0], list[1], ("status", "500")]), 6.0);
    assert_eq!(m.get(requests, &[list[0], list[1], ("status", "200")]), 2.0);
    assert_eq!(
        m.get(requests, &[("api", "okta")]),
        emu.okta.total_requests() as f64,
        "every Okta attempt is counted once"
    );
    assert_eq!(
        m.get(
            requests,
            &[("api", "spot"), ("route", "/setup/user"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(emu.spot.request_count("POST /setup/user"), 3);
    assert!(
        m.text.contains(
            "okta_spot_sync_api_rate_limit_remaining{api=\"okta\",route=\"/api/v1/apps/:appId/users\"}"
        ),
        "{}",
        m.text
    );
    for secret in [emu.okta.token(), emu.spot.token()]
        .into_iter()
        .chain(emu.spot.received_passwords())
    {
        assert!(!m.text.contains(&secret), "a secret leaked into /metrics");
    }

    // Reads work again: ready again after the next (backed-off) retry.
    emu.okta.clear_faults();
    h.drain();
    while !h.cycle_end().await.starts_with("last cycle:") {}
    assert_eq!(h.get("/readyz").await.0, 200);
    let m = h.metrics();
    assert_eq!(
        m.cycles(),
        (1.0, 2.0, 0.0, 6.0),
        "the delete is still blocked"
    );
    assert_eq!(m.actions("delete", "blocked"), 2.0);
    assert_eq!(
        m.failing(),
        (0.0, 0.0),
        "a completed cycle resets the failures"
    );
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reload_with_a_broken_config_keeps_the_old_one() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut h = start(
        &emu,
        true,
        "max_deletes = 7",
        "listen = \"\"",
        false,
        Arc::new(ApiCycles::default()),
    )
    .await;
    h.cycle_end().await;
    assert_eq!(h.status().max_deletes, 7);
    let good = std::fs::read_to_string(&h.config).unwrap();

    // Broken: an unknown key. The reload is handled before the tick sent after it.
    std::fs::write(&h.config, format!("{good}\n[sync2]\nmax_deletes = 1\n")).unwrap();
    h.reloads.send(()).await.unwrap();
    h.ticks.send(()).await.unwrap();
    let line = h.cycle_end().await;
    assert!(
        line.starts_with("last cycle:"),
        "the old config still runs cycles: {line}"
    );
    let s = h.status();
    assert_eq!(s.max_deletes, 7);
    assert!(
        s.last_reload_error.as_deref().unwrap().contains("sync2"),
        "{s:?}"
    );
    assert_eq!(h.metrics().reloads(), (0.0, 1.0));

    // Fixed: the new value takes effect.
    std::fs::write(
        &h.config,
        good.replace("max_deletes = 7", "max_deletes = 3"),
    )
    .unwrap();
    h.reloads.send(()).await.unwrap();
    h.ticks.send(()).await.unwrap();
    h.cycle_end().await;
    let s = h.status();
    assert_eq!(s.max_deletes, 3);
    assert!(s.last_reload_error.is_none());
    let m = h.metrics();
    assert_eq!(m.reloads(), (1.0, 1.0));
    assert_eq!(m.cycles(), (3.0, 0.0, 0.0, 0.0));
    h.stop().await.unwrap();
}

/// A cycle runner that plays a script of outcomes.
struct Scripted(Mutex<Vec<Result<(), Error>>>);

impl CycleRunner for Scripted {
    fn run(
        &self,
        _: Settings,
        control: CycleControl,
        _: Observer,
    ) -> BoxFuture<'static, Result<Report, Error>> {
        let next = self.0.lock().unwrap().remove(0);
        Box::pin(async move {
            next?;
            if let Some(f) = control.after_read {
                f();
            }
            Ok(Report::empty(Mode::Apply))
        })
    }
}

fn transient() -> Error {
    Error::Transport {
        api: Api::Okta,
        what: "GET".into(),
        detail: "connection refused".into(),
    }
}

fn permanent() -> Error {
    Error::Credentials {
        api: Api::Spot,
        what: "GET /setup/organization/user".into(),
        status: 401,
        detail: "bad token".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_a_success_resets_and_a_permanent_error_halts_until_reload() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let script = vec![
        Ok(()),
        Err(transient()),
        Err(transient()),
        Ok(()),
        Err(permanent()),
        Ok(()),
    ];
    let runner = Arc::new(Scripted(Mutex::new(script)));
    let mut h = start(&emu, true, "", "listen = \"\"", false, runner).await;
    assert_eq!(h.notices.recv().await, Some(Notice::Ready));
    h.cycle_end().await;

    h.ticks.send(()).await.unwrap();
    assert!(h.cycle_end().await.contains("1 in a row, retry in 5s"));
    assert_eq!(h.metrics().failing(), (1.0, 0.0));
    // A tick during the backoff is skipped; the retry comes by itself.
    h.ticks.send(()).await.unwrap();
    assert!(h.cycle_end().await.contains("2 in a row, retry in 10s"));
    let m = h.metrics();
    assert_eq!(m.failing(), (2.0, 0.0));
    assert_eq!(m.skipped(), (0.0, 1.0, 0.0));
    assert_eq!(m.cycles(), (1.0, 0.0, 0.0, 2.0));
    assert!(h.cycle_end().await.starts_with("last cycle:"));
    assert_eq!(
        h.status().consecutive_failures,
        0,
        "a success resets the policy"
    );
    assert_eq!(h.metrics().failing(), (0.0, 0.0));

    h.ticks.send(()).await.unwrap();
    let halted = h.cycle_end().await;
    assert!(
        halted.starts_with("halted:") && halted.contains("bad token"),
        "{halted}"
    );
    // Halted: ticks run nothing and nothing retries.
    h.ticks.send(()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(h.status().halted.is_some());
    let m = h.metrics();
    assert_eq!(m.cycles(), (2.0, 0.0, 0.0, 3.0));
    assert_eq!(m.timed_cycles(), 5.0);
    assert_eq!(m.skipped(), (0.0, 1.0, 1.0));
    assert_eq!(
        m.failing(),
        (0.0, 1.0),
        "halted; the failures in a row were reset"
    );
    assert_eq!(m.reloads(), (0.0, 0.0));

    // A good reload resumes at once.
    h.reloads.send(()).await.unwrap();
    assert_eq!(h.cycle_end().await, "configuration reloaded; resuming");
    assert!(h.cycle_end().await.starts_with("last cycle:"));
    assert!(h.status().halted.is_none());
    let m = h.metrics();
    assert_eq!(m.reloads(), (1.0, 0.0));
    assert_eq!(m.failing(), (0.0, 0.0), "resumed");
    assert_eq!(m.cycles(), (3.0, 0.0, 0.0, 3.0));
    assert_eq!(m.skipped(), (0.0, 1.0, 1.0));
    assert!(
        !m.has("okta_spot_sync_managed_users"),
        "the scripted reports carry no managed count"
    );
    assert!(!m.has("okta_spot_sync_api_requests_total"), "no HTTP here");
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_before_the_first_success_stops_the_daemon() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let runner = Arc::new(Scripted(Mutex::new(vec![Err(permanent())])));
    let h = start(&emu, true, "", "listen = \"\"", false, runner).await;
    let err = h.task.await.unwrap().unwrap_err();
    assert!(err.is_permanent(), "{err}");
    let m = Scraped::parse(h.metrics.render());
    assert_eq!(m.cycles(), (0.0, 0.0, 0.0, 1.0));
    assert_eq!(
        m.failing(),
        (0.0, 0.0),
        "exiting is not halting, nor a failure to retry"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_a_slow_create_finishes_it_and_starts_no_other() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    emu.spot.set_fault(
        "POST /setup/user",
        Fault {
            latency: Some(Duration::from_secs(10)),
            ..Fault::default()
        },
    );
    let mut h = start(
        &emu,
        true,
        "",
        "listen = \"\"",
        false,
        Arc::new(ApiCycles::default()),
    )
    .await;
    // Shortly after the start the first create is in flight (10 s of latency).
    let store = LedgerStore::new(h.dir.path().join("state.json"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = store.load().unwrap();
    assert!(
        before
            .users
            .values()
            .any(|e| e.state == EntryState::Pending),
        "{before:?}"
    );
    let dir = h.dir.path().to_path_buf();
    h.stop().await.unwrap();
    let after = LedgerStore::new(dir.join("state.json")).load().unwrap();
    let created: Vec<_> = after
        .users
        .values()
        .filter(|e| e.origin == okta_spot_sync::ledger::Origin::Created)
        .collect();
    assert_eq!(created.len(), 1, "{after:?}");
    // The metrics tell the same: one create applied, the rest left for the next run.
    let m = Scraped::parse(h.metrics.render());
    assert_eq!(m.cycles(), (1.0, 0.0, 0.0, 0.0));
    assert_eq!(m.actions("create", "applied"), 1.0);
    assert_eq!(m.actions("create", "not_started"), 2.0);
    assert_eq!(m.actions("adopt", "not_started"), 1.0);
    assert_eq!(m.get("okta_spot_sync_actions_total", &[]), 4.0);
    assert_eq!(m.get("okta_spot_sync_managed_users", &[]), 1.0);
    assert_eq!(created[0].state, EntryState::Managed);
    let id = created[0].spot_user_id.clone().unwrap();
    assert!(emu.spot.user(&id).is_some());
}

/// The reload decision, pure: what changes, what waits for a restart, and the state file kept.
#[tokio::test]
async fn a_reload_keeps_the_state_file_and_names_what_waits_for_a_restart() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    let mut settings = |state: &str, listen: &str, schedule: &str, level: &str| {
        let dir = tempfile::tempdir().unwrap();
        let sync = format!(
            "[sync]\nstate_file = {:?}\nschedule = {schedule:?}\n\n[daemon]\nlisten = {listen:?}\n\n[log]\nlevel = {level:?}\n",
            state_dir.path().join(state)
        );
        let loaded = load(&write_config(dir.path(), &emu, &sync)).unwrap();
        dirs.push(dir);
        loaded
    };
    let old = settings("state.json", "", "0 */10 * * * *", "info");

    let mut same = settings("state.json", "", "0 */10 * * * *", "info");
    assert_eq!(reload_change(&old, &mut same), ReloadChange::default());

    let mut new = settings("other.json", "127.0.0.1:0", "0 */5 * * * *", "debug");
    let change = reload_change(&old, &mut new);
    assert_eq!(
        new.sync.state_file, old.sync.state_file,
        "the lock is on the old file"
    );
    assert!(change.schedule);
    let messages = change.on_restart.join("\n");
    for key in ["sync.state_file", "daemon.listen", "log.level"] {
        assert!(messages.contains(key), "{key}: {messages}");
    }
    assert_eq!(change.on_restart.len(), 3, "{messages}");
}

/// The access audit runs on its own schedule between cycles: a viewer policy removed by hand
/// is found and repaired (`sync.audit_repair` defaults to true), counted by kind and status; the
/// next audit is clean; with repair off, drift is counted as found and left.
#[tokio::test(start_paused = true)]
async fn the_audit_runs_on_its_schedule_and_counts_drift() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let mut h = start(
        &emu,
        false,
        "",
        "listen = \"\"",
        false,
        Arc::new(ApiCycles::default()),
    )
    .await;
    h.ticks.send(()).await.unwrap();
    h.cycle_end().await;
    let ledger = LedgerStore::new(h.dir.path().join("state.json"))
        .load()
        .unwrap();
    let viewer = emu.spot.policy_id_by_name("Account Viewer").unwrap();
    let hand_edited: Vec<String> = ledger
        .users
        .values()
        .filter(|e| e.role == Some(okta_spot_sync::model::Role::Viewer))
        .filter_map(|e| e.spot_user_id.as_ref().map(|id| id.to_string()))
        .take(2)
        .collect();
    assert_eq!(hand_edited.len(), 2, "{ledger:?}");
    for id in &hand_edited {
        assert!(emu.spot.revoke_policy(id, &viewer, None));
    }

    let drift = |m: &Scraped, kind: &str, status: &str| {
        m.get(
            "okta_spot_sync_access_drift_total",
            &[("kind", kind), ("status", status)],
        )
    };
    let audits =
        |m: &Scraped, result: &str| m.get("okta_spot_sync_audits_total", &[("result", result)]);
    h.audit_ticks.send(()).await.unwrap();
    let m = h.audits_recorded(1.0).await;
    assert_eq!(audits(&m, "repaired"), 1.0);
    assert_eq!(drift(&m, "missing_policy", "repaired"), 2.0);
    assert_eq!(m.get("okta_spot_sync_access_drift_total", &[]), 2.0);
    for id in &hand_edited {
        let seen = emu.spot.user(id).unwrap().policies;
        assert_eq!(seen, vec![(viewer.clone(), vec!["*".to_string()])]);
    }
    assert_eq!(m.cycles().0, 1.0, "the audit is not a cycle");

    h.audit_ticks.send(()).await.unwrap();
    let m = h.audits_recorded(2.0).await;
    assert_eq!(audits(&m, "clean"), 1.0);
    assert_eq!(m.get("okta_spot_sync_access_drift_total", &[]), 2.0);

    // Repair off (a reload): drift is found, counted and left.
    let text = std::fs::read_to_string(&h.config).unwrap();
    std::fs::write(
        &h.config,
        text.replace("[sync]\n", "[sync]\naudit_repair = false\n"),
    )
    .unwrap();
    h.reloads.send(()).await.unwrap();
    assert!(emu.spot.revoke_policy(&hand_edited[0], &viewer, None));
    for _ in 0..100 {
        if h.metrics().reloads().0 == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.metrics().reloads(), (1.0, 0.0));
    h.audit_ticks.send(()).await.unwrap();
    let m = h.audits_recorded(3.0).await;
    assert_eq!(audits(&m, "drift"), 1.0);
    assert_eq!(drift(&m, "missing_policy", "found"), 1.0);
    assert!(emu.spot.user(&hand_edited[0]).unwrap().policies.is_empty());
    assert_eq!(audits(&m, "error") + audits(&m, "failed"), 0.0);
    h.stop().await.unwrap();
}
