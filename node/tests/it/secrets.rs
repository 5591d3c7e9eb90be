//! Secrets never shown: a token written under `m2m:tokens:` and every password appear in
//! neither the node's log file, nor `MONITOR`, nor `SLOWLOG GET`, while the key names do.

use std::io::{Read, Write};

use redis::Value;

use crate::harness::{must_cmd, must_exchange, must_start};

/// A token stored under a secret prefix, and passwords sent with AUTH, HELLO, ACL SETUSER
/// and CONFIG SET, are `(redacted)` in MONITOR and SLOWLOG and absent from the log.
#[test]
fn a_token_never_shows_in_monitor_slowlog_or_the_log() {
    let (node, _dir) = must_start(&["--slowlog-log-slower-than", "0"]);
    let mut monitor = node.must_tcp();
    assert_eq!(must_exchange(&mut monitor, b"MONITOR\r\n", 5), b"+OK\r\n");
    let mut con = node.must_connect();
    let token = "TOKEN-9f3c-never-shown";
    must_cmd(&mut con, &["SET", "m2m:tokens:a", token, "EX", "600"]);
    assert_eq!(
        must_cmd(&mut con, &["GET", "m2m:tokens:a"]),
        Value::BulkString(token.as_bytes().to_vec())
    );
    must_cmd(
        &mut con,
        &["MSET", "cache:plain", "v", "bff:session:s", token],
    );
    must_cmd(&mut con, &["SET", "cache:plain", "visible-value"]);
    must_cmd(
        &mut con,
        &[
            "ACL",
            "SETUSER",
            "svc",
            "on",
            ">svc-PASSWORD-x",
            "+@all",
            "~*",
        ],
    );
    must_cmd(&mut con, &["AUTH", "svc", "svc-PASSWORD-x"]);
    must_cmd(&mut con, &["HELLO", "2", "AUTH", "svc", "svc-PASSWORD-x"]);
    must_cmd(
        &mut con,
        &["CONFIG", "SET", "requirepass", "admin-PASSWORD-y"],
    );
    must_cmd(&mut con, &["PING", "last-command"]);

    // The monitor sees every command up to the last one.
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    while !String::from_utf8_lossy(&seen).contains("last-command") {
        let n = monitor.read(&mut buf).expect("monitor read");
        assert!(n > 0, "monitor closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen).to_string();
    assert!(
        seen.contains("\"SET\" \"m2m:tokens:a\" \"(redacted)\""),
        "{seen}"
    );
    assert!(seen.contains("\"GET\" \"m2m:tokens:a\""), "{seen}");
    // A command that names a secret key hides all its values, the others' included.
    assert!(
        seen.contains("\"MSET\" \"cache:plain\" \"(redacted)\" \"bff:session:s\" \"(redacted)\""),
        "{seen}"
    );
    assert!(
        seen.contains("\"SET\" \"cache:plain\" \"visible-value\""),
        "{seen}"
    );
    assert!(
        seen.contains("\"AUTH\" \"(redacted)\" \"(redacted)\""),
        "{seen}"
    );
    let slowlog = must_cmd(&mut con, &["SLOWLOG", "GET", "-1"]);
    let slowlog = format!("{slowlog:?}");
    assert!(slowlog.contains("m2m:tokens:a"), "{slowlog}");
    let Value::Int(len) = must_cmd(&mut con, &["SLOWLOG", "LEN"]) else {
        panic!("SLOWLOG LEN is an integer");
    };
    assert!(len >= 8, "{len} entries");
    let log = node.log();
    for secret in [token, "svc-PASSWORD-x", "admin-PASSWORD-y"] {
        assert!(!seen.contains(secret), "{secret} in MONITOR:\n{seen}");
        assert!(!slowlog.contains(secret), "{secret} in SLOWLOG:\n{slowlog}");
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert_eq!(must_cmd(&mut con, &["SLOWLOG", "RESET"]), Value::Okay);
    monitor.write_all(b"QUIT\r\n").expect("quit");
}
