//! [`MemLogStore`]: the Raft log and vote kept in memory, behind the same openraft traits as
//! the RocksDB store.
//!
//! For tests and for the deterministic simulation, which must not touch real files. A clone
//! shares the same data, so a test (or the simulator) can keep one clone as the node's "disk"
//! and hand another to a restarted node.
//!
//! Two durability models:
//! - [`MemLogStore::new`]: every write is durable as soon as it returns (unit tests).
//! - [`MemLogStore::disk`]: a simulated disk that behaves like the RocksDB store. Every write
//!   lands in a volatile image at once (what reads see, like the page cache) and in a journal
//!   of unsynced writes. The writes the RocksDB store syncs (appends, the vote, truncations,
//!   purges) wait `fsync` of (simulated) time and then make the whole journal durable, as a
//!   synced WAL write does; `committed` is journalled without a sync. [`MemLogStore::crash`]
//!   is a power loss: the volatile image goes back to the durable one plus a prefix of the
//!   journal (the writes the OS happened to flush), and the rest is lost. An append is
//!   acknowledged to openraft only after its sync, so a crash never loses an acknowledged
//!   entry. With [`MemLogStore::set_syncs_behind`] (the simulation's cells) an append returns
//!   before its sync and is acknowledged when the sync, running beside the caller, is done,
//!   as a cell's RocksDB store does.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use parking_lot::Mutex;

use crate::raft::{Entry, LogId, TypeConfig, Vote};

/// What a node would keep on disk.
#[derive(Debug, Default, Clone)]
struct MemLog {
    log: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

/// One write to the store, kept in the journal until a sync makes it durable.
#[derive(Debug, Clone)]
enum Write {
    Append(Vec<Entry>),
    Vote(Vote),
    Committed(Option<LogId>),
    /// Remove every entry from this index on.
    TruncateFrom(u64),
    Purge(LogId),
}

impl MemLog {
    fn apply(&mut self, write: &Write) {
        match write {
            Write::Append(entries) => {
                for entry in entries {
                    self.log.insert(entry.log_id.index, entry.clone());
                }
            }
            Write::Vote(vote) => self.vote = Some(*vote),
            Write::Committed(committed) => self.committed = *committed,
            Write::TruncateFrom(index) => drop(self.log.split_off(index)),
            Write::Purge(log_id) => {
                if self.last_purged < Some(*log_id) {
                    self.log = self.log.split_off(&log_id.index.saturating_add(1));
                    self.last_purged = Some(*log_id);
                }
            }
        }
    }
}

/// The simulated disk behind a crashable store.
#[derive(Debug, Default)]
struct Disk {
    /// What survived the last sync.
    durable: MemLog,
    /// Writes since the last sync, oldest first.
    journal: Vec<Write>,
    /// How long a sync takes.
    fsync: Duration,
    /// Appends return before their sync, which runs beside the caller and reports them
    /// flushed when it is done, as a cell's RocksDB store does (`AppendSync::OnSyncThread`).
    syncs_behind: bool,
    /// Test-only fault: acknowledge appends before their sync.
    #[cfg(madsim)]
    ack_before_sync: bool,
}

#[derive(Debug, Default)]
struct Shared {
    /// What reads see: the durable image plus every journalled write.
    live: MemLog,
    /// `None`: every write is durable when it returns.
    disk: Option<Disk>,
}

impl Shared {
    /// Applies `write` to the live image and, on a simulated disk, journals it.
    fn write(&mut self, write: Write) {
        self.live.apply(&write);
        if let Some(disk) = &mut self.disk {
            disk.journal.push(write);
        }
    }

    /// Makes every journalled write durable.
    fn sync(&mut self) {
        if let Some(disk) = &mut self.disk {
            for write in disk.journal.drain(..) {
                disk.durable.apply(&write);
            }
        }
    }
}

/// An in-memory Raft log store; clones share the same log.
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    inner: Arc<Mutex<Shared>>,
}

