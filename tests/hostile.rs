//! The hostile-API model test: the real reconciler (`cycle::run_cycle` with the real HTTP
//! clients) against emulator worlds where Spot lists a user twice, leaves a user out of one
//! list, lists new users late and answers a DELETE with 200 without deleting, and Okta shows
//! undocumented user statuses and two rows of one user id with conflicting emails.
//!
//! What the tool did is taken from the emulators (the Spot request log and user state), never
//! from the tool's ledger. Invariants:
//! (a) no Spot user it never owned — strangers, the programmatic user, and the owner while it is
//!     not an Okta user — ever gets a DELETE or a policy-mapping PUT;
//! (b) after the faults stop and a few cycles, every assigned ACTIVE Okta user has exactly one
//!     Spot user with its email;
//! (c) then no Spot user the tool created is left for an email no provisionable user has;
//! (d) a cycle never sends DELETEs to every personal user of the organization (unless it
//!     created a new one first), and the organization always keeps a personal user;
//! (e) an assigned Okta user with an undocumented (or empty) status, or with rows of
//!     conflicting emails, is held: its Spot user gets no DELETE and none is created for it.
//! (a), (d) and (e) are checked after every cycle, faulty phase included. The model runs three
//! ways: with honest APIs (ordinary Okta changes only: this checks the harness, and passes
//! with or without the fixes the others need), with Spot quirks only, and with everything. One small deterministic
//! test per fault class follows the model.

mod util;

use std::collections::{BTreeMap, BTreeSet};

use okta_spot_sim::{OktaSim, SpotSim};
use okta_spot_sync::config;
use okta_spot_sync::cycle::{run_cycle_controlled, CycleControl, CycleOptions};
use okta_spot_sync::events::{self, decide::start_point, Poll};
use okta_spot_sync::ledger::EventsState;
use okta_spot_sync::ledger::LedgerStore;
use okta_spot_sync::okta::client::OktaClient;
use okta_spot_sync::report::{Mode, Report};
use okta_spot_sync::spot::client::SpotClient;
use proptest::prelude::*;
use serde_json::{json, Value};
use util::Env;

const OWNER: &str = "owner@example.com";
const GROUP: &str = "Spot Users";
/// The user statuses Okta documents; anything else (empty included) must be held.
const DOCUMENTED_STATUSES: [&str; 8] = [
    "ACTIVE",
    "PROVISIONED",
    "STAGED",
    "RECOVERY",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "SUSPENDED",
    "DEPROVISIONED",
];

/// A harness around one emulator world: the real cycle, plus what the test saw the tool do.
struct Hostile {
    env: Env,
    settings: config::Settings,
    store: LedgerStore,
    /// Spot user ids the tool must never write to.
    untouchable: BTreeSet<String>,
    /// Spot user ids that appeared during a cycle: the tool created them.
    created: BTreeSet<String>,
    /// The Okta users with a status the test made odd, and row-email overrides to undo.
    odd_status: BTreeSet<String>,
    overridden_rows: BTreeSet<String>,
    /// What went wrong so far.
    violations: Vec<String>,
    cycles: usize,
    /// Full cycles an events poll asked for.
    full_cycles: usize,
}

