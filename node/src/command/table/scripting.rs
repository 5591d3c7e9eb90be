//! Scripting: EVAL, EVALSHA, their read-only forms, SCRIPT, and Redis 7 functions
//! (FUNCTION, FCALL, FCALL_RO).

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

static FUNCTION_SUBS: &[CommandSpec] = &[
    spec!(
        "load",
        -3,
        NOSCRIPT | WRITE | DENYOOM,
        NO_KEYS,
        ["write", "slow", "scripting"],
        "scripting",
        "7.0.0",
        W(ks::function_load),
        "Creates a library."
    ),
    spec!(
        "delete",
        3,
        NOSCRIPT | WRITE,
        NO_KEYS,
        ["write", "slow", "scripting"],
        "scripting",
        "7.0.0",
        W(ks::function_delete),
        "Deletes a library and its functions."
    ),
    spec!(
        "flush",
        -2,
        NOSCRIPT | WRITE,
        NO_KEYS,
        ["write", "slow", "scripting"],
        "scripting",
        "7.0.0",
        W(ks::function_flush),
        "Deletes all libraries and functions."
    ),
    spec!(
        "list",
        -2,
        NOSCRIPT,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::function_list),
        "Returns information about all libraries."
    ),
    spec!(
        "dump",
        2,
        NOSCRIPT,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::function_dump),
        "Dumps all libraries into a serialized binary payload."
    ),
    spec!(
        "restore",
        -3,
        NOSCRIPT | WRITE | DENYOOM,
        NO_KEYS,
        ["write", "slow", "scripting"],
        "scripting",
        "7.0.0",
        W(ks::function_restore),
        "Restores all libraries from a payload."
    ),
    spec!(
        "stats",
        2,
        NOSCRIPT | ALLOW_BUSY,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::function_stats),
        "Returns information about a function during execution."
    ),
    spec!(
        "kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::script_kill),
        "Terminates a function during execution."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::function_help),
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
    container!(
        "function",
        -2,
        0,
        ["slow"],
        "scripting",
        "7.0.0",
        Handler::Container,
        "A container for function commands.",
        FUNCTION_SUBS
    ),
    spec!(
        "fcall",
        -3,
        NOSCRIPT | STALE | WRITE,
        numkeys(2, NO_KEYS),
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        W(ks::fcall),
        "Invokes a function."
    ),
    spec!(
        "fcall_ro",
        -3,
        NOSCRIPT | STALE | READONLY,
        numkeys(2, NO_KEYS),
        ["slow", "scripting"],
        "scripting",
        "7.0.0",
        R(ks::fcall_ro),
        "Invokes a read-only function."
    ),
];
