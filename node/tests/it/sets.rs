//! Set commands through the real binary: the everyday commands, exact RESP3 bytes, SPOP
//! removing what it returns, the STORE forms, SSCAN across calls, generic key commands on a
//! set, and a set surviving `kill -9`.

use std::collections::HashSet;

use redis::Value;

use crate::harness::{
    info_field, must_cmd, must_exchange, must_exchange_until, must_fail, must_start, must_start_in,
};
use crate::hashes::must_await_snapshot;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn bulks(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| bulk(s)).collect())
}

fn strings(value: Value) -> Vec<String> {
    let Value::Array(items) = value else {
        panic!("not an array: {value:?}")
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b).expect("utf8"),
            other => panic!("not a bulk: {other:?}"),
        })
        .collect()
}

fn index_field(con: &mut redis::Connection, field: &str) -> u64 {
    info_field(con, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {field}"))
}

/// The node's last log index once Raft's metrics, which trail apply a little, have caught
/// up with every write already answered (`raft_applied_index` is the keyspace's own).
fn last_log_index(con: &mut redis::Connection) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let applied = index_field(con, "raft_applied_index");
        let last = index_field(con, "raft_last_log_index");
        if last >= applied || std::time::Instant::now() >= deadline {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Writes that change nothing (SADD of members already there, SREM, DEL and SETNX that find
/// nothing to do) are answered without a log entry, as Redis neither propagates nor fsyncs
/// them; one that follows another write of the same pipeline still sees that write.
#[test]
fn writes_that_change_nothing_take_no_log_entry() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["SADD", "s", "a", "b"]), Value::Int(2));
    let before = last_log_index(&mut con);
    for args in [
        &["SADD", "s", "a"][..],
        &["SADD", "s", "b", "a"],
        &["SREM", "s", "zz"],
        &["SREM", "nokey", "a"],
        &["DEL", "nokey", "other"],
        &["SETNX", "s", "x"],
        &["HDEL", "nokey", "f"],
        &["ZREM", "nokey", "m"],
    ] {
        assert_eq!(must_cmd(&mut con, args), Value::Int(0), "{args:?}");
    }
    assert_eq!(
        last_log_index(&mut con),
        before,
        "a no-op write took an entry"
    );

    // A write that changes something still takes its entry, and the next check sees it.
    assert_eq!(must_cmd(&mut con, &["SREM", "s", "a"]), Value::Int(1));
    assert!(last_log_index(&mut con) > before);
    assert_eq!(must_cmd(&mut con, &["SADD", "s", "a"]), Value::Int(1));
    let mut pipe = redis::pipe();
    pipe.cmd("SREM").arg("s").arg("a");
    pipe.cmd("SADD").arg("s").arg("a");
    pipe.cmd("SADD").arg("s").arg("a");
    let replies: Vec<i64> = pipe.query(&mut con).expect("pipeline");
    assert_eq!(replies, vec![1, 1, 0]);
    assert_eq!(must_cmd(&mut con, &["SMEMBERS", "s"]), bulks(&["a", "b"]));
}

