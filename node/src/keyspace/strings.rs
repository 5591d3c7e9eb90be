//! String commands: GET/SET and their variants, counters and ranges.

use bytes::{Bytes, BytesMut};

use super::{CompactBytes, Entry, ReadCtx, Value, WriteCtx, MAX_STRING_LEN};
use crate::command::errors as err;
use crate::command::{parse_f64, parse_i64};
use crate::resp::Frame;

/// The string in `entry`, if any; `Err` carries WRONGTYPE for other types.
fn string_of(entry: Option<&Entry>) -> Result<Option<Bytes>, Frame> {
    match entry.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.to_bytes())),
        Some(_) => Err(Frame::error(err::WRONGTYPE)),
    }
}

/// The string under `key` for a read.
fn read_string(ctx: &ReadCtx<'_>, key: &Bytes) -> Result<Option<Bytes>, Frame> {
    string_of(ctx.get(key))
}

/// The string under `key` inside apply (deleting it first if it expired).
fn write_string(ctx: &mut WriteCtx<'_>, key: &Bytes) -> Result<Option<Bytes>, Frame> {
    string_of(ctx.get(key))
}

fn bulk_or_null(value: Option<Bytes>) -> Frame {
    value.map(Frame::Bulk).unwrap_or(Frame::Null)
}

macro_rules! try_frame {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(frame) => return frame,
        }
    };
}

/// GET key
pub fn get(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    bulk_or_null(try_frame!(read_string(ctx, &args[1])))
}

/// MGET key [key ...]: a key of another type reads as nil, as in Redis.
pub fn mget(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    Frame::Array(
        args[1..]
            .iter()
            .map(|k| match ctx.get(k).map(|e| &e.value) {
                Some(Value::Str(s)) => Frame::Bulk(s.to_bytes()),
                _ => Frame::Null,
            })
            .collect(),
    )
}

/// STRLEN key
pub fn strlen(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let value = try_frame!(read_string(ctx, &args[1]));
    Frame::Integer(value.map_or(0, |v| v.len() as i64))
}

/// GETRANGE key start end
pub fn getrange(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return Frame::error(err::NOT_INTEGER);
    };
    let value = try_frame!(read_string(ctx, &args[1])).unwrap_or_default();
    Frame::Bulk(substring(&value, start, end))
}

/// Redis's inclusive, negative-from-the-end range over a string.
fn substring(value: &Bytes, mut start: i64, mut end: i64) -> Bytes {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Bytes::new();
    }
    value.slice(start as usize..=end as usize)
}

/// Expiry requested by SET / GETEX options.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expiry {
    /// Drop any expiry.
    Persist,
    /// Keep the current expiry (SET KEEPTTL).
    Keep,
    /// Expire at this absolute time in ms.
    At(u64),
}

/// Turns an EX/PX/EXAT/PXAT argument into an absolute time, with Redis's checks.
fn absolute_expiry(
    raw: &[u8],
    unit_ms: i64,
    absolute: bool,
    now_ms: u64,
    cmd: &str,
) -> Result<u64, Frame> {
    let amount = parse_i64(raw).ok_or_else(|| Frame::error(err::NOT_INTEGER))?;
    let invalid = || Frame::error(err::invalid_expire(cmd));
    if amount <= 0 {
        return Err(invalid());
    }
    let ms = amount.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(now_ms as i64).ok_or_else(invalid)?
    };
    Ok(at as u64)
}

#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    expiry: Option<Expiry>,
}

