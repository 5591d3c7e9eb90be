//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.

use super::*;
use crate::server::subscribe as sub;

const TX: u32 = NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY;

pub(super) static TRANSACTIONS: &[CommandSpec] = &[
    spec!(
        "multi",
        1,
        TX,
        NO_KEYS,
        ["fast", "transaction"],
        "transactions",
        "1.2.0",
        S(sub::multi),
        "Starts a transaction."
    ),
    spec!(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        NO_KEYS,
        ["slow", "transaction"],
        "transactions",
        "1.2.0",
        Handler::Connection,
        "Executes all commands in a transaction."
    ),
    spec!(
        "discard",
        1,
        TX,
        NO_KEYS,
        ["fast", "transaction"],
        "transactions",
        "2.0.0",
        S(sub::discard),
        "Discards a transaction."
    ),
    spec!(
        "watch",
        -2,
        TX,
        ALL_KEYS,
        ["fast", "transaction"],
        "transactions",
        "2.2.0",
        Handler::Connection,
        "Monitors changes to keys to determine the execution of a transaction."
    ),
    spec!(
        "unwatch",
        1,
        TX,
        NO_KEYS,
        ["fast", "transaction"],
        "transactions",
        "2.2.0",
        S(sub::unwatch),
        "Forgets about watched keys of a transaction."
    ),
];
