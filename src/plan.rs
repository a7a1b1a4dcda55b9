//! The planner: from what Okta says should exist, what Spot has, and what the ledger owns, the
//! list of actions that brings Spot in line.
//!
//! Pure: no I/O, no clock, no randomness. Its output depends only on its inputs, never on their
//! order. It must never plan a write to a Spot user the ledger does not own (adoption only
//! records ownership), nor to a programmatic or protected user; `guard` re-checks this.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::Serialize;

use crate::ledger::{EntryState, Ledger, LedgerEntry, Origin};
use crate::model::{DesiredUser, Email, HeldUser, OktaSnapshot, Role, SpotUser};

/// The kinds of action, in the words of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Create,
    Delete,
    Recreate,
    Adopt,
    UpdateRole,
    AssignInOkta,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        ActionKind::Create,
        ActionKind::Delete,
        ActionKind::Recreate,
        ActionKind::Adopt,
        ActionKind::UpdateRole,
        ActionKind::AssignInOkta,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Delete => "delete",
            ActionKind::Recreate => "recreate",
            ActionKind::Adopt => "adopt",
            ActionKind::UpdateRole => "update_role",
            ActionKind::AssignInOkta => "assign_in_okta",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Planned,
    Applied,
    Failed,
    Blocked,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Planned => "planned",
            ActionStatus::Applied => "applied",
            ActionStatus::Failed => "failed",
            ActionStatus::Blocked => "blocked",
        }
    }
}

/// What `apply` needs beyond the report's fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionDetail {
    /// The address as Okta spells it, sent to Spot on create.
    pub email_display: String,
    pub first_name: String,
    pub last_name: String,
    /// Recreate only: the existing Spot user to delete before creating the new one.
    pub delete_first: Option<String>,
    /// Adopt only: also apply the role's policy mapping (completing an interrupted create).
    pub apply_role_mapping: bool,
    /// Adopt only: the origin to record.
    pub origin: Option<Origin>,
    /// Adopt only: the Okta user whose ledger entry owned this Spot user until now.
    pub previous_owner: Option<String>,
}

/// One planned change. Serialises to the report's action object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub action: ActionKind,
    pub email: String,
    pub okta_user_id: String,
    pub spot_user_id: Option<String>,
    pub role: Option<Role>,
    pub reason: String,
    pub status: ActionStatus,
    pub error: Option<String>,
    #[serde(skip)]
    pub detail: ActionDetail,
}

impl Action {
    /// Does applying this action delete a Spot user?
    pub fn deletes(&self) -> bool {
        self.action == ActionKind::Delete
            || (self.action == ActionKind::Recreate && self.detail.delete_first.is_some())
    }

    /// The Spot user this action deletes, if any.
    pub fn deleted_spot_user(&self) -> Option<&str> {
        match self.action {
            ActionKind::Delete => self.spot_user_id.as_deref(),
            ActionKind::Recreate => self.detail.delete_first.as_deref(),
            _ => None,
        }
    }
}

/// A guard that stopped actions, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardTrip {
    pub guard: String,
    pub message: String,
}

/// The plan for one cycle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Distinct Okta users listed by the app.
    pub okta_users: usize,
    /// Users in the Spot organization (all kinds).
    pub spot_users: usize,
    pub actions: Vec<Action>,
    pub held: Vec<HeldUser>,
    pub blocked_by: Vec<GuardTrip>,
    /// Ledger-only housekeeping: Okta users no longer entitled whose Spot user is already gone.
    pub forget: Vec<String>,
}

impl Plan {
    /// True when applying would change nothing, in Spot or in the ledger.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.forget.is_empty()
    }
}

/// The settings the planner reads.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub adopt_existing: bool,
    pub update_roles: bool,
    pub protected_emails: BTreeSet<Email>,
    /// The Spot organization role each Okta role is created with. A role change between two
    /// roles with different Spot roles cannot be done in place (Spot has no user update), so it
    /// is a recreate.
    pub spot_roles: BTreeMap<Role, String>,
}