fn parse_set_options(args: &[Bytes], now_ms: u64) -> Result<SetOptions, Frame> {
    let mut opts = SetOptions::default();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].to_ascii_uppercase();
        let next = args.get(i + 1);
        match (word.as_slice(), next) {
            (b"NX", _) if !opts.xx => opts.nx = true,
            (b"XX", _) if !opts.nx => opts.xx = true,
            (b"GET", _) => opts.get = true,
            (b"KEEPTTL", _) if opts.expiry.is_none() => opts.expiry = Some(Expiry::Keep),
            (b"EX" | b"PX" | b"EXAT" | b"PXAT", Some(amount)) if opts.expiry.is_none() => {
                let unit = if word.starts_with(b"E") { 1000 } else { 1 };
                let absolute = word.ends_with(b"AT");
                opts.expiry = Some(Expiry::At(absolute_expiry(
                    amount, unit, absolute, now_ms, "set",
                )?));
                i += 1;
            }
            _ => return Err(Frame::error(err::SYNTAX)),
        }
        i += 1;
    }
    Ok(opts)
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]
pub fn set(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let opts = try_frame!(parse_set_options(&args[3..], ctx.now_ms));
    let key = &args[1];
    // One lookup serves the GET option, NX/XX and KEEPTTL; the old value is copied only
    // when GET asks for it. A plain SET, the common case, needs nothing of the old entry:
    // the insert alone replaces it.
    let needs_old = opts.nx || opts.xx || opts.get || matches!(opts.expiry, Some(Expiry::Keep));
    let old_entry = if needs_old { ctx.get(key) } else { None };
    let (exists, old_expiry, old) = match old_entry {
        None => (false, None, None),
        Some(entry) => match &entry.value {
            Value::Str(s) => (true, entry.expires_at(), opts.get.then(|| s.to_bytes())),
            _ if opts.get => return Frame::error(err::WRONGTYPE),
            _ => (true, entry.expires_at(), None),
        },
    };
    if (opts.nx && exists) || (opts.xx && !exists) {
        return if opts.get {
            bulk_or_null(old)
        } else {
            Frame::Null
        };
    }
    let expiry = match opts.expiry.unwrap_or(Expiry::Persist) {
        Expiry::Keep => old_expiry.map_or(Expiry::Persist, Expiry::At),
        other => other,
    };
    store_string(ctx, key, &args[2], expiry);
    if opts.get {
        bulk_or_null(old)
    } else {
        Frame::ok()
    }
}

fn store_string(ctx: &mut WriteCtx<'_>, key: &Bytes, value: &[u8], expiry: Expiry) {
    match expiry {
        Expiry::Persist => ctx.set(key, Value::string(value), None),
        Expiry::Keep => ctx.set_keep_ttl(key, Value::string(value)),
        // A deadline already passed deletes the key, as Redis does for EXAT in the past.
        Expiry::At(at) if at <= ctx.now_ms => {
            ctx.remove(key);
        }
        Expiry::At(at) => ctx.set(key, Value::string(value), Some(at)),
    }
}

/// SETNX key value
pub fn setnx(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if ctx.get(&args[1]).is_some() {
        return Frame::Integer(0);
    }
    ctx.set(&args[1], Value::string(&args[2]), None);
    Frame::Integer(1)
}