/// SADD, SREM, SISMEMBER, SMISMEMBER, SMOVE and the algebra, as a client sees them.
#[test]
fn set_commands() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["SADD", "a", "1", "2", "3", "2"]),
        Value::Int(3)
    );
    must_cmd(&mut con, &["SADD", "b", "2", "3", "4"]);
    assert_eq!(must_cmd(&mut con, &["SCARD", "a"]), Value::Int(3));
    assert_eq!(must_cmd(&mut con, &["SISMEMBER", "a", "1"]), Value::Int(1));
    assert_eq!(
        must_cmd(&mut con, &["SMISMEMBER", "a", "1", "9"]),
        Value::Array(vec![Value::Int(1), Value::Int(0)])
    );
    assert_eq!(
        must_cmd(&mut con, &["SMEMBERS", "a"]),
        bulks(&["1", "2", "3"])
    );
    assert_eq!(
        must_cmd(&mut con, &["SINTER", "a", "b"]),
        bulks(&["2", "3"])
    );
    assert_eq!(
        must_cmd(&mut con, &["SUNION", "a", "b"]),
        bulks(&["1", "2", "3", "4"])
    );
    assert_eq!(must_cmd(&mut con, &["SDIFF", "a", "b"]), bulks(&["1"]));
    assert_eq!(
        must_cmd(&mut con, &["SINTERCARD", "2", "a", "b", "LIMIT", "1"]),
        Value::Int(1)
    );
    must_cmd(&mut con, &["SET", "dst", "x"]);
    assert_eq!(
        must_cmd(&mut con, &["SUNIONSTORE", "dst", "a", "b"]),
        Value::Int(4)
    );
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "dst"]),
        Value::SimpleString("set".into())
    );
    assert_eq!(
        must_cmd(&mut con, &["SINTERSTORE", "dst", "a", "nokey"]),
        Value::Int(0)
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "dst"]), Value::Int(0));
    assert_eq!(
        must_cmd(&mut con, &["SDIFFSTORE", "d", "b", "a"]),
        Value::Int(1)
    );
    assert_eq!(must_cmd(&mut con, &["SMOVE", "a", "m", "1"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["SMEMBERS", "m"]), bulks(&["1"]));
    assert_eq!(
        must_cmd(&mut con, &["SREM", "a", "2", "3", "9"]),
        Value::Int(2)
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "a"]), Value::Int(0));
    must_cmd(&mut con, &["SET", "s", "v"]);
    assert_eq!(
        must_fail(&mut con, &["SADD", "s", "a"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        must_fail(&mut con, &["SINTERCARD", "0", "a"]),
        "ERR numkeys should be greater than 0"
    );
    // Key positions as COMMAND GETKEYS reports them: numkeys for SINTERCARD, first two
    // arguments for SMOVE, all for the STORE forms.
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "COMMAND",
                "GETKEYS",
                "SINTERCARD",
                "2",
                "a",
                "b",
                "LIMIT",
                "1"
            ]
        ),
        bulks(&["a", "b"])
    );
    assert_eq!(
        must_cmd(&mut con, &["COMMAND", "GETKEYS", "SMOVE", "a", "b", "m"]),
        bulks(&["a", "b"])
    );
    assert_eq!(
        must_cmd(
            &mut con,
            &["COMMAND", "GETKEYS", "SUNIONSTORE", "d", "a", "b"]
        ),
        bulks(&["d", "a", "b"])
    );
}

/// SPOP returns members and removes exactly those; SRANDMEMBER only reads.
#[test]
fn spop_removes_what_it_returns() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let all: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let mut sadd = redis::cmd("SADD");
    sadd.arg("s").arg(&all);
    let _: i64 = sadd.query(&mut con).expect("sadd");
    let one = strings(Value::Array(vec![must_cmd(&mut con, &["SPOP", "s"])]));
    let many = strings(must_cmd(&mut con, &["SPOP", "s", "9"]));
    assert_eq!(many.len(), 9);
    let popped: HashSet<String> = one.into_iter().chain(many).collect();
    assert_eq!(popped.len(), 10);
    let left: HashSet<String> = strings(must_cmd(&mut con, &["SMEMBERS", "s"]))
        .into_iter()
        .collect();
    assert_eq!(left.len(), 40);
    assert!(left.is_disjoint(&popped));
    let union: HashSet<String> = left.union(&popped).cloned().collect();
    assert_eq!(union, all.into_iter().collect());
    let sample = strings(must_cmd(&mut con, &["SRANDMEMBER", "s", "-100"]));
    assert_eq!(sample.len(), 100);
    assert!(sample.iter().all(|m| left.contains(m)));
    let distinct = strings(must_cmd(&mut con, &["SRANDMEMBER", "s", "10"]));
    assert_eq!(distinct.iter().collect::<HashSet<_>>().len(), 10);
    assert_eq!(must_cmd(&mut con, &["SCARD", "s"]), Value::Int(40));
    let rest = strings(must_cmd(&mut con, &["SPOP", "s", "100"]));
    assert_eq!(rest.len(), 40);
    assert_eq!(must_cmd(&mut con, &["EXISTS", "s"]), Value::Int(0));
    assert_eq!(must_cmd(&mut con, &["SPOP", "s"]), Value::Nil);
}

