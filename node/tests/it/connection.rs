//! Connection and server commands: PING, HELLO, SELECT, CLIENT, COMMAND, INFO, CONFIG.

use redis::Value;

use crate::harness::{
    info_field, must_cmd, must_exchange, must_exchange_until, must_fail, must_start, read_to_close,
};

/// PING, ECHO and TIME answer as Redis does.
#[test]
fn ping_echo_time() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["PING"]),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(
        must_cmd(&mut con, &["PING", "hi"]),
        Value::BulkString(b"hi".to_vec())
    );
    assert_eq!(
        must_cmd(&mut con, &["ECHO", "x y"]),
        Value::BulkString(b"x y".to_vec())
    );
    let Value::Array(time) = must_cmd(&mut con, &["TIME"]) else {
        panic!("TIME not an array")
    };
    assert_eq!(time.len(), 2);
}

/// HELLO switches protocols and reports the server; bad versions get NOPROTO.
#[test]
fn hello_switches_to_resp3_and_back() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let reply = must_exchange_until(&mut tcp, b"HELLO 3\r\n", b"modules\r\n*0\r\n");
    let text = String::from_utf8_lossy(&reply).to_string();
    assert!(text.starts_with("%7\r\n"), "{text}");
    assert!(text.contains("proto\r\n:3"), "{text}");
    assert!(text.contains("version\r\n$5\r\n7.2.4"), "{text}");
    // A null in RESP3 is `_`.
    let null = must_exchange(&mut tcp, b"GET missing\r\n", 3);
    assert_eq!(null, b"_\r\n");
    let reply = must_exchange_until(&mut tcp, b"HELLO 2\r\n", b"modules\r\n*0\r\n");
    assert!(
        reply.starts_with(b"*14\r\n"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let mut con = node.must_connect();
    assert_eq!(
        must_fail(&mut con, &["HELLO", "4"]),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        must_fail(&mut con, &["HELLO", "x"]),
        "ERR Protocol version is not an integer or out of range"
    );
}

/// SELECT isolates databases and refuses out-of-range indexes.
#[test]
fn select_isolates_databases() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "k", "zero"]);
    must_cmd(&mut con, &["SELECT", "5"]);
    assert_eq!(must_cmd(&mut con, &["GET", "k"]), Value::Nil);
    must_cmd(&mut con, &["SET", "k", "five"]);
    assert_eq!(must_cmd(&mut con, &["DBSIZE"]), Value::Int(1));
    must_cmd(&mut con, &["SELECT", "0"]);
    assert_eq!(
        must_cmd(&mut con, &["GET", "k"]),
        Value::BulkString(b"zero".to_vec())
    );
    assert_eq!(
        must_fail(&mut con, &["SELECT", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        must_fail(&mut con, &["SELECT", "x"]),
        "ERR value is not an integer or out of range"
    );
}

/// CLIENT subcommands as redis-py uses them.
#[test]
fn client_subcommands() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
        Value::Okay
    );
    assert_eq!(
        must_cmd(&mut con, &["CLIENT", "SETINFO", "LIB-VER", "8.0.0"]),
        Value::Okay
    );
    assert_eq!(
        must_cmd(&mut con, &["CLIENT", "SETNAME", "worker-1"]),
        Value::Okay
    );
    assert_eq!(
        must_cmd(&mut con, &["CLIENT", "GETNAME"]),
        Value::BulkString(b"worker-1".to_vec())
    );
    let Value::Int(id) = must_cmd(&mut con, &["CLIENT", "ID"]) else {
        panic!("CLIENT ID")
    };
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut con)
        .expect("list");
    assert!(list.contains(&format!("id={id} ")), "{list}");
    assert!(
        list.contains("name=worker-1") && list.contains("lib-name=redis-py"),
        "{list}"
    );
    let info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query(&mut con)
        .expect("info");
    assert!(info.contains("lib-ver=8.0.0"), "{info}");
    assert_eq!(
        must_fail(&mut con, &["CLIENT", "SETNAME", "has space"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        must_fail(&mut con, &["CLIENT", "NOPE"]),
        "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."
    );
    assert_eq!(
        must_fail(&mut con, &["CLIENT", "SETNAME"]),
        "ERR wrong number of arguments for 'client|setname' command"
    );
}

/// CLIENT NO-EVICT and CLIENT NO-TOUCH take ON or OFF in any case, answer OK, and refuse
/// anything else with Redis's errors; COMMAND and CLIENT HELP know them.
#[test]
fn client_no_evict_and_no_touch() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    for sub in ["NO-EVICT", "no-touch"] {
        for mode in ["on", "OFF", "On", "off"] {
            assert_eq!(must_cmd(&mut con, &["CLIENT", sub, mode]), Value::Okay);
        }
        assert_eq!(
            must_fail(&mut con, &["CLIENT", sub, "yes"]),
            "ERR syntax error"
        );
        let name = sub.to_ascii_lowercase();
        assert_eq!(
            must_fail(&mut con, &["CLIENT", sub]),
            format!("ERR wrong number of arguments for 'client|{name}' command")
        );
        assert_eq!(
            must_fail(&mut con, &["CLIENT", sub, "on", "off"]),
            format!("ERR wrong number of arguments for 'client|{name}' command")
        );
        let docs = must_cmd(&mut con, &["COMMAND", "DOCS", &format!("client|{name}")]);
        assert!(format!("{docs:?}").contains("since"), "{docs:?}");
    }
    // The modes change nothing else about the connection.
    assert_eq!(
        must_cmd(&mut con, &["PING"]),
        Value::SimpleString("PONG".into())
    );
    let help = format!("{:?}", must_cmd(&mut con, &["CLIENT", "HELP"]));
    assert!(
        help.contains("NO-EVICT (ON|OFF)") && help.contains("NO-TOUCH (ON|OFF)"),
        "{help}"
    );
}

