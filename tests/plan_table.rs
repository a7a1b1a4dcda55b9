//! Unit tests of the pure core, one per row of the action table (README "What it does") and
//! per guard.

use std::collections::BTreeSet;

use chrono::Utc;
use okta_spot_sync::apply::Outcomes;
use okta_spot_sync::guard::{guard, GuardLimits, GuardTrip, Verdicts};
use okta_spot_sync::ledger::{EntryState, Ledger, LedgerEntry, Origin};
use okta_spot_sync::model::{
    AppUserRow, Email, Role, SpotUser, SpotUserId, SpotUserKind, SpotUsers,
};
use okta_spot_sync::okta::classify::{classify, ClassifyRules};
use okta_spot_sync::plan::{
    plan, Action, ActionKind, ActionStatus, Adoption, Change, NewUser, Plan, PlanOptions, Replace,
};
use okta_spot_sync::report::{exit, Mode, Report};

fn rules() -> ClassifyRules {
    ClassifyRules {
        provision_statuses: [
            "ACTIVE",
            "PROVISIONED",
            "PASSWORD_EXPIRED",
            "RECOVERY",
            "LOCKED_OUT",
        ]
        .map(String::from)
        .to_vec(),
        hold_statuses: vec!["SUSPENDED".into(), "STAGED".into()],
        default_role: Role::Viewer,
    }
}

fn options() -> PlanOptions {
    PlanOptions {
        adopt_existing: true,
        update_roles: true,
        protected_emails: BTreeSet::from([Email::parse("owner@example.com").unwrap()]),
        spot_roles: [
            (Role::Viewer, "viewer".to_string()),
            (Role::Editor, "admin".to_string()),
        ]
        .into(),
    }
}

fn limits() -> GuardLimits {
    GuardLimits {
        recent_deletes: 0,
        max_deletes: 10,
        max_delete_percent: 20,
        allow_deletes: None,
        allow_empty_source: false,
        protected_emails: options().protected_emails,
    }
}

fn row(id: &str, email: &str, status: &str, role: Option<&str>) -> AppUserRow {
    AppUserRow {
        okta_user_id: id.into(),
        scope: Some("USER".into()),
        app_user_status: Some("ACTIVE".into()),
        user_status: Some(status.into()),
        email: Some(email.into()),
        first_name: Some("Ann".into()),
        last_name: Some("Lee".into()),
        role: role.map(Into::into),
        malformed: None,
    }
}

fn spot(id: &str, email: &str) -> SpotUser {
    SpotUser {
        user_id: id.into(),
        email: Email::parse(email),
        username: email.into(),
        kind: SpotUserKind::Personal,
    }
}

fn programmatic(id: &str) -> SpotUser {
    SpotUser {
        user_id: id.into(),
        email: None,
        username: "ci-bot".into(),
        kind: SpotUserKind::Programmatic,
    }
}

fn managed(
    ledger: &mut Ledger,
    okta: &str,
    email: &str,
    spot_id: Option<&str>,
    role: Role,
    state: EntryState,
) {
    ledger.users.insert(
        okta.into(),
        LedgerEntry {
            email: email.into(),
            spot_user_id: spot_id.map(SpotUserId::from),
            tombstones: Vec::new(),
            role: Some(role),
            access: okta_spot_sync::access::ACCESS_MODEL,
            origin: Origin::Created,
            state,
            updated_at: Utc::now(),
        },
    );
}

/// Spot always has the protected owner and a programmatic user, as in real organizations.
fn base_spot() -> Vec<SpotUser> {
    vec![
        spot("u-00000001", "owner@example.com"),
        programmatic("pu-00000001"),
    ]
}

/// A plan and the guards' verdicts on it.
#[derive(Debug)]
struct Checked {
    plan: Plan,
    verdicts: Verdicts,
    blocked_by: Vec<GuardTrip>,
}

impl std::ops::Deref for Checked {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.plan
    }
}

impl Checked {
    fn status(&self, i: usize) -> ActionStatus {
        match self.verdicts.blocked(i) {
            Some(_) => ActionStatus::Blocked,
            None => ActionStatus::Planned,
        }
    }

    fn statuses(&self) -> Vec<ActionStatus> {
        (0..self.plan.actions.len())
            .map(|i| self.status(i))
            .collect()
    }

