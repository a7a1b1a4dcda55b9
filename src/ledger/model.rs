//! The ledger's data: who owns which Spot user (entries, their states and tombstones) and the
//! last run, with the only ways an entry changes ([`Ledger::put`], [`Ledger::retire`],
//! [`Ledger::release`]).
//!
//! Pure data: no files, no clock but the time stamp of a change. It must never decide what to
//! do with a user (that is `plan`'s job).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Email, OktaUserId, Role, SpotUserId};

/// The format version written by this build.
pub const LEDGER_VERSION: u32 = 1;

/// How a Spot user came to be managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// This tool created it.
    Created,
    /// It existed in Spot and matched an assigned Okta user.
    Adopted,
}

/// Where a managed user is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// A create was about to be sent; the Spot user may or may not exist.
    Pending,
    /// The Spot user exists and belongs to this tool.
    Managed,
    /// This tool deleted it (kept so that a reactivation is a *recreate*).
    Deleted,
}

/// One Okta user's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Normalised email of the Spot user.
    pub email: String,
    /// The Spot user this entry owns now (`managed`; `pending` once a create may have landed).
    pub spot_user_id: Option<SpotUserId>,
    /// Tombstones: Spot users this Okta user owned before and let go of (deleted, replaced after
    /// an email change, or replaced by a pending create). See [`Ledger`] for the invariant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tombstones: Vec<SpotUserId>,
    /// The role whose Spot mapping is known to be applied; `None` until it is.
    pub role: Option<Role>,
    /// The access model (`access::ACCESS_MODEL`) the role's mapping is known to be in line with.
    /// Absent in files written before it (read as 0): such users, and users adopted by
    /// `import` (which never writes to Spot), are brought in line by the next cycle.
    #[serde(default)]
    pub access: u32,
    pub origin: Origin,
    pub state: EntryState,
    #[serde(serialize_with = "serialize_timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl LedgerEntry {
    /// Keeps `spot_user_id` as a tombstone (once).
    fn bury(&mut self, spot_user_id: SpotUserId) {
        if !self.tombstones.contains(&spot_user_id) {
            self.tombstones.push(spot_user_id);
        }
    }
}

/// Writes a timestamp exactly as chrono's own `Serialize` does (RFC 3339 in UTC with `Z`, and
/// as many fractional digits as the time has), but as one string: chrono's goes through
/// `collect_str`, which serde_json escapes one character at a time, and that was a third of
/// the time spent encoding the state file (saved whole at the end of a cycle that changed
/// something) and the journal's lines (one per change).
fn serialize_timestamp<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// The last cycle's outcome, for `check`, `/readyz` and people reading the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub finished_at: DateTime<Utc>,
    pub mode: String,
    pub summary: BTreeMap<String, usize>,
}

/// How long deletes count against `sync.max_deletes` and `sync.max_delete_percent` after they
/// were applied: the guards hold per cycle **and per rolling hour**, so a slow drip of small
/// batches (events mode) trips them like one big cycle would.
pub const DELETE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Deletes applied by one cycle or batch, for the rolling hour of the delete guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMark {
    #[serde(serialize_with = "serialize_timestamp")]
    pub at: DateTime<Utc>,
    pub count: u32,
}

/// Where events mode stands in Okta's System Log, kept in the state file so that a restart
/// resumes where the last poll stopped (README "Events mode").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    /// The `after` value of the last `next` link followed; `None` before the first poll from
    /// a start point, which then starts from `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The start point (taken before the full cycle that preceded the first poll).
    #[serde(serialize_with = "serialize_timestamp")]
    pub since: DateTime<Utc>,
    /// When a poll last came back from this position having read everything up to the end
    /// of the log: nothing between `since`/`after` and then is unseen. A cursor whose
    /// `polled_at` is older than Okta's retention cannot prove the gap empty.
    #[serde(serialize_with = "serialize_timestamp")]
    pub polled_at: DateTime<Utc>,
}

