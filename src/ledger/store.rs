//! The state file on disk: loading (a corrupt file is an error that keeps the file; one
//! consistent state even while another process saves), atomic whole-file saves (temp file,
//! fsync, rename, fsync of the directory, mode 0600, never through a symbolic link), the journal
//! of single-user changes and its replay, and moving the files aside for `rebuild-ledger`.
//!
//! It owns bytes and files only: it must never decide what to do with a user, and when a change
//! must be durable is the writer's contract (`ledger/writer.rs`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{DeleteMark, EventsState, Ledger, LedgerEntry, LEDGER_VERSION};
use crate::fsutil::{open, owner_only, read_only};
use crate::model::OktaUserId;
use crate::Error;

/// Above this many users the state file is written without indentation.
pub const PRETTY_MAX_USERS: usize = 10_000;

/// How many times [`LedgerStore::load`] starts over when a save replaces the file under it.
/// A daemon saves once per cycle, so even a reader starved of CPU needs two or three; more than
/// this means something else is rewriting the file.
pub(crate) const LOAD_ATTEMPTS: usize = 64;

/// What tells two files at one path apart: a save renames a new file (a new inode) into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileIdentity {
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
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
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

/// One line of the journal: change `seq`, as the whole entries of the users it touched after
/// it (`None`: the entry was removed). One line per change, so a change to two users (an
/// adoption that retires a previous owner) is on disk entirely or not at all; whole entries
/// rather than deltas, so replaying a record twice is harmless.
#[derive(Debug, Serialize, Deserialize)]
struct JournalRecord {
    seq: u64,
    #[serde(default)]
    users: BTreeMap<OktaUserId, Option<LedgerEntry>>,
    /// The ledger's top-level state after the change, whole (written by
    /// [`LedgerWriter::record_state`](super::LedgerWriter::record_state)): events mode's
    /// position and the rolling hour of deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<TopLevel>,
}

/// The small top-level parts of the ledger a journal record can carry.
#[derive(Debug, Serialize, Deserialize)]
struct TopLevel {
    #[serde(default)]
    events: EventsState,
    #[serde(default)]
    recent_deletes: Vec<DeleteMark>,
}

/// The journal line (with its newline) for change `seq`, which touched `okta_user_ids` in
/// `ledger`.
pub fn journal_line(ledger: &Ledger, okta_user_ids: &[&OktaUserId], seq: u64) -> Vec<u8> {
    encode_record(JournalRecord {
        seq,
        users: okta_user_ids
            .iter()
            .map(|&id| (id.clone(), ledger.users.get(id).cloned()))
            .collect(),
        state: None,
    })
}

/// The journal line (with its newline) for change `seq`, which changed the ledger's top-level
/// state (events mode's position, the rolling hour of deletes): that state, whole.
pub fn state_journal_line(ledger: &Ledger, seq: u64) -> Vec<u8> {
    encode_record(JournalRecord {
        seq,
        users: BTreeMap::new(),
        state: Some(TopLevel {
            events: ledger.events.clone(),
            recent_deletes: ledger.recent_deletes.clone(),
        }),
    })
}

fn encode_record(record: JournalRecord) -> Vec<u8> {
    let mut line = serde_json::to_vec(&record).expect("a journal record always serialises");
    line.push(b'\n');
    line
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

    /// Only the events part of the state ([`Ledger::events`], journal included), without
    /// building the ledger: the daemon reads it once at start, and at 100,000 users the whole
    /// ledger is some 60 MB the daemon would then hold in freed memory until its first cycle.
    pub fn load_events(&self) -> Result<EventsState, Error> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            version: u32,
            #[serde(default)]
            journal_seq: u64,
            #[serde(default)]
            events: EventsState,
        }
        #[derive(Deserialize)]
        struct StateRecord {
            seq: u64,
            #[serde(default)]
            state: Option<TopLevel>,
        }
        let read = |path: &Path| -> std::io::Result<Option<Vec<u8>>> {
            let mut bytes = Vec::new();
            match open(&read_only(), path) {
                Ok(mut file) => {
                    file.read_to_end(&mut bytes)?;
                    Ok(Some(bytes))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        let head = match read(&self.path).map_err(|e| self.unreadable(e))? {
            None => Head {
                version: LEDGER_VERSION,
                journal_seq: 0,
                events: EventsState::default(),
            },
            Some(bytes) => serde_json::from_slice::<Head>(&bytes)
                .map_err(|e| self.error(format!("it is not a valid state file ({e})")))?,
        };
        if head.version > LEDGER_VERSION {
            return Err(self.error(format!(
                "it was written by a newer okta-spot-sync (format version {}, this build reads {}); upgrade this binary",
                head.version, LEDGER_VERSION
            )));
        }
        let mut events = head.events;
        let journal =
            read(&self.journal_path()).map_err(|e| self.journal_error(cannot_read(&e)))?;
        if let Some(bytes) = journal {
            // As `replay_journal`: only complete lines, only records newer than the file.
            let complete = bytes
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(&bytes[..0], |end| &bytes[..=end]);
            let mut seq = head.journal_seq;
            for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let record: StateRecord = serde_json::from_slice(line).map_err(|e| {
                    self.journal_error(format!("a line is not a valid journal record ({e})"))
                })?;
                if record.seq <= seq {
                    continue;
                }
                seq = record.seq;
                if let Some(state) = record.state {
                    events = state.events;
                }
            }
        }
        Ok(events)
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
            if let Some(state) = record.state {
                ledger.events = state.events;
                ledger.recent_deletes = state.recent_deletes;
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
