//! `import`: hands the Spot users that already exist over to Okta, so the tool can manage them
//! without recreating them (a recreate would lose their API tokens and settings).
//!
//! It owns the import workflow: list the Spot organization's personal users the ledger does
//! not manage, match each to an Okta user by email (ASCII case ignored, see `model::Email`)
//! with as few Okta calls as it can (see [`SEARCH_THRESHOLD`]), then
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
//! - make any Spot call other than the user list (Spot users are never changed by `import`:
//!   an adopted user's missing grants are added by the next cycle, which sees its access is
//!   not yet in line with the current model);
//! - list, adopt or assign a programmatic user, a user in `sync.protected_emails`, or a Spot
//!   user the ledger already owns;
//! - assign an Okta user whose status is not one of `okta.provision_statuses`, or guess
//!   between several Okta users sharing an email.
//!
//! One failed assignment is a failed action; the others go on.
//!
//! Pure core, thin shell: every decision above lives in `import/decide.rs` (no I/O,
//! unit-tested there): who is skipped, adopted, assigned or unmatched and why, whether to
//! walk or search ([`SEARCH_THRESHOLD`]), which assignments `--assign` makes, and the report's
//! actions and unmatched list. This file is the shell: [`run_import`] loads the ledger, reads
//! both sides at once, makes the Okta lookups the first phase asks for, then the assignments,
//! then one ledger update. It owns the order of those calls (nothing is written before every
//! read is done) and the wording of a failed assignment.

mod decide;

use std::collections::HashMap;
use std::future::Future;

use tracing::{info, warn};

use self::decide::{
    assignments, decide_known, decide_looked_up, match_walked, outcome, same_email, walk_budget,
    Assignment, ImportKind, Lookup, Outcome, StepState,
};
use crate::config::Settings;
use crate::ledger::{EntryState, LedgerStore, Origin};
use crate::ledger::{LedgerEntry, LedgerWriter};
use crate::model::{Email, IdentitySource, OktaUserId, Role, SpotDirectory};
use crate::okta::client::{OktaClient, USERS_PAGE_SIZE};
use crate::okta::parse::OktaUser;
use crate::report::Report;
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
/// Search is served from an eventually consistent index (docs/api-facts.md "Okta user
/// search"): an Okta user created in the last moments may not be found yet. Such a user is
/// reported unmatched (never guessed at), and running `import` again later picks it up.
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
    let rules = settings.classify_rules();
    let known = decide_known(
        &rows,
        &ledger,
        &spot_users,
        &rules,
        &settings.sync.protected_emails,
    );
    let wanted: Vec<&Email> = known.to_look_up.iter().map(|(_, email)| *email).collect();
    let (lookup, found) = look_up(okta, &wanted).await?;
    info!(
        unmanaged = known.unmanaged,
        looked_up = wanted.len(),
        lookup = ?lookup,
        page_size = USERS_PAGE_SIZE,
        "import: read complete"
    );
    let listed = known.listed;
    let (decisions, unmatched) = decide_looked_up(known, &found, lookup, &rules);

    // Every read is done: now the writes, Okta assignments first, then one ledger update.
    let assign_role = options.role.unwrap_or(settings.sync.default_role);
    let mut assigned: HashMap<OktaUserId, Result<(), String>> = HashMap::new();
    for Assignment {
        okta_user_id,
        email,
    } in assignments(&decisions, options.assign)
    {
        let result = okta
            .assign_user(&okta_user_id, assign_role)
            .await
            .map_err(|e| {
                let error = describe_assign_error(&e, &settings.okta.role_attribute);
                warn!(email = %email, okta_user_id = %okta_user_id, "import: {error}");
                error
            });
        assigned.insert(okta_user_id, result);
    }
    let Outcome {
        mut steps,
        unmatched,
        adoptions,
    } = outcome(decisions, unmatched, &assigned, assign_role);

    let mut saved = Ok(());
    if !adoptions.is_empty() {
        let writer = LedgerWriter::new(store.clone(), ledger);
        saved = writer.update(|l| {
            for adoption in &adoptions {
                let mut entry = LedgerEntry::new(
                    &adoption.email,
                    Some(adoption.spot_user_id.clone()),
                    Some(adoption.role),
                    Origin::Adopted,
                    EntryState::Managed,
                );
                // `import` never writes to Spot: the next cycle adds the role's missing grants.
                entry.access = 0;
                l.put(&adoption.okta_user_id, entry);
            }
        });
        if saved.is_ok() {
            for step in steps.iter_mut().filter(|s| s.kind == ImportKind::Adopt) {
                step.state = StepState::Applied;
            }
        }
    }

    let steps = steps.into_iter().map(Into::into).collect();
    let report = Report::import(listed, spot_users.len(), steps, unmatched);
    // Assignments made in Okta are reported even when the adoptions could not be saved.
    match saved {
        Ok(()) => Ok(report),
        Err(error) => Err(Error::NotRecorded {
            report: Box::new(report),
            error: Box::new(error),
        }),
    }
}

/// Looks up the `wanted` emails in Okta: one walk of the user list when [`walk_budget`] says
/// it is worth trying and it ends within its budget, otherwise one search per email.
async fn look_up<'e, O: OktaUserDirectory>(
    okta: &O,
    wanted: &[&'e Email],
) -> Result<(Lookup, HashMap<&'e Email, Vec<OktaUser>>), Error> {
    if let Some(max_pages) = walk_budget(wanted.len()) {
        match okta.list_org_users(Some(max_pages)).await? {
            Some(users) => return Ok((Lookup::Walk, match_walked(users, wanted))),
            None => info!(
                pages = max_pages,
                "the Okta user list is longer than searching each user would cost; searching instead"
            ),
        }
    }
    let mut found = HashMap::new();
    for &email in wanted {
        let users = okta.search_users_by_email(email.as_str()).await?;
        found.insert(email, same_email(users, email));
    }
    Ok((Lookup::Search, found))
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
