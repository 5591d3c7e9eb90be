//! Workload 3, caches under `maxmemory`: the cell runs with a small limit and per-prefix
//! rules (`cache:` → `allkeys-lru`, the queues, `unacked*` and the kill switch →
//! `noeviction`), and cache clients keep writing 400-byte `cache:` values through random
//! members while reading back earlier ones, so the leader evicts all through the run,
//! across crashes, partitions and leader changes.
//!
//! Checked:
//! - a cache read returns either nothing (evicted) or exactly the value last written under
//!   that key by this client (keys are per client, values never reused);
//! - no cache write is refused with `-OOM`: there is always a cache key to evict, so the
//!   leader must always make room (a refusal means it did not);
//! - at the end some cache keys were evicted (the workload did drive eviction);
//! - and, by the other workloads' checkers, that nothing outside `cache:` is ever evicted: an
//!   evicted queue item would be a lost task, an evicted kill switch a non-linearizable read.
//!
//! The memory bound itself (used ≤ limit + one write) is sampled on every member by the
//! invariant monitor.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cellkv_node::resp::Frame;
use madsim::rand::{thread_rng, Rng};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::client::{CallError, Members, Roster};

/// The `maxmemory` every member starts with when the workload runs.
pub const LIMIT: &str = "64kb";
/// Its value in bytes.
pub const LIMIT_BYTES: u64 = 64 * 1024;
/// The eviction rules every member starts with.
pub const RULES: [&str; 6] = [
    "cache:=allkeys-lru",
    "default=noeviction",
    "backtest=noeviction",
    "agents=noeviction",
    "unacked=noeviction",
    "alphaswarm:=noeviction",
];
/// Bytes of each cache value.
const VALUE_LEN: usize = 400;

/// What the cache clients saw.
#[derive(Default, Debug)]
pub struct CacheLog {
    /// Writes acknowledged.
    pub written: u64,
    /// Reads that found the value written.
    pub hits: u64,
    /// Reads that found nothing (evicted or never applied).
    pub misses: u64,
    /// Growing writes refused with `-OOM`.
    pub oom: u64,
    /// When the first of them were answered (ms since the run began), for the report.
    pub oom_at: Vec<u64>,
    /// Reads that returned a value this client never wrote there.
    pub corrupt: Vec<String>,
}

/// The shared log.
pub type SharedCacheLog = Arc<Mutex<CacheLog>>;

/// One cache client.
pub struct CacheClient {
    id: u32,
    members: Members,
    log: SharedCacheLog,
    /// Per key number: every value possibly written there (acknowledged or unknown).
    written: BTreeMap<u64, Vec<u64>>,
    seq: u64,
    origin: Instant,
}

fn value_text(value: u64) -> Vec<u8> {
    let mut text = value.to_string().into_bytes();
    text.resize(VALUE_LEN, b'.');
    text
}

impl CacheClient {
    /// A client; its keys are `cache:{id}:{n}`.
    pub fn new(id: u32, roster: Roster, origin: Instant, log: SharedCacheLog) -> CacheClient {
        CacheClient {
            id,
            members: Members::new(roster),
            log,
            written: BTreeMap::new(),
            seq: 0,
            origin,
        }
    }

    async fn call(
        &mut self,
        target: SocketAddr,
        args: &[&[u8]],
    ) -> Option<Result<Frame, CallError>> {
        self.members
            .call(target, args, Duration::from_secs(4))
            .await
    }

    fn key(&self, n: u64) -> Vec<u8> {
        format!("cache:{}:{n}", self.id).into_bytes()
    }

    /// Writes a new value under one of this client's keys (mostly new keys, sometimes an
    /// old one again), then reads a random earlier key back.
    pub async fn step(&mut self) {
        self.seq += 1;
        let n = if self.seq > 10 && thread_rng().gen_bool(0.2) {
            thread_rng().gen_range(1..self.seq)
        } else {
            self.seq
        };
        let value = u64::from(self.id) * 1_000_000 + self.seq;
        let key = self.key(n);
        let target = self.members.pick();
        if let Some(result) = self.call(target, &[b"SET", &key, &value_text(value)]).await {
            let mut log = self.log.lock();
            match result {
                Ok(Frame::Simple(_)) => log.written += 1,
                Ok(Frame::Error(e)) if e.starts_with("OOM") => {
                    log.oom += 1;
                    if log.oom_at.len() < 5 {
                        let at = Instant::now().duration_since(self.origin).as_millis() as u64;
                        log.oom_at.push(at);
                    }
                }
                _ => {}
            }
            // Whatever the reply, the value may be there now.
            self.written.entry(n).or_default().push(value);
        }
        let probe = thread_rng().gen_range(1..=self.seq);
        let key = self.key(probe);
        let target = self.members.pick();
        let Some(Ok(reply)) = self.call(target, &[b"GET", &key]).await else {
            return;
        };
        let mut log = self.log.lock();
        match reply {
            Frame::Null => log.misses += 1,
            Frame::Bulk(bytes) => {
                let known = self
                    .written
                    .get(&probe)
                    .is_some_and(|values| values.iter().any(|v| value_text(*v) == bytes));
                if known {
                    log.hits += 1;
                } else if log.corrupt.len() < 10 {
                    log.corrupt.push(format!(
                        "cache:{}:{probe} read {:?}",
                        self.id,
                        String::from_utf8_lossy(&bytes[..bytes.len().min(20)])
                    ));
                }
            }
            _ => {}
        }
    }

    /// Steps until `end`, one every 10 ms or so.
    pub async fn run_until(&mut self, end: Instant) {
        while Instant::now() < end {
            self.step().await;
            let pause = thread_rng().gen_range(5..15);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

impl CacheLog {
    /// The checks listed in the module documentation.
    pub fn verify(&self, evicted: u64) -> Vec<String> {
        let mut problems: Vec<String> = self
            .corrupt
            .iter()
            .map(|c| format!("cache: wrong value: {c}"))
            .collect();
        if self.oom > 0 {
            problems.push(format!(
                "cache: {} writes refused with -OOM while cache keys could be evicted (at {:?} ms)",
                self.oom, self.oom_at
            ));
        }
        // About 120 values fit under the limit.
        if self.written > 300 && evicted == 0 {
            problems.push(format!(
                "cache: {} writes of {VALUE_LEN} bytes under a {LIMIT} limit evicted nothing",
                self.written
            ));
        }
        problems
    }
}
