//! Memory accounting and the eviction rules.
//!
//! - The size estimate of a key ([`entry_size`]) is a pure function of its name and entry,
//!   so every replica sums the same `used_memory`, and a change is accounted for as the
//!   difference of two estimates of the same function.
//! - The `maxmemory` settings ([`MemorySettings`]) are replicated state: the limit, the
//!   default policy and the per-prefix policies are decided once, in the log, and every node
//!   refuses the same growing commands at the same entry.
//! - The access stamp of a key ([`Access`]: last access time and LFU counter) is local
//!   metadata: reads on this node and writes applied here move it. The leader ranks eviction
//!   candidates by it; it is neither replicated nor part of a snapshot's identity.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{compact, CompactBytes, Entry, HashFields, Value};

/// Elements examined to estimate a large collection's size, extrapolated to all of it (as
/// Redis's `MEMORY USAGE ... SAMPLES` does); collections up to this size are summed exactly.
pub const ACCOUNTING_SAMPLES: usize = 16;

/// Redis's `-OOM` reply to a growing command over `maxmemory`.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// What the keyspace may evict under memory pressure (Redis's `maxmemory-policy` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// Never evict: growing commands fail with `-OOM` instead.
    NoEviction,
    /// Any key, least recently used first.
    AllKeysLru,
    /// Any key, least frequently used first.
    AllKeysLfu,
    /// Any key, at random.
    AllKeysRandom,
    /// Keys with an expiry, least recently used first.
    VolatileLru,
    /// Keys with an expiry, least frequently used first.
    VolatileLfu,
    /// Keys with an expiry, at random.
    VolatileRandom,
    /// Keys with an expiry, the nearest deadline first.
    VolatileTtl,
}

impl Policy {
    /// Every policy with its Redis name.
    pub const ALL: [(Policy, &'static str); 8] = [
        (Policy::NoEviction, "noeviction"),
        (Policy::AllKeysLru, "allkeys-lru"),
        (Policy::AllKeysLfu, "allkeys-lfu"),
        (Policy::AllKeysRandom, "allkeys-random"),
        (Policy::VolatileLru, "volatile-lru"),
        (Policy::VolatileLfu, "volatile-lfu"),
        (Policy::VolatileRandom, "volatile-random"),
        (Policy::VolatileTtl, "volatile-ttl"),
    ];

    /// The policy named `name` (case-insensitive).
    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(p, _)| *p)
    }

    /// The Redis name.
    pub fn name(self) -> &'static str {
        Policy::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("noeviction", |(_, n)| n)
    }

    /// Whether a key governed by this policy may be evicted (`volatile` ones only with a TTL).
    pub fn may_evict(self, has_expiry: bool) -> bool {
        match self {
            Policy::NoEviction => false,
            Policy::AllKeysLru | Policy::AllKeysLfu | Policy::AllKeysRandom => true,
            Policy::VolatileLru
            | Policy::VolatileLfu
            | Policy::VolatileRandom
            | Policy::VolatileTtl => has_expiry,
        }
    }

    /// Whether access frequency (not recency) ranks keys under this policy.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    /// Whether recency ranks keys under this policy (`OBJECT IDLETIME` is answered).
    pub fn is_lru(self) -> bool {
        matches!(self, Policy::AllKeysLru | Policy::VolatileLru)
    }
}

/// One `[[eviction]]` rule: keys starting with `prefix` follow `policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixRule {
    /// The key prefix.
    pub prefix: Bytes,
    /// The policy of the keys under it.
    pub policy: Policy,
}

impl PrefixRule {
    /// Parses `PREFIX=POLICY` (the `--eviction` flag's form).
    pub fn parse(text: &str) -> Result<PrefixRule, String> {
        let (prefix, policy) = text
            .rsplit_once('=')
            .ok_or_else(|| format!("'{text}' is not PREFIX=POLICY"))?;
        let policy = Policy::parse(policy.trim())
            .ok_or_else(|| format!("unknown eviction policy '{}'", policy.trim()))?;
        Ok(PrefixRule {
            prefix: Bytes::copy_from_slice(prefix.as_bytes()),
            policy,
        })
    }
}

