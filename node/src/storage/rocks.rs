//! [`RocksLogStore`]: the Raft log, vote and log pointers in RocksDB, the production store.
//!
//! Layout, one column family each:
//! - `log`: key = big-endian `u64` log index (so key order is index order), value = the
//!   postcard-encoded openraft entry.
//! - `vote`: the single key `vote`.
//! - `meta`: `committed` (the last committed log id, so a restart re-applies the log tail up to
//!   it) and `last_purged` (the log id purging stopped at, which must outlive the entries).
//!
//! Durability: every append is one `WriteBatch`, and openraft is told the entries are flushed
//! only once the WAL that holds them is fsynced. openraft hands over many entries per append
//! while the previous fsync is running, so one fsync covers a whole batch of client writes.
//! The vote, truncations and purges are synced too. `committed` alone is not synced: losing
//! its last update only means re-applying less on restart. It is not even written on its
//! own: the core advances it once per append, and a RocksDB write of its own cost about 3 %
//! of a lone node's CPU at pipeline 1, so the newest value rides in the next synced batch (or
//! is written when the store closes).
//!
//! Where an append's fsync runs ([`AppendSync`]) depends on whether the node has peers. A
//! lone node syncs on the task that asks for it, which is Raft's core: the core waits for the
//! append either way, and while its thread is in the fsync the requests that arrive pile up
//! and are proposed as the next entry, one fsync for all of them, as Redis's event loop does
//! around its AOF fsync. Handing the write to another thread instead cost two thread wake-ups
//! per fsync and left each fsync with fewer writes (docs/benchmarks.md, seventh look). A
//! node of a cell writes the entries without a sync and lets a thread of the store's own
//! sync them: openraft sends new entries to the followers only once `append` returns, so a
//! leader that synced on its core kept its followers waiting for its own disk, and a follower
//! kept the leader's next entries waiting (docs/benchmarks.md, twelfth look).
//!
//! Nothing read from disk is unwrapped: undecodable data becomes an `InvalidData` error,
//! which openraft turns into a storage error that stops the node.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{mpsc, Arc};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode, Options,
    ReadOptions, SingleThreaded, WriteBatch, WriteOptions,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::raft::{Entry, LogId, TypeConfig, Vote};

type Db = DBWithThreadMode<SingleThreaded>;

const CF_LOG: &str = "log";
const CF_VOTE: &str = "vote";
const CF_META: &str = "meta";

/// Memtable budget of the `log` column family. An entry is read back soon after its append
/// (apply, replication to a follower that keeps up) and purged after the next snapshot, so a
/// large memtable buys little; RocksDB's default of 64 MiB, two while one flushes, kept a
/// whole benchmark's log resident (about 35 bytes of RSS per small SET, docs/benchmarks.md).
const LOG_WRITE_BUFFER: usize = 8 << 20;

/// WAL size past which RocksDB flushes the column families that keep the oldest WAL file
/// alive: a few of the `log` family's memtables.
const MAX_TOTAL_WAL: u64 = 4 * LOG_WRITE_BUFFER as u64;

/// Obsolete WAL files kept for reuse (RocksDB's `recycle_log_file_num`).
const WAL_FILES_RECYCLED: usize = 2;

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Bounded reads of at most this many entries look each entry up by its key: apply reads
/// the one or two entries it has just been told are committed, and opening a RocksDB
/// iterator for that cost more than the point lookups.
const MAX_POINT_READS: u64 = 16;

/// Where an append's fsync runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendSync {
    /// On the task that appends, Raft's core (see the module doc): best for a lone node,
    /// which has nothing to do while its disk syncs but gather the next entry.
    OnCaller,
    /// On the store's own thread: `append` returns once the entries are readable and the
    /// thread reports them flushed after one fsync for every append that arrived meanwhile,
    /// so a leader sends new entries to its followers while its own disk syncs them.
    OnSyncThread,
}

