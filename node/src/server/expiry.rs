//! The leader's active expiry: like Redis's, it samples keys that carry a TTL, and proposes
//! the deletion of those past their deadline through the log, repeating while a sample is
//! more than a quarter expired. Followers never delete on their own (DESIGN.md rule 3).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Node;
use crate::keyspace::{Op, DATABASES};
use crate::resp::Frame;

/// Keys examined per sample: more than Redis's 20, since each round costs a log entry.
const SAMPLE: usize = 256;
/// Time spent per tick at most, so expiry never crowds out clients.
const BUDGET: Duration = Duration::from_millis(25);
/// Ticks per second (Redis's `hz` 10).
const TICK: Duration = Duration::from_millis(100);

/// Runs until the node stops.
pub async fn run(node: Arc<Node>) {
    let mut ticker = tokio::time::interval(TICK);
    let mut writer = node.writer(0);
    loop {
        ticker.tick().await;
        if !node.is_leader() {
            continue;
        }
        // tokio's Instant is the simulator's under madsim, so this stays deterministic.
        #[allow(clippy::disallowed_methods)]
        let started = tokio::time::Instant::now();
        for db in 0..DATABASES {
            while started.elapsed() < BUDGET {
                let (sampled, expired) = sample_expired(&node, db);
                if expired.is_empty() {
                    break;
                }
                let count = expired.len();
                if let Frame::Integer(deleted) = node
                    .write(&mut writer, Op::Expire { db, keys: expired })
                    .await
                {
                    node.stats
                        .expired_keys
                        .fetch_add(deleted.max(0) as u64, Ordering::Relaxed);
                }
                if count * 4 <= sampled {
                    break;
                }
            }
        }
    }
}

/// Samples keys with a TTL from a random point and returns (sampled, expired ones).
fn sample_expired(node: &Node, db: u32) -> (usize, Vec<Bytes>) {
    let start: u64 = rand::random();
    let keyspace = node.keyspace.read();
    // Cell time, the leader's stamps' clock: a jump of this node's wall clock must not
    // delete keys early (forward) or keep them (back).
    let now = node.cell_now_ms(&keyspace);
    let Some(database) = keyspace.db(db) else {
        return (0, Vec::new());
    };
    if database.volatile_len() == 0 {
        return (0, Vec::new());
    }
    let sample = database.sample_volatile(start, SAMPLE);
    let sampled = sample.len();
    let expired = sample
        .into_iter()
        .filter(|(_, at)| *at <= now)
        .map(|(k, _)| k)
        .collect();
    (sampled, expired)
}
