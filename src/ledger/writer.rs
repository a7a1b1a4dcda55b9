//! The ledger in memory and the discipline of saving it: group commits of journal appends,
//! whole-file saves, and the latch that stops claiming durability after a failed append. The
//! durability contract is on [`LedgerWriter`].
//!
//! It must never decide what to change (callers pass the change) nor talk to an API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::model::Ledger;
use super::store::{journal_line, state_journal_line, LedgerStore};
use crate::model::OktaUserId;
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
    pub fn record(&self, okta_user_ids: &[&OktaUserId], change: impl FnOnce(&mut Ledger)) -> u64 {
        let mut memory = self.lock();
        change(&mut memory.ledger);
        let seq = self.applied.fetch_add(1, Ordering::SeqCst) + 1;
        if self.persist {
            let line = journal_line(&memory.ledger, okta_user_ids, seq);
            memory.unsynced.extend_from_slice(&line);
        }
        seq
    }

    /// Applies `change`, which must touch only the ledger's top-level state
    /// ([`Ledger::events`], [`Ledger::recent_deletes`]: that is what the journal records), in
    /// memory only, like [`LedgerWriter::record`].
    pub fn record_state(&self, change: impl FnOnce(&mut Ledger)) -> u64 {
        let mut memory = self.lock();
        change(&mut memory.ledger);
        let seq = self.applied.fetch_add(1, Ordering::SeqCst) + 1;
        if self.persist {
            let line = state_journal_line(&memory.ledger, seq);
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
        okta_user_ids: &[&OktaUserId],
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

    /// [`Ledger::managed_count`] of the ledger in memory, without copying it.
    pub fn managed_count(&self) -> usize {
        self.lock().ledger.managed_count()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{EntryState, LedgerEntry, Origin};

    fn pending(email: &str) -> LedgerEntry {
        LedgerEntry::new(email, None, None, Origin::Created, EntryState::Pending)
    }

    fn store() -> (tempfile::TempDir, LedgerStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LedgerStore::new(dir.path().join("state.json"));
        (dir, store)
    }

    /// Events mode's position and the rolling hour of deletes go to the journal like an entry
    /// does, survive a crash, and a later entry's record does not undo them.
    #[tokio::test]
    async fn the_top_level_state_is_journaled_and_replayed() {
        use crate::ledger::{EventsState, LogCursor};
        let (_dir, store) = store();
        let now = chrono::Utc::now();
        let events = EventsState {
            cursor: Some(LogCursor {
                after: Some("1700000000000_7".into()),
                since: now,
                polled_at: now,
            }),
            retry: vec![crate::ledger::RetryUser {
                okta_user_id: "00ub".into(),
                attempts: 1,
            }],
            watch: vec![crate::ledger::Watch {
                okta_user_id: "00uc".into(),
                spot_user_id: "u-c".into(),
                checks_left: 2,
            }],
            listed: 7,
        };
        let first = LedgerWriter::new(store.clone(), store.load().unwrap());
        first.record_state(|l| {
            l.events = events.clone();
            l.note_deletes(now, 3);
        });
        first
            .update_durable(&[&"00ua".into()], |l| {
                l.users.insert("00ua".into(), pending("a@example.com"));
            })
            .await
            .unwrap();
        drop(first); // a crash: journal only
        let loaded = store.load().unwrap();
        assert_eq!(loaded.events, events);
        // The daemon's light read of the events part agrees.
        assert_eq!(store.load_events().unwrap(), events);
        assert_eq!(loaded.deletes_in_window(now), 3);
        assert!(loaded.users.contains_key("00ua"));
        // An hour later the deletes have left the window.
        assert_eq!(
            loaded.deletes_in_window(now + chrono::TimeDelta::minutes(61)),
            0
        );
        // A whole-file save keeps them too.
        let second = LedgerWriter::new(store.clone(), loaded);
        second.update(|_| {}).unwrap();
        let saved = store.load().unwrap();
        assert_eq!(store.load_events().unwrap(), events);
        assert_eq!((saved.deletes_in_window(now), saved.events), (3, events));
    }

    #[tokio::test]
    async fn a_durable_change_survives_a_crash_and_numbering_continues_across_runs() {
        let (_dir, store) = store();
        let first = LedgerWriter::new(store.clone(), store.load().unwrap());
        first
            .update_durable(&[&"00ua".into()], |l| {
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
        second.record(&[&"00ua".into()], |l| l.retire(&"00ua".into(), None));
        second.record(&[&"00ub".into()], |l| {
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
                    let id = OktaUserId::new(format!("00u{task:02}{step:03}"));
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

    #[tokio::test]
    async fn a_change_recorded_but_not_flushed_is_not_on_disk() {
        let (_dir, store) = store();
        let writer = LedgerWriter::new(store.clone(), Ledger::default());
        writer.record(&[&"00ua".into()], |l| {
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
            .update_durable(&[&"00ua".into()], |l| {
                l.users.insert("00ua".into(), pending("a@example.com"));
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("state.json.journal"), "{err}");
        // The disk recovers, but the lost line is not in it: a later save must not claim it.
        std::fs::remove_dir(store.journal_path()).unwrap();
        let err = writer
            .update_durable(&[&"00ub".into()], |l| {
                l.users.insert("00ub".into(), pending("b@example.com"));
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("earlier append"), "{err}");
        assert!(writer.flush().await.is_err());
    }
}