/// Events mode's part of the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsState {
    /// `None`: no position to resume from (a full cycle comes first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<LogCursor>,
    /// Okta users an event named whose change is not done yet (a read or an action failed):
    /// read again by the next batches, so the cursor can move on without losing them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<RetryUser>,
    /// Spot users deleted (or let go of, unlisted) lately, checked in the Spot list by the
    /// next polls: a delete that answered success but did nothing, or a list that missed a
    /// user, shows there, and the user is then planned again (a full cycle would see every
    /// tombstone; a batch sees only the users it names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<Watch>,
    /// Distinct users the app listed at the last full cycle: what a full read costs (a batch
    /// naming more users is a full cycle instead).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub listed: usize,
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

/// An Okta user events mode reads again (see [`EventsState::retry`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RetryUser {
    pub okta_user_id: OktaUserId,
    /// Batches that read it and could not finish its change, this one included.
    pub attempts: u32,
}

/// A Spot user events mode checks is gone (see [`EventsState::watch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub okta_user_id: OktaUserId,
    pub spot_user_id: SpotUserId,
    /// Polls that still look for it.
    pub checks_left: u32,
}

impl EventsState {
    pub fn is_empty(&self) -> bool {
        self.cursor.is_none() && self.retry.is_empty() && self.watch.is_empty() && self.listed == 0
    }
}

/// The whole state file (its JSON mapping is in `ledger/unknown_fields.rs`, which keeps the
/// fields this build does not know).
///
/// **Invariant: the ledger never forgets a Spot user it owned.** Every Spot user id an entry
/// ever held stays in the ledger: as the entry's `spot_user_id` while it owns it, then as one of
/// its `tombstones`. An id leaves the ledger only when the Spot user passes to another Okta
/// user's entry (a transfer, [`Ledger::release`]). Replacing an entry goes through
/// [`Ledger::put`], which moves the old id into the tombstones; nothing else may overwrite an
/// entry. Spot user ids are not reused, so a tombstone costs a few bytes and is kept for the
/// life of the entry: a Spot list that misses a user once, a delete that answered success but
/// did nothing, a list that lagged after a create — whichever way Spot later lists the user
/// again, the planner finds the tombstone and deletes the user again if its Okta user is
/// gone (README "Safety").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub version: u32,
    /// Keyed by Okta user id.
    pub users: BTreeMap<OktaUserId, LedgerEntry>,
    /// The last `reconcile` cycle that changed something (or created the file). A cycle with
    /// nothing to do does not rewrite the file: at 100,000 users that would be an 18 MB write
    /// and fsync every cycle to record only a time; logs and `/metrics` say when cycles ran.
    pub last_run: Option<LastRun>,
    /// The sequence number of the last journal record this file includes (0: none). On load,
    /// journal records up to it are skipped.
    pub journal_seq: u64,
    /// Events mode's position in the System Log.
    pub events: EventsState,
    /// Deletes applied in the last [`DELETE_WINDOW`], oldest first.
    pub recent_deletes: Vec<DeleteMark>,
    /// Top-level fields this build does not know (a newer version wrote them), written back
    /// as they were read.
    pub unknown: serde_json::Map<String, serde_json::Value>,
    /// The same for users' entries, by Okta user id; an entry's go when the entry is removed.
    pub unknown_in_users: BTreeMap<OktaUserId, serde_json::Map<String, serde_json::Value>>,
}

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            version: LEDGER_VERSION,
            users: BTreeMap::new(),
            last_run: None,
            journal_seq: 0,
            events: EventsState::default(),
            recent_deletes: Vec::new(),
            unknown: Default::default(),
            unknown_in_users: BTreeMap::new(),
        }
    }
}

impl Ledger {
    /// Deletes applied within [`DELETE_WINDOW`] before `now`.
    pub fn deletes_in_window(&self, now: DateTime<Utc>) -> usize {
        self.recent_deletes
            .iter()
            .filter(|m| m.at > now - DELETE_WINDOW && m.at <= now + DELETE_WINDOW)
            .map(|m| m.count as usize)
            .sum()
    }

    /// Records `count` deletes applied at `now`, and forgets marks that left the window.
    pub fn note_deletes(&mut self, now: DateTime<Utc>, count: usize) {
        self.recent_deletes
            .retain(|m| m.at > now - DELETE_WINDOW && m.at <= now + DELETE_WINDOW);
        if count > 0 {
            self.recent_deletes.push(DeleteMark {
                at: now,
                count: u32::try_from(count).unwrap_or(u32::MAX),
            });
        }
    }

