//! The pub/sub hub of one node: which connection listens to which channel or pattern, and
//! delivery into each subscriber's mailbox.
//!
//! Pub/sub is not stored state. A bare `PUBLISH` is delivered here at once; a `PUBLISH`
//! inside a transaction is delivered when its log entry applies. A subscriber that does not
//! read its messages is cut off by its connection once its queued bytes pass the
//! `client-output-buffer-limit pubsub` limits, so a slow reader cannot grow memory forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::{mpsc, Notify};

use super::clock;
use crate::keyspace::glob;

/// `client-output-buffer-limit pubsub <hard> <soft> <soft-seconds>`; zero disables a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimit {
    /// Bytes queued at which the subscriber is cut off at once.
    pub hard: usize,
    /// Bytes queued that may last at most `soft_seconds`.
    pub soft: usize,
    /// How long the soft limit may be exceeded.
    pub soft_seconds: u64,
}

impl Default for OutputLimit {
    /// Redis's default for the pubsub class: 32mb 8mb 60.
    fn default() -> Self {
        OutputLimit {
            hard: 32 * 1024 * 1024,
            soft: 8 * 1024 * 1024,
            soft_seconds: 60,
        }
    }
}

/// The `client-output-buffer-limit` classes cellkv enforces: `normal` for ordinary
/// clients' replies, `pubsub` for subscribers' messages. (It has no replica connections, so
/// the `replica` class is accepted and ignored.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Redis's default `normal 0 0 0`: no limit.
    pub normal: OutputLimit,
    /// Redis's default `pubsub 32mb 8mb 60`.
    pub pubsub: OutputLimit,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            normal: OutputLimit::NONE,
            pubsub: OutputLimit::default(),
        }
    }
}

impl OutputLimits {
    /// Applies a `client-output-buffer-limit` value (`<class> <hard> <soft> <seconds>` ...,
    /// sizes with Redis's units) to the classes it names; the others keep their limits.
    pub fn parse_config(value: &[u8], current: OutputLimits) -> Option<OutputLimits> {
        let text = std::str::from_utf8(value).ok()?;
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return None;
        }
        let mut limits = current;
        for group in words.chunks_exact(4) {
            let [class, hard, soft, seconds] = group else {
                return None;
            };
            let limit = OutputLimit {
                hard: parse_memory(hard)?,
                soft: parse_memory(soft)?,
                soft_seconds: seconds.parse().ok()?,
            };
            match class.to_ascii_lowercase().as_str() {
                "pubsub" => limits.pubsub = limit,
                "normal" => limits.normal = limit,
                "replica" | "slave" => {}
                _ => return None,
            }
        }
        Some(limits)
    }

    /// The `client-output-buffer-limit` value `CONFIG GET` reports.
    pub fn config_value(&self) -> String {
        let (n, p) = (self.normal, self.pubsub);
        format!(
            "normal {} {} {} slave 268435456 67108864 60 pubsub {} {} {}",
            n.hard, n.soft, n.soft_seconds, p.hard, p.soft, p.soft_seconds
        )
    }
}

impl OutputLimit {
    /// No limit (`0 0 0`).
    pub const NONE: OutputLimit = OutputLimit {
        hard: 0,
        soft: 0,
        soft_seconds: 0,
    };

    /// Whether `bytes` of replies waiting at once pass the hard limit.
    pub fn over_hard(&self, bytes: usize) -> bool {
        self.hard > 0 && bytes >= self.hard
    }

    /// How long replies of `bytes` may take to be written before the client is cut off:
    /// the soft limit's grace when they pass it, no bound otherwise.
    pub fn soft_grace(&self, bytes: usize) -> Option<std::time::Duration> {
        (self.soft > 0 && bytes >= self.soft)
            .then(|| std::time::Duration::from_secs(self.soft_seconds))
    }

    /// Whether `queued` bytes, above the soft limit since `soft_since_ms` (0 = not above it),
    /// cut the subscriber off at `now_ms`.
    fn exceeded(&self, queued: usize, soft_since_ms: u64, now_ms: u64) -> bool {
        (self.hard > 0 && queued >= self.hard)
            || (self.soft > 0
                && queued >= self.soft
                && soft_since_ms > 0
                && now_ms.saturating_sub(soft_since_ms) >= self.soft_seconds * 1000)
    }
}