/// The RocksDB-backed Raft log store. Clones share the database; the log reader is a clone.
#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<Db>,
    committed: Arc<PendingCommitted>,
    /// The thread that syncs appends, if they are synced there.
    sync_thread: Option<Arc<SyncThread>>,
}

/// The thread of [`AppendSync::OnSyncThread`]: it waits for an append, takes every one
/// queued behind it, syncs the WAL once and reports them all flushed in the order they were
/// appended.
struct SyncThread {
    appended: Option<mpsc::Sender<IOFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyncThread {
    fn spawn(db: Arc<Db>) -> io::Result<SyncThread> {
        let (appended, queued) = mpsc::channel::<IOFlushed<TypeConfig>>();
        let thread = std::thread::Builder::new()
            .name("cellkv-log-sync".into())
            .spawn(move || {
                while let Ok(first) = queued.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(queued.try_iter());
                    let synced = db.flush_wal(true);
                    for callback in waiting {
                        callback.io_completed(match &synced {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io::Error::other(e.to_string())),
                        });
                    }
                }
            })?;
        Ok(SyncThread {
            appended: Some(appended),
            thread: Some(thread),
        })
    }

    /// Queues `callback` for the next sync.
    fn queue(&self, callback: IOFlushed<TypeConfig>) -> io::Result<()> {
        let stopped = || io::Error::other("the raft log's sync thread has stopped");
        let Some(appended) = &self.appended else {
            callback.io_completed(Err(stopped()));
            return Err(stopped());
        };
        appended
            .send(callback)
            .map_err(|mpsc::SendError(callback)| {
                callback.io_completed(Err(stopped()));
                stopped()
            })
    }
}

impl Drop for SyncThread {
    /// Ends the thread and waits for it, so that the database is closed (and can be opened
    /// again, as a restarted node does) once the last store clone is gone.
    fn drop(&mut self) {
        drop(self.appended.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the raft log's sync thread panicked");
            }
        }
    }
}

/// The newest `committed` pointer not yet written: it goes into the next synced batch, or is
/// written when the last clone of the store is dropped.
struct PendingCommitted {
    db: Arc<Db>,
    value: parking_lot::Mutex<Option<Option<LogId>>>,
}

impl PendingCommitted {
    /// Adds the pending pointer, if any, to `batch`.
    fn add_to(&self, batch: &mut WriteBatch) -> io::Result<()> {
        if let Some(committed) = self.value.lock().take() {
            batch.put_cf(cf(&self.db, CF_META)?, KEY_COMMITTED, encode(&committed)?);
        }
        Ok(())
    }
}

impl Drop for PendingCommitted {
    fn drop(&mut self) {
        let Some(committed) = self.value.get_mut().take() else {
            return;
        };
        let written = cf(&self.db, CF_META).and_then(|meta| {
            self.db
                .put_cf(meta, KEY_COMMITTED, encode(&committed)?)
                .map_err(rocks_err)
        });
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write the raft log's committed pointer on close");
        }
    }
}

impl Debug for RocksLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksLogStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl RocksLogStore {
    /// Opens (or creates) the log store in directory `path`, syncing appends on the caller.
    pub fn open(path: impl AsRef<Path>) -> io::Result<RocksLogStore> {
        Self::open_with(path, AppendSync::OnCaller)
    }

