//! Lua scripting as Redis has it: `EVAL`, `EVALSHA`, their read-only forms, and `SCRIPT`.
//!
//! A write script is one log entry and runs inside apply on every replica, so everything it
//! can observe is replicated state or comes from the entry: `TIME` is the entry's time,
//! `math.random` draws from a generator seeded by the log index, and each run gets a fresh Lua
//! state (nothing a script leaves behind can differ between replicas). A runaway script is
//! stopped after a fixed number of Lua instructions, never by wall time. Loaded scripts are
//! part of the keyspace (and of its snapshots), so `EVALSHA` finds the same scripts on every
//! node and after a restart. Read-only scripts (`EVAL_RO`, `EVALSHA_RO`) run on the read path.

use std::cell::RefCell;

use bytes::Bytes;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value as LuaValue, VmState};

use super::{owned, seed_from_index, ReadCtx, Rng, WriteCtx};
use crate::command::{self, errors as err, flag, Handler, Resolved};
use crate::resp::{format_double, Frame};

/// Lua instructions a script may run before it is stopped (Redis stops scripts by time, which
/// replicas could not agree on; this is a few seconds of Lua on current hardware).
pub const INSTRUCTION_LIMIT: u64 = 500_000_000;

/// How often the instruction hook runs.
const HOOK_EVERY: u32 = 100_000;

/// The hex SHA1 of a script body, its name in the script cache.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// How a script's `redis.call` runs commands.
trait Caller {
    /// Runs one command for the script.
    fn call(&mut self, args: &[Bytes]) -> Frame;
}

/// Inside apply: writes allowed unless the script is read-only.
struct ApplyCaller<'c, 'k> {
    ctx: &'c mut WriteCtx<'k>,
}

