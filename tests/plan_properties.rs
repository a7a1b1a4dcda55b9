//! Property tests of the pure core together with the real apply engine on in-memory fakes:
//! the planner never touches a Spot user it does not own, a second plan after a successful
//! apply is empty, and the order of input rows never changes the plan.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use okta_spot_sync::action::Change;
use okta_spot_sync::apply::{apply, RoleResolver};
use okta_spot_sync::config::{SpotRoleSettings, SpotRoles};
use okta_spot_sync::fake::{FakeFault, FakeSpotDirectory};
use okta_spot_sync::guard::{guard, GuardLimits, Verdicts};
use okta_spot_sync::ledger::LedgerWriter;
use okta_spot_sync::ledger::{EntryState, Ledger, LedgerEntry, Origin};
use okta_spot_sync::model::OktaUserId;
use okta_spot_sync::model::{AppUserRow, Email, Role, SpotUser, SpotUserKind, SpotUsers};
use okta_spot_sync::okta::classify::{classify, ClassifyRules};
use okta_spot_sync::plan::{plan, plan_partial, PlanOptions};
use proptest::prelude::*;

const USER_STATUSES: [&str; 8] = [
    "ACTIVE",
    "PROVISIONED",
    "PASSWORD_EXPIRED",
    "RECOVERY",
    "LOCKED_OUT",
    "SUSPENDED",
    "STAGED",
    "DEPROVISIONED",
];
const APP_STATUSES: [&str; 4] = ["ACTIVE", "PROVISIONED", "INACTIVE", "SUSPENDED"];
const ROLES: [Option<&str>; 4] = [None, Some("viewer"), Some("Editor"), Some("owner")];

fn rules() -> ClassifyRules {
    ClassifyRules {
        provision_statuses: USER_STATUSES[..5].iter().map(|s| s.to_string()).collect(),
        hold_statuses: vec!["SUSPENDED".into(), "STAGED".into()],
        default_role: Role::Viewer,
    }
}

fn options(protected: &BTreeSet<Email>) -> PlanOptions {
    PlanOptions {
        adopt_existing: true,
        update_roles: true,
        protected_emails: protected.clone(),
        spot_roles: [
            (Role::Viewer, "viewer".to_string()),
            (Role::Editor, "admin".to_string()),
        ]
        .into(),
    }
}

fn role_settings() -> SpotRoles {
    SpotRoles {
        viewer: SpotRoleSettings {
            spot_role: "viewer".into(),
            policies: vec!["Account Viewer".into()],
        },
        editor: SpotRoleSettings {
            spot_role: "admin".into(),
            policies: vec![],
        },
    }
}

fn email(i: usize, upper: bool) -> String {
    let e = format!("user{i}@example.com");
    if upper {
        e.to_uppercase()
    } else {
        e
    }
}

#[derive(Debug, Clone)]
struct World {
    rows: Vec<AppUserRow>,
    spot: Vec<SpotUser>,
    ledger: Ledger,
    protected: BTreeSet<Email>,
}

