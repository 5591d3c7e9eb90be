//! The RESP front door over raw TCP: pipelining, inline commands, binary safety, and
//! malformed input answered with Redis's protocol errors.

use crate::harness::{must_exchange, must_exchange_until, must_start, read_to_close};

/// A thousand pipelined commands in one write get a thousand replies, in order.
#[test]
fn pipelined_replies_come_back_in_order() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        let value = format!("v{i}");
        request.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{value}\r\n",
                value.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        expected.extend_from_slice(b"+OK\r\n");
        expected.extend_from_slice(format!("${}\r\n{value}\r\n", value.len()).as_bytes());
    }
    request.extend_from_slice(b"*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n10\r\n");
    expected.extend_from_slice(b":10\r\n");
    let reply = must_exchange(&mut tcp, &request, expected.len());
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&expected)
    );
}

/// Inline commands, with Redis's quoting, work beside multibulk ones.
#[test]
fn inline_commands() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let reply = must_exchange(
        &mut tcp,
        b"SET greeting \"hello world\"\r\nGET greeting\r\n",
        22,
    );
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "+OK\r\n$11\r\nhello world\r\n"
    );
    let reply = must_exchange(&mut tcp, b"\r\nPING\n", 7);
    assert_eq!(reply, b"+PONG\r\n");
}

/// Keys and values carry any bytes, CR, LF and NUL included.
#[test]
fn binary_safe_keys_and_values() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let key: Vec<u8> = vec![0, 1, b'\r', b'\n', 255, b'k'];
    let value: Vec<u8> = (0..=255u8).collect();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .query(&mut con)
        .expect("set");
    let back: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut con).expect("get");
    assert_eq!(back, value);
    let len: i64 = redis::cmd("STRLEN")
        .arg(&key)
        .query(&mut con)
        .expect("strlen");
    assert_eq!(len, 256);
}

/// Malformed framing gets `-ERR Protocol error: ...` and the connection is closed; the
/// server keeps serving everyone else.
#[test]
fn protocol_errors_close_only_that_connection() {
    let (node, _dir) = must_start(&[]);
    let cases: &[(&[u8], &str)] = &[
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET a \"unterminated\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (request, expected) in cases {
        let mut tcp = node.must_tcp();
        let mut reply = must_exchange(&mut tcp, request, expected.len());
        reply.extend(read_to_close(&mut tcp));
        assert_eq!(String::from_utf8_lossy(&reply), *expected);
    }
    let mut tcp = node.must_tcp();
    let reply = must_exchange_until(&mut tcp, b"PING\r\n", b"PONG\r\n");
    assert_eq!(reply, b"+PONG\r\n");
}

/// A bulk length above `proto-max-bulk-len` is refused before any body is read, and the
/// limit can be changed with CONFIG SET.
#[test]
fn bulk_limit_is_checked_before_reading() {
    let (node, _dir) = must_start(&["--proto-max-bulk-len", "2048"]);
    let mut tcp = node.must_tcp();
    let mut reply = must_exchange(&mut tcp, b"*2\r\n$3\r\nGET\r\n$4096\r\n", 10);
    reply.extend(read_to_close(&mut tcp));
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    let mut con = node.must_connect();
    let big = "x".repeat(1500);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg(&big)
        .query(&mut con)
        .expect("within the limit");
}

/// A bad argument is an error reply, not a closed connection.
#[test]
fn argument_errors_keep_the_connection() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let reply = must_exchange(
        &mut tcp,
        b"SET k v EX notanumber\r\nSET k v BOGUS\r\nINCR k\r\nPING\r\n",
        10,
    );
    let mut all = reply;
    while !all.ends_with(b"+PONG\r\n") {
        all.extend(must_exchange(&mut tcp, b"", 1));
    }
    assert_eq!(
        String::from_utf8_lossy(&all),
        "-ERR value is not an integer or out of range\r\n-ERR syntax error\r\n:1\r\n+PONG\r\n"
    );
}
