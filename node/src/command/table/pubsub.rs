//! Pub/sub commands.

#[allow(unused_imports)]
use super::*;

pub(super) static PUBSUB: &[CommandSpec] = &[];