    /// The index of the first action of `kind`.
    fn find(&self, kind: ActionKind) -> usize {
        self.plan
            .actions
            .iter()
            .position(|a| a.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind:?} in {:?}", self.plan.actions))
    }

    fn report(self, mode: Mode) -> Report {
        let outcomes = Outcomes::none(&self.plan);
        Report::new(mode, self.plan, self.verdicts, &outcomes)
    }
}

fn run(
    rows: &[AppUserRow],
    spot_users: &[SpotUser],
    ledger: &Ledger,
    limits: &GuardLimits,
) -> Checked {
    let snap = classify(rows.to_vec(), &rules());
    let spot_users = SpotUsers::distinct(spot_users.to_vec());
    let plan = plan(&snap, &spot_users, ledger, &options());
    let verdicts = guard(&plan, &spot_users, ledger, limits);
    Checked {
        blocked_by: verdicts.trips().to_vec(),
        plan,
        verdicts,
    }
}

fn kinds(p: &Plan) -> Vec<(ActionKind, String)> {
    p.actions
        .iter()
        .map(|a| (a.kind(), a.email.clone()))
        .collect()
}

fn new_user(a: &Action) -> &NewUser {
    match &a.change {
        Change::Create(user) | Change::Recreate { user, .. } => user,
        other => panic!("not a create: {other:?}"),
    }
}

fn replaces(a: &Action) -> Option<&Replace> {
    match &a.change {
        Change::Recreate { replaces, .. } => replaces.as_ref(),
        other => panic!("not a recreate: {other:?}"),
    }
}

fn adoption(a: &Action) -> &Adoption {
    match &a.change {
        Change::Adopt(adoption) => adoption,
        other => panic!("not an adoption: {other:?}"),
    }
}

#[test]
fn create_when_assigned_and_missing_in_spot() {
    let p = run(
        &[row("00u1", "Ann@Example.com", "ACTIVE", Some("editor"))],
        &base_spot(),
        &Ledger::default(),
        &limits(),
    );
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::Create, "ann@example.com".into())]
    );
    assert_eq!(p.actions[0].role(), Some(Role::Editor));
    assert_eq!(new_user(&p.actions[0]).email_display, "Ann@Example.com");
    assert_eq!(p.actions[0].reason, "assigned in Okta, missing in Spot");
}

#[test]
fn delete_when_unassigned_or_deactivated() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    spot_users.push(spot("u-00000003", "bob@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        Some("u-00000002"),
        Role::Viewer,
        EntryState::Managed,
    );
    managed(
        &mut ledger,
        "00u2",
        "bob@example.com",
        Some("u-00000003"),
        Role::Viewer,
        EntryState::Managed,
    );
    // 00u1 is not listed at all (unassigned); 00u2 is listed but deactivated.
    let p = run(
        &[row("00u2", "bob@example.com", "DEPROVISIONED", None)],
        &spot_users,
        &ledger,
        &limits(),
    );
    assert_eq!(
        kinds(&p),
        vec![
            (ActionKind::Delete, "ann@example.com".into()),
            (ActionKind::Delete, "bob@example.com".into())
        ]
    );
    assert_eq!(p.actions[0].reason, "no longer assigned to the app in Okta");
    assert!(
        p.actions[1].reason.contains("status DEPROVISIONED"),
        "{}",
        p.actions[1].reason
    );
    assert!(p.statuses().iter().all(|s| *s == ActionStatus::Planned));
}

#[test]
fn recreate_when_a_deleted_user_is_reactivated() {
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        None,
        Role::Viewer,
        EntryState::Deleted,
    );
    let p = run(
        &[row("00u1", "ann@example.com", "ACTIVE", None)],
        &base_spot(),
        &ledger,
        &limits(),
    );
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::Recreate, "ann@example.com".into())]
    );
    assert_eq!(replaces(&p.actions[0]), None);
}

#[test]
fn recreate_when_the_email_changed() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        Some("u-00000002"),
        Role::Viewer,
        EntryState::Managed,
    );
    let p = run(
        &[row("00u1", "ann.lee@example.com", "ACTIVE", None)],
        &spot_users,
        &ledger,
        &limits(),
    );
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::Recreate, "ann.lee@example.com".into())]
    );
    // Create first, delete after: if Spot refuses the new email, Ann keeps her user.
    assert_eq!(
        replaces(&p.actions[0]),
        Some(&Replace::DeleteAfter("u-00000002".into()))
    );
}

