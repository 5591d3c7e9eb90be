//! The sorted-set value: members with scores, ordered by (score, member) as Redis orders
//! them, in two persistent maps so a snapshot's clone stays O(1). Members are
//! [`CompactBytes`]: one of up to 22 bytes sits inside the tree node, so a lookup compares
//! it without following a pointer to another allocation.

use std::cmp::Ordering;
use std::ops::Bound;

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::CompactBytes;

/// A score with a total order. NaN is never stored (Redis refuses it before it gets here),
/// and `-0.0` is stored as `0.0`, so the order agrees with `==` on every stored value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Members and their scores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SortedSet {
    scores: OrdMap<CompactBytes, f64>,
    order: OrdSet<(Score, CompactBytes)>,
}

impl SortedSet {
    /// An empty sorted set.
    pub fn new() -> SortedSet {
        SortedSet::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the previous one.
    pub fn insert(&mut self, member: CompactBytes, score: f64) -> Option<f64> {
        let score = if score == 0.0 { 0.0 } else { score };
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            self.order.remove(&(Score(old), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (key, old) = self.scores.remove_with_key(member)?;
        self.order.remove(&(Score(old), key));
        Some(old)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&CompactBytes, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// Members from the first with (score, member) >= `from`, ascending.
    pub fn iter_from(&self, from: (f64, &[u8])) -> impl Iterator<Item = (&CompactBytes, f64)> {
        self.order
            .range((Score(from.0), CompactBytes::copy(from.1))..)
            .map(|(s, m)| (m, s.0))
    }

    /// Members with (score, member) <= `to`, descending.
    pub fn iter_rev_to(&self, to: (f64, &[u8])) -> impl Iterator<Item = (&CompactBytes, f64)> {
        self.order
            .range(..=(Score(to.0), CompactBytes::copy(to.1)))
            .rev()
            .map(|(s, m)| (m, s.0))
    }

    /// Members in member (byte) order, for lexicographic ranges and `ZSCAN`.
    pub fn by_member(&self) -> &OrdMap<CompactBytes, f64> {
        &self.scores
    }

    /// The first member in (score, member) order.
    pub fn first(&self) -> Option<(&CompactBytes, f64)> {
        self.order.get_min().map(|(s, m)| (m, s.0))
    }

    /// The last member in (score, member) order.
    pub fn last(&self) -> Option<(&CompactBytes, f64)> {
        self.order.get_max().map(|(s, m)| (m, s.0))
    }

    /// Removes and returns the member with the lowest (score, member).
    pub fn pop_min(&mut self) -> Option<(Bytes, f64)> {
        let (score, mut member) = self.order.remove_min()?;
        self.scores.remove(&member);
        Some((member.take_bytes(), score.0))
    }

    /// Removes and returns the member with the highest (score, member).
    pub fn pop_max(&mut self) -> Option<(Bytes, f64)> {
        let (score, mut member) = self.order.remove_max()?;
        self.scores.remove(&member);
        Some((member.take_bytes(), score.0))
    }

    /// The 0-based ascending rank of `member` and its score.
    ///
    /// The persistent tree keeps no subtree sizes, so this counts the members before it:
    /// O(rank), where Redis's skiplist is O(log N).
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let (key, &score) = self.scores.get_key_value(member)?;
        let before = self.order.range(..(Score(score), key.clone())).count();
        Some((before, score))
    }

    /// Members with a score from `min` up (above it when `exclusive`), ascending.
    /// Callers still test each score: an exclusive `+inf` bound starts at `+inf` itself.
    pub fn iter_score_from(
        &self,
        min: f64,
        exclusive: bool,
    ) -> impl DoubleEndedIterator<Item = (&CompactBytes, f64)> {
        // The smallest key of score `start` is (start, ""); `next_up` skips every member
        // scored exactly `min`, and maps -0 past +0 as C's `>` does.
        let start = if exclusive { min.next_up() } else { min };
        self.order
            .range((Score(start), CompactBytes::new())..)
            .map(|(s, m)| (m, s.0))
    }

    /// Members with a score up to `max` (below it when `exclusive`), descending.
    pub fn iter_score_down_from(
        &self,
        max: f64,
        exclusive: bool,
    ) -> impl Iterator<Item = (&CompactBytes, f64)> {
        let end = if exclusive {
            Bound::Excluded((Score(max), CompactBytes::new()))
        } else if max == f64::INFINITY {
            Bound::Unbounded
        } else {
            Bound::Excluded((Score(max.next_up()), CompactBytes::new()))
        };
        self.order
            .range((Bound::Unbounded, end))
            .rev()
            .map(|(s, m)| (m, s.0))
    }
}

impl Serialize for SortedSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SortedSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs: Vec<(Bytes, f64)> = Vec::deserialize(deserializer)?;
        let mut set = SortedSet::new();
        for (member, score) in pairs {
            set.insert(CompactBytes::from_owned(member), score);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_score_then_member_and_rescoring_moves() {
        let mut z = SortedSet::new();
        z.insert(CompactBytes::from("b"), 1.0);
        z.insert(CompactBytes::from("a"), 1.0);
        z.insert(CompactBytes::from("c"), f64::NEG_INFINITY);
        assert_eq!(
            z.insert(CompactBytes::from("c"), 2.0),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(names(z.iter()), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(z.remove(b"a"), Some(1.0));
        assert_eq!((z.len(), z.score(b"a")), (2, None));
        z.insert(CompactBytes::from("z"), -0.0);
        assert_eq!(z.score(b"z").map(f64::to_bits), Some(0.0f64.to_bits()));
        assert_eq!(names(z.iter_from((1.0, b""))), vec![&b"b"[..], b"c"]);
        assert_eq!(names(z.iter_rev_to((1.0, b"zz"))), vec![&b"b"[..], b"z"]);
    }

    fn set_of(pairs: &[(&str, f64)]) -> SortedSet {
        let mut z = SortedSet::new();
        for (m, s) in pairs {
            z.insert(CompactBytes::copy(m.as_bytes()), *s);
        }
        z
    }

    fn names<'a>(items: impl Iterator<Item = (&'a CompactBytes, f64)>) -> Vec<&'a [u8]> {
        items.map(|(m, _)| m.as_ref()).collect()
    }

    /// Ranks count members before, pops take from either end, first/last see both ends.
    #[test]
    fn ranks_pops_and_ends() {
        let mut z = set_of(&[("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0)]);
        assert_eq!(z.rank(b"a"), Some((0, 1.0)));
        assert_eq!(z.rank(b"c"), Some((2, 2.0)));
        assert_eq!(z.rank(b"x"), None);
        assert_eq!(z.first(), Some((&CompactBytes::from("a"), 1.0)));
        assert_eq!(z.last(), Some((&CompactBytes::from("d"), 3.0)));
        assert_eq!(z.pop_min(), Some((Bytes::from("a"), 1.0)));
        assert_eq!(z.pop_max(), Some((Bytes::from("d"), 3.0)));
        assert_eq!((z.len(), z.score(b"a"), z.score(b"d")), (2, None, None));
        assert_eq!(z.pop_min().map(|p| p.0), Some(Bytes::from("b")));
        assert_eq!(z.pop_min().map(|p| p.0), Some(Bytes::from("c")));
        assert_eq!(z.pop_min(), None);
        assert!(z.is_empty());
    }

    /// Score seeks honour exclusive bounds, infinities and C's -0 == 0.
    #[test]
    fn score_seeks() {
        let z = set_of(&[
            ("lo", f64::NEG_INFINITY),
            ("n", -1.0),
            ("zero", 0.0),
            ("one", 1.0),
            ("one2", 1.0),
            ("hi", f64::INFINITY),
        ]);
        let up = |min, ex| names(z.iter_score_from(min, ex));
        let down = |max, ex| names(z.iter_score_down_from(max, ex));
        assert_eq!(up(1.0, false), vec![&b"one"[..], b"one2", b"hi"]);
        assert_eq!(up(1.0, true), vec![&b"hi"[..]]);
        assert_eq!(up(-0.0, false).first(), Some(&&b"zero"[..]));
        assert_eq!(up(-0.0, true).first(), Some(&&b"one"[..]));
        assert_eq!(up(f64::NEG_INFINITY, true).first(), Some(&&b"n"[..]));
        assert_eq!(
            down(1.0, false),
            vec![&b"one2"[..], b"one", b"zero", b"n", b"lo"]
        );
        assert_eq!(down(1.0, true).first(), Some(&&b"zero"[..]));
        assert_eq!(down(-0.0, false).first(), Some(&&b"zero"[..]));
        assert_eq!(down(0.0, true).first(), Some(&&b"n"[..]));
        assert_eq!(down(f64::INFINITY, false).first(), Some(&&b"hi"[..]));
        assert_eq!(down(f64::INFINITY, true).first(), Some(&&b"one2"[..]));
    }

    #[test]
    fn serde_round_trip() {
        let mut z = SortedSet::new();
        z.insert(CompactBytes::from("x"), 2.5);
        z.insert(CompactBytes::from("y"), f64::INFINITY);
        let bytes = postcard::to_allocvec(&z).expect("encode");
        let back: SortedSet = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, z);
    }
}