impl MemLogStore {
    /// An empty log: a node that has never run. Every write is durable when it returns.
    pub fn new() -> MemLogStore {
        MemLogStore::default()
    }

    /// An empty simulated disk: a sync takes `fsync`, and [`MemLogStore::crash`] loses what
    /// was not synced. See the module documentation.
    pub fn disk(fsync: Duration) -> MemLogStore {
        MemLogStore {
            inner: Arc::new(Mutex::new(Shared {
                live: MemLog::default(),
                disk: Some(Disk {
                    fsync,
                    ..Disk::default()
                }),
            })),
        }
    }

    /// Number of writes not synced yet (0 for a store that is not a simulated disk).
    pub fn unsynced(&self) -> usize {
        self.inner
            .lock()
            .disk
            .as_ref()
            .map_or(0, |d| d.journal.len())
    }

    /// A power loss: keeps the durable image plus the first `flushed` unsynced writes (the
    /// ones the OS wrote back by chance) and loses the others. The node using the store must
    /// be stopped first (killed); its restart then sees only this. No effect on a store that
    /// is not a simulated disk. Returns how many writes were lost.
    pub fn crash(&self, flushed: usize) -> usize {
        let mut inner = self.inner.lock();
        let Some(disk) = &mut inner.disk else {
            return 0;
        };
        let kept = flushed.min(disk.journal.len());
        let lost = disk.journal.len() - kept;
        for write in disk.journal.drain(..).take(kept) {
            disk.durable.apply(&write);
        }
        inner.live = disk_image(&inner.disk);
        lost
    }

    /// Sets how long a sync of this simulated disk takes from now on (the simulation's slow
    /// disk fault). No effect on a store that is not a simulated disk.
    pub fn set_fsync(&self, fsync: Duration) {
        if let Some(disk) = &mut self.inner.lock().disk {
            disk.fsync = fsync;
        }
    }

    /// Makes appends return before their sync, which then runs beside the caller and
    /// reports them flushed when done, as a cell's RocksDB store does
    /// (`AppendSync::OnSyncThread`). No effect on a store that is not a simulated disk.
    pub fn set_syncs_behind(&self, on: bool) {
        if let Some(disk) = &mut self.inner.lock().disk {
            disk.syncs_behind = on;
        }
    }

    /// Test-only fault for the simulation (`cfg(madsim)`): appends are written without a sync
    /// and acknowledged to openraft at once, as a store that forgot its fsync would. A crash
    /// can then lose acknowledged entries, and the simulation's checkers must notice.
    #[cfg(madsim)]
    pub fn set_ack_before_sync(&self, on: bool) {
        if let Some(disk) = &mut self.inner.lock().disk {
            disk.ack_before_sync = on;
        }
    }

    /// Index of the first entry still held, if any (for tests that check purging).
    pub fn first_index(&self) -> Option<u64> {
        self.inner.lock().live.log.keys().next().copied()
    }

    /// Index of the last entry held, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.inner.lock().live.log.keys().next_back().copied()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().live.log.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().live.log.is_empty()
    }

    /// The entry at `index`, if held (for the simulation's invariant checks).
    pub fn entry(&self, index: u64) -> Option<Entry> {
        self.inner.lock().live.log.get(&index).cloned()
    }

    /// The vote held, if any.
    pub fn vote(&self) -> Option<Vote> {
        self.inner.lock().live.vote
    }

    /// Applies `write`, then, if it is one the RocksDB store syncs, waits out the simulated
    /// fsync and makes the journal durable.
    async fn write(&self, write: Write, sync: bool) {
        let fsync = {
            let mut inner = self.inner.lock();
            inner.write(write);
            match &inner.disk {
                Some(disk) if sync => disk.fsync,
                _ => return,
            }
        };
        self.sync_after(fsync).await;
    }

    /// Waits out `fsync` and makes the journal durable. A node killed during the wait never
    /// syncs: its writes stay in the journal and a crash loses them.
    async fn sync_after(&self, fsync: Duration) {
        if !fsync.is_zero() {
            tokio::time::sleep(fsync).await;
        }
        self.inner.lock().sync();
    }

    /// The time a sync takes if appends sync beside the caller, else `None`.
    fn sync_behind(&self) -> Option<Duration> {
        self.inner
            .lock()
            .disk
            .as_ref()
            .filter(|d| d.syncs_behind)
            .map(|d| d.fsync)
    }

    #[cfg(madsim)]
    fn acks_before_sync(&self) -> bool {
        self.inner
            .lock()
            .disk
            .as_ref()
            .is_some_and(|d| d.ack_before_sync)
    }

    #[cfg(not(madsim))]
    fn acks_before_sync(&self) -> bool {
        false
    }
}

