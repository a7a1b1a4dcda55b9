//! Shared by `benches/scale.rs` and `tests/scale_counts.rs`: seeds the bundled emulators for
//! the scale scenarios, writes a config for the real binary, and runs it as a child process
//! whose peak RSS and CPU time are read from `wait4`'s rusage — so what is measured is the
//! reconciler alone, never the emulators running in the parent process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use okta_spot_sync::ledger::{EntryState, Ledger, LedgerEntry, LedgerStore, Origin};
use okta_spot_sync::model::Role;
use okta_spot_sync::sim::{Emulators, Fault, Fixture};

/// The Okta rate-limit bucket of the app-users list.
pub const OKTA_APPS_BUCKET: &str = "/api/v1/apps/*";
pub const ROUTE_CREATE: &str = "POST /setup/user";
pub const ROUTE_MAPPING: &str = "PUT /setup/user/{userId}/policyMapping";
pub const DOMAIN: &str = "example.com";

/// Emulators plus a directory holding the config, the token files and the state file.
pub struct Setup {
    pub emu: Emulators,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
}

/// Starts both emulators with the Okta
/// rate limit raised so that the client's own budget (`okta.max_api_capacity_percent`) never
/// pauses the walk: the benchmark measures the latency floor, not Okta's real quota (100
/// requests/min on the apps bucket for most orgs, which would make 200 pages take minutes).
pub async fn start() -> Emulators {
    let emu = Emulators::start_local(Fixture::default())
        .await
        .expect("emulators start");
    emu.okta.set_rate_limit(OKTA_APPS_BUCKET, 1_000_000);
    emu.okta.set_rate_limit_enforced(false);
    emu
}

/// Steady state: `n` assigned Okta users, the same `n` users in Spot, and a ledger (written
/// directly, which is much faster than a first sync) that manages every one of them with its
/// role applied. A reconcile has nothing to do.
pub async fn steady_state(n: usize, latency: Duration) -> Setup {
    let emu = start().await;
    emu.okta.bulk_add_assigned_users(n, DOMAIN);
    emu.spot.bulk_add_users(n, DOMAIN);
    let mut ledger = Ledger::default();
    let now = chrono::Utc::now();
    for user in emu.spot.users() {
        if user.kind != "personal" {
            continue;
        }
        let okta_id = emu
            .okta
            .user_id(&user.email)
            .expect("every bulk Spot user has an Okta twin");
        ledger.users.insert(
            okta_id,
            LedgerEntry {
                email: user.email.to_lowercase(),
                spot_user_id: Some(user.user_id.clone()),
                role: Some(Role::Viewer),
                origin: Origin::Adopted,
                state: EntryState::Managed,
                updated_at: now,
            },
        );
    }
    let setup = finish(emu, "", latency);
    LedgerStore::new(&setup.state)
        .save(&ledger)
        .expect("ledger saved");
    setup
}

/// First sync: `n` assigned Okta users, none in Spot, no ledger; `POST /setup/user` and
/// `PUT …/policyMapping` each limited to `per_minute` in Spot's sliding 60 s window.
pub async fn first_sync(
    n: usize,
    latency: Duration,
    per_minute: u32,
    write_concurrency: usize,
) -> Setup {
    let emu = start().await;
    emu.okta.bulk_add_assigned_users(n, DOMAIN);
    emu.spot.set_rate_limit(ROUTE_CREATE, per_minute);
    emu.spot.set_rate_limit(ROUTE_MAPPING, per_minute);
    let extra = format!("write_concurrency = {write_concurrency}\n");
    finish(emu, &extra, latency)
}

fn finish(emu: Emulators, spot_extra: &str, latency: Duration) -> Setup {
    if !latency.is_zero() {
        let fault = Fault {
            latency: Some(latency),
            ..Fault::default()
        };
        emu.okta.set_fault("*", fault.clone());
        emu.spot.set_fault("*", fault);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    write_secret(&dir.path().join("okta-token"), &emu.okta.token());
    write_secret(&dir.path().join("spot-token"), &emu.spot.token());
    let state = dir.path().join("state").join("state.json");
    let config = dir.path().join("config.toml");
    let toml = format!(
        "[okta]\norg_url = {:?}\napp_id = {:?}\ntoken_file = {:?}\n\n\
         [spot]\nbase_url = {:?}\ntoken_file = {:?}\n{spot_extra}\n\
         [sync]\nstate_file = {:?}\n\n[http]\nallow_insecure_http = true\n\n\
         [daemon]\nlisten = \"\"\n\n[log]\nlevel = \"warn\"\n",
        emu.okta.url(),
        emu.okta.app_id(),
        dir.path().join("okta-token").display().to_string(),
        emu.spot.url(),
        dir.path().join("spot-token").display().to_string(),
        state.display().to_string(),
    );
    std::fs::write(&config, toml).expect("config written");
    emu.okta.reset_counts();
    emu.spot.reset_counts();
    Setup {
        emu,
        dir,
        config,
        state,
    }
}

fn write_secret(path: &Path, content: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .expect("token file written");
}

/// What one run of the binary did, measured from outside.
#[derive(Debug)]
pub struct ChildRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// Peak resident set size (`ru_maxrss`), bytes.
    pub max_rss: u64,
    /// User + system CPU time.
    pub cpu: Duration,
}

impl ChildRun {
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "the report is not JSON ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }
}

/// Runs `bin --config <config> reconcile --output json` and waits for it with `wait4`, on a
/// blocking thread so the emulators (tokio tasks of this process) keep serving.
pub async fn run_reconcile(bin: &str, setup: &Setup) -> ChildRun {
    let out = setup.dir.path().join("stdout.json");
    let err = setup.dir.path().join("stderr.log");
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&setup.config)
        .args(["reconcile", "--output", "json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    let started = Instant::now();
    let child = cmd.spawn().expect("the binary starts");
    let pid = child.id() as libc::pid_t;
    let (status, usage) = tokio::task::spawn_blocking(move || {
        let mut status: libc::c_int = 0;
        // SAFETY: plain FFI call with valid pointers to locals; `pid` is our own child, which
        // `std::process::Child` has not reaped (we never call `wait` on it).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(rc, pid, "wait4 failed: {}", std::io::Error::last_os_error());
        (status, usage)
    })
    .await
    .expect("wait4 thread");
    let wall = started.elapsed();
    drop(child);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    ChildRun {
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        wall,
        max_rss: usage.ru_maxrss as u64 * 1024,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}
