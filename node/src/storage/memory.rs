//! [`MemLogStore`]: the Raft log and vote kept in memory, behind the same openraft traits as
//! the RocksDB store.
//!
//! For tests and for the deterministic simulation, which must not touch real files. A clone
//! shares the same data, so a test (or the simulator) can keep one clone as the node's "disk"
//! and hand another to a restarted node. Every write counts as durable as soon as it returns;
//! modelling the loss of unsynced writes on a crash is left for the simulation work.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use parking_lot::Mutex;

use crate::raft::{Entry, LogId, TypeConfig, Vote};

/// What a node would keep on disk.
#[derive(Debug, Default)]
struct MemLog {
    log: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

/// An in-memory Raft log store; clones share the same log.
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    inner: Arc<Mutex<MemLog>>,
}

impl MemLogStore {
    /// An empty log: a node that has never run.
    pub fn new() -> MemLogStore {
        MemLogStore::default()
    }

    /// Index of the first entry still held, if any (for tests that check purging).
    pub fn first_index(&self) -> Option<u64> {
        self.inner.lock().log.keys().next().copied()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().log.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().log.is_empty()
    }
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
            .log
            .range((start, end))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.lock().vote)
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
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.inner.lock().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.lock().committed)
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
        {
            let mut inner = self.inner.lock();
            for entry in entries {
                inner.log.insert(entry.log_id.index, entry);
            }
        }
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let keep_below = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        let mut inner = self.inner.lock();
        drop(inner.log.split_off(&keep_below));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut inner = self.inner.lock();
        if inner.last_purged >= Some(log_id) {
            return Ok(());
        }
        let keep_from = log_id.index.saturating_add(1);
        inner.log = inner.log.split_off(&keep_from);
        inner.last_purged = Some(log_id);
        Ok(())
    }
}
