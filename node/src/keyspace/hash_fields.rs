//! A hash's field/value pairs ([`HashFields`]): packed into one buffer while the hash is
//! small, a persistent ordered map beyond.
//!
//! A persistent B-tree spends a whole node (over a kilobyte) and two `Bytes` handles per
//! pair on a hash of ten short fields. As Redis does with its listpack, a hash of at most
//! [`PACKED_MAX_ENTRIES`] pairs whose fields and values are all at most [`PACKED_MAX_LEN`]
//! bytes is kept as one allocation of length-prefixed pairs, searched linearly; a larger
//! one needs the tree's logarithmic lookups and cheap copy-on-write.
//!
//! The form is a pure function of the contents: the thresholds are fixed (not the node's
//! `hash-max-listpack-*` settings) and a map that fits again is packed again. So every
//! replica, and every node restored from a snapshot, holds the same form, and the memory
//! estimate that depends on it agrees everywhere. Both forms keep fields in byte order, so
//! iteration, `HSCAN` cursors and random picks do not depend on the form either.

use std::fmt;
use std::ops::Bound;

use bytes::Bytes;
use imbl::OrdMap;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use super::CompactBytes;

/// Most pairs a packed hash holds (Redis's `hash-max-listpack-entries` default).
pub const PACKED_MAX_ENTRIES: usize = 128;
/// Longest field or value a packed hash holds (Redis's `hash-max-listpack-value` default);
/// it also keeps every length prefix to one byte.
pub const PACKED_MAX_LEN: usize = 64;

/// The fields of a hash, in byte order of the field.
#[derive(Clone, Default)]
pub struct HashFields(Repr);

#[derive(Clone)]
enum Repr {
    /// `count` pairs in field order, each as field length (one byte), field, value length
    /// (one byte), value. Exactly sized: a change builds a new buffer.
    Packed {
        count: u32,
        buf: Box<[u8]>,
    },
    Map(OrdMap<CompactBytes, CompactBytes>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Packed {
            count: 0,
            buf: Box::default(),
        }
    }
}

fn fits_packed(field: &[u8], value: &[u8]) -> bool {
    field.len() <= PACKED_MAX_LEN && value.len() <= PACKED_MAX_LEN
}

/// Where a field is, or would go, in a packed buffer.
enum Found {
    /// The pair occupies `start..end`; its value is `value`.
    At {
        start: usize,
        end: usize,
        value: (usize, usize),
    },
    /// Absent; it belongs at byte `at`.
    Before { at: usize },
}

/// Walks packed pairs as (start offset, field, value, end offset). A malformed tail (which
/// this module never writes) ends the walk rather than panicking.
pub struct Pairs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (usize, &'a [u8], &'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.pos;
        let field_len = *self.buf.get(start)? as usize;
        let field = self.buf.get(start + 1..start + 1 + field_len)?;
        let value_at = start + 1 + field_len;
        let value_len = *self.buf.get(value_at)? as usize;
        let value = self.buf.get(value_at + 1..value_at + 1 + value_len)?;
        self.pos = value_at + 1 + value_len;
        Some((start, field, value, self.pos))
    }
}

fn pairs(buf: &[u8]) -> Pairs<'_> {
    Pairs { buf, pos: 0 }
}

fn find(buf: &[u8], field: &[u8]) -> Found {
    for (start, f, v, end) in pairs(buf) {
        match f.cmp(field) {
            std::cmp::Ordering::Less => continue,
            std::cmp::Ordering::Equal => {
                let value_start = end - v.len();
                return Found::At {
                    start,
                    end,
                    value: (value_start, end),
                };
            }
            std::cmp::Ordering::Greater => return Found::Before { at: start },
        }
    }
    Found::Before { at: buf.len() }
}

/// `buf` with `start..end` replaced by the pair (`field`, `value`), or removed when `pair`
/// is `None`. Lengths were checked against [`PACKED_MAX_LEN`] by the caller.
fn splice(buf: &[u8], start: usize, end: usize, pair: Option<(&[u8], &[u8])>) -> Box<[u8]> {
    let added = pair.map_or(0, |(f, v)| 2 + f.len() + v.len());
    let mut out = Vec::with_capacity(buf.len() - (end - start) + added);
    out.extend_from_slice(&buf[..start]);
    if let Some((field, value)) = pair {
        out.push(field.len() as u8);
        out.extend_from_slice(field);
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&buf[end..]);
    out.into_boxed_slice()
}

