//! Commands on keys of any type: existence, deletion, renaming, scanning and expiry.

use bytes::Bytes;

use super::{encoding, glob, ReadCtx, WriteCtx, DATABASES};
use crate::command::errors as err;
use crate::command::parse_i64;
use crate::resp::Frame;

/// DEL key [key ...] (also UNLINK: memory is freed the same way here).
pub fn del(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    Frame::Integer(args[1..].iter().filter(|k| ctx.remove(k).is_some()).count() as i64)
}

/// DEL and UNLINK of keys none of which is there. An expired key still held counts as
/// there: deleting it is a change (it leaves a tombstone for WATCH).
pub fn del_unchanged(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Option<Frame> {
    let db = ctx.db();
    args[1..]
        .iter()
        .all(|k| db.get_any(k).is_none())
        .then_some(Frame::Integer(0))
}

/// EXISTS key [key ...]: a key named twice counts twice.
pub fn exists(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    Frame::Integer(args[1..].iter().filter(|k| ctx.get(k).is_some()).count() as i64)
}

/// TOUCH key [key ...]
pub fn touch(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    exists(ctx, args)
}

/// TYPE key
pub fn type_of(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    Frame::Simple(
        ctx.get(&args[1])
            .map_or("none", |e| e.value.type_name())
            .to_string(),
    )
}

/// DBSIZE
pub fn dbsize(ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    Frame::Integer(ctx.db().len() as i64)
}

fn flush_mode_ok(args: &[Bytes]) -> bool {
    match args.get(1) {
        None => args.len() == 1,
        Some(mode) => {
            args.len() == 2
                && (mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync"))
        }
    }
}

/// FLUSHDB [ASYNC|SYNC]
pub fn flushdb(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if !flush_mode_ok(args) {
        return Frame::error(err::SYNTAX);
    }
    ctx.flush_db();
    Frame::ok()
}

/// FLUSHALL [ASYNC|SYNC]
pub fn flushall(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if !flush_mode_ok(args) {
        return Frame::error(err::SYNTAX);
    }
    ctx.flush_all();
    Frame::ok()
}

/// RENAME key newkey
pub fn rename(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    rename_generic(ctx, args, false)
}

/// RENAMENX key newkey
pub fn renamenx(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    rename_generic(ctx, args, true)
}

fn rename_generic(ctx: &mut WriteCtx<'_>, args: &[Bytes], nx: bool) -> Frame {
    let (src, dst) = (&args[1], &args[2]);
    let Some(entry) = ctx.get(src).cloned() else {
        return Frame::error(err::NO_SUCH_KEY);
    };
    if src == dst {
        return if nx { Frame::Integer(0) } else { Frame::ok() };
    }
    if nx && ctx.get(dst).is_some() {
        return Frame::Integer(0);
    }
    ctx.remove(src);
    let expires_at = entry.expires_at();
    ctx.set(dst, entry.value, expires_at);
    if nx {
        Frame::Integer(1)
    } else {
        Frame::ok()
    }
}

/// COPY source destination [DB destination-db] [REPLACE]
pub fn copy(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let mut target_db = ctx.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if args[i].eq_ignore_ascii_case(b"db") && i + 1 < args.len() {
            let Some(db) = parse_i64(&args[i + 1]) else {
                return Frame::error(err::NOT_INTEGER);
            };
            if !(0..DATABASES as i64).contains(&db) {
                return Frame::error(err::DB_INDEX_OUT_OF_RANGE);
            }
            target_db = db as u32;
            i += 1;
        } else {
            return Frame::error(err::SYNTAX);
        }
        i += 1;
    }
    let (src, dst) = (&args[1], &args[2]);
    if src == dst && target_db == ctx.db {
        return Frame::error(err::SAME_OBJECT);
    }
    let Some(entry) = ctx.get(src).cloned() else {
        return Frame::Integer(0);
    };
    let now_ms = ctx.now_ms;
    if ctx.get_in_db(target_db, dst).is_some() && !replace {
        return Frame::Integer(0);
    }
    let expires_at = entry.expires_at();
    ctx.insert_in_db(
        target_db,
        dst,
        super::Entry::new(entry.value, expires_at, now_ms, entry.version),
    );
    Frame::Integer(1)
}

/// MOVE key db
pub fn move_key(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(db) = parse_i64(&args[2]) else {
        return Frame::error(err::NOT_INTEGER);
    };
    if !(0..DATABASES as i64).contains(&db) {
        return Frame::error(err::DB_INDEX_OUT_OF_RANGE);
    }
    if db as u32 == ctx.db {
        return Frame::error(err::SAME_OBJECT);
    }
    let Some(entry) = ctx.get(&args[1]).cloned() else {
        return Frame::Integer(0);
    };
    if ctx.get_in_db(db as u32, &args[1]).is_some() {
        return Frame::Integer(0);
    }
    ctx.insert_in_db(db as u32, &args[1], entry);
    ctx.remove(&args[1]);
    Frame::Integer(1)
}

/// KEYS pattern
pub fn keys(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    Frame::Array(
        ctx.db()
            .range_from(0)
            .filter(|(_, _, e)| !e.is_expired(ctx.now_ms))
            .filter(|(_, k, _)| all || glob::matches(pattern, k, false))
            .map(|(_, k, _)| Frame::Bulk(k.to_bytes()))
            .collect(),
    )
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
///
/// The cursor is the scan-order slot to resume from, so every key present for the whole
/// iteration is returned at least once, however the keyspace changes in between.
pub fn scan(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(cursor) = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Frame::error(err::INVALID_CURSOR);
    };
    let mut pattern: Option<&Bytes> = None;
    let mut count = 10usize;
    let mut type_filter: Option<&Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return Frame::error(err::SYNTAX);
        };
        if args[i].eq_ignore_ascii_case(b"match") {
            pattern = Some(value);
        } else if args[i].eq_ignore_ascii_case(b"count") {
            match parse_i64(value) {
                None => return Frame::error(err::NOT_INTEGER),
                Some(n) if n < 1 => return Frame::error(err::SYNTAX),
                Some(n) => count = n as usize,
            }
        } else if args[i].eq_ignore_ascii_case(b"type") {
            type_filter = Some(value);
        } else {
            return Frame::error(err::SYNTAX);
        }
        i += 2;
    }
    let mut found = Vec::new();
    let mut last_slot = None;
    let mut next_cursor = 0u64;
    for (visited, (slot, key, entry)) in ctx.db().range_from(cursor).enumerate() {
        // Stop only between slots, so keys sharing a slot are never split across calls.
        if visited >= count && last_slot != Some(slot) {
            next_cursor = slot;
            break;
        }
        last_slot = Some(slot);
        if entry.is_expired(ctx.now_ms) {
            continue;
        }
        if pattern.is_some_and(|p| !glob::matches(p, key, false)) {
            continue;
        }
        if type_filter.is_some_and(|t| !t.eq_ignore_ascii_case(entry.value.type_name().as_bytes()))
        {
            continue;
        }
        found.push(Frame::Bulk(key.to_bytes()));
    }
    Frame::Array(vec![
        Frame::bulk(next_cursor.to_string()),
        Frame::Array(found),
    ])
}

