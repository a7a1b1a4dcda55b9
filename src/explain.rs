//! `explain <email>`: for one person, what each step of a cycle saw and decided — the Okta rows,
//! the class the classifier gave, the Spot users, the ledger entries, the planned actions and
//! the guards' verdicts — and the one thing to do when nothing will happen.
//!
//! It owns the *selection* (which rows, Spot users, ledger entries and actions are about the
//! person: matched by email the way the tool matches, [`Email`], or by Okta or Spot user id)
//! and the *wording* (the answer, the next step, the text and JSON forms). It never decides
//! anything itself: the class comes from `okta::classify`, the actions from `plan` run on the
//! whole snapshot, the blocks from `guard`; this module only reads their outputs. It must
//! never re-implement a rule of theirs, and it is pure: no I/O, no clock (the command that
//! reads both sides is `commands::explain`, which writes nothing and takes no lock).

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::action::{ActionKind, ActionStatus};
use crate::config::Settings;
use crate::guard::{GuardTrip, Verdicts};
use crate::ledger::{EntryState, Ledger, Origin};
use crate::model::{AppUserRow, Email, OktaSnapshot, Role, SpotUserKind, SpotUsers};
use crate::plan::Plan;
use crate::report::exit;

/// What `explain` was asked about: an email (trimmed, ASCII case folded, as everywhere in the
/// tool), or exactly an Okta user id (a person with no email) or a Spot user id (a programmatic
/// user has no email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// As given (trimmed).
    raw: String,
    /// The email, when the query is a valid address.
    email: Option<Email>,
    /// The comparison key: the [`Email`] form for a valid address, otherwise the same
    /// normalisation (trimmed, ASCII letters lower-cased) of the raw text, so that an invalid
    /// address held by the classifier can be asked about too.
    key: String,
}

impl Query {
    pub fn new(raw: &str) -> Query {
        let raw = raw.trim().to_string();
        let email = Email::parse(&raw);
        let key = email_key(&raw);
        Query { raw, email, key }
    }

    /// Does this address (as Okta, Spot or the ledger spell it) match the query?
    pub fn matches_email(&self, raw: &str) -> bool {
        email_key(raw) == self.key
    }

    /// Is this row about the person: its email matches, or its Okta user id is the query?
    pub fn matches_row(&self, row: &AppUserRow) -> bool {
        row.okta_user_id.as_str() == self.raw
            || row.email.as_deref().is_some_and(|e| self.matches_email(e))
    }
}

/// The key an address is compared by: [`Email`]'s normalisation, or the same folding of an
/// address [`Email`] refuses.
fn email_key(raw: &str) -> String {
    Email::parse(raw).map_or_else(|| raw.trim().to_ascii_lowercase(), |e| e.to_string())
}

/// Every row of the Okta users the query is about (all their rows: direct and group, including
/// rows showing another email), in the order read. Taken before the rows are classified
/// (which consumes them).
pub fn rows_for(query: &Query, rows: &[AppUserRow]) -> Vec<AppUserRow> {
    let ids: HashSet<&str> = rows
        .iter()
        .filter(|r| query.matches_row(r))
        .map(|r| r.okta_user_id.as_str())
        .collect();
    rows.iter()
        .filter(|r| ids.contains(r.okta_user_id.as_str()))
        .cloned()
        .collect()
}

/// The settings `explain` words its answer with.
#[derive(Debug, Clone, Default)]
pub struct ExplainSettings {
    pub protected_emails: BTreeSet<Email>,
    /// `okta.role_attribute`, named in the advice for an unknown role.
    pub role_attribute: String,
    pub adopt_existing: bool,
}

impl ExplainSettings {
    pub fn from_settings(settings: &Settings) -> ExplainSettings {
        ExplainSettings {
            protected_emails: settings.sync.protected_emails.iter().cloned().collect(),
            role_attribute: settings.okta.role_attribute.clone(),
            adopt_existing: settings.sync.adopt_existing,
        }
    }
}

/// What one cycle saw and decided, for [`explain`]: the outputs of each step, unchanged.
pub struct Inputs<'a> {
    /// The rows of the person's Okta users ([`rows_for`]).
    pub rows: &'a [AppUserRow],
    /// `classify` of all rows.
    pub snapshot: &'a OktaSnapshot,
    pub spot_users: &'a SpotUsers,
    pub ledger: &'a Ledger,
    /// `plan` of the whole snapshot.
    pub plan: &'a Plan,
    /// `guard` of that plan.
    pub verdicts: &'a Verdicts,
    pub settings: &'a ExplainSettings,
}

/// One Okta row as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowView {
    pub okta_user_id: String,
    /// `USER` (direct) or `GROUP`.
    pub scope: Option<String>,
    pub app_user_status: Option<String>,
    pub user_status: Option<String>,
    pub email: Option<String>,
    /// The role attribute as Okta sent it.
    pub role: Option<String>,
    pub malformed: Option<String>,
}

/// The classifier's three classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Provision,
    Hold,
    Absent,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Provision => "provision",
            Class::Hold => "hold",
            Class::Absent => "absent",
        }
    }
}

