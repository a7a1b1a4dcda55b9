//! Classifies the Okta app's assignment rows into the three classes of README "What it does":
//! **provision** (should have a Spot user), **hold** (keep whatever exists, create nothing,
//! report why) and **absent** (a managed Spot user is deleted).
//!
//! Pure: no I/O, no clock. The reader hands over complete, already-fetched rows; this module
//! decides what they mean. It must never turn doubtful data into "absent" — doubt is a hold.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashSet};

use crate::config::OKTA_USER_STATUSES;
use crate::model::{
    spot_safe_name_owned, AbsentUser, AppUserRow, DesiredUser, Email, HeldUser, OktaSnapshot,
    OktaUserId, Role,
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
///
/// Takes the rows by value so that their strings move into the snapshot: at 1,000,000 users a
/// copy of each id, email and name would be five million allocations.
pub fn classify(rows: Vec<AppUserRow>, rules: &ClassifyRules) -> OktaSnapshot {
    let rows = one_row_per_user(rows, rules);
    let mut snapshot = OktaSnapshot {
        listed: rows.len(),
        ..OktaSnapshot::default()
    };
    // Each candidate's email hash, taken while the email is in the cache, for `shared_emails`.
    let mut email_hashes: Vec<u64> = Vec::with_capacity(rows.len());
    // Collected in place: the users take over the rows' buffer instead of a second one of
    // that size (fresh memory is a page fault per 4 KiB).
    let mut candidates: Vec<DesiredUser> = rows
        .into_iter()
        .filter_map(|row| match classify_row(row, rules) {
            RowClass::Provision(user) => {
                email_hashes.push(email_hash(&user.email));
                Some(user)
            }
            RowClass::Hold(held) => {
                snapshot.held.push(held);
                None
            }
            RowClass::Absent(absent) => {
                snapshot.absent.push(absent);
                None
            }
        })
        .collect();
    // The rows were larger than the users: give the rest of the buffer back.
    candidates.shrink_to_fit();

    // Two Okta users with one email cannot both own the Spot user with that email: hold both.
    let shared = shared_emails(&candidates, email_hashes);
    if shared.is_empty() {
        snapshot.provision = candidates;
    } else {
        for user in candidates {
            match shared.get(&user.email) {
                Some(ids) => snapshot.held.push(HeldUser {
                    reason: format!(
                        "duplicate email: {} is the email of Okta users {}; give each a unique email",
                        user.email,
                        ids.join(", ")
                    ),
                    email: Some(user.email.to_string()),
                    okta_user_id: user.okta_user_id,
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

/// One row per Okta user (the best one), in Okta user id order.
fn one_row_per_user(rows: Vec<AppUserRow>, rules: &ClassifyRules) -> Vec<AppUserRow> {
    // When the rows come in id order (a user assigned both directly and through a group is
    // then listed twice, side by side), one pass of comparisons replaces the sort and the
    // copy, and the duplicates are dropped in place.
    let mut in_order = true;
    let mut repeats = false;
    for pair in rows.windows(2) {
        match pair[0].okta_user_id.cmp(&pair[1].okta_user_id) {
            Ordering::Less => {}
            Ordering::Equal => repeats = true,
            Ordering::Greater => {
                in_order = false;
                break;
            }
        }
    }
    let mut rows = if in_order { rows } else { sorted_by_id(rows) };
    if repeats || !in_order {
        let conflicts = conflicting_emails(&rows);
        rows.dedup_by(|row, kept| {
            if row.okta_user_id != kept.okta_user_id {
                return false;
            }
            if is_more_entitled(row, kept, rules) {
                std::mem::swap(row, kept);
            }
            true
        });
        // Both lists are in id order: mark the conflicting users' rows in one merge.
        let mut conflicts = conflicts.into_iter().peekable();
        for row in &mut rows {
            if let Some((_, reason)) = conflicts.next_if(|(id, _)| *id == row.okta_user_id) {
                row.malformed = Some(reason);
            }
        }
    }
    rows
}

/// The Okta users (with a reason) listed on several rows that disagree on the email, in id
/// order; `rows` must be sorted by id. Such rows cannot both be right, and picking one could
/// move the user to another Spot user (a recreate), so the user is held until Okta agrees.
/// Emails are compared normalised ([`Email`]): a difference in ASCII case is no conflict.
fn conflicting_emails(rows: &[AppUserRow]) -> Vec<(OktaUserId, String)> {
    let normalised = |row: &AppUserRow| {
        let raw = row.email.as_deref()?;
        Some(Email::parse(raw).map_or_else(|| raw.trim().to_string(), |e| e.to_string()))
    };
    let mut conflicts = Vec::new();
    for group in rows.chunk_by(|a, b| a.okta_user_id == b.okta_user_id) {
        if group.len() < 2 {
            continue;
        }
        let mut emails: Vec<String> = group.iter().filter_map(normalised).collect();
        emails.sort_unstable();
        emails.dedup();
        if emails.len() > 1 {
            let reason = format!(
                "Okta listed this user on {} rows with different emails ({}); held until Okta lists one email",
                group.len(),
                emails.join(", ")
            );
            conflicts.push((group[0].okta_user_id.clone(), reason));
        }
    }
    conflicts
}

/// `rows` sorted by Okta user id. The key's first 16 bytes travel with the index, so most
/// comparisons never touch the string.
fn sorted_by_id(mut rows: Vec<AppUserRow>) -> Vec<AppUserRow> {
    let mut order: Vec<(u128, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| (id_prefix(&row.okta_user_id), i))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| rows[a.1].okta_user_id.cmp(&rows[b.1].okta_user_id))
    });
    order
        .into_iter()
        .map(|(_, i)| std::mem::take(&mut rows[i]))
        .collect()
}

/// Should `row` replace `kept` as its user's row? The most entitled row wins, so that a
/// lapsed direct grant cannot hide a live group grant; of equally entitled rows the lowest,
/// so that the choice does not depend on the order of the rows.
fn is_more_entitled(row: &AppUserRow, kept: &AppUserRow, rules: &ClassifyRules) -> bool {
    let (rank, kept_rank) = (row_rank(row, rules), row_rank(kept, rules));
    rank > kept_rank || (rank == kept_rank && row < kept)
}

/// The Okta user ids of each email that more than one candidate has, in candidate order.
/// `hashes` holds the [`email_hash`] of every candidate.
///
/// Sorts the hashes instead of filling a map keyed by the emails: at 1,000,000 users a sort of
/// numbers is far cheaper than a million map inserts, each a cache miss. Only when a hash
/// repeats (a shared email, or rarely a collision) are the emails compared, exactly.
fn shared_emails(
    candidates: &[DesiredUser],
    mut hashes: Vec<u64>,
) -> BTreeMap<Email, Vec<OktaUserId>> {
    hashes.sort_unstable();
    let repeated: FxHashSet<u64> = hashes
        .windows(2)
        .filter(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
        .collect();
    if repeated.is_empty() {
        return BTreeMap::new();
    }
    let mut by_email: BTreeMap<&Email, Vec<&DesiredUser>> = BTreeMap::new();
    for user in candidates {
        if repeated.contains(&email_hash(&user.email)) {
            by_email.entry(&user.email).or_default().push(user);
        }
    }
    by_email
        .into_iter()
        .filter(|(_, users)| users.len() > 1)
        .map(|(email, users)| {
            let ids = users.iter().map(|u| u.okta_user_id.clone()).collect();
            (email.clone(), ids)
        })
        .collect()
}

fn email_hash(email: &Email) -> u64 {
    FxBuildHasher.hash_one(email.as_str())
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
/// `import` matches a looked-up user's status with it too, so both commands agree on what a
/// status means.
pub(crate) fn is_one_of<S: AsRef<str>>(value: &str, set: &[S]) -> bool {
    let value = value.trim();
    set.iter().any(|s| s.as_ref().eq_ignore_ascii_case(value))
}

pub(crate) fn upper(value: &str) -> String {
    value.trim().to_ascii_uppercase()
}

/// 2 = would provision, 1 = hold, 0 = absent; used only to pick among duplicate rows, which
/// are rare (a user assigned both directly and through a group), so the copy does not
/// matter.
fn row_rank(row: &AppUserRow, rules: &ClassifyRules) -> u8 {
    match classify_row(row.clone(), rules) {
        RowClass::Provision(_) => 2,
        RowClass::Hold(_) => 1,
        RowClass::Absent(_) => 0,
    }
}

/// A held row, with the email trimmed as Okta's profile had it.
fn held(okta_user_id: OktaUserId, email: Option<String>, reason: String) -> RowClass {
    let email = email.map(|e| match e.trim() {
        trimmed if trimmed.len() == e.len() => e,
        trimmed => trimmed.to_string(),
    });
    RowClass::Hold(HeldUser {
        okta_user_id,
        email,
        reason,
    })
}

fn classify_row(row: AppUserRow, rules: &ClassifyRules) -> RowClass {
    if let Some(problem) = &row.malformed {
        let reason = format!("malformed Okta row: {problem}");
        return held(row.okta_user_id, row.email, reason);
    }
    let Some(user_status) = row.user_status.as_deref() else {
        let reason =
            "Okta sent no user status for this row (the read must use expand=user)".to_string();
        return held(row.okta_user_id, row.email, reason);
    };
    if is_one_of(user_status, &rules.hold_statuses) {
        let reason = format!("status {}", upper(user_status));
        return held(row.okta_user_id, row.email, reason);
    }
    if let Some(app_status) = row.app_user_status.as_deref() {
        if is_one_of(app_status, &INACTIVE_APP_USER_STATUSES) {
            return RowClass::Absent(AbsentUser {
                reason: format!("app assignment status {} in Okta", upper(app_status)),
                okta_user_id: row.okta_user_id,
            });
        }
    }
    if !is_one_of(user_status, &rules.provision_statuses) {
        // Only a status Okta documents may mean "gone"; one it does not (empty, or added by
        // Okta after this build) is doubt, and doubt is a hold.
        if !is_one_of(user_status, OKTA_USER_STATUSES) {
            let reason = format!(
                "Okta user status {:?} is not one Okta documents; held (nothing created or deleted). \
                 If Okta added it, list it in okta.provision_statuses or okta.hold_statuses",
                user_status.trim()
            );
            return held(row.okta_user_id, row.email, reason);
        }
        return RowClass::Absent(AbsentUser {
            reason: format!("status {} in Okta", upper(user_status)),
            okta_user_id: row.okta_user_id,
        });
    }
    // Checked before the email is parsed (which consumes it) but reported after an email
    // problem, as a person would fix them in that order.
    let role = match row.role.as_deref() {
        None => Ok(rules.default_role),
        Some(raw) if raw.trim().is_empty() => Ok(rules.default_role),
        Some(raw) => Role::parse(raw)
            .ok_or_else(|| format!("unknown role {:?} (expected viewer or editor)", raw.trim())),
    };
    let (email, email_spelling) = match row.email.map(Email::parse_owned) {
        None => {
            let reason = "no email in the Okta profile".to_string();
            return held(row.okta_user_id, None, reason);
        }
        Some(Err(raw)) => {
            let reason = format!("invalid email {:?} in the Okta profile", raw.trim());
            return held(row.okta_user_id, Some(raw), reason);
        }
        Some(Ok(parsed)) => parsed,
    };
    let role = match role {
        Ok(role) => role,
        Err(reason) => {
            let spelling = email_spelling.unwrap_or_else(|| email.as_str().to_string());
            return held(row.okta_user_id, Some(spelling), reason);
        }
    };
    RowClass::Provision(DesiredUser {
        okta_user_id: row.okta_user_id,
        email,
        email_spelling,
        first_name: spot_safe_name_owned(row.first_name, "Okta"),
        last_name: spot_safe_name_owned(row.last_name, "User"),
        role,
    })
}

#[cfg(test)]
pub(crate) mod tests {
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

    pub(crate) fn row(id: &str, email: &str, status: &str) -> AppUserRow {
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
            let snap = classify(vec![row("00u1", "A@Example.com", status)], &rules());
            assert_eq!(snap.provision.len(), 1, "{status}");
            assert_eq!(snap.provision[0].role, Role::Viewer);
            assert_eq!(snap.provision[0].email.as_str(), "a@example.com");
            assert_eq!(snap.provision[0].email_display(), "A@Example.com");
        }
    }

    #[test]
    fn hold_statuses_hold_with_reason() {
        let snap = classify(vec![row("00u1", "a@example.com", "SUSPENDED")], &rules());
        assert!(snap.provision.is_empty());
        assert_eq!(snap.held[0].reason, "status SUSPENDED");
        let snap = classify(vec![row("00u1", "a@example.com", "staged")], &rules());
        assert_eq!(snap.held[0].reason, "status STAGED");
    }

    #[test]
    fn deactivated_user_and_inactive_assignment_are_absent() {
        let snap = classify(
            vec![row("00u1", "a@example.com", "DEPROVISIONED")],
            &rules(),
        );
        assert_eq!(snap.absent.len(), 1);
        for app_status in INACTIVE_APP_USER_STATUSES {
            let mut r = row("00u1", "a@example.com", "ACTIVE");
            r.app_user_status = Some(app_status.into());
            let snap = classify(vec![r], &rules());
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
        let snap = classify(vec![no_email, bad_email, bad_role, malformed], &rules());
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
            vec![
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
    fn every_user_of_a_shared_email_is_held_whatever_the_row_order() {
        let rows = vec![
            row("00u3", "a@example.com", "ACTIVE"),
            row("00u2", "b@example.com", "ACTIVE"),
            row("00u1", " A@example.com", "ACTIVE"),
            row("00u4", "a@EXAMPLE.com", "ACTIVE"),
        ];
        let snap = classify(rows, &rules());
        let provisioned: Vec<&str> = snap
            .provision
            .iter()
            .map(|d| d.okta_user_id.as_str())
            .collect();
        assert_eq!(provisioned, ["00u2"]);
        let held: Vec<(&str, &str)> = snap
            .held
            .iter()
            .map(|h| (h.okta_user_id.as_str(), h.reason.as_str()))
            .collect();
        let reason = "duplicate email: a@example.com is the email of Okta users 00u1, 00u3, 00u4; give each a unique email";
        assert_eq!(held, [("00u1", reason), ("00u3", reason), ("00u4", reason)]);
    }

    #[test]
    fn duplicate_rows_in_any_order_leave_the_most_entitled_one() {
        let mut lapsed = row("00u2", "b@example.com", "ACTIVE");
        lapsed.app_user_status = Some("INACTIVE".into());
        let mut staged = row("00u2", "b@example.com", "STAGED");
        staged.scope = Some("GROUP".into());
        let mut editor = row("00u2", "b@example.com", "ACTIVE");
        editor.role = Some("editor".into());
        let others = [
            row("00u1", "a@example.com", "ACTIVE"),
            row("00u3", "c@example.com", "ACTIVE"),
        ];
        let in_order = vec![
            others[0].clone(),
            lapsed.clone(),
            staged.clone(),
            editor.clone(),
            others[1].clone(),
        ];
        let shuffled = vec![editor, others[1].clone(), lapsed, others[0].clone(), staged];
        for rows in [in_order, shuffled] {
            let snap = classify(rows, &rules());
            assert_eq!(snap.listed, 3);
            assert!(snap.held.is_empty() && snap.absent.is_empty());
            let ids: Vec<&str> = snap
                .provision
                .iter()
                .map(|d| d.okta_user_id.as_str())
                .collect();
            assert_eq!(ids, ["00u1", "00u2", "00u3"]);
            assert_eq!(snap.provision[1].role, Role::Editor);
        }
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
            let snap = classify(rows, &rules());
            assert_eq!(snap.listed, 1);
            assert_eq!(snap.provision.len(), 1);
            assert_eq!(snap.provision[0].role, Role::Editor);
        }
    }

    /// Only documented statuses may mean "gone": an empty or undocumented one is a hold.
    #[test]
    fn an_empty_or_undocumented_user_status_is_held_not_absent() {
        for status in ["", "  ", "ARCHIVED", "deprovisioned_soon"] {
            let snap = classify(vec![row("00u1", "a@example.com", status)], &rules());
            assert!(snap.absent.is_empty(), "{status:?}: {:?}", snap.absent);
            assert!(snap.provision.is_empty(), "{status:?}");
            assert!(
                snap.held[0].reason.contains("not one Okta documents"),
                "{status:?}: {}",
                snap.held[0].reason
            );
        }
        // A documented status in neither list is what the admin chose not to provision.
        let mut rules = rules();
        rules.provision_statuses.retain(|s| s != "LOCKED_OUT");
        let snap = classify(vec![row("00u1", "a@example.com", "LOCKED_OUT")], &rules);
        assert_eq!(snap.absent.len(), 1);
    }

    /// Two rows of one Okta user that disagree on its email: neither is trusted.
    #[test]
    fn rows_of_one_user_with_conflicting_emails_hold_the_user_whatever_the_order() {
        let direct = row("00u2", "b@example.com", "ACTIVE");
        let mut group = row("00u2", "b.new@example.com", "ACTIVE");
        group.scope = Some("GROUP".into());
        let mut lapsed = row("00u2", "b@example.com", "ACTIVE");
        lapsed.app_user_status = Some("INACTIVE".into());
        let other = row("00u1", "a@example.com", "ACTIVE");
        for rows in [
            vec![other.clone(), direct.clone(), group.clone()],
            vec![group.clone(), other.clone(), direct.clone()],
            vec![direct.clone(), lapsed.clone(), group.clone(), other.clone()],
            vec![other.clone(), group.clone(), direct.clone(), lapsed.clone()],
        ] {
            let snap = classify(rows, &rules());
            let ids: Vec<&str> = snap
                .provision
                .iter()
                .map(|d| d.okta_user_id.as_str())
                .collect();
            assert_eq!(ids, ["00u1"]);
            assert!(snap.absent.is_empty());
            assert_eq!(snap.held.len(), 1);
            assert!(
                snap.held[0]
                    .reason
                    .contains("b.new@example.com, b@example.com"),
                "{}",
                snap.held[0].reason
            );
        }
        // Rows that differ only in ASCII case agree.
        let snap = classify(
            vec![
                row("00u2", "B@example.com", "ACTIVE"),
                group_of(row("00u2", "b@EXAMPLE.com", "ACTIVE")),
            ],
            &rules(),
        );
        assert_eq!(snap.provision.len(), 1);
    }

    fn group_of(mut row: AppUserRow) -> AppUserRow {
        row.scope = Some("GROUP".into());
        row
    }

    #[test]
    fn names_are_made_spot_safe() {
        let mut r = row("00u1", "a@example.com", "ACTIVE");
        r.first_name = Some("Jo+hn=".into());
        r.last_name = None;
        let snap = classify(vec![r], &rules());
        assert_eq!(snap.provision[0].first_name, "John");
        assert_eq!(snap.provision[0].last_name, "User");
    }
}
