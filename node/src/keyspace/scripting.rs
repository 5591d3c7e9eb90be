//! Lua scripting as Redis has it: `EVAL`, `EVALSHA`, their read-only forms, `SCRIPT`, and
//! the Lua engine that also runs the functions of `FUNCTION LOAD` libraries.
//!
//! A write script is one log entry and runs inside apply on every replica, so everything it
//! can observe is replicated state or comes from the entry: `TIME` is the entry's time,
//! `math.random` draws from a generator seeded by the log index, and each run gets a fresh Lua
//! state (nothing a script leaves behind can differ between replicas). A runaway script is
//! stopped after a fixed number of Lua instructions, never by wall time. Loaded scripts are
//! part of the keyspace (and of its snapshots), so `EVALSHA` finds the same scripts on every
//! node and after a restart. Read-only scripts (`EVAL_RO`, `EVALSHA_RO`) run on the read path.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use bytes::Bytes;
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value as LuaValue, VmState,
};

use super::{owned, seed_from_index, ReadCtx, Rng, WriteCtx};
use crate::command::{self, errors as err, flag, Handler, Resolved};
use crate::resp::{format_double, Frame};

/// Lua instructions a script may run before it is stopped (Redis stops scripts by time, which
/// replicas could not agree on; this is a few seconds of Lua on current hardware).
pub const INSTRUCTION_LIMIT: u64 = 500_000_000;

/// How often the instruction hook runs.
const HOOK_EVERY: u32 = 100_000;

/// Script and function flags (`#!lua flags=...`, `redis.register_function{flags=...}`).
pub mod script_flag {
    /// The script may not write (`FCALL_RO` and `EVAL_RO` accept only such code).
    pub const NO_WRITES: u32 = 1 << 0;
    /// Accepted for compatibility; memory limits come with eviction.
    pub const ALLOW_OOM: u32 = 1 << 1;
    /// Accepted for compatibility.
    pub const ALLOW_STALE: u32 = 1 << 2;
    /// Accepted for compatibility: cellkv is not a Redis Cluster.
    pub const NO_CLUSTER: u32 = 1 << 3;
    /// Accepted for compatibility: cellkv is not a Redis Cluster.
    pub const ALLOW_CROSS_SLOT_KEYS: u32 = 1 << 4;
    /// Names in Redis's order, which `FUNCTION LIST` follows.
    pub const NAMES: &[(u32, &str)] = &[
        (NO_WRITES, "no-writes"),
        (ALLOW_OOM, "allow-oom"),
        (ALLOW_STALE, "allow-stale"),
        (NO_CLUSTER, "no-cluster"),
        (ALLOW_CROSS_SLOT_KEYS, "allow-cross-slot-keys"),
    ];
}

/// The hex SHA1 of a script body, its name in the script cache.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// How a script's `redis.call` runs commands.
trait Caller {
    /// Runs one command for the script.
    fn call(&mut self, args: &[Bytes]) -> Frame;
}

/// Inside apply: writes allowed unless the script is flagged `no-writes`.
pub(super) struct ApplyCaller<'c, 'k> {
    ctx: &'c mut WriteCtx<'k>,
    read_only: bool,
}

impl Caller for ApplyCaller<'_, '_> {
    fn call(&mut self, args: &[Bytes]) -> Frame {
        let spec = match prepare(args) {
            Ok(spec) => spec,
            Err(reply) => return reply,
        };
        let user = self.ctx.keyspace.acting_user();
        if let Some(denied) = super::acl_refusal(user, spec, args) {
            return Frame::error(denied.reply_text(user.map_or("", |u| u.name())));
        }
        match spec.handler {
            Handler::Write(_) if self.read_only => Frame::error(WRITE_FROM_READ_ONLY),
            // Judged per call, as Redis judges a script's growing calls under `maxmemory`.
            Handler::Write(_)
                if spec.flags & command::flag::DENYOOM != 0
                    && self.ctx.keyspace.refuses_growth() =>
            {
                Frame::error(super::memory::OOM)
            }
            Handler::Write(run) => run(self.ctx, args),
            Handler::Read(run) => run(&self.ctx.as_read(), args),
            _ => match spec.name {
                "publish" if self.read_only => Frame::error(WRITE_FROM_READ_ONLY),
                "publish" => {
                    if let [_, channel, message] = args {
                        self.ctx.publish(channel, message);
                    }
                    Frame::Integer(0)
                }
                "select" => match args.get(1).and_then(|d| command::parse_i64(d)) {
                    Some(db) if (0..super::DATABASES as i64).contains(&db) => {
                        self.ctx.db = db as u32;
                        Frame::ok()
                    }
                    Some(_) => Frame::error(err::DB_INDEX_OUT_OF_RANGE),
                    None => Frame::error(err::NOT_INTEGER),
                },
                other => session_command(other, args, self.ctx.now_ms),
            },
        }
    }
}

/// On the read path: a write is refused.
struct ReadCaller<'c, 'k> {
    ctx: &'c ReadCtx<'k>,
}

impl Caller for ReadCaller<'_, '_> {
    fn call(&mut self, args: &[Bytes]) -> Frame {
        let spec = match prepare(args) {
            Ok(spec) => spec,
            Err(reply) => return reply,
        };
        if let Some(denied) = super::acl_refusal(self.ctx.user, spec, args) {
            let name = self.ctx.user.map_or("", |u| u.name());
            return Frame::error(denied.reply_text(name));
        }
        match spec.handler {
            Handler::Write(_) => Frame::error(WRITE_FROM_READ_ONLY),
            Handler::Read(run) => run(self.ctx, args),
            _ if spec.name == "publish" => Frame::error(WRITE_FROM_READ_ONLY),
            _ => session_command(spec.name, args, self.ctx.now_ms),
        }
    }
}

const WRITE_FROM_READ_ONLY: &str = "ERR Write commands are not allowed from read-only scripts.";

/// Resolves a command a script called, refusing what Redis refuses in scripts.
fn prepare(args: &[Bytes]) -> Result<&'static command::CommandSpec, Frame> {
    if args.is_empty() {
        return Err(Frame::error(
            "ERR Please specify at least one argument for this redis lib call",
        ));
    }
    match command::resolve(args) {
        Resolved::Error(text) if text.starts_with("ERR unknown command") => {
            Err(Frame::error("ERR Unknown Redis command called from script"))
        }
        Resolved::Error(text) => Err(Frame::Error(text)),
        Resolved::Command(spec) if spec.flags & flag::NOSCRIPT != 0 => Err(Frame::error(
            "ERR This Redis command is not allowed from script",
        )),
        Resolved::Command(spec) => Ok(spec),
    }
}