#[test]
fn adopt_an_existing_spot_user_case_insensitively() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ANN@example.com"));
    let p = run(
        &[row("00u1", "ann@EXAMPLE.com", "ACTIVE", None)],
        &spot_users,
        &Ledger::default(),
        &limits(),
    );
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::Adopt, "ann@example.com".into())]
    );
    assert_eq!(
        p.actions[0].spot_user_id().map(|id| id.as_str()),
        Some("u-00000002")
    );
}

#[test]
fn update_role_when_the_spot_role_is_the_same_and_recreate_when_it_is_not() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        Some("u-00000002"),
        Role::Viewer,
        EntryState::Managed,
    );
    let p = run(
        &[row("00u1", "ann@example.com", "ACTIVE", Some("EDITOR"))],
        &spot_users,
        &ledger,
        &limits(),
    );
    // viewer (spot role viewer) -> editor (spot role admin): cannot be done in place.
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::Recreate, "ann@example.com".into())]
    );

    let mut same = options();
    same.spot_roles.insert(Role::Editor, "viewer".into());
    let snap = classify(
        vec![row("00u1", "ann@example.com", "ACTIVE", Some("editor"))],
        &rules(),
    );
    let p = plan(
        &snap,
        &SpotUsers::distinct(spot_users.clone()),
        &ledger,
        &same,
    );
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::UpdateRole, "ann@example.com".into())]
    );
    assert_eq!(p.actions[0].role(), Some(Role::Editor));
}

#[test]
fn nothing_to_do_when_in_line() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        Some("u-00000002"),
        Role::Viewer,
        EntryState::Managed,
    );
    let p = run(
        &[row("00u1", "ann@example.com", "ACTIVE", Some("viewer"))],
        &spot_users,
        &ledger,
        &limits(),
    );
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.report(Mode::Plan).exit_code(), exit::OK);
}

#[test]
fn held_users_keep_their_spot_user_and_get_none_created() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        Some("u-00000002"),
        Role::Viewer,
        EntryState::Managed,
    );
    let rows = [
        row("00u1", "ann@example.com", "SUSPENDED", None),
        row("00u2", "new@example.com", "STAGED", None),
        row("00u3", "bad-email", "ACTIVE", None),
        row("00u4", "role@example.com", "ACTIVE", Some("superuser")),
    ];
    let p = run(&rows, &spot_users, &ledger, &limits());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let reasons: Vec<&str> = p.held.iter().map(|h| h.reason.as_str()).collect();
    assert_eq!(reasons[0], "status SUSPENDED");
    assert_eq!(reasons[1], "status STAGED");
    assert!(reasons[2].starts_with("invalid email"));
    assert!(reasons[3].starts_with("unknown role"));
}

#[test]
fn unmanaged_programmatic_and_protected_users_are_never_touched() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000009", "stranger@example.com"));
    // The protected owner is assigned in Okta and programmatic users exist: nothing happens.
    let p = run(
        &[row("00u1", "owner@example.com", "ACTIVE", None)],
        &spot_users,
        &Ledger::default(),
        &limits(),
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(p.held[0].reason.contains("protected"));
}

#[test]
fn empty_source_blocks_deletes_until_allowed() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        Some("u-00000002"),
        Role::Viewer,
        EntryState::Managed,
    );
    let p = run(&[], &spot_users, &ledger, &limits());
    assert_eq!(p.status(0), ActionStatus::Blocked);
    assert_eq!(p.blocked_by[0].guard, "empty_source");
    assert_eq!(p.report(Mode::Apply).exit_code(), exit::BLOCKED);

    let mut allow = limits();
    allow.allow_deletes = Some(100);
    assert_eq!(
        run(&[], &spot_users, &ledger, &allow).status(0),
        ActionStatus::Blocked,
        "--allow-deletes does not lift it"
    );
    allow.allow_empty_source = true;
    assert_eq!(
        run(&[], &spot_users, &ledger, &allow).status(0),
        ActionStatus::Planned
    );
}

