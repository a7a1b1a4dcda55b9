//! `import` against the Okta and Spot emulators on 127.0.0.1:0: the library for most cases,
//! the real binary for the end-to-end run with exit codes and `--output json`.

use std::path::PathBuf;

use okta_spot_sim::{Emulators, FailSpec, Fault, Fixture, OktaUserSpec, PageFault, PageFaultKind};
use okta_spot_sync::config::{self, Settings};
use okta_spot_sync::cycle::{run_cycle, CycleOptions};
use okta_spot_sync::import::{run_import, ImportOptions, OktaUserDirectory, SEARCH_THRESHOLD};
use okta_spot_sync::ledger::{EntryState, LedgerStore, Origin};
use okta_spot_sync::model::{AppUserRow, Email, IdentitySource, Role};
use okta_spot_sync::okta::client::OktaClient;
use okta_spot_sync::okta::parse::OktaUser;
use okta_spot_sync::plan::{ActionKind, ActionStatus};
use okta_spot_sync::report::{Mode, Report};
use okta_spot_sync::spot::client::SpotClient;
use okta_spot_sync::Error;
use serde_json::Value;

const USERS: &str = "GET /api/v1/users";
const APP_USERS: &str = "GET /api/v1/apps/{appId}/users";
const ASSIGN: &str = "POST /api/v1/apps/{appId}/users";

/// The emulators, a config for them in a temp dir (token files 0600), the loaded settings.
struct Setup {
    emulators: Emulators,
    settings: Settings,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let emulators = Emulators::start_local(Fixture::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = emulators
            .client_config(dir.path())
            .max_retries(0)
            .write()
            .unwrap();
        let settings = config::load_from_env_vars(&config, std::iter::empty::<(String, String)>())
            .unwrap()
            .settings;
        Setup {
            emulators,
            settings,
            dir,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn store(&self) -> LedgerStore {
        LedgerStore::new(&self.settings.sync.state_file)
    }

    fn okta(&self) -> OktaClient {
        OktaClient::new(&self.settings.okta, &self.settings.http).unwrap()
    }

    fn spot(&self) -> SpotClient {
        SpotClient::new(&self.settings.spot, &self.settings.http).unwrap()
    }

    async fn import(&self, assign: bool, role: Option<Role>) -> Result<Report, Error> {
        run_import(
            &self.settings,
            &self.okta(),
            &self.spot(),
            &self.store(),
            &ImportOptions { assign, role },
        )
        .await
    }

    async fn reconcile(&self) -> Report {
        run_cycle(
            &self.settings,
            &self.okta(),
            &self.spot(),
            &self.store(),
            Mode::Apply,
            &CycleOptions::default(),
        )
        .await
        .unwrap()
    }

    fn okta_user(&self, email: &str) -> String {
        self.emulators.okta.add_user(OktaUserSpec {
            email: email.into(),
            first_name: "First".into(),
            last_name: "Last".into(),
            ..Default::default()
        })
    }

    fn okta_user_login(&self, email: &str, login: &str) -> String {
        self.emulators.okta.add_user(OktaUserSpec {
            email: email.into(),
            login: Some(login.into()),
            first_name: "First".into(),
            last_name: "Last".into(),
            ..Default::default()
        })
    }

    fn spot_user(&self, email: &str) -> String {
        self.emulators
            .spot
            .add_user(email, "First", "Last", "viewer")
    }
}

fn find<'a>(
    report: &'a Report,
    kind: ActionKind,
    email: &str,
) -> Option<&'a okta_spot_sync::report::ActionReport> {
    report
        .actions
        .iter()
        .find(|a| a.action == kind && a.email == email)
}

fn unmatched_reason(report: &Report, email: &str) -> Option<String> {
    report
        .unmatched
        .as_ref()
        .unwrap()
        .iter()
        .find(|u| u.email.as_deref() == Some(email))
        .map(|u| u.reason.clone())
}