/// RANDOMKEY: starts at a slot drawn from the context's seed.
pub fn randomkey(ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    let db = ctx.db();
    let start = ctx.seed;
    db.range_from(start)
        .chain(db.range_from(0))
        .find(|(_, _, e)| !e.is_expired(ctx.now_ms))
        .map(|(_, k, _)| Frame::Bulk(k.to_bytes()))
        .unwrap_or(Frame::Null)
}

/// EXPIRE key seconds [NX|XX|GT|LT]
pub fn expire(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, 1000, false, "expire")
}

/// PEXPIRE key milliseconds [NX|XX|GT|LT]
pub fn pexpire(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, 1, false, "pexpire")
}

/// EXPIREAT key unix-seconds [NX|XX|GT|LT]
pub fn expireat(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, 1000, true, "expireat")
}

/// PEXPIREAT key unix-ms [NX|XX|GT|LT]
pub fn pexpireat(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    expire_generic(ctx, args, 1, true, "pexpireat")
}

fn expire_generic(
    ctx: &mut WriteCtx<'_>,
    args: &[Bytes],
    unit_ms: i64,
    absolute: bool,
    cmd: &str,
) -> Frame {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Frame::error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Frame::error(err::EXPIRE_NX_XX);
    }
    if gt && lt {
        return Frame::error(err::EXPIRE_GT_LT);
    }
    let Some(amount) = parse_i64(&args[2]) else {
        return Frame::error(err::NOT_INTEGER);
    };
    let invalid = || Frame::error(err::invalid_expire(cmd));
    let Some(mut when) = amount.checked_mul(unit_ms) else {
        return invalid();
    };
    if !absolute {
        let Some(sum) = when.checked_add(ctx.now_ms as i64) else {
            return invalid();
        };
        when = sum;
    }
    let key = &args[1];
    let Some(current) = ctx.get(key).map(|e| e.expires_at()) else {
        return Frame::Integer(0);
    };
    let allowed = match current {
        None => !xx && !gt,
        Some(at) => !nx && (!gt || when > at as i64) && (!lt || when < at as i64),
    };
    if !allowed {
        return Frame::Integer(0);
    }
    if when <= ctx.now_ms as i64 {
        ctx.remove(key);
    } else {
        ctx.set_expiry(key, Some(when as u64));
    }
    Frame::Integer(1)
}

