//! The proposal gatherer: the writes that connections (and followers' forwards) hand to this
//! node's Raft while a wave of requests is being read are proposed together as one
//! `Op::Batch` log entry. Raft's work per entry (the proposal message, encoding, the log
//! write, reading the entry back for apply, one reply) is then paid once per wave instead of
//! once per connection; at pipeline 1 that work was most of a write's CPU
//! (docs/benchmarks.md). Each proposal in the batch keeps its own session number, so apply
//! still runs it at most once however often it is sent.

use tokio::sync::{mpsc, oneshot};

use crate::keyspace::{Op, Request};
use crate::raft::{ClientWriteResult, Raft, ReplyCallback};
use crate::resp::Frame;

/// Most proposals gathered into one entry.
const MAX_PROPOSALS: usize = 1024;

/// Once a wave's arguments reach this many bytes it goes: one entry is replicated in one
/// message, and a follower far behind should get its catch-up in pieces.
const MAX_BYTES: usize = 4 << 20;

/// Most times the gatherer lets other tasks run while a wave is still growing.
const MAX_YIELDS: usize = 4;

/// What became of one proposal handed to the gatherer.
#[derive(Clone, Debug, PartialEq)]
pub enum Gathered {
    /// Applied: one reply per op, in order.
    Applied(Vec<Frame>),
    /// This node does not lead: nothing was proposed.
    NotLeader,
    /// Proposed, then the leadership was lost: the entry may still commit.
    Lost(String),
    /// Raft has stopped.
    Stopped(String),
}

/// Writes handed to a gatherer: `key` is what it stamps or groups them by (the cell time
/// for a proposal here, the leader for a follower's forward), `bytes` their arguments'.
pub(super) struct Handed<K, R> {
    pub(super) key: K,
    pub(super) ops: Vec<Op>,
    pub(super) bytes: usize,
    pub(super) reply: oneshot::Sender<R>,
}

/// Hands `ops` to the gatherer behind `queue`; `None` once it has stopped.
pub(super) fn hand_in<K, R>(
    queue: &mpsc::UnboundedSender<Handed<K, R>>,
    key: K,
    ops: Vec<Op>,
) -> Option<oneshot::Receiver<R>> {
    let (reply, replied) = oneshot::channel();
    let bytes = ops.iter().map(op_bytes).sum();
    let handed = Handed {
        key,
        ops,
        bytes,
        reply,
    };
    queue.send(handed).ok().map(|()| replied)
}

/// A proposal waiting to be gathered, keyed by its cell time.
type Proposal = Handed<u64, Gathered>;

/// The handle connections propose through.
pub struct Gatherer {
    proposals: mpsc::UnboundedSender<Proposal>,
}

