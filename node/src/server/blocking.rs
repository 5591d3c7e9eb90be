//! Clients blocked on keys (`BLPOP`, `BLMOVE`, `BZPOPMIN`, ...): who waits on which key, in
//! arrival order, and waking them when apply reports the key written.
//!
//! A blocked client never pops by itself here: it is only woken, and its own connection then
//! proposes the pop as a log entry, which checks again that the key can serve it (DESIGN.md,
//! "Blocking pops"). So an element is handed out only by an applied entry whose reply goes to
//! a connection that is still there. A key is woken for one waiter at a time, the one that
//! arrived first; when that waiter's pop applies and leaves the key non-empty, the pop's own
//! ready event wakes the next. A waiter that loses a race keeps its place in line.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// One blocked client.
#[derive(Debug)]
pub struct Waiter {
    /// Arrival order: lower is served first, kept across retries.
    seq: u64,
    db: u32,
    keys: Vec<Bytes>,
    /// Set (under the registry lock) when a key it waits on became ready.
    woken: AtomicBool,
    notify: Notify,
}

impl Waiter {
    /// Waits until woken.
    pub async fn woken(&self) {
        self.notify.notified().await
    }

    /// Whether a wake is pending for this waiter.
    pub fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }
}

/// The clients waiting on each (database, key), by arrival number.
type Lines = HashMap<(u32, Bytes), BTreeMap<u64, Arc<Waiter>>>;

/// The registry of blocked clients on one node.
#[derive(Debug, Default)]
pub struct BlockedClients {
    queues: Mutex<Lines>,
    next_seq: AtomicU64,
}

impl BlockedClients {
    /// A fresh arrival number: the client's place in every line it joins.
    pub fn arrival(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Puts a client in line on `keys` of database `db`, at its arrival position `seq`.
    pub fn block(&self, seq: u64, db: u32, keys: &[Bytes]) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter {
            seq,
            db,
            keys: keys.to_vec(),
            woken: AtomicBool::new(false),
            notify: Notify::new(),
        });
        let mut queues = self.queues.lock();
        for key in keys {
            queues
                .entry((db, key.clone()))
                .or_default()
                .insert(seq, waiter.clone());
        }
        waiter
    }

    /// Takes a woken client out of every line to go and pop: its wake is used, and the pop's
    /// own ready event wakes the next client if anything is left.
    pub fn take(&self, waiter: &Waiter) {
        self.leave(waiter, false);
    }

    /// Takes a client out of every line because it gives up (timeout, disconnect). If it had
    /// been woken, the wake passes to the next in line on each of its keys, so a client that
    /// leaves never swallows one.
    pub fn unblock(&self, waiter: &Waiter) {
        self.leave(waiter, true);
    }

    fn leave(&self, waiter: &Waiter, pass_wake: bool) {
        let mut queues = self.queues.lock();
        for key in &waiter.keys {
            let slot = (waiter.db, key.clone());
            if let Some(line) = queues.get_mut(&slot) {
                line.remove(&waiter.seq);
                if line.is_empty() {
                    queues.remove(&slot);
                }
            }
        }
        if pass_wake && waiter.woken.load(Ordering::Acquire) {
            for key in &waiter.keys {
                wake_first(&mut queues, waiter.db, key);
            }
        }
    }

    /// A key may now serve a blocked client: wakes the first in line not already woken.
    pub fn key_ready(&self, db: u32, key: &Bytes) {
        let mut queues = self.queues.lock();
        wake_first(&mut queues, db, key);
    }

    /// Whether anyone waits on `key` (to skip checking keys nobody waits for).
    pub fn has_waiters(&self, db: u32, key: &Bytes) -> bool {
        self.queues.lock().contains_key(&(db, key.clone()))
    }

    /// Number of blocked clients (`INFO clients`' `blocked_clients`).
    pub fn blocked_count(&self) -> usize {
        let queues = self.queues.lock();
        let mut seen: Vec<u64> = queues.values().flat_map(|l| l.keys().copied()).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }
}

fn wake_first(
    queues: &mut HashMap<(u32, Bytes), BTreeMap<u64, Arc<Waiter>>>,
    db: u32,
    key: &Bytes,
) {
    let Some(line) = queues.get(&(db, key.clone())) else {
        return;
    };
    if let Some(next) = line.values().find(|w| !w.woken.load(Ordering::Acquire)) {
        next.woken.store(true, Ordering::Release);
        next.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn wakes_the_first_arrival_one_at_a_time() {
        let blocked = BlockedClients::default();
        let first = blocked.block(blocked.arrival(), 0, &[key("q")]);
        let second = blocked.block(blocked.arrival(), 0, &[key("q"), key("r")]);
        blocked.key_ready(0, &key("q"));
        assert!(first.is_woken() && !second.is_woken());
        // A second ready while the first has not popped yet goes to the next in line.
        blocked.key_ready(0, &key("q"));
        assert!(second.is_woken());
        assert_eq!(blocked.blocked_count(), 2);
        blocked.take(&first);
        blocked.unblock(&second);
        assert_eq!(blocked.blocked_count(), 0);
        assert!(!blocked.has_waiters(0, &key("q")));
    }

    #[test]
    fn a_woken_client_that_leaves_passes_the_wake_on() {
        let blocked = BlockedClients::default();
        let leaving = blocked.block(blocked.arrival(), 0, &[key("q")]);
        let staying = blocked.block(blocked.arrival(), 0, &[key("q")]);
        blocked.key_ready(0, &key("q"));
        blocked.unblock(&leaving);
        assert!(staying.is_woken());
    }

    #[test]
    fn a_retry_keeps_its_place_in_line() {
        let blocked = BlockedClients::default();
        let seq = blocked.arrival();
        let early = blocked.block(seq, 0, &[key("q")]);
        let late = blocked.block(blocked.arrival(), 0, &[key("q")]);
        // The early client lost a race and lines up again with its old number.
        blocked.take(&early);
        let early = blocked.block(seq, 0, &[key("q")]);
        blocked.key_ready(0, &key("q"));
        assert!(early.is_woken() && !late.is_woken());
        // Other databases are other keys.
        blocked.key_ready(1, &key("q"));
        assert!(!late.is_woken());
    }
}