/// One message on its way to a subscriber.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// To a channel subscriber.
    Message {
        /// The channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
    /// To a pattern subscriber.
    PMessage {
        /// The pattern that matched.
        pattern: Bytes,
        /// The channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
}

impl Delivery {
    /// Bytes this message holds while queued (what the output limit counts).
    pub fn size(&self) -> usize {
        match self {
            Delivery::Message { channel, payload } => channel.len() + payload.len() + 32,
            Delivery::PMessage {
                pattern,
                channel,
                payload,
            } => pattern.len() + channel.len() + payload.len() + 40,
        }
    }
}

/// What a mailbox's two sides share.
#[derive(Debug, Default)]
struct Backlog {
    queued_bytes: AtomicUsize,
    /// When the queue went above the soft limit (0 = it is below).
    soft_since_ms: AtomicU64,
    killed: AtomicBool,
    kill: Notify,
}

/// A size with Redis's units (`1k`, `1kb`, `5mb`, `2gb`; `k` = 1000, `kb` = 1024).
pub fn parse_memory(text: &str) -> Option<usize> {
    crate::keyspace::memory::parse_memory(text).and_then(|n| usize::try_from(n).ok())
}

/// The sending side of a subscriber's mailbox.
#[derive(Clone, Debug)]
struct Outbox {
    tx: mpsc::UnboundedSender<Delivery>,
    backlog: Arc<Backlog>,
}

impl Outbox {
    /// Queues `delivery` unless the subscriber is gone or cut off; enforces `limit`.
    fn send(&self, delivery: Delivery, limit: &OutputLimit) -> bool {
        let backlog = &self.backlog;
        if backlog.killed.load(Ordering::Relaxed) {
            return false;
        }
        let size = delivery.size();
        if self.tx.send(delivery).is_err() {
            return false;
        }
        let queued = backlog.queued_bytes.fetch_add(size, Ordering::Relaxed) + size;
        let now = clock::now_ms();
        let mut since = backlog.soft_since_ms.load(Ordering::Relaxed);
        if limit.soft > 0 && queued >= limit.soft && since == 0 {
            since = now;
            backlog.soft_since_ms.store(now, Ordering::Relaxed);
        }
        if limit.exceeded(queued, since, now) {
            backlog.killed.store(true, Ordering::Relaxed);
            backlog.kill.notify_one();
        }
        true
    }
}

/// See [`Mailbox::cut_off_signal`].
#[derive(Debug)]
pub struct CutOff(Arc<Backlog>);

impl CutOff {
    /// Resolves once the subscriber was cut off.
    pub async fn wait(&self) {
        loop {
            let notified = self.0.kill.notified();
            if self.0.killed.load(Ordering::Relaxed) {
                return;
            }
            notified.await;
        }
    }
}

/// A subscriber's mailbox: the connection drains it and gives back the bytes it wrote.
#[derive(Debug)]
pub struct Mailbox {
    rx: mpsc::UnboundedReceiver<Delivery>,
    outbox: Outbox,
}

impl Mailbox {
    /// An empty mailbox.
    pub fn new() -> Mailbox {
        let (tx, rx) = mpsc::unbounded_channel();
        Mailbox {
            rx,
            outbox: Outbox {
                tx,
                backlog: Arc::new(Backlog::default()),
            },
        }
    }

    /// A handle that resolves once publishers found this subscriber over its output limit,
    /// usable while the mailbox itself is borrowed for receiving.
    pub fn cut_off_signal(&self) -> CutOff {
        CutOff(self.outbox.backlog.clone())
    }

    /// Whether this subscriber was cut off.
    pub fn is_cut_off(&self) -> bool {
        self.outbox.backlog.killed.load(Ordering::Relaxed)
    }

    /// The next message.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A message already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }

    /// Bytes queued for this subscriber and not yet written to its socket.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.backlog.queued_bytes.load(Ordering::Relaxed)
    }

    /// Records that `size` bytes of queued messages were written out.
    pub fn written(&self, size: usize, limit: &OutputLimit) {
        let backlog = &self.outbox.backlog;
        let before = backlog
            .queued_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(size))
            })
            .unwrap_or(0);
        if before.saturating_sub(size) < limit.soft {
            backlog.soft_since_ms.store(0, Ordering::Relaxed);
        }
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox::new()
    }
}

