//! Linearizable reads with shared confirmations: every read waits until the leader has
//! confirmed its leadership and applied everything committed before the read arrived
//! (openraft's read-index). One confirmation serves every reader that was waiting when it
//! started, so many concurrent readers cost one round through Raft, not one each.
//!
//! A leader that is the cluster's only voter skips the round: it cannot be deposed without
//! its own vote, and every write it acknowledged was applied before the acknowledgement, so
//! its keyspace already holds everything a read must see.
//!
//! On a follower the round goes through the leader: it confirms its leadership and sends its
//! read index back, and the follower waits until it has applied that far (see `peers`).
//!
//! `read-consistency` trades this for speed: `lease` lets the leader skip the quorum round
//! while its lease holds (a follower still asks the leader for its index), `local` serves
//! what this node has applied without asking anyone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openraft::ReadPolicy;
use tokio::sync::{mpsc, oneshot};

use super::gather::collect_wave;
use super::peers::{Peers, ReadIndex};
use crate::config::ReadConsistency;
use crate::raft::Raft;
use crate::resp::Frame;

/// Gets the outcome of the confirmation it waits for: the error text when it failed.
type Waiter = oneshot::Sender<Result<(), String>>;

/// Hands out read confirmations.
pub struct ReadBarrier {
    waiters: mpsc::UnboundedSender<Waiter>,
    sole_voter_leader: AtomicBool,
    consistency: ReadConsistency,
}

impl ReadBarrier {
    /// Starts the task that confirms reads against `raft` (through `peers` on a follower).
    pub fn start(raft: Raft, peers: Arc<Peers>, consistency: ReadConsistency) -> ReadBarrier {
        let (waiters, rx) = mpsc::unbounded_channel();
        tokio::spawn(confirm_loop(raft, peers, consistency, rx));
        ReadBarrier {
            waiters,
            sole_voter_leader: AtomicBool::new(false),
            consistency,
        }
    }

    /// Records whether this node leads a membership in which it is the only voter.
    pub fn set_sole_voter_leader(&self, sole: bool) {
        self.sole_voter_leader.store(sole, Ordering::Release);
    }

    /// Whether [`ReadBarrier::confirm`] makes a read linearizable (`read-consistency
    /// linearizable`, the default), not merely fast.
    pub fn is_linearizable(&self) -> bool {
        self.consistency == ReadConsistency::Linearizable
    }

    /// Waits until a read issued now is linearizable on this node.
    pub async fn confirm(&self) -> Result<(), Frame> {
        if self.consistency == ReadConsistency::Local
            || self.sole_voter_leader.load(Ordering::Acquire)
        {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        if self.waiters.send(tx).is_err() {
            return Err(Frame::error("ERR node is shutting down"));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(text)) => Err(Frame::error(text)),
            Err(_) => Err(Frame::error("ERR node is shutting down")),
        }
    }
}

async fn confirm_loop(
    raft: Raft,
    peers: Arc<Peers>,
    consistency: ReadConsistency,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
) {
    while let Some(first) = rx.recv().await {
        // Everyone queued now arrived before this confirmation starts: one round serves all.
        // The connections woken with the first reader queue theirs too before it starts, as
        // a wave of writes gathers (a round costs every node the same however many it serves).
        let batch = collect_wave(&mut rx, first, usize::MAX, |_| 0).await;
        let outcome = confirm(&raft, &peers, consistency).await;
        for waiter in batch {
            let _ = waiter.send(outcome.clone());
        }
    }
}

/// One confirmation: on the leader by itself, on a follower through the leader.
async fn confirm(raft: &Raft, peers: &Peers, consistency: ReadConsistency) -> Result<(), String> {
    // Leadership may move here while a follower's round is under way: then confirm as the
    // leader. Bounded, so a flapping state cannot keep readers forever.
    for _ in 0..3 {
        if raft.is_leader() && consistency == ReadConsistency::Lease {
            // A lease that ran out answers at once; then the quorum round decides.
            if raft
                .ensure_linearizable(ReadPolicy::LeaseRead)
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        if raft.is_leader() {
            return raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map(|_| ())
                .map_err(|e| format!("TRYAGAIN read not confirmed: {e}"));
        }
        match peers.follower_read_index().await {
            ReadIndex::Ready => return Ok(()),
            ReadIndex::Failed(text) => return Err(text),
            ReadIndex::LeadsHere => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    Err("TRYAGAIN read not confirmed: leadership is changing".to_string())
}