#[test]
fn max_deletes_blocks_deletes_and_recreates_but_not_creates() {
    let mut spot_users = base_spot();
    let mut ledger = Ledger::default();
    for i in 0..12 {
        let email = format!("u{i}@example.com");
        let id = format!("u-1000{i:04}");
        spot_users.push(spot(&id, &email));
        managed(
            &mut ledger,
            &format!("00u{i}"),
            &email,
            Some(&id),
            Role::Viewer,
            EntryState::Managed,
        );
    }
    managed(
        &mut ledger,
        "00uR",
        "back@example.com",
        None,
        Role::Viewer,
        EntryState::Deleted,
    );
    let rows = [
        row("00uN", "new@example.com", "ACTIVE", None),
        row("00uR", "back@example.com", "ACTIVE", None),
    ];
    let p = run(&rows, &spot_users, &ledger, &limits());
    assert_eq!(p.blocked_by[0].guard, "max_deletes");
    for (i, a) in p.actions.iter().enumerate() {
        let expected = if a.kind() == ActionKind::Create {
            ActionStatus::Planned
        } else {
            ActionStatus::Blocked
        };
        assert_eq!(p.status(i), expected, "{a:?}");
    }
    assert!(p.blocked_by[0].message.contains("--allow-deletes 12"));

    let mut allow = limits();
    allow.allow_deletes = Some(12);
    let p = run(&rows, &spot_users, &ledger, &allow);
    assert!(p.blocked_by.is_empty());
    allow.allow_deletes = Some(11);
    assert_eq!(
        run(&rows, &spot_users, &ledger, &allow).blocked_by[0].guard,
        "max_deletes"
    );
}

/// The delete limits hold per rolling hour: deletes already applied in the hour count with the
/// plan's, and `--allow-deletes` still lifts them for one run.
#[test]
fn the_delete_limit_counts_the_deletes_of_the_last_hour() {
    let mut spot_users = base_spot();
    let mut ledger = Ledger::default();
    for i in 0..3 {
        let email = format!("u{i}@example.com");
        let id = format!("u-1000{i:04}");
        spot_users.push(spot(&id, &email));
        managed(
            &mut ledger,
            &format!("00u{i}"),
            &email,
            Some(&id),
            Role::Viewer,
            EntryState::Managed,
        );
    }
    // Okta lists one of the three: two deletes.
    let rows = [row("00u0", "u0@example.com", "ACTIVE", None)];
    let mut drip = limits();
    drip.recent_deletes = 8;
    assert!(
        run(&rows, &spot_users, &ledger, &drip)
            .blocked_by
            .is_empty(),
        "8 + 2 = 10 is allowed"
    );
    drip.recent_deletes = 9;
    let p = run(&rows, &spot_users, &ledger, &drip);
    assert_eq!(p.blocked_by[0].guard, "max_deletes");
    let message = &p.blocked_by[0].message;
    assert!(
        message.contains("9 applied in the last hour") && message.contains("per rolling hour"),
        "{message}"
    );
    drip.allow_deletes = Some(2);
    assert!(run(&rows, &spot_users, &ledger, &drip)
        .blocked_by
        .is_empty());
}

#[test]
fn max_delete_percent_applies_above_one_hundred_managed_users() {
    let mut spot_users = base_spot();
    let mut ledger = Ledger::default();
    let mut rows = Vec::new();
    for i in 0..150 {
        let email = format!("u{i}@example.com");
        let id = format!("u-2000{i:04}");
        spot_users.push(spot(&id, &email));
        managed(
            &mut ledger,
            &format!("00u{i:03}"),
            &email,
            Some(&id),
            Role::Viewer,
            EntryState::Managed,
        );
        if i >= 9 {
            rows.push(row(&format!("00u{i:03}"), &email, "ACTIVE", None));
        }
    }
    let mut high = limits();
    high.max_deletes = 1000;
    high.max_delete_percent = 5; // 9 of 150 = 6 %
    let p = run(&rows, &spot_users, &ledger, &high);
    assert_eq!(p.blocked_by[0].guard, "max_delete_percent");
    high.max_delete_percent = 6;
    assert!(run(&rows, &spot_users, &ledger, &high)
        .blocked_by
        .is_empty());
}

#[test]
fn the_last_personal_user_is_never_deleted() {
    // Also when Spot lists it twice: the guard counts users, not list entries.
    for listed in [1, 2, 3] {
        let mut spot_users = vec![programmatic("pu-00000001")];
        spot_users.extend((0..listed).map(|_| spot("u-00000002", "ann@example.com")));
        last_personal_user_is_kept(&spot_users);
    }
}

