//! The scale benchmark (`cargo bench --bench scale`): the release binary against the bundled
//! emulators on loopback, with latency injected on every request. See README "Performance".
//!
//! Scenarios (pick some with `cargo bench --bench scale -- steady first-sync growth planner`):
//! - `steady`: 100,000 assigned users, all in sync, 20 ms per request. Okta = ⌈N/500⌉ pages is
//!   the floor of requests and of wall time (pages × latency); Spot ≤ 3 requests.
//! - `steady-0ms`: the same with no injected latency: how far below 20 ms per page the
//!   emulator and the client are, i.e. that the emulators are not the bottleneck.
//! - `first-sync`: 2,000 new users; `POST /setup/user` and `PUT …/policyMapping` each limited
//!   to 6,000/min by the Spot emulator; 20 ms per request. The create rate is measured between
//!   the first and the last create seen by the emulator.
//! - `growth`: the same 2,000 new users and limits on top of the 100,000 users of `steady`
//!   (in sync, managed by the state file): the write path against a large state file, which
//!   is saved whole before each batch of creates. Not a target of issue 6; it says whether
//!   the create rate holds when the tenant is large.
//! - `planner`: classify + plan on 1,000,000 users, in-process, CPU time of this thread.
//! - `audit`: `okta-spot-sync audit` of the 100,000 managed users of `steady` (each a viewer
//!   mapped on `"*"`, no drift), 20 ms per request, at the Spot emulator's default per-route
//!   limit, `spot.write_concurrency = 16`: each user's details read once, no 429.
//!
//! - `events` (not in the default set: about 20 minutes of real time): `okta-spot-sync run` as
//!   a daemon against 100,000 assigned users with Okta's **real** rate limits enforced
//!   (`/api/v1/apps/*` 100/min, `/api/v1/logs` 120/min, the client's default 50 % share), a
//!   System Log ingestion delay of 0–10 s and 20 ms per request; two daemons side by side,
//!   each with its own emulators: **4** events mode (`poll_interval = "15s"`): a stream of 100
//!   changes over 3 minutes (unassign, deactivate, assign a new user, viewer ↔ editor), each
//!   change's propagation measured from the bench's change in Okta to its effect in the Spot
//!   emulator (polled every 100 ms), then a 5-minute quiet period whose Okta requests are
//!   extrapolated to an hour; **4b** full-cycle mode (`[events] enabled = false`, the default
//!   full cycle every 10 minutes): 20 changes over 10 minutes, measured the same way. Both
//!   state files are written directly (as for `steady`); the daemon's own start cycle is the
//!   first full read. `sync.max_deletes = 1000`: the stream's ~55 deletes and recreates in an
//!   hour would trip the default rolling-hour guard (10), which is not what is measured.
//!   Events mode's safety-net full cycle (every 6 hours by default) would fall into a measured
//!   window when the bench runs at its hour; its `sync.schedule` is therefore once a year
//!   (`SCALE_EVENTS_SCHEDULE` sets another, e.g. `"0 */5 * * * *"` to watch memory across
//!   full cycles and batches). Its cost is the first cycle's.
//!   Knobs: `SCALE_EVENTS_CHANGES`, `SCALE_EVENTS_STREAM_SECS`, `SCALE_QUIET_SECS`,
//!   `SCALE_FULL_CHANGES`, `SCALE_FULL_STREAM_SECS`, `SCALE_FULL=0` (skip 4b). The daemons'
//!   logs are kept in `target/tmp/scale-events-*.log`.
//!
//! For every scenario, `SCALE_CHILD_<NAME>=value` sets `<NAME>=value` in the reconciler's
//! environment only, e.g. `SCALE_CHILD_LD_PRELOAD=…/libheaptrack_preload.so` with
//! `SCALE_CHILD_DUMP_HEAPTRACK_OUTPUT=/tmp/ht.raw` for a heap profile of the daemon.
//!
//! The reconciler runs as a child process (`okta-spot-sync reconcile`, or `run` for `events`),
//! so its peak RSS and CPU time (from `wait4`) exclude the emulators, which run in this
//! process.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use okta_spot_sync::ledger::{EntryState, Ledger, LedgerEntry, Origin};
use okta_spot_sync::model::{AppUserRow, Email, Role, SpotUser, SpotUserKind};
use okta_spot_sync::okta::classify::{classify, ClassifyRules};
use okta_spot_sync::plan::{plan, ActionKind, PlanOptions};

const BIN: &str = env!("CARGO_BIN_EXE_okta-spot-sync");
const MB: f64 = 1024.0 * 1024.0;

struct Row {
    scenario: String,
    users: usize,
    okta: String,
    spot: String,
    wall: String,
    rss: String,
    cpu: String,
    verdict: String,
}

