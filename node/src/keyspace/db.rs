//! One database: keys grouped by a fixed 64-bit hash of their bytes (the key's *slot*) in a
//! persistent ordered map, so cloning is O(1) for snapshots and `SCAN` resumes from a slot.
//!
//! The ordered map holds only `(slot, pointer)` pairs: its nodes stay small, so a lookup is
//! a few cache lines of integer comparisons and an insert moves little memory. Keys whose
//! hashes collide share one bucket. A bucket of one short key with a short string value is
//! a single 80-byte allocation: key and value in place ([`CompactBytes`]), an 8-byte expiry,
//! and a shared pointer with one reference count and no weak count.
//!
//! For `WATCH`, every entry carries the log index of its last change, and deletions leave a
//! tombstone (slot → index) so that a watched key that disappeared is noticed too. Tombstones
//! are bounded: past [`MAX_TOMBSTONES`] they are dropped and `forgotten_before` rises, which
//! makes older watches abort (a conservative answer, never a wrong one). Both are replicated
//! state, kept in snapshots, so every replica decides an `EXEC` the same way.

use bytes::Bytes;
use imbl::OrdMap;
// Without the weak count std's Arc carries: one word less per key, which keeps a short
// key's bucket within an 80-byte allocation.
use triomphe::Arc;

use super::memory::{entry_size, ACCOUNTING_SAMPLES};
use super::{CompactBytes, Entry};

/// The position of a key in scan order: a fixed hash of its bytes, the same on every
/// replica and across versions.
pub fn slot_of(name: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name)
}

/// The keys of one slot: almost always exactly one.
#[derive(Clone, Debug)]
enum Bucket {
    One((CompactBytes, Entry)),
    Many(Vec<(CompactBytes, Entry)>),
}

impl Bucket {
    fn items(&self) -> &[(CompactBytes, Entry)] {
        match self {
            Bucket::One(pair) => std::slice::from_ref(pair),
            Bucket::Many(pairs) => pairs,
        }
    }
}

/// Most deletions remembered for `WATCH` before older ones are forgotten.
pub const MAX_TOMBSTONES: usize = 100_000;

/// One database.
#[derive(Clone, Debug, Default)]
pub struct Db {
    slots: OrdMap<u64, Arc<Bucket>>,
    /// Slots holding keys with an expiry, and how many, for the leader's expiry sampling.
    volatile: OrdMap<u64, u32>,
    keys: usize,
    volatile_keys: usize,
    /// Slot → log index of the latest deletion of a key in that slot.
    tombstones: OrdMap<u64, u64>,
    /// Deletions at or before this index may have been forgotten (also set by a flush).
    forgotten_before: u64,
    /// The estimated bytes of every key (`memory::entry_size`), kept current by apply.
    used: u64,
    /// Keys handed out for change in place, with their size before: settled (the estimate
    /// taken again) before the next insert or removal, once [`MAX_UNSETTLED`] keys wait, and
    /// at the end of each log entry.
    dirty: Vec<(Bytes, u64)>,
}

/// Most keys changed in place that wait to be settled. Settling once per entry rather than
/// once per command lets the commands of an entry that change one key again and again (a
/// pipeline of LPUSHes to one queue) take its size estimate, a sample of its elements, twice
/// instead of twice each; the bound keeps the search of the waiting keys short.
const MAX_UNSETTLED: usize = 8;

impl Db {
    /// Number of keys, counting those expired but not yet deleted (as Redis's DBSIZE does).
    pub fn len(&self) -> usize {
        self.keys
    }

    /// Whether the database holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Number of keys with an expiry.
    pub fn volatile_len(&self) -> usize {
        self.volatile_keys
    }

    /// The estimated bytes of every key, as of the last settled change.
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Takes the size estimate of every key changed in place since the last call again, so
    /// that [`Db::used_bytes`] reflects those changes.
    pub(super) fn settle(&mut self) {
        for (name, before) in std::mem::take(&mut self.dirty) {
            let after = self
                .get_any(&name)
                .map_or(0, |e| entry_size(&name, e, ACCOUNTING_SAMPLES));
            self.used = self.used.saturating_add(after).saturating_sub(before);
        }
    }

