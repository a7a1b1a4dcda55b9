//! What a cycle tells its operator: the JSON report of README "Commands and exit codes" (one
//! object on stdout) and a text table an admin can paste into a ticket, plus the exit codes.
//!
//! A report is built from what each step of a cycle said, none of which it changes: the plan,
//! the guards' verdicts and apply's outcomes ([`Report::new`]), or import's steps
//! ([`Report::import`]).
//!
//! Pure formatting: no I/O here; callers print. Nothing secret ever reaches a report: actions
//! carry emails, ids, roles and reasons only.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::action::{ActionKind, ActionStatus};
use crate::apply::{Outcome, Outcomes};
use crate::guard::{GuardTrip, Verdicts};
use crate::model::{HeldUser, Role};
use crate::plan::Plan;

/// Process exit codes (see README "Exit codes").
pub mod exit {
    /// Nothing to do / everything applied.
    pub const OK: i32 = 0;
    /// An error, or at least one action failed.
    pub const ERROR: i32 = 1;
    /// `plan` only: changes are pending.
    pub const CHANGES_PENDING: i32 = 2;
    /// A guard blocked actions.
    pub const BLOCKED: i32 = 3;
}

/// How the cycle ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `plan`: read and decide, write nothing.
    Plan,
    /// `reconcile --dry-run`: the same, reported as a reconcile would be.
    DryRun,
    /// `reconcile` / `run`: applied.
    Apply,
    /// `import`.
    Import,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plan => "plan",
            Mode::DryRun => "dry_run",
            Mode::Apply => "apply",
            Mode::Import => "import",
        }
    }
}

/// An unmanaged Spot user that `import` could not match, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmatched {
    pub spot_user_id: String,
    pub email: Option<String>,
    pub reason: String,
}

/// One action as the report shows it: what was planned and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    pub action: ActionKind,
    pub email: String,
    pub okta_user_id: String,
    /// The Spot user acted on; for an applied create or recreate, the one it made.
    pub spot_user_id: Option<String>,
    pub role: Option<Role>,
    pub reason: String,
    pub status: ActionStatus,
    /// Why it failed or was blocked.
    pub error: Option<String>,
}

/// Counts by kind (actions planned or applied), plus failed and blocked actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub delete: usize,
    pub recreate: usize,
    pub adopt: usize,
    pub update_role: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assign_in_okta: Option<usize>,
    pub failed: usize,
    pub blocked: usize,
    /// Applying runs only: actions left unstarted because the daemon was stopping. Omitted
    /// when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_started: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// The named counts, in the report's order: every kind, then failed and blocked;
    /// `assign_in_okta` only for `import`, `not_started` only when some were. The one source
    /// of the summary's text forms ([`fmt::Display`], [`Report::one_line`], the text report,
    /// [`Report::summary_map`]).
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts = vec![
            ("create", self.create),
            ("delete", self.delete),
            ("recreate", self.recreate),
            ("adopt", self.adopt),
            ("update_role", self.update_role),
        ];
        if let Some(n) = self.assign_in_okta {
            counts.push(("assign_in_okta", n));
        }
        counts.push(("failed", self.failed));
        counts.push(("blocked", self.blocked));
        if self.not_started > 0 {
            counts.push(("not_started", self.not_started));
        }
        counts
    }
}

/// `3 create, 0 delete, …, 0 blocked` (and `, 2 not started` when some were).
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, n)) in self.counts().into_iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let name = if name == "not_started" {
                "not started"
            } else {
                name
            };
            write!(f, "{sep}{n} {name}")?;
        }
        Ok(())
    }
}

/// The report of one cycle: the JSON shape of README "Commands and exit codes".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub okta_users: usize,
    pub spot_users: usize,
    pub actions: Vec<ActionReport>,
    pub held: Vec<HeldUser>,
    pub blocked_by: Vec<GuardTrip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmatched: Option<Vec<Unmatched>>,
    pub summary: Summary,
    /// Users whose Spot user the tool owns (managed or mid-create) after the cycle, for the
    /// daemon's gauge (so it need not reload the state file); `None` where no cycle ran.
    #[serde(skip)]
    pub managed_users: Option<usize>,
}

