//! Safety guards: pure checks over a plan that block destructive actions when the plan looks
//! like the product of bad data rather than of real change.
//!
//! Pure: no I/O. A guard never adds, removes or changes actions: it answers the plan with
//! [`Verdicts`], which say which actions are blocked and why, and which guards tripped.
//! Creates and adoptions are never blocked by the delete limits.

use std::collections::BTreeSet;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::action::{Action, ActionKind, Change};
use crate::ledger::Ledger;
use crate::model::{Email, SpotUser, SpotUserId, SpotUsers};
use crate::plan::Plan;

/// A guard that stopped actions, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardTrip {
    pub guard: String,
    pub message: String,
}

/// The guards' answer to a plan: for each action (by its index in `Plan::actions`), whether it
/// is blocked and why, and the guards that tripped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdicts {
    /// By action index: `Some(why)` when blocked.
    blocked: Vec<Option<String>>,
    trips: Vec<GuardTrip>,
}

impl Verdicts {
    /// Nothing blocked: for a plan no guard looked at (`rebuild-ledger`'s adoptions, tests).
    pub fn allow_all(plan: &Plan) -> Verdicts {
        Verdicts {
            blocked: vec![None; plan.actions.len()],
            trips: Vec::new(),
        }
    }

    /// Why action `index` is blocked, or `None` when it may be applied.
    pub fn blocked(&self, index: usize) -> Option<&str> {
        self.blocked.get(index).and_then(|b| b.as_deref())
    }

    /// May action `index` be applied?
    pub fn allows(&self, index: usize) -> bool {
        self.blocked(index).is_none()
    }

    /// The guards that tripped, in the order they did.
    pub fn trips(&self) -> &[GuardTrip] {
        &self.trips
    }

    /// Blocks every action not yet blocked for which `applies` holds, with `why`.
    fn block(&mut self, plan: &Plan, why: &str, applies: impl Fn(&Action) -> bool) {
        for (verdict, action) in self.blocked.iter_mut().zip(&plan.actions) {
            if verdict.is_none() && applies(action) {
                *verdict = Some(why.to_string());
            }
        }
    }

    /// Actions still allowed that delete a Spot user.
    fn deletes_allowed(&self, plan: &Plan) -> usize {
        self.allowed_where(plan, Action::deletes)
    }

    /// Actions still allowed for which `applies` holds.
    fn allowed_where(&self, plan: &Plan, applies: impl Fn(&Action) -> bool) -> usize {
        self.blocked
            .iter()
            .zip(&plan.actions)
            .filter(|(verdict, action)| verdict.is_none() && applies(action))
            .count()
    }

    fn trip(
        &mut self,
        plan: &Plan,
        guard: &str,
        message: String,
        applies: impl Fn(&Action) -> bool,
    ) {
        self.block(plan, &format!("blocked by guard {guard}"), applies);
        self.trips.push(GuardTrip {
            guard: guard.into(),
            message,
        });
    }
}

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
    /// Deletes already applied in the rolling hour before this plan
    /// ([`Ledger::deletes_in_window`]): the delete limits hold per cycle and per rolling hour.
    pub recent_deletes: usize,
}

/// Managed-user count above which the percentage limit applies (Okta's own import safeguard
/// uses the same floor).
pub const PERCENT_GUARD_FLOOR: usize = 100;