/// Computes the plan. `spot_users` is the complete list of the organization's users.
pub fn plan(
    okta: &OktaSnapshot,
    spot_users: &[SpotUser],
    ledger: &Ledger,
    options: &PlanOptions,
) -> Plan {
    Planner::new(okta, spot_users, ledger, options).run()
}

/// A Spot user an Okta user may take over.
#[derive(Clone, Copy)]
struct Claim<'a> {
    user: &'a SpotUser,
    previous_owner: Option<&'a str>,
}

struct Planner<'a> {
    okta: &'a OktaSnapshot,
    ledger: &'a Ledger,
    options: &'a PlanOptions,
    spot_by_id: HashMap<&'a str, &'a SpotUser>,
    spot_users: &'a [SpotUser],
    /// Personal users by email; the lowest user id first so duplicates resolve the same way
    /// whatever order Spot listed them in. Built on first use (not needed in steady state),
    /// like the other `OnceCell` indexes: at 1,000,000 users each costs ~0.1 s.
    personal_by_email: OnceCell<HashMap<&'a Email, &'a SpotUser>>,
    /// Spot user id -> Okta user id of the live ledger entry that owns it.
    owner_of: OnceCell<HashMap<&'a str, &'a str>>,
    spot_count: usize,
    actions: Vec<Action>,
    held: Vec<HeldUser>,
    forget: Vec<String>,
    /// Spot users handed from an absent owner to a new one this cycle: not to be deleted.
    transferred: HashSet<String>,
    /// Okta users who are provisioned or held this cycle, sorted.
    entitled: Vec<&'a str>,
    /// Provisioned Okta users by email (unique: shared emails are held by the classifier).
    desired_by_email: OnceCell<HashMap<&'a Email, &'a DesiredUser>>,
    /// Provisioned Okta users sorted by Okta user id (binary search, merge with the ledger).
    desired_sorted: Vec<&'a DesiredUser>,
}

impl<'a> Planner<'a> {
    fn new(
        okta: &'a OktaSnapshot,
        spot_users: &'a [SpotUser],
        ledger: &'a Ledger,
        options: &'a PlanOptions,
    ) -> Self {
        let mut spot_by_id =
            HashMap::with_capacity_and_hasher(spot_users.len(), Default::default());
        for user in spot_users {
            spot_by_id.insert(user.user_id.as_str(), user);
        }
        let mut desired_sorted: Vec<&DesiredUser> = okta.provision.iter().collect();
        // The classifier emits them sorted; this is then a linear check.
        desired_sorted.sort_unstable_by(|a, b| a.okta_user_id.cmp(&b.okta_user_id));
        let mut entitled: Vec<&str> = desired_sorted
            .iter()
            .map(|d| d.okta_user_id.as_str())
            .chain(okta.held.iter().map(|h| h.okta_user_id.as_str()))
            .collect();
        entitled.sort_unstable();
        entitled.dedup();
        Planner {
            okta,
            ledger,
            options,
            spot_by_id,
            spot_users,
            personal_by_email: OnceCell::new(),
            owner_of: OnceCell::new(),
            spot_count: spot_users.len(),
            actions: Vec::new(),
            held: okta.held.clone(),
            forget: Vec::new(),
            transferred: HashSet::default(),
            entitled,
            desired_by_email: OnceCell::new(),
            desired_sorted,
        }
    }

    fn personal_by_email(&self) -> &HashMap<&'a Email, &'a SpotUser> {
        self.personal_by_email.get_or_init(|| {
            let mut map: HashMap<&Email, &SpotUser> =
                HashMap::with_capacity_and_hasher(self.spot_users.len(), Default::default());
            for user in self.spot_users {
                if let (true, Some(email)) = (user.is_personal(), user.email.as_ref()) {
                    map.entry(email)
                        .and_modify(|kept| {
                            if user.user_id < kept.user_id {
                                *kept = user;
                            }
                        })
                        .or_insert(user);
                }
            }
            map
        })
    }