/// One Okta user and its class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OktaUserView {
    pub okta_user_id: String,
    pub class: Class,
    /// Why (the classifier's words; for a provisioned user, its role).
    pub reason: String,
    /// The role it would have (provision only).
    pub role: Option<Role>,
    /// When the planner held a user the classifier did not (a protected email, an email that
    /// another Okta user's Spot user has, …), why.
    pub held_by_plan: Option<String>,
}

/// One Spot user about the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpotUserView {
    pub spot_user_id: String,
    pub email: Option<String>,
    pub kind: SpotUserKind,
    /// Its email is in `sync.protected_emails`.
    pub protected: bool,
    /// The Okta user whose live ledger entry owns it (`None`: not managed by okta-spot-sync).
    pub managed_for: Option<String>,
}

/// One ledger entry about the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerView {
    pub okta_user_id: String,
    pub email: String,
    pub state: EntryState,
    pub spot_user_id: Option<String>,
    /// Does Spot list `spot_user_id`?
    pub spot_user_listed: bool,
    pub tombstones: Vec<String>,
    pub role: Option<Role>,
    /// The access model its mapping is in line with.
    pub access: u32,
    /// Is that the current one (`access::ACCESS_MODEL`)?
    pub access_current: bool,
    pub origin: Origin,
}

/// One planned action about the person, with the guards' verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionView {
    pub action: ActionKind,
    pub okta_user_id: String,
    pub email: String,
    pub spot_user_id: Option<String>,
    pub role: Option<Role>,
    pub reason: String,
    /// `planned` or `blocked`.
    pub status: ActionStatus,
    /// Why it is blocked (the guard's verdict).
    pub blocked: Option<String>,
}

/// What the next cycle does for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing will change.
    Nothing,
    /// At least one action is planned and no guard blocks it.
    ChangesPending,
    /// A guard blocks at least one of the person's actions.
    Blocked,
}

/// The answer: each step's view of the person, what happens, and the one thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The query as given (trimmed).
    pub query: String,
    /// Its normalised email, when it is a valid address.
    pub email: Option<String>,
    /// Did Okta, Spot or the ledger know anyone by it?
    pub known: bool,
    pub okta_rows: Vec<RowView>,
    pub okta_users: Vec<OktaUserView>,
    pub spot_users: Vec<SpotUserView>,
    pub ledger: Vec<LedgerView>,
    pub actions: Vec<ActionView>,
    /// Ledger-only housekeeping planned for these Okta users (their Spot user is gone).
    pub forget: Vec<String>,
    /// The guards that tripped on the person's actions.
    pub blocked_by: Vec<GuardTrip>,
    pub outcome: Outcome,
    /// What the next cycle does for the person, in one sentence.
    pub answer: String,
    /// The one thing to do.
    pub next_step: String,
}

impl Explanation {
    /// 0 nothing will change for the person (whether or not anyone knows the email), 2 a
    /// change is pending, 3 a guard blocks one (README "Commands and exit codes").
    pub fn exit_code(&self) -> i32 {
        match self.outcome {
            Outcome::Nothing => exit::OK,
            Outcome::ChangesPending => exit::CHANGES_PENDING,
            Outcome::Blocked => exit::BLOCKED,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an explanation always serialises")
    }

    /// Plain text an admin can paste into a ticket.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let dash = |v: Option<&str>| v.map_or_else(|| "-".to_string(), str::to_string);
        let _ = writeln!(t, "okta-spot-sync explain {}", self.query);
        let _ = writeln!(
            t,
            "\nOkta (the app's assignments, {} row(s)):",
            self.okta_rows.len()
        );
        if self.okta_rows.is_empty() {
            let _ = writeln!(t, "  no row: the app does not list this person");
        }
        for r in &self.okta_rows {
            let _ = writeln!(
                t,
                "  {}  scope {}  assignment {}  user status {}  email {}  role {}{}",
                r.okta_user_id,
                dash(r.scope.as_deref()),
                dash(r.app_user_status.as_deref()),
                dash(r.user_status.as_deref()),
                dash(r.email.as_deref()),
                dash(r.role.as_deref()),
                r.malformed
                    .as_deref()
                    .map_or_else(String::new, |m| format!("  malformed: {m}")),
            );
        }
        let _ = writeln!(t, "\nClass:");
        if self.okta_users.is_empty() {
            let _ = writeln!(t, "  no Okta user");
        }
        for u in &self.okta_users {
            let _ = writeln!(
                t,
                "  {}  {}: {}",
                u.okta_user_id,
                u.class.as_str(),
                u.reason
            );
            if let Some(why) = &u.held_by_plan {
                let _ = writeln!(t, "      held by the planner: {why}");
            }
        }
        let _ = writeln!(t, "\nSpot users:");
        if self.spot_users.is_empty() {
            let _ = writeln!(t, "  none");
        }
        for s in &self.spot_users {
            let kind = match s.kind {
                SpotUserKind::Personal => "personal",
                SpotUserKind::Programmatic => "programmatic (never touched)",
                SpotUserKind::Unknown => "unknown type (never touched)",
            };
            let _ = writeln!(
                t,
                "  {}  {}  {}{}  {}",
                s.spot_user_id,
                kind,
                dash(s.email.as_deref()),
                if s.protected { "  protected" } else { "" },
                s.managed_for.as_deref().map_or_else(
                    || "not managed by okta-spot-sync".to_string(),
                    |id| format!("managed for Okta user {id}")
                ),
            );
        }
        let _ = writeln!(t, "\nLedger (state file):");
        if self.ledger.is_empty() {
            let _ = writeln!(t, "  no entry");
        }
        for l in &self.ledger {
            let spot = match &l.spot_user_id {
                Some(id) if l.spot_user_listed => id.clone(),
                Some(id) => format!("{id} (not listed by Spot)"),
                None => "-".to_string(),
            };
            let tombstones = if l.tombstones.is_empty() {
                "-".to_string()
            } else {
                l.tombstones.join(", ")
            };
            let _ = writeln!(
                t,
                "  {}  {}  {}  Spot user {}  role {}  access model {}{}  origin {}  tombstones {}",
                l.okta_user_id,
                l.email,
                entry_state(l.state),
                spot,
                l.role.map_or("-", Role::as_str),
                l.access,
                if l.access_current {
                    " (current)"
                } else {
                    " (older)"
                },
                match l.origin {
                    Origin::Created => "created",
                    Origin::Adopted => "adopted",
                },
                tombstones,
            );
        }
        let _ = writeln!(t, "\nPlan:");
        if self.actions.is_empty() && self.forget.is_empty() {
            let _ = writeln!(t, "  nothing for this person");
        }
        for a in &self.actions {
            let _ = writeln!(
                t,
                "  {}  {}  Okta user {}  Spot user {}  role {}: {}",
                a.status.as_str(),
                a.action.as_str(),
                a.okta_user_id,
                dash(a.spot_user_id.as_deref()),
                a.role.map_or("-", Role::as_str),
                a.reason,
            );
            if let Some(why) = &a.blocked {
                let _ = writeln!(t, "      {why}");
            }
        }
        for id in &self.forget {
            let _ = writeln!(
                t,
                "  forget Okta user {id} in the ledger (its Spot user is gone)"
            );
        }
        let _ = writeln!(t, "\nGuards:");
        if self.blocked_by.is_empty() {
            let _ = writeln!(t, "  none blocks this person's actions");
        }
        for g in &self.blocked_by {
            let _ = writeln!(t, "  {}: {}", g.guard, g.message);
        }
        let _ = writeln!(t, "\nAnswer: {}", self.answer);
        let _ = writeln!(t, "Next step: {}", self.next_step);
        t
    }
}

