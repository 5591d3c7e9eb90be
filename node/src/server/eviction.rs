//! The leader's eviction under `maxmemory`: before it proposes writes that may grow memory,
//! it projects the memory in use once they and every write still in flight have applied,
//! and when that passes the limit it picks victims among the keys whose policy allows it
//! (sampled and ranked like Redis's eviction pool) and proposes their deletion in the same
//! message to Raft, ahead of the writes. A background round does the same when memory is
//! over the limit with no write arriving (after `CONFIG SET maxmemory` lowered it).
//!
//! Followers never evict: they apply the leader's eviction entries. Apply refuses a growing
//! command while memory is over the limit, so what the leader cannot free (nothing
//! evictable is left) comes back as `-OOM`, the same on every replica.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{clock, Node};
use crate::command::{self, flag, Resolved};
use crate::keyspace::memory::{entry_size, MemorySettings, Policy, ACCOUNTING_SAMPLES};
use crate::keyspace::{Keyspace, Op, DATABASES};

/// Candidates kept between sampling rounds (Redis's `EVPOOL_SIZE`).
const POOL_SIZE: usize = 16;
/// Most victims chosen for one proposal: a write never waits on an unbounded deletion.
const MAX_VICTIMS: usize = 4096;
/// Sampling rounds in a row that may find no candidate before giving up.
const FRUITLESS_ROUNDS: usize = 8;
/// How often the background round checks memory (Redis's `hz` 10).
const TICK: Duration = Duration::from_millis(100);
/// What one idle minute is worth against one step of an LFU counter, to rank keys of
/// different policies in one pool.
const LFU_STEP_MS: u64 = 60_000;

/// The leader's bookkeeping of evictions and growth that are proposed but not yet applied.
#[derive(Default)]
pub struct Evictor {
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Estimated bytes the writes in flight may add.
    growth: u64,
    /// Estimated bytes the evictions in flight free.
    freed: u64,
    /// The victims in flight, so two proposals never count one key twice.
    victims: HashSet<(u32, Bytes)>,
}

/// What one proposal added to the pending totals, returned with [`Evictor::release`].
#[derive(Debug, Default)]
pub struct Reservation {
    /// Eviction entries to propose ahead of the writes.
    pub evictions: Vec<Op>,
    growth: u64,
    freed: u64,
    victims: Vec<(u32, Bytes)>,
}

impl Evictor {
    /// Plans room for `ops` on the leader: their estimated growth is reserved, and when the
    /// projection passes `maxmemory` victims are chosen whose eviction entries must be
    /// proposed before `ops`. Call [`Evictor::release`] once the proposal is settled.
    pub fn reserve(&self, keyspace: &Keyspace, ops: &[Op]) -> Reservation {
        let settings = keyspace.memory();
        if settings.maxmemory == 0 {
            return Reservation::default();
        }
        let growth: u64 = ops.iter().map(growth_of).sum();
        if growth == 0 {
            return Reservation::default();
        }
        self.plan(keyspace, settings, growth)
    }

    /// Whether `keyspace` runs under a `maxmemory` limit at all.
    pub fn limits(&self, keyspace: &Keyspace) -> bool {
        keyspace.memory().maxmemory != 0
    }

    /// Plans evictions for memory already over the limit (the background round).
    fn reserve_overflow(&self, keyspace: &Keyspace) -> Reservation {
        let settings = keyspace.memory();
        if settings.maxmemory == 0 || keyspace.used_memory() <= settings.maxmemory {
            return Reservation::default();
        }
        self.plan(keyspace, settings, 0)
    }