/// The connection and server commands a script may call, answered from the entry.
fn session_command(name: &str, args: &[Bytes], now_ms: u64) -> Frame {
    match name {
        "time" => Frame::Array(vec![
            Frame::bulk((now_ms / 1000).to_string()),
            Frame::bulk(((now_ms % 1000) * 1000).to_string()),
        ]),
        "ping" => match args.get(1) {
            Some(message) => Frame::Bulk(message.clone()),
            None => Frame::Simple("PONG".into()),
        },
        "echo" => Frame::Bulk(args.get(1).cloned().unwrap_or_default()),
        _ => Frame::error("ERR This Redis command is not allowed from script"),
    }
}

/// Splits `numkeys key... arg...` (the arguments after the script, sha or function name).
pub(super) fn keys_and_argv<'a>(
    args: &'a [Bytes],
    not_a_number: &str,
) -> Result<(&'a [Bytes], &'a [Bytes]), Frame> {
    let Some((numkeys, rest)) = args.split_first() else {
        return Err(Frame::error(err::SYNTAX));
    };
    let Some(numkeys) = command::parse_i64(numkeys) else {
        return Err(Frame::error(not_a_number));
    };
    if numkeys > rest.len() as i64 {
        return Err(Frame::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(Frame::error("ERR Number of keys can't be negative"));
    }
    Ok(rest.split_at(numkeys as usize))
}

/// A script body with its `#!lua flags=...` line parsed off (Redis 7's script shebang).
struct Shebang<'a> {
    flags: u32,
    /// The code Lua compiles: the shebang line is dropped but its newline kept, so error
    /// lines count as the client wrote them.
    code: Cow<'a, [u8]>,
}

fn parse_shebang(body: &[u8]) -> Result<Shebang<'_>, Frame> {
    if !body.starts_with(b"#!") {
        return Ok(Shebang {
            flags: 0,
            code: Cow::Borrowed(body),
        });
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err(Frame::error("ERR Invalid script shebang"));
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or_default();
    if engine != "#!lua" {
        return Err(Frame::error(format!(
            "ERR Unexpected engine in script shebang: {engine}"
        )));
    }
    let mut flags = 0;
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(Frame::error(format!(
                "ERR Unknown lua shebang option: {part}"
            )));
        };
        for name in list.split(',') {
            match script_flag::NAMES.iter().find(|(_, n)| *n == name) {
                Some((bit, _)) => flags |= bit,
                None => {
                    return Err(Frame::error(format!(
                        "ERR Unexpected flag in script shebang: {name}"
                    )))
                }
            }
        }
    }
    Ok(Shebang {
        flags,
        code: Cow::Borrowed(&body[end..]),
    })
}

/// What `EVAL`-family arguments name: the script's body and sha, its keys and arguments.
struct ScriptCall<'a> {
    body: Bytes,
    sha: String,
    keys: &'a [Bytes],
    argv: &'a [Bytes],
}

/// Reads `script|sha1 numkeys key... arg...`; by sha, the body comes from the script cache.
fn script_call<'a>(
    scripts: &imbl::OrdMap<String, Bytes>,
    args: &'a [Bytes],
    by_sha: bool,
) -> Result<ScriptCall<'a>, Frame> {
    let (keys, argv) = keys_and_argv(&args[2..], err::NOT_INTEGER)?;
    let (body, sha) = if by_sha {
        let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let body = scripts.get(&sha).cloned().ok_or_else(no_script)?;
        (body, sha)
    } else {
        (args[1].clone(), sha1_hex(&args[1]))
    };
    Ok(ScriptCall {
        body,
        sha,
        keys,
        argv,
    })
}

fn no_script() -> Frame {
    Frame::error("NOSCRIPT No matching script. Please use EVAL.")
}

/// EVAL script numkeys [key ...] [arg ...]: runs inside apply, and caches the script.
pub fn eval(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    eval_in_apply(ctx, args, false)
}

/// EVALSHA sha1 numkeys [key ...] [arg ...]
pub fn evalsha(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    eval_in_apply(ctx, args, true)
}

/// EVAL_RO script numkeys [key ...] [arg ...]: on the read path.
pub fn eval_ro(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    eval_on_read_path(ctx, args, false)
}

/// EVALSHA_RO sha1 numkeys [key ...] [arg ...]
pub fn evalsha_ro(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    eval_on_read_path(ctx, args, true)
}

fn eval_in_apply(ctx: &mut WriteCtx<'_>, args: &[Bytes], by_sha: bool) -> Frame {
    let call = match script_call(&ctx.keyspace.scripts, args, by_sha) {
        Ok(call) => call,
        Err(reply) => return reply,
    };
    let shebang = match parse_shebang(&call.body) {
        Ok(shebang) => shebang,
        Err(reply) => return reply,
    };
    if !by_sha && !ctx.keyspace.scripts.contains_key(&call.sha) {
        ctx.keyspace
            .scripts
            .insert(call.sha.clone(), owned(&call.body));
    }
    let program = Program::Script {
        code: &shebang.code,
        sha: &call.sha,
    };
    let read_only = shebang.flags & script_flag::NO_WRITES != 0;
    run_in_apply(ctx, &program, read_only, call.keys, call.argv)
}

fn eval_on_read_path(ctx: &ReadCtx<'_>, args: &[Bytes], by_sha: bool) -> Frame {
    let call = match script_call(&ctx.keyspace.scripts, args, by_sha) {
        Ok(call) => call,
        Err(reply) => return reply,
    };
    let shebang = match parse_shebang(&call.body) {
        Ok(shebang) => shebang,
        Err(reply) => return reply,
    };
    let program = Program::Script {
        code: &shebang.code,
        sha: &call.sha,
    };
    run_on_read_path(ctx, &program, call.keys, call.argv)
}