impl Report {
    /// The report of a cycle: `plan` as `guard` judged it (`verdicts`) and `apply` carried it
    /// out (`outcomes`; [`Outcomes::none`] when nothing was applied).
    pub fn new(mode: Mode, plan: Plan, verdicts: Verdicts, outcomes: &Outcomes) -> Report {
        let actions = plan
            .actions
            .into_iter()
            .enumerate()
            .map(|(i, action)| {
                let planned = action.spot_user_id().map(ToString::to_string);
                let (status, spot_user_id, error) = match (verdicts.blocked(i), outcomes.get(i)) {
                    (Some(why), _) => (ActionStatus::Blocked, planned, Some(why.to_string())),
                    (None, Some(Outcome::Applied { created })) => (
                        ActionStatus::Applied,
                        created.as_ref().map(ToString::to_string).or(planned),
                        None,
                    ),
                    (None, Some(Outcome::Failed(error))) => {
                        (ActionStatus::Failed, planned, Some(error.clone()))
                    }
                    (None, None) => (ActionStatus::Planned, planned, None),
                };
                ActionReport {
                    action: action.kind(),
                    role: action.role(),
                    email: action.email,
                    okta_user_id: action.okta_user_id.into_string(),
                    spot_user_id,
                    reason: action.reason,
                    status,
                    error,
                }
            })
            .collect();
        Report::from_rows(
            mode,
            plan.okta_users,
            plan.spot_users,
            actions,
            plan.held,
            verdicts.trips().to_vec(),
        )
    }

    /// A report of nothing: no users read, no actions.
    pub fn empty(mode: Mode) -> Report {
        Report::from_rows(mode, 0, 0, Vec::new(), Vec::new(), Vec::new())
    }

    /// The report of `import`: its steps, and the Spot users it left alone.
    pub fn import(
        okta_users: usize,
        spot_users: usize,
        steps: Vec<ActionReport>,
        unmatched: Vec<Unmatched>,
    ) -> Report {
        let mut report = Report::from_rows(
            Mode::Import,
            okta_users,
            spot_users,
            steps,
            Vec::new(),
            Vec::new(),
        );
        report.unmatched = Some(unmatched);
        report
    }

    fn from_rows(
        mode: Mode,
        okta_users: usize,
        spot_users: usize,
        actions: Vec<ActionReport>,
        held: Vec<HeldUser>,
        blocked_by: Vec<GuardTrip>,
    ) -> Report {
        let mut summary = Summary::default();
        if mode == Mode::Import {
            summary.assign_in_okta = Some(0);
        }
        for action in &actions {
            match action.status {
                ActionStatus::Failed => summary.failed += 1,
                ActionStatus::Blocked => summary.blocked += 1,
                ActionStatus::Planned if matches!(mode, Mode::Apply) => summary.not_started += 1,
                ActionStatus::Planned | ActionStatus::Applied => match action.action {
                    ActionKind::Create => summary.create += 1,
                    ActionKind::Delete => summary.delete += 1,
                    ActionKind::Recreate => summary.recreate += 1,
                    ActionKind::Adopt => summary.adopt += 1,
                    ActionKind::UpdateRole => summary.update_role += 1,
                    ActionKind::AssignInOkta => *summary.assign_in_okta.get_or_insert(0) += 1,
                },
            }
        }
        Report {
            mode,
            okta_users,
            spot_users,
            actions,
            held,
            blocked_by,
            unmatched: None,
            summary,
            managed_users: None,
        }
    }