impl Caller for ApplyCaller<'_, '_> {
    fn call(&mut self, args: &[Bytes]) -> Frame {
        let spec = match prepare(args) {
            Ok(spec) => spec,
            Err(reply) => return reply,
        };
        match spec.handler {
            Handler::Write(run) => run(self.ctx, args),
            Handler::Read(run) => run(&self.ctx.as_read(), args),
            _ => match spec.name {
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

/// Splits `numkeys key... arg...` (the arguments after the script or sha).
fn keys_and_argv(args: &[Bytes]) -> Result<(&[Bytes], &[Bytes]), Frame> {
    let Some((numkeys, rest)) = args.split_first() else {
        return Err(Frame::error(err::SYNTAX));
    };
    let Some(numkeys) = command::parse_i64(numkeys) else {
        return Err(Frame::error(err::NOT_INTEGER));
    };
    if numkeys < 0 {
        return Err(Frame::error("ERR Number of keys can't be negative"));
    }
    if numkeys as u64 > rest.len() as u64 {
        return Err(Frame::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(rest.split_at(numkeys as usize))
}

/// EVAL script numkeys [key ...] [arg ...]: runs inside apply, and caches the script.
pub fn eval(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let body = &args[1];
    let (keys, argv) = match keys_and_argv(&args[2..]) {
        Ok(split) => split,
        Err(reply) => return reply,
    };
    let sha = sha1_hex(body);
    if !ctx.keyspace.scripts.contains_key(&sha) {
        ctx.keyspace.scripts.insert(sha.clone(), owned(body));
    }
    run_in_apply(ctx, body, &sha, keys, argv)
}

/// EVALSHA sha1 numkeys [key ...] [arg ...]
pub fn evalsha(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let (keys, argv) = match keys_and_argv(&args[2..]) {
        Ok(split) => split,
        Err(reply) => return reply,
    };
    let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let Some(body) = ctx.keyspace.scripts.get(&sha).cloned() else {
        return no_script();
    };
    run_in_apply(ctx, &body, &sha, keys, argv)
}

/// EVAL_RO script numkeys [key ...] [arg ...]: on the read path.
pub fn eval_ro(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let body = &args[1];
    let (keys, argv) = match keys_and_argv(&args[2..]) {
        Ok(split) => split,
        Err(reply) => return reply,
    };
    let sha = sha1_hex(body);
    let mut caller = ReadCaller { ctx };
    run(&mut caller, body, &sha, keys, argv, ctx.seed)
}

/// EVALSHA_RO sha1 numkeys [key ...] [arg ...]
pub fn evalsha_ro(ctx: &ReadCtx<'_>, args: &[Bytes]) -> Frame {
    let (keys, argv) = match keys_and_argv(&args[2..]) {
        Ok(split) => split,
        Err(reply) => return reply,
    };
    let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let Some(body) = ctx.keyspace.scripts.get(&sha).cloned() else {
        return no_script();
    };
    let mut caller = ReadCaller { ctx };
    run(&mut caller, &body, &sha, keys, argv, ctx.seed)
}

fn no_script() -> Frame {
    Frame::error("NOSCRIPT No matching script. Please use EVAL.")
}

fn run_in_apply(
    ctx: &mut WriteCtx<'_>,
    body: &[u8],
    sha: &str,
    keys: &[Bytes],
    argv: &[Bytes],
) -> Frame {
    let seed = seed_from_index(ctx.index);
    // A blocking command inside a script answers at once, as inside MULTI.
    let was_in_transaction = std::mem::replace(&mut ctx.in_transaction, true);
    let db = ctx.db;
    let reply = {
        let mut caller = ApplyCaller { ctx: &mut *ctx };
        run(&mut caller, body, sha, keys, argv, seed)
    };
    ctx.in_transaction = was_in_transaction;
    ctx.db = db;
    reply
}

/// SCRIPT LOAD script: a replicated write, so every node can run it by its sha.
pub fn script_load(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let body = &args[2];
    if let Err(message) = compile_check(body) {
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

/// SCRIPT KILL: scripts never outlive their entry's apply, so nothing is ever running.
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

/// Redis's words for a script stopped by an error: the error, then where it happened.
fn script_error(text: &str, sha: &str, line: Option<usize>) -> Frame {
    let text = text.trim_start_matches('-');
    let coded = match text.split_once(' ') {
        Some((code, _)) if !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase()) => {
            text.to_string()
        }
        _ => format!("ERR {text}"),
    };
    let at = line.map_or_else(String::new, |l| l.to_string());
    Frame::error(format!("{coded} script: {sha}, on @user_script:{at}."))
}

/// The line a `user_script:N:` message names.
fn line_of(message: &str) -> Option<usize> {
    let rest = message.split("user_script:").nth(1)?;
    rest.split(':').next()?.trim().parse().ok()
}

/// What `redis.call` leaves behind when the command fails: the reply and the script line.
#[derive(Default)]
struct CallFailure {
    error: Option<(String, Option<usize>)>,
}

/// Runs one script to its reply.
fn run(
    caller: &mut dyn Caller,
    body: &[u8],
    sha: &str,
    keys: &[Bytes],
    argv: &[Bytes],
    seed: u64,
) -> Frame {
    match run_lua(caller, body, sha, keys, argv, seed) {
        Ok(frame) => frame,
        Err(frame) => frame,
    }
}

fn run_lua(
    caller: &mut dyn Caller,
    body: &[u8],
    sha: &str,
    keys: &[Bytes],
    argv: &[Bytes],
    seed: u64,
) -> Result<Frame, Frame> {
    let internal = |e: mlua::Error| Frame::error(format!("ERR script engine: {e}"));
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::new(),
    )
    .map_err(internal)?;
    let function = lua
        .load(body)
        .set_name("@user_script")
        .into_function()
        .map_err(|e| {
            Frame::error(format!(
                "ERR Error compiling script (new function): {}",
                lua_message(&e)
            ))
        })?;
    let executed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = executed.clone();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, _| {
            let done =
                counter.fetch_add(u64::from(HOOK_EVERY), std::sync::atomic::Ordering::Relaxed);
            if done + u64::from(HOOK_EVERY) > INSTRUCTION_LIMIT {
                Err(mlua::Error::runtime(
                    "Script killed: it ran past the instruction limit",
                ))
            } else {
                Ok(VmState::Continue)
            }
        },
    )
    .map_err(internal)?;
    let failure = RefCell::new(CallFailure::default());
    let resp3 = std::cell::Cell::new(false);
    let caller = RefCell::new(caller);
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
        globals.raw_set("KEYS", string_array(&lua, keys)?)?;
        globals.raw_set("ARGV", string_array(&lua, argv)?)?;
        for unsafe_global in ["loadfile", "dofile", "print"] {
            globals.raw_set(unsafe_global, LuaValue::Nil)?;
        }
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
        add_plain_functions(&lua, &redis)?;
        globals.raw_set("redis", redis)?;
        install_random(&lua, seed)?;
        super::lua_libs::install(&lua)?;
        // Scripts may not create globals, and reading one that does not exist is an error,
        // as in Redis 7: a typo must not silently read nil.
        lua.load(
            r#"
            setmetatable(_G, {
                __index = function(_, name)
                    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
                end,
                __newindex = function(_, name)
                    error("Attempt to modify a readonly table", 2)
                end,
            })
            "#,
        )
        .set_name("=prelude")
        .exec()?;
        let result = function.call::<LuaValue>(())?;
        Ok(lua_to_frame(&result))
    });
    match outcome {
        Ok(frame) => Ok(frame),
        Err(error) => {
            let message = lua_message(&error);
            match failure.borrow_mut().error.take() {
                Some((text, line)) => Err(script_error(&text, sha, line)),
                None => Err(script_error(&message, sha, line_of(&message))),
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
    redis.raw_set(
        "log",
        lua.create_function(|_, (level, message): (i64, mlua::LuaString)| {
            // Script logs never carry values into the node's log at info level: a script
            // may log secrets it read.
            tracing::debug!(level, bytes = message.as_bytes().len(), "script log");
            Ok(())
        })?,
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
            Some(crate::keyspace::Value::Str(Bytes::from(
                "1700000000.123000"
            )))
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
