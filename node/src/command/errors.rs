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
