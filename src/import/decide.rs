//! The pure part of `import`: every decision, from data the shell has already read. No I/O,
//! no clock, no logging; each function here is tested by the unit tests below.
//!
//! The decisions come in three phases, with the shell's Okta calls in between:
//! 1. [`decide_known`]: what the app's assignment list, the ledger and the Spot user list
//!    settle on their own (adopt, held, not entitled, duplicates, pending creates, ...) and
//!    which Spot users are left to look up in Okta by email;
//! 2. [`decide_looked_up`]: what the lookup found for each of those ([`decide_found`] for
//!    one user), with the lookup path chosen by [`walk_budget`];
//! 3. [`assignments`] (the `--assign` writes to make) and [`outcome`] (the report's actions
//!    and unmatched list, and the adoptions to record, given how the assignments went).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::SEARCH_THRESHOLD;
use crate::action::{ActionKind, ActionStatus};
use crate::ledger::{EntryState, Ledger};
use crate::model::{AppUserRow, Email, OktaUserId, Role, SpotUser, SpotUserId};
use crate::okta::classify::{classify, is_one_of, upper, ClassifyRules};
use crate::okta::parse::OktaUser;
use crate::report::ActionReport;
use crate::report::Unmatched;

/// How the unassigned Spot users were looked up in Okta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// One search by email per user.
    Search,
    /// One walk of the org's user list (which omits deactivated users).
    Walk,
}

/// What was decided for one unmanaged Spot user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    Adopt {
        okta_user_id: OktaUserId,
        role: Role,
    },
    Assign {
        okta_user_id: OktaUserId,
        status: String,
    },
    Unmatched(String),
}

/// The Okta users the app or the ledger already covers, which a looked-up user must not be.
#[derive(Debug, Default)]
pub(super) struct Covered<'a> {
    /// Every Okta user the app lists, whatever its status.
    listed_ids: HashSet<&'a str>,
    /// The Okta users the ledger manages (or is creating), with their Spot user.
    live_okta_ids: HashMap<&'a str, Option<&'a str>>,
}

/// What phase 1 settled, and what it left to look up in Okta.
#[derive(Debug)]
pub(super) struct Known<'a> {
    /// The Spot users decided without an Okta lookup.
    pub decisions: Vec<(&'a SpotUser, Decision)>,
    /// The Spot users to look up in Okta by email, in email order.
    pub to_look_up: Vec<(&'a SpotUser, &'a Email)>,
    /// Spot users that cannot be matched at all (no usable email).
    pub unmatched: Vec<Unmatched>,
    pub covered: Covered<'a>,
    /// Distinct emails of the unmanaged personal Spot users.
    pub unmanaged: usize,
    /// Distinct Okta users listed by the app.
    pub listed: usize,
}

