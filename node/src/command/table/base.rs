//! Connection, server, introspection, string and generic key commands.

use super::*;
use crate::keyspace as ks;
use crate::server::commands as srv;
use crate::server::security as sec;

const CONN: u32 = NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY;

static CLIENT_SUBS: &[CommandSpec] = &[
    spec!(
        "id",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "connection",
        "5.0.0",
        S(srv::client_id),
        "Returns the unique client ID of the connection."
    ),
    spec!(
        "setname",
        3,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "connection",
        "2.6.9",
        S(srv::client_setname),
        "Sets the connection name."
    ),
    spec!(
        "getname",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "connection",
        "2.6.9",
        S(srv::client_getname),
        "Returns the name of the connection."
    ),
    spec!(
        "info",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "connection",
        "6.2.0",
        S(srv::client_info),
        "Returns information about the connection."
    ),
    spec!(
        "list",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous", "connection"],
        "connection",
        "2.4.0",
        S(srv::client_list),
        "Lists open connections."
    ),
    spec!(
        "setinfo",
        4,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "connection",
        "7.2.0",
        S(srv::client_setinfo),
        "Sets information specific to the client or connection."
    ),
    spec!(
        "no-evict",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous", "connection"],
        "connection",
        "7.0.0",
        S(srv::client_no_evict),
        "Sets the client eviction mode of the connection."
    ),
    spec!(
        "no-touch",
        3,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "connection",
        "7.2.0",
        S(srv::client_no_touch),
        "Controls whether commands sent by the client affect the LRU/LFU of accessed keys."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "connection",
        "5.0.0",
        S(srv::client_help),
        "Returns helpful text about the different subcommands."
    ),
];

static CONFIG_SUBS: &[CommandSpec] = &[
    spec!(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "2.0.0",
        S(srv::config_get),
        "Returns the effective values of configuration parameters."
    ),
    // Connection: `requirepass` among the pairs is proposed through the log.
    spec!(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "2.0.0",
        Handler::Connection,
        "Sets configuration parameters in-flight."
    ),
    spec!(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "2.0.0",
        S(srv::config_resetstat),
        "Resets the server's statistics."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "server",
        "5.0.0",
        S(srv::config_help),
        "Returns helpful text about the different subcommands."
    ),
];

/// `ACL SETUSER` and `ACL DELUSER` are proposed through the log (the connection loop runs
/// them); the others read this node's applied users or its `ACL LOG`.
static ACL_SUBS: &[CommandSpec] = &[
    spec!(
        "cat",
        -2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "server",
        "6.0.0",
        S(sec::acl_cat),
        "Lists the ACL categories, or the commands inside a category."
    ),
    spec!(
        "deluser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "6.0.0",
        Handler::Connection,
        "Deletes ACL users, and terminates their connections."
    ),
    spec!(
        "dryrun",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "7.0.0",
        S(sec::acl_dryrun),
        "Simulates the execution of a command by a user, without executing the command."
    ),
    spec!(
        "genpass",
        -2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "server",
        "6.0.0",
        S(sec::acl_genpass),
        "Generates a pseudorandom, secure password that can be used to identify ACL users."
    ),
    spec!(
        "getuser",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "6.0.0",
        S(sec::acl_getuser),
        "Lists the ACL rules of a user."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "server",
        "6.0.0",
        S(sec::acl_help),
        "Returns helpful text about the different subcommands."
    ),
    spec!(
        "list",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "6.0.0",
        S(sec::acl_list),
        "Dumps the effective rules in ACL file format."
    ),
    spec!(
        "log",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "6.0.0",
        S(sec::acl_log),
        "Lists recent security events generated due to commands rejected by ACL rules."
    ),
    spec!(
        "setuser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "6.0.0",
        Handler::Connection,
        "Creates and modifies an ACL user and its rules."
    ),
    spec!(
        "users",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "6.0.0",
        S(sec::acl_users),
        "Lists all ACL users."
    ),
    spec!(
        "whoami",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "server",
        "6.0.0",
        S(sec::acl_whoami),
        "Returns the authenticated username of the current connection."
    ),
];

