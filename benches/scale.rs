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
//! The reconciler runs as a child process (`okta-spot-sync reconcile`), so its peak RSS and CPU
//! time (from `wait4`) exclude the emulators, which run in this process.

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
    // First, while this process is small (see `support::run_reconcile`).
    let mut launcher = support::Launcher::start();
    let load_before = loadavg();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
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
