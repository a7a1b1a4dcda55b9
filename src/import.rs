//! `import`: hands the Spot users that already exist over to Okta, so the tool can manage them
//! without recreating them (a recreate would lose their API tokens and settings).
//!
//! It owns the import workflow: list the Spot organization's personal users the ledger does
//! not manage, match each to an Okta user by email (case-insensitively) with as few Okta calls
//! as it can (see [`SEARCH_THRESHOLD`]), then
//! - a user already assigned to the app (and entitled) is **adopted**: ledger only, recorded
//!   exactly like `reconcile`'s adoption (origin `adopted`, state `managed`, the Okta role);
//! - an active Okta user who is not assigned is **assigned** to the app with `--assign`
//!   (`POST /api/v1/apps/{appId}/users`, scope `USER`, the role in the app-user profile), then
//!   adopted; without `--assign` it is reported as a planned `assign_in_okta`;
//! - anything else (no Okta user, several with one email, a held or deactivated one, a Spot
//!   user without a usable email) is listed in `unmatched` with the reason and left alone.
//!
//! It must never:
//! - write anything (Okta assignment or ledger) before every read has completed: a failed or
//!   partial read aborts the import with nothing changed;
//! - make any Spot call other than the user list (Spot users are never changed by `import`);
//! - list, adopt or assign a programmatic user, a user in `sync.protected_emails`, or a Spot
//!   user the ledger already owns;
//! - assign an Okta user whose status is not one of `okta.provision_statuses`, or guess
//!   between several Okta users sharing an email.
//!
//! One failed assignment is a failed action; the others go on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use tracing::{info, warn};

use crate::apply::{entry as ledger_entry, LedgerWriter};
use crate::config::Settings;
use crate::ledger::{EntryState, LedgerStore, Origin};
use crate::model::{Email, IdentitySource, Role, SpotDirectory, SpotUser};
use crate::okta::classify::classify;
use crate::okta::client::{OktaClient, USERS_PAGE_SIZE};
use crate::okta::parse::OktaUser;
use crate::plan::{Action, ActionDetail, ActionKind, ActionStatus, Plan};
use crate::report::{Mode, Report, Unmatched};
use crate::Error;

/// Up to this many Spot users left to look up in Okta, `import` searches Okta once per user
/// (`GET /api/v1/users?search=profile.email eq "…"`); above it, it walks the whole user list
/// once (`GET /api/v1/users?limit=200`, every page) and matches locally.
///
/// Why 20: searching costs one call per user, *k*; the walk costs ⌈*N*/200⌉ calls for an org of
/// *N* users (200 is the list's maximum page size), whatever *k* is. Okta has no call that
/// gives *N* up front, so the choice is made on *k* alone: the walk is the cheaper path
/// exactly when *k* > ⌈*N*/200⌉, and with *k* = 20 that holds for every org of up to 4,000
/// users — the size of most orgs that use Spot's app. Both paths draw on the same rate-limit
/// bucket (`/api/v1/users`, 600/min, half of it for this token by default), so what matters is
/// the number of calls alone. Users already assigned to the app need no call at all: they are
/// matched against the app's assignment list, which `import` reads anyway.
///
/// The walk is also bounded: it stops after *k* pages (the cost of searching everyone) and
/// falls back to searching, so a large org never costs more than 2*k* calls.
///
/// Search is served from an eventually consistent index (okta-api.md §1.4, §8.2): an Okta
/// user created in the last moments may not be found yet. Such a user is reported unmatched
/// (never guessed at), and running `import` again later picks it up.
pub const SEARCH_THRESHOLD: usize = 20;

/// `import [--assign] [--role viewer|editor]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Assign active, unassigned Okta users to the app (otherwise they are only reported).
    pub assign: bool,
    /// The role given to users assigned by `--assign`; `sync.default_role` when `None`.
    pub role: Option<Role>,
}