fn world() -> impl Strategy<Value = World> {
    let row = (
        0..12usize,
        0..10usize,
        any::<bool>(),
        0..8usize,
        0..4usize,
        0..4usize,
        any::<bool>(),
    );
    let spot_user = (0..10usize, 0..6usize);
    let ledger_entry = (
        0..12usize,
        0..10usize,
        0..3usize,
        prop::option::of(0..14usize),
        0..4usize,
    );
    (
        prop::collection::vec(row, 0..16),
        prop::collection::vec(spot_user, 0..12),
        prop::collection::vec(ledger_entry, 0..10),
        prop::option::of(0..10usize),
    )
        .prop_map(|(rows, spot, entries, protected)| {
            let rows: Vec<AppUserRow> = rows
                .into_iter()
                .map(|(id, mail, upper, us, aps, role, group)| AppUserRow {
                    okta_user_id: format!("00u{id:02}").into(),
                    scope: Some(if group { "GROUP" } else { "USER" }.into()),
                    app_user_status: Some(APP_STATUSES[aps].into()),
                    user_status: Some(USER_STATUSES[us].into()),
                    email: Some(email(mail, upper)),
                    first_name: Some("First".into()),
                    last_name: Some("Last".into()),
                    role: ROLES[role].map(Into::into),
                    malformed: None,
                })
                .collect();
            let mut spot_users: Vec<SpotUser> = Vec::new();
            for (i, (mail, kind)) in spot.into_iter().enumerate() {
                let kind = match kind {
                    0 => SpotUserKind::Programmatic,
                    1 => SpotUserKind::Unknown,
                    _ => SpotUserKind::Personal,
                };
                let prefix = if kind == SpotUserKind::Programmatic {
                    "pu"
                } else {
                    "u"
                };
                spot_users.push(SpotUser {
                    user_id: format!("{prefix}-{i:08x}").into(),
                    email: Email::parse(&email(mail, false)),
                    username: "x".into(),
                    kind,
                });
            }
            // Spot keeps emails unique among personal users.
            let mut seen = BTreeSet::new();
            spot_users.retain(|u| !u.is_personal() || seen.insert(u.email.clone()));
            // A consistent ledger: each Spot user owned by at most one live entry.
            let mut ledger = Ledger::default();
            let mut owned = BTreeSet::new();
            for (id, mail, state, spot_ix, role) in entries {
                let state = [
                    EntryState::Pending,
                    EntryState::Managed,
                    EntryState::Deleted,
                ][state];
                let spot_user_id = match spot_ix {
                    None => None,
                    Some(ix) => match spot_users.get(ix) {
                        Some(u) if u.is_personal() && owned.insert(u.user_id.clone()) => {
                            Some(u.user_id.clone())
                        }
                        Some(_) => None,
                        None => Some(format!("u-gone{ix:04}").into()),
                    },
                };
                // A deleted entry keeps its Spot user as a tombstone: one Spot still lists
                // when the delete answered success and did nothing, or a list missed it.
                let (spot_user_id, tombstones) = match state {
                    EntryState::Deleted => (None, spot_user_id.into_iter().collect()),
                    _ => (spot_user_id, Vec::new()),
                };
                let entry_email = spot_user_id
                    .as_ref()
                    .or(tombstones.first())
                    .and_then(|sid| spot_users.iter().find(|u| &u.user_id == sid))
                    .and_then(|u| u.email.as_ref().map(|e| e.to_string()))
                    .unwrap_or_else(|| email(mail, false));
                if state == EntryState::Managed && spot_user_id.is_none() {
                    continue;
                }
                ledger.users.insert(
                    format!("00u{id:02}").into(),
                    LedgerEntry {
                        email: entry_email,
                        spot_user_id,
                        tombstones,
                        role: [
                            None,
                            Some(Role::Viewer),
                            Some(Role::Editor),
                            Some(Role::Viewer),
                        ][role],
                        access: okta_spot_sync::access::ACCESS_MODEL,
                        origin: Origin::Created,
                        state,
                        updated_at: Utc::now(),
                    },
                );
            }
            let protected = protected
                .map(|p| Email::parse(&email(p, false)).unwrap())
                .into_iter()
                .collect();
            World {
                rows,
                spot: spot_users,
                ledger,
                protected,
            }
        })
}