/// PERSIST key
pub fn persist(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    match ctx.get(&args[1]).map(|e| e.expires_at()) {
        Some(Some(_)) => {
            ctx.set_expiry(&args[1], None);
            Frame::Integer(1)
        }
        _ => Frame::Integer(0),
    }
}

/// Remaining time in ms: -2 no key, -1 no expiry.
fn remaining_ms(ctx: &ReadCtx<'_>, key: &Bytes) -> i64 {
    match ctx.get(key).map(|e| e.expires_at()) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => at.saturating_sub(ctx.now_ms) as i64,
    }
}

/// TTL key
pub fn ttl(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let ms = remaining_ms(ctx, &args[1]);
    Frame::Integer(if ms < 0 { ms } else { (ms + 500) / 1000 })
}

/// PTTL key
pub fn pttl(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    Frame::Integer(remaining_ms(ctx, &args[1]))
}

fn expire_time(ctx: &ReadCtx<'_>, key: &Bytes, unit_ms: u64) -> Frame {
    Frame::Integer(match ctx.get(key).map(|e| e.expires_at()) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => (at / unit_ms) as i64,
    })
}

/// EXPIRETIME key
pub fn expiretime(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    expire_time(ctx, &args[1], 1000)
}

/// PEXPIRETIME key
pub fn pexpiretime(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    expire_time(ctx, &args[1], 1)
}

/// OBJECT ENCODING key: the encoding Redis 7.2 would report for the same value under the
/// thresholds `CONFIG SET` last published (see `keyspace::encoding`).
pub fn object_encoding(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(entry) = ctx.get(&args[2]) else {
        return Frame::Null;
    };
    Frame::bulk(encoding::encoding_name(&entry.value, &encoding::current()))
}

/// OBJECT FREQ key: the key's logarithmic access counter on this node, answered only when
/// the policy governing the key (its prefix rule, else `maxmemory-policy`) is an LFU one.
pub fn object_freq(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(entry) = ctx.peek(&args[2]) else {
        return Frame::Null;
    };
    let settings = ctx.keyspace.memory();
    if !settings.policy_for(&args[2]).is_lfu() {
        return Frame::error(err::LFU_NOT_SELECTED);
    }
    Frame::Integer(entry.access.counter(ctx.now_ms, settings.lfu_decay_time) as i64)
}