fn disk_image(disk: &Option<Disk>) -> MemLog {
    disk.as_ref().map(|d| d.durable.clone()).unwrap_or_default()
}

impl RaftLogReader<TypeConfig> for MemLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        if is_empty_range(start, end) {
            return Ok(Vec::new());
        }
        let inner = self.inner.lock();
        Ok(inner
            .live
            .log
            .range((start, end))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.lock().live.vote)
    }
}

/// `BTreeMap::range` panics on an inverted or doubly-excluded-empty range; such a request
/// simply has no entries.
fn is_empty_range(start: Bound<u64>, end: Bound<u64>) -> bool {
    let first = match start {
        Bound::Included(s) => s,
        Bound::Excluded(s) => match s.checked_add(1) {
            Some(s) => s,
            None => return true,
        },
        Bound::Unbounded => 0,
    };
    match end {
        Bound::Included(e) => e < first,
        Bound::Excluded(e) => e <= first,
        Bound::Unbounded => false,
    }
}

impl RaftLogStorage<TypeConfig> for MemLogStore {
    type LogReader = MemLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let inner = self.inner.lock();
        let last_log_id = inner
            .live
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.live.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.live.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.write(Write::Vote(*vote), true).await;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.write(Write::Committed(committed), false).await;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.lock().live.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        if self.acks_before_sync() {
            // The fault: written without a sync and acknowledged at once; only a later synced
            // write (or luck at the crash) makes these entries durable.
            self.write(Write::Append(entries), false).await;
            callback.io_completed(Ok(()));
            return Ok(());
        }
        if let Some(fsync) = self.sync_behind() {
            // Each append's sync is a task of its own, so they may finish in any order when
            // the disk's speed changes; each reports only what its sync made durable.
            self.write(Write::Append(entries), false).await;
            let store = self.clone();
            tokio::spawn(async move {
                store.sync_after(fsync).await;
                callback.io_completed(Ok(()));
            });
            return Ok(());
        }
        self.write(Write::Append(entries), true).await;
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let keep_below = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        self.write(Write::TruncateFrom(keep_below), true).await;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        if self.inner.lock().live.last_purged >= Some(log_id) {
            return Ok(());
        }
        self.write(Write::Purge(log_id), true).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;

    use super::*;
    use crate::storage::test_log_id as log_id;

    fn blank(index: u64) -> Entry {
        Entry::new_blank(log_id(index))
    }

    async fn append(store: &mut MemLogStore, indexes: std::ops::RangeInclusive<u64>) {
        store
            .append(indexes.map(blank), IOFlushed::noop())
            .await
            .expect("append");
    }