    fn plan(&self, keyspace: &Keyspace, settings: &MemorySettings, growth: u64) -> Reservation {
        let mut pending = self.pending.lock();
        let projected =
            (keyspace.used_memory() + pending.growth + growth).saturating_sub(pending.freed);
        let mut reservation = Reservation {
            growth,
            ..Reservation::default()
        };
        if projected > settings.maxmemory && settings.evicts_anything() {
            let need = projected - settings.maxmemory;
            let victims = choose_victims(keyspace, settings, need, &pending.victims);
            let mut by_db: Vec<Vec<Bytes>> = vec![Vec::new(); DATABASES as usize];
            for (db, key, bytes) in victims {
                reservation.freed += bytes;
                pending.victims.insert((db, key.clone()));
                reservation.victims.push((db, key.clone()));
                by_db[db as usize].push(key);
            }
            reservation.evictions = by_db
                .into_iter()
                .enumerate()
                .filter(|(_, keys)| !keys.is_empty())
                .map(|(db, keys)| Op::Evict {
                    db: db as u32,
                    keys,
                })
                .collect();
        }
        pending.growth += reservation.growth;
        pending.freed += reservation.freed;
        reservation
    }

    /// Returns what a settled (applied, refused or lost) proposal had reserved.
    pub fn release(&self, reservation: Reservation) {
        if reservation.growth == 0 && reservation.victims.is_empty() {
            return;
        }
        let mut pending = self.pending.lock();
        pending.growth = pending.growth.saturating_sub(reservation.growth);
        pending.freed = pending.freed.saturating_sub(reservation.freed);
        for victim in &reservation.victims {
            pending.victims.remove(victim);
        }
    }
}

/// The estimated bytes a write may add: its arguments and a key's overhead for each
/// growing command; nothing for the rest.
fn growth_of(op: &Op) -> u64 {
    let command = |args: &[Bytes]| match command::resolve(args) {
        Resolved::Command(spec) if spec.flags & flag::DENYOOM != 0 => {
            crate::keyspace::memory::KEY_OVERHEAD
                + args[1..].iter().map(|a| a.len() as u64 + 16).sum::<u64>()
        }
        _ => 0,
    };
    match op {
        Op::Command { args, .. } => command(args),
        Op::Exec { commands, .. } => commands.iter().map(|c| command(c)).sum(),
        Op::Client { ops, .. } | Op::Batch(ops) => ops.iter().map(growth_of).sum(),
        Op::AsUser { op, .. } => growth_of(op),
        _ => 0,
    }
}

/// One eviction candidate: higher `rank` goes first.
struct Candidate {
    rank: u64,
    db: u32,
    key: Bytes,
    bytes: u64,
}

/// Picks keys whose policy allows eviction until their estimated bytes reach `need`, like
/// Redis: each round samples `maxmemory-samples` keys per database (and as many among
/// those with a TTL), keeps the best candidates in a small pool, and evicts the best one.
fn choose_victims(
    keyspace: &Keyspace,
    settings: &MemorySettings,
    need: u64,
    in_flight: &HashSet<(u32, Bytes)>,
) -> Vec<(u32, Bytes, u64)> {
    let now = clock::now_ms().max(keyspace.clock_ms());
    let samples = settings.samples.max(1) as usize;
    let mut pool: Vec<Candidate> = Vec::with_capacity(POOL_SIZE + 1);
    let mut chosen: HashSet<(u32, Bytes)> = HashSet::new();
    let mut victims = Vec::new();
    let mut freed = 0;
    let mut fruitless = 0;
    while freed < need && victims.len() < MAX_VICTIMS && fruitless < FRUITLESS_ROUNDS {
        for db in 0..DATABASES {
            let Some(database) = keyspace.db(db) else {
                continue;
            };
            if database.is_empty() {
                continue;
            }
            let start: u64 = rand::random();
            let mut sampled: Vec<(Bytes, &crate::keyspace::Entry)> = database
                .range_from(start)
                .chain(database.range_from(0))
                .take(samples)
                .map(|(_, k, e)| (k.to_bytes(), e))
                .collect();
            if database.volatile_len() > 0 {
                for (key, _) in database.sample_volatile(start, samples) {
                    if let Some(entry) = database.get_any(&key) {
                        sampled.push((key, entry));
                    }
                }
            }
            for (key, entry) in sampled {
                let id = (db, key);
                if in_flight.contains(&id)
                    || chosen.contains(&id)
                    || pool.iter().any(|c| c.db == db && c.key == id.1)
                {
                    continue;
                }
                let policy = settings.policy_for(&id.1);
                if !policy.may_evict(entry.expires_at().is_some()) {
                    continue;
                }
                let rank = rank(policy, entry, now, settings);
                let bytes = entry_size(&id.1, entry, ACCOUNTING_SAMPLES);
                pool.push(Candidate {
                    rank,
                    db,
                    key: id.1,
                    bytes,
                });
            }
        }
        pool.sort_by_key(|c| std::cmp::Reverse(c.rank));
        pool.truncate(POOL_SIZE);
        // A candidate that vanished since it was sampled is skipped.
        let best = loop {
            if pool.is_empty() {
                break None;
            }
            let candidate = pool.remove(0);
            let alive = keyspace
                .db(candidate.db)
                .and_then(|d| d.get_any(&candidate.key))
                .is_some();
            if alive {
                break Some(candidate);
            }
        };
        match best {
            None => fruitless += 1,
            Some(victim) => {
                fruitless = 0;
                freed += victim.bytes;
                chosen.insert((victim.db, victim.key.clone()));
                victims.push((victim.db, victim.key, victim.bytes));
            }
        }
    }
    victims
}