/// COMMAND and its subcommands describe the same table that dispatch uses.
#[test]
fn command_introspection() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    let Value::Int(count) = must_cmd(&mut con, &["COMMAND", "COUNT"]) else {
        panic!("count")
    };
    assert_eq!(count as usize, cellkv_node::command::COMMANDS.len());
    let Value::Array(all) = must_cmd(&mut con, &["COMMAND"]) else {
        panic!("COMMAND")
    };
    assert_eq!(all.len() as i64, count);
    let Value::Array(info) = must_cmd(&mut con, &["COMMAND", "INFO", "get", "nosuch"]) else {
        panic!("info")
    };
    let Value::Array(get) = &info[0] else {
        panic!("get info {:?}", info[0])
    };
    assert_eq!(get[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(
        (&get[3], &get[4], &get[5]),
        (&Value::Int(1), &Value::Int(1), &Value::Int(1))
    );
    assert_eq!(info[1], Value::Nil);
    let keys = must_cmd(
        &mut con,
        &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
    );
    assert_eq!(
        keys,
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"b".to_vec())
        ])
    );
    assert_eq!(
        must_fail(&mut con, &["COMMAND", "GETKEYS", "PING"]),
        "ERR The command has no key arguments"
    );
    let docs = must_cmd(&mut con, &["COMMAND", "DOCS", "set"]);
    assert!(format!("{docs:?}").contains("summary"), "{docs:?}");
}

/// Unknown commands and wrong arity get Redis's exact errors and the connection stays.
#[test]
fn unknown_command_and_arity_errors() {
    let (node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    let reply = must_exchange(&mut tcp, b"*2\r\n$6\r\nFOOBAR\r\n$3\r\nabc\r\n", 10);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR unknown command 'FOOBAR', with args beginning with: 'abc' \r\n"
    );
    let reply = must_exchange(&mut tcp, b"*1\r\n$3\r\nGET\r\n", 10);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    let reply = must_exchange(&mut tcp, b"PING\r\n", 7);
    assert_eq!(reply, b"+PONG\r\n");
}

