//! End-to-end tests: the real binary against the Okta and Spot emulators on 127.0.0.1:0, with
//! a real config file, token files and state file. One test per row of the action table, the
//! hold rules, pagination, incomplete reads, the guards, `plan`, idempotence, the JSON report
//! and secrets.

mod util;

use okta_spot_sim::{FailSpec, Fault, PageFault, PageFaultKind};
use okta_spot_sync::ledger::LedgerWriter;
use okta_spot_sync::ledger::{EntryState, LedgerEntry, LedgerStore, Origin};
use util::{actions, triple, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_reconcile_creates_and_adopts_then_a_second_makes_no_writes() {
    let env = Env::new().await;
    env.assigned("alice@example.com", Some("viewer"));
    env.assigned("bob@example.com", Some("Editor"));
    env.assigned("Carol@Example.com", None);
    env.spot()
        .add_user("carol@example.com", "Carol", "Chen", "viewer");
    env.spot()
        .add_user("stranger@example.com", "Stan", "Ger", "viewer");

    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let mut got = actions(&report);
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        vec![
            triple("create", "alice@example.com", "applied"),
            triple("create", "bob@example.com", "applied"),
            triple("adopt", "carol@example.com", "applied"),
        ]
    );
    let alice = env.spot().user_by_email("alice@example.com").unwrap();
    let viewer = env.spot().policy_id_by_name("Account Viewer").unwrap();
    assert_eq!(alice.role, "viewer");
    // Each viewer policy on every account, the ones added later included ("*").
    assert_eq!(
        alice.policies,
        vec![(viewer.clone(), vec!["*".to_string()])]
    );
    assert_eq!(
        env.spot().effective_policies(&alice.user_id),
        Some(vec![(viewer, env.spot().account_ids())])
    );
    assert_eq!(
        env.spot().user_by_email("bob@example.com").unwrap().role,
        "admin"
    );
    // Unmanaged, protected and programmatic users are untouched.
    assert!(env.spot().user_by_email("stranger@example.com").is_some());
    assert!(env.spot().user_by_email("owner@example.com").is_some());
    assert!(env.spot().users().iter().any(|u| u.kind == "programmatic"));

    let ledger = env.ledger();
    let carol = ledger
        .users
        .values()
        .find(|e| e.email == "carol@example.com")
        .unwrap();
    assert_eq!(
        (carol.origin, carol.state),
        (Origin::Adopted, EntryState::Managed)
    );
    assert_eq!(ledger.managed_count(), 3);

    let writes = env.spot().write_requests();
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(actions(&run.json()).is_empty());
    assert_eq!(
        env.spot().write_requests(),
        writes,
        "a second reconcile made write calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassign_and_deactivate_delete_and_reactivation_recreates() {
    let env = Env::new().await;
    let alice = env.assigned("alice@example.com", None);
    let bob = env.assigned("bob@example.com", None);
    env.assigned("keep@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);

    env.okta().unassign(&alice);
    env.okta().deactivate(&bob);
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut got = actions(&run.json());
    got.sort();
    assert_eq!(
        got,
        vec![
            triple("delete", "alice@example.com", "applied"),
            triple("delete", "bob@example.com", "applied")
        ]
    );
    assert_eq!(
        env.spot_emails(),
        vec!["keep@example.com", "owner@example.com"]
    );
    assert_eq!(env.ledger().users[bob.as_str()].state, EntryState::Deleted);

    env.okta().reactivate(&bob);
    env.okta().assign(&bob, Some("viewer"));
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        actions(&run.json()),
        vec![triple("recreate", "bob@example.com", "applied")]
    );
    assert!(env.spot().user_by_email("bob@example.com").is_some());
    assert_eq!(env.ledger().users[bob.as_str()].state, EntryState::Managed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_change_recreates_and_role_change_updates_or_recreates() {
    // Editors with the same Spot role as viewers: a role change is an update of the mapping.
    let extra = "[spot.roles.editor]\nspot_role = \"viewer\"\npolicies = [\"Account Editor\"]\n";
    let env = Env::with_fixture(Default::default(), extra).await;
    let ann = env.assigned("ann@example.com", Some("viewer"));
    let ben = env.assigned("ben@example.com", Some("viewer"));
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    let old_ann = env.spot().user_by_email("ann@example.com").unwrap().user_id;

    env.okta().set_email(&ann, "ann.lee@example.com");
    env.okta().set_role(&ben, Some("editor"));
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut got = actions(&run.json());
    got.sort();
    assert_eq!(
        got,
        vec![
            triple("recreate", "ann.lee@example.com", "applied"),
            triple("update_role", "ben@example.com", "applied")
        ]
    );
    assert!(
        env.spot().user(&old_ann).is_none(),
        "the old Spot user was not deleted"
    );
    assert!(env.spot().user_by_email("ann.lee@example.com").is_some());
    let editor = env.spot().policy_id_by_name("Account Editor").unwrap();
    let ben_user = env.spot().user_by_email("ben@example.com").unwrap();
    // The viewer policy went with the viewer role; the editor's is on every account.
    assert_eq!(ben_user.policies, vec![(editor, vec!["*".to_string()])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_spot_organization_role_is_a_recreate() {
    let env = Env::new().await;
    let ann = env.assigned("ann@example.com", Some("viewer"));
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    env.okta().set_role(&ann, Some("editor"));
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        actions(&run.json()),
        vec![triple("recreate", "ann@example.com", "applied")]
    );
    assert_eq!(
        env.spot().user_by_email("ann@example.com").unwrap().role,
        "admin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_users_are_reported_kept_and_never_created() {
    let env = Env::new().await;
    let sus = env.assigned("sus@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    env.okta().suspend(&sus);
    let staged = env.assigned("staged@example.com", None);
    env.okta().set_status(&staged, "STAGED");
    env.assigned("not-an-email", None);
    env.assigned("role@example.com", Some("superuser"));
    let num = env.assigned("num@example.com", None);
    env.okta()
        .set_app_profile_value(&num, "role", serde_json::json!(42));
    env.assigned("twin@example.com", None);
    // Okta logins are unique, emails are not: a second user with another login, same email.
    let twin = env.okta().add_user(okta_spot_sim::OktaUserSpec {
        email: "TWIN@example.com".into(),
        login: Some("twin.two@example.com".into()),
        first_name: "Twin".into(),
        last_name: "Two".into(),
        ..Default::default()
    });
    env.okta().assign(&twin, None);

    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert!(actions(&report).is_empty(), "{:?}", actions(&report));
    let reasons: Vec<String> = report["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].as_str().unwrap().to_string())
        .collect();
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    assert!(
        has("status SUSPENDED")
            && has("status STAGED")
            && has("invalid email")
            && has("unknown role"),
        "{reasons:?}"
    );
    assert!(
        has("malformed Okta row") && has("duplicate email"),
        "{reasons:?}"
    );
    assert_eq!(reasons.len(), 7, "{reasons:?}");
    assert!(
        env.spot().user_by_email("sus@example.com").is_some(),
        "a suspended user's Spot user must be kept"
    );
    assert!(env.spot().user_by_email("staged@example.com").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_group_assignments_make_one_user() {
    let env = Env::new().await;
    let ann = env.assigned("ann@example.com", Some("viewer"));
    env.okta()
        .assign_via_group(&ann, "Engineering", Some("viewer"));
    let run = env.run(&["plan", "--output", "json"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["okta_users"], 1);
    assert_eq!(
        actions(&report),
        vec![triple("create", "ann@example.com", "planned")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_page_even_when_the_server_caps_the_limit() {
    let mut env = Env::new().await;
    for i in 0..7 {
        env.assigned(&format!("user{i}@example.com"), None);
    }
    env.set_env("OKTA_SPOT_SYNC__OKTA__PAGE_SIZE", "2");
    let run = env.run(&["plan", "--output", "json"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.json()["okta_users"], 7);
    assert_eq!(
        env.okta().request_count("GET /api/v1/apps/{appId}/users"),
        4
    );

    env.okta().reset_counts();
    env.env.clear();
    env.okta().set_max_limit(3);
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(actions(&run.json()).len(), 7);
    assert_eq!(
        env.okta().request_count("GET /api/v1/apps/{appId}/users"),
        3
    );
    assert_eq!(env.spot_emails().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_page_3_aborts_with_exit_1_and_zero_writes() {
    let mut env = Env::new().await;
    let users: Vec<String> = (0..6)
        .map(|i| env.assigned(&format!("user{i}@example.com"), None))
        .collect();
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    // Everyone but the first two is unassigned; a read that stopped at page 2 would delete them.
    for id in &users[2..] {
        env.okta().unassign(id);
    }
    for i in 0..6 {
        env.assigned(&format!("new{i}@example.com"), None);
    }
    for id in &users[2..] {
        env.okta().assign(id, None);
    }
    env.set_env("OKTA_SPOT_SYNC__OKTA__PAGE_SIZE", "2");
    env.okta().set_fault(
        "GET /api/v1/apps/{appId}/users",
        Fault {
            fail: Some(FailSpec {
                status: 500,
                nth: 3,
                times: None,
            }),
            ..Fault::default()
        },
    );
    let writes = env.spot().write_requests();
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("incomplete read") && run.stderr.contains("page 3"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("500"), "{}", run.stderr);
    assert_eq!(
        env.spot().write_requests(),
        writes,
        "a failed read led to writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_source_guard_blocks_deletes_and_only_allow_empty_source_lifts_it() {
    let env = Env::new().await;
    let ids: Vec<String> = (0..3)
        .map(|i| env.assigned(&format!("user{i}@example.com"), None))
        .collect();
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    for id in &ids {
        env.okta().unassign(id);
    }
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["blocked_by"][0]["guard"], "empty_source");
    assert_eq!(report["summary"]["blocked"], 3);
    assert_eq!(env.spot_emails().len(), 4);

    assert_eq!(
        env.run(&["reconcile", "--allow-deletes", "10"]).await.code,
        3
    );
    assert_eq!(env.spot_emails().len(), 4);
    let run = env
        .run(&["reconcile", "--allow-empty-source", "--output", "json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["summary"]["delete"], 3);
    assert_eq!(env.spot_emails(), vec!["owner@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_deletes_guard_blocks_deletes_but_not_creates_and_allow_deletes_passes() {
    let mut env = Env::new().await;
    let ids: Vec<String> = (0..4)
        .map(|i| env.assigned(&format!("user{i}@example.com"), None))
        .collect();
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    for id in &ids[..3] {
        env.okta().unassign(id);
    }
    env.assigned("newbie@example.com", None);
    env.set_env("OKTA_SPOT_SYNC__SYNC__MAX_DELETES", "2");
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["blocked_by"][0]["guard"], "max_deletes");
    assert_eq!(report["summary"]["blocked"], 3);
    assert_eq!(report["summary"]["create"], 1);
    assert!(
        env.spot().user_by_email("newbie@example.com").is_some(),
        "creates must go when deletes are held"
    );
    assert!(env.spot().user_by_email("user0@example.com").is_some());

    assert_eq!(
        env.run(&["reconcile", "--allow-deletes", "2"]).await.code,
        3
    );
    let run = env
        .run(&["reconcile", "--allow-deletes", "3", "--output", "json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["summary"]["delete"], 3);
    assert!(env.spot().user_by_email("user0@example.com").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_writes_nothing_and_exits_2_and_dry_run_exits_like_reconcile() {
    let env = Env::new().await;
    env.assigned("ann@example.com", None);
    let run = env.run(&["plan"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stdout.contains("create") && run.stdout.contains("ann@example.com"),
        "{}",
        run.stdout
    );
    assert_eq!(env.spot().write_requests(), 0);
    assert!(!env.state.exists(), "plan created the state file");
    let run = env
        .run(&["reconcile", "--dry-run", "--output", "json"])
        .await;
    assert_eq!(run.code, 0);
    assert_eq!(run.json()["mode"], "dry_run");
    assert_eq!(env.spot().write_requests(), 0);
    assert!(!env.state.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_has_design_shape_and_no_secret_appears_anywhere() {
    let mut env = Env::new().await;
    env.assigned("ann@example.com", Some("viewer"));
    env.assigned("sus@example.com", None);
    env.set_env("RUST_LOG", "trace");
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "actions",
            "blocked_by",
            "held",
            "mode",
            "okta_users",
            "spot_users",
            "summary"
        ]
    );
    assert_eq!(report["mode"], "apply");
    let action = &report["actions"][0];
    let action_keys: Vec<&str> = action
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        action_keys,
        [
            "action",
            "email",
            "error",
            "okta_user_id",
            "reason",
            "role",
            "spot_user_id",
            "status"
        ]
    );
    let summary_keys: Vec<&str> = report["summary"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        summary_keys,
        [
            "adopt",
            "blocked",
            "create",
            "delete",
            "failed",
            "recreate",
            "update_role"
        ]
    );

    let state = std::fs::read_to_string(&env.state).unwrap();
    for secret in [env.okta().token(), env.spot().token()] {
        for (name, text) in [
            ("stdout", &run.stdout),
            ("stderr", &run.stderr),
            ("state file", &state),
        ] {
            assert!(!text.contains(&secret), "a token leaked into {name}");
        }
    }
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "trace logging was not on"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&env.state).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_state_file_is_an_error_that_names_it_and_keeps_it() {
    let env = Env::new().await;
    env.assigned("ann@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    let full = std::fs::read(&env.state).unwrap();
    std::fs::write(&env.state, &full[..full.len() / 2]).unwrap();
    env.okta()
        .unassign(&env.okta().user_id("ann@example.com").unwrap());
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&env.state.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(&env.state).unwrap(),
        &full[..full.len() / 2],
        "the state file was changed"
    );
    assert!(env.spot().user_by_email("ann@example.com").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_missing_token_file_are_clear_errors() {
    let env = Env::new().await;
    std::fs::write(
        &env.config,
        format!(
            "{}\n[sync]\nmax_deletess = 3\n",
            std::fs::read_to_string(&env.config)
                .unwrap()
                .replace("[sync]", "[syncx]")
        ),
    )
    .unwrap();
    let run = env.run(&["plan"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("max_deletess") || run.stderr.contains("syncx"),
        "{}",
        run.stderr
    );

    let env = Env::new().await;
    std::fs::remove_file(env.dir.path().join("okta-token")).unwrap();
    let run = env.run(&["plan"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("okta.token_file") && run.stderr.contains("okta-token"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_both_apis_and_fails_on_a_bad_token() {
    let env = Env::new().await;
    let run = env.run(&["check"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ok   Okta") && run.stdout.contains("ok   Spot"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("journal"), "{}", run.stdout);

    // An interrupted cycle leaves a journal: check says so, and counts its change.
    let store = LedgerStore::new(&env.state);
    let writer = LedgerWriter::new(store.clone(), store.load().unwrap());
    writer
        .update_durable(&[&"00uInterrupted".into()], |l| {
            l.users.insert(
                "00uInterrupted".into(),
                LedgerEntry {
                    email: "cut@example.com".into(),
                    spot_user_id: Some("u-cut".into()),
                    tombstones: Vec::new(),
                    role: None,
                    access: okta_spot_sync::access::ACCESS_MODEL,
                    origin: Origin::Created,
                    state: EntryState::Managed,
                    updated_at: chrono::Utc::now(),
                },
            );
        })
        .await
        .unwrap();
    let run = env.run(&["check"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("1 users managed and 1 journal record(s) in")
            && run.stdout.contains("state.json.journal"),
        "{}",
        run.stdout
    );

    util::write_secret(&env.dir.path().join("spot-token"), "wrong-token");
    let run = env.run(&["check"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("FAIL Spot"), "{}", run.stdout);
    assert!(!run.stdout.contains("wrong-token") && !run.stderr.contains("wrong-token"));
}

/// Events mode is on by default, so `check` reads one event of the System Log: a token that
/// may not (Okta's 403) fails the check and names the scope and the fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_whether_the_system_log_is_readable() {
    let env = Env::new().await;
    let run = env.run(&["check"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ok   Okta System Log readable"),
        "{}",
        run.stdout
    );
    env.okta().set_logs_forbidden(true);
    let run = env.run(&["check"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("FAIL Okta System Log")
            && run.stdout.contains("okta.logs.read")
            && run.stdout.contains("enabled = false"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failed_create_does_not_stop_the_others_and_the_next_cycle_converges() {
    let env = Env::new().await;
    for i in 0..4 {
        env.assigned(&format!("user{i}@example.com"), None);
    }
    env.spot().set_fault(
        "POST /setup/user",
        Fault {
            fail: Some(FailSpec {
                status: 500,
                nth: 2,
                times: Some(1),
            }),
            ..Fault::default()
        },
    );
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["summary"]["create"], 3);
    let failed = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "failed")
        .unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    assert_eq!(
        env.spot_emails().len(),
        4,
        "three creates should have landed"
    );

    env.spot().clear_faults();
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["summary"]["create"], 1);
    assert_eq!(env.spot_emails().len(), 5);
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert!(actions(&run.json()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_ledger_recovers_from_a_corrupt_state_file_without_deleting_anyone() {
    let env = Env::new().await;
    env.assigned("ann@example.com", None);
    let bob = env.assigned("bob@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    std::fs::write(&env.state, b"{\"version\":1,\"users\":{\"00u").unwrap();
    // Bob was unassigned while the ledger was unreadable; carl is new.
    env.okta().unassign(&bob);
    env.assigned("carl@example.com", None);

    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("rebuild-ledger"), "{}", run.stderr);

    let run = env.run(&["rebuild-ledger"]).await;
    assert_eq!(run.code, 1, "must not write without confirmation");
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);

    let writes = env.spot().write_requests();
    let run = env.run(&["rebuild-ledger", "--yes"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        env.spot().write_requests(),
        writes,
        "rebuild-ledger writes the ledger only"
    );
    assert!(
        run.stdout.contains("ann@example.com") && !run.stdout.contains("bob@example.com"),
        "{}",
        run.stdout
    );
    let aside: Vec<_> = std::fs::read_dir(env.state.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".bak-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file must be kept aside");
    assert_eq!(env.ledger().managed_count(), 1);
    let mut journal = env.state.clone().into_os_string();
    journal.push(".journal");
    assert!(
        !std::path::Path::new(&journal).exists(),
        "rebuild-ledger leaves one whole file"
    );

    let writes = env.spot().write_requests();
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Ann's access is checked once (she already has every grant: read, nothing written).
    let mut got = actions(&run.json());
    got.sort();
    assert_eq!(
        got,
        vec![
            triple("create", "carl@example.com", "applied"),
            triple("update_role", "ann@example.com", "applied")
        ]
    );
    assert!(
        env.spot().user_by_email("bob@example.com").is_some(),
        "an unowned user was deleted"
    );
    assert_eq!(
        env.spot().write_requests(),
        writes + 2,
        "only carl's create and mapping"
    );
}

/// Two `rebuild-ledger` runs within one second used to give both backups one name, and the
/// second rename replaced the first backup: the original ledger was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_ledger_twice_in_a_row_keeps_every_backup() {
    let env = Env::new().await;
    env.assigned("ann@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    let original = std::fs::read(&env.state).unwrap();

    let first = env.run(&["rebuild-ledger", "--yes"]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let rebuilt = std::fs::read(&env.state).unwrap();
    let second = env.run(&["rebuild-ledger", "--yes"]).await;
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);

    let mut backups: Vec<Vec<u8>> = std::fs::read_dir(env.state.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".bak-"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    backups.sort();
    let mut expected = vec![original, rebuilt];
    expected.sort();
    assert_eq!(
        backups.len(),
        2,
        "one backup per run:\n{}\n{}",
        first.stdout,
        second.stdout
    );
    assert!(
        backups == expected,
        "each backup must hold the ledger it replaced"
    );
}

/// `okta-spot-sync plan | head -1`: the reader goes away after one line while the plan is
/// still being written. Rust ignores SIGPIPE, so each write then fails with EPIPE, and
/// `println!` panicked on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_output_quietly_with_the_commands_exit_code() {
    use tokio::io::AsyncBufReadExt;
    let env = Env::new().await;
    // Far more text than a pipe buffers (64 KiB), so the writer is still writing when the
    // reader goes away.
    for i in 0..3_000 {
        env.assigned(&format!("person{i:05}@example.com"), None);
    }
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-spot-sync"));
    cmd.arg("--config").arg(&env.config).arg("plan").env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("binary runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap();
    assert!(first.is_some(), "the plan printed nothing");
    drop(lines); // the read end closes: `head` has what it wanted
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("stdout"),
        "a closed pipe is not an error: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "plan's own exit code (changes pending): {stderr}"
    );
}

/// The disk fills up between the cycle's creates and its final save of the state file: the
/// report of what was applied is still printed, then the error, and the exit code is 1. The
/// failure is a real one: the binary runs with a file-size limit (`RLIMIT_FSIZE`, SIGXFSZ
/// ignored so that the write fails with EFBIG) that the journal's few lines fit in and the
/// whole state file does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_final_save_still_prints_what_was_applied_and_exits_1() {
    let env = Env::new().await;
    for i in 0..60 {
        env.assigned(&format!("person{i:02}@example.com"), None);
    }
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    const LIMIT: u64 = 4096;
    let whole = std::fs::metadata(&env.state).unwrap().len();
    assert!(
        whole > 2 * LIMIT,
        "the state file ({whole} bytes) must not fit"
    );
    env.assigned("new@example.com", None);

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-spot-sync"));
    cmd.arg("--config")
        .arg(&env.config)
        .args(["reconcile", "--output", "json"])
        .env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    // SAFETY: between fork and exec the closure only calls the async-signal-safe signal(2)
    // and setrlimit(2).
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: LIMIT as libc::rlim_t,
                rlim_max: LIMIT as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("binary runs");
    let run = util::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        actions(&run.json()),
        vec![triple("create", "new@example.com", "applied")],
        "the report of what was applied comes first"
    );
    assert!(
        run.stderr.contains(&env.state.display().to_string())
            && run.stderr.contains("File too large")
            && run.stderr.contains("okta-spot-sync check"),
        "the error names the file, the cause and what to run: {}",
        run.stderr
    );

    // Nothing was lost: the create is in the journal, and the next cycle has nothing to do.
    let writes = env.spot().write_requests();
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(actions(&run.json()), vec![]);
    assert_eq!(env.spot().write_requests(), writes);
    assert_eq!(env.ledger().managed_count(), 61);
}

/// A create whose answer was lost (Spot created the user, then the connection dropped; a
/// create is never retried) is decided by a fresh read of the user list, not by the error:
/// the user is recorded in the same cycle, and nothing is created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_recorded_from_a_fresh_read() {
    let env = Env::new().await;
    let alice = env.assigned("alice@example.com", None);
    env.spot().set_fault(
        "POST /setup/user",
        Fault {
            page: Some(PageFault {
                kind: PageFaultKind::DropConnection,
                nth: 1,
                times: Some(1),
            }),
            ..Fault::default()
        },
    );
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        actions(&run.json()),
        vec![triple("create", "alice@example.com", "applied")]
    );
    let spot_id = env.spot().user_by_email("alice@example.com").unwrap();
    let entry = &env.ledger().users[alice.as_str()];
    assert_eq!(entry.state, EntryState::Managed);
    assert_eq!(
        entry.spot_user_id.as_deref(),
        Some(spot_id.user_id.as_str())
    );
    env.spot().clear_faults();
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert!(actions(&run.json()).is_empty(), "{}", run.stdout);
    assert_eq!(
        env.spot_emails(),
        vec!["alice@example.com", "owner@example.com"]
    );
}
