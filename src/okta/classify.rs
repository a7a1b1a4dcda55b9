//! Classifies the Okta app's assignment rows into the three classes of DESIGN.md:
//! **provision** (should have a Spot user), **hold** (keep whatever exists, create nothing,
//! report why) and **absent** (a managed Spot user is deleted).
//!
//! Pure: no I/O, no clock. The reader hands over complete, already-fetched rows; this module
//! decides what they mean. It must never turn doubtful data into "absent" — doubt is a hold.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::model::{
    spot_safe_name, AbsentUser, AppUserRow, DesiredUser, Email, HeldUser, OktaSnapshot, Role,
};

/// App-user (assignment) statuses that mean the assignment no longer grants access.
pub const INACTIVE_APP_USER_STATUSES: [&str; 5] = [
    "INACTIVE",
    "SUSPENDED",
    "DEPROVISIONED",
    "REVOKED",
    "UNASSIGNED",
];

/// The classification rules, taken from the validated settings.
#[derive(Debug, Clone)]
pub struct ClassifyRules {
    /// Upper-case Okta user statuses that provision.
    pub provision_statuses: Vec<String>,
    /// Upper-case Okta user statuses that hold.
    pub hold_statuses: Vec<String>,
    /// Role used when the app-user profile has no role attribute.
    pub default_role: Role,
}

/// Classifies `rows`. Rows are deduplicated by Okta user id first (a user can be assigned
/// directly and through a group); when the duplicates disagree, the most entitled row wins so
/// that a lapsed direct grant cannot hide a live group grant. The output is sorted by Okta user
/// id, so the order of the input rows never changes the result.
pub fn classify(rows: &[AppUserRow], rules: &ClassifyRules) -> OktaSnapshot {
    // One row per Okta user (the best one), in Okta user id order: sort, then keep the best
    // of each run of equal ids (the Okta client already deduplicates, so runs are short; a
    // sort of already sorted input is linear).
    // The key's first 16 bytes travel with the reference, so most comparisons never touch
    // the string (at 100,000 rows from many pages, chasing each pointer is most of the cost).
    let mut sorted: Vec<(u128, &AppUserRow)> = rows
        .iter()
        .map(|row| (id_prefix(&row.okta_user_id), row))
        .collect();
    sorted.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.okta_user_id.cmp(&b.1.okta_user_id))
    });
    let mut chosen: Vec<&AppUserRow> = Vec::with_capacity(sorted.len());
    for (_, row) in sorted {
        match chosen.last_mut() {
            Some(kept) if kept.okta_user_id == row.okta_user_id => {
                if row_rank(row, rules) > row_rank(kept, rules)
                    || (row_rank(row, rules) == row_rank(kept, rules) && row < *kept)
                {
                    *kept = row;
                }
            }
            _ => chosen.push(row),
        }
    }

    let mut snapshot = OktaSnapshot {
        listed: chosen.len(),
        ..OktaSnapshot::default()
    };
    let mut candidates: Vec<DesiredUser> = Vec::with_capacity(chosen.len());
    for row in chosen {
        match classify_row(row, rules) {
            RowClass::Provision(user) => candidates.push(user),
            RowClass::Hold(held) => snapshot.held.push(held),
            RowClass::Absent(absent) => snapshot.absent.push(absent),
        }
    }

    // Two Okta users with one email cannot both own the Spot user with that email: hold both.
    let mut first_with: FxHashMap<&Email, usize> =
        FxHashMap::with_capacity_and_hasher(candidates.len(), Default::default());
    let mut shared: BTreeMap<Email, Vec<String>> = BTreeMap::new();
    for (i, user) in candidates.iter().enumerate() {
        if let Some(&first) = first_with.get(&user.email) {
            shared
                .entry(user.email.clone())
                .or_insert_with(|| vec![candidates[first].okta_user_id.clone()])
                .push(user.okta_user_id.clone());
        } else {
            first_with.insert(&user.email, i);
        }
    }
    drop(first_with);
    if shared.is_empty() {
        snapshot.provision = candidates;
    } else {
        for user in candidates {
            match shared.get(&user.email) {
                Some(ids) => snapshot.held.push(HeldUser {
                    okta_user_id: user.okta_user_id.clone(),
                    email: Some(user.email.to_string()),
                    reason: format!(
                        "duplicate email: {} is the email of Okta users {}; give each a unique email",
                        user.email,
                        ids.join(", ")
                    ),
                }),
                None => snapshot.provision.push(user),
            }
        }
    }
    snapshot
        .held
        .sort_by(|a, b| a.okta_user_id.cmp(&b.okta_user_id));
    snapshot
}