impl Hostile {
    /// Emulators with the owner (`owner@example.com`, Spot admin, NOT protected: the last
    /// personal user guard is what must keep it) and the programmatic `ci-bot`.
    async fn new() -> Hostile {
        let env = Env::new().await;
        let loaded = config::load_from_env_vars(
            &env.config,
            [
                ("OKTA_SPOT_SYNC__SYNC__MAX_DELETES", "1000"),
                ("OKTA_SPOT_SYNC__SYNC__MAX_DELETE_PERCENT", "100"),
                (
                    "OKTA_SPOT_SYNC__SYNC__PROTECTED_EMAILS",
                    "break-glass@example.com",
                ),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("config loads");
        let store = LedgerStore::new(&env.state);
        env.spot().set_request_log(true);
        let untouchable = env
            .spot()
            .users()
            .into_iter()
            .filter(|u| u.kind != "personal")
            .map(|u| u.user_id)
            .collect();
        Hostile {
            env,
            settings: loaded.settings,
            store,
            untouchable,
            created: BTreeSet::new(),
            odd_status: BTreeSet::new(),
            overridden_rows: BTreeSet::new(),
            violations: Vec::new(),
            cycles: 0,
            full_cycles: 0,
        }
    }

    fn okta(&self) -> &OktaSim {
        self.env.okta()
    }

    fn spot(&self) -> &SpotSim {
        self.env.spot()
    }

    fn owner_spot_id(&self) -> String {
        self.spot().user_by_email(OWNER).expect("owner").user_id
    }

    /// A Spot user that no Okta user will ever match: the tool must never write to it.
    fn stranger(&mut self, email: &str) -> String {
        let id = self.spot().add_user(email, "Stan", "Ger", "viewer");
        self.untouchable.insert(id.clone());
        id
    }

    fn personal_ids(&self) -> BTreeSet<String> {
        self.spot()
            .users()
            .into_iter()
            .filter(|u| u.kind == "personal")
            .map(|u| u.user_id)
            .collect()
    }

    /// One reconcile cycle, then (a) and (d) on what it sent.
    async fn cycle(&mut self, label: &str) -> Result<Report, String> {
        self.full_cycle(label, CycleControl::default()).await
    }

    /// A cycle with `control` (events mode's position to record).
    async fn full_cycle(&mut self, label: &str, control: CycleControl) -> Result<Report, String> {
        let settings = self.settings.clone();
        let store = self.store.clone();
        let run = async move {
            let okta =
                OktaClient::new(&settings.okta, &settings.http).map_err(|e| e.to_string())?;
            let spot =
                SpotClient::new(&settings.spot, &settings.http).map_err(|e| e.to_string())?;
            run_cycle_controlled(
                &settings,
                &okta,
                &spot,
                &store,
                Mode::Apply,
                // Worlds where every Okta user is gone are part of the model; the empty-source
                // guard (an operator's confirmation) is not what this test is about.
                &CycleOptions {
                    allow_empty_source: true,
                    ..CycleOptions::default()
                },
                &control,
            )
            .await
            .map_err(|e| e.to_string())
        };
        self.checked(label, run).await
    }

    /// One events poll from `state` (events mode's batch, with the real clients), checked like
    /// a cycle; a poll that asks for a full cycle gets one. The events state to poll from next.
    async fn poll(&mut self, label: &str, state: EventsState) -> EventsState {
        let settings = self.settings.clone();
        let store = self.store.clone();
        let from = state.clone();
        let run = async move {
            let okta =
                OktaClient::new(&settings.okta, &settings.http).map_err(|e| e.to_string())?;
            let spot =
                SpotClient::new(&settings.spot, &settings.http).map_err(|e| e.to_string())?;
            let control = CycleControl::default();
            events::poll(&settings, &okta, &spot, &store, &from, &control)
                .await
                .map_err(|e| e.to_string())
        };
        match self.checked(label, run).await {
            Ok(outcome) => match outcome.poll {
                Poll::FullCycle { resume, .. } => {
                    let next = resume.unwrap_or_else(|| EventsState {
                        cursor: Some(start_point(chrono::Utc::now())),
                        ..EventsState::default()
                    });
                    self.full_cycles += 1;
                    let control = CycleControl {
                        commit_events: Some(next),
                        ..CycleControl::default()
                    };
                    let recorded = control.events_recorded.clone();
                    match self
                        .full_cycle(&format!("{label}: full cycle"), control)
                        .await
                    {
                        Ok(_) => recorded.lock().unwrap().take().expect("recorded"),
                        Err(_) => outcome.state,
                    }
                }
                _ => outcome.state,
            },
            // The same events are read again next time.
            Err(_) => state,
        }
    }

    /// Runs `run` (a cycle or an events poll) and checks the invariants on what it did.
    async fn checked<T>(
        &mut self,
        label: &str,
        run: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        self.cycles += 1;
        let held = self.held_emails().await;
        let held_ids: BTreeSet<String> = held
            .iter()
            .filter_map(|e| self.spot().user_by_email(e))
            .map(|u| u.user_id)
            .collect();
        let before = self.personal_ids();
        let all_before: BTreeSet<String> =
            self.spot().users().into_iter().map(|u| u.user_id).collect();
        self.spot().clear_request_log();
        let result = run.await;
        for u in self.spot().users() {
            if !all_before.contains(&u.user_id) {
                if held.contains(&u.email.to_ascii_lowercase()) {
                    self.violations.push(format!(
                        "(e) cycle {} ({label}): created Spot user {} for {}, an Okta user that must be held",
                        self.cycles, u.user_id, u.email
                    ));
                }
                self.created.insert(u.user_id);
            }
        }
        let log = self.spot().request_log();
        let mut deleted = BTreeSet::new();
        for r in &log {
            if r.method != "DELETE" && r.method != "PUT" {
                continue;
            }
            let target = r.path.split('/').nth(3).unwrap_or("").to_string();
            if self.untouchable.contains(&target) {
                self.violations.push(format!(
                    "(a) cycle {} ({label}): {} {} → {} hit a Spot user the tool never owned",
                    self.cycles, r.method, r.path, r.status
                ));
            }
            if r.method == "DELETE" && held_ids.contains(&target) {
                self.violations.push(format!(
                    "(e) cycle {} ({label}): DELETE {} → {} hit the Spot user of an Okta user that must be held ({held:?})",
                    self.cycles, r.path, r.status
                ));
            }
            if r.method == "DELETE" {
                deleted.insert(target);
            }
        }
        // A DELETE to every personal user is fine only when a new one exists (a recreate of
        // the last one that created first); the emulator refusing the last admin's delete does
        // not excuse sending it.
        let new_personal = self.personal_ids().difference(&before).count();
        if !before.is_empty() && before.is_subset(&deleted) && new_personal == 0 {
            self.violations.push(format!(
                "(d) cycle {} ({label}): DELETE sent to every personal user of the organization {before:?}",
                self.cycles
            ));
        }
        if self.personal_ids().is_empty() {
            self.violations.push(format!(
                "(d) cycle {} ({label}): the organization has no personal user left",
                self.cycles
            ));
        }
        result
    }

    /// The app's rows with the embedded user, from the Okta emulator's own API.
    async fn okta_rows(&self) -> Vec<Value> {
        let o = self.okta();
        reqwest::Client::new()
            .get(format!(
                "{}/api/v1/apps/{}/users?limit=500&expand=user",
                o.url(),
                o.app_id()
            ))
            .header("Authorization", format!("SSWS {}", o.token()))
            .send()
            .await
            .expect("okta list")
            .json()
            .await
            .expect("okta rows")
    }

    /// Emails of the assigned Okta users that must be held: an embedded status Okta does not
    /// document (empty included), or rows of one user id with different emails.
    async fn held_emails(&self) -> BTreeSet<String> {
        let mut by_id: BTreeMap<String, (BTreeSet<String>, bool)> = BTreeMap::new();
        for r in self.okta_rows().await {
            let user = &r["_embedded"]["user"];
            let e = by_id
                .entry(r["id"].as_str().unwrap_or("").to_string())
                .or_default();
            if let Some(email) = user["profile"]["email"].as_str() {
                e.0.insert(email.to_ascii_lowercase());
            }
            let status = user["status"].as_str().unwrap_or("");
            e.1 |= r["status"] == "ACTIVE" && !DOCUMENTED_STATUSES.contains(&status);
        }
        by_id
            .into_values()
            .filter(|(emails, odd)| *odd || emails.len() > 1)
            .flat_map(|(emails, _)| emails)
            .collect()
    }

    /// Assigned Okta users whose user status is ACTIVE, by email (ASCII-lowercased), read
    /// from the Okta emulator's own API.
    async fn provisionable_emails(&self) -> BTreeSet<String> {
        let rows = self.okta_rows().await;
        rows.iter()
            .filter(|r| r["status"] == "ACTIVE" && r["_embedded"]["user"]["status"] == "ACTIVE")
            .filter_map(|r| r["_embedded"]["user"]["profile"]["email"].as_str())
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// Ends the faults: no quirk, no odd status, no overridden row.
    async fn calm(&mut self) {
        self.spot().clear_quirks();
        self.spot().clear_faults();
        self.okta().clear_faults();
        for id in std::mem::take(&mut self.odd_status) {
            self.okta().set_status(&id, "ACTIVE");
        }
        let client = reqwest::Client::new();
        for id in std::mem::take(&mut self.overridden_rows) {
            // 404 when the row is gone meanwhile: nothing to undo.
            for group in [Value::Null, json!(GROUP)] {
                client
                    .post(format!(
                        "{}/__admin/users/{id}/row-email",
                        self.okta().url()
                    ))
                    .json(&json!({"group": group, "email": null}))
                    .send()
                    .await
                    .expect("okta admin");
            }
        }
    }

    /// (b) and (c) once the faults stopped and the tool had its cycles.
    async fn check_converged(&mut self) {
        let want = self.provisionable_emails().await;
        let users = self.spot().users();
        let by_email: BTreeMap<String, Vec<String>> = users
            .iter()
            .filter(|u| u.kind == "personal")
            .fold(BTreeMap::new(), |mut m, u| {
                m.entry(u.email.to_ascii_lowercase())
                    .or_default()
                    .push(u.user_id.clone());
                m
            });
        for email in &want {
            let n = by_email.get(email).map_or(0, Vec::len);
            if n != 1 {
                self.violations.push(format!(
                    "(b) {email} is assigned and ACTIVE in Okta but has {n} Spot users"
                ));
            }
        }
        let personal = self.personal_ids();
        // The guard keeps the last personal user whoever it is (d): when every personal user
        // left is one the tool may delete and nobody should have, deleting them would empty the organization, so the
        // guard holds them all (it blocks every delete of such a plan) until an operator acts.
        // Two leavers of a two-user organization unassigned in one cycle, or in one events
        // batch (a cycle or a poll that failed under load joins two steps), end here.
        let deletable_leftover = |id: &String| {
            !self.untouchable.contains(id)
                && self
                    .spot()
                    .user(id)
                    .is_some_and(|u| !want.contains(&u.email.to_ascii_lowercase()))
        };
        let last = personal.iter().all(deletable_leftover);
        for id in &self.created {
            if let Some(u) = self.spot().user(id) {
                if !want.contains(&u.email.to_ascii_lowercase()) && !last {
                    self.violations.push(format!(
                        "(c) Spot user {id} ({}) that the tool created is left, but no assigned ACTIVE Okta user has that email",
                        u.email
                    ));
                }
            }
        }
        if personal.is_empty() {
            self.violations
                .push("(d) the organization has no personal user left".to_string());
        }
    }

    fn verdict(&self) -> Result<(), String> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self.violations.join("\n"))
        }
    }
}