/// The Okta calls `import` needs beyond the assignment read.
pub trait OktaUserDirectory: IdentitySource {
    /// Every Okta user whose `profile.email` equals `email` (case-insensitively).
    fn search_users_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Vec<OktaUser>, Error>> + Send;
    /// The org's users (without `DEPROVISIONED` ones); `None` when `max_pages` pages were read
    /// and more remain.
    fn list_org_users(
        &self,
        max_pages: Option<u32>,
    ) -> impl Future<Output = Result<Option<Vec<OktaUser>>, Error>> + Send;
    /// Assigns the user to the app directly with `role`.
    fn assign_user(
        &self,
        okta_user_id: &str,
        role: Role,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl OktaUserDirectory for OktaClient {
    async fn search_users_by_email(&self, email: &str) -> Result<Vec<OktaUser>, Error> {
        OktaClient::search_users_by_email(self, email).await
    }

    async fn list_org_users(&self, max_pages: Option<u32>) -> Result<Option<Vec<OktaUser>>, Error> {
        OktaClient::list_org_users(self, max_pages).await
    }

    async fn assign_user(&self, okta_user_id: &str, role: Role) -> Result<(), Error> {
        OktaClient::assign_user(self, okta_user_id, role).await
    }
}

/// How the unassigned Spot users were looked up in Okta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Search,
    Walk,
}

/// What was decided for one unmanaged Spot user.
enum Decision {
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

/// Runs `import`. Reads first (the app's assignments, the Spot users, then the Okta users that
/// are needed); any failed read returns an error before anything is written.
pub async fn run_import<O: OktaUserDirectory, D: SpotDirectory>(
    settings: &Settings,
    okta: &O,
    spot: &D,
    store: &LedgerStore,
    options: &ImportOptions,
) -> Result<Report, Error> {
    let ledger = store.load()?;
    let (rows, spot_users) = tokio::try_join!(okta.read_assignments(), spot.list_users())?;
    let snapshot = classify(rows.clone(), &settings.classify_rules());

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
    for row in &rows {
        if let Some(email) = row.email.as_deref().and_then(Email::parse) {
            let ids = listed_by_email.entry(email).or_default();
            if !ids.contains(&row.okta_user_id.as_str()) {
                ids.push(row.okta_user_id.as_str());
            }
        }
    }
    let listed_ids: HashSet<&str> = rows.iter().map(|r| r.okta_user_id.as_str()).collect();

    // Who the ledger already covers: Spot users it owns, Okta users it manages, and emails of
    // creates still pending (the next reconcile completes those).
    let mut owned_spot_ids: HashSet<&str> = HashSet::new();
    let mut live_okta_ids: HashMap<&str, Option<&str>> = HashMap::new();
    let mut pending_emails: HashSet<&str> = HashSet::new();
    for (okta_id, entry) in &ledger.users {
        if entry.state == EntryState::Deleted {
            continue;
        }
        if let Some(id) = entry.spot_user_id.as_deref() {
            owned_spot_ids.insert(id);
        }
        live_okta_ids.insert(okta_id.as_str(), entry.spot_user_id.as_deref());
        if entry.state == EntryState::Pending {
            pending_emails.insert(entry.email.as_str());
        }
    }
    let protected: HashSet<&Email> = settings.sync.protected_emails.iter().collect();

    // The unmanaged personal users, by email (sorted, so the report is stable).
    let mut by_email: BTreeMap<Email, Vec<&SpotUser>> = BTreeMap::new();
    let mut unmatched: Vec<Unmatched> = Vec::new();
    for user in &spot_users {
        if !user.is_personal() || owned_spot_ids.contains(user.user_id.as_str()) {
            continue;
        }
        match &user.email {
            Some(email) if protected.contains(email) => {}
            Some(email) => by_email.entry(email.clone()).or_default().push(user),
            None => unmatched.push(Unmatched {
                spot_user_id: user.user_id.clone(),
                email: None,
                reason: "the Spot user has no usable email, so it cannot be matched to Okta".into(),
            }),
        }
    }

    let mut decisions: Vec<(&SpotUser, Decision)> = Vec::new();
    let mut to_look_up: Vec<(&SpotUser, &Email)> = Vec::new();
    for (email, users) in &by_email {
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
                    match live_okta_ids.get(okta_id) {
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

    // Look up the rest: per-user searches below the threshold, one walk above it.
    let mut found: HashMap<&Email, Vec<OktaUser>> = HashMap::new();
    let mut lookup = Lookup::Search;
    if to_look_up.len() > SEARCH_THRESHOLD {
        let wanted: HashSet<&Email> = to_look_up.iter().map(|(_, e)| *e).collect();
        let max_pages = u32::try_from(to_look_up.len()).unwrap_or(u32::MAX);
        if let Some(users) = okta.list_org_users(Some(max_pages)).await? {
            lookup = Lookup::Walk;
            for user in users {
                let Some(email) = user.email.as_deref().and_then(Email::parse) else {
                    continue;
                };
                if let Some(key) = wanted.get(&email) {
                    found.entry(*key).or_default().push(user);
                }
            }
        } else {
            info!(
                pages = max_pages,
                "the Okta user list is longer than searching each user would cost; searching instead"
            );
        }
    }
    if lookup == Lookup::Search {
        for (_, email) in &to_look_up {
            let users: Vec<OktaUser> = okta
                .search_users_by_email(email.as_str())
                .await?
                .into_iter()
                .filter(|u| u.email.as_deref().and_then(Email::parse).as_ref() == Some(*email))
                .collect();
            found.insert(*email, users);
        }
    }
    info!(
        unmanaged = by_email.len(),
        looked_up = to_look_up.len(),
        lookup = ?lookup,
        page_size = USERS_PAGE_SIZE,
        "import: read complete"
    );

    for (user, email) in &to_look_up {
        let matches = found.get(email).map(Vec::as_slice).unwrap_or(&[]);
        let decision = match matches {
            [] => Decision::Unmatched(match lookup {
                Lookup::Search => "no Okta user has this email (Okta's search is eventually \
                                   consistent: one created minutes ago may not show yet)"
                    .into(),
                Lookup::Walk => "no active Okta user has this email (Okta's user list omits \
                                 deactivated users)"
                    .into(),
            }),
            [okta_user] => decide_unassigned(settings, okta_user, &listed_ids, &live_okta_ids),
            several => {
                let ids: Vec<&str> = several.iter().map(|u| u.id.as_str()).collect();
                Decision::Unmatched(format!(
                    "{} Okta users have this email ({}); assign the right one in Okta by hand",
                    several.len(),
                    ids.join(", ")
                ))
            }
        };
        decisions.push((user, decision));
    }

    // Every read is done: now the writes, Okta assignments first, then one ledger update.
    let assign_role = options.role.unwrap_or(settings.sync.default_role);
    let mut actions: Vec<Action> = Vec::new();
    let mut adopted: Vec<(String, String, String, Role)> = Vec::new(); // okta id, email, spot id, role
    decisions.sort_by(|a, b| {
        a.0.email
            .cmp(&b.0.email)
            .then(a.0.user_id.cmp(&b.0.user_id))
    });
    for (user, decision) in decisions {
        let email = user
            .email
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
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
                adopted.push((okta_user_id, email, user.user_id.clone(), role));
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
                if !options.assign {
                    assign
                        .reason
                        .push_str(": would assign (run `import --assign`)");
                    actions.push(assign);
                    continue;
                }
                match okta.assign_user(&okta_user_id, assign_role).await {
                    Ok(()) => {
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
                        adopted.push((okta_user_id, email, user.user_id.clone(), assign_role));
                    }
                    Err(e) => {
                        let error = describe_assign_error(&e, &settings.okta.role_attribute);
                        warn!(email = %email, okta_user_id = %okta_user_id, "import: {error}");
                        assign.status = ActionStatus::Failed;
                        assign.error = Some(error);
                        actions.push(assign);
                    }
                }
            }
        }
    }

    if !adopted.is_empty() {
        let writer = LedgerWriter::new(store.clone(), ledger);
        writer.update(|l| {
            for (okta_id, email, spot_id, role) in &adopted {
                l.users.insert(
                    okta_id.clone(),
                    ledger_entry(
                        email,
                        Some(spot_id.clone()),
                        Some(*role),
                        Origin::Adopted,
                        EntryState::Managed,
                    ),
                );
            }
        })?;
        for action in actions.iter_mut().filter(|a| a.action == ActionKind::Adopt) {
            action.status = ActionStatus::Applied;
        }
    }

    let plan = Plan {
        okta_users: snapshot.listed,
        spot_users: spot_users.len(),
        actions,
        ..Plan::default()
    };
    let mut report = Report::new(Mode::Import, plan);
    unmatched.sort_by(|a, b| {
        a.email
            .cmp(&b.email)
            .then(a.spot_user_id.cmp(&b.spot_user_id))
    });
    report.unmatched = Some(unmatched);
    Ok(report)
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

fn already_managed(okta_id: &str, spot_user_id: Option<&str>) -> String {
    format!(
        "Okta user {okta_id} already manages Spot user {}; the next reconcile settles the email change",
        spot_user_id.unwrap_or("(pending create)")
    )
}

/// One Okta user found by email who is not listed by the app.
fn decide_unassigned(
    settings: &Settings,
    user: &OktaUser,
    listed_ids: &HashSet<&str>,
    live_okta_ids: &HashMap<&str, Option<&str>>,
) -> Decision {
    if let Some(problem) = &user.malformed {
        return Decision::Unmatched(format!(
            "Okta user {} could not be read: {problem}",
            user.id
        ));
    }
    if listed_ids.contains(user.id.as_str()) {
        return Decision::Unmatched(format!(
            "Okta user {} is assigned to the app under another email (changed while import ran?); run import again",
            user.id
        ));
    }
    if let Some(other) = live_okta_ids.get(user.id.as_str()) {
        return Decision::Unmatched(already_managed(&user.id, *other));
    }
    let status = user.status.as_deref().unwrap_or("").to_ascii_uppercase();
    if settings.okta.provision_statuses.contains(&status) {
        Decision::Assign {
            okta_user_id: user.id.clone(),
            status,
        }
    } else if settings.okta.hold_statuses.contains(&status) {
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

/// A failed assignment, in words an admin can act on.
fn describe_assign_error(e: &Error, role_attribute: &str) -> String {
    match e {
        Error::Credentials {
            status: 403,
            detail,
            ..
        } if detail.contains("E0000038") => format!(
            "Okta refused the assignment because of the user's status ({detail}); \
             the user was probably deactivated after import read it"
        ),
        Error::Credentials {
            status: 403,
            detail,
            ..
        } if detail.contains("E0000075") => format!(
            "Okta refused to set the app-user attribute {role_attribute:?} ({detail}): it has a \
             profile mapping; remove the mapping or assign the user in Okta by hand"
        ),
        Error::Credentials {
            status: 403,
            detail,
            ..
        } => format!(
            "Okta refused the assignment (HTTP 403: {detail}): the API token's admin must be \
             allowed to manage this app's assignments (Super Administrator, or App Administrator \
             for the Spot app; OAuth scope okta.apps.manage)"
        ),
        other => format!("assigning in Okta failed: {other}"),
    }
}
