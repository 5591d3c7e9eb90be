//! [`KeyspaceStateMachine`]: openraft's `RaftStateMachine` over the shared keyspace.
//!
//! Apply takes the keyspace's write lock once per batch of ready entries, not per entry, and
//! answers each waiting client with the [`Frame`] the keyspace returned. Blank and membership
//! entries only move the applied pointer (and the membership, and the set of ids that were
//! ever members: node ids are never reused, so a removed id must stay known after the log
//! that removed it is purged; the set travels in the snapshot header).
//!
//! Snapshots never stall apply: the builder is handed an O(1) clone of the keyspace taken
//! between two batches, and serializes that frozen view on the blocking pool while apply goes
//! on. The snapshot is the only durable copy of the keyspace; after a restart the node loads it
//! and openraft re-applies the committed log tail on top. Snapshot data is a whole in-memory
//! buffer (`Cursor<Vec<u8>>`); streaming large snapshots is later work.

use std::collections::BTreeSet;
use std::io::{self, Cursor};
use std::sync::Arc;

use futures_util::{FutureExt, Stream, StreamExt};
use openraft::storage::{ApplyResponder, EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{AsyncRuntime, EntryPayload, OptionalSend};
use parking_lot::Mutex;

use crate::keyspace::{Event, EventSink, Keyspace, SharedKeyspace, SnapshotError};
use crate::raft::rt::CellRuntime;
use crate::raft::snapshot::{decode_header, encode_header, SnapshotStats, SnapshotStore};
use crate::raft::{
    LogId, NodeId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};
use crate::resp::Frame;

/// Every node id that was ever in an applied membership (voter or learner), shared with the
/// admin service, which refuses to add such an id again.
pub type EverMembers = Arc<Mutex<BTreeSet<NodeId>>>;

/// Most entries applied under one write lock, so a huge catch-up does not starve readers.
const MAX_APPLY_BATCH: usize = 1024;

/// The Raft state machine: the shared keyspace plus the applied pointer and membership.
pub struct KeyspaceStateMachine {
    keyspace: SharedKeyspace,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshots: SnapshotStore,
    stats: Arc<SnapshotStats>,
    events: Option<EventSink>,
    ever_members: EverMembers,
}

impl KeyspaceStateMachine {
    /// Opens the state machine: loads the newest snapshot in `snapshots` into `keyspace`, or
    /// empties `keyspace` when there is none (nothing applied yet must mean an empty state).
    /// Blocking file I/O.
    pub fn open(
        keyspace: SharedKeyspace,
        snapshots: SnapshotStore,
        events: Option<EventSink>,
    ) -> io::Result<KeyspaceStateMachine> {
        let stats = Arc::new(SnapshotStats::default());
        let ever_members = EverMembers::default();
        let (last_applied, last_membership) = match snapshots.load()? {
            None => {
                *keyspace.write() = Keyspace::new();
                (None, StoredMembership::default())
            }
            Some(bytes) => {
                let (meta, ever, body_at) = decode_header(&bytes)?;
                *ever_members.lock() = ever;
                let mut loaded = read_keyspace(&bytes[body_at..])?;
                loaded.set_applied_index(meta.last_log_id.map_or(0, |id| id.index));
                *keyspace.write() = loaded;
                stats.record_current(meta.last_log_id, bytes.len());
                tracing::info!(last_log_id = ?meta.last_log_id, bytes = bytes.len(), "loaded snapshot");
                (meta.last_log_id, meta.last_membership)
            }
        };
        Ok(KeyspaceStateMachine {
            keyspace,
            last_applied,
            last_membership,
            snapshots,
            stats,
            events,
            ever_members,
        })
    }

    /// The ids that were ever members, shared with the admin service.
    pub fn ever_members(&self) -> EverMembers {
        self.ever_members.clone()
    }

    /// The snapshot counters, shared with INFO.
    pub fn stats(&self) -> Arc<SnapshotStats> {
        self.stats.clone()
    }

    /// Applies a batch under one write lock; returns the replies owed to waiting clients and
    /// the events apply produced, both to be handed out once the lock is released.
    fn apply_batch(
        &mut self,
        batch: &mut Vec<EntryResponder<TypeConfig>>,
    ) -> (Vec<(ApplyResponder<TypeConfig>, Frame)>, Vec<Event>) {
        let mut replies = Vec::new();
        let keyspace = self.keyspace.clone();
        let mut keyspace = keyspace.write();
        for (entry, responder) in batch.drain(..) {
            let reply = match &entry.payload {
                EntryPayload::Normal(request) => keyspace.apply(entry.log_id.index, request),
                EntryPayload::Membership(membership) => {
                    self.ever_members
                        .lock()
                        .extend(membership.nodes().map(|(id, _)| *id));
                    self.last_membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    Frame::ok()
                }
                EntryPayload::Blank => Frame::ok(),
            };
            self.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                replies.push((responder, reply));
            }
        }
        (replies, keyspace.take_events())
    }
}