    /// Opens (or creates) the log store in directory `path`, syncing appends as `sync` says.
    pub fn open_with(path: impl AsRef<Path>, sync: AppendSync) -> io::Result<RocksLogStore> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // RocksDB's info LOG files would otherwise pile up in the data directory.
        opts.set_keep_log_file_num(4);
        // Every append ends in an fdatasync of the WAL. Writing into a recycled WAL file, whose
        // blocks and size already exist, lets that fdatasync flush the data alone; appending to
        // a growing file also commits the inode's new size to ext4's journal on every sync.
        opts.set_recycle_log_file_num(WAL_FILES_RECYCLED);
        // A WAL file is obsolete only once every column family has flushed what it holds, and
        // `meta` (the `committed` pointer, rewritten with nearly every append) otherwise
        // flushes only when all WALs together pass RocksDB's default bound, about a gigabyte
        // here: a gigabyte of WAL on disk, replayed on every start, and nothing to recycle.
        opts.set_max_total_wal_size(MAX_TOTAL_WAL);
        let cfs = [CF_LOG, CF_VOTE, CF_META].into_iter().map(|name| {
            let mut cf_opts = Options::default();
            if name == CF_LOG {
                cf_opts.set_write_buffer_size(LOG_WRITE_BUFFER);
            }
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = Arc::new(Db::open_cf_descriptors(&opts, path, cfs).map_err(rocks_err)?);
        let committed = Arc::new(PendingCommitted {
            db: db.clone(),
            value: parking_lot::Mutex::new(None),
        });
        let sync_thread = match sync {
            AppendSync::OnCaller => None,
            AppendSync::OnSyncThread => Some(Arc::new(SyncThread::spawn(db.clone())?)),
        };
        Ok(RocksLogStore {
            db,
            committed,
            sync_thread,
        })
    }

    /// Index of the first entry still held, if any (for tests that check purging).
    pub fn first_index(&self) -> io::Result<Option<u64>> {
        let cf = cf(&self.db, CF_LOG)?;
        match self.db.iterator_cf(cf, IteratorMode::Start).next() {
            None => Ok(None),
            Some(item) => {
                let (key, _) = item.map_err(rocks_err)?;
                Ok(Some(decode_index(&key)?))
            }
        }
    }

    fn get_meta<T: DeserializeOwned>(&self, cf_name: &str, key: &[u8]) -> io::Result<Option<T>> {
        let cf = cf(&self.db, cf_name)?;
        match self.db.get_pinned_cf(cf, key).map_err(rocks_err)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some),
        }
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let cf = cf(&self.db, CF_LOG)?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(rocks_err)?;
                let entry: Entry = decode(&value)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    /// Writes `batch` atomically, with the pending `committed` pointer, and fsyncs it, on
    /// the calling task (see the module doc).
    fn write_synced(&self, batch: WriteBatch) -> io::Result<()> {
        self.write(batch, true)
    }

    /// Writes `batch` atomically with the pending `committed` pointer, fsynced if `sync`.
    fn write(&self, mut batch: WriteBatch, sync: bool) -> io::Result<()> {
        self.committed.add_to(&mut batch)?;
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(rocks_err)
    }
}

fn cf<'a>(db: &'a Db, name: &str) -> io::Result<&'a ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| io::Error::other(format!("rocksdb column family `{name}` is missing")))
}

