//! The audit's decisions, pure: from what one managed user's Spot details showed and what its
//! Okta role should give, which drift there is and what mapping would repair it; from the
//! outcome of that repair, each drift's status; from every status, the exit code.
//!
//! It owns the drift kinds and the rule "repair only by adding": the mapping it asks to write
//! is always [`access::union`] of what the user has and what the role needs, so grants made by
//! hand survive and nothing is ever narrowed. It must never do I/O, never decide whether a user
//! is managed (the ledger does), and never call a drift it cannot see one: a role Spot did not
//! send is unknown, not different.

use serde::Serialize;

use crate::access;
use crate::model::PolicyGrant;
use crate::report::exit;
use crate::spot::access::UserDetails;

/// What is wrong with a managed user's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// A policy of the role is not mapped at all.
    MissingPolicy,
    /// The policy is mapped, but not on every account (`"*"`).
    MissingAccounts,
    /// Spot shows an organization role other than the configured `spot_role`.
    RoleDiffers,
    /// Spot no longer has the user (not listed, or its details say it does not exist).
    Vanished,
}

impl DriftKind {
    pub const ALL: [DriftKind; 4] = [
        DriftKind::MissingPolicy,
        DriftKind::MissingAccounts,
        DriftKind::RoleDiffers,
        DriftKind::Vanished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::MissingPolicy => "missing_policy",
            DriftKind::MissingAccounts => "missing_accounts",
            DriftKind::RoleDiffers => "role_differs",
            DriftKind::Vanished => "vanished",
        }
    }

    /// Can a policy-mapping union repair it? (An organization role cannot be changed without
    /// recreating the user; a vanished user is the next cycle's business.)
    pub fn repairable(self) -> bool {
        matches!(self, DriftKind::MissingPolicy | DriftKind::MissingAccounts)
    }
}

/// What became of one drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// Reported; nothing was written (no `--repair`).
    Found,
    /// `--repair` added the missing grants.
    Repaired,
    /// `--repair` tried and the write failed.
    Failed,
    /// `--repair` cannot fix it without recreating the user; left as it is.
    NotRepairable,
}

impl DriftStatus {
    pub const ALL: [DriftStatus; 4] = [
        DriftStatus::Found,
        DriftStatus::Repaired,
        DriftStatus::Failed,
        DriftStatus::NotRepairable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::Found => "found",
            DriftStatus::Repaired => "repaired",
            DriftStatus::Failed => "failed",
            DriftStatus::NotRepairable => "not_repairable",
        }
    }
}

/// One policy the role needs: its configured name (for the report) and the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub name: String,
    pub grant: PolicyGrant,
}

/// What Spot showed for one managed user.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// The complete user list does not have it (its details were not read).
    NotListed,
    /// Listed, but `GET /setup/user/{id}` says it does not exist.
    Gone,
    Found(&'a UserDetails),
}

/// One drift, before its status is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub kind: DriftKind,
    pub detail: String,
}

/// The verdict on one user: its drift (empty: in line) and the mapping that repairs what a
/// union can repair (`None`: nothing to write).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    pub drift: Vec<Drift>,
    pub write: Option<Vec<PolicyGrant>>,
}