impl HashFields {
    /// An empty hash.
    pub fn new() -> HashFields {
        HashFields::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed { count, .. } => *count as usize,
            Repr::Map(map) => map.len(),
        }
    }

    /// Whether the hash has no field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the hash is in its packed form, and the bytes of its buffer if so (for the
    /// memory estimate).
    pub fn packed_bytes(&self) -> Option<usize> {
        match &self.0 {
            Repr::Packed { buf, .. } => Some(buf.len()),
            Repr::Map(_) => None,
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.0 {
            Repr::Packed { buf, .. } => match find(buf, field) {
                Found::At {
                    value: (from, to), ..
                } => buf.get(from..to),
                Found::Before { .. } => None,
            },
            Repr::Map(map) => map.get(field).map(|v| v.as_ref()),
        }
    }

    /// Whether `field` is present.
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value` (both copied); returns whether the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Repr::Packed { count, buf } = &mut self.0 {
            if fits_packed(field, value) {
                match find(buf, field) {
                    Found::At { start, end, .. } => {
                        *buf = splice(buf, start, end, Some((field, value)));
                        return false;
                    }
                    Found::Before { at } if (*count as usize) < PACKED_MAX_ENTRIES => {
                        *buf = splice(buf, at, at, Some((field, value)));
                        *count += 1;
                        return true;
                    }
                    Found::Before { .. } => {}
                }
            }
            self.unpack();
        }
        let Repr::Map(map) = &mut self.0 else {
            return false;
        };
        let new = map
            .insert(CompactBytes::copy(field), CompactBytes::copy(value))
            .is_none();
        // Replacing a long value with a short one may make the hash fit again.
        if !new {
            self.repack();
        }
        new
    }

    /// Removes `field`; returns whether it was present.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Packed { count, buf } => match find(buf, field) {
                Found::At { start, end, .. } => {
                    *buf = splice(buf, start, end, None);
                    *count -= 1;
                    true
                }
                Found::Before { .. } => false,
            },
            Repr::Map(map) => {
                let removed = map.remove(field).is_some();
                if removed {
                    self.repack();
                }
                removed
            }
        }
    }

    /// The pairs in field order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed { buf, .. } => Iter::Packed(pairs(buf)),
            Repr::Map(map) => Iter::Map(map.range::<_, [u8]>(..)),
        }
    }

    /// The pairs whose field is `start` or after it, in field order.
    pub fn range_from(&self, start: &[u8]) -> Iter<'_> {
        match &self.0 {
            Repr::Packed { buf, .. } => {
                let at = match find(buf, start) {
                    Found::At { start, .. } | Found::Before { at: start } => start,
                };
                Iter::Packed(Pairs { buf, pos: at })
            }
            Repr::Map(map) => {
                Iter::Map(map.range::<_, [u8]>((Bound::Included(start), Bound::Unbounded)))
            }
        }
    }

    /// The fields in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(f, _)| f)
    }

    /// The values in field order.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, v)| v)
    }

    /// Moves a packed hash to the map form (it is about to outgrow the packed one).
    fn unpack(&mut self) {
        if let Repr::Packed { buf, .. } = &self.0 {
            let map = pairs(buf)
                .map(|(_, f, v, _)| (CompactBytes::copy(f), CompactBytes::copy(v)))
                .collect();
            self.0 = Repr::Map(map);
        }
    }

    /// Packs a map that fits the packed form again.
    fn repack(&mut self) {
        let Repr::Map(map) = &self.0 else {
            return;
        };
        if map.len() > PACKED_MAX_ENTRIES || !map.iter().all(|(f, v)| fits_packed(f, v)) {
            return;
        }
        let size = map.iter().map(|(f, v)| 2 + f.len() + v.len()).sum();
        let mut buf = Vec::with_capacity(size);
        for (field, value) in map.iter() {
            buf.push(field.len() as u8);
            buf.extend_from_slice(field);
            buf.push(value.len() as u8);
            buf.extend_from_slice(value);
        }
        self.0 = Repr::Packed {
            count: map.len() as u32,
            buf: buf.into_boxed_slice(),
        };
    }
}

/// The pairs of a [`HashFields`] in field order.
pub enum Iter<'a> {
    /// Over a packed buffer.
    Packed(Pairs<'a>),
    /// Over the map form.
    Map(
        imbl::ordmap::RangedIter<
            'a,
            CompactBytes,
            CompactBytes,
            imbl::shared_ptr::DefaultSharedPtr,
        >,
    ),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(pairs) => pairs.next().map(|(_, f, v, _)| (f, v)),
            Iter::Map(range) => range.next().map(|(f, v)| (f.as_slice(), v.as_slice())),
        }
    }
}

impl<F: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(F, V)> for HashFields {
    fn from_iter<I: IntoIterator<Item = (F, V)>>(iter: I) -> Self {
        let mut hash = HashFields::new();
        for (field, value) in iter {
            hash.insert(field.as_ref(), value.as_ref());
        }
        hash
    }
}

impl PartialEq for HashFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for HashFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v))),
            )
            .finish()
    }
}

/// A field or value serialized as `Bytes` serializes.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

// The same encoding as the `OrdMap<Bytes, Bytes>` hashes were before the packed form: a map
// of byte strings in field order, so snapshots keep their format and stay byte-identical.
impl Serialize for HashFields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (field, value) in self.iter() {
            map.serialize_entry(&Raw(field), &Raw(value))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for HashFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = HashFields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of byte strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<HashFields, A::Error> {
                let mut hash = HashFields::new();
                while let Some((field, value)) = access.next_entry::<Bytes, Bytes>()? {
                    hash.insert(&field, &value);
                }
                Ok(hash)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize, value_len: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("f{i:03}"), "v".repeat(value_len)))
            .collect()
    }

    #[test]
    fn small_hashes_are_packed_and_kept_in_field_order() {
        let mut hash = HashFields::new();
        assert!(hash.insert(b"b", b"2"));
        assert!(hash.insert(b"a", b"1"));
        assert!(hash.insert(b"c", b"3"));
        assert!(!hash.insert(b"b", b"22"));
        assert!(hash.packed_bytes().is_some());
        let pairs: Vec<_> = hash.iter().collect();
        assert_eq!(
            pairs,
            vec![
                (&b"a"[..], &b"1"[..]),
                (&b"b"[..], &b"22"[..]),
                (&b"c"[..], &b"3"[..])
            ]
        );
        assert_eq!(hash.get(b"b"), Some(&b"22"[..]));
        assert_eq!(hash.get(b"bb"), None);
        assert!(hash.remove(b"a"));
        assert!(!hash.remove(b"a"));
        assert_eq!(hash.keys().collect::<Vec<_>>(), vec![&b"b"[..], &b"c"[..]]);
        assert_eq!(hash.range_from(b"bz").count(), 1);
        assert_eq!(hash.len(), 2);
        // field length byte + field + value length byte + value, per pair
        assert_eq!(hash.packed_bytes(), Some(2 + 1 + 2 + 2 + 1 + 1));
    }

    #[test]
    fn the_form_follows_the_contents_both_ways() {
        let mut hash: HashFields = numbered(PACKED_MAX_ENTRIES, 8).into_iter().collect();
        assert!(hash.packed_bytes().is_some());
        assert!(hash.insert(b"zzz", b"one too many"));
        assert!(hash.packed_bytes().is_none(), "past the entry limit");
        assert!(hash.remove(b"zzz"));
        assert!(hash.packed_bytes().is_some(), "fits again");
        hash.insert(b"f000", &[b'x'; PACKED_MAX_LEN + 1]);
        assert!(hash.packed_bytes().is_none(), "a long value");
        hash.insert(b"f000", b"short");
        assert!(hash.packed_bytes().is_some(), "the long value replaced");
        assert!(hash.insert(&[b'k'; PACKED_MAX_LEN + 1], b"v"));
        assert!(hash.packed_bytes().is_none(), "a long field");
        assert_eq!(hash.len(), PACKED_MAX_ENTRIES + 1);
    }

    #[test]
    fn both_forms_agree_on_every_read() {
        let small: Vec<(String, String)> = numbered(40, 10);
        let mut packed: HashFields = small.iter().cloned().collect();
        let mut mapped = HashFields(Repr::Map(
            small
                .iter()
                .map(|(f, v)| {
                    (
                        CompactBytes::from(f.as_str()),
                        CompactBytes::from(v.as_str()),
                    )
                })
                .collect(),
        ));
        assert!(packed.packed_bytes().is_some() && mapped.packed_bytes().is_none());
        assert_eq!(packed, mapped);
        for start in ["", "f01", "f010", "f039", "g"] {
            assert!(
                packed
                    .range_from(start.as_bytes())
                    .eq(mapped.range_from(start.as_bytes())),
                "from {start:?}"
            );
        }
        assert_eq!(packed.get(b"f007"), mapped.get(b"f007"));
        // A change to the map form repacks it, so both end in the same form.
        assert!(packed.remove(b"f007"));
        assert!(mapped.remove(b"f007"));
        assert!(mapped.packed_bytes().is_some());
        assert_eq!(packed, mapped);
    }

    #[test]
    fn serialized_as_an_ordered_map_of_bytes() {
        for n in [0, 3, PACKED_MAX_ENTRIES + 5] {
            let pairs = numbered(n, 5);
            let ours: HashFields = pairs.iter().cloned().collect();
            let theirs: OrdMap<Bytes, Bytes> = pairs
                .iter()
                .map(|(f, v)| (Bytes::from(f.clone()), Bytes::from(v.clone())))
                .collect();
            let bytes = postcard::to_allocvec(&ours).expect("encode");
            assert_eq!(bytes, postcard::to_allocvec(&theirs).expect("encode"));
            let back: HashFields = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back, ours);
            assert_eq!(back.packed_bytes().is_some(), n <= PACKED_MAX_ENTRIES);
        }
    }
}
