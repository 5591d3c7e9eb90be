//! Commands that act on the connection or the server rather than the keyspace:
//! connection handling (`PING`, `HELLO`, `SELECT`, `CLIENT ...`), `INFO`, `CONFIG`, `TIME`,
//! `SHUTDOWN`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::pubsub::OutputLimits;
use super::{clock, Session};
use crate::command::errors as err;
use crate::command::parse_i64;
use crate::keyspace::memory::{human_bytes, MemorySettings};
use crate::keyspace::{encoding, glob, help_lines, Op, DATABASES};
use crate::resp::Frame;

/// The Redis version cellkv answers as: the reference its replies follow.
pub const REDIS_VERSION: &str = "7.2.4";

/// PING [message]
pub fn ping(_session: &mut Session, args: &[Bytes]) -> Frame {
    match args.get(1) {
        None => Frame::Simple("PONG".into()),
        Some(msg) if args.len() == 2 => Frame::Bulk(msg.clone()),
        Some(_) => Frame::error(err::wrong_arity("ping")),
    }
}

/// ECHO message
pub fn echo(_session: &mut Session, args: &[Bytes]) -> Frame {
    Frame::Bulk(args[1].clone())
}

/// AUTH [username] password
pub fn auth(session: &mut Session, args: &[Bytes]) -> Frame {
    super::security::auth(session, args)
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(session: &mut Session, args: &[Bytes]) -> Frame {
    let mut resp3 = session.resp3;
    if let Some(version) = args.get(1) {
        match parse_i64(version) {
            None => return Frame::error("ERR Protocol version is not an integer or out of range"),
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => return Frame::error(err::NOPROTO),
        }
    }
    let mut name = None;
    let mut credentials = None;
    let mut i = 2;
    while i < args.len() {
        let word = &args[i];
        if word.eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            credentials = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if word.eq_ignore_ascii_case(b"setname") && i + 1 < args.len() {
            if let Err(e) = valid_name(&args[i + 1], "Client names") {
                return e;
            }
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Frame::error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(word)
            ));
        }
    }
    if let Some((user, pass)) = credentials {
        if let Err(e) = super::security::hello_auth(session, &user, &pass) {
            return e;
        }
    }
    if !session.acl.authenticated {
        return super::security::hello_noauth();
    }
    if let Some(name) = name {
        *session.client.name.lock() = (!name.is_empty()).then_some(name);
    }
    session.set_resp3(resp3);
    let role = if session.node.is_leader() {
        "master"
    } else {
        "replica"
    };
    Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("redis")),
        (Frame::bulk("version"), Frame::bulk(REDIS_VERSION)),
        (
            Frame::bulk("proto"),
            Frame::Integer(if resp3 { 3 } else { 2 }),
        ),
        (Frame::bulk("id"), Frame::Integer(session.client.id as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk(role)),
        (Frame::bulk("modules"), Frame::Array(Vec::new())),
    ])
}

/// MONITOR: from now on this connection receives every command the node runs.
pub fn monitor(session: &mut Session, _args: &[Bytes]) -> Frame {
    if session.monitor.is_none() {
        session.monitor = Some(session.node.monitors.subscribe(session.client.id));
    }
    Frame::ok()
}

/// SELECT index
pub fn select(session: &mut Session, args: &[Bytes]) -> Frame {
    match parse_i64(&args[1]) {
        None => Frame::error(err::NOT_INTEGER),
        Some(db) if !(0..DATABASES as i64).contains(&db) => {
            Frame::error(err::DB_INDEX_OUT_OF_RANGE)
        }
        Some(db) => {
            session.select(db as u32);
            Frame::ok()
        }
    }
}

/// QUIT
pub fn quit(session: &mut Session, _args: &[Bytes]) -> Frame {
    session.close_after_reply = true;
    Frame::ok()
}

/// RESET
pub fn reset(session: &mut Session, _args: &[Bytes]) -> Frame {
    session.select(0);
    session.set_resp3(false);
    *session.client.name.lock() = None;
    session.multi = None;
    session.watches.clear();
    session.unsubscribe_all();
    super::security::reset(session);
    Frame::Simple("RESET".into())
}