/// INFO shows the Raft role and indexes; CONFIG GET/SET follow Redis's replies.
#[test]
fn info_and_config() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    must_cmd(&mut con, &["SET", "a", "1"]);
    assert_eq!(info_field(&mut con, "role").as_deref(), Some("master"));
    assert_eq!(info_field(&mut con, "raft_leader_id").as_deref(), Some("1"));
    let applied: u64 = info_field(&mut con, "raft_applied_index")
        .and_then(|v| v.parse().ok())
        .expect("applied");
    assert!(applied >= 2, "applied {applied}");
    assert_eq!(
        info_field(&mut con, "db0").as_deref(),
        Some("keys=1,expires=0,avg_ttl=0")
    );
    let port = must_cmd(&mut con, &["CONFIG", "GET", "port"]);
    assert_eq!(
        port,
        Value::Array(vec![
            Value::BulkString(b"port".to_vec()),
            Value::BulkString(node.port.to_string().into_bytes())
        ])
    );
    let Value::Array(both) = must_cmd(&mut con, &["CONFIG", "GET", "save", "appendonly"]) else {
        panic!("config get")
    };
    assert_eq!(both.len(), 4);
    // A node started without --peers is a one-member cell of the default name.
    let cluster = must_cmd(&mut con, &["CONFIG", "GET", "cluster-*"]);
    let Value::Array(cluster) = cluster else {
        panic!("config get cluster-*: {cluster:?}")
    };
    let cluster: Vec<String> = cluster
        .into_iter()
        .map(|v| match v {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    let pairs: std::collections::BTreeMap<_, _> = cluster
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    assert_eq!(
        pairs.get("cluster-name").map(String::as_str),
        Some("cellkv")
    );
    assert_eq!(
        pairs.get("cluster-wait-timeout").map(String::as_str),
        Some("5000ms")
    );
    assert_eq!(
        must_cmd(&mut con, &["CONFIG", "GET", "peers"]),
        Value::Array(vec![
            Value::BulkString(b"peers".to_vec()),
            Value::BulkString(Vec::new())
        ])
    );
    // io-threads 0 (the default) gives a node without peers one worker, and CONFIG GET
    // reports the workers in use.
    assert_eq!(
        must_cmd(&mut con, &["CONFIG", "GET", "io-threads"]),
        Value::Array(vec![
            Value::BulkString(b"io-threads".to_vec()),
            Value::BulkString(b"1".to_vec())
        ])
    );
    assert_eq!(
        must_cmd(&mut con, &["CONFIG", "SET", "maxclients", "50"]),
        Value::Okay
    );
    let maxclients = must_cmd(&mut con, &["CONFIG", "GET", "maxclients"]);
    assert!(format!("{maxclients:?}").contains("50"), "{maxclients:?}");
    assert_eq!(
        must_fail(&mut con, &["CONFIG", "SET", "port", "1"]),
        "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
    );
    assert_eq!(
        must_fail(&mut con, &["CONFIG", "SET", "nosuch", "1"]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        must_fail(&mut con, &["AUTH", "pw"]),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
}

/// QUIT answers OK and closes; SHUTDOWN stops the process without a reply.
#[test]
fn quit_and_shutdown() {
    let (mut node, _dir) = must_start(&[]);
    let mut tcp = node.must_tcp();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let reply = must_exchange(&mut tcp, b"QUIT\r\nPING\r\n", 5);
    assert_eq!(reply, b"+OK\r\n");
    assert!(read_to_close(&mut tcp).is_empty());
    let mut tcp = node.must_tcp();
    let reply = must_exchange(&mut tcp, b"SHUTDOWN\r\n", 1);
    assert!(
        reply.is_empty(),
        "SHUTDOWN replied {}",
        String::from_utf8_lossy(&reply)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !node.has_exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SHUTDOWN"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `maxclients` refuses connections past the limit with Redis's error, and CONFIG SET
/// changes the limit for connections that come later.
#[test]
fn maxclients_refuses_extra_connections() {
    let (node, _dir) = must_start(&["--maxclients", "2"]);
    let mut first = node.must_connect();
    let _second = node.must_connect();
    let mut third = node.must_tcp();
    let reply = must_exchange(&mut third, b"PING\r\n", 10);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR max number of clients reached\r\n"
    );
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut first)
        .expect("info");
    assert!(info.contains("rejected_connections:1"), "{info}");
    drop(third);
    assert_eq!(
        must_cmd(&mut first, &["CONFIG", "SET", "maxclients", "3"]),
        Value::Okay
    );
    let mut fourth = node.must_connect();
    assert_eq!(
        must_cmd(&mut fourth, &["PING"]),
        Value::SimpleString("PONG".into())
    );
}

/// CONFIG SET proto-max-bulk-len applies to requests read afterwards; RESETSTAT clears
/// the counters.
#[test]
fn config_set_changes_limits_at_run_time() {
    let (node, _dir) = must_start(&[]);
    let mut con = node.must_connect();
    assert_eq!(
        must_cmd(&mut con, &["CONFIG", "SET", "proto-max-bulk-len", "4096"]),
        Value::Okay
    );
    let mut tcp = node.must_tcp();
    let mut reply = must_exchange(&mut tcp, b"*2\r\n$3\r\nGET\r\n$5000\r\n", 10);
    reply.extend(read_to_close(&mut tcp));
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(info_field(&mut con, "total_commands_processed").is_some_and(|v| v != "0"));
    assert_eq!(must_cmd(&mut con, &["CONFIG", "RESETSTAT"]), Value::Okay);
    let processed: u64 = info_field(&mut con, "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .expect("counter");
    // Only the INFO itself (and at most the RESETSTAT's batch) counted since the reset.
    assert!(processed <= 2, "total_commands_processed {processed}");
}

/// The arguments of every entry in `SLOWLOG GET -1`, newest first.
fn slow_log_commands(con: &mut redis::Connection) -> Vec<Vec<String>> {
    let Value::Array(entries) = must_cmd(con, &["SLOWLOG", "GET", "-1"]) else {
        panic!("SLOWLOG GET is not an array");
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            // id, time, duration, arguments, client address, client name
            Value::Array(fields) => match fields.get(3) {
                Some(Value::Array(args)) => Some(
                    args.iter()
                        .map(|arg| match arg {
                            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                            other => format!("{other:?}"),
                        })
                        .collect(),
                ),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// With `slowlog-log-slower-than 0`, every command of a pipelined batch that ran is in
/// `SLOWLOG GET`, reads and writes alike, and one refused for its arity is not (as in
/// Redis, where it never reaches the command).
#[test]
fn a_pipelined_batch_is_in_the_slow_log_without_its_refused_command() {
    let (node, _dir) = must_start(&["--slowlog-log-slower-than", "0"]);
    let mut raw = node.must_tcp();
    let expected: &[u8] =
        b"$-1\r\n+OK\r\n$1\r\n1\r\n-ERR wrong number of arguments for 'get' command\r\n";
    let reply = must_exchange(
        &mut raw,
        b"GET slow:a\r\nSET slow:b 1\r\nGET slow:b\r\nGET\r\n",
        expected.len(),
    );
    assert_eq!(reply, expected, "{}", String::from_utf8_lossy(&reply));
    let logged = slow_log_commands(&mut node.must_connect());
    for command in [
        &["GET", "slow:a"][..],
        &["SET", "slow:b", "1"],
        &["GET", "slow:b"],
    ] {
        assert!(
            logged.iter().any(|args| args == command),
            "{command:?} missing from {logged:?}"
        );
    }
    assert!(
        !logged.iter().any(|args| args == &["GET"]),
        "the refused GET was logged: {logged:?}"
    );
}

/// A blocking pop's wait is its own, untimed: the command after it in the same pipelined
/// batch is not charged with it.
#[test]
fn a_blocking_pop_in_a_batch_does_not_slow_the_next_command() {
    let (node, _dir) = must_start(&["--slowlog-log-slower-than", "200000"]);
    let mut raw = node.must_tcp();
    let expected: &[u8] = b"+PONG\r\n*-1\r\n+PONG\r\n";
    let reply = must_exchange(
        &mut raw,
        b"PING\r\nBLPOP slow:empty 0.5\r\nPING\r\n",
        expected.len(),
    );
    assert_eq!(reply, expected, "{}", String::from_utf8_lossy(&reply));
    let logged = slow_log_commands(&mut node.must_connect());
    assert!(logged.is_empty(), "logged over 200 ms: {logged:?}");
}