    fn owner_of(&self, spot_user_id: &str) -> Option<&'a str> {
        let ledger = self.ledger;
        self.owner_of
            .get_or_init(|| {
                let mut map =
                    HashMap::with_capacity_and_hasher(ledger.users.len(), Default::default());
                for (okta_id, entry) in &ledger.users {
                    if entry.state != EntryState::Deleted {
                        if let Some(spot_id) = &entry.spot_user_id {
                            map.insert(spot_id.as_str(), okta_id.as_str());
                        }
                    }
                }
                map
            })
            .get(spot_user_id)
            .copied()
    }

    fn is_entitled(&self, okta_id: &str) -> bool {
        self.entitled.binary_search(&okta_id).is_ok()
    }

    /// Is `owner` (an entitled Okta user) letting go of `spot_user` because its email in Okta
    /// changed to something else?
    fn releases(&self, owner: &str, spot_user: &SpotUser) -> bool {
        self.desired_sorted
            .binary_search_by(|d| d.okta_user_id.as_str().cmp(owner))
            .ok()
            .is_some_and(|i| spot_user.email.as_ref() != Some(&self.desired_sorted[i].email))
    }

    fn run(mut self) -> Plan {
        // Both sides are sorted by Okta user id: one merge instead of a map lookup per user.
        let mut ledger = self.ledger.users.iter().peekable();
        for i in 0..self.desired_sorted.len() {
            let user: &'a DesiredUser = self.desired_sorted[i];
            while ledger
                .next_if(|(id, _)| id.as_str() < user.okta_user_id.as_str())
                .is_some()
            {}
            let entry = ledger
                .peek()
                .filter(|(id, _)| **id == user.okta_user_id)
                .map(|(_, e)| *e);
            self.plan_desired(user, entry);
        }
        self.plan_absent();
        self.actions
            .sort_by(|a, b| (&a.okta_user_id, a.action).cmp(&(&b.okta_user_id, b.action)));
        self.held
            .sort_by(|a, b| a.okta_user_id.cmp(&b.okta_user_id));
        self.forget.sort();
        Plan {
            okta_users: self.okta.listed,
            spot_users: self.spot_count,
            actions: self.actions,
            held: self.held,
            blocked_by: Vec::new(),
            forget: self.forget,
        }
    }

    fn is_protected(&self, email: &Email) -> bool {
        self.options.protected_emails.contains(email)
    }

    fn hold(&mut self, user: &DesiredUser, reason: String) {
        self.held.push(HeldUser {
            okta_user_id: user.okta_user_id.clone(),
            email: Some(user.email_display().to_string()),
            reason,
        });
    }

    fn action(
        &mut self,
        kind: ActionKind,
        user: &DesiredUser,
        spot_user_id: Option<String>,
        reason: String,
    ) -> &mut Action {
        self.actions.push(Action {
            action: kind,
            email: user.email.to_string(),
            okta_user_id: user.okta_user_id.clone(),
            spot_user_id,
            role: Some(user.role),
            reason,
            status: ActionStatus::Planned,
            error: None,
            detail: ActionDetail {
                email_display: user.email_display().to_string(),
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
                ..ActionDetail::default()
            },
        });
        self.actions.last_mut().expect("just pushed")
    }

    /// The personal Spot user with this email, if this Okta user may take it: free, already
    /// its own, or owned by an entry whose Okta user is no longer entitled (ownership then
    /// moves instead of a delete followed by a create). `Err(owner)` names an entitled owner.
    fn free_personal_user(
        &self,
        email: &Email,
        okta_id: &str,
    ) -> Option<Result<Claim<'a>, &'a str>> {
        let user = *self.personal_by_email().get(email)?;
        match self.owner_of(user.user_id.as_str()) {
            Some(owner)
                if owner != okta_id && self.is_entitled(owner) && !self.releases(owner, user) =>
            {
                Some(Err(owner))
            }
            Some(owner) if owner != okta_id => Some(Ok(Claim {
                user,
                previous_owner: Some(owner),
            })),
            _ => Some(Ok(Claim {
                user,
                previous_owner: None,
            })),
        }
    }

    /// Plans an adoption of `claim` for `user`.
    fn adopt(
        &mut self,
        user: &DesiredUser,
        claim: Claim<'a>,
        origin: Origin,
        reason: String,
    ) -> &mut Action {
        let id = claim.user.user_id.clone();
        let reason = match claim.previous_owner {
            Some(owner) => {
                self.transferred.insert(id.clone());
                format!(
                    "{reason} (it was managed for Okta user {owner}, who is no longer assigned)"
                )
            }
            None => reason,
        };
        let action = self.action(ActionKind::Adopt, user, Some(id), reason);
        action.detail.origin = Some(origin);
        action.detail.previous_owner = claim.previous_owner.map(str::to_string);
        action
    }

    fn plan_desired(&mut self, user: &DesiredUser, entry: Option<&'a LedgerEntry>) {
        if self.is_protected(&user.email) {
            self.hold(
                user,
                "protected email (sync.protected_emails): never touched".into(),
            );
            return;
        }
        match entry {
            Some(entry) if entry.state == EntryState::Managed => self.plan_managed(user, entry),
            Some(entry) if entry.state == EntryState::Pending => self.plan_pending(user, entry),
            Some(_) => self.plan_returning(user),
            None => self.plan_new(user),
        }
    }

    /// A user this tool already manages.
    fn plan_managed(&mut self, user: &DesiredUser, entry: &LedgerEntry) {
        let live = entry
            .spot_user_id
            .as_deref()
            .and_then(|id| self.spot_by_id.get(id).copied());
        let Some(spot_user) = live else {
            let gone = entry.spot_user_id.clone().unwrap_or_else(|| "?".into());
            match self.free_personal_user(&user.email, &user.okta_user_id) {
                Some(Ok(claim)) => {
                    let reason = format!(
                        "managed Spot user {gone} no longer exists; re-linking to Spot user {} with the same email",
                        claim.user.user_id
                    );
                    self.adopt(user, claim, entry.origin, reason);
                }
                Some(Err(owner)) => self.hold_owned(user, owner),
                None => {
                    let reason = format!(
                        "managed Spot user {gone} no longer exists in Spot (deleted outside okta-spot-sync); creating it again"
                    );
                    self.action(ActionKind::Create, user, None, reason);
                }
            }
            return;
        };
        // The ledger stores normalised emails: equal text is the common case, no parse needed.
        if entry.email != user.email.as_str() {
            let ledger_email = Email::parse(&entry.email);
            if ledger_email.as_ref() != Some(&user.email) {
                self.plan_email_change(user, entry, spot_user, ledger_email.as_ref());
                return;
            }
        }
        match entry.role {
            None => {
                let reason = format!(
                    "the {} role's Spot mapping has not been applied yet",
                    user.role
                );
                self.action(
                    ActionKind::UpdateRole,
                    user,
                    Some(spot_user.user_id.clone()),
                    reason,
                );
            }
            Some(current) if current != user.role && self.options.update_roles => {
                let same_spot_role = self.options.spot_roles.get(&current)
                    == self.options.spot_roles.get(&user.role);
                if same_spot_role {
                    let reason = format!("role changed in Okta from {current} to {}", user.role);
                    self.action(
                        ActionKind::UpdateRole,
                        user,
                        Some(spot_user.user_id.clone()),
                        reason,
                    );
                } else {
                    let reason = format!(
                        "role changed in Okta from {current} to {}; Spot cannot change a user's organization role in place, so the user is recreated",
                        user.role
                    );
                    let old_id = spot_user.user_id.clone();
                    let action =
                        self.action(ActionKind::Recreate, user, Some(old_id.clone()), reason);
                    action.detail.delete_first = Some(old_id);
                }
            }
            Some(_) => {}
        }
    }

    /// A managed user's email changed in Okta. Spot cannot change an email, so the user moves
    /// to a Spot user with the new email (an existing one is adopted, otherwise one is
    /// created) and the old Spot user is deleted — unless another Okta user now has the old
    /// email, in which case it passes to them.
    fn plan_email_change(
        &mut self,
        user: &DesiredUser,
        entry: &LedgerEntry,
        old: &'a SpotUser,
        old_email: Option<&Email>,
    ) {
        if old_email.is_some_and(|e| self.is_protected(e)) {
            let reason = format!(
                "email changed in Okta, but the Spot user's email {} is protected",
                entry.email
            );
            self.hold(user, reason);
            return;
        }
        let old_passes_on = old_email
            .and_then(|e| {
                self.desired_by_email
                    .get_or_init(|| self.okta.provision.iter().map(|d| (&d.email, d)).collect())
                    .get(e)
            })
            .is_some_and(|next| next.okta_user_id != user.okta_user_id);
        let change = format!(
            "email changed in Okta from {} to {}",
            entry.email, user.email
        );
        match self.free_personal_user(&user.email, &user.okta_user_id) {
            Some(Err(owner)) => self.hold_owned(user, owner),
            Some(Ok(claim)) if self.options.adopt_existing || claim.previous_owner.is_some() => {
                let reason = format!("{change}; a Spot user with the new email exists");
                self.adopt(user, claim, entry.origin, reason);
                if !old_passes_on {
                    let reason =
                        format!("{change}; the Spot user with the old email is no longer needed");
                    let action =
                        self.action(ActionKind::Delete, user, Some(old.user_id.clone()), reason);
                    action.email = entry.email.clone();
                    action.role = entry.role;
                }
            }
            Some(Ok(claim)) => {
                let reason = format!(
                    "{change}, but Spot user {} has the new email and sync.adopt_existing is false",
                    claim.user.user_id
                );
                self.hold(user, reason);
            }
            None if old_passes_on => {
                let reason = format!("{change}; the Spot user with the old email passes to the Okta user who has it now");
                self.action(ActionKind::Create, user, None, reason);
            }
            None => {
                let reason =
                    format!("{change}; Spot cannot change an email, so the user is recreated");
                let action = self.action(
                    ActionKind::Recreate,
                    user,
                    Some(old.user_id.clone()),
                    reason,
                );
                action.detail.delete_first = Some(old.user_id.clone());
            }
        }
    }

    /// A create was started and not confirmed (crash or failure): finish it. The `pending`
    /// record claims the email, so a Spot user found by it is taken as the one we created.
    fn plan_pending(&mut self, user: &DesiredUser, entry: &LedgerEntry) {
        let by_id = entry
            .spot_user_id
            .as_deref()
            .and_then(|id| self.spot_by_id.get(id).copied())
            .filter(|found| found.email.as_ref() == Some(&user.email));
        let found = match by_id {
            Some(found) => Some(Ok(Claim {
                user: found,
                previous_owner: None,
            })),
            None => self.free_personal_user(&user.email, &user.okta_user_id),
        };
        match found {
            Some(Ok(claim)) => {
                let reason = "completing an interrupted create: the Spot user exists, recording it and applying its role".to_string();
                let action = self.adopt(user, claim, entry.origin, reason);
                action.detail.apply_role_mapping = true;
            }
            Some(Err(owner)) => self.hold_owned(user, owner),
            None => {
                self.action(
                    ActionKind::Create,
                    user,
                    None,
                    "retrying an interrupted create".into(),
                );
            }
        }
    }

    /// A user this tool deleted earlier is entitled again (reactivated or reassigned in Okta).
    fn plan_returning(&mut self, user: &DesiredUser) {
        match self.free_personal_user(&user.email, &user.okta_user_id) {
            Some(Ok(claim)) if self.options.adopt_existing || claim.previous_owner.is_some() => {
                let reason = "reactivated in Okta; a Spot user with this email already exists".to_string();
                self.adopt(user, claim, Origin::Adopted, reason);
            }
            Some(Ok(_)) => self.hold(
                user,
                "reactivated in Okta, but a Spot user with this email exists and sync.adopt_existing is false".into(),
            ),
            Some(Err(owner)) => self.hold_owned(user, owner),
            None => {
                self.action(
                    ActionKind::Recreate,
                    user,
                    None,
                    "reactivated or reassigned in Okta after okta-spot-sync deleted it".into(),
                );
            }
        }
    }

    /// An Okta user the ledger has never seen.
    fn plan_new(&mut self, user: &DesiredUser) {
        match self.free_personal_user(&user.email, &user.okta_user_id) {
            None => {
                self.action(
                    ActionKind::Create,
                    user,
                    None,
                    "assigned in Okta, missing in Spot".into(),
                );
            }
            Some(Err(owner)) => self.hold_owned(user, owner),
            Some(Ok(claim)) if self.options.adopt_existing || claim.previous_owner.is_some() => {
                let reason = "existing Spot user matches an assigned Okta user".to_string();
                self.adopt(user, claim, Origin::Adopted, reason);
            }
            Some(Ok(_)) => self.hold(
                user,
                "a Spot user with this email exists and sync.adopt_existing is false".into(),
            ),
        }
    }

    fn hold_owned(&mut self, user: &DesiredUser, owner: &str) {
        let reason = format!(
            "its email belongs to a Spot user managed for Okta user {owner}, who is still assigned; give each Okta user a unique email"
        );
        self.hold(user, reason);
    }

    /// Ledger entries whose Okta user is no longer entitled.
    fn plan_absent(&mut self) {
        let entitled = std::mem::take(&mut self.entitled);
        let mut entitled = entitled.iter().peekable();
        let absent_reason: HashMap<&str, &str> = self
            .okta
            .absent
            .iter()
            .map(|a| (a.okta_user_id.as_str(), a.reason.as_str()))
            .collect();
        for (okta_id, entry) in &self.ledger.users {
            // Both sorted by Okta user id: a merge, not a lookup per entry.
            while entitled.next_if(|id| **id < okta_id.as_str()).is_some() {}
            let is_entitled = entitled.peek().is_some_and(|id| **id == okta_id.as_str());
            if entry.state == EntryState::Deleted || is_entitled {
                continue;
            }
            let target = entry
                .spot_user_id
                .as_deref()
                .and_then(|id| self.spot_by_id.get(id).copied());
            let Some(target) = target else {
                if entry.state == EntryState::Pending {
                    if let Some(email) = Email::parse(&entry.email) {
                        if let Some(found) = self.personal_by_email().get(&email) {
                            if self.owner_of(found.user_id.as_str()).is_none() {
                                self.held.push(HeldUser {
                                    okta_user_id: okta_id.clone(),
                                    email: Some(entry.email.clone()),
                                    reason: format!(
                                        "no longer assigned in Okta; a create for it was never confirmed, so Spot user {} with its email is not known to be ours and is left alone",
                                        found.user_id
                                    ),
                                });
                            }
                        }
                    }
                }
                self.forget.push(okta_id.clone());
                continue;
            };
            if self.transferred.contains(&target.user_id) {
                continue;
            }
            let email = Email::parse(&entry.email);
            if !target.is_personal() || email.as_ref().is_some_and(|e| self.is_protected(e)) {
                self.held.push(HeldUser {
                    okta_user_id: okta_id.clone(),
                    email: Some(entry.email.clone()),
                    reason: format!("no longer assigned in Okta, but Spot user {} is programmatic or protected: never deleted", target.user_id),
                });
                continue;
            }
            let reason = match absent_reason.get(okta_id.as_str()) {
                Some(why) => format!("{why}: no longer entitled"),
                None => "no longer assigned to the app in Okta".to_string(),
            };
            self.actions.push(Action {
                action: ActionKind::Delete,
                email: entry.email.clone(),
                okta_user_id: okta_id.clone(),
                spot_user_id: Some(target.user_id.clone()),
                role: entry.role,
                reason,
                status: ActionStatus::Planned,
                error: None,
                detail: ActionDetail::default(),
            });
        }
    }
}