/// Compares what Spot showed with what the role should give: `spot_role` (the configured
/// organization role) and `needed` (each policy on every account).
pub fn decide(seen: Seen<'_>, spot_role: &str, needed: &[Need]) -> Verdict {
    let details = match seen {
        Seen::NotListed => return vanished("not in Spot's user list"),
        Seen::Gone => return vanished("Spot says the user does not exist"),
        Seen::Found(d) => d,
    };
    let mut drift = Vec::new();
    if let Some(role) = &details.role {
        if !role.eq_ignore_ascii_case(spot_role.trim()) {
            drift.push(Drift {
                kind: DriftKind::RoleDiffers,
                detail: format!(
                    "organization role is {role:?}, the configured spot_role is {spot_role:?}; \
                     changing it means recreating the user, so it is left as it is"
                ),
            });
        }
    }
    let have = details.grants();
    for need in needed {
        if access::covers(&have, &need.grant) {
            continue;
        }
        let id = &need.grant.policy_id;
        let mapped: Vec<&str> = details
            .policy(id)
            .flat_map(|p| p.account_ids.iter().map(String::as_str))
            .collect();
        if details.policy(id).next().is_none() {
            drift.push(Drift {
                kind: DriftKind::MissingPolicy,
                detail: format!("policy {:?} ({id}) is not mapped", need.name),
            });
        } else {
            drift.push(Drift {
                kind: DriftKind::MissingAccounts,
                detail: format!(
                    "policy {:?} ({id}) is on {} only, not on every account (\"*\")",
                    need.name,
                    if mapped.is_empty() {
                        "no account".to_string()
                    } else {
                        mapped.join(", ")
                    }
                ),
            });
        }
    }
    let grants: Vec<PolicyGrant> = needed.iter().map(|n| n.grant.clone()).collect();
    Verdict {
        drift,
        write: access::union(&have, &grants),
    }
}

fn vanished(detail: &str) -> Verdict {
    Verdict {
        drift: vec![Drift {
            kind: DriftKind::Vanished,
            detail: format!("{detail}; the next reconcile's complete list decides what to do"),
        }],
        write: None,
    }
}

/// The status of each drift of one user: without `repair`, all `found`; with it, the
/// repairable ones follow the write (`written`: `None` when nothing was written, which with
/// repairable drift means the write was not attempted, e.g. on shutdown) and the others are
/// `not_repairable`.
pub fn settle(
    drift: &[Drift],
    repair: bool,
    written: Option<&Result<(), String>>,
) -> Vec<DriftStatus> {
    drift
        .iter()
        .map(|d| match (repair, d.kind.repairable(), written) {
            (false, _, _) => DriftStatus::Found,
            (true, false, _) => DriftStatus::NotRepairable,
            (true, true, Some(Ok(()))) => DriftStatus::Repaired,
            (true, true, _) => DriftStatus::Failed,
        })
        .collect()
}

