//! Bit commands on strings.

use super::*;
use crate::keyspace as ks;

pub(super) static BITS: &[CommandSpec] = &[
    spec!("setbit", 4, WRITE | DENYOOM, ONE_KEY, ["write", "bitmap", "slow"], "bitmap", "2.2.0", W(ks::setbit), "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    spec!("getbit", 3, READONLY | FAST, ONE_KEY, ["read", "bitmap", "fast"], "bitmap", "2.2.0", R(ks::getbit), "Returns a bit value by offset."),
    spec!("bitcount", -2, READONLY, ONE_KEY, ["read", "bitmap", "slow"], "bitmap", "2.6.0", R(ks::bitcount), "Counts the number of set bits (population counting) in a string."),
    spec!("bitpos", -3, READONLY, ONE_KEY, ["read", "bitmap", "slow"], "bitmap", "2.8.7", R(ks::bitpos), "Finds the first set (1) or clear (0) bit in a string."),
    spec!("bitop", -4, WRITE | DENYOOM, keys(2, -1, 1), ["write", "bitmap", "slow"], "bitmap", "2.6.0", W(ks::bitop), "Performs bitwise operations on multiple strings, and stores the result."),
    // A write even when it only reads, as in Redis: the table cannot see its arguments.
    spec!("bitfield", -2, WRITE | DENYOOM, ONE_KEY, ["write", "bitmap", "slow"], "bitmap", "3.2.0", W(ks::bitfield), "Performs arbitrary bitfield integer operations on strings."),
    spec!("bitfield_ro", -2, READONLY | FAST, ONE_KEY, ["read", "bitmap", "fast"], "bitmap", "6.0.0", R(ks::bitfield_ro), "Performs arbitrary read-only bitfield integer operations on strings."),
];
