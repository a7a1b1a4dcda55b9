//! Safety guards: pure checks over a plan that block destructive actions when the plan looks
//! like the product of bad data rather than of real change.
//!
//! Pure: no I/O. A guard never adds or removes actions; it only marks them `blocked` and says
//! why in `Plan::blocked_by`. Creates and adoptions are never blocked by the delete limits.

use std::collections::BTreeSet;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::ledger::Ledger;
use crate::model::{Email, SpotUser, SpotUsers};
use crate::plan::{ActionKind, ActionStatus, GuardTrip, Plan};

/// The configured limits plus this run's one-shot overrides.
#[derive(Debug, Clone)]
pub struct GuardLimits {
    pub max_deletes: usize,
    pub max_delete_percent: u8,
    /// `reconcile --allow-deletes N`: up to N deletes pass the delete limits, this run only.
    pub allow_deletes: Option<usize>,
    /// `reconcile --allow-empty-source`: deletes may proceed although Okta listed nobody.
    pub allow_empty_source: bool,
    pub protected_emails: BTreeSet<Email>,
}

/// Managed-user count above which the percentage limit applies (Okta's own import safeguard
/// uses the same floor).
pub const PERCENT_GUARD_FLOOR: usize = 100;

/// Marks blocked actions in `plan`.
pub fn guard(plan: &mut Plan, spot_users: &SpotUsers, ledger: &Ledger, limits: &GuardLimits) {
    block_untouchable(plan, spot_users, ledger, limits);

    let managed = ledger.managed_count();
    let deletes = plan
        .actions
        .iter()
        .filter(|a| a.deletes() && a.status == ActionStatus::Planned)
        .count();
    let destructive = |kind: ActionKind| matches!(kind, ActionKind::Delete | ActionKind::Recreate);

    if plan.okta_users == 0 && managed > 0 && deletes > 0 && !limits.allow_empty_source {
        trip(
            plan,
            "empty_source",
            format!(
                "Okta listed no assignments for the app while {managed} users are managed; \
                 refusing {deletes} deletes. If the app really has no users now, run \
                 `okta-spot-sync reconcile --allow-empty-source` once"
            ),
            |a| a.deletes(),
        );
        return;
    }

    let allowed_by_override = limits.allow_deletes.is_some_and(|n| deletes <= n);
    if deletes > limits.max_deletes && !allowed_by_override {
        trip(
            plan,
            "max_deletes",
            format!(
                "{deletes} deletes planned, more than sync.max_deletes = {}; deletes and recreates are \
                 held this cycle. Check the plan, then run `okta-spot-sync reconcile --allow-deletes {deletes}` once",
                limits.max_deletes
            ),
            |a| destructive(a.action),
        );
    } else if managed > PERCENT_GUARD_FLOOR
        && deletes * 100 > usize::from(limits.max_delete_percent) * managed
        && !allowed_by_override
    {
        trip(
            plan,
            "max_delete_percent",
            format!(
                "{deletes} deletes planned out of {managed} managed users, more than sync.max_delete_percent = {}%; \
                 deletes and recreates are held this cycle. Check the plan, then run \
                 `okta-spot-sync reconcile --allow-deletes {deletes}` once",
                limits.max_delete_percent
            ),
            |a| destructive(a.action),
        );
    }

    let personal = spot_users.iter().filter(|u| u.is_personal()).count();
    let still_deleting = plan
        .actions
        .iter()
        .filter(|a| a.deletes() && a.status == ActionStatus::Planned)
        .count();
    if still_deleting > 0 && still_deleting >= personal {
        trip(
            plan,
            "last_personal_user",
            format!(
                "the plan would delete all {personal} personal users of the Spot organization; \
                 the last personal user is never deleted (it may own the API token this tool uses)"
            ),
            |a| a.deletes(),
        );
    }
}

/// Defence in depth: whatever the planner produced, a delete may only hit a personal,
/// unprotected Spot user that the ledger owns.
fn block_untouchable(
    plan: &mut Plan,
    spot_users: &[SpotUser],
    ledger: &Ledger,
    limits: &GuardLimits,
) {
    // Built once, on the first delete: a wave of deletes at 100,000 users would otherwise
    // search the whole Spot list and the whole ledger for each.
    let mut index: Option<(FxHashMap<&str, &SpotUser>, FxHashSet<&str>)> = None;
    let mut reasons = Vec::new();
    for action in plan.actions.iter_mut() {
        let Some(target) = action.deleted_spot_user() else {
            continue;
        };
        let (by_id, owned) = index.get_or_insert_with(|| {
            let by_id = spot_users.iter().map(|u| (u.user_id.as_str(), u)).collect();
            (by_id, ledger.owned_spot_user_ids())
        });
        let user = by_id.get(target).copied();
        let why = match user {
            None => Some(format!(
                "Spot user {target} is not in the organization's user list"
            )),
            Some(u) if !u.is_personal() => {
                Some(format!("Spot user {target} is not a personal user"))
            }
            Some(u)
                if u.email
                    .as_ref()
                    .is_some_and(|e| limits.protected_emails.contains(e)) =>
            {
                Some(format!("Spot user {target} has a protected email"))
            }
            Some(_) if !owned.contains(target) => {
                Some(format!("Spot user {target} is not owned by okta-spot-sync"))
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            action.status = ActionStatus::Blocked;
            action.error = Some(why.clone());
            reasons.push(why);
        }
    }
    for why in reasons {
        plan.blocked_by.push(GuardTrip {
            guard: "never_touch".into(),
            message: why,
        });
    }
}

fn trip(
    plan: &mut Plan,
    guard: &str,
    message: String,
    applies: impl Fn(&crate::plan::Action) -> bool,
) {
    for action in plan.actions.iter_mut() {
        if action.status == ActionStatus::Planned && applies(action) {
            action.status = ActionStatus::Blocked;
            action.error = Some(format!("blocked by guard {guard}"));
        }
    }
    plan.blocked_by.push(GuardTrip {
        guard: guard.into(),
        message,
    });
}
