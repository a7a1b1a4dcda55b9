//! Crash consistency: SIGKILL the real binary at every write of a reconcile (while the write is
//! held in flight, and just after it arrived), then run one more reconcile. Every user must
//! exist exactly once, be owned by the ledger, and a further plan must be empty.

mod util;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use okta_spot_sim::Fault;
use okta_spot_sync::ledger::EntryState;
use util::Env;

const WRITE_ROUTES: [&str; 3] = [
    "POST /setup/user",
    "PUT /setup/user/{userId}/policyMapping",
    "DELETE /setup/user/{userId}",
];

/// Managed: keep, gone1, gone2. The scenario: two deletes, three creates (each with a mapping).
async fn scenario() -> Env {
    let env = Env::new().await;
    for who in ["keep", "gone1", "gone2"] {
        env.assigned(&format!("{who}@example.com"), Some("viewer"));
    }
    assert_eq!(env.run(&["reconcile"]).await.code, 0);
    env.okta()
        .unassign(&env.okta().user_id("gone1@example.com").unwrap());
    env.okta()
        .deactivate(&env.okta().user_id("gone2@example.com").unwrap());
    for who in ["new1", "new2", "new3"] {
        env.assigned(&format!("{who}@example.com"), Some("viewer"));
    }
    env.spot().reset_counts();
    env
}

/// Starts `reconcile`, waits until the `k`-th write request has reached Spot, kills it.
async fn kill_at_write(env: &Env, k: u64) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-spot-sync"))
        .arg("--config")
        .arg(&env.config)
        .arg("reconcile")
        .env_clear()
        .env("OKTA_SPOT_SYNC__SPOT__WRITE_CONCURRENCY", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::select! {
        _ = env.spot().wait_for_writes(k) => {
            child.start_kill().unwrap();
        }
        status = child.wait() => {
            let _ = status; // finished before the k-th write: nothing to kill
        }
    }
    let _ = child.wait().await;
}

async fn check_converged(env: &Env, label: &str) {
    let run = env.run(&["reconcile", "--output", "json"]).await;
    assert_eq!(
        run.code, 0,
        "{label}: recovery reconcile failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    let run = env.run(&["plan", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{label}: not converged:\n{}", run.stdout);

    let mut by_email: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in env
        .spot()
        .users()
        .into_iter()
        .filter(|u| u.kind == "personal")
    {
        by_email
            .entry(u.email.to_lowercase())
            .or_default()
            .push(u.user_id);
    }
    let emails: Vec<&str> = by_email.keys().map(String::as_str).collect();
    assert_eq!(
        emails,
        [
            "keep@example.com",
            "new1@example.com",
            "new2@example.com",
            "new3@example.com",
            "owner@example.com"
        ],
        "{label}"
    );
    assert!(
        by_email.values().all(|ids| ids.len() == 1),
        "{label}: duplicated users {by_email:?}"
    );
    let ledger = env.ledger();
    for email in [
        "keep@example.com",
        "new1@example.com",
        "new2@example.com",
        "new3@example.com",
    ] {
        let entry = ledger
            .users
            .values()
            .find(|e| e.email == email)
            .unwrap_or_else(|| panic!("{label}: {email} not in the ledger"));
        assert_eq!(entry.state, EntryState::Managed, "{label}: {email}");
        assert_eq!(
            entry.spot_user_id.as_deref(),
            Some(&by_email[email][0]).map(|id| id.as_str()),
            "{label}: {email} owned by the wrong id"
        );
    }
    let viewer = env.spot().policy_id_by_name("Account Viewer").unwrap();
    for email in ["new1@example.com", "new2@example.com", "new3@example.com"] {
        let user = env.spot().user_by_email(email).unwrap();
        assert!(
            user.policies
                .iter()
                .any(|(p, a)| *p == viewer && a.len() == env.spot().account_ids().len()),
            "{label}: {email} lacks its role mapping"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_just_after_each_write_arrives() {
    // 3 creates + 3 mappings + 2 deletes.
    for k in 1..=8 {
        let env = scenario().await;
        kill_at_write(&env, k).await;
        check_converged(&env, &format!("killed after write {k} arrived")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_each_write_is_in_flight() {
    for k in 1..=8 {
        let env = scenario().await;
        // Every write is held for a while by the server, so the kill lands mid-request.
        for route in WRITE_ROUTES {
            env.spot().set_fault(
                route,
                Fault {
                    latency: Some(Duration::from_millis(300)),
                    ..Fault::default()
                },
            );
        }
        kill_at_write(&env, k).await;
        env.spot().clear_faults();
        check_converged(&env, &format!("killed during write {k}")).await;
    }
}