/// The story: three unmanaged Spot users (assigned in Okta / active but unassigned /
/// no Okta user) and a programmatic one; import, import --assign, reconcile, unassignment.
#[tokio::test]
async fn import_then_assign_then_reconcile_then_unassign() {
    let s = Setup::new().await;
    let (okta, spot) = (&s.emulators.okta, &s.emulators.spot);
    let alice = s.okta_user("Alice@Example.com");
    okta.assign(&alice, Some("editor"));
    let bob = s.okta_user("bob@example.com");
    let alice_spot = s.spot_user("alice@example.com");
    let bob_spot = s.spot_user("BOB@example.com");
    let carol_spot = s.spot_user("carol@example.com");
    spot.add_programmatic_user("ci-bot");

    // 1. import: alice adopted, bob "would assign", carol unmatched; no Okta write.
    okta.reset_counts();
    let spot_writes = spot.write_requests();
    let report = s.import(false, None).await.unwrap();
    let adopt = find(&report, ActionKind::Adopt, "alice@example.com").expect("alice adopted");
    assert_eq!(adopt.status, ActionStatus::Applied);
    assert_eq!(adopt.okta_user_id, alice);
    assert_eq!(adopt.spot_user_id.as_deref(), Some(alice_spot.as_str()));
    assert_eq!(adopt.role, Some(Role::Editor));
    let would = find(&report, ActionKind::AssignInOkta, "bob@example.com").expect("bob listed");
    assert_eq!(would.status, ActionStatus::Planned);
    assert_eq!(would.okta_user_id, bob);
    assert!(would.reason.contains("would assign"), "{}", would.reason);
    assert_eq!(report.actions.len(), 2, "{:?}", report.actions);
    let reason = unmatched_reason(&report, "carol@example.com").expect("carol unmatched");
    assert!(reason.contains("no Okta user"), "{reason}");
    assert_eq!(
        report.unmatched.as_ref().unwrap().len(),
        1,
        "the programmatic user is never listed"
    );
    assert_eq!(report.mode, Mode::Import);
    assert_eq!(report.summary.adopt, 1);
    assert_eq!(report.summary.assign_in_okta, Some(1));
    assert_eq!(report.exit_code(), 0);
    // Few users: one search per user left after the app's assignment list, no walk.
    assert_eq!(okta.request_count(APP_USERS), 1);
    assert_eq!(okta.request_count(USERS), 2, "{:?}", okta.request_counts());
    assert_eq!(okta.request_count(ASSIGN), 0);
    assert_eq!(
        spot.write_requests(),
        spot_writes,
        "import never writes to Spot"
    );
    let ledger = s.store().load().unwrap();
    let entry = &ledger.users[alice.as_str()];
    assert_eq!(entry.spot_user_id.as_deref(), Some(alice_spot.as_str()));
    assert_eq!(entry.origin, Origin::Adopted);
    assert_eq!(entry.state, EntryState::Managed);
    assert_eq!(entry.role, Some(Role::Editor));
    assert_eq!(entry.email, "alice@example.com");
    assert!(!ledger.users.contains_key(bob.as_str()));

    // 2. import --assign: bob assigned (default role) and adopted, carol left alone.
    okta.reset_counts();
    let report = s.import(true, None).await.unwrap();
    let assign = find(&report, ActionKind::AssignInOkta, "bob@example.com").expect("bob assigned");
    assert_eq!(assign.status, ActionStatus::Applied, "{assign:?}");
    assert_eq!(assign.role, Some(Role::Viewer));
    let adopt = find(&report, ActionKind::Adopt, "bob@example.com").expect("bob adopted");
    assert_eq!(adopt.status, ActionStatus::Applied);
    assert_eq!(adopt.spot_user_id.as_deref(), Some(bob_spot.as_str()));
    assert!(
        find(&report, ActionKind::Adopt, "alice@example.com").is_none(),
        "alice is managed now"
    );
    assert!(unmatched_reason(&report, "carol@example.com").is_some());
    assert_eq!(okta.request_count(ASSIGN), 1);
    assert_eq!(report.exit_code(), 0);
    let rows = s.okta().read_assignments().await.unwrap();
    let bob_row = rows
        .iter()
        .find(|r| r.okta_user_id == bob.as_str())
        .expect("bob assigned in Okta");
    assert_eq!(bob_row.scope.as_deref(), Some("USER"));
    assert_eq!(bob_row.role.as_deref(), Some("viewer"));
    let ledger = s.store().load().unwrap();
    assert_eq!(ledger.users[bob.as_str()].origin, Origin::Adopted);
    assert_eq!(ledger.users[bob.as_str()].state, EntryState::Managed);
    assert_eq!(ledger.users[bob.as_str()].role, Some(Role::Viewer));

    // 3. reconcile: the imported users' access is brought in line (import never writes to
    // Spot), and only that; then nothing to do, zero Spot writes.
    let report = s.reconcile().await;
    assert!(
        report
            .actions
            .iter()
            .all(|a| a.action == ActionKind::UpdateRole && a.status == ActionStatus::Applied),
        "{:?}",
        report.actions
    );
    assert!(find(&report, ActionKind::UpdateRole, "bob@example.com").is_some());
    let spot_writes = spot.write_requests();
    let report = s.reconcile().await;
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    assert_eq!(spot.write_requests(), spot_writes);

    // 4. bob is unassigned in Okta: the imported user is deleted like any managed one.
    okta.unassign(&bob);
    let report = s.reconcile().await;
    let delete = find(&report, ActionKind::Delete, "bob@example.com").expect("bob deleted");
    assert_eq!(delete.status, ActionStatus::Applied, "{delete:?}");
    assert!(spot.user(&bob_spot).is_none());
    assert!(spot.user(&alice_spot).is_some());
    assert!(
        spot.user(&carol_spot).is_some(),
        "the unmatched user is left alone"
    );
}

