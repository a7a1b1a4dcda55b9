//! Shared by `benches/scale.rs` and `tests/scale_counts.rs`: seeds the bundled emulators for
//! the scale scenarios, writes a config for the real binary, and runs it as a child process
//! whose peak RSS and CPU time are read from `wait4`'s rusage — so what is measured is the
//! reconciler alone, never the emulators running in the parent process.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use okta_spot_sim::{ClientConfig, Emulators, Fault, Fixture, Section};
use okta_spot_sync::ledger::{EntryState, Ledger, LedgerEntry, LedgerStore, Origin};
use okta_spot_sync::model::Role;

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
    let ledger = seed_in_sync(&emu, n);
    let setup = finish(emu, "", latency);
    save_ledger(&setup, &ledger);
    setup
}

/// [`steady_state`] with `spot.write_concurrency` set (it also bounds `audit`'s reads).
pub async fn steady_state_with(n: usize, latency: Duration, write_concurrency: usize) -> Setup {
    let emu = start().await;
    let ledger = seed_in_sync(&emu, n);
    let extra = format!("write_concurrency = {write_concurrency}\n");
    let setup = finish(emu, &extra, latency);
    save_ledger(&setup, &ledger);
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
    growth(0, n, latency, per_minute, write_concurrency).await
}

/// Growth: the steady state of `existing` users, then `new` more assigned in Okta only, with
/// Spot's writes limited as in [`first_sync`]. Every create is preceded by a durable save of
/// the whole state file, so this measures the write path against a large one.
pub async fn growth(
    existing: usize,
    new: usize,
    latency: Duration,
    per_minute: u32,
    write_concurrency: usize,
) -> Setup {
    let emu = start().await;
    let ledger = (existing > 0).then(|| seed_in_sync(&emu, existing));
    emu.okta.bulk_add_assigned_users(new, DOMAIN);
    emu.spot.set_rate_limit(ROUTE_CREATE, per_minute);
    emu.spot.set_rate_limit(ROUTE_MAPPING, per_minute);
    let extra = format!("write_concurrency = {write_concurrency}\n");
    let setup = finish(emu, &extra, latency);
    if let Some(ledger) = ledger {
        save_ledger(&setup, &ledger);
    }
    setup
}

/// The Okta buckets the daemon scenarios enforce at Okta's documented defaults
/// (docs/api-facts.md "Okta rate limits").
pub const OKTA_LOGS_BUCKET: &str = "/api/v1/logs";

/// For `okta-spot-sync run`: the steady state of `n` users (ledger written directly, as in
/// [`steady_state`]) plus `unassigned` more Okta users with no assignment (to assign later),
/// Okta's **real** limits enforced (`/api/v1/apps/*` 100/min, `/api/v1/logs` 120/min; the
/// client keeps to its default `okta.max_api_capacity_percent` of each), `daemon.listen` on
/// `listen`, the log at `info`, and `extra` appended to the config (`[sync]` keys go in
/// `sync_keys`).
pub async fn daemon_state(
    n: usize,
    unassigned: usize,
    latency: Duration,
    listen: std::net::SocketAddr,
    sync_keys: &str,
    extra: &str,
) -> Setup {
    let emu = start().await;
    let ledger = seed_in_sync(&emu, n);
    emu.okta.bulk_add_users(unassigned, DOMAIN, false);
    // An organization admin of Spot's own, not in Okta and protected: as in a real
    // organization, where the tool's users are never the only admin (Spot refuses to delete
    // the last one, and an editor → viewer change deletes the editor's `admin` user).
    emu.spot.add_user(ORG_ADMIN, "Org", "Admin", "admin");
    emu.okta.set_rate_limit(OKTA_APPS_BUCKET, 100);
    emu.okta.set_rate_limit(OKTA_LOGS_BUCKET, 120);
    emu.okta.set_rate_limit_enforced(true);
    let setup = finish_with(emu, latency, |config| {
        config
            .without_daemon_listen()
            .keys(Section::Daemon, &format!("listen = \"{listen}\"\n"))
            .protected_emails(&[ORG_ADMIN])
            .keys(Section::Sync, sync_keys)
            .append(&format!("[log]\nlevel = \"info\"\n\n{extra}"))
    });
    save_ledger(&setup, &ledger);
    setup
}

