//! The single-instance lock: an advisory `flock` on `<state file>.lock`, next to the state
//! file, so that the daemon and a one-shot `reconcile` (or `import`, `audit --repair`,
//! `rebuild-ledger`) never apply changes at the same time.
//!
//! The holder writes who it is (pid, command, start time) into the file; a process refused
//! the lock reads that back and names the holder in its error. The lock is the kernel's: it
//! goes away with the process, so a crash never leaves a stale lock (the file's contents may
//! stay, but they are only read while someone holds the lock). A separate file is needed
//! because the state file itself is replaced by rename on every save.
//!
//! `plan`, `reconcile --dry-run`, `check`, `explain` and `audit` (without `--repair`) do not
//! take it: they write nothing, and
//! [`crate::ledger::LedgerStore::load`] reads the state file and its journal as one
//! consistent state even while a save replaces the file.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil::{open, owner_only};
use crate::Error;

/// Who holds the lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    pub started_at: String,
}

/// A held lock; released when dropped (or when the process exits, however it exits).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// The lock file for a state file: `state.json` -> `state.json.lock`.
    pub fn path_for(state_file: &Path) -> PathBuf {
        let mut name = state_file
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "state.json".into());
        name.push(".lock");
        state_file.with_file_name(name)
    }

    /// Takes the lock for `command` (`run`, `reconcile`, …) without waiting. Refused with
    /// [`Error::Locked`] naming the holder when another process has it.
    pub fn acquire(state_file: &Path, command: &str) -> Result<InstanceLock, Error> {
        let path = Self::path_for(state_file);
        let io_error = |what: &str, e: std::io::Error| Error::Ledger {
            path: path.clone(),
            detail: format!(
                "cannot {what} the lock file: {e}; the service user must be able to write the \
                 state file's directory"
            ),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error("create the directory of", e))?;
        }
        let mut file = open(owner_only().read(true).truncate(false), &path)
            .map_err(|e| io_error("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match serde_json::from_str::<Holder>(text.trim()) {
                    Ok(h) => format!(
                        "pid {} (`okta-spot-sync {}`, started {})",
                        h.pid, h.command, h.started_at
                    ),
                    Err(_) => "another process".to_string(),
                };
                return Err(Error::Locked(format!(
                    "another okta-spot-sync is already running against {}: {holder} holds {}; \
                     wait for it to finish, or stop it first (the service: systemctl stop \
                     okta-spot-sync)",
                    state_file.display(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(io_error("lock", e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            command: command.to_string(),
            started_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        let line = serde_json::to_string(&holder).unwrap_or_default();
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_data()
        };
        write(&mut file).map_err(|e| io_error("write", e))?;
        Ok(InstanceLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_sits_next_to_the_state_file() {
        assert_eq!(
            InstanceLock::path_for(Path::new("/var/lib/x/state.json")),
            PathBuf::from("/var/lib/x/state.json.lock")
        );
    }

    #[test]
    fn second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("sub/state.json");
        let first = InstanceLock::acquire(&state, "run").unwrap();
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just as another process would.
        let err = InstanceLock::acquire(&state, "reconcile")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("`okta-spot-sync run`"), "{err}");
        drop(first);
        let again = InstanceLock::acquire(&state, "reconcile").unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        let holder: Holder = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(holder.command, "reconcile");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_lock_file_is_refused_and_its_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"precious").unwrap();
        let lock = InstanceLock::path_for(&state);
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let err = InstanceLock::acquire(&state, "reconcile")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&lock.display().to_string()), "{err}");
        assert!(err.contains("remove the link"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }
}
