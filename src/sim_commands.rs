//! The two commands that run on the bundled emulators: `emulate` (serve them until Ctrl-C) and
//! `demo` (a narrated story that checks its own outcome).
//!
//! The demo drives the real reconciler over real HTTP on loopback, with a real config file,
//! token files and state file in a temporary directory. It exits non-zero if any step's
//! outcome differs from what the story says, so it doubles as a smoke test.

use crate::{out, outln};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{self, Settings};
use crate::cycle::{run_cycle, CycleOptions};
use crate::import::{run_import, ImportOptions};
use crate::ledger::LedgerStore;
use crate::plan::{ActionKind, ActionStatus};
use crate::report::{Mode, Report};
use crate::Error;
use okta_spot_sim::{Emulators, Fixture, OktaUserSpec, SpotSim};

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}: {e}"))
}

/// `emulate`: serves both emulators until Ctrl-C and prints how to point the tool at them.
pub async fn emulate(
    okta_addr: SocketAddr,
    spot_addr: SocketAddr,
    fixture: Option<&Path>,
) -> Result<i32, Error> {
    let fixture = match fixture {
        Some(path) => {
            Fixture::load(path).map_err(|e| io_error(&format!("fixture {}", path.display()), e))?
        }
        None => Fixture::demo(),
    };
    let emulators = Emulators::start(fixture, okta_addr, spot_addr)
        .await
        .map_err(|e| io_error("starting the emulators", e))?;
    let (okta, spot) = (&emulators.okta, &emulators.spot);
    outln!(
        "Okta emulator: {}  (SSWS token: {}, app id: {})",
        okta.url(),
        okta.token(),
        okta.app_id()
    );
    outln!(
        "Spot emulator: {}  (bearer token: {})",
        spot.url(),
        spot.token()
    );
    outln!(
        "Admin API:     {}/__admin/state and {}/__admin/state",
        okta.url(),
        spot.url()
    );
    outln!();
    outln!("A config for these emulators (tokens via the environment):");
    outln!();
    outln!("  export OKTA_SPOT_SYNC_OKTA_TOKEN={}", okta.token());
    outln!("  export OKTA_SPOT_SYNC_SPOT_TOKEN={}", spot.token());
    let config = emulators
        .client_config(".")
        .without_token_files()
        .state_file("./state.json");
    outln!("{}", indent(&config.to_toml()));
    outln!("Press Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    emulators.shutdown().await;
    Ok(0)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A scratch directory removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!(
            "okta-spot-sync-demo-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io_error("creating a scratch directory", e))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Demo {
    emulators: Emulators,
    settings: Settings,
    store: LedgerStore,
    failures: Vec<String>,
}

impl Demo {
    fn say(&self, text: &str) {
        outln!("{text}");
    }

    fn expect(&mut self, ok: bool, what: &str) {
        if ok {
            outln!("  ✓ {what}");
        } else {
            outln!("  ✗ {what}");
            self.failures.push(what.to_string());
        }
    }

    async fn cycle(&self, mode: Mode) -> Result<Report, Error> {
        let okta = crate::okta::client::OktaClient::new(&self.settings.okta, &self.settings.http)?;
        let spot = crate::spot::client::SpotClient::new(&self.settings.spot, &self.settings.http)?;
        run_cycle(
            &self.settings,
            &okta,
            &spot,
            &self.store,
            mode,
            &CycleOptions::default(),
        )
        .await
    }

    async fn import(&self, assign: bool) -> Result<Report, Error> {
        let okta = crate::okta::client::OktaClient::new(&self.settings.okta, &self.settings.http)?;
        let spot = crate::spot::client::SpotClient::new(&self.settings.spot, &self.settings.http)?;
        run_import(
            &self.settings,
            &okta,
            &spot,
            &self.store,
            &ImportOptions { assign, role: None },
        )
        .await
    }

    async fn audit(&self, repair: bool) -> Result<crate::audit::AuditReport, Error> {
        let spot = crate::spot::client::SpotClient::new(&self.settings.spot, &self.settings.http)?;
        let stop = tokio_util::sync::CancellationToken::new();
        crate::audit::run_audit(&self.settings, &spot, &self.store, repair, &stop).await
    }

    /// Step 11: the daemon in events mode on this demo's state; bob is unassigned once it runs.
    /// `Some((time to his removal, full reads after the start))`, or `None` when he was still
    /// there after 30 s.
    async fn events_step(&self) -> Result<Option<(std::time::Duration, u64)>, Error> {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use crate::daemon::{self, ApiCycles, CronTicker, Deps, NoNotifier, Status};
        use crate::metrics::Metrics;

        const LIST: &str = "GET /api/v1/apps/{appId}/users";
        let mut settings = self.settings.clone();
        settings.events.enabled = true;
        settings.events.poll_interval = Duration::from_secs(2);
        settings.sync.audit_schedule = None;
        settings.daemon.listen = None;
        let reload_settings = settings.clone();
        let status = Arc::new(Mutex::new(Status::default()));
        let (_reload, reloads) = tokio::sync::mpsc::channel(1);
        let deps = Deps {
            settings,
            reload: Box::new(move || Ok(reload_settings.clone())),
            reloads,
            runner: Arc::new(ApiCycles::default()),
            ticker: Box::new(CronTicker::default()),
            audit_ticker: Box::new(CronTicker::default()),
            notifier: Arc::new(NoNotifier),
            listener: None,
            watchdog: None,
            status: status.clone(),
            metrics: Metrics::new(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(daemon::run(deps, async move {
            let _ = stopped.await;
        }));
        let okta = &self.emulators.okta;
        let ready =
            |s: &Mutex<Status>| s.lock().map(|s| s.last_complete.is_some()).unwrap_or(false);
        for _ in 0..300 {
            if ready(&status) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reads_before = okta.request_count(LIST);
        let bob = okta.user_id("bob@example.com").unwrap_or_default();
        okta.unassign(&bob);
        let changed = std::time::Instant::now();
        let mut gone = None;
        while changed.elapsed() < Duration::from_secs(30) {
            if self.spot().user_by_email("bob@example.com").is_none() {
                gone = Some(changed.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let full_reads = okta.request_count(LIST) - reads_before;
        let _ = stop.send(());
        task.await
            .map_err(|e| io_error("stopping the demo daemon", e))??;
        Ok(gone.map(|after| (after, full_reads)))
    }

    fn spot(&self) -> &SpotSim {
        &self.emulators.spot
    }

    fn spot_table(&self) -> String {
        let mut out = String::from("  Spot organization now:\n");
        let mut users = self.spot().users();
        users.sort_by(|a, b| a.email.cmp(&b.email).then(a.user_id.cmp(&b.user_id)));
        let all = self.spot().account_ids().len();
        for u in users {
            let policies: Vec<String> = u
                .policies
                .iter()
                .map(|(id, accounts)| {
                    if accounts.iter().any(|a| a == "*") {
                        format!("policy {id} on every account (\"*\")")
                    } else {
                        format!("policy {id} on {} of {all} accounts", accounts.len())
                    }
                })
                .collect();
            let who = if u.kind == "programmatic" {
                format!("{} (programmatic)", u.first_name)
            } else {
                u.email.clone()
            };
            let _ = writeln!(
                out,
                "    {:<12} {:<26} {:<7} {}",
                u.user_id,
                who,
                if u.role.is_empty() { "-" } else { &u.role },
                policies.join(", ")
            );
        }
        out
    }
}

impl Demo {
    /// Does the user with `email` have the Account Viewer policy on every account of the
    /// organization (explicitly or through `"*"`)?
    fn sees_every_account(&self, email: &str) -> bool {
        let spot = self.spot();
        let (Some(user), Some(viewer)) = (
            spot.user_by_email(email),
            spot.policy_id_by_name("Account Viewer"),
        ) else {
            return false;
        };
        let all = spot.account_ids();
        spot.effective_policies(&user.user_id).is_some_and(|seen| {
            seen.iter()
                .any(|(p, a)| *p == viewer && all.iter().all(|x| a.contains(x)))
        })
    }
}

fn applied(report: &Report, kind: ActionKind, email: &str) -> bool {
    report
        .actions
        .iter()
        .any(|a| a.action == kind && a.email == email && a.status == ActionStatus::Applied)
}

/// `demo`: the story of README "Commands and exit codes" (`demo`) on the emulators, narrated;
/// exits 1 if any step misbehaves.
pub async fn demo() -> Result<i32, Error> {
    let scratch = ScratchDir::new()?;
    let emulators = Emulators::start_local(Fixture::demo())
        .await
        .map_err(|e| io_error("starting the emulators", e))?;
    let state = scratch.0.join("state.json");
    let config_path = emulators
        .client_config(&scratch.0)
        .state_file(&state)
        .write()
        .map_err(|e| io_error("writing the demo config", e))?;
    let loaded = config::load_from_env_vars(&config_path, std::iter::empty::<(String, String)>())?;
    let mut demo = Demo {
        emulators,
        settings: loaded.settings,
        store: LedgerStore::new(&state),
        failures: Vec::new(),
    };

    demo.say("okta-spot-sync demo: the Okta and Spot emulators run on loopback; every call below is real HTTP.");
    demo.say(&format!(
        "  Okta: {}   Spot: {}",
        demo.emulators.okta.url(),
        demo.emulators.spot.url()
    ));
    demo.say("");
    demo.say("The Okta app assigns alice (viewer), bob (editor), Carol@Example.com (viewer) and dave (viewer).");
    demo.say("Spot already has owner@example.com (an admin Okta does not know), carol, frank@example.com");
    demo.say("(no Okta user yet: he is imported in step 8) and the programmatic user ci-bot.");
    demo.say(&demo.spot_table());

    demo.say("Step 1 — `okta-spot-sync plan`: what would change, nothing written.");
    let writes_before = demo.spot().write_requests();
    let report = demo.cycle(Mode::Plan).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(report.exit_code() == 2, "plan exits 2: changes pending");
    demo.expect(
        demo.spot().write_requests() == writes_before,
        "plan made no write call",
    );
    demo.say("");

    demo.say(
        "Step 2 — `okta-spot-sync reconcile`: carol is adopted, alice, bob and dave are created.",
    );
    let report = demo.cycle(Mode::Apply).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        applied(&report, ActionKind::Adopt, "carol@example.com"),
        "existing Spot user carol adopted (matched case-insensitively)",
    );
    for email in ["alice@example.com", "bob@example.com", "dave@example.com"] {
        demo.expect(
            applied(&report, ActionKind::Create, email),
            &format!("{email} created"),
        );
    }
    let alice = demo.spot().user_by_email("alice@example.com");
    demo.expect(
        alice.as_ref().is_some_and(|u| u.role == "viewer")
            && demo.sees_every_account("alice@example.com"),
        "alice is a viewer with the Account Viewer policy on every account",
    );
    demo.expect(
        demo.sees_every_account("carol@example.com"),
        "carol, adopted, gained the Account Viewer policy on every account (she had it on one)",
    );
    let bob = demo.spot().user_by_email("bob@example.com");
    demo.expect(
        bob.is_some_and(|u| u.role == "admin"),
        "bob (editor) is an organization admin",
    );
    demo.expect(report.exit_code() == 0, "reconcile exits 0");
    out!("{}", demo.spot_table());
    demo.say("");

    demo.say(
        "Step 3 — the organization adds a cloud account. Every viewer's policy is mapped on \"*\"",
    );
    demo.say(
        "(every account, the ones added later included), so the next reconcile writes nothing",
    );
    demo.say("and every viewer sees the new account.");
    let added = demo.spot().add_account("new-cloud-account");
    let writes_before = demo.spot().write_requests();
    let report = demo.cycle(Mode::Apply).await?;
    demo.expect(
        report.actions.is_empty() && demo.spot().write_requests() == writes_before,
        &format!("account {added} added: zero writes"),
    );
    for email in ["alice@example.com", "carol@example.com", "dave@example.com"] {
        demo.expect(
            demo.sees_every_account(email),
            &format!("{email} sees every account, {added} included"),
        );
    }
    demo.say("");

    demo.say("Step 4 — dave is deactivated in Okta; the next reconcile deletes his Spot user.");
    demo.emulators.okta.deactivate("dave@example.com");
    let report = demo.cycle(Mode::Apply).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        applied(&report, ActionKind::Delete, "dave@example.com"),
        "dave deleted",
    );
    demo.expect(
        demo.spot().user_by_email("dave@example.com").is_none(),
        "dave is gone from Spot",
    );
    demo.say("");

    demo.say(
        "Step 5 — dave is reactivated and reassigned in Okta; the next reconcile recreates him.",
    );
    demo.emulators.okta.reactivate("dave@example.com");
    demo.emulators
        .okta
        .assign("dave@example.com", Some("viewer"));
    let report = demo.cycle(Mode::Apply).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        applied(&report, ActionKind::Recreate, "dave@example.com"),
        "dave recreated",
    );
    demo.say("");

    demo.say("Step 6 — nothing changed in Okta: a second reconcile makes no write call.");
    let writes_before = demo.spot().write_requests();
    let report = demo.cycle(Mode::Apply).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        report.actions.is_empty() && demo.spot().write_requests() == writes_before,
        "zero writes",
    );
    demo.say("");

    demo.say(
        "Step 7 — frank@example.com has been in Spot all along; now he joins Okta (active, but not",
    );
    demo.say("assigned to the app). `okta-spot-sync import` matches him by email and lists him as \"would assign\";");
    demo.say("owner@example.com has no Okta user and is left alone.");
    let frank_spot_id = demo
        .spot()
        .user_by_email("frank@example.com")
        .map(|u| u.user_id)
        .unwrap_or_default();
    demo.emulators.okta.add_user(OktaUserSpec {
        email: "frank@example.com".into(),
        first_name: "Frank".into(),
        last_name: "Fischer".into(),
        ..OktaUserSpec::default()
    });
    const ASSIGN: &str = "POST /api/v1/apps/{appId}/users";
    let assigns_before = demo.emulators.okta.request_count(ASSIGN);
    let report = demo.import(false).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        report.actions.iter().any(|a| {
            a.action == ActionKind::AssignInOkta
                && a.email == "frank@example.com"
                && a.status == ActionStatus::Planned
        }),
        "import lists frank as \"would assign\"",
    );
    demo.expect(
        report.unmatched.as_ref().is_some_and(|u| {
            u.iter()
                .any(|u| u.email.as_deref() == Some("owner@example.com"))
        }),
        "owner@example.com (no Okta user) is reported as not imported",
    );
    demo.expect(
        demo.emulators.okta.request_count(ASSIGN) == assigns_before && report.exit_code() == 0,
        "import without --assign changed nothing in Okta and exits 0",
    );
    demo.say("");

    demo.say("Step 8 — `okta-spot-sync import --assign`: frank is assigned to the Okta app (as the default");
    demo.say("role, viewer) and his existing Spot user is adopted: same user id, API tokens and settings kept.");
    let report = demo.import(true).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        applied(&report, ActionKind::AssignInOkta, "frank@example.com"),
        "frank assigned to the app in Okta",
    );
    demo.expect(
        applied(&report, ActionKind::Adopt, "frank@example.com"),
        "frank's existing Spot user adopted",
    );
    demo.expect(report.exit_code() == 0, "import --assign exits 0");
    demo.say("");

    demo.say(
        "Step 9 — a reconcile after the import: `import` never writes to Spot, so this cycle adds",
    );
    demo.say(
        "frank's missing viewer grants (keeping what he had); the next one has nothing to do.",
    );
    let report = demo.cycle(Mode::Apply).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        applied(&report, ActionKind::UpdateRole, "frank@example.com")
            && report.actions.len() == 1
            && demo.sees_every_account("frank@example.com"),
        "frank's access brought in line: the Account Viewer policy on every account",
    );
    let writes_before = demo.spot().write_requests();
    let report = demo.cycle(Mode::Apply).await?;
    demo.expect(
        report.actions.is_empty() && demo.spot().write_requests() == writes_before,
        "then zero writes",
    );
    demo.expect(
        demo.spot()
            .user_by_email("frank@example.com")
            .is_some_and(|u| u.user_id == frank_spot_id),
        "frank kept his Spot user id (imported, not recreated)",
    );
    demo.say("");

    demo.say("Step 10 — someone edits carol's access by hand in the Spot console: removes her Account Viewer");
    demo.say("policy and gives her Account Editor on one account. `okta-spot-sync audit` reads each managed");
    demo.say("user's access once and reports the drift (exit 2, nothing written); `audit --repair` adds the");
    demo.say("missing grant back as a union: the hand-made extra grant stays.");
    let carol = demo
        .spot()
        .user_by_email("carol@example.com")
        .map(|u| u.user_id)
        .unwrap_or_default();
    let viewer = demo
        .spot()
        .policy_id_by_name("Account Viewer")
        .unwrap_or_default();
    let editor = demo
        .spot()
        .policy_id_by_name("Account Editor")
        .unwrap_or_default();
    let first_account = demo
        .spot()
        .account_ids()
        .first()
        .cloned()
        .unwrap_or_default();
    demo.spot().revoke_policy(&carol, &viewer, None);
    demo.spot()
        .grant_policy(&carol, &editor, &[first_account.as_str()]);
    let writes_before = demo.spot().write_requests();
    let report = demo.audit(false).await?;
    out!("{}", indent(&report.to_text()));
    demo.expect(
        report.exit_code == 2
            && report.drift.iter().any(|d| d.email == "carol@example.com")
            && demo.spot().write_requests() == writes_before,
        "audit finds carol's missing viewer policy, exits 2 and writes nothing",
    );
    let report = demo.audit(true).await?;
    out!("{}", indent(&report.to_text()));
    let keeps_hand_grant = demo.spot().effective_policies(&carol).is_some_and(|seen| {
        seen.iter()
            .any(|(p, a)| *p == editor && a == std::slice::from_ref(&first_account))
    });
    demo.expect(
        report.exit_code == 0 && demo.sees_every_account("carol@example.com") && keeps_hand_grant,
        "audit --repair gives carol the viewer policy on every account again and keeps her hand-made grant",
    );
    demo.expect(
        demo.audit(false).await?.exit_code == 0,
        "a second audit finds no drift",
    );
    demo.say("");

    demo.say("Step 11 — events mode: `okta-spot-sync run` follows Okta's System Log between full cycles.");
    demo.say("The daemon starts with a full cycle, then polls the log (every 2 s here, 15 s by default).");
    demo.say("bob leaves: he is unassigned in Okta. The next poll names him, his assignment is read again");
    demo.say(
        "(404: not assigned) and only he is planned: his Spot user is deleted without a full read.",
    );
    let bob_gone = demo.events_step().await?;
    demo.expect(
        bob_gone.is_some(),
        "bob's Spot user is gone within 30 s of his unassignment",
    );
    if let Some((after, full_reads)) = bob_gone {
        demo.say(&format!(
            "  bob was removed {:.1} s after the change; the app's user list was read {full_reads} time(s) since the daemon's start cycle",
            after.as_secs_f64()
        ));
        demo.expect(
            full_reads == 0,
            "no full read of the app's users was needed",
        );
    }
    demo.say("");

    demo.say("Untouched throughout:");
    demo.expect(
        demo.spot().user_by_email("owner@example.com").is_some(),
        "owner@example.com (unmanaged admin) still there",
    );
    demo.expect(
        demo.spot().users().iter().any(|u| u.kind == "programmatic"),
        "programmatic user ci-bot still there",
    );
    out!("{}", demo.spot_table());

    let failures = std::mem::take(&mut demo.failures);
    demo.emulators.shutdown().await;
    drop(scratch);
    if failures.is_empty() {
        outln!("\nDemo finished: every step did what it should.");
        Ok(0)
    } else {
        outln!(
            "\nDemo FAILED: {} step(s) misbehaved: {}",
            failures.len(),
            failures.join("; ")
        );
        Ok(1)
    }
}