/// SETNX on a key that is there, of any type.
pub fn setnx_unchanged(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Option<Frame> {
    ctx.get(&args[1]).map(|_| Frame::Integer(0))
}

/// SETEX key seconds value
pub fn setex(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    setex_generic(ctx, args, 1000, "setex")
}

/// PSETEX key milliseconds value
pub fn psetex(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    setex_generic(ctx, args, 1, "psetex")
}

fn setex_generic(ctx: &mut WriteCtx<'_>, args: &[Bytes], unit_ms: i64, cmd: &str) -> Frame {
    let at = try_frame!(absolute_expiry(&args[2], unit_ms, false, ctx.now_ms, cmd));
    ctx.set(&args[1], Value::string(&args[3]), Some(at));
    Frame::ok()
}

/// GETSET key value
pub fn getset(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let old = try_frame!(write_string(ctx, &args[1]));
    ctx.set(&args[1], Value::string(&args[2]), None);
    bulk_or_null(old)
}

/// GETDEL key
pub fn getdel(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let old = try_frame!(write_string(ctx, &args[1]));
    if old.is_some() {
        ctx.remove(&args[1]);
    }
    bulk_or_null(old)
}

/// GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]
pub fn getex(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let mut expiry = None;
    let mut i = 2;
    while i < args.len() {
        let word = args[i].to_ascii_uppercase();
        match (word.as_slice(), args.get(i + 1)) {
            (b"PERSIST", _) if expiry.is_none() => expiry = Some(Expiry::Persist),
            (b"EX" | b"PX" | b"EXAT" | b"PXAT", Some(amount)) if expiry.is_none() => {
                let unit = if word.starts_with(b"E") { 1000 } else { 1 };
                let at = absolute_expiry(amount, unit, word.ends_with(b"AT"), ctx.now_ms, "getex");
                expiry = Some(Expiry::At(try_frame!(at)));
                i += 1;
            }
            _ => return Frame::error(err::SYNTAX),
        }
        i += 1;
    }
    let key = &args[1];
    let Some(value) = try_frame!(write_string(ctx, key)) else {
        return Frame::Null;
    };
    match expiry {
        None | Some(Expiry::Keep) => {}
        Some(Expiry::Persist) => {
            ctx.set_expiry(key, None);
        }
        Some(Expiry::At(at)) if at <= ctx.now_ms => {
            ctx.remove(key);
        }
        Some(Expiry::At(at)) => {
            ctx.set_expiry(key, Some(at));
        }
    }
    Frame::Bulk(value)
}

/// MSET key value [key value ...]
pub fn mset(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if args.len().is_multiple_of(2) {
        return Frame::error(err::wrong_arity("mset"));
    }
    for pair in args[1..].chunks_exact(2) {
        ctx.set(&pair[0], Value::string(&pair[1]), None);
    }
    Frame::ok()
}

/// MSETNX key value [key value ...]: all or nothing.
pub fn msetnx(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if args.len().is_multiple_of(2) {
        return Frame::error(err::wrong_arity("msetnx"));
    }
    let pairs: Vec<&[Bytes]> = args[1..].chunks_exact(2).collect();
    if pairs.iter().any(|pair| ctx.get(&pair[0]).is_some()) {
        return Frame::Integer(0);
    }
    for pair in pairs {
        ctx.set(&pair[0], Value::string(&pair[1]), None);
    }
    Frame::Integer(1)
}

/// APPEND key value
pub fn append(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let current = try_frame!(write_string(ctx, &args[1])).unwrap_or_default();
    let total = current.len() + args[2].len();
    if total > MAX_STRING_LEN {
        return Frame::error(err::STRING_TOO_LONG);
    }
    let mut joined = BytesMut::with_capacity(total);
    joined.extend_from_slice(&current);
    joined.extend_from_slice(&args[2]);
    ctx.set_keep_ttl(
        &args[1],
        Value::Str(CompactBytes::from_owned(joined.freeze())),
    );
    Frame::Integer(total as i64)
}

/// SETRANGE key offset value
pub fn setrange(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(offset) = parse_i64(&args[2]) else {
        return Frame::error(err::NOT_INTEGER);
    };
    if offset < 0 {
        return Frame::error(err::OFFSET_OUT_OF_RANGE);
    }
    let current = try_frame!(write_string(ctx, &args[1]));
    let patch = &args[3];
    if patch.is_empty() {
        return Frame::Integer(current.map_or(0, |c| c.len() as i64));
    }
    let offset = offset as usize;
    let Some(end) = offset
        .checked_add(patch.len())
        .filter(|&e| e <= MAX_STRING_LEN)
    else {
        return Frame::error(err::STRING_TOO_LONG);
    };
    let current = current.unwrap_or_default();
    let mut out = BytesMut::from(&current[..]);
    if out.len() < end {
        out.resize(end, 0);
    }
    out[offset..end].copy_from_slice(patch);
    let len = out.len();
    ctx.set_keep_ttl(&args[1], Value::Str(CompactBytes::from_owned(out.freeze())));
    Frame::Integer(len as i64)
}

fn incr_by(ctx: &mut WriteCtx<'_>, key: &Bytes, delta: i64) -> Frame {
    let (current, expires_at) = match ctx.get(key) {
        None => (0, None),
        Some(entry) => match &entry.value {
            Value::Str(raw) => match parse_i64(raw) {
                Some(n) => (n, entry.expires_at()),
                None => return Frame::error(err::NOT_INTEGER),
            },
            _ => return Frame::error(err::WRONGTYPE),
        },
    };
    let Some(next) = current.checked_add(delta) else {
        return Frame::error(err::INCR_OVERFLOW);
    };
    let mut buf = itoa::Buffer::new();
    ctx.set(key, Value::string(buf.format(next).as_bytes()), expires_at);
    Frame::Integer(next)
}

/// INCR key
pub fn incr(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    incr_by(ctx, &args[1], 1)
}

/// DECR key
pub fn decr(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    incr_by(ctx, &args[1], -1)
}

/// INCRBY key increment
pub fn incrby(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    match parse_i64(&args[2]) {
        Some(delta) => incr_by(ctx, &args[1], delta),
        None => Frame::error(err::NOT_INTEGER),
    }
}

/// DECRBY key decrement
pub fn decrby(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    match parse_i64(&args[2]).and_then(i64::checked_neg) {
        Some(delta) => incr_by(ctx, &args[1], delta),
        None if parse_i64(&args[2]).is_some() => Frame::error(err::INCR_OVERFLOW),
        None => Frame::error(err::NOT_INTEGER),
    }
}

/// INCRBYFLOAT key increment
pub fn incrbyfloat(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(delta) = parse_f64(&args[2]).filter(|d| d.is_finite()) else {
        return Frame::error(err::NOT_FLOAT);
    };
    let current = match try_frame!(write_string(ctx, &args[1])) {
        None => 0.0,
        Some(raw) => match parse_f64(&raw).filter(|v| v.is_finite()) {
            Some(v) => v,
            None => return Frame::error(err::NOT_FLOAT),
        },
    };
    let next = current + delta;
    if !next.is_finite() {
        return Frame::error(err::INCR_NAN);
    }
    // Shortest round-trip digits, never an exponent: what Redis's "%.17Lf" trimmed prints
    // for the values a long double and a double agree on.
    let text = Bytes::from(format!("{next}"));
    ctx.set_keep_ttl(&args[1], Value::string(&text));
    Frame::Bulk(text)
}

#[cfg(test)]
mod tests {
    use crate::keyspace::tests::must_apply;
    use crate::keyspace::Keyspace;
    use crate::resp::Frame;

    fn bulk(s: &str) -> Frame {
        Frame::bulk(s)
    }

    #[test]
    fn set_options_follow_redis() {
        let mut ks = Keyspace::new();
        assert_eq!(must_apply(&mut ks, 1000, "set k v nx"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 1000, "set k w nx"), Frame::Null);
        assert_eq!(must_apply(&mut ks, 1000, "set k w xx get"), bulk("v"));
        assert_eq!(must_apply(&mut ks, 1000, "set k x nx get"), bulk("w"));
        assert_eq!(must_apply(&mut ks, 1000, "set nokey x xx get"), Frame::Null);
        assert_eq!(
            must_apply(&mut ks, 1000, "set k v nx xx"),
            Frame::error(super::err::SYNTAX)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "set k v ex 10 px 5"),
            Frame::error(super::err::SYNTAX)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "set k v ex 0"),
            Frame::error("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "set k v ex abc"),
            Frame::error(super::err::NOT_INTEGER)
        );
        assert_eq!(must_apply(&mut ks, 1000, "set t v ex 10"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 2000, "set t w keepttl"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 2000, "pttl t"), Frame::Integer(9000));
        assert_eq!(must_apply(&mut ks, 2000, "set t w"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 2000, "pttl t"), Frame::Integer(-1));
        assert_eq!(
            must_apply(&mut ks, 2000, "set gone v pxat 1500"),
            Frame::ok()
        );
        assert_eq!(must_apply(&mut ks, 2000, "exists gone"), Frame::Integer(0));
        // A plain SET replaces a value of any type, and its TTL, without looking at it.
        assert_eq!(must_apply(&mut ks, 2000, "rpush l a"), Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 2000, "expire l 100"), Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 2000, "set l v"), Frame::ok());
        assert_eq!(
            must_apply(&mut ks, 2000, "type l"),
            Frame::Simple("string".into())
        );
        assert_eq!(must_apply(&mut ks, 2000, "ttl l"), Frame::Integer(-1));
        assert_eq!(must_apply(&mut ks, 2000, "set l w get"), bulk("v"));
    }

    #[test]
    fn counters_check_types_and_overflow() {
        let mut ks = Keyspace::new();
        assert_eq!(must_apply(&mut ks, 1, "incr n"), Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 1, "incrby n 41"), Frame::Integer(42));
        assert_eq!(must_apply(&mut ks, 1, "decrby n 2"), Frame::Integer(40));
        assert_eq!(
            must_apply(&mut ks, 1, "set big 9223372036854775807"),
            Frame::ok()
        );
        assert_eq!(
            must_apply(&mut ks, 1, "incr big"),
            Frame::error(super::err::INCR_OVERFLOW)
        );
        assert_eq!(must_apply(&mut ks, 1, "set s abc"), Frame::ok());
        assert_eq!(
            must_apply(&mut ks, 1, "incr s"),
            Frame::error(super::err::NOT_INTEGER)
        );
        assert_eq!(must_apply(&mut ks, 1, "set f 10.5"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 1, "incrbyfloat f 0.1"), bulk("10.6"));
        assert_eq!(must_apply(&mut ks, 1, "incrbyfloat f -5.6"), bulk("5"));
        assert_eq!(
            must_apply(&mut ks, 1, "incrbyfloat f abc"),
            Frame::error(super::err::NOT_FLOAT)
        );
        assert_eq!(must_apply(&mut ks, 1, "set h 1e308"), Frame::ok());
        assert_eq!(
            must_apply(&mut ks, 1, "incrbyfloat h 1e308"),
            Frame::error(super::err::INCR_NAN)
        );
    }

    #[test]
    fn ranges_follow_redis_indexing() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1, "set s Hello");
        assert_eq!(must_apply(&mut ks, 1, "getrange s 0 -1"), bulk("Hello"));
        assert_eq!(must_apply(&mut ks, 1, "getrange s -3 -1"), bulk("llo"));
        assert_eq!(must_apply(&mut ks, 1, "getrange s 10 20"), bulk(""));
        assert_eq!(must_apply(&mut ks, 1, "getrange s -1 -3"), bulk(""));
        assert_eq!(
            must_apply(&mut ks, 1, "setrange s 7 World"),
            Frame::Integer(12)
        );
        assert_eq!(
            must_apply(&mut ks, 1, "get s"),
            Frame::bulk(b"Hello\0\0World")
        );
        assert_eq!(
            must_apply(&mut ks, 1, "setrange s -1 x"),
            Frame::error(super::err::OFFSET_OUT_OF_RANGE)
        );
        assert_eq!(
            must_apply(&mut ks, 1, "setrange s 536870911 xx"),
            Frame::error(super::err::STRING_TOO_LONG)
        );
        assert_eq!(must_apply(&mut ks, 1, "append s !"), Frame::Integer(13));
        assert_eq!(must_apply(&mut ks, 1, "strlen s"), Frame::Integer(13));
    }

    #[test]
    fn getex_getdel_and_msetnx() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1000, "set k v");
        assert_eq!(must_apply(&mut ks, 1000, "getex k px 500"), bulk("v"));
        assert_eq!(must_apply(&mut ks, 1000, "pttl k"), Frame::Integer(500));
        assert_eq!(must_apply(&mut ks, 1000, "getex k persist"), bulk("v"));
        assert_eq!(must_apply(&mut ks, 1000, "ttl k"), Frame::Integer(-1));
        assert_eq!(
            must_apply(&mut ks, 1000, "getex k ex 1 persist"),
            Frame::error(super::err::SYNTAX)
        );
        assert_eq!(must_apply(&mut ks, 1000, "getdel k"), bulk("v"));
        assert_eq!(must_apply(&mut ks, 1000, "getdel k"), Frame::Null);
        assert_eq!(
            must_apply(&mut ks, 1000, "msetnx a 1 b 2"),
            Frame::Integer(1)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "msetnx b 3 c 4"),
            Frame::Integer(0)
        );
        assert_eq!(must_apply(&mut ks, 1000, "exists c"), Frame::Integer(0));
        assert_eq!(
            must_apply(&mut ks, 1000, "mset a"),
            Frame::error("ERR wrong number of arguments for 'mset' command")
        );
    }
}