/// Answers `plan` with the guards' verdicts.
pub fn guard(
    plan: &Plan,
    spot_users: &SpotUsers,
    ledger: &Ledger,
    limits: &GuardLimits,
) -> Verdicts {
    let mut verdicts = Verdicts::allow_all(plan);
    block_untouchable(&mut verdicts, plan, spot_users, ledger, limits);

    let managed = ledger.managed_count();
    let deletes = verdicts.deletes_allowed(plan);
    let destructive = |a: &Action| matches!(a.kind(), ActionKind::Delete | ActionKind::Recreate);

    // A partial plan (events mode) lists only the users an event named: none listed there is
    // no sign of an empty source.
    if plan.partial.is_none()
        && plan.okta_users == 0
        && managed > 0
        && deletes > 0
        && !limits.allow_empty_source
    {
        verdicts.trip(
            plan,
            "empty_source",
            format!(
                "Okta listed no assignments for the app while {managed} users are managed; \
                 refusing {deletes} deletes. If the app really has no users now, run \
                 `okta-spot-sync reconcile --allow-empty-source` once"
            ),
            Action::deletes,
        );
        return verdicts;
    }

    let allowed_by_override = limits.allow_deletes.is_some_and(|n| deletes <= n);
    // Per rolling hour: this plan's deletes plus those applied in the hour before it.
    let recent = limits.recent_deletes;
    let in_window = deletes.saturating_add(recent);
    let counted = |limit: String| {
        match recent {
        0 => format!("{deletes} deletes planned, more than {limit}"),
        _ => format!(
            "{deletes} deletes planned and {recent} applied in the last hour ({in_window} in the rolling hour), \
             more than {limit} per rolling hour"
        ),
    }
    };
    let lift = |what: &str| {
        format!(
            "deletes and recreates are held {what}. Check the plan, then run \
             `okta-spot-sync reconcile --allow-deletes {deletes}` once"
        )
    };
    let what = match plan.partial {
        Some(_) => "in this events batch (the next full cycle plans them again)",
        None => "this cycle",
    };
    if deletes > 0 && in_window > limits.max_deletes && !allowed_by_override {
        verdicts.trip(
            plan,
            "max_deletes",
            format!(
                "{}; {}",
                counted(format!("sync.max_deletes = {}", limits.max_deletes)),
                lift(what)
            ),
            destructive,
        );
    } else if deletes > 0
        && managed > PERCENT_GUARD_FLOOR
        && in_window * 100 > usize::from(limits.max_delete_percent) * managed
        && !allowed_by_override
    {
        verdicts.trip(
            plan,
            "max_delete_percent",
            format!(
                "{}; {}",
                match recent {
                    0 => format!(
                        "{deletes} deletes planned out of {managed} managed users, more than \
                         sync.max_delete_percent = {}%",
                        limits.max_delete_percent
                    ),
                    _ => counted(format!(
                        "sync.max_delete_percent = {}% of {managed} managed users",
                        limits.max_delete_percent
                    )),
                },
                lift(what)
            ),
            destructive,
        );
    }

    let personal = spot_users.iter().filter(|u| u.is_personal()).count();
    let still_deleting = verdicts.deletes_allowed(plan);
    if still_deleting > 0 && still_deleting >= personal {
        // The plain deletes are held; a recreate (a person who keeps access, under a new Spot
        // user) still goes ahead when the recreates alone leave an existing personal user
        // untouched. Each deletes a distinct Spot user of the (distinct) list, so fewer
        // recreates than personal users always leave one.
        let recreates = verdicts.allowed_where(plan, is_recreate_with_delete);
        let held: fn(&Action) -> bool = if recreates < personal {
            is_plain_delete
        } else {
            Action::deletes
        };
        verdicts.trip(
            plan,
            "last_personal_user",
            format!(
                "the plan would delete all {personal} personal users of the Spot organization; \
                 the last personal user is never deleted (it may own the API token this tool uses)"
            ),
            held,
        );
    }
    verdicts
}

fn is_plain_delete(action: &Action) -> bool {
    matches!(action.change, Change::Delete { .. })
}

fn is_recreate_with_delete(action: &Action) -> bool {
    matches!(action.change, Change::Recreate { .. }) && action.deletes()
}

/// Defence in depth: whatever the planner produced, a delete may only hit a personal,
/// unprotected Spot user that the ledger owns.
fn block_untouchable(
    verdicts: &mut Verdicts,
    plan: &Plan,
    spot_users: &[SpotUser],
    ledger: &Ledger,
    limits: &GuardLimits,
) {
    // Built once, on the first delete: a wave of deletes at 100,000 users would otherwise
    // search the whole Spot list and the whole ledger for each.
    let mut index: Option<(FxHashMap<&SpotUserId, &SpotUser>, FxHashSet<&str>)> = None;
    for (verdict, action) in verdicts.blocked.iter_mut().zip(&plan.actions) {
        let Some(target) = action.deleted_spot_user() else {
            continue;
        };
        let (by_id, owned) = index.get_or_insert_with(|| {
            let by_id = spot_users.iter().map(|u| (&u.user_id, u)).collect();
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
            Some(_) if !owned.contains(target.as_str()) => {
                Some(format!("Spot user {target} is not owned by okta-spot-sync"))
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            *verdict = Some(why.clone());
            verdicts.trips.push(GuardTrip {
                guard: "never_touch".into(),
                message: why,
            });
        }
    }
}
