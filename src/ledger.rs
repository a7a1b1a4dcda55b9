//! The ledger: the small JSON state file that says which Spot users belong to this tool.
//!
//! It is not the authority on who exists — every cycle re-reads both APIs — only on ownership.
//! This module owns the file format, loading (a corrupt file is an error that keeps the file)
//! and atomic saving (temp file, fsync, rename, fsync of the directory, mode 0600). It must
//! never decide what to do with a user; that is `plan`'s job. When a change must be durable
//! (a `pending` record before its create) and which results may share a save is the
//! contract of [`crate::apply::LedgerWriter`] (group commit).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil::owner_only;
use crate::model::Role;
use crate::Error;

/// The format version written by this build.
pub const LEDGER_VERSION: u32 = 1;

/// Above this many users the state file is written without indentation.
pub const PRETTY_MAX_USERS: usize = 10_000;

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
    pub spot_user_id: Option<String>,
    /// The role whose Spot mapping is known to be applied; `None` until it is.
    pub role: Option<Role>,
    pub origin: Origin,
    pub state: EntryState,
    #[serde(serialize_with = "serialize_timestamp")]
    pub updated_at: DateTime<Utc>,
}

/// Writes a timestamp exactly as chrono's own `Serialize` does (RFC 3339 in UTC with `Z`, and
/// as many fractional digits as the time has), but as one string: chrono's goes through
/// `collect_str`, which serde_json escapes one character at a time, and that was a third of
/// the time spent encoding the state file, which `apply` saves before every batch of creates.
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

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u32,
    /// Keyed by Okta user id.
    pub users: BTreeMap<String, LedgerEntry>,
    /// The last `reconcile` cycle that changed something (or created the file). A cycle with
    /// nothing to do does not rewrite the file: at 100,000 users that would be an 18 MB write
    /// and fsync every cycle to record only a time; logs and `/metrics` say when cycles ran.
    pub last_run: Option<LastRun>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            version: LEDGER_VERSION,
            users: BTreeMap::new(),
            last_run: None,
        }
    }
}

impl Ledger {
    /// Users whose Spot user this tool currently owns (managed or mid-create).
    pub fn managed_count(&self) -> usize {
        self.users
            .values()
            .filter(|e| matches!(e.state, EntryState::Managed | EntryState::Pending))
            .count()
    }

    /// Records that `okta_user_id` no longer has a Spot user. With `only_if_owning`, only when
    /// the entry still points at that Spot user (a concurrent action may have moved it on).
    pub fn retire(&mut self, okta_user_id: &str, only_if_owning: Option<&str>) {
        if let Some(entry) = self.users.get_mut(okta_user_id) {
            if only_if_owning.is_none_or(|id| entry.spot_user_id.as_deref() == Some(id)) {
                entry.state = EntryState::Deleted;
                entry.spot_user_id = None;
                entry.updated_at = chrono::Utc::now();
            }
        }
    }

    /// Does any live entry own this Spot user id?
    pub fn owns_spot_user(&self, spot_user_id: &str) -> bool {
        self.users.values().any(|e| {
            e.state != EntryState::Deleted && e.spot_user_id.as_deref() == Some(spot_user_id)
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

    /// Loads the ledger. A missing file is an empty ledger (first run); anything unreadable or
    /// unparsable is an error and the file is left exactly as it is.
    pub fn load(&self) -> Result<Ledger, Error> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ledger::default()),
            Err(e) => {
                return Err(self.error(format!(
                    "cannot read it: {e}; check the file's owner and mode (the service user must be able to read and write it)"
                )))
            }
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
        Ok(ledger)
    }

    /// Writes the ledger atomically: a crash leaves either the old or the new file, never a mix.
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
    /// the directory, mode 0600). Callers must not run two of these at once on one path.
    pub fn write_encoded(&self, bytes: &[u8]) -> Result<(), Error> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
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
            let mut file = owner_only().truncate(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &self.path)?;
            #[cfg(unix)]
            File::open(&dir)?.sync_all()?;
            Ok(())
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
        assert!(ledger.owns_spot_user("u-1"));
        assert!(!ledger.owns_spot_user("u-2"));
    }
}
