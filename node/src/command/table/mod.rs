//! The table itself: every command cellkv serves, one entry each, grouped by family (one
//! file per family), with the macros and key-position shorthands the families share.

use std::sync::LazyLock;

pub(super) use super::flag::*;
pub(super) use super::{CommandSpec, Handler, KeyPositions};

pub(super) const fn keys(first: i32, last: i32, step: i32) -> KeyPositions {
    KeyPositions {
        first,
        last,
        step,
        numkeys_at: 0,
    }
}

/// Keys counted by the `numkeys` argument at `numkeys_at`, following it (`LMPOP`,
/// `SINTERCARD`), after any fixed keys in `fixed` (`ZUNIONSTORE`'s destination).
pub(super) const fn numkeys(numkeys_at: i32, fixed: KeyPositions) -> KeyPositions {
    KeyPositions {
        numkeys_at,
        ..fixed
    }
}
pub(super) const NO_KEYS: KeyPositions = KeyPositions::NONE;
pub(super) const ONE_KEY: KeyPositions = keys(1, 1, 1);
pub(super) const ALL_KEYS: KeyPositions = keys(1, -1, 1);

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, [$($acl:literal),*], $group:literal,
     $since:literal, $handler:expr, $summary:literal) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            acl: &[$($acl),*],
            group: $group,
            since: $since,
            summary: $summary,
            handler: $handler,
            subcommands: &[],
            unchanged: None,
        }
    };
}

macro_rules! container {
    ($name:literal, $arity:expr, $flags:expr, [$($acl:literal),*], $group:literal, $since:literal,
     $handler:expr, $summary:literal, $subs:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: NO_KEYS,
            acl: &[$($acl),*],
            group: $group,
            since: $since,
            summary: $summary,
            handler: $handler,
            subcommands: $subs,
            unchanged: None,
        }
    };
}

pub(super) use Handler::{Read as R, Session as S, Write as W};

mod base;
mod bits;
mod hashes;
mod lists;
mod pubsub;
mod scripting;
mod sets;
mod transactions;
mod zsets;

/// Every family's table, in the order `COMMAND` lists them.
static FAMILIES: &[&[CommandSpec]] = &[
    base::BASE,
    lists::LISTS,
    hashes::HASHES,
    sets::SETS,
    zsets::ZSETS,
    bits::BITS,
    transactions::TRANSACTIONS,
    pubsub::PUBSUB_COMMANDS,
    scripting::SCRIPTING,
];

/// Every command cellkv serves.
pub static COMMANDS: LazyLock<Vec<&'static CommandSpec>> =
    LazyLock::new(|| FAMILIES.iter().flat_map(|f| f.iter()).collect());

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_numkeys_run_follows_its_count_after_the_fixed_keys() {
        let args: Vec<Bytes> = "zunionstore dst 2 a b weights 1 2"
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let positions = numkeys(2, keys(1, 1, 1));
        let found: Vec<&Bytes> = positions.extract(&args);
        assert_eq!(found, vec!["dst", "a", "b"]);
        assert!(positions.movable());
        // A count past the end takes what is there; a bad count takes nothing.
        let short: Vec<Bytes> = ["lmpop", "5", "x"].map(Bytes::from).to_vec();
        assert_eq!(numkeys(1, NO_KEYS).extract(&short), vec!["x"]);
        let bad: Vec<Bytes> = ["lmpop", "z", "x"].map(Bytes::from).to_vec();
        assert!(numkeys(1, NO_KEYS).extract(&bad).is_empty());
    }
}
