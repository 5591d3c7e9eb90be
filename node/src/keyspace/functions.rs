//! Redis 7 functions: the library registry (`FUNCTION LOAD|DELETE|FLUSH|LIST|DUMP|RESTORE|
//! STATS`) and calling a registered function (`FCALL`, `FCALL_RO`).
//!
//! Libraries are replicated state like keys: `FUNCTION LOAD` is a log entry, so every replica
//! holds the same libraries, and they travel in snapshots. A library is stored as its code;
//! each call runs the code in a fresh Lua state (see `scripting.rs`), so nothing a call
//! leaves behind can make replicas differ.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::scripting::{self, script_flag, Program};
use super::{owned, ReadCtx, WriteCtx};
use crate::resp::Frame;

/// A loaded library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Library {
    /// The name from its `#!lua name=...` line (case-sensitive, as in Redis).
    pub name: String,
    /// The code as loaded, shebang line included.
    pub code: Bytes,
    /// What the code registered, in registration order.
    pub functions: Vec<FunctionInfo>,
}

/// A function a library registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionInfo {
    /// Its name; `FCALL` finds it ignoring case.
    pub name: String,
    /// The `description` it was registered with.
    pub description: Option<String>,
    /// [`script_flag`] bits.
    pub flags: u32,
}

/// The only engine, under the name Redis gives it.
const ENGINE: &str = "LUA";

/// Whether a library or function name is Redis's `[a-zA-Z0-9_]+`.
pub(super) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A library's `#!<engine> name=<name>` line, parsed.
struct Metadata<'a> {
    engine: String,
    name: String,
    /// The code after the shebang line, starting at its newline so lines count from the
    /// top of what the client sent.
    code: &'a [u8],
}

fn parse_metadata(payload: &[u8]) -> Result<Metadata<'_>, String> {
    if !payload.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = payload.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&payload[..end]);
    let parts = match crate::resp::split_command_line(&line) {
        Some(parts) if !parts.is_empty() => parts,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name = None;
    for part in &parts[1..] {
        let text = String::from_utf8_lossy(part);
        if text.len() >= 5 && text[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(text[5..].to_string());
            continue;
        }
        return Err(format!("Invalid metadata value given: {text}"));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    Ok(Metadata {
        engine,
        name,
        code: &payload[end..],
    })
}

fn error(text: impl std::fmt::Display) -> Frame {
    Frame::error(format!("ERR {text}"))
}

/// Compiles a library and runs its top level; the library it describes, or the error.
fn build_library(payload: &Bytes) -> Result<Library, Frame> {
    let metadata = parse_metadata(payload).map_err(error)?;
    if !is_valid_name(&metadata.name) {
        return Err(error("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    if !metadata.engine.eq_ignore_ascii_case(ENGINE) {
        return Err(error(format!("Engine '{}' not found", metadata.engine)));
    }
    let functions = scripting::load_library(metadata.code)?;
    if functions.is_empty() {
        return Err(error("No functions registered"));
    }
    Ok(Library {
        name: metadata.name,
        code: owned(payload),
        functions: functions
            .into_iter()
            .map(|(name, description, flags)| FunctionInfo {
                name,
                description,
                flags,
            })
            .collect(),
    })
}

/// The first function of `library` that another library (other than `replacing`) already
/// registers.
fn colliding_function<'l>(
    libraries: &imbl::OrdMap<String, Library>,
    library: &'l Library,
    replacing: Option<&str>,
) -> Option<&'l str> {
    library
        .functions
        .iter()
        .find(|new| {
            libraries
                .values()
                .filter(|other| Some(other.name.as_str()) != replacing)
                .flat_map(|other| other.functions.iter())
                .any(|old| old.name.eq_ignore_ascii_case(&new.name))
        })
        .map(|f| f.name.as_str())
}

/// FUNCTION LOAD [REPLACE] function-code
pub fn function_load(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let mut replace = false;
    let mut at = 2;
    while at < args.len() - 1 {
        if args[at].eq_ignore_ascii_case(b"replace") {
            replace = true;
            at += 1;
            continue;
        }
        return error(format!(
            "Unknown option given: {}",
            String::from_utf8_lossy(&args[at])
        ));
    }
    let Some(code) = args.get(at) else {
        return error("Function code is missing");
    };
    // The cheap checks first, as Redis orders them, before any Lua runs.
    if let Ok(metadata) = parse_metadata(code) {
        if !replace
            && is_valid_name(&metadata.name)
            && metadata.engine.eq_ignore_ascii_case(ENGINE)
            && ctx.keyspace.libraries.contains_key(&metadata.name)
        {
            return error(format!("Library '{}' already exists", metadata.name));
        }
    }
    let library = match build_library(code) {
        Ok(library) => library,
        Err(reply) => return reply,
    };
    let libraries = &mut ctx.keyspace.libraries;
    if !replace && libraries.contains_key(&library.name) {
        return error(format!("Library '{}' already exists", library.name));
    }
    if let Some(name) = colliding_function(libraries, &library, Some(&library.name)) {
        return error(format!("Function {name} already exists"));
    }
    let name = library.name.clone();
    libraries.insert(name.clone(), library);
    Frame::bulk(name)
}

/// FUNCTION DELETE library-name
pub fn function_delete(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let name = String::from_utf8_lossy(&args[2]);
    match ctx.keyspace.libraries.remove(name.as_ref()) {
        Some(_) => Frame::ok(),
        None => error("Library not found"),
    }
}

/// `ERR unknown subcommand or wrong number of arguments for 'sub'. Try FUNCTION HELP.`
fn subcommand_syntax(args: &[Bytes]) -> Frame {
    error(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(&args[1])
    ))
}