// ----- the model -----

/// The starting world.
#[derive(Debug, Clone)]
struct World {
    /// Okta users `u{i}@example.com`: (assigned at the start, through the group rather than
    /// directly, already has a Spot user the tool may adopt).
    people: Vec<(bool, bool, bool)>,
    /// Is the owner an Okta user too (assigned at the start), so the tool may adopt it?
    owner_in_okta: Option<bool>,
    strangers: usize,
}

#[derive(Debug, Clone)]
enum OktaChange {
    Nothing,
    Assign(usize),
    AssignViaGroup(usize),
    Unassign(usize),
    Deactivate(usize),
    Reactivate(usize),
    ChangeEmail(usize),
    /// An undocumented (`true`: `"ARCHIVED_FUTURE"`) or empty status.
    OddStatus(usize, bool),
    /// A direct and a group row whose embedded emails differ.
    ConflictingRows(usize),
}

#[derive(Debug, Clone)]
enum SpotFault {
    Nothing,
    /// Person (the owner when out of range), listed twice in the next 2 lists.
    Duplicate(usize),
    DuplicateEveryone,
    /// Person's Spot user left out of the next list.
    OmitOnce(usize),
    /// Users created this step are not listed in the next `n` lists.
    LagAfterCreate(u64),
    /// The next DELETE (of anyone) answers 200 and deletes nothing.
    NoopDeleteOnce,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(
            (any::<bool>(), any::<bool>(), prop::bool::weighted(0.3)),
            3..=6,
        ),
        prop::option::of(any::<bool>()),
        0usize..=2,
    )
        .prop_map(|(people, owner_in_okta, strangers)| World {
            people,
            owner_in_okta,
            strangers,
        })
}

