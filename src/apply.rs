//! Applies a guarded plan to Spot with bounded concurrency, recording every result in the
//! ledger the moment it happens, and answers with the [`Outcomes`] (the plan is never
//! changed). The `pending` record of a create is durable before the
//! create is sent; results are saved in group commits and all durable before `apply` returns
//! (the contract is on [`LedgerWriter`]), so a crash at any point loses nothing the next
//! cycle cannot re-derive from Spot.
//!
//! This module owns the order of calls for each action (ledger `pending` before a create,
//! delete-then-create for a recreate, policy mapping after a create) and the resolution of
//! role → Spot role and policies. It never decides *whether* to act: that was `plan`'s and
//! `guard`'s job. One failed action never stops the others.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::access;
use crate::action::{Action, Adoption, Change, NewUser, Replace};
use crate::config::{SpotRoleSettings, SpotRoles};
use crate::guard::Verdicts;
use crate::ledger::{EntryState, LedgerEntry, LedgerWriter, Origin};
use crate::model::{
    Email, NewSpotUser, OktaUserId, PolicyGrant, Role, SpotDirectory, SpotPolicy, SpotUserId,
    SpotUsers,
};
use crate::plan::Plan;
use crate::spot::access::UserLookup;
use crate::spot::client::{is_already_exists, is_not_found};
use crate::Error;

/// Resolves Okta roles to what Spot needs, reading the organization's policies at most once
/// per cycle and only when some action needs them.
pub struct RoleResolver<'a, D> {
    spot: &'a D,
    roles: &'a SpotRoles,
    policies: OnceCell<Result<Vec<SpotPolicy>, String>>,
}

impl<'a, D: SpotDirectory> RoleResolver<'a, D> {
    pub fn new(spot: &'a D, roles: &'a SpotRoles) -> Self {
        RoleResolver {
            spot,
            roles,
            policies: OnceCell::new(),
        }
    }

    fn settings(&self, role: Role) -> &SpotRoleSettings {
        self.roles.get(role)
    }

    pub fn spot_role(&self, role: Role) -> String {
        self.settings(role).spot_role.clone()
    }

