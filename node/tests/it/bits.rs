//! Bit commands and the encoding thresholds through the real binary: replies and errors,
//! bitmaps surviving `kill -9`, `CONFIG GET`/`SET` of the encoding options and their
//! aliases, and `OBJECT ENCODING` following them.

use std::collections::HashSet;

use redis::Value;

use crate::harness::{must_cmd, must_exchange_until, must_fail, must_start, must_start_in};

fn bulk(s: &[u8]) -> Value {
    Value::BulkString(s.to_vec())
}

fn ints(values: &[i64]) -> Value {
    Value::Array(values.iter().map(|&v| Value::Int(v)).collect())
}

/// Every bit command's common path, its errors, and how a bitmap behaves as a string
/// key (TYPE, RENAME, COPY, SCAN TYPE).
#[test]
fn bit_commands() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["SETBIT", "bm", "7", "1"]),
        Value::Int(0)
    );
    assert_eq!(
        must_cmd(&mut con, &["SETBIT", "bm", "7", "1"]),
        Value::Int(1)
    );
    assert_eq!(
        must_cmd(&mut con, &["SETBIT", "bm", "100", "1"]),
        Value::Int(0)
    );
    assert_eq!(must_cmd(&mut con, &["GETBIT", "bm", "100"]), Value::Int(1));
    assert_eq!(
        must_cmd(&mut con, &["GETBIT", "bm", "99999"]),
        Value::Int(0)
    );
    assert_eq!(must_cmd(&mut con, &["STRLEN", "bm"]), Value::Int(13));
    assert_eq!(must_cmd(&mut con, &["BITCOUNT", "bm"]), Value::Int(2));
    assert_eq!(
        must_cmd(&mut con, &["BITCOUNT", "bm", "0", "99", "BIT"]),
        Value::Int(1)
    );
    assert_eq!(must_cmd(&mut con, &["BITPOS", "bm", "1"]), Value::Int(7));
    assert_eq!(
        must_cmd(&mut con, &["BITPOS", "bm", "1", "8", "-1", "BIT"]),
        Value::Int(100)
    );
    must_cmd(&mut con, &["SET", "other", "\x0f"]);
    assert_eq!(
        must_cmd(&mut con, &["BITOP", "XOR", "dest", "bm", "other"]),
        Value::Int(13)
    );
    assert_eq!(
        must_cmd(&mut con, &["GETRANGE", "dest", "0", "0"]),
        bulk(b"\x0e")
    );
    assert_eq!(
        must_cmd(&mut con, &["BITOP", "AND", "dest", "nosuch"]),
        Value::Int(0)
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "dest"]), Value::Int(0));
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "BITFIELD", "bf", "SET", "u8", "#0", "200", "INCRBY", "u8", "#0", "100", "GET",
                "i8", "0"
            ]
        ),
        ints(&[0, 44, 44])
    );
    assert_eq!(
        must_cmd(
            &mut con,
            &["BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "250"]
        ),
        Value::Array(vec![Value::Nil])
    );
    assert_eq!(
        must_cmd(&mut con, &["BITFIELD_RO", "bf", "GET", "u8", "0"]),
        ints(&[44])
    );
    assert_eq!(
        must_fail(&mut con, &["BITFIELD_RO", "bf", "SET", "u8", "0", "1"]),
        "ERR BITFIELD_RO only supports the GET subcommand"
    );
    assert_eq!(
        must_fail(&mut con, &["BITFIELD", "bf", "GET", "u64", "0"]),
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
    );
    assert_eq!(
        must_fail(&mut con, &["SETBIT", "bm", "4294967296", "1"]),
        "ERR bit offset is not an integer or out of range"
    );
    assert_eq!(
        must_fail(&mut con, &["BITOP", "NOT", "dest", "bm", "other"]),
        "ERR BITOP NOT must be called with a single source key."
    );
    assert_eq!(
        must_fail(&mut con, &["BITPOS", "bm", "2"]),
        "ERR The bit argument must be 1 or 0."
    );
    // A bitmap is a string key.
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "bm"]),
        Value::SimpleString("string".into())
    );
    assert_eq!(must_cmd(&mut con, &["RENAME", "bm", "bm2"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["COPY", "bm2", "bm3"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["GETBIT", "bm3", "100"]), Value::Int(1));
    let (cursor, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(1000)
        .arg("TYPE")
        .arg("string")
        .query(&mut con)
        .expect("scan");
    assert_eq!(cursor, 0);
    let keys: HashSet<String> = keys.into_iter().collect();
    for key in ["bm2", "bm3", "bf", "other"] {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    // Exact RESP3 bytes: OVERFLOW FAIL's null is `_`.
    let mut tcp = node.must_tcp();
    must_exchange_until(
        &mut tcp,
        b"HELLO 3\r\nBITFIELD bf OVERFLOW FAIL INCRBY u8 0 250 GET u8 0\r\n",
        b"*2\r\n_\r\n:44\r\n",
    );
}

/// Bitmaps written by SETBIT, BITFIELD and BITOP come back byte for byte after `kill -9`.
#[test]
fn bitmaps_survive_kill9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), &[]);
    let mut con = node.must_connect();
    let mut pipe = redis::pipe();
    for i in (0..4000).step_by(7) {
        pipe.cmd("SETBIT").arg("visits").arg(i).arg(1).ignore();
    }
    let _: () = pipe.query(&mut con).expect("pipeline");
    must_cmd(
        &mut con,
        &[
            "BITFIELD", "counters", "SET", "i16", "#3", "-1234", "INCRBY", "u4", "#0", "9",
        ],
    );
    must_cmd(&mut con, &["BITOP", "NOT", "inverse", "visits"]);
    must_cmd(&mut con, &["SETBIT", "big", "33554431", "1"]);
    let before: Vec<Value> = ["visits", "counters", "inverse", "big"]
        .iter()
        .map(|k| must_cmd(&mut con, &["GET", k]))
        .collect();
    let dir = node.kill9();

    let node = must_start_in(&dir, &[]);
    let mut con = node.must_connect();
    let after: Vec<Value> = ["visits", "counters", "inverse", "big"]
        .iter()
        .map(|k| must_cmd(&mut con, &["GET", k]))
        .collect();
    assert_eq!(before, after);
    assert_eq!(must_cmd(&mut con, &["BITCOUNT", "visits"]), Value::Int(572));
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "BITFIELD_RO",
                "counters",
                "GET",
                "i16",
                "#3",
                "GET",
                "u4",
                "#0"
            ]
        ),
        ints(&[-1234, 9])
    );
    assert_eq!(
        must_cmd(&mut con, &["STRLEN", "big"]),
        Value::Int(4 * 1024 * 1024)
    );
    assert_eq!(
        must_cmd(&mut con, &["BITPOS", "big", "1"]),
        Value::Int(33_554_431)
    );
}