#[tokio::test]
async fn programmatic_protected_and_managed_users_are_never_listed() {
    let mut s = Setup::new().await;
    let (okta, spot) = (&s.emulators.okta, &s.emulators.spot);
    let boss = s.okta_user("boss@example.com");
    okta.assign(&boss, Some("viewer"));
    s.spot_user("boss@example.com");
    spot.add_programmatic_user("ci-bot");
    spot.add_programmatic_user("deploy-bot");
    s.okta_user("ci-bot@example.com");
    s.settings
        .sync
        .protected_emails
        .push(Email::parse("Boss@example.com").unwrap());
    let report = s.import(true, None).await.unwrap();
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    assert_eq!(report.unmatched.as_deref(), Some(&[][..]));
    assert_eq!(okta.request_count(USERS), 0, "nothing to look up");
    assert_eq!(okta.request_count(ASSIGN), 0);
    assert!(s.store().load().unwrap().users.is_empty());
}

/// U+212A KELVIN SIGN lower-cases (in Unicode) to an ASCII `k`: an Okta user whose address
/// has it is not Kim, whose Spot user must never be assigned, adopted or deleted for them.
/// (The emulators compare emails the way Okta's search and Spot might, with Unicode
/// lower-casing, so Okta's search returns the lookalike and Spot refuses its create.)
#[tokio::test]
async fn a_lookalike_email_that_only_unicode_lower_casing_matches_is_another_person() {
    let s = Setup::new().await;
    let (okta, spot) = (&s.emulators.okta, &s.emulators.spot);
    let kim_spot = s.spot_user("kim@example.com");
    let lookalike = s.okta_user("\u{212A}im@example.com");

    let report = s.import(true, None).await.unwrap();
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    assert_eq!(okta.request_count(ASSIGN), 0, "the lookalike was assigned");
    let reason = unmatched_reason(&report, "kim@example.com").expect("kim unmatched");
    assert!(reason.contains("no Okta user"), "{reason}");

    okta.assign(&lookalike, Some("viewer"));
    let report = s.reconcile().await;
    assert!(
        report.actions.iter().all(|a| a.action != ActionKind::Adopt),
        "{:?}",
        report.actions
    );
    assert!(!s
        .store()
        .load()
        .unwrap()
        .has_owned_spot_user(&kim_spot.as_str().into()));
    okta.unassign(&lookalike);
    s.reconcile().await;
    assert!(
        spot.user(&kim_spot).is_some(),
        "Kim's Spot user was deleted"
    );
}