/// Phase 1: classifies the app's `rows` with `rules` and decides every unmanaged personal
/// Spot user that needs no Okta lookup. Skipped outright (neither decided nor unmatched):
/// programmatic users, Spot users the ledger owns, and emails in `protected`.
pub(super) fn decide_known<'a>(
    rows: &'a [AppUserRow],
    ledger: &'a Ledger,
    spot_users: &'a [SpotUser],
    rules: &ClassifyRules,
    protected: &[Email],
) -> Known<'a> {
    let snapshot = classify(rows.to_vec(), rules);
    let provision: HashMap<&str, Role> = snapshot
        .provision
        .iter()
        .map(|d| (d.okta_user_id.as_str(), d.role))
        .collect();
    let held: HashMap<&str, &str> = snapshot
        .held
        .iter()
        .map(|h| (h.okta_user_id.as_str(), h.reason.as_str()))
        .collect();
    let absent: HashMap<&str, &str> = snapshot
        .absent
        .iter()
        .map(|a| (a.okta_user_id.as_str(), a.reason.as_str()))
        .collect();
    let mut listed_by_email: HashMap<Email, Vec<&str>> = HashMap::new();
    for row in rows {
        if let Some(email) = row.email.as_deref().and_then(Email::parse) {
            let ids = listed_by_email.entry(email).or_default();
            if !ids.contains(&row.okta_user_id.as_str()) {
                ids.push(row.okta_user_id.as_str());
            }
        }
    }
    let mut covered = Covered {
        listed_ids: rows.iter().map(|r| r.okta_user_id.as_str()).collect(),
        live_okta_ids: HashMap::new(),
    };

    // Who the ledger already covers: Spot users it owns, Okta users it manages, and emails of
    // creates still pending (the next reconcile completes those).
    let mut owned_spot_ids: HashSet<&str> = HashSet::new();
    let mut pending_emails: HashSet<&str> = HashSet::new();
    for (okta_id, entry) in &ledger.users {
        // A tombstone is a Spot user this tool owned and let go of (deleted, but Spot still
        // lists it): reconcile deletes it again; importing it would hand a leaver access back.
        owned_spot_ids.extend(entry.tombstones.iter().map(SpotUserId::as_str));
        if entry.state == EntryState::Deleted {
            continue;
        }
        if let Some(id) = entry.spot_user_id.as_deref() {
            owned_spot_ids.insert(id);
        }
        covered
            .live_okta_ids
            .insert(okta_id.as_str(), entry.spot_user_id.as_deref());
        if entry.state == EntryState::Pending {
            pending_emails.insert(entry.email.as_str());
        }
    }
    let protected: HashSet<&Email> = protected.iter().collect();

    // The unmanaged personal users, by email (sorted, so the report is stable).
    let mut by_email: BTreeMap<&Email, Vec<&SpotUser>> = BTreeMap::new();
    let mut unmatched: Vec<Unmatched> = Vec::new();
    for user in spot_users {
        if !user.is_personal() || owned_spot_ids.contains(user.user_id.as_str()) {
            continue;
        }
        match &user.email {
            Some(email) if protected.contains(email) => {}
            Some(email) => by_email.entry(email).or_default().push(user),
            None => unmatched.push(Unmatched {
                spot_user_id: user.user_id.to_string(),
                email: None,
                reason: "the Spot user has no usable email, so it cannot be matched to Okta".into(),
            }),
        }
    }

    let mut decisions: Vec<(&SpotUser, Decision)> = Vec::new();
    let mut to_look_up: Vec<(&SpotUser, &Email)> = Vec::new();
    for (&email, users) in &by_email {
        if users.len() > 1 {
            let ids: Vec<&str> = users.iter().map(|u| u.user_id.as_str()).collect();
            for user in users {
                decisions.push((
                    user,
                    Decision::Unmatched(format!(
                        "{} Spot users have this email ({}); left alone",
                        users.len(),
                        ids.join(", ")
                    )),
                ));
            }
            continue;
        }
        let user = users[0];
        if pending_emails.contains(email.as_str()) {
            decisions.push((
                user,
                Decision::Unmatched(
                    "a create for this email is pending in the state file; run `reconcile` first"
                        .into(),
                ),
            ));
            continue;
        }
        match listed_by_email.get(email).map(Vec::as_slice) {
            None | Some([]) => to_look_up.push((user, email)),
            Some([okta_id]) => {
                let decision = if let Some(&role) = provision.get(okta_id) {
                    match covered.live_okta_ids.get(okta_id) {
                        Some(other) => Decision::Unmatched(already_managed(okta_id, *other)),
                        None => Decision::Adopt {
                            okta_user_id: OktaUserId::new(*okta_id),
                            role,
                        },
                    }
                } else if let Some(reason) = held.get(okta_id) {
                    Decision::Unmatched(format!(
                        "assigned in Okta (user {okta_id}) but held: {reason}"
                    ))
                } else {
                    let why = absent.get(okta_id).copied().unwrap_or("not entitled");
                    Decision::Unmatched(format!(
                        "listed by the Okta app (user {okta_id}) but not entitled: {why}"
                    ))
                };
                decisions.push((user, decision));
            }
            Some(ids) => decisions.push((
                user,
                Decision::Unmatched(format!(
                    "{} Okta users assigned to the app have this email ({}); fix it in Okta",
                    ids.len(),
                    ids.join(", ")
                )),
            )),
        }
    }

    Known {
        decisions,
        to_look_up,
        unmatched,
        covered,
        unmanaged: by_email.len(),
        listed: snapshot.listed,
    }
}

/// The page budget of a walk of the org's user list when `k` users are to be looked up, or
/// `None` when searching each of them is the cheaper path (see [`SEARCH_THRESHOLD`]). The walk
/// reads at most `k` pages, the cost of searching everyone.
pub(super) fn walk_budget(k: usize) -> Option<u32> {
    (k > SEARCH_THRESHOLD).then(|| u32::try_from(k).unwrap_or(u32::MAX))
}

/// The walked `users` whose email is one of `wanted`, by email; the others are dropped.
pub(super) fn match_walked<'e>(
    users: Vec<OktaUser>,
    wanted: &[&'e Email],
) -> HashMap<&'e Email, Vec<OktaUser>> {
    let wanted: HashSet<&Email> = wanted.iter().copied().collect();
    let mut found: HashMap<&Email, Vec<OktaUser>> = HashMap::new();
    for user in users {
        let Some(email) = user.email.as_deref().and_then(Email::parse) else {
            continue;
        };
        if let Some(key) = wanted.get(&email) {
            found.entry(*key).or_default().push(user);
        }
    }
    found
}

/// The users a search for `email` returned whose email really is `email` (the search's
/// operator is Okta's, this is the tool's case-insensitive comparison).
pub(super) fn same_email(users: Vec<OktaUser>, email: &Email) -> Vec<OktaUser> {
    users
        .into_iter()
        .filter(|u| u.email.as_deref().and_then(Email::parse).as_ref() == Some(email))
        .collect()
}