/// The Spot organization admin of [`daemon_state`] (not in Okta).
pub const ORG_ADMIN: &str = "org-admin@spot-admins.example.org";

/// A loopback address with a port that was free a moment ago (bound, then released).
pub fn free_loopback_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// Adds `n` assigned Okta users and the same users in Spot, and returns a ledger that manages
/// every one of them with its role applied.
fn seed_in_sync(emu: &Emulators, n: usize) -> Ledger {
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
            okta_id.into(),
            LedgerEntry {
                email: user.email.to_lowercase(),
                spot_user_id: Some(user.user_id.clone().into()),
                tombstones: Vec::new(),
                role: Some(Role::Viewer),
                access: okta_spot_sync::access::ACCESS_MODEL,
                origin: Origin::Adopted,
                state: EntryState::Managed,
                updated_at: now,
            },
        );
    }
    ledger
}

fn save_ledger(setup: &Setup, ledger: &Ledger) {
    let started = Instant::now();
    LedgerStore::new(&setup.state)
        .save(ledger)
        .expect("ledger saved");
    eprintln!(
        "  state file of {} users: {} MB, saved in {} ms",
        ledger.users.len(),
        std::fs::metadata(&setup.state).map_or(0, |m| m.len()) / 1_000_000,
        started.elapsed().as_millis()
    );
}

fn finish(emu: Emulators, spot_extra: &str, latency: Duration) -> Setup {
    finish_with(emu, latency, |config| {
        config
            .keys(Section::Spot, spot_extra)
            .append("[log]\nlevel = \"warn\"\n")
    })
}

/// Injects `latency` on every route of both emulators, writes the config (`configure` adds
/// its keys to the emulators' client config, whose state file is set here) and resets the
/// request counts.
fn finish_with(
    emu: Emulators,
    latency: Duration,
    configure: impl FnOnce(ClientConfig) -> ClientConfig,
) -> Setup {
    if !latency.is_zero() {
        let fault = Fault {
            latency: Some(latency),
            ..Fault::default()
        };
        emu.okta.set_fault("*", fault.clone());
        emu.spot.set_fault("*", fault);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state").join("state.json");
    let config = configure(emu.client_config(dir.path()).state_file(&state))
        .write()
        .expect("config written");
    emu.okta.reset_counts();
    emu.spot.reset_counts();
    Setup {
        emu,
        dir,
        config,
        state,
    }
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
/// blocking thread so the emulators (tokio tasks of this process) keep serving. The child's
/// `ru_maxrss` is only meaningful when this process is small: Linux keeps, across `exec`, the
/// peak RSS of the memory the child started with (a copy of this process). The benchmark
/// therefore spawns through a [`Launcher`] started before the emulators grow.
pub async fn run_reconcile(bin: &str, setup: &Setup) -> ChildRun {
    let request = LaunchRequest::new(bin, setup);
    let result = tokio::task::spawn_blocking(move || request.run())
        .await
        .expect("wait4 thread");
    result.into_run(setup)
}

/// One run of the reconciler, as sent to the launcher.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LaunchRequest {
    bin: String,
    config: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    rust_log: Option<String>,
    /// The command after `--config FILE`; `reconcile --output json` when empty.
    #[serde(default)]
    args: Vec<String>,
    /// A daemon (`run`): the launcher answers `{"pid": N}` as soon as it is spawned, then the
    /// result once it has exited (after the benchmark's SIGTERM).
    #[serde(default)]
    daemon: bool,
}

/// The launcher's first answer to a daemon request.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Spawned {
    pid: i32,
}

/// What the launcher measured.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LaunchResult {
    code: i32,
    wall_ns: u64,
    max_rss_kb: u64,
    cpu_ns: u64,
}

impl LaunchRequest {
    fn new(bin: &str, setup: &Setup) -> Self {
        LaunchRequest {
            bin: bin.to_string(),
            config: setup.config.clone(),
            stdout: setup.dir.path().join("stdout.json"),
            stderr: setup.dir.path().join("stderr.log"),
            // e.g. `SCALE_LOG=okta_spot_sync=debug`: the child's own timeline, on its stderr.
            rust_log: std::env::var("SCALE_LOG").ok(),
            args: Vec::new(),
            daemon: false,
        }
    }

    /// Spawns the reconciler and reaps it with `wait4`.
    fn run(&self) -> LaunchResult {
        self.run_with(|_| {})
    }

