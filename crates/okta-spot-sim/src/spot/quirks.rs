//! Odd-but-possible behaviours of the Spot user list and delete, each behind a knob
//! (docs/architecture.md "The emulators": "lists that lag or repeat an entry, a delete that
//! takes effect late"): a user listed twice,
//! a user left out of the next list responses, a created user not listed for a while, and a
//! `DELETE /setup/user/{id}` that answers 200 and leaves the user in place; and, for user
//! details, the other reading of how a `"*"` policy mapping is shown (expanded to the accounts
//! it covers now).
//!
//! This module owns the knobs' bookkeeping only (which user ids, how many more responses or
//! deletes). It must not know HTTP, envelopes or object semantics: the HTTP layer asks it how to
//! shape one list response and whether one delete is a no-op, and `state` still decides what
//! exists (a hidden user exists: creating its email again is refused as usual). Off by default;
//! with no knob set a list costs one emptiness check.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// Which users a rule applies to and for how many more list responses (or deletes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuirkRule {
    /// One Spot user id, or `None` for every user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// How many more list responses (or deletes) it applies to; `None` = until cleared.
    #[serde(default)]
    pub times: Option<u64>,
}

impl QuirkRule {
    fn matches(&self, user_id: &str) -> bool {
        self.user_id.as_deref().is_none_or(|u| u == user_id)
    }

    /// Uses one application; returns false once the rule is spent.
    fn spend(&mut self) -> bool {
        match &mut self.times {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    fn spent(&self) -> bool {
        self.times == Some(0)
    }
}

/// The knobs' current state, as `GET /__admin/quirks` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpotQuirks {
    /// `GET /setup/organization/user` lists these users twice (the repeat at the end).
    pub duplicate: Vec<QuirkRule>,
    /// User id → how many more list responses leave it out.
    pub omit: BTreeMap<String, u64>,
    /// Every user created by `POST /setup/user` from now on is left out of this many list
    /// responses after its creation (0 = off).
    pub lag_after_create: u64,
    /// Created user id → how many more list responses leave it out (from `lag_after_create`).
    pub lagging: BTreeMap<String, u64>,
    /// `DELETE /setup/user/{id}` of a matching user answers 200 and deletes nothing.
    pub noop_delete: Vec<QuirkRule>,
    /// `GET /setup/user/{id}` shows a `"*"` mapping as the accounts it covers now instead of
    /// `["*"]` as stored (the reference does not say which Spot does; docs/api-facts.md
    /// "Spot access"). Off: `["*"]`.
    pub expand_star_in_details: bool,
}

/// How one list response is shaped.
#[derive(Debug, Default)]
pub(crate) struct ListShape {
    hide: HashSet<String>,
    duplicate: Vec<QuirkRule>,
}

impl ListShape {
    /// Nothing to change: the common case, checked once per response.
    pub(crate) fn is_plain(&self) -> bool {
        self.hide.is_empty() && self.duplicate.is_empty()
    }

    pub(crate) fn hides(&self, user_id: &str) -> bool {
        self.hide.contains(user_id)
    }

    pub(crate) fn repeats(&self, user_id: &str) -> bool {
        self.duplicate.iter().any(|r| r.matches(user_id))
    }
}

impl SpotQuirks {
    /// Called once per successful list response: what to hide and repeat in it, counting the
    /// response against every rule.
    pub(crate) fn next_list(&mut self) -> ListShape {
        if self.duplicate.is_empty() && self.omit.is_empty() && self.lagging.is_empty() {
            return ListShape::default();
        }
        let mut shape = ListShape::default();
        for rule in &mut self.duplicate {
            if rule.spend() {
                shape.duplicate.push(rule.clone());
            }
        }
        self.duplicate.retain(|r| !r.spent());
        for map in [&mut self.omit, &mut self.lagging] {
            for (id, left) in map.iter_mut() {
                if *left > 0 {
                    shape.hide.insert(id.clone());
                    *left -= 1;
                }
            }
            map.retain(|_, left| *left > 0);
        }
        shape
    }

    /// Called after `POST /setup/user` created `user_id`.
    pub(crate) fn created(&mut self, user_id: &str) {
        if self.lag_after_create > 0 {
            self.lagging
                .insert(user_id.to_string(), self.lag_after_create);
        }
    }

    /// Called before a `DELETE` of an existing user that would succeed: true when it must
    /// answer 200 and leave the user (one application of the first matching rule is used).
    pub(crate) fn delete_is_noop(&mut self, user_id: &str) -> bool {
        let hit = self
            .noop_delete
            .iter_mut()
            .find(|r| r.matches(user_id) && !r.spent())
            .is_some_and(QuirkRule::spend);
        self.noop_delete.retain(|r| !r.spent());
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_run_out_and_unbounded_ones_stay() {
        let mut q = SpotQuirks {
            duplicate: vec![QuirkRule {
                user_id: Some("u-1".into()),
                times: Some(1),
            }],
            omit: [("u-2".to_string(), 2)].into_iter().collect(),
            noop_delete: vec![QuirkRule {
                user_id: None,
                times: None,
            }],
            ..SpotQuirks::default()
        };
        let first = q.next_list();
        assert!(first.repeats("u-1") && !first.repeats("u-2") && first.hides("u-2"));
        let second = q.next_list();
        assert!(!second.repeats("u-1") && second.hides("u-2"));
        assert!(q.next_list().is_plain());
        assert!(q.delete_is_noop("u-9") && q.delete_is_noop("u-9"));
    }

    #[test]
    fn lag_applies_to_users_created_after_it_is_set() {
        let mut q = SpotQuirks::default();
        q.created("u-0");
        q.lag_after_create = 1;
        q.created("u-1");
        let shape = q.next_list();
        assert!(shape.hides("u-1") && !shape.hides("u-0"));
        assert!(q.next_list().is_plain());
    }

    #[test]
    fn a_noop_delete_once_is_used_once() {
        let mut q = SpotQuirks {
            noop_delete: vec![QuirkRule {
                user_id: Some("u-1".into()),
                times: Some(1),
            }],
            ..SpotQuirks::default()
        };
        assert!(!q.delete_is_noop("u-2"));
        assert!(q.delete_is_noop("u-1"));
        assert!(!q.delete_is_noop("u-1"));
        assert!(q.noop_delete.is_empty());
    }
}
