//! `MONITOR`: every command this node runs, as a line `+<secs>.<micros> [<db> <addr>]
//! "arg" ...`, sent to the connections that asked for it. Arguments pass through `redact`
//! first, so passwords and values under secret prefixes show as `(redacted)`. A monitor
//! that falls too far behind is cut off rather than let its backlog grow without bound.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{clock, redact};

/// Lines a monitor may have waiting before it is cut off.
const BACKLOG: usize = 10_000;

/// The node's monitors.
#[derive(Debug, Default)]
pub struct Monitors {
    count: AtomicUsize,
    senders: Mutex<Vec<(u64, mpsc::Sender<Bytes>)>>,
}

impl Monitors {
    /// Makes connection `id` a monitor; its lines arrive on the receiver, which closes if it
    /// falls too far behind.
    pub fn subscribe(&self, id: u64) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let mut senders = self.senders.lock();
        senders.retain(|(other, _)| *other != id);
        senders.push((id, tx));
        self.count.store(senders.len(), Ordering::Release);
        rx
    }

    /// Stops feeding connection `id`.
    pub fn unsubscribe(&self, id: u64) {
        let mut senders = self.senders.lock();
        senders.retain(|(other, _)| *other != id);
        self.count.store(senders.len(), Ordering::Release);
    }

    /// Whether anyone monitors (checked before formatting anything).
    pub fn is_active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Sends one command to every monitor.
    pub fn feed(&self, db: u32, addr: &str, args: &[Bytes], secret_prefixes: &[String]) {
        let us = clock::now_us();
        let mut line = format!("+{}.{:06} [{db} {addr}]", us / 1_000_000, us % 1_000_000);
        for arg in redact::redact(args, secret_prefixes) {
            line.push(' ');
            repr(&arg, &mut line);
        }
        line.push_str("\r\n");
        let line = Bytes::from(line);
        let mut senders = self.senders.lock();
        senders.retain(|(id, tx)| match tx.try_send(line.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(client = id, "closing monitor that fell behind");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.count.store(senders.len(), Ordering::Release);
    }
}

/// Quotes `arg` as Redis's `sdscatrepr` does.
fn repr(arg: &[u8], out: &mut String) {
    out.push('"');
    for &b in arg {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_like_redis_and_hide_secrets() {
        let monitors = Monitors::default();
        assert!(!monitors.is_active());
        let mut rx = monitors.subscribe(7);
        assert!(monitors.is_active());
        let args: Vec<Bytes> = ["SET", "m2m:tokens:a", "tok\"en\n"]
            .map(Bytes::from)
            .to_vec();
        monitors.feed(0, "127.0.0.1:5000", &args, &["m2m:tokens:".to_string()]);
        let line = rx.try_recv().expect("a line");
        let text = String::from_utf8_lossy(&line);
        assert!(
            text.ends_with(" [0 127.0.0.1:5000] \"SET\" \"m2m:tokens:a\" \"(redacted)\"\r\n"),
            "{text}"
        );
        let mut quoted = String::new();
        repr(b"a\"b\\\x01", &mut quoted);
        assert_eq!(quoted, "\"a\\\"b\\\\\\x01\"");
        monitors.unsubscribe(7);
        assert!(!monitors.is_active());
    }
}
