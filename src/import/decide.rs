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
use crate::ledger::{EntryState, Ledger, Origin};
use crate::model::{AppUserRow, Email, Role, SpotUser};
use crate::okta::classify::{classify, ClassifyRules};
use crate::okta::parse::OktaUser;
use crate::plan::{Action, ActionDetail, ActionKind, ActionStatus};
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
        okta_user_id: String,
        role: Role,
    },
    Assign {
        okta_user_id: String,
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
                spot_user_id: user.user_id.clone(),
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
                            okta_user_id: okta_id.to_string(),
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
    let status = user.status.as_deref().unwrap_or("").to_ascii_uppercase();
    if rules.provision_statuses.contains(&status) {
        Decision::Assign {
            okta_user_id: user.id.clone(),
            status,
        }
    } else if rules.hold_statuses.contains(&status) {
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
    pub okta_user_id: String,
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
    pub okta_user_id: String,
    pub email: String,
    pub spot_user_id: String,
    pub role: Role,
}

/// What the report says and what the ledger records.
#[derive(Debug)]
pub(super) struct Outcome {
    /// In decision order; an assignment that succeeded is followed by its adoption. Adoptions
    /// are `Planned` until the shell has recorded them.
    pub actions: Vec<Action>,
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
    assigned: &HashMap<String, Result<(), String>>,
    assign_role: Role,
) -> Outcome {
    let mut actions: Vec<Action> = Vec::new();
    let mut adoptions: Vec<Adoption> = Vec::new();
    for (user, decision) in decisions {
        let email = email_of(user);
        match decision {
            Decision::Unmatched(reason) => unmatched.push(Unmatched {
                spot_user_id: user.user_id.clone(),
                email: Some(email),
                reason,
            }),
            Decision::Adopt { okta_user_id, role } => {
                actions.push(action(
                    ActionKind::Adopt,
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
                let mut assign = action(
                    ActionKind::AssignInOkta,
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
                        actions.push(assign);
                    }
                    Some(Ok(())) => {
                        assign.status = ActionStatus::Applied;
                        assign
                            .reason
                            .push_str(&format!(": assigned as {assign_role}"));
                        actions.push(assign);
                        actions.push(action(
                            ActionKind::Adopt,
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
                        assign.status = ActionStatus::Failed;
                        assign.error = Some(error.clone());
                        actions.push(assign);
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
        actions,
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

fn action(
    kind: ActionKind,
    email: &str,
    okta_user_id: &str,
    spot_user_id: &str,
    role: Role,
    reason: String,
) -> Action {
    Action {
        action: kind,
        email: email.to_string(),
        okta_user_id: okta_user_id.to_string(),
        spot_user_id: Some(spot_user_id.to_string()),
        role: Some(role),
        reason,
        status: ActionStatus::Planned,
        error: None,
        detail: ActionDetail {
            email_display: email.to_string(),
            origin: (kind == ActionKind::Adopt).then_some(Origin::Adopted),
            ..ActionDetail::default()
        },
    }
}

