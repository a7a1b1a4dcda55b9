//! `[sync]`: the schedule (parsed here into a [`Schedule`], the only way to make one), the
//! state file, the default role, the adopt/update switches, the delete limits and the
//! protected addresses (an override that lists none is refused: `[]` says "none" on purpose).
//!
//! Returns [`SyncSettings`] or every problem found. Must never log, and never touch the state
//! file (it is only named here).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::super::keys::env_var_for_key;
use super::super::raw::{RawSync, EXPLICITLY_EMPTY_LIST};
use super::super::settings::{Schedule, SyncSettings, DEFAULT_EVENTS_SCHEDULE, DEFAULT_SCHEDULE};
use super::{in_range, Problems};
use crate::model::{Email, Role};

/// The `[sync]` section; `vars` is needed to tell an emptying override of
/// `sync.protected_emails` from an empty list in the file.
pub(super) fn settings(
    raw: RawSync,
    vars: &BTreeMap<String, String>,
    events_on: bool,
) -> Result<SyncSettings, Vec<String>> {
    let mut p = Problems::default();
    // Unset, the schedule follows the mode: the safety net with events, every cycle without.
    let default = match events_on {
        true => DEFAULT_EVENTS_SCHEDULE,
        false => DEFAULT_SCHEDULE,
    };
    let schedule = p.check(Schedule::parse(raw.schedule.as_deref().unwrap_or(default)));
    let fallback_schedule = match &raw.schedule {
        Some(_) => schedule.clone(),
        None => p.check(Schedule::parse(DEFAULT_SCHEDULE)),
    };
    // `""` turns the daemon's audit off; anything else must be a schedule like sync.schedule.
    let audit_schedule = match raw.audit_schedule.trim() {
        "" => Some(None),
        s => p
            .check(Schedule::parse_key("sync.audit_schedule", s))
            .map(Some),
    };
    let state_file = match raw.state_file.trim() {
        "" => {
            p.push(
                "sync.state_file is empty; set it to a writable path such as \
                 /var/lib/okta-spot-sync/state.json"
                    .to_string(),
            );
            None
        }
        s => Some(PathBuf::from(s)),
    };
    let default_role = match Role::parse(&raw.default_role) {
        Some(r) => Some(r),
        None => {
            p.push(format!(
                "sync.default_role = {:?} is not a role; use \"viewer\" or \"editor\"",
                raw.default_role
            ));
            None
        }
    };
    let max_deletes = p.check(in_range("sync.max_deletes", raw.max_deletes, 0, i64::MAX));
    let max_delete_percent = p.check(in_range(
        "sync.max_delete_percent",
        raw.max_delete_percent,
        0,
        100,
    ));
    let protected_emails = p
        .check(validate_protected_emails_override(vars))
        .and_then(|()| p.check(validate_emails(&raw.protected_emails)));
    match (
        (schedule, fallback_schedule, audit_schedule),
        state_file,
        default_role,
        max_deletes,
        max_delete_percent,
        protected_emails,
    ) {
        (
            (Some(schedule), Some(fallback_schedule), Some(audit_schedule)),
            Some(state_file),
            Some(default_role),
            Some(max_deletes),
            Some(max_delete_percent),
            Some(protected_emails),
        ) if p.is_empty() => Ok(SyncSettings {
            schedule,
            fallback_schedule,
            audit_schedule,
            audit_repair: raw.audit_repair,
            run_on_start: raw.run_on_start,
            state_file,
            default_role,
            adopt_existing: raw.adopt_existing,
            update_roles: raw.update_roles,
            max_deletes,
            max_delete_percent,
            protected_emails,
        }),
        _ => Err(p.into_problems("a [sync] setting")),
    }
}

impl Schedule {
    /// `sync.schedule`: six or seven fields (seconds first) of cron characters, which the
    /// daemon's scheduler (`tokio-cron-scheduler`, in UTC) accepts and which fires at least
    /// once after now: a schedule such as `0 0 0 30 2 *` (February 30) or a past year would
    /// let `run` start and then never cycle again. Whitespace between fields is normalised
    /// to one space.
    pub fn parse(raw: &str) -> Result<Schedule, String> {
        Schedule::parse_key("sync.schedule", raw)
    }