    /// Users whose Spot user this tool currently owns (managed or mid-create).
    pub fn managed_count(&self) -> usize {
        self.users
            .values()
            .filter(|e| matches!(e.state, EntryState::Managed | EntryState::Pending))
            .count()
    }

    /// Records that `okta_user_id` no longer has a Spot user: its Spot user becomes a
    /// tombstone. With `only_if_owning`, only when the entry still points at that Spot user (a
    /// concurrent action may have moved it on).
    pub fn retire(&mut self, okta_user_id: &OktaUserId, only_if_owning: Option<&SpotUserId>) {
        if let Some(entry) = self.users.get_mut(okta_user_id) {
            if only_if_owning.is_none_or(|id| entry.spot_user_id.as_ref() == Some(id)) {
                entry.state = EntryState::Deleted;
                if let Some(id) = entry.spot_user_id.take() {
                    entry.bury(id);
                }
                entry.updated_at = chrono::Utc::now();
            }
        }
    }

    /// Makes `entry` the record of `okta_user_id`, keeping what the old record owned: its
    /// tombstones, and its Spot user (as a tombstone) when it was managed and the new record
    /// does not own it. (A `pending` record's Spot user id is a guess, never confirmed as
    /// ours.) The only way an entry is replaced (see the invariant on [`Ledger`]).
    pub fn put(&mut self, okta_user_id: &OktaUserId, mut entry: LedgerEntry) {
        if let Some(old) = self.users.remove(okta_user_id) {
            let owned = old
                .spot_user_id
                .filter(|_| old.state == EntryState::Managed);
            for id in old.tombstones.into_iter().chain(owned) {
                entry.bury(id);
            }
        }
        if let Some(id) = entry.spot_user_id.clone() {
            entry.tombstones.retain(|t| *t != id);
        }
        self.users.insert(okta_user_id.clone(), entry);
    }

    /// Another Okta user takes `spot_user_id` over from `okta_user_id`: the old entry lets go
    /// of it without a tombstone, since the Spot user is not gone but someone else's now. When
    /// the entry already points at another Spot user, only a tombstone of this one is dropped.
    pub fn release(&mut self, okta_user_id: &OktaUserId, spot_user_id: &SpotUserId) {
        if let Some(entry) = self.users.get_mut(okta_user_id) {
            if entry.spot_user_id.as_ref() == Some(spot_user_id) {
                entry.state = EntryState::Deleted;
                entry.spot_user_id = None;
                entry.updated_at = chrono::Utc::now();
            }
            entry.tombstones.retain(|t| t != spot_user_id);
        }
    }

    /// Every Spot user id [`Ledger::has_owned_spot_user`] answers yes for, at once.
    pub fn owned_spot_user_ids(&self) -> rustc_hash::FxHashSet<&str> {
        self.users
            .values()
            .flat_map(|e| {
                let live = e
                    .spot_user_id
                    .as_deref()
                    .filter(|_| e.state != EntryState::Deleted);
                live.into_iter()
                    .chain(e.tombstones.iter().map(SpotUserId::as_str))
            })
            .collect()
    }

    /// Has the ledger ever owned this Spot user id: does an entry own it now (not deleted), or
    /// hold it as a tombstone?
    pub fn has_owned_spot_user(&self, spot_user_id: &SpotUserId) -> bool {
        self.users.values().any(|e| {
            (e.state != EntryState::Deleted && e.spot_user_id.as_ref() == Some(spot_user_id))
                || e.tombstones.iter().any(|t| t == spot_user_id)
        })
    }
}

impl LedgerEntry {
    /// A new record, as every action records it (and `import`'s adoptions): the email
    /// normalised ([`Email`]), no tombstones, stamped now, its access taken as in line with
    /// the current model (a caller that has not brought it in line sets `access` to 0).
    /// Replace an entry with it through [`Ledger::put`].
    pub fn new(
        email: &str,
        spot_user_id: Option<SpotUserId>,
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
            access: crate::access::ACCESS_MODEL,
            origin,
            state,
            updated_at: Utc::now(),
        }
    }
}
