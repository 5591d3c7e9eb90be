//! Pub/sub commands.

use super::*;
use crate::server::subscribe as sub;

const PS: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;

static PUBSUB_SUBS: &[CommandSpec] = &[
    spec!(
        "channels",
        -2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        ["pubsub", "slow"],
        "pubsub",
        "2.8.0",
        S(sub::pubsub_channels),
        "Returns the active channels."
    ),
    spec!(
        "numsub",
        -2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        ["pubsub", "slow"],
        "pubsub",
        "2.8.0",
        S(sub::pubsub_numsub),
        "Returns a count of subscribers to channels."
    ),
    spec!(
        "numpat",
        2,
        PUBSUB | LOADING | STALE,
        NO_KEYS,
        ["pubsub", "slow"],
        "pubsub",
        "2.8.0",
        S(sub::pubsub_numpat),
        "Returns a count of unique pattern subscriptions."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "pubsub",
        "6.2.0",
        S(sub::pubsub_help),
        "Returns helpful text about the different subcommands."
    ),
];

pub(super) static PUBSUB_COMMANDS: &[CommandSpec] = &[
    spec!(
        "subscribe",
        -2,
        PS,
        NO_KEYS,
        ["pubsub", "slow"],
        "pubsub",
        "2.0.0",
        Handler::Replies(sub::subscribe),
        "Listens for messages published to channels."
    ),
    spec!(
        "psubscribe",
        -2,
        PS,
        NO_KEYS,
        ["pubsub", "slow"],
        "pubsub",
        "2.0.0",
        Handler::Replies(sub::psubscribe),
        "Listens for messages published to channels that match one or more patterns."
    ),
    spec!(
        "unsubscribe",
        -1,
        PS,
        NO_KEYS,
        ["pubsub", "slow"],
        "pubsub",
        "2.0.0",
        Handler::Replies(sub::unsubscribe),
        "Stops listening to messages posted to channels."
    ),
    spec!(
        "punsubscribe",
        -1,
        PS,
        NO_KEYS,
        ["pubsub", "slow"],
        "pubsub",
        "2.0.0",
        Handler::Replies(sub::punsubscribe),
        "Stops listening to messages published to channels that match one or more patterns."
    ),
    spec!(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        NO_KEYS,
        ["pubsub", "fast"],
        "pubsub",
        "2.0.0",
        S(sub::publish),
        "Posts a message to a channel."
    ),
    container!(
        "pubsub",
        -2,
        0,
        ["slow"],
        "pubsub",
        "2.8.0",
        Handler::Container,
        "A container for Pub/Sub commands.",
        PUBSUB_SUBS
    ),
];