fn entry_state(state: EntryState) -> &'static str {
    match state {
        EntryState::Pending => "pending",
        EntryState::Managed => "managed",
        EntryState::Deleted => "deleted",
    }
}

/// Explains `query` from what one cycle saw and decided ([`Inputs`]).
pub fn explain(query: &Query, inputs: &Inputs<'_>) -> Explanation {
    let Inputs {
        rows,
        snapshot,
        spot_users,
        ledger,
        plan,
        verdicts,
        settings,
    } = *inputs;

    // The Okta users: from the rows, and the ledger entries with the email.
    let mut okta_ids: BTreeSet<String> = rows.iter().map(|r| r.okta_user_id.to_string()).collect();
    for (id, entry) in &ledger.users {
        if query.matches_email(&entry.email) || id.as_str() == query.raw {
            okta_ids.insert(id.to_string());
        }
    }
    // The Spot users: with the email, and those the entries own or owned.
    let mut spot_ids: BTreeSet<String> = spot_users
        .iter()
        .filter(|u| {
            u.user_id.as_str() == query.raw
                || u.email
                    .as_ref()
                    .is_some_and(|e| query.matches_email(e.as_str()))
        })
        .map(|u| u.user_id.to_string())
        .collect();
    for id in &okta_ids {
        if let Some(entry) = ledger.users.get(id.as_str()) {
            spot_ids.extend(entry.spot_user_id.iter().map(ToString::to_string));
            spot_ids.extend(entry.tombstones.iter().map(ToString::to_string));
        }
    }
    // The entries that own or owned one of those Spot users (another Okta user's, say).
    for (id, entry) in &ledger.users {
        let owns = entry
            .spot_user_id
            .iter()
            .chain(&entry.tombstones)
            .any(|s| spot_ids.contains(s.as_str()));
        if owns {
            okta_ids.insert(id.to_string());
        }
    }

    let okta_rows: Vec<RowView> = rows
        .iter()
        .map(|r| RowView {
            okta_user_id: r.okta_user_id.to_string(),
            scope: r.scope.as_ref().map(ToString::to_string),
            app_user_status: r.app_user_status.as_ref().map(ToString::to_string),
            user_status: r.user_status.as_ref().map(ToString::to_string),
            email: r.email.clone(),
            role: r.role.as_ref().map(ToString::to_string),
            malformed: r.malformed.clone(),
        })
        .collect();

    let okta_users: Vec<OktaUserView> = okta_ids
        .iter()
        .map(|id| classify_view(id, snapshot, plan))
        .collect();

    let live_owner = |spot_id: &str| {
        ledger
            .users
            .iter()
            .find(|(_, e)| {
                e.state != EntryState::Deleted
                    && e.spot_user_id
                        .as_ref()
                        .is_some_and(|s| s.as_str() == spot_id)
            })
            .map(|(id, _)| id.to_string())
    };
    let spot_views: Vec<SpotUserView> = spot_users
        .iter()
        .filter(|u| spot_ids.contains(u.user_id.as_str()))
        .map(|u| SpotUserView {
            spot_user_id: u.user_id.to_string(),
            email: u.email.as_ref().map(ToString::to_string),
            kind: if u.is_personal() {
                SpotUserKind::Personal
            } else if u.kind == SpotUserKind::Personal {
                // A `pu-…` id listed as personal: programmatic by its id.
                SpotUserKind::Programmatic
            } else {
                u.kind
            },
            protected: u
                .email
                .as_ref()
                .is_some_and(|e| settings.protected_emails.contains(e)),
            managed_for: live_owner(u.user_id.as_str()),
        })
        .collect();

    let ledger_views: Vec<LedgerView> = okta_ids
        .iter()
        .filter_map(|id| ledger.users.get_key_value(id.as_str()))
        .map(|(id, e)| LedgerView {
            okta_user_id: id.to_string(),
            email: e.email.clone(),
            state: e.state,
            spot_user_id: e.spot_user_id.as_ref().map(ToString::to_string),
            spot_user_listed: e.spot_user_id.as_ref().is_some_and(|s| spot_users.lists(s)),
            tombstones: e.tombstones.iter().map(ToString::to_string).collect(),
            role: e.role,
            access: e.access,
            access_current: e.access >= crate::access::ACCESS_MODEL,
            origin: e.origin,
        })
        .collect();

    let mut actions = Vec::new();
    let mut guards: Vec<String> = Vec::new();
    for (i, a) in plan.actions.iter().enumerate() {
        let about = okta_ids.contains(a.okta_user_id.as_str())
            || query.matches_email(&a.email)
            || a.spot_user_id()
                .is_some_and(|s| spot_ids.contains(s.as_str()));
        if !about {
            continue;
        }
        let blocked = verdicts.blocked(i).map(str::to_string);
        if let Some(why) = &blocked {
            let guard = why
                .strip_prefix("blocked by guard ")
                .unwrap_or("never_touch")
                .to_string();
            if !guards.contains(&guard) {
                guards.push(guard);
            }
        }
        actions.push(ActionView {
            action: a.kind(),
            okta_user_id: a.okta_user_id.to_string(),
            email: a.email.clone(),
            spot_user_id: a.spot_user_id().map(ToString::to_string),
            role: a.role(),
            reason: a.reason.clone(),
            status: if blocked.is_some() {
                ActionStatus::Blocked
            } else {
                ActionStatus::Planned
            },
            blocked,
        });
    }
    let blocked_by: Vec<GuardTrip> = verdicts
        .trips()
        .iter()
        .filter(|t| {
            guards.contains(&t.guard)
                && (t.guard != "never_touch"
                    || actions
                        .iter()
                        .any(|a| a.blocked.as_deref() == Some(t.message.as_str())))
        })
        .cloned()
        .collect();
    let forget: Vec<String> = plan
        .forget
        .iter()
        .filter(|id| okta_ids.contains(id.as_str()))
        .map(ToString::to_string)
        .collect();

    let mut explanation = Explanation {
        query: query.raw.clone(),
        email: query.email.as_ref().map(ToString::to_string),
        known: !(okta_rows.is_empty() && spot_views.is_empty() && ledger_views.is_empty()),
        okta_rows,
        okta_users,
        spot_users: spot_views,
        ledger: ledger_views,
        actions,
        forget,
        blocked_by,
        outcome: Outcome::Nothing,
        answer: String::new(),
        next_step: String::new(),
    };
    // The deletes a delete-limit guard held back: the N of `--allow-deletes N`.
    let held_deletes = plan
        .actions
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            a.deletes()
                && verdicts
                    .blocked(*i)
                    .is_some_and(|b| b.starts_with("blocked by guard max_delete"))
        })
        .count();
    let (outcome, answer, next_step) = conclude(query, &explanation, held_deletes, settings);
    explanation.outcome = outcome;
    explanation.answer = answer;
    explanation.next_step = next_step;
    explanation
}