impl Gatherer {
    /// Starts the gathering task for `raft`; it ends when the gatherer is dropped.
    pub fn start(raft: Raft) -> (Gatherer, tokio::task::JoinHandle<()>) {
        let (proposals, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(gather(raft, incoming));
        (Gatherer { proposals }, task)
    }

    /// Hands `ops`, stamped with cell time `time_ms`, to the next entry this node proposes;
    /// the receiver gets their replies once it applies.
    pub fn propose(&self, time_ms: u64, ops: Vec<Op>) -> oneshot::Receiver<Gathered> {
        hand_in(&self.proposals, time_ms, ops).unwrap_or_else(|| {
            let (reply, replied) = oneshot::channel();
            let _ = reply.send(Gathered::Stopped("the node is stopping".to_string()));
            replied
        })
    }
}

/// Receives proposals and proposes each wave ([`collect_wave`]) as one entry. It never
/// waits for an entry to commit: the next wave is proposed while the last one is on its way
/// to disk, and openraft appends both in one fsync if they meet.
async fn gather(raft: Raft, mut incoming: mpsc::UnboundedReceiver<Proposal>) {
    while let Some(first) = incoming.recv().await {
        let wave = collect_wave(&mut incoming, first, MAX_PROPOSALS, |p| p.bytes).await;
        propose_wave(&raft, wave).await;
    }
}

/// The wave that `first` starts: lets the other tasks that are ready run, then takes what
/// they handed in, again while the wave keeps growing (at most [`MAX_YIELDS`] times), so
/// the connections woken by one poll of the network travel together. Stops at `max_items`
/// or once the items' `bytes_of` reach [`MAX_BYTES`].
pub(super) async fn collect_wave<T>(
    incoming: &mut mpsc::UnboundedReceiver<T>,
    first: T,
    max_items: usize,
    bytes_of: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut bytes = bytes_of(&first);
    let mut wave = vec![first];
    for _ in 0..MAX_YIELDS {
        tokio::task::yield_now().await;
        let before = wave.len();
        while wave.len() < max_items && bytes < MAX_BYTES {
            match incoming.try_recv() {
                Ok(item) => {
                    bytes += bytes_of(&item);
                    wave.push(item);
                }
                Err(_) => break,
            }
        }
        if wave.len() == before || wave.len() >= max_items || bytes >= MAX_BYTES {
            break;
        }
    }
    wave
}

/// Proposes a wave as one entry whose reply is split among the proposals as it applies.
async fn propose_wave(raft: &Raft, wave: Vec<Proposal>) {
    let time_ms = wave.iter().map(|p| p.key).max().unwrap_or_default();
    let mut ops = Vec::with_capacity(wave.iter().map(|p| p.ops.len()).sum());
    let mut waiters = Vec::with_capacity(wave.len());
    for proposal in wave {
        waiters.push((proposal.ops.len(), proposal.reply));
        ops.extend(proposal.ops);
    }
    let request = Request {
        time_ms,
        op: Op::Batch(ops),
    };
    // Dropped unanswered (Raft stopped before the entry applied), the waiters' receivers
    // close, which they take as the node stopping.
    let responder = ReplyCallback::new(move |result| deliver(waiters, result));
    if let Err(fatal) = raft.client_write_ff(request, Some(responder)).await {
        tracing::debug!(error = %fatal, "gathered writes not proposed: raft stopped");
    }
}

/// Hands each proposal of a gathered entry its share of the entry's result.
fn deliver(waiters: Vec<(usize, oneshot::Sender<Gathered>)>, result: ClientWriteResult) {
    let outcome = match result {
        Ok(response) => match response.data {
            Frame::Array(frames) => Ok(frames),
            other => {
                tracing::error!(reply = ?other, "a gathered entry got a malformed reply");
                Err(Gathered::Lost(
                    "a gathered entry got a malformed reply".to_string(),
                ))
            }
        },
        Err(openraft::error::ClientWriteError::ForwardToLeader(_)) => Err(Gathered::NotLeader),
        Err(e) => Err(Gathered::Lost(format!("leadership lost: {e}"))),
    };
    hand_out_shares(outcome, waiters, Gathered::Applied, || {
        Gathered::Lost("a gathered entry got too few replies".to_string())
    });
}

/// Hands each waiter its part of a wave's outcome. Replies go out in order, each waiter
/// taking the next `count` of them (wrapped by `share`), or `short()` when too few are left:
/// a waiter never gets part of someone else's replies. A failure goes to every waiter.
pub(super) fn hand_out_shares<R: Clone>(
    outcome: Result<Vec<Frame>, R>,
    waiters: Vec<(usize, oneshot::Sender<R>)>,
    share: impl Fn(Vec<Frame>) -> R,
    short: impl Fn() -> R,
) {
    let frames = match outcome {
        Ok(frames) => frames,
        Err(failure) => {
            for (_, reply) in waiters {
                let _ = reply.send(failure.clone());
            }
            return;
        }
    };
    let mut frames = frames.into_iter();
    for (count, reply) in waiters {
        let mine: Vec<Frame> = frames.by_ref().take(count).collect();
        let outcome = match mine.len() == count {
            true => share(mine),
            false => short(),
        };
        let _ = reply.send(outcome);
    }
}

/// About how many bytes an op adds to an entry: its arguments.
pub(super) fn op_bytes(op: &Op) -> usize {
    let args = |args: &[bytes::Bytes]| args.iter().map(|a| a.len() + 2).sum::<usize>();
    match op {
        Op::Command { args: a, .. } => args(a),
        Op::Exec { commands, .. } => commands.iter().map(|c| args(c)).sum(),
        Op::Client { ops, .. } | Op::Batch(ops) => ops.iter().map(op_bytes).sum(),
        Op::AsUser { op, .. } => op_bytes(op),
        Op::Expire { keys, .. } | Op::Evict { keys, .. } => keys.iter().map(|k| k.len()).sum(),
        _ => 64,
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::keyspace::sessions::ClientId;
    use crate::keyspace::{Keyspace, SharedKeyspace};
    use crate::raft::{start_with_stores, RaftSettings, SnapshotStore};
    use crate::storage::MemLogStore;

    fn client_batch(conn: u64, seq: u64, commands: &[&[&str]]) -> Op {
        Op::Client {
            client: ClientId {
                node: 1,
                boot: 7,
                conn,
            },
            seq,
            ops: commands
                .iter()
                .map(|args| Op::Command {
                    db: 0,
                    args: args
                        .iter()
                        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                        .collect(),
                })
                .collect(),
        }
    }

    async fn one_node() -> (crate::raft::RaftHandle, SharedKeyspace) {
        let keyspace: SharedKeyspace = Arc::new(parking_lot::RwLock::new(Keyspace::new()));
        let settings = RaftSettings {
            node_id: 1,
            dir: std::path::PathBuf::from("/nonexistent"),
            raft_addr: "127.0.0.1:7001".to_string(),
            peers: BTreeMap::new(),
            cluster_name: "cellkv".to_string(),
            snapshot_entries: 100_000,
            snapshot_interval: Duration::ZERO,
            peer_tls: None,
            events: None,
        };
        let handle = start_with_stores(
            settings,
            keyspace.clone(),
            MemLogStore::new(),
            SnapshotStore::memory(),
        )
        .await
        .expect("start");
        handle
            .wait_leader(Duration::from_secs(10))
            .await
            .expect("leader");
        (handle, keyspace)
    }

    fn last_index(handle: &crate::raft::RaftHandle) -> u64 {
        handle.metrics().last_log_index.unwrap_or_default()
    }

    /// Proposals handed in before the gatherer runs share one entry, and each gets its own
    /// replies, in order.
    #[tokio::test]
    async fn proposals_of_one_wave_share_an_entry_and_get_their_own_replies() {
        let (handle, keyspace) = one_node().await;
        let (gatherer, task) = Gatherer::start(handle.raft.clone());
        let before = last_index(&handle);
        let replies: Vec<_> = (1..=20u64)
            .map(|conn| {
                let key = format!("counter{}", conn % 3);
                gatherer.propose(
                    1_700_000_000_000,
                    vec![client_batch(
                        conn,
                        1,
                        &[&["INCR", &key], &["SET", &format!("k{conn}"), "v"]],
                    )],
                )
            })
            .collect();
        let mut counters = BTreeMap::<u64, i64>::new();
        for (conn, replied) in (1..=20u64).zip(replies) {
            let gathered = replied.await.expect("answered");
            let Gathered::Applied(frames) = gathered else {
                panic!("connection {conn}: {gathered:?}");
            };
            let [Frame::Array(batch)] = frames.as_slice() else {
                panic!("connection {conn}: one batch reply, got {frames:?}");
            };
            let [Frame::Integer(count), ok] = batch.as_slice() else {
                panic!("connection {conn}: INCR and SET replies, got {batch:?}");
            };
            assert_eq!(*ok, Frame::ok());
            // Applied in the order handed in: each counter counts up by one per proposal.
            let last = counters.entry(conn % 3).or_default();
            assert_eq!(*count, *last + 1, "connection {conn}");
            *last = *count;
        }
        assert_eq!(
            last_index(&handle),
            before + 1,
            "twenty proposals handed in at once are one entry"
        );
        let keys = keyspace.read().db(0).map(|db| db.len());
        assert_eq!(keys, Some(23), "three counters and twenty strings");
        drop(gatherer);
        task.await.expect("the gatherer ends with its handle");
        handle.shutdown().await.expect("shutdown");
    }

    /// A proposal sent again under its session number inside a later gathered entry is
    /// answered from the session, not run twice.
    #[tokio::test]
    async fn a_proposal_sent_again_in_a_later_entry_runs_once() {
        let (handle, keyspace) = one_node().await;
        let (gatherer, _task) = Gatherer::start(handle.raft.clone());
        let incr = || client_batch(9, 1, &[&["INCR", "once"]]);
        let first = gatherer.propose(1, vec![incr()]).await.expect("answered");
        let again = gatherer
            .propose(2, vec![client_batch(8, 1, &[&["INCR", "once"]]), incr()])
            .await
            .expect("answered");
        let one = Frame::Array(vec![Frame::Integer(1)]);
        assert_eq!(first, Gathered::Applied(vec![one.clone()]));
        assert_eq!(
            again,
            Gathered::Applied(vec![Frame::Array(vec![Frame::Integer(2)]), one]),
            "the other connection's INCR ran, the repeated one was replayed"
        );
        let value = keyspace
            .read()
            .db(0)
            .and_then(|db| db.get_any(b"once"))
            .map(|entry| entry.value.clone());
        assert_eq!(value, Some(crate::keyspace::Value::string(b"2")));
        handle.shutdown().await.expect("shutdown");
    }

    #[test]
    fn a_gathered_reply_is_split_by_proposal_and_failures_reach_everyone() {
        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        let (third, mut third_rx) = oneshot::channel();
        let frames = vec![Frame::Integer(1), Frame::Integer(2), Frame::Integer(3)];
        deliver(
            vec![(1, first), (2, second), (1, third)],
            Ok(openraft::raft::ClientWriteResponse {
                log_id: crate::raft::LogId::new(
                    openraft::vote::leader_id_adv::LeaderId {
                        term: 1,
                        node_id: 1,
                    },
                    9,
                ),
                data: Frame::Array(frames),
                membership: None,
            }),
        );
        assert_eq!(
            first_rx.try_recv(),
            Ok(Gathered::Applied(vec![Frame::Integer(1)]))
        );
        assert_eq!(
            second_rx.try_recv(),
            Ok(Gathered::Applied(vec![
                Frame::Integer(2),
                Frame::Integer(3)
            ]))
        );
        assert!(
            matches!(third_rx.try_recv(), Ok(Gathered::Lost(_))),
            "a proposal the reply has no frames left for is not answered with someone else's"
        );

        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        let not_leader = openraft::error::ForwardToLeader::empty();
        deliver(
            vec![(1, first), (3, second)],
            Err(openraft::error::ClientWriteError::ForwardToLeader(
                not_leader,
            )),
        );
        assert_eq!(first_rx.try_recv(), Ok(Gathered::NotLeader));
        assert_eq!(second_rx.try_recv(), Ok(Gathered::NotLeader));
    }
}
