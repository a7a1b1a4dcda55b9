//! The request counts of the scale benchmark's steady state, at 5,000 users (not timed: a
//! regression in the number of calls fails CI; `cargo bench --bench scale` measures time).
//! The reconciler is the real binary, run against the emulators like the benchmark does.

#[path = "../benches/support/mod.rs"]
mod support;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_reads_each_page_once_and_spot_at_most_three_times() {
    let users = 5_000;
    let setup = support::steady_state(users, Duration::ZERO).await;
    let run = support::run_reconcile(env!("CARGO_BIN_EXE_okta-spot-sync"), &setup).await;
    assert_eq!(run.code, 0, "reconcile failed:\n{}", run.stderr);
    let report = run.report();
    assert_eq!(report["okta_users"], users);
    assert_eq!(report["actions"].as_array().map(Vec::len), Some(0));

    // ⌈5,000 / 500⌉ pages, each requested once.
    let okta = setup.emu.okta.request_counts();
    assert_eq!(setup.emu.okta.total_requests(), 10, "{okta:?}");
    assert_eq!(okta.get("GET /api/v1/apps/{appId}/users"), Some(&10));
    // One user list; no accounts, policies or per-user reads when nothing changes.
    let spot = setup.emu.spot.request_counts();
    assert!(setup.emu.spot.total_requests() <= 3, "{spot:?}");
    assert_eq!(
        spot.get("GET /setup/organization/user"),
        Some(&1),
        "{spot:?}"
    );
    assert_eq!(setup.emu.spot.write_requests(), 0, "{spot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_reads_policies_once_and_no_accounts() {
    let users = 30;
    let setup = support::first_sync(users, Duration::ZERO, 6_000, 4).await;
    let run = support::run_reconcile(env!("CARGO_BIN_EXE_okta-spot-sync"), &setup).await;
    assert_eq!(run.code, 0, "reconcile failed:\n{}", run.stderr);
    assert_eq!(run.report()["summary"]["create"], users);
    let spot = setup.emu.spot.request_counts();
    let count = |k: &str| spot.get(k).copied().unwrap_or(0);
    assert_eq!(count("GET /setup/organization/user"), 1, "{spot:?}");
    // Each viewer policy goes on every account as "*": the account list is never needed.
    assert_eq!(count("GET /setup/account"), 0, "{spot:?}");
    assert_eq!(count("GET /setup/organization/policy"), 1, "{spot:?}");
    assert_eq!(count(support::ROUTE_CREATE), users as u64, "{spot:?}");
    assert_eq!(count(support::ROUTE_MAPPING), users as u64, "{spot:?}");
    assert_eq!(setup.emu.spot.total_requests(), 2 + 2 * users as u64);
}