/// FUNCTION FLUSH [ASYNC|SYNC]
pub fn function_flush(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    match args {
        [_, _] => {}
        [_, _, mode]
            if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {}
        [_, _, _] => return error("FUNCTION FLUSH only supports SYNC|ASYNC option"),
        _ => return subcommand_syntax(args),
    }
    ctx.keyspace.libraries = imbl::OrdMap::new();
    Frame::ok()
}

fn flags_frame(flags: u32) -> Frame {
    Frame::Set(
        script_flag::NAMES
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| Frame::Simple((*name).to_string()))
            .collect(),
    )
}

/// FUNCTION LIST [LIBRARYNAME library-name-pattern] [WITHCODE]
pub fn function_list(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let mut with_code = false;
    let mut pattern: Option<&Bytes> = None;
    let mut at = 2;
    while at < args.len() {
        let arg = &args[at];
        if !with_code && arg.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if pattern.is_none() && arg.eq_ignore_ascii_case(b"libraryname") {
            let Some(given) = args.get(at + 1) else {
                return error("library name argument was not given");
            };
            pattern = Some(given);
            at += 1;
        } else {
            return error(format!("Unknown argument {}", String::from_utf8_lossy(arg)));
        }
        at += 1;
    }
    let libraries = ctx
        .keyspace
        .libraries
        .values()
        .filter(|library| {
            pattern.is_none_or(|p| super::glob::matches(p, library.name.as_bytes(), true))
        })
        .map(|library| {
            let functions = library
                .functions
                .iter()
                .map(|function| {
                    Frame::Map(vec![
                        (Frame::bulk("name"), Frame::bulk(function.name.clone())),
                        (
                            Frame::bulk("description"),
                            function
                                .description
                                .clone()
                                .map_or(Frame::Null, Frame::bulk),
                        ),
                        (Frame::bulk("flags"), flags_frame(function.flags)),
                    ])
                })
                .collect();
            let mut fields = vec![
                (
                    Frame::bulk("library_name"),
                    Frame::bulk(library.name.clone()),
                ),
                (Frame::bulk("engine"), Frame::bulk(ENGINE)),
                (Frame::bulk("functions"), Frame::Array(functions)),
            ];
            if with_code {
                fields.push((
                    Frame::bulk("library_code"),
                    Frame::Bulk(library.code.clone()),
                ));
            }
            Frame::Map(fields)
        })
        .collect();
    Frame::Array(libraries)
}