fn rocks_err(e: rocksdb::Error) -> io::Error {
    io::Error::other(e)
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Decodes the entry stored under log index `index`, which must be the entry's own.
fn checked_entry(index: u64, value: &[u8]) -> io::Result<Entry> {
    let entry: Entry = decode(value)?;
    if entry.log_id.index != index {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log key {index} holds entry {}", entry.log_id),
        ));
    }
    Ok(entry)
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_index(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log key of {} bytes, expected 8", key.len()),
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => match s.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        // Exclusive end; None = to the end of the log.
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }

        let cf = cf(&self.db, CF_LOG)?;
        let mut entries = Vec::new();
        let mut start = start;
        if let Some(end) = end.filter(|&end| end - start <= MAX_POINT_READS) {
            while start < end {
                let Some(value) = self
                    .db
                    .get_pinned_cf(cf, index_key(start))
                    .map_err(rocks_err)?
                else {
                    // A gap (purged or never written): the scan below reports what follows.
                    break;
                };
                entries.push(checked_entry(start, &value)?);
                start += 1;
            }
            if start == end {
                return Ok(entries);
            }
        }
        let mut read_opts = ReadOptions::default();
        if let Some(end) = end {
            read_opts.set_iterate_upper_bound(index_key(end).to_vec());
        }
        let start_key = index_key(start);
        let iter = self.db.iterator_cf_opt(
            cf,
            read_opts,
            IteratorMode::From(&start_key, Direction::Forward),
        );
        entries.reserve(end.map_or(0, |end| (end - start).min(1024) as usize));
        for item in iter {
            let (key, value) = item.map_err(rocks_err)?;
            entries.push(checked_entry(decode_index(&key)?, &value)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(CF_VOTE, KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = RocksLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self.get_meta(CF_META, KEY_LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let value = encode(vote)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_VOTE)?, KEY_VOTE, value);
        self.write_synced(batch)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Written with the next synced batch (see the module doc).
        *self.committed.value.lock() = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        if let Some(pending) = *self.committed.value.lock() {
            return Ok(pending);
        }
        let committed: Option<Option<LogId>> = self.get_meta(CF_META, KEY_COMMITTED)?;
        Ok(committed.flatten())
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
        let log = cf(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(log, index_key(entry.log_id.index), encode(&entry)?);
        }
        if batch.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        // Synced here unless the sync thread does it.
        if let Err(e) = self.write(batch, self.sync_thread.is_none()) {
            callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
        match &self.sync_thread {
            Some(sync_thread) => sync_thread.queue(callback),
            None => {
                callback.io_completed(Ok(()));
                Ok(())
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG)?, index_key(from), index_key(u64::MAX));
        self.write_synced(batch)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let last_purged: Option<LogId> = self.get_meta(CF_META, KEY_LAST_PURGED)?;
        if last_purged >= Some(log_id) {
            return Ok(());
        }
        // The pointer and the deletion go in one batch: a crash leaves either both or neither.
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META)?, KEY_LAST_PURGED, encode(&log_id)?);
        batch.delete_range_cf(
            cf(&self.db, CF_LOG)?,
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        self.write_synced(batch)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::entry::RaftEntry;
    use openraft::type_config::TypeConfigExt;

    use super::*;
    use crate::keyspace::{Op, Request};
    use crate::storage::test_log_id as log_id;

    /// A SET of a kilobyte, as a client would propose it.
    fn set_entry(index: u64) -> Entry {
        let request = Request {
            time_ms: 1,
            op: Op::Command {
                db: 0,
                args: vec![
                    Bytes::from_static(b"SET"),
                    Bytes::from(format!("key:{index}")),
                    Bytes::from(vec![b'v'; 1024]),
                ],
            },
        };
        Entry::new_normal(log_id(index), request)
    }

    /// `committed` reaches the disk with the next synced write, not before, and is written
    /// when the store closes if no write came after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_committed_pointer_rides_on_the_next_synced_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft");
        let mut store = RocksLogStore::open(&path).expect("open");
        let on_disk = |store: &RocksLogStore| {
            store
                .get_meta::<Option<LogId>>(CF_META, KEY_COMMITTED)
                .expect("read meta")
                .flatten()
        };
        store
            .append((1..=3).map(set_entry), IOFlushed::noop())
            .await
            .expect("append");
        store.save_committed(Some(log_id(2))).await.expect("commit");
        assert_eq!(on_disk(&store), None);
        assert_eq!(store.read_committed().await.expect("read"), Some(log_id(2)));
        store
            .append((4..=5).map(set_entry), IOFlushed::noop())
            .await
            .expect("append");
        assert_eq!(on_disk(&store), Some(log_id(2)));
        store.save_committed(Some(log_id(5))).await.expect("commit");
        let reader = store.clone();
        drop(store);
        // A clone (the log reader) keeps it pending; the last one to go writes it.
        assert_eq!(on_disk(&reader), Some(log_id(2)));
        drop(reader);
        let mut store = RocksLogStore::open(&path).expect("reopen");
        assert_eq!(store.read_committed().await.expect("read"), Some(log_id(5)));
        // Point reads and the scan agree, also across a gap left by a purge.
        store.purge(log_id(2)).await.expect("purge");
        let indexes =
            |entries: Vec<Entry>| entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>();
        assert_eq!(
            indexes(store.try_get_log_entries(1..4).await.expect("read")),
            vec![3]
        );
        assert_eq!(
            indexes(store.try_get_log_entries(4..=5).await.expect("read")),
            vec![4, 5]
        );
        assert_eq!(
            indexes(store.try_get_log_entries(3..).await.expect("read")),
            vec![3, 4, 5]
        );
    }

    /// With a sync thread, entries are readable as soon as `append` returns, every append is
    /// reported flushed, and they are all there after the store is closed and opened again
    /// (which needs the thread to have let go of the database).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sync_thread_reports_every_append_flushed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft");
        let mut store = RocksLogStore::open_with(&path, AppendSync::OnSyncThread).expect("open");
        const APPENDS: u64 = 20;
        const PER_APPEND: u64 = 5;
        let mut reports = Vec::new();
        for batch in 0..APPENDS {
            let first = batch * PER_APPEND + 1;
            let last = first + PER_APPEND - 1;
            let (flushed, report) = TypeConfig::oneshot::<Result<(), io::Error>>();
            store
                .append((first..=last).map(set_entry), IOFlushed::signal(flushed))
                .await
                .expect("append");
            let state = store.get_log_state().await.expect("log state");
            assert_eq!(state.last_log_id, Some(log_id(last)));
            reports.push(report);
        }
        for report in reports {
            tokio::time::timeout(std::time::Duration::from_secs(10), report)
                .await
                .expect("reported in time")
                .expect("reported")
                .expect("flushed");
        }
        drop(store);
        let mut store = RocksLogStore::open_with(&path, AppendSync::OnSyncThread).expect("reopen");
        let entries = store
            .try_get_log_entries(1..=APPENDS * PER_APPEND)
            .await
            .expect("read after reopen");
        assert_eq!(entries.len() as u64, APPENDS * PER_APPEND);
    }

    fn wal_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .expect("list the store's directory")
            .filter_map(Result::ok)
            .filter(|file| file.path().extension().is_some_and(|ext| ext == "log"))
            .filter_map(|file| file.metadata().ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// The WAL on disk stays bounded while the log grows, as it does between two snapshots
    /// under load: `committed` is rewritten after every append, as the core does, and must
    /// not pin the oldest WAL file until RocksDB's default bound of about a gigabyte.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_while_the_log_grows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("raft");
        let mut store = RocksLogStore::open(&path).expect("open");
        const PER_APPEND: u64 = 1000;
        const APPENDS: u64 = 150;
        for batch in 0..APPENDS {
            let first = batch * PER_APPEND + 1;
            let last = first + PER_APPEND - 1;
            store
                .append((first..=last).map(set_entry), IOFlushed::noop())
                .await
                .expect("append");
            store
                .save_committed(Some(log_id(last)))
                .await
                .expect("commit");
        }
        let written = APPENDS * PER_APPEND * 1024;
        let wal = wal_bytes(&path);
        // Live WAL up to the bound, the file being filled and one more, the recycled files.
        let allowed = MAX_TOTAL_WAL + (2 + WAL_FILES_RECYCLED as u64) * LOG_WRITE_BUFFER as u64;
        assert!(
            wal <= allowed,
            "{wal} bytes of WAL on disk after {written} bytes of log (allowed {allowed})"
        );
        // Everything is still there to read, also after a reopen that replays recycled WALs.
        let last = APPENDS * PER_APPEND;
        let entries = store.try_get_log_entries(1..=last).await.expect("read");
        assert_eq!(entries.len() as u64, last);
        drop(store);
        let mut store = RocksLogStore::open(&path).expect("reopen");
        let state = store.get_log_state().await.expect("log state");
        assert_eq!(state.last_log_id, Some(log_id(last)));
        assert_eq!(
            store.read_committed().await.expect("committed"),
            Some(log_id(last))
        );
        let tail = store
            .try_get_log_entries(last - PER_APPEND..=last)
            .await
            .expect("read after reopen");
        assert_eq!(tail.len() as u64, PER_APPEND + 1);
        assert_eq!(tail.last().map(|entry| entry.log_id), Some(log_id(last)));
    }
}
