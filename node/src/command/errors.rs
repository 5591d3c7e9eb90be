//! Redis's error texts, in one place, so every reply reads exactly as Redis 7's does.
//!
//! Each constant is the text after the leading `-`; builders cover the texts that name a
//! command or an argument.

/// Wrong value type for the operation.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Generic syntax error.
pub const SYNTAX: &str = "ERR syntax error";
/// An argument that must be an integer is not one, or does not fit.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// An argument that must be a float is not one.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
/// INCR/DECR family overflow.
pub const INCR_OVERFLOW: &str = "ERR increment or decrement would overflow";
/// INCRBYFLOAT produced NaN or infinity.
pub const INCR_NAN: &str = "ERR increment would produce NaN or Infinity";
/// RENAME and friends on a missing key.
pub const NO_SUCH_KEY: &str = "ERR no such key";
/// SELECT / COPY DB outside 0..16.
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
/// SETRANGE / GETRANGE offsets.
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
/// SETRANGE / APPEND growing a string past proto-max-bulk-len.
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
/// SCAN with a cursor that is not an unsigned integer.
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
/// COPY onto itself.
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
/// Expire options that contradict each other.
pub const EXPIRE_NX_XX: &str =
    "ERR NX and XX, GT or LT options at the same time are not compatible";
/// GT together with LT.
pub const EXPIRE_GT_LT: &str = "ERR GT and LT options at the same time are not compatible";
/// `OBJECT IDLETIME` on a key an LFU policy governs.
pub const LRU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
/// OBJECT FREQ without an LFU policy.
pub const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
/// HELLO with a protocol version other than 2 or 3.
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
/// A write reached a node that cannot accept it right now.
pub const TRYAGAIN_NO_LEADER: &str = "TRYAGAIN no leader is known, try again later";

/// `ERR wrong number of arguments for 'name' command`.
pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// `ERR unknown command 'name', with args beginning with: 'a' 'b' `.
pub fn unknown_command(args: &[bytes::Bytes]) -> String {
    let name = args.first().map(|a| lossy_trimmed(a)).unwrap_or_default();
    let mut text = format!("ERR unknown command '{name}', with args beginning with: ");
    for arg in args.iter().skip(1) {
        // Redis stops listing arguments once the message would grow too long.
        if text.len() >= 128 {
            break;
        }
        text.push_str(&format!("'{}' ", lossy_trimmed(arg)));
    }
    text
}

/// `ERR unknown subcommand 'sub'. Try CONTAINER HELP.`.
pub fn unknown_subcommand(container: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        lossy_trimmed(sub),
        container.to_ascii_uppercase()
    )
}

/// `ERR invalid expire time in 'cmd' command`.
pub fn invalid_expire(command: &str) -> String {
    format!("ERR invalid expire time in '{command}' command")
}

/// Redis cuts user text in error messages at 128 bytes and never lets a newline through.
fn lossy_trimmed(raw: &[u8]) -> String {
    let cut = &raw[..raw.len().min(128)];
    String::from_utf8_lossy(cut).replace(['\r', '\n'], " ")
}

/// A count that must be zero or more (LPOP/RPOP count).
pub const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
/// LSET past either end of the list.
pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
/// LMPOP/BLMPOP numkeys below 1 or not an integer.
pub const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
/// LMPOP/BLMPOP COUNT below 1 or not an integer.
pub const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
/// LPOS RANK 0.
pub const LPOS_RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
/// LPOS COUNT negative or not an integer.
pub const LPOS_COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
/// LPOS MAXLEN negative or not an integer.
pub const LPOS_MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
/// A blocking command's timeout that is not a float (or is NaN).
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
/// A blocking command's timeout below zero.
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
/// A blocking command's timeout whose deadline would not fit in 64 bits.
pub const TIMEOUT_OUT_OF_RANGE: &str = "ERR timeout is out of range";
/// HINCRBY on a field whose value is not an integer.
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
/// HINCRBYFLOAT on a field whose value is not a float.
pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
/// HINCRBYFLOAT with an infinite increment.
pub const NAN_OR_INFINITY: &str = "ERR value is NaN or Infinity";
/// A count outside what the command accepts (HRANDFIELD ... WITHVALUES).
pub const OUT_OF_RANGE: &str = "ERR value is out of range";
/// SINTERCARD's numkeys past the arguments given.
pub const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
/// SINTERCARD's LIMIT below 0 or not a number.
pub const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";

// Sorted sets and blocking pops.

/// ZADD with both NX and XX.
pub const ZADD_NX_XX: &str = "ERR XX and NX options at the same time are not compatible";
/// ZADD with GT and LT, or either with NX.
pub const ZADD_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
/// ZADD INCR with more than one score-member pair.
pub const ZADD_INCR_PAIRS: &str = "ERR INCR option supports a single increment-element pair";
/// An increment that would leave a score of NaN (`+inf` plus `-inf`).
pub const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
/// A score range bound that is not a float.
pub const SCORE_RANGE: &str = "ERR min or max is not a float";
/// A lexicographic range bound without `(`, `[`, `-` or `+`.
pub const LEX_RANGE: &str = "ERR min or max not valid string range item";
/// ZRANGE LIMIT on a range by rank.
pub const LIMIT_NEEDS_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
/// ZRANGE BYLEX WITHSCORES.
pub const WITHSCORES_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
/// ZUNION/ZINTER WEIGHTS with a weight that is not a float.
pub const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";

/// `ERR at least 1 input key is needed for 'cmd' command`.
pub fn at_least_one_key(command: &str) -> String {
    format!("ERR at least 1 input key is needed for '{command}' command")
}

/// `ERR value is out of range, value must between <min> and <max>` (Redis's wording).
pub fn out_of_range_between(min: i64, max: i64) -> String {
    format!("ERR value is out of range, value must between {min} and {max}")
}

/// SETBIT / GETBIT / BITFIELD offsets that are not integers, negative, or past the
/// largest string.
pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
/// SETBIT with a value other than 0 or 1.
pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";
/// BITPOS looking for something other than 0 or 1.
pub const BITPOS_BIT: &str = "ERR The bit argument must be 1 or 0.";
/// BITOP NOT with more than one source.
pub const BITOP_NOT_ONE_KEY: &str = "ERR BITOP NOT must be called with a single source key.";
/// BITFIELD type other than i1..i64 / u1..u63.
pub const BITFIELD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
/// BITFIELD OVERFLOW with a mode other than WRAP, SAT or FAIL.
pub const BITFIELD_OVERFLOW: &str = "ERR Invalid OVERFLOW type specified";
/// BITFIELD_RO given SET or INCRBY.
pub const BITFIELD_RO_GET_ONLY: &str = "ERR BITFIELD_RO only supports the GET subcommand";

/// A write batch that apply will not run: older than the last one applied for its connection
/// (its replies are no longer known), or nested in another batch.
pub const STALE_CLIENT_BATCH: &str =
    "ERR write not applied: an older copy of a batch this connection already moved past";