/// Runs a program inside apply, where its writes land in the entry.
pub(super) fn run_in_apply(
    ctx: &mut WriteCtx<'_>,
    program: &Program<'_>,
    read_only: bool,
    keys: &[Bytes],
    argv: &[Bytes],
) -> Frame {
    let seed = seed_from_index(ctx.index);
    // A blocking command inside a script answers at once, as inside MULTI.
    let was_in_transaction = std::mem::replace(&mut ctx.in_transaction, true);
    let db = ctx.db;
    let reply = {
        let mut caller = ApplyCaller {
            ctx: &mut *ctx,
            read_only,
        };
        run(&mut caller, program, keys, argv, seed)
    };
    ctx.in_transaction = was_in_transaction;
    ctx.db = db;
    reply
}

/// Runs a program on the read path, where any write is refused.
pub(super) fn run_on_read_path(
    ctx: &ReadCtx<'_>,
    program: &Program<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
) -> Frame {
    run(&mut ReadCaller { ctx }, program, keys, argv, ctx.seed)
}

/// SCRIPT LOAD script: a replicated write, so every node can run it by its sha.
pub fn script_load(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let body = &args[2];
    let shebang = match parse_shebang(body) {
        Ok(shebang) => shebang,
        Err(reply) => return reply,
    };
    if let Err(message) = compile_check(&shebang.code) {
        return Frame::error(format!(
            "ERR Error compiling script (new function): {message}"
        ));
    }
    let sha = sha1_hex(body);
    ctx.keyspace.scripts.insert(sha.clone(), owned(body));
    Frame::bulk(sha)
}

/// SCRIPT EXISTS sha1 [sha1 ...]
pub fn script_exists(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    Frame::Array(
        args[2..]
            .iter()
            .map(|sha| {
                let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                Frame::Integer(i64::from(ctx.keyspace.scripts.contains_key(&sha)))
            })
            .collect(),
    )
}

/// SCRIPT FLUSH [ASYNC|SYNC]
pub fn script_flush(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    match args.get(2) {
        None => {}
        Some(mode)
            if args.len() == 3
                && (mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync")) => {}
        Some(_) => {
            return Frame::error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        }
    }
    ctx.keyspace.scripts = imbl::OrdMap::new();
    Frame::ok()
}

/// SCRIPT KILL (and FUNCTION KILL): scripts never outlive their entry's apply, so nothing is
/// ever running when another command arrives.
pub fn script_kill(_ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    Frame::error("NOTBUSY No scripts in execution right now.")
}

/// SCRIPT HELP
pub fn script_help(_ctx: &ReadCtx<'_>, _args: &[Bytes]) -> Frame {
    super::help_lines(
        "SCRIPT",
        &[
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    )
}

/// Whether `body` compiles; the Lua message when it does not.
fn compile_check(body: &[u8]) -> Result<(), String> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).map_err(|e| e.to_string())?;
    lua.load(body)
        .set_name("@user_script")
        .into_function()
        .map(|_| ())
        .map_err(|e| lua_message(&e))
}

/// The message of a Lua error without mlua's decoration.
fn lua_message(error: &mlua::Error) -> String {
    let message = match error {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    };
    // mlua appends a traceback; Redis's replies carry none.
    match message.split_once("\nstack traceback:") {
        Some((head, _)) => head.to_string(),
        None => message,
    }
}

/// What a run executes: an `EVAL` script, or one function of a `FUNCTION LOAD` library.
pub(super) enum Program<'a> {
    /// A script body (its shebang already parsed off) and its sha.
    Script { code: &'a [u8], sha: &'a str },
    /// A library's code (shebang parsed off) and the name of the function to call.
    Function { code: &'a [u8], name: &'a str },
}

impl Program<'_> {
    /// The chunk name Lua reports errors under, as Redis names it.
    fn chunk(&self) -> &'static str {
        match self {
            Program::Script { .. } => "user_script",
            Program::Function { .. } => "user_function",
        }
    }

    /// What an error reply names as the script: the sha, or the function's name.
    fn label(&self) -> &str {
        match self {
            Program::Script { sha, .. } => sha,
            Program::Function { name, .. } => name,
        }
    }

    /// Redis's words for a run stopped by an error: the error, then where it happened.
    fn error(&self, text: &str, line: Option<usize>) -> Frame {
        let text = text.trim_start_matches('-');
        let coded = match text.split_once(' ') {
            Some((code, _)) if !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase()) => {
                text.to_string()
            }
            _ => format!("ERR {text}"),
        };
        let at = line.map_or_else(String::new, |l| l.to_string());
        Frame::error(format!(
            "{coded} script: {}, on @{}:{at}.",
            self.label(),
            self.chunk()
        ))
    }

    /// The line a `user_script:N:` (or `user_function:N:`) message names.
    fn line_of(&self, message: &str) -> Option<usize> {
        let marker = format!("{}:", self.chunk());
        let rest = message.split(marker.as_str()).nth(1)?;
        rest.split(':').next()?.trim().parse().ok()
    }
}

/// What `redis.call` leaves behind when the command fails: the reply and the script line.
#[derive(Default)]
struct CallFailure {
    error: Option<(String, Option<usize>)>,
}

/// One function a library registered while it loaded.
pub(super) struct Registered {
    /// Its name as registered (lookups ignore case, as Redis's do).
    pub name: String,
    pub description: Option<String>,
    /// [`script_flag`] bits.
    pub flags: u32,
    callback: Function,
}

/// Runs one program to its reply.
fn run(
    caller: &mut dyn Caller,
    program: &Program<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
    seed: u64,
) -> Frame {
    match run_lua(caller, program, keys, argv, seed) {
        Ok(frame) => frame,
        Err(frame) => frame,
    }
}