fn okta_change() -> impl Strategy<Value = OktaChange> {
    let i = 0usize..8;
    prop_oneof![
        1 => Just(OktaChange::Nothing),
        3 => i.clone().prop_map(OktaChange::Assign),
        2 => i.clone().prop_map(OktaChange::AssignViaGroup),
        3 => i.clone().prop_map(OktaChange::Unassign),
        2 => i.clone().prop_map(OktaChange::Deactivate),
        2 => i.clone().prop_map(OktaChange::Reactivate),
        1 => i.clone().prop_map(OktaChange::ChangeEmail),
        2 => (i.clone(), any::<bool>()).prop_map(|(i, b)| OktaChange::OddStatus(i, b)),
        1 => i.prop_map(OktaChange::ConflictingRows),
    ]
}

fn spot_fault() -> impl Strategy<Value = SpotFault> {
    let i = 0usize..8;
    prop_oneof![
        2 => Just(SpotFault::Nothing),
        2 => i.clone().prop_map(SpotFault::Duplicate),
        1 => Just(SpotFault::DuplicateEveryone),
        3 => i.prop_map(SpotFault::OmitOnce),
        2 => (1u64..=3).prop_map(SpotFault::LagAfterCreate),
        2 => Just(SpotFault::NoopDeleteOnce),
    ]
}

