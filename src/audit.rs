//! `okta-spot-sync audit [--repair]`: reads each managed user's Spot access once and reports
//! every drift from what its Okta role should give; with `--repair`, adds the missing grants.
//!
//! The I/O shell around [`decide`]: it reads the ledger, Spot's user list once, the policies
//! once (through [`RoleResolver`]) and each managed user's details once
//! (`GET /setup/user/{id}`), with bounded concurrency (`spot.write_concurrency`; Spot's
//! per-route throttle paces the calls), and, when repairing, writes the union [`decide`] chose
//! and records the user's access model in the ledger as `apply` does.
//!
//! It must never remove a grant (every write is [`crate::access::union`] of what was just
//! read), never change an organization role, create or delete a user, and never touch a Spot
//! user the ledger does not manage. Without `--repair` it writes nothing anywhere.

pub mod decide;

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::{record_mapped, RoleResolver};
use crate::cli::Output;
use crate::config::Settings;
use crate::ledger::{EntryState, LedgerStore, LedgerWriter};
use crate::lock::InstanceLock;
use crate::model::{OktaUserId, Role, SpotDirectory, SpotUserId};
use crate::spot::access::UserLookup;
use crate::spot::client::SpotClient;
use crate::{out, outln, Error};

use decide::{decide, settle, Need, Seen};
pub use decide::{DriftKind, DriftStatus};

/// One drift of one managed user, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftEntry {
    pub email: String,
    pub spot_user_id: SpotUserId,
    pub okta_user_id: OktaUserId,
    pub kind: DriftKind,
    pub detail: String,
    pub status: DriftStatus,
    /// Why the repair failed (`status` = `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A managed user whose details could not be read (the audit of it is incomplete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unread {
    pub email: String,
    pub spot_user_id: SpotUserId,
    pub okta_user_id: OktaUserId,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// Managed users compared with their role.
    pub users_checked: usize,
    pub users_with_drift: usize,
    pub drift: usize,
    pub found: usize,
    pub repaired: usize,
    pub failed: usize,
    pub not_repairable: usize,
    /// Users whose details could not be read.
    pub unread: usize,
    /// Managed users with no recorded role (the next reconcile maps them): not compared.
    pub skipped: usize,
    /// Drift count per kind.
    pub by_kind: BTreeMap<&'static str, usize>,
}

/// What one audit found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub repair: bool,
    /// Every drift, by email then kind.
    pub drift: Vec<DriftEntry>,
    pub unread: Vec<Unread>,
    pub summary: AuditSummary,
    pub exit_code: i32,
}

impl AuditReport {
    fn finish(mut self, users_checked: usize, skipped: usize) -> AuditReport {
        self.drift.sort_by(|a, b| {
            (&a.email, &a.okta_user_id, a.kind).cmp(&(&b.email, &b.okta_user_id, b.kind))
        });
        self.unread.sort_by(|a, b| a.email.cmp(&b.email));
        let count = |s: DriftStatus| self.drift.iter().filter(|d| d.status == s).count();
        let mut users: Vec<&OktaUserId> = self.drift.iter().map(|d| &d.okta_user_id).collect();
        users.dedup();
        let mut by_kind = BTreeMap::new();
        for d in &self.drift {
            *by_kind.entry(d.kind.as_str()).or_insert(0) += 1;
        }
        self.summary = AuditSummary {
            users_checked,
            users_with_drift: users.len(),
            drift: self.drift.len(),
            found: count(DriftStatus::Found),
            repaired: count(DriftStatus::Repaired),
            failed: count(DriftStatus::Failed),
            not_repairable: count(DriftStatus::NotRepairable),
            unread: self.unread.len(),
            skipped,
            by_kind,
        };
        self.exit_code = decide::exit_code(self.drift.iter().map(|d| d.status), self.unread.len());
        self
    }