/// The first 16 bytes of `id`, zero-padded, as a big-endian number: ordering by it and then
/// by the whole id is the same as ordering by the id.
fn id_prefix(id: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let n = id.len().min(16);
    bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    u128::from_be_bytes(bytes)
}

enum RowClass {
    Provision(DesiredUser),
    Hold(HeldUser),
    Absent(AbsentUser),
}

/// Is `value` (trimmed) one of `set`, ignoring ASCII case? No allocation: this runs per row.
fn is_one_of<S: AsRef<str>>(value: &str, set: &[S]) -> bool {
    let value = value.trim();
    set.iter().any(|s| s.as_ref().eq_ignore_ascii_case(value))
}

fn upper(value: &str) -> String {
    value.trim().to_ascii_uppercase()
}

/// 2 = would provision, 1 = hold, 0 = absent; used only to pick among duplicate rows.
fn row_rank(row: &AppUserRow, rules: &ClassifyRules) -> u8 {
    match classify_row(row, rules) {
        RowClass::Provision(_) => 2,
        RowClass::Hold(_) => 1,
        RowClass::Absent(_) => 0,
    }
}

fn classify_row(row: &AppUserRow, rules: &ClassifyRules) -> RowClass {
    let hold = |reason: String| {
        RowClass::Hold(HeldUser {
            okta_user_id: row.okta_user_id.clone(),
            email: row.email.as_ref().map(|e| e.trim().to_string()),
            reason,
        })
    };
    if let Some(problem) = &row.malformed {
        return hold(format!("malformed Okta row: {problem}"));
    }
    let Some(user_status) = row.user_status.as_deref() else {
        return hold(
            "Okta sent no user status for this row (the read must use expand=user)".to_string(),
        );
    };
    if is_one_of(user_status, &rules.hold_statuses) {
        return hold(format!("status {}", upper(user_status)));
    }
    if let Some(app_status) = row.app_user_status.as_deref() {
        if is_one_of(app_status, &INACTIVE_APP_USER_STATUSES) {
            return RowClass::Absent(AbsentUser {
                okta_user_id: row.okta_user_id.clone(),
                reason: format!("app assignment status {} in Okta", upper(app_status)),
            });
        }
    }
    if !is_one_of(user_status, &rules.provision_statuses) {
        return RowClass::Absent(AbsentUser {
            okta_user_id: row.okta_user_id.clone(),
            reason: format!("status {} in Okta", upper(user_status)),
        });
    }
    let email = match row.email.as_deref() {
        None => return hold("no email in the Okta profile".to_string()),
        Some(raw) => match Email::parse(raw) {
            Some(email) => email,
            None => {
                return hold(format!(
                    "invalid email {:?} in the Okta profile",
                    raw.trim()
                ))
            }
        },
    };
    let role = match row.role.as_deref() {
        None => rules.default_role,
        Some(raw) if raw.trim().is_empty() => rules.default_role,
        Some(raw) => match Role::parse(raw) {
            Some(role) => role,
            None => {
                return hold(format!(
                    "unknown role {:?} (expected viewer or editor)",
                    raw.trim()
                ))
            }
        },
    };
    RowClass::Provision(DesiredUser {
        okta_user_id: row.okta_user_id.clone(),
        email_display: row.email.as_deref().unwrap_or_default().trim().to_string(),
        email,
        first_name: spot_safe_name(row.first_name.as_deref(), "Okta"),
        last_name: spot_safe_name(row.last_name.as_deref(), "User"),
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rules() -> ClassifyRules {
        ClassifyRules {
            provision_statuses: [
                "ACTIVE",
                "PROVISIONED",
                "PASSWORD_EXPIRED",
                "RECOVERY",
                "LOCKED_OUT",
            ]
            .map(String::from)
            .to_vec(),
            hold_statuses: ["SUSPENDED", "STAGED"].map(String::from).to_vec(),
            default_role: Role::Viewer,
        }
    }

    fn row(id: &str, email: &str, status: &str) -> AppUserRow {
        AppUserRow {
            okta_user_id: id.into(),
            scope: Some("USER".into()),
            app_user_status: Some("ACTIVE".into()),
            user_status: Some(status.into()),
            email: Some(email.into()),
            first_name: Some("First".into()),
            last_name: Some("Last".into()),
            role: None,
            malformed: None,
        }
    }

    #[test]
    fn provision_statuses_provision_with_default_role() {
        for status in [
            "ACTIVE",
            "PROVISIONED",
            "PASSWORD_EXPIRED",
            "RECOVERY",
            "LOCKED_OUT",
        ] {
            let snap = classify(&[row("00u1", "A@Example.com", status)], &rules());
            assert_eq!(snap.provision.len(), 1, "{status}");
            assert_eq!(snap.provision[0].role, Role::Viewer);
            assert_eq!(snap.provision[0].email.as_str(), "a@example.com");
            assert_eq!(snap.provision[0].email_display, "A@Example.com");
        }
    }

    #[test]
    fn hold_statuses_hold_with_reason() {
        let snap = classify(&[row("00u1", "a@example.com", "SUSPENDED")], &rules());
        assert!(snap.provision.is_empty());
        assert_eq!(snap.held[0].reason, "status SUSPENDED");
        let snap = classify(&[row("00u1", "a@example.com", "staged")], &rules());
        assert_eq!(snap.held[0].reason, "status STAGED");
    }

    #[test]
    fn deactivated_user_and_inactive_assignment_are_absent() {
        let snap = classify(&[row("00u1", "a@example.com", "DEPROVISIONED")], &rules());
        assert_eq!(snap.absent.len(), 1);
        for app_status in INACTIVE_APP_USER_STATUSES {
            let mut r = row("00u1", "a@example.com", "ACTIVE");
            r.app_user_status = Some(app_status.into());
            let snap = classify(&[r], &rules());
            assert_eq!(snap.absent.len(), 1, "{app_status}");
        }
    }

    #[test]
    fn bad_data_is_held_not_absent() {
        let mut no_email = row("00u1", "", "ACTIVE");
        no_email.email = None;
        let bad_email = row("00u2", "not-an-email", "ACTIVE");
        let mut bad_role = row("00u3", "c@example.com", "ACTIVE");
        bad_role.role = Some("owner".into());
        let mut malformed = row("00u4", "d@example.com", "ACTIVE");
        malformed.malformed = Some("role attribute \"role\" is a number".into());
        let snap = classify(&[no_email, bad_email, bad_role, malformed], &rules());
        assert!(snap.provision.is_empty() && snap.absent.is_empty());
        let reasons: Vec<&str> = snap.held.iter().map(|h| h.reason.as_str()).collect();
        assert_eq!(reasons[0], "no email in the Okta profile");
        assert!(reasons[1].starts_with("invalid email"));
        assert!(reasons[2].starts_with("unknown role \"owner\""));
        assert!(reasons[3].starts_with("malformed Okta row"));
    }

    #[test]
    fn duplicate_emails_hold_both_users() {
        let snap = classify(
            &[
                row("00u1", "a@example.com", "ACTIVE"),
                row("00u2", "A@EXAMPLE.COM", "ACTIVE"),
            ],
            &rules(),
        );
        assert!(snap.provision.is_empty());
        assert_eq!(snap.held.len(), 2);
        assert!(
            snap.held[0].reason.contains("00u1, 00u2")
                || snap.held[0].reason.contains("00u2, 00u1")
        );
    }

    #[test]
    fn direct_and_group_rows_are_one_user_and_the_entitled_row_wins() {
        let mut lapsed_direct = row("00u1", "a@example.com", "ACTIVE");
        lapsed_direct.app_user_status = Some("INACTIVE".into());
        let mut group = row("00u1", "a@example.com", "ACTIVE");
        group.scope = Some("GROUP".into());
        group.role = Some("Editor".into());
        for rows in [
            vec![lapsed_direct.clone(), group.clone()],
            vec![group, lapsed_direct],
        ] {
            let snap = classify(&rows, &rules());
            assert_eq!(snap.listed, 1);
            assert_eq!(snap.provision.len(), 1);
            assert_eq!(snap.provision[0].role, Role::Editor);
        }
    }

    #[test]
    fn names_are_made_spot_safe() {
        let mut r = row("00u1", "a@example.com", "ACTIVE");
        r.first_name = Some("Jo+hn=".into());
        r.last_name = None;
        let snap = classify(&[r], &rules());
        assert_eq!(snap.provision[0].first_name, "John");
        assert_eq!(snap.provision[0].last_name, "User");
    }
}
