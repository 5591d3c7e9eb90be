//! The connection side of pub/sub and transactions: `SUBSCRIBE` and kin, `PUBLISH`,
//! `PUBSUB`, and queuing between `MULTI` and `EXEC` (`EXEC` and `WATCH` themselves wait
//! on Raft and live in the connection loop).

use bytes::Bytes;

use super::session::Multi;
use super::Session;
use crate::resp::Frame;

/// What a (un)subscribe reply says: `[kind, name, count]`, a push in RESP3.
fn confirmation(kind: &str, name: Option<&Bytes>, count: usize) -> Frame {
    Frame::Push(vec![
        Frame::bulk(kind),
        name.map_or(Frame::Null, |n| Frame::Bulk(n.clone())),
        Frame::Integer(count as i64),
    ])
}

/// SUBSCRIBE channel [channel ...]
pub fn subscribe(session: &mut Session, args: &[Bytes]) -> Vec<Frame> {
    let mut replies = Vec::new();
    for channel in &args[1..] {
        if session.channels.insert(channel.clone()) {
            let node = session.node.clone();
            node.pubsub
                .subscribe(session.client.id, &session.mailbox, channel);
        }
        replies.push(confirmation(
            "subscribe",
            Some(channel),
            session.subscriptions(),
        ));
    }
    replies
}

/// PSUBSCRIBE pattern [pattern ...]
pub fn psubscribe(session: &mut Session, args: &[Bytes]) -> Vec<Frame> {
    let mut replies = Vec::new();
    for pattern in &args[1..] {
        if session.patterns.insert(pattern.clone()) {
            let node = session.node.clone();
            node.pubsub
                .psubscribe(session.client.id, &session.mailbox, pattern);
        }
        replies.push(confirmation(
            "psubscribe",
            Some(pattern),
            session.subscriptions(),
        ));
    }
    replies
}

/// UNSUBSCRIBE [channel ...]: without arguments, from every channel.
pub fn unsubscribe(session: &mut Session, args: &[Bytes]) -> Vec<Frame> {
    let names: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        session.channels.iter().cloned().collect()
    };
    if names.is_empty() {
        return vec![confirmation("unsubscribe", None, session.subscriptions())];
    }
    let mut replies = Vec::new();
    for channel in &names {
        if session.channels.remove(channel) {
            session.node.pubsub.unsubscribe(session.client.id, channel);
        }
        replies.push(confirmation(
            "unsubscribe",
            Some(channel),
            session.subscriptions(),
        ));
    }
    replies
}

/// PUNSUBSCRIBE [pattern ...]: without arguments, from every pattern.
pub fn punsubscribe(session: &mut Session, args: &[Bytes]) -> Vec<Frame> {
    let names: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        session.patterns.iter().cloned().collect()
    };
    if names.is_empty() {
        return vec![confirmation("punsubscribe", None, session.subscriptions())];
    }
    let mut replies = Vec::new();
    for pattern in &names {
        if session.patterns.remove(pattern) {
            session.node.pubsub.punsubscribe(session.client.id, pattern);
        }
        replies.push(confirmation(
            "punsubscribe",
            Some(pattern),
            session.subscriptions(),
        ));
    }
    replies
}

/// PUBLISH channel message: delivered to this node's subscribers at once, and handed to the
/// cell's other members for theirs. Answers this node's receivers, as Redis Cluster does.
pub fn publish(session: &mut Session, args: &[Bytes]) -> Frame {
    let node = &session.node;
    node.pubsub.fanout.publish(node, &args[1], &args[2]);
    Frame::Integer(node.pubsub.publish(&args[1], &args[2]) as i64)
}

/// PUBSUB CHANNELS [pattern]
pub fn pubsub_channels(session: &mut Session, args: &[Bytes]) -> Frame {
    let pattern = args.get(2).map(|p| p.as_ref());
    Frame::Array(
        session
            .node
            .pubsub
            .channels(pattern)
            .into_iter()
            .map(Frame::Bulk)
            .collect(),
    )
}

/// PUBSUB NUMSUB [channel ...]: a flat channel, count, ... array in both protocols, as
/// Redis 7.2 sends it.
pub fn pubsub_numsub(session: &mut Session, args: &[Bytes]) -> Frame {
    Frame::Array(
        args[2..]
            .iter()
            .flat_map(|c| {
                [
                    Frame::Bulk(c.clone()),
                    Frame::Integer(session.node.pubsub.numsub(c) as i64),
                ]
            })
            .collect(),
    )
}

/// PUBSUB NUMPAT
pub fn pubsub_numpat(session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::Integer(session.node.pubsub.numpat() as i64)
}

/// PUBSUB HELP
pub fn pubsub_help(_session: &mut Session, _args: &[Bytes]) -> Frame {
    crate::keyspace::help_lines(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    )
}

/// MULTI
pub fn multi(session: &mut Session, _args: &[Bytes]) -> Frame {
    if session.multi.is_some() {
        return Frame::error("ERR MULTI calls can not be nested");
    }
    session.multi = Some(Multi::default());
    Frame::ok()
}

/// DISCARD
pub fn discard(session: &mut Session, _args: &[Bytes]) -> Frame {
    if session.multi.take().is_none() {
        return Frame::error("ERR DISCARD without MULTI");
    }
    session.watches.clear();
    Frame::ok()
}

/// UNWATCH
pub fn unwatch(session: &mut Session, _args: &[Bytes]) -> Frame {
    session.watches.clear();
    Frame::ok()
}

/// The error for a command a RESP2 subscriber may not run.
pub fn not_in_subscriber_mode(name: &str) -> Frame {
    Frame::error(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// Whether a RESP2 subscriber may run `name`.
pub fn allowed_in_subscriber_mode(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// The error a transaction queue gives a command that may not be queued.
pub fn not_in_multi() -> Frame {
    Frame::error("ERR Command not allowed inside a transaction")
}

/// `EXECABORT`.
pub fn exec_abort() -> Frame {
    Frame::error("EXECABORT Transaction discarded because of previous errors.")
}

/// Redis's error for EXEC outside a transaction.
pub fn exec_without_multi() -> Frame {
    Frame::error("ERR EXEC without MULTI")
}

/// Redis's error for WATCH inside a transaction.
pub fn watch_inside_multi() -> Frame {
    Frame::error("ERR WATCH inside MULTI is not allowed")
}