fn main() {
    if std::env::args().any(|a| a == "--launcher") {
        support::Launcher::serve();
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    // Long scenarios run only when named.
    let named = |name: &str| args.iter().any(|a| a == name);
    // First, while this process is small (see `support::run_reconcile`); one more per daemon
    // that runs at the same time as another.
    let mut launcher = support::Launcher::start();
    let daemon_launchers =
        named("events").then(|| (support::Launcher::start(), support::Launcher::start()));
    let load_before = loadavg();
    let steady_users: usize = env_or("SCALE_USERS", 100_000);
    let latency = Duration::from_millis(env_or("SCALE_LATENCY_MS", 20));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    if want("steady") {
        rows.push(runtime.block_on(steady(
            &mut launcher,
            "1 steady state",
            steady_users,
            latency,
        )));
    }
    if want("steady-0ms") {
        rows.push(runtime.block_on(steady(
            &mut launcher,
            "1b steady, 0 ms (emulator check)",
            steady_users,
            Duration::ZERO,
        )));
    }
    if want("first-sync") {
        rows.push(runtime.block_on(writes(
            &mut launcher,
            "2 first sync",
            0,
            2_000,
            latency,
            6_000,
            16,
        )));
    }
    if want("growth") {
        rows.push(runtime.block_on(writes(
            &mut launcher,
            "2b growth, 2,000 new",
            steady_users,
            2_000,
            latency,
            6_000,
            16,
        )));
    }
    if want("planner") {
        rows.push(planner(1_000_000));
    }
    if want("audit") {
        rows.push(runtime.block_on(audit(&mut launcher, "3 audit", steady_users, latency)));
    }
    if let Some((a, b)) = daemon_launchers {
        rows.extend(runtime.block_on(events(a, b, steady_users, latency)));
    }
    drop(runtime);
    drop(launcher);
    print_table(&rows);
    println!();
    println!(
        "machine: {} CPUs ({}); load average (1 min) {} before, {} after",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        load_before,
        loadavg()
    );
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

async fn steady(
    launcher: &mut support::Launcher,
    name: &str,
    users: usize,
    latency: Duration,
) -> Row {
    eprintln!("[{name}] seeding {users} users…");
    let setup = support::steady_state(users, latency).await;
    eprintln!("[{name}] running the reconciler…");
    let run = launcher.run(BIN, &setup).await;
    let report = run.report();
    assert_eq!(run.code, 0, "reconcile failed:\n{}", run.stderr);
    if std::env::var_os("SCALE_LOG").is_some() {
        eprintln!("{}", run.stderr);
    }
    let actions = report["actions"].as_array().map_or(0, Vec::len);
    let okta = setup.emu.okta.total_requests();
    let spot = setup.emu.spot.total_requests();
    let spot_writes = setup.emu.spot.write_requests();
    let pages = users.div_ceil(500) as u64;
    let floor = latency * pages as u32;
    // The same walk with a bare HTTP client that does nothing with the pages: what the
    // emulator (plus loopback) costs, i.e. the best wall time any client could reach.
    let (bare, bare_pages) = bare_walk(&setup).await;
    assert_eq!(bare_pages, pages);
    eprintln!(
        "[{name}] bare walk of the Okta emulator: {} ({:.1} ms/page)",
        secs(bare),
        bare.as_secs_f64() * 1000.0 / pages as f64
    );
    let per_page = run.wall.as_secs_f64() * 1000.0 / pages as f64;
    let mut checks = vec![
        (okta == pages, format!("Okta = {pages}")),
        (spot <= 3, "Spot ≤ 3".to_string()),
        (spot_writes == 0 && actions == 0, "0 writes".to_string()),
        (run.max_rss as f64 <= 150.0 * MB, "RSS ≤ 150 MB".to_string()),
    ];
    if !latency.is_zero() {
        checks.push((
            run.wall.as_secs_f64() <= 1.2 * floor.as_secs_f64(),
            "wall ≤ 1.2 × floor".to_string(),
        ));
    }
    let mut verdict = verdict(&checks);
    verdict.push_str(&format!(
        "; {per_page:.1} ms/page; bare walk of the emulator {:.1} ms/page",
        bare.as_secs_f64() * 1000.0 / pages as f64
    ));
    Row {
        scenario: format!("{name} ({} ms)", latency.as_millis()),
        users,
        okta: format!("{okta} (min {pages})"),
        spot: format!("{spot} (min 1)"),
        wall: format!("{} (floor {})", secs(run.wall), secs(floor)),
        rss: format!("{:.0} MB", run.max_rss as f64 / MB),
        cpu: secs(run.cpu),
        verdict,
    }
}

/// `audit` of every managed user of the steady state: one details read each, under Spot's
/// per-route limit (a 429 would be retried, so reads = users means none was refused).
async fn audit(
    launcher: &mut support::Launcher,
    name: &str,
    users: usize,
    latency: Duration,
) -> Row {
    const CONCURRENCY: usize = 16;
    const ROUTE_DETAILS: &str = "GET /setup/user/{userId}";
    eprintln!("[{name}] seeding {users} users…");
    let setup = support::steady_state_with(users, latency, CONCURRENCY).await;
    eprintln!("[{name}] running the audit…");
    let run = launcher
        .run_command(BIN, &setup, &["audit", "--output", "json"])
        .await;
    assert_eq!(run.code, 0, "audit failed:\n{}\n{}", run.stdout, run.stderr);
    let report = run.report();
    let checked = report["summary"]["users_checked"].as_u64().unwrap_or(0);
    let drift = report["summary"]["drift"].as_u64().unwrap_or(u64::MAX);
    let counts = setup.emu.spot.request_counts();
    let reads = counts.get(ROUTE_DETAILS).copied().unwrap_or(0);
    let spot_total: u64 = counts.values().sum();
    let limit = 100_000.0 / 60.0; // the emulator's default per-route limit, per second
    let rate = reads as f64 / run.wall.as_secs_f64();
    // Each worker waits one latency per read: the floor of wall time at this concurrency.
    let floor = latency * (users.div_ceil(CONCURRENCY) as u32);
    let checks = [
        (run.code == 0 && drift == 0, "exit 0, no drift".to_string()),
        (
            checked == users as u64 && reads == users as u64,
            "each user read once, no 429".to_string(),
        ),
        (rate <= limit, "under the per-route limit".to_string()),
        (setup.emu.spot.write_requests() == 0, "0 writes".to_string()),
    ];
    let mut verdict = verdict(&checks);
    verdict.push_str(&format!(
        "; {rate:.0} reads/s of {limit:.0}/s allowed, concurrency {CONCURRENCY}"
    ));
    Row {
        scenario: format!("{name} ({} ms)", latency.as_millis()),
        users,
        okta: "0".into(),
        spot: format!("{spot_total} (min {})", users + 2),
        wall: format!("{} (floor {})", secs(run.wall), secs(floor)),
        rss: format!("{:.0} MB", run.max_rss as f64 / MB),
        cpu: secs(run.cpu),
        verdict,
    }
}

/// Walks every app-users page with a plain `reqwest` client (no parsing), timing it.
async fn bare_walk(setup: &support::Setup) -> (Duration, u64) {
    let okta = &setup.emu.okta;
    let client = reqwest::Client::new();
    let mut url = format!(
        "{}/api/v1/apps/{}/users?limit=500&expand=user",
        okta.url(),
        okta.app_id()
    );
    let auth = format!("SSWS {}", okta.token());
    let started = Instant::now();
    let mut pages = 0;
    loop {
        let response = client
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .expect("page");
        assert!(response.status().is_success());
        let next = okta_spot_sync::okta::parse::next_link(response.headers()).expect("links");
        let _body = response.bytes().await.expect("body");
        pages += 1;
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    (started.elapsed(), pages)
}

/// `users` new Okta users to create in Spot, on top of `existing` users in sync (managed by
/// the state file), with Spot's writes limited to `per_minute`.
async fn writes(
    launcher: &mut support::Launcher,
    name: &str,
    existing: usize,
    users: usize,
    latency: Duration,
    per_minute: u32,
    concurrency: usize,
) -> Row {
    eprintln!("[{name}] seeding {existing} users in sync and {users} new ones…");
    let setup = support::growth(existing, users, latency, per_minute, concurrency).await;
    // Watch the create counter from outside to time the create phase.
    let spot = setup.emu.spot.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut first: Option<Instant> = None;
        let mut last: Option<(Instant, u64)> = None;
        loop {
            let n = spot.request_count(support::ROUTE_CREATE);
            let now = Instant::now();
            if n > 0 && first.is_none() {
                first = Some(now);
            }
            if last.is_none_or(|(_, seen)| seen != n) {
                last = Some((now, n));
            }
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
        (first, last)
    });
    eprintln!("[{name}] running the reconciler…");
    let run = launcher.run(BIN, &setup).await;
    let _ = stop_tx.send(());
    let (first, last) = sampler.await.expect("sampler");
    let report = run.report();
    let summary = &report["summary"];
    let failed = summary["failed"].as_u64().unwrap_or(u64::MAX);
    let created = summary["create"].as_u64().unwrap_or(0);
    let counts = setup.emu.spot.request_counts();
    let count = |k: &str| counts.get(k).copied().unwrap_or(0);
    let creates = count(support::ROUTE_CREATE);
    let mappings = count(support::ROUTE_MAPPING);
    let spot_total: u64 = counts.values().sum();
    // Minimum: list users, list policies, one create and one mapping each.
    let spot_min = 2 + 2 * users as u64;
    let okta = setup.emu.okta.total_requests();
    let okta_min = (existing + users).div_ceil(500) as u64;
    let allowed = f64::from(per_minute) / 60.0;
    let rate = match (first, last) {
        (Some(a), Some((b, n))) if n > 1 && b > a => (n - 1) as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    };
    // The reads come first (the plan needs all of Okta), then the creates at the limit.
    let floor = latency * okta_min as u32 + Duration::from_secs_f64(users as f64 / allowed);
    let retried = (creates + mappings).saturating_sub(2 * users as u64);
    let checks = [
        (
            rate >= 0.9 * allowed,
            "≥ 90 % of the create limit".to_string(),
        ),
        (
            failed == 0 && created == users as u64,
            "0 failed".to_string(),
        ),
        (
            setup.emu.spot.users().len() == existing + users,
            "all users exist".to_string(),
        ),
    ];
    let mut verdict = verdict(&checks);
    verdict.push_str(&format!(
        "; creates {rate:.1}/s of {allowed:.0}/s allowed ({:.0} %), {retried} write(s) retried after 429, concurrency {concurrency}",
        100.0 * rate / allowed
    ));
    Row {
        scenario: format!("{name} ({} ms, {per_minute}/min)", latency.as_millis()),
        users: existing + users,
        okta: format!("{okta} (min {okta_min})"),
        spot: format!("{spot_total} (min {spot_min})"),
        wall: format!("{} (floor {})", secs(run.wall), secs(floor)),
        rss: format!("{:.0} MB", run.max_rss as f64 / MB),
        cpu: secs(run.cpu),
        verdict,
    }
}

/// Classify + plan on `n` users: 99 % in sync, 0.5 % new in Okta (creates), 0.5 % gone from
/// Okta (deletes). Input building is not measured.
fn planner(n: usize) -> Row {
    let name = "3 planner (classify + plan)";
    eprintln!("[{name}] building {n} users…");
    let new_every = 200; // 0.5 %
    let mut rows = Vec::with_capacity(n);
    let mut spot = Vec::with_capacity(n);
    let mut ledger = Ledger::default();
    let now = chrono::Utc::now();
    for i in 0..n {
        let okta_id = format!("00u{i:017}");
        let email = format!("user{i:07}@example.com");
        let spot_id = format!("u-{i:08x}");
        let is_new = i % new_every == 1;
        let is_gone = i % new_every == 2;
        if !is_gone {
            rows.push(AppUserRow {
                okta_user_id: okta_id.clone().into(),
                scope: Some("USER".into()),
                app_user_status: Some("ACTIVE".into()),
                user_status: Some("ACTIVE".into()),
                email: Some(email.clone()),
                first_name: Some("User".into()),
                last_name: Some(format!("{i:07}")),
                role: Some("viewer".into()),
                malformed: None,
            });
        }
        if !is_new {
            spot.push(SpotUser {
                user_id: spot_id.clone().into(),
                email: Email::parse(&email),
                username: format!("User {i:07}"),
                kind: SpotUserKind::Personal,
            });
            ledger.users.insert(
                okta_id.into(),
                LedgerEntry {
                    email,
                    spot_user_id: Some(spot_id.into()),
                    tombstones: Vec::new(),
                    role: Some(Role::Viewer),
                    access: okta_spot_sync::access::ACCESS_MODEL,
                    origin: Origin::Adopted,
                    state: EntryState::Managed,
                    updated_at: now,
                },
            );
        }
    }
    let rules = ClassifyRules {
        provision_statuses: [
            "ACTIVE",
            "PROVISIONED",
            "PASSWORD_EXPIRED",
            "RECOVERY",
            "LOCKED_OUT",
        ]
        .map(String::from)
        .to_vec(),
        hold_statuses: ["SUSPENDED", "STAGED"].map(String::from).to_vec(),
        default_role: Role::Viewer,
    };
    let options = PlanOptions {
        adopt_existing: true,
        update_roles: true,
        protected_emails: Default::default(),
        spot_roles: BTreeMap::from([
            (Role::Viewer, "viewer".to_string()),
            (Role::Editor, "admin".to_string()),
        ]),
    };
    // Made distinct as the Spot client does when it reads the list (not part of the planner).
    let spot = okta_spot_sync::model::SpotUsers::distinct(spot);
    eprintln!("[{name}] planning…");
    let cpu_before = thread_cpu();
    let started = Instant::now();
    let snapshot = classify(rows, &rules);
    let cpu_classify = thread_cpu() - cpu_before;
    let the_plan = plan(&snapshot, &spot, &ledger, &options);
    let wall = started.elapsed();
    let cpu = thread_cpu() - cpu_before;
    eprintln!(
        "[{name}] CPU: classify {:.3} s, plan {:.3} s",
        cpu_classify.as_secs_f64(),
        (cpu - cpu_classify).as_secs_f64()
    );
    let kinds = |k: ActionKind| the_plan.actions.iter().filter(|a| a.kind() == k).count();
    let (creates, deletes) = (kinds(ActionKind::Create), kinds(ActionKind::Delete));
    let expected = n / new_every;
    let checks = [
        (cpu < Duration::from_secs(1), "CPU < 1 s".to_string()),
        (
            creates == expected && deletes == expected && the_plan.actions.len() == 2 * expected,
            format!("{expected} creates + {expected} deletes planned"),
        ),
    ];
    Row {
        scenario: name.to_string(),
        users: n,
        okta: "–".into(),
        spot: "–".into(),
        wall: secs(wall),
        rss: "–".into(),
        cpu: secs(cpu),
        verdict: verdict(&checks),
    }
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage with a valid pointer to a zeroed local.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn verdict(checks: &[(bool, String)]) -> String {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what.as_str())
        .collect();
    if failed.is_empty() {
        let all: Vec<&str> = checks.iter().map(|(_, w)| w.as_str()).collect();
        format!("PASS ({})", all.join(", "))
    } else {
        format!("MISS ({})", failed.join(", "))
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| scenario | users | Okta requests (min) | Spot requests (min) | wall (floor) | peak RSS | CPU | result |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario, r.users, r.okta, r.spot, r.wall, r.rss, r.cpu, r.verdict
        );
    }
}

// ----- 4 / 4b: the daemon, events mode against full cycles -----

/// `sync.schedule`'s default with events mode off (`0 */10 * * * *`).
const FULL_CYCLE_EVERY: Duration = Duration::from_secs(600);

/// What one daemon leg does.
#[derive(Debug, Clone)]
struct Leg {
    name: String,
    events: bool,
    changes: usize,
    /// The changes are spread evenly over this.
    stream: Duration,
    /// How long after the last change its effects may take before the leg gives up on them.
    settle: Duration,
    /// The quiet period after the stream (events mode).
    quiet: Option<Duration>,
    /// `sync.schedule`, when not the default.
    schedule: Option<String>,
}

/// Runs 4 (events mode) and 4b (full cycles) side by side, each daemon with its own emulators
/// and launcher.
async fn events(
    events_launcher: support::Launcher,
    full_launcher: support::Launcher,
    users: usize,
    latency: Duration,
) -> Vec<Row> {
    let events_leg = Leg {
        name: "4 events mode (20 ms, real Okta limits)".into(),
        events: true,
        changes: env_or("SCALE_EVENTS_CHANGES", 100),
        stream: Duration::from_secs(env_or("SCALE_EVENTS_STREAM_SECS", 180)),
        settle: Duration::from_secs(600),
        quiet: Some(Duration::from_secs(env_or("SCALE_QUIET_SECS", 300))),
        schedule: Some(
            std::env::var("SCALE_EVENTS_SCHEDULE").unwrap_or_else(|_| "0 0 0 1 1 *".into()),
        ),
    };
    let full_leg = Leg {
        name: "4b full-cycle mode (20 ms, real Okta limits, every 10 min)".into(),
        events: false,
        changes: env_or("SCALE_FULL_CHANGES", 20),
        stream: Duration::from_secs(env_or("SCALE_FULL_STREAM_SECS", 600)),
        settle: Duration::from_secs(1_800),
        quiet: None,
        schedule: None,
    };
    let a = tokio::spawn(daemon_leg(events_launcher, events_leg, users, latency));
    let b = (env_or("SCALE_FULL", 1) != 0)
        .then(|| tokio::spawn(daemon_leg(full_launcher, full_leg, users, latency)));
    let mut rows = Vec::new();
    for handle in std::iter::once(a).chain(b) {
        match handle.await {
            Ok(row) => rows.push(row),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a daemon leg was cancelled: {e}"),
        }
    }
    rows
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ChangeKind {
    Unassign,
    Deactivate,
    /// A user with no assignment (never in Spot) is assigned as a viewer.
    Assign,
    /// A viewer becomes an editor (Spot role `admin`: the Spot user is recreated).
    ToEditor,
    /// An editor (made one earlier in the stream) becomes a viewer again.
    ToViewer,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Unassign => "unassign",
            ChangeKind::Deactivate => "deactivate",
            ChangeKind::Assign => "assign",
            ChangeKind::ToEditor => "viewer→editor",
            ChangeKind::ToViewer => "editor→viewer",
        }
    }
}

