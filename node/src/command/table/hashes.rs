//! Hash commands.

use super::*;
use crate::keyspace as ks;

/// Flags, ACL categories and key positions as Redis 7.2's `COMMAND INFO` lists them.
pub(super) static HASHES: &[CommandSpec] = &[
    spec!("hdel", -3, WRITE | FAST, ONE_KEY, ["write", "hash", "fast"], "hash", "2.0.0", W(ks::hdel), "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.").unless_unchanged(ks::hdel_unchanged),
    spec!("hexists", 3, READONLY | FAST, ONE_KEY, ["read", "hash", "fast"], "hash", "2.0.0", R(ks::hexists), "Determines whether a field exists in a hash."),
    spec!("hget", 3, READONLY | FAST, ONE_KEY, ["read", "hash", "fast"], "hash", "2.0.0", R(ks::hget), "Returns the value of a field in a hash."),
    spec!("hgetall", 2, READONLY, ONE_KEY, ["read", "hash", "slow"], "hash", "2.0.0", R(ks::hgetall), "Returns all fields and values in a hash."),
    spec!("hincrby", 4, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "hash", "fast"], "hash", "2.0.0", W(ks::hincrby), "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    spec!("hincrbyfloat", 4, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "hash", "fast"], "hash", "2.6.0", W(ks::hincrbyfloat), "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    spec!("hkeys", 2, READONLY, ONE_KEY, ["read", "hash", "slow"], "hash", "2.0.0", R(ks::hkeys), "Returns all fields in a hash."),
    spec!("hlen", 2, READONLY | FAST, ONE_KEY, ["read", "hash", "fast"], "hash", "2.0.0", R(ks::hlen), "Returns the number of fields in a hash."),
    spec!("hmget", -3, READONLY | FAST, ONE_KEY, ["read", "hash", "fast"], "hash", "2.0.0", R(ks::hmget), "Returns the values of all fields in a hash."),
    spec!("hmset", -4, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "hash", "fast"], "hash", "2.0.0", W(ks::hmset), "Sets the values of multiple fields."),
    spec!("hrandfield", -2, READONLY, ONE_KEY, ["read", "hash", "slow"], "hash", "6.2.0", R(ks::hrandfield), "Returns one or more random fields from a hash."),
    spec!("hscan", -3, READONLY, ONE_KEY, ["read", "hash", "slow"], "hash", "2.8.0", R(ks::hscan), "Iterates over fields and values of a hash."),
    spec!("hset", -4, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "hash", "fast"], "hash", "2.0.0", W(ks::hset), "Creates or modifies the value of a field in a hash."),
    spec!("hsetnx", 4, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "hash", "fast"], "hash", "2.0.0", W(ks::hsetnx), "Sets the value of a field in a hash only when the field doesn't exist.").unless_unchanged(ks::hsetnx_unchanged),
    spec!("hstrlen", 3, READONLY | FAST, ONE_KEY, ["read", "hash", "fast"], "hash", "3.2.0", R(ks::hstrlen), "Returns the length of the value of a field."),
    spec!("hvals", 2, READONLY, ONE_KEY, ["read", "hash", "slow"], "hash", "2.0.0", R(ks::hvals), "Returns all values in a hash."),
];
