//! Access over time, end to end (the real binary against the emulators on 127.0.0.1:0): every
//! managed viewer sees every account, the ones added later included; users mapped before the
//! access model, and adopted users, are brought in line by a union that keeps hand-made grants.

mod util;

use okta_spot_sync::ledger::{LedgerStore, LedgerWriter};
use util::{actions, triple, Env};

/// Spot's requests (reads and writes) made by one run.
fn spot_requests(env: &Env) -> u64 {
    env.spot().request_counts().values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_added_later_is_seen_by_every_viewer_at_no_cost() {
    let env = Env::new().await;
    env.assigned("alice@example.com", Some("viewer"));
    env.assigned("bob@example.com", Some("viewer"));
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let added = env.spot().add_account("cloud-3");
    let before = spot_requests(&env);
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(actions(&run.json()).is_empty(), "{}", run.stdout);
    let quiet = spot_requests(&env) - before;
    assert!(quiet <= 3, "a quiet cycle made {quiet} Spot requests");
    for email in ["alice@example.com", "bob@example.com"] {
        let user = env.spot().user_by_email(email).unwrap();
        let seen = env.spot().effective_policies(&user.user_id).unwrap();
        assert!(
            seen.iter().all(|(_, accounts)| accounts.contains(&added)),
            "{email} does not see {added}: {seen:?}"
        );
        assert!(!seen.is_empty(), "{email} has no policy");
    }
}

/// A state file from before the access model: the viewer's mapping names the accounts of the
/// day. The first cycle after the upgrade widens it to every account and keeps a hand-made
/// grant; the next cycle has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_mapped_before_the_upgrade_are_brought_in_line_keeping_hand_grants() {
    let env = Env::new().await;
    let alice = env.assigned("alice@example.com", Some("viewer"));
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    // As an older build left it: explicit accounts, and no access model in the ledger.
    let user = env.spot().user_by_email("alice@example.com").unwrap();
    let viewer = env.spot().policy_id_by_name("Account Viewer").unwrap();
    let editor = env.spot().policy_id_by_name("Account Editor").unwrap();
    let accounts = env.spot().account_ids();
    let first = accounts[0].as_str();
    assert!(env.spot().revoke_policy(&user.user_id, &viewer, None));
    env.spot().grant_policy(&user.user_id, &viewer, &[first]);
    env.spot().grant_policy(&user.user_id, &editor, &[first]);
    let store = LedgerStore::new(&env.state);
    let writer = LedgerWriter::new(store.clone(), store.load().unwrap());
    writer
        .update(|l| l.users.get_mut(alice.as_str()).unwrap().access = 0)
        .unwrap();
    drop(writer);
    // `check` says so from the ledger alone (no per-user read).
    let reads = spot_requests(&env);
    let run = env.run(&["check"]).await;
    assert!(
        run.stdout
            .contains("note access: 1 of 1 managed users of roles with policies"),
        "{}",
        run.stdout
    );
    assert!(
        env.spot().request_count("GET /setup/user/{userId}") == 0,
        "check read a user's details"
    );
    assert!(spot_requests(&env) > reads);
    // `check --deep` reads each managed user once and finds the explicit mapping.
    let run = env.run(&["check", "--deep"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "note access (deep): 1 managed users read; 1 drift in 1 users (1 missing_accounts)"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(env.spot().request_count("GET /setup/user/{userId}"), 1);

    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        actions(&run.json()),
        [triple("update_role", "alice@example.com", "applied")]
    );
    let user = env.spot().user_by_email("alice@example.com").unwrap();
    assert_eq!(
        user.policies,
        vec![
            (viewer.clone(), vec!["*".to_string()]),
            (editor.clone(), vec![first.to_string()])
        ],
        "widened to every account, the hand-made editor grant kept"
    );
    assert_eq!(
        env.ledger().users[alice.as_str()].access,
        okta_spot_sync::access::ACCESS_MODEL
    );

    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert!(actions(&run.json()).is_empty(), "{}", run.stdout);
    let run = env.run(&["check", "--deep"]).await;
    assert!(
        run.stdout
            .contains("ok   access: 1 managed users of roles with policies")
            && run
                .stdout
                .contains("ok   access (deep): 1 managed users read, none lacks"),
        "{}",
        run.stdout
    );
}

/// Adoption grants, never takes: carol exists with the viewer policy on one account and a
/// hand-made grant; once adopted she has the viewer policy on every account and keeps the grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_user_gains_the_roles_grants_and_keeps_its_own() {
    let env = Env::new().await;
    env.spot().add_account("cloud-2");
    env.assigned("carol@example.com", Some("viewer"));
    let carol = env
        .spot()
        .add_user("carol@example.com", "Carol", "Chen", "viewer");
    let viewer = env.spot().policy_id_by_name("Account Viewer").unwrap();
    let editor = env.spot().policy_id_by_name("Account Editor").unwrap();
    let accounts = env.spot().account_ids();
    assert!(accounts.len() >= 2, "{accounts:?}");
    let first = accounts[0].as_str();
    env.spot().revoke_policy(&carol, &viewer, None);
    env.spot().grant_policy(&carol, &viewer, &[first]);
    env.spot().grant_policy(&carol, &editor, &[first]);

    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        actions(&run.json()),
        [triple("adopt", "carol@example.com", "applied")]
    );
    let seen = env.spot().effective_policies(&carol).unwrap();
    let of = |policy: &str| {
        seen.iter()
            .find(|(p, _)| p == policy)
            .map(|(_, a)| a.clone())
    };
    assert_eq!(of(&viewer), Some(accounts.clone()), "{seen:?}");
    assert_eq!(of(&editor), Some(vec![first.to_string()]), "{seen:?}");
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert!(actions(&run.json()).is_empty(), "{}", run.stdout);
}

/// `import` never writes to Spot: what it adopts is brought in line by the next reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_user_is_brought_in_line_by_the_next_reconcile() {
    let env = Env::new().await;
    env.spot().add_account("cloud-2");
    env.assigned("dana@example.com", Some("viewer"));
    let dana = env
        .spot()
        .add_user("dana@example.com", "Dana", "Diaz", "viewer");
    let viewer = env.spot().policy_id_by_name("Account Viewer").unwrap();
    env.spot().revoke_policy(&dana, &viewer, None);

    let writes = env.spot().write_requests();
    let run = env.run(&["import", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.spot().write_requests(), writes, "import wrote to Spot");

    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        actions(&run.json()),
        [triple("update_role", "dana@example.com", "applied")]
    );
    let seen = env.spot().effective_policies(&dana).unwrap();
    assert_eq!(seen, vec![(viewer, env.spot().account_ids())]);
}
