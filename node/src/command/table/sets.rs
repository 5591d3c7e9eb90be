//! Set commands.

use super::*;
use crate::keyspace as ks;

/// Flags, ACL categories and key positions as Redis 7.2's `COMMAND INFO` lists them.
pub(super) static SETS: &[CommandSpec] = &[
    spec!("sadd", -3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "set", "fast"], "set", "1.0.0", W(ks::sadd), "Adds one or more members to a set. Creates the key if it doesn't exist.").unless_unchanged(ks::sadd_unchanged),
    spec!("scard", 2, READONLY | FAST, ONE_KEY, ["read", "set", "fast"], "set", "1.0.0", R(ks::scard), "Returns the number of members in a set."),
    spec!("sdiff", -2, READONLY, ALL_KEYS, ["read", "set", "slow"], "set", "1.0.0", R(ks::sdiff), "Returns the difference of multiple sets."),
    spec!("sdiffstore", -3, WRITE | DENYOOM, ALL_KEYS, ["write", "set", "slow"], "set", "1.0.0", W(ks::sdiffstore), "Stores the difference of multiple sets in a key."),
    spec!("sinter", -2, READONLY, ALL_KEYS, ["read", "set", "slow"], "set", "1.0.0", R(ks::sinter), "Returns the intersect of multiple sets."),
    spec!("sintercard", -3, READONLY, numkeys(1, NO_KEYS), ["read", "set", "slow"], "set", "7.0.0", R(ks::sintercard), "Returns the number of members of the intersect of multiple sets."),
    spec!("sinterstore", -3, WRITE | DENYOOM, ALL_KEYS, ["write", "set", "slow"], "set", "1.0.0", W(ks::sinterstore), "Stores the intersect of multiple sets in a key."),
    spec!("sismember", 3, READONLY | FAST, ONE_KEY, ["read", "set", "fast"], "set", "1.0.0", R(ks::sismember), "Determines whether a member belongs to a set."),
    spec!("smembers", 2, READONLY, ONE_KEY, ["read", "set", "slow"], "set", "1.0.0", R(ks::smembers), "Returns all members of a set."),
    spec!("smismember", -3, READONLY | FAST, ONE_KEY, ["read", "set", "fast"], "set", "6.2.0", R(ks::smismember), "Determines whether multiple members belong to a set."),
    spec!("smove", 4, WRITE | FAST, keys(1, 2, 1), ["write", "set", "fast"], "set", "1.0.0", W(ks::smove), "Moves a member from one set to another."),
    spec!("spop", -2, WRITE | FAST, ONE_KEY, ["write", "set", "fast"], "set", "1.0.0", W(ks::spop), "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    spec!("srandmember", -2, READONLY, ONE_KEY, ["read", "set", "slow"], "set", "1.0.0", R(ks::srandmember), "Get one or multiple random members from a set"),
    spec!("srem", -3, WRITE | FAST, ONE_KEY, ["write", "set", "fast"], "set", "1.0.0", W(ks::srem), "Removes one or more members from a set. Deletes the set if the last member was removed.").unless_unchanged(ks::srem_unchanged),
    spec!("sscan", -3, READONLY, ONE_KEY, ["read", "set", "slow"], "set", "2.8.0", R(ks::sscan), "Iterates over members of a set."),
    spec!("sunion", -2, READONLY, ALL_KEYS, ["read", "set", "slow"], "set", "1.0.0", R(ks::sunion), "Returns the union of multiple sets."),
    spec!("sunionstore", -3, WRITE | DENYOOM, ALL_KEYS, ["write", "set", "slow"], "set", "1.0.0", W(ks::sunionstore), "Stores the union of multiple sets in a key."),
];
