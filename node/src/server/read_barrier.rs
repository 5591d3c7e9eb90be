//! Linearizable reads with shared confirmations: every read waits until the leader has
//! confirmed its leadership and applied everything committed before the read arrived
//! (openraft's read-index). One confirmation serves every reader that was waiting when it
//! started, so many concurrent readers cost one round through Raft, not one each.

use openraft::ReadPolicy;
use tokio::sync::{mpsc, oneshot};

use crate::raft::Raft;
use crate::resp::Frame;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Hands out read confirmations.
pub struct ReadBarrier {
    waiters: mpsc::UnboundedSender<Waiter>,
}

impl ReadBarrier {
    /// Starts the task that confirms reads against `raft`.
    pub fn start(raft: Raft) -> ReadBarrier {
        let (waiters, rx) = mpsc::unbounded_channel();
        tokio::spawn(confirm_loop(raft, rx));
        ReadBarrier { waiters }
    }

    /// Waits until a read issued now is linearizable on this node.
    pub async fn confirm(&self) -> Result<(), Frame> {
        let (tx, rx) = oneshot::channel();
        if self.waiters.send(tx).is_err() {
            return Err(Frame::error("ERR node is shutting down"));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Frame::error(format!(
                "TRYAGAIN read not confirmed: {reason}"
            ))),
            Err(_) => Err(Frame::error("ERR node is shutting down")),
        }
    }
}

async fn confirm_loop(raft: Raft, mut rx: mpsc::UnboundedReceiver<Waiter>) {
    while let Some(first) = rx.recv().await {
        // Everyone queued now arrived before this confirmation starts: one round serves all.
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let outcome = raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        for waiter in batch {
            let _ = waiter.send(outcome.clone());
        }
    }
}