    /// One line for logs and systemd's status.
    pub fn one_line(&self) -> String {
        let s = &self.summary;
        format!(
            "audit: {} managed users checked, {} drift ({} found, {} repaired, {} failed, {} not repairable), {} unread",
            s.users_checked, s.drift, s.found, s.repaired, s.failed, s.not_repairable, s.unread
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// A table an admin can paste into a ticket.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "okta-spot-sync audit{}\n{}\n",
            if self.repair { " --repair" } else { "" },
            self.one_line()
        );
        if !self.drift.is_empty() {
            let rows: Vec<[&str; 6]> = self
                .drift
                .iter()
                .map(|d| {
                    [
                        d.email.as_str(),
                        d.spot_user_id.as_str(),
                        d.okta_user_id.as_str(),
                        d.kind.as_str(),
                        d.status.as_str(),
                        d.detail.as_str(),
                    ]
                })
                .collect();
            out.push_str(&table(
                [
                    "EMAIL",
                    "SPOT USER",
                    "OKTA USER",
                    "KIND",
                    "STATUS",
                    "DETAIL",
                ],
                &rows,
            ));
            for d in self.drift.iter().filter(|d| d.error.is_some()) {
                out.push_str(&format!(
                    "repair of {} failed: {}\n",
                    d.email,
                    d.error.as_deref().unwrap_or_default()
                ));
            }
        }
        for u in &self.unread {
            out.push_str(&format!(
                "not read: {} (Spot user {}): {}\n",
                u.email, u.spot_user_id, u.error
            ));
        }
        if self.summary.skipped > 0 {
            out.push_str(&format!(
                "{} managed user(s) have no recorded role yet and were not compared (the next reconcile maps them)\n",
                self.summary.skipped
            ));
        }
        out
    }
}

