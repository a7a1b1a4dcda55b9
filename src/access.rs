//! What a managed user should be able to see in Spot, and the mapping that gets it there
//! without taking anything away.
//!
//! The rule (README "Access"): every managed user of a role with policies has each of the
//! role's policies on **every account**, the ones added later included. That is written as
//! Spot's `"accountIds": ["*"]` ("all current accounts and any accounts created in the future",
//! docs/api-facts.md "Spot access"), so a new account needs no write and a quiet cycle no read.
//!
//! A `PUT …/policyMapping` replaces the user's whole set, so a mapping is always written as the
//! **union** of what the user has and what the role needs ([`union`]): grants made by hand
//! survive, and a grant is never narrowed (an explicit account list becomes `"*"`, never the
//! other way).
//!
//! Pure: no I/O. It never decides *whether* a user is managed (that is `plan`'s job) and never
//! reads Spot (the caller passes what it read).

use crate::ledger::{EntryState, Ledger};
use crate::model::{PolicyGrant, Role};
use crate::spot::access::ALL_ACCOUNTS;

/// The access model this build writes, recorded per ledger entry once a user's mapping was
/// written under it (`LedgerEntry::access`). 0: before it (each policy on the accounts that
/// existed then, written as a replacement). 1: each policy on every account (`"*"`), written as
/// a union. A managed entry below it is brought in line by the next cycle.
pub const ACCESS_MODEL: u32 = 1;

/// The grants a role needs: each of its policies (by id) on every account.
pub fn role_grants(policy_ids: &[String]) -> Vec<PolicyGrant> {
    policy_ids
        .iter()
        .map(|id| PolicyGrant {
            policy_id: id.clone(),
            account_ids: vec![ALL_ACCOUNTS.to_string()],
        })
        .collect()
}

/// Does `have` already give everything `needed` gives?
pub fn covers(have: &[PolicyGrant], needed: &PolicyGrant) -> bool {
    let mine = || have.iter().filter(|g| g.policy_id == needed.policy_id);
    if mine().any(|g| g.account_ids.iter().any(|a| a == ALL_ACCOUNTS)) {
        return true;
    }
    // An organization-level policy has no accounts: having it at all is enough.
    if needed.account_ids.is_empty() {
        return mine().next().is_some();
    }
    needed.account_ids.iter().all(|account| {
        account != ALL_ACCOUNTS && mine().any(|g| g.account_ids.iter().any(|a| a == account))
    })
}

/// The grants of `needed` that `have` lacks, as they would be added.
pub fn missing<'a>(have: &[PolicyGrant], needed: &'a [PolicyGrant]) -> Vec<&'a PolicyGrant> {
    needed.iter().filter(|n| !covers(have, n)).collect()
}

/// The mapping to write so that the user keeps everything in `have` and gains what `needed`
/// adds; `None` when `have` already covers `needed` (nothing to write).
///
/// Every grant of `have` stays, in its order. A needed policy the user has on some accounts
/// gets the missing ones added to its first mapping (with `"*"`, the list becomes `["*"]`,
/// which covers what it listed); a needed policy the user lacks is appended.
pub fn union(have: &[PolicyGrant], needed: &[PolicyGrant]) -> Option<Vec<PolicyGrant>> {
    let lacking = missing(have, needed);
    if lacking.is_empty() {
        return None;
    }
    let mut out = have.to_vec();
    for need in lacking {
        match out.iter_mut().find(|g| g.policy_id == need.policy_id) {
            Some(g) if need.account_ids.iter().any(|a| a == ALL_ACCOUNTS) => {
                g.account_ids = vec![ALL_ACCOUNTS.to_string()];
            }
            Some(g) => {
                for account in &need.account_ids {
                    if !g.account_ids.contains(account) {
                        g.account_ids.push(account.clone());
                    }
                }
            }
            None => out.push(need.clone()),
        }
    }
    Some(out)
}

/// The mapping to write for a role change from one role to another with the same Spot role:
/// the grants of the old role's policies that the new role does not have are taken away
/// (they were this tool's, for a role the person no longer has), everything else stays, and
/// what the new role needs is added. `None` when that is what the user has.
pub fn change_role(
    have: &[PolicyGrant],
    old_role_policies: &[String],
    needed: &[PolicyGrant],
) -> Option<Vec<PolicyGrant>> {
    let dropped = |g: &PolicyGrant| {
        old_role_policies.contains(&g.policy_id)
            && !needed.iter().any(|n| n.policy_id == g.policy_id)
    };
    let kept: Vec<PolicyGrant> = have.iter().filter(|g| !dropped(g)).cloned().collect();
    let written = union(&kept, needed).unwrap_or(kept);
    (written != have).then_some(written)
}