/// `CONFIG GET` of the patterns, as sorted (name, value) pairs.
fn config_get(con: &mut redis::Connection, patterns: &[&str]) -> Vec<(String, String)> {
    let flat: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(patterns)
        .query(con)
        .expect("config get");
    let mut pairs: Vec<(String, String)> = flat
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    pairs.sort();
    pairs
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// The encoding options report Redis 7.2's defaults under both names, an alias set
/// changes both, and bad values get Redis's errors.
#[test]
fn config_encoding_options() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        config_get(&mut con, &["hash-*", "list-*", "set-*", "zset-*"]),
        vec![
            pair("hash-max-listpack-entries", "128"),
            pair("hash-max-listpack-value", "64"),
            pair("hash-max-ziplist-entries", "128"),
            pair("hash-max-ziplist-value", "64"),
            pair("list-compress-depth", "0"),
            pair("list-max-listpack-size", "-2"),
            pair("list-max-ziplist-size", "-2"),
            pair("set-max-intset-entries", "512"),
            pair("set-max-listpack-entries", "128"),
            pair("set-max-listpack-value", "64"),
            pair("zset-max-listpack-entries", "128"),
            pair("zset-max-listpack-value", "64"),
            pair("zset-max-ziplist-entries", "128"),
            pair("zset-max-ziplist-value", "64"),
        ]
    );
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "CONFIG",
                "SET",
                "hash-max-ziplist-entries",
                "10",
                "zset-max-listpack-value",
                "1kb"
            ]
        ),
        Value::Okay
    );
    assert_eq!(
        config_get(&mut con, &["hash-max-*-entries"]),
        vec![
            pair("hash-max-listpack-entries", "10"),
            pair("hash-max-ziplist-entries", "10"),
        ]
    );
    assert_eq!(
        config_get(&mut con, &["zset-max-ziplist-value"]),
        vec![pair("zset-max-ziplist-value", "1024")]
    );
    assert_eq!(
        must_cmd(&mut con, &["CONFIG", "SET", "LIST-MAX-ZIPLIST-SIZE", "-5"]),
        Value::Okay
    );
    assert_eq!(
        config_get(&mut con, &["list-max-listpack-size"]),
        vec![pair("list-max-listpack-size", "-5")]
    );
    assert_eq!(
        must_fail(&mut con, &["CONFIG", "SET", "set-max-intset-entries", "-1"]),
        "ERR CONFIG SET failed (possibly related to argument 'set-max-intset-entries') - argument must be between 0 and 9223372036854775807 inclusive"
    );
    assert_eq!(
        must_fail(&mut con, &["CONFIG", "SET", "hash-max-listpack-value", "lots"]),
        "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-value') - argument must be a memory value"
    );
    assert_eq!(
        must_fail(&mut con, &["CONFIG", "SET", "list-compress-depth", "x"]),
        "ERR CONFIG SET failed (possibly related to argument 'list-compress-depth') - argument couldn't be parsed into an integer"
    );
    assert_eq!(
        must_fail(
            &mut con,
            &["CONFIG", "SET", "set-max-listpack-entries", "1", "set-max-listpack-entries", "2"]
        ),
        "ERR CONFIG SET failed (possibly related to argument 'set-max-listpack-entries') - duplicate parameter"
    );
    // A failed CONFIG SET changes nothing, not even the options before the bad one.
    assert_eq!(
        must_fail(
            &mut con,
            &["CONFIG", "SET", "set-max-listpack-entries", "1", "zset-max-listpack-entries", "-1"]
        ),
        "ERR CONFIG SET failed (possibly related to argument 'zset-max-listpack-entries') - argument must be between 0 and 9223372036854775807 inclusive"
    );
    assert_eq!(
        config_get(&mut con, &["set-max-listpack-entries"]),
        vec![pair("set-max-listpack-entries", "128")]
    );
    // Strings follow Redis's length rules whatever the thresholds.
    must_cmd(&mut con, &["SET", "n", "12345"]);
    must_cmd(&mut con, &["SET", "s", "hello"]);
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "ENCODING", "n"]),
        bulk(b"int")
    );
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "ENCODING", "s"]),
        bulk(b"embstr")
    );
}

