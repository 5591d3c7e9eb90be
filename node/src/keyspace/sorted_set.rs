//! The sorted-set value: members with scores, ordered by (score, member) as Redis orders
//! them, in two persistent maps so a snapshot's clone stays O(1).

use std::cmp::Ordering;

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    scores: OrdMap<Bytes, f64>,
    order: OrdSet<(Score, Bytes)>,
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

    /// Sets `member`'s score; returns the previous one. The member's bytes are stored as
    /// given, so callers pass owned copies (see [`super::owned`]).
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
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
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// Members from the first with (score, member) >= `from`, ascending.
    pub fn iter_from(&self, from: (f64, Bytes)) -> impl Iterator<Item = (&Bytes, f64)> {
        self.order
            .range((Score(from.0), from.1)..)
            .map(|(s, m)| (m, s.0))
    }

    /// Members with (score, member) <= `to`, descending.
    pub fn iter_rev_to(&self, to: (f64, Bytes)) -> impl Iterator<Item = (&Bytes, f64)> {
        self.order
            .range(..=(Score(to.0), to.1))
            .rev()
            .map(|(s, m)| (m, s.0))
    }

    /// Members in member (byte) order, for lexicographic ranges and `ZSCAN`.
    pub fn by_member(&self) -> &OrdMap<Bytes, f64> {
        &self.scores
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
            set.insert(member, score);
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
        z.insert(Bytes::from("b"), 1.0);
        z.insert(Bytes::from("a"), 1.0);
        z.insert(Bytes::from("c"), f64::NEG_INFINITY);
        assert_eq!(z.insert(Bytes::from("c"), 2.0), Some(f64::NEG_INFINITY));
        let members: Vec<_> = z.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(members, vec!["a", "b", "c"]);
        assert_eq!(z.remove(b"a"), Some(1.0));
        assert_eq!((z.len(), z.score(b"a")), (2, None));
        z.insert(Bytes::from("z"), -0.0);
        assert_eq!(z.score(b"z").map(f64::to_bits), Some(0.0f64.to_bits()));
        let from: Vec<_> = z
            .iter_from((1.0, Bytes::new()))
            .map(|(m, _)| m.clone())
            .collect();
        assert_eq!(from, vec!["b", "c"]);
        let down: Vec<_> = z
            .iter_rev_to((1.0, Bytes::from("zz")))
            .map(|(m, _)| m.clone())
            .collect();
        assert_eq!(down, vec!["b", "z"]);
    }

    #[test]
    fn serde_round_trip() {
        let mut z = SortedSet::new();
        z.insert(Bytes::from("x"), 2.5);
        z.insert(Bytes::from("y"), f64::INFINITY);
        let bytes = postcard::to_allocvec(&z).expect("encode");
        let back: SortedSet = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, z);
    }
}