static SLOWLOG_SUBS: &[CommandSpec] = &[
    spec!(
        "get",
        -2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "2.2.12",
        S(crate::server::slowlog::slowlog_get),
        "Returns the slow log's entries."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "server",
        "6.2.0",
        S(crate::server::slowlog::slowlog_help),
        "Show helpful text about the different subcommands"
    ),
    spec!(
        "len",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "2.2.12",
        S(crate::server::slowlog::slowlog_len),
        "Returns the number of entries in the slow log."
    ),
    spec!(
        "reset",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        ["admin", "slow", "dangerous"],
        "server",
        "2.2.12",
        S(crate::server::slowlog::slowlog_reset),
        "Clears all entries from the slow log."
    ),
];

static COMMAND_SUBS: &[CommandSpec] = &[
    spec!(
        "count",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "server",
        "2.8.13",
        S(crate::command::command_count),
        "Returns a count of commands."
    ),
    spec!(
        "info",
        -2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "server",
        "2.8.13",
        S(crate::command::command_info),
        "Returns information about one, multiple or all commands."
    ),
    spec!(
        "docs",
        -2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "server",
        "7.0.0",
        S(crate::command::command_docs),
        "Returns documentary information about one, multiple or all commands."
    ),
    spec!(
        "getkeys",
        -3,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "server",
        "2.8.13",
        S(crate::command::command_getkeys),
        "Extracts the key names from an arbitrary command."
    ),
    spec!(
        "list",
        -2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "server",
        "7.0.0",
        S(crate::command::command_list),
        "Returns a list of command names."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow", "connection"],
        "server",
        "5.0.0",
        S(crate::command::introspect::command_help),
        "Returns helpful text about the different subcommands."
    ),
];

static MEMORY_SUBS: &[CommandSpec] = &[
    spec!(
        "doctor",
        2,
        0,
        NO_KEYS,
        ["slow"],
        "server",
        "4.0.0",
        S(srv::memory_doctor),
        "Outputs a memory problems report."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["slow"],
        "server",
        "4.0.0",
        S(srv::memory_help),
        "Returns helpful text about the different subcommands."
    ),
    spec!(
        "malloc-stats",
        2,
        0,
        NO_KEYS,
        ["slow"],
        "server",
        "4.0.0",
        S(srv::memory_malloc_stats),
        "Returns the allocator statistics."
    ),
    spec!(
        "purge",
        2,
        0,
        NO_KEYS,
        ["slow"],
        "server",
        "4.0.0",
        S(srv::memory_purge),
        "Asks the allocator to release memory."
    ),
    spec!(
        "stats",
        2,
        0,
        NO_KEYS,
        ["slow"],
        "server",
        "4.0.0",
        S(srv::memory_stats),
        "Returns details about memory usage."
    ),
    spec!(
        "usage",
        -3,
        READONLY,
        keys(2, 2, 1),
        ["read", "slow"],
        "server",
        "4.0.0",
        R(ks::memory_usage),
        "Estimates the memory usage of a key."
    ),
];

static OBJECT_SUBS: &[CommandSpec] = &[
    spec!(
        "encoding",
        3,
        READONLY,
        keys(2, 2, 1),
        ["keyspace", "read", "slow"],
        "generic",
        "2.2.3",
        R(ks::object_encoding),
        "Returns the internal encoding of a Redis object."
    ),
    spec!(
        "freq",
        3,
        READONLY,
        keys(2, 2, 1),
        ["keyspace", "read", "slow"],
        "generic",
        "4.0.0",
        R(ks::object_freq),
        "Returns the logarithmic access frequency counter of a Redis object."
    ),
    spec!(
        "idletime",
        3,
        READONLY,
        keys(2, 2, 1),
        ["keyspace", "read", "slow"],
        "generic",
        "2.2.3",
        R(ks::object_idletime),
        "Returns the time since the last access to a Redis object."
    ),
    spec!(
        "refcount",
        3,
        READONLY,
        keys(2, 2, 1),
        ["keyspace", "read", "slow"],
        "generic",
        "2.2.3",
        R(ks::object_refcount),
        "Returns the reference count of a value of a key."
    ),
    spec!(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        ["keyspace", "slow"],
        "generic",
        "6.2.0",
        R(ks::object_help),
        "Returns helpful text about the different subcommands."
    ),
];