/// The classifier's class of `id` (and the planner's hold, if it added one).
fn classify_view(id: &str, snapshot: &OktaSnapshot, plan: &Plan) -> OktaUserView {
    let planner_hold = || {
        plan.held
            .iter()
            .find(|h| h.okta_user_id.as_str() == id)
            .map(|h| h.reason.clone())
    };
    let view = |class, reason: String, role| OktaUserView {
        okta_user_id: id.to_string(),
        class,
        reason,
        role,
        held_by_plan: None,
    };
    if let Some(d) = snapshot.provision.iter().find(|d| d.okta_user_id == id) {
        let mut v = view(
            Class::Provision,
            format!("entitled to a Spot user with role {}", d.role),
            Some(d.role),
        );
        v.held_by_plan = planner_hold();
        return v;
    }
    if let Some(h) = snapshot.held.iter().find(|h| h.okta_user_id == id) {
        return view(Class::Hold, h.reason.clone(), None);
    }
    let mut v = match snapshot.absent.iter().find(|a| a.okta_user_id == id) {
        Some(a) => view(Class::Absent, a.reason.clone(), None),
        None => view(
            Class::Absent,
            "not assigned to the app: Okta's list of the app's users does not have this user"
                .to_string(),
            None,
        ),
    };
    v.held_by_plan = planner_hold();
    v
}

