//! Applies a guarded plan to Spot with bounded concurrency, recording every result in the
//! ledger the moment it happens. The `pending` record of a create is durable before the
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

use crate::config::{SpotRoleSettings, SpotRoles};
use crate::ledger::{EntryState, LedgerEntry, LedgerWriter, Origin};
use crate::model::{Email, NewSpotUser, PolicyGrant, Role, SpotDirectory, SpotPolicy, SpotUsers};
use crate::plan::{Action, ActionKind, ActionStatus, Plan};
use crate::spot::client::{is_already_exists, is_not_found};
use crate::Error;

/// The organization's account ids and policies.
type Catalogue = (Vec<String>, Vec<SpotPolicy>);

/// Resolves Okta roles to what Spot needs, reading accounts and policies at most once per
/// cycle and only when some action needs them.
pub struct RoleResolver<'a, D> {
    spot: &'a D,
    roles: &'a SpotRoles,
    catalogue: OnceCell<Result<Catalogue, String>>,
}

impl<'a, D: SpotDirectory> RoleResolver<'a, D> {
    pub fn new(spot: &'a D, roles: &'a SpotRoles) -> Self {
        RoleResolver {
            spot,
            roles,
            catalogue: OnceCell::new(),
        }
    }

    fn settings(&self, role: Role) -> Result<&SpotRoleSettings, String> {
        Ok(self.roles.get(role))
    }

    pub fn spot_role(&self, role: Role) -> Result<String, String> {
        Ok(self.settings(role)?.spot_role.clone())
    }

