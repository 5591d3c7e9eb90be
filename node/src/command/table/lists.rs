//! List commands, with Redis 7.2's arity, flags, key positions and ACL categories.

use super::*;
use crate::keyspace as ks;

pub(super) static LISTS: &[CommandSpec] = &[
    spec!("blmove", 6, WRITE | DENYOOM | BLOCKING, keys(1, 2, 1), ["write", "list", "slow", "blocking"], "list", "6.2.0", W(ks::blmove), "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    spec!("blmpop", -5, WRITE | BLOCKING, numkeys(2, NO_KEYS), ["write", "list", "slow", "blocking"], "list", "7.0.0", W(ks::blmpop), "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    spec!("blpop", -3, WRITE | BLOCKING, keys(1, -2, 1), ["write", "list", "slow", "blocking"], "list", "2.0.0", W(ks::blpop), "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    spec!("brpop", -3, WRITE | BLOCKING, keys(1, -2, 1), ["write", "list", "slow", "blocking"], "list", "2.0.0", W(ks::brpop), "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    spec!("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, keys(1, 2, 1), ["write", "list", "slow", "blocking"], "list", "2.2.0", W(ks::brpoplpush), "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    spec!("lindex", 3, READONLY, ONE_KEY, ["read", "list", "slow"], "list", "1.0.0", R(ks::lindex), "Returns an element from a list by its index."),
    spec!("linsert", 5, WRITE | DENYOOM, ONE_KEY, ["write", "list", "slow"], "list", "2.2.0", W(ks::linsert), "Inserts an element before or after another element in a list."),
    spec!("llen", 2, READONLY | FAST, ONE_KEY, ["read", "list", "fast"], "list", "1.0.0", R(ks::llen), "Returns the length of a list."),
    spec!("lmove", 5, WRITE | DENYOOM, keys(1, 2, 1), ["write", "list", "slow"], "list", "6.2.0", W(ks::lmove), "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    spec!("lmpop", -4, WRITE, numkeys(1, NO_KEYS), ["write", "list", "slow"], "list", "7.0.0", W(ks::lmpop), "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
    spec!("lpop", -2, WRITE | FAST, ONE_KEY, ["write", "list", "fast"], "list", "1.0.0", W(ks::lpop), "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    spec!("lpos", -3, READONLY, ONE_KEY, ["read", "list", "slow"], "list", "6.0.6", R(ks::lpos), "Returns the index of matching elements in a list."),
    spec!("lpush", -3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "list", "fast"], "list", "1.0.0", W(ks::lpush), "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("lpushx", -3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "list", "fast"], "list", "2.2.0", W(ks::lpushx), "Prepends one or more elements to a list only when the list exists."),
    spec!("lrange", 4, READONLY, ONE_KEY, ["read", "list", "slow"], "list", "1.0.0", R(ks::lrange), "Returns a range of elements from a list."),
    spec!("lrem", 4, WRITE, ONE_KEY, ["write", "list", "slow"], "list", "1.0.0", W(ks::lrem), "Removes elements from a list. Deletes the list if the last element was removed."),
    spec!("lset", 4, WRITE | DENYOOM, ONE_KEY, ["write", "list", "slow"], "list", "1.0.0", W(ks::lset), "Sets the value of an element in a list by its index."),
    spec!("ltrim", 4, WRITE, ONE_KEY, ["write", "list", "slow"], "list", "1.0.0", W(ks::ltrim), "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    spec!("rpop", -2, WRITE | FAST, ONE_KEY, ["write", "list", "fast"], "list", "1.0.0", W(ks::rpop), "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    spec!("rpoplpush", 3, WRITE | DENYOOM, keys(1, 2, 1), ["write", "list", "slow"], "list", "1.2.0", W(ks::rpoplpush), "Returns the last element of a list after removing and pushing it to another. Deletes the list if the last element was popped."),
    spec!("rpush", -3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "list", "fast"], "list", "1.0.0", W(ks::rpush), "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    spec!("rpushx", -3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "list", "fast"], "list", "2.2.0", W(ks::rpushx), "Appends an element to a list only when the list exists."),
];