/// The outcome, the answer and the next step.
fn conclude(
    query: &Query,
    e: &Explanation,
    held_deletes: usize,
    settings: &ExplainSettings,
) -> (Outcome, String, String) {
    let describe = |a: &ActionView| {
        format!(
            "{} ({}{})",
            a.action.as_str(),
            a.reason,
            a.spot_user_id
                .as_deref()
                .map_or_else(String::new, |s| format!("; Spot user {s}"))
        )
    };
    if let Some(blocked) = e.actions.iter().find(|a| a.blocked.is_some()) {
        let why = blocked.blocked.as_deref().unwrap_or_default();
        let guard = why
            .strip_prefix("blocked by guard ")
            .unwrap_or("never_touch");
        let answer = format!("the next reconcile would {}, but {why}", describe(blocked));
        return (Outcome::Blocked, answer, guard_advice(guard, held_deletes));
    }
    if !e.actions.is_empty() {
        let what: Vec<String> = e.actions.iter().map(describe).collect();
        let answer = format!("the next reconcile will {}", what.join("; then "));
        return (
            Outcome::ChangesPending,
            answer,
            "nothing to do: the next `okta-spot-sync reconcile` (or the daemon's next cycle) applies it"
                .to_string(),
        );
    }
    let nothing = |answer: String, next: String| (Outcome::Nothing, answer, next);
    let protected = query
        .email
        .as_ref()
        .is_some_and(|e| settings.protected_emails.contains(e));
    let protected_advice = "protected email (sync.protected_emails): remove it from the list to let okta-spot-sync manage it";
    if protected {
        return nothing(
            "nothing will happen: this email is in sync.protected_emails, and a Spot user with it is never created, changed or deleted".into(),
            protected_advice.into(),
        );
    }
    // A hold, by the classifier or the planner.
    let held = e.okta_users.iter().find_map(|u| match u.class {
        Class::Hold => Some(u.reason.as_str()),
        _ => u.held_by_plan.as_deref(),
    });
    let kept = e
        .spot_users
        .iter()
        .find(|s| s.managed_for.is_some())
        .map_or_else(
            || "no Spot user is created".to_string(),
            |s| format!("Spot user {} is kept as it is", s.spot_user_id),
        );
    if let Some(reason) = held {
        return nothing(
            format!("nothing will happen: held ({reason}); {kept}, nothing is created or deleted"),
            hold_advice(reason, settings),
        );
    }
    let provisioned = e.okta_users.iter().find(|u| u.class == Class::Provision);
    if let Some(user) = provisioned {
        let own = e
            .spot_users
            .iter()
            .find(|s| s.managed_for.as_deref() == Some(user.okta_user_id.as_str()));
        if let Some(own) = own {
            return nothing(
                format!(
                    "nothing will happen: in sync — Okta user {} has Spot user {}, managed by okta-spot-sync",
                    user.okta_user_id, own.spot_user_id
                ),
                "nothing to do".into(),
            );
        }
    }
    let untouchable = e
        .spot_users
        .iter()
        .find(|s| s.kind != SpotUserKind::Personal);
    let personal = e
        .spot_users
        .iter()
        .find(|s| s.kind == SpotUserKind::Personal);
    if let (Some(u), None) = (untouchable, personal) {
        let (what, advice) = match u.kind {
            SpotUserKind::Programmatic => {
                ("programmatic", "a programmatic Spot user is never touched")
            }
            _ => (
                "of unknown type",
                "a Spot user of unknown type is never touched: check it in the Spot console",
            ),
        };
        return nothing(
            format!(
                "nothing will happen: Spot user {} is {what}, and okta-spot-sync never touches it",
                u.spot_user_id
            ),
            advice.into(),
        );
    }
    let assign = "assign the user to the app in Okta";
    if let Some(u) = personal.filter(|u| u.managed_for.is_none()) {
        let then = if settings.adopt_existing {
            format!(
                "{assign}: the next cycle adopts Spot user {}",
                u.spot_user_id
            )
        } else {
            format!(
                "{assign}, then run `okta-spot-sync import` to adopt Spot user {}",
                u.spot_user_id
            )
        };
        return nothing(
            format!(
                "nothing will happen: Spot user {} is not managed by okta-spot-sync (no assigned Okta user has its email), so it is left alone",
                u.spot_user_id
            ),
            then,
        );
    }
    if !e.known {
        return nothing(
            format!(
                "nothing will happen: okta-spot-sync knows no one as {:?}: the Okta app does not list it, Spot has no user with it and the state file has no entry",
                query.raw
            ),
            format!("{assign} (emails are matched ignoring ASCII case only: check the spelling)"),
        );
    }
    let absent = e.okta_users.iter().find(|u| u.class == Class::Absent);
    let reason = absent.map_or("not assigned to the app in Okta", |u| u.reason.as_str());
    let next = if e.okta_rows.is_empty() {
        assign.to_string()
    } else {
        format!("{reason}: reactivate the user and its assignment in Okta")
    };
    nothing(
        format!("nothing will happen: absent ({reason}) and no Spot user to delete"),
        next,
    )
}