/// A Lua state with Redis's libraries and the instruction limit.
fn new_state() -> mlua::Result<Lua> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::new(),
    )?;
    let executed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, _| {
            let done =
                executed.fetch_add(u64::from(HOOK_EVERY), std::sync::atomic::Ordering::Relaxed);
            if done + u64::from(HOOK_EVERY) > INSTRUCTION_LIMIT {
                Err(mlua::Error::runtime(
                    "Script killed: it ran past the instruction limit",
                ))
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;
    let globals = lua.globals();
    for unsafe_global in ["loadfile", "dofile", "print"] {
        globals.raw_set(unsafe_global, LuaValue::Nil)?;
    }
    Ok(lua)
}

/// Scripts may not create globals, and reading one that does not exist is an error, as in
/// Redis 7: a typo must not silently read nil.
const PROTECT_GLOBALS: &str = r#"
setmetatable(_G, {
    __index = function(_, name)
        error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
    end,
    __newindex = function(_, name)
        error("Attempt to modify a readonly table", 2)
    end,
})
"#;

/// The environment scripts and libraries run in: an empty table that reads through to a
/// source table and refuses every assignment, so a script can neither create a global nor
/// replace one (`redis`, `cjson`), as in Redis 7. A library first sees only the load API
/// (the `redis` table with `register_function`), as in Redis; once `switch` is called, the
/// functions it registered see the full globals. Returns the environment and `switch`.
const LIBRARY_ENVIRONMENT: &str = r#"
local load_api, globals = ...
local source = load_api
local env = {}
setmetatable(env, {
    __index = function(_, name)
        if name == "_G" then
            return env
        end
        local value = rawget(source, name)
        if value == nil then
            error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
        end
        return value
    end,
    __newindex = function(_, name)
        error("Attempt to modify a readonly table", 2)
    end,
})
return env, function() source = globals end
"#;

/// Loads a library's code in a fresh state and returns the functions it registers, or
/// the error `FUNCTION LOAD` answers with.
pub(super) fn load_library(code: &[u8]) -> Result<Vec<(String, Option<String>, u32)>, Frame> {
    let internal = |e: mlua::Error| Frame::error(format!("ERR script engine: {e}"));
    let lua = new_state().map_err(internal)?;
    let registered = RefCell::new(Vec::new());
    lua.scope(|scope| {
        let (env, _switch) = library_environment(&lua, scope, &registered, None)?;
        Ok(register_library(&lua, code, env))
    })
    .map_err(internal)??;
    Ok(registered
        .into_inner()
        .into_iter()
        .map(|r: Registered| (r.name, r.description, r.flags))
        .collect())
}

/// Sets up the library environment; `redis` is the full API the functions will call, if
/// they are to run.
fn library_environment<'s>(
    lua: &Lua,
    scope: &'s mlua::Scope<'s, '_>,
    registered: &'s RefCell<Vec<Registered>>,
    redis: Option<Table>,
) -> mlua::Result<(Table, Function)> {
    let load_redis = lua.create_table()?;
    load_redis.raw_set(
        "register_function",
        scope.create_function(move |_, args: MultiValue| {
            let function = read_registration(args)?;
            let mut registered = registered.borrow_mut();
            if registered.iter().any(|r| r.name == function.name) {
                return Err(mlua::Error::runtime(
                    "Function already exists in the library",
                ));
            }
            registered.push(function);
            Ok(())
        })?,
    )?;
    add_log_and_version(lua, &load_redis)?;
    let load_api = lua.create_table()?;
    load_api.raw_set("redis", load_redis)?;
    let globals = lua.globals();
    if let Some(redis) = redis {
        globals.raw_set("redis", redis)?;
    }
    lua.load(LIBRARY_ENVIRONMENT)
        .set_name("=library")
        .call::<(Table, Function)>((load_api, globals))
}

/// Compiles and runs a library's top level, which registers its functions.
fn register_library(lua: &Lua, code: &[u8], env: Table) -> Result<(), Frame> {
    let chunk = lua
        .load(code)
        .set_name("@user_function")
        .set_environment(env)
        .into_function()
        .map_err(|e| Frame::error(format!("ERR Error compiling function: {}", lua_message(&e))))?;
    chunk.call::<()>(()).map_err(|e| {
        Frame::error(format!(
            "ERR Error registering functions: {}",
            lua_message(&e)
        ))
    })
}

