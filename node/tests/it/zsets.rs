//! Sorted sets through the real binary: Celery's `unacked_index` queries, exact reply
//! bytes in RESP2 and RESP3, key commands on a sorted set, the blocking pops that need no
//! wait, and sorted sets surviving `kill -9`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{
    info_field, must_cmd, must_exchange, must_exchange_until, must_fail, must_start, must_start_in,
};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn bulks(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| bulk(s)).collect())
}

/// What kombu's Redis transport sends for its unacked bookkeeping: ZADD with a timestamp
/// score, ZREVRANGEBYSCORE ... WITHSCORES LIMIT, ZRANGE ... BYSCORE REV LIMIT, ZREM,
/// pipelined.
#[test]
fn celery_unacked_index() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    for (i, tag) in ["t1", "t2", "t3", "t4"].iter().enumerate() {
        let score = format!("{}.5", 1_700_000_000 + i);
        assert_eq!(
            must_cmd(&mut con, &["ZADD", "unacked_index", &score, tag]),
            Value::Int(1)
        );
    }
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "ZREVRANGEBYSCORE",
                "unacked_index",
                "1700000002",
                "0",
                "WITHSCORES",
                "LIMIT",
                "0",
                "2"
            ]
        ),
        bulks(&["t2", "1700000001.5", "t1", "1700000000.5"])
    );
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "ZRANGE",
                "unacked_index",
                "+inf",
                "-inf",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "3"
            ]
        ),
        bulks(&["t4", "t3", "t2"])
    );
    // As in Redis, REV reads the bounds as max then min: -inf..+inf reversed is empty.
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "ZRANGE",
                "unacked_index",
                "-inf",
                "+inf",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "3"
            ]
        ),
        bulks(&[])
    );
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "ZRANGE",
                "unacked_index",
                "-inf",
                "+inf",
                "BYSCORE",
                "LIMIT",
                "1",
                "2"
            ]
        ),
        bulks(&["t2", "t3"])
    );
    // Pipelined, as kombu sends them (MULTI/EXEC is not served yet: issue 3).
    let replies: Value = redis::pipe()
        .cmd("ZADD")
        .arg("unacked_index")
        .arg("1700000009")
        .arg("t5")
        .cmd("ZREM")
        .arg("unacked_index")
        .arg("t1")
        .cmd("ZCARD")
        .arg("unacked_index")
        .query(&mut con)
        .expect("pipeline");
    assert_eq!(
        replies,
        Value::Array(vec![Value::Int(1), Value::Int(1), Value::Int(4)])
    );
    assert_eq!(
        must_cmd(&mut con, &["ZSCORE", "unacked_index", "t5"]),
        bulk("1700000009")
    );
    assert_eq!(
        must_fail(
            &mut con,
            &["ZRANGE", "unacked_index", "0", "-1", "LIMIT", "0", "1"]
        ),
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    );
}

/// Scores and pairs on the wire: flat bulk strings in RESP2, doubles and nested pairs in
/// RESP3 (as redis-py 8, which opens with HELLO 3, expects them).
#[test]
fn exact_bytes_in_both_protocols() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let exchange = |tcp: &mut std::net::TcpStream, request: &str, expected: &[u8]| {
        let reply = must_exchange(tcp, format!("{request}\r\n").as_bytes(), expected.len());
        assert_eq!(
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(expected),
            "{request}"
        );
    };
    exchange(&mut tcp, "ZADD z 1 a 2.5 b +inf c", b":3\r\n");
    exchange(
        &mut tcp,
        "ZRANGE z 0 -1 WITHSCORES",
        b"*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\n2.5\r\n$1\r\nc\r\n$3\r\ninf\r\n",
    );
    exchange(&mut tcp, "ZSCORE z b", b"$3\r\n2.5\r\n");
    exchange(
        &mut tcp,
        "ZRANK z b WITHSCORE",
        b"*2\r\n:1\r\n$3\r\n2.5\r\n",
    );
    exchange(&mut tcp, "ZPOPMIN z 1", b"*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    exchange(&mut tcp, "ZADD z 1 a", b":1\r\n");
    must_exchange_until(&mut tcp, b"HELLO 3\r\n", b"modules\r\n*0\r\n");
    exchange(
        &mut tcp,
        "ZRANGE z 0 -1 WITHSCORES",
        b"*3\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n*2\r\n$1\r\nc\r\n,inf\r\n",
    );
    exchange(&mut tcp, "ZSCORE z b", b",2.5\r\n");
    exchange(&mut tcp, "ZMSCORE z b nosuch", b"*2\r\n,2.5\r\n_\r\n");
    exchange(&mut tcp, "ZRANK z b WITHSCORE", b"*2\r\n:1\r\n,2.5\r\n");
    exchange(
        &mut tcp,
        "ZPOPMIN z 2",
        b"*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n",
    );
    exchange(&mut tcp, "ZPOPMAX z", b"*2\r\n$1\r\nc\r\n,inf\r\n");
    exchange(&mut tcp, "ZSCORE z c", b"_\r\n");
    exchange(&mut tcp, "EXISTS z", b":0\r\n");
    exchange(
        &mut tcp,
        "ZADD z xx nx 1 a",
        b"-ERR XX and NX options at the same time are not compatible\r\n",
    );
}