    /// [`Schedule::parse`] for the key `key` (named in every message).
    pub fn parse_key(key: &str, raw: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = raw.split_whitespace().collect();
        let fix = "use a cron expression with seconds, e.g. \"0 */10 * * * *\" (every 10 minutes)";
        if !(6..=7).contains(&fields.len()) {
            return Err(format!(
                "{key} = {raw:?} has {} fields, expected 6 or 7 (sec min hour day month \
                 weekday [year]); {fix}",
                fields.len()
            ));
        }
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "*/,-?#".contains(c);
        if let Some(f) = fields.iter().find(|f| !f.chars().all(ok_char)) {
            return Err(format!(
                "{key} = {raw:?}: field {f:?} has characters cron does not use; {fix}"
            ));
        }
        let schedule = fields.join(" ");
        // Asked exactly as the daemon's scheduler is (UTC); a job is only a value until added.
        let mut job = tokio_cron_scheduler::Job::new(schedule.as_str(), |_, _| {})
            .map_err(|e| format!("{key} = {raw:?} is not a valid cron expression ({e}); {fix}"))?;
        let next_tick = job
            .job_data()
            .map(|data| data.next_tick)
            .map_err(|e| format!("{key} = {raw:?} cannot be scheduled ({e}); {fix}"))?;
        if next_tick == 0 {
            return Err(format!(
                "{key} = {raw:?} never fires: no time from now on matches it (a day the \
                 month does not have, such as February 30, or a year in the past; the day of the \
                 month and the weekday must both match); {fix}"
            ));
        }
        Ok(Schedule(schedule))
    }
}

/// An override of `sync.protected_emails` that lists no address (`""`, `" "`, `","`) is
/// refused: it would silently drop every protection of the file, and an empty variable is
/// far more often a template or a secret store that lost its value than a decision. An
/// empty list is said explicitly with `[]`.
fn validate_protected_emails_override(vars: &BTreeMap<String, String>) -> Result<(), String> {
    let var = env_var_for_key("sync.protected_emails");
    let Some(value) = vars.get(&var) else {
        return Ok(());
    };
    if value.trim() == EXPLICITLY_EMPTY_LIST || value.split(',').any(|e| !e.trim().is_empty()) {
        return Ok(());
    }
    Err(format!(
        "{var} = {value:?} lists no address, which would empty sync.protected_emails (the Spot \
         users never touched); list the addresses, comma-separated, or unset {var} to keep the \
         file's list. To protect no one on purpose, set {var}=[] (or protected_emails = [] in \
         the file)"
    ))
}

fn validate_emails(raw: &[String]) -> Result<Vec<Email>, String> {
    let mut out: Vec<Email> = Vec::new();
    let mut bad = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        match Email::parse(s) {
            Some(e) if !out.contains(&e) => out.push(e),
            Some(_) => {}
            None => bad.push(format!("[{i}] = {s:?}")),
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "sync.protected_emails{}; list full addresses such as \"admin@example.com\"",
            if bad.len() == 1 {
                format!("{} is not a valid email address", bad[0])
            } else {
                format!(": {} are not valid email addresses", bad.join(", "))
            }
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_need_six_or_seven_cron_fields() {
        for good in [
            "0 */10 * * * *",
            "0 0 9 * * MON-FRI",
            "0 0 0 1 JAN ? 2099",
            "  0   0 * * *  * ",
            "0 0 12 ? * 2#1",
        ] {
            assert!(Schedule::parse(good).is_ok(), "{good}");
        }
        assert_eq!(
            Schedule::parse(" 0  1 * * * * ").unwrap().as_str(),
            "0 1 * * * *"
        );
        for bad in [
            "",
            "*/10 * * * *",
            "0 0 0 0 0 0 0 0",
            "0 0 * * * ;",
            "@hourly",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_that_never_fire_are_refused() {
        for never in [
            "0 0 0 30 2 *",
            "0 0 0 31 4 *",
            "0 0 0 1 1 * 2020",
            "0 0 0 31 FEB ?",
        ] {
            let err = Schedule::parse(never).unwrap_err();
            assert!(
                err.contains("sync.schedule") && err.contains("never fires"),
                "{never}: {err}"
            );
        }
        // Once every four years still fires.
        assert!(Schedule::parse("0 0 0 29 2 *").is_ok());
        let err = Schedule::parse("0 0 0 32 1 *").unwrap_err();
        assert!(err.contains("not a valid cron expression"), "{err}");
    }

    /// `sync.audit_schedule`: daily at 03:00 UTC by default, `""` turns it off, and a bad one is
    /// refused naming its own key; `sync.audit_repair` defaults to true.
    #[test]
    fn the_audit_schedule_is_checked_like_the_schedule_and_can_be_off() {
        let vars = BTreeMap::new();
        let s = settings(RawSync::default(), &vars, true).unwrap();
        assert_eq!(
            s.audit_schedule.as_ref().map(Schedule::as_str),
            Some("0 0 3 * * *")
        );
        assert!(s.audit_repair);
        let off = RawSync {
            audit_schedule: " ".into(),
            audit_repair: false,
            ..RawSync::default()
        };
        let s = settings(off, &vars, true).unwrap();
        assert_eq!((s.audit_schedule, s.audit_repair), (None, false));
        for bad in ["0 0 3 * *", "0 0 0 30 2 *", "daily"] {
            let raw = RawSync {
                audit_schedule: bad.into(),
                ..RawSync::default()
            };
            let err = settings(raw, &vars, true).unwrap_err().join("\n");
            assert!(
                err.contains("sync.audit_schedule") && !err.contains("sync.schedule"),
                "{bad}: {err}"
            );
        }
    }
}
