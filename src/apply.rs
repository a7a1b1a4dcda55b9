//! Applies a guarded plan to Spot with bounded concurrency, recording every result in the
//! ledger the moment it happens. The `pending` record of a create is durable before the
//! create is sent; results are saved in group commits and all durable before `apply` returns
//! (the contract is on [`LedgerWriter`]), so a crash at any point loses nothing the next
//! cycle cannot re-derive from Spot.
//!
//! This module owns the order of calls for each action (ledger `pending` before a create,
//! delete-then-create for a recreate, policy mapping after a create) and the resolution of
//! role → Spot role and policies. It never decides *whether* to act: that was `plan`'s and
//! `guard`'s job. One failed action never stops the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::config::{SpotRoleSettings, SpotRoles};
use crate::ledger::{journal_line, EntryState, Ledger, LedgerEntry, LedgerStore, Origin};
use crate::model::{Email, NewSpotUser, PolicyGrant, Role, SpotDirectory, SpotPolicy, SpotUsers};
use crate::plan::{Action, ActionKind, ActionStatus, Plan};
use crate::spot::client::{is_already_exists, is_not_found};
use crate::Error;

/// The ledger in memory plus the file it is saved to.
///
/// Durability contract (what a crash at any instant may lose):
/// - [`LedgerWriter::update`] and [`LedgerWriter::update_durable`] return only once the change
///   is on disk (fsync'd). `apply` uses `update_durable` for the `pending` record of a
///   create: it is durable **before** the create is sent, so a crash can never leave a Spot
///   user that the next cycle does not find and claim by email.
/// - [`LedgerWriter::record`] changes memory only; the change becomes durable with the next
///   save of any kind (a later `update_durable`, a [`LedgerWriter::flush`], or `update`).
///   `apply` records results this way (created, deleted, adopted, role applied, forgotten):
///   losing one in a crash only makes the next cycle redo or re-derive it from Spot (a
///   `pending` entry is adopted by email, a deleted user is forgotten, an adoption is planned
///   again), and `apply` flushes before it returns, so every result of a cycle is durable
///   before the cycle ends. A step that relies on an earlier result (the `pending` record of a
///   recreate after its delete) is saved with it, in order.
/// - Saves are group commits: callers of `update_durable`/`flush` that arrive while a save is
///   in flight wait for the next one, which covers all of them with one append to the
///   journal and one fsync. `update` writes the whole file (which then includes the journal,
///   and removes it). Changes reach the disk in the order they were made, so what a crash
///   leaves is always a prefix of them.
/// - Once an append fails, the writer claims nothing more is durable: every later
///   `update_durable`/`flush` fails too, because the lost lines might be ones that a later
///   append would otherwise appear to cover.
pub struct LedgerWriter {
    store: LedgerStore,
    memory: Mutex<Memory>,
    /// `false` for dry runs and tests that keep the ledger in memory only.
    persist: bool,
    /// Sequence number of the last change applied in memory (changed under `memory`'s lock).
    /// Continues the numbering of the loaded file's journal.
    applied: AtomicU64,
    /// One group-commit save at a time; later callers queue here.
    saver: tokio::sync::Mutex<()>,
    /// Sequence number of the newest change on disk; its lock serialises file writes.
    written: Arc<Mutex<u64>>,
    /// Set when a journal append failed (see the contract).
    broken: Arc<std::sync::atomic::AtomicBool>,
}

/// The ledger, and the journal lines of its changes not yet on disk, in change order.
struct Memory {
    ledger: Ledger,
    unsynced: Vec<u8>,
}

impl LedgerWriter {
    pub fn new(store: LedgerStore, ledger: Ledger) -> Self {
        let seq = ledger.journal_seq;
        LedgerWriter {
            store,
            memory: Mutex::new(Memory {
                ledger,
                unsynced: Vec::new(),
            }),
            persist: true,
            applied: AtomicU64::new(seq),
            saver: tokio::sync::Mutex::new(()),
            written: Arc::new(Mutex::new(seq)),
            broken: Arc::default(),
        }
    }