    /// The policy mapping for `role`: each configured policy on every account.
    pub async fn grants(&self, role: Role) -> Result<Vec<PolicyGrant>, String> {
        let settings = self.settings(role)?;
        if settings.policies.is_empty() {
            return Ok(Vec::new());
        }
        let catalogue = self
            .catalogue
            .get_or_init(|| async {
                let accounts = self
                    .spot
                    .list_account_ids()
                    .await
                    .map_err(|e| e.to_string())?;
                let policies = self.spot.list_policies().await.map_err(|e| e.to_string())?;
                Ok((accounts, policies))
            })
            .await;
        let (accounts, policies) = catalogue.as_ref().map_err(Clone::clone)?;
        settings
            .policies
            .iter()
            .map(|name| {
                policies
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
                    .map(|p| PolicyGrant {
                        policy_id: p.id.clone(),
                        account_ids: accounts.clone(),
                    })
                    .ok_or_else(|| {
                        format!(
                            "policy {name:?} (spot.roles.{role}.policies) is not among the Spot organization's policies; \
                             fix the name or create the policy in Spot"
                        )
                    })
            })
            .collect()
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
    async fn created(&self, email: &Email) -> Result<Option<String>, String> {
        let users = self.users_after_failure().await?;
        Ok(users.personal_with_email(email).map(|u| u.user_id.clone()))
    }

    /// After a failed delete: is the user gone (Spot no longer lists it)?
    async fn gone(&self, spot_user_id: &str) -> Result<bool, String> {
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
    target: &str,
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

/// Applies every `planned` action of `plan`, updating statuses, errors and created user ids in
/// place. Non-destructive actions run first, deletes last, each phase with at most
/// `concurrency` calls in flight. Also performs the plan's ledger-only housekeeping.
pub async fn apply<D: SpotDirectory>(
    plan: &mut Plan,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    concurrency: usize,
) -> Result<(), Error> {
    apply_until(
        plan,
        spot,
        ledger,
        roles,
        concurrency,
        &CancellationToken::new(),
    )
    .await
}

/// [`apply`] that stops starting actions once `stop` is cancelled (the daemon's shutdown):
/// actions already in flight finish and are recorded; the others stay `planned` in the plan
/// and untouched in the ledger, for the next run.
pub async fn apply_until<D: SpotDirectory>(
    plan: &mut Plan,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    concurrency: usize,
    stop: &CancellationToken,
) -> Result<(), Error> {
    if !plan.forget.is_empty() {
        let forget = plan.forget.clone();
        let ids: Vec<&str> = forget.iter().map(String::as_str).collect();
        ledger.record(&ids, |l| {
            forget.iter().for_each(|okta_id| l.retire(okta_id, None))
        });
    }
    let recheck = Recheck::new(spot);
    // A ledger failure stops the next phase; the results of this one are still set, so that
    // the plan reports what was applied.
    let mut ledger_failed = None;
    for deletes in [false, true] {
        if ledger_failed.is_some() {
            break;
        }
        let work: Vec<(usize, Action)> = plan
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.status == ActionStatus::Planned && (a.action == ActionKind::Delete) == deletes
            })
            .map(|(i, a)| (i, a.clone()))
            .collect();
        let recheck = &recheck;
        let results: Vec<(usize, Outcome)> = stream::iter(work)
            .take_while(|_| futures::future::ready(!stop.is_cancelled()))
            .map(|(i, action)| async move {
                (i, apply_one(&action, spot, ledger, roles, recheck).await)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (i, outcome) in results {
            let action = &mut plan.actions[i];
            match outcome {
                Outcome::Applied { spot_user_id } => {
                    action.status = ActionStatus::Applied;
                    if spot_user_id.is_some() {
                        action.spot_user_id = spot_user_id;
                    }
                }
                Outcome::Failed(error) => {
                    action.status = ActionStatus::Failed;
                    action.error = Some(error);
                }
                Outcome::LedgerFailed(error) => {
                    ledger_failed.get_or_insert(error);
                }
            }
        }
    }
    if let Some(error) = ledger_failed {
        return Err(error);
    }
    // Results were recorded in memory (see `LedgerWriter`): make them durable before returning.
    ledger.flush().await
}

enum Outcome {
    Applied {
        spot_user_id: Option<String>,
    },
    Failed(String),
    /// The state file could not be written: stop everything, the record is the safety net.
    LedgerFailed(Error),
}

/// Turns a ledger error into a stop and a Spot error into a failed action.
macro_rules! step {
    (ledger $e:expr) => {
        if let Err(err) = $e {
            return Outcome::LedgerFailed(err);
        }
    };
    (spot $e:expr, $context:expr) => {
        match $e {
            Ok(value) => value,
            Err(err) => return Outcome::Failed(format!("{}: {}", $context, err)),
        }
    };
}

async fn apply_one<D: SpotDirectory>(
    action: &Action,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    recheck: &Recheck<'_, D>,
) -> Outcome {
    let okta_id = action.okta_user_id.clone();
    match action.action {
        ActionKind::Delete => {
            let target = action.spot_user_id.clone().unwrap_or_default();
            step!(spot delete_checked(spot, recheck, &target).await, format!("deleting Spot user {target}"));
            // The entry may already point at a new Spot user (an email change adopted one);
            // the deleted one stays as a tombstone.
            ledger.record(&[&okta_id], |l| l.retire(&okta_id, Some(&target)));
            Outcome::Applied { spot_user_id: None }
        }
        ActionKind::Create | ActionKind::Recreate => {
            if let Some(old) = &action.detail.delete_first {
                step!(spot delete_checked(spot, recheck, old).await, format!("deleting the old Spot user {old}"));
                // Saved with the `pending` record that follows, before the create is sent.
                ledger.record(&[&okta_id], |l| l.retire(&okta_id, None));
            }
            let created = create(action, spot, ledger, roles, recheck).await;
            match (&created, &action.detail.delete_after) {
                (
                    Outcome::Applied {
                        spot_user_id: Some(new),
                    },
                    Some(old),
                ) => {
                    // The `pending` record made `old` a tombstone: a failure here is retried by
                    // the next cycle, which still finds it listed.
                    if let Err(e) = delete_checked(spot, recheck, old).await {
                        return Outcome::Failed(format!(
                            "created Spot user {new}, but deleting the old Spot user {old} failed: {e}; the next cycle deletes it again"
                        ));
                    }
                    created
                }
                _ => created,
            }
        }
        ActionKind::Adopt => {
            let Some(role) = action.role else {
                return Outcome::Failed("no role to record".into());
            };
            let target = action.spot_user_id.clone().unwrap_or_default();
            if action.detail.apply_role_mapping {
                if let Err(e) = map_role(&target, role, spot, roles).await {
                    return Outcome::Failed(e);
                }
            }
            let origin = action.detail.origin.unwrap_or(Origin::Adopted);
            let previous = action.detail.previous_owner.clone();
            let touched: Vec<&str> = [Some(okta_id.as_str()), previous.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            ledger.record(&touched, |l| {
                // The previous owner lets go of it (if it still points at it: its own create or
                // recreate may already have given it a new one); no tombstone, as it is not gone.
                if let Some(prev) = &previous {
                    l.release(prev, &target);
                }
                l.put(
                    &okta_id,
                    LedgerEntry::new(
                        &action.email,
                        Some(target.clone()),
                        Some(role),
                        origin,
                        EntryState::Managed,
                    ),
                );
            });
            Outcome::Applied { spot_user_id: None }
        }
        ActionKind::UpdateRole => {
            let Some(role) = action.role else {
                return Outcome::Failed("no role to apply".into());
            };
            let target = action.spot_user_id.clone().unwrap_or_default();
            if let Err(e) = map_role(&target, role, spot, roles).await {
                return Outcome::Failed(e);
            }
            ledger.record(&[&okta_id], |l| {
                if let Some(e) = l.users.get_mut(&okta_id) {
                    e.role = Some(role);
                    e.updated_at = Utc::now();
                }
            });
            Outcome::Applied { spot_user_id: None }
        }
        ActionKind::AssignInOkta => {
            Outcome::Failed("assign_in_okta is only applied by `import`".into())
        }
    }
}

async fn map_role<D: SpotDirectory>(
    spot_user_id: &str,
    role: Role,
    spot: &D,
    roles: &RoleResolver<'_, D>,
) -> Result<(), String> {
    let grants = roles
        .grants(role)
        .await
        .map_err(|e| format!("resolving the {role} role: {e}"))?;
    if grants.is_empty() {
        return Ok(());
    }
    spot.set_policy_mapping(spot_user_id, &grants)
        .await
        .map_err(|e| format!("applying the {role} policy mapping to Spot user {spot_user_id}: {e}"))
}

async fn create<D: SpotDirectory>(
    action: &Action,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    recheck: &Recheck<'_, D>,
) -> Outcome {
    let okta_id = action.okta_user_id.clone();
    let Some(role) = action.role else {
        return Outcome::Failed("no role to create with".into());
    };
    let spot_role = match roles.spot_role(role) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    // Resolve the policies before creating, so a misconfigured role fails before any write.
    if let Err(e) = roles.grants(role).await {
        return Outcome::Failed(format!("resolving the {role} role: {e}"));
    }
    let origin = Origin::Created;
    // Write-ahead: durable before the create is sent (see `LedgerWriter`). `put` keeps the
    // Spot user the entry had as a tombstone: a create planned because a lagging list missed
    // it must not make the ledger forget it.
    step!(ledger ledger.update_durable(&[&okta_id], |l| {
        l.put(&okta_id, LedgerEntry::new(&action.email, None, None, origin, EntryState::Pending));
    }).await);
    let new_user = NewSpotUser {
        email: if action.detail.email_display.is_empty() {
            action.email.clone()
        } else {
            action.detail.email_display.clone()
        },
        first_name: action.detail.first_name.clone(),
        last_name: action.detail.last_name.clone(),
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
                    return Outcome::Failed(format!(
                        "creating the Spot user: {err}{hint}; Spot does not list a user with this email"
                    ))
                }
                Err(e) => {
                    return Outcome::Failed(format!("creating the Spot user: {err}{hint}; {e}"))
                }
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
        return Outcome::Failed(format!(
            "created Spot user {spot_user_id}, but {e}; the next cycle retries the mapping"
        ));
    }
    ledger.record(&[&okta_id], |l| {
        if let Some(e) = l.users.get_mut(&okta_id) {
            e.role = Some(role);
            e.updated_at = Utc::now();
        }
    });
    Outcome::Applied {
        spot_user_id: Some(spot_user_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod failed_writes {
        use super::*;
        use crate::fake::{FakeFault, FakeSpotDirectory};
        use crate::ledger::Ledger;
        use crate::model::SpotUserKind;
        use crate::plan::ActionDetail;

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

        fn action(kind: ActionKind, okta_id: &str, email: &str, spot: Option<&str>) -> Action {
            Action {
                action: kind,
                email: email.into(),
                okta_user_id: okta_id.into(),
                spot_user_id: spot.map(String::from),
                role: Some(Role::Viewer),
                reason: "test".into(),
                status: ActionStatus::Planned,
                error: None,
                detail: ActionDetail {
                    email_display: email.into(),
                    first_name: "First".into(),
                    last_name: "Last".into(),
                    ..ActionDetail::default()
                },
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
            ledger.put(okta_id, entry);
            ledger
        }

        async fn apply_actions(
            actions: Vec<Action>,
            spot: &FakeSpotDirectory,
            ledger: Ledger,
        ) -> (Plan, Ledger) {
            let mut plan = Plan {
                actions,
                ..Plan::default()
            };
            let writer = LedgerWriter::in_memory(ledger);
            let roles = roles();
            let resolver = RoleResolver::new(spot, &roles);
            apply(&mut plan, spot, &writer, &resolver, 4).await.unwrap();
            (plan, writer.into_inner())
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
            let create = action(ActionKind::Create, "00ua", "ann@example.com", None);
            let (plan, ledger) = apply_actions(vec![create], &spot, Ledger::default()).await;
            assert_eq!(
                plan.actions[0].status,
                ActionStatus::Applied,
                "{:?}",
                plan.actions[0]
            );
            let id = plan.actions[0].spot_user_id.clone().unwrap();
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
            let create = action(ActionKind::Create, "00ua", "ann@example.com", None);
            let (plan, ledger) = apply_actions(vec![create], &spot, Ledger::default()).await;
            assert_eq!(plan.actions[0].status, ActionStatus::Failed);
            let error = plan.actions[0].error.as_deref().unwrap();
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
            let delete = action(ActionKind::Delete, "00ua", "ann@example.com", Some("u-1"));
            let ledger = managed("00ua", "ann@example.com", "u-1");
            let (plan, ledger) = apply_actions(vec![delete], &spot, ledger).await;
            assert_eq!(
                plan.actions[0].status,
                ActionStatus::Applied,
                "{:?}",
                plan.actions[0]
            );
            assert_eq!(ledger.users["00ua"].state, EntryState::Deleted);
            assert_eq!(ledger.users["00ua"].tombstones, ["u-1"]);
        }

        /// A refused delete of a user Spot still lists fails, and the user stays owned.
        #[tokio::test]
        async fn a_refused_delete_fails_and_the_user_stays_owned() {
            let spot = FakeSpotDirectory::default();
            spot.add("u-1", "ann@example.com", SpotUserKind::Personal);
            spot.faults.lock().unwrap().insert(1, FakeFault::Refuse);
            let delete = action(ActionKind::Delete, "00ua", "ann@example.com", Some("u-1"));
            let ledger = managed("00ua", "ann@example.com", "u-1");
            let (plan, ledger) = apply_actions(vec![delete], &spot, ledger).await;
            assert_eq!(plan.actions[0].status, ActionStatus::Failed);
            let error = plan.actions[0].error.as_deref().unwrap();
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
                    action(ActionKind::Create, &format!("00u{i:02}"), &email, None)
                })
                .collect();
            let (plan, _) = apply_actions(actions, &spot, Ledger::default()).await;
            assert!(plan
                .actions
                .iter()
                .all(|a| a.status == ActionStatus::Failed));
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
                let (applied, next) = apply_actions(the_plan.actions, &spot, ledger).await;
                ledger = next;
                if cycle < 2 {
                    assert!(
                        spot.get("u-1").is_some(),
                        "cycle {cycle}: Ann lost her only user"
                    );
                    assert!(ledger.has_owned_spot_user("u-1"));
                    assert!(applied
                        .actions
                        .iter()
                        .all(|a| a.status == ActionStatus::Failed));
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
