//! MULTI/EXEC/DISCARD/WATCH through the real binary: exact replies over raw TCP, and WATCH
//! conflicts caused by other connections.

use std::thread::sleep;
use std::time::Duration;

use redis::Value;

use crate::harness::{must_cmd, must_exchange, must_exchange_until, must_start};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn queued_commands_apply_together_and_replies_keep_their_order() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let reply = must_exchange_until(
        &mut tcp,
        b"MULTI\r\nSET a 1\r\nINCR a\r\nPING\r\nGET a\r\nECHO hi\r\nEXEC\r\n",
        b"$2\r\nhi\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*5\r\n+OK\r\n:2\r\n+PONG\r\n$1\r\n2\r\n$2\r\nhi\r\n"
    );
}

#[test]
fn a_runtime_error_fails_only_its_command() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let expected = "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n+OK\r\n";
    let reply = must_exchange(
        &mut tcp,
        b"MULTI\r\nSET s x\r\nINCR s\r\nSET t y\r\nEXEC\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["GET", "t"]), bulk("y"));
}

#[test]
fn a_command_refused_while_queuing_aborts_exec() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let expected = concat!(
        "+OK\r\n",
        "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n",
        "-ERR wrong number of arguments for 'get' command\r\n",
        "+QUEUED\r\n",
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    let reply = must_exchange(
        &mut tcp,
        b"MULTI\r\nNOSUCH x\r\nGET\r\nSET a 1\r\nEXEC\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["EXISTS", "a"]), Value::Int(0));
}

#[test]
fn misplaced_transaction_commands_get_redis_errors() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let expected = concat!(
        "-ERR EXEC without MULTI\r\n",
        "-ERR DISCARD without MULTI\r\n",
        "+OK\r\n",
        "-ERR MULTI calls can not be nested\r\n",
        "-ERR WATCH inside MULTI is not allowed\r\n",
        "+QUEUED\r\n",
        "+OK\r\n",
        "$-1\r\n",
    );
    let reply = must_exchange(
        &mut tcp,
        b"EXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nWATCH k\r\nSET k v\r\nDISCARD\r\nGET k\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
}

/// The transaction runs when nothing touched the watched key, and aborts (`*-1`, or `_` in
/// RESP3) when another connection wrote it between WATCH and EXEC.
#[test]
fn watch_aborts_on_a_write_from_another_connection() {
    let (node, _dir) = must_start(&[]);
    let mut other = node.must_connect();
    let mut tcp = node.must_tcp();
    must_cmd(&mut other, &["SET", "k", "1"]);

    let untouched = "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n";
    let reply = must_exchange(
        &mut tcp,
        b"WATCH k\r\nMULTI\r\nSET k 2\r\nEXEC\r\n",
        untouched.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), untouched);

    let watched = must_exchange(&mut tcp, b"WATCH k\r\n", 5);
    assert_eq!(watched, b"+OK\r\n");
    must_cmd(&mut other, &["SET", "k", "from-other"]);
    let aborted = "+OK\r\n+QUEUED\r\n*-1\r\n";
    let reply = must_exchange(&mut tcp, b"MULTI\r\nSET k 3\r\nEXEC\r\n", aborted.len());
    assert_eq!(String::from_utf8_lossy(&reply), aborted);
    assert_eq!(must_cmd(&mut other, &["GET", "k"]), bulk("from-other"));

    // EXEC forgets the watch: the next transaction runs.
    let again = "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n";
    let reply = must_exchange(&mut tcp, b"MULTI\r\nSET k 4\r\nEXEC\r\n", again.len());
    assert_eq!(String::from_utf8_lossy(&reply), again);

    // RESP3 writes the aborted EXEC as a null.
    let hello = must_exchange_until(&mut tcp, b"HELLO 3\r\n", b"modules");
    assert!(hello.starts_with(b"%"));
    must_exchange(&mut tcp, b"WATCH k\r\n", 5);
    must_cmd(&mut other, &["DEL", "k"]);
    let aborted3 = "+OK\r\n+QUEUED\r\n_\r\n";
    let reply = must_exchange(&mut tcp, b"MULTI\r\nSET k 5\r\nEXEC\r\n", aborted3.len());
    assert_eq!(String::from_utf8_lossy(&reply), aborted3);
}