fn last_personal_user_is_kept(spot_users: &[SpotUser]) {
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        Some("u-00000002"),
        Role::Viewer,
        EntryState::Managed,
    );
    let p = run(
        &[row("00u2", "bob@example.com", "DEPROVISIONED", None)],
        spot_users,
        &ledger,
        &limits(),
    );
    assert_eq!(p.spot_users, 2, "distinct users");
    let delete = p.find(ActionKind::Delete);
    assert_eq!(p.status(delete), ActionStatus::Blocked);
    assert_eq!(p.blocked_by[0].guard, "last_personal_user");
}

/// Two personal users: a leaver (a plain delete) and a person whose email changed (a
/// recreate: the new Spot user first, then the old one deleted). Holding the leaver's delete
/// keeps an existing personal user, so the recreate goes ahead; without it the person never
/// got the new user while the leaver stayed (found by the hostile model: a leaver who is
/// Spot's last admin, whose delete Spot refuses).
#[test]
fn the_last_personal_user_guard_holds_the_plain_deletes_before_a_recreate() {
    // Only Ann and Bob are personal users.
    let spot_users = vec![
        programmatic("pu-00000001"),
        spot("u-00000002", "ann@example.com"),
        spot("u-00000003", "bob@example.com"),
    ];
    let mut ledger = Ledger::default();
    for (okta, email, spot_id) in [
        ("00u1", "ann@example.com", "u-00000002"),
        ("00u2", "bob@example.com", "u-00000003"),
    ] {
        managed(
            &mut ledger,
            okta,
            email,
            Some(spot_id),
            Role::Viewer,
            EntryState::Managed,
        );
    }
    let rows = [
        row("00u1", "ann.lee@example.com", "ACTIVE", None),
        row("00u2", "bob@example.com", "DEPROVISIONED", None),
    ];
    let p = run(&rows, &spot_users, &ledger, &limits());
    assert_eq!(p.blocked_by.len(), 1, "{:?}", p.blocked_by);
    assert_eq!(p.blocked_by[0].guard, "last_personal_user");
    assert_eq!(
        p.status(p.find(ActionKind::Recreate)),
        ActionStatus::Planned,
        "the recreate goes ahead"
    );
    assert_eq!(p.status(p.find(ActionKind::Delete)), ActionStatus::Blocked);

    // Recreates alone would replace every personal user: they are held too.
    let rows = [
        row("00u1", "ann.lee@example.com", "ACTIVE", None),
        row("00u2", "bob.ray@example.com", "ACTIVE", None),
    ];
    let p = run(&rows, &spot_users, &ledger, &limits());
    assert_eq!(p.blocked_by[0].guard, "last_personal_user");
    assert_eq!(
        p.statuses(),
        vec![ActionStatus::Blocked, ActionStatus::Blocked],
        "{:?}",
        kinds(&p)
    );
}

#[test]
fn a_crash_between_create_and_record_is_completed_not_duplicated() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        None,
        Role::Viewer,
        EntryState::Pending,
    );
    let p = run(
        &[row("00u1", "ann@example.com", "ACTIVE", None)],
        &spot_users,
        &ledger,
        &limits(),
    );
    assert_eq!(
        kinds(&p),
        vec![(ActionKind::Adopt, "ann@example.com".into())]
    );
    assert!(adoption(&p.actions[0]).apply_role_mapping);
}

#[test]
fn group_and_direct_rows_make_one_user() {
    let mut group = row("00u1", "ann@example.com", "ACTIVE", None);
    group.scope = Some("GROUP".into());
    let p = run(
        &[row("00u1", "ann@example.com", "ACTIVE", None), group],
        &base_spot(),
        &Ledger::default(),
        &limits(),
    );
    assert_eq!(p.okta_users, 1);
    assert_eq!(p.actions.len(), 1);
}