fn table<const N: usize>(header: [&str; N], rows: &[[&str; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str; N]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// One managed user to audit.
struct Managed {
    okta_user_id: OktaUserId,
    email: String,
    spot_user_id: SpotUserId,
    role: Role,
}

/// What auditing one user gave.
enum Checked {
    /// The user's drift, and whether a repair was written (its ledger entry is then
    /// recorded under the current access model).
    Drift(Vec<DriftEntry>, Option<(OktaUserId, Role)>),
    Unread(Unread),
}

/// Audits every managed user against `spot` (and, with `repair`, adds missing grants). The
/// caller holds the instance lock when repairing. `stop`, once cancelled, starts no new write.
pub async fn run_audit<D: SpotDirectory>(
    settings: &Settings,
    spot: &D,
    store: &LedgerStore,
    repair: bool,
    stop: &CancellationToken,
) -> Result<AuditReport, Error> {
    let ledger = store.load()?;
    let mut skipped = 0;
    let mut managed = Vec::new();
    for (okta_user_id, entry) in &ledger.users {
        let (EntryState::Managed, Some(spot_user_id)) = (entry.state, &entry.spot_user_id) else {
            continue;
        };
        match entry.role {
            Some(role) => managed.push(Managed {
                okta_user_id: okta_user_id.clone(),
                email: entry.email.clone(),
                spot_user_id: spot_user_id.clone(),
                role,
            }),
            None => skipped += 1,
        }
    }
    let report = AuditReport {
        repair,
        ..AuditReport::default()
    };
    if managed.is_empty() {
        return Ok(report.finish(0, skipped));
    }
    let users = spot.list_users().await?;
    let roles = RoleResolver::new(spot, &settings.spot.roles);
    let mut needs: BTreeMap<Role, (String, Vec<Need>)> = BTreeMap::new();
    for role in managed.iter().map(|m| m.role) {
        if needs.contains_key(&role) {
            continue;
        }
        let grants = roles
            .grants(role)
            .await
            .map_err(|e| Error::Config(format!("resolving the {role} role: {e}")))?;
        let names = &settings.spot.roles.get(role).policies;
        let need = names
            .iter()
            .zip(grants)
            .map(|(name, grant)| Need {
                name: name.clone(),
                grant,
            })
            .collect();
        needs.insert(role, (roles.spot_role(role), need));
    }
    let writer = repair.then(|| LedgerWriter::new(store.clone(), ledger.clone()));
    let concurrency = settings.spot.write_concurrency.max(1);
    // Indexes, not borrowed items, in the stream: its future must be `Send` for any lifetime
    // the daemon spawns it with.
    let listed: rustc_hash::FxHashSet<&SpotUserId> = users.iter().map(|u| &u.user_id).collect();
    let (managed, needs, listed) = (&managed, &needs, &listed);
    let checked: Vec<Checked> = stream::iter(0..managed.len())
        .map(|i| async move {
            let m = &managed[i];
            let (spot_role, need) = &needs[&m.role];
            let listed = listed.contains(&m.spot_user_id);
            audit_user(spot, m, listed, spot_role, need, repair, stop).await
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut report = report;
    for c in checked {
        match c {
            Checked::Drift(entries, repaired) => {
                if let (Some((okta_user_id, role)), Some(writer)) = (repaired, &writer) {
                    record_mapped(writer, &okta_user_id, role);
                }
                report.drift.extend(entries);
            }
            Checked::Unread(u) => report.unread.push(u),
        }
    }
    if let Some(writer) = writer {
        writer.flush().await?;
    }
    Ok(report.finish(managed.len(), skipped))
}

async fn audit_user<D: SpotDirectory>(
    spot: &D,
    m: &Managed,
    listed: bool,
    spot_role: &str,
    needed: &[Need],
    repair: bool,
    stop: &CancellationToken,
) -> Checked {
    let lookup = if listed {
        match spot.get_user_details(&m.spot_user_id).await {
            Ok(l) => Some(l),
            Err(e) => {
                return Checked::Unread(Unread {
                    email: m.email.clone(),
                    spot_user_id: m.spot_user_id.clone(),
                    okta_user_id: m.okta_user_id.clone(),
                    error: e.to_string(),
                })
            }
        }
    } else {
        None
    };
    let seen = match &lookup {
        None => Seen::NotListed,
        Some(UserLookup::Gone) => Seen::Gone,
        Some(UserLookup::Found(d)) => Seen::Found(d),
    };
    let verdict = decide(seen, spot_role, needed);
    let written = match (&verdict.write, repair) {
        (Some(mapping), true) if stop.is_cancelled() => {
            let _ = mapping;
            Some(Err("not written: the daemon is shutting down".to_string()))
        }
        (Some(mapping), true) => Some(
            spot.set_policy_mapping(&m.spot_user_id, mapping)
                .await
                .map_err(|e| format!("adding the missing grants: {e}")),
        ),
        _ => None,
    };
    let statuses = settle(&verdict.drift, repair, written.as_ref());
    let error = match &written {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    let repaired = matches!(written, Some(Ok(()))).then(|| (m.okta_user_id.clone(), m.role));
    let entries = verdict
        .drift
        .into_iter()
        .zip(statuses)
        .map(|(d, status)| DriftEntry {
            email: m.email.clone(),
            spot_user_id: m.spot_user_id.clone(),
            okta_user_id: m.okta_user_id.clone(),
            kind: d.kind,
            detail: d.detail,
            error: (status == DriftStatus::Failed)
                .then(|| error.clone())
                .flatten(),
            status,
        })
        .collect();
    Checked::Drift(entries, repaired)
}

/// The audit against the real Spot API, every request reported to `observer` (the daemon's
/// metrics). The daemon holds the instance lock.
pub async fn run_with_api(
    settings: &Settings,
    repair: bool,
    observer: Option<crate::http::Observer>,
    stop: &CancellationToken,
) -> Result<AuditReport, Error> {
    let mut spot = SpotClient::new(&settings.spot, &settings.http)?;
    if let Some(observer) = observer {
        spot = spot.with_observer(observer);
    }
    let store = LedgerStore::new(&settings.sync.state_file);
    run_audit(settings, &spot, &store, repair, stop).await
}

/// `okta-spot-sync audit [--repair] [--output text|json]`. Without `--repair` it needs no lock
/// (it writes nothing and the ledger loads consistently while the daemon saves); with it, it
/// takes the lock `reconcile` takes.
pub async fn command(settings: &Settings, repair: bool, output: Output) -> Result<i32, Error> {
    let _lock = if repair {
        Some(InstanceLock::acquire(&settings.sync.state_file, "audit")?)
    } else {
        None
    };
    let report = run_with_api(settings, repair, None, &CancellationToken::new()).await?;
    if report.summary.drift > 0 || report.summary.unread > 0 {
        warn!("{}", report.one_line());
    } else {
        info!("{}", report.one_line());
    }
    match output {
        Output::Json => outln!("{}", report.to_json()),
        Output::Text => out!("{}", report.to_text()),
    }
    Ok(report.exit_code)
}