#[derive(Debug, Default)]
struct Subscriptions {
    channels: HashMap<Bytes, HashMap<u64, Outbox>>,
    patterns: HashMap<Bytes, HashMap<u64, Outbox>>,
}

/// Every subscription on this node.
#[derive(Debug, Default)]
pub struct Hub {
    subs: RwLock<Subscriptions>,
    limit: RwLock<OutputLimit>,
    /// What is published here for the other members of the cell.
    pub fanout: super::fanout::Fanout,
}

impl Hub {
    /// The subscribers' output limit.
    pub fn limit(&self) -> OutputLimit {
        *self.limit.read()
    }

    /// Changes the subscribers' output limit (`CONFIG SET client-output-buffer-limit`).
    pub fn set_limit(&self, limit: OutputLimit) {
        *self.limit.write() = limit;
    }

    /// Subscribes client `id` (whose mailbox is `mailbox`) to `channel`.
    pub fn subscribe(&self, id: u64, mailbox: &Mailbox, channel: &Bytes) {
        self.subs
            .write()
            .channels
            .entry(channel.clone())
            .or_default()
            .insert(id, mailbox.outbox.clone());
    }

    /// Subscribes client `id` to `pattern`.
    pub fn psubscribe(&self, id: u64, mailbox: &Mailbox, pattern: &Bytes) {
        self.subs
            .write()
            .patterns
            .entry(pattern.clone())
            .or_default()
            .insert(id, mailbox.outbox.clone());
    }

    /// Removes client `id` from `channel`.
    pub fn unsubscribe(&self, id: u64, channel: &Bytes) {
        let mut subs = self.subs.write();
        if let Some(listeners) = subs.channels.get_mut(channel) {
            listeners.remove(&id);
            if listeners.is_empty() {
                subs.channels.remove(channel);
            }
        }
    }

    /// Removes client `id` from `pattern`.
    pub fn punsubscribe(&self, id: u64, pattern: &Bytes) {
        let mut subs = self.subs.write();
        if let Some(listeners) = subs.patterns.get_mut(pattern) {
            listeners.remove(&id);
            if listeners.is_empty() {
                subs.patterns.remove(pattern);
            }
        }
    }