fn steps() -> impl Strategy<Value = Vec<(OktaChange, SpotFault)>> {
    prop::collection::vec((okta_change(), spot_fault()), 1..=8)
}

/// The model's view of the Okta people: index → (Okta id, current email).
struct People {
    ids: Vec<String>,
    emails: Vec<String>,
    deprovisioned: BTreeSet<usize>,
    renames: usize,
}

impl People {
    /// Person `i` (wrapped), or the owner when the index falls past the people and the owner
    /// is an Okta user (the last slot).
    fn pick(&self, i: usize) -> usize {
        i % self.ids.len()
    }
}

async fn build(h: &mut Hostile, w: &World) -> People {
    let mut people = People {
        ids: Vec::new(),
        emails: Vec::new(),
        deprovisioned: BTreeSet::new(),
        renames: 0,
    };
    for (i, &(assigned, via_group, in_spot)) in w.people.iter().enumerate() {
        let email = format!("u{i}@example.com");
        let id = h.env.person(&email);
        if assigned {
            if via_group {
                h.okta().assign_via_group(&id, GROUP, None);
            } else {
                h.okta().assign(&id, None);
            }
        }
        if in_spot {
            h.spot().add_user(&email, "Pre", "Existing", "viewer");
        }
        people.ids.push(id);
        people.emails.push(email);
    }
    match w.owner_in_okta {
        Some(assigned) => {
            let id = h.env.person(OWNER);
            if assigned {
                h.okta().assign(&id, None);
            }
            people.ids.push(id);
            people.emails.push(OWNER.to_string());
        }
        None => {
            let owner = h.owner_spot_id();
            h.untouchable.insert(owner);
        }
    }
    for s in 0..w.strangers {
        h.stranger(&format!("stranger{s}@example.com"));
    }
    people
}

async fn apply_change(h: &mut Hostile, p: &mut People, c: &OktaChange) {
    let o = h.okta().clone();
    match *c {
        OktaChange::Nothing => {}
        OktaChange::Assign(i) => {
            let i = p.pick(i);
            // Okta refuses to assign a deactivated user.
            if !p.deprovisioned.contains(&i) {
                o.assign(&p.ids[i], None);
            }
        }
        OktaChange::AssignViaGroup(i) => {
            let i = p.pick(i);
            o.assign_via_group(&p.ids[i], GROUP, None);
        }
        OktaChange::Unassign(i) => {
            let i = p.pick(i);
            o.unassign(&p.ids[i]);
        }
        OktaChange::Deactivate(i) => {
            let i = p.pick(i);
            o.deactivate(&p.ids[i]);
            p.deprovisioned.insert(i);
            h.odd_status.remove(&p.ids[i]);
        }
        OktaChange::Reactivate(i) => {
            let i = p.pick(i);
            o.reactivate(&p.ids[i]);
            p.deprovisioned.remove(&i);
            h.odd_status.remove(&p.ids[i]);
        }
        OktaChange::ChangeEmail(i) => {
            let i = p.pick(i);
            if p.emails[i] != OWNER {
                p.renames += 1;
                let email = format!("u{i}.v{}@example.com", p.renames);
                o.set_email(&p.ids[i], &email);
                p.emails[i] = email;
            }
        }
        OktaChange::OddStatus(i, undocumented) => {
            let i = p.pick(i);
            if !p.deprovisioned.contains(&i) {
                o.set_status(&p.ids[i], if undocumented { "ARCHIVED_FUTURE" } else { "" });
                h.odd_status.insert(p.ids[i].clone());
            }
        }
        OktaChange::ConflictingRows(i) => {
            let i = p.pick(i);
            if !p.deprovisioned.contains(&i) {
                o.assign(&p.ids[i], None);
                o.assign_via_group(&p.ids[i], GROUP, None);
                p.renames += 1;
                let ghost = format!("ghost{}@example.com", p.renames);
                o.set_row_email(&p.ids[i], Some(GROUP), Some(&ghost));
                h.overridden_rows.insert(p.ids[i].clone());
            }
        }
    }
}