/// A Spot user the tool deleted (the DELETE answered success and did nothing, or a list missed
/// it) stays in the ledger as a tombstone, and what happens when Spot lists it again depends
/// on its Okta user: gone → deleted again; held → kept; back with the same email → taken back
/// (even without `sync.adopt_existing`: it was ours); back with another email → the new user is
/// created first and the old one deleted after; taken over by another Okta user → theirs.
#[test]
fn a_tombstone_spot_still_lists_is_decided_by_its_okta_user() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "ann@example.com",
        None,
        Role::Viewer,
        EntryState::Deleted,
    );
    ledger.users.get_mut("00u1").unwrap().tombstones = vec!["u-00000002".into()];
    let other = row("00u9", "zed@example.com", "ACTIVE", None);

    // Gone (unassigned, or deprovisioned): deleted again.
    for rows in [
        vec![other.clone()],
        vec![
            other.clone(),
            row("00u1", "ann@example.com", "DEPROVISIONED", None),
        ],
    ] {
        let p = run(&rows, &spot_users, &ledger, &limits());
        let i = p.find(ActionKind::Delete);
        let delete = &p.actions[i];
        assert_eq!(delete.okta_user_id, "00u1");
        assert_eq!(
            delete.spot_user_id().map(|id| id.as_str()),
            Some("u-00000002")
        );
        assert_eq!(p.status(i), ActionStatus::Planned);
    }

    // Held: kept.
    let p = run(
        &[
            other.clone(),
            row("00u1", "ann@example.com", "SUSPENDED", None),
        ],
        &spot_users,
        &ledger,
        &limits(),
    );
    assert!(
        p.actions.iter().all(|a| a.okta_user_id != "00u1"),
        "{:?}",
        p.actions
    );

    // Back with the same email: taken back, even with sync.adopt_existing = false.
    let snap = classify(
        vec![
            other.clone(),
            row("00u1", "ann@example.com", "ACTIVE", None),
        ],
        &rules(),
    );
    let no_adopt = PlanOptions {
        adopt_existing: false,
        ..options()
    };
    let p = plan(
        &snap,
        &SpotUsers::distinct(spot_users.clone()),
        &ledger,
        &no_adopt,
    );
    let ann: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.okta_user_id == "00u1")
        .collect();
    assert_eq!(ann.len(), 1, "{ann:?}");
    assert_eq!(ann[0].kind(), ActionKind::Adopt);
    assert_eq!(
        ann[0].spot_user_id().map(|id| id.as_str()),
        Some("u-00000002")
    );

    // Back with another email: create first, then delete the old user.
    let p = run(
        &[
            other.clone(),
            row("00u1", "ann.lee@example.com", "ACTIVE", None),
        ],
        &spot_users,
        &ledger,
        &limits(),
    );
    let ann: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.okta_user_id == "00u1")
        .collect();
    assert_eq!(ann.len(), 1, "{ann:?}");
    assert_eq!(ann[0].kind(), ActionKind::Recreate);
    assert_eq!(
        replaces(ann[0]),
        Some(&Replace::DeleteAfter("u-00000002".into()))
    );

    // Another Okta user now has the email: the Spot user passes to them, never deleted.
    let p = run(
        &[other, row("00u2", "ann@example.com", "ACTIVE", None)],
        &spot_users,
        &ledger,
        &limits(),
    );
    assert!(p.actions.iter().all(|a| !a.deletes()), "{:?}", p.actions);
    let adopt = &p.actions[p.find(ActionKind::Adopt)];
    assert_eq!(adopt.okta_user_id, "00u2");
    assert_eq!(adoption(adopt).previous_owner.as_deref(), Some("00u1"));
}

/// A tombstone that is protected (or programmatic) is never deleted: an Okta user returning
/// with another email gets a plain create, not one tied to a delete the guard would block
/// (found by the property test at 5,000 cases).
#[test]
fn a_protected_tombstone_is_kept_and_does_not_hold_up_a_returning_user() {
    let mut spot_users = base_spot();
    spot_users.push(spot("u-00000002", "ann@example.com"));
    let mut ledger = Ledger::default();
    managed(
        &mut ledger,
        "00u1",
        "owner@example.com",
        None,
        Role::Viewer,
        EntryState::Deleted,
    );
    // The owner's user (protected) was once this Okta user's.
    ledger.users.get_mut("00u1").unwrap().tombstones = vec!["u-00000001".into()];
    let p = run(
        &[row("00u1", "ann.lee@example.com", "ACTIVE", None)],
        &spot_users,
        &ledger,
        &limits(),
    );
    assert_eq!(p.actions.len(), 1, "{:?}", p.actions);
    assert_eq!(p.actions[0].kind(), ActionKind::Recreate);
    assert_eq!(p.actions[0].deleted_spot_user(), None);
    assert_eq!(p.status(0), ActionStatus::Planned);
    assert!(p.blocked_by.is_empty(), "{:?}", p.blocked_by);
}
