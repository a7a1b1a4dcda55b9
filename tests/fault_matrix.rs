//! The fault matrix: for each fault × phase (Okta read, Spot read, create, policy mapping,
//! delete), one reconcile of a mixed scenario with the fault injected, then one clean
//! reconcile, then the invariants: no user deleted that should stay, no user missing that
//! should exist, nothing duplicated, the ledger matches Spot, and a further plan is empty.
//! A failed read must also have made zero writes.

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use okta_spot_sim::{Burst429, FailSpec, Fault, PageFault, PageFaultKind};
use okta_spot_sync::config;
use okta_spot_sync::cycle::{run_cycle, CycleOptions};
use okta_spot_sync::ledger::{EntryState, LedgerStore};
use okta_spot_sync::okta::client::OktaClient;
use okta_spot_sync::report::Mode;
use okta_spot_sync::spot::client::SpotClient;
use util::Env;

const OKTA_READ: &str = "GET /api/v1/apps/{appId}/users";
const SPOT_READ: &str = "GET /setup/organization/user";
const CREATE: &str = "POST /setup/user";
const MAPPING: &str = "PUT /setup/user/{userId}/policyMapping";
const DELETE: &str = "DELETE /setup/user/{userId}";
const PHASES: [&str; 5] = [OKTA_READ, SPOT_READ, CREATE, MAPPING, DELETE];

const SHOULD_EXIST: [&str; 8] = [
    "owner@example.com",
    "stranger@example.com",
    "keep@example.com",
    "sus@example.com",
    "new1@example.com",
    "new2@example.com",
    "new3@example.com",
    "adoptee@example.com",
];
const MANAGED_AFTER: [&str; 6] = [
    "keep@example.com",
    "sus@example.com",
    "new1@example.com",
    "new2@example.com",
    "new3@example.com",
    "adoptee@example.com",
];

fn page(kind: PageFaultKind) -> Fault {
    Fault {
        page: Some(PageFault {
            kind,
            nth: 2,
            times: Some(1),
        }),
        ..Fault::default()
    }
}

fn fail(status: u16, times: Option<u64>) -> Fault {
    Fault {
        fail: Some(FailSpec {
            status,
            nth: 2,
            times,
        }),
        ..Fault::default()
    }
}

struct Case {
    env: Env,
    settings: config::Settings,
    store: LedgerStore,
}

impl Case {
    async fn new() -> Case {
        let env = Env::new().await;
        let loaded = config::load_from_env_vars(
            &env.config,
            [(
                "OKTA_SPOT_SYNC__OKTA__PAGE_SIZE".to_string(),
                "2".to_string(),
            )],
        )
        .unwrap();
        let store = LedgerStore::new(&env.state);
        let case = Case {
            env,
            settings: loaded.settings,
            store,
        };
        for who in ["keep", "sus", "gone1", "gone2"] {
            case.env
                .assigned(&format!("{who}@example.com"), Some("viewer"));
        }
        case.env
            .spot()
            .add_user("stranger@example.com", "Stan", "Ger", "viewer");
        case.env
            .spot()
            .add_user("adoptee@example.com", "Ada", "Optee", "viewer");
        let report = case.cycle(Mode::Apply).await.expect("baseline reconcile");
        assert_eq!(report.summary.create, 4);
        // The mixed scenario: a suspension (hold), an unassignment and a deactivation
        // (deletes), three new users (creates) and an existing Spot user (adopt).
        let okta = case.env.okta();
        okta.suspend(&okta.user_id("sus@example.com").unwrap());
        okta.unassign(&okta.user_id("gone1@example.com").unwrap());
        okta.deactivate(&okta.user_id("gone2@example.com").unwrap());
        for who in ["new1", "new2", "new3", "adoptee"] {
            case.env.assigned(&format!("{who}@example.com"), None);
        }
        case
    }