fn apply_fault(h: &Hostile, p: &People, f: &SpotFault) {
    let s = h.spot();
    let spot_id_of = |i: usize| {
        let email = if i < p.ids.len() {
            p.emails[i].clone()
        } else {
            OWNER.to_string()
        };
        s.user_by_email(&email).map(|u| u.user_id)
    };
    match *f {
        SpotFault::Nothing => {}
        SpotFault::Duplicate(i) => {
            if let Some(id) = spot_id_of(i) {
                s.duplicate_in_list(Some(&id), Some(2));
            }
        }
        SpotFault::DuplicateEveryone => s.duplicate_in_list(None, Some(2)),
        SpotFault::OmitOnce(i) => {
            if let Some(id) = spot_id_of(p.pick(i)) {
                s.omit_from_list(&id, 1);
            }
        }
        SpotFault::LagAfterCreate(n) => s.set_list_lag_after_create(n),
        SpotFault::NoopDeleteOnce => s.noop_delete(None, Some(1)),
    }
}

/// Is this Okta change odd data rather than an ordinary lifecycle change?
fn odd(c: &OktaChange) -> bool {
    matches!(
        c,
        OktaChange::OddStatus(..) | OktaChange::ConflictingRows(_)
    )
}

/// Which odd answers a run of the model gives.
#[derive(Debug, Clone, Copy)]
struct Hostility {
    /// Undocumented statuses and conflicting rows from Okta.
    okta: bool,
    /// The Spot list and delete quirks.
    spot: bool,
}

/// Runs a world and its steps, skipping the odd answers `hostility` leaves out.
async fn run_model(
    w: World,
    steps: Vec<(OktaChange, SpotFault)>,
    hostility: Hostility,
) -> Result<(), String> {
    let mut h = Hostile::new().await;
    let mut p = build(&mut h, &w).await;
    let _ = h.cycle("start").await;
    for (n, (change, fault)) in steps.iter().enumerate() {
        if hostility.okta || !odd(change) {
            apply_change(&mut h, &mut p, change).await;
        }
        if hostility.spot {
            apply_fault(&h, &p, fault);
        }
        let _ = h.cycle(&format!("step {n}: {change:?} + {fault:?}")).await;
        // Lag applies to this step's creates only; those already lagging stay hidden.
        h.spot().set_list_lag_after_create(0);
    }
    h.calm().await;
    for n in 0..3 {
        if let Err(e) = h.cycle(&format!("converge {n}")).await {
            h.violations
                .push(format!("converging cycle {n} failed: {e}"));
        }
    }
    h.check_converged().await;
    let verdict = h.verdict();
    h.env.emu.shutdown().await;
    verdict
}