    /// A writer that never touches the disk.
    pub fn in_memory(ledger: Ledger) -> Self {
        LedgerWriter {
            persist: false,
            ..LedgerWriter::new(LedgerStore::new("(memory)"), ledger)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change`, which must touch only the entries of `okta_user_ids` (those are what
    /// the journal records), in memory only; returns its sequence number (see the contract).
    pub fn record(&self, okta_user_ids: &[&str], change: impl FnOnce(&mut Ledger)) -> u64 {
        let mut memory = self.lock();
        change(&mut memory.ledger);
        let seq = self.applied.fetch_add(1, Ordering::SeqCst) + 1;
        if self.persist {
            let line = journal_line(&memory.ledger, okta_user_ids, seq);
            memory.unsynced.extend_from_slice(&line);
        }
        seq
    }

    /// Applies `change` (to any part of the ledger) and saves the whole file at once,
    /// synchronously, with everything recorded before it.
    pub fn update(&self, change: impl FnOnce(&mut Ledger)) -> Result<(), Error> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let mut memory = self.lock();
        change(&mut memory.ledger);
        let seq = self.applied.fetch_add(1, Ordering::SeqCst) + 1;
        memory.ledger.journal_seq = seq;
        if self.persist {
            let saved = self
                .store
                .encode(&memory.ledger)
                .and_then(|bytes| self.store.write_encoded(&bytes));
            if let Err(e) = saved {
                // This change is in no journal line, so no later append may claim it.
                self.broken.store(true, Ordering::SeqCst);
                return Err(e);
            }
            *written = seq;
        }
        memory.unsynced.clear();
        Ok(())
    }

    /// Applies `change` to the entries of `okta_user_ids` (as [`LedgerWriter::record`]) and
    /// returns once it is durable, sharing the save with concurrent callers (group commit).
    pub async fn update_durable(
        &self,
        okta_user_ids: &[&str],
        change: impl FnOnce(&mut Ledger),
    ) -> Result<(), Error> {
        let seq = self.record(okta_user_ids, change);
        self.sync_through(seq).await
    }

    /// Makes every change recorded so far durable.
    pub async fn flush(&self) -> Result<(), Error> {
        self.sync_through(self.applied.load(Ordering::SeqCst)).await
    }

    fn durable(&self) -> u64 {
        *self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn broken_error(&self) -> Error {
        Error::Ledger {
            path: self.store.journal_path(),
            detail: "an earlier append to it failed, so no later change is claimed durable; \
                     the next cycle starts again from what is on disk"
                .into(),
        }
    }

    async fn sync_through(&self, seq: u64) -> Result<(), Error> {
        if !self.persist || self.durable() >= seq {
            return Ok(());
        }
        let _turn = self.saver.lock().await;
        if self.broken.load(Ordering::SeqCst) {
            return Err(self.broken_error());
        }
        if self.durable() >= seq {
            return Ok(()); // the save we waited for covered this change
        }
        let (lines, upto) = {
            let mut memory = self.lock();
            (
                std::mem::take(&mut memory.unsynced),
                self.applied.load(Ordering::SeqCst),
            )
        };
        let store = self.store.clone();
        let written = Arc::clone(&self.written);
        let broken = Arc::clone(&self.broken);
        // Off the async task, so concurrent actions keep recording while the fsync runs.
        let appended = tokio::task::spawn_blocking(move || {
            let mut newest = written.lock().unwrap_or_else(|e| e.into_inner());
            if *newest >= upto {
                return Ok(()); // a whole-file save included these lines
            }
            let appended = store.append_journal(&lines);
            match &appended {
                Ok(()) => *newest = upto,
                Err(_) => broken.store(true, Ordering::SeqCst),
            }
            appended
        })
        .await;
        appended.unwrap_or_else(|e| {
            self.broken.store(true, Ordering::SeqCst);
            Err(Error::Ledger {
                path: self.store.journal_path(),
                detail: format!("the append was interrupted: {e}"),
            })
        })
    }

    pub fn snapshot(&self) -> Ledger {
        self.lock().ledger.clone()
    }

    pub fn into_inner(self) -> Ledger {
        self.memory
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .ledger
    }
}

/// The organization's account ids and policies.
type Catalogue = (Vec<String>, Vec<SpotPolicy>);

/// Resolves Okta roles to what Spot needs, reading accounts and policies at most once per
/// cycle and only when some action needs them.
pub struct RoleResolver<'a, D> {
    spot: &'a D,
    roles: &'a SpotRoles,
    catalogue: OnceCell<Result<Catalogue, String>>,
}

impl<'a, D: SpotDirectory> RoleResolver<'a, D> {
    pub fn new(spot: &'a D, roles: &'a SpotRoles) -> Self {
        RoleResolver {
            spot,
            roles,
            catalogue: OnceCell::new(),
        }
    }

    fn settings(&self, role: Role) -> Result<&SpotRoleSettings, String> {
        Ok(self.roles.get(role))
    }

    pub fn spot_role(&self, role: Role) -> Result<String, String> {
        Ok(self.settings(role)?.spot_role.clone())
    }

    /// The policy mapping for `role`: each configured policy on every account.
    pub async fn grants(&self, role: Role) -> Result<Vec<PolicyGrant>, String> {
        let settings = self.settings(role)?;
        if settings.policies.is_empty() {
            return Ok(Vec::new());
        }
        let catalogue = self
            .catalogue
            .get_or_init(|| async {
                let accounts = self
                    .spot
                    .list_account_ids()
                    .await
                    .map_err(|e| e.to_string())?;
                let policies = self.spot.list_policies().await.map_err(|e| e.to_string())?;
                Ok((accounts, policies))
            })
            .await;
        let (accounts, policies) = catalogue.as_ref().map_err(Clone::clone)?;
        settings
            .policies
            .iter()
            .map(|name| {
                policies
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
                    .map(|p| PolicyGrant {
                        policy_id: p.id.clone(),
                        account_ids: accounts.clone(),
                    })
                    .ok_or_else(|| {
                        format!(
                            "policy {name:?} (spot.roles.{role}.policies) is not among the Spot organization's policies; \
                             fix the name or create the policy in Spot"
                        )
                    })
            })
            .collect()
    }
}

/// How many fresh reads of the Spot user list one cycle makes after failed writes. Beyond
/// this many, a failed write stays failed and the next cycle's complete read decides: a
/// misconfiguration that fails every create must not turn into one 100,000-user read each.
pub const MAX_RECHECKS: usize = 8;

/// Fresh reads of the Spot user list after a failed create or delete.
///
/// Spot's error codes for "already exists" and "not found" are not confirmed by any public
/// source, and a create that timed out may have landed. So what a failed write did is decided
/// from a read of the list made **after** the failure, not from the error text (the codes only
/// shape the message). Concurrent failures share one read: a read started after a failure was
/// seen answers for it, and a failure waits for the read in flight rather than starting its
/// own.
struct Recheck<'a, D> {
    spot: &'a D,
    /// Failures seen so far; each failure's number is its ticket.
    failures: AtomicU64,
    /// The latest read, with the number of failures seen when it started (it answers for those).
    latest: tokio::sync::Mutex<Option<(u64, std::sync::Arc<SpotUsers>)>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl<'a, D: SpotDirectory> Recheck<'a, D> {
    fn new(spot: &'a D) -> Self {
        Recheck {
            spot,
            failures: AtomicU64::new(0),
            latest: tokio::sync::Mutex::new(None),
            reads: Default::default(),
        }
    }

    /// The Spot users as listed after a write that just failed.
    async fn users_after_failure(&self) -> Result<std::sync::Arc<SpotUsers>, String> {
        let ticket = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        let mut latest = self.latest.lock().await;
        if let Some((covers, users)) = latest.as_ref() {
            if *covers >= ticket {
                return Ok(std::sync::Arc::clone(users));
            }
        }
        if self.reads.fetch_add(1, Ordering::SeqCst) >= MAX_RECHECKS {
            return Err(format!(
                "not re-read: more than {MAX_RECHECKS} writes failed this cycle; the next cycle's complete read decides"
            ));
        }
        let covers = self.failures.load(Ordering::SeqCst);
        let users = self
            .spot
            .list_users()
            .await
            .map_err(|e| format!("re-reading the Spot users failed: {e}"))?;
        let users = std::sync::Arc::new(users);
        *latest = Some((covers, std::sync::Arc::clone(&users)));
        Ok(users)
    }

    /// After a failed create: the id of the personal Spot user with `email` (the lowest id if
    /// several), which the `pending` record claims, or `None` when Spot does not list one.
    async fn created(&self, email: &Email) -> Result<Option<String>, String> {
        let users = self.users_after_failure().await?;
        Ok(users
            .iter()
            .filter(|u| u.is_personal() && u.email.as_ref() == Some(email))
            .map(|u| u.user_id.clone())
            .min())
    }

    /// After a failed delete: is the user gone (Spot no longer lists it)?
    async fn gone(&self, spot_user_id: &str) -> Result<bool, String> {
        let users = self.users_after_failure().await?;
        Ok(!users.iter().any(|u| u.user_id == spot_user_id))
    }
}

/// Deletes `target`; a failure is decided by a fresh read ([`Recheck`]): a user Spot no longer
/// lists is gone, whatever the error said. The id stays in the ledger (as the entry's or as a
/// tombstone) either way, so a delete that answered success and did nothing is found by a
/// later cycle's read.
async fn delete_checked<D: SpotDirectory>(
    spot: &D,
    recheck: &Recheck<'_, D>,
    target: &str,
) -> Result<(), String> {
    let Err(err) = spot.delete_user(target).await else {
        return Ok(());
    };
    let hint = if is_not_found(&err) {
        " (Spot says it does not exist)"
    } else {
        ""
    };
    match recheck.gone(target).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{err}; Spot still lists the user")),
        Err(e) => Err(format!("{err}{hint}; {e}")),
    }
}

/// Applies every `planned` action of `plan`, updating statuses, errors and created user ids in
/// place. Non-destructive actions run first, deletes last, each phase with at most
/// `concurrency` calls in flight. Also performs the plan's ledger-only housekeeping.
pub async fn apply<D: SpotDirectory>(
    plan: &mut Plan,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    concurrency: usize,
) -> Result<(), Error> {
    apply_until(
        plan,
        spot,
        ledger,
        roles,
        concurrency,
        &CancellationToken::new(),
    )
    .await
}

/// [`apply`] that stops starting actions once `stop` is cancelled (the daemon's shutdown):
/// actions already in flight finish and are recorded; the others stay `planned` in the plan
/// and untouched in the ledger, for the next run.
pub async fn apply_until<D: SpotDirectory>(
    plan: &mut Plan,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    concurrency: usize,
    stop: &CancellationToken,
) -> Result<(), Error> {
    if !plan.forget.is_empty() {
        let forget = plan.forget.clone();
        let ids: Vec<&str> = forget.iter().map(String::as_str).collect();
        ledger.record(&ids, |l| {
            forget.iter().for_each(|okta_id| l.retire(okta_id, None))
        });
    }
    let recheck = Recheck::new(spot);
    // A ledger failure stops the next phase; the results of this one are still set, so that
    // the plan reports what was applied.
    let mut ledger_failed = None;
    for deletes in [false, true] {
        if ledger_failed.is_some() {
            break;
        }
        let work: Vec<(usize, Action)> = plan
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.status == ActionStatus::Planned && (a.action == ActionKind::Delete) == deletes
            })
            .map(|(i, a)| (i, a.clone()))
            .collect();
        let recheck = &recheck;
        let results: Vec<(usize, Outcome)> = stream::iter(work)
            .take_while(|_| futures::future::ready(!stop.is_cancelled()))
            .map(|(i, action)| async move {
                (i, apply_one(&action, spot, ledger, roles, recheck).await)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (i, outcome) in results {
            let action = &mut plan.actions[i];
            match outcome {
                Outcome::Applied { spot_user_id } => {
                    action.status = ActionStatus::Applied;
                    if spot_user_id.is_some() {
                        action.spot_user_id = spot_user_id;
                    }
                }
                Outcome::Failed(error) => {
                    action.status = ActionStatus::Failed;
                    action.error = Some(error);
                }
                Outcome::LedgerFailed(error) => {
                    ledger_failed.get_or_insert(error);
                }
            }
        }
    }
    if let Some(error) = ledger_failed {
        return Err(error);
    }
    // Results were recorded in memory (see `LedgerWriter`): make them durable before returning.
    ledger.flush().await
}

enum Outcome {
    Applied {
        spot_user_id: Option<String>,
    },
    Failed(String),
    /// The state file could not be written: stop everything, the record is the safety net.
    LedgerFailed(Error),
}

/// Turns a ledger error into a stop and a Spot error into a failed action.
macro_rules! step {
    (ledger $e:expr) => {
        if let Err(err) = $e {
            return Outcome::LedgerFailed(err);
        }
    };
    (spot $e:expr, $context:expr) => {
        match $e {
            Ok(value) => value,
            Err(err) => return Outcome::Failed(format!("{}: {}", $context, err)),
        }
    };
}

/// A ledger entry as every action records it (also used by `import`'s adoptions).
pub(crate) fn entry(
    email: &str,
    spot_user_id: Option<String>,
    role: Option<Role>,
    origin: Origin,
    state: EntryState,
) -> LedgerEntry {
    LedgerEntry {
        email: Email::parse(email)
            .map(|e| e.to_string())
            .unwrap_or_else(|| email.to_string()),
        spot_user_id,
        tombstones: Vec::new(),
        role,
        origin,
        state,
        updated_at: Utc::now(),
    }
}

async fn apply_one<D: SpotDirectory>(
    action: &Action,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    recheck: &Recheck<'_, D>,
) -> Outcome {
    let okta_id = action.okta_user_id.clone();
    match action.action {
        ActionKind::Delete => {
            let target = action.spot_user_id.clone().unwrap_or_default();
            step!(spot delete_checked(spot, recheck, &target).await, format!("deleting Spot user {target}"));
            // The entry may already point at a new Spot user (an email change adopted one);
            // the deleted one stays as a tombstone.
            ledger.record(&[&okta_id], |l| l.retire(&okta_id, Some(&target)));
            Outcome::Applied { spot_user_id: None }
        }
        ActionKind::Create | ActionKind::Recreate => {
            if let Some(old) = &action.detail.delete_first {
                step!(spot delete_checked(spot, recheck, old).await, format!("deleting the old Spot user {old}"));
                // Saved with the `pending` record that follows, before the create is sent.
                ledger.record(&[&okta_id], |l| l.retire(&okta_id, None));
            }
            let created = create(action, spot, ledger, roles, recheck).await;
            match (&created, &action.detail.delete_after) {
                (
                    Outcome::Applied {
                        spot_user_id: Some(new),
                    },
                    Some(old),
                ) => {
                    // The `pending` record made `old` a tombstone: a failure here is retried by
                    // the next cycle, which still finds it listed.
                    if let Err(e) = delete_checked(spot, recheck, old).await {
                        return Outcome::Failed(format!(
                            "created Spot user {new}, but deleting the old Spot user {old} failed: {e}; the next cycle deletes it again"
                        ));
                    }
                    created
                }
                _ => created,
            }
        }
        ActionKind::Adopt => {
            let Some(role) = action.role else {
                return Outcome::Failed("no role to record".into());
            };
            let target = action.spot_user_id.clone().unwrap_or_default();
            if action.detail.apply_role_mapping {
                if let Err(e) = map_role(&target, role, spot, roles).await {
                    return Outcome::Failed(e);
                }
            }
            let origin = action.detail.origin.unwrap_or(Origin::Adopted);
            let previous = action.detail.previous_owner.clone();
            let touched: Vec<&str> = [Some(okta_id.as_str()), previous.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            ledger.record(&touched, |l| {
                // The previous owner lets go of it (if it still points at it: its own create or
                // recreate may already have given it a new one); no tombstone, as it is not gone.
                if let Some(prev) = &previous {
                    l.release(prev, &target);
                }
                l.put(
                    &okta_id,
                    entry(
                        &action.email,
                        Some(target.clone()),
                        Some(role),
                        origin,
                        EntryState::Managed,
                    ),
                );
            });
            Outcome::Applied { spot_user_id: None }
        }
        ActionKind::UpdateRole => {
            let Some(role) = action.role else {
                return Outcome::Failed("no role to apply".into());
            };
            let target = action.spot_user_id.clone().unwrap_or_default();
            if let Err(e) = map_role(&target, role, spot, roles).await {
                return Outcome::Failed(e);
            }
            ledger.record(&[&okta_id], |l| {
                if let Some(e) = l.users.get_mut(&okta_id) {
                    e.role = Some(role);
                    e.updated_at = Utc::now();
                }
            });
            Outcome::Applied { spot_user_id: None }
        }
        ActionKind::AssignInOkta => {
            Outcome::Failed("assign_in_okta is only applied by `import`".into())
        }
    }
}

async fn map_role<D: SpotDirectory>(
    spot_user_id: &str,
    role: Role,
    spot: &D,
    roles: &RoleResolver<'_, D>,
) -> Result<(), String> {
    let grants = roles
        .grants(role)
        .await
        .map_err(|e| format!("resolving the {role} role: {e}"))?;
    if grants.is_empty() {
        return Ok(());
    }
    spot.set_policy_mapping(spot_user_id, &grants)
        .await
        .map_err(|e| format!("applying the {role} policy mapping to Spot user {spot_user_id}: {e}"))
}

async fn create<D: SpotDirectory>(
    action: &Action,
    spot: &D,
    ledger: &LedgerWriter,
    roles: &RoleResolver<'_, D>,
    recheck: &Recheck<'_, D>,
) -> Outcome {
    let okta_id = action.okta_user_id.clone();
    let Some(role) = action.role else {
        return Outcome::Failed("no role to create with".into());
    };
    let spot_role = match roles.spot_role(role) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    // Resolve the policies before creating, so a misconfigured role fails before any write.
    if let Err(e) = roles.grants(role).await {
        return Outcome::Failed(format!("resolving the {role} role: {e}"));
    }
    let origin = Origin::Created;
    // Write-ahead: durable before the create is sent (see `LedgerWriter`). `put` keeps the
    // Spot user the entry had as a tombstone: a create planned because a lagging list missed
    // it must not make the ledger forget it.
    step!(ledger ledger.update_durable(&[&okta_id], |l| {
        l.put(&okta_id, entry(&action.email, None, None, origin, EntryState::Pending));
    }).await);
    let new_user = NewSpotUser {
        email: if action.detail.email_display.is_empty() {
            action.email.clone()
        } else {
            action.detail.email_display.clone()
        },
        first_name: action.detail.first_name.clone(),
        last_name: action.detail.last_name.clone(),
        spot_role,
    };
    let spot_user_id = match spot.create_user(&new_user).await {
        Ok(id) => id,
        Err(err) => {
            // Whatever the error said, the create may have landed (a timeout, a 5xx after the
            // write, a list that lagged behind an earlier create): a fresh read decides, and our
            // `pending` record claims a personal user with the email.
            let hint = if is_already_exists(&err) {
                " (Spot says the user already exists)"
            } else {
                ""
            };
            let found = match Email::parse(&action.email) {
                Some(email) => recheck.created(&email).await,
                None => Ok(None),
            };
            match found {
                Ok(Some(id)) => id,
                Ok(None) => {
                    return Outcome::Failed(format!(
                        "creating the Spot user: {err}{hint}; Spot does not list a user with this email"
                    ))
                }
                Err(e) => {
                    return Outcome::Failed(format!("creating the Spot user: {err}{hint}; {e}"))
                }
            }
        }
    };
    ledger.record(&[&okta_id], |l| {
        l.put(
            &okta_id,
            entry(
                &action.email,
                Some(spot_user_id.clone()),
                None,
                origin,
                EntryState::Managed,
            ),
        );
    });
    if let Err(e) = map_role(&spot_user_id, role, spot, roles).await {
        return Outcome::Failed(format!(
            "created Spot user {spot_user_id}, but {e}; the next cycle retries the mapping"
        ));
    }
    ledger.record(&[&okta_id], |l| {
        if let Some(e) = l.users.get_mut(&okta_id) {
            e.role = Some(role);
            e.updated_at = Utc::now();
        }
    });
    Outcome::Applied {
        spot_user_id: Some(spot_user_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(email: &str) -> LedgerEntry {
        entry(email, None, None, Origin::Created, EntryState::Pending)
    }

    fn store() -> (tempfile::TempDir, LedgerStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::new(dir.path().join("state.json"));
        (dir, store)
    }

    #[tokio::test]
    async fn a_durable_change_survives_a_crash_and_numbering_continues_across_runs() {
        let (_dir, store) = store();
        let first = LedgerWriter::new(store.clone(), store.load().unwrap());
        first
            .update_durable(&["00ua"], |l| {
                l.users.insert("00ua".into(), pending("a@example.com"));
            })
            .await
            .unwrap();
        drop(first); // a crash: no whole-file save
        assert!(!store.path().exists());
        assert_eq!(
            store.load().unwrap().users["00ua"].state,
            EntryState::Pending
        );

        let second = LedgerWriter::new(store.clone(), store.load().unwrap());
        second.record(&["00ua"], |l| l.retire("00ua", None));
        second.record(&["00ub"], |l| {
            l.users.insert("00ub".into(), pending("b@example.com"));
        });
        second.flush().await.unwrap();
        drop(second);
        let loaded = store.load().unwrap();
        assert_eq!(loaded.users["00ua"].state, EntryState::Deleted);
        assert_eq!(loaded.users["00ub"].state, EntryState::Pending);
        assert_eq!(loaded.journal_seq, 3);

        let third = LedgerWriter::new(store.clone(), loaded.clone());
        third.update(|_| {}).unwrap();
        assert!(!store.journal_path().exists());
        let saved = store.load().unwrap();
        assert_eq!(saved.users, loaded.users);
        assert_eq!(saved.journal_seq, 4);
    }

    /// Appends in group commits racing with whole-file saves (which remove the journal) must
    /// never lose a change that was reported durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_and_whole_file_saves_lose_nothing_reported_durable() {
        let (_dir, store) = store();
        let writer = Arc::new(LedgerWriter::new(store.clone(), Ledger::default()));
        // 58 whole-file saves in all (`step % 7 == task % 7`), fewer than a load's attempts,
        // so a load starved of CPU cannot run out of them.
        const _: () = assert!(58 < crate::ledger::LOAD_ATTEMPTS);
        let mut tasks = Vec::new();
        for task in 0..16 {
            let writer = Arc::clone(&writer);
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for step in 0..25 {
                    let id = format!("00u{task:02}{step:03}");
                    writer
                        .update_durable(&[&id], |l| {
                            l.users
                                .insert(id.clone(), pending(&format!("{id}@example.com")));
                        })
                        .await
                        .unwrap();
                    // Reported durable: it must be on disk now, whatever else is running.
                    let on_disk = store.load().unwrap();
                    assert!(on_disk.users.contains_key(&id), "{id} lost");
                    writer.record(&[&id], |l| l.retire(&id, None));
                    if step % 7 == task % 7 {
                        let writer = Arc::clone(&writer);
                        tokio::task::spawn_blocking(move || writer.update(|_| {}))
                            .await
                            .unwrap()
                            .unwrap();
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(store.load().unwrap().users, writer.snapshot().users);
        assert_eq!(writer.snapshot().users.len(), 16 * 25);
    }

    mod failed_writes {
        use super::*;
        use crate::fake::{FakeFault, FakeSpotDirectory};
        use crate::model::SpotUserKind;
        use crate::plan::ActionDetail;

        fn roles() -> SpotRoles {
            let viewer = SpotRoleSettings {
                spot_role: "viewer".into(),
                policies: Vec::new(),
            };
            SpotRoles {
                viewer,
                ..SpotRoles::default()
            }
        }

        fn action(kind: ActionKind, okta_id: &str, email: &str, spot: Option<&str>) -> Action {
            Action {
                action: kind,
                email: email.into(),
                okta_user_id: okta_id.into(),
                spot_user_id: spot.map(String::from),
                role: Some(Role::Viewer),
                reason: "test".into(),
                status: ActionStatus::Planned,
                error: None,
                detail: ActionDetail {
                    email_display: email.into(),
                    first_name: "First".into(),
                    last_name: "Last".into(),
                    ..ActionDetail::default()
                },
            }
        }

        fn managed(okta_id: &str, email: &str, spot: &str) -> Ledger {
            let mut ledger = Ledger::default();
            let entry = entry(
                email,
                Some(spot.into()),
                Some(Role::Viewer),
                Origin::Created,
                EntryState::Managed,
            );
            ledger.put(okta_id, entry);
            ledger
        }

        async fn apply_actions(
            actions: Vec<Action>,
            spot: &FakeSpotDirectory,
            ledger: Ledger,
        ) -> (Plan, Ledger) {
            let mut plan = Plan {
                actions,
                ..Plan::default()
            };
            let writer = LedgerWriter::in_memory(ledger);
            let roles = roles();
            let resolver = RoleResolver::new(spot, &roles);
            apply(&mut plan, spot, &writer, &resolver, 4).await.unwrap();
            (plan, writer.into_inner())
        }

        /// A create whose answer was lost (no error code at all) landed: a fresh read finds
        /// the user, and the `pending` record claims it.
        #[tokio::test]
        async fn a_create_whose_answer_was_lost_is_decided_by_a_fresh_read() {
            let spot = FakeSpotDirectory::default();
            spot.faults
                .lock()
                .unwrap()
                .insert(1, FakeFault::LandThenFail);
            let create = action(ActionKind::Create, "00ua", "ann@example.com", None);
            let (plan, ledger) = apply_actions(vec![create], &spot, Ledger::default()).await;
            assert_eq!(
                plan.actions[0].status,
                ActionStatus::Applied,
                "{:?}",
                plan.actions[0]
            );
            let id = plan.actions[0].spot_user_id.clone().unwrap();
            assert!(spot.get(&id).is_some());
            assert_eq!(ledger.users["00ua"].state, EntryState::Managed);
            assert_eq!(
                ledger.users["00ua"].spot_user_id.as_deref(),
                Some(id.as_str())
            );
        }

        /// A refused create (an error code nobody documents) with no user behind it stays
        /// failed and pending: nothing is claimed that Spot does not list.
        #[tokio::test]
        async fn a_refused_create_claims_nothing_spot_does_not_list() {
            let spot = FakeSpotDirectory::default();
            spot.faults.lock().unwrap().insert(1, FakeFault::Refuse);
            let create = action(ActionKind::Create, "00ua", "ann@example.com", None);
            let (plan, ledger) = apply_actions(vec![create], &spot, Ledger::default()).await;
            assert_eq!(plan.actions[0].status, ActionStatus::Failed);
            let error = plan.actions[0].error.as_deref().unwrap();
            assert!(
                error.contains("does not list a user with this email"),
                "{error}"
            );
            assert_eq!(ledger.users["00ua"].state, EntryState::Pending);
        }

        /// A delete whose answer was lost did its work: Spot no longer lists the user.
        #[tokio::test]
        async fn a_delete_whose_answer_was_lost_is_applied_when_spot_no_longer_lists_the_user() {
            let spot = FakeSpotDirectory::default();
            spot.add("u-1", "ann@example.com", SpotUserKind::Personal);
            spot.faults
                .lock()
                .unwrap()
                .insert(1, FakeFault::LandThenFail);
            let delete = action(ActionKind::Delete, "00ua", "ann@example.com", Some("u-1"));
            let ledger = managed("00ua", "ann@example.com", "u-1");
            let (plan, ledger) = apply_actions(vec![delete], &spot, ledger).await;
            assert_eq!(
                plan.actions[0].status,
                ActionStatus::Applied,
                "{:?}",
                plan.actions[0]
            );
            assert_eq!(ledger.users["00ua"].state, EntryState::Deleted);
            assert_eq!(ledger.users["00ua"].tombstones, ["u-1"]);
        }

        /// A refused delete of a user Spot still lists fails, and the user stays owned.
        #[tokio::test]
        async fn a_refused_delete_fails_and_the_user_stays_owned() {
            let spot = FakeSpotDirectory::default();
            spot.add("u-1", "ann@example.com", SpotUserKind::Personal);
            spot.faults.lock().unwrap().insert(1, FakeFault::Refuse);
            let delete = action(ActionKind::Delete, "00ua", "ann@example.com", Some("u-1"));
            let ledger = managed("00ua", "ann@example.com", "u-1");
            let (plan, ledger) = apply_actions(vec![delete], &spot, ledger).await;
            assert_eq!(plan.actions[0].status, ActionStatus::Failed);
            let error = plan.actions[0].error.as_deref().unwrap();
            assert!(error.contains("Spot still lists the user"), "{error}");
            assert_eq!(ledger.users["00ua"].spot_user_id.as_deref(), Some("u-1"));
        }

        /// Failures share fresh reads, and a cycle makes at most `MAX_RECHECKS` of them.
        #[tokio::test]
        async fn fresh_reads_after_failures_are_bounded() {
            let spot = FakeSpotDirectory::default();
            let actions: Vec<Action> = (0..40)
                .map(|i| {
                    let email = format!("user{i}@example.com");
                    spot.fail_create_for.lock().unwrap().push(email.clone());
                    action(ActionKind::Create, &format!("00u{i:02}"), &email, None)
                })
                .collect();
            let (plan, _) = apply_actions(actions, &spot, Ledger::default()).await;
            assert!(plan
                .actions
                .iter()
                .all(|a| a.status == ActionStatus::Failed));
            let reads = spot.lists.load(Ordering::SeqCst);
            assert!((1..=MAX_RECHECKS as u64).contains(&reads), "{reads} reads");
        }

        /// An email change creates the new user first: when Spot refuses the new email, the
        /// person keeps the old user, and the ledger keeps it as a tombstone, deleted only once
        /// a later cycle's create succeeded.
        #[tokio::test]
        async fn an_email_change_refused_by_spot_leaves_the_old_user_in_place() {
            use crate::model::{DesiredUser, Email, OktaSnapshot, SpotUsers};
            use crate::plan::{plan, PlanOptions};
            let spot = FakeSpotDirectory::default();
            spot.add("u-1", "ann@example.com", SpotUserKind::Personal);
            spot.add("u-owner", "owner@example.com", SpotUserKind::Personal);
            spot.fail_create_for
                .lock()
                .unwrap()
                .push("ann.lee@example.com".into());
            let okta = OktaSnapshot {
                provision: vec![DesiredUser {
                    okta_user_id: "00ua".into(),
                    email: Email::parse("ann.lee@example.com").unwrap(),
                    email_spelling: None,
                    first_name: "Ann".into(),
                    last_name: "Lee".into(),
                    role: Role::Viewer,
                }],
                listed: 1,
                ..OktaSnapshot::default()
            };
            let options = PlanOptions {
                adopt_existing: true,
                update_roles: true,
                protected_emails: Default::default(),
                spot_roles: [(Role::Viewer, "viewer".to_string())].into(),
            };
            let mut ledger = managed("00ua", "ann@example.com", "u-1");
            for cycle in 0..3 {
                if cycle == 2 {
                    spot.fail_create_for.lock().unwrap().clear();
                }
                let the_plan = plan(
                    &okta,
                    &SpotUsers::distinct(spot.snapshot()),
                    &ledger,
                    &options,
                );
                let (applied, next) = apply_actions(the_plan.actions, &spot, ledger).await;
                ledger = next;
                if cycle < 2 {
                    assert!(
                        spot.get("u-1").is_some(),
                        "cycle {cycle}: Ann lost her only user"
                    );
                    assert!(ledger.has_owned_spot_user("u-1"));
                    assert!(applied
                        .actions
                        .iter()
                        .all(|a| a.status == ActionStatus::Failed));
                }
            }
            assert!(
                spot.get("u-1").is_none(),
                "the old user is deleted once the new one exists"
            );
            let entry = &ledger.users["00ua"];
            assert_eq!(entry.state, EntryState::Managed);
            let new = spot.get(entry.spot_user_id.as_deref().unwrap()).unwrap();
            assert_eq!(new.user.email, Email::parse("ann.lee@example.com"));
        }
    }

    #[tokio::test]
    async fn a_change_recorded_but_not_flushed_is_not_on_disk() {
        let (_dir, store) = store();
        let writer = LedgerWriter::new(store.clone(), Ledger::default());
        writer.record(&["00ua"], |l| {
            l.users.insert("00ua".into(), pending("a@example.com"));
        });
        assert!(store.load().unwrap().users.is_empty());
        writer.flush().await.unwrap();
        assert_eq!(store.load().unwrap().users.len(), 1);
    }

    #[tokio::test]
    async fn after_a_failed_append_nothing_more_is_claimed_durable() {
        let (_dir, store) = store();
        // The journal's path is a directory: every append fails.
        std::fs::create_dir_all(store.journal_path()).unwrap();
        let writer = LedgerWriter::new(store.clone(), Ledger::default());
        let err = writer
            .update_durable(&["00ua"], |l| {
                l.users.insert("00ua".into(), pending("a@example.com"));
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("state.json.journal"), "{err}");
        // The disk recovers, but the lost line is not in it: a later save must not claim it.
        std::fs::remove_dir(store.journal_path()).unwrap();
        let err = writer
            .update_durable(&["00ub"], |l| {
                l.users.insert("00ub".into(), pending("b@example.com"));
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("earlier append"), "{err}");
        assert!(writer.flush().await.is_err());
    }
}