    /// Whether changes in place are waiting for [`Db::settle`].
    pub(super) fn is_unsettled(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The entry under `name`, expired or not.
    pub fn get_any(&self, name: &[u8]) -> Option<&Entry> {
        let bucket = self.slots.get(&slot_of(name))?;
        bucket
            .items()
            .iter()
            .find(|(k, _)| k.as_slice() == name)
            .map(|(_, e)| e)
    }

    /// The live entry under `name` at `now_ms`, hiding expired ones.
    pub fn get(&self, name: &[u8], now_ms: u64) -> Option<&Entry> {
        self.get_any(name).filter(|e| !e.is_expired(now_ms))
    }

    /// Every key from `slot` on, in scan order, as (slot, key, entry).
    pub fn range_from(&self, slot: u64) -> impl Iterator<Item = (u64, &CompactBytes, &Entry)> {
        self.slots
            .range(slot..)
            .flat_map(|(s, bucket)| bucket.items().iter().map(move |(k, e)| (*s, k, e)))
    }

    /// Up to `limit` keys with an expiry and their deadlines, starting at `slot` and
    /// wrapping around.
    pub fn sample_volatile(&self, slot: u64, limit: usize) -> Vec<(Bytes, u64)> {
        let mut sample = Vec::new();
        let slots = self
            .volatile
            .range(slot..)
            .chain(self.volatile.range(..slot));
        for (s, _) in slots {
            let Some(bucket) = self.slots.get(s) else {
                continue;
            };
            for (name, entry) in bucket.items() {
                if let Some(at) = entry.expires_at() {
                    sample.push((name.to_bytes(), at));
                }
            }
            if sample.len() >= limit {
                break;
            }
        }
        sample
    }

    /// Whether `name` may have changed after log index `since`, for a watch taken at that
    /// index when the replicated time was `watched_at_ms`; judged at `now_ms`.
    pub fn changed_since(&self, name: &[u8], since: u64, watched_at_ms: u64, now_ms: u64) -> bool {
        match self.get_any(name) {
            Some(entry) => {
                let expired_meanwhile = entry
                    .expires_at()
                    .is_some_and(|at| at > watched_at_ms && at <= now_ms);
                entry.version > since || expired_meanwhile
            }
            None => {
                self.forgotten_before > since
                    || self
                        .tombstones
                        .get(&slot_of(name))
                        .is_some_and(|&at| at > since)
            }
        }
    }

    /// The deletion horizon and tombstones, for snapshots.
    pub(super) fn watch_state(&self) -> (u64, &OrdMap<u64, u64>) {
        (self.forgotten_before, &self.tombstones)
    }

    /// Restores what [`Db::watch_state`] returned.
    pub(super) fn restore_watch_state(
        &mut self,
        forgotten_before: u64,
        tombstones: OrdMap<u64, u64>,
    ) {
        self.forgotten_before = forgotten_before;
        self.tombstones = tombstones;
    }

    fn bury(&mut self, slot: u64, index: u64) {
        if self.tombstones.len() >= MAX_TOMBSTONES {
            self.tombstones = OrdMap::new();
            self.forgotten_before = index;
        }
        self.tombstones.insert(slot, index);
    }

    /// The entry under `name`, expired or not, for changing its value in place; stamps it
    /// as changed at `version` and `now_ms`.
    pub(super) fn get_mut(&mut self, name: &[u8], version: u64, now_ms: u64) -> Option<&mut Entry> {
        let entry = self.get_mut_unstamped(name)?;
        entry.version = version;
        entry.access.set_time(now_ms);
        Some(entry)
    }

    /// The entry under `name`, expired or not, for changing its value in place without
    /// stamping it: the caller stamps it if it did change something.
    pub(super) fn get_mut_unstamped(&mut self, name: &[u8]) -> Option<&mut Entry> {
        if !self.dirty.iter().any(|(k, _)| k.as_ref() == name) {
            if self.dirty.len() >= MAX_UNSETTLED {
                self.settle();
            }
            let before = entry_size(name, self.get_any(name)?, ACCOUNTING_SAMPLES);
            self.dirty.push((Bytes::copy_from_slice(name), before));
        }
        let bucket = Arc::make_mut(self.slots.get_mut(&slot_of(name))?);
        match bucket {
            Bucket::One((k, e)) if k.as_slice() == name => Some(e),
            Bucket::One(_) => None,
            Bucket::Many(pairs) => pairs
                .iter_mut()
                .find(|(k, _)| k.as_slice() == name)
                .map(|(_, e)| e),
        }
    }

    /// Stores `entry` under `name`, replacing any entry there.
    pub(super) fn insert(&mut self, name: CompactBytes, entry: Entry) {
        self.settle();
        self.used += entry_size(&name, &entry, ACCOUNTING_SAMPLES);
        let slot = slot_of(&name);
        let new_volatile = entry.expires_at().is_some();
        let old_volatile = match self.slots.get_mut(&slot) {
            None => {
                self.slots
                    .insert(slot, Arc::new(Bucket::One((name, entry))));
                self.keys += 1;
                None
            }
            Some(bucket) => {
                let bucket = Arc::make_mut(bucket);
                let existing = match bucket {
                    Bucket::One((k, e)) if *k == name => Some(e),
                    Bucket::One(_) => None,
                    Bucket::Many(pairs) => {
                        pairs.iter_mut().find(|(k, _)| *k == name).map(|(_, e)| e)
                    }
                };
                match existing {
                    Some(slot_entry) => {
                        let was = slot_entry.expires_at().is_some();
                        let old = entry_size(&name, slot_entry, ACCOUNTING_SAMPLES);
                        self.used = self.used.saturating_sub(old);
                        *slot_entry = entry;
                        Some(was)
                    }
                    None => {
                        let pair = (name, entry);
                        *bucket = match std::mem::replace(bucket, Bucket::Many(Vec::new())) {
                            Bucket::One(first) => Bucket::Many(vec![first, pair]),
                            Bucket::Many(mut pairs) => {
                                pairs.push(pair);
                                Bucket::Many(pairs)
                            }
                        };
                        self.keys += 1;
                        None
                    }
                }
            }
        };
        self.track_volatile(slot, old_volatile.unwrap_or(false), new_volatile);
    }

    /// Changes the expiry (and write time) of the entry under `name` in place, without
    /// copying its key or value; returns whether the key exists.
    pub(super) fn update_expiry(
        &mut self,
        name: &[u8],
        expires_at: Option<u64>,
        written_at: u64,
        version: u64,
    ) -> bool {
        self.settle();
        let slot = slot_of(name);
        let Some(bucket) = self.slots.get_mut(&slot) else {
            return false;
        };
        let was = match Arc::make_mut(bucket) {
            Bucket::One((k, e)) if k.as_slice() == name => Some(e),
            Bucket::One(_) => None,
            Bucket::Many(pairs) => pairs
                .iter_mut()
                .find(|(k, _)| k.as_slice() == name)
                .map(|(_, e)| e),
        }
        .map(|entry| {
            let was = entry.expires_at().is_some();
            let before = entry_size(name, entry, ACCOUNTING_SAMPLES);
            entry.set_expires_at(expires_at);
            entry.access.set_time(written_at);
            entry.version = version;
            let after = entry_size(name, entry, ACCOUNTING_SAMPLES);
            (was, before, after)
        });
        let Some((was, before, after)) = was else {
            return false;
        };
        self.used = self.used.saturating_add(after).saturating_sub(before);
        self.track_volatile(slot, was, expires_at.is_some());
        true
    }

    /// Deletes `name` at log index `index`; returns the entry it held, expired or not.
    pub(super) fn remove(&mut self, name: &[u8], index: u64) -> Option<Entry> {
        self.settle();
        let slot = slot_of(name);
        let (position, shared_with) = {
            let items = self.slots.get(&slot)?.items();
            let position = items.iter().position(|(k, _)| k.as_slice() == name)?;
            (position, items.len() - 1)
        };
        let removed = if shared_with == 0 {
            match Arc::unwrap_or_clone(self.slots.remove(&slot)?) {
                Bucket::One((_, entry)) => entry,
                Bucket::Many(mut pairs) => pairs.pop()?.1,
            }
        } else {
            let bucket = Arc::make_mut(self.slots.get_mut(&slot)?);
            let Bucket::Many(pairs) = bucket else {
                return None;
            };
            let (_, entry) = pairs.remove(position);
            if let [_] = pairs.as_slice() {
                if let Some(last) = pairs.pop() {
                    *bucket = Bucket::One(last);
                }
            }
            entry
        };
        self.keys -= 1;
        self.used = self
            .used
            .saturating_sub(entry_size(name, &removed, ACCOUNTING_SAMPLES));
        self.track_volatile(slot, removed.expires_at().is_some(), false);
        self.bury(slot, index);
        Some(removed)
    }

    /// Empties the database at log index `index`.
    ///
    /// As in Redis, a flush changes only the watched keys that existed: each key leaves a
    /// tombstone (past [`MAX_TOMBSTONES`] the horizon moves instead, aborting older watches).
    pub(super) fn clear(&mut self, index: u64) {
        let flushed = std::mem::take(self);
        self.tombstones = flushed.tombstones;
        self.forgotten_before = flushed.forgotten_before;
        if flushed.keys + self.tombstones.len() > MAX_TOMBSTONES {
            self.tombstones = OrdMap::new();
            self.forgotten_before = index;
            return;
        }
        for slot in flushed.slots.keys() {
            self.tombstones.insert(*slot, index);
        }
    }

    fn track_volatile(&mut self, slot: u64, was: bool, is: bool) {
        match (was, is) {
            (false, true) => {
                *self.volatile.entry(slot).or_insert(0) += 1;
                self.volatile_keys += 1;
            }
            (true, false) => {
                self.volatile_keys -= 1;
                if let Some(count) = self.volatile.get_mut(&slot) {
                    *count -= 1;
                    if *count == 0 {
                        self.volatile.remove(&slot);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Value;

    fn key(name: impl AsRef<[u8]>) -> CompactBytes {
        CompactBytes::copy(name.as_ref())
    }

    fn entry(v: &str, expires_at: Option<u64>) -> Entry {
        Entry::new(Value::Str(CompactBytes::from(v)), expires_at, 0, 0)
    }

    #[test]
    fn a_key_and_its_entry_fit_one_small_allocation() {
        // Short keys and values live in place, and the whole bucket (with the shared
        // pointer's count) stays within an 80-byte allocation, as memory::KEY_OVERHEAD
        // assumes.
        assert_eq!(std::mem::size_of::<CompactBytes>(), 24);
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 48);
        assert!(std::mem::size_of::<Bucket>() + 8 <= 80);
        assert!(CompactBytes::copy(b"key:0000001").is_inline());
    }

    #[test]
    fn counts_follow_inserts_replacements_and_removals() {
        let mut db = Db::default();
        db.insert(key("a"), entry("1", None));
        db.insert(key("b"), entry("2", Some(10)));
        db.insert(key("b"), entry("3", Some(20)));
        assert_eq!((db.len(), db.volatile_len()), (2, 1));
        db.insert(key("b"), entry("4", None));
        assert_eq!((db.len(), db.volatile_len()), (2, 0));
        db.insert(key("a"), entry("5", Some(5)));
        assert_eq!(db.sample_volatile(0, 10), vec![(Bytes::from("a"), 5)]);
        assert_eq!(db.remove(b"a", 1).map(|e| e.expires_at()), Some(Some(5)));
        assert_eq!((db.len(), db.volatile_len()), (1, 0));
        assert!(db.remove(b"a", 1).is_none());
        assert!(db.get(b"b", 0).is_some());
        assert!(db.update_expiry(b"b", Some(30), 9, 2));
        assert_eq!((db.len(), db.volatile_len()), (1, 1));
        assert_eq!(db.sample_volatile(0, 10), vec![(Bytes::from("b"), 30)]);
        assert!(db.update_expiry(b"b", None, 10, 3));
        assert_eq!((db.len(), db.volatile_len()), (1, 0));
        assert_eq!(db.get_any(b"b").map(|e| e.access.time_ms()), Some(10));
        assert!(!db.update_expiry(b"missing", Some(1), 0, 4));
    }

    #[test]
    fn a_frozen_clone_keeps_its_view() {
        let mut db = Db::default();
        for i in 0..1000 {
            db.insert(key(format!("k{i}")), entry("old", None));
        }
        let frozen = db.clone();
        for i in 0..1000 {
            db.insert(key(format!("k{i}")), entry("new", None));
        }
        db.remove(b"k0", 1);
        let value = |d: &Db, k: &str| d.get(k.as_bytes(), 0).map(|e| e.value.clone());
        assert_eq!(
            value(&frozen, "k5"),
            Some(Value::Str(CompactBytes::from("old")))
        );
        assert_eq!(
            value(&db, "k5"),
            Some(Value::Str(CompactBytes::from("new")))
        );
        assert_eq!((frozen.len(), db.len()), (1000, 999));
        assert!(frozen.get(b"k0", 0).is_some());
    }

    #[test]
    fn watch_sees_changes_deletions_expiry_and_flushes() {
        let mut db = Db::default();
        let mut e = entry("v", Some(500));
        e.version = 3;
        db.insert(key("k"), e);
        assert!(!db.changed_since(b"k", 3, 100, 400));
        assert!(
            db.changed_since(b"k", 2, 100, 400),
            "changed after the watch"
        );
        assert!(
            db.changed_since(b"k", 3, 100, 600),
            "expired after the watch"
        );
        assert!(
            !db.changed_since(b"k", 3, 600, 700),
            "already expired when watched"
        );
        assert!(!db.changed_since(b"gone", 3, 0, 0));
        db.remove(b"k", 7);
        assert!(db.changed_since(b"k", 6, 0, 0), "deleted after the watch");
        assert!(!db.changed_since(b"k", 7, 0, 0));
        db.insert(key("present"), entry("v", None));
        db.clear(9);
        assert!(
            db.changed_since(b"present", 8, 0, 0),
            "flushed after the watch"
        );
        assert!(!db.changed_since(b"present", 9, 0, 0));
        assert!(
            !db.changed_since(b"never", 8, 0, 0),
            "a flush leaves a missing key untouched"
        );
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut db = Db::default();
        for i in 0..(MAX_TOMBSTONES as u64 + 10) {
            let name = format!("k{i}");
            db.insert(key(name.clone()), entry("v", None));
            db.remove(name.as_bytes(), i + 1);
        }
        assert!(db.tombstones.len() <= MAX_TOMBSTONES);
        assert!(db.forgotten_before > 0);
        assert!(db.changed_since(b"k0", 0, 0, 0));
    }

    #[test]
    fn colliding_keys_share_a_bucket() {
        // Force a collision by inserting two pairs into one bucket directly.
        let mut db = Db::default();
        db.insert(key("x"), entry("1", Some(7)));
        let slot = slot_of(b"x");
        if let Some(bucket) = db.slots.get_mut(&slot) {
            if let Bucket::One(first) = Arc::make_mut(bucket).clone() {
                *Arc::make_mut(bucket) = Bucket::Many(vec![first, (key("y"), entry("2", None))]);
            }
        }
        db.keys += 1;
        let seen: Vec<_> = db.range_from(0).map(|(_, k, _)| k.clone()).collect();
        assert_eq!(seen, vec![key("x"), key("y")]);
        assert_eq!(db.remove(b"x", 1).map(|e| e.expires_at()), Some(Some(7)));
        assert_eq!((db.len(), db.volatile_len()), (1, 0));
        assert!(matches!(
            db.slots.get(&slot).map(|b| &**b),
            Some(Bucket::One(_))
        ));
        // "y" was planted in x's slot, so look there rather than through its own hash.
        let remaining = db.slots.get(&slot).map(|b| b.items()[0].0.clone());
        assert_eq!(remaining, Some(key("y")));
    }
}