/// Every command, in the order `COMMAND` lists them.
pub(super) static BASE: &[CommandSpec] = &[
    // connection
    spec!("ping", -1, FAST, NO_KEYS, ["fast", "connection"], "connection", "1.0.0", S(srv::ping), "Returns the server's liveliness response."),
    spec!("echo", 2, FAST, NO_KEYS, ["fast", "connection"], "connection", "1.0.0", S(srv::echo), "Returns the given string."),
    spec!("hello", -1, CONN, NO_KEYS, ["fast", "connection"], "connection", "6.0.0", S(srv::hello), "Handshakes with the Redis server."),
    spec!("auth", -2, CONN, NO_KEYS, ["fast", "connection"], "connection", "1.0.0", S(srv::auth), "Authenticates the connection."),
    spec!("select", 2, LOADING | STALE | FAST, NO_KEYS, ["fast", "connection"], "connection", "1.0.0", S(srv::select), "Changes the selected database."),
    spec!("quit", -1, CONN, NO_KEYS, ["fast", "connection"], "connection", "1.0.0", S(srv::quit), "Closes the connection."),
    spec!("reset", 1, CONN, NO_KEYS, ["fast", "connection"], "connection", "6.2.0", S(srv::reset), "Resets the connection."),
    container!("client", -2, 0, ["slow"], "connection", "2.4.0", Handler::Container, "A container for client connection commands.", CLIENT_SUBS),
    // strings
    spec!("get", 2, READONLY | FAST, ONE_KEY, ["read", "string", "fast"], "string", "1.0.0", R(ks::get), "Returns the string value of a key."),
    spec!("set", -3, WRITE | DENYOOM, ONE_KEY, ["write", "string", "slow"], "string", "1.0.0", W(ks::set), "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    spec!("setnx", 3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "1.0.0", W(ks::setnx), "Set the string value of a key only when the key doesn't exist.").unless_unchanged(ks::setnx_unchanged),
    spec!("setex", 4, WRITE | DENYOOM, ONE_KEY, ["write", "string", "slow"], "string", "2.0.0", W(ks::setex), "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    spec!("psetex", 4, WRITE | DENYOOM, ONE_KEY, ["write", "string", "slow"], "string", "2.6.0", W(ks::psetex), "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    spec!("getset", 3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "1.0.0", W(ks::getset), "Returns the previous string value of a key after setting it to a new value."),
    spec!("getdel", 2, WRITE | FAST, ONE_KEY, ["write", "string", "fast"], "string", "6.2.0", W(ks::getdel), "Returns the string value of a key after deleting the key."),
    spec!("getex", -2, WRITE | FAST, ONE_KEY, ["write", "string", "fast"], "string", "6.2.0", W(ks::getex), "Returns the string value of a key after setting its expiration time."),
    spec!("mget", -2, READONLY | FAST, ALL_KEYS, ["read", "string", "fast"], "string", "1.0.0", R(ks::mget), "Atomically returns the string values of one or more keys."),
    spec!("mset", -3, WRITE | DENYOOM, keys(1, -1, 2), ["write", "string", "slow"], "string", "1.0.1", W(ks::mset), "Atomically creates or modifies the string values of one or more keys."),
    spec!("msetnx", -3, WRITE | DENYOOM, keys(1, -1, 2), ["write", "string", "slow"], "string", "1.0.1", W(ks::msetnx), "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    spec!("append", 3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "2.0.0", W(ks::append), "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec!("strlen", 2, READONLY | FAST, ONE_KEY, ["read", "string", "fast"], "string", "2.2.0", R(ks::strlen), "Returns the length of a string value."),
    spec!("getrange", 4, READONLY, ONE_KEY, ["read", "string", "slow"], "string", "2.4.0", R(ks::getrange), "Returns a substring of the string stored at a key."),
    spec!("setrange", 4, WRITE | DENYOOM, ONE_KEY, ["write", "string", "slow"], "string", "2.2.0", W(ks::setrange), "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    spec!("incr", 2, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "1.0.0", W(ks::incr), "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("decr", 2, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "1.0.0", W(ks::decr), "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec!("incrby", 3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "1.0.0", W(ks::incrby), "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    spec!("decrby", 3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "1.0.0", W(ks::decrby), "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    spec!("incrbyfloat", 3, WRITE | DENYOOM | FAST, ONE_KEY, ["write", "string", "fast"], "string", "2.6.0", W(ks::incrbyfloat), "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    // keys
    spec!("del", -2, WRITE, ALL_KEYS, ["keyspace", "write", "slow"], "generic", "1.0.0", W(ks::del), "Deletes one or more keys.").unless_unchanged(ks::del_unchanged),
    spec!("unlink", -2, WRITE | FAST, ALL_KEYS, ["keyspace", "write", "fast"], "generic", "4.0.0", W(ks::del), "Asynchronously deletes one or more keys.").unless_unchanged(ks::del_unchanged),
    spec!("exists", -2, READONLY | FAST, ALL_KEYS, ["keyspace", "read", "fast"], "generic", "1.0.0", R(ks::exists), "Determines whether one or more keys exist."),
    spec!("touch", -2, READONLY | FAST, ALL_KEYS, ["keyspace", "read", "fast"], "generic", "3.2.1", R(ks::touch), "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    spec!("type", 2, READONLY | FAST, ONE_KEY, ["keyspace", "read", "fast"], "generic", "1.0.0", R(ks::type_of), "Determines the type of value stored at a key."),
    spec!("rename", 3, WRITE, keys(1, 2, 1), ["keyspace", "write", "slow"], "generic", "1.0.0", W(ks::rename), "Renames a key and overwrites the destination."),
    spec!("renamenx", 3, WRITE | FAST, keys(1, 2, 1), ["keyspace", "write", "fast"], "generic", "1.0.0", W(ks::renamenx), "Renames a key only when the target key name doesn't exist."),
    spec!("copy", -3, WRITE | DENYOOM, keys(1, 2, 1), ["keyspace", "write", "slow"], "generic", "6.2.0", W(ks::copy), "Copies the value of a key to a new key."),
    spec!("move", 3, WRITE | FAST, ONE_KEY, ["keyspace", "write", "fast"], "generic", "1.0.0", W(ks::move_key), "Moves a key to another database."),
    spec!("keys", 2, READONLY, NO_KEYS, ["keyspace", "read", "slow", "dangerous"], "generic", "1.0.0", R(ks::keys), "Returns all key names that match a pattern."),
    spec!("scan", -2, READONLY, NO_KEYS, ["keyspace", "read", "slow"], "generic", "2.8.0", R(ks::scan), "Iterates over the key names in the database."),
    spec!("randomkey", 1, READONLY, NO_KEYS, ["keyspace", "read", "slow"], "generic", "1.0.0", R(ks::randomkey), "Returns a random key name from the database."),
    spec!("dbsize", 1, READONLY | FAST, NO_KEYS, ["keyspace", "read", "fast"], "server", "1.0.0", R(ks::dbsize), "Returns the number of keys in the database."),
    spec!("flushdb", -1, WRITE, NO_KEYS, ["keyspace", "write", "slow", "dangerous"], "server", "1.0.0", W(ks::flushdb), "Removes all keys from the current database."),
    spec!("flushall", -1, WRITE, NO_KEYS, ["keyspace", "write", "slow", "dangerous"], "server", "1.0.0", W(ks::flushall), "Removes all keys from all databases."),
    spec!("expire", -3, WRITE | FAST, ONE_KEY, ["keyspace", "write", "fast"], "generic", "1.0.0", W(ks::expire), "Sets the expiration time of a key in seconds."),
    spec!("pexpire", -3, WRITE | FAST, ONE_KEY, ["keyspace", "write", "fast"], "generic", "2.6.0", W(ks::pexpire), "Sets the expiration time of a key in milliseconds."),
    spec!("expireat", -3, WRITE | FAST, ONE_KEY, ["keyspace", "write", "fast"], "generic", "1.2.0", W(ks::expireat), "Sets the expiration time of a key to a Unix timestamp."),
    spec!("pexpireat", -3, WRITE | FAST, ONE_KEY, ["keyspace", "write", "fast"], "generic", "2.6.0", W(ks::pexpireat), "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("ttl", 2, READONLY | FAST, ONE_KEY, ["keyspace", "read", "fast"], "generic", "1.0.0", R(ks::ttl), "Returns the expiration time in seconds of a key."),
    spec!("pttl", 2, READONLY | FAST, ONE_KEY, ["keyspace", "read", "fast"], "generic", "2.6.0", R(ks::pttl), "Returns the expiration time in milliseconds of a key."),
    spec!("expiretime", 2, READONLY | FAST, ONE_KEY, ["keyspace", "read", "fast"], "generic", "7.0.0", R(ks::expiretime), "Returns the expiration time of a key as a Unix timestamp."),
    spec!("pexpiretime", 2, READONLY | FAST, ONE_KEY, ["keyspace", "read", "fast"], "generic", "7.0.0", R(ks::pexpiretime), "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec!("persist", 2, WRITE | FAST, ONE_KEY, ["keyspace", "write", "fast"], "generic", "2.2.0", W(ks::persist), "Removes the expiration time of a key."),
    container!("object", -2, 0, ["slow"], "generic", "2.2.3", Handler::Container, "A container for object introspection commands.", OBJECT_SUBS),
    // server
    spec!("info", -1, LOADING | STALE, NO_KEYS, ["slow", "dangerous"], "server", "1.0.0", S(srv::info), "Returns information and statistics about the server."),
    spec!("time", 1, LOADING | STALE | FAST, NO_KEYS, ["fast"], "server", "2.6.0", S(srv::time), "Returns the server time."),
    spec!("role", 1, NOSCRIPT | LOADING | STALE | FAST, NO_KEYS, ["admin", "fast", "dangerous"], "server", "2.8.12", S(srv::role), "Returns the replication role."),
    spec!("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, NO_KEYS, ["admin", "slow", "dangerous"], "server", "1.0.0", S(srv::shutdown), "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    container!("config", -2, 0, ["slow"], "server", "2.0.0", Handler::Container, "A container for server configuration commands.", CONFIG_SUBS),
    container!("memory", -2, 0, ["slow"], "server", "4.0.0", Handler::Container, "A container for memory diagnostics commands.", MEMORY_SUBS),
    container!("slowlog", -2, 0, ["slow"], "server", "2.2.12", Handler::Container, "A container for slow log commands.", SLOWLOG_SUBS),
    spec!("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI, NO_KEYS, ["admin", "slow", "dangerous"], "server", "1.0.0", S(srv::monitor), "Listens for all requests received by the server in real-time."),
    container!("acl", -2, 0, ["slow"], "server", "6.0.0", Handler::Container, "A container for Access List Control commands.", ACL_SUBS),
    container!("command", -1, LOADING | STALE, ["slow", "connection"], "server", "2.8.13", S(crate::command::introspect::command_all), "Returns detailed information about all commands.", COMMAND_SUBS),
];
