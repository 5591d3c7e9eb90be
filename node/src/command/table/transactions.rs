//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.

#[allow(unused_imports)]
use super::*;

pub(super) static TRANSACTIONS: &[CommandSpec] = &[];