/// The audit's exit code: 1 when a user could not be read or a repair failed; 2 when drift was
/// found and left (no `--repair`); 0 otherwise (no drift, or every repairable drift repaired,
/// what cannot be repaired reported).
pub fn exit_code(statuses: impl IntoIterator<Item = DriftStatus>, unread: usize) -> i32 {
    let mut code = exit::OK;
    for status in statuses {
        match status {
            DriftStatus::Failed => return exit::ERROR,
            DriftStatus::Found => code = exit::CHANGES_PENDING,
            DriftStatus::Repaired | DriftStatus::NotRepairable => {}
        }
    }
    if unread > 0 {
        exit::ERROR
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::grant;
    use crate::model::SpotUserKind;
    use crate::spot::access::UserPolicy;

    fn details(role: Option<&str>, policies: &[(&str, &[&str])]) -> UserDetails {
        UserDetails {
            user_id: "u-1".into(),
            email: None,
            kind: SpotUserKind::Personal,
            role: role.map(str::to_string),
            policies: policies
                .iter()
                .map(|(p, a)| UserPolicy {
                    policy_id: p.to_string(),
                    account_ids: a.iter().map(|x| x.to_string()).collect(),
                    policy_name: None,
                    policy_type: None,
                })
                .collect(),
        }
    }

    fn viewer() -> Vec<Need> {
        vec![Need {
            name: "Account Viewer".into(),
            grant: grant("pol-v", &["*"]),
        }]
    }

    fn kinds(v: &Verdict) -> Vec<DriftKind> {
        v.drift.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn a_user_in_line_has_no_drift_and_nothing_to_write() {
        let d = details(
            Some("viewer"),
            &[("pol-v", &["*"]), ("pol-hand", &["act-1"])],
        );
        assert_eq!(
            decide(Seen::Found(&d), "viewer", &viewer()),
            Verdict::default()
        );
        // A role with no policies needs no mapping at all.
        let bare = details(Some("admin"), &[]);
        assert_eq!(decide(Seen::Found(&bare), "admin", &[]), Verdict::default());
    }

    /// The viewer policy removed by hand: reported, and the repair appends it, keeping the
    /// hand-made grant.
    #[test]
    fn a_missing_policy_is_repaired_by_a_union() {
        let d = details(Some("viewer"), &[("pol-hand", &["act-1"])]);
        let v = decide(Seen::Found(&d), "viewer", &viewer());
        assert_eq!(kinds(&v), [DriftKind::MissingPolicy]);
        assert!(v.drift[0].detail.contains("Account Viewer"), "{v:?}");
        assert_eq!(
            v.write,
            Some(vec![grant("pol-hand", &["act-1"]), grant("pol-v", &["*"])])
        );
    }

    #[test]
    fn a_policy_on_some_accounts_is_widened_to_every_account() {
        let d = details(Some("viewer"), &[("pol-v", &["act-1", "act-2"])]);
        let v = decide(Seen::Found(&d), "viewer", &viewer());
        assert_eq!(kinds(&v), [DriftKind::MissingAccounts]);
        assert!(v.drift[0].detail.contains("act-1, act-2"), "{v:?}");
        assert_eq!(v.write, Some(vec![grant("pol-v", &["*"])]));
    }

    /// An editor demoted by hand is reported and nothing is written for it; an unknown role
    /// (Spot sent none) is never drift; case does not matter.
    #[test]
    fn only_a_role_spot_shows_can_differ() {
        let d = details(Some("viewer"), &[]);
        let v = decide(Seen::Found(&d), "admin", &[]);
        assert_eq!(kinds(&v), [DriftKind::RoleDiffers]);
        assert_eq!(v.write, None);
        let unknown = details(None, &[("pol-v", &["*"])]);
        assert_eq!(
            decide(Seen::Found(&unknown), "admin", &viewer()),
            Verdict::default()
        );
        let upper = details(Some("Viewer"), &[("pol-v", &["*"])]);
        assert_eq!(
            decide(Seen::Found(&upper), "viewer", &viewer()),
            Verdict::default()
        );
    }

    #[test]
    fn both_kinds_at_once_write_only_the_grants() {
        let d = details(Some("viewer"), &[]);
        let v = decide(Seen::Found(&d), "admin", &viewer());
        assert_eq!(
            kinds(&v),
            [DriftKind::RoleDiffers, DriftKind::MissingPolicy]
        );
        assert_eq!(v.write, Some(vec![grant("pol-v", &["*"])]));
    }

    #[test]
    fn a_vanished_user_is_reported_and_never_written() {
        for seen in [Seen::NotListed, Seen::Gone] {
            let v = decide(seen, "viewer", &viewer());
            assert_eq!(kinds(&v), [DriftKind::Vanished]);
            assert_eq!(v.write, None);
        }
    }

    #[test]
    fn statuses_follow_the_repair() {
        let drift = [
            Drift {
                kind: DriftKind::MissingPolicy,
                detail: String::new(),
            },
            Drift {
                kind: DriftKind::RoleDiffers,
                detail: String::new(),
            },
        ];
        use DriftStatus::*;
        assert_eq!(settle(&drift, false, None), [Found, Found]);
        assert_eq!(
            settle(&drift, true, Some(&Ok(()))),
            [Repaired, NotRepairable]
        );
        assert_eq!(
            settle(&drift, true, Some(&Err("500".into()))),
            [Failed, NotRepairable]
        );
        assert_eq!(settle(&drift, true, None), [Failed, NotRepairable]);
    }

    #[test]
    fn exit_codes() {
        use DriftStatus::*;
        assert_eq!(exit_code([], 0), 0);
        assert_eq!(exit_code([Found, Found], 0), 2);
        assert_eq!(exit_code([Repaired, NotRepairable], 0), 0);
        assert_eq!(exit_code([Repaired, Failed], 0), 1);
        assert_eq!(exit_code([Found], 1), 1);
        assert_eq!(exit_code([], 1), 1);
    }
}
