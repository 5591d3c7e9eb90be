//! Redis's encoding thresholds (`list-max-listpack-size`, `hash-max-listpack-entries`, ...)
//! and the encoding `OBJECT ENCODING` names for a value under them.
//!
//! cellkv keeps each type in one persistent structure whatever its size, so the thresholds
//! change no storage; they exist so that `CONFIG GET`/`CONFIG SET` and `OBJECT ENCODING`
//! answer as Redis 7.2 does, for clients and tests that probe them.
//!
//! The node's `CONFIG SET` publishes the thresholds to one process-wide table
//! ([`publish`]) that `OBJECT ENCODING` reads ([`current`]): a read handler sees only the
//! keyspace, not the server's settings. This does not touch determinism: no write reads
//! the table, so apply changes state the same way on every replica whatever the settings;
//! `OBJECT ENCODING` is introspection, and even inside `EXEC` (where it runs in apply) its
//! reply goes to the client and is never stored.

use bytes::Bytes;
use parking_lot::RwLock;

use super::Value;
use crate::command::parse_i64;

/// The thresholds, with Redis 7.2's names, defaults and ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingLimits {
    /// `list-max-listpack-size` (alias `list-max-ziplist-size`): a positive value caps the
    /// entries of a listpack, -1..-5 its bytes at 4, 8, 16, 32 or 64 KB.
    pub list_max_listpack_size: i64,
    /// `list-compress-depth`: stored and reported only (nothing is compressed).
    pub list_compress_depth: i64,
    /// `hash-max-listpack-entries` (alias `hash-max-ziplist-entries`).
    pub hash_max_listpack_entries: i64,
    /// `hash-max-listpack-value` (alias `hash-max-ziplist-value`), in bytes.
    pub hash_max_listpack_value: i64,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: i64,
    /// `set-max-listpack-entries`.
    pub set_max_listpack_entries: i64,
    /// `set-max-listpack-value`, in bytes.
    pub set_max_listpack_value: i64,
    /// `zset-max-listpack-entries` (alias `zset-max-ziplist-entries`).
    pub zset_max_listpack_entries: i64,
    /// `zset-max-listpack-value` (alias `zset-max-ziplist-value`), in bytes.
    pub zset_max_listpack_value: i64,
}

impl EncodingLimits {
    /// Redis 7.2's defaults.
    pub const DEFAULT: EncodingLimits = EncodingLimits {
        list_max_listpack_size: -2,
        list_compress_depth: 0,
        hash_max_listpack_entries: 128,
        hash_max_listpack_value: 64,
        set_max_intset_entries: 512,
        set_max_listpack_entries: 128,
        set_max_listpack_value: 64,
        zset_max_listpack_entries: 128,
        zset_max_listpack_value: 64,
    };
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits::DEFAULT
    }
}

/// How an option's text is read, as Redis's numeric config types read it.
#[derive(Clone, Copy)]
enum Kind {
    /// A C `int` within these bounds.
    Int { min: i64, max: i64 },
    /// A `size_t` up to `LONG_MAX`, plain integer.
    Size,
    /// A `size_t` up to `LONG_MAX` that also takes a unit (`1kb`, `2m`, ...).
    Memory,
}

/// One option: its name, the older name that is an alias of it, and its field.
struct OptionSpec {
    name: &'static str,
    alias: Option<&'static str>,
    kind: Kind,
    get: fn(&EncodingLimits) -> i64,
    set: fn(&mut EncodingLimits, i64),
}

const INT: Kind = Kind::Int {
    min: i32::MIN as i64,
    max: i32::MAX as i64,
};

