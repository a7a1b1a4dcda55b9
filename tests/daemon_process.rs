//! The real binary as systemd runs it: `okta-spot-sync run` against the emulators started in
//! this process, with `NOTIFY_SOCKET` and `WATCHDOG_USEC` pointing at a socket of the test.
//! Signals are real (SIGTERM, SIGHUP). Waits are bounded polls on files and sockets; nothing
//! asserts how long anything took.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use okta_spot_sim::{Emulators, Fault, Fixture, Section};
use okta_spot_sync::ledger::{EntryState, LedgerStore, Origin};

const BIN: &str = env!("CARGO_BIN_EXE_okta-spot-sync");
const PATIENCE: Duration = Duration::from_secs(60);

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    notices: Arc<Mutex<Vec<String>>>,
    notify_socket: PathBuf,
}

fn setup(emu: &Emulators, schedule: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = emu
        .client_config(d)
        .keys(Section::Spot, "write_concurrency = 1")
        .keys(Section::Sync, &format!("schedule = {schedule:?}"))
        .append("[log]\nformat = \"json\"\n")
        .write()
        .unwrap();
    let notify_socket = d.join("notify.sock");
    let socket = UnixDatagram::bind(&notify_socket).unwrap();
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            sink.lock()
                .unwrap()
                .extend(text.lines().map(str::to_string));
        }
    });
    Setup {
        dir,
        config,
        notices,
        notify_socket,
    }
}

impl Setup {
    fn spawn(&self) -> Child {
        Command::new(BIN)
            .args(["--config", self.config.to_str().unwrap(), "run"])
            .env("NOTIFY_SOCKET", &self.notify_socket)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn notices(&self) -> Vec<String> {
        self.notices.lock().unwrap().clone()
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }
}

/// Polls `what` until it holds, at most [`PATIENCE`].
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill failed");
}

async fn wait_exit(child: &mut Child) -> i32 {
    let mut status = None;
    until("the daemon to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    })
    .await;
    status.unwrap().code().expect("exited, not killed")
}

fn has_pending(state: &Path) -> bool {
    LedgerStore::new(state)
        .load()
        .map(|l| l.users.values().any(|e| e.state == EntryState::Pending))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_create_finishes_it_records_it_and_exits_0() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    emu.spot.set_fault(
        "POST /setup/user",
        Fault {
            latency: Some(Duration::from_secs(4)),
            ..Fault::default()
        },
    );
    // Only the start-up cycle runs (the schedule fires once a year).
    let s = setup(&emu, "0 0 0 1 1 *");
    let mut child = s.spawn();
    let state = s.state_file();
    until("a create in flight", || has_pending(&state)).await;

    // A one-shot reconcile is refused by the lock and says who holds it.
    let second = Command::new(BIN)
        .args(["--config", s.config.to_str().unwrap(), "reconcile"])
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
    assert!(err.contains("`okta-spot-sync run`"), "{err}");

    signal(&child, libc::SIGTERM);
    let code = wait_exit(&mut child).await;
    let log = s.stderr();
    assert_eq!(code, 0, "{log}");

    // The create in flight finished and was recorded; no other create started.
    let ledger = LedgerStore::new(&state).load().unwrap();
    let created: Vec<_> = ledger
        .users
        .values()
        .filter(|e| e.origin == Origin::Created)
        .collect();
    assert_eq!(created.len(), 1, "{ledger:?}");
    assert_eq!(created[0].state, EntryState::Managed);
    let spot_id = created[0].spot_user_id.clone().unwrap();
    assert!(emu.spot.user(&spot_id).is_some());
    let new_users = ["alice@example.com", "bob@example.com", "dave@example.com"]
        .iter()
        .filter(|e| emu.spot.user_by_email(e).is_some())
        .count();
    assert_eq!(new_users, 1);

    // systemd was told: ready after the reads, watchdog pings, stopping.
    let notices = s.notices();
    assert!(notices.iter().any(|n| n == "READY=1"), "{notices:?}");
    assert!(notices.iter().any(|n| n == "WATCHDOG=1"), "{notices:?}");
    assert!(notices.iter().any(|n| n == "STOPPING=1"), "{notices:?}");

    // JSON logs: one object per line; every line logged inside the cycle carries its id.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |v: &serde_json::Value| v["message"].as_str().unwrap_or("").to_string();
    let cycle_id = |v: &serde_json::Value| v["span"]["cycle_id"].as_str().map(str::to_string);
    let started = lines
        .iter()
        .position(|v| message(v) == "cycle started")
        .expect("a cycle started");
    let finished = lines
        .iter()
        .position(|v| message(v).starts_with("cycle finished"))
        .expect("the cycle finished");
    let id = cycle_id(&lines[started]).expect("cycle id");
    for line in &lines[started..=finished] {
        if message(line).starts_with("SIGTERM") {
            continue; // logged by the signal task, outside the cycle
        }
        assert_eq!(cycle_id(line).as_deref(), Some(id.as_str()), "{line}");
    }
    assert!(log.contains("were not started"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_keeps_the_old_one() {
    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let s = setup(&emu, "*/1 * * * * *");
    let mut child = s.spawn();
    let statuses = |s: &Setup| {
        s.notices()
            .iter()
            .filter(|n| n.starts_with("STATUS=last cycle:"))
            .count()
    };
    until("a first cycle", || statuses(&s) >= 1).await;

    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        good.replace("[sync]", "[sync]\nmax_deletes = -1"),
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    until("the reload to be rejected", || {
        s.stderr().contains("configuration reload rejected")
    })
    .await;
    assert!(s.stderr().contains("sync.max_deletes"), "{}", s.stderr());
    // Still cycling with the old configuration.
    let seen = statuses(&s);
    until("another cycle", || statuses(&s) > seen).await;
    assert!(child.try_wait().unwrap().is_none(), "the daemon stays up");

    signal(&child, libc::SIGTERM);
    assert_eq!(wait_exit(&mut child).await, 0, "{}", s.stderr());
}