/// FUNCTION STATS: no function is ever running when another command is served (a call
/// runs inside one entry's apply).
pub fn function_stats(ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    let libraries = &ctx.keyspace.libraries;
    let functions: usize = libraries.values().map(|l| l.functions.len()).sum();
    Frame::Map(vec![
        (Frame::bulk("running_script"), Frame::Null),
        (
            Frame::bulk("engines"),
            Frame::Map(vec![(
                Frame::bulk(ENGINE),
                Frame::Map(vec![
                    (
                        Frame::bulk("libraries_count"),
                        Frame::Integer(libraries.len() as i64),
                    ),
                    (
                        Frame::bulk("functions_count"),
                        Frame::Integer(functions as i64),
                    ),
                ]),
            )]),
        ),
    ])
}

/// The version of [`function_dump`]'s payload format.
const DUMP_VERSION: u16 = 1;

/// FUNCTION DUMP: every library's code, versioned and checksummed like Redis's payload (the
/// bytes are cellkv's own: `FUNCTION RESTORE` on cellkv reads them back).
pub fn function_dump(ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    let codes: Vec<&Bytes> = ctx.keyspace.libraries.values().map(|l| &l.code).collect();
    let mut payload = match postcard::to_stdvec(&codes) {
        Ok(bytes) => bytes,
        Err(e) => return error(format!("failed to encode the libraries: {e}")),
    };
    payload.extend_from_slice(&DUMP_VERSION.to_le_bytes());
    let checksum = xxhash_rust::xxh3::xxh3_64(&payload);
    payload.extend_from_slice(&checksum.to_le_bytes());
    Frame::Bulk(Bytes::from(payload))
}

/// The library codes in a [`function_dump`] payload, if its version and checksum hold.
fn read_dump(payload: &[u8]) -> Option<Vec<Bytes>> {
    let split = payload.len().checked_sub(10)?;
    let (body, trailer) = payload.split_at(split);
    let (version, checksum) = trailer.split_at(2);
    if u16::from_le_bytes(version.try_into().ok()?) != DUMP_VERSION {
        return None;
    }
    let signed = &payload[..split + 2];
    if xxhash_rust::xxh3::xxh3_64(signed) != u64::from_le_bytes(checksum.try_into().ok()?) {
        return None;
    }
    postcard::from_bytes(body).ok()
}

/// FUNCTION RESTORE serialized-value [FLUSH|APPEND|REPLACE]
pub fn function_restore(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    if args.len() > 4 {
        return subcommand_syntax(args);
    }
    #[derive(PartialEq)]
    enum Policy {
        Flush,
        Append,
        Replace,
    }
    let policy = match args.get(3) {
        None => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"append") => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"replace") => Policy::Replace,
        Some(p) if p.eq_ignore_ascii_case(b"flush") => Policy::Flush,
        Some(_) => {
            return error(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            )
        }
    };
    let Some(codes) = read_dump(&args[2]) else {
        return error("DUMP payload version or checksum are wrong");
    };
    let mut restored: imbl::OrdMap<String, Library> = imbl::OrdMap::new();
    for code in &codes {
        let library = match build_library(code) {
            Ok(library) => library,
            Err(reply) => return reply,
        };
        if restored.contains_key(&library.name) {
            return error(format!("Library {} already exists", library.name));
        }
        if let Some(name) = colliding_function(&restored, &library, None) {
            return error(format!("Function {name} already exists"));
        }
        restored.insert(library.name.clone(), library);
    }
    if policy == Policy::Flush {
        ctx.keyspace.libraries = restored;
        return Frame::ok();
    }
    let mut joined = ctx.keyspace.libraries.clone();
    for name in restored.keys() {
        if joined.contains_key(name) {
            if policy == Policy::Append {
                return error(format!("Library {name} already exists"));
            }
            joined.remove(name);
        }
    }
    for library in restored.values() {
        if let Some(name) = colliding_function(&joined, library, None) {
            return error(format!("Function {name} already exists"));
        }
    }
    joined.extend(restored);
    ctx.keyspace.libraries = joined;
    Frame::ok()
}