/// Client names and library fields may not contain spaces or control characters.
fn valid_name(name: &[u8], what: &str) -> Result<(), Frame> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Frame::error(format!(
            "ERR {what} cannot contain spaces, newlines or special characters."
        )));
    }
    Ok(())
}

/// CLIENT ID
pub fn client_id(session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::Integer(session.client.id as i64)
}

/// CLIENT SETNAME name
pub fn client_setname(session: &mut Session, args: &[Bytes]) -> Frame {
    if let Err(e) = valid_name(&args[2], "Client names") {
        return e;
    }
    *session.client.name.lock() = (!args[2].is_empty()).then(|| args[2].clone());
    Frame::ok()
}

/// CLIENT GETNAME
pub fn client_getname(session: &mut Session, _args: &[Bytes]) -> Frame {
    session
        .client
        .name
        .lock()
        .clone()
        .map(Frame::Bulk)
        .unwrap_or(Frame::Null)
}

/// CLIENT INFO
pub fn client_info(session: &mut Session, _args: &[Bytes]) -> Frame {
    *session.client.last_cmd.lock() = "client|info".into();
    let line = session.client.describe(clock::now_ms());
    Frame::Verbatim("txt".into(), Bytes::from(format!("{line}\n")))
}

/// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]
pub fn client_list(session: &mut Session, args: &[Bytes]) -> Frame {
    *session.client.last_cmd.lock() = "client|list".into();
    let mut ids: Option<Vec<u64>> = None;
    // None: every client; Some(true): subscribers only; Some(false): the others.
    let mut subscribers: Option<bool> = None;
    let mut only_other_types = false;
    let mut i = 2;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"type") && i + 1 < args.len() {
            let kind = args[i + 1].to_ascii_lowercase();
            match kind.as_slice() {
                b"normal" => subscribers = Some(false),
                b"pubsub" => subscribers = Some(true),
                b"master" | b"replica" | b"slave" => only_other_types = true,
                _ => {
                    return Frame::error(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(&args[i + 1])
                    ))
                }
            }
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"id") && i + 1 < args.len() {
            let mut wanted = Vec::new();
            for raw in &args[i + 1..] {
                match parse_i64(raw) {
                    Some(id) if id > 0 => wanted.push(id as u64),
                    _ => return Frame::error("ERR Invalid client ID"),
                }
            }
            ids = Some(wanted);
            i = args.len();
        } else {
            return Frame::error(err::SYNTAX);
        }
    }
    let now = clock::now_ms();
    let mut text = String::new();
    if !only_other_types {
        for client in session.node.clients() {
            if ids.as_ref().is_some_and(|ids| !ids.contains(&client.id)) {
                continue;
            }
            if subscribers.is_some_and(|wanted| wanted != client.is_subscriber()) {
                continue;
            }
            text.push_str(&client.describe(now));
            text.push('\n');
        }
    }
    Frame::Verbatim("txt".into(), Bytes::from(text))
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value
pub fn client_setinfo(session: &mut Session, args: &[Bytes]) -> Frame {
    let value = &args[3];
    let attr = args[2].to_ascii_lowercase();
    let field = match attr.as_slice() {
        b"lib-name" => &session.client.lib_name,
        b"lib-ver" => &session.client.lib_ver,
        _ => {
            return Frame::error(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&args[2])
            ))
        }
    };
    let label = if attr.as_slice() == b"lib-name" {
        "lib-name"
    } else {
        "lib-ver"
    };
    if let Err(e) = valid_name(value, label) {
        return e;
    }
    *field.lock() = (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned());
    Frame::ok()
}

/// `ON` or `OFF`, in any case, as the CLIENT modes take it; anything else is Redis's syntax
/// error.
fn on_off(arg: &[u8]) -> Result<bool, Frame> {
    if arg.eq_ignore_ascii_case(b"on") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"off") {
        Ok(false)
    } else {
        Err(Frame::error(err::SYNTAX))
    }
}

/// CLIENT NO-EVICT ON|OFF. cellkv never evicts a client to free memory (there is no
/// `maxmemory-clients`), so every connection already has the protection `ON` asks for and
/// `OFF` exposes it to nothing: the mode is checked and acknowledged.
pub fn client_no_evict(_session: &mut Session, args: &[Bytes]) -> Frame {
    match on_off(&args[2]) {
        Ok(_) => Frame::ok(),
        Err(e) => e,
    }
}

