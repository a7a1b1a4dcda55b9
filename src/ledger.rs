//! The ledger: the small JSON state file that says which Spot users belong to this tool.
//!
//! It is not the authority on who exists — every cycle re-reads both APIs — only on ownership,
//! and it never forgets a Spot user it owned: an entry keeps the ids of the Spot users it let go
//! of as tombstones (the invariant is on [`Ledger`]; entries are replaced only through
//! [`Ledger::put`], [`Ledger::retire`] and [`Ledger::release`]).
//! This module owns the file format, loading (a corrupt file is an error that keeps the file)
//! and atomic saving (temp file, fsync, rename, fsync of the directory, mode 0600; no file is
//! read or written through a symbolic link, see [`crate::fsutil`]). Fields this build does
//! not know survive a save (`ledger/unknown_fields.rs`). It must never decide what to do
//! with a user; that is `plan`'s job. When a change must be durable (a `pending` record
//! before its create) and which results may share a save is the contract of
//! [`crate::apply::LedgerWriter`] (group commit).
//!
//! Between two saves of the whole file, changes to single users are appended to a journal
//! beside it (`<state file>.journal`, one JSON record per line, fsync'd): at 100,000 users the
//! file is 18 MB, and rewriting it before every batch of creates held creates to 78 % of
//! Spot's rate. [`LedgerStore::load`] replays the journal over the file. Each record carries a
//! sequence number and the file says the last one it includes ([`Ledger::journal_seq`]), so a
//! journal left behind by a crash between a save and the journal's removal is skipped, not
//! replayed over newer data. A torn last line (a crash mid-append) was never acknowledged and
//! is ignored; a bad line before the last is an error that keeps both files. A load is one
//! consistent state even while another process saves (it starts over when the file was
//! replaced under it).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil::{open, owner_only, read_only};
use crate::model::Role;
use crate::Error;

mod unknown_fields;

/// The format version written by this build.
pub const LEDGER_VERSION: u32 = 1;

/// Above this many users the state file is written without indentation.
pub const PRETTY_MAX_USERS: usize = 10_000;

/// How many times [`LedgerStore::load`] starts over when a save replaces the file under it.
/// A daemon saves once per cycle, so even a reader starved of CPU needs two or three; more than
/// this means something else is rewriting the file.
pub(crate) const LOAD_ATTEMPTS: usize = 64;

/// What tells two files at one path apart: a save renames a new file (a new inode) into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(metadata: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// `path` with `suffix` added to its file name (`state.json` → `state.json.journal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The detail of an error reading the state file or its journal.
fn cannot_read(e: &std::io::Error) -> String {
    format!(
        "cannot read it: {e}; check the file's owner and mode (the service user must be able to read and write it)"
    )
}

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
    pub spot_user_id: Option<String>,
    /// Tombstones: Spot users this Okta user owned before and let go of (deleted, replaced after
    /// an email change, or replaced by a pending create). See [`Ledger`] for the invariant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tombstones: Vec<String>,
    /// The role whose Spot mapping is known to be applied; `None` until it is.
    pub role: Option<Role>,
    pub origin: Origin,
    pub state: EntryState,
    #[serde(serialize_with = "serialize_timestamp")]
    pub updated_at: DateTime<Utc>,
}

impl LedgerEntry {
    /// Keeps `spot_user_id` as a tombstone (once).
    fn bury(&mut self, spot_user_id: String) {
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
    pub users: BTreeMap<String, LedgerEntry>,
    /// The last `reconcile` cycle that changed something (or created the file). A cycle with
    /// nothing to do does not rewrite the file: at 100,000 users that would be an 18 MB write
    /// and fsync every cycle to record only a time; logs and `/metrics` say when cycles ran.
    pub last_run: Option<LastRun>,
    /// The sequence number of the last journal record this file includes (0: none). On load,
    /// journal records up to it are skipped.
    pub journal_seq: u64,
    /// Top-level fields this build does not know (a newer version wrote them), written back
    /// as they were read.
    pub unknown: serde_json::Map<String, serde_json::Value>,
    /// The same for users' entries, by Okta user id; an entry's go when the entry is removed.
    pub unknown_in_users: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            version: LEDGER_VERSION,
            users: BTreeMap::new(),
            last_run: None,
            journal_seq: 0,
            unknown: Default::default(),
            unknown_in_users: BTreeMap::new(),
        }
    }
}

