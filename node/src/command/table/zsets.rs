//! Sorted-set commands.

#[allow(unused_imports)]
use super::*;

pub(super) static ZSETS: &[CommandSpec] = &[];