fn open_limits(protected: &BTreeSet<Email>) -> GuardLimits {
    GuardLimits {
        recent_deletes: 0,
        max_deletes: usize::MAX,
        max_delete_percent: 100,
        allow_deletes: None,
        allow_empty_source: true,
        protected_emails: protected.clone(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn never_writes_to_a_spot_user_it_does_not_own(w in world()) {
        let snap = classify(w.rows.clone(), &rules());
        let p = plan(&snap, &SpotUsers::distinct(w.spot.clone()), &w.ledger, &options(&w.protected));
        let verdicts = guard(&p, &SpotUsers::distinct(w.spot.clone()), &w.ledger, &open_limits(&w.protected));
        let allowed = p.actions.iter().enumerate().filter(|(i, _)| verdicts.allows(*i));
        for (_, action) in allowed {
            if let Some(target) = action.deleted_spot_user() {
                prop_assert!(w.ledger.has_owned_spot_user(target), "deletes unowned {target}: {action:?}");
                let user = w.spot.iter().find(|u| u.user_id == *target).unwrap();
                prop_assert!(user.is_personal());
                prop_assert!(!user.email.as_ref().is_some_and(|e| w.protected.contains(e)));
            }
            if let Some(target) = action.spot_user_id() {
                if let Some(user) = w.spot.iter().find(|u| u.user_id == *target) {
                    prop_assert!(user.is_personal(), "touches non-personal {target}");
                }
            }
        }
    }

    /// Events mode's partial plan: whatever users an event named, nothing is planned for any
    /// other user, and no named user takes over (or deletes) what an unnamed user owns.
    #[test]
    fn a_partial_plan_acts_only_on_the_users_it_names(w in world(), pick in any::<u64>()) {
        let everyone: BTreeSet<OktaUserId> = w.rows.iter().map(|r| r.okta_user_id.clone())
            .chain(w.ledger.users.keys().cloned()).collect();
        let scope: BTreeSet<OktaUserId> = everyone.iter().enumerate()
            .filter(|(i, _)| pick >> (i % 64) & 1 == 1).map(|(_, id)| id.clone()).collect();
        let rows = w.rows.iter().filter(|r| scope.contains(&r.okta_user_id)).cloned().collect();
        let snap = classify(rows, &rules());
        let spot = SpotUsers::distinct(w.spot.clone());
        let p = plan_partial(&snap, &spot, &w.ledger, &options(&w.protected), &scope);
        prop_assert_eq!(p.partial, Some(scope.len()));
        let owner_in_scope = |target: &okta_spot_sync::model::SpotUserId| {
            w.ledger.users.iter().any(|(id, e)| {
                (e.spot_user_id.as_ref() == Some(target) || e.tombstones.contains(target))
                    && scope.contains(id)
            })
        };
        for action in &p.actions {
            prop_assert!(scope.contains(action.okta_user_id.as_str()), "outside the scope: {action:?}");
            if let Some(target) = action.deleted_spot_user() {
                prop_assert!(owner_in_scope(target), "deletes what an unnamed user owns: {action:?}");
            }
            if let Change::Adopt(adoption) = &action.change {
                if let Some(previous) = &adoption.previous_owner {
                    prop_assert!(scope.contains(previous), "takes over an unnamed user's Spot user: {action:?}");
                }
            }
        }
        for id in &p.forget {
            prop_assert!(scope.contains(id), "forgets {id}, outside the scope");
        }
    }

    /// A partial plan that names every user is the full plan.
    #[test]
    fn a_partial_plan_of_everyone_is_the_full_plan(w in world()) {
        let everyone: BTreeSet<OktaUserId> = w.rows.iter().map(|r| r.okta_user_id.clone())
            .chain(w.ledger.users.keys().cloned()).collect();
        let snap = classify(w.rows.clone(), &rules());
        let spot = SpotUsers::distinct(w.spot.clone());
        let full = plan(&snap, &spot, &w.ledger, &options(&w.protected));
        let mut partial = plan_partial(&snap, &spot, &w.ledger, &options(&w.protected), &everyone);
        partial.partial = None;
        prop_assert_eq!(full, partial);
    }

    #[test]
    fn a_second_plan_after_a_successful_apply_is_empty(w in world()) {
        let snap = classify(w.rows.clone(), &rules());
        let spot = FakeSpotDirectory::default();
        for u in &w.spot {
            spot.add(&u.user_id, u.email.as_ref().map(|e| e.as_str()).unwrap_or(""), u.kind);
        }
        let p = plan(&snap, &SpotUsers::distinct(w.spot.clone()), &w.ledger, &options(&w.protected));
        let writer = LedgerWriter::in_memory(w.ledger.clone());
        let roles = role_settings();
        let resolver = RoleResolver::new(&spot, &roles);
        let (outcomes, saved) = runtime().block_on(apply(&p, &Verdicts::allow_all(&p), &spot, &writer, &resolver, 3));
        saved.unwrap();
        prop_assert!(outcomes.all_applied(), "{:#?}\n{:#?}", p.actions, outcomes);
        let ledger = writer.into_inner();
        let again = plan(&snap, &SpotUsers::distinct(spot.snapshot()), &ledger, &options(&w.protected));
        prop_assert!(again.is_empty(), "first: {:#?}\nsecond: {:#?}", p.actions, again);
    }

    #[test]
    fn the_order_of_input_rows_does_not_change_the_plan(w in world(), seed in any::<u64>()) {
        let snap = classify(w.rows.clone(), &rules());
        let expected = plan(&snap, &SpotUsers::distinct(w.spot.clone()), &w.ledger, &options(&w.protected));
        let mut rows = w.rows.clone();
        let mut spot = w.spot.clone();
        let mut rng = seed;
        let mut next = || { rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (rng >> 33) as usize };
        for i in (1..rows.len()).rev() { let j = next() % (i + 1); rows.swap(i, j); }
        for i in (1..spot.len()).rev() { let j = next() % (i + 1); spot.swap(i, j); }
        let shuffled = plan(&classify(rows, &rules()), &SpotUsers::distinct(spot), &w.ledger, &options(&w.protected));
        prop_assert_eq!(expected, shuffled);
    }

    #[test]
    fn random_failures_then_a_clean_cycle_keep_every_invariant(
        w in world(),
        faults in prop::collection::btree_map(1u64..24, prop_oneof![Just(FakeFault::Refuse), Just(FakeFault::LandThenFail), Just(FakeFault::Ignore)], 0..8),
    ) {
        let rt = runtime();
        let snap = classify(w.rows.clone(), &rules());
        let spot = FakeSpotDirectory::default();
        for u in &w.spot {
            spot.add(&u.user_id, u.email.as_ref().map(|e| e.as_str()).unwrap_or(""), u.kind);
        }
        // A protected break-glass admin, as every real organization has: the last-personal-user
        // guard then never has to step in, and the property is about convergence.
        let mut w = w;
        spot.add("u-ffffffff", "owner@protected.example", SpotUserKind::Personal);
        w.protected.insert(Email::parse("owner@protected.example").unwrap());
        *spot.faults.lock().unwrap() = faults;
        let roles = role_settings();
        let writer = LedgerWriter::in_memory(w.ledger.clone());
        // A faulty cycle, then clean ones until nothing is left to do (at most two).
        for cycle in 0..3 {
            if cycle == 1 {
                spot.faults.lock().unwrap().clear();
            }
            let ledger = writer.snapshot();
            let current = SpotUsers::distinct(spot.snapshot());
            let p = plan(&snap, &current, &ledger, &options(&w.protected));
            let verdicts = guard(&p, &current, &ledger, &open_limits(&w.protected));
            let resolver = RoleResolver::new(&spot, &roles);
            let (outcomes, saved) = rt.block_on(apply(&p, &verdicts, &spot, &writer, &resolver, 3));
            saved.unwrap();
            if cycle == 1 {
                prop_assert!(
                    outcomes.all_applied(),
                    "a clean cycle failed: {:#?}\n{:#?}", p.actions, outcomes
                );
            }
        }
        let ledger = writer.snapshot();
        let current = SpotUsers::distinct(spot.snapshot());
        let again = plan(&snap, &current, &ledger, &options(&w.protected));
        prop_assert!(again.is_empty(), "did not converge: {:#?}", again.actions);

        // No leaver keeps a Spot user the tool ever owned (at the start, or created since), even
        // after a delete that answered success and did nothing: each such user still listed
        // belongs to an entitled (provisioned or held) Okta user.
        let entitled: BTreeSet<&str> = snap.provision.iter().map(|d| d.okta_user_id.as_str())
            .chain(snap.held.iter().chain(&again.held).map(|h| h.okta_user_id.as_str()))
            .collect();
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (okta_id, e) in w.ledger.users.iter().chain(ledger.users.iter().filter(|(_, e)| e.state != EntryState::Deleted)) {
            for id in e.spot_user_id.iter().chain(&e.tombstones) {
                owner.insert(id.as_str(), okta_id.as_str());
            }
        }
        for u in current.iter() {
            let Some(okta_id) = owner.get(u.user_id.as_str()) else { continue };
            let protected = u.email.as_ref().is_some_and(|e| w.protected.contains(e));
            prop_assert!(entitled.contains(okta_id) || protected || !u.is_personal(),
                "leaver {okta_id} kept Spot user {} ({:?})", u.user_id, u.email);
        }
        // Nothing duplicated.
        let mut seen = BTreeSet::new();
        for u in current.iter().filter(|u| u.is_personal()) {
            prop_assert!(seen.insert(u.email.clone()), "duplicated {:?}", u.email);
        }
        // Nothing deleted that it did not own, nor anything programmatic or protected.
        for u in &w.spot {
            let owned = w.ledger.has_owned_spot_user(&u.user_id)
                || w.ledger.users.values().any(|e| e.state == EntryState::Pending && Some(e.email.as_str()) == u.email.as_ref().map(|e| e.as_str()));
            let protected = u.email.as_ref().is_some_and(|e| w.protected.contains(e));
            if !owned || !u.is_personal() || protected {
                let still = current.iter().any(|c| c.user_id == u.user_id);
                // An unowned user may only vanish if it was adopted and later deleted.
                let adopted_then_gone = ledger.users.values().any(|e| e.state == EntryState::Deleted && Some(e.email.as_str()) == u.email.as_ref().map(|e| e.as_str()));
                prop_assert!(still || (adopted_then_gone && u.is_personal() && !protected), "{} was deleted", u.user_id);
            }
        }
        // Everyone provisioned exists and is managed with the right Spot user.
        for d in &snap.provision {
            if w.protected.contains(&d.email) || again.held.iter().any(|h| h.okta_user_id == d.okta_user_id) {
                continue;
            }
            let entry = ledger.users.get(&d.okta_user_id);
            prop_assert!(entry.is_some_and(|e| e.state == EntryState::Managed), "{} not managed", d.okta_user_id);
            let id = entry.unwrap().spot_user_id.clone().unwrap();
            let user = current.iter().find(|u| u.user_id == id);
            prop_assert!(user.is_some_and(|u| u.email.as_ref() == Some(&d.email)), "{} not in Spot as {}", d.email, id);
        }
    }
}

/// 1,000 cases by default; `PROPTEST_CASES` raises it for a deeper run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