fn read_keyspace(mut body: &[u8]) -> io::Result<Keyspace> {
    Keyspace::read_snapshot(&mut body).map_err(snapshot_err)
}

fn snapshot_err(e: SnapshotError) -> io::Error {
    match e {
        SnapshotError::Io(e) => e,
        SnapshotError::Corrupt(what) => io::Error::new(io::ErrorKind::InvalidData, what),
    }
}

/// Runs blocking work (serialization, file I/O) off the runtime's worker threads.
async fn blocking<T, F>(work: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    CellRuntime::spawn_blocking(work).await?
}

impl RaftStateMachine<TypeConfig> for KeyspaceStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = KeyspaceSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        loop {
            match entries.next().await {
                None => return Ok(()),
                Some(item) => batch.push(item?),
            }
            // Gather what is ready without waiting, then apply it under one lock.
            let mut ended = false;
            let mut failure = None;
            while batch.len() < MAX_APPLY_BATCH {
                match entries.next().now_or_never() {
                    Some(Some(Ok(item))) => batch.push(item),
                    Some(Some(Err(e))) => {
                        failure = Some(e);
                        break;
                    }
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            let (replies, events) = self.apply_batch(&mut batch);
            // Events first: a subscriber told of a write must find it applied, and so it is.
            if let (Some(sink), false) = (&self.events, events.is_empty()) {
                sink.deliver(events);
            }
            for (responder, reply) in replies {
                responder.send(reply);
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if ended {
                return Ok(());
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Between two apply batches, so the view, the pointer and the membership agree.
        KeyspaceSnapshotBuilder {
            view: self.keyspace.read().clone(),
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.last_membership.clone(),
            },
            ever_members: self.ever_members.lock().clone(),
            snapshots: self.snapshots.clone(),
            stats: self.stats.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let meta_copy = meta.clone();
        let store = self.snapshots.clone();
        let last_log_id = meta.last_log_id;
        let (keyspace, size, ever) = blocking(move || {
            let (_, mut ever, body_at) = decode_header(&bytes)?;
            ever.extend(
                meta_copy
                    .last_membership
                    .membership()
                    .nodes()
                    .map(|(id, _)| *id),
            );
            let header = encode_header(&meta_copy, &ever)?;
            let mut keyspace = read_keyspace(&bytes[body_at..])?;
            keyspace.set_applied_index(last_log_id.map_or(0, |id| id.index));
            // Persist with a header written from `meta`, which is what openraft vouches for.
            let file = if bytes[..body_at] == header[..] {
                bytes
            } else {
                let mut file = header;
                file.extend_from_slice(&bytes[body_at..]);
                file
            };
            store.save(last_log_id, &file)?;
            Ok((keyspace, file.len(), ever))
        })
        .await?;
        // The leader's set covers every id it ever applied; ours may only add to it.
        self.ever_members.lock().extend(ever);

        *self.keyspace.write() = keyspace;
        // The users may differ in the installed state: connections must re-read theirs.
        if let Some(sink) = &self.events {
            sink.deliver(vec![crate::keyspace::Event::AclChanged]);
        }
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.stats.record_current(meta.last_log_id, size);
        self.stats.count_installed();
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = size, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let store = self.snapshots.clone();
        let Some(bytes) = blocking(move || store.load()).await? else {
            return Ok(None);
        };
        let (meta, _, _) = decode_header(&bytes)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Cursor::new(bytes),
        }))
    }
}