#[derive(Debug, Clone)]
struct Change {
    kind: ChangeKind,
    email: String,
    made: Instant,
    seen: Option<Instant>,
}

impl Change {
    /// The change's effect is what the Spot emulator shows now.
    fn visible(&self, spot: &okta_spot_sim::SpotSim) -> bool {
        let user = spot.user_by_email(&self.email);
        match self.kind {
            ChangeKind::Unassign | ChangeKind::Deactivate => user.is_none(),
            ChangeKind::Assign | ChangeKind::ToViewer => user.is_some_and(|u| u.role == "viewer"),
            ChangeKind::ToEditor => user.is_some_and(|u| u.role == "admin"),
        }
    }

    fn propagation(&self) -> Option<Duration> {
        self.seen.map(|s| s - self.made)
    }
}

fn bulk_email(i: usize) -> String {
    format!("user{i:06}@{}", support::DOMAIN)
}

/// Makes `leg.changes` changes in Okta, evenly spread over `leg.stream`, and watches the Spot
/// emulator every 100 ms until each one's effect shows (or `leg.settle` after the last one).
/// Users are spread over the whole list (a full cycle's walk reaches them at different times)
/// and none is changed twice, except editors made in the stream turned back into viewers.
async fn change_stream(
    setup: &support::Setup,
    daemon: &mut support::RunningDaemon,
    users: usize,
    leg: &Leg,
) -> Vec<Change> {
    let okta = &setup.emu.okta;
    let spot = &setup.emu.spot;
    let mut changes: Vec<Change> = Vec::with_capacity(leg.changes);
    let mut picked = 0usize;
    let mut fresh = || {
        let i = (picked * 997 + 31) % users;
        picked += 1;
        bulk_email(i)
    };
    let mut assigned = 0usize;
    let mut role_slots = 0usize;
    // Editors made in the stream whose effect showed and that were not turned back yet.
    let mut editors: Vec<usize> = Vec::new();
    let mut flipped = std::collections::BTreeSet::new();
    let started = Instant::now();
    let spacing = leg.stream / leg.changes.max(1) as u32;
    let mut last_check_alive = Instant::now();
    loop {
        let now = Instant::now();
        for (i, c) in changes.iter_mut().enumerate() {
            if c.seen.is_none() && c.visible(spot) {
                c.seen = Some(now);
                if c.kind == ChangeKind::ToEditor {
                    editors.push(i);
                }
            }
        }
        if changes.len() < leg.changes && now >= started + spacing * changes.len() as u32 {
            let n = changes.len();
            let kind = match n % 4 {
                0 => ChangeKind::Unassign,
                1 => ChangeKind::Deactivate,
                2 => ChangeKind::Assign,
                _ => {
                    role_slots += 1;
                    let back = editors.iter().copied().find(|i| !flipped.contains(i));
                    match back {
                        Some(_) if role_slots.is_multiple_of(2) => ChangeKind::ToViewer,
                        _ => ChangeKind::ToEditor,
                    }
                }
            };
            let email = match kind {
                ChangeKind::Assign => {
                    assigned += 1;
                    bulk_email(users + assigned - 1)
                }
                ChangeKind::ToViewer => {
                    let i = editors
                        .iter()
                        .copied()
                        .find(|i| !flipped.contains(i))
                        .expect("an editor to turn back");
                    flipped.insert(i);
                    changes[i].email.clone()
                }
                _ => fresh(),
            };
            let id = okta
                .user_id(&email)
                .unwrap_or_else(|| panic!("[{}] no Okta user {email}", leg.name));
            match kind {
                ChangeKind::Unassign => okta.unassign(&id),
                ChangeKind::Deactivate => okta.deactivate(&id),
                ChangeKind::Assign => okta.assign(&id, Some("viewer")),
                ChangeKind::ToEditor => okta.set_role(&id, Some("editor")),
                ChangeKind::ToViewer => okta.set_role(&id, Some("viewer")),
            }
            changes.push(Change {
                kind,
                email,
                made: Instant::now(),
                seen: None,
            });
        }
        let all_made = changes.len() == leg.changes;
        if all_made && changes.iter().all(|c| c.seen.is_some()) {
            break;
        }
        if all_made && now > changes.last().map_or(now, |c| c.made) + leg.settle {
            let missing = changes.iter().filter(|c| c.seen.is_none()).count();
            eprintln!(
                "[{}] {missing} of {} changes not visible in Spot {} s after the last one; giving up on them",
                leg.name,
                changes.len(),
                leg.settle.as_secs()
            );
            break;
        }
        if now - last_check_alive > Duration::from_secs(5) {
            daemon.check_alive(&leg.name).await;
            last_check_alive = now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    changes
}

/// Polls `/readyz` every second until 200 (the first full cycle completed).
async fn wait_ready(
    http: &reqwest::Client,
    listen: std::net::SocketAddr,
    daemon: &mut support::RunningDaemon,
    name: &str,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let ok = http
            .get(format!("http://{listen}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return started.elapsed();
        }
        daemon.check_alive(name).await;
        assert!(
            started.elapsed() < timeout,
            "[{name}] /readyz not 200 after {} s; the daemon's log:\n{}",
            timeout.as_secs(),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn scrape(http: &reqwest::Client, listen: std::net::SocketAddr) -> String {
    let response = http
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    response.text().await.expect("metrics body")
}

/// The sum of a metric's samples whose labels include every one of `labels` (`k="v"`).
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn s1(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Okta requests during a quiet period, watched every 50 ms: the count in the whole window,
/// and the rate between the first and the last request seen in it (fencepost-free: a 15 s
/// poll makes 20 or 21 requests in 300 s depending on the phase, but 20 intervals take
/// 300 s).
struct Quiet {
    window: Duration,
    requests: u64,
    by_route: BTreeMap<String, u64>,
    spot: u64,
    per_hour: f64,
    span: Duration,
}

async fn quiet_period(
    setup: &support::Setup,
    daemon: &mut support::RunningDaemon,
    window: Duration,
    name: &str,
) -> Quiet {
    let okta = &setup.emu.okta;
    let before = okta.request_counts();
    let spot_before = setup.emu.spot.total_requests();
    let base = okta.total_requests();
    let started = Instant::now();
    let mut seen: Vec<(Instant, u64)> = Vec::new();
    let mut last = base;
    let mut last_check_alive = Instant::now();
    while started.elapsed() < window {
        let n = okta.total_requests();
        if n != last {
            seen.push((Instant::now(), n));
            last = n;
        }
        if last_check_alive.elapsed() > Duration::from_secs(5) {
            daemon.check_alive(name).await;
            last_check_alive = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let by_route = delta(&okta.request_counts(), &before);
    let requests = okta.total_requests() - base;
    let (per_hour, span) = match (seen.first(), seen.last()) {
        (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
            let span = t1 - t0;
            ((n1 - n0) as f64 / span.as_secs_f64() * 3600.0, span)
        }
        _ => (requests as f64 / window.as_secs_f64() * 3600.0, window),
    };
    Quiet {
        window,
        requests,
        by_route,
        spot: setup.emu.spot.total_requests() - spot_before,
        per_hour,
        span,
    }
}

fn routes(by_route: &BTreeMap<String, u64>) -> String {
    let short = |k: &str| {
        match k {
            "GET /api/v1/apps/{appId}/users/{userId}" => "user reads",
            "GET /api/v1/apps/{appId}/users" => "list pages",
            "GET /api/v1/logs" => "log polls",
            other => other,
        }
        .to_string()
    };
    by_route
        .iter()
        .map(|(k, v)| format!("{v} {}", short(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One daemon: seed, start `run`, wait for its first full cycle, stream changes, (quiet
/// period), scrape its metrics, SIGTERM it and read its rusage.
async fn daemon_leg(launcher: support::Launcher, leg: Leg, users: usize, latency: Duration) -> Row {
    let name = leg.name.clone();
    let listen = support::free_loopback_addr();
    let events_section = if leg.events {
        "[events]\nenabled = true\npoll_interval = \"15s\"\n"
    } else {
        "[events]\nenabled = false\n"
    };
    // Events mode's safety net (every 6 hours by default) is kept out of the measured windows
    // unless asked for: its 200 pages are reported apart (README "Performance").
    let sync_keys = match &leg.schedule {
        Some(schedule) => format!("max_deletes = 1000\nschedule = \"{schedule}\"\n"),
        None => "max_deletes = 1000\n".to_string(),
    };
    eprintln!(
        "[{name}] seeding {users} users (+{} unassigned)…",
        leg.changes
    );
    let setup = support::daemon_state(
        users,
        leg.changes,
        latency,
        listen,
        &sync_keys,
        events_section,
    )
    .await;
    setup
        .emu
        .okta
        .set_log_ingestion_delay(Duration::ZERO, Duration::from_secs(10));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    eprintln!("[{name}] starting `okta-spot-sync run` (daemon.listen {listen})…");
    let mut daemon = launcher.start_daemon(BIN, &setup, &["run"]);
    let first_cycle = wait_ready(
        &http,
        listen,
        &mut daemon,
        &name,
        Duration::from_secs(1_200),
    )
    .await;
    let start_okta = setup.emu.okta.total_requests();
    eprintln!(
        "[{name}] ready after {} ({start_okta} Okta requests); {} changes over {} s…",
        s1(first_cycle),
        leg.changes,
        leg.stream.as_secs()
    );
    let metrics_ready = scrape(&http, listen).await;
    let rss_line = |daemon: &support::RunningDaemon, when: &str| {
        let (now, peak) = daemon.rss();
        eprintln!(
            "[{name}] RSS {when}: {:.0} MB (peak so far {:.0} MB)",
            now as f64 / MB,
            peak as f64 / MB
        );
    };
    rss_line(&daemon, "after the first cycle");
    let okta_before = setup.emu.okta.request_counts();
    let spot_before = setup.emu.spot.total_requests();
    let stream_started = Instant::now();
    let changes = change_stream(&setup, &mut daemon, users, &leg).await;
    let stream_wall = stream_started.elapsed();
    rss_line(&daemon, "after the stream");
    let okta_stream = delta(&setup.emu.okta.request_counts(), &okta_before);
    let okta_stream_total: u64 = okta_stream.values().sum();
    let spot_stream = setup.emu.spot.total_requests() - spot_before;
    let mut props: Vec<Duration> = changes.iter().filter_map(Change::propagation).collect();
    props.sort();
    let missing = changes.len() - props.len();
    let (p50, p99, max) = (
        percentile(&props, 0.50),
        percentile(&props, 0.99),
        props.last().copied().unwrap_or_default(),
    );
    eprintln!(
        "[{name}] stream done in {}: propagation p50 {}, p99 {}, max {} ({} of {} seen); Okta {}",
        s1(stream_wall),
        s1(p50),
        s1(p99),
        s1(max),
        props.len(),
        changes.len(),
        routes(&okta_stream)
    );
    let mut kinds: BTreeMap<ChangeKind, Vec<Duration>> = BTreeMap::new();
    for c in &changes {
        if let Some(p) = c.propagation() {
            kinds.entry(c.kind).or_default().push(p);
        }
    }
    for (kind, mut v) in kinds {
        v.sort();
        eprintln!(
            "[{name}]   {:<14} n = {:>3}  p50 {}  max {}",
            kind.as_str(),
            v.len(),
            s1(percentile(&v, 0.5)),
            s1(*v.last().expect("non-empty"))
        );
    }
    let timeline: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{:.1}:{}:{}",
                (c.made - stream_started).as_secs_f64(),
                c.kind.as_str(),
                c.propagation()
                    .map_or("never".into(), |p| format!("{:.1}", p.as_secs_f64()))
            )
        })
        .collect();
    eprintln!(
        "[{name}] timeline (made at s: kind: propagation s): {}",
        timeline.join(" ")
    );

    // Okta's cost per hour: events mode in a quiet period; full cycles over everything after
    // the first cycle (changes cost full-cycle mode nothing: it reads the whole list anyway).
    let quiet = match leg.quiet {
        Some(window) => {
            eprintln!("[{name}] quiet period of {} s…", window.as_secs());
            let q = quiet_period(&setup, &mut daemon, window, &name).await;
            eprintln!(
                "[{name}] quiet: {} Okta requests in {} s ({}), {} Spot; {:.0}/h over {:.1} s between the first and the last",
                q.requests,
                q.window.as_secs(),
                routes(&q.by_route),
                q.spot,
                q.per_hour,
                q.span.as_secs_f64()
            );
            Some(q)
        }
        None => None,
    };
    if leg.quiet.is_some() {
        rss_line(&daemon, "after the quiet period");
    }
    let after_first = stream_started.elapsed();
    let okta_after_first = setup.emu.okta.total_requests() - start_okta;
    let metrics_end = scrape(&http, listen).await;
    let okta_429 = |m: &str| {
        metric(
            m,
            "okta_spot_sync_api_requests_total",
            &["api=\"okta\"", "status=\"429\""],
        )
    };
    let (all_429, start_429) = (okta_429(&metrics_end), okta_429(&metrics_ready));
    let polls = |result: &str| {
        metric(
            &metrics_end,
            "okta_spot_sync_event_polls_total",
            &[&format!("result=\"{result}\"")],
        )
    };
    let full_cycles = metric(&metrics_end, "okta_spot_sync_full_cycles_total", &[]);
    let own_sum = metric(
        &metrics_end,
        "okta_spot_sync_propagation_delay_seconds_sum",
        &[],
    );
    let own_count = metric(
        &metrics_end,
        "okta_spot_sync_propagation_delay_seconds_count",
        &[],
    );
    let own_le60 = metric(
        &metrics_end,
        "okta_spot_sync_propagation_delay_seconds_bucket",
        &["le=\"60\""],
    );
    eprintln!(
        "[{name}] metrics: Okta 429s {all_429} ({start_429} in the first cycle); polls quiet {} batch {} full_cycle {} error {}; full cycles {full_cycles}; daemon's own propagation: {own_count} applied, mean {:.1} s, {own_le60} ≤ 60 s",
        polls("quiet"),
        polls("batch"),
        polls("full_cycle"),
        polls("error"),
        if own_count > 0.0 { own_sum / own_count } else { 0.0 }
    );

    eprintln!("[{name}] SIGTERM…");
    let (run, _launcher) = daemon.stop(Duration::from_secs(90)).await;
    let log_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "scale-events-{}.log",
        if leg.events { "events" } else { "full-cycle" }
    ));
    let _ = std::fs::write(&log_path, &run.stderr);
    eprintln!(
        "[{name}] exit {}, wall {}, peak RSS {:.0} MB, CPU {}; log in {}",
        run.code,
        secs(run.wall),
        run.max_rss as f64 / MB,
        secs(run.cpu),
        log_path.display()
    );

    // Full cycles: the requests of the scheduled cycles after the first, per cycle, times the
    // default schedule's 6 an hour (the window from the end of one cycle to the end of
    // another would overstate a rate measured over it).
    let scheduled = (full_cycles - 1.0).max(0.0);
    let per_cycle = if scheduled > 0.0 {
        okta_after_first as f64 / scheduled
    } else {
        0.0
    };
    let per_hour = match &quiet {
        Some(q) => q.per_hour,
        None => per_cycle * 3600.0 / FULL_CYCLE_EVERY.as_secs_f64(),
    };
    let cost = match &quiet {
        Some(q) => format!(
            "quiet hour ≈ {:.0} Okta requests ({} in a {} s quiet window: {}; rate over the {:.0} s between its first and last request)",
            q.per_hour,
            q.requests,
            q.window.as_secs(),
            routes(&q.by_route),
            q.span.as_secs_f64()
        ),
        None => format!(
            "≈ {per_hour:.0} Okta requests/hour ({okta_after_first} in the {:.0} s after the first cycle: {scheduled} scheduled full cycles of {per_cycle:.0}, 6 an hour)",
            after_first.as_secs_f64()
        ),
    };
    let checks = [
        (run.code == 0, "exit 0 on SIGTERM".to_string()),
        (
            missing == 0,
            format!("all {} changes reached Spot", changes.len()),
        ),
        (
            missing == 0 && p99 <= Duration::from_secs(60),
            "propagation p99 ≤ 60 s".to_string(),
        ),
        (
            per_hour <= 250.0,
            "≤ 250 Okta requests per quiet hour".to_string(),
        ),
        (run.max_rss as f64 <= 150.0 * MB, "RSS ≤ 150 MB".to_string()),
    ];
    let mut verdict = verdict(&checks);
    verdict.push_str(&format!(
        "; propagation p50 {}, p99 {}, max {} ({} changes{}); {cost}; Okta 429s: {} after the first cycle, {} in it (each retried)",
        s1(p50),
        s1(p99),
        s1(max),
        changes.len(),
        if missing > 0 { format!(", {missing} never seen") } else { String::new() },
        all_429 - start_429,
        start_429
    ));
    Row {
        scenario: name,
        users,
        okta: format!(
            "stream: {okta_stream_total} ({}); first cycle: {start_okta}",
            routes(&okta_stream)
        ),
        spot: format!("stream: {spot_stream}"),
        wall: format!(
            "{} (first cycle {}, stream {})",
            secs(run.wall),
            s1(first_cycle),
            s1(stream_wall)
        ),
        rss: format!("{:.0} MB", run.max_rss as f64 / MB),
        cpu: secs(run.cpu),
        verdict,
    }
}