static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "list-max-listpack-size",
        alias: Some("list-max-ziplist-size"),
        kind: INT,
        get: |l| l.list_max_listpack_size,
        set: |l, v| l.list_max_listpack_size = v,
    },
    OptionSpec {
        name: "list-compress-depth",
        alias: None,
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
        },
        get: |l| l.list_compress_depth,
        set: |l, v| l.list_compress_depth = v,
    },
    OptionSpec {
        name: "hash-max-listpack-entries",
        alias: Some("hash-max-ziplist-entries"),
        kind: Kind::Size,
        get: |l| l.hash_max_listpack_entries,
        set: |l, v| l.hash_max_listpack_entries = v,
    },
    OptionSpec {
        name: "hash-max-listpack-value",
        alias: Some("hash-max-ziplist-value"),
        kind: Kind::Memory,
        get: |l| l.hash_max_listpack_value,
        set: |l, v| l.hash_max_listpack_value = v,
    },
    OptionSpec {
        name: "set-max-intset-entries",
        alias: None,
        kind: Kind::Size,
        get: |l| l.set_max_intset_entries,
        set: |l, v| l.set_max_intset_entries = v,
    },
    OptionSpec {
        name: "set-max-listpack-entries",
        alias: None,
        kind: Kind::Size,
        get: |l| l.set_max_listpack_entries,
        set: |l, v| l.set_max_listpack_entries = v,
    },
    OptionSpec {
        name: "set-max-listpack-value",
        alias: None,
        kind: Kind::Size,
        get: |l| l.set_max_listpack_value,
        set: |l, v| l.set_max_listpack_value = v,
    },
    OptionSpec {
        name: "zset-max-listpack-entries",
        alias: Some("zset-max-ziplist-entries"),
        kind: Kind::Size,
        get: |l| l.zset_max_listpack_entries,
        set: |l, v| l.zset_max_listpack_entries = v,
    },
    OptionSpec {
        name: "zset-max-listpack-value",
        alias: Some("zset-max-ziplist-value"),
        kind: Kind::Memory,
        get: |l| l.zset_max_listpack_value,
        set: |l, v| l.zset_max_listpack_value = v,
    },
];

impl EncodingLimits {
    /// Every option under every name it answers to (aliases included, as Redis 7's
    /// `CONFIG GET *` lists them), with its value as `CONFIG GET` prints it.
    pub fn config_values(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for option in OPTIONS {
            let value = (option.get)(self).to_string();
            if let Some(alias) = option.alias {
                out.push((alias, value.clone()));
            }
            out.push((option.name, value));
        }
        out
    }

    /// `CONFIG SET name value` for an encoding option named by its name or alias
    /// (lower case): `None` when `name` is none of them, otherwise whether the value was
    /// valid, with Redis's reason when not.
    pub fn config_set(&mut self, name: &str, raw: &[u8]) -> Option<Result<(), String>> {
        let option = OPTIONS
            .iter()
            .find(|o| o.name == name || o.alias == Some(name))?;
        Some(parse_value(option.kind, raw).map(|v| (option.set)(self, v)))
    }
}

/// Reads a value as Redis's numeric configs do, with their error texts.
fn parse_value(kind: Kind, raw: &[u8]) -> Result<i64, String> {
    let (value, min, max) = match kind {
        Kind::Int { min, max } => (parse_i64(raw).map(i128::from), min, max),
        Kind::Size => (parse_i64(raw).map(|v| i128::from(v as u64)), 0, i64::MAX),
        Kind::Memory => (parse_memory(raw), 0, i64::MAX),
    };
    let Some(value) = value else {
        return Err(match kind {
            Kind::Memory => "argument must be a memory value".to_string(),
            _ => "argument couldn't be parsed into an integer".to_string(),
        });
    };
    // An unsigned option reads a negative number as its 64-bit two's complement, which
    // then fails the bounds check, as in Redis.
    if value < i128::from(min) || value > i128::from(max) {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(value as i64)
}

/// Redis's `memtoull`: digits then an optional unit (`b`, `k`, `kb`, `m`, `mb`, `g`, `gb`,
/// any case). A value too large for 64 bits reads as the largest, which the bounds check
/// then refuses.
fn parse_memory(raw: &[u8]) -> Option<i128> {
    let digits = raw.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, unit) = raw.split_at(digits);
    let multiplier: i128 = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // strtoull of no digits is 0, as in Redis.
    let number = number
        .iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX);
    Some((i128::from(number) * multiplier).min(i128::from(u64::MAX)))
}

/// The thresholds `OBJECT ENCODING` judges by; see the module doc for why a process-wide
/// table is sound.
static CURRENT: RwLock<EncodingLimits> = parking_lot::const_rwlock(EncodingLimits::DEFAULT);

/// The thresholds last published.
pub fn current() -> EncodingLimits {
    *CURRENT.read()
}

/// Makes `limits` the thresholds `OBJECT ENCODING` judges by (on `CONFIG SET`, and when a
/// node starts).
pub fn publish(limits: &EncodingLimits) {
    *CURRENT.write() = *limits;
}

