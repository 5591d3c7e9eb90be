//! `SLOWLOG`: the node's most recent commands that took longer than
//! `slowlog-log-slower-than` microseconds, at most `slowlog-max-len` of them, with their
//! arguments passed through `redact` first, so no password or secret value is kept.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{clock, redact, Session};
use crate::command::{keyspace_help, parse_i64};
use crate::resp::Frame;

/// Arguments kept per entry, the last one saying how many more there were (Redis's
/// `SLOWLOG_ENTRY_MAX_ARGC`).
const MAX_ARGS: usize = 32;
/// Bytes kept per argument (Redis's `SLOWLOG_ENTRY_MAX_STRING`).
const MAX_ARG_LEN: usize = 128;

/// One slow command.
#[derive(Clone, Debug)]
struct Entry {
    id: u64,
    at_secs: u64,
    micros: u64,
    args: Vec<Bytes>,
    addr: String,
    name: Bytes,
}

/// The node's slow log.
#[derive(Debug, Default)]
pub struct SlowLog {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl SlowLog {
    /// Records a command that took `micros`, if that is slow enough under `slower_than`
    /// (negative: the log is off) and keeps at most `max_len` entries.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        args: &[Bytes],
        micros: u64,
        slower_than: i64,
        max_len: usize,
        secret_prefixes: &[String],
        addr: &str,
        name: Option<Bytes>,
    ) {
        if slower_than < 0 || micros < slower_than as u64 {
            return;
        }
        let shown = redact::redact(args, secret_prefixes);
        let mut kept: Vec<Bytes> = Vec::with_capacity(shown.len().min(MAX_ARGS));
        for (i, arg) in shown.iter().enumerate() {
            if i == MAX_ARGS - 1 && shown.len() > MAX_ARGS {
                kept.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    shown.len() - MAX_ARGS + 1
                )));
                break;
            }
            if arg.len() > MAX_ARG_LEN {
                let mut cut = arg[..MAX_ARG_LEN].to_vec();
                cut.extend_from_slice(
                    format!("... ({} more bytes)", arg.len() - MAX_ARG_LEN).as_bytes(),
                );
                kept.push(Bytes::from(cut));
            } else {
                kept.push(Bytes::copy_from_slice(arg));
            }
        }
        self.entries.push_front(Entry {
            id: self.next_id,
            at_secs: clock::now_ms() / 1000,
            micros,
            args: kept,
            addr: addr.to_string(),
            name: name.unwrap_or_default(),
        });
        self.next_id += 1;
        self.entries.truncate(max_len);
    }
}

/// SLOWLOG GET [count]
pub fn slowlog_get(session: &mut Session, args: &[Bytes]) -> Frame {
    let count = match args.get(2) {
        None => 10,
        Some(raw) => match parse_i64(raw) {
            Some(-1) => usize::MAX,
            Some(n) if n >= 0 => n as usize,
            _ => return Frame::error("ERR count should be greater than or equal to -1"),
        },
    };
    let log = session.node.slowlog.lock();
    Frame::Array(
        log.entries
            .iter()
            .take(count)
            .map(|e| {
                Frame::Array(vec![
                    Frame::Integer(e.id as i64),
                    Frame::Integer(e.at_secs as i64),
                    Frame::Integer(e.micros as i64),
                    Frame::Array(e.args.iter().cloned().map(Frame::Bulk).collect()),
                    Frame::bulk(&e.addr),
                    Frame::Bulk(e.name.clone()),
                ])
            })
            .collect(),
    )
}

/// SLOWLOG LEN
pub fn slowlog_len(session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::Integer(session.node.slowlog.lock().entries.len() as i64)
}

/// SLOWLOG RESET
pub fn slowlog_reset(session: &mut Session, _args: &[Bytes]) -> Frame {
    session.node.slowlog.lock().entries.clear();
    Frame::ok()
}

/// SLOWLOG HELP
pub fn slowlog_help(_session: &mut Session, _args: &[Bytes]) -> Frame {
    keyspace_help(
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    )
}