/// Runs `args` unless the server does not know the command (the collection families land
/// in other branches); returns whether it ran.
fn try_cmd(con: &mut redis::Connection, args: &[&str]) -> bool {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query::<Value>(con) {
        Ok(_) => true,
        Err(e) if e.to_string().contains("unknown command") => false,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// OBJECT ENCODING of each collection type follows the thresholds CONFIG SET changes
/// (checked for each type whose commands this build serves).
#[test]
fn object_encoding_follows_the_thresholds() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let encoding =
        |con: &mut redis::Connection, key: &str| must_cmd(con, &["OBJECT", "ENCODING", key]);
    let set = |con: &mut redis::Connection, name: &str, value: &str| {
        assert_eq!(must_cmd(con, &["CONFIG", "SET", name, value]), Value::Okay);
    };
    if try_cmd(&mut con, &["RPUSH", "l", "a", "b", "c"]) {
        assert_eq!(encoding(&mut con, "l"), bulk(b"listpack"));
        set(&mut con, "list-max-ziplist-size", "2");
        assert_eq!(encoding(&mut con, "l"), bulk(b"quicklist"));
        set(&mut con, "list-max-listpack-size", "-2");
        assert_eq!(encoding(&mut con, "l"), bulk(b"listpack"));
    }
    if try_cmd(&mut con, &["HSET", "h", "f1", "v", "f2", "v"]) {
        assert_eq!(encoding(&mut con, "h"), bulk(b"listpack"));
        set(&mut con, "hash-max-ziplist-entries", "1");
        assert_eq!(encoding(&mut con, "h"), bulk(b"hashtable"));
        set(&mut con, "hash-max-listpack-entries", "128");
        set(&mut con, "hash-max-listpack-value", "1");
        assert_eq!(encoding(&mut con, "h"), bulk(b"hashtable"));
        set(&mut con, "hash-max-listpack-value", "64");
        assert_eq!(encoding(&mut con, "h"), bulk(b"listpack"));
    }
    if try_cmd(&mut con, &["SADD", "si", "1", "2", "3"]) {
        assert_eq!(encoding(&mut con, "si"), bulk(b"intset"));
        set(&mut con, "set-max-intset-entries", "2");
        assert_eq!(encoding(&mut con, "si"), bulk(b"listpack"));
        set(&mut con, "set-max-listpack-entries", "2");
        assert_eq!(encoding(&mut con, "si"), bulk(b"hashtable"));
        must_cmd(&mut con, &["SADD", "ss", "a"]);
        assert_eq!(encoding(&mut con, "ss"), bulk(b"listpack"));
    }
    if try_cmd(&mut con, &["ZADD", "z", "1", "a", "2", "bb"]) {
        assert_eq!(encoding(&mut con, "z"), bulk(b"listpack"));
        set(&mut con, "zset-max-ziplist-value", "1");
        assert_eq!(encoding(&mut con, "z"), bulk(b"skiplist"));
        set(&mut con, "zset-max-listpack-value", "64");
        set(&mut con, "zset-max-listpack-entries", "1");
        assert_eq!(encoding(&mut con, "z"), bulk(b"skiplist"));
    }
    assert_eq!(encoding(&mut con, "nosuch"), Value::Nil);
}