/// What to do about a guard that blocks the person's action.
fn guard_advice(guard: &str, held_deletes: usize) -> String {
    match guard {
        "max_deletes" | "max_delete_percent" => format!(
            "blocked by guard {guard}: check the plan (`okta-spot-sync plan`), then `okta-spot-sync reconcile --allow-deletes {held_deletes}`"
        ),
        "empty_source" => "blocked by guard empty_source: Okta lists no assignments for the app; check the app id and the token (`okta-spot-sync check`), and if the app really has no users now, `okta-spot-sync reconcile --allow-empty-source`".to_string(),
        "last_personal_user" => "blocked by guard last_personal_user: add a personal admin to Spot (or to sync.protected_emails) first".to_string(),
        _ => format!("blocked by guard {guard}: this should never happen; report it as a bug with `okta-spot-sync plan --output json` attached"),
    }
}

/// What to do about a hold, from its reason (the classifier's or the planner's words).
fn hold_advice(reason: &str, settings: &ExplainSettings) -> String {
    if let Some(status) = reason.strip_prefix("status ") {
        let status = status.trim();
        let fix = match status {
            "SUSPENDED" => "unsuspend the user in Okta".to_string(),
            "STAGED" | "PROVISIONED" => "activate the user in Okta".to_string(),
            other => format!("change the user's status {other} in Okta"),
        };
        return format!("status {status} is held (okta.hold_statuses): {fix}");
    }
    if reason.contains("is not one Okta documents") {
        return "an Okta user status Okta does not document is held: fix the user's status in Okta, or, if Okta added it, list it in okta.provision_statuses or okta.hold_statuses".into();
    }
    if reason.starts_with("Okta sent no user status") {
        return "Okta sent no user status: report it as a bug (the read asks for expand=user)"
            .into();
    }
    if reason.starts_with("no email in the Okta profile") {
        return "the Okta user has no email: set one in Okta (profile.email)".into();
    }
    if reason.starts_with("invalid email") {
        return "the email in the Okta profile is not a valid address: fix it in Okta".into();
    }
    if reason.starts_with("unknown role") {
        return format!(
            "unknown role: set the assignment's {} attribute to viewer or editor in Okta (or leave it empty for sync.default_role)",
            settings.role_attribute
        );
    }
    if reason.starts_with("duplicate email")
        || reason.starts_with("its email belongs to a Spot user managed for Okta user")
    {
        return "two Okta users have this email: give each a unique email".into();
    }
    // The classifier marks such rows malformed: checked before any other malformed row.
    if reason.contains("Okta listed this user on") {
        return "Okta lists this user on rows with different emails (its direct and group assignments disagree): fix the user in Okta so that every row shows one email".into();
    }
    if reason.starts_with("malformed Okta row") {
        return format!("fix the assignment's data in Okta ({reason})");
    }
    if reason.starts_with("protected email") || reason.contains("is protected") {
        return "protected email (sync.protected_emails): remove it from the list to let okta-spot-sync manage it".into();
    }
    if reason.contains("sync.adopt_existing is false") {
        return "a Spot user with this email exists and sync.adopt_existing is false: run `okta-spot-sync import` to adopt it (or set sync.adopt_existing = true)".into();
    }
    if reason.contains("is programmatic or protected: never deleted") {
        return "a programmatic or protected Spot user is never touched: delete it by hand in Spot if this person should not have it".into();
    }
    if reason.contains("a create for it was never confirmed") {
        return "the Spot user with this email is not known to be okta-spot-sync's: delete it by hand in Spot if this person should not have it".into();
    }
    format!("held ({reason}): fix it in Okta")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::guard::{guard, GuardLimits};
    use crate::ledger::LedgerEntry;
    use crate::model::{OktaUserId, SpotUser, SpotUserId};
    use crate::okta::classify::classify;
    use crate::okta::classify::tests::{row, rules};
    use crate::plan::{plan, PlanOptions};

    /// A world: Okta rows, Spot users and ledger, run through the real classifier, planner and
    /// guards, then explained.
    struct World {
        rows: Vec<AppUserRow>,
        spot: Vec<SpotUser>,
        ledger: Ledger,
        protected: Vec<&'static str>,
        max_deletes: usize,
    }

    impl World {
        fn new() -> World {
            World {
                rows: Vec::new(),
                spot: vec![spot("u-owner", "owner@example.com")],
                ledger: Ledger::default(),
                protected: vec!["owner@example.com"],
                max_deletes: 10,
            }
        }

        fn managed(&mut self, okta_id: &str, email: &str, spot_id: &str) {
            self.spot.push(spot(spot_id, email));
            self.ledger.put(
                &OktaUserId::new(okta_id),
                LedgerEntry::new(
                    email,
                    Some(SpotUserId::new(spot_id)),
                    Some(Role::Viewer),
                    Origin::Created,
                    EntryState::Managed,
                ),
            );
        }

        fn explain(&self, who: &str) -> Explanation {
            let protected: BTreeSet<Email> = self
                .protected
                .iter()
                .map(|e| Email::parse(e).unwrap())
                .collect();
            let query = Query::new(who);
            let mine = rows_for(&query, &self.rows);
            let snapshot = classify(self.rows.clone(), &rules());
            let spot_users = SpotUsers::distinct(self.spot.clone());
            let options = PlanOptions {
                adopt_existing: true,
                update_roles: true,
                protected_emails: protected.clone(),
                spot_roles: BTreeMap::from([
                    (Role::Viewer, "viewer".to_string()),
                    (Role::Editor, "admin".to_string()),
                ]),
            };
            let the_plan = plan(&snapshot, &spot_users, &self.ledger, &options);
            let limits = GuardLimits {
                recent_deletes: 0,
                max_deletes: self.max_deletes,
                max_delete_percent: 20,
                allow_deletes: None,
                allow_empty_source: false,
                protected_emails: protected.clone(),
            };
            let verdicts = guard(&the_plan, &spot_users, &self.ledger, &limits);
            let settings = ExplainSettings {
                protected_emails: protected,
                role_attribute: "role".into(),
                adopt_existing: true,
            };
            explain(
                &query,
                &Inputs {
                    rows: &mine,
                    snapshot: &snapshot,
                    spot_users: &spot_users,
                    ledger: &self.ledger,
                    plan: &the_plan,
                    verdicts: &verdicts,
                    settings: &settings,
                },
            )
        }
    }

    fn spot(id: &str, email: &str) -> SpotUser {
        SpotUser {
            user_id: id.into(),
            email: Email::parse(email),
            username: email.into(),
            kind: if id.starts_with("pu-") {
                SpotUserKind::Programmatic
            } else {
                SpotUserKind::Personal
            },
        }
    }

    #[test]
    fn an_assigned_user_without_spot_user_gets_a_create_and_exit_2() {
        let mut w = World::new();
        w.rows.push(row("00u1", "Ann@Example.com", "ACTIVE"));
        let e = w.explain("  ann@EXAMPLE.com ");
        assert_eq!(e.email.as_deref(), Some("ann@example.com"));
        assert_eq!(e.okta_rows.len(), 1);
        assert_eq!(e.okta_users[0].class, Class::Provision);
        assert_eq!(e.actions.len(), 1);
        assert_eq!(e.actions[0].action, ActionKind::Create);
        assert_eq!(e.actions[0].status, ActionStatus::Planned);
        assert_eq!(e.outcome, Outcome::ChangesPending);
        assert_eq!(e.exit_code(), 2);
        assert!(e.answer.contains("create"), "{}", e.answer);
    }

    #[test]
    fn a_suspended_managed_user_is_held_kept_and_told_to_unsuspend() {
        let mut w = World::new();
        w.rows.push(row("00u1", "sus@example.com", "SUSPENDED"));
        w.managed("00u1", "sus@example.com", "u-1");
        let e = w.explain("sus@example.com");
        assert_eq!(e.okta_users[0].class, Class::Hold);
        assert_eq!(e.okta_users[0].reason, "status SUSPENDED");
        assert_eq!(e.spot_users[0].managed_for.as_deref(), Some("00u1"));
        assert_eq!(e.ledger[0].state, EntryState::Managed);
        assert!(e.actions.is_empty());
        assert_eq!(e.exit_code(), 0);
        assert!(e.answer.contains("Spot user u-1 is kept"), "{}", e.answer);
        assert_eq!(
            e.next_step,
            "status SUSPENDED is held (okta.hold_statuses): unsuspend the user in Okta"
        );
    }

    #[test]
    fn each_hold_reason_has_its_own_next_step() {
        let mut w = World::new();
        let mut no_email = row("00u1", "", "ACTIVE");
        no_email.email = None;
        let mut role = row("00u2", "role@example.com", "ACTIVE");
        role.role = Some("owner".into());
        let mut group = row("00u3", "moved@example.com", "ACTIVE");
        group.scope = Some("GROUP".into());
        w.rows = vec![
            no_email,
            role,
            row("00u3", "conflict@example.com", "ACTIVE"),
            group,
            row("00u4", "twin@example.com", "ACTIVE"),
            row("00u5", "TWIN@example.com", "ACTIVE"),
            row("00u6", "Not-An-Email", "ACTIVE"),
            row("00u7", "odd@example.com", "ARCHIVED_SOON"),
            row("00u8", "staged@example.com", "STAGED"),
        ];
        let cases = [
            ("00u1", "has no email"),
            ("role@example.com", "set the assignment's role attribute"),
            (
                "conflict@example.com",
                "Okta lists this user on rows with different emails",
            ),
            (
                "moved@example.com",
                "Okta lists this user on rows with different emails",
            ),
            ("twin@example.com", "two Okta users have this email"),
            ("not-an-EMAIL", "not a valid address"),
            ("odd@example.com", "does not document"),
            ("staged@example.com", "activate the user in Okta"),
        ];
        for (who, advice) in cases {
            let e = w.explain(who);
            assert!(
                e.okta_users.iter().all(|u| u.class == Class::Hold),
                "{who}: {:?}",
                e.okta_users
            );
            assert!(!e.okta_users.is_empty(), "{who}");
            assert!(e.actions.is_empty(), "{who}");
            assert_eq!(e.outcome, Outcome::Nothing, "{who}");
            assert!(e.next_step.contains(advice), "{who}: {}", e.next_step);
        }
        // Both rows of the user with conflicting emails are shown, whichever email is asked.
        assert_eq!(w.explain("moved@example.com").okta_rows.len(), 2);
        // Both Okta users of a shared email are shown.
        assert_eq!(w.explain("twin@example.com").okta_users.len(), 2);
    }

    #[test]
    fn an_unassigned_managed_user_is_deleted_unless_a_guard_blocks_it() {
        let mut w = World::new();
        w.rows.push(row("00u9", "stay@example.com", "ACTIVE"));
        w.managed("00u9", "stay@example.com", "u-9");
        w.managed("00u1", "gone@example.com", "u-1");
        let e = w.explain("gone@example.com");
        assert!(e.okta_rows.is_empty());
        assert_eq!(e.okta_users[0].class, Class::Absent);
        assert_eq!(e.actions[0].action, ActionKind::Delete);
        assert_eq!(e.actions[0].spot_user_id.as_deref(), Some("u-1"));
        assert_eq!(e.exit_code(), 2);

        w.max_deletes = 0;
        let e = w.explain("gone@example.com");
        assert_eq!(e.actions[0].status, ActionStatus::Blocked);
        assert_eq!(e.blocked_by[0].guard, "max_deletes");
        assert_eq!(e.exit_code(), 3);
        assert_eq!(
            e.next_step,
            "blocked by guard max_deletes: check the plan (`okta-spot-sync plan`), then `okta-spot-sync reconcile --allow-deletes 1`"
        );
    }

    #[test]
    fn a_deactivated_user_is_absent_and_its_spot_user_deleted() {
        let mut w = World::new();
        w.rows.push(row("00u9", "stay@example.com", "ACTIVE"));
        w.managed("00u9", "stay@example.com", "u-9");
        w.rows
            .push(row("00u1", "left@example.com", "DEPROVISIONED"));
        w.managed("00u1", "left@example.com", "u-1");
        let e = w.explain("left@example.com");
        assert_eq!(e.okta_users[0].class, Class::Absent);
        assert_eq!(e.okta_users[0].reason, "status DEPROVISIONED in Okta");
        assert_eq!(e.actions[0].action, ActionKind::Delete);
    }

    #[test]
    fn protected_programmatic_unmanaged_and_unknown_people_are_left_alone_and_told_why() {
        let mut w = World::new();
        w.spot.push(spot("pu-1", "bot@example.com"));
        w.spot.push(spot("u-5", "stranger@example.com"));
        w.rows.push(row("00u1", "owner@example.com", "ACTIVE"));

        let e = w.explain("owner@example.com");
        assert!(e.spot_users[0].protected);
        assert_eq!(e.okta_users[0].class, Class::Provision);
        assert!(e.okta_users[0].held_by_plan.is_some());
        assert_eq!(e.next_step, "protected email (sync.protected_emails): remove it from the list to let okta-spot-sync manage it");

        let e = w.explain("bot@example.com");
        assert_eq!(e.spot_users[0].kind, SpotUserKind::Programmatic);
        assert_eq!(e.next_step, "a programmatic Spot user is never touched");

        let e = w.explain("stranger@example.com");
        assert_eq!(e.spot_users[0].managed_for, None);
        assert!(e.answer.contains("not managed"), "{}", e.answer);
        assert!(
            e.next_step
                .starts_with("assign the user to the app in Okta"),
            "{}",
            e.next_step
        );

        let e = w.explain("nobody@example.com");
        assert!(!e.known);
        assert_eq!(e.exit_code(), 0);
        assert!(e.answer.contains("knows no one"), "{}", e.answer);
    }

    #[test]
    fn a_managed_user_in_line_needs_nothing() {
        let mut w = World::new();
        w.rows.push(row("00u1", "ann@example.com", "ACTIVE"));
        w.managed("00u1", "ann@example.com", "u-1");
        let e = w.explain("ANN@example.com");
        assert!(e.actions.is_empty());
        assert_eq!(e.next_step, "nothing to do");
        assert!(e.answer.contains("in sync"), "{}", e.answer);
    }

    /// Only ASCII case is folded: the Kelvin sign is not a `k`.
    #[test]
    fn emails_match_as_the_tool_matches_them() {
        let q = Query::new(" Kim@Example.COM ");
        assert!(q.matches_email("kim@example.com"));
        assert!(!q.matches_email("\u{212A}im@example.com"));
        assert!(!Query::new("\u{212A}im@example.com").matches_email("kim@example.com"));
        let mut w = World::new();
        w.rows.push(row("00u1", "kim@example.com", "ACTIVE"));
        assert!(!w.explain("\u{212A}im@example.com").known);
        // An Okta user id finds the user too.
        assert_eq!(w.explain("00u1").okta_users[0].okta_user_id, "00u1");
    }

    #[test]
    fn the_text_names_every_step() {
        let mut w = World::new();
        w.rows.push(row("00u1", "sus@example.com", "SUSPENDED"));
        w.managed("00u1", "sus@example.com", "u-1");
        let text = w.explain("sus@example.com").to_text();
        for needle in [
            "okta-spot-sync explain sus@example.com",
            "user status SUSPENDED",
            "00u1  hold: status SUSPENDED",
            "u-1  personal  sus@example.com  managed for Okta user 00u1",
            "managed  Spot user u-1  role viewer",
            "nothing for this person",
            "Next step: status SUSPENDED is held",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
    }
}
