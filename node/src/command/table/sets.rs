//! Set commands.

#[allow(unused_imports)]
use super::*;

pub(super) static SETS: &[CommandSpec] = &[];
