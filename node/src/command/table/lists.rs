//! List commands.

#[allow(unused_imports)]
use super::*;

pub(super) static LISTS: &[CommandSpec] = &[];