#[tokio::test]
async fn inactive_and_ambiguous_okta_users_are_unmatched_with_a_reason() {
    let s = Setup::new().await;
    let okta = &s.emulators.okta;
    let dana = s.okta_user("dana@example.com");
    okta.deactivate(&dana);
    let sue = s.okta_user("sue@example.com");
    okta.suspend(&sue);
    s.okta_user_login("twin@example.com", "twin.one@example.com");
    s.okta_user_login("TWIN@example.com", "twin.two@example.com");
    let held = s.okta_user("held@example.com");
    okta.assign(&held, Some("viewer"));
    okta.suspend(&held);
    for email in [
        "dana@example.com",
        "sue@example.com",
        "twin@example.com",
        "held@example.com",
    ] {
        s.spot_user(email);
    }
    let report = s.import(true, None).await.unwrap();
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    let reason = unmatched_reason(&report, "dana@example.com").unwrap();
    assert!(
        reason.contains("deactivated") && reason.contains("DEPROVISIONED"),
        "{reason}"
    );
    assert!(reason.contains(&dana), "{reason}");
    let reason = unmatched_reason(&report, "sue@example.com").unwrap();
    assert!(reason.contains("SUSPENDED"), "{reason}");
    let reason = unmatched_reason(&report, "twin@example.com").unwrap();
    assert!(reason.contains("2 Okta users"), "{reason}");
    let reason = unmatched_reason(&report, "held@example.com").unwrap();
    assert!(reason.contains("held"), "{reason}");
    assert_eq!(okta.request_count(ASSIGN), 0, "nobody is assigned");
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test]
async fn a_refused_assignment_fails_alone_and_sets_exit_code_1() {
    let s = Setup::new().await;
    let okta = &s.emulators.okta;
    let ann = s.okta_user("ann@example.com");
    let ben = s.okta_user("ben@example.com");
    s.spot_user("ann@example.com");
    s.spot_user("ben@example.com");
    // The token's admin may read but not manage assignments: the first POST gets 403.
    okta.set_fault(
        ASSIGN,
        Fault {
            fail: Some(FailSpec {
                status: 403,
                nth: 1,
                times: Some(1),
            }),
            ..Fault::default()
        },
    );
    let report = s.import(true, Some(Role::Editor)).await.unwrap();
    let failed = find(&report, ActionKind::AssignInOkta, "ann@example.com").unwrap();
    assert_eq!(failed.status, ActionStatus::Failed);
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("403") && error.contains("manage this app's assignments"),
        "{error}"
    );
    assert!(find(&report, ActionKind::Adopt, "ann@example.com").is_none());
    let ok = find(&report, ActionKind::AssignInOkta, "ben@example.com").unwrap();
    assert_eq!(ok.status, ActionStatus::Applied);
    assert_eq!(ok.role, Some(Role::Editor));
    assert!(find(&report, ActionKind::Adopt, "ben@example.com").is_some());
    assert_eq!(report.summary.failed, 1);
    assert_eq!(report.exit_code(), 1);
    let ledger = s.store().load().unwrap();
    assert!(!ledger.users.contains_key(ann.as_str()));
    assert_eq!(ledger.users[ben.as_str()].role, Some(Role::Editor));
}

/// Wraps the real client and deactivates the user in the emulator just before assigning it,
/// so the assign call meets Okta's own refusal for a deactivated user.
struct DeactivatesFirst<'a> {
    inner: OktaClient,
    emulators: &'a Emulators,
}

impl IdentitySource for DeactivatesFirst<'_> {
    async fn read_assignments(&self) -> Result<Vec<AppUserRow>, Error> {
        self.inner.read_assignments().await
    }
}

impl OktaUserDirectory for DeactivatesFirst<'_> {
    async fn search_users_by_email(&self, email: &str) -> Result<Vec<OktaUser>, Error> {
        OktaUserDirectory::search_users_by_email(&self.inner, email).await
    }
    async fn list_org_users(&self, max_pages: Option<u32>) -> Result<Option<Vec<OktaUser>>, Error> {
        OktaUserDirectory::list_org_users(&self.inner, max_pages).await
    }
    async fn assign_user(&self, okta_user_id: &str, role: Role) -> Result<(), Error> {
        self.emulators.okta.deactivate(okta_user_id);
        OktaUserDirectory::assign_user(&self.inner, okta_user_id, role).await
    }
}

#[tokio::test]
async fn assigning_a_user_deactivated_meanwhile_is_a_failed_action_with_okta_s_reason() {
    let s = Setup::new().await;
    let eve = s.okta_user("eve@example.com");
    s.spot_user("eve@example.com");
    let okta = DeactivatesFirst {
        inner: s.okta(),
        emulators: &s.emulators,
    };
    let report = run_import(
        &s.settings,
        &okta,
        &s.spot(),
        &s.store(),
        &ImportOptions {
            assign: true,
            role: None,
        },
    )
    .await
    .unwrap();
    let failed = find(&report, ActionKind::AssignInOkta, "eve@example.com").unwrap();
    assert_eq!(failed.status, ActionStatus::Failed);
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("E0000038") && error.contains("deactivated"),
        "{error}"
    );
    assert_eq!(report.exit_code(), 1);
    assert!(!s.store().load().unwrap().users.contains_key(eve.as_str()));
}

