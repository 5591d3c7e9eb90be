//! List commands through the real binary and the `redis` crate: round trips, LMPOP, the
//! blocking forms when they can serve at once, a list across `kill -9`, and the generic key
//! commands on a list. Nothing here waits on an empty list: that is the server's side.

use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{info_field, must_cmd, must_fail, must_start, must_start_in};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn bulks(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| bulk(s)).collect())
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Pushes, pops, ranges and edits agree with each other the way Redis's do.
#[test]
fn push_pop_and_range_round_trips() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["RPUSH", "q", "a", "b", "c"]),
        Value::Int(3)
    );
    assert_eq!(must_cmd(&mut con, &["LPUSH", "q", "z"]), Value::Int(4));
    assert_eq!(
        must_cmd(&mut con, &["LPUSHX", "nosuch", "x"]),
        Value::Int(0)
    );
    assert_eq!(must_cmd(&mut con, &["RPUSHX", "q", "d"]), Value::Int(5));
    assert_eq!(
        must_cmd(&mut con, &["LRANGE", "q", "0", "-1"]),
        bulks(&["z", "a", "b", "c", "d"])
    );
    assert_eq!(must_cmd(&mut con, &["LLEN", "q"]), Value::Int(5));
    assert_eq!(must_cmd(&mut con, &["LINDEX", "q", "-2"]), bulk("c"));
    assert_eq!(must_cmd(&mut con, &["LSET", "q", "0", "y"]), Value::Okay);
    assert_eq!(
        must_cmd(&mut con, &["LINSERT", "q", "BEFORE", "b", "b"]),
        Value::Int(6)
    );
    assert_eq!(must_cmd(&mut con, &["LREM", "q", "0", "b"]), Value::Int(2));
    assert_eq!(must_cmd(&mut con, &["LPOS", "q", "c"]), Value::Int(2));
    assert_eq!(
        must_cmd(&mut con, &["LPOS", "q", "x", "COUNT", "0"]),
        Value::Array(vec![])
    );
    assert_eq!(must_cmd(&mut con, &["LPOP", "q"]), bulk("y"));
    assert_eq!(must_cmd(&mut con, &["RPOP", "q", "2"]), bulks(&["d", "c"]));
    assert_eq!(
        must_cmd(&mut con, &["LPOP", "q", "0"]),
        Value::Array(vec![])
    );
    assert_eq!(must_cmd(&mut con, &["LPOP", "q", "5"]), bulks(&["a"]));
    assert_eq!(must_cmd(&mut con, &["EXISTS", "q"]), Value::Int(0));
    assert_eq!(must_cmd(&mut con, &["LPOP", "q"]), Value::Nil);
    assert_eq!(must_cmd(&mut con, &["LPOP", "q", "1"]), Value::Nil);

    must_cmd(&mut con, &["RPUSH", "src", "1", "2", "3"]);
    assert_eq!(
        must_cmd(&mut con, &["LMOVE", "src", "dst", "LEFT", "RIGHT"]),
        bulk("1")
    );
    assert_eq!(must_cmd(&mut con, &["RPOPLPUSH", "src", "dst"]), bulk("3"));
    assert_eq!(
        must_cmd(&mut con, &["LMOVE", "src", "src", "RIGHT", "LEFT"]),
        bulk("2")
    );
    assert_eq!(
        must_cmd(&mut con, &["LRANGE", "dst", "0", "-1"]),
        bulks(&["3", "1"])
    );
    assert_eq!(
        must_cmd(&mut con, &["LTRIM", "dst", "1", "-1"]),
        Value::Okay
    );
    assert_eq!(
        must_cmd(&mut con, &["LRANGE", "dst", "0", "-1"]),
        bulks(&["1"])
    );

    must_cmd(&mut con, &["SET", "s", "v"]);
    assert_eq!(must_fail(&mut con, &["LPUSH", "s", "x"]), WRONGTYPE);
    assert_eq!(
        must_fail(&mut con, &["LMOVE", "src", "s", "LEFT", "LEFT"]),
        WRONGTYPE
    );
    assert_eq!(must_cmd(&mut con, &["LLEN", "src"]), Value::Int(1));
    assert_eq!(
        must_fail(&mut con, &["LPOS", "src", "2", "RANK", "0"]),
        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
    );
    assert_eq!(
        must_fail(&mut con, &["LSET", "src", "5", "x"]),
        "ERR index out of range"
    );
}

