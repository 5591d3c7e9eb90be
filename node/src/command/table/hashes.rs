//! Hash commands.

#[allow(unused_imports)]
use super::*;

pub(super) static HASHES: &[CommandSpec] = &[];