/// TYPE, OBJECT ENCODING, RENAME, COPY, SCAN TYPE, EXPIRE and WRONGTYPE on sorted sets,
/// and blocking pops that can serve at once (none here waits).
#[test]
fn key_commands_on_a_zset() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["ZADD", "z", "1", "a", "2", "b"]),
        Value::Int(2)
    );
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "z"]),
        Value::SimpleString("zset".into())
    );
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "ENCODING", "z"]),
        bulk("listpack")
    );
    assert_eq!(must_cmd(&mut con, &["RENAME", "z", "z2"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["EXISTS", "z"]), Value::Int(0));
    assert_eq!(must_cmd(&mut con, &["ZSCORE", "z2", "b"]), bulk("2"));
    assert_eq!(must_cmd(&mut con, &["COPY", "z2", "z3"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["ZADD", "z3", "3", "c"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["ZCARD", "z2"]), Value::Int(2));
    assert_eq!(must_cmd(&mut con, &["ZCARD", "z3"]), Value::Int(3));
    must_cmd(&mut con, &["SET", "s", "x"]);
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("TYPE")
            .arg("zset")
            .query(&mut con)
            .expect("scan");
        seen.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen, HashSet::from(["z2".to_string(), "z3".to_string()]));
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(must_fail(&mut con, &["GET", "z2"]), wrongtype);
    assert_eq!(must_fail(&mut con, &["ZADD", "s", "1", "a"]), wrongtype);
    assert_eq!(must_cmd(&mut con, &["EXPIRE", "z2", "100"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["ZADD", "z2", "5", "e"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["TTL", "z2"]), Value::Int(100));
    assert_eq!(
        must_cmd(&mut con, &["ZUNIONSTORE", "z2", "2", "z2", "z3"]),
        Value::Int(4)
    );
    assert_eq!(must_cmd(&mut con, &["TTL", "z2"]), Value::Int(-1));
    assert_eq!(
        must_cmd(&mut con, &["BZPOPMIN", "nokey", "z3", "0"]),
        bulks(&["z3", "a", "1"])
    );
    assert_eq!(
        must_cmd(&mut con, &["BZMPOP", "1", "2", "nokey", "z3", "MAX"]),
        Value::Array(vec![bulk("z3"), Value::Array(vec![bulks(&["c", "3"])])])
    );
    assert_eq!(
        must_cmd(&mut con, &["BZPOPMAX", "z3", "0"]),
        bulks(&["z3", "b", "2"])
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "z3"]), Value::Int(0));
    assert_eq!(
        must_fail(&mut con, &["BZPOPMIN", "z3", "-1"]),
        "ERR timeout is negative"
    );
    assert_eq!(must_cmd(&mut con, &["DEL", "z2"]), Value::Int(1));
}

/// Sorted sets (infinite scores, a TTL, pops and removals) come back after `kill -9`,
/// from a snapshot plus the log tail behind it.
#[test]
fn zsets_survive_kill9_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), &["--snapshot-entries", "100"]);
    let mut con = node.must_connect();
    // One command at a time: each is a log entry (a pipeline's batch would be one), so
    // the 100-entry snapshot trigger fires.
    for i in 0..300 {
        let _: i64 = redis::cmd("ZADD")
            .arg("big")
            .arg(format!("{}", i as f64 * 0.5))
            .arg(format!("m{i}"))
            .query(&mut con)
            .expect("zadd");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let index: i64 = info_field(&mut con, "raft_last_snapshot_index")
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        if index >= 100 {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    must_cmd(
        &mut con,
        &[
            "ZADD", "edge", "-inf", "lo", "+inf", "hi", "0", "zero", "-2.5", "neg",
        ],
    );
    must_cmd(&mut con, &["EXPIRE", "edge", "3600"]);
    must_cmd(&mut con, &["ZINCRBY", "edge", "1.25", "neg"]);
    must_cmd(&mut con, &["ZREM", "big", "m0"]);
    must_cmd(&mut con, &["ZPOPMAX", "big"]);
    must_cmd(&mut con, &["ZADD", "gone", "1", "x"]);
    must_cmd(&mut con, &["ZPOPMIN", "gone"]);
    let snapshot = |con: &mut redis::Connection| {
        (
            must_cmd(con, &["ZRANGE", "big", "0", "-1", "WITHSCORES"]),
            must_cmd(con, &["ZRANGE", "edge", "0", "-1", "WITHSCORES"]),
        )
    };
    let before = snapshot(&mut con);
    let dir = node.kill9();

    let node = must_start_in(&dir, &["--snapshot-entries", "100"]);
    let mut con = node.must_connect();
    assert_eq!(snapshot(&mut con), before);
    assert!(
        node.log().lines().any(|l| l.contains("loaded snapshot")),
        "restart did not load a snapshot"
    );
    assert_eq!(must_cmd(&mut con, &["ZCARD", "big"]), Value::Int(298));
    assert_eq!(
        must_cmd(&mut con, &["ZRANGE", "edge", "0", "-1", "WITHSCORES"]),
        bulks(&["lo", "-inf", "neg", "-1.25", "zero", "0", "hi", "inf"])
    );
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "big"]),
        Value::SimpleString("zset".into())
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "gone"]), Value::Int(0));
    let Value::Int(ttl) = must_cmd(&mut con, &["TTL", "edge"]) else {
        panic!("ttl")
    };
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        must_cmd(&mut con, &["ZRANK", "big", "m150"]),
        Value::Int(149)
    );
}