/// FUNCTION HELP
pub fn function_help(_ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    super::help_lines(
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    )
}

/// The library holding a function (found ignoring case) and the function.
fn find_function<'k>(
    libraries: &'k imbl::OrdMap<String, Library>,
    name: &[u8],
) -> Option<(&'k Library, &'k FunctionInfo)> {
    let name = String::from_utf8_lossy(name);
    libraries.values().find_map(|library| {
        library
            .functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(&name))
            .map(|f| (library, f))
    })
}

/// What `FCALL` and `FCALL_RO` check before running: the function, its code and keys.
struct Call<'a> {
    code: Bytes,
    name: String,
    flags: u32,
    keys: &'a [Bytes],
    argv: &'a [Bytes],
}

fn prepare_call<'a>(
    libraries: &imbl::OrdMap<String, Library>,
    args: &'a [Bytes],
) -> Result<Call<'a>, Frame> {
    let Some((library, function)) = find_function(libraries, &args[1]) else {
        return Err(error("Function not found"));
    };
    let (keys, argv) = scripting::keys_and_argv(&args[2..], "ERR Bad number of keys provided")?;
    Ok(Call {
        code: library.code.clone(),
        name: function.name.clone(),
        flags: function.flags,
        keys,
        argv,
    })
}

/// The code Lua runs for a library: what follows its shebang line.
fn library_body(code: &Bytes) -> &[u8] {
    match parse_metadata(code) {
        Ok(metadata) => metadata.code,
        // Stored libraries were parsed when loaded; nothing else reaches here.
        Err(_) => code,
    }
}

/// FCALL function numkeys [key ...] [arg ...]: inside apply.
pub fn fcall(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let call = match prepare_call(&ctx.keyspace.libraries, args) {
        Ok(call) => call,
        Err(reply) => return reply,
    };
    let program = Program::Function {
        code: library_body(&call.code),
        name: &call.name,
    };
    let read_only = call.flags & script_flag::NO_WRITES != 0;
    scripting::run_in_apply(ctx, &program, read_only, call.keys, call.argv)
}