    /// Delivers `payload` on `channel` to this node's subscribers; returns how many
    /// subscriptions received it (a client subscribed by channel and by a pattern counts
    /// twice, as in Redis).
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let limit = self.limit();
        let subs = self.subs.read();
        let mut receivers = 0;
        if let Some(listeners) = subs.channels.get(channel) {
            for outbox in listeners.values() {
                let delivery = Delivery::Message {
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                receivers += usize::from(outbox.send(delivery, &limit));
            }
        }
        for (pattern, listeners) in &subs.patterns {
            if !glob::matches(pattern, channel, false) {
                continue;
            }
            for outbox in listeners.values() {
                let delivery = Delivery::PMessage {
                    pattern: pattern.clone(),
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                receivers += usize::from(outbox.send(delivery, &limit));
            }
        }
        receivers
    }

    /// How many subscriptions a message on `channel` would reach now.
    pub fn receivers(&self, channel: &[u8]) -> usize {
        let subs = self.subs.read();
        let direct = subs.channels.get(channel).map_or(0, HashMap::len);
        let by_pattern: usize = subs
            .patterns
            .iter()
            .filter(|(p, _)| glob::matches(p, channel, false))
            .map(|(_, listeners)| listeners.len())
            .sum();
        direct + by_pattern
    }

    /// Channels with at least one subscriber, optionally matching `pattern` (`PUBSUB CHANNELS`).
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut names: Vec<Bytes> = self
            .subs
            .read()
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false)))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Subscribers of `channel` (`PUBSUB NUMSUB`).
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.subs
            .read()
            .channels
            .get(channel)
            .map_or(0, HashMap::len)
    }

    /// Patterns with at least one subscriber (`PUBSUB NUMPAT`).
    pub fn numpat(&self) -> usize {
        self.subs.read().patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn channel_and_pattern_subscribers_each_receive_once() {
        let hub = Hub::default();
        let mut one = Mailbox::new();
        let mut two = Mailbox::new();
        hub.subscribe(1, &one, &b("news"));
        hub.psubscribe(1, &one, &b("n*"));
        hub.psubscribe(2, &two, &b("x*"));
        assert_eq!(hub.publish(&b("news"), &b("hi")), 2);
        assert_eq!(
            one.try_recv(),
            Some(Delivery::Message {
                channel: b("news"),
                payload: b("hi")
            })
        );
        assert!(matches!(one.try_recv(), Some(Delivery::PMessage { .. })));
        assert_eq!(two.try_recv(), None);
        assert!(one.queued_bytes() > 0);
        one.written(usize::MAX, &hub.limit());
        assert_eq!(one.queued_bytes(), 0);
        assert_eq!((hub.numsub(b"news"), hub.numpat()), (1, 2));
        assert_eq!(hub.channels(Some(b"ne*")), vec![b("news")]);
        hub.unsubscribe(1, &b("news"));
        hub.punsubscribe(1, &b("n*"));
        assert_eq!(hub.publish(&b("news"), &b("again")), 0);
        assert!(hub.channels(None).is_empty());
    }

    #[test]
    fn a_subscriber_past_the_hard_limit_is_cut_off() {
        let hub = Hub::default();
        hub.set_limit(OutputLimit {
            hard: 1500,
            soft: 0,
            soft_seconds: 0,
        });
        let slow = Mailbox::new();
        hub.subscribe(1, &slow, &b("c"));
        let payload = Bytes::from(vec![b'x'; 100]);
        for _ in 0..8 {
            hub.publish(&b("c"), &payload);
        }
        assert!(!slow.is_cut_off());
        for _ in 0..4 {
            hub.publish(&b("c"), &payload);
        }
        assert!(slow.is_cut_off());
        // Nothing more is queued for it once it is cut off.
        assert_eq!(hub.publish(&b("c"), &payload), 0);
    }

    #[test]
    fn config_values_parse_like_redis() {
        let current = OutputLimits::default();
        let parsed = OutputLimits::parse_config(b"pubsub 1mb 512kb 10", current).map(|l| l.pubsub);
        assert_eq!(
            parsed,
            Some(OutputLimit {
                hard: 1024 * 1024,
                soft: 512 * 1024,
                soft_seconds: 10
            })
        );
        let kept = OutputLimits::parse_config(b"normal 0 0 0 replica 1gb 1gb 0", current);
        assert_eq!(kept, Some(current));
        let normal = OutputLimits::parse_config(b"normal 2mb 1mb 5", current);
        assert_eq!(
            normal.map(|l| (l.normal, l.pubsub)),
            Some((
                OutputLimit {
                    hard: 2 * 1024 * 1024,
                    soft: 1024 * 1024,
                    soft_seconds: 5
                },
                current.pubsub
            ))
        );
        assert_eq!(OutputLimits::parse_config(b"pubsub 1mb 1mb", current), None);
        assert_eq!(OutputLimits::parse_config(b"bogus 1 1 1", current), None);
        assert_eq!(OutputLimits::parse_config(b"pubsub 1xb 1 1", current), None);
        assert_eq!(
            current.config_value(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
    }

    #[test]
    fn the_normal_limits_judge_one_write() {
        let limit = OutputLimit {
            hard: 100,
            soft: 10,
            soft_seconds: 3,
        };
        assert!(limit.over_hard(100) && !limit.over_hard(99));
        assert!(!OutputLimit::NONE.over_hard(usize::MAX));
        assert_eq!(limit.soft_grace(9), None);
        assert_eq!(
            limit.soft_grace(10),
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(OutputLimit::NONE.soft_grace(usize::MAX), None);
    }

    #[test]
    fn the_soft_limit_needs_time() {
        let limit = OutputLimit {
            hard: 0,
            soft: 10,
            soft_seconds: 2,
        };
        assert!(!limit.exceeded(20, 1000, 2500));
        assert!(limit.exceeded(20, 1000, 3000));
        assert!(!limit.exceeded(5, 1000, 9000));
        assert!(!limit.exceeded(20, 0, 9000));
    }

    #[test]
    fn a_closed_mailbox_counts_no_receiver() {
        let hub = Hub::default();
        let gone = Mailbox::new();
        hub.subscribe(7, &gone, &b("c"));
        drop(gone);
        assert_eq!(hub.publish(&b("c"), &b("m")), 0);
    }
}