/// Phase 2: decides every looked-up user from what `lookup` `found`, and returns all the
/// decisions sorted by email then Spot user id (the report's order), with the unmatched users
/// phase 1 could not match at all.
pub(super) fn decide_looked_up<'a>(
    known: Known<'a>,
    found: &HashMap<&Email, Vec<OktaUser>>,
    lookup: Lookup,
    rules: &ClassifyRules,
) -> (Vec<(&'a SpotUser, Decision)>, Vec<Unmatched>) {
    let Known {
        mut decisions,
        to_look_up,
        unmatched,
        covered,
        ..
    } = known;
    for (user, email) in to_look_up {
        let matches = found.get(email).map(Vec::as_slice).unwrap_or(&[]);
        decisions.push((user, decide_found(matches, lookup, rules, &covered)));
    }
    decisions.sort_by(|a, b| {
        a.0.email
            .cmp(&b.0.email)
            .then(a.0.user_id.cmp(&b.0.user_id))
    });
    (decisions, unmatched)
}

/// What to do for one Spot user, given the Okta users the lookup found with its email: none
/// and several are unmatched (never a guess), one is [`decide_unassigned`].
pub(super) fn decide_found(
    matches: &[OktaUser],
    lookup: Lookup,
    rules: &ClassifyRules,
    covered: &Covered,
) -> Decision {
    match matches {
        [] => Decision::Unmatched(match lookup {
            Lookup::Search => "no Okta user has this email (Okta's search is eventually \
                               consistent: one created minutes ago may not show yet)"
                .into(),
            Lookup::Walk => "no active Okta user has this email (Okta's user list omits \
                             deactivated users)"
                .into(),
        }),
        [okta_user] => decide_unassigned(rules, okta_user, covered),
        several => {
            let ids: Vec<&str> = several.iter().map(|u| u.id.as_str()).collect();
            Decision::Unmatched(format!(
                "{} Okta users have this email ({}); assign the right one in Okta by hand",
                several.len(),
                ids.join(", ")
            ))
        }
    }
}

/// One Okta user found by email who is not listed by the app.
fn decide_unassigned(rules: &ClassifyRules, user: &OktaUser, covered: &Covered) -> Decision {
    if let Some(problem) = &user.malformed {
        return Decision::Unmatched(format!(
            "Okta user {} could not be read: {problem}",
            user.id
        ));
    }
    if covered.listed_ids.contains(user.id.as_str()) {
        return Decision::Unmatched(format!(
            "Okta user {} is assigned to the app under another email (changed while import ran?); run import again",
            user.id
        ));
    }
    if let Some(other) = covered.live_okta_ids.get(user.id.as_str()) {
        return Decision::Unmatched(already_managed(&user.id, *other));
    }
    let status = upper(user.status.as_deref().unwrap_or(""));
    if is_one_of(&status, &rules.provision_statuses) {
        Decision::Assign {
            okta_user_id: user.id.clone(),
            status,
        }
    } else if is_one_of(&status, &rules.hold_statuses) {
        Decision::Unmatched(format!(
            "Okta user {} has status {status} (held, okta.hold_statuses): not assigned",
            user.id
        ))
    } else if status == "DEPROVISIONED" {
        Decision::Unmatched(format!(
            "Okta user {} is deactivated (status DEPROVISIONED): not assigned",
            user.id
        ))
    } else {
        Decision::Unmatched(format!(
            "Okta user {} has status {}: not active, not assigned",
            user.id,
            if status.is_empty() { "(none)" } else { &status }
        ))
    }
}

fn already_managed(okta_id: &str, spot_user_id: Option<&str>) -> String {
    format!(
        "Okta user {okta_id} already manages Spot user {}; the next reconcile settles the email change",
        spot_user_id.unwrap_or("(pending create)")
    )
}

/// One `--assign` write: assign this Okta user to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Assignment {
    pub okta_user_id: OktaUserId,
    /// The Spot user's email, for the log.
    pub email: String,
}

/// The assignments to make, in report order: every `Assign` decision with `--assign`
/// (`assign`), none without it.
pub(super) fn assignments(decisions: &[(&SpotUser, Decision)], assign: bool) -> Vec<Assignment> {
    if !assign {
        return Vec::new();
    }
    decisions
        .iter()
        .filter_map(|(user, decision)| match decision {
            Decision::Assign { okta_user_id, .. } => Some(Assignment {
                okta_user_id: okta_user_id.clone(),
                email: email_of(user),
            }),
            _ => None,
        })
        .collect()
}

/// One adoption to record in the ledger (origin `adopted`, state `managed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Adoption {
    pub okta_user_id: OktaUserId,
    pub email: String,
    pub spot_user_id: SpotUserId,
    pub role: Role,
}

/// The two kinds of step `import` takes. Not a `Change`: neither ever reaches `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImportKind {
    /// Assign the Okta user to the app (`--assign`).
    AssignInOkta,
    /// Record ownership of the Spot user (ledger only).
    Adopt,
}

/// Where a step stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepState {
    Planned,
    Applied,
    Failed(String),
}

/// One step of `import` for one Spot user, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ImportStep {
    pub kind: ImportKind,
    pub okta_user_id: OktaUserId,
    pub email: String,
    pub spot_user_id: SpotUserId,
    pub role: Role,
    pub reason: String,
    pub state: StepState,
}

impl From<ImportStep> for ActionReport {
    fn from(step: ImportStep) -> ActionReport {
        let (status, error) = match step.state {
            StepState::Planned => (ActionStatus::Planned, None),
            StepState::Applied => (ActionStatus::Applied, None),
            StepState::Failed(error) => (ActionStatus::Failed, Some(error)),
        };
        ActionReport {
            action: match step.kind {
                ImportKind::AssignInOkta => ActionKind::AssignInOkta,
                ImportKind::Adopt => ActionKind::Adopt,
            },
            email: step.email,
            okta_user_id: step.okta_user_id.into_string(),
            spot_user_id: Some(step.spot_user_id.into_string()),
            role: Some(step.role),
            reason: step.reason,
            status,
            error,
        }
    }
}