    /// [`LaunchRequest::run`], calling `spawned` with the child's pid before waiting.
    fn run_with(&self, spawned: impl FnOnce(libc::pid_t)) -> LaunchResult {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&self.config)
            .args(if self.args.is_empty() {
                vec!["reconcile".to_string(), "--output".into(), "json".into()]
            } else {
                self.args.clone()
            })
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&self.stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&self.stderr).expect("stderr file"));
        if let Some(filter) = &self.rust_log {
            cmd.env("RUST_LOG", filter);
        }
        // glibc's allocator knob, passed through to compare memory use with it set.
        if let Ok(arenas) = std::env::var("MALLOC_ARENA_MAX") {
            cmd.env("MALLOC_ARENA_MAX", arenas);
        }
        // `SCALE_CHILD_<NAME>=value` reaches the reconciler (only) as `<NAME>=value`: e.g. a
        // heap profiler's `LD_PRELOAD`, which must not load into this process.
        for (key, value) in std::env::vars_os() {
            if let Some(name) = key.to_str().and_then(|k| k.strip_prefix("SCALE_CHILD_")) {
                cmd.env(name, value);
            }
        }
        let started = Instant::now();
        if self.rust_log.is_some() {
            eprintln!(
                "spawning the reconciler at {}",
                chrono::Utc::now().to_rfc3339()
            );
        }
        let child = cmd.spawn().expect("the binary starts");
        let pid = child.id() as libc::pid_t;
        spawned(pid);
        let mut status: libc::c_int = 0;
        // SAFETY: FFI with valid pointers to locals; `pid` is our child, which
        // `std::process::Child` has not reaped (its `wait` is never called).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
        let wall = started.elapsed();
        drop(child);
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        LaunchResult {
            code: if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            },
            wall_ns: wall.as_nanos() as u64,
            max_rss_kb: usage.ru_maxrss as u64,
            cpu_ns: (tv(usage.ru_utime) + tv(usage.ru_stime)).as_nanos() as u64,
        }
    }
}

impl LaunchResult {
    fn into_run(self, setup: &Setup) -> ChildRun {
        ChildRun {
            code: self.code,
            stdout: std::fs::read_to_string(setup.dir.path().join("stdout.json"))
                .unwrap_or_default(),
            stderr: std::fs::read_to_string(setup.dir.path().join("stderr.log"))
                .unwrap_or_default(),
            wall: Duration::from_nanos(self.wall_ns),
            max_rss: self.max_rss_kb * 1024,
            cpu: Duration::from_nanos(self.cpu_ns),
        }
    }
}

/// A small helper process (this executable with `--launcher`) that spawns the reconciler for
/// us, so the child's peak RSS is its own and not a copy of ours (see [`run_reconcile`]).
/// Requests and results are JSON lines on its stdin and stdout.
pub struct Launcher {
    child: std::process::Child,
    input: Option<std::io::BufWriter<std::process::ChildStdin>>,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Launcher {
    /// Starts the helper; call it first thing in `main`, while this process is small.
    pub fn start() -> Launcher {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .arg("--launcher")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("launcher starts");
        let input = Some(std::io::BufWriter::new(child.stdin.take().expect("stdin")));
        let output = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        Launcher {
            child,
            input,
            output,
        }
    }

    /// The helper's loop (`--launcher`): one request per line, one result per line.
    pub fn serve() {
        use std::io::{BufRead, Write};
        let stdin = std::io::stdin();
        let mut stdout = std::io::stdout();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let request: LaunchRequest = serde_json::from_str(&line).expect("launch request");
            let result = request.run_with(|pid| {
                if request.daemon {
                    let text = serde_json::to_string(&Spawned { pid }).expect("pid");
                    writeln!(stdout, "{text}")
                        .and_then(|_| stdout.flush())
                        .expect("write pid");
                }
            });
            let text = serde_json::to_string(&result).expect("result");
            writeln!(stdout, "{text}")
                .and_then(|_| stdout.flush())
                .expect("write result");
        }
    }

    /// Runs the reconciler through the helper (blocking this thread, not the emulators).
    pub async fn run(&mut self, bin: &str, setup: &Setup) -> ChildRun {
        self.run_command(bin, setup, &[]).await
    }

