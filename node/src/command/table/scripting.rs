//! Scripting: EVAL, EVALSHA, their read-only forms, and SCRIPT.

use super::*;
use crate::keyspace as ks;

static SCRIPT_SUBS: &[CommandSpec] = &[
    spec!(
        "load",
        3,
        NOSCRIPT | STALE | WRITE,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "2.6.0",
        W(ks::script_load),
        "Loads a server-side Lua script to the script cache."
    ),
    spec!(
        "exists",
        -3,
        NOSCRIPT,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "2.6.0",
        R(ks::script_exists),
        "Determines whether server-side Lua scripts exist in the script cache."
    ),
    spec!(
        "flush",
        -2,
        NOSCRIPT | WRITE,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "2.6.0",
        W(ks::script_flush),
        "Removes all server-side Lua scripts from the script cache."
    ),
    spec!(
        "kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "2.6.0",
        R(ks::script_kill),
        "Terminates a server-side Lua script during execution."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "5.0.0",
        R(ks::script_help),
        "Returns helpful text about the different subcommands."
    ),
];

pub(super) static SCRIPTING: &[CommandSpec] = &[
    spec!(
        "eval",
        -3,
        NOSCRIPT | STALE | WRITE,
        numkeys(2, NO_KEYS),
        ["slow", "scripting"],
        "scripting",
        "2.6.0",
        W(ks::eval),
        "Executes a server-side Lua script."
    ),
    spec!(
        "evalsha",
        -3,
        NOSCRIPT | STALE | WRITE,
        numkeys(2, NO_KEYS),
        ["slow", "scripting"],
        "scripting",
        "2.6.0",
        W(ks::evalsha),
        "Executes a server-side Lua script by SHA1 digest."
    ),
    spec!(
        "eval_ro",
        -3,
        NOSCRIPT | STALE | READONLY,
        numkeys(2, NO_KEYS),
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::eval_ro),
        "Executes a read-only server-side Lua script."
    ),
    spec!(
        "evalsha_ro",
        -3,
        NOSCRIPT | STALE | READONLY,
        numkeys(2, NO_KEYS),
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::evalsha_ro),
        "Executes a read-only server-side Lua script by SHA1 digest."
    ),
    container!(
        "script",
        -2,
        0,
        ["slow"],
        "scripting",
        "2.6.0",
        Handler::Container,
        "A container for Lua scripts management commands.",
        SCRIPT_SUBS
    ),
];