/// What the report says and what the ledger records.
#[derive(Debug)]
pub(super) struct Outcome {
    /// In decision order; an assignment that succeeded is followed by its adoption. Adoptions
    /// are `Planned` until the shell has recorded them.
    pub steps: Vec<ImportStep>,
    /// Sorted by email, then Spot user id.
    pub unmatched: Vec<Unmatched>,
    pub adoptions: Vec<Adoption>,
}

/// Phase 3: turns the sorted `decisions` (and phase 1's `unmatched`) into the report's actions
/// and unmatched list and the adoptions to record. `assigned` holds the result of each
/// assignment made, keyed by Okta user id (an admin-readable error when it failed); an
/// `Assign` decision without a result was not attempted (no `--assign`) and is reported as
/// planned. Users assigned by `import` are given `assign_role`.
pub(super) fn outcome(
    decisions: Vec<(&SpotUser, Decision)>,
    mut unmatched: Vec<Unmatched>,
    assigned: &HashMap<OktaUserId, Result<(), String>>,
    assign_role: Role,
) -> Outcome {
    let mut steps: Vec<ImportStep> = Vec::new();
    let mut adoptions: Vec<Adoption> = Vec::new();
    for (user, decision) in decisions {
        let email = email_of(user);
        match decision {
            Decision::Unmatched(reason) => unmatched.push(Unmatched {
                spot_user_id: user.user_id.to_string(),
                email: Some(email),
                reason,
            }),
            Decision::Adopt { okta_user_id, role } => {
                steps.push(step(
                    ImportKind::Adopt,
                    &email,
                    &okta_user_id,
                    &user.user_id,
                    role,
                    "existing Spot user matches a user assigned in Okta: adopted".into(),
                ));
                adoptions.push(Adoption {
                    okta_user_id,
                    email,
                    spot_user_id: user.user_id.clone(),
                    role,
                });
            }
            Decision::Assign {
                okta_user_id,
                status,
            } => {
                let mut assign = step(
                    ImportKind::AssignInOkta,
                    &email,
                    &okta_user_id,
                    &user.user_id,
                    assign_role,
                    format!(
                        "existing Spot user matches Okta user {okta_user_id} (status {status}), \
                         who is not assigned to the app"
                    ),
                );
                match assigned.get(&okta_user_id) {
                    None => {
                        assign
                            .reason
                            .push_str(": would assign (run `import --assign`)");
                        steps.push(assign);
                    }
                    Some(Ok(())) => {
                        assign.state = StepState::Applied;
                        assign
                            .reason
                            .push_str(&format!(": assigned as {assign_role}"));
                        steps.push(assign);
                        steps.push(step(
                            ImportKind::Adopt,
                            &email,
                            &okta_user_id,
                            &user.user_id,
                            assign_role,
                            "assigned in Okta by import: adopted".into(),
                        ));
                        adoptions.push(Adoption {
                            okta_user_id,
                            email,
                            spot_user_id: user.user_id.clone(),
                            role: assign_role,
                        });
                    }
                    Some(Err(error)) => {
                        assign.state = StepState::Failed(error.clone());
                        steps.push(assign);
                    }
                }
            }
        }
    }
    unmatched.sort_by(|a, b| {
        a.email
            .cmp(&b.email)
            .then(a.spot_user_id.cmp(&b.spot_user_id))
    });
    Outcome {
        steps,
        unmatched,
        adoptions,
    }
}

