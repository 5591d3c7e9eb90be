//! Hash commands through the real binary: the everyday commands, exact RESP3 bytes, HSCAN
//! across calls, generic key commands on a hash, and a hash surviving `kill -9`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{
    info_field, must_cmd, must_exchange, must_exchange_until, must_fail, must_start, must_start_in,
};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Waits until the node has a snapshot covering log index `index`, so a restart loads it.
pub fn must_await_snapshot(con: &mut redis::Connection, index: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let at: i64 = info_field(con, "raft_last_snapshot_index")
            .and_then(|v| v.parse().ok())
            .expect("snapshot index");
        if at >= index {
            return;
        }
        assert!(Instant::now() < deadline, "snapshot index stuck at {at}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bulks(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| bulk(s)).collect())
}

/// HSET, HGET, HMGET, HDEL, HINCRBY, HINCRBYFLOAT and their errors, as a client sees them.
#[test]
fn hash_commands() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["HSET", "h", "a", "1", "b", "2", "a", "3"]),
        Value::Int(2)
    );
    assert_eq!(must_cmd(&mut con, &["HGET", "h", "a"]), bulk("3"));
    assert_eq!(
        must_cmd(&mut con, &["HMGET", "h", "a", "nofield", "b"]),
        Value::Array(vec![bulk("3"), Value::Nil, bulk("2")])
    );
    assert_eq!(must_cmd(&mut con, &["HMSET", "h", "c", "x"]), Value::Okay);
    assert_eq!(
        must_cmd(&mut con, &["HSETNX", "h", "c", "y"]),
        Value::Int(0)
    );
    assert_eq!(must_cmd(&mut con, &["HLEN", "h"]), Value::Int(3));
    assert_eq!(must_cmd(&mut con, &["HSTRLEN", "h", "c"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["HEXISTS", "h", "c"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["HKEYS", "h"]), bulks(&["a", "b", "c"]));
    assert_eq!(must_cmd(&mut con, &["HVALS", "h"]), bulks(&["3", "2", "x"]));
    assert_eq!(
        must_cmd(&mut con, &["HGETALL", "h"]),
        bulks(&["a", "3", "b", "2", "c", "x"])
    );
    assert_eq!(
        must_cmd(&mut con, &["HINCRBY", "h", "a", "10"]),
        Value::Int(13)
    );
    assert_eq!(
        must_cmd(&mut con, &["HINCRBYFLOAT", "h", "f", "2.5"]),
        bulk("2.5")
    );
    assert_eq!(
        must_cmd(&mut con, &["HINCRBYFLOAT", "h", "f", "0.1"]),
        bulk("2.6")
    );
    assert_eq!(
        must_fail(&mut con, &["HINCRBY", "h", "c", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(
        must_fail(&mut con, &["HINCRBYFLOAT", "h", "c", "1"]),
        "ERR hash value is not a float"
    );
    assert_eq!(
        must_fail(&mut con, &["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        must_cmd(&mut con, &["HDEL", "h", "a", "b", "c", "f", "nofield"]),
        Value::Int(4)
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "h"]), Value::Int(0));
    must_cmd(&mut con, &["SET", "s", "v"]);
    assert_eq!(
        must_fail(&mut con, &["HGET", "s", "a"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    must_cmd(&mut con, &["HSET", "r", "a", "1", "b", "2"]);
    let Value::BulkString(field) = must_cmd(&mut con, &["HRANDFIELD", "r"]) else {
        panic!("hrandfield")
    };
    assert!(field == b"a" || field == b"b");
    let Value::Array(picks) = must_cmd(&mut con, &["HRANDFIELD", "r", "-7"]) else {
        panic!("hrandfield -7")
    };
    assert_eq!(picks.len(), 7);
}

/// The exact RESP3 bytes of HGETALL (a map), HRANDFIELD and HSCAN.
#[test]
fn hash_replies_in_resp3() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    must_exchange_until(&mut tcp, b"HELLO 3\r\n", b"modules\r\n*0\r\n");
    let set = b"HSET h a 1 b 2\r\n";
    assert_eq!(must_exchange(&mut tcp, set, 4), b":2\r\n");
    let want = b"%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n";
    assert_eq!(must_exchange(&mut tcp, b"HGETALL h\r\n", want.len()), want);
    let want = b"%0\r\n";
    assert_eq!(
        must_exchange(&mut tcp, b"HGETALL nokey\r\n", want.len()),
        want
    );
    let want = b"_\r\n";
    assert_eq!(
        must_exchange(&mut tcp, b"HGET h nofield\r\n", want.len()),
        want
    );
    let want = b"*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n";
    assert_eq!(must_exchange(&mut tcp, b"HSCAN h 0\r\n", want.len()), want);
    let want = b"*2\r\n$1\r\na\r\n$1\r\nb\r\n";
    assert_eq!(
        must_exchange(&mut tcp, b"HRANDFIELD h 5\r\n", want.len()),
        want
    );
}

/// HSCAN over a hash of 2000 fields returns each field once across calls, with MATCH.
#[test]
fn hscan_across_calls() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("HSET")
            .arg("big")
            .arg(format!("field{i}"))
            .arg(i)
            .ignore();
    }
    let _: () = pipe.query(&mut con).expect("pipeline");
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    let mut calls = 0;
    loop {
        let (next, items): (u64, Vec<String>) = redis::cmd("HSCAN")
            .arg("big")
            .arg(cursor)
            .arg("MATCH")
            .arg("field1*")
            .arg("COUNT")
            .arg(50)
            .query(&mut con)
            .expect("hscan");
        for pair in items.chunks(2) {
            assert!(pair[0].starts_with("field1"), "{pair:?}");
            assert_eq!(pair[1], pair[0].trim_start_matches("field"));
            assert!(seen.insert(pair[0].clone()), "{} twice", pair[0]);
        }
        calls += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    // field1, field10..19, field100..199, field1000..1999
    assert_eq!(seen.len(), 1 + 10 + 100 + 1000);
    assert!(calls > 10, "{calls} calls");
}

/// TYPE, RENAME, COPY, OBJECT ENCODING and SCAN TYPE on a hash.
#[test]
fn generic_commands_on_a_hash() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["HSET", "h", "f", "v"]);
    must_cmd(&mut con, &["SET", "str", "v"]);
    must_cmd(&mut con, &["SADD", "set", "m"]);
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "h"]),
        Value::SimpleString("hash".into())
    );
    assert_eq!(must_cmd(&mut con, &["RENAME", "h", "h2"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["COPY", "h2", "h3"]), Value::Int(1));
    // The copy is independent of its source.
    must_cmd(&mut con, &["HSET", "h3", "g", "w"]);
    assert_eq!(must_cmd(&mut con, &["HLEN", "h2"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["HLEN", "h3"]), Value::Int(2));
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "ENCODING", "h2"]),
        bulk("listpack")
    );
    let (_, mut keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(100)
        .arg("TYPE")
        .arg("hash")
        .query(&mut con)
        .expect("scan");
    keys.sort();
    assert_eq!(keys, vec!["h2", "h3"]);
}

