//! `okta-spot-sync audit [--repair]`, end to end (the real binary against the emulators on
//! 127.0.0.1:0): each drift kind is found with the documented exit code and nothing is written;
//! `--repair` adds missing grants as a union that keeps hand-made ones, leaves an organization
//! role it cannot fix, and exits 1 when a repair fails.

mod util;

use okta_spot_sim::{FailSpec, Fault};
use okta_spot_sync::access::ACCESS_MODEL;
use okta_spot_sync::ledger::{LedgerStore, LedgerWriter};
use util::Env;

const DETAILS: &str = "GET /setup/user/{userId}";
const LIST: &str = "GET /setup/organization/user";
const MAPPING: &str = "PUT /setup/user/{userId}/policyMapping";

/// `(email, kind, status)` of each drift of a JSON audit report, in report order.
fn drift(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["drift"]
        .as_array()
        .unwrap_or_else(|| panic!("no drift list: {report}"))
        .iter()
        .map(|d| {
            for key in ["spot_user_id", "okta_user_id", "detail"] {
                assert!(d[key].is_string(), "{key} missing: {d}");
            }
            (
                d["email"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn d(email: &str, kind: &str, status: &str) -> (String, String, String) {
    (email.into(), kind.into(), status.into())
}

/// Sets a ledger entry's access model (as an older build, or a test, left it).
fn set_access(env: &Env, okta_user_id: &str, access: u32) {
    let store = LedgerStore::new(&env.state);
    let writer = LedgerWriter::new(store.clone(), store.load().unwrap());
    writer
        .update(|l| l.users.get_mut(okta_user_id).unwrap().access = access)
        .unwrap();
}

/// Everyone in line: exit 0, one list read, one details read per managed user, no write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_drift_exits_0_and_reads_each_managed_user_once() {
    let env = Env::new().await;
    env.assigned("alice@example.com", Some("viewer"));
    env.assigned("bob@example.com", Some("viewer"));
    env.assigned("carol@example.com", Some("editor"));
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    env.spot().reset_counts();
    let run = env.run(&["audit", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert!(drift(&report).is_empty(), "{report}");
    assert_eq!(report["summary"]["users_checked"], 3, "{report}");
    assert_eq!(env.spot().request_count(DETAILS), 3);
    assert_eq!(env.spot().request_count(LIST), 1);
    assert_eq!(env.spot().write_requests(), 0);
}

/// The viewer policy removed by hand from one user, one account removed from another's
/// explicit mapping: `audit` lists both and writes nothing (exit 2); `--repair` adds them back
/// as a union that keeps a hand-made grant and records the access model (exit 0); a second
/// audit finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_removals_are_found_then_repaired_keeping_hand_grants() {
    let env = Env::new().await;
    env.spot().add_account("cloud-2");
    let alice = env.assigned("alice@example.com", Some("viewer"));
    env.assigned("bob@example.com", Some("viewer"));
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let viewer = env.spot().policy_id_by_name("Account Viewer").unwrap();
    let editor = env.spot().policy_id_by_name("Account Editor").unwrap();
    let accounts = env.spot().account_ids();
    let (first, second) = (accounts[0].as_str(), accounts[1].as_str());
    let a = env
        .spot()
        .user_by_email("alice@example.com")
        .unwrap()
        .user_id;
    let b = env.spot().user_by_email("bob@example.com").unwrap().user_id;
    assert!(env.spot().revoke_policy(&a, &viewer, None));
    env.spot().grant_policy(&a, &editor, &[first]);
    assert!(env.spot().revoke_policy(&b, &viewer, None));
    env.spot().grant_policy(&b, &viewer, &[first, second]);
    assert!(env.spot().revoke_policy(&b, &viewer, Some(second)));
    set_access(&env, &alice, 0);

    let writes = env.spot().write_requests();
    let run = env.run(&["audit", "--output", "json"]).await;
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(
        drift(&report),
        [
            d("alice@example.com", "missing_policy", "found"),
            d("bob@example.com", "missing_accounts", "found"),
        ]
    );
    assert_eq!(report["summary"]["found"], 2, "{report}");
    assert_eq!(env.spot().write_requests(), writes, "audit wrote to Spot");
    assert_eq!(env.ledger().users[alice.as_str()].access, 0);

    // The text form: a table with a header and one row per drift.
    let run = env.run(&["audit"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.contains("EMAIL"), "{}", run.stdout);
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("bob@example.com"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        row.contains("missing_accounts") && row.contains(first),
        "{row}"
    );

    let run = env.run(&["audit", "--repair", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        drift(&run.json()),
        [
            d("alice@example.com", "missing_policy", "repaired"),
            d("bob@example.com", "missing_accounts", "repaired"),
        ]
    );
    assert_eq!(
        env.spot().user(&a).unwrap().policies,
        vec![
            (editor.clone(), vec![first.to_string()]),
            (viewer.clone(), vec!["*".to_string()])
        ],
        "the viewer policy is back on every account and the hand-made grant kept"
    );
    assert_eq!(
        env.spot().user(&b).unwrap().policies,
        vec![(viewer.clone(), vec!["*".to_string()])]
    );
    assert_eq!(env.ledger().users[alice.as_str()].access, ACCESS_MODEL);

    let writes = env.spot().write_requests();
    let run = env.run(&["audit", "--repair", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(drift(&run.json()).is_empty(), "{}", run.stdout);
    assert_eq!(env.spot().write_requests(), writes);
}

/// An editor (Spot `admin`) demoted by hand: reported; `--repair` cannot change an
/// organization role without recreating the user, so it is `not_repairable`, left as it is,
/// and the run exits 0 (every repairable drift, here none, was repaired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_role_changed_by_hand_is_reported_and_left() {
    let env = Env::new().await;
    env.assigned("carol@example.com", Some("editor"));
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let c = env
        .spot()
        .user_by_email("carol@example.com")
        .unwrap()
        .user_id;
    env.spot().set_role(&c, "viewer");

    let writes = env.spot().write_requests();
    let run = env.run(&["audit", "--output", "json"]).await;
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        drift(&run.json()),
        [d("carol@example.com", "role_differs", "found")]
    );
    let run = env.run(&["audit", "--repair", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        drift(&run.json()),
        [d("carol@example.com", "role_differs", "not_repairable")]
    );
    assert_eq!(env.spot().write_requests(), writes);
    assert_eq!(env.spot().user(&c).unwrap().role, "viewer");
}

/// A repair whose `PUT …/policyMapping` fails: `failed` with the error, exit 1, the ledger's
/// access model not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_repair_exits_1() {
    let env = Env::new().await;
    let alice = env.assigned("alice@example.com", Some("viewer"));
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let viewer = env.spot().policy_id_by_name("Account Viewer").unwrap();
    let a = env
        .spot()
        .user_by_email("alice@example.com")
        .unwrap()
        .user_id;
    assert!(env.spot().revoke_policy(&a, &viewer, None));
    set_access(&env, &alice, 0);
    env.spot().set_fault(
        MAPPING,
        Fault {
            fail: Some(FailSpec {
                status: 500,
                ..FailSpec::default()
            }),
            ..Fault::default()
        },
    );

    let run = env.run(&["audit", "--repair", "--output", "json"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(
        drift(&report),
        [d("alice@example.com", "missing_policy", "failed")]
    );
    assert!(report["drift"][0]["error"].is_string(), "{report}");
    assert!(env.spot().user(&a).unwrap().policies.is_empty());
    assert_eq!(env.ledger().users[alice.as_str()].access, 0);
}

/// A managed user deleted by hand: `vanished`, exit 2; `--repair` does not recreate it (the
/// next reconcile decides), so it is `not_repairable` and the run exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_user_is_reported() {
    let env = Env::new().await;
    env.assigned("alice@example.com", Some("viewer"));
    env.assigned("bob@example.com", Some("viewer"));
    let run = env.run(&["reconcile"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let a = env
        .spot()
        .user_by_email("alice@example.com")
        .unwrap()
        .user_id;
    env.spot().remove_user(&a);

    env.spot().reset_counts();
    let run = env.run(&["audit", "--output", "json"]).await;
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        drift(&run.json()),
        [d("alice@example.com", "vanished", "found")]
    );
    assert_eq!(
        env.spot().request_count(DETAILS),
        1,
        "a user the list does not have is not read"
    );
    let run = env.run(&["audit", "--repair", "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        drift(&run.json()),
        [d("alice@example.com", "vanished", "not_repairable")]
    );
    assert_eq!(env.spot().write_requests(), 0);
}