/// LMPOP takes from the first non-empty list; the blocking forms serve at once when a list
/// has elements, exactly like their non-blocking counterparts.
#[test]
fn lmpop_and_blocking_forms_that_can_serve() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["LMPOP", "2", "a", "b", "LEFT"]),
        Value::Nil
    );
    must_cmd(&mut con, &["RPUSH", "b", "1", "2", "3", "4", "5"]);
    assert_eq!(
        must_cmd(&mut con, &["LMPOP", "2", "a", "b", "RIGHT", "COUNT", "2"]),
        Value::Array(vec![bulk("b"), bulks(&["5", "4"])])
    );
    assert_eq!(
        must_fail(&mut con, &["LMPOP", "0", "a", "LEFT"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        must_fail(&mut con, &["LMPOP", "1", "a", "LEFT", "COUNT", "0"]),
        "ERR count should be greater than 0"
    );
    assert_eq!(
        must_cmd(
            &mut con,
            &["COMMAND", "GETKEYS", "LMPOP", "2", "a", "b", "LEFT"]
        ),
        bulks(&["a", "b"])
    );
    assert_eq!(
        must_cmd(&mut con, &["BLPOP", "a", "b", "0"]),
        bulks(&["b", "1"])
    );
    assert_eq!(must_cmd(&mut con, &["BRPOP", "b", "1"]), bulks(&["b", "3"]));
    assert_eq!(
        must_cmd(&mut con, &["BLMOVE", "b", "c", "LEFT", "LEFT", "0.5"]),
        bulk("2")
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "b"]), Value::Int(0));
    assert_eq!(
        must_cmd(&mut con, &["BRPOPLPUSH", "c", "b", "0"]),
        bulk("2")
    );
    assert_eq!(
        must_cmd(
            &mut con,
            &["BLMPOP", "0", "2", "a", "b", "LEFT", "COUNT", "9"]
        ),
        Value::Array(vec![bulk("b"), bulks(&["2"])])
    );
    assert_eq!(
        must_fail(&mut con, &["BLPOP", "b", "soon"]),
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(
        must_fail(&mut con, &["BLPOP", "b", "-1"]),
        "ERR timeout is negative"
    );
}

/// Acknowledged lists survive `kill -9` and a restart, elements in order, both from the
/// log tail and from a snapshot taken while lists existed.
#[test]
fn lists_survive_kill9_through_log_and_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), &["--snapshot-entries", "100"]);
    let mut con = node.must_connect();
    let elements: Vec<String> = (0..500).map(|i| format!("task-{i}")).collect();
    for chunk in elements.chunks(100) {
        let mut args = vec!["RPUSH", "celery"];
        args.extend(chunk.iter().map(String::as_str));
        must_cmd(&mut con, &args);
    }
    // Enough entries for a snapshot to cover the lists, then a short tail after it.
    for i in 0..150 {
        must_cmd(
            &mut con,
            &["RPUSH", &format!("q{}", i % 10), &i.to_string()],
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut con, "raft_last_snapshot_index")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(-1)
        < 50
    {
        assert!(Instant::now() < deadline, "no snapshot taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(must_cmd(&mut con, &["LPOP", "celery", "10"]), {
        let first: Vec<&str> = elements[..10].iter().map(String::as_str).collect();
        bulks(&first)
    });
    must_cmd(&mut con, &["LPUSH", "emptied", "x"]);
    must_cmd(&mut con, &["RPOP", "emptied"]);
    let dir = node.kill9();

    let node = must_start_in(&dir, &["--snapshot-entries", "100"]);
    let mut con = node.must_connect();
    assert!(
        node.log().contains("loaded snapshot"),
        "the restart did not load a snapshot"
    );
    let rest: Vec<&str> = elements[10..].iter().map(String::as_str).collect();
    assert_eq!(
        must_cmd(&mut con, &["LRANGE", "celery", "0", "-1"]),
        bulks(&rest)
    );
    for q in 0..10 {
        let expected: Vec<String> = (0..150)
            .filter(|i| i % 10 == q)
            .map(|i| i.to_string())
            .collect();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_eq!(
            must_cmd(&mut con, &["LRANGE", &format!("q{q}"), "0", "-1"]),
            bulks(&expected)
        );
    }
    assert_eq!(must_cmd(&mut con, &["EXISTS", "emptied"]), Value::Int(0));
    assert_eq!(
        must_cmd(&mut con, &["RPUSH", "celery", "more"]),
        Value::Int(491)
    );
}

/// TYPE, RENAME, COPY, OBJECT ENCODING and SCAN TYPE see a list as one.
#[test]
fn generic_key_commands_on_a_list() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["RPUSH", "l", "a", "b"]);
    must_cmd(&mut con, &["SET", "s", "v"]);
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "l"]),
        Value::SimpleString("list".into())
    );
    assert_eq!(must_cmd(&mut con, &["RENAME", "l", "m"]), Value::Okay);
    assert_eq!(must_cmd(&mut con, &["COPY", "m", "n"]), Value::Int(1));
    assert_eq!(must_cmd(&mut con, &["RPUSH", "n", "c"]), Value::Int(3));
    // The copy is its own list: changing it leaves the original alone.
    assert_eq!(
        must_cmd(&mut con, &["LRANGE", "m", "0", "-1"]),
        bulks(&["a", "b"])
    );
    assert_eq!(
        must_cmd(&mut con, &["LRANGE", "n", "0", "-1"]),
        bulks(&["a", "b", "c"])
    );
    // Past Redis's 8 KB listpack limit, where both answer quicklist.
    let big = "x".repeat(100);
    let mut args = vec!["RPUSH", "big"];
    args.extend(std::iter::repeat_n(big.as_str(), 100));
    must_cmd(&mut con, &args);
    assert_eq!(
        must_cmd(&mut con, &["OBJECT", "ENCODING", "big"]),
        bulk("quicklist")
    );
    let (cursor, mut keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(1000)
        .arg("TYPE")
        .arg("list")
        .query(&mut con)
        .expect("scan");
    assert_eq!(cursor, 0);
    keys.sort();
    assert_eq!(keys, vec!["big", "m", "n"]);
    assert_eq!(
        must_cmd(&mut con, &["RENAME", "s", "m"]),
        Value::Okay,
        "RENAME overwrites a list with a string"
    );
    assert_eq!(
        must_cmd(&mut con, &["TYPE", "m"]),
        Value::SimpleString("string".into())
    );
}