/// Reads `redis.register_function`'s arguments: `(name, callback)` or one table of named
/// arguments; errors in Redis's words.
fn read_registration(args: MultiValue) -> mlua::Result<Registered> {
    let fail = |text: &str| Err(mlua::Error::runtime(text.to_string()));
    let text_of = |value: &LuaValue| match value {
        LuaValue::String(s) => Some(s.to_string_lossy()),
        LuaValue::Integer(n) => Some(n.to_string()),
        LuaValue::Number(n) => Some(lua_number_text(*n)),
        _ => None,
    };
    let args: Vec<LuaValue> = args.into_iter().collect();
    let (name, description, flags, callback) = match args.as_slice() {
        [name, callback] => {
            let Some(name) = text_of(name) else {
                return fail("first argument to redis.register_function must be a string");
            };
            let LuaValue::Function(callback) = callback else {
                return fail("second argument to redis.register_function must be a function");
            };
            (name, None, 0, callback.clone())
        }
        [LuaValue::Table(named)] => {
            let (mut name, mut description, mut flags, mut callback) = (None, None, 0, None);
            for pair in named.pairs::<LuaValue, LuaValue>() {
                let (key, value) = pair?;
                let Some(key) = text_of(&key) else {
                    return fail(
                        "named argument key given to redis.register_function is not a string",
                    );
                };
                match key.to_ascii_lowercase().as_str() {
                    "function_name" => match text_of(&value) {
                        Some(text) => name = Some(text),
                        None => {
                            return fail(
                                "function_name argument given to redis.register_function must be a string",
                            )
                        }
                    },
                    "description" => match text_of(&value) {
                        Some(text) => description = Some(text),
                        None => {
                            return fail(
                                "description argument given to redis.register_function must be a string",
                            )
                        }
                    },
                    "callback" => match value {
                        LuaValue::Function(f) => callback = Some(f),
                        _ => {
                            return fail(
                                "callback argument given to redis.register_function must be a function",
                            )
                        }
                    },
                    "flags" => {
                        let LuaValue::Table(list) = value else {
                            return fail("flags argument to redis.register_function must be a table representing function flags");
                        };
                        for item in list.sequence_values::<LuaValue>() {
                            let known = text_of(&item?).and_then(|text| {
                                script_flag::NAMES
                                    .iter()
                                    .find(|(_, n)| n.eq_ignore_ascii_case(&text))
                            });
                            match known {
                                Some((bit, _)) => flags |= bit,
                                None => return fail("unknown flag given"),
                            }
                        }
                    }
                    _ => return fail("unknown argument given to redis.register_function"),
                }
            }
            let Some(name) = name else {
                return fail("redis.register_function must get a function name argument");
            };
            let Some(callback) = callback else {
                return fail("redis.register_function must get a callback argument");
            };
            (name, description, flags, callback)
        }
        [_] => return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."),
        _ => return fail("wrong number of arguments to redis.register_function"),
    };
    if !super::functions::is_valid_name(&name) {
        return fail("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    }
    Ok(Registered {
        name,
        description,
        flags,
        callback,
    })
}

fn run_lua(
    caller: &mut dyn Caller,
    program: &Program<'_>,
    keys: &[Bytes],
    argv: &[Bytes],
    seed: u64,
) -> Result<Frame, Frame> {
    let internal = |e: mlua::Error| Frame::error(format!("ERR script engine: {e}"));
    let lua = new_state().map_err(internal)?;
    let script = match program {
        Program::Script { code, .. } => Some(
            lua.load(*code)
                .set_name("@user_script")
                .into_function()
                .map_err(|e| {
                    Frame::error(format!(
                        "ERR Error compiling script (new function): {}",
                        lua_message(&e)
                    ))
                })?,
        ),
        Program::Function { .. } => None,
    };
    let failure = RefCell::new(CallFailure::default());
    let resp3 = Cell::new(false);
    let caller = RefCell::new(caller);
    let registered = RefCell::new(Vec::new());
    let call_raw = |lua: &Lua, args: MultiValue, raise: bool| -> mlua::Result<LuaValue> {
        let mut command = Vec::with_capacity(args.len());
        for arg in args {
            match arg {
                LuaValue::String(s) => command.push(Bytes::copy_from_slice(&s.as_bytes())),
                LuaValue::Integer(i) => command.push(Bytes::from(i.to_string())),
                LuaValue::Number(n) => command.push(Bytes::from(lua_number_text(n))),
                _ => {
                    return fail_call(
                        lua,
                        &failure,
                        "ERR Lua redis lib command arguments must be strings or integers",
                        raise,
                    )
                }
            }
        }
        let reply = caller.borrow_mut().call(&command);
        if let (Frame::Error(text), true) = (&reply, raise) {
            return fail_call(lua, &failure, text, true);
        }
        frame_to_lua(lua, reply, resp3.get())
    };
    let outcome = lua.scope(|scope| {
        let globals = lua.globals();
        let redis = lua.create_table()?;
        redis.raw_set(
            "call",
            scope.create_function(|lua, args: MultiValue| call_raw(lua, args, true))?,
        )?;
        redis.raw_set(
            "pcall",
            scope.create_function(|lua, args: MultiValue| call_raw(lua, args, false))?,
        )?;
        redis.raw_set(
            "setresp",
            scope.create_function(|_, version: i64| match version {
                2 | 3 => {
                    resp3.set(version == 3);
                    Ok(())
                }
                _ => Err(mlua::Error::runtime("RESP version must be 2 or 3.")),
            })?,
        )?;
        redis.raw_set(
            "register_function",
            lua.create_function(|_, _: MultiValue| -> mlua::Result<()> {
                Err(mlua::Error::runtime(
                    "redis.register_function can only be called on FUNCTION LOAD command",
                ))
            })?,
        )?;
        add_plain_functions(&lua, &redis)?;
        install_random(&lua, seed)?;
        super::lua_libs::install(&lua)?;
        let result = match (program, &script) {
            (Program::Script { .. }, Some(script)) => {
                globals.raw_set("KEYS", string_array(&lua, keys)?)?;
                globals.raw_set("ARGV", string_array(&lua, argv)?)?;
                globals.raw_set("redis", redis)?;
                lua.load(PROTECT_GLOBALS).set_name("=prelude").exec()?;
                let (env, _switch) = lua
                    .load(LIBRARY_ENVIRONMENT)
                    .set_name("=environment")
                    .call::<(Table, Function)>((globals.clone(), globals.clone()))?;
                script.set_environment(env)?;
                script.call::<LuaValue>(())?
            }
            (Program::Function { code, name }, _) => {
                let (env, switch) = library_environment(&lua, scope, &registered, Some(redis))?;
                lua.load(PROTECT_GLOBALS).set_name("=prelude").exec()?;
                if let Err(reply) = register_library(&lua, code, env) {
                    return Ok(Err(reply));
                }
                switch.call::<()>(())?;
                let callback = registered
                    .borrow()
                    .iter()
                    .find(|r| r.name.eq_ignore_ascii_case(name))
                    .map(|r| r.callback.clone());
                let Some(callback) = callback else {
                    return Ok(Err(Frame::error("ERR Function not found")));
                };
                callback.call::<LuaValue>((string_array(&lua, keys)?, string_array(&lua, argv)?))?
            }
            (Program::Script { .. }, None) => LuaValue::Nil,
        };
        Ok(Ok(lua_to_frame(&result)))
    });
    match outcome {
        Ok(reply) => reply,
        Err(error) => {
            let message = lua_message(&error);
            match failure.borrow_mut().error.take() {
                Some((text, line)) => Err(program.error(&text, line)),
                None => Err(program.error(&message, program.line_of(&message))),
            }
        }
    }
}

/// Records a failed `redis.call` (with the script line that made it) and raises it; for
/// `redis.pcall`, answers the error table instead.
fn fail_call(
    lua: &Lua,
    failure: &RefCell<CallFailure>,
    text: &str,
    raise: bool,
) -> mlua::Result<LuaValue> {
    if !raise {
        let table = lua.create_table()?;
        table.raw_set("err", text)?;
        return Ok(LuaValue::Table(table));
    }
    let line = lua.inspect_stack(1, |debug| debug.current_line()).flatten();
    failure.borrow_mut().error = Some((text.to_string(), line));
    Err(mlua::Error::runtime(text.to_string()))
}

/// Lua 5.1 prints integral numbers without a fraction; Redis passes them on as such.
fn lua_number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e17 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn string_array(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        table.raw_set(i + 1, lua.create_string(item.as_ref())?)?;
    }
    Ok(table)
}

/// `redis.*` helpers that need no access to the keyspace.
fn add_plain_functions(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, message: mlua::LuaString| {
            let table = lua.create_table()?;
            let text = message.to_string_lossy();
            let text = match text.strip_prefix('-') {
                Some(rest) => rest.to_string(),
                None => text,
            };
            table.raw_set("err", text)?;
            Ok(table)
        })?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, message: mlua::LuaString| {
            let table = lua.create_table()?;
            table.raw_set("ok", message)?;
            Ok(table)
        })?,
    )?;
    redis.raw_set(
        "sha1hex",
        lua.create_function(|_, text: mlua::LuaString| Ok(sha1_hex(&text.as_bytes())))?,
    )?;
    redis.raw_set("set_repl", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set(
        "replicate_commands",
        lua.create_function(|_, _: MultiValue| Ok(true))?,
    )?;
    redis.raw_set(
        "breakpoint",
        lua.create_function(|_, _: MultiValue| Ok(false))?,
    )?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    add_log_and_version(lua, redis)
}