    async fn cycle(
        &self,
        mode: Mode,
    ) -> Result<okta_spot_sync::report::Report, okta_spot_sync::Error> {
        let okta = OktaClient::new(&self.settings.okta, &self.settings.http)?;
        let spot = SpotClient::new(&self.settings.spot, &self.settings.http)?;
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

    /// Runs the faulty cycle, the clean one, and checks every invariant. Returns a description
    /// of the first violation.
    async fn run(self, fault: Fault, route: &str) -> Result<(), String> {
        let spot = self.env.spot();
        self.env.okta().set_fault(route, fault.clone());
        spot.set_fault(route, fault);
        let writes_before = spot.write_requests();
        let faulty = self.cycle(Mode::Apply).await;
        if faulty.is_err()
            && (route == OKTA_READ || route == SPOT_READ)
            && spot.write_requests() != writes_before
        {
            return Err(format!("a failed read led to writes: {faulty:?}"));
        }
        self.env.okta().clear_faults();
        spot.clear_faults();

        let clean = self
            .cycle(Mode::Apply)
            .await
            .map_err(|e| format!("clean cycle failed: {e}"))?;
        if clean.summary.failed > 0 || clean.summary.blocked > 0 {
            return Err(format!("clean cycle had failures: {}", clean.to_text()));
        }
        let again = self
            .cycle(Mode::Plan)
            .await
            .map_err(|e| format!("plan failed: {e}"))?;
        if !again.actions.is_empty() {
            return Err(format!("did not converge: {}", again.to_text()));
        }

        let mut by_email: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for u in spot.users().into_iter().filter(|u| u.kind == "personal") {
            by_email
                .entry(u.email.to_lowercase())
                .or_default()
                .push(u.user_id);
        }
        if let Some((email, ids)) = by_email.iter().find(|(_, ids)| ids.len() > 1) {
            return Err(format!("{email} duplicated in Spot: {ids:?}"));
        }
        let emails: Vec<&str> = by_email.keys().map(String::as_str).collect();
        let mut expected = SHOULD_EXIST.to_vec();
        expected.sort();
        if emails != expected {
            return Err(format!("Spot users {emails:?}, expected {expected:?}"));
        }
        if !spot.users().iter().any(|u| u.kind == "programmatic") {
            return Err("the programmatic user was deleted".into());
        }
        let ledger = self.store.load().map_err(|e| e.to_string())?;
        for email in MANAGED_AFTER {
            let entry = ledger
                .users
                .values()
                .find(|e| e.email == email && e.state == EntryState::Managed)
                .ok_or_else(|| format!("{email} is not managed in the ledger"))?;
            let id = entry.spot_user_id.as_deref().unwrap_or("-");
            if by_email.get(email).map(|ids| ids[0].as_str()) != Some(id) {
                return Err(format!("ledger says {email} is {id}, Spot disagrees"));
            }
        }
        for email in ["gone1@example.com", "gone2@example.com"] {
            if ledger
                .users
                .values()
                .any(|e| e.email == email && e.state != EntryState::Deleted)
            {
                return Err(format!("{email} should be recorded as deleted"));
            }
        }
        Ok(())
    }
}

/// Runs `fault` in every phase in `phases`; fails with every violation found.
async fn matrix(name: &str, fault: Fault, phases: &[&str]) {
    let mut violations = Vec::new();
    for route in phases {
        let case = Case::new().await;
        if let Err(why) = case.run(fault.clone(), route).await {
            violations.push(format!("{name} on {route}: {why}"));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency() {
    let fault = Fault {
        latency: Some(Duration::from_millis(30)),
        ..Fault::default()
    };
    matrix("latency", fault, &PHASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_500_once() {
    matrix("500 once", fail(500, Some(1)), &PHASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_500_persistent() {
    matrix("500 persistent", fail(500, None), &PHASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_503_then_success() {
    matrix("503 twice", fail(503, Some(2)), &PHASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429_burst() {
    let fault = Fault {
        burst_429: Some(Burst429 {
            after: 1,
            count: 2,
            reset_secs: 1,
        }),
        ..Fault::default()
    };
    matrix("429 burst", fault, &PHASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_body() {
    matrix("truncated body", page(PageFaultKind::Truncated), &PHASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json() {
    matrix(
        "malformed JSON",
        page(PageFaultKind::MalformedJson),
        &PHASES,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reset() {
    matrix(
        "connection reset",
        page(PageFaultKind::DropConnection),
        &PHASES,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body() {
    let fault = Fault {
        slow_body: Some(Duration::from_millis(40)),
        ..Fault::default()
    };
    matrix("slow body", fault, &PHASES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_next_link_and_repeated_cursor() {
    // These two only exist on Okta's paginated list.
    matrix(
        "foreign next link",
        page(PageFaultKind::ForeignNextLink),
        &[OKTA_READ],
    )
    .await;
    matrix(
        "repeated cursor",
        page(PageFaultKind::RepeatedCursor),
        &[OKTA_READ],
    )
    .await;
}