/// OBJECT IDLETIME key: seconds since the key was last read or written on this node;
/// refused for a key an LFU policy governs, as Redis does.
pub fn object_idletime(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let Some(entry) = ctx.peek(&args[2]) else {
        return Frame::Null;
    };
    if ctx.keyspace.memory().policy_for(&args[2]).is_lfu() {
        return Frame::error(err::LRU_NOT_SELECTED);
    }
    Frame::Integer((ctx.now_ms.saturating_sub(entry.access.time_ms()) / 1000) as i64)
}

/// MEMORY USAGE key [SAMPLES count]: the key's estimated bytes, with collections larger
/// than `count` (default 5, 0 = all) extrapolated from their first `count` elements.
pub fn memory_usage(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let mut samples = 5usize;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        if !option.eq_ignore_ascii_case(b"samples") {
            return Frame::error(err::SYNTAX);
        }
        match options.next().map(|n| parse_i64(n)) {
            Some(Some(n)) if n >= 0 => samples = n as usize,
            Some(Some(_)) => return Frame::error(err::SYNTAX),
            Some(None) => return Frame::error(err::NOT_INTEGER),
            None => return Frame::error(err::SYNTAX),
        }
    }
    match ctx.peek(&args[2]) {
        None => Frame::Null,
        Some(entry) => Frame::Integer(super::memory::entry_size(&args[2], entry, samples) as i64),
    }
}

/// OBJECT REFCOUNT key: values are never shared between keys here.
pub fn object_refcount(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    match ctx.get(&args[2]) {
        None => Frame::Null,
        Some(_) => Frame::Integer(1),
    }
}

/// OBJECT HELP
pub fn object_help(_ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    help_lines(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    )
}