/// The exact RESP3 bytes of SMEMBERS and SPOP with a count (sets), SINTER on a missing key.
#[test]
fn set_replies_in_resp3() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    must_exchange_until(&mut tcp, b"HELLO 3\r\n", b"modules\r\n*0\r\n");
    assert_eq!(must_exchange(&mut tcp, b"SADD s b a\r\n", 4), b":2\r\n");
    let want = b"~2\r\n$1\r\na\r\n$1\r\nb\r\n";
    assert_eq!(must_exchange(&mut tcp, b"SMEMBERS s\r\n", want.len()), want);
    let want = b"~0\r\n";
    assert_eq!(
        must_exchange(&mut tcp, b"SINTER s nokey\r\n", want.len()),
        want
    );
    let want = b"*3\r\n:1\r\n:0\r\n:1\r\n";
    assert_eq!(
        must_exchange(&mut tcp, b"SMISMEMBER s a z b\r\n", want.len()),
        want
    );
    let want = b"~2\r\n$1\r\na\r\n$1\r\nb\r\n";
    assert_eq!(must_exchange(&mut tcp, b"SPOP s 5\r\n", want.len()), want);
    let want = b"_\r\n";
    assert_eq!(must_exchange(&mut tcp, b"SPOP s\r\n", want.len()), want);
}

/// SSCAN over 1500 members returns each once across calls.
#[test]
fn sscan_across_calls() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let members: Vec<String> = (0..1500).map(|i| format!("member:{i}")).collect();
    let mut sadd = redis::cmd("SADD");
    sadd.arg("big").arg(&members);
    let _: i64 = sadd.query(&mut con).expect("sadd");
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    loop {
        let (next, items): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg("big")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query(&mut con)
            .expect("sscan");
        for item in items {
            assert!(seen.insert(item.clone()), "{item} twice");
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen, members.into_iter().collect());
}

/// TYPE, RENAME, COPY, OBJECT ENCODING and SCAN TYPE on a set.
#[test]
fn generic_commands_on_a_set() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SADD", "s", "a", "b"]);
    must_cmd(&mut con, &["HSET", "h", "f", "v"]);
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "s"]),
        Value::SimpleString("set".into())
    );
    assert_eq!(must_cmd(&mut con, &["RENAME", "s", "s2"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["COPY", "s2", "s3"]), Value::Int(1));
    must_cmd(&mut con, &["SADD", "s3", "c"]);
    assert_eq!(must_cmd(&mut con, &["SCARD", "s2"]), Value::Int(2));
    assert_eq!(must_cmd(&mut con, &["SCARD", "s3"]), Value::Int(3));
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "ENCODING", "s2"]),
        bulk("listpack")
    );
    let (_, mut keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(100)
        .arg("TYPE")
        .arg("set")
        .query(&mut con)
        .expect("scan");
    keys.sort();
    assert_eq!(keys, vec!["s2", "s3"]);
}

/// A set written before `kill -9` is all there after the restart, from the log alone and
/// from a snapshot plus the log tail; SPOP replayed from the log pops the same members.
#[test]
fn set_survives_kill9() {
    for snapshot_entries in ["1000000", "20"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let node = must_start_in(tmp.path(), &["--snapshot-entries", snapshot_entries]);
        let mut con = node.must_connect();
        for i in 0..100 {
            must_cmd(&mut con, &["SADD", "s", &format!("m{i}")]);
        }
        must_cmd(&mut con, &["SPOP", "s", "7"]);
        must_cmd(&mut con, &["SPOP", "s"]);
        must_cmd(&mut con, &["SREM", "s", "m50"]);
        let before = must_cmd(&mut con, &["SMEMBERS", "s"]);
        // m50 may already have been popped.
        let Value::Int(card) = must_cmd(&mut con, &["SCARD", "s"]) else {
            panic!("scard")
        };
        assert!(card == 91 || card == 92, "scard {card}");
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
        assert_eq!(must_cmd(&mut con, &["SMEMBERS", "s"]), before);
    }
}