    /// True when the report has actions: something to do (or something was done).
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }

    /// The exit code of README "Commands and exit codes" for this report's mode.
    pub fn exit_code(&self) -> i32 {
        match self.mode {
            Mode::Plan => {
                if self.has_changes() {
                    exit::CHANGES_PENDING
                } else {
                    exit::OK
                }
            }
            Mode::DryRun | Mode::Apply | Mode::Import => {
                if self.summary.failed > 0 {
                    exit::ERROR
                } else if self.summary.blocked > 0 || !self.blocked_by.is_empty() {
                    exit::BLOCKED
                } else {
                    exit::OK
                }
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// A fixed-width table with the held users, the guards and the summary below it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let title = match self.mode {
            Mode::Plan => "Plan (nothing was changed)",
            Mode::DryRun => "Dry run (nothing was changed)",
            Mode::Apply => "Reconcile",
            Mode::Import => "Import",
        };
        let _ = writeln!(
            out,
            "{title}: {} Okta users listed by the app, {} Spot users in the organization",
            self.okta_users, self.spot_users
        );
        if self.actions.is_empty() {
            let _ = writeln!(out, "\nNo changes: Spot is in line with Okta.");
        } else {
            let headers = [
                "ACTION",
                "STATUS",
                "EMAIL",
                "ROLE",
                "OKTA USER",
                "SPOT USER",
                "REASON",
            ];
            let rows: Vec<[String; 7]> = self
                .actions
                .iter()
                .map(|a| {
                    [
                        a.action.as_str().to_string(),
                        a.status.as_str().to_string(),
                        a.email.clone(),
                        a.role.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                        a.okta_user_id.clone(),
                        a.spot_user_id.clone().unwrap_or_else(|| "-".into()),
                        a.reason.clone(),
                    ]
                })
                .collect();
            let mut widths = headers.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row.iter()).take(6) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let _ = writeln!(out);
            let line = |cells: &[&str]| {
                let mut s = String::new();
                for (i, cell) in cells.iter().enumerate() {
                    if i < 6 {
                        let _ = write!(s, "{cell:<w$}  ", w = widths[i]);
                    } else {
                        s.push_str(cell);
                    }
                }
                s.trim_end().to_string()
            };
            let _ = writeln!(out, "{}", line(&headers));
            for (row, action) in rows.iter().zip(&self.actions) {
                let cells: Vec<&str> = row.iter().map(String::as_str).collect();
                let _ = writeln!(out, "{}", line(&cells));
                if let Some(error) = &action.error {
                    let _ = writeln!(out, "    -> {error}");
                }
            }
        }
        if !self.held.is_empty() {
            let _ = writeln!(out, "\nHeld (existing Spot users kept, nothing created):");
            for h in &self.held {
                let _ = writeln!(
                    out,
                    "  {}  {}  {}",
                    h.okta_user_id,
                    h.email.as_deref().unwrap_or("-"),
                    h.reason
                );
            }
        }
        if let Some(unmatched) = &self.unmatched {
            if !unmatched.is_empty() {
                let _ = writeln!(out, "\nNot imported (left alone):");
                for u in unmatched {
                    let _ = writeln!(
                        out,
                        "  {}  {}  {}",
                        u.spot_user_id,
                        u.email.as_deref().unwrap_or("-"),
                        u.reason
                    );
                }
            }
        }
        if !self.blocked_by.is_empty() {
            let _ = writeln!(out, "\nBlocked by safety guards:");
            for trip in &self.blocked_by {
                let _ = writeln!(out, "  {}: {}", trip.guard, trip.message);
            }
        }
        let verb = if matches!(self.mode, Mode::Apply | Mode::Import) {
            "Done"
        } else {
            "Would do"
        };
        let _ = writeln!(out, "\n{verb}: {}; {} held.", self.summary, self.held.len());
        out
    }

    /// The one-line summary used in logs and systemd STATUS=.
    pub fn one_line(&self) -> String {
        format!("{}, {} held", self.summary, self.held.len())
    }

    /// The summary as a map, for the ledger's `last_run`.
    pub fn summary_map(&self) -> std::collections::BTreeMap<String, usize> {
        self.summary
            .counts()
            .into_iter()
            .chain([("held", self.held.len())])
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One source for every text form of the summary.
    #[test]
    fn the_summary_has_one_text_form() {
        let mut summary = Summary {
            create: 3,
            failed: 1,
            ..Summary::default()
        };
        assert_eq!(
            summary.to_string(),
            "3 create, 0 delete, 0 recreate, 0 adopt, 0 update_role, 1 failed, 0 blocked"
        );
        summary.not_started = 2;
        summary.assign_in_okta = Some(4);
        let text = summary.to_string();
        assert!(
            text.contains("0 update_role, 4 assign_in_okta, 1 failed"),
            "{text}"
        );
        assert!(text.ends_with("0 blocked, 2 not started"), "{text}");
        let report = Report {
            summary,
            ..Report::empty(Mode::Apply)
        };
        assert_eq!(report.one_line(), format!("{text}, 0 held"));
        let map = report.summary_map();
        assert_eq!((map["create"], map["not_started"], map["held"]), (3, 2, 0));
    }
}