/// The replicated memory settings: what apply refuses and what the leader may evict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemorySettings {
    /// `maxmemory` in bytes; 0 = no limit.
    pub maxmemory: u64,
    /// `maxmemory-policy`: the policy of keys no prefix rule matches.
    pub policy: Policy,
    /// `maxmemory-samples`: keys sampled per eviction round.
    pub samples: u32,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`, in minutes.
    pub lfu_decay_time: u32,
    /// The per-prefix policies; the longest matching prefix governs a key.
    pub rules: Vec<PrefixRule>,
    /// Fingerprint of the node configuration that last proposed these settings at start (0
    /// if none has): a new leader whose own configuration differs proposes its own.
    pub origin: u64,
}

impl Default for MemorySettings {
    fn default() -> Self {
        MemorySettings {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            rules: Vec::new(),
            origin: 0,
        }
    }
}

impl MemorySettings {
    /// The policy governing `key`: the longest matching prefix rule's, else the default.
    pub fn policy_for(&self, key: &[u8]) -> Policy {
        self.rules
            .iter()
            .filter(|rule| key.starts_with(&rule.prefix))
            .max_by_key(|rule| rule.prefix.len())
            .map_or(self.policy, |rule| rule.policy)
    }

    /// Whether `key` (with or without an expiry) may be evicted.
    pub fn may_evict(&self, key: &[u8], has_expiry: bool) -> bool {
        self.policy_for(key).may_evict(has_expiry)
    }

    /// Whether any key at all could ever be evicted under these settings.
    pub fn evicts_anything(&self) -> bool {
        self.policy != Policy::NoEviction
            || self.rules.iter().any(|r| r.policy != Policy::NoEviction)
    }

    /// Whether a growing command must be refused with `used` bytes in use.
    pub fn refuses_growth(&self, used: u64) -> bool {
        self.maxmemory > 0 && used > self.maxmemory
    }

    /// The replicated option names and their values as `CONFIG GET` shows them.
    pub fn config_values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("maxmemory", self.maxmemory.to_string()),
            ("maxmemory-policy", self.policy.name().to_string()),
            ("maxmemory-samples", self.samples.to_string()),
            ("lfu-log-factor", self.lfu_log_factor.to_string()),
            ("lfu-decay-time", self.lfu_decay_time.to_string()),
            (
                "eviction",
                self.rules
                    .iter()
                    .map(|r| format!("{}={}", String::from_utf8_lossy(&r.prefix), r.policy.name()))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ]
    }

    /// Whether `name` is one of the options [`MemorySettings::set`] takes.
    pub fn is_option(name: &str) -> bool {
        MemorySettings::default()
            .config_values()
            .iter()
            .any(|(n, _)| *n == name)
    }

    /// Sets one option from its `CONFIG SET` text; the error says why a value is refused.
    /// `eviction` takes space-separated `PREFIX=POLICY` rules and replaces them all.
    pub fn set(&mut self, name: &[u8], value: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(value).map_err(|_| "argument is not UTF-8".to_string())?;
        let number = |min: u64, max: u64| -> Result<u64, String> {
            text.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("argument must be between {min} and {max} inclusive"))
        };
        match name.to_ascii_lowercase().as_slice() {
            b"maxmemory" => {
                self.maxmemory = parse_memory(text)
                    .ok_or_else(|| "argument must be a memory value".to_string())?;
            }
            b"maxmemory-policy" => {
                self.policy =
                    Policy::parse(text.trim()).ok_or_else(|| "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction".to_string())?;
            }
            b"maxmemory-samples" => self.samples = number(1, 64)? as u32,
            b"lfu-log-factor" => self.lfu_log_factor = number(0, i32::MAX as u64)? as u32,
            b"lfu-decay-time" => self.lfu_decay_time = number(0, i32::MAX as u64)? as u32,
            b"eviction" => {
                let rules = text
                    .split_whitespace()
                    .map(PrefixRule::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                let mut seen = std::collections::BTreeSet::new();
                if let Some(twice) = rules.iter().find(|r| !seen.insert(r.prefix.clone())) {
                    return Err(format!(
                        "prefix '{}' has two rules",
                        String::from_utf8_lossy(&twice.prefix)
                    ));
                }
                self.rules = rules;
            }
            _ => return Err("unknown option".to_string()),
        }
        Ok(())
    }

    /// A fingerprint of everything but `origin`, to tell configurations apart.
    pub fn fingerprint(&self) -> u64 {
        let plain = MemorySettings {
            origin: 0,
            ..self.clone()
        };
        match postcard::to_allocvec(&plain) {
            Ok(bytes) => xxhash_rust::xxh3::xxh3_64(&bytes).max(1),
            Err(_) => 1,
        }
    }
}

/// Parses a memory amount in Redis's units: `1024`, `64mb`, `2gb`, `100k` (k/m/g are powers
/// of 1000, kb/mb/gb of 1024, case-insensitive).
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Bytes as Redis's `*_human` fields print them (`1.50M`).
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    const K: f64 = 1024.0;
    if b < K {
        format!("{bytes}B")
    } else if b < K * K {
        format!("{:.2}K", b / K)
    } else if b < K * K * K {
        format!("{:.2}M", b / (K * K))
    } else if b < K * K * K * K {
        format!("{:.2}G", b / (K * K * K))
    } else {
        format!("{:.2}T", b / (K * K * K * K))
    }
}

/// The LFU counter of a key just created (Redis's `LFU_INIT_VAL`), so that a new key is not
/// evicted before it had a chance to be used.
pub const LFU_INIT: u8 = 5;

/// When a key was last accessed (ms, 48 bits) and its logarithmic access counter (8 bits),
/// in one word so a read can update it under the keyspace's read lock.
///
/// Local metadata: two replicas may hold different stamps for the same key, so it takes no
/// part in equality (an entry equals another whatever their stamps).
#[derive(Debug, Default)]
pub struct Access(AtomicU64);

const TIME_SHIFT: u32 = 16;
const COUNTER_MASK: u64 = 0xff;

impl Access {
    /// A stamp for a key written at `now_ms` and not yet read.
    pub fn new(now_ms: u64) -> Access {
        Access(AtomicU64::new(pack(now_ms, LFU_INIT)))
    }

    /// Time of the last access, in ms since the epoch.
    pub fn time_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed) >> TIME_SHIFT
    }

    /// The LFU counter as stored, before decay.
    pub fn raw_counter(&self) -> u8 {
        (self.0.load(Ordering::Relaxed) & COUNTER_MASK) as u8
    }

    /// The LFU counter decayed to `now_ms`: one step per `decay_minutes` since the last access.
    pub fn counter(&self, now_ms: u64, decay_minutes: u32) -> u8 {
        let word = self.0.load(Ordering::Relaxed);
        decayed(word, now_ms, decay_minutes)
    }

    /// Records an access at `now_ms`: the time moves, and the counter decays and then grows
    /// with probability 1/((counter - 5) * log_factor + 1), `coin` being uniform random bits.
    pub fn touch(&self, now_ms: u64, coin: u64, log_factor: u32, decay_minutes: u32) {
        let word = self.0.load(Ordering::Relaxed);
        let mut counter = decayed(word, now_ms, decay_minutes);
        if counter < u8::MAX {
            let base = counter.saturating_sub(LFU_INIT) as f64;
            let chance = 1.0 / (base * log_factor as f64 + 1.0);
            let roll = (coin >> 11) as f64 / (1u64 << 53) as f64;
            if roll < chance {
                counter += 1;
            }
        }
        self.0.store(pack(now_ms, counter), Ordering::Relaxed);
    }

    /// Moves only the time (a write applied at `now_ms` keeps the frequency it had).
    pub fn set_time(&self, now_ms: u64) {
        let counter = self.raw_counter();
        self.0.store(pack(now_ms, counter), Ordering::Relaxed);
    }
}

fn pack(time_ms: u64, counter: u8) -> u64 {
    (time_ms << TIME_SHIFT) | counter as u64
}

fn decayed(word: u64, now_ms: u64, decay_minutes: u32) -> u8 {
    let counter = (word & COUNTER_MASK) as u8;
    if decay_minutes == 0 {
        return counter;
    }
    let idle_minutes = now_ms.saturating_sub(word >> TIME_SHIFT) / 60_000;
    let periods = idle_minutes / decay_minutes as u64;
    counter.saturating_sub(periods.min(255) as u8)
}

impl Clone for Access {
    fn clone(&self) -> Self {
        Access(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl PartialEq for Access {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// Bytes one key costs besides what its name and value hold on the heap: the shared bucket
/// (one 80-byte allocation with the name and value in place when short, see `db.rs`) and its
/// share of the ordered slot map's nodes. Calibrated against the resident size a keyspace of
/// a million short string keys takes (docs/benchmarks.md).
pub const KEY_OVERHEAD: u64 = 128;
/// Bytes an expiry adds (the volatile index).
pub const EXPIRY_OVERHEAD: u64 = 24;
/// Bytes a collection's own header costs (the boxed persistent structure).
const COLLECTION_OVERHEAD: u64 = 64;

/// A heap allocation of `len` bytes as the allocator hands it out: rounded up to 16 bytes,
/// none for an empty one.
fn alloc(len: usize) -> u64 {
    if len == 0 {
        0
    } else {
        (len as u64).div_ceil(16) * 16
    }
}

/// The heap bytes of a key or string value of `len` bytes ([`super::CompactBytes`]): none when
/// held in place, else the boxed handle and its buffer.
fn compact_size(len: usize) -> u64 {
    if len <= compact::INLINE {
        0
    } else {
        alloc(std::mem::size_of::<Bytes>()) + alloc(len)
    }
}

/// The estimated bytes `name` and its entry occupy, with collections larger than `samples`
/// extrapolated from their first `samples` elements (0 = examine every element).
pub fn entry_size(name: &[u8], entry: &Entry, samples: usize) -> u64 {
    let fixed = KEY_OVERHEAD
        + compact_size(name.len())
        + if entry.expires_at().is_some() {
            EXPIRY_OVERHEAD
        } else {
            0
        };
    fixed + value_size(&entry.value, samples)
}

/// The estimated bytes of a value alone.
pub fn value_size(value: &Value, samples: usize) -> u64 {
    // A list element: the Bytes handle and its allocation, plus its share of the tree node.
    let list_item = |b: &Bytes| 40 + alloc(b.len());
    match value {
        Value::Str(s) => compact_size(s.len()),
        Value::List(list) => {
            COLLECTION_OVERHEAD + extrapolate(list.len(), samples, list.iter().map(list_item))
        }
        // A small hash is its boxed header and one buffer, summed exactly; a larger one's pair
        // is two `CompactBytes` and its share of the tree node.
        Value::Hash(hash) => match hash.packed_bytes() {
            Some(bytes) => alloc(std::mem::size_of::<HashFields>()) + alloc(bytes),
            None => {
                COLLECTION_OVERHEAD
                    + extrapolate(
                        hash.len(),
                        samples,
                        hash.iter()
                            .map(|(f, v)| 56 + compact_size(f.len()) + compact_size(v.len())),
                    )
            }
        },
        // A set member is a `CompactBytes` in the tree node (a short one has no allocation).
        Value::Set(set) => {
            let member = |m: &CompactBytes| 32 + compact_size(m.len());
            COLLECTION_OVERHEAD + extrapolate(set.len(), samples, set.iter().map(member))
        }
        // Each member sits in two trees (by member and by score), a `CompactBytes` beside an
        // 8-byte score in each; a long member's two handles share one copy of its bytes.
        Value::ZSet(zset) => {
            let member = |m: &CompactBytes| {
                let heap = if m.len() <= compact::INLINE {
                    0
                } else {
                    2 * alloc(std::mem::size_of::<Bytes>()) + alloc(m.len())
                };
                2 * 40 + heap
            };
            COLLECTION_OVERHEAD
                + extrapolate(zset.len(), samples, zset.by_member().keys().map(member))
        }
    }
}

/// The sum of `sizes` over a collection of `len` elements: exact up to `samples` elements,
/// else the first `samples` ones scaled to `len`.
fn extrapolate(len: usize, samples: usize, sizes: impl Iterator<Item = u64>) -> u64 {
    if samples == 0 || len <= samples {
        return sizes.sum();
    }
    let seen: u64 = sizes.take(samples).sum();
    seen.saturating_mul(len as u64) / samples as u64
}

/// The sum of every key's estimate, taken from scratch: what the running count
/// (`Keyspace::used_memory`) must always equal. For tests and the fuzz targets.
pub fn recount_used(ks: &crate::keyspace::Keyspace) -> u64 {
    (0..crate::keyspace::DATABASES)
        .filter_map(|i| ks.db(i))
        .flat_map(|db| db.range_from(0))
        .map(|(_, key, entry)| entry_size(key, entry, ACCOUNTING_SAMPLES))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::must_apply;
    use crate::keyspace::{Keyspace, Op, Request};
    use crate::resp::Frame;

    fn apply_op(ks: &mut Keyspace, index: u64, op: Op) -> Frame {
        ks.apply(index, &Request { time_ms: 1000, op })
    }

    #[test]
    fn used_memory_always_equals_the_sum_of_the_estimates() {
        let mut ks = Keyspace::new();
        let script = [
            "set a hello",
            "append a world",
            "set b 1 px 100000",
            "incr b",
            "persist b",
            "expire a 100",
            "rpush l x y z",
            "lpush l 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
            "lpop l 3",
            "lset l 0 a-much-longer-element-than-before",
            "hset h f1 v1 f2 v2",
            "hincrby h n 5",
            "hdel h f1",
            "sadd s a b c",
            "srem s a",
            "zadd z 1 a 2 b",
            "zincrby z 3 a",
            "rename a a2",
            "copy a2 a3",
            "sunionstore s2 s s",
            "lmove l l2 left right",
            "rpop l 100",
            "del h",
            "hset h2 f 01234567890123456789012345678901234567890123456789012345678901234",
            "hset h2 f short",
            "hset h2 g 1",
            "hdel h2 g",
            "setrange a3 20 xyz",
            "move a3 1",
        ];
        for (i, line) in script.iter().enumerate() {
            must_apply(&mut ks, 1000 + i as u64, line);
            assert_eq!(ks.used_memory(), super::recount_used(&ks), "after {line}");
        }
        assert!(ks.used_memory() > 0);
        must_apply(&mut ks, 2000, "flushall");
        assert_eq!(ks.used_memory(), 0);
    }

    /// Changes in place are settled at the end of an entry (and whenever more keys than the
    /// bound wait), not after each command: one entry changing one key many times and many
    /// keys once each must still leave the running count equal to a recount.
    #[test]
    fn one_entry_of_many_changes_in_place_settles_to_the_recount() {
        let command = |line: String| Op::Command {
            db: 0,
            args: line
                .split(' ')
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect(),
        };
        let mut lines: Vec<String> = (0..40).map(|i| format!("lpush queue item-{i}")).collect();
        lines.extend((0..20).map(|i| format!("hset h{i} f {i}")));
        lines.extend((0..20).map(|i| format!("hset h{i} g a-longer-value-{i}")));
        lines.extend((0..12).map(|i| format!("rpop queue {i}")));
        lines.push("del h3".to_string());
        lines.push("sadd s a b c".to_string());
        lines.extend((0..30).map(|i| format!("sadd s member-{i}")));
        let ops = lines.into_iter().map(command).collect();
        let mut ks = Keyspace::new();
        apply_op(&mut ks, 1, Op::Batch(ops));
        assert_eq!(ks.used_memory(), super::recount_used(&ks));
        assert!(ks.used_memory() > 0);
    }

    #[test]
    fn growing_commands_fail_over_the_limit_and_the_rest_work() {
        let mut ks = Keyspace::new();
        must_apply(
            &mut ks,
            1,
            "set big 0123456789012345678901234567890123456789",
        );
        let settings = MemorySettings {
            maxmemory: ks.used_memory() - 1,
            origin: 1,
            ..MemorySettings::default()
        };
        assert_eq!(
            apply_op(&mut ks, 2, Op::MemoryAtStart(settings)),
            Frame::ok()
        );
        assert_eq!(
            must_apply(&mut ks, 3, "set other 1"),
            Frame::error(OOM),
            "a growing write over the limit"
        );
        assert!(!must_apply(&mut ks, 4, "get big").is_error());
        // A delete frees memory; then growth is allowed again.
        assert_eq!(must_apply(&mut ks, 5, "del big"), Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 6, "set other 1"), Frame::ok());
        // Inside a transaction each growing command is judged on its own.
        let exec = Op::Exec {
            db: 0,
            watches: Vec::new(),
            commands: vec![
                vec![
                    Bytes::from("set"),
                    Bytes::from("x"),
                    Bytes::from(vec![b'x'; 500]),
                ],
                vec![Bytes::from("set"), Bytes::from("y"), Bytes::from("1")],
                vec![Bytes::from("del"), Bytes::from("x")],
            ],
        };
        let Frame::Array(replies) = apply_op(&mut ks, 7, exec) else {
            panic!("exec reply");
        };
        assert_eq!(replies[0], Frame::ok());
        assert_eq!(replies[1], Frame::error(OOM));
        assert_eq!(replies[2], Frame::Integer(1));
    }

    #[test]
    fn eviction_entries_respect_the_policy_at_apply_time() {
        let mut ks = Keyspace::new();
        let settings = MemorySettings {
            maxmemory: 1 << 20,
            policy: Policy::VolatileLru,
            rules: vec![
                PrefixRule::parse("cache:=allkeys-lru").expect("rule"),
                PrefixRule::parse("celery=noeviction").expect("rule"),
            ],
            origin: 1,
            ..MemorySettings::default()
        };
        apply_op(&mut ks, 1, Op::MemoryAtStart(settings));
        for line in [
            "set cache:a 1",
            "rpush celery x",
            "set plain 1",
            "set ttl 1 ex 100",
        ] {
            must_apply(&mut ks, 2, line);
        }
        let keys = ["cache:a", "celery", "plain", "ttl", "missing"]
            .map(Bytes::from)
            .to_vec();
        let evicted = apply_op(&mut ks, 3, Op::Evict { db: 0, keys });
        assert_eq!(evicted, Frame::Integer(2));
        assert_eq!(ks.evicted_keys(), 2);
        let left: Vec<Bytes> = ks
            .db(0)
            .map(|db| db.range_from(0).map(|(_, k, _)| k.to_bytes()).collect())
            .unwrap_or_default();
        assert!(left.contains(&Bytes::from("celery")));
        assert!(left.contains(&Bytes::from("plain")));
        assert_eq!(left.len(), 2);
        assert_eq!(ks.used_memory(), super::recount_used(&ks));
    }

    #[test]
    fn snapshots_keep_the_settings_and_the_eviction_count() {
        let mut ks = Keyspace::new();
        let settings = MemorySettings {
            maxmemory: 12345,
            policy: Policy::AllKeysLfu,
            rules: vec![PrefixRule::parse("q=noeviction").expect("rule")],
            origin: 7,
            ..MemorySettings::default()
        };
        apply_op(&mut ks, 1, Op::MemoryAtStart(settings.clone()));
        must_apply(&mut ks, 2, "set k v");
        apply_op(
            &mut ks,
            3,
            Op::Evict {
                db: 0,
                keys: vec![Bytes::from("k")],
            },
        );
        must_apply(&mut ks, 4, "set k2 v2");
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        let back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read");
        assert_eq!(back.memory(), &settings);
        assert_eq!(back.evicted_keys(), 1);
        assert_eq!(back.used_memory(), ks.used_memory());
    }

    #[test]
    fn memory_units_follow_redis() {
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("64mb"), Some(64 * 1024 * 1024));
        assert_eq!(parse_memory("2GB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_memory("100k"), Some(100_000));
        assert_eq!(parse_memory("1m"), Some(1_000_000));
        assert_eq!(parse_memory("12tb"), None);
        assert_eq!(parse_memory("mb"), None);
        assert_eq!(parse_memory("-1"), None);
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(100), "100B");
    }

    #[test]
    fn the_longest_prefix_governs() {
        let settings = MemorySettings {
            policy: Policy::VolatileTtl,
            rules: vec![
                PrefixRule::parse("cache:=allkeys-lru").expect("rule"),
                PrefixRule::parse("cache:llm:=allkeys-lfu").expect("rule"),
                PrefixRule::parse("celery=noeviction").expect("rule"),
            ],
            ..MemorySettings::default()
        };
        assert_eq!(settings.policy_for(b"cache:x"), Policy::AllKeysLru);
        assert_eq!(settings.policy_for(b"cache:llm:x"), Policy::AllKeysLfu);
        assert_eq!(settings.policy_for(b"celery-task"), Policy::NoEviction);
        assert_eq!(settings.policy_for(b"other"), Policy::VolatileTtl);
        assert!(!settings.may_evict(b"other", false));
        assert!(settings.may_evict(b"other", true));
        assert!(!settings.may_evict(b"celery", true));
        assert!(PrefixRule::parse("x=lru").is_err());
        assert!(PrefixRule::parse("novalue").is_err());
        // A prefix may itself contain '='.
        let odd = PrefixRule::parse("a=b=allkeys-random").expect("rule");
        assert_eq!(odd.prefix, Bytes::from("a=b"));
    }

    #[test]
    fn config_set_changes_one_option_and_refuses_bad_values() {
        let mut settings = MemorySettings::default();
        settings.set(b"maxmemory", b"2mb").expect("maxmemory");
        settings
            .set(b"MAXMEMORY-POLICY", b"allkeys-lfu")
            .expect("policy");
        settings
            .set(b"eviction", b"cache:=allkeys-lru celery=noeviction")
            .expect("rules");
        assert_eq!(settings.maxmemory, 2 * 1024 * 1024);
        assert_eq!(settings.policy_for(b"cache:1"), Policy::AllKeysLru);
        assert_eq!(settings.policy_for(b"x"), Policy::AllKeysLfu);
        let values = settings.config_values();
        assert!(values.contains(&("eviction", "cache:=allkeys-lru celery=noeviction".into())));
        let before = settings.clone();
        assert!(settings.set(b"maxmemory", b"lots").is_err());
        assert!(settings.set(b"maxmemory-samples", b"0").is_err());
        assert!(settings.set(b"maxmemory-policy", b"lru").is_err());
        assert!(settings
            .set(b"eviction", b"a=noeviction a=allkeys-lru")
            .is_err());
        assert!(settings.set(b"port", b"1").is_err());
        assert_eq!(settings, before);
        assert!(MemorySettings::is_option("lfu-decay-time"));
        assert!(!MemorySettings::is_option("port"));
    }

    #[test]
    fn a_leaders_start_settings_apply_only_from_a_new_configuration() {
        let mut ks = Keyspace::new();
        let configured = MemorySettings {
            maxmemory: 100,
            origin: 9,
            ..MemorySettings::default()
        };
        apply_op(&mut ks, 1, Op::MemoryAtStart(configured.clone()));
        let set = Op::ConfigSet {
            pairs: vec![(Bytes::from("maxmemory"), Bytes::from("200"))],
        };
        assert_eq!(apply_op(&mut ks, 2, set), Frame::ok());
        assert_eq!(ks.memory().maxmemory, 200);
        // Another leader with the same configuration keeps the CONFIG SET.
        apply_op(&mut ks, 3, Op::MemoryAtStart(configured.clone()));
        assert_eq!(ks.memory().maxmemory, 200);
        // A leader started from a changed configuration brings its own.
        let changed = MemorySettings {
            maxmemory: 300,
            origin: 10,
            ..configured
        };
        apply_op(&mut ks, 4, Op::MemoryAtStart(changed));
        assert_eq!(ks.memory().maxmemory, 300);
    }

    #[test]
    fn fingerprints_ignore_the_origin_only() {
        let a = MemorySettings::default();
        let b = MemorySettings {
            origin: 42,
            ..a.clone()
        };
        let c = MemorySettings {
            maxmemory: 1,
            ..a.clone()
        };
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn lfu_counters_grow_logarithmically_and_decay() {
        let access = Access::new(0);
        assert_eq!(access.counter(0, 1), LFU_INIT);
        // A coin of 0 always wins the roll: every touch counts.
        for _ in 0..10 {
            access.touch(1000, 0, 10, 1);
        }
        assert_eq!(access.counter(1000, 1), LFU_INIT + 10);
        // A coin of all ones loses every roll past the initial value.
        access.touch(2000, u64::MAX, 10, 1);
        assert_eq!(access.counter(2000, 1), LFU_INIT + 10);
        assert_eq!(access.time_ms(), 2000);
        // Three idle minutes take three steps off.
        assert_eq!(access.counter(2000 + 3 * 60_000, 1), LFU_INIT + 7);
        assert_eq!(access.counter(2000 + 3 * 60_000, 0), LFU_INIT + 10);
        access.set_time(5000);
        assert_eq!(
            (access.time_ms(), access.raw_counter()),
            (5000, LFU_INIT + 10)
        );
    }

    #[test]
    fn sizes_grow_with_content_and_sample_large_collections() {
        let small = Entry::new(Value::string(b"v"), None, 0, 0);
        let large = Entry::new(Value::string(&[b'x'; 1000]), None, 0, 0);
        assert!(entry_size(b"k", &large, 16) > entry_size(b"k", &small, 16) + 900);
        let with_ttl = Entry::new(Value::string(b"v"), Some(5), 0, 0);
        assert_eq!(
            entry_size(b"k", &with_ttl, 16),
            entry_size(b"k", &small, 16) + EXPIRY_OVERHEAD
        );
        let list: imbl::Vector<Bytes> = (0..1000).map(|_| Bytes::from("abc")).collect();
        let list = Value::List(Box::new(list));
        // Uniform elements: sampling and summing agree.
        assert_eq!(value_size(&list, 16), value_size(&list, 0));
        assert!(value_size(&list, 0) > 1000 * 40);
    }
}