/// One line of the journal: change `seq`, as the whole entries of the users it touched after
/// it (`None`: the entry was removed). One line per change, so a change to two users (an
/// adoption that retires a previous owner) is on disk entirely or not at all; whole entries
/// rather than deltas, so replaying a record twice is harmless.
#[derive(Debug, Serialize, Deserialize)]
struct JournalRecord {
    seq: u64,
    users: BTreeMap<String, Option<LedgerEntry>>,
}

/// The journal line (with its newline) for change `seq`, which touched `okta_user_ids` in
/// `ledger`.
pub fn journal_line(ledger: &Ledger, okta_user_ids: &[&str], seq: u64) -> Vec<u8> {
    let record = JournalRecord {
        seq,
        users: okta_user_ids
            .iter()
            .map(|&id| (id.to_string(), ledger.users.get(id).cloned()))
            .collect(),
    };
    let mut line = serde_json::to_vec(&record).expect("a journal record always serialises");
    line.push(b'\n');
    line
}

impl Ledger {
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
    pub fn retire(&mut self, okta_user_id: &str, only_if_owning: Option<&str>) {
        if let Some(entry) = self.users.get_mut(okta_user_id) {
            if only_if_owning.is_none_or(|id| entry.spot_user_id.as_deref() == Some(id)) {
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
    pub fn put(&mut self, okta_user_id: &str, mut entry: LedgerEntry) {
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
        self.users.insert(okta_user_id.to_string(), entry);
    }

    /// Another Okta user takes `spot_user_id` over from `okta_user_id`: the old entry lets go
    /// of it without a tombstone, since the Spot user is not gone but someone else's now. When
    /// the entry already points at another Spot user, only a tombstone of this one is dropped.
    pub fn release(&mut self, okta_user_id: &str, spot_user_id: &str) {
        if let Some(entry) = self.users.get_mut(okta_user_id) {
            if entry.spot_user_id.as_deref() == Some(spot_user_id) {
                entry.state = EntryState::Deleted;
                entry.spot_user_id = None;
                entry.updated_at = chrono::Utc::now();
            }
            entry.tombstones.retain(|t| t != spot_user_id);
        }
    }

    /// Has the ledger ever owned this Spot user id: does an entry own it now (not deleted), or
    /// hold it as a tombstone?
    pub fn has_owned_spot_user(&self, spot_user_id: &str) -> bool {
        self.users.values().any(|e| {
            (e.state != EntryState::Deleted && e.spot_user_id.as_deref() == Some(spot_user_id))
                || e.tombstones.iter().any(|t| t == spot_user_id)
        })
    }
}

/// Reads and writes the state file at one path.
#[derive(Debug, Clone)]
pub struct LedgerStore {
    path: PathBuf,
}

impl LedgerStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LedgerStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, detail: impl Into<String>) -> Error {
        Error::Ledger {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    /// Loads the ledger: the state file, then its journal. A missing file is an empty ledger
    /// (first run, or a first cycle that has not finished yet); anything unreadable or
    /// unparsable is an error and both files are left exactly as they are.
    ///
    /// The result is one consistent state even while another process saves (`plan`,
    /// `reconcile --dry-run` or `check` reading while the daemon runs a cycle; they take no
    /// lock because they write nothing): a save replaces the file and then
    /// removes the journal, so the old file read before it and no journal read after it would
    /// miss every change in between. When the file was replaced during the read, it starts
    /// over.
    pub fn load(&self) -> Result<Ledger, Error> {
        self.load_counting_journal().map(|(ledger, _)| ledger)
    }

    /// [`LedgerStore::load`], and how many journal records it applied over the file: the
    /// changes not yet saved whole, for `check` (records the file already includes, left by
    /// a crash just after a save, are not counted).
    pub fn load_counting_journal(&self) -> Result<(Ledger, usize), Error> {
        for _ in 0..LOAD_ATTEMPTS {
            // `_held` stays open until the check: a file closed and replaced could free its
            // inode number for the next save's file, which would then look unchanged.
            let (mut ledger, read, _held) = self.load_file()?;
            let replayed = self.replay_journal(&mut ledger)?;
            if self.file_identity()? == read {
                return Ok((ledger, replayed));
            }
        }
        Err(self.error(format!(
            "it was replaced {LOAD_ATTEMPTS} times while being read; another process is saving it \
             continuously. Check that only one okta-spot-sync uses this state file"
        )))
    }

    /// Which file is at the state file's path now (None: none), to tell a replaced file.
    fn file_identity(&self) -> Result<Option<FileIdentity>, Error> {
        match fs::metadata(&self.path) {
            Ok(metadata) => Ok(Some(FileIdentity::of(&metadata))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.unreadable(e)),
        }
    }

    fn unreadable(&self, e: std::io::Error) -> Error {
        self.error(cannot_read(&e))
    }

    /// The state file alone, without its journal, which file that was, and the file still open.
    fn load_file(&self) -> Result<(Ledger, Option<FileIdentity>, Option<File>), Error> {
        let read = || -> std::io::Result<(Vec<u8>, FileIdentity, File)> {
            let mut file = open(&read_only(), &self.path)?;
            let identity = FileIdentity::of(&file.metadata()?);
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok((bytes, identity, file))
        };
        let (bytes, identity, file) = match read() {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Ledger::default(), None, None))
            }
            Err(e) => return Err(self.unreadable(e)),
        };
        let ledger: Ledger = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(format!(
                "it is not a valid state file ({e}); it was left untouched. Restore it from a backup, or run \
                 `okta-spot-sync rebuild-ledger`: it moves the file aside and adopts only the Spot users that \
                 match users assigned in Okta now (Spot users unassigned in the meantime are left alone, not deleted)"
            ))
        })?;
        if ledger.version > LEDGER_VERSION {
            return Err(self.error(format!(
                "it was written by a newer okta-spot-sync (format version {}, this build reads {}); upgrade this binary",
                ledger.version, LEDGER_VERSION
            )));
        }
        Ok((ledger, Some(identity), Some(file)))
    }

    /// `<state file>.journal`: single-user changes since the file was last saved whole.
    pub fn journal_path(&self) -> PathBuf {
        with_suffix(&self.path, ".journal")
    }

    fn journal_error(&self, detail: impl Into<String>) -> Error {
        Error::Ledger {
            path: self.journal_path(),
            detail: detail.into(),
        }
    }

    /// Applies the journal's records newer than `ledger.journal_seq`, in order; returns how
    /// many.
    fn replay_journal(&self, ledger: &mut Ledger) -> Result<usize, Error> {
        let read = |path: &Path| -> std::io::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            open(&read_only(), path)?.read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        let bytes = match read(&self.journal_path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.journal_error(cannot_read(&e))),
        };
        // Everything after the last newline is a torn append: never acknowledged, so dropped.
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&bytes[..0], |end| &bytes[..=end]);
        let mut replayed = 0;
        for (index, line) in complete.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let record: JournalRecord = serde_json::from_slice(line).map_err(|e| {
                self.journal_error(format!(
                    "line {} is not a valid journal record ({e}); it and the state file were left untouched. \
                     Restore both from a backup, or run `okta-spot-sync rebuild-ledger`",
                    index + 1
                ))
            })?;
            if record.seq <= ledger.journal_seq {
                continue;
            }
            for (okta_user_id, entry) in record.users {
                match entry {
                    Some(entry) => ledger.users.insert(okta_user_id, entry),
                    None => ledger.users.remove(&okta_user_id),
                };
            }
            ledger.journal_seq = record.seq;
            replayed += 1;
        }
        Ok(replayed)
    }

    /// Appends journal lines and returns once they are on disk (fdatasync; the directory too
    /// when the journal was created by this call). A torn line left by a crash is cut off
    /// first, so that it never ends up in the middle of the journal.
    pub fn append_journal(&self, lines: &[u8]) -> Result<(), Error> {
        let path = self.journal_path();
        let append = || -> std::io::Result<()> {
            let open_journal = || open(owner_only().read(true).truncate(false), &path);
            let mut file = match open_journal() {
                // The first append of a first run may come before any save made the directory.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    fs::create_dir_all(self.dir())?;
                    open_journal()?
                }
                opened => opened?,
            };
            let len = file.metadata()?.len();
            if len > 0 {
                let mut last = [0u8];
                file.seek(SeekFrom::Start(len - 1))?;
                file.read_exact(&mut last)?;
                if last[0] != b'\n' {
                    let mut existing = Vec::new();
                    file.seek(SeekFrom::Start(0))?;
                    file.read_to_end(&mut existing)?;
                    let keep = existing
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    file.set_len(keep as u64)?;
                }
            }
            file.seek(SeekFrom::End(0))?;
            file.write_all(lines)?;
            file.sync_data()?;
            #[cfg(unix)]
            if len == 0 {
                File::open(self.dir())?.sync_all()?;
            }
            Ok(())
        };
        append().map_err(|e| self.journal_error(format!("cannot append to it: {e}")))
    }

    /// Removes the journal once the state file includes all of it. Not fsync'd: a journal
    /// that comes back after a crash holds only records the file already has, which
    /// [`LedgerStore::load`] skips.
    fn remove_journal(&self) -> std::io::Result<()> {
        match fs::remove_file(self.journal_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves the state file and its journal aside (`<name>.bak-<suffix>`, and
    /// `<name>.journal.bak-<suffix>`), for a fresh ledger; returns the state file's new path,
    /// if there was one. A backup is never overwritten: when either name is taken (a second
    /// `rebuild-ledger` within the same second), `-2`, `-3`, … is added to the suffix.
    pub fn move_aside(&self, suffix: &str) -> Result<Option<PathBuf>, Error> {
        let journal = self.journal_path();
        let present = |path: &Path| fs::symlink_metadata(path).is_ok();
        let (file, journal) = (
            present(&self.path).then_some(self.path.clone()),
            present(&journal).then_some(journal),
        );
        let moving: Vec<&PathBuf> = journal.iter().chain(file.iter()).collect();
        if moving.is_empty() {
            return Ok(None);
        }
        let failed = |e: std::io::Error| self.error(format!("cannot move it aside: {e}"));
        for attempt in 1..=1000 {
            let suffix = match attempt {
                1 => format!(".bak-{suffix}"),
                n => format!(".bak-{suffix}-{n}"),
            };
            // A hard link to a new name fails if that name exists, where a rename would replace
            // it: claim every backup name first, then drop the originals.
            let mut claimed: Vec<PathBuf> = Vec::new();
            let mut taken = false;
            for path in &moving {
                let aside = with_suffix(path, &suffix);
                match fs::hard_link(path, &aside) {
                    Ok(()) => claimed.push(aside),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        taken = true;
                        break;
                    }
                    Err(e) => {
                        claimed.iter().for_each(|c| drop(fs::remove_file(c)));
                        return Err(failed(e));
                    }
                }
            }
            if taken {
                claimed.iter().for_each(|c| drop(fs::remove_file(c)));
                continue;
            }
            for path in &moving {
                fs::remove_file(path).map_err(failed)?;
            }
            return Ok(file.map(|f| with_suffix(&f, &suffix)));
        }
        Err(failed(std::io::Error::other(format!(
            "1000 backups named {}.bak-{suffix}… exist already; move some of them away",
            self.path.display()
        ))))
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Writes the ledger atomically: a crash leaves either the old or the new file, never a mix.
    /// `ledger` must include every journal record (it was loaded, and all changes since are in
    /// it): the journal is removed after the write.
    pub fn save(&self, ledger: &Ledger) -> Result<(), Error> {
        self.write_encoded(&self.encode(ledger)?)
    }

    /// The file's bytes for `ledger` (what [`LedgerStore::save`] writes): indented for people
    /// up to [`PRETTY_MAX_USERS`] users, compact above (40 % smaller and faster to write and
    /// read; the file is saved at least once per cycle that changes something).
    pub fn encode(&self, ledger: &Ledger) -> Result<Vec<u8>, Error> {
        // An indented entry is about 250 bytes: reserving that much saves the copies of a
        // buffer grown by doubling.
        let mut bytes = Vec::with_capacity(256 * (ledger.users.len() + 1));
        let encoded = if ledger.users.len() <= PRETTY_MAX_USERS {
            serde_json::to_writer_pretty(&mut bytes, ledger)
        } else {
            serde_json::to_writer(&mut bytes, ledger)
        };
        encoded.map_err(|e| self.error(format!("cannot serialise: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes bytes from [`LedgerStore::encode`] atomically (temp file, fsync, rename, fsync of
    /// the directory, mode 0600), then removes the journal, which they include. Callers must
    /// not run two of these, or one and [`LedgerStore::append_journal`], at once on one path.
    pub fn write_encoded(&self, bytes: &[u8]) -> Result<(), Error> {
        let dir = self.dir();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| {
                self.error(format!(
                    "cannot create its directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state.json".into());
        let tmp = dir.join(format!(".{file_name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = open(owner_only().truncate(true), &tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &self.path)?;
            #[cfg(unix)]
            File::open(&dir)?.sync_all()?;
            self.remove_journal()
        };
        write().map_err(|e| self.error(format!("cannot write it: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: EntryState) -> LedgerEntry {
        LedgerEntry {
            email: "a@example.com".into(),
            spot_user_id: Some("u-1".into()),
            tombstones: Vec::new(),
            role: Some(Role::Viewer),
            origin: Origin::Created,
            state,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        use chrono::TimeZone;
        let whole = Utc.with_ymd_and_hms(2026, 11, 25, 5, 6, 7).unwrap();
        for at in [
            whole,
            whole + chrono::Duration::milliseconds(120),
            whole + chrono::Duration::nanoseconds(123_456_789),
            whole + chrono::Duration::nanoseconds(1),
        ] {
            let mut e = entry(EntryState::Managed);
            e.updated_at = at;
            let ours = serde_json::to_value(&e).unwrap()["updated_at"].clone();
            assert_eq!(ours, serde_json::to_value(at).unwrap(), "{at:?}");
            let back: LedgerEntry =
                serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
            assert_eq!(back.updated_at, at);
        }
    }

    #[test]
    fn missing_file_is_an_empty_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::new(dir.path().join("state.json"));
        assert_eq!(store.load().unwrap(), Ledger::default());
    }

    #[test]
    fn save_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::new(dir.path().join("sub/state.json"));
        let mut ledger = Ledger::default();
        ledger
            .users
            .insert("00u1".into(), entry(EntryState::Managed));
        store.save(&ledger).unwrap();
        assert_eq!(store.load().unwrap(), ledger);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join("sub/.state.json.tmp").exists());
    }

    /// A newer version's fields survive this one's load and save (a downgrade loses nothing).
    #[test]
    fn fields_this_build_does_not_know_survive_a_save() {
        let (_dir, store) = store();
        let mut known = Ledger::default();
        known
            .users
            .insert("00u1".into(), entry(EntryState::Managed));
        known
            .users
            .insert("00u2".into(), entry(EntryState::Managed));
        let mut file = serde_json::to_value(&known).unwrap();
        file["events_cursor"] = serde_json::json!({"after": "1234", "at": "2026-11-25T06:00:00Z"});
        file["users"]["00u1"]["tombstone_until"] = serde_json::json!("2026-12-01T00:00:00Z");
        file["users"]["00u1"]["grants"] = serde_json::json!([{"policy": "p-1"}]);
        fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        fs::write(store.path(), serde_json::to_vec_pretty(&file).unwrap()).unwrap();

        let mut ledger = store.load().unwrap();
        assert_eq!(ledger.users, known.users, "the known fields load as before");
        ledger.retire("00u1", None);
        ledger.users.remove("00u2");
        ledger
            .users
            .insert("00u3".into(), entry(EntryState::Pending));
        store.save(&ledger).unwrap();

        let saved: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(saved["events_cursor"], file["events_cursor"]);
        let user = &saved["users"]["00u1"];
        assert_eq!(
            user["tombstone_until"],
            file["users"]["00u1"]["tombstone_until"]
        );
        assert_eq!(user["grants"], file["users"]["00u1"]["grants"]);
        assert_eq!(user["state"], "deleted", "the change was saved too");
        assert_eq!(saved["users"]["00u3"]["state"], "pending");
        assert_eq!(store.load().unwrap(), ledger, "and it loads back the same");
    }

    #[test]
    fn truncated_file_is_an_error_that_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = LedgerStore::new(&path);
        let mut ledger = Ledger::default();
        ledger
            .users
            .insert("00u1".into(), entry(EntryState::Managed));
        store.save(&ledger).unwrap();
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() / 2]).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("left untouched"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), &full[..full.len() / 2]);
    }

    #[test]
    fn counts_and_ownership() {
        let mut ledger = Ledger::default();
        ledger
            .users
            .insert("00u1".into(), entry(EntryState::Managed));
        ledger
            .users
            .insert("00u2".into(), entry(EntryState::Deleted));
        assert_eq!(ledger.managed_count(), 1);
        assert!(ledger.has_owned_spot_user("u-1"));
        assert!(!ledger.has_owned_spot_user("u-2"));
    }

    fn owning(spot_user_id: Option<&str>, state: EntryState) -> LedgerEntry {
        LedgerEntry {
            spot_user_id: spot_user_id.map(String::from),
            ..entry(state)
        }
    }

    /// Every Spot user id an entry held stays in the ledger until another entry takes it over.
    #[test]
    fn the_ledger_never_forgets_a_spot_user_it_owned() {
        let mut ledger = Ledger::default();
        ledger.put("00u1", owning(Some("u-1"), EntryState::Managed));
        // A failed or repeated create replaces the record with a pending one: u-1 is kept.
        ledger.put("00u1", owning(None, EntryState::Pending));
        assert_eq!(ledger.users["00u1"].tombstones, ["u-1"]);
        assert!(ledger.has_owned_spot_user("u-1"));
        // The create lands on another user; then it is deleted.
        ledger.put("00u1", owning(Some("u-2"), EntryState::Managed));
        ledger.retire("00u1", Some("u-2"));
        assert_eq!(ledger.users["00u1"].tombstones, ["u-1", "u-2"]);
        assert_eq!(ledger.users["00u1"].spot_user_id, None);
        // Taking u-1 back (it was still listed) makes it owned again, not a tombstone.
        ledger.put("00u1", owning(Some("u-1"), EntryState::Managed));
        assert_eq!(ledger.users["00u1"].tombstones, ["u-2"]);
        // Another Okta user takes u-1 over: only then does 00u1 let go of it, with no tombstone.
        ledger.release("00u1", "u-1");
        ledger.release("00u1", "u-2");
        assert!(ledger.users["00u1"].tombstones.is_empty());
        assert_eq!(ledger.users["00u1"].state, EntryState::Deleted);
    }

    #[test]
    fn tombstones_round_trip_and_an_old_file_without_them_loads() {
        let (_dir, store) = store();
        let mut ledger = Ledger::default();
        ledger.put("00u1", owning(Some("u-1"), EntryState::Managed));
        ledger.retire("00u1", None);
        store.save(&ledger).unwrap();
        assert!(fs::read_to_string(store.path())
            .unwrap()
            .contains("\"tombstones\""));
        assert_eq!(store.load().unwrap(), ledger);
        let mut old = ledger.clone();
        old.users.get_mut("00u1").unwrap().tombstones.clear();
        store.save(&old).unwrap();
        assert!(!fs::read_to_string(store.path())
            .unwrap()
            .contains("tombstones"));
        assert_eq!(store.load().unwrap(), old);
    }

    /// A store in a temp dir, and a journal line for change `seq` setting `id` to `state`
    /// (`None`: removing it).
    fn store() -> (tempfile::TempDir, LedgerStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::new(dir.path().join("state").join("state.json"));
        (dir, store)
    }

    fn line(seq: u64, id: &str, state: Option<EntryState>) -> Vec<u8> {
        let mut ledger = Ledger::default();
        if let Some(state) = state {
            ledger.users.insert(id.into(), entry(state));
        }
        journal_line(&ledger, &[id], seq)
    }

    #[test]
    fn the_journal_is_replayed_over_the_file_even_before_the_first_save() {
        let (_dir, store) = store();
        store
            .append_journal(&line(1, "00ua", Some(EntryState::Pending)))
            .unwrap();
        assert_eq!(
            store.load().unwrap().users["00ua"].state,
            EntryState::Pending
        );

        let mut ledger = store.load().unwrap();
        ledger
            .users
            .insert("00ub".into(), entry(EntryState::Managed));
        store.save(&ledger).unwrap();
        assert!(
            !store.journal_path().exists(),
            "a save includes and removes the journal"
        );
        let mut both = line(2, "00ua", Some(EntryState::Managed));
        both.extend(line(3, "00ub", None));
        store.append_journal(&both).unwrap();
        let (loaded, replayed) = store.load_counting_journal().unwrap();
        assert_eq!(loaded.users["00ua"].state, EntryState::Managed);
        assert!(!loaded.users.contains_key("00ub"));
        assert_eq!(loaded.journal_seq, 3);
        assert_eq!(replayed, 2, "both records are newer than the file");
    }

    #[test]
    fn records_the_file_already_includes_are_skipped() {
        // A crash between a save and the journal's removal leaves older records behind.
        let (_dir, store) = store();
        store
            .append_journal(&line(4, "00ua", Some(EntryState::Pending)))
            .unwrap();
        let mut ledger = Ledger::default();
        ledger
            .users
            .insert("00ua".into(), entry(EntryState::Managed));
        ledger.journal_seq = 5;
        let bytes = store.encode(&ledger).unwrap();
        fs::write(store.path(), bytes).unwrap();
        let (loaded, replayed) = store.load_counting_journal().unwrap();
        assert_eq!(loaded.users["00ua"].state, EntryState::Managed);
        assert_eq!(
            replayed, 0,
            "check must not report changes the file already has"
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off_before_the_next_append() {
        let (_dir, store) = store();
        let mut torn = line(1, "00ua", Some(EntryState::Pending));
        let partial = line(2, "00ub", Some(EntryState::Pending));
        torn.extend_from_slice(&partial[..partial.len() / 2]);
        fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        fs::write(store.journal_path(), &torn).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.users.len(), 1);
        assert_eq!(loaded.journal_seq, 1);

        store
            .append_journal(&line(2, "00uc", Some(EntryState::Managed)))
            .unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(
            loaded.users.keys().collect::<Vec<_>>(),
            ["00ua", "00uc"],
            "the torn record is gone, the new one follows the last whole one"
        );
    }

    #[test]
    fn a_bad_line_before_the_last_is_an_error_that_keeps_both_files() {
        let (_dir, store) = store();
        store.save(&Ledger::default()).unwrap();
        let mut journal = b"{\"seq\": 1, \"users\": 7}\n".to_vec();
        journal.extend(line(2, "00ua", Some(EntryState::Pending)));
        fs::write(store.journal_path(), &journal).unwrap();
        let file = fs::read(store.path()).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("state.json.journal"), "{err}");
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("rebuild-ledger"), "{err}");
        assert_eq!(fs::read(store.journal_path()).unwrap(), journal);
        assert_eq!(fs::read(store.path()).unwrap(), file);
    }

    /// `check` and `status` load while the daemon saves: a load must never see less than was
    /// on disk when it started, though a save replaces the file and removes the journal.
    #[test]
    fn a_load_during_saves_sees_everything_already_durable() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let (_dir, store) = store();
        // Fewer saves than load attempts: the reader cannot run out of them however the two
        // threads are scheduled.
        const CHANGES: u64 = 300;
        const SAVE_EVERY: u64 = 5;
        const _: () = assert!(CHANGES / SAVE_EVERY < LOAD_ATTEMPTS as u64);
        let durable = Arc::new(AtomicU64::new(0));
        let saver = {
            let (store, durable) = (store.clone(), Arc::clone(&durable));
            std::thread::spawn(move || {
                let mut ledger = Ledger::default();
                for seq in 1..=CHANGES {
                    let id = format!("00u{seq:04}");
                    ledger.users.insert(id.clone(), entry(EntryState::Managed));
                    if seq % SAVE_EVERY != 0 {
                        store
                            .append_journal(&journal_line(&ledger, &[&id], seq))
                            .unwrap();
                    } else {
                        ledger.journal_seq = seq;
                        store.save(&ledger).unwrap();
                    }
                    durable.store(seq, Ordering::SeqCst);
                }
            })
        };
        while !saver.is_finished() {
            let before = durable.load(Ordering::SeqCst);
            let loaded = store.load().unwrap();
            assert!(
                loaded.journal_seq >= before && loaded.users.len() as u64 >= before,
                "change {before} was durable, the load saw only {} users (up to {})",
                loaded.users.len(),
                loaded.journal_seq
            );
        }
        saver.join().unwrap();
        assert_eq!(store.load().unwrap().users.len() as u64, CHANGES);
    }

    /// A symbolic link at `path` to a file holding `before`, and that file.
    #[cfg(unix)]
    fn planted_link(path: &Path, before: &[u8]) -> PathBuf {
        let target = path.with_file_name("elsewhere");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&target, before).unwrap();
        std::os::unix::fs::symlink(&target, path).unwrap();
        target
    }

    #[cfg(unix)]
    fn assert_refused(err: &str, link: &Path) {
        assert!(err.contains(&link.display().to_string()), "{err}");
        assert!(
            err.contains("symbolic link") && err.contains("remove the link"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_temp_file_is_refused_and_its_target_kept() {
        let (_dir, store) = store();
        let tmp = store.path().with_file_name(".state.json.tmp");
        let target = planted_link(&tmp, b"precious");
        let err = store.save(&Ledger::default()).unwrap_err().to_string();
        assert_refused(&err, &tmp);
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        assert!(!store.path().exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_journal_is_refused_and_its_target_kept() {
        let (_dir, store) = store();
        let target = planted_link(&store.journal_path(), b"precious\n");
        let err = store
            .append_journal(&line(1, "00ua", Some(EntryState::Pending)))
            .unwrap_err()
            .to_string();
        assert_refused(&err, &store.journal_path());
        assert_eq!(fs::read(&target).unwrap(), b"precious\n");
        // Nor is it read: what a load sees is what a save would replace.
        let err = store.load().unwrap_err().to_string();
        assert_refused(&err, &store.journal_path());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_state_file_is_refused_and_its_target_kept() {
        let (_dir, store) = store();
        let original = store.encode(&Ledger::default()).unwrap();
        let target = planted_link(store.path(), &original);
        let err = store.load().unwrap_err().to_string();
        assert_refused(&err, store.path());
        assert_eq!(fs::read(&target).unwrap(), original);
    }

    #[test]
    fn moving_aside_twice_with_one_suffix_keeps_both_backups() {
        let (_dir, store) = store();
        let mut first = Ledger::default();
        first
            .users
            .insert("00u1".into(), entry(EntryState::Managed));
        store.save(&first).unwrap();
        store
            .append_journal(&line(1, "00ua", Some(EntryState::Managed)))
            .unwrap();
        let (original, original_journal) = (
            fs::read(store.path()).unwrap(),
            fs::read(store.journal_path()).unwrap(),
        );
        let aside = store.move_aside("20261125T060000Z").unwrap().unwrap();

        store.save(&Ledger::default()).unwrap();
        let second = fs::read(store.path()).unwrap();
        let again = store.move_aside("20261125T060000Z").unwrap().unwrap();
        assert_ne!(aside, again);
        assert!(
            again.ends_with("state.json.bak-20261125T060000Z-2"),
            "{again:?}"
        );
        assert_eq!(
            fs::read(&aside).unwrap(),
            original,
            "the first backup was overwritten"
        );
        assert_eq!(
            fs::read(with_suffix(&store.journal_path(), ".bak-20261125T060000Z")).unwrap(),
            original_journal
        );
        assert_eq!(fs::read(&again).unwrap(), second);
        assert!(!store.path().exists());
    }

    #[test]
    fn moving_aside_takes_the_journal_too() {
        let (_dir, store) = store();
        store.save(&Ledger::default()).unwrap();
        store
            .append_journal(&line(1, "00ua", Some(EntryState::Managed)))
            .unwrap();
        let aside = store.move_aside("20261125T060000Z").unwrap().unwrap();
        assert!(
            aside.ends_with("state.json.bak-20261125T060000Z"),
            "{aside:?}"
        );
        assert!(!store.path().exists() && !store.journal_path().exists());
        assert_eq!(store.load().unwrap(), Ledger::default());
        assert!(store.move_aside("again").unwrap().is_none());
    }
}
