//! What the deciding modules need from the settings: [`ClassifyRules`] for `classify`,
//! [`PlanOptions`] for `plan`, [`GuardLimits`] for `guard`. Kept beside the settings so a new
//! key and the rule it feeds are changed together.
//!
//! Pure copies of validated values: this file must never check, default or reinterpret a
//! value (that is `validate`'s job) and never do I/O.

use std::collections::BTreeMap;

use super::Settings;
use crate::cycle::CycleOptions;
use crate::guard::GuardLimits;
use crate::model::Role;
use crate::okta::classify::ClassifyRules;
use crate::plan::PlanOptions;

impl Settings {
    pub fn classify_rules(&self) -> ClassifyRules {
        ClassifyRules {
            provision_statuses: self.okta.provision_statuses.clone(),
            hold_statuses: self.okta.hold_statuses.clone(),
            default_role: self.sync.default_role,
        }
    }

    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            adopt_existing: self.sync.adopt_existing,
            update_roles: self.sync.update_roles,
            protected_emails: self.sync.protected_emails.iter().cloned().collect(),
            spot_roles: self
                .spot
                .roles
                .iter()
                .map(|(role, s)| (role, s.spot_role.clone()))
                .collect::<BTreeMap<Role, String>>(),
        }
    }

    pub fn guard_limits(&self, options: &CycleOptions) -> GuardLimits {
        GuardLimits {
            max_deletes: self.sync.max_deletes,
            max_delete_percent: self.sync.max_delete_percent,
            allow_deletes: options.allow_deletes,
            allow_empty_source: options.allow_empty_source,
            protected_emails: self.sync.protected_emails.iter().cloned().collect(),
            recent_deletes: 0,
        }
    }
}