/// The Spot user's (normalised) email as the report shows it; empty when it has none.
fn email_of(user: &SpotUser) -> String {
    user.email
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

fn step(
    kind: ImportKind,
    email: &str,
    okta_user_id: &OktaUserId,
    spot_user_id: &SpotUserId,
    role: Role,
    reason: String,
) -> ImportStep {
    ImportStep {
        kind,
        okta_user_id: okta_user_id.clone(),
        email: email.to_string(),
        spot_user_id: spot_user_id.clone(),
        role,
        reason,
        state: StepState::Planned,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::ledger::{LedgerEntry, Origin};
    use crate::model::SpotUserKind;
    use crate::okta::classify::tests::{self as classify_tests, rules};

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    /// A direct, active assignment of Okta user `id` with this user status and app role.
    fn row(id: &str, email: &str, status: &str, role: Option<&str>) -> AppUserRow {
        let mut row = classify_tests::row(id, email, status);
        row.role = role.map(Into::into);
        row
    }

    fn spot(id: &str, email: Option<&str>) -> SpotUser {
        SpotUser {
            user_id: id.into(),
            email: email.and_then(Email::parse),
            username: email.unwrap_or(id).into(),
            kind: SpotUserKind::Personal,
        }
    }

    fn okta_user(id: &str, email: &str, status: Option<&str>) -> OktaUser {
        OktaUser {
            id: id.into(),
            status: status.map(Into::into),
            email: Some(email.into()),
            malformed: None,
        }
    }

    /// A ledger of `(okta id, email, spot id, state)` entries.
    fn ledger(entries: &[(&str, &str, Option<&str>, EntryState)]) -> Ledger {
        let mut ledger = Ledger::default();
        for &(okta_id, email, spot_id, state) in entries {
            let entry = LedgerEntry {
                email: email.into(),
                spot_user_id: spot_id.map(Into::into),
                tombstones: Vec::new(),
                role: Some(Role::Viewer),
                access: crate::access::ACCESS_MODEL,
                origin: Origin::Created,
                state,
                updated_at: Utc::now(),
            };
            ledger.users.insert(okta_id.into(), entry);
        }
        ledger
    }

    /// Phase 1, by Spot user id: the decisions, the users left to look up, the unmatched.
    struct Phase1 {
        decisions: Vec<(String, Decision)>,
        looked_up: Vec<String>,
        unmatched: Vec<(String, String)>,
    }

    fn phase1(
        rows: &[AppUserRow],
        ledger: &Ledger,
        spot_users: &[SpotUser],
        protected: &[&str],
    ) -> Phase1 {
        let protected: Vec<Email> = protected.iter().map(|e| email(e)).collect();
        let known = decide_known(rows, ledger, spot_users, &rules(), &protected);
        Phase1 {
            decisions: known
                .decisions
                .into_iter()
                .map(|(u, d)| (u.user_id.to_string(), d))
                .collect(),
            looked_up: known
                .to_look_up
                .iter()
                .map(|(u, _)| u.user_id.to_string())
                .collect(),
            unmatched: known
                .unmatched
                .into_iter()
                .map(|u| (u.spot_user_id, u.reason))
                .collect(),
        }
    }

    impl Phase1 {
        /// The one decision phase 1 made, for Spot user `id`.
        fn only(&self, id: &str) -> &Decision {
            assert_eq!(self.decisions.len(), 1, "{:?}", self.decisions);
            assert_eq!(self.decisions[0].0, id);
            assert!(self.looked_up.is_empty(), "{:?}", self.looked_up);
            &self.decisions[0].1
        }
    }

    /// The reason of an `Unmatched` decision, after checking it contains `fragment`.
    fn unmatched_with<'d>(decision: &'d Decision, fragment: &str) -> &'d str {
        match decision {
            Decision::Unmatched(reason) => {
                assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}");
                reason
            }
            other => panic!("expected unmatched ({fragment}), got {other:?}"),
        }
    }

    // Phase 1 -----------------------------------------------------------------------------

    #[test]
    fn a_user_assigned_and_entitled_in_okta_is_adopted_with_its_okta_role() {
        let rows = [row("00u1", "Alice@Example.com", "ACTIVE", Some("editor"))];
        let spot_users = [spot("s1", Some("alice@example.com"))];
        let p = phase1(&rows, &Ledger::default(), &spot_users, &[]);
        assert_eq!(
            p.only("s1"),
            &Decision::Adopt {
                okta_user_id: "00u1".into(),
                role: Role::Editor
            }
        );
        assert!(p.unmatched.is_empty());
    }

    #[test]
    fn a_user_assigned_but_held_is_unmatched_with_the_hold_reason() {
        let rows = [row("00u1", "alice@example.com", "SUSPENDED", None)];
        let spot_users = [spot("s1", Some("alice@example.com"))];
        let p = phase1(&rows, &Ledger::default(), &spot_users, &[]);
        unmatched_with(
            p.only("s1"),
            "assigned in Okta (user 00u1) but held: status SUSPENDED",
        );
    }

    #[test]
    fn a_user_listed_but_not_entitled_is_unmatched_with_why() {
        let mut inactive = row("00u1", "alice@example.com", "ACTIVE", None);
        inactive.app_user_status = Some("INACTIVE".into());
        let spot_users = [spot("s1", Some("alice@example.com"))];
        let p = phase1(&[inactive], &Ledger::default(), &spot_users, &[]);
        unmatched_with(
            p.only("s1"),
            "listed by the Okta app (user 00u1) but not entitled: app assignment status INACTIVE",
        );

        let deprovisioned = row("00u1", "alice@example.com", "DEPROVISIONED", None);
        let p = phase1(&[deprovisioned], &Ledger::default(), &spot_users, &[]);
        unmatched_with(p.only("s1"), "not entitled: status DEPROVISIONED in Okta");
    }

    #[test]
    fn two_spot_users_with_one_email_are_both_left_alone() {
        let rows = [row("00u1", "alice@example.com", "ACTIVE", None)];
        let spot_users = [
            spot("s2", Some("ALICE@example.com")),
            spot("s1", Some("alice@example.com")),
        ];
        let p = phase1(&rows, &Ledger::default(), &spot_users, &[]);
        assert_eq!(p.decisions.len(), 2, "{:?}", p.decisions);
        for (_, decision) in &p.decisions {
            unmatched_with(
                decision,
                "2 Spot users have this email (s2, s1); left alone",
            );
        }
        assert!(p.looked_up.is_empty());
    }

    #[test]
    fn a_pending_create_for_the_email_is_left_to_reconcile() {
        let ledger = ledger(&[("00u9", "alice@example.com", None, EntryState::Pending)]);
        let rows = [row("00u1", "alice@example.com", "ACTIVE", None)];
        let spot_users = [spot("s1", Some("alice@example.com"))];
        let p = phase1(&rows, &ledger, &spot_users, &[]);
        unmatched_with(p.only("s1"), "a create for this email is pending");
    }

    #[test]
    fn an_okta_user_the_ledger_manages_under_another_email_is_not_adopted_again() {
        let ledger = ledger(&[(
            "00u1",
            "old@example.com",
            Some("s-old"),
            EntryState::Managed,
        )]);
        let rows = [row("00u1", "alice@example.com", "ACTIVE", None)];
        let spot_users = [spot("s1", Some("alice@example.com"))];
        let p = phase1(&rows, &ledger, &spot_users, &[]);
        unmatched_with(
            p.only("s1"),
            "Okta user 00u1 already manages Spot user s-old",
        );
    }

    #[test]
    fn several_okta_users_assigned_with_one_email_are_not_guessed_between() {
        let rows = [
            row("00u1", "alice@example.com", "ACTIVE", None),
            row("00u2", "Alice@example.com", "ACTIVE", None),
        ];
        let spot_users = [spot("s1", Some("alice@example.com"))];
        let p = phase1(&rows, &Ledger::default(), &spot_users, &[]);
        unmatched_with(
            p.only("s1"),
            "2 Okta users assigned to the app have this email (00u1, 00u2)",
        );
    }

    #[test]
    fn a_spot_user_the_app_does_not_list_is_looked_up() {
        let rows = [row("00u1", "alice@example.com", "ACTIVE", None)];
        let spot_users = [
            spot("s2", Some("bob@example.com")),
            spot("s3", Some("anna@example.com")),
        ];
        let p = phase1(&rows, &Ledger::default(), &spot_users, &[]);
        assert!(p.decisions.is_empty(), "{:?}", p.decisions);
        assert_eq!(p.looked_up, ["s3", "s2"], "in email order");
    }

    #[test]
    fn a_spot_user_the_ledger_owns_is_skipped_unless_the_entry_is_deleted() {
        let ledger = ledger(&[
            ("00u1", "alice@example.com", Some("s1"), EntryState::Managed),
            ("00u2", "bob@example.com", Some("s2"), EntryState::Deleted),
        ]);
        let rows = [row("00u1", "alice@example.com", "ACTIVE", None)];
        let spot_users = [
            spot("s1", Some("alice@example.com")),
            spot("s2", Some("bob@example.com")),
        ];
        let p = phase1(&rows, &ledger, &spot_users, &[]);
        assert!(p.decisions.is_empty(), "{:?}", p.decisions);
        assert!(p.unmatched.is_empty(), "{:?}", p.unmatched);
        assert_eq!(p.looked_up, ["s2"]);
    }

    #[test]
    fn a_protected_email_is_skipped() {
        let rows = [row("00u1", "boss@example.com", "ACTIVE", None)];
        let spot_users = [
            spot("s1", Some("Boss@example.com")),
            spot("s2", Some("bob@example.com")),
        ];
        let p = phase1(
            &rows,
            &Ledger::default(),
            &spot_users,
            &["boss@example.com"],
        );
        assert!(p.decisions.is_empty(), "{:?}", p.decisions);
        assert!(p.unmatched.is_empty(), "{:?}", p.unmatched);
        assert_eq!(p.looked_up, ["s2"]);
    }

    /// A Spot user this tool deleted (its DELETE did nothing, so Spot still lists it) is a
    /// tombstone: import leaves it to reconcile instead of handing it to the leaver again.
    #[test]
    fn a_tombstone_still_listed_is_not_imported() {
        let mut ledger = ledger(&[("00u1", "ann@example.com", None, EntryState::Deleted)]);
        ledger.users.get_mut("00u1").unwrap().tombstones = vec!["s1".into()];
        let spot_users = [spot("s1", Some("ann@example.com"))];
        let p = phase1(&[], &ledger, &spot_users, &[]);
        assert!(p.decisions.is_empty(), "{:?}", p.decisions);
        assert!(p.looked_up.is_empty(), "{:?}", p.looked_up);
        assert!(p.unmatched.is_empty(), "{:?}", p.unmatched);
    }

    #[test]
    fn programmatic_users_are_skipped() {
        let rows = [row("00u1", "ci@example.com", "ACTIVE", None)];
        let mut bot = spot("s1", Some("ci@example.com"));
        bot.kind = SpotUserKind::Programmatic;
        let mut unknown = spot("s2", None);
        unknown.kind = SpotUserKind::Unknown;
        let spot_users = [
            bot,
            unknown,
            spot("pu-3", Some("ci@example.com")),
            spot("s4", Some("bob@example.com")),
        ];
        let p = phase1(&rows, &Ledger::default(), &spot_users, &[]);
        assert!(p.decisions.is_empty(), "{:?}", p.decisions);
        assert!(p.unmatched.is_empty(), "{:?}", p.unmatched);
        assert_eq!(p.looked_up, ["s4"]);
    }

    #[test]
    fn a_spot_user_without_an_email_is_unmatched() {
        let spot_users = [spot("s1", None), spot("s2", Some("not an email"))];
        let p = phase1(&[], &Ledger::default(), &spot_users, &[]);
        assert!(p.decisions.is_empty() && p.looked_up.is_empty());
        assert_eq!(p.unmatched.len(), 2, "{:?}", p.unmatched);
        for (_, reason) in &p.unmatched {
            assert!(reason.contains("no usable email"), "{reason}");
        }
    }

    // Lookup -------------------------------------------------------------------------------

    #[test]
    fn the_walk_is_tried_only_above_the_threshold_with_k_pages() {
        assert_eq!(walk_budget(0), None);
        assert_eq!(walk_budget(SEARCH_THRESHOLD), None);
        assert_eq!(
            walk_budget(SEARCH_THRESHOLD + 1),
            u32::try_from(SEARCH_THRESHOLD + 1).ok()
        );
        assert_eq!(walk_budget(2_000), Some(2_000));
    }

    #[test]
    fn walked_users_are_matched_by_email_case_insensitively() {
        let (alice, bob) = (email("alice@example.com"), email("bob@example.com"));
        let users = vec![
            okta_user("00u1", "ALICE@example.com", Some("ACTIVE")),
            okta_user("00u2", "carol@example.com", Some("ACTIVE")),
            OktaUser {
                id: "00u3".into(),
                ..OktaUser::default()
            },
            okta_user("00u4", "alice@example.com", Some("STAGED")),
        ];
        let found = match_walked(users, &[&alice, &bob]);
        let ids: Vec<&str> = found[&alice].iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["00u1", "00u4"]);
        assert!(!found.contains_key(&bob));
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn a_search_keeps_only_users_with_exactly_that_email() {
        let users = vec![
            okta_user("00u1", "Alice@Example.com", Some("ACTIVE")),
            okta_user("00u2", "alice@example.org", Some("ACTIVE")),
        ];
        let kept = same_email(users, &email("alice@example.com"));
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "00u1");
    }

    // Phase 2 ------------------------------------------------------------------------------

    fn decide_one(matches: &[OktaUser], lookup: Lookup) -> Decision {
        let covered = Covered {
            listed_ids: HashSet::from(["00u8"]),
            live_okta_ids: HashMap::from([("00u7", Some("s-old")), ("00u6", None)]),
        };
        decide_found(matches, lookup, &rules(), &covered)
    }

    #[test]
    fn no_okta_user_found_is_unmatched_worded_for_the_lookup() {
        unmatched_with(
            &decide_one(&[], Lookup::Search),
            "no Okta user has this email (Okta's search is eventually consistent",
        );
        unmatched_with(
            &decide_one(&[], Lookup::Walk),
            "no active Okta user has this email (Okta's user list omits deactivated users)",
        );
    }

    /// The decision for one Okta user `id` found by a search, with this status.
    fn decide_status(id: &str, status: Option<&str>) -> Decision {
        decide_one(&[okta_user(id, "a@example.com", status)], Lookup::Search)
    }

    #[test]
    fn one_active_okta_user_found_is_to_be_assigned() {
        assert_eq!(
            decide_status("00u5", Some("active")),
            Decision::Assign {
                okta_user_id: "00u5".into(),
                status: "ACTIVE".into()
            }
        );
    }

    #[test]
    fn one_deactivated_okta_user_found_is_not_assigned() {
        unmatched_with(
            &decide_status("00u5", Some("DEPROVISIONED")),
            "Okta user 00u5 is deactivated (status DEPROVISIONED): not assigned",
        );
    }

    #[test]
    fn one_held_okta_user_found_is_not_assigned() {
        unmatched_with(
            &decide_status("00u5", Some("suspended")),
            "Okta user 00u5 has status SUSPENDED (held, okta.hold_statuses): not assigned",
        );
    }

    #[test]
    fn an_okta_user_found_with_another_or_no_status_is_not_assigned() {
        let odd = decide_status("00u5", Some("NEW_STATUS"));
        unmatched_with(&odd, "has status NEW_STATUS: not active");
        unmatched_with(
            &decide_status("00u5", None),
            "has status (none): not active",
        );
    }

    #[test]
    fn several_okta_users_found_are_not_guessed_between() {
        let users = [
            okta_user("00u5", "a@example.com", Some("ACTIVE")),
            okta_user("00u4", "A@example.com", Some("ACTIVE")),
        ];
        unmatched_with(
            &decide_one(&users, Lookup::Walk),
            "2 Okta users have this email (00u5, 00u4); assign the right one in Okta by hand",
        );
    }

    #[test]
    fn an_okta_user_found_whom_the_ledger_manages_is_not_assigned() {
        let managed = decide_status("00u7", Some("ACTIVE"));
        unmatched_with(&managed, "Okta user 00u7 already manages Spot user s-old");
        let pending = decide_status("00u6", Some("ACTIVE"));
        unmatched_with(
            &pending,
            "Okta user 00u6 already manages Spot user (pending create)",
        );
    }

    #[test]
    fn an_okta_user_found_whom_the_app_lists_or_who_is_malformed_is_not_assigned() {
        let listed = decide_status("00u8", Some("ACTIVE"));
        unmatched_with(
            &listed,
            "Okta user 00u8 is assigned to the app under another email",
        );
        let mut malformed = okta_user("00u5", "a@example.com", Some("ACTIVE"));
        malformed.malformed = Some("status is not a string".into());
        unmatched_with(
            &decide_one(&[malformed], Lookup::Search),
            "Okta user 00u5 could not be read: status is not a string",
        );
    }

    #[test]
    fn looked_up_users_join_the_known_decisions_in_email_order() {
        let rows = [row("00u1", "carol@example.com", "ACTIVE", None)];
        let spot_users = [
            spot("s3", Some("carol@example.com")),
            spot("s2", Some("bob@example.com")),
            spot("s1", Some("alice@example.com")),
            spot("s0", None),
        ];
        let ledger = Ledger::default();
        let known = decide_known(&rows, &ledger, &spot_users, &rules(), &[]);
        let bob = email("bob@example.com");
        let found = HashMap::from([(&bob, vec![okta_user("00u2", "bob@example.com", None)])]);
        let (decisions, unmatched) = decide_looked_up(known, &found, Lookup::Search, &rules());
        let ids: Vec<&str> = decisions.iter().map(|(u, _)| u.user_id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2", "s3"]);
        unmatched_with(&decisions[0].1, "no Okta user has this email");
        unmatched_with(&decisions[1].1, "Okta user 00u2 has status (none)");
        assert!(matches!(decisions[2].1, Decision::Adopt { .. }));
        assert_eq!(unmatched.len(), 1);
        assert_eq!(unmatched[0].spot_user_id, "s0");
    }

    // Phase 3 ------------------------------------------------------------------------------

    fn assign(okta_user_id: &str) -> Decision {
        Decision::Assign {
            okta_user_id: okta_user_id.into(),
            status: "ACTIVE".into(),
        }
    }

    #[test]
    fn assignments_are_made_only_with_assign() {
        let (a, b, c) = (
            spot("s1", Some("a@example.com")),
            spot("s2", Some("b@example.com")),
            spot("s3", Some("c@example.com")),
        );
        let decisions = vec![
            (&a, assign("00u1")),
            (&b, Decision::Unmatched("no".into())),
            (&c, assign("00u3")),
        ];
        assert!(assignments(&decisions, false).is_empty());
        let made = assignments(&decisions, true);
        assert_eq!(
            made,
            [
                Assignment {
                    okta_user_id: "00u1".into(),
                    email: "a@example.com".into()
                },
                Assignment {
                    okta_user_id: "00u3".into(),
                    email: "c@example.com".into()
                }
            ]
        );
    }

    #[test]
    fn without_assign_an_assignment_is_planned_and_an_adoption_recorded() {
        let (a, b) = (
            spot("s1", Some("a@example.com")),
            spot("s2", Some("b@example.com")),
        );
        let decisions = vec![
            (
                &a,
                Decision::Adopt {
                    okta_user_id: "00u1".into(),
                    role: Role::Editor,
                },
            ),
            (&b, assign("00u2")),
        ];
        let out = outcome(decisions, Vec::new(), &HashMap::new(), Role::Viewer);
        assert_eq!(out.steps.len(), 2, "{:?}", out.steps);
        let (adopt, planned) = (&out.steps[0], &out.steps[1]);
        assert_eq!(adopt.kind, ImportKind::Adopt);
        assert_eq!(adopt.state, StepState::Planned);
        assert_eq!(adopt.role, Role::Editor);
        assert_eq!(planned.kind, ImportKind::AssignInOkta);
        assert_eq!(planned.state, StepState::Planned);
        assert!(
            planned.reason.contains("(status ACTIVE)")
                && planned
                    .reason
                    .ends_with("would assign (run `import --assign`)"),
            "{}",
            planned.reason
        );
        assert_eq!(
            out.adoptions,
            [Adoption {
                okta_user_id: "00u1".into(),
                email: "a@example.com".into(),
                spot_user_id: "s1".into(),
                role: Role::Editor
            }]
        );
    }

    #[test]
    fn a_failed_assignment_fails_alone_and_a_made_one_is_adopted() {
        let (a, b) = (
            spot("s1", Some("a@example.com")),
            spot("s2", Some("b@example.com")),
        );
        let decisions = vec![(&a, assign("00u1")), (&b, assign("00u2"))];
        let assigned = HashMap::from([
            (OktaUserId::new("00u1"), Err("Okta refused".to_string())),
            (OktaUserId::new("00u2"), Ok(())),
        ]);
        let out = outcome(decisions, Vec::new(), &assigned, Role::Editor);
        let kinds: Vec<(ImportKind, StepState, &str)> = out
            .steps
            .iter()
            .map(|a| (a.kind, a.state.clone(), a.okta_user_id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    ImportKind::AssignInOkta,
                    StepState::Failed("Okta refused".into()),
                    "00u1"
                ),
                (ImportKind::AssignInOkta, StepState::Applied, "00u2"),
                (ImportKind::Adopt, StepState::Planned, "00u2"),
            ]
        );
        assert!(out.steps[1].reason.ends_with(": assigned as editor"));
        assert_eq!(out.steps[2].role, Role::Editor);
        assert_eq!(out.adoptions.len(), 1);
        assert_eq!(out.adoptions[0].okta_user_id, "00u2");
        assert_eq!(out.adoptions[0].role, Role::Editor);
    }

    #[test]
    fn unmatched_users_are_listed_by_email_with_the_no_email_ones_first() {
        let (a, b) = (
            spot("s2", Some("b@example.com")),
            spot("s1", Some("a@example.com")),
        );
        let decisions = vec![
            (&a, Decision::Unmatched("why b".into())),
            (&b, Decision::Unmatched("why a".into())),
        ];
        let no_email = Unmatched {
            spot_user_id: "s0".into(),
            email: None,
            reason: "no usable email".into(),
        };
        let out = outcome(decisions, vec![no_email], &HashMap::new(), Role::Viewer);
        assert!(out.steps.is_empty() && out.adoptions.is_empty());
        let listed: Vec<(&str, Option<&str>, &str)> = out
            .unmatched
            .iter()
            .map(|u| {
                let email = u.email.as_deref();
                (u.spot_user_id.as_str(), email, u.reason.as_str())
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("s0", None, "no usable email"),
                ("s1", Some("a@example.com"), "why a"),
                ("s2", Some("b@example.com"), "why b"),
            ]
        );
    }
}