/// CLIENT NO-TOUCH ON|OFF: while on, this connection's reads leave keys' access time and
/// frequency alone (`TOUCH` still counts), so a monitoring scan does not shield cold keys
/// from eviction.
pub fn client_no_touch(session: &mut Session, args: &[Bytes]) -> Frame {
    match on_off(&args[2]) {
        Ok(on) => {
            session.no_touch = on;
            Frame::ok()
        }
        Err(e) => e,
    }
}

/// CLIENT HELP
pub fn client_help(_session: &mut Session, _args: &[Bytes]) -> Frame {
    help_lines(
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "    * ID <client-id> [<client-id> ...]",
            "      Return clients of specified IDs only.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "NO-TOUCH (ON|OFF)",
            "    Will not touch LRU/LFU stats when this mode is on.",
        ],
    )
}

/// TIME
pub fn time(_session: &mut Session, _args: &[Bytes]) -> Frame {
    let us = clock::now_us();
    Frame::Array(vec![
        Frame::bulk((us / 1_000_000).to_string()),
        Frame::bulk((us % 1_000_000).to_string()),
    ])
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: the log is already durable, so every
/// form stops at once; the connection closes without a reply, as in Redis.
pub fn shutdown(session: &mut Session, args: &[Bytes]) -> Frame {
    for arg in &args[1..] {
        match arg.to_ascii_lowercase().as_slice() {
            b"nosave" | b"save" | b"now" | b"force" => {}
            b"abort" => return Frame::error("ERR No shutdown in progress."),
            _ => return Frame::error(err::SYNTAX),
        }
    }
    tracing::info!(client = session.client.id, "SHUTDOWN requested");
    session.node.request_shutdown();
    session.skip_reply = true;
    session.close_after_reply = true;
    Frame::ok()
}

/// The options `CONFIG GET` knows, with their current values.
fn config_values(session: &Session) -> Vec<(&'static str, String)> {
    let node = &session.node;
    let config = &node.config;
    let runtime = node.runtime.read().clone();
    let mut values = vec![
        (
            "port",
            if config.plain_port_enabled() {
                node.resp_addr.port()
            } else {
                0
            }
            .to_string(),
        ),
        ("bind", config.bind.clone()),
        ("dir", config.dir.display().to_string()),
        ("databases", DATABASES.to_string()),
        ("node-id", config.node_id.to_string()),
        ("raft-port", config.raft_port.to_string()),
        (
            "peers",
            config
                .peers
                .iter()
                .map(|peer| format!("{}@{}", peer.id, peer.addr))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("cluster-name", config.cluster_name.clone()),
        (
            "cluster-wait-timeout",
            format!("{}ms", config.cluster_wait_timeout.as_millis()),
        ),
        ("read-consistency", config.read_consistency.name().into()),
        ("snapshot-entries", config.snapshot_entries.to_string()),
        (
            "snapshot-interval",
            format!("{}s", config.snapshot_interval.as_secs()),
        ),
        ("loglevel", config.log_level.clone()),
        ("proto-max-bulk-len", runtime.proto_max_bulk_len.to_string()),
        ("maxclients", runtime.maxclients.to_string()),
        (
            "slowlog-log-slower-than",
            runtime.slowlog_log_slower_than.to_string(),
        ),
        ("slowlog-max-len", runtime.slowlog_max_len.to_string()),
        ("secret-prefixes", runtime.secret_prefixes.join(",")),
        ("io-threads", config.worker_threads().to_string()),
        // Every write is in the Raft log, fsynced before it is acknowledged.
        ("appendonly", "yes".into()),
        ("appendfsync", "always".into()),
        ("save", String::new()),
        ("timeout", runtime.timeout.to_string()),
        (
            "client-query-buffer-limit",
            runtime.client_query_buffer_limit.to_string(),
        ),
        (
            "protected-mode",
            if runtime.protected_mode { "yes" } else { "no" }.into(),
        ),
        (
            "tls-port",
            node.tls_addr.map_or(0, |a| a.port()).to_string(),
        ),
        ("tls-cert-file", path_value(config.tls.cert_file.as_deref())),
        ("tls-key-file", path_value(config.tls.key_file.as_deref())),
        (
            "tls-ca-cert-file",
            path_value(config.tls.ca_cert_file.as_deref()),
        ),
        ("tls-auth-clients", config.tls.auth_clients.name().into()),
        (
            "tls-replication",
            if config.tls.replication { "yes" } else { "no" }.into(),
        ),
        ("requirepass", super::security::requirepass_value(node)),
        (
            "aclfile",
            config
                .aclfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        (
            "client-output-buffer-limit",
            OutputLimits {
                normal: runtime.normal_output_limit,
                pubsub: session.node.pubsub.limit(),
            }
            .config_value(),
        ),
    ];
    values.extend(runtime.encoding.config_values());
    // Replicated: the cell's values, whichever node answers.
    values.extend(node.keyspace.read().memory().config_values());
    values
}

/// A file option's value for `CONFIG GET`: its path, or empty.
fn path_value(path: Option<&std::path::Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

/// CONFIG GET parameter [parameter ...]
pub fn config_get(session: &mut Session, args: &[Bytes]) -> Frame {
    let values = config_values(session);
    let mut out = Vec::new();
    for (name, value) in &values {
        if args[2..]
            .iter()
            .any(|p| glob::matches(p, name.as_bytes(), true))
        {
            out.push((Frame::bulk(name), Frame::bulk(value)));
        }
    }
    Frame::Map(out)
}

/// CONFIG SET parameter value [parameter value ...] of this node's options, at once; the
/// options that belong to the cell (`maxmemory` and friends) are validated and returned as
/// the entry the caller must propose. Nothing changes unless every pair is valid.
pub fn config_set(session: &mut Session, args: &[Bytes]) -> Result<Option<Op>, Frame> {
    if !args.len().is_multiple_of(2) {
        return Err(Frame::error(err::wrong_arity("config|set")));
    }
    let known: Vec<&str> = config_values(session).into_iter().map(|(n, _)| n).collect();
    let mut next = session.node.runtime.read().clone();
    let mut pubsub_limit = None;
    let mut memory = session.node.keyspace.read().memory().clone();
    let mut replicated: Vec<(Bytes, Bytes)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for pair in args[2..].chunks_exact(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let fail = |reason: &str| {
            Frame::error(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
            ))
        };
        if seen.contains(&name) && known.contains(&name.as_str()) {
            return Err(fail("duplicate parameter"));
        }
        seen.push(name.clone());
        let number = parse_i64(&pair[1]).filter(|n| *n > 0).map(|n| n as usize);
        if let Some(result) = next.encoding.config_set(&name, &pair[1]) {
            match result {
                Ok(()) => continue,
                Err(reason) => return Err(fail(&reason)),
            }
        }
        if MemorySettings::is_option(&name) {
            match memory.set(name.as_bytes(), &pair[1]) {
                Ok(()) => replicated.push((Bytes::from(name.clone()), pair[1].clone())),
                Err(reason) => return Err(fail(&reason)),
            }
            continue;
        }
        match name.as_str() {
            "proto-max-bulk-len" => match number {
                Some(n) if n >= 1024 => next.proto_max_bulk_len = n,
                _ => return Err(fail("argument must be a memory value of at least 1024")),
            },
            "maxclients" => match number {
                Some(n) => next.maxclients = n,
                None => return Err(fail("argument couldn't be parsed into an integer")),
            },
            "slowlog-log-slower-than" => match parse_i64(&pair[1]) {
                Some(n) => next.slowlog_log_slower_than = n,
                None => return Err(fail("argument couldn't be parsed into an integer")),
            },
            "timeout" => match parse_i64(&pair[1]) {
                Some(n) if n >= 0 => next.timeout = n as u64,
                _ => return Err(fail("argument couldn't be parsed into an integer")),
            },
            "client-query-buffer-limit" => {
                match super::pubsub::parse_memory(&String::from_utf8_lossy(&pair[1])) {
                    Some(n) if n >= 1024 * 1024 => next.client_query_buffer_limit = n,
                    _ => return Err(fail("argument must be a memory value of at least 1mb")),
                }
            }
            "protected-mode" => match pair[1].to_ascii_lowercase().as_slice() {
                b"yes" => next.protected_mode = true,
                b"no" => next.protected_mode = false,
                _ => return Err(fail("argument must be 'yes' or 'no'")),
            },
            "slowlog-max-len" => match parse_i64(&pair[1]) {
                Some(n) if n >= 0 => next.slowlog_max_len = n as usize,
                _ => return Err(fail("argument couldn't be parsed into an integer")),
            },
            "secret-prefixes" => {
                let text = String::from_utf8_lossy(&pair[1]);
                next.secret_prefixes = std::sync::Arc::new(crate::config::split_prefixes(&text));
            }
            "client-output-buffer-limit" => {
                let current = OutputLimits {
                    normal: next.normal_output_limit,
                    pubsub: session.node.pubsub.limit(),
                };
                match OutputLimits::parse_config(&pair[1], current) {
                    Some(limits) => {
                        next.normal_output_limit = limits.normal;
                        pubsub_limit = Some(limits.pubsub);
                    }
                    None => {
                        return Err(fail(
                            "Wrong number of arguments in buffer limit configuration.",
                        ))
                    }
                }
            }
            other if known.contains(&other) => return Err(fail("can't set immutable config")),
            _ => {
                return Err(Frame::error(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                )))
            }
        }
    }
    // Published under the settings' lock, so OBJECT ENCODING and CONFIG GET agree.
    let mut runtime = session.node.runtime.write();
    encoding::publish(&next.encoding);
    *runtime = next;
    drop(runtime);
    if let Some(limit) = pubsub_limit {
        session.node.pubsub.set_limit(limit);
    }
    Ok((!replicated.is_empty()).then_some(Op::ConfigSet { pairs: replicated }))
}

/// CONFIG RESETSTAT
pub fn config_resetstat(session: &mut Session, _args: &[Bytes]) -> Frame {
    let stats = &session.node.stats;
    for counter in [
        &stats.connections_received,
        &stats.rejected_connections,
        &stats.commands_processed,
        &stats.expired_keys,
        &stats.protocol_errors,
        &stats.acl_denied_auth,
        &stats.acl_denied_cmd,
        &stats.acl_denied_key,
        &stats.acl_denied_channel,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    Frame::ok()
}

/// CONFIG HELP
pub fn config_help(_session: &mut Session, _args: &[Bytes]) -> Frame {
    help_lines(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
        ],
    )
}

/// The memory figures `INFO memory` and `MEMORY STATS` report.
struct MemoryFigures {
    /// The data set's estimated bytes: what `maxmemory` limits (the same on every replica).
    used: u64,
    /// Highest `used` this process has reported.
    peak: u64,
    rss: u64,
    keys: u64,
    evicted_keys: u64,
    settings: MemorySettings,
}

impl MemoryFigures {
    fn now(node: &super::Node) -> MemoryFigures {
        let (used, keys, evicted_keys, settings) = {
            let keyspace = node.keyspace.read();
            (
                keyspace.used_memory(),
                keyspace.total_keys() as u64,
                keyspace.evicted_keys(),
                keyspace.memory().clone(),
            )
        };
        let peak = node
            .stats
            .used_memory_peak
            .fetch_max(used, Ordering::Relaxed)
            .max(used);
        MemoryFigures {
            used,
            peak,
            rss: rss_bytes(),
            keys,
            evicted_keys,
            settings,
        }
    }

    fn fragmentation(&self) -> f64 {
        if self.used == 0 {
            0.0
        } else {
            self.rss as f64 / self.used as f64
        }
    }

    fn info_section(&self) -> String {
        format!(
            "used_memory:{used}\r\nused_memory_human:{used_h}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{rss_h}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{peak_h}\r\nused_memory_dataset:{used}\r\nmaxmemory:{max}\r\nmaxmemory_human:{max_h}\r\nmaxmemory_policy:{policy}\r\nmaxmemory_eviction_rules:{rules}\r\nmem_fragmentation_ratio:{frag:.2}\r\nmem_allocator:mimalloc\r\n",
            used = self.used,
            used_h = human_bytes(self.used),
            rss = self.rss,
            rss_h = human_bytes(self.rss),
            peak = self.peak,
            peak_h = human_bytes(self.peak),
            max = self.settings.maxmemory,
            max_h = human_bytes(self.settings.maxmemory),
            policy = self.settings.policy.name(),
            rules = self.settings.rules.len(),
            frag = self.fragmentation(),
        )
    }
}

/// MEMORY STATS: Redis's field names, from the data set's estimate and the process's RSS.
pub fn memory_stats(session: &mut Session, _args: &[Bytes]) -> Frame {
    let figures = MemoryFigures::now(&session.node);
    let int = |n: u64| Frame::Integer(n as i64);
    let per_key = figures.used.checked_div(figures.keys).unwrap_or(0);
    let peak_percentage = if figures.peak == 0 {
        0.0
    } else {
        figures.used as f64 * 100.0 / figures.peak as f64
    };
    let overhead = figures.rss.saturating_sub(figures.used);
    let fields = [
        ("peak.allocated", int(figures.peak)),
        ("total.allocated", int(figures.rss)),
        ("startup.allocated", int(0)),
        ("replication.backlog", int(0)),
        ("clients.slaves", int(0)),
        ("clients.normal", int(0)),
        ("overhead.total", int(overhead)),
        ("keys.count", int(figures.keys)),
        ("keys.bytes-per-key", int(per_key)),
        ("dataset.bytes", int(figures.used)),
        (
            "dataset.percentage",
            Frame::Double(if figures.rss == 0 {
                0.0
            } else {
                figures.used as f64 * 100.0 / figures.rss as f64
            }),
        ),
        ("peak.percentage", Frame::Double(peak_percentage)),
        ("fragmentation", Frame::Double(figures.fragmentation())),
    ];
    Frame::Map(
        fields
            .into_iter()
            .map(|(name, value)| (Frame::bulk(name), value))
            .collect(),
    )
}

/// MEMORY DOCTOR: the one report cellkv can make: how close the data set is to its limit.
pub fn memory_doctor(session: &mut Session, _args: &[Bytes]) -> Frame {
    let figures = MemoryFigures::now(&session.node);
    let text = if figures.settings.maxmemory > 0 && figures.used > figures.settings.maxmemory {
        format!(
            "The data set ({}) is over maxmemory ({}): growing commands get -OOM for keys that nothing can evict.",
            human_bytes(figures.used),
            human_bytes(figures.settings.maxmemory)
        )
    } else {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.".to_string()
    };
    Frame::Verbatim("txt".into(), Bytes::from(text))
}

/// MEMORY MALLOC-STATS: the system allocator keeps no report to show.
pub fn memory_malloc_stats(_session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::Verbatim(
        "txt".into(),
        Bytes::from("Stats not supported for the current allocator"),
    )
}

/// MEMORY PURGE: nothing to ask of the system allocator.
pub fn memory_purge(_session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::ok()
}

/// MEMORY HELP
pub fn memory_help(_session: &mut Session, _args: &[Bytes]) -> Frame {
    help_lines(
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    )
}

/// Resident set size from /proc, 0 where unavailable.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// INFO [section ...]
pub fn info(session: &mut Session, args: &[Bytes]) -> Frame {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let show = |name: &str| all || wanted.iter().any(|w| w == name);
    let node = &session.node;
    let mut text = String::new();
    let mut section = |title: &str, body: String| {
        if show(&title.to_ascii_lowercase()) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let _ = write!(text, "# {title}\r\n{body}");
        }
    };
    let uptime = node.uptime_ms() / 1000;
    section(
        "Server",
        format!(
            "redis_version:{REDIS_VERSION}\r\ncellkv_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\nrun_id:cellkv-node-{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nexecutable:cellkv\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            node.config.node_id,
            node.resp_addr.port(),
            uptime / 86_400,
        ),
    );
    section(
        "Clients",
        format!(
            "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n",
            node.connected_clients(),
            node.runtime.read().maxclients,
            node.blocked.blocked_count()
        ),
    );
    let memory = MemoryFigures::now(node);
    section("Memory", memory.info_section());
    let snapshots = node.raft.snapshot_stats();
    let metrics = node.raft.metrics();
    section(
        "Persistence",
        format!(
            "loading:0\r\naof_enabled:1\r\nraft_snapshots_built:{}\r\nraft_snapshots_installed:{}\r\nraft_last_snapshot_index:{}\r\nraft_last_snapshot_bytes:{}\r\nraft_purged_index:{}\r\n",
            snapshots.built(),
            snapshots.installed(),
            snapshots.last_index().map_or(-1, |i| i as i64),
            snapshots.last_size(),
            metrics.purged.as_ref().map_or(-1, |l| l.index as i64),
        ),
    );
    let stats = &node.stats;
    section(
        "Stats",
        format!(
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\ntotal_error_replies:0\r\nprotocol_errors:{}\r\nacl_access_denied_auth:{}\r\nacl_access_denied_cmd:{}\r\nacl_access_denied_key:{}\r\nacl_access_denied_channel:{}\r\n",
            stats.connections_received.load(Ordering::Relaxed),
            stats.commands_processed.load(Ordering::Relaxed),
            stats.rejected_connections.load(Ordering::Relaxed),
            stats.expired_keys.load(Ordering::Relaxed),
            memory.evicted_keys,
            stats.protocol_errors.load(Ordering::Relaxed),
            stats.acl_denied_auth.load(Ordering::Relaxed),
            stats.acl_denied_cmd.load(Ordering::Relaxed),
            stats.acl_denied_key.load(Ordering::Relaxed),
            stats.acl_denied_channel.load(Ordering::Relaxed),
        ),
    );
    section(
        "Replication",
        replication_info(node, &metrics, applied_index(node, &metrics)),
    );
    let keyspace_body = {
        let keyspace = node.keyspace.read();
        let mut body = String::new();
        for db in 0..DATABASES {
            if let Some(d) = keyspace.db(db).filter(|d| !d.is_empty()) {
                let _ = write!(
                    body,
                    "db{db}:keys={},expires={},avg_ttl=0\r\n",
                    d.len(),
                    d.volatile_len()
                );
            }
        }
        body
    };
    section("Keyspace", keyspace_body);
    Frame::Verbatim("txt".into(), Bytes::from(text))
}

/// Highest index this node has applied: Raft's metrics trail apply a little, and the keyspace
/// knows exactly what it applied.
fn applied_index(node: &super::Node, metrics: &crate::raft::RaftMetrics) -> u64 {
    metrics
        .last_applied
        .as_ref()
        .map_or(0, |l| l.index)
        .max(node.keyspace.read().applied_index())
}

/// The host part of a `HOST:PORT` Raft address (brackets of an IPv6 literal removed).
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// A replica as the leader reports it (`INFO replication` slaveN lines, `ROLE`).
struct ReplicaView {
    host: String,
    port: u16,
    /// Highest log index known to be replicated to it.
    offset: u64,
    /// Answered a status probe recently.
    online: bool,
    /// Seconds since it last answered.
    lag: u64,
}

/// The leader as a follower reports it.
struct MasterView {
    host: String,
    port: u16,
    link_up: bool,
    /// Seconds since the leader last answered; -1 = never.
    last_io: i64,
}

/// This node's replication picture: a leader sees its followers, a follower its leader.
enum RoleView {
    Master(Vec<ReplicaView>),
    Slave(Option<MasterView>),
}

fn role_view(node: &super::Node, metrics: &crate::raft::RaftMetrics) -> RoleView {
    let me = node.config.node_id;
    let membership = metrics.membership_config.membership();
    let statuses = node.peers.statuses();
    let now = clock::now_ms();
    if node.is_leader() {
        let matched = metrics.replication.clone().unwrap_or_default();
        let replicas = membership
            .nodes()
            .filter(|(id, _)| **id != me)
            .map(|(id, member)| {
                let status = statuses.get(id).cloned().unwrap_or_default();
                ReplicaView {
                    host: host_of(&member.addr),
                    port: status.resp_port,
                    offset: matched
                        .get(id)
                        .and_then(|m| m.as_ref())
                        .map_or(0, |l| l.index),
                    online: status.is_up(now),
                    lag: now.saturating_sub(status.last_ok_ms) / 1000,
                }
            })
            .collect();
        return RoleView::Master(replicas);
    }
    let master = metrics.current_leader.filter(|l| *l != me).map(|leader| {
        let status = statuses.get(&leader).cloned().unwrap_or_default();
        MasterView {
            host: membership
                .get_node(&leader)
                .map(|n| host_of(&n.addr))
                .unwrap_or_default(),
            port: status.resp_port,
            link_up: status.is_up(now) && status.state == "Leader",
            last_io: if status.last_ok_ms == 0 {
                -1
            } else {
                (now.saturating_sub(status.last_ok_ms) / 1000) as i64
            },
        }
    });
    RoleView::Slave(master)
}

/// The `# Replication` section: Redis's fields, as health checks and clients read them,
/// then cellkv's `raft_*` fields.
fn replication_info(
    node: &super::Node,
    metrics: &crate::raft::RaftMetrics,
    applied: u64,
) -> String {
    let mut text = String::new();
    let last_log = metrics.last_log_index.unwrap_or(0);
    match role_view(node, metrics) {
        RoleView::Master(replicas) => {
            let online = replicas.iter().filter(|r| r.online).count();
            let _ = write!(text, "role:master\r\nconnected_slaves:{online}\r\n");
            for (i, r) in replicas.iter().filter(|r| r.online).enumerate() {
                let _ = write!(
                    text,
                    "slave{i}:ip={},port={},state=online,offset={},lag={}\r\n",
                    r.host, r.port, r.offset, r.lag
                );
            }
            let _ = write!(
                text,
                "master_failover_state:no-failover\r\nmaster_repl_offset:{last_log}\r\n"
            );
        }
        RoleView::Slave(master) => {
            let (host, port, up, last_io) = match &master {
                Some(m) => (m.host.as_str(), m.port, m.link_up, m.last_io),
                None => ("", 0, false, -1),
            };
            let _ = write!(
                text,
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{last_io}\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:{applied}\r\nslave_repl_offset:{applied}\r\nslave_priority:100\r\nslave_read_only:0\r\nreplica_announced:1\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_repl_offset:{applied}\r\n",
                if up { "up" } else { "down" },
            );
        }
    }
    let members: Vec<String> = metrics
        .membership_config
        .membership()
        .voter_ids()
        .map(|id| id.to_string())
        .collect();
    let _ = write!(
        text,
        "raft_node_id:{}\r\nraft_cluster_name:{}\r\nraft_state:{:?}\r\nraft_term:{}\r\nraft_leader_id:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{applied}\r\nraft_last_log_index:{last_log}\r\nraft_members:{}\r\n",
        node.config.node_id,
        node.raft.cluster_name(),
        metrics.state,
        metrics.current_term,
        metrics.current_leader.map_or(-1, |l| l as i64),
        metrics
            .local_committed
            .as_ref()
            .map_or(0, |l| l.index)
            .max(applied),
        members.join(","),
    );
    text
}

/// ROLE: `master` with its replication offset and online replicas on the leader; `slave`
/// with the leader's host, port, link state and this node's applied index elsewhere.
pub fn role(session: &mut Session, _args: &[Bytes]) -> Frame {
    let node = &session.node;
    let metrics = node.raft.metrics();
    match role_view(node, &metrics) {
        RoleView::Master(replicas) => Frame::Array(vec![
            Frame::bulk("master"),
            Frame::Integer(metrics.last_log_index.unwrap_or(0) as i64),
            Frame::Array(
                replicas
                    .iter()
                    .filter(|r| r.online)
                    .map(|r| {
                        Frame::Array(vec![
                            Frame::bulk(&r.host),
                            Frame::bulk(r.port.to_string()),
                            Frame::bulk(r.offset.to_string()),
                        ])
                    })
                    .collect(),
            ),
        ]),
        RoleView::Slave(master) => {
            let applied = applied_index(node, &metrics) as i64;
            let (host, port, state) = match &master {
                Some(m) => (
                    m.host.clone(),
                    i64::from(m.port),
                    if m.link_up { "connected" } else { "connect" },
                ),
                None => (String::new(), 0, "connect"),
            };
            Frame::Array(vec![
                Frame::bulk("slave"),
                Frame::bulk(host),
                Frame::Integer(port),
                Frame::bulk(state),
                Frame::Integer(applied),
            ])
        }
    }
}