/// `redis.log` and the version and level constants: what a library may use while it loads.
fn add_log_and_version(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    redis.raw_set(
        "log",
        lua.create_function(|_, (level, message): (i64, mlua::LuaString)| {
            // Script logs never carry values into the node's log at info level: a script
            // may log secrets it read.
            tracing::debug!(level, bytes = message.as_bytes().len(), "script log");
            Ok(())
        })?,
    )?;
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.raw_set(name, value)?;
    }
    redis.raw_set("REDIS_VERSION", crate::server::commands::REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", 0x0007_0204)?;
    Ok(())
}

/// `math.random` and `math.randomseed` over a generator seeded from the entry, in place of
/// C's `rand`, which is process-wide and would differ between replicas.
fn install_random(lua: &Lua, seed: u64) -> mlua::Result<()> {
    let math: Table = lua.globals().raw_get("math")?;
    let rng = std::sync::Arc::new(parking_lot::Mutex::new(Rng::new(seed)));
    let draw = rng.clone();
    math.raw_set(
        "random",
        lua.create_function(move |_, (low, high): (Option<i64>, Option<i64>)| {
            let fraction = (draw.lock().next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let (low, high) = match (low, high) {
                (None, _) => return Ok(LuaValue::Number(fraction)),
                (Some(high), None) => (1, high),
                (Some(low), Some(high)) => (low, high),
            };
            if low > high {
                return Err(mlua::Error::runtime(
                    "bad argument to 'random' (interval is empty)",
                ));
            }
            let span = (high - low) as f64 + 1.0;
            Ok(LuaValue::Number(
                (low as f64 + (fraction * span).floor()).min(high as f64),
            ))
        })?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(move |_, new_seed: f64| {
            *rng.lock() = Rng::new(new_seed.to_bits());
            Ok(())
        })?,
    )?;
    Ok(())
}

/// A command's reply as a script sees it (Redis's RESP-to-Lua rules; RESP3 shapes only
/// after `redis.setresp(3)`).
fn frame_to_lua(lua: &Lua, frame: Frame, resp3: bool) -> mlua::Result<LuaValue> {
    let string = |bytes: &[u8]| lua.create_string(bytes).map(LuaValue::String);
    let tagged = |tag: &str, value: LuaValue| -> mlua::Result<LuaValue> {
        let table = lua.create_table()?;
        table.raw_set(tag, value)?;
        Ok(LuaValue::Table(table))
    };
    let array = |items: Vec<Frame>| -> mlua::Result<LuaValue> {
        let table = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.into_iter().enumerate() {
            table.raw_set(i + 1, frame_to_lua(lua, item, resp3)?)?;
        }
        Ok(LuaValue::Table(table))
    };
    match frame {
        Frame::Integer(n) => Ok(LuaValue::Integer(n)),
        Frame::Bulk(bytes) => string(&bytes),
        Frame::Simple(text) => tagged("ok", string(text.as_bytes())?),
        Frame::Error(text) => tagged("err", string(text.as_bytes())?),
        Frame::Null | Frame::NullArray if resp3 => Ok(LuaValue::Nil),
        Frame::Null | Frame::NullArray => Ok(LuaValue::Boolean(false)),
        Frame::Array(items) | Frame::Push(items) => array(items),
        Frame::Set(items) if resp3 => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(frame_to_lua(lua, item, resp3)?, true)?;
            }
            tagged("set", LuaValue::Table(set))
        }
        Frame::Set(items) => array(items),
        Frame::Map(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(frame_to_lua(lua, k, resp3)?, frame_to_lua(lua, v, resp3)?)?;
            }
            tagged("map", LuaValue::Table(map))
        }
        Frame::Map(pairs) => array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Frame::Pairs(pairs) if resp3 => array(
            pairs
                .into_iter()
                .map(|(k, v)| Frame::Array(vec![k, v]))
                .collect(),
        ),
        Frame::Pairs(pairs) => array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Frame::Double(d) if resp3 => tagged("double", LuaValue::Number(d)),
        Frame::Double(d) => string(format_double(d).as_bytes()),
        Frame::Boolean(b) if resp3 => Ok(LuaValue::Boolean(b)),
        Frame::Boolean(b) => Ok(LuaValue::Integer(i64::from(b))),
        Frame::BigNumber(text) if resp3 => tagged("big_number", string(text.as_bytes())?),
        Frame::BigNumber(text) => string(text.as_bytes()),
        Frame::Verbatim(format, bytes) if resp3 => {
            let table = lua.create_table()?;
            table.raw_set("format", format)?;
            table.raw_set("string", lua.create_string(bytes.as_ref())?)?;
            tagged("verbatim_string", LuaValue::Table(table))
        }
        Frame::Verbatim(_, bytes) => string(&bytes),
    }
}

/// A script's return value as a reply (Redis's Lua-to-RESP rules).
fn lua_to_frame(value: &LuaValue) -> Frame {
    match value {
        LuaValue::Nil => Frame::Null,
        LuaValue::Boolean(true) => Frame::Boolean(true),
        LuaValue::Boolean(false) => Frame::Null,
        LuaValue::Integer(n) => Frame::Integer(*n),
        LuaValue::Number(n) => Frame::Integer(n.trunc() as i64),
        LuaValue::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        LuaValue::Table(table) => table_to_frame(table),
        _ => Frame::Null,
    }
}

