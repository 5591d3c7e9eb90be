//! Sorted-set commands, with Redis 7.2's arity, flags, key positions and ACL categories.

use super::*;
use crate::keyspace as ks;

#[rustfmt::skip]
pub(super) static ZSETS: &[CommandSpec] = &[
    spec!("bzmpop", -5, WRITE | BLOCKING, numkeys(2, NO_KEYS), ["write", "sortedset", "slow", "blocking"], "sorted-set", "7.0.0", W(ks::bzmpop), "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    spec!("bzpopmax", -3, WRITE | FAST | BLOCKING, keys(1, -2, 1), ["write", "sortedset", "fast", "blocking"], "sorted-set", "5.0.0", W(ks::bzpopmax), "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    spec!("bzpopmin", -3, WRITE | FAST | BLOCKING, keys(1, -2, 1), ["write", "sortedset", "fast", "blocking"], "sorted-set", "5.0.0", W(ks::bzpopmin), "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    spec!("zadd", -4, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "sortedset", "fast"], "sorted-set", "1.2.0", W(ks::zadd), "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    spec!("zcard", 2, READONLY | FAST, ONE_KEY, ["read", "sortedset", "fast"], "sorted-set", "1.2.0", R(ks::zcard), "Returns the number of members in a sorted set."),
    spec!("zcount", 4, READONLY | FAST, ONE_KEY, ["read", "sortedset", "fast"], "sorted-set", "2.0.0", R(ks::zcount), "Returns the count of members in a sorted set that have scores within a range."),
    spec!("zdiff", -3, READONLY, numkeys(1, NO_KEYS), ["read", "sortedset", "slow"], "sorted-set", "6.2.0", R(ks::zdiff), "Returns the difference between multiple sorted sets."),
    spec!("zdiffstore", -4, WRITE | DENYOOM, numkeys(2, ONE_KEY), ["write", "sortedset", "slow"], "sorted-set", "6.2.0", W(ks::zdiffstore), "Stores the difference of multiple sorted sets in a key."),
    spec!("zincrby", 4, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "sortedset", "fast"], "sorted-set", "1.2.0", W(ks::zincrby), "Increments the score of a member in a sorted set."),
    spec!("zinter", -3, READONLY, numkeys(1, NO_KEYS), ["read", "sortedset", "slow"], "sorted-set", "6.2.0", R(ks::zinter), "Returns the intersect of multiple sorted sets."),
    spec!("zintercard", -3, READONLY, numkeys(1, NO_KEYS), ["read", "sortedset", "slow"], "sorted-set", "7.0.0", R(ks::zintercard), "Returns the number of members of the intersect of multiple sorted sets."),
    spec!("zinterstore", -4, WRITE | DENYOOM, numkeys(2, ONE_KEY), ["write", "sortedset", "slow"], "sorted-set", "2.0.0", W(ks::zinterstore), "Stores the intersect of multiple sorted sets in a key."),
    spec!("zlexcount", 4, READONLY | FAST, ONE_KEY, ["read", "sortedset", "fast"], "sorted-set", "2.8.9", R(ks::zlexcount), "Returns the number of members in a sorted set within a lexicographical range."),
    spec!("zmpop", -4, WRITE, numkeys(1, NO_KEYS), ["write", "sortedset", "slow"], "sorted-set", "7.0.0", W(ks::zmpop), "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."),
    spec!("zmscore", -3, READONLY | FAST, ONE_KEY, ["read", "sortedset", "fast"], "sorted-set", "6.2.0", R(ks::zmscore), "Returns the score of one or more members in a sorted set."),
    spec!("zpopmax", -2, WRITE | FAST, ONE_KEY, ["write", "sortedset", "fast"], "sorted-set", "5.0.0", W(ks::zpopmax), "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    spec!("zpopmin", -2, WRITE | FAST, ONE_KEY, ["write", "sortedset", "fast"], "sorted-set", "5.0.0", W(ks::zpopmin), "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    spec!("zrandmember", -2, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "6.2.0", R(ks::zrandmember), "Returns one or more random members from a sorted set."),
    spec!("zrange", -4, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "1.2.0", R(ks::zrange), "Returns members in a sorted set within a range of indexes."),
    spec!("zrangebylex", -4, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "2.8.9", R(ks::zrangebylex), "Returns members in a sorted set within a lexicographical range."),
    spec!("zrangebyscore", -4, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "1.0.5", R(ks::zrangebyscore), "Returns members in a sorted set within a range of scores."),
    spec!("zrangestore", -5, WRITE | DENYOOM, keys(1, 2, 1), ["write", "sortedset", "slow"], "sorted-set", "6.2.0", W(ks::zrangestore), "Stores a range of members from sorted set in a key."),
    spec!("zrank", -3, READONLY | FAST, ONE_KEY, ["read", "sortedset", "fast"], "sorted-set", "2.0.0", R(ks::zrank), "Returns the index of a member in a sorted set ordered by ascending scores."),
    spec!("zrem", -3, WRITE | FAST, ONE_KEY, ["write", "sortedset", "fast"], "sorted-set", "1.2.0", W(ks::zrem), "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.").unless_unchanged(ks::zrem_unchanged),
    spec!("zremrangebylex", 4, WRITE, ONE_KEY, ["write", "sortedset", "slow"], "sorted-set", "2.8.9", W(ks::zremrangebylex), "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    spec!("zremrangebyrank", 4, WRITE, ONE_KEY, ["write", "sortedset", "slow"], "sorted-set", "2.0.0", W(ks::zremrangebyrank), "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    spec!("zremrangebyscore", 4, WRITE, ONE_KEY, ["write", "sortedset", "slow"], "sorted-set", "1.2.0", W(ks::zremrangebyscore), "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    spec!("zrevrange", -4, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "1.2.0", R(ks::zrevrange), "Returns members in a sorted set within a range of indexes in reverse order."),
    spec!("zrevrangebylex", -4, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "2.8.9", R(ks::zrevrangebylex), "Returns members in a sorted set within a lexicographical range in reverse order."),
    spec!("zrevrangebyscore", -4, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "2.2.0", R(ks::zrevrangebyscore), "Returns members in a sorted set within a range of scores in reverse order."),
    spec!("zrevrank", -3, READONLY | FAST, ONE_KEY, ["read", "sortedset", "fast"], "sorted-set", "2.0.0", R(ks::zrevrank), "Returns the index of a member in a sorted set ordered by descending scores."),
    spec!("zscan", -3, READONLY, ONE_KEY, ["read", "sortedset", "slow"], "sorted-set", "2.8.0", R(ks::zscan), "Iterates over members and scores of a sorted set."),
    spec!("zscore", 3, READONLY | FAST, ONE_KEY, ["read", "sortedset", "fast"], "sorted-set", "1.2.0", R(ks::zscore), "Returns the score of a member in a sorted set."),
    spec!("zunion", -3, READONLY, numkeys(1, NO_KEYS), ["read", "sortedset", "slow"], "sorted-set", "6.2.0", R(ks::zunion), "Returns the union of multiple sorted sets."),
    spec!("zunionstore", -4, WRITE | DENYOOM, numkeys(2, ONE_KEY), ["write", "sortedset", "slow"], "sorted-set", "2.0.0", W(ks::zunionstore), "Stores the union of multiple sorted sets in a key."),
];