/// The model in events mode: after the start cycle, each step's Okta change reaches Spot
/// through System Log polls only (events late by up to 5 s and delivered twice; the Okta
/// clock is moved past the delay before each poll), with the Spot quirks when `spot`. Okta's
/// odd data records no event, so it stays out: events mode relies on the safety-net full
/// cycle for what the log does not say. The same invariants hold after every poll, and polls
/// alone converge (a poll may ask for a full cycle: a group assigned to the app).
async fn run_events_model(
    w: World,
    steps: Vec<(OktaChange, SpotFault)>,
    spot: bool,
) -> Result<(), String> {
    let mut h = Hostile::new().await;
    h.okta().set_log_duplicates(true);
    h.okta()
        .set_log_ingestion_delay(std::time::Duration::ZERO, std::time::Duration::from_secs(5));
    let mut p = build(&mut h, &w).await;
    let mut state = EventsState {
        cursor: Some(start_point(chrono::Utc::now())),
        ..EventsState::default()
    };
    let _ = h.cycle("start").await;
    let late = std::time::Duration::from_secs(6);
    for (n, (change, fault)) in steps.iter().enumerate() {
        if !odd(change) {
            apply_change(&mut h, &mut p, change).await;
        }
        if spot {
            apply_fault(&h, &p, fault);
        }
        h.okta().advance_clock(late);
        state = h
            .poll(&format!("step {n}: {change:?} + {fault:?}"), state)
            .await;
        h.spot().set_list_lag_after_create(0);
    }
    h.calm().await;
    // Enough polls for every watch of a delete to run out.
    for n in 0..=events::decide::WATCH_POLLS {
        h.okta().advance_clock(late);
        state = h.poll(&format!("converge {n}"), state).await;
    }
    h.check_converged().await;
    let verdict = h.verdict();
    h.env.emu.shutdown().await;
    verdict
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// 32 cases by default; `PROPTEST_CASES` changes it.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Each case is a few dozen HTTP round trips: shrink a little, not forever.
        max_shrink_iters: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The harness itself: with honest APIs (ordinary Okta changes, no odd data, no Spot
    /// quirk) the invariants hold.
    #[test]
    fn with_honest_apis_the_model_converges(w in world(), s in steps()) {
        let verdict = runtime().block_on(run_model(w, s, Hostility { okta: false, spot: false }));
        prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    }

    /// Spot lists twice, leaves out, lags and no-op deletes; Okta is honest.
    #[test]
    fn spot_quirks_never_break_the_safety_promises(w in world(), s in steps()) {
        let verdict = runtime().block_on(run_model(w, s, Hostility { okta: false, spot: true }));
        prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    }

    /// Everything at once: Spot quirks, undocumented statuses and conflicting rows.
    #[test]
    fn hostile_apis_never_break_the_safety_promises(w in world(), s in steps()) {
        let verdict = runtime().block_on(run_model(w, s, Hostility { okta: true, spot: true }));
        prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    }

    /// Events mode: every change through the System Log only (late and repeated events),
    /// Spot honest.
    #[test]
    fn events_alone_converge(w in world(), s in steps()) {
        let verdict = runtime().block_on(run_events_model(w, s, false));
        prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    }

    /// Events mode with the Spot quirks: lists that repeat or miss a user, lag after a
    /// create, a delete answered 200 that did nothing.
    #[test]
    fn events_with_spot_quirks_never_break_the_safety_promises(w in world(), s in steps()) {
        let verdict = runtime().block_on(run_events_model(w, s, true));
        prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    }
}

// ----- one deterministic test per fault class -----

/// A world of `emails` assigned Okta users, reconciled once (all created).
async fn assigned_world(emails: &[&str]) -> (Hostile, Vec<String>) {
    let mut h = Hostile::new().await;
    let ids = emails
        .iter()
        .map(|e| {
            let id = h.env.person(e);
            h.okta().assign(&id, None);
            id
        })
        .collect();
    h.cycle("create").await.expect("first cycle");
    for e in emails {
        assert!(h.spot().user_by_email(e).is_some(), "{e} was not created");
    }
    (h, ids)
}

fn deletes_of(h: &Hostile, spot_id: &str) -> usize {
    h.spot()
        .request_log()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/{spot_id}")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_list_entry_of_the_token_owner_does_not_delete_the_last_personal_user() {
    let mut h = Hostile::new().await;
    let owner_okta = h.env.person(OWNER);
    h.okta().assign(&owner_okta, None);
    h.cycle("adopt the owner").await.expect("cycle");
    let owner = h.owner_spot_id();
    assert_eq!(h.personal_ids(), BTreeSet::from([owner.clone()]));

    h.okta().unassign(&owner_okta);
    h.spot().duplicate_in_list(Some(&owner), None);
    let _ = h.cycle("owner unassigned, listed twice").await;
    assert_eq!(
        deletes_of(&h, &owner),
        0,
        "the only personal user, listed twice, was sent a DELETE: {:?}",
        h.spot().request_log()
    );
    assert!(h.spot().user(&owner).is_some());
    h.verdict().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_left_out_of_the_list_in_the_unassign_cycle_still_loses_access() {
    let (mut h, ids) = assigned_world(&["alice@example.com", "bob@example.com"]).await;
    let alice = h.spot().user_by_email("alice@example.com").unwrap().user_id;
    h.okta().unassign(&ids[0]);
    h.spot().omit_from_list(&alice, 1);
    let _ = h.cycle("unassign, alice not listed").await;
    for n in 0..2 {
        h.cycle(&format!("clean {n}")).await.expect("clean cycle");
    }
    assert!(
        h.spot().user(&alice).is_none(),
        "alice was unassigned but keeps Spot user {alice}"
    );
    assert!(h.spot().user_by_email("bob@example.com").is_some());
    h.verdict().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_lags_after_a_create_then_an_unassign_leaves_no_user_behind() {
    let mut h = Hostile::new().await;
    let alice_okta = h.env.person("alice@example.com");
    h.okta().assign(&alice_okta, None);
    // Alice is left out of the 2 lists after her create: the next cycle's and the re-read
    // that follows a refused create.
    h.spot().set_list_lag_after_create(2);
    h.cycle("create alice").await.expect("cycle");
    h.spot().set_list_lag_after_create(0);
    let alice = h.spot().user_by_email("alice@example.com").unwrap().user_id;
    // The next list misses alice: creating her again is refused as "already exists".
    let _ = h.cycle("alice lagging").await;
    assert_eq!(
        h.spot().user_by_email("alice@example.com").unwrap().user_id,
        alice
    );

    h.okta().unassign(&alice_okta);
    for n in 0..3 {
        let _ = h.cycle(&format!("unassigned {n}")).await;
    }
    assert!(
        h.spot().user(&alice).is_none(),
        "alice was unassigned but keeps Spot user {alice} (created while the list lagged)"
    );
    h.verdict().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_200_that_did_nothing_is_sent_again() {
    let (mut h, ids) = assigned_world(&["alice@example.com", "bob@example.com"]).await;
    let alice = h.spot().user_by_email("alice@example.com").unwrap().user_id;
    h.okta().deactivate(&ids[0]);
    h.spot().noop_delete(Some(&alice), Some(1));
    let _ = h.cycle("deactivated, the delete does nothing").await;
    assert!(h.spot().user(&alice).is_some(), "the knob kept alice");
    for n in 0..2 {
        h.cycle(&format!("clean {n}")).await.expect("clean cycle");
    }
    assert!(
        h.spot().user(&alice).is_none(),
        "alice was deactivated; the DELETE answered 200 but did nothing, and alice keeps {alice}"
    );
    h.verdict().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_undocumented_okta_status_is_held_not_deleted() {
    let (mut h, ids) =
        assigned_world(&["alice@example.com", "bob@example.com", "carl@example.com"]).await;
    h.okta().set_status(&ids[0], "ARCHIVED_FUTURE");
    h.okta().set_status(&ids[1], "");
    let report = h.cycle("odd statuses").await.expect("cycle");
    for email in ["alice@example.com", "bob@example.com"] {
        let id = h
            .spot()
            .user_by_email(email)
            .unwrap_or_else(|| panic!("{email} (odd Okta status) lost its Spot user"))
            .user_id;
        assert_eq!(deletes_of(&h, &id), 0, "{email} was sent a DELETE");
        assert!(
            report
                .held
                .iter()
                .any(|held| held.email.as_deref() == Some(email)),
            "{email} is not reported as held: {:?}",
            report.held
        );
    }
    h.verdict().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rows_of_one_okta_user_with_conflicting_emails_are_held_not_recreated() {
    let (mut h, ids) = assigned_world(&["alice@example.com", "bob@example.com"]).await;
    let alice = h.spot().user_by_email("alice@example.com").unwrap().user_id;
    h.okta().assign_via_group(&ids[0], GROUP, None);
    h.okta()
        .set_row_email(&ids[0], Some(GROUP), Some("mallory@example.com"));
    let _ = h.cycle("conflicting rows").await;
    let writes: Vec<_> = h
        .spot()
        .request_log()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(
        writes.is_empty(),
        "one Okta user with two conflicting rows made Spot writes: {writes:?}"
    );
    assert!(h.spot().user(&alice).is_some());
    assert!(h.spot().user_by_email("mallory@example.com").is_none());
    h.verdict().unwrap();
}

/// Found by `hostile_apis_never_break_the_safety_promises` (CI, 2026-12-07): the owner, Spot's
/// only organization admin, is deactivated in Okta and Spot refuses its delete; then another
/// user's email changes. The plan deletes the owner and recreates the other user (the new
/// Spot user first, then the old one deleted); the last-personal-user guard held both, every
/// cycle, so the person never got a Spot user with the new email. Now only the plain delete
/// is held, and the recreate goes ahead.
#[test]
fn an_email_change_is_not_held_up_by_a_leaver_spot_cannot_delete() {
    let w = World {
        people: vec![(false, false, false); 3],
        owner_in_okta: Some(true),
        strangers: 0,
    };
    let steps = vec![
        (OktaChange::AssignViaGroup(2), SpotFault::NoopDeleteOnce),
        // Person 3 is the owner (3 people and the owner).
        (OktaChange::Deactivate(3), SpotFault::Nothing),
        (OktaChange::ChangeEmail(6), SpotFault::Duplicate(0)),
    ];
    let verdict = runtime().block_on(run_model(
        w,
        steps,
        Hostility {
            okta: true,
            spot: true,
        },
    ));
    assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
}