fn table_to_frame(table: &Table) -> Frame {
    let field = |name: &str| table.raw_get::<LuaValue>(name).unwrap_or(LuaValue::Nil);
    if let LuaValue::String(text) = field("err") {
        return Frame::Error(text.to_string_lossy());
    }
    if let LuaValue::String(text) = field("ok") {
        return Frame::Simple(text.to_string_lossy());
    }
    match field("double") {
        LuaValue::Number(d) => return Frame::Double(d),
        LuaValue::Integer(n) => return Frame::Double(n as f64),
        _ => {}
    }
    if let LuaValue::Table(map) = field("map") {
        let pairs = map
            .pairs::<LuaValue, LuaValue>()
            .filter_map(Result::ok)
            .map(|(k, v)| (lua_to_frame(&k), lua_to_frame(&v)))
            .collect();
        return Frame::Map(pairs);
    }
    if let LuaValue::Table(set) = field("set") {
        let members = set
            .pairs::<LuaValue, LuaValue>()
            .filter_map(Result::ok)
            .map(|(k, _)| lua_to_frame(&k))
            .collect();
        return Frame::Set(members);
    }
    if let LuaValue::String(text) = field("big_number") {
        return Frame::BigNumber(text.to_string_lossy());
    }
    let mut items = Vec::new();
    for i in 1.. {
        match table.raw_get::<LuaValue>(i) {
            Ok(LuaValue::Nil) | Err(_) => break,
            Ok(value) => items.push(lua_to_frame(&value)),
        }
    }
    Frame::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::check_transcript;
    use crate::keyspace::{Keyspace, Op, Request};

    #[test]
    fn scripts_can_neither_create_nor_replace_globals() {
        let error = |body: &str, line: usize| {
            format!(
                "-ERR user_script:{line}: Attempt to modify a readonly table script: {}, on @user_script:{line}.\n",
                sha1_hex(body.as_bytes())
            )
        };
        check_transcript(&[
            ("eval \"newglobal = 1\" 0", &error("newglobal = 1", 1), ""),
            ("eval \"redis = nil\" 0", &error("redis = nil", 1), ""),
            ("eval \"cjson = nil\" 0", &error("cjson = nil", 1), ""),
            ("eval \"_G.math = 1\" 0", &error("_G.math = 1", 1), ""),
            ("eval \"return type(_G.redis)\" 0", "$5\ntable\n", ""),
            ("eval \"local x = 1; x = 2; return x\" 0", ":2\n", ""),
        ]);
    }

    #[test]
    fn script_shebangs_set_flags() {
        let sha = sha1_hex(b"#!lua flags=no-writes\nreturn redis.call('set', 'k', 'v')");
        check_transcript(&[
            ("eval \"#!lua\nreturn 1\" 0", ":1\n", ""),
            (
                "eval \"#!lua flags=no-writes\nreturn redis.call('set', 'k', 'v')\" 0",
                &format!("-ERR Write commands are not allowed from read-only scripts. script: {sha}, on @user_script:2.\n"),
                "",
            ),
            ("exists k", ":0\n", ""),
            ("eval \"#!lua flags=no-writes,allow-oom\nreturn 2\" 0", ":2\n", ""),
            ("eval \"#!lua flags=bogus\nreturn 1\" 0", "-ERR Unexpected flag in script shebang: bogus\n", ""),
            ("eval \"#!LUA\nreturn 1\" 0", "-ERR Unexpected engine in script shebang: #!LUA\n", ""),
            ("eval \"#!lua name=x\nreturn 1\" 0", "-ERR Unknown lua shebang option: name=x\n", ""),
            ("eval \"#!lua\" 0", "-ERR Invalid script shebang\n", ""),
        ]);
    }

    #[test]
    fn replies_convert_both_ways_as_in_redis() {
        check_transcript(&[
            ("eval \"return 1\" 0", ":1\n", ""),
            ("eval \"return 3.99\" 0", ":3\n", ""),
            ("eval \"return 'x'\" 0", "$1\nx\n", ""),
            (
                "eval \"return {1, 'a', {2}}\" 0",
                "*3\n:1\n$1\na\n*1\n:2\n",
                "",
            ),
            ("eval \"return {1, nil, 3}\" 0", "*1\n:1\n", ""),
            ("eval \"return nil\" 0", "$-1\n", "_\n"),
            ("eval \"return true\" 0", ":1\n", "#t\n"),
            ("eval \"return false\" 0", "$-1\n", "_\n"),
            ("eval \"return {ok='fine'}\" 0", "+fine\n", ""),
            ("eval \"return redis.status_reply('OK')\" 0", "+OK\n", ""),
            (
                "eval \"return redis.error_reply('MY oops')\" 0",
                "-MY oops\n",
                "",
            ),
            ("eval \"return {err='ERR bad'}\" 0", "-ERR bad\n", ""),
            ("eval \"return KEYS[1] .. ARGV[2]\" 1 k a b", "$2\nkb\n", ""),
            ("eval \"return #ARGV\" 0 a b c", ":3\n", ""),
            (
                "eval \"return redis.sha1hex('')\" 0",
                "$40\nda39a3ee5e6b4b0d3255bfef95601890afd80709\n",
                "",
            ),
            ("set n 5", "+OK\n", ""),
            (
                "eval \"return redis.call('get', KEYS[1])\" 1 n",
                "$1\n5\n",
                "",
            ),
            (
                "eval \"return redis.call('get', 'missing')\" 0",
                "$-1\n",
                "_\n",
            ),
            ("eval \"return redis.call('set', 'x', 1)\" 0", "+OK\n", ""),
            (
                "eval \"return redis.call('incrby', 'n', 2.0)\" 0",
                ":7\n",
                "",
            ),
            (
                "eval \"return type(redis.call('get', 'missing'))\" 0",
                "$7\nboolean\n",
                "",
            ),
            (
                "eval \"redis.setresp(3); return type(redis.call('get', 'missing'))\" 0",
                "$3\nnil\n",
                "",
            ),
            ("hset h f v", ":1\n", ""),
            (
                "eval \"return redis.call('hgetall', 'h')\" 0",
                "*2\n$1\nf\n$1\nv\n",
                "",
            ),
            (
                "eval \"redis.setresp(3); return redis.call('hgetall', 'h').map.f\" 0",
                "$1\nv\n",
                "",
            ),
            (
                "eval \"return 1\" -1",
                "-ERR Number of keys can't be negative\n",
                "",
            ),
            (
                "eval \"return 1\" 2 a",
                "-ERR Number of keys can't be greater than number of args\n",
                "",
            ),
            (
                "eval \"return 1\" x",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
        ]);
    }

    #[test]
    fn errors_name_the_script_and_line() {
        let sha = sha1_hex(b"redis.call('incr', 's')");
        let line2 = sha1_hex(b"local x = 1\nerror('boom')");
        let global = sha1_hex(b"return nosuch");
        check_transcript(&[
            ("set s abc", "+OK\n", ""),
            (
                "eval \"redis.call('incr', 's')\" 0",
                &format!("-ERR value is not an integer or out of range script: {sha}, on @user_script:1.\n"),
                "",
            ),
            (
                "eval \"local x = 1\\nerror('boom')\" 0",
                &format!("-ERR user_script:2: boom script: {line2}, on @user_script:2.\n"),
                "",
            ),
            (
                "eval \"return nosuch\" 0",
                &format!("-ERR user_script:1: Script attempted to access nonexistent global variable 'nosuch' script: {global}, on @user_script:1.\n"),
                "",
            ),
            (
                "eval \"return redis.pcall('incr', 's')\" 0",
                "-ERR value is not an integer or out of range\n",
                "",
            ),
            ("eval \"return (\" 0", "-ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'\n", ""),
            ("eval \"return redis.call('nosuchcmd')\" 0", &format!("-ERR Unknown Redis command called from script script: {}, on @user_script:1.\n", sha1_hex(b"return redis.call('nosuchcmd')")), ""),
            ("eval \"return redis.call('multi')\" 0", &format!("-ERR This Redis command is not allowed from script script: {}, on @user_script:1.\n", sha1_hex(b"return redis.call('multi')")), ""),
        ]);
    }

    #[test]
    fn a_script_that_fails_halfway_keeps_its_earlier_writes() {
        let sha = sha1_hex(
            b"redis.call('set', 'a', 1); redis.call('incr', 's'); redis.call('set', 'b', 1)",
        );
        check_transcript(&[
            ("set s abc", "+OK\n", ""),
            (
                "eval \"redis.call('set', 'a', 1); redis.call('incr', 's'); redis.call('set', 'b', 1)\" 0",
                &format!("-ERR value is not an integer or out of range script: {sha}, on @user_script:1.\n"),
                "",
            ),
            ("exists a b", ":1\n", ""),
        ]);
    }

    #[test]
    fn read_only_scripts_refuse_writes() {
        let sha = sha1_hex(b"return redis.call('set', 'k', 'v')");
        check_transcript(&[
            ("set k old", "+OK\n", ""),
            ("eval_ro \"return redis.call('get', 'k')\" 1 k", "$3\nold\n", ""),
            (
                "eval_ro \"return redis.call('set', 'k', 'v')\" 1 k",
                &format!("-ERR Write commands are not allowed from read-only scripts. script: {sha}, on @user_script:1.\n"),
                "",
            ),
            ("get k", "$3\nold\n", ""),
        ]);
    }

    #[test]
    fn script_cache_load_exists_evalsha_and_flush() {
        let sha = sha1_hex(b"return ARGV[1]");
        check_transcript(&[
            (&format!("evalsha {sha} 0 x"), "-NOSCRIPT No matching script. Please use EVAL.\n", ""),
            ("script load \"return ARGV[1]\"", &format!("$40\n{sha}\n"), ""),
            (&format!("script exists {sha} ffff"), "*2\n:1\n:0\n", ""),
            (&format!("evalsha {} 0 x", sha.to_uppercase()), "$1\nx\n", ""),
            (&format!("evalsha_ro {sha} 0 y"), "$1\ny\n", ""),
            ("script flush", "+OK\n", ""),
            (&format!("script exists {sha}"), "*1\n:0\n", ""),
            ("eval \"return ARGV[1]\" 0 z", "$1\nz\n", ""),
            (&format!("script exists {sha}"), "*1\n:1\n", ""),
            ("script load \"return (\"", "-ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'\n", ""),
            ("script kill", "-NOTBUSY No scripts in execution right now.\n", ""),
        ]);
    }

    fn apply_at(ks: &mut Keyspace, index: u64, time_ms: u64, line: &str) -> Frame {
        let args = crate::resp::split_command_line(line).unwrap_or_default();
        ks.apply(
            index,
            &Request {
                time_ms,
                op: Op::Command { db: 0, args },
            },
        )
    }

    /// Two replicas applying the same entries end in the same state: TIME is the entry's
    /// time and math.random is seeded by the log index.
    #[test]
    fn replicas_replaying_the_same_log_agree() {
        let script = "eval \"local t = redis.call('time'); redis.call('set', 'when', t[1] .. '.' .. t[2]); redis.call('set', 'dice', math.random(1, 1000000)); return {t[1], redis.call('get', 'dice')}\" 0";
        let mut first = Keyspace::new();
        let mut second = Keyspace::new();
        let a = apply_at(&mut first, 7, 1_700_000_000_123, script);
        let b = apply_at(&mut second, 7, 1_700_000_000_123, script);
        assert_eq!(a, b);
        let Frame::Array(items) = &a else {
            panic!("{a:?}")
        };
        assert_eq!(items[0], Frame::bulk("1700000000"));
        let read = |ks: &Keyspace, key: &str| {
            ks.db(0)
                .and_then(|d| d.get(key.as_bytes(), 0))
                .map(|e| e.value.clone())
        };
        assert_eq!(read(&first, "when"), read(&second, "when"));
        assert_eq!(read(&first, "dice"), read(&second, "dice"));
        assert_eq!(
            read(&first, "when"),
            Some(crate::keyspace::Value::string(b"1700000000.123000"))
        );
        // Another index draws another number.
        let mut third = Keyspace::new();
        apply_at(&mut third, 8, 1_700_000_000_123, script);
        assert_ne!(read(&first, "dice"), read(&third, "dice"));
    }

    #[test]
    fn a_runaway_script_is_stopped_by_its_instruction_count() {
        let mut ks = Keyspace::new();
        let reply = apply_at(
            &mut ks,
            1,
            0,
            "eval \"redis.call('set', 'before', 1); while true do end\" 0",
        );
        assert!(
            matches!(&reply, Frame::Error(e) if e.contains("instruction limit")),
            "{reply:?}"
        );
        assert!(ks.db(0).and_then(|d| d.get(b"before", 0)).is_some());
    }

    #[test]
    fn scripts_survive_snapshots() {
        let mut ks = Keyspace::new();
        let sha = sha1_hex(b"return 42");
        apply_at(&mut ks, 1, 0, "script load \"return 42\"");
        let mut bytes = Vec::new();
        ks.write_snapshot(&mut bytes).expect("write");
        let mut back = Keyspace::read_snapshot(&mut bytes.as_slice()).expect("read");
        assert_eq!(
            apply_at(&mut back, 2, 0, &format!("evalsha {sha} 0")),
            Frame::Integer(42)
        );
    }
}