#[tokio::test]
async fn a_failed_okta_read_aborts_before_any_write() {
    let s = Setup::new().await;
    let okta = &s.emulators.okta;
    let ada = s.okta_user("ada@example.com");
    okta.assign(&ada, None);
    s.okta_user("abe@example.com");
    s.spot_user("ada@example.com");
    s.spot_user("abe@example.com");
    s.spot_user("amy@example.com");
    okta.set_fault(
        USERS,
        Fault {
            fail: Some(FailSpec {
                status: 500,
                nth: 2,
                times: Some(1),
            }),
            ..Fault::default()
        },
    );
    let err = s.import(true, None).await.unwrap_err();
    assert!(matches!(err, Error::IncompleteUserRead(_)), "{err:?}");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(
        okta.request_count(ASSIGN),
        0,
        "no assignment after a failed read"
    );
    assert!(
        !s.store().path().exists(),
        "no adoption recorded after a failed read"
    );
}

#[tokio::test]
async fn the_user_walk_refuses_a_next_link_to_another_host() {
    let s = Setup::new().await;
    let okta = &s.emulators.okta;
    s.emulators
        .spot
        .bulk_add_users(SEARCH_THRESHOLD + 1, "w.example.com");
    okta.bulk_add_users(SEARCH_THRESHOLD + 1, "w.example.com", false);
    okta.set_fault(
        USERS,
        Fault {
            page: Some(PageFault {
                kind: PageFaultKind::ForeignNextLink,
                nth: 1,
                times: None,
            }),
            ..Fault::default()
        },
    );
    let err = s.import(true, None).await.unwrap_err();
    assert!(matches!(err, Error::IncompleteUserRead(_)), "{err:?}");
    assert!(err.to_string().contains("was not followed"), "{err}");
    assert_eq!(okta.request_count(USERS), 1);
    assert_eq!(okta.request_count(ASSIGN), 0);
}

#[tokio::test]
async fn threshold_decides_between_searches_and_one_walk() {
    // Exactly SEARCH_THRESHOLD users to look up: one search each.
    let s = Setup::new().await;
    s.emulators
        .spot
        .bulk_add_users(SEARCH_THRESHOLD, "t.example.com");
    s.emulators
        .okta
        .bulk_add_users(SEARCH_THRESHOLD, "t.example.com", false);
    let report = s.import(false, None).await.unwrap();
    assert_eq!(report.summary.assign_in_okta, Some(SEARCH_THRESHOLD));
    assert_eq!(
        s.emulators.okta.request_count(USERS),
        SEARCH_THRESHOLD as u64
    );

    // One more: a single page of the user list instead.
    let s = Setup::new().await;
    s.emulators
        .spot
        .bulk_add_users(SEARCH_THRESHOLD + 1, "t.example.com");
    s.emulators
        .okta
        .bulk_add_users(SEARCH_THRESHOLD + 1, "t.example.com", false);
    let report = s.import(false, None).await.unwrap();
    assert_eq!(report.summary.assign_in_okta, Some(SEARCH_THRESHOLD + 1));
    assert_eq!(s.emulators.okta.request_count(USERS), 1);
}

#[tokio::test]
async fn two_thousand_unmanaged_users_take_one_walk_of_the_user_list() {
    const N: usize = 2_000;
    const ASSIGNED: usize = 300;
    let s = Setup::new().await;
    let (okta, spot) = (&s.emulators.okta, &s.emulators.spot);
    spot.bulk_add_users(N, "bulk.example.com");
    okta.bulk_add_users(ASSIGNED, "bulk.example.com", true);
    okta.bulk_add_users(N - ASSIGNED, "bulk.example.com", false);
    okta.reset_counts();
    let report = s.import(false, None).await.unwrap();
    assert_eq!(report.summary.adopt, ASSIGNED);
    assert_eq!(report.summary.assign_in_okta, Some(N - ASSIGNED));
    assert_eq!(report.unmatched.as_ref().unwrap().len(), 0);
    let pages = N.div_ceil(200) as u64;
    assert_eq!(
        okta.request_count(USERS),
        pages,
        "{:?}",
        okta.request_counts()
    );
    assert!(
        okta.total_requests() <= pages + 2,
        "Okta calls: {:?}",
        okta.request_counts()
    );
    assert_eq!(s.store().load().unwrap().managed_count(), ASSIGNED);
}