    /// A disk that syncs behind returns from `append` with the entries readable and not yet
    /// durable, reports them flushed once its sync is done, and loses them in a crash
    /// before that.
    #[tokio::test]
    async fn a_disk_that_syncs_behind_reports_appends_after_their_sync() {
        use openraft::type_config::TypeConfigExt;
        let mut store = MemLogStore::disk(Duration::from_millis(20));
        store.set_syncs_behind(true);
        let (flushed, report) = TypeConfig::oneshot::<Result<(), io::Error>>();
        store
            .append((1..=3).map(blank), IOFlushed::signal(flushed))
            .await
            .expect("append");
        assert_eq!(store.len(), 3);
        assert_eq!(store.unsynced(), 1);
        report.await.expect("reported").expect("flushed");
        assert_eq!(store.unsynced(), 0);
        assert_eq!(store.crash(0), 0);
        assert_eq!(store.len(), 3);

        // Killed before its sync ran: the entries were never reported and are lost.
        let mut lost = MemLogStore::disk(Duration::from_secs(3600));
        lost.set_syncs_behind(true);
        lost.append((1..=2).map(blank), IOFlushed::noop())
            .await
            .expect("append");
        assert_eq!(lost.crash(0), 1);
        assert!(lost.is_empty());
    }

    /// A plain memory store keeps everything: a crash is a no-op.
    #[tokio::test]
    async fn plain_store_survives_a_crash() {
        let mut store = MemLogStore::new();
        append(&mut store, 1..=3).await;
        store.save_committed(Some(log_id(3))).await.expect("commit");
        assert_eq!(store.crash(0), 0);
        assert_eq!(store.len(), 3);
        assert_eq!(store.read_committed().await.expect("read"), Some(log_id(3)));
    }

    /// Synced writes survive a crash; the unsynced `committed` after them does not, unless
    /// the crash keeps it.
    #[tokio::test]
    async fn disk_keeps_synced_writes_only() {
        let mut store = MemLogStore::disk(Duration::from_millis(2));
        append(&mut store, 1..=3).await;
        store.save_committed(Some(log_id(2))).await.expect("commit");
        assert_eq!(store.unsynced(), 1);
        let copy = store.clone();
        assert_eq!(copy.crash(0), 1);
        assert_eq!(store.len(), 3);
        assert_eq!(store.read_committed().await.expect("read"), None);

        store.save_committed(Some(log_id(3))).await.expect("commit");
        let vote = Vote::new(2, 1);
        store.save_vote(&vote).await.expect("vote");
        assert_eq!(
            store.unsynced(),
            0,
            "the vote's sync covers the earlier write"
        );
        assert_eq!(store.crash(0), 0);
        assert_eq!(store.read_committed().await.expect("read"), Some(log_id(3)));
        assert_eq!(store.vote(), Some(vote));
    }

    /// An append whose sync never finished (its node was killed) is lost by a crash, or kept
    /// if the crash keeps that much of the journal.
    #[tokio::test]
    async fn append_killed_before_its_sync_is_lost() {
        for flushed in [0, 1] {
            let store = MemLogStore::disk(Duration::from_millis(50));
            let mut first = store.clone();
            append(&mut first, 1..=2).await;
            let mut writer = store.clone();
            let task = tokio::spawn(async move { append(&mut writer, 3..=4).await });
            tokio::time::sleep(Duration::from_millis(10)).await;
            task.abort();
            assert_eq!(store.len(), 4, "reads see the unsynced entries");
            assert_eq!(store.unsynced(), 1);
            assert_eq!(store.crash(flushed), 1 - flushed);
            let last = if flushed == 0 { 2 } else { 4 };
            assert_eq!(store.last_index(), Some(last));
        }
    }

    /// Truncation and purge are applied in order with appends, in the journal as in the
    /// durable image.
    #[tokio::test]
    async fn truncate_and_purge_replay_in_order() {
        let mut store = MemLogStore::disk(Duration::ZERO);
        append(&mut store, 1..=5).await;
        store
            .truncate_after(Some(log_id(3)))
            .await
            .expect("truncate");
        append(&mut store, 4..=6).await;
        store.purge(log_id(2)).await.expect("purge");
        store.crash(0);
        assert_eq!(store.first_index(), Some(3));
        assert_eq!(store.last_index(), Some(6));
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(2)));
    }
}