    /// Sends one request to the helper and returns its first answer line (blocking this
    /// thread, not the emulators).
    fn exchange(&mut self, request: &LaunchRequest) -> String {
        use std::io::{BufRead, Write};
        let request = serde_json::to_string(request).expect("request");
        tokio::task::block_in_place(|| {
            let input = self.input.as_mut().expect("launcher open");
            writeln!(input, "{request}")
                .and_then(|_| input.flush())
                .expect("send to launcher");
            let mut line = String::new();
            self.output.read_line(&mut line).expect("launcher answers");
            line
        })
    }

    /// Runs `bin --config FILE <args>` (`reconcile --output json` when `args` is empty).
    pub async fn run_command(&mut self, bin: &str, setup: &Setup, args: &[&str]) -> ChildRun {
        let mut request = LaunchRequest::new(bin, setup);
        request.args = args.iter().map(|a| a.to_string()).collect();
        let line = self.exchange(&request);
        let result: LaunchResult = serde_json::from_str(&line).expect("launch result");
        result.into_run(setup)
    }
}

impl Launcher {
    /// Spawns `bin --config FILE <args>` (a daemon: `run`) through the helper and returns at
    /// once; [`RunningDaemon::stop`] sends SIGTERM and collects its rusage. The helper is
    /// busy until then, so each daemon running at the same time needs its own launcher.
    pub fn start_daemon(mut self, bin: &str, setup: &Setup, args: &[&str]) -> RunningDaemon {
        let mut request = LaunchRequest::new(bin, setup);
        request.args = args.iter().map(|a| a.to_string()).collect();
        request.daemon = true;
        let (stdout, stderr) = (request.stdout.clone(), request.stderr.clone());
        let line = self.exchange(&request);
        let spawned: Spawned = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the launcher's answer {line:?} is not a pid: {e}"));
        RunningDaemon {
            launcher: Some(self),
            pid: spawned.pid,
            stdout,
            stderr,
        }
    }
}

/// A daemon spawned by [`Launcher::start_daemon`]. Dropped without [`RunningDaemon::stop`]
/// (a panic in the benchmark), it is killed, so no daemon outlives the benchmark.
pub struct RunningDaemon {
    launcher: Option<Launcher>,
    pub pid: libc::pid_t,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl RunningDaemon {
    /// Still running (not yet reaped by the launcher, which reaps it at once).
    pub fn alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(self.pid, 0) == 0 }
    }

    /// `(VmRSS, VmHWM)` from `/proc/<pid>/status`, bytes: the resident set now and its peak
    /// so far (the same peak `wait4` reports at exit).
    pub fn rss(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }

    /// The daemon's log so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Panics with the log when the daemon has exited on its own.
    pub async fn check_alive(&mut self, what: &str) {
        if !self.alive() {
            let (run, _) = self.collect().await;
            panic!(
                "{what}: the daemon exited on its own (code {}):\n{}",
                run.code, run.stderr
            );
        }
    }

    /// SIGTERM, then waits up to `grace` for it to exit (SIGKILL after that, and a panic
    /// once its rusage is collected); returns what it did and the launcher, free again.
    pub async fn stop(mut self, grace: Duration) -> (ChildRun, Launcher) {
        // SAFETY: our own child's pid (not reaped while `alive`).
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while self.alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let killed = self.alive();
        if killed {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let (run, launcher) = self.collect().await;
        assert!(
            !killed,
            "the daemon did not exit within {grace:?} of SIGTERM; killed. Log:\n{}",
            run.stderr
        );
        (run, launcher)
    }

    /// Reads the launcher's result (it comes once the daemon has exited).
    async fn collect(&mut self) -> (ChildRun, Launcher) {
        use std::io::BufRead;
        let mut launcher = self.launcher.take().expect("not collected yet");
        let line = tokio::task::block_in_place(|| {
            let mut line = String::new();
            launcher
                .output
                .read_line(&mut line)
                .expect("launcher answers");
            line
        });
        let result: LaunchResult = serde_json::from_str(&line).expect("launch result");
        let run = ChildRun {
            code: result.code,
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            wall: Duration::from_nanos(result.wall_ns),
            max_rss: result.max_rss_kb * 1024,
            cpu: Duration::from_nanos(result.cpu_ns),
        };
        (run, launcher)
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        if self.launcher.is_some() && self.alive() {
            // SAFETY: our own child's pid, not yet reaped (alive).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        drop(self.input.take()); // EOF ends the helper's loop
        let _ = self.child.wait();
    }
}