#[tokio::test]
async fn a_walk_longer_than_the_searches_falls_back_to_searching() {
    // 25 Spot users to look up, in an org of 6,000 Okta users (30 pages): the walk gives up
    // after 25 pages and the 25 users are searched.
    const K: usize = 25;
    let s = Setup::new().await;
    let (okta, spot) = (&s.emulators.okta, &s.emulators.spot);
    okta.bulk_add_users(6_000 - K, "other.example.com", false);
    okta.bulk_add_users(K, "late.example.com", false);
    for i in 0..K {
        s.spot_user(&format!("user{:06}@late.example.com", 6_000 - K + i));
    }
    let report = s.import(false, None).await.unwrap();
    assert_eq!(
        report.summary.assign_in_okta,
        Some(K),
        "{:?}",
        report.unmatched
    );
    assert_eq!(okta.request_count(USERS), 2 * K as u64);
    let _ = spot;
}

/// The binary end to end: exit codes and `--output json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_import_import_assign_reconcile() {
    let s = Setup::new().await;
    let okta = &s.emulators.okta;
    let alice = s.okta_user("alice@example.com");
    okta.assign(&alice, Some("viewer"));
    let bob = s.okta_user("bob@example.com");
    let erin = s.okta_user("erin@example.com");
    for email in [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "erin@example.com",
    ] {
        s.spot_user(email);
    }
    s.emulators.spot.add_programmatic_user("ci-bot");
    let config = s.config_path();
    let run = |args: &'static [&'static str]| {
        let config = config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_okta-spot-sync"))
                    .arg("--config")
                    .arg(&config)
                    .args(args)
                    .env_remove("OKTA_SPOT_SYNC_CONFIG")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let json = |out: &std::process::Output| -> Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let action = |v: &Value, kind: &str, email: &str| -> Value {
        v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == kind && a["email"] == email)
            .cloned()
            .unwrap_or(Value::Null)
    };

    let out = run(&["import", "--output", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["mode"], "import");
    assert_eq!(
        action(&v, "adopt", "alice@example.com")["status"],
        "applied"
    );
    assert_eq!(
        action(&v, "assign_in_okta", "bob@example.com")["status"],
        "planned"
    );
    assert_eq!(
        action(&v, "assign_in_okta", "erin@example.com")["status"],
        "planned"
    );
    assert_eq!(v["summary"]["assign_in_okta"], 2);
    let unmatched = v["unmatched"].as_array().unwrap();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0]["email"], "carol@example.com");
    assert!(unmatched[0]["reason"]
        .as_str()
        .unwrap()
        .contains("no Okta user"));
    assert_eq!(okta.request_count(ASSIGN), 0);

    // --assign with the first assignment refused: exit 1, the other one goes through.
    okta.set_fault(
        ASSIGN,
        Fault {
            fail: Some(FailSpec {
                status: 403,
                nth: 1,
                times: Some(1),
            }),
            ..Fault::default()
        },
    );
    let out = run(&["import", "--assign", "--role", "editor", "--output", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let failed = action(&v, "assign_in_okta", "bob@example.com");
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("403"));
    let assigned = action(&v, "assign_in_okta", "erin@example.com");
    assert_eq!(assigned["status"], "applied");
    assert_eq!(assigned["role"], "editor");
    assert_eq!(assigned["okta_user_id"], erin.as_str());
    assert_eq!(action(&v, "adopt", "erin@example.com")["status"], "applied");
    assert_eq!(v["summary"]["failed"], 1);

    // Text output, the refusal gone: bob is assigned now.
    okta.clear_faults();
    let out = run(&["import", "--assign"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Import:"), "{text}");
    assert!(
        text.contains("assign_in_okta") && text.contains(&bob),
        "{text}"
    );
    assert!(
        text.contains("Not imported (left alone):") && text.contains("carol@example.com"),
        "{text}"
    );

    // A following reconcile brings the imported users' access in line; the next: zero writes.
    let out = run(&["reconcile", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert!(
        v["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["action"] == "update_role" && a["status"] == "applied"),
        "{v}"
    );
    let writes = s.emulators.spot.write_requests();
    let out = run(&["reconcile", "--output", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["actions"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(s.emulators.spot.write_requests(), writes);

    // A bad --role is refused by the command line.
    let out = run(&["import", "--role", "owner"]).await;
    assert_eq!(out.status.code(), Some(2));
}