/// Byte budgets of `list-max-listpack-size` -1..-5.
const LIST_SIZE_CLASSES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// A listpack limited by entry count is still never allowed past this many bytes.
const LIST_SIZE_SAFETY: usize = 8192;
/// An intset never holds more than this, whatever `set-max-intset-entries` says.
const INTSET_MAX: i64 = 1 << 30;

/// The name `OBJECT ENCODING` gives `value` under `limits`: what Redis 7.2 reports for
/// the same value built up by ordinary commands.
pub fn encoding_name(value: &Value, limits: &EncodingLimits) -> &'static str {
    match value {
        Value::Str(s) if s.len() <= 20 && parse_i64(s).is_some() => "int",
        Value::Str(s) if s.len() <= 44 => "embstr",
        Value::Str(_) => "raw",
        Value::List(list) => {
            if list_fits_listpack(list, limits.list_max_listpack_size) {
                "listpack"
            } else {
                "quicklist"
            }
        }
        Value::Hash(hash) => {
            let max = limits.hash_max_listpack_value;
            if within(hash.len(), limits.hash_max_listpack_entries)
                && hash
                    .iter()
                    .all(|(field, v)| within(field.len(), max) && within(v.len(), max))
            {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::Set(set) => {
            let intset_max = limits.set_max_intset_entries.min(INTSET_MAX);
            let max = limits.set_max_listpack_value;
            if within(set.len(), intset_max) && set.iter().all(|m| parse_i64(m).is_some()) {
                "intset"
            } else if within(set.len(), limits.set_max_listpack_entries)
                && set.iter().all(|m| within(m.len(), max))
            {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(zset) => {
            let max = limits.zset_max_listpack_value;
            if within(zset.len(), limits.zset_max_listpack_entries)
                && zset.iter().all(|(member, _)| within(member.len(), max))
            {
                "listpack"
            } else {
                "skiplist"
            }
        }
    }
}

fn within(n: usize, limit: i64) -> bool {
    i64::try_from(n).is_ok_and(|n| n <= limit)
}

/// Whether a list fits one listpack node under `list-max-listpack-size`, as Redis 7.2
/// decides when it converts a listpack list to a quicklist.
fn list_fits_listpack(list: &imbl::Vector<Bytes>, fill: i64) -> bool {
    let byte_limit = if fill >= 0 {
        // A count of 0 still allows one entry per node.
        if !within(list.len(), fill.max(1)) {
            return false;
        }
        LIST_SIZE_SAFETY
    } else {
        let class = usize::try_from(-(fill + 1)).unwrap_or(usize::MAX);
        LIST_SIZE_CLASSES[class.min(LIST_SIZE_CLASSES.len() - 1)]
    };
    listpack_bytes(list.iter(), byte_limit).is_some()
}

/// The bytes a listpack of `items` takes (6-byte header, entries, end byte), or `None`
/// as soon as it passes `limit`, so a long list is not walked to the end.
fn listpack_bytes<'a>(items: impl Iterator<Item = &'a Bytes>, limit: usize) -> Option<usize> {
    let mut total = 7usize;
    for item in items {
        total += listpack_entry_bytes(item);
        if total > limit {
            return None;
        }
    }
    Some(total)
}

/// One listpack entry: encoding and data, then the back-length of those.
fn listpack_entry_bytes(item: &[u8]) -> usize {
    let body = match parse_i64(item) {
        Some(0..=127) => 1,
        Some(-4096..=4095) => 2,
        Some(-32_768..=32_767) => 3,
        Some(-8_388_608..=8_388_607) => 4,
        Some(-2_147_483_648..=2_147_483_647) => 5,
        Some(_) => 9,
        None if item.len() < 64 => 1 + item.len(),
        None if item.len() < 4096 => 2 + item.len(),
        None => 5 + item.len(),
    };
    let back_len = match body {
        0..=127 => 1,
        128..=16_382 => 2,
        16_383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    body + back_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::SortedSet;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn list(items: &[&str]) -> Value {
        Value::List(Box::new(items.iter().map(|s| b(s)).collect()))
    }

    fn hash(pairs: &[(&str, &str)]) -> Value {
        Value::Hash(Box::new(pairs.iter().map(|(k, v)| (b(k), b(v))).collect()))
    }

    fn set(members: &[&str]) -> Value {
        Value::Set(Box::new(
            members
                .iter()
                .map(|s| crate::keyspace::CompactBytes::from(*s))
                .collect(),
        ))
    }

    fn zset(members: &[&str]) -> Value {
        let mut z = SortedSet::new();
        for (i, m) in members.iter().enumerate() {
            z.insert(crate::keyspace::CompactBytes::copy(m.as_bytes()), i as f64);
        }
        Value::ZSet(Box::new(z))
    }

    fn numbered(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m{i}")).collect()
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    const D: EncodingLimits = EncodingLimits::DEFAULT;

    /// Strings: int up to 20 bytes, embstr up to 44, raw beyond.
    #[test]
    fn strings_follow_the_length_rules() {
        assert_eq!(encoding_name(&Value::string("-123".as_bytes()), &D), "int");
        assert_eq!(
            encoding_name(&Value::string("0123".as_bytes()), &D),
            "embstr"
        );
        assert_eq!(
            encoding_name(&Value::string("x".repeat(44).as_bytes()), &D),
            "embstr"
        );
        assert_eq!(
            encoding_name(&Value::string("x".repeat(45).as_bytes()), &D),
            "raw"
        );
    }

    /// Lists: by bytes for negative sizes (8 KB by default), by count for positive ones
    /// (never past the 8 KB safety limit).
    #[test]
    fn lists_switch_to_quicklist_at_their_size_class() {
        assert_eq!(encoding_name(&list(&["a", "b"]), &D), "listpack");
        // 60-byte items take 62 bytes each: 132 fit in 8 KB (7 + 132*62 = 8191), 133 do not.
        let item = "x".repeat(60);
        let fits = vec![item.as_str(); 132];
        assert_eq!(encoding_name(&list(&fits), &D), "listpack");
        let over = vec![item.as_str(); 133];
        assert_eq!(encoding_name(&list(&over), &D), "quicklist");
        let minus1 = EncodingLimits {
            list_max_listpack_size: -1,
            ..D
        };
        assert_eq!(encoding_name(&list(&fits), &minus1), "quicklist");
        let minus9 = EncodingLimits {
            list_max_listpack_size: -9,
            ..D
        };
        let big = vec![item.as_str(); 1000];
        assert_eq!(encoding_name(&list(&big), &minus9), "listpack");
        let count4 = EncodingLimits {
            list_max_listpack_size: 4,
            ..D
        };
        assert_eq!(
            encoding_name(&list(&["1", "2", "3", "4"]), &count4),
            "listpack"
        );
        assert_eq!(
            encoding_name(&list(&["1", "2", "3", "4", "5"]), &count4),
            "quicklist"
        );
        let huge = "y".repeat(9000);
        assert_eq!(encoding_name(&list(&[huge.as_str()]), &count4), "quicklist");
        let count0 = EncodingLimits {
            list_max_listpack_size: 0,
            ..D
        };
        assert_eq!(encoding_name(&list(&["a"]), &count0), "listpack");
        assert_eq!(encoding_name(&list(&["a", "b"]), &count0), "quicklist");
    }

    /// Listpack entry sizes: small integers are packed, strings carry their length.
    #[test]
    fn listpack_entries_are_sized_like_redis() {
        assert_eq!(listpack_entry_bytes(b"5"), 2);
        assert_eq!(listpack_entry_bytes(b"-1"), 3);
        assert_eq!(listpack_entry_bytes(b"100000"), 5);
        assert_eq!(listpack_entry_bytes(b"9223372036854775807"), 10);
        assert_eq!(listpack_entry_bytes(b"abc"), 5);
        assert_eq!(listpack_entry_bytes(&[b'x'; 100]), 103);
        assert_eq!(listpack_entry_bytes(&[b'x'; 5000]), 5007);
    }

    /// Hashes: listpack while both the count and every field and value are small.
    #[test]
    fn hashes_switch_on_count_and_value_length() {
        assert_eq!(encoding_name(&hash(&[("f", "v")]), &D), "listpack");
        let long = "v".repeat(65);
        assert_eq!(encoding_name(&hash(&[("f", &long)]), &D), "hashtable");
        assert_eq!(encoding_name(&hash(&[(&long, "v")]), &D), "hashtable");
        let exact = "v".repeat(64);
        assert_eq!(encoding_name(&hash(&[("f", &exact)]), &D), "listpack");
        let names = numbered(129);
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        assert_eq!(encoding_name(&hash(&pairs[..128]), &D), "listpack");
        assert_eq!(encoding_name(&hash(&pairs), &D), "hashtable");
        let zero = EncodingLimits {
            hash_max_listpack_entries: 0,
            ..D
        };
        assert_eq!(encoding_name(&hash(&[("f", "v")]), &zero), "hashtable");
    }

    /// Sets: intset for few canonical integers, then listpack, then hashtable.
    #[test]
    fn sets_choose_intset_listpack_or_hashtable() {
        assert_eq!(encoding_name(&set(&["1", "-2", "300"]), &D), "intset");
        assert_eq!(encoding_name(&set(&["1", "a"]), &D), "listpack");
        // Not canonical integers: stored as strings.
        assert_eq!(encoding_name(&set(&["01", "2"]), &D), "listpack");
        assert_eq!(
            encoding_name(&set(&["9223372036854775808"]), &D),
            "listpack"
        );
        let ints: Vec<String> = (0..513).map(|i| i.to_string()).collect();
        assert_eq!(encoding_name(&set(&refs(&ints[..512])), &D), "intset");
        assert_eq!(encoding_name(&set(&refs(&ints)), &D), "hashtable");
        let names = numbered(129);
        assert_eq!(encoding_name(&set(&refs(&names[..128])), &D), "listpack");
        assert_eq!(encoding_name(&set(&refs(&names)), &D), "hashtable");
        let long = "m".repeat(65);
        assert_eq!(encoding_name(&set(&[long.as_str()]), &D), "hashtable");
        let small_intset = EncodingLimits {
            set_max_intset_entries: 2,
            ..D
        };
        assert_eq!(
            encoding_name(&set(&["1", "2", "3"]), &small_intset),
            "listpack"
        );
    }

    /// Sorted sets: listpack while the count and every member are small.
    #[test]
    fn zsets_switch_to_skiplist() {
        assert_eq!(encoding_name(&zset(&["a", "b"]), &D), "listpack");
        let long = "m".repeat(65);
        assert_eq!(encoding_name(&zset(&[long.as_str()]), &D), "skiplist");
        let names = numbered(129);
        assert_eq!(encoding_name(&zset(&refs(&names[..128])), &D), "listpack");
        assert_eq!(encoding_name(&zset(&refs(&names)), &D), "skiplist");
        let one = EncodingLimits {
            zset_max_listpack_entries: 1,
            ..D
        };
        assert_eq!(encoding_name(&zset(&["a"]), &one), "listpack");
        assert_eq!(encoding_name(&zset(&["a", "b"]), &one), "skiplist");
    }

    /// CONFIG SET parsing: names and aliases set one field; Redis's bounds and texts.
    #[test]
    fn config_set_validates_like_redis() {
        let mut l = D;
        assert_eq!(l.config_set("hash-max-ziplist-entries", b"5"), Some(Ok(())));
        assert_eq!(l.hash_max_listpack_entries, 5);
        let values = l.config_values();
        assert!(values.contains(&("hash-max-listpack-entries", "5".to_string())));
        assert!(values.contains(&("hash-max-ziplist-entries", "5".to_string())));
        assert_eq!(
            l.config_set("hash-max-listpack-value", b"1kb"),
            Some(Ok(()))
        );
        assert_eq!(l.hash_max_listpack_value, 1024);
        assert_eq!(l.config_set("zset-max-ziplist-value", b"2K"), Some(Ok(())));
        assert_eq!(l.zset_max_listpack_value, 2000);
        assert_eq!(l.config_set("list-max-listpack-size", b"-5"), Some(Ok(())));
        assert_eq!(l.list_max_listpack_size, -5);
        assert_eq!(
            l.config_set("set-max-intset-entries", b"-1"),
            Some(Err(
                "argument must be between 0 and 9223372036854775807 inclusive".into()
            ))
        );
        assert_eq!(
            l.config_set("set-max-listpack-value", b"1kb"),
            Some(Err("argument couldn't be parsed into an integer".into()))
        );
        assert_eq!(
            l.config_set("zset-max-listpack-value", b"12x"),
            Some(Err("argument must be a memory value".into()))
        );
        assert_eq!(
            l.config_set("list-compress-depth", b"-1"),
            Some(Err(
                "argument must be between 0 and 2147483647 inclusive".into()
            ))
        );
        assert_eq!(
            l.config_set("list-max-ziplist-size", b"2147483648"),
            Some(Err(
                "argument must be between -2147483648 and 2147483647 inclusive".into()
            ))
        );
        assert_eq!(l.config_set("maxclients", b"1"), None);
        assert_eq!(values.len(), 14);
    }
}