/// A hash written before `kill -9` is all there after the restart, both from the log
/// and, with snapshots every few entries, from a snapshot plus the log tail.
#[test]
fn hash_survives_kill9() {
    for snapshot_entries in ["1000000", "20"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let node = must_start_in(tmp.path(), &["--snapshot-entries", snapshot_entries]);
        let mut con = node.must_connect();
        for i in 0..100 {
            must_cmd(&mut con, &["HSET", "h", &format!("f{i}"), &format!("v{i}")]);
        }
        must_cmd(&mut con, &["HDEL", "h", "f0"]);
        must_cmd(&mut con, &["HINCRBY", "h", "n", "41"]);
        must_cmd(&mut con, &["EXPIRE", "h", "3600"]);
        let before = must_cmd(&mut con, &["HGETALL", "h"]);
        let from_snapshot = snapshot_entries == "20";
        if from_snapshot {
            must_await_snapshot(&mut con, 60);
        }
        let dir = node.kill9();
        let node = must_start_in(&dir, &["--snapshot-entries", snapshot_entries]);
        if from_snapshot {
            assert!(node.log().contains("loaded snapshot"), "no snapshot loaded");
        }
        let mut con = node.must_connect();
        assert_eq!(must_cmd(&mut con, &["HGETALL", "h"]), before);
        assert_eq!(must_cmd(&mut con, &["HLEN", "h"]), Value::Int(100));
        assert_eq!(
            must_cmd(&mut con, &["HINCRBY", "h", "n", "1"]),
            Value::Int(42)
        );
        let Value::Int(ttl) = must_cmd(&mut con, &["TTL", "h"]) else {
            panic!("ttl")
        };
        assert!((3500..=3600).contains(&ttl), "ttl {ttl}");
    }
}
