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
//! [`LedgerWriter`] (group commit), stated once, there.
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
//!
//! Three rooms: `model` (the data and the only ways an entry changes), `store` (the file, the
//! journal, loading and saving) and `writer` (the ledger in memory and the durability
//! contract); `unknown_fields` keeps what this build does not know.

mod model;
mod store;
mod unknown_fields;
mod writer;

pub(crate) use model::is_zero;
pub use model::{
    DeleteMark, EntryState, EventsState, LastRun, Ledger, LedgerEntry, LogCursor, Origin,
    RetryUser, Watch, DELETE_WINDOW, LEDGER_VERSION,
};
#[cfg(test)]
pub(crate) use store::LOAD_ATTEMPTS;
pub use store::{journal_line, LedgerStore, PRETTY_MAX_USERS};
pub use writer::LedgerWriter;

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use chrono::Utc;

    use super::store::with_suffix;
    use super::*;
    use crate::model::{OktaUserId, Role, SpotUserId};

    fn entry(state: EntryState) -> LedgerEntry {
        LedgerEntry {
            email: "a@example.com".into(),
            spot_user_id: Some("u-1".into()),
            tombstones: Vec::new(),
            role: Some(Role::Viewer),
            access: crate::access::ACCESS_MODEL,
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
        ledger.retire(&"00u1".into(), None);
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
        assert!(ledger.has_owned_spot_user(&"u-1".into()));
        assert!(!ledger.has_owned_spot_user(&"u-2".into()));
    }

    fn owning(spot_user_id: Option<&str>, state: EntryState) -> LedgerEntry {
        LedgerEntry {
            spot_user_id: spot_user_id.map(SpotUserId::from),
            ..entry(state)
        }
    }

    /// Every Spot user id an entry held stays in the ledger until another entry takes it over.
    #[test]
    fn the_ledger_never_forgets_a_spot_user_it_owned() {
        let mut ledger = Ledger::default();
        ledger.put(&"00u1".into(), owning(Some("u-1"), EntryState::Managed));
        // A failed or repeated create replaces the record with a pending one: u-1 is kept.
        ledger.put(&"00u1".into(), owning(None, EntryState::Pending));
        assert_eq!(ledger.users["00u1"].tombstones, ["u-1"]);
        assert!(ledger.has_owned_spot_user(&"u-1".into()));
        // The create lands on another user; then it is deleted.
        ledger.put(&"00u1".into(), owning(Some("u-2"), EntryState::Managed));
        ledger.retire(&"00u1".into(), Some(&"u-2".into()));
        assert_eq!(ledger.users["00u1"].tombstones, ["u-1", "u-2"]);
        assert_eq!(ledger.users["00u1"].spot_user_id, None);
        let owned = ledger.owned_spot_user_ids();
        assert_eq!(owned, ["u-1", "u-2"].into_iter().collect());
        assert!(owned
            .iter()
            .all(|id| ledger.has_owned_spot_user(&SpotUserId::new(*id))));
        // Taking u-1 back (it was still listed) makes it owned again, not a tombstone.
        ledger.put(&"00u1".into(), owning(Some("u-1"), EntryState::Managed));
        assert_eq!(ledger.users["00u1"].tombstones, ["u-2"]);
        // Another Okta user takes u-1 over: only then does 00u1 let go of it, with no tombstone.
        ledger.release(&"00u1".into(), &"u-1".into());
        ledger.release(&"00u1".into(), &"u-2".into());
        assert!(ledger.users["00u1"].tombstones.is_empty());
        assert_eq!(ledger.users["00u1"].state, EntryState::Deleted);
    }

    #[test]
    fn tombstones_round_trip_and_an_old_file_without_them_loads() {
        let (_dir, store) = store();
        let mut ledger = Ledger::default();
        ledger.put(&"00u1".into(), owning(Some("u-1"), EntryState::Managed));
        ledger.retire(&"00u1".into(), None);
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
        journal_line(&ledger, &[&OktaUserId::new(id)], seq)
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
                    ledger
                        .users
                        .insert(id.as_str().into(), entry(EntryState::Managed));
                    if seq % SAVE_EVERY != 0 {
                        store
                            .append_journal(&journal_line(&ledger, &[&id.as_str().into()], seq))
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