    /// What `role` needs: each configured policy on every account, those added later
    /// included ([`access::role_grants`]).
    pub async fn grants(&self, role: Role) -> Result<Vec<PolicyGrant>, String> {
        let settings = self.settings(role);
        if settings.policies.is_empty() {
            return Ok(Vec::new());
        }
        let policies = self
            .policies
            .get_or_init(|| async { self.spot.list_policies().await.map_err(|e| e.to_string()) })
            .await
            .as_ref()
            .map_err(Clone::clone)?;
        let ids = settings
            .policies
            .iter()
            .map(|name| {
                policies
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
                    .map(|p| p.id.clone())
                    .ok_or_else(|| {
                        format!(
                            "policy {name:?} (spot.roles.{role}.policies) is not among the Spot organization's policies; \
                             fix the name or create the policy in Spot"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(access::role_grants(&ids))
    }

    /// [`RoleResolver::grants`], with the role named in the error.
    async fn needs(&self, role: Role) -> Result<Vec<PolicyGrant>, String> {
        self.grants(role)
            .await
            .map_err(|e| format!("resolving the {role} role: {e}"))
    }
}

/// How many fresh reads of the Spot user list one cycle makes after failed writes. Beyond
/// this many, a failed write stays failed and the next cycle's complete read decides: a
/// misconfiguration that fails every create must not turn into one 100,000-user read each.
pub const MAX_RECHECKS: usize = 8;

/// Fresh reads of the Spot user list after a failed create or delete.
///
/// Spot's error codes for "already exists" and "not found" are not confirmed by any public
/// source, and a create that timed out may have landed. So what a failed write did is decided
/// from a read of the list made **after** the failure, not from the error text (the codes only
/// shape the message). Concurrent failures share one read: a read started after a failure was
/// seen answers for it, and a failure waits for the read in flight rather than starting its
/// own.
struct Recheck<'a, D> {
    spot: &'a D,
    /// Failures seen so far; each failure's number is its ticket.
    failures: AtomicU64,
    /// The latest read, with the number of failures seen when it started (it answers for those).
    latest: tokio::sync::Mutex<Option<(u64, std::sync::Arc<SpotUsers>)>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl<'a, D: SpotDirectory> Recheck<'a, D> {
    fn new(spot: &'a D) -> Self {
        Recheck {
            spot,
            failures: AtomicU64::new(0),
            latest: tokio::sync::Mutex::new(None),
            reads: Default::default(),
        }
    }

    /// The Spot users as listed after a write that just failed.
    async fn users_after_failure(&self) -> Result<std::sync::Arc<SpotUsers>, String> {
        let ticket = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        let mut latest = self.latest.lock().await;
        if let Some((covers, users)) = latest.as_ref() {
            if *covers >= ticket {
                return Ok(std::sync::Arc::clone(users));
            }
        }
        if self.reads.fetch_add(1, Ordering::SeqCst) >= MAX_RECHECKS {
            return Err(format!(
                "not re-read: more than {MAX_RECHECKS} writes failed this cycle; the next cycle's complete read decides"
            ));
        }
        let covers = self.failures.load(Ordering::SeqCst);
        let users = self
            .spot
            .list_users()
            .await
            .map_err(|e| format!("re-reading the Spot users failed: {e}"))?;
        let users = std::sync::Arc::new(users);
        *latest = Some((covers, std::sync::Arc::clone(&users)));
        Ok(users)
    }

    /// After a failed create: the id of the personal Spot user with `email` (the lowest id if
    /// several), which the `pending` record claims, or `None` when Spot does not list one.
    async fn created(&self, email: &Email) -> Result<Option<SpotUserId>, String> {
        let users = self.users_after_failure().await?;
        Ok(users.personal_with_email(email).map(|u| u.user_id.clone()))
    }

    /// After a failed delete: is the user gone (Spot no longer lists it)?
    async fn gone(&self, spot_user_id: &SpotUserId) -> Result<bool, String> {
        let users = self.users_after_failure().await?;
        Ok(!users.lists(spot_user_id))
    }
}

/// Deletes `target`; a failure is decided by a fresh read ([`Recheck`]): a user Spot no longer
/// lists is gone, whatever the error said. The id stays in the ledger (as the entry's or as a
/// tombstone) either way, so a delete that answered success and did nothing is found by a
/// later cycle's read.
async fn delete_checked<D: SpotDirectory>(
    spot: &D,
    recheck: &Recheck<'_, D>,
    target: &SpotUserId,
) -> Result<(), String> {
    let Err(err) = spot.delete_user(target).await else {
        return Ok(());
    };
    let hint = if is_not_found(&err) {
        " (Spot says it does not exist)"
    } else {
        ""
    };
    match recheck.gone(target).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{err}; Spot still lists the user")),
        Err(e) => Err(format!("{err}{hint}; {e}")),
    }
}

/// What applying one action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; `created` is the Spot user a create or recreate made.
    Applied { created: Option<SpotUserId> },
    /// Not done (or done in part), in words an admin can act on.
    Failed(String),
}

/// What `apply` did with each action of a plan, by the action's index in `Plan::actions`.
/// An action with no outcome was not started: blocked by a guard, or left when the daemon
/// was stopping (or when the state file could not be written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcomes(Vec<Option<Outcome>>);

impl Outcomes {
    /// Nothing applied: for `plan` and `--dry-run`.
    pub fn none(plan: &Plan) -> Outcomes {
        Outcomes(vec![None; plan.actions.len()])
    }

    /// What happened to action `index`; `None` when it was not started.
    pub fn get(&self, index: usize) -> Option<&Outcome> {
        self.0.get(index).and_then(Option::as_ref)
    }

    /// Was every action applied?
    pub fn all_applied(&self) -> bool {
        self.0
            .iter()
            .all(|o| matches!(o, Some(Outcome::Applied { .. })))
    }
}

/// Applies every action of `plan` that `verdicts` allow, and answers what happened to each.
/// Non-destructive actions run first, deletes last, each phase with at most `concurrency`
/// calls in flight. Also performs the plan's ledger-only housekeeping.
///
/// The `Err` of the second value is a state file that could not be written: the phase in
/// flight finishes, no later one starts, and the outcomes still say what was applied.
pub async fn apply<D: SpotDirectory>(
    plan: &Plan,
    verdicts: &Verdicts,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    concurrency: usize,
) -> (Outcomes, Result<(), Error>) {
    apply_until(
        plan,
        verdicts,
        spot,
        ledger,
        roles,
        concurrency,
        &CancellationToken::new(),
    )
    .await
}

/// [`apply`] that stops starting actions once `stop` is cancelled (the daemon's shutdown):
/// actions already in flight finish and are recorded; the others have no outcome and are
/// untouched in the ledger, for the next run.
pub async fn apply_until<D: SpotDirectory>(
    plan: &Plan,
    verdicts: &Verdicts,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    concurrency: usize,
    stop: &CancellationToken,
) -> (Outcomes, Result<(), Error>) {
    let mut outcomes = Outcomes::none(plan);
    if !plan.forget.is_empty() {
        let ids: Vec<&OktaUserId> = plan.forget.iter().collect();
        ledger.record(&ids, |l| {
            plan.forget
                .iter()
                .for_each(|okta_id| l.retire(okta_id, None))
        });
    }
    let recheck = Recheck::new(spot);
    // A ledger failure stops the next phase; the results of this one are still kept, so that
    // the report says what was applied.
    let mut ledger_failed = None;
    for deletes in [false, true] {
        if ledger_failed.is_some() {
            break;
        }
        // Indices, not borrowed actions: a stream of borrowed items would make the future's
        // lifetimes too general to be `Send`.
        let work: Vec<usize> = (0..plan.actions.len())
            .filter(|&i| {
                verdicts.allows(i)
                    && matches!(plan.actions[i].change, Change::Delete { .. }) == deletes
            })
            .collect();
        let recheck = &recheck;
        let results: Vec<(usize, Step)> = stream::iter(work)
            .take_while(|_| futures::future::ready(!stop.is_cancelled()))
            .map(|i| async move {
                let action = &plan.actions[i];
                (i, apply_one(action, spot, ledger, roles, recheck).await)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (i, step) in results {
            match step {
                Step::Done(outcome) => outcomes.0[i] = Some(outcome),
                Step::LedgerFailed(error) => {
                    ledger_failed.get_or_insert(error);
                }
            }
        }
    }
    if let Some(error) = ledger_failed {
        return (outcomes, Err(error));
    }
    // Results were recorded in memory (see `LedgerWriter`): make them durable before returning.
    let flushed = ledger.flush().await;
    (outcomes, flushed)
}

/// How one action ended, for [`apply_until`].
enum Step {
    Done(Outcome),
    /// The state file could not be written: stop everything, the record is the safety net.
    LedgerFailed(Error),
}

impl Step {
    fn applied(created: Option<SpotUserId>) -> Step {
        Step::Done(Outcome::Applied { created })
    }

    fn failed(error: String) -> Step {
        Step::Done(Outcome::Failed(error))
    }
}

/// Turns a ledger error into a stop and a Spot error into a failed action.
macro_rules! step {
    (ledger $e:expr) => {
        if let Err(err) = $e {
            return Step::LedgerFailed(err);
        }
    };
    (spot $e:expr, $context:expr) => {
        match $e {
            Ok(value) => value,
            Err(err) => return Step::failed(format!("{}: {}", $context, err)),
        }
    };
}

async fn apply_one<D: SpotDirectory>(
    action: &Action,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    recheck: &Recheck<'_, D>,
) -> Step {
    let okta_id = &action.okta_user_id;
    match &action.change {
        Change::Delete { spot_user_id, .. } => {
            let target = spot_user_id;
            step!(spot delete_checked(spot, recheck, target).await, format!("deleting Spot user {target}"));
            // The entry may already point at a new Spot user (an email change adopted one);
            // the deleted one stays as a tombstone.
            ledger.record(&[okta_id], |l| l.retire(okta_id, Some(target)));
            Step::applied(None)
        }
        Change::Create(user) => create(action, user, spot, ledger, roles, recheck).await,
        Change::Recreate { user, replaces } => {
            if let Some(Replace::DeleteFirst(old)) = replaces {
                step!(spot delete_checked(spot, recheck, old).await, format!("deleting the old Spot user {old}"));
                // Saved with the `pending` record that follows, before the create is sent.
                ledger.record(&[okta_id], |l| l.retire(okta_id, None));
            }
            let created = create(action, user, spot, ledger, roles, recheck).await;
            match (&created, replaces) {
                (
                    Step::Done(Outcome::Applied { created: Some(new) }),
                    Some(Replace::DeleteAfter(old)),
                ) => {
                    // The `pending` record made `old` a tombstone: a failure here is retried by
                    // the next cycle, which still finds it listed.
                    if let Err(e) = delete_checked(spot, recheck, old).await {
                        return Step::failed(format!(
                            "created Spot user {new}, but deleting the old Spot user {old} failed: {e}; the next cycle deletes it again"
                        ));
                    }
                    created
                }
                _ => created,
            }
        }
        Change::Adopt(adoption) => adopt(action, adoption, spot, ledger, roles).await,
        Change::UpdateRole {
            spot_user_id,
            role,
            from,
        } => {
            if let Err(e) = grant_missing(spot_user_id, *role, *from, spot, roles).await {
                return Step::failed(e);
            }
            record_mapped(ledger, okta_id, *role);
            Step::applied(None)
        }
    }
}

/// Records an adoption, then adds the role's missing grants (a union: nothing the user has is
/// taken away). Ownership is recorded first, with its access not yet in line: when the grants
/// cannot be added now, the next cycle adds them.
async fn adopt<D: SpotDirectory>(
    action: &Action,
    adoption: &Adoption,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
) -> Step {
    let okta_id = &action.okta_user_id;
    let target = &adoption.spot_user_id;
    let previous = adoption.previous_owner.as_ref();
    let touched: Vec<&OktaUserId> = [Some(okta_id), previous].into_iter().flatten().collect();
    ledger.record(&touched, |l| {
        // The previous owner lets go of it (if it still points at it: its own create or
        // recreate may already have given it a new one); no tombstone, as it is not gone.
        if let Some(prev) = previous {
            l.release(prev, target);
        }
        let mut entry = LedgerEntry::new(
            &action.email,
            Some(target.clone()),
            Some(adoption.role),
            adoption.origin,
            EntryState::Managed,
        );
        entry.access = 0;
        l.put(okta_id, entry);
    });
    let added = grant_missing(target, adoption.role, None, spot, roles).await;
    if let Err(e) = added {
        let what = if adoption.apply_role_mapping {
            "completed the interrupted create"
        } else {
            "adopted it"
        };
        return Step::failed(format!("{what}, but {e}; the next cycle adds the grants"));
    }
    record_mapped(ledger, okta_id, adoption.role);
    Step::applied(None)
}

/// Records that `okta_id`'s Spot user has `role`'s grants under the current access model.
pub(crate) fn record_mapped(ledger: &LedgerWriter, okta_id: &OktaUserId, role: Role) {
    ledger.record(&[okta_id], |l| {
        if let Some(e) = l.users.get_mut(okta_id) {
            e.role = Some(role);
            e.access = access::ACCESS_MODEL;
            e.updated_at = Utc::now();
        }
    });
}

/// Adds what `role` needs to what the Spot user has: reads the user's mappings, and writes the
/// union when something is missing ([`access::union`]). Grants made by hand survive. After a
/// role change (`from`), the old role's policies the new one lacks are taken away
/// ([`access::change_role`]).
async fn grant_missing<D: SpotDirectory>(
    spot_user_id: &SpotUserId,
    role: Role,
    from: Option<Role>,
    spot: &D,
    roles: &RoleResolver<'_, D>,
) -> Result<(), String> {
    let needed = roles.needs(role).await?;
    let old: Vec<String> = match from {
        Some(old) => roles
            .needs(old)
            .await?
            .into_iter()
            .map(|g| g.policy_id)
            .collect(),
        None => Vec::new(),
    };
    if needed.is_empty() && old.is_empty() {
        return Ok(());
    }
    let have = match spot.get_user_details(spot_user_id).await {
        Ok(UserLookup::Found(details)) => details.grants(),
        Ok(UserLookup::Gone) => {
            return Err(format!(
            "Spot says user {spot_user_id} does not exist (the next cycle's complete list decides)"
        ))
        }
        Err(e) => return Err(format!("reading Spot user {spot_user_id}'s access: {e}")),
    };
    let Some(mapping) = access::change_role(&have, &old, &needed) else {
        return Ok(());
    };
    spot.set_policy_mapping(spot_user_id, &mapping)
        .await
        .map_err(|e| format!("adding the {role} grants to Spot user {spot_user_id}: {e}"))
}

/// Writes `role`'s grants to a Spot user this cycle created (it has nothing to keep).
async fn map_role<D: SpotDirectory>(
    spot_user_id: &SpotUserId,
    role: Role,
    spot: &D,
    roles: &RoleResolver<'_, D>,
) -> Result<(), String> {
    let grants = roles.needs(role).await?;
    if grants.is_empty() {
        return Ok(());
    }
    spot.set_policy_mapping(spot_user_id, &grants)
        .await
        .map_err(|e| format!("applying the {role} policy mapping to Spot user {spot_user_id}: {e}"))
}

async fn create<D: SpotDirectory>(
    action: &Action,
    user: &NewUser,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    recheck: &Recheck<'_, D>,
) -> Step {
    let okta_id = action.okta_user_id.clone();
    let role = user.role;
    let spot_role = roles.spot_role(role);
    // Resolve the policies before creating, so a misconfigured role fails before any write.
    if let Err(e) = roles.needs(role).await {
        return Step::failed(e);
    }
    let origin = Origin::Created;
    // Write-ahead: durable before the create is sent (see `LedgerWriter`). `put` keeps the
    // Spot user the entry had as a tombstone: a create planned because a lagging list missed
    // it must not make the ledger forget it.
    step!(ledger ledger.update_durable(&[&okta_id], |l| {
        l.put(&okta_id, LedgerEntry::new(&action.email, None, None, origin, EntryState::Pending));
    }).await);
    let new_user = NewSpotUser {
        email: if user.email_display.is_empty() {
            action.email.clone()
        } else {
            user.email_display.clone()
        },
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        spot_role,
    };
    let spot_user_id = match spot.create_user(&new_user).await {
        Ok(id) => id,
        Err(err) => {
            // Whatever the error said, the create may have landed (a timeout, a 5xx after the
            // write, a list that lagged behind an earlier create): a fresh read decides, and our
            // `pending` record claims a personal user with the email.
            let hint = if is_already_exists(&err) {
                " (Spot says the user already exists)"
            } else {
                ""
            };
            let found = match Email::parse(&action.email) {
                Some(email) => recheck.created(&email).await,
                None => Ok(None),
            };
            match found {
                Ok(Some(id)) => id,
                Ok(None) => {
                    return Step::failed(format!(
                        "creating the Spot user: {err}{hint}; Spot does not list a user with this email"
                    ))
                }
                Err(e) => return Step::failed(format!("creating the Spot user: {err}{hint}; {e}")),
            }
        }
    };
    ledger.record(&[&okta_id], |l| {
        l.put(
            &okta_id,
            LedgerEntry::new(
                &action.email,
                Some(spot_user_id.clone()),
                None,
                origin,
                EntryState::Managed,
            ),
        );
    });
    if let Err(e) = map_role(&spot_user_id, role, spot, roles).await {
        return Step::failed(format!(
            "created Spot user {spot_user_id}, but {e}; the next cycle retries the mapping"
        ));
    }
    record_mapped(ledger, &okta_id, role);
    Step::applied(Some(spot_user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    mod failed_writes {
        use super::*;
        use crate::fake::{FakeFault, FakeSpotDirectory};
        use crate::ledger::Ledger;
        use crate::model::SpotUserKind;

        fn roles() -> SpotRoles {
            let viewer = SpotRoleSettings {
                spot_role: "viewer".into(),
                policies: Vec::new(),
            };
            SpotRoles {
                viewer,
                ..SpotRoles::default()
            }
        }

        fn create(okta_id: &str, email: &str) -> Action {
            let user = NewUser {
                email_display: email.into(),
                first_name: "First".into(),
                last_name: "Last".into(),
                role: Role::Viewer,
            };
            Action {
                okta_user_id: okta_id.into(),
                email: email.into(),
                reason: "test".into(),
                change: Change::Create(user),
            }
        }

        fn delete(okta_id: &str, email: &str, spot: &str) -> Action {
            Action {
                okta_user_id: okta_id.into(),
                email: email.into(),
                reason: "test".into(),
                change: Change::Delete {
                    spot_user_id: spot.into(),
                    role: Some(Role::Viewer),
                },
            }
        }

        fn failure(outcomes: &Outcomes, i: usize) -> &str {
            match outcomes.get(i) {
                Some(Outcome::Failed(error)) => error,
                other => panic!("not failed: {other:?}"),
            }
        }

        fn created(outcomes: &Outcomes, i: usize) -> Option<&str> {
            match outcomes.get(i) {
                Some(Outcome::Applied { created }) => created.as_deref(),
                other => panic!("not applied: {other:?}"),
            }
        }

        fn managed(okta_id: &str, email: &str, spot: &str) -> Ledger {
            let mut ledger = Ledger::default();
            let entry = LedgerEntry::new(
                email,
                Some(spot.into()),
                Some(Role::Viewer),
                Origin::Created,
                EntryState::Managed,
            );
            ledger.put(&okta_id.into(), entry);
            ledger
        }

        async fn apply_actions(
            actions: Vec<Action>,
            spot: &FakeSpotDirectory,
            ledger: Ledger,
        ) -> (Outcomes, Ledger) {
            let plan = Plan {
                actions,
                ..Plan::default()
            };
            let writer = LedgerWriter::in_memory(ledger);
            let roles = roles();
            let resolver = RoleResolver::new(spot, &roles);
            let verdicts = Verdicts::allow_all(&plan);
            let (outcomes, saved) = apply(&plan, &verdicts, spot, &writer, &resolver, 4).await;
            saved.unwrap();
            (outcomes, writer.into_inner())
        }

        /// A create whose answer was lost (no error code at all) landed: a fresh read finds
        /// the user, and the `pending` record claims it.
        #[tokio::test]
        async fn a_create_whose_answer_was_lost_is_decided_by_a_fresh_read() {
            let spot = FakeSpotDirectory::default();
            spot.faults
                .lock()
                .unwrap()
                .insert(1, FakeFault::LandThenFail);
            let create = create("00ua", "ann@example.com");
            let (outcomes, ledger) = apply_actions(vec![create], &spot, Ledger::default()).await;
            let id = created(&outcomes, 0).unwrap().to_string();
            assert!(spot.get(&id).is_some());
            assert_eq!(ledger.users["00ua"].state, EntryState::Managed);
            assert_eq!(
                ledger.users["00ua"].spot_user_id.as_deref(),
                Some(id.as_str())
            );
        }

        /// A refused create (an error code nobody documents) with no user behind it stays
        /// failed and pending: nothing is claimed that Spot does not list.
        #[tokio::test]
        async fn a_refused_create_claims_nothing_spot_does_not_list() {
            let spot = FakeSpotDirectory::default();
            spot.faults.lock().unwrap().insert(1, FakeFault::Refuse);
            let create = create("00ua", "ann@example.com");
            let (outcomes, ledger) = apply_actions(vec![create], &spot, Ledger::default()).await;
            let error = failure(&outcomes, 0);
            assert!(
                error.contains("does not list a user with this email"),
                "{error}"
            );
            assert_eq!(ledger.users["00ua"].state, EntryState::Pending);
        }

        /// A delete whose answer was lost did its work: Spot no longer lists the user.
        #[tokio::test]
        async fn a_delete_whose_answer_was_lost_is_applied_when_spot_no_longer_lists_the_user() {
            let spot = FakeSpotDirectory::default();
            spot.add("u-1", "ann@example.com", SpotUserKind::Personal);
            spot.faults
                .lock()
                .unwrap()
                .insert(1, FakeFault::LandThenFail);
            let delete = delete("00ua", "ann@example.com", "u-1");
            let ledger = managed("00ua", "ann@example.com", "u-1");
            let (outcomes, ledger) = apply_actions(vec![delete], &spot, ledger).await;
            assert_eq!(created(&outcomes, 0), None);
            assert_eq!(ledger.users["00ua"].state, EntryState::Deleted);
            assert_eq!(ledger.users["00ua"].tombstones, ["u-1"]);
        }

        /// A refused delete of a user Spot still lists fails, and the user stays owned.
        #[tokio::test]
        async fn a_refused_delete_fails_and_the_user_stays_owned() {
            let spot = FakeSpotDirectory::default();
            spot.add("u-1", "ann@example.com", SpotUserKind::Personal);
            spot.faults.lock().unwrap().insert(1, FakeFault::Refuse);
            let delete = delete("00ua", "ann@example.com", "u-1");
            let ledger = managed("00ua", "ann@example.com", "u-1");
            let (outcomes, ledger) = apply_actions(vec![delete], &spot, ledger).await;
            let error = failure(&outcomes, 0);
            assert!(error.contains("Spot still lists the user"), "{error}");
            assert_eq!(ledger.users["00ua"].spot_user_id.as_deref(), Some("u-1"));
        }

        /// Failures share fresh reads, and a cycle makes at most `MAX_RECHECKS` of them.
        #[tokio::test]
        async fn fresh_reads_after_failures_are_bounded() {
            let spot = FakeSpotDirectory::default();
            let actions: Vec<Action> = (0..40)
                .map(|i| {
                    let email = format!("user{i}@example.com");
                    spot.fail_create_for.lock().unwrap().push(email.clone());
                    create(&format!("00u{i:02}"), &email)
                })
                .collect();
            let (outcomes, _) = apply_actions(actions, &spot, Ledger::default()).await;
            for i in 0..40 {
                failure(&outcomes, i);
            }
            let reads = spot.lists.load(Ordering::SeqCst);
            assert!((1..=MAX_RECHECKS as u64).contains(&reads), "{reads} reads");
        }

        /// An email change creates the new user first: when Spot refuses the new email, the
        /// person keeps the old user, and the ledger keeps it as a tombstone, deleted only once
        /// a later cycle's create succeeded.
        #[tokio::test]
        async fn an_email_change_refused_by_spot_leaves_the_old_user_in_place() {
            use crate::model::{DesiredUser, Email, OktaSnapshot, SpotUsers};
            use crate::plan::{plan, PlanOptions};
            let spot = FakeSpotDirectory::default();
            spot.add("u-1", "ann@example.com", SpotUserKind::Personal);
            spot.add("u-owner", "owner@example.com", SpotUserKind::Personal);
            spot.fail_create_for
                .lock()
                .unwrap()
                .push("ann.lee@example.com".into());
            let okta = OktaSnapshot {
                provision: vec![DesiredUser {
                    okta_user_id: "00ua".into(),
                    email: Email::parse("ann.lee@example.com").unwrap(),
                    email_spelling: None,
                    first_name: "Ann".into(),
                    last_name: "Lee".into(),
                    role: Role::Viewer,
                }],
                listed: 1,
                ..OktaSnapshot::default()
            };
            let options = PlanOptions {
                adopt_existing: true,
                update_roles: true,
                protected_emails: Default::default(),
                spot_roles: [(Role::Viewer, "viewer".to_string())].into(),
            };
            let mut ledger = managed("00ua", "ann@example.com", "u-1");
            for cycle in 0..3 {
                if cycle == 2 {
                    spot.fail_create_for.lock().unwrap().clear();
                }
                let the_plan = plan(
                    &okta,
                    &SpotUsers::distinct(spot.snapshot()),
                    &ledger,
                    &options,
                );
                let actions = the_plan.actions.len();
                let (outcomes, next) = apply_actions(the_plan.actions, &spot, ledger).await;
                ledger = next;
                if cycle < 2 {
                    assert!(
                        spot.get("u-1").is_some(),
                        "cycle {cycle}: Ann lost her only user"
                    );
                    assert!(ledger.has_owned_spot_user(&"u-1".into()));
                    for i in 0..actions {
                        failure(&outcomes, i);
                    }
                }
            }
            assert!(
                spot.get("u-1").is_none(),
                "the old user is deleted once the new one exists"
            );
            let entry = &ledger.users["00ua"];
            assert_eq!(entry.state, EntryState::Managed);
            let new = spot.get(entry.spot_user_id.as_deref().unwrap()).unwrap();
            assert_eq!(new.user.email, Email::parse("ann.lee@example.com"));
        }
    }
}
