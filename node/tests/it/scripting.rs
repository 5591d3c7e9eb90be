//! Lua scripts and functions through the real binary: EVAL and EVALSHA with writes, scripts
//! and function libraries surviving a kill -9 (from the log and from a snapshot), PUBLISH
//! from a script, and the lock release kombu runs with EVALSHA.

use redis::Value;

use crate::harness::{
    must_cmd, must_exchange, must_exchange_until, must_fail, must_start, must_start_in,
};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// kombu's lock release: delete the key only if it still holds our token.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

#[test]
fn eval_and_evalsha_write_and_read() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "lock", "token-1", "NX", "PX", "60000"]);
    let sha = match must_cmd(&mut con, &["SCRIPT", "LOAD", RELEASE]) {
        Value::BulkString(sha) => String::from_utf8(sha).expect("hex"),
        other => panic!("SCRIPT LOAD answered {other:?}"),
    };
    assert_eq!(
        must_cmd(&mut con, &["EVALSHA", &sha, "1", "lock", "other"]),
        Value::Int(0)
    );
    assert_eq!(
        must_cmd(&mut con, &["EVALSHA", &sha, "1", "lock", "token-1"]),
        Value::Int(1)
    );
    assert_eq!(must_cmd(&mut con, &["EXISTS", "lock"]), Value::Int(0));
    assert_eq!(
        must_cmd(&mut con, &["EVAL", "redis.call('rpush', KEYS[1], ARGV[1], ARGV[2]); return redis.call('lrange', KEYS[1], 0, -1)", "1", "l", "a", "b"]),
        Value::Array(vec![bulk("a"), bulk("b")])
    );
    assert_eq!(
        must_fail(
            &mut con,
            &["EVALSHA", "0000000000000000000000000000000000000000", "0"]
        ),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    let Value::BulkString(ro_sha) = must_cmd(
        &mut con,
        &[
            "EVAL",
            "return redis.sha1hex(ARGV[1])",
            "0",
            "return redis.call('del', 'l')",
        ],
    ) else {
        panic!("no digest");
    };
    assert_eq!(
        must_fail(&mut con, &["EVAL_RO", "return redis.call('del', 'l')", "0"]),
        format!(
            "ERR Write commands are not allowed from read-only scripts. script: {}, on @user_script:1.",
            String::from_utf8_lossy(&ro_sha)
        )
    );
    assert_eq!(must_cmd(&mut con, &["LLEN", "l"]), Value::Int(2));
    // TIME inside a script is the entry's time: close to the node's own clock.
    let Value::Array(time) = must_cmd(&mut con, &["EVAL", "return redis.call('time')", "0"]) else {
        panic!("no time");
    };
    let Value::BulkString(secs) = &time[0] else {
        panic!("{time:?}")
    };
    let secs: u64 = String::from_utf8_lossy(secs).parse().expect("seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(secs.abs_diff(now) < 60, "script time {secs}, wall {now}");
}

#[test]
fn loaded_scripts_survive_kill9_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = must_start_in(tmp.path(), &[]);
    let mut con = node.must_connect();
    let Value::BulkString(sha) = must_cmd(
        &mut con,
        &["SCRIPT", "LOAD", "return redis.call('incr', KEYS[1])"],
    ) else {
        panic!("no sha");
    };
    let sha = String::from_utf8(sha).expect("hex");
    assert_eq!(
        must_cmd(&mut con, &["EVALSHA", &sha, "1", "n"]),
        Value::Int(1)
    );
    let dir = node.kill9();
    let node = must_start_in(&dir, &[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["SCRIPT", "EXISTS", &sha]),
        Value::Array(vec![Value::Int(1)])
    );
    assert_eq!(
        must_cmd(&mut con, &["EVALSHA", &sha, "1", "n"]),
        Value::Int(2)
    );
}

/// A script's PUBLISH reaches subscribers once its entry applies, after the writes before it.
#[test]
fn publish_from_a_script_reaches_subscribers() {
    let (node, _dir) = must_start(&[]);
    let mut subscriber = node.must_tcp();
    must_exchange_until(
        &mut subscriber,
        b"SUBSCRIBE celery-task-meta\r\n",
        b":1\r\n",
    );
    let mut con = node.must_connect();
    must_cmd(
        &mut con,
        &["EVAL", "redis.call('set', KEYS[1], ARGV[1]); return redis.call('publish', 'celery-task-meta', ARGV[1])", "1", "result", "done"],
    );
    let message = "*3\r\n$7\r\nmessage\r\n$16\r\ncelery-task-meta\r\n$4\r\ndone\r\n";
    let got = must_exchange(&mut subscriber, b"", message.len());
    assert_eq!(String::from_utf8_lossy(&got), message);
    assert_eq!(must_cmd(&mut con, &["GET", "result"]), bulk("done"));
}

/// EVAL queued in MULTI runs inside the transaction's entry.
#[test]
fn eval_inside_a_transaction() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let expected = "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n";
    let reply = must_exchange(
        &mut tcp,
        b"MULTI\r\nSET c 1\r\nEVAL \"return redis.call('incr', 'c')\" 0\r\nEXEC\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
}

const COUNTER_LIBRARY: &str = "#!lua name=counters\n\
redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n\
redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

/// FUNCTION LOAD and FCALL over the wire, and the library after kill -9: replayed from the
/// log, then loaded from a snapshot.
#[test]
fn function_libraries_survive_kill9_from_log_and_snapshot() {
    for snapshot_entries in ["1000000", "5"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let node = must_start_in(tmp.path(), &["--snapshot-entries", snapshot_entries]);
        let mut con = node.must_connect();
        assert_eq!(
            must_cmd(&mut con, &["FUNCTION", "LOAD", COUNTER_LIBRARY]),
            bulk("counters")
        );
        assert_eq!(
            must_fail(&mut con, &["FUNCTION", "LOAD", COUNTER_LIBRARY]),
            "ERR Library 'counters' already exists"
        );
        assert_eq!(
            must_cmd(&mut con, &["FCALL", "bump", "1", "n", "5"]),
            Value::Int(5)
        );
        assert_eq!(
            must_cmd(&mut con, &["FCALL_RO", "peek", "1", "n"]),
            bulk("5")
        );
        assert_eq!(
            must_fail(&mut con, &["FCALL_RO", "bump", "1", "n", "1"]),
            "ERR Can not execute a script with write flag using *_ro command."
        );
        if snapshot_entries == "5" {
            for i in 0..10 {
                must_cmd(&mut con, &["SET", &format!("filler{i}"), "x"]);
            }
            crate::hashes::must_await_snapshot(&mut con, 10);
        }
        let dir = node.kill9();
        let node = must_start_in(&dir, &["--snapshot-entries", snapshot_entries]);
        let mut con = node.must_connect();
        assert_eq!(
            must_cmd(&mut con, &["FCALL", "bump", "1", "n", "2"]),
            Value::Int(7),
            "after restart with snapshot-entries {snapshot_entries}"
        );
        let Value::Array(libraries) = must_cmd(&mut con, &["FUNCTION", "LIST"]) else {
            panic!("FUNCTION LIST is not an array");
        };
        assert_eq!(libraries.len(), 1);
    }
}
