//! What apply tells the node besides replies: keys that blocked clients may now pop from,
//! and messages published inside a transaction. Events are not replicated state; every
//! node acts on its own (wakes its own waiters, delivers to its own subscribers).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// Error text a blocking command returns from apply when none of its keys can serve it:
/// the connection then waits for a [`Event::Ready`] and proposes the command again. It
/// never reaches a client (the NUL cannot start a real error code).
pub const BLOCKED: &str = "\0BLOCKED";

/// One event from apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A list or sorted set under `key` was written: clients blocked on it may be served.
    Ready {
        /// Database index.
        db: u32,
        /// The key.
        key: Bytes,
    },
    /// The ACL users changed: connections re-read their user before the next command.
    AclChanged,
    /// `PUBLISH` ran inside a log entry (`MULTI`/`EXEC`, a script).
    Publish {
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
    },
}

/// Where the state machine hands events after each applied batch.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(Vec<Event>) + Send + Sync>);

impl EventSink {
    /// A sink calling `deliver` with each batch's events.
    pub fn new(deliver: impl Fn(Vec<Event>) + Send + Sync + 'static) -> EventSink {
        EventSink(Arc::new(deliver))
    }

    /// Hands over a batch of events.
    pub fn deliver(&self, events: Vec<Event>) {
        (self.0)(events)
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink")
    }
}
