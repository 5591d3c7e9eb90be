//! Pub/sub through the real binary: channel and pattern subscribers in RESP2 and RESP3,
//! subscriber mode, PUBSUB introspection, and the output limit that cuts off a subscriber
//! who stops reading.

use std::io::Read;
use std::time::{Duration, Instant};

use redis::Value;

use crate::harness::{must_cmd, must_exchange, must_exchange_until, must_start};

fn message(channel: &str, payload: &str) -> String {
    format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n{payload}\r\n",
        channel.len(),
        payload.len()
    )
}

#[test]
fn channel_and_pattern_subscribers_receive_in_order() {
    let (node, _dir) = must_start(&[]);
    let mut sub = node.must_tcp();
    let confirms = "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$10\r\npsubscribe\r\n$6\r\nprog:*\r\n:3\r\n";
    let reply = must_exchange(
        &mut sub,
        b"SUBSCRIBE a b\r\nPSUBSCRIBE prog:*\r\n",
        confirms.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), confirms);

    let mut publisher = node.must_connect();
    let mut expected = String::new();
    for i in 0..200 {
        let n = must_cmd(&mut publisher, &["PUBLISH", "a", &format!("m{i}")]);
        assert_eq!(n, Value::Int(1));
        expected.push_str(&message("a", &format!("m{i}")));
    }
    assert_eq!(
        must_cmd(&mut publisher, &["PUBLISH", "prog:42", "50%"]),
        Value::Int(1)
    );
    expected.push_str("*4\r\n$8\r\npmessage\r\n$6\r\nprog:*\r\n$7\r\nprog:42\r\n$3\r\n50%\r\n");
    assert_eq!(
        must_cmd(&mut publisher, &["PUBLISH", "nobody", "x"]),
        Value::Int(0)
    );
    let got = must_exchange(&mut sub, b"", expected.len());
    assert_eq!(String::from_utf8_lossy(&got), expected);

    assert_eq!(
        must_cmd(&mut publisher, &["PUBSUB", "NUMSUB", "a", "zz"]),
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::Int(1),
            Value::BulkString(b"zz".to_vec()),
            Value::Int(0)
        ])
    );
    assert_eq!(
        must_cmd(&mut publisher, &["PUBSUB", "NUMPAT"]),
        Value::Int(1)
    );
    assert_eq!(
        must_cmd(&mut publisher, &["PUBSUB", "CHANNELS"]),
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"b".to_vec())
        ])
    );

    // Unsubscribing from everything, then from nothing.
    let bye = "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n*3\r\n$12\r\npunsubscribe\r\n$6\r\nprog:*\r\n:0\r\n*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n";
    let reply = must_exchange(
        &mut sub,
        b"UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nUNSUBSCRIBE\r\n",
        bye.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), bye);
    // Out of subscriber mode, ordinary commands run again.
    assert_eq!(must_exchange(&mut sub, b"PING\r\n", 7), b"+PONG\r\n");
}

#[test]
fn resp2_subscriber_mode_allows_only_subscription_commands() {
    let (node, _dir) = must_start(&[]);
    let mut sub = node.must_tcp();
    must_exchange_until(&mut sub, b"SUBSCRIBE c\r\n", b":1\r\n");
    let expected = concat!(
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n",
        "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n",
        "+RESET\r\n",
        "$-1\r\n",
    );
    let reply = must_exchange(
        &mut sub,
        b"GET k\r\nPING\r\nPING hi\r\nRESET\r\nGET k\r\n",
        expected.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    // RESET dropped the subscription.
    let mut con = node.must_connect();
    assert_eq!(must_cmd(&mut con, &["PUBLISH", "c", "x"]), Value::Int(0));
}

#[test]
fn resp3_subscribers_get_pushes_and_keep_running_commands() {
    let (node, _dir) = must_start(&[]);
    let mut sub = node.must_tcp();
    must_exchange_until(&mut sub, b"HELLO 3\r\n", b"modules");
    let confirm = ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    let reply = must_exchange(&mut sub, b"SUBSCRIBE ch\r\n", confirm.len());
    assert_eq!(String::from_utf8_lossy(&reply), confirm);
    assert_eq!(must_exchange(&mut sub, b"GET k\r\n", 3), b"_\r\n");
    let mut con = node.must_connect();
    must_cmd(&mut con, &["PUBLISH", "ch", "hello"]);
    let push = ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
    let got = must_exchange(&mut sub, b"", push.len());
    assert_eq!(String::from_utf8_lossy(&got), push);
}

/// A subscriber that stops reading is disconnected once its queued messages pass the
/// hard limit, and its subscription disappears with it; publishers keep going.
#[test]
fn a_subscriber_that_stops_reading_is_cut_off() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(
            &mut con,
            &[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1mb 0 0"
            ]
        ),
        Value::Okay
    );
    let limit: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("client-output-buffer-limit")
        .query(&mut con)
        .expect("config get");
    assert!(limit[1].ends_with("pubsub 1048576 0 0"), "{limit:?}");

    let mut slow = node.must_tcp();
    must_exchange_until(&mut slow, b"SUBSCRIBE firehose\r\n", b":1\r\n");
    let payload = "x".repeat(100_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut published = 0;
    loop {
        let n = must_cmd(&mut con, &["PUBLISH", "firehose", &payload]);
        published += 1;
        if n == Value::Int(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still subscribed after {published} messages"
        );
    }
    // The socket closes once the unread backlog is dropped.
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut sink = Vec::new();
    let _ = slow.read_to_end(&mut sink);
    assert!(
        sink.len() < published * payload.len(),
        "some messages were dropped"
    );
    assert_eq!(
        must_cmd(&mut con, &["PUBSUB", "NUMSUB", "firehose"]),
        Value::Array(vec![Value::BulkString(b"firehose".to_vec()), Value::Int(0)])
    );
    assert_eq!(
        must_cmd(&mut con, &["PING"]),
        Value::SimpleString("PONG".into())
    );
}