/// Builds one snapshot from a frozen view of the keyspace.
pub struct KeyspaceSnapshotBuilder {
    view: Keyspace,
    meta: SnapshotMeta,
    ever_members: BTreeSet<NodeId>,
    snapshots: SnapshotStore,
    stats: Arc<SnapshotStats>,
}

impl RaftSnapshotBuilder<TypeConfig> for KeyspaceSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let view = self.view.clone();
        let meta = self.meta.clone();
        let ever = self.ever_members.clone();
        let store = self.snapshots.clone();
        let bytes = blocking(move || {
            let mut bytes = encode_header(&meta, &ever)?;
            view.write_snapshot(&mut bytes).map_err(snapshot_err)?;
            if store.save(meta.last_log_id, &bytes)? {
                Ok(Some(bytes))
            } else {
                Ok(None)
            }
        })
        .await?;
        let bytes = match bytes {
            Some(bytes) => {
                self.stats
                    .record_current(self.meta.last_log_id, bytes.len());
                self.stats.count_built();
                tracing::info!(last_log_id = ?self.meta.last_log_id, bytes = bytes.len(), "built snapshot");
                bytes
            }
            // A newer snapshot was installed meanwhile; hand openraft the one in place.
            None => {
                let store = self.snapshots.clone();
                let current = blocking(move || store.load()).await?;
                let bytes = current.ok_or_else(|| {
                    io::Error::other("snapshot vanished after a newer one was saved")
                })?;
                let (meta, _, _) = decode_header(&bytes)?;
                return Ok(Snapshot {
                    meta,
                    snapshot: Cursor::new(bytes),
                });
            }
        };
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Cursor::new(bytes),
        })
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::raft::snapshot::encode_header;

    /// The ids that were ever members arrive with an installed snapshot, are kept in the
    /// snapshot saved from it, and are back after a restart from that snapshot, even those no
    /// longer in the membership.
    #[tokio::test]
    async fn ever_members_survive_install_and_restart() {
        let leader = openraft::vote::leader_id_adv::LeaderId {
            term: 2,
            node_id: 1,
        };
        let membership = openraft::Membership::new_with_defaults(
            vec![BTreeSet::from([1, 2, 4])],
            [] as [NodeId; 0],
        );
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(leader, 40)),
            last_membership: StoredMembership::new(Some(LogId::new(leader, 30)), membership),
        };
        let mut bytes = encode_header(&meta, &BTreeSet::from([1, 2, 3])).expect("header");
        Keyspace::new()
            .write_snapshot(&mut bytes)
            .expect("keyspace bytes");

        let store = SnapshotStore::memory();
        let keyspace: SharedKeyspace = Arc::new(parking_lot::RwLock::new(Keyspace::new()));
        let mut sm =
            KeyspaceStateMachine::open(keyspace.clone(), store.clone(), None).expect("open empty");
        assert!(sm.ever_members().lock().is_empty());
        sm.install_snapshot(&meta, Cursor::new(bytes))
            .await
            .expect("install");
        let all = BTreeSet::from([1, 2, 3, 4]);
        assert_eq!(
            *sm.ever_members().lock(),
            all,
            "removed 3 is kept, member 4 added"
        );

        let reopened = KeyspaceStateMachine::open(keyspace, store, None).expect("reopen");
        assert_eq!(*reopened.ever_members().lock(), all);
    }
}