/// How strongly a key asks to be evicted, in idle-millisecond equivalents.
fn rank(
    policy: Policy,
    entry: &crate::keyspace::Entry,
    now: u64,
    settings: &MemorySettings,
) -> u64 {
    let idle = now.saturating_sub(entry.access.time_ms());
    match policy {
        Policy::AllKeysLfu | Policy::VolatileLfu => {
            let counter = entry.access.counter(now, settings.lfu_decay_time) as u64;
            (255 - counter) * LFU_STEP_MS
        }
        // Up to about 50 days' worth of idleness, at random.
        Policy::AllKeysRandom | Policy::VolatileRandom => rand::random::<u64>() >> 32,
        // The nearest deadline first.
        Policy::VolatileTtl => {
            let left = entry
                .expires_at()
                .map_or(u64::MAX, |at| at.saturating_sub(now));
            u64::MAX / 2 - left.min(u64::MAX / 2)
        }
        Policy::AllKeysLru | Policy::VolatileLru | Policy::NoEviction => idle,
    }
}

/// Runs until the node stops: while this node leads and memory is over the limit with no
/// write to make room for, proposes evictions.
pub async fn run(node: Arc<Node>) {
    let mut ticker = tokio::time::interval(TICK);
    let mut writer = node.writer(0);
    loop {
        ticker.tick().await;
        if !node.is_leader() {
            continue;
        }
        propose_start_settings(&node, &mut writer).await;
        let reservation = {
            let keyspace = node.keyspace.read();
            node.evictor.reserve_overflow(&keyspace)
        };
        if reservation.evictions.is_empty() {
            node.evictor.release(reservation);
            continue;
        }
        let ops = reservation.evictions.clone();
        for op in ops {
            node.write(&mut writer, op).await;
        }
        node.evictor.release(reservation);
    }
}

/// Proposes this node's configured memory settings when the ones in force came from a
/// different configuration (apply checks again, so a stale view proposes harmlessly).
async fn propose_start_settings(node: &Node, writer: &mut super::Writer) {
    let mut configured = node.config.memory.clone();
    configured.origin = configured.fingerprint();
    if node.keyspace.read().memory().origin == configured.origin {
        return;
    }
    let reply = node.write(writer, Op::MemoryAtStart(configured)).await;
    if reply.is_error() {
        tracing::warn!(?reply, "could not propose this node's memory settings");
    }
}