/// A `HELP` reply in Redis's layout: a header line, the lines, and the common HELP line.
pub fn help_lines(container: &str, lines: &[&str]) -> Frame {
    let mut out = vec![Frame::Simple(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    out.extend(lines.iter().map(|l| Frame::Simple((*l).to_string())));
    out.push(Frame::Simple("HELP".to_string()));
    out.push(Frame::Simple("    Print this help.".to_string()));
    Frame::Array(out)
}

#[cfg(test)]
mod tests {
    use crate::keyspace::tests::must_apply;
    use crate::keyspace::Keyspace;
    use crate::resp::Frame;

    #[test]
    fn expire_options_follow_redis() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1000, "set k v");
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 10 xx"),
            Frame::Integer(0)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 10 gt"),
            Frame::Integer(0)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 10 nx"),
            Frame::Integer(1)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 20 nx"),
            Frame::Integer(0)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 5 gt"),
            Frame::Integer(0)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 5 lt"),
            Frame::Integer(1)
        );
        assert_eq!(must_apply(&mut ks, 1000, "ttl k"), Frame::Integer(5));
        assert_eq!(must_apply(&mut ks, 1000, "expiretime k"), Frame::Integer(6));
        assert_eq!(
            must_apply(&mut ks, 1000, "pexpiretime k"),
            Frame::Integer(6000)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 5 nx xx"),
            Frame::error(super::err::EXPIRE_NX_XX)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 5 gt lt"),
            Frame::error(super::err::EXPIRE_GT_LT)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "expire k 9223372036854775807"),
            Frame::error("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(must_apply(&mut ks, 1000, "persist k"), Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 1000, "persist k"), Frame::Integer(0));
        assert_eq!(must_apply(&mut ks, 1000, "expire k -1"), Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 1000, "exists k"), Frame::Integer(0));
        assert_eq!(must_apply(&mut ks, 1000, "ttl k"), Frame::Integer(-2));
        assert_eq!(
            must_apply(&mut ks, 1000, "expire nokey 10"),
            Frame::Integer(0)
        );
    }

    #[test]
    fn rename_copy_move() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1000, "set a 1 ex 100");
        assert_eq!(
            must_apply(&mut ks, 1000, "rename nokey b"),
            Frame::error(super::err::NO_SUCH_KEY)
        );
        assert_eq!(must_apply(&mut ks, 1000, "rename a b"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 1000, "ttl b"), Frame::Integer(100));
        assert_eq!(must_apply(&mut ks, 1000, "set c 3"), Frame::ok());
        assert_eq!(must_apply(&mut ks, 1000, "renamenx b c"), Frame::Integer(0));
        assert_eq!(must_apply(&mut ks, 1000, "copy b c"), Frame::Integer(0));
        assert_eq!(
            must_apply(&mut ks, 1000, "copy b c replace"),
            Frame::Integer(1)
        );
        assert_eq!(must_apply(&mut ks, 1000, "get c"), Frame::bulk("1"));
        assert_eq!(
            must_apply(&mut ks, 1000, "copy b b"),
            Frame::error(super::err::SAME_OBJECT)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "copy b x db 16"),
            Frame::error(super::err::DB_INDEX_OUT_OF_RANGE)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "copy b x db 3"),
            Frame::Integer(1)
        );
        assert_eq!(must_apply(&mut ks, 1000, "move c 3"), Frame::Integer(1));
        assert_eq!(must_apply(&mut ks, 1000, "exists c"), Frame::Integer(0));
        assert_eq!(ks.db(3).map(|d| d.len()), Some(2));
        assert_eq!(
            must_apply(&mut ks, 1000, "del b c nokey"),
            Frame::Integer(1)
        );
        assert_eq!(
            must_apply(&mut ks, 1000, "type b"),
            Frame::Simple("none".into())
        );
    }

    #[test]
    fn scan_visits_every_key_once_across_calls() {
        let mut ks = Keyspace::new();
        for i in 0..500 {
            must_apply(&mut ks, 1, &format!("set key:{i} v"));
        }
        let mut cursor = "0".to_string();
        let mut seen = std::collections::HashSet::new();
        loop {
            let reply = must_apply(&mut ks, 1, &format!("scan {cursor} count 37 match key:*"));
            let Frame::Array(parts) = reply else {
                panic!("scan reply {reply:?}")
            };
            let (Frame::Bulk(next), Frame::Array(keys)) = (&parts[0], &parts[1]) else {
                panic!("scan parts {parts:?}")
            };
            for k in keys {
                let Frame::Bulk(k) = k else {
                    panic!("key {k:?}")
                };
                seen.insert(k.clone());
            }
            cursor = String::from_utf8(next.to_vec()).expect("utf8");
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 500);
        assert_eq!(
            must_apply(&mut ks, 1, "scan x"),
            Frame::error(super::err::INVALID_CURSOR)
        );
        assert_eq!(
            must_apply(&mut ks, 1, "scan 0 count 0"),
            Frame::error(super::err::SYNTAX)
        );
    }

    #[test]
    fn object_encoding_matches_redis_rules() {
        let mut ks = Keyspace::new();
        must_apply(&mut ks, 1, "set i 12345");
        must_apply(&mut ks, 1, "set e hello");
        must_apply(&mut ks, 1, &format!("set r {}", "x".repeat(45)));
        assert_eq!(
            must_apply(&mut ks, 1, "object encoding i"),
            Frame::bulk("int")
        );
        assert_eq!(
            must_apply(&mut ks, 1, "object encoding e"),
            Frame::bulk("embstr")
        );
        assert_eq!(
            must_apply(&mut ks, 1, "object encoding r"),
            Frame::bulk("raw")
        );
        assert_eq!(must_apply(&mut ks, 1, "object encoding none"), Frame::Null);
    }
}