/// What the ledger says of coverage, without a read of Spot: of the managed users whose role
/// has policies (`has_policies`), how many there are, and how many are not known to see every
/// account (mapped under an older access model, adopted by `import`, or mapped never).
pub fn coverage(ledger: &Ledger, has_policies: impl Fn(Role) -> bool) -> (usize, usize) {
    let mut users = 0;
    let mut behind = 0;
    for entry in ledger.users.values() {
        let Some(role) = entry.role else {
            if entry.state == EntryState::Managed {
                users += 1;
                behind += 1;
            }
            continue;
        };
        if entry.state != EntryState::Managed || !has_policies(role) {
            continue;
        }
        users += 1;
        if entry.access < ACCESS_MODEL {
            behind += 1;
        }
    }
    (users, behind)
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A grant of `policy` on `accounts` (shared with other modules' tests).
    pub(crate) fn grant(policy: &str, accounts: &[&str]) -> PolicyGrant {
        PolicyGrant {
            policy_id: policy.into(),
            account_ids: accounts.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn a_role_needs_each_policy_on_every_account() {
        assert_eq!(
            role_grants(&["pol-v".into(), "pol-x".into()]),
            [grant("pol-v", &["*"]), grant("pol-x", &["*"])]
        );
    }

    #[test]
    fn a_user_with_the_policy_on_every_account_needs_nothing() {
        let have = [grant("pol-hand", &["act-1"]), grant("pol-v", &["*"])];
        assert_eq!(union(&have, &[grant("pol-v", &["*"])]), None);
    }

    /// Mapped before the upgrade: the viewer policy on the accounts of the day. The union widens
    /// that mapping to `"*"` and keeps the hand-made grant as it was.
    #[test]
    fn explicit_accounts_become_every_account_and_hand_grants_stay() {
        let have = [grant("pol-v", &["act-1"]), grant("pol-hand", &["act-2"])];
        assert_eq!(
            union(&have, &[grant("pol-v", &["*"])]),
            Some(vec![grant("pol-v", &["*"]), grant("pol-hand", &["act-2"])])
        );
    }

    #[test]
    fn a_missing_policy_is_appended() {
        let have = [grant("pol-hand", &["act-2"])];
        assert_eq!(
            union(&have, &[grant("pol-v", &["*"])]),
            Some(vec![grant("pol-hand", &["act-2"]), grant("pol-v", &["*"])])
        );
        assert_eq!(
            union(&[], &[grant("pol-v", &["*"])]),
            Some(vec![grant("pol-v", &["*"])])
        );
    }

    #[test]
    fn explicit_needs_are_added_to_the_first_mapping_of_the_policy() {
        let have = [grant("pol-v", &["act-1"])];
        assert_eq!(
            union(&have, &[grant("pol-v", &["act-1", "act-2"])]),
            Some(vec![grant("pol-v", &["act-1", "act-2"])])
        );
        assert!(
            !covers(&have, &grant("pol-v", &["*"])),
            "one account is not all"
        );
    }

    /// A viewer made an editor (same Spot role): the viewer policy goes, the editor policy is
    /// added on every account, and a hand-made grant stays.
    #[test]
    fn a_role_change_takes_the_old_roles_policies_and_keeps_hand_grants() {
        let have = [grant("pol-v", &["*"]), grant("pol-hand", &["act-2"])];
        assert_eq!(
            change_role(&have, &["pol-v".into()], &[grant("pol-e", &["*"])]),
            Some(vec![grant("pol-hand", &["act-2"]), grant("pol-e", &["*"])])
        );
        let done = [grant("pol-hand", &["act-2"]), grant("pol-e", &["*"])];
        assert_eq!(
            change_role(&done, &["pol-v".into()], &[grant("pol-e", &["*"])]),
            None
        );
    }

    #[test]
    fn coverage_counts_users_of_roles_with_policies_not_yet_in_line() {
        use crate::ledger::{LedgerEntry, Origin};
        let mut ledger = Ledger::default();
        let entry = |role, access, state| {
            let mut e = LedgerEntry::new("a@example.com", None, role, Origin::Created, state);
            e.access = access;
            e
        };
        let put = |l: &mut Ledger, id: &str, e| l.put(&id.into(), e);
        put(
            &mut ledger,
            "1",
            entry(Some(Role::Viewer), ACCESS_MODEL, EntryState::Managed),
        );
        put(
            &mut ledger,
            "2",
            entry(Some(Role::Viewer), 0, EntryState::Managed),
        );
        put(
            &mut ledger,
            "3",
            entry(Some(Role::Editor), 0, EntryState::Managed),
        );
        put(
            &mut ledger,
            "4",
            entry(Some(Role::Viewer), 0, EntryState::Deleted),
        );
        put(&mut ledger, "5", entry(None, 0, EntryState::Managed));
        assert_eq!(coverage(&ledger, |r| r == Role::Viewer), (3, 2));
    }

    fn grants() -> impl Strategy<Value = Vec<PolicyGrant>> {
        let account = prop_oneof![Just("*"), Just("act-1"), Just("act-2"), Just("act-3")];
        let policy = prop_oneof![Just("pol-a"), Just("pol-b"), Just("pol-c")];
        prop::collection::vec((policy, prop::collection::vec(account, 0..3)), 0..5)
            .prop_map(|v| v.into_iter().map(|(p, a)| grant(p, &a)).collect())
    }

    proptest! {
        /// The union never takes anything away (every grant of `have` is still covered), gives
        /// everything needed, and a second union has nothing left to add.
        #[test]
        fn the_union_only_adds_and_is_complete(have in grants(), needed in grants()) {
            let written = union(&have, &needed).unwrap_or_else(|| have.clone());
            for g in &have {
                prop_assert!(covers(&written, g), "lost {g:?}: {written:?}");
            }
            for n in &needed {
                prop_assert!(covers(&written, n), "missing {n:?}: {written:?}");
            }
            prop_assert_eq!(union(&written, &needed), None);
        }
    }
}
