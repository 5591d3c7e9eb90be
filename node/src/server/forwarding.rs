//! A follower's forward gatherer: the write batches that connections on this node send to the
//! leader during one wave of requests travel in one `Forward` call instead of one call each,
//! and the leader proposes them as one entry (`gather`). The per-call work (encoding, the
//! HTTP/2 frames on both ends, the leader's proposal) is then paid once per wave. Each batch
//! keeps its own session number, so a wave sent again after an unknown outcome still applies
//! each batch at most once.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::gather::{collect_wave, hand_in, hand_out_shares, Handed};
use super::peers::{Forwarded, Peers};
use crate::keyspace::Op;
use crate::raft::NodeId;

/// Most connection batches sent in one call.
const MAX_BATCHES: usize = 1024;

/// One connection's batch waiting to be forwarded, keyed by the leader it goes to.
type Waiting = Handed<NodeId, Forwarded>;

/// The handle connections forward through.
pub struct Forwarder {
    waiting: mpsc::UnboundedSender<Waiting>,
}

impl Forwarder {
    /// Starts the gathering task; it ends when the forwarder is dropped.
    pub fn start(peers: Arc<Peers>) -> (Forwarder, tokio::task::JoinHandle<()>) {
        let (waiting, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(gather(peers, incoming));
        (Forwarder { waiting }, task)
    }

    /// Forwards `ops` to `leader` with the other batches of this wave and returns their
    /// replies, as [`Peers::forward`] does for one batch.
    pub async fn forward(&self, leader: NodeId, ops: &[Op]) -> Forwarded {
        let Some(replied) = hand_in(&self.waiting, leader, ops.to_vec()) else {
            return Forwarded::Failed("ERR the node is stopping".to_string());
        };
        replied
            .await
            .unwrap_or_else(|_| Forwarded::Unknown("the node is stopping".to_string()))
    }
}

/// Receives batches and sends each wave ([`collect_wave`]) to the leaders it names, each
/// leader's share in a call of its own task, so that waves overlap as writes do on the
/// leader.
async fn gather(peers: Arc<Peers>, mut incoming: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(first) = incoming.recv().await {
        let wave = collect_wave(&mut incoming, first, MAX_BATCHES, |w| w.bytes).await;
        // Connections route on their own view of the leader; during a change they may
        // name different ones.
        let mut by_leader: BTreeMap<NodeId, Vec<Waiting>> = BTreeMap::new();
        for waiting in wave {
            by_leader.entry(waiting.key).or_default().push(waiting);
        }
        for (leader, share) in by_leader {
            tokio::spawn(send(peers.clone(), leader, share));
        }
    }
}

/// Forwards one leader's share of a wave and hands each batch its replies.
async fn send(peers: Arc<Peers>, leader: NodeId, share: Vec<Waiting>) {
    let mut ops = Vec::with_capacity(share.iter().map(|w| w.ops.len()).sum());
    let mut waiters = Vec::with_capacity(share.len());
    for waiting in share {
        waiters.push((waiting.ops.len(), waiting.reply));
        ops.extend(waiting.ops);
    }
    let outcome = peers.forward(leader, &ops).await;
    hand_out(waiters, outcome);
}

/// Splits a forwarded wave's outcome among its batches.
fn hand_out(waiters: Vec<(usize, oneshot::Sender<Forwarded>)>, outcome: Forwarded) {
    let outcome = match outcome {
        Forwarded::Replies(frames) => Ok(frames),
        failure => Err(failure),
    };
    hand_out_shares(outcome, waiters, Forwarded::Replies, || {
        Forwarded::Failed(
            "ERR the leader answered a forwarded wave with too few replies".to_string(),
        )
    });
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::resp::Frame;

    #[test]
    fn a_forwarded_waves_replies_are_split_by_batch_and_failures_reach_everyone() {
        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        hand_out(
            vec![(2, first), (1, second)],
            Forwarded::Replies(vec![Frame::ok(), Frame::Integer(7), Frame::Null]),
        );
        assert!(matches!(
            first_rx.try_recv(),
            Ok(Forwarded::Replies(frames)) if frames == vec![Frame::ok(), Frame::Integer(7)]
        ));
        assert!(matches!(
            second_rx.try_recv(),
            Ok(Forwarded::Replies(frames)) if frames == vec![Frame::Null]
        ));

        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        hand_out(
            vec![(1, first), (1, second)],
            Forwarded::Unknown("leader lost".to_string()),
        );
        for rx in [&mut first_rx, &mut second_rx] {
            assert!(
                matches!(rx.try_recv(), Ok(Forwarded::Unknown(reason)) if reason == "leader lost")
            );
        }

        let (short, mut short_rx) = oneshot::channel();
        hand_out(vec![(2, short)], Forwarded::Replies(vec![Frame::ok()]));
        assert!(
            matches!(short_rx.try_recv(), Ok(Forwarded::Failed(_))),
            "a batch the replies do not cover is not answered with a part of them"
        );
    }
}
