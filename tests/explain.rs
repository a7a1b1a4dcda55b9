//! `okta-spot-sync explain <email>` end to end: the real binary against the Okta and Spot
//! emulators on 127.0.0.1:0, one test per class (provisioned, held for each reason, absent,
//! unmanaged, protected, programmatic, blocked by a guard), an email nobody knows, and that it
//! writes nothing and takes no lock.

mod util;

use okta_spot_sync::lock::InstanceLock;
use serde_json::Value;
use util::Env;

/// `explain <who> --output json`: the exit code and the JSON.
async fn explain(env: &Env, who: &str) -> (i32, Value) {
    let run = env.run(&["explain", who, "--output", "json"]).await;
    assert!(
        run.stderr.is_empty() || !run.stderr.contains("error:"),
        "{}",
        run.stderr
    );
    (run.code, run.json())
}

fn strs(v: &Value, field: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap_or("-").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_user_gets_a_planned_create_and_exit_2() {
    let env = Env::new().await;
    let ann = env.assigned("Ann@Example.com", Some("editor"));
    env.okta()
        .assign_via_group(&ann, "Engineering", Some("editor"));
    let (code, e) = explain(&env, "  ann@EXAMPLE.com ").await;
    assert_eq!(code, 2, "{e:#}");
    assert_eq!(e["email"], "ann@example.com");
    assert_eq!(strs(&e["okta_rows"], "scope"), ["USER", "GROUP"]);
    assert_eq!(e["okta_rows"][0]["role"], "editor");
    assert_eq!(e["okta_rows"][0]["user_status"], "ACTIVE");
    assert_eq!(e["okta_users"][0]["class"], "provision");
    assert_eq!(e["okta_users"][0]["role"], "editor");
    assert_eq!(strs(&e["actions"], "action"), ["create"]);
    assert_eq!(e["actions"][0]["status"], "planned");
    assert_eq!(
        e["actions"][0]["reason"],
        "assigned in Okta, missing in Spot"
    );
    assert_eq!(e["outcome"], "changes_pending");
    assert!(e["spot_users"].as_array().unwrap().is_empty());
    assert!(e["ledger"].as_array().unwrap().is_empty());

    // Once reconciled: in sync, nothing to do, exit 0.
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    let (code, e) = explain(&env, "ann@example.com").await;
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["outcome"], "nothing");
    assert_eq!(e["next_step"], "nothing to do");
    assert_eq!(e["spot_users"][0]["managed_for"], ann.as_str());
    assert_eq!(e["spot_users"][0]["kind"], "personal");
    assert_eq!(e["ledger"][0]["state"], "managed");
    assert_eq!(e["ledger"][0]["role"], "editor");
    assert_eq!(e["ledger"][0]["access_current"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hold_reason_is_explained_with_its_next_step() {
    let env = Env::new().await;
    let sus = env.assigned("sus@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    env.okta().suspend(&sus);
    let odd = env.assigned("odd@example.com", None);
    env.okta().set_status(&odd, "ARCHIVED_SOON");
    env.assigned("not-an-email", None);
    env.assigned("role@example.com", Some("superuser"));
    env.assigned("twin@example.com", None);
    let twin = env.okta().add_user(okta_spot_sim::OktaUserSpec {
        email: "TWIN@example.com".into(),
        login: Some("twin.two@example.com".into()),
        first_name: "Twin".into(),
        last_name: "Two".into(),
        ..Default::default()
    });
    env.okta().assign(&twin, None);
    let split = env.assigned("split@example.com", None);
    env.okta().assign_via_group(&split, "Engineering", None);
    env.okta()
        .set_row_email(&split, Some("Engineering"), Some("split.new@example.com"));

    let cases = [
        (
            "sus@example.com",
            "status SUSPENDED",
            "status SUSPENDED is held (okta.hold_statuses): unsuspend the user in Okta",
        ),
        (
            "odd@example.com",
            "not one Okta documents",
            "an Okta user status Okta does not document is held",
        ),
        (
            "NOT-an-email",
            "invalid email",
            "the email in the Okta profile is not a valid address: fix it in Okta",
        ),
        (
            "role@example.com",
            "unknown role",
            "unknown role: set the assignment's role attribute to viewer or editor in Okta",
        ),
        (
            "twin@example.com",
            "duplicate email",
            "two Okta users have this email: give each a unique email",
        ),
        (
            "split.new@example.com",
            "different emails",
            "Okta lists this user on rows with different emails",
        ),
    ];
    for (who, reason, next) in cases {
        let (code, e) = explain(&env, who).await;
        assert_eq!(code, 0, "{who}: {e:#}");
        assert_eq!(e["outcome"], "nothing", "{who}");
        let users = e["okta_users"].as_array().unwrap();
        assert!(!users.is_empty(), "{who}: {e:#}");
        for u in users {
            assert_eq!(u["class"], "hold", "{who}: {e:#}");
            assert!(u["reason"].as_str().unwrap().contains(reason), "{who}: {u}");
        }
        assert!(
            e["next_step"].as_str().unwrap().starts_with(next),
            "{who}: {}",
            e["next_step"]
        );
        assert!(e["actions"].as_array().unwrap().is_empty(), "{who}");
    }
    // The suspended user keeps its Spot user, and the answer says so.
    let (_, e) = explain(&env, "sus@example.com").await;
    let kept = e["spot_users"][0]["spot_user_id"].as_str().unwrap();
    assert!(
        e["answer"]
            .as_str()
            .unwrap()
            .contains(&format!("Spot user {kept} is kept")),
        "{e:#}"
    );
    // Both Okta users of a shared email, both rows of a user whose rows disagree.
    assert_eq!(
        explain(&env, "twin@example.com").await.1["okta_users"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        strs(
            &explain(&env, "split@example.com").await.1["okta_rows"],
            "email"
        ),
        ["split@example.com", "split.new@example.com"]
    );
    // The text form, as pasted into a ticket.
    let run = env.run(&["explain", "sus@example.com"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for needle in [
        "okta-spot-sync explain sus@example.com",
        "scope USER  assignment ACTIVE  user status SUSPENDED  email sus@example.com  role -",
        &format!("{sus}  hold: status SUSPENDED"),
        &format!("{kept}  personal  sus@example.com  managed for Okta user {sus}"),
        "nothing for this person",
        "Next step: status SUSPENDED is held (okta.hold_statuses): unsuspend the user in Okta",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            run.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_users_get_a_planned_delete_then_nothing() {
    let env = Env::new().await;
    let alice = env.assigned("alice@example.com", None);
    let bob = env.assigned("bob@example.com", None);
    let carol = env.assigned("carol@example.com", None);
    env.assigned("keep@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    env.okta().unassign(&alice);
    env.okta().deactivate(&bob);
    env.okta().set_app_user_status(&carol, "INACTIVE");

    for (who, id, class_reason) in [
        ("alice@example.com", &alice, "not assigned to the app"),
        ("bob@example.com", &bob, "not assigned to the app"),
        (
            "carol@example.com",
            &carol,
            "app assignment status INACTIVE in Okta",
        ),
    ] {
        let (code, e) = explain(&env, who).await;
        assert_eq!(code, 2, "{who}: {e:#}");
        assert_eq!(e["okta_users"][0]["okta_user_id"], id.as_str());
        assert_eq!(e["okta_users"][0]["class"], "absent", "{who}");
        assert!(
            e["okta_users"][0]["reason"]
                .as_str()
                .unwrap()
                .starts_with(class_reason),
            "{who}: {e:#}"
        );
        assert_eq!(strs(&e["actions"], "action"), ["delete"], "{who}");
        assert_eq!(
            e["actions"][0]["spot_user_id"],
            e["ledger"][0]["spot_user_id"]
        );
        assert_eq!(e["outcome"], "changes_pending");
    }

    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    let (code, e) = explain(&env, "alice@example.com").await;
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["ledger"][0]["state"], "deleted");
    assert_eq!(e["ledger"][0]["tombstones"].as_array().unwrap().len(), 1);
    assert_eq!(e["next_step"], "assign the user to the app in Okta");
    let (_, e) = explain(&env, "carol@example.com").await;
    assert!(
        e["next_step"]
            .as_str()
            .unwrap()
            .contains("reactivate the user and its assignment in Okta"),
        "{e:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_protected_programmatic_and_unknown_are_left_alone_and_say_why() {
    let env = Env::new().await;
    let stranger = env
        .spot()
        .add_user("stranger@example.com", "Stan", "Ger", "viewer");
    // The owner is in sync.protected_emails (tests/util) and assigned in Okta too.
    env.assigned("owner@example.com", None);
    let bot = env
        .spot()
        .users()
        .into_iter()
        .find(|u| u.kind == "programmatic")
        .unwrap()
        .user_id;

    let (code, e) = explain(&env, "stranger@example.com").await;
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["spot_users"][0]["spot_user_id"], stranger.as_str());
    assert_eq!(e["spot_users"][0]["managed_for"], Value::Null);
    assert!(e["okta_rows"].as_array().unwrap().is_empty());
    assert!(
        e["answer"]
            .as_str()
            .unwrap()
            .contains("not managed by okta-spot-sync"),
        "{e:#}"
    );
    assert_eq!(
        e["next_step"],
        format!("assign the user to the app in Okta: the next cycle adopts Spot user {stranger}")
    );

    let (code, e) = explain(&env, "Owner@example.com").await;
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["spot_users"][0]["protected"], true);
    assert_eq!(e["okta_users"][0]["class"], "provision");
    assert!(
        e["okta_users"][0]["held_by_plan"]
            .as_str()
            .unwrap()
            .starts_with("protected email"),
        "{e:#}"
    );
    assert_eq!(
        e["next_step"],
        "protected email (sync.protected_emails): remove it from the list to let okta-spot-sync manage it"
    );

    // A programmatic user has no email: it is asked about by its Spot user id.
    let (code, e) = explain(&env, &bot).await;
    assert_eq!(code, 0, "{e:#}");
    assert_eq!(e["spot_users"][0]["kind"], "programmatic");
    assert_eq!(e["next_step"], "a programmatic Spot user is never touched");

    let run = env.run(&["explain", "nobody@example.com"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("knows no one"), "{}", run.stdout);
    let (code, e) = explain(&env, "nobody@example.com").await;
    assert_eq!(code, 0);
    assert_eq!(e["known"], false);
    assert!(
        e["next_step"]
            .as_str()
            .unwrap()
            .starts_with("assign the user to the app in Okta"),
        "{e:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_delete_names_the_guard_and_how_to_lift_it_with_exit_3() {
    let mut env = Env::new().await;
    let ann = env.assigned("ann@example.com", None);
    let ben = env.assigned("ben@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);

    env.okta().unassign(&ann);
    env.set_env("OKTA_SPOT_SYNC__SYNC__MAX_DELETES", "0");
    let (code, e) = explain(&env, "ann@example.com").await;
    assert_eq!(code, 3, "{e:#}");
    assert_eq!(e["outcome"], "blocked");
    assert_eq!(e["actions"][0]["action"], "delete");
    assert_eq!(e["actions"][0]["status"], "blocked");
    assert_eq!(e["actions"][0]["blocked"], "blocked by guard max_deletes");
    assert_eq!(strs(&e["blocked_by"], "guard"), ["max_deletes"]);
    assert_eq!(
        e["next_step"],
        "blocked by guard max_deletes: check the plan (`okta-spot-sync plan`), then `okta-spot-sync reconcile --allow-deletes 1`"
    );
    // Ben is in line: nothing for him, whatever blocks Ann.
    let (code, e) = explain(&env, "ben@example.com").await;
    assert_eq!(code, 0, "{e:#}");
    assert!(e["blocked_by"].as_array().unwrap().is_empty());

    // Okta lists nobody: the empty-source guard.
    env.env.clear();
    env.okta().unassign(&ben);
    let (code, e) = explain(&env, "ben@example.com").await;
    assert_eq!(code, 3, "{e:#}");
    assert_eq!(strs(&e["blocked_by"], "guard"), ["empty_source"]);
    assert!(
        e["next_step"]
            .as_str()
            .unwrap()
            .contains("`okta-spot-sync reconcile --allow-empty-source`"),
        "{e:#}"
    );
}

/// Like `plan`: no lock (it answers while `reconcile`'s lock is held) and no write — not to
/// Spot, not to Okta, not to the state file (byte for byte) or its journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_takes_no_lock_and_writes_nothing() {
    let env = Env::new().await;
    let ann = env.assigned("ann@example.com", None);
    env.assigned("bob@example.com", None);
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    env.okta().unassign(&ann);
    env.assigned("cid@example.com", None);
    let state = std::fs::read(&env.state).unwrap();
    let journal = {
        let mut name = env.state.file_name().unwrap().to_os_string();
        name.push(".journal");
        env.state.with_file_name(name)
    };
    let spot_writes = env.spot().write_requests();
    let okta_before = env.okta().request_counts();

    let held = InstanceLock::acquire(&env.state, "reconcile").unwrap();
    let refused = env.run(&["reconcile"]).await;
    assert_eq!(refused.code, 1, "the lock is not held: {}", refused.stderr);
    for who in ["ann@example.com", "bob@example.com", "cid@example.com"] {
        let run = env.run(&["explain", who]).await;
        assert!(
            run.code == 0 || run.code == 2,
            "{who}: {}\n{}",
            run.code,
            run.stderr
        );
        assert!(run.stdout.contains("Next step:"), "{}", run.stdout);
    }
    drop(held);

    assert_eq!(
        std::fs::read(&env.state).unwrap(),
        state,
        "the state file changed"
    );
    assert!(!journal.exists(), "explain wrote a journal");
    assert_eq!(
        env.spot().write_requests(),
        spot_writes,
        "explain wrote to Spot"
    );
    let okta_after = env.okta().request_counts();
    let okta_writes = |counts: &std::collections::BTreeMap<String, u64>| {
        counts
            .iter()
            .filter(|(route, _)| !route.starts_with("GET "))
            .map(|(route, n)| (route.clone(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(okta_writes(&okta_after), okta_writes(&okta_before));
    assert!(env.spot().user_by_email("ann@example.com").is_some());
    assert!(env.spot().user_by_email("cid@example.com").is_none());
}