/// Deletion by FLUSHDB, a RENAME away, and expiry all count as changes; UNWATCH forgets.
#[test]
fn watch_sees_flush_rename_expiry_and_unwatch_forgets() {
    let (node, _dir) = must_start(&[]);
    let mut other = node.must_connect();
    let mut con = node.must_connect();
    let exec_after = |con: &mut redis::Connection, touch: &mut dyn FnMut()| -> Value {
        must_cmd(con, &["WATCH", "w"]);
        touch();
        must_cmd(con, &["MULTI"]);
        must_cmd(con, &["SET", "w", "tx"]);
        must_cmd(con, &["EXEC"])
    };
    must_cmd(&mut other, &["SET", "w", "1"]);
    let mut flusher = node.must_connect();
    let aborted = exec_after(&mut con, &mut || {
        must_cmd(&mut flusher, &["FLUSHDB"]);
    });
    assert_eq!(aborted, Value::Nil);

    must_cmd(&mut other, &["SET", "w", "1"]);
    let mut renamer = node.must_connect();
    let aborted = exec_after(&mut con, &mut || {
        must_cmd(&mut renamer, &["RENAME", "w", "elsewhere"]);
    });
    assert_eq!(aborted, Value::Nil);

    must_cmd(&mut other, &["SET", "w", "1", "PX", "150"]);
    let aborted = exec_after(&mut con, &mut || sleep(Duration::from_millis(300)));
    assert_eq!(aborted, Value::Nil);

    must_cmd(&mut con, &["WATCH", "w"]);
    must_cmd(&mut other, &["SET", "w", "changed"]);
    must_cmd(&mut con, &["UNWATCH"]);
    must_cmd(&mut con, &["MULTI"]);
    must_cmd(&mut con, &["SET", "w", "tx"]);
    assert_eq!(
        must_cmd(&mut con, &["EXEC"]),
        Value::Array(vec![Value::Okay])
    );
    assert_eq!(must_cmd(&mut other, &["GET", "w"]), bulk("tx"));
}

/// Celery stores a result and announces it in one transaction: the subscriber gets the
/// message when EXEC applies, and can already read the stored value.
#[test]
fn publish_inside_exec_is_delivered_when_it_applies() {
    let (node, _dir) = must_start(&[]);
    let mut subscriber = node.must_tcp();
    let confirm = "*3\r\n$9\r\nsubscribe\r\n$4\r\ndone\r\n:1\r\n";
    let reply = must_exchange(&mut subscriber, b"SUBSCRIBE done\r\n", confirm.len());
    assert_eq!(String::from_utf8_lossy(&reply), confirm);

    let mut con = node.must_tcp();
    let expected = "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:1\r\n";
    let reply = must_exchange(
        &mut con,
        b"MULTI\r\nSETEX result 60 ok\r\nPUBLISH done task-1\r\nEXEC\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    let message = "*3\r\n$7\r\nmessage\r\n$4\r\ndone\r\n$6\r\ntask-1\r\n";
    let got = must_exchange(&mut subscriber, b"", message.len());
    assert_eq!(String::from_utf8_lossy(&got), message);
    let mut reader = node.must_connect();
    assert_eq!(must_cmd(&mut reader, &["GET", "result"]), bulk("ok"));
}

/// SELECT queued in a transaction moves the rest of it, and the connection along with it.
#[test]
fn select_inside_a_transaction() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let expected = "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n$1\r\nv\r\n";
    let reply = must_exchange(
        &mut tcp,
        b"MULTI\r\nSELECT 2\r\nSET k v\r\nEXEC\r\nGET k\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["EXISTS", "k"]), Value::Int(0));
}

/// CLIENT LIST shows an open transaction, its watched keys, and a subscriber.
#[test]
fn client_list_shows_transactions_and_subscriptions() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let expected = "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n";
    let reply = must_exchange(
        &mut tcp,
        b"WATCH a b\r\nMULTI\r\nSET a 1\r\nSET b 2\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    let mut sub = node.must_tcp();
    must_exchange_until(&mut sub, b"SUBSCRIBE x\r\nPSUBSCRIBE y*\r\n", b":2\r\n");
    let mut con = node.must_connect();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut con)
        .expect("client list");
    assert!(
        list.lines()
            .any(|l| l.contains(" flags=x ") && l.contains(" multi=2 watch=2 ")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains(" flags=P ") && l.contains(" sub=1 psub=1 ")),
        "{list}"
    );
}
