//! Bit commands on strings.

#[allow(unused_imports)]
use super::*;

pub(super) static BITS: &[CommandSpec] = &[];