/// FCALL_RO function numkeys [key ...] [arg ...]: on the read path, for `no-writes`
/// functions only.
pub fn fcall_ro(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let call = match prepare_call(&ctx.keyspace.libraries, args) {
        Ok(call) => call,
        Err(reply) => return reply,
    };
    if call.flags & script_flag::NO_WRITES == 0 {
        return error("Can not execute a script with write flag using *_ro command.");
    }
    let program = Program::Function {
        code: library_body(&call.code),
        name: &call.name,
    };
    scripting::run_on_read_path(ctx, &program, call.keys, call.argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::check_transcript;
    use crate::keyspace::{Keyspace, Op, Request};

    const HELLO: &str = "function load \"#!lua name=mylib\\nredis.register_function('hello', function(keys, args) return 'hi ' .. args[1] end)\"";

    #[test]
    fn load_call_replace_and_delete() {
        check_transcript(&[
            ("fcall hello 0 bob", "-ERR Function not found\n", ""),
            (HELLO, "$5\nmylib\n", ""),
            ("fcall hello 0 bob", "$6\nhi bob\n", ""),
            ("fcall HeLLo 0 ann", "$6\nhi ann\n", ""),
            ("fcall hello x", "-ERR Bad number of keys provided\n", ""),
            (
                "fcall hello 2 k",
                "-ERR Number of keys can't be greater than number of args\n",
                "",
            ),
            ("fcall hello -1", "-ERR Number of keys can't be negative\n", ""),
            (HELLO, "-ERR Library 'mylib' already exists\n", ""),
            (
                "function load replace \"#!lua name=mylib\\nredis.register_function('hello', function(keys, args) return #keys end)\"",
                "$5\nmylib\n",
                "",
            ),
            ("fcall hello 2 a b c", ":2\n", ""),
            (
                "fcall_ro hello 0",
                "-ERR Can not execute a script with write flag using *_ro command.\n",
                "",
            ),
            (
                "function load \"#!lua name=other\\nredis.register_function('HELLO', function() return 1 end)\"",
                "-ERR Function HELLO already exists\n",
                "",
            ),
            ("function delete mylib", "+OK\n", ""),
            ("function delete mylib", "-ERR Library not found\n", ""),
            ("fcall hello 0", "-ERR Function not found\n", ""),
            ("function load nope \"#!lua name=x\\n\"", "-ERR Unknown option given: nope\n", ""),
        ]);
    }

    #[test]
    fn load_errors_follow_redis() {
        check_transcript(&[
            ("function load \"return 1\"", "-ERR Missing library metadata\n", ""),
            ("function load \"#!lua name=x\"", "-ERR Invalid library metadata\n", ""),
            ("function load \"#!lua\\n\"", "-ERR Library name was not given\n", ""),
            (
                "function load \"#!lua name=a name=b\\n\"",
                "-ERR Invalid metadata value, name argument was given multiple times\n",
                "",
            ),
            (
                "function load \"#!lua name=a version=2\\n\"",
                "-ERR Invalid metadata value given: version=2\n",
                "",
            ),
            (
                "function load \"#!lua name=bad-name\\n\"",
                "-ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long\n",
                "",
            ),
            (
                "function load \"#!js name=x\\n\"",
                "-ERR Engine 'js' not found\n",
                "",
            ),
            ("function load \"#!lua name=x\\nlocal a = 1\"", "-ERR No functions registered\n", ""),
            (
                "function load \"#!lua name=x\\n\\nreturn (\"",
                "-ERR Error compiling function: user_function:3: unexpected symbol near '<eof>'\n",
                "",
            ),
            (
                "function load \"#!lua name=x\\nredis.call('set', 'k', 'v')\"",
                "-ERR Error registering functions: user_function:2: attempt to call field 'call' (a nil value)\n",
                "",
            ),
            (
                "function load \"#!lua name=x\\nlocal s = string.len('a')\"",
                "-ERR Error registering functions: user_function:2: Script attempted to access nonexistent global variable 'string'\n",
                "",
            ),
            (
                "function load \"#!lua name=x\\nredis.register_function('f', function() end)\\nredis.register_function('f', function() end)\"",
                "-ERR Error registering functions: Function already exists in the library\n",
                "",
            ),
            (
                "function load \"#!lua name=x\\nredis.register_function{function_name='f', callback=function() end, flags={'bogus'}}\"",
                "-ERR Error registering functions: unknown flag given\n",
                "",
            ),
            (
                "function load \"#!lua name=x\\nredis.register_function('f-g', function() end)\"",
                "-ERR Error registering functions: Library names can only contain letters, numbers, or underscores(_) and must be at least one character long\n",
                "",
            ),
            (
                "function load \"#!lua name=x\\nredis.register_function('f')\"",
                "-ERR Error registering functions: calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).\n",
                "",
            ),
            ("function list", "*0\n", ""),
        ]);
    }

    const LIST2: &str = "*1\n*6\n$12\nlibrary_name\n$2\nro\n$6\nengine\n$3\nLUA\n$9\nfunctions\n*2\n*6\n$4\nname\n$4\npeek\n$11\ndescription\n$13\nreads one key\n$5\nflags\n*1\n+no-writes\n*6\n$4\nname\n$4\npoke\n$11\ndescription\n$-1\n$5\nflags\n*0\n";
    const LIST3: &str = "*1\n%3\n$12\nlibrary_name\n$2\nro\n$6\nengine\n$3\nLUA\n$9\nfunctions\n*2\n%3\n$4\nname\n$4\npeek\n$11\ndescription\n$13\nreads one key\n$5\nflags\n~1\n+no-writes\n%3\n$4\nname\n$4\npoke\n$11\ndescription\n_\n$5\nflags\n~0\n";

    #[test]
    fn flags_descriptions_list_and_stats() {
        let lib = "function load \"#!lua name=ro\\nredis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads one key'}\\nredis.register_function('poke', function(keys, args) return redis.call('set', keys[1], args[1]) end)\"";
        check_transcript(&[
            (lib, "$2\nro\n", ""),
            ("fcall poke 1 k v", "+OK\n", ""),
            ("fcall_ro peek 1 k", "$1\nv\n", ""),
            ("fcall peek 1 k", "$1\nv\n", ""),
            ("function list", LIST2, LIST3),
            ("function list libraryname R*", LIST2, LIST3),
            ("function list libraryname x*", "*0\n", ""),
            ("function list libraryname", "-ERR library name argument was not given\n", ""),
            ("function list bogus", "-ERR Unknown argument bogus\n", ""),
            (
                "function stats",
                "*4\n$14\nrunning_script\n$-1\n$7\nengines\n*2\n$3\nLUA\n*4\n$15\nlibraries_count\n:1\n$15\nfunctions_count\n:2\n",
                "%2\n$14\nrunning_script\n_\n$7\nengines\n%1\n$3\nLUA\n%2\n$15\nlibraries_count\n:1\n$15\nfunctions_count\n:2\n",
            ),
            ("function kill", "-NOTBUSY No scripts in execution right now.\n", ""),
            ("function flush bogus", "-ERR FUNCTION FLUSH only supports SYNC|ASYNC option\n", ""),
            ("function flush sync", "+OK\n", ""),
            ("function list", "*0\n", ""),
        ]);
    }

    #[test]
    fn no_writes_functions_refuse_writes_and_errors_name_the_function() {
        check_transcript(&[
            (
                "function load \"#!lua name=lib\\nredis.register_function{function_name='sneaky', callback=function() return redis.call('set', 'k', 'v') end, flags={'no-writes'}}\\nredis.register_function('boom', function()\\n  error('bad')\\nend)\\nredis.register_function('incrs', function()\\n  redis.call('set', 'a', 1)\\n  return redis.call('incr', 's')\\nend)\"",
                "$3\nlib\n",
                "",
            ),
            (
                "fcall sneaky 0",
                "-ERR Write commands are not allowed from read-only scripts. script: sneaky, on @user_function:2.\n",
                "",
            ),
            ("exists k", ":0\n", ""),
            (
                "fcall boom 0",
                "-ERR user_function:4: bad script: boom, on @user_function:4.\n",
                "",
            ),
            ("set s abc", "+OK\n", ""),
            (
                "fcall incrs 0",
                "-ERR value is not an integer or out of range script: incrs, on @user_function:8.\n",
                "",
            ),
            // The write before the error stays, as in Redis.
            ("get a", "$1\n1\n", ""),
        ]);
    }

    fn apply(ks: &mut Keyspace, index: u64, line: &str) -> Frame {
        let args = crate::resp::split_command_line(line).unwrap_or_default();
        ks.apply(
            index,
            &Request {
                time_ms: 1_700_000_000_000 + index,
                op: Op::Command { db: 0, args },
            },
        )
    }

    #[test]
    fn dump_and_restore_with_each_policy() {
        let mut ks = Keyspace::new();
        apply(&mut ks, 1, HELLO);
        let ctx = ReadCtx {
            keyspace: &ks,
            db: 0,
            now_ms: 0,
            seed: 0,
            touch: true,
            user: None,
        };
        let Frame::Bulk(payload) = function_dump(&ctx, &[]) else {
            panic!("dump is not a bulk string")
        };
        let restore = |ks: &mut Keyspace, index: u64, policy: &[&[u8]]| {
            let mut args = vec![
                Bytes::from_static(b"function"),
                Bytes::from_static(b"restore"),
                payload.clone(),
            ];
            args.extend(policy.iter().map(|p| Bytes::copy_from_slice(p)));
            ks.apply(
                index,
                &Request {
                    time_ms: 0,
                    op: Op::Command { db: 0, args },
                },
            )
        };
        assert_eq!(
            restore(&mut ks, 2, &[]),
            Frame::error("ERR Library mylib already exists")
        );
        assert_eq!(restore(&mut ks, 3, &[b"replace"]), Frame::ok());
        assert_eq!(
            restore(&mut ks, 4, &[b"merge"]),
            Frame::error(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
            )
        );
        apply(&mut ks, 5, "function flush");
        assert_eq!(
            apply(&mut ks, 6, "fcall hello 0 x"),
            Frame::error("ERR Function not found")
        );
        assert_eq!(restore(&mut ks, 7, &[]), Frame::ok());
        assert_eq!(apply(&mut ks, 8, "fcall hello 0 x"), Frame::bulk("hi x"));
        apply(
            &mut ks,
            9,
            "function load \"#!lua name=b\\nredis.register_function('bee', function() return 2 end)\"",
        );
        assert_eq!(restore(&mut ks, 10, &[b"flush"]), Frame::ok());
        assert_eq!(
            apply(&mut ks, 11, "fcall bee 0"),
            Frame::error("ERR Function not found")
        );
        // A payload with a flipped bit is refused whole.
        let mut bad = payload.to_vec();
        bad[0] ^= 1;
        let reply = ks.apply(
            12,
            &Request {
                time_ms: 0,
                op: Op::Command {
                    db: 0,
                    args: vec![
                        Bytes::from_static(b"function"),
                        Bytes::from_static(b"restore"),
                        Bytes::from(bad),
                    ],
                },
            },
        );
        assert_eq!(
            reply,
            Frame::error("ERR DUMP payload version or checksum are wrong")
        );
    }

    #[test]
    fn libraries_survive_snapshots() {
        let mut ks = Keyspace::new();
        apply(&mut ks, 1, HELLO);
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        let mut back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read");
        assert_eq!(back.libraries, ks.libraries);
        assert_eq!(apply(&mut back, 2, "fcall hello 0 z"), Frame::bulk("hi z"));
    }

    /// A function that draws random numbers and reads TIME gives the same state on two
    /// replicas applying the same entry.
    #[test]
    fn replicas_agree_on_a_function_run() {
        let lib = "function load \"#!lua name=dice\\nredis.register_function('roll', function(keys) local t = redis.call('time'); redis.call('set', keys[1], t[1] .. ':' .. math.random(1, 1000000)); return redis.call('get', keys[1]) end)\"";
        let mut first = Keyspace::new();
        let mut second = Keyspace::new();
        for ks in [&mut first, &mut second] {
            apply(ks, 1, lib);
        }
        let a = apply(&mut first, 2, "fcall roll 1 k");
        let b = apply(&mut second, 2, "fcall roll 1 k");
        assert_eq!(a, b);
        let Frame::Bulk(text) = &a else {
            panic!("{a:?}")
        };
        assert!(text.starts_with(b"1700000000:"), "{text:?}");
        let mut third = Keyspace::new();
        apply(&mut third, 1, lib);
        assert_ne!(apply(&mut third, 3, "fcall roll 1 k"), a);
    }
}
