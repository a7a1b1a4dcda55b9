//! The actions a plan is made of: one enum variant per kind of change, each with exactly the
//! data that kind needs.
//!
//! It owns the *vocabulary* of a cycle: what a change is ([`Change`]), the words the report
//! uses for kinds and statuses ([`ActionKind`], [`ActionStatus`]). An [`Action`] is made by the
//! planner and never changed afterwards: `guard` answers with verdicts (`guard::Verdicts`),
//! `apply` with outcomes (`apply::Outcomes`), and the report is built from all three.
//!
//! Adding a kind of change is compile-guided: a new [`Change`] variant makes every `match` on
//! it fail to compile until the planner's reporting ([`Action::kind`], [`Action::spot_user_id`],
//! [`Action::role`]), the guards ([`Action::deleted_spot_user`]) and `apply` say what it means.
//! No wildcard arm (`_ =>`) on a `Change` may be added anywhere, so that this stays true.
//!
//! Pure data: no I/O, no decisions.

use serde::Serialize;

use crate::ledger::Origin;
use crate::model::{OktaUserId, Role, SpotUserId};

/// The kinds of action, in the words of the report (`action` in README's JSON report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Create,
    Delete,
    Recreate,
    Adopt,
    UpdateRole,
    /// `import` only: never a [`Change`], so it can never reach `apply`.
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

/// Where an action stands, in the words of the report: planned (not attempted), applied,
/// failed, or blocked by a guard.
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

/// The Spot user a create makes, as Okta describes the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The address as Okta spells it, sent to Spot.
    pub email_display: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
}

/// The old Spot user a recreate replaces, and when it is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replace {
    /// Deleted before the create (a role change: Spot has one user per email, so the old one
    /// must go first).
    DeleteFirst(SpotUserId),
    /// Deleted once the create succeeded (an email change, or a tombstone Spot still lists:
    /// if Spot refuses the new user, the person keeps the old one).
    DeleteAfter(SpotUserId),
}

impl Replace {
    /// The Spot user deleted.
    pub fn spot_user_id(&self) -> &SpotUserId {
        match self {
            Replace::DeleteFirst(id) | Replace::DeleteAfter(id) => id,
        }
    }
}

/// What an adoption records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The existing Spot user taken over.
    pub spot_user_id: SpotUserId,
    pub role: Role,
    /// The origin to record (`created` when completing this tool's own interrupted create).
    pub origin: Origin,
    /// The Okta user whose ledger entry owned this Spot user until now.
    pub previous_owner: Option<OktaUserId>,
    /// Also apply the role's policy mapping (completing an interrupted create).
    pub apply_role_mapping: bool,
}

/// One change to Spot (and the ledger), with the data its kind needs and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create a Spot user for the Okta user.
    Create(NewUser),
    /// Create a Spot user again: the old one (if Spot still has it) is replaced; `None` for an
    /// Okta user returning after this tool deleted its user.
    Recreate {
        user: NewUser,
        replaces: Option<Replace>,
    },
    /// Delete a Spot user the ledger owns or owned. `role` is the ledger's, for the report.
    Delete {
        spot_user_id: SpotUserId,
        role: Option<Role>,
    },
    /// Record ownership of an existing Spot user (ledger only, unless `apply_role_mapping`).
    Adopt(Adoption),
    /// Bring a managed Spot user's grants in line with its role: add what the role needs
    /// (keeping what the user has), and for a role change (`from`, the role the ledger
    /// recorded) take away the old role's policies that the new one does not have.
    UpdateRole {
        spot_user_id: SpotUserId,
        role: Role,
        from: Option<Role>,
    },
}

/// One planned change for one Okta user. Immutable once planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub okta_user_id: OktaUserId,
    /// The (normalised) email the report shows.
    pub email: String,
    /// Why, in words an admin can act on.
    pub reason: String,
    pub change: Change,
}

impl Action {
    /// The report's word for this action.
    pub fn kind(&self) -> ActionKind {
        match &self.change {
            Change::Create(_) => ActionKind::Create,
            Change::Recreate { .. } => ActionKind::Recreate,
            Change::Delete { .. } => ActionKind::Delete,
            Change::Adopt(_) => ActionKind::Adopt,
            Change::UpdateRole { .. } => ActionKind::UpdateRole,
        }
    }

    /// The existing Spot user this action is about (the report's `spot_user_id` before it is
    /// applied): the one deleted, adopted, re-mapped, or replaced by a recreate.
    pub fn spot_user_id(&self) -> Option<&SpotUserId> {
        match &self.change {
            Change::Create(_) => None,
            Change::Recreate { replaces, .. } => replaces.as_ref().map(Replace::spot_user_id),
            Change::Delete { spot_user_id, .. } | Change::UpdateRole { spot_user_id, .. } => {
                Some(spot_user_id)
            }
            Change::Adopt(adoption) => Some(&adoption.spot_user_id),
        }
    }

    /// The Okta role the action gives (for a delete, the role the ledger recorded).
    pub fn role(&self) -> Option<Role> {
        match &self.change {
            Change::Create(user) | Change::Recreate { user, .. } => Some(user.role),
            Change::Delete { role, .. } => *role,
            Change::Adopt(adoption) => Some(adoption.role),
            Change::UpdateRole { role, .. } => Some(*role),
        }
    }

    /// The Spot user this action deletes, if any.
    pub fn deleted_spot_user(&self) -> Option<&SpotUserId> {
        match &self.change {
            Change::Delete { spot_user_id, .. } => Some(spot_user_id),
            Change::Recreate { replaces, .. } => replaces.as_ref().map(Replace::spot_user_id),
            Change::Create(_) | Change::Adopt(_) | Change::UpdateRole { .. } => None,
        }
    }

    /// Does applying this action delete a Spot user?
    pub fn deletes(&self) -> bool {
        self.deleted_spot_user().is_some()
    }
}
