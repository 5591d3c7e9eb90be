//! The Lua libraries Redis 7 gives scripts besides Lua's own: `cjson`, `cmsgpack`, `bit` and
//! `struct`.
//!
//! Each follows the C library Redis bundles (lua-cjson 2.1.0, lua-cmsgpack 0.4.0, LuaBitOp
//! 1.0.2 and Roberto Ierusalimschy's struct 1.4 with Redis's fixes) byte for byte and error
//! text for error text, as Redis builds them on 64-bit Linux: a C `long` and `size_t` are
//! eight bytes, native order is little-endian, and C's casts of out-of-range doubles give
//! what x86-64 gives.
//!
//! The functions are Rust, reached through a few lines of Lua glue (`GLUE`). The glue turns a
//! refusal into a plain Lua string error, as `luaL_error` raises, rather than the userdata mlua
//! raises for a Rust error, so `pcall(cjson.decode, text)` hands scripts a string they can
//! match; and it spreads results that may run into thousands from a table, so no more than a
//! handful of values are ever held as mlua references. The library tables are read-only, as
//! Redis 7 makes them: each global is an empty view whose writes fail, and whose library is
//! built when the script first reads from it.
//!
//! The C libraries stop with "stack overflow" or "excessive nesting" when a C function would
//! use more than Lua's 8000 stack slots; we count the same slots so those limits fall where
//! Redis's do. Walks over nested tables and documents keep their open containers on the heap,
//! and none nests deeper than `MAX_WALK_DEPTH` whatever a script configures, which bounds the
//! handles held in mlua's own 8000-slot reference stack.
//!
//! Known differences from Redis: a library error raised from a tail call
//! (`return cjson.decode(text)`) carries no "user_script:N: " prefix, because Lua 5.1 has
//! dropped the caller's frame by the time the glue runs; `cmsgpack.unpack` returns at most
//! 7997 values where Redis returns 7999; nesting past `MAX_WALK_DEPTH` is refused even where
//! Redis's stack would still have room; a library seen through `pairs` is empty and through
//! `getmetatable` is `false`, not nil; and settings changed with `cjson.encode_max_depth` and
//! friends last for the one script, since every script runs in a fresh Lua state.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};

/// Lua 5.1's `LUAI_MAXCSTACK`: stack slots one C function may use.
const LUA_MAX_C_STACK: usize = 8000;

/// Deepest table nesting any walk here follows. Redis's own limits sit at 1000 by default
/// (cjson) or near 4000 (its Lua stack); past this one we report the nesting error the C
/// library reports when its stack runs out.
const MAX_WALK_DEPTH: usize = 2000;

/// At most this many results go back directly; more are spread from a table by the glue.
const DIRECT_RESULTS: usize = 8;

/// Where the glue's `wrap` lives, for `cjson.new()` to build more functions later.
const WRAP_KEY: &str = "cellkv.lua_libs.wrap";

/// Where Lua's `next` is kept, safe from scripts, for walking tables a step at a time.
const NEXT_KEY: &str = "cellkv.lua_libs.next";

/// The Lua side. Called with the Rust `build`, it sets each library's global to an empty
/// read-only view that builds the library when first read, and returns Lua's `next` and
/// `wrap`, which makes a library function out of a Rust one. A Rust function answers
/// `0, values...`, `1, table, count`, `2, message` for an error `luaL_error` would raise, or
/// `3, message` for one without a position.
///
/// `luaL_error` prefixes the position of whoever called the C function when that is Lua code
/// ("user_script:3: "), and nothing when it is C (`pcall(cjson.decode, text)`). The wrapper
/// tail-calls `finish`: level 1 is `finish`, the wrapper's vanished frame counts as level 2,
/// and level 3 is that caller.
const GLUE: &str = r#"
local build = ...
local error, unpack, setmetatable = error, unpack, setmetatable
local function finish(status, ...)
    if status == 0 then return ... end
    if status == 1 then
        local results, count = ...
        return unpack(results, 1, count)
    end
    if status == 2 then error((...), 3) end
    error((...), 0)
end
local function wrap(f)
    return function(...) return finish(f(...)) end
end
local function refuse()
    error("Attempt to modify a readonly table", 2)
end
local function lazy(name)
    local meta = { __newindex = refuse, __metatable = false }
    meta.__index = function(_, key)
        local library = build(name)
        meta.__index = library
        return library[key]
    end
    return setmetatable({}, meta)
end
for _, name in ipairs({ "cjson", "cmsgpack", "bit", "struct" }) do
    rawset(_G, name, lazy(name))
end
return next, wrap
"#;

/// Sets the globals `cjson`, `cmsgpack`, `bit` and `struct`, each read-only.
///
/// Every script runs in a fresh state, and building all four libraries would double what a
/// state costs to make; so each global starts as an empty read-only view and its library
/// is built the first time the script reads from it.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let build = lua.create_function(|lua, name: mlua::LuaString| {
        let wrap: Function = lua.named_registry_value(WRAP_KEY)?;
        match &*name.as_bytes() {
            b"cjson" => cjson_library(lua),
            b"cmsgpack" => cmsgpack_library(lua, &wrap),
            b"bit" => bit_library(lua, &wrap),
            _ => struct_library(lua, &wrap),
        }
    })?;
    let (next, wrap): (Function, Function) = lua
        .load(glue_bytecode()?)
        .set_name("=lua_libs")
        .set_mode(mlua::chunk::ChunkMode::Binary)
        .into_function()?
        .call(build)?;
    lua.set_named_registry_value(WRAP_KEY, wrap)?;
    lua.set_named_registry_value(NEXT_KEY, next)?;
    Ok(())
}

/// `GLUE` compiled once per process: loading bytecode into each script's fresh state costs
/// a fraction of parsing the source again.
fn glue_bytecode() -> mlua::Result<&'static [u8]> {
    static BYTECODE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    if let Some(bytecode) = BYTECODE.get() {
        return Ok(bytecode);
    }
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::new())?;
    let compiled = lua
        .load(GLUE)
        .set_name("=lua_libs")
        .into_function()?
        .dump(false);
    Ok(BYTECODE.get_or_init(|| compiled))
}

// ---------------------------------------------------------------- plumbing ----

/// Why a library function stopped.
enum Fault {
    /// A Lua error as `luaL_error` raises it: prefixed with the calling script line.
    Raise(Vec<u8>),
    /// A Lua error the VM raises inside the C function, which carries no position.
    Bare(Vec<u8>),
    /// The engine itself failed (memory, mlua's limits).
    Engine(mlua::Error),
}

impl From<mlua::Error> for Fault {
    fn from(error: mlua::Error) -> Self {
        Fault::Engine(error)
    }
}

type Outcome<T> = Result<T, Fault>;

fn raise(message: impl Into<Vec<u8>>) -> Fault {
    Fault::Raise(message.into())
}

fn bare(message: impl Into<Vec<u8>>) -> Fault {
    Fault::Bare(message.into())
}

/// What a library function hands the glue.
enum Results {
    /// A few values, returned as they are.
    Values(Vec<Value>),
    /// `table[1..=count]`, for functions whose results may run into thousands.
    Spread(Table, usize),
}

fn one(value: Value) -> Outcome<Results> {
    Ok(Results::Values(vec![value]))
}

/// A library function: `body` in Rust, behind the glue's `wrap`.
fn library_function<F>(lua: &Lua, wrap: &Function, body: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &[Value]) -> Outcome<Results> + 'static,
{
    let raw = lua.create_function(move |lua, args: MultiValue| {
        let args = args.into_vec();
        let mut out = Vec::with_capacity(4);
        match body(lua, &args) {
            Ok(Results::Values(values)) if values.len() <= DIRECT_RESULTS => {
                out.push(Value::Integer(0));
                out.extend(values);
            }
            Ok(Results::Values(values)) => {
                let count = values.len();
                let table = lua.create_table_with_capacity(count, 0)?;
                for (i, value) in values.into_iter().enumerate() {
                    table.raw_set(i + 1, value)?;
                }
                out.extend([Value::Integer(1), Value::Table(table), count_value(count)]);
            }
            Ok(Results::Spread(table, count)) => {
                out.extend([Value::Integer(1), Value::Table(table), count_value(count)]);
            }
            Err(Fault::Raise(message)) => {
                out.push(Value::Integer(2));
                out.push(Value::String(lua.create_string(&message)?));
            }
            Err(Fault::Bare(message)) => {
                out.push(Value::Integer(3));
                out.push(Value::String(lua.create_string(&message)?));
            }
            Err(Fault::Engine(error)) => return Err(error),
        }
        Ok(MultiValue::from_vec(out))
    })?;
    wrap.call(raw)
}

fn count_value(count: usize) -> Value {
    Value::Number(count as f64)
}

fn number(n: f64) -> Value {
    Value::Number(n)
}

/// Lua's name for a value's type; "no value" for a missing argument.
fn type_name(value: Option<&Value>) -> &'static str {
    match value {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `lua_tonumber`: numbers, and strings that read as one.
fn to_number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => str_to_number(&s.as_bytes()),
        _ => None,
    }
}

/// A function's arguments, checked the way `luaL_check*` checks them.
struct Args<'a> {
    values: &'a [Value],
    function: &'static str,
}

impl<'a> Args<'a> {
    fn new(values: &'a [Value], function: &'static str) -> Self {
        Args { values, function }
    }

    fn count(&self) -> usize {
        self.values.len()
    }

    /// Argument `n`, counting from 1.
    fn get(&self, n: usize) -> Option<&'a Value> {
        n.checked_sub(1).and_then(|i| self.values.get(i))
    }

    fn is_nil(&self, n: usize) -> bool {
        matches!(self.get(n), None | Some(Value::Nil))
    }

    /// `luaL_argerror`'s words.
    fn bad(&self, n: usize, extra: impl AsRef<[u8]>) -> Fault {
        let mut message = format!("bad argument #{n} to '{}' (", self.function).into_bytes();
        message.extend_from_slice(extra.as_ref());
        message.push(b')');
        Fault::Raise(message)
    }

    fn type_error(&self, n: usize, expected: &str) -> Fault {
        let got = type_name(self.get(n));
        self.bad(n, format!("{expected} expected, got {got}"))
    }

    /// `luaL_checknumber`.
    fn number(&self, n: usize) -> Outcome<f64> {
        to_number(self.get(n)).ok_or_else(|| self.type_error(n, "number"))
    }

    /// `luaL_checkinteger`: the number cut to an integer as C casts it.
    fn integer(&self, n: usize) -> Outcome<i64> {
        self.number(n).map(c_i64)
    }

    /// `luaL_optinteger`.
    fn opt_integer(&self, n: usize, default: i64) -> Outcome<i64> {
        if self.is_nil(n) {
            Ok(default)
        } else {
            self.integer(n)
        }
    }

    /// `luaL_checklstring`: strings, and numbers in Lua's text for them.
    fn bytes(&self, n: usize) -> Outcome<Vec<u8>> {
        match self.get(n) {
            Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(Value::Integer(i)) => Ok(number_text(*i as f64).into_bytes()),
            Some(Value::Number(x)) => Ok(number_text(*x).into_bytes()),
            _ => Err(self.type_error(n, "string")),
        }
    }
}

/// C's `(int64_t)x` on x86-64: truncation, and the "integer indefinite" value when out of
/// range or NaN.
fn c_i64(x: f64) -> i64 {
    if x.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// C's `(int)x` on x86-64.
fn c_i32(x: f64) -> i32 {
    if x.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        i32::MIN
    } else {
        x as i32
    }
}

/// C's `(unsigned long)x` as GCC compiles it for x86-64.
fn c_u64(x: f64) -> u64 {
    if x.is_nan() {
        1 << 63
    } else if x < 9_223_372_036_854_775_808.0 {
        c_i64(x) as u64
    } else if x < 18_446_744_073_709_551_616.0 {
        x as u64
    } else {
        0
    }
}

/// Lua's text for a number (`LUA_NUMBER_FMT`, "%.14g").
fn number_text(x: f64) -> String {
    format_g(x, 14)
}

/// C's `printf("%.{precision}g", x)`.
fn format_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let p = precision.max(1);
    // %g picks its style from the exponent %e would print at this precision.
    let scientific = format!("{:.*e}", p - 1, x);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= p as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_fraction_zeros(mantissa),
            exponent.unsigned_abs()
        )
    } else {
        let decimals = (p as i32 - 1 - exponent).max(0) as usize;
        strip_fraction_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn strip_fraction_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Lua 5.1's `luaO_str2d`: C's `strtod`, then only white space may follow. The C string ends
/// at the first NUL byte.
fn str_to_number(text: &[u8]) -> Option<f64> {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let text = &text[..end];
    let start = text
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(text.len());
    let (value, used) = strtod_prefix(&text[start..])?;
    text[start + used..]
        .iter()
        .all(|&b| is_c_space(b))
        .then_some(value)
}

/// glibc's `strtod` on the start of `s` (white space already skipped): the value and the
/// bytes it used, or None when no number starts there.
fn strtod_prefix(s: &[u8]) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let starts_with = |i: usize, word: &[u8]| {
        word.iter()
            .enumerate()
            .all(|(k, w)| at(i + k).to_ascii_lowercase() == *w)
    };
    let (negative, mut i) = match at(0) {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let signed = |v: f64| if negative { -v } else { v };
    if starts_with(i, b"inf") {
        let used = if starts_with(i, b"infinity") { 8 } else { 3 };
        return Some((signed(f64::INFINITY), i + used));
    }
    if starts_with(i, b"nan") {
        let mut end = i + 3;
        if at(end) == b'(' {
            let mut k = end + 1;
            while at(k).is_ascii_alphanumeric() || at(k) == b'_' {
                k += 1;
            }
            if at(k) == b')' {
                end = k + 1;
            }
        }
        return Some((signed(f64::NAN), end));
    }
    if at(i) == b'0' && at(i + 1).eq_ignore_ascii_case(&b'x') {
        return Some(match hex_float(s, i + 2) {
            Some((v, end)) => (signed(v), end),
            // "0x" with no hexadecimal digit after it reads as the 0 alone.
            None => (signed(0.0), i + 1),
        });
    }
    let start = i;
    let mut digits = 0;
    while at(i).is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if at(i) == b'.' {
        i += 1;
        while at(i).is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    let mut end = i;
    if at(i) == b'e' || at(i) == b'E' {
        let mut k = i + 1;
        if at(k) == b'+' || at(k) == b'-' {
            k += 1;
        }
        if at(k).is_ascii_digit() {
            while at(k).is_ascii_digit() {
                k += 1;
            }
            end = k;
        }
    }
    // Rust's parser rounds decimal text exactly as glibc does.
    let value: f64 = std::str::from_utf8(&s[start..end]).ok()?.parse().ok()?;
    Some((signed(value), end))
}

/// The digits of a hexadecimal float after its "0x": the value and where it ends, or None
/// when no hexadecimal digit follows.
fn hex_float(s: &[u8], from: usize) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = from;
    let mut mantissa: u64 = 0;
    let mut exponent: i64 = 0;
    let mut sticky = false;
    let mut digits = 0;
    let mut seen_point = false;
    loop {
        let c = at(i);
        if c == b'.' && !seen_point {
            seen_point = true;
            i += 1;
            continue;
        }
        let Some(digit) = char::from(c).to_digit(16) else {
            break;
        };
        digits += 1;
        if mantissa >> 60 == 0 {
            mantissa = mantissa << 4 | u64::from(digit);
            if seen_point {
                exponent -= 4;
            }
        } else {
            // Digits past 64 bits only decide the rounding.
            sticky |= digit != 0;
            if !seen_point {
                exponent += 4;
            }
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    let mut end = i;
    if at(i) == b'p' || at(i) == b'P' {
        let mut k = i + 1;
        let negative = match at(k) {
            b'-' => {
                k += 1;
                true
            }
            b'+' => {
                k += 1;
                false
            }
            _ => false,
        };
        if at(k).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(k).is_ascii_digit() {
                e = (e * 10 + i64::from(at(k) - b'0')).min(1 << 20);
                k += 1;
            }
            exponent += if negative { -e } else { e };
            end = k;
        }
    }
    if sticky {
        mantissa |= 1;
    }
    Some((scale_binary(mantissa, exponent), end))
}

/// `mantissa * 2^exponent`, rounded once to the nearest double (ties to even).
fn scale_binary(mantissa: u64, exponent: i64) -> f64 {
    if mantissa == 0 {
        return 0.0;
    }
    let lead = 63 - i64::from(mantissa.leading_zeros());
    let top = exponent + lead;
    if top > 1023 {
        return f64::INFINITY;
    }
    // Bits kept after the leading one: 52, fewer for subnormal results.
    let keep = if top < -1022 { 52 - (-1022 - top) } else { 52 };
    if keep < -1 {
        return 0.0;
    }
    let drop = lead - keep;
    let (kept, mut exponent) = if drop > 0 {
        let drop = drop as u32;
        let half = 1u64 << (drop - 1);
        let rest = mantissa & ((1u64 << drop) - 1);
        let mut kept = mantissa >> drop;
        if rest > half || (rest == half && kept & 1 == 1) {
            kept += 1;
        }
        (kept, exponent + i64::from(drop))
    } else {
        (mantissa, exponent)
    };
    let mut value = kept as f64;
    if exponent < -1000 {
        value *= 2f64.powi(-1000);
        exponent += 1000;
    }
    value * 2f64.powi(exponent as i32)
}

// ------------------------------------------------------------------- cjson ----

/// One cjson instance's settings (each `cjson.new()` has its own).
#[derive(Clone, Copy)]
struct JsonConfig {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 refuses NaN and infinities, 1 writes them out, 2 writes `null`.
    encode_invalid_numbers: i32,
    decode_invalid_numbers: i32,
    /// Kept only to be reported back: there is no buffer to keep.
    encode_keep_buffer: i32,
    encode_number_precision: i32,
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: 1,
            encode_keep_buffer: 1,
            encode_number_precision: 14,
        }
    }
}

const ON_OFF: &[&str] = &["off", "on"];
const INVALID_NUMBER_OPTIONS: &[&str] = &["off", "on", "null"];

type Config = Rc<Cell<JsonConfig>>;

/// A cjson module table with its own settings.
fn cjson_library(lua: &Lua) -> mlua::Result<Table> {
    let wrap: Function = lua.named_registry_value(WRAP_KEY)?;
    let config: Config = Rc::new(Cell::new(JsonConfig::default()));
    let table = lua.create_table()?;
    type Body = fn(&Lua, &Args, &Config) -> Outcome<Results>;
    let functions: [(&'static str, Body); 9] = [
        ("encode", json_encode),
        ("decode", json_decode),
        ("encode_sparse_array", json_cfg_sparse_array),
        ("encode_max_depth", json_cfg_encode_max_depth),
        ("decode_max_depth", json_cfg_decode_max_depth),
        ("encode_number_precision", json_cfg_number_precision),
        ("encode_keep_buffer", json_cfg_keep_buffer),
        ("encode_invalid_numbers", json_cfg_encode_invalid_numbers),
        ("decode_invalid_numbers", json_cfg_decode_invalid_numbers),
    ];
    for (name, body) in functions {
        let config = config.clone();
        let function = library_function(lua, &wrap, move |lua, values| {
            body(lua, &Args::new(values, name), &config)
        })?;
        table.raw_set(name, function)?;
    }
    table.raw_set(
        "new",
        lua.create_function(|lua, _: MultiValue| cjson_library(lua))?,
    )?;
    table.raw_set("null", Value::NULL)?;
    table.raw_set("_NAME", "cjson")?;
    table.raw_set("_VERSION", "2.1.0")?;
    Ok(table)
}

/// `json_arg_init`: no more than `most` arguments.
fn json_arg_check(args: &Args, most: usize) -> Outcome<()> {
    if args.count() > most {
        return Err(args.bad(most + 1, "found too many arguments"));
    }
    Ok(())
}

/// `json_integer_option`: sets from argument `n` when given; answers the setting.
fn json_integer_option(
    args: &Args,
    n: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> Outcome<Value> {
    if !args.is_nil(n) {
        // C stores the lua_Integer in an int.
        let value = args.integer(n)? as i32;
        if !(min..=max).contains(&value) {
            return Err(args.bad(1, format!("expected integer between {min} and {max}")));
        }
        *setting = value;
    }
    Ok(Value::Integer(i64::from(*setting)))
}

/// `json_enum_option`: a boolean or one of `options` by name; answers the setting as a
/// boolean when it is off or on, else by name.
fn json_enum_option(
    lua: &Lua,
    args: &Args,
    n: usize,
    setting: &mut i32,
    options: &[&str],
) -> Outcome<Value> {
    match args.get(n) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *setting = i32::from(*b),
        Some(_) => {
            let name = match args.get(n) {
                Some(Value::String(_) | Value::Integer(_) | Value::Number(_)) => args.bytes(n)?,
                _ => return Err(args.type_error(n, "string")),
            };
            let Some(index) = options.iter().position(|o| o.as_bytes() == name) else {
                let mut extra = b"invalid option '".to_vec();
                extra.extend_from_slice(&name);
                extra.push(b'\'');
                return Err(args.bad(n, extra));
            };
            *setting = index as i32;
        }
    }
    if *setting == 0 || *setting == 1 {
        Ok(Value::Boolean(*setting == 1))
    } else {
        let name = options.get(*setting as usize).copied().unwrap_or("");
        Ok(Value::String(lua.create_string(name)?))
    }
}

fn json_cfg_sparse_array(lua: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    json_arg_check(args, 3)?;
    let mut c = config.get();
    let convert = json_enum_option(lua, args, 1, &mut c.sparse_convert, ON_OFF)?;
    config.set(c);
    let ratio = json_integer_option(args, 2, &mut c.sparse_ratio, 0, i32::MAX)?;
    config.set(c);
    let safe = json_integer_option(args, 3, &mut c.sparse_safe, 0, i32::MAX)?;
    config.set(c);
    Ok(Results::Values(vec![convert, ratio, safe]))
}

fn json_cfg_encode_max_depth(_: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    json_arg_check(args, 1)?;
    let mut c = config.get();
    let depth = json_integer_option(args, 1, &mut c.encode_max_depth, 1, i32::MAX)?;
    config.set(c);
    one(depth)
}

fn json_cfg_decode_max_depth(_: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    json_arg_check(args, 1)?;
    let mut c = config.get();
    let depth = json_integer_option(args, 1, &mut c.decode_max_depth, 1, i32::MAX)?;
    config.set(c);
    one(depth)
}

fn json_cfg_number_precision(_: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    json_arg_check(args, 1)?;
    let mut c = config.get();
    let precision = json_integer_option(args, 1, &mut c.encode_number_precision, 1, 14)?;
    config.set(c);
    one(precision)
}

fn json_cfg_keep_buffer(lua: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    json_arg_check(args, 1)?;
    let mut c = config.get();
    let keep = json_enum_option(lua, args, 1, &mut c.encode_keep_buffer, ON_OFF)?;
    config.set(c);
    one(keep)
}

fn json_cfg_encode_invalid_numbers(lua: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    json_arg_check(args, 1)?;
    let mut c = config.get();
    let setting = json_enum_option(
        lua,
        args,
        1,
        &mut c.encode_invalid_numbers,
        INVALID_NUMBER_OPTIONS,
    )?;
    config.set(c);
    one(setting)
}

fn json_cfg_decode_invalid_numbers(lua: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    json_arg_check(args, 1)?;
    let mut c = config.get();
    let setting = json_enum_option(lua, args, 1, &mut c.decode_invalid_numbers, ON_OFF)?;
    config.set(c);
    one(setting)
}

fn json_encode(lua: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    if args.count() != 1 {
        return Err(args.bad(1, "expected 1 argument"));
    }
    let mut encoder = JsonEncoder {
        config: config.get(),
        out: Vec::new(),
    };
    encoder.encode(lua, args.get(1).unwrap_or(&Value::Nil))?;
    one(Value::String(lua.create_string(&encoder.out)?))
}

struct JsonEncoder {
    config: JsonConfig,
    out: Vec<u8>,
}

/// A table being written out; `stack` counts the Lua slots lua-cjson would be using.
enum JsonOpen {
    Array {
        table: Table,
        next: i32,
        length: i32,
        stack: usize,
    },
    Object {
        table: Table,
        key: Value,
        first: bool,
        stack: usize,
    },
}

impl JsonEncoder {
    /// Writes `root`. The walk keeps its open tables on the heap, not the Rust stack, and
    /// resumes an object with Lua's own `next`, so keys come out in lua-cjson's order.
    fn encode(&mut self, lua: &Lua, root: &Value) -> Outcome<()> {
        let next: Function = lua.named_registry_value(NEXT_KEY)?;
        let mut open: Vec<JsonOpen> = Vec::new();
        // The value to write and the slots in use with it on the stack; the argument is
        // the C function's first slot.
        let mut pending = Some((root.clone(), 1));
        loop {
            if let Some((value, stack)) = pending.take() {
                match value {
                    Value::Table(table) => {
                        let depth = open.len() + 1;
                        // lua-cjson wants three free slots per table.
                        if depth > self.config.encode_max_depth.max(0) as usize
                            || stack + 3 > LUA_MAX_C_STACK
                            || depth > MAX_WALK_DEPTH
                        {
                            return Err(raise(format!(
                                "Cannot serialise, excessive nesting ({depth})"
                            )));
                        }
                        let length = self.array_length(&table)?;
                        if length > 0 {
                            self.out.push(b'[');
                            open.push(JsonOpen::Array {
                                table,
                                next: 1,
                                length,
                                stack,
                            });
                        } else {
                            self.out.push(b'{');
                            open.push(JsonOpen::Object {
                                table,
                                key: Value::Nil,
                                first: true,
                                stack,
                            });
                        }
                    }
                    other => self.scalar(&other)?,
                }
            }
            let Some(top) = open.last_mut() else {
                return Ok(());
            };
            match top {
                JsonOpen::Array {
                    table,
                    next,
                    length,
                    stack,
                } => {
                    if *next > *length {
                        self.out.push(b']');
                        open.pop();
                        continue;
                    }
                    if *next > 1 {
                        self.out.push(b',');
                    }
                    let item: Value = table.raw_get(*next)?;
                    *next += 1;
                    // lua_rawgeti pushes the item.
                    pending = Some((item, *stack + 1));
                }
                JsonOpen::Object {
                    table,
                    key,
                    first,
                    stack,
                } => {
                    let (new_key, item): (Value, Value) = next.call((&*table, &*key))?;
                    if new_key.is_nil() {
                        self.out.push(b'}');
                        open.pop();
                        continue;
                    }
                    if !*first {
                        self.out.push(b',');
                    }
                    *first = false;
                    self.key(&new_key)?;
                    *key = new_key;
                    // lua_next leaves the key and the item on the stack.
                    pending = Some((item, *stack + 2));
                }
            }
        }
    }

    /// Anything but a table.
    fn scalar(&mut self, value: &Value) -> Outcome<()> {
        match value {
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Integer(i) => self.number(*i as f64)?,
            Value::Number(n) => self.number(*n)?,
            Value::String(s) => self.string(&s.as_bytes()),
            Value::LightUserData(pointer) if pointer.0.is_null() => {
                self.out.extend_from_slice(b"null")
            }
            other => {
                return Err(raise(format!(
                    "Cannot serialise {}: type not supported",
                    type_name(Some(other))
                )))
            }
        }
        Ok(())
    }

    /// An object key and its colon: numbers are written as strings.
    fn key(&mut self, key: &Value) -> Outcome<()> {
        match key {
            Value::Integer(_) | Value::Number(_) => {
                self.out.push(b'"');
                self.number(to_number(Some(key)).unwrap_or(0.0))?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                self.string(&s.as_bytes());
                self.out.push(b':');
            }
            other => {
                return Err(raise(format!(
                    "Cannot serialise {}: table key must be a number or string",
                    type_name(Some(other))
                )))
            }
        }
        Ok(())
    }

    /// lua-cjson's `lua_array_length`: the largest index when every key is a positive
    /// integer and the array is not too sparse, else -1 (an object).
    fn array_length(&self, table: &Table) -> Outcome<i32> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        for pair in table.pairs::<Value, Value>() {
            let (key, _) = pair?;
            let k = match key {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => return Ok(-1),
            };
            if k == 0.0 || k.floor() != k || k < 1.0 {
                return Ok(-1);
            }
            if k > f64::from(max) {
                max = c_i32(k);
            }
            items = items.wrapping_add(1);
        }
        let c = &self.config;
        if c.sparse_ratio > 0 && max > items.wrapping_mul(c.sparse_ratio) && max > c.sparse_safe {
            if c.sparse_convert == 0 {
                return Err(raise("Cannot serialise table: excessively sparse array"));
            }
            return Ok(-1);
        }
        Ok(max)
    }

    fn number(&mut self, n: f64) -> Outcome<()> {
        let invalid = n.is_nan() || n.is_infinite();
        match self.config.encode_invalid_numbers {
            0 if invalid => return Err(raise("Cannot serialise number: must not be NaN or Inf")),
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            2 if invalid => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        let precision = self.config.encode_number_precision.clamp(1, 14) as usize;
        self.out
            .extend_from_slice(format_g(n, precision).as_bytes());
        Ok(())
    }

    /// A JSON string as lua-cjson writes it: control characters, `"`, `\`, `/` and DEL
    /// escaped; everything else, UTF-8 or not, as it is.
    fn string(&mut self, bytes: &[u8]) {
        self.out.push(b'"');
        for &b in bytes {
            match b {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                0x08 => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                0x0c => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => {
                    self.out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                }
                _ => self.out.push(b),
            }
        }
        self.out.push(b'"');
    }
}

fn json_decode(lua: &Lua, args: &Args, config: &Config) -> Outcome<Results> {
    if args.count() != 1 {
        return Err(args.bad(1, "expected 1 argument"));
    }
    let data = args.bytes(1)?;
    // Text that is not UTF-8 shows NUL bytes in its first two, since JSON starts with ASCII.
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(raise("JSON parser does not support UTF-16 or UTF-32"));
    }
    let mut parser = JsonParser {
        lua,
        data: &data,
        ptr: 0,
        config: config.get(),
        depth: 0,
    };
    let value = parser.parse()?;
    let token = parser.next_token();
    if !matches!(token.kind, Tok::End) {
        return Err(parser.expected("the end", &token));
    }
    one(value)
}

/// A JSON token, named in errors as lua-cjson names it.
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    /// What went wrong, in lua-cjson's words.
    Bad(&'static str),
}

struct Token {
    kind: Tok,
    /// Offset of the token, or of the fault in a bad one.
    index: usize,
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Number(_) => "T_NUMBER",
            Tok::Boolean(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Bad(what) => what,
        }
    }
}

struct JsonParser<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    ptr: usize,
    config: JsonConfig,
    depth: i32,
}

impl JsonParser<'_> {
    /// The byte at `i`; the C parser reads a NUL-terminated string, so past the end is 0.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn expected(&self, what: &str, token: &Token) -> Fault {
        raise(format!(
            "Expected {what} but found {} at character {}",
            token.kind.name(),
            token.index + 1
        ))
    }

    fn bad(&self, what: &'static str) -> Token {
        Token {
            kind: Tok::Bad(what),
            index: self.ptr,
        }
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        let index = self.ptr;
        let simple = |kind| Token { kind, index };
        let single = match self.at(index) {
            0 => return simple(Tok::End),
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            b'"' => return self.string_token(),
            b'-' | b'0'..=b'9' => {
                if self.config.decode_invalid_numbers == 0 && self.is_invalid_number() {
                    return self.bad("invalid number");
                }
                return self.number_token();
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => None,
            _ => return self.bad("invalid token"),
        };
        if let Some(kind) = single {
            self.ptr += 1;
            return simple(kind);
        }
        let rest = &self.data[index.min(self.data.len())..];
        if rest.starts_with(b"true") {
            self.ptr += 4;
            simple(Tok::Boolean(true))
        } else if rest.starts_with(b"false") {
            self.ptr += 5;
            simple(Tok::Boolean(false))
        } else if rest.starts_with(b"null") {
            self.ptr += 4;
            simple(Tok::Null)
        } else if self.config.decode_invalid_numbers != 0 && self.is_invalid_number() {
            self.number_token()
        } else {
            self.bad("invalid token")
        }
    }

    /// lua-cjson's test for what `strtod` reads but JSON forbids: a leading `+`, hexadecimal,
    /// leading zeros, infinity and NaN.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let next = self.at(p + 1);
            return next | 0x20 == b'x' || next.is_ascii_digit();
        }
        // C compares a signed char here, so bytes past ASCII count as "ordinary".
        if c <= b'9' || c >= 0x80 {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|k| self.at(p + k).to_ascii_lowercase() == w[k]);
        word(b"inf") || word(b"nan")
    }

    fn number_token(&mut self) -> Token {
        let index = self.ptr;
        let rest = &self.data[index.min(self.data.len())..];
        match strtod_prefix(rest) {
            Some((n, used)) => {
                self.ptr += used;
                Token {
                    kind: Tok::Number(n),
                    index,
                }
            }
            None => self.bad("invalid number"),
        }
    }

    fn string_token(&mut self) -> Token {
        let index = self.ptr;
        self.ptr += 1;
        let mut text = Vec::new();
        loop {
            let c = self.at(self.ptr);
            if c == b'"' {
                break;
            }
            if c == 0 {
                return self.bad("unexpected end of string");
            }
            if c != b'\\' {
                text.push(c);
                self.ptr += 1;
                continue;
            }
            let translated = match self.at(self.ptr + 1) {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b't' => b'\t',
                b'n' => b'\n',
                b'f' => 0x0c,
                b'r' => b'\r',
                b'u' => {
                    if self.unicode_escape(&mut text) {
                        continue;
                    }
                    return self.bad("invalid unicode escape code");
                }
                _ => return self.bad("invalid escape code"),
            };
            text.push(translated);
            self.ptr += 2;
        }
        self.ptr += 1;
        Token {
            kind: Tok::Str(text),
            index,
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |acc, k| {
            char::from(self.at(at + k))
                .to_digit(16)
                .map(|d| acc << 4 | d)
        })
    }

    /// `\uXXXX` (or a surrogate pair of them) at `ptr` as UTF-8; false when malformed.
    fn unicode_escape(&mut self, text: &mut Vec<u8>) -> bool {
        let Some(mut codepoint) = self.hex4(self.ptr + 2) else {
            return false;
        };
        let mut length = 6;
        if codepoint & 0xF800 == 0xD800 {
            // Only a high surrogate followed by an escaped low one will do.
            if codepoint & 0x400 != 0
                || self.at(self.ptr + 6) != b'\\'
                || self.at(self.ptr + 7) != b'u'
            {
                return false;
            }
            let Some(low) = self.hex4(self.ptr + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            codepoint = (((codepoint & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            length = 12;
        }
        match char::from_u32(codepoint) {
            Some(c) => {
                let mut buffer = [0u8; 4];
                text.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
            None => return false,
        }
        self.ptr += length;
        true
    }

    /// One step deeper, refused as lua-cjson refuses it: `stack` slots are in use and
    /// the new table needs `slots` more.
    fn descend(&mut self, slots: usize, stack: usize) -> Outcome<()> {
        self.depth += 1;
        if self.depth > self.config.decode_max_depth
            || stack + slots > LUA_MAX_C_STACK
            || self.depth as usize > MAX_WALK_DEPTH
        {
            return Err(raise(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth, self.ptr
            )));
        }
        Ok(())
    }

    /// The key of an object member, starting at `token`, and its colon.
    fn member_key(&mut self, token: Token) -> Outcome<Vec<u8>> {
        let Tok::Str(key) = token.kind else {
            return Err(self.expected("object key string", &token));
        };
        let token = self.next_token();
        if !matches!(token.kind, Tok::Colon) {
            return Err(self.expected("colon", &token));
        }
        Ok(key)
    }

    /// One JSON value, checked in the order lua-cjson's recursive parser checks it. Open
    /// arrays and objects are kept on the heap rather than the Rust stack.
    fn parse(&mut self) -> Outcome<Value> {
        let mut open: Vec<JsonReading> = Vec::new();
        // Lua slots in use: the argument, then a table per open array, a table and a key
        // per open object.
        let mut stack = 1;
        let mut token = self.next_token();
        loop {
            let mut value = match token.kind {
                Tok::Str(text) => Value::String(self.lua.create_string(&text)?),
                Tok::Number(n) => Value::Number(n),
                Tok::Boolean(b) => Value::Boolean(b),
                // JSON null is cjson.null: a nil would vanish from a table.
                Tok::Null => Value::NULL,
                Tok::ObjBegin => {
                    self.descend(3, stack)?;
                    let table = self.lua.create_table()?;
                    let first = self.next_token();
                    if matches!(first.kind, Tok::ObjEnd) {
                        self.depth -= 1;
                        Value::Table(table)
                    } else {
                        let key = self.member_key(first)?;
                        open.push(JsonReading::Object { table, key });
                        stack += 2;
                        token = self.next_token();
                        continue;
                    }
                }
                Tok::ArrBegin => {
                    self.descend(2, stack)?;
                    let table = self.lua.create_table()?;
                    let first = self.next_token();
                    if matches!(first.kind, Tok::ArrEnd) {
                        self.depth -= 1;
                        Value::Table(table)
                    } else {
                        open.push(JsonReading::Array { table, index: 1 });
                        stack += 1;
                        token = first;
                        continue;
                    }
                }
                _ => return Err(self.expected("value", &token)),
            };
            // Hand the value to the innermost open container, closing those that end.
            loop {
                let Some(mut top) = open.pop() else {
                    return Ok(value);
                };
                let after = self.next_token();
                let closed = match &mut top {
                    JsonReading::Array { table, index } => {
                        table.raw_set(*index, value)?;
                        *index += 1;
                        match after.kind {
                            Tok::ArrEnd => true,
                            Tok::Comma => false,
                            _ => return Err(self.expected("comma or array end", &after)),
                        }
                    }
                    JsonReading::Object { table, key } => {
                        table.raw_set(self.lua.create_string(&*key)?, value)?;
                        match after.kind {
                            Tok::ObjEnd => true,
                            Tok::Comma => {
                                let next = self.next_token();
                                *key = self.member_key(next)?;
                                false
                            }
                            _ => return Err(self.expected("comma or object end", &after)),
                        }
                    }
                };
                if !closed {
                    open.push(top);
                    token = self.next_token();
                    break;
                }
                self.depth -= 1;
                value = match top {
                    JsonReading::Array { table, .. } => {
                        stack -= 1;
                        Value::Table(table)
                    }
                    JsonReading::Object { table, .. } => {
                        stack -= 2;
                        Value::Table(table)
                    }
                };
            }
        }
    }
}

/// An array or object being read.
enum JsonReading {
    Array { table: Table, index: i64 },
    Object { table: Table, key: Vec<u8> },
}

// ---------------------------------------------------------------- cmsgpack ----

/// Tables nested deeper than this are packed as nil (lua-cmsgpack's guard against cycles).
const MSGPACK_MAX_NESTING: usize = 16;

/// Most results the glue can spread from a table.
const MAX_SPREAD: usize = LUA_MAX_C_STACK - 3;

const TOO_MANY_RETURNS: &str =
    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";

fn cmsgpack_library(lua: &Lua, wrap: &Function) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("pack", library_function(lua, wrap, msgpack_pack)?)?;
    table.raw_set(
        "unpack",
        library_function(lua, wrap, |lua, values| {
            let args = Args::new(values, "unpack");
            // The arguments stay on the C function's stack.
            msgpack_unpack(lua, &args, 0, 0, args.count().max(1))
        })?,
    )?;
    table.raw_set(
        "unpack_one",
        library_function(lua, wrap, |lua, values| {
            let args = Args::new(values, "unpack_one");
            let offset = args.opt_integer(2, 0)?;
            msgpack_unpack(lua, &args, 1, offset, 1)
        })?,
    )?;
    table.raw_set(
        "unpack_limit",
        library_function(lua, wrap, |lua, values| {
            let args = Args::new(values, "unpack_limit");
            let limit = args.integer(2)?;
            let offset = args.opt_integer(3, 0)?;
            msgpack_unpack(lua, &args, limit, offset, 1)
        })?,
    )?;
    table.raw_set("_NAME", "cmsgpack")?;
    table.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    table.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    table.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(table)
}

fn msgpack_pack(lua: &Lua, values: &[Value]) -> Outcome<Results> {
    let args = Args::new(values, "pack");
    let count = args.count();
    if count == 0 {
        return Err(args.bad(0, "MessagePack pack needs input."));
    }
    if count + count > LUA_MAX_C_STACK {
        return Err(args.bad(0, "Too many arguments for MessagePack pack."));
    }
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        // The arguments, the packed strings before this one, and a copy of this value.
        msgpack_encode(&mut out, value, 0, count + i + 1)?;
    }
    one(Value::String(lua.create_string(&out)?))
}

fn stack_overflow(stack: usize, need: usize, what: &str) -> Outcome<()> {
    if stack + need > LUA_MAX_C_STACK {
        return Err(raise(format!("stack overflow ({what})")));
    }
    Ok(())
}

fn msgpack_encode(out: &mut Vec<u8>, value: &Value, level: usize, stack: usize) -> Outcome<()> {
    match value {
        Value::Table(_) if level == MSGPACK_MAX_NESTING => out.push(0xc0),
        Value::String(s) => {
            let bytes = s.as_bytes();
            let len = bytes.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&bytes);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => msgpack_number(out, *i as f64),
        Value::Number(n) => msgpack_number(out, *n),
        Value::Table(table) => msgpack_table(out, table, level, stack)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

/// Integral numbers that fit an int64 as the smallest integer form, others as a float32 when
/// that is exact, else a float64.
fn msgpack_number(out: &mut Vec<u8>, n: f64) {
    let i = c_i64(n);
    if !n.is_infinite() && i as f64 == n {
        msgpack_int(out, i);
    } else if f64::from(n as f32) == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn msgpack_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn msgpack_header(out: &mut Vec<u8>, fix: u8, tag16: u8, n: usize) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(tag16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(tag16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn msgpack_table(out: &mut Vec<u8>, table: &Table, level: usize, stack: usize) -> Outcome<()> {
    // An array when the keys are exactly 1..n (so {} is an empty array), else a map.
    stack_overflow(stack, 2, "in function table_is_an_array")?;
    let mut count: i32 = 0;
    let mut max: i32 = 0;
    let mut is_array = true;
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair?;
        let n = match key {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => {
                is_array = false;
                break;
            }
        };
        if n <= 0.0 || n.is_infinite() || f64::from(c_i32(n)) != n {
            is_array = false;
            break;
        }
        max = max.max(c_i32(n));
        count = count.wrapping_add(1);
    }
    if is_array && max == count {
        let length = count.max(0) as usize;
        msgpack_header(out, 0x90, 0xdc, length);
        stack_overflow(stack, 1, "in function mp_encode_lua_table_as_array")?;
        for i in 1..=length {
            let item: Value = table.raw_get(i)?;
            msgpack_encode(out, &item, level + 1, stack + 1)?;
        }
    } else {
        stack_overflow(stack, 3, "in function mp_encode_lua_table_as_map")?;
        let mut length = 0;
        for pair in table.pairs::<Value, Value>() {
            pair?;
            length += 1;
        }
        msgpack_header(out, 0x80, 0xde, length);
        for pair in table.pairs::<Value, Value>() {
            let (key, item) = pair?;
            // lua-cmsgpack encodes a copy of the key above the key and the value.
            msgpack_encode(out, &key, level + 1, stack + 3)?;
            msgpack_encode(out, &item, level + 1, stack + 2)?;
        }
    }
    Ok(())
}

/// `mp_unpack_full`: up to `limit` objects from `offset` (0 and 0: all, without an offset
/// in front), with `base` slots on the C stack.
fn msgpack_unpack(
    lua: &Lua,
    args: &Args,
    limit: i64,
    offset: i64,
    base: usize,
) -> Outcome<Results> {
    let data = args.bytes(1)?;
    let len = data.len();
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        // The message shows the input length where it means the limit, as lua-cmsgpack does.
        return Err(raise(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        )));
    }
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    if start > len {
        return Err(raise(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        )));
    }
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let results = lua.create_table()?;
    // Without decode_all the next offset goes first.
    let first = if decode_all { 1 } else { 2 };
    let mut reader = MsgpackReader {
        lua,
        data: &data,
        at: start,
    };
    let mut count: usize = 0;
    while reader.at < len && (count as i64) < limit {
        // The glue spreads the results with Lua's `unpack`, whose own three arguments take
        // slots too, so two fewer values fit than in Redis.
        if first + count > MAX_SPREAD {
            return Err(raise(TOO_MANY_RETURNS));
        }
        let value = match reader.object(base + count) {
            Ok(value) => value,
            Err(MsgpackStop::Eof) => return Err(raise("Missing bytes in input.")),
            Err(MsgpackStop::BadFormat) => return Err(raise("Bad data format in input.")),
            Err(MsgpackStop::Fault(fault)) => return Err(fault),
        };
        results.raw_set(first + count, value)?;
        count += 1;
    }
    if decode_all {
        return Ok(Results::Spread(results, count));
    }
    stack_overflow(base + count, 1, "in function mp_unpack_full")?;
    let next = if reader.at == len {
        -1.0
    } else {
        reader.at as f64
    };
    results.raw_set(1, next)?;
    Ok(Results::Spread(results, count + 1))
}

enum MsgpackStop {
    /// The input ends inside an object.
    Eof,
    /// A type byte lua-cmsgpack does not read.
    BadFormat,
    Fault(Fault),
}

impl From<Fault> for MsgpackStop {
    fn from(fault: Fault) -> Self {
        MsgpackStop::Fault(fault)
    }
}

impl From<mlua::Error> for MsgpackStop {
    fn from(error: mlua::Error) -> Self {
        MsgpackStop::Fault(Fault::Engine(error))
    }
}

struct MsgpackReader<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    at: usize,
}

impl MsgpackReader<'_> {
    /// The next `n` bytes, consumed.
    fn take(&mut self, n: usize) -> Result<&[u8], MsgpackStop> {
        let end = self.at.checked_add(n).ok_or(MsgpackStop::Eof)?;
        let bytes = self.data.get(self.at..end).ok_or(MsgpackStop::Eof)?;
        self.at = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], MsgpackStop> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn string(&mut self, n: usize) -> Result<Value, MsgpackStop> {
        let lua = self.lua;
        let bytes = self.take(n)?;
        Ok(Value::String(lua.create_string(bytes)?))
    }

    /// One top-level object, with `stack` slots of the C stack in use before it. Open
    /// arrays and maps are kept on the heap rather than the Rust stack.
    fn object(&mut self, stack: usize) -> Result<Value, MsgpackStop> {
        let mut open: Vec<MsgpackReading> = Vec::new();
        loop {
            // The slots lua-cmsgpack has in use under the next item: an array's table and
            // index, a map's table (and its key, while the value is read).
            let slots = match open.last() {
                None => stack,
                Some(MsgpackReading::Array { base, .. }) => base + 2,
                Some(MsgpackReading::Map {
                    base, key: None, ..
                }) => base + 1,
                Some(MsgpackReading::Map { base, .. }) => base + 2,
            };
            let mut value = match self.item(slots, open.len())? {
                Item::Value(value) => value,
                Item::Open { map, count } => {
                    let table = self.lua.create_table()?;
                    if !map {
                        stack_overflow(slots + 1, 1, "in function mp_decode_to_lua_array")?;
                    }
                    if count > 0 {
                        open.push(if map {
                            MsgpackReading::Map {
                                table,
                                left: count,
                                key: None,
                                base: slots,
                            }
                        } else {
                            MsgpackReading::Array {
                                table,
                                index: 1,
                                left: count,
                                base: slots,
                            }
                        });
                        continue;
                    }
                    Value::Table(table)
                }
            };
            // Hand the value to the innermost open container, closing those now full.
            loop {
                let Some(mut top) = open.pop() else {
                    return Ok(value);
                };
                let left = match &mut top {
                    MsgpackReading::Array {
                        table, index, left, ..
                    } => {
                        table.raw_set(*index, value)?;
                        *index += 1;
                        *left -= 1;
                        *left
                    }
                    MsgpackReading::Map {
                        table, left, key, ..
                    } => match key.take() {
                        None => {
                            *key = Some(value);
                            open.push(top);
                            break;
                        }
                        // lua_settable refuses these keys, without a position.
                        Some(Value::Nil) => return Err(bare("table index is nil").into()),
                        Some(Value::Number(k)) if k.is_nan() => {
                            return Err(bare("table index is NaN").into())
                        }
                        Some(k) => {
                            table.raw_set(k, value)?;
                            *left -= 1;
                            *left
                        }
                    },
                };
                if left > 0 {
                    open.push(top);
                    break;
                }
                value = match top {
                    MsgpackReading::Array { table, .. } | MsgpackReading::Map { table, .. } => {
                        Value::Table(table)
                    }
                };
            }
        }
    }

    /// One item: a whole value, or the head of an array or map. `slots` of the C stack are
    /// in use before it, `depth` containers are open around it.
    fn item(&mut self, slots: usize, depth: usize) -> Result<Item, MsgpackStop> {
        let Some(&tag) = self.data.get(self.at) else {
            return Err(MsgpackStop::Eof);
        };
        if slots + 1 > LUA_MAX_C_STACK || depth > MAX_WALK_DEPTH {
            return Err(raise(TOO_MANY_RETURNS).into());
        }
        // Type bytes are consumed with their payload; a short read stops everything.
        let value = match tag {
            0xcc => number(f64::from(self.take_array::<2>()?[1])),
            0xd0 => number(f64::from(self.take_array::<2>()?[1] as i8)),
            0xcd => {
                let [_, a, b] = self.take_array::<3>()?;
                number(f64::from(u16::from_be_bytes([a, b])))
            }
            0xd1 => {
                let [_, a, b] = self.take_array::<3>()?;
                number(f64::from(i16::from_be_bytes([a, b])))
            }
            0xce => {
                let [_, a, b, c, d] = self.take_array::<5>()?;
                number(f64::from(u32::from_be_bytes([a, b, c, d])))
            }
            0xd2 => {
                let [_, a, b, c, d] = self.take_array::<5>()?;
                number(f64::from(i32::from_be_bytes([a, b, c, d])))
            }
            // lua-cmsgpack pushes a uint64 as a signed lua_Integer.
            0xcf | 0xd3 => {
                let bytes = self.take_array::<9>()?;
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[1..]);
                number(i64::from_be_bytes(be) as f64)
            }
            0xc0 => {
                self.at += 1;
                Value::Nil
            }
            0xc2 | 0xc3 => {
                self.at += 1;
                Value::Boolean(tag == 0xc3)
            }
            0xca => {
                let [_, a, b, c, d] = self.take_array::<5>()?;
                number(f64::from(f32::from_be_bytes([a, b, c, d])))
            }
            0xcb => {
                let bytes = self.take_array::<9>()?;
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[1..]);
                number(f64::from_be_bytes(be))
            }
            0xd9 => {
                let [_, n] = self.take_array::<2>()?;
                self.string(usize::from(n))?
            }
            0xda => {
                let [_, a, b] = self.take_array::<3>()?;
                self.string(usize::from(u16::from_be_bytes([a, b])))?
            }
            0xdb => {
                let [_, a, b, c, d] = self.take_array::<5>()?;
                self.string(u32::from_be_bytes([a, b, c, d]) as usize)?
            }
            0xdc | 0xde => {
                let [_, a, b] = self.take_array::<3>()?;
                return Ok(Item::Open {
                    map: tag == 0xde,
                    count: usize::from(u16::from_be_bytes([a, b])),
                });
            }
            0xdd | 0xdf => {
                let [_, a, b, c, d] = self.take_array::<5>()?;
                return Ok(Item::Open {
                    map: tag == 0xdf,
                    count: u32::from_be_bytes([a, b, c, d]) as usize,
                });
            }
            0x00..=0x7f => {
                self.at += 1;
                number(f64::from(tag))
            }
            0xe0..=0xff => {
                self.at += 1;
                number(f64::from(tag as i8))
            }
            0xa0..=0xbf => {
                self.at += 1;
                self.string(usize::from(tag & 0x1f))?
            }
            0x80..=0x9f => {
                self.at += 1;
                return Ok(Item::Open {
                    map: tag < 0x90,
                    count: usize::from(tag & 0x0f),
                });
            }
            _ => return Err(MsgpackStop::BadFormat),
        };
        Ok(Item::Value(value))
    }
}

/// What one type byte starts.
enum Item {
    Value(Value),
    Open { map: bool, count: usize },
}

/// An array or map being read; `base` is the C stack in use before its table.
enum MsgpackReading {
    Array {
        table: Table,
        index: usize,
        left: usize,
        base: usize,
    },
    Map {
        table: Table,
        left: usize,
        key: Option<Value>,
        base: usize,
    },
}

// --------------------------------------------------------------------- bit ----

fn bit_library(lua: &Lua, wrap: &Function) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    type Body = fn(&Args) -> Outcome<u32>;
    let functions: [(&'static str, Body); 11] = [
        ("tobit", |a| bit_arg(a, 1)),
        ("bnot", |a| Ok(!bit_arg(a, 1)?)),
        ("band", |a| bit_fold(a, |x, y| x & y)),
        ("bor", |a| bit_fold(a, |x, y| x | y)),
        ("bxor", |a| bit_fold(a, |x, y| x ^ y)),
        ("lshift", |a| bit_shift(a, |b, n| b << n)),
        ("rshift", |a| bit_shift(a, |b, n| b >> n)),
        ("arshift", |a| bit_shift(a, |b, n| ((b as i32) >> n) as u32)),
        ("rol", |a| bit_shift(a, u32::rotate_left)),
        ("ror", |a| bit_shift(a, u32::rotate_right)),
        ("bswap", |a| Ok(bit_arg(a, 1)?.swap_bytes())),
    ];
    for (name, body) in functions {
        let function = library_function(lua, wrap, move |_, values| {
            let bits = body(&Args::new(values, name))?;
            // LuaBitOp answers signed 32-bit numbers.
            one(number(f64::from(bits as i32)))
        })?;
        table.raw_set(name, function)?;
    }
    table.raw_set(
        "tohex",
        library_function(lua, wrap, |lua, values| {
            let text = bit_tohex(&Args::new(values, "tohex"))?;
            one(Value::String(lua.create_string(&text)?))
        })?,
    )?;
    Ok(table)
}

/// LuaBitOp's `barg`: the number rounded to an integer and taken modulo 2^32, by adding
/// 2^52 + 2^51 and keeping the low word of the double.
fn bit_arg(args: &Args, n: usize) -> Outcome<u32> {
    let value = to_number(args.get(n));
    let bits = (value.unwrap_or(0.0) + 6_755_399_441_055_744.0).to_bits() as u32;
    if bits == 0 && value.is_none() {
        return Err(args.type_error(n, "number"));
    }
    Ok(bits)
}

/// `band`, `bor`, `bxor`: the first argument, then the others from the last one back.
fn bit_fold(args: &Args, op: fn(u32, u32) -> u32) -> Outcome<u32> {
    let mut bits = bit_arg(args, 1)?;
    for n in (2..=args.count()).rev() {
        bits = op(bits, bit_arg(args, n)?);
    }
    Ok(bits)
}

fn bit_shift(args: &Args, op: fn(u32, u32) -> u32) -> Outcome<u32> {
    let bits = bit_arg(args, 1)?;
    let n = bit_arg(args, 2)? & 31;
    Ok(op(bits, n))
}

fn bit_tohex(args: &Args) -> Outcome<Vec<u8>> {
    let mut bits = bit_arg(args, 1)?;
    let mut n: i32 = if args.count() < 2 {
        8
    } else {
        bit_arg(args, 2)? as i32
    };
    let digits: &[u8; 16] = if n < 0 {
        n = n.checked_neg().unwrap_or(8);
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let n = n.min(8) as usize;
    let mut text = vec![b'0'; n];
    for slot in text.iter_mut().rev() {
        *slot = digits[(bits & 15) as usize];
        bits >>= 4;
    }
    Ok(text)
}

// ------------------------------------------------------------------ struct ----

/// Largest `i`/`I` size struct accepts.
const STRUCT_MAX_INT_SIZE: i32 = 32;
/// The strictest alignment a C struct needs here (a double's), `!`'s default.
const STRUCT_MAX_ALIGN: i32 = 8;

fn struct_library(lua: &Lua, wrap: &Function) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set(
        "pack",
        library_function(lua, wrap, |lua, values| {
            let packed = struct_pack(&Args::new(values, "pack"))?;
            one(Value::String(lua.create_string(&packed)?))
        })?,
    )?;
    table.raw_set(
        "unpack",
        library_function(lua, wrap, |lua, values| {
            struct_unpack(lua, &Args::new(values, "unpack"))
        })?,
    )?;
    table.raw_set(
        "size",
        library_function(lua, wrap, |_, values| {
            let size = struct_size(&Args::new(values, "size"))?;
            one(number(size as f64))
        })?,
    )?;
    Ok(table)
}

/// A format string, read as C reads it: up to its first NUL.
struct Format {
    bytes: Vec<u8>,
    at: usize,
}

/// Byte order and alignment, as the format's control options leave them.
struct Header {
    little: bool,
    align: usize,
}

impl Format {
    fn new(mut bytes: Vec<u8>) -> Self {
        if let Some(end) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(end);
        }
        Format { bytes, at: 0 }
    }

    fn next_option(&mut self) -> Option<u8> {
        let option = self.bytes.get(self.at).copied()?;
        self.at += 1;
        Some(option)
    }

    /// A size written after an option, or `default`.
    fn number(&mut self, default: i32) -> Outcome<i32> {
        if !self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: i32 = 0;
        while let Some(&digit) = self.bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
            let d = i32::from(digit - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(raise("integral size overflow"));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a)
    }

    /// The size of an option's item; 0 for options that are not items.
    fn size(&mut self, option: u8) -> Outcome<usize> {
        Ok(match option {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)? as usize,
            b'i' | b'I' => {
                let size = self.number(4)?;
                if size > STRUCT_MAX_INT_SIZE {
                    return Err(raise(format!(
                        "integral size {size} is larger than limit of {STRUCT_MAX_INT_SIZE}"
                    )));
                }
                size as usize
            }
            _ => 0,
        })
    }

    /// The options that set byte order and alignment; anything else is refused.
    fn control(&mut self, option: u8, header: &mut Header, args: &Args) -> Outcome<()> {
        match option {
            b' ' => {}
            b'>' => header.little = false,
            b'<' => header.little = true,
            b'!' => {
                let a = self.number(STRUCT_MAX_ALIGN)?;
                if a <= 0 || a & (a - 1) != 0 {
                    return Err(raise(format!("alignment {a} is not a power of 2")));
                }
                header.align = a as usize;
            }
            _ => {
                let mut extra = b"invalid format option '".to_vec();
                extra.push(option);
                extra.push(b'\'');
                return Err(args.bad(1, extra));
            }
        }
        Ok(())
    }
}

impl Default for Header {
    fn default() -> Self {
        Header {
            little: true,
            align: 1,
        }
    }
}

/// Padding that aligns an item of `size` at `len`, bounded by the header's alignment.
fn struct_padding(len: usize, header: &Header, option: u8, size: usize) -> usize {
    if size == 0 || option == b'c' {
        return 0;
    }
    let size = size.min(header.align);
    size.wrapping_sub(len & (size - 1)) & (size - 1)
}

fn struct_pack(args: &Args) -> Outcome<Vec<u8>> {
    let mut format = Format::new(args.bytes(1)?);
    let mut header = Header::default();
    let mut arg = 2;
    let mut total: usize = 0;
    let mut out = Vec::new();
    while let Some(option) = format.next_option() {
        let mut size = format.size(option)?;
        let padding = struct_padding(total, &header, option, size);
        total += padding;
        out.resize(out.len() + padding, 0);
        match option {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = args.number(arg)?;
                arg += 1;
                let mut value = if n < 0.0 { c_i64(n) as u64 } else { c_u64(n) };
                let mut bytes = Vec::with_capacity(size);
                for _ in 0..size {
                    bytes.push(value as u8);
                    // Past eight bytes the C value has shifted down to zero.
                    value >>= 8;
                }
                if !header.little {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = args.number(arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if header.little {
                    f.to_le_bytes()
                } else {
                    f.to_be_bytes()
                });
            }
            b'd' => {
                let d = args.number(arg)?;
                arg += 1;
                out.extend_from_slice(&if header.little {
                    d.to_le_bytes()
                } else {
                    d.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = args.bytes(arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                // struct names the argument after the string here.
                let Some(prefix) = s.get(..size) else {
                    return Err(args.bad(arg, "string too short"));
                };
                out.extend_from_slice(prefix);
                if option == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => format.control(option, &mut header, args)?,
        }
        total += size;
    }
    Ok(out)
}

fn struct_unpack(lua: &Lua, args: &Args) -> Outcome<Results> {
    let mut format = Format::new(args.bytes(1)?);
    let data = args.bytes(2)?;
    let len = data.len();
    // C keeps the offset in a size_t, so only 0 is "below 1".
    let offset = args.opt_integer(3, 1)? as u64 as usize;
    if offset == 0 {
        return Err(args.bad(3, "offset must be 1 or greater"));
    }
    let mut pos = offset - 1;
    let mut header = Header::default();
    let results = lua.create_table()?;
    let mut count: usize = 0;
    let too_short = |size: usize, pos: usize| size > len || pos > len - size;
    while let Some(option) = format.next_option() {
        let mut size = format.size(option)?;
        pos = pos.wrapping_add(struct_padding(pos, &header, option, size));
        if too_short(size, pos) {
            return Err(args.bad(2, "data string too short"));
        }
        stack_overflow(args.count() + count, 2, "too many results")?;
        let item = &data[pos..pos + size];
        let value = match option {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => Some(number(
                struct_integer(item, header.little, option.is_ascii_lowercase()),
            )),
            b'x' => None,
            b'f' => {
                let mut raw = [0u8; 4];
                raw.copy_from_slice(item);
                let f = if header.little {
                    f32::from_le_bytes(raw)
                } else {
                    f32::from_be_bytes(raw)
                };
                Some(number(f64::from(f)))
            }
            b'd' => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(item);
                let d = if header.little {
                    f64::from_le_bytes(raw)
                } else {
                    f64::from_be_bytes(raw)
                };
                Some(number(d))
            }
            b'c' => {
                if size == 0 {
                    // c0 takes its length from the number read just before it.
                    let previous: Value = results.raw_get(count)?;
                    let length = (count > 0).then(|| to_number(Some(&previous))).flatten();
                    let Some(length) = length else {
                        return Err(raise("format 'c0' needs a previous size"));
                    };
                    size = c_u64(length) as usize;
                    results.raw_set(count, Value::Nil)?;
                    count -= 1;
                    if too_short(size, pos) {
                        return Err(args.bad(2, "data string too short"));
                    }
                }
                Some(Value::String(lua.create_string(&data[pos..pos + size])?))
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(raise("unfinished string in data"));
                };
                size = end + 1;
                Some(Value::String(lua.create_string(&data[pos..pos + end])?))
            }
            _ => {
                format.control(option, &mut header, args)?;
                None
            }
        };
        if let Some(value) = value {
            count += 1;
            results.raw_set(count, value)?;
        }
        pos = pos.wrapping_add(size);
    }
    count += 1;
    results.raw_set(count, number(pos.wrapping_add(1) as i64 as f64))?;
    Ok(Results::Spread(results, count))
}

/// An integer item read as struct's C reads it into an `unsigned long`: only the low eight
/// bytes survive, and a sign bit past them is looked for where x86 shifts find it.
fn struct_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut take = |b: &u8| l = l << 8 | u64::from(*b);
    if little {
        bytes.iter().rev().for_each(&mut take);
    } else {
        bytes.iter().for_each(&mut take);
    }
    if !signed {
        return l as f64;
    }
    let shift = ((bytes.len() as u32) * 8).wrapping_sub(1) & 63;
    let mask = u64::MAX << shift;
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn struct_size(args: &Args) -> Outcome<usize> {
    let mut format = Format::new(args.bytes(1)?);
    let mut header = Header::default();
    let mut pos: usize = 0;
    while let Some(option) = format.next_option() {
        let size = format.size(option)?;
        pos = pos.wrapping_add(struct_padding(pos, &header, option, size));
        if option == b's' {
            return Err(args.bad(1, "option 's' has no fixed size"));
        }
        if option == b'c' && size == 0 {
            return Err(args.bad(1, "option 'c0' has no fixed size"));
        }
        if !option.is_ascii_alphanumeric() {
            format.control(option, &mut header, args)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use mlua::FromLua;

    use super::*;

    /// A state built as scripting.rs builds one, with the libraries installed.
    fn state() -> Lua {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )
        .expect("a Lua state");
        install(&lua).expect("the libraries install");
        lua
    }

    /// Runs `code` (a chunk that returns something) in a fresh state, named as scripting.rs
    /// names scripts.
    fn run<T: FromLua>(code: &str) -> T {
        state()
            .load(code)
            .set_name("@user_script")
            .eval()
            .expect(code)
    }

    /// The string `expression` evaluates to, as bytes.
    fn bytes(expression: &str) -> Vec<u8> {
        let lua = state();
        let s: mlua::LuaString = lua
            .load(format!("return {expression}"))
            .eval()
            .expect(expression);
        s.as_bytes().to_vec()
    }

    /// An error as `luaL_error` raises it when the script's first line made the call.
    fn raised(message: &str) -> String {
        format!("user_script:1: {message}")
    }

    fn truth(expression: &str) -> bool {
        run(&format!("return {expression}"))
    }

    /// The error `statements` (on the script's first line) raise, which must be a plain
    /// string as Redis's C libraries raise.
    fn error(statements: &str) -> String {
        run(&format!(
            "local ok, e = pcall(function() {statements} end)
             assert(not ok, 'no error')
             assert(type(e) == 'string', 'error is a ' .. type(e))
             return e"
        ))
    }

    #[test]
    fn lua_libs_cjson_encodes_as_lua_cjson() {
        for (expression, json) in [
            ("{1,2,3}", "[1,2,3]"),
            ("{a=1}", r#"{"a":1}"#),
            ("{}", "{}"),
            ("{{}, {a={}}}", r#"[{},{"a":{}}]"#),
            ("'x'", r#""x""#),
            ("true", "true"),
            ("nil", "null"),
            ("cjson.null", "null"),
            ("{1, cjson.null, 3}", "[1,null,3]"),
            ("{[1]=1, [3]=3}", "[1,null,3]"),
            ("{[1.5]=true}", r#"{"1.5":true}"#),
            ("{[2]='b'}", r#"[null,"b"]"#),
            ("{[-1]=0}", r#"{"-1":0}"#),
            ("0.1", "0.1"),
            ("1/3", "0.33333333333333"),
            ("100", "100"),
            ("-7", "-7"),
            ("1e15", "1e+15"),
            ("123456789012345", "1.2345678901234e+14"),
            ("1e-5", "1e-05"),
            ("0.0001", "0.0001"),
            ("2^53", "9.007199254741e+15"),
            (
                "{[1]=1, [2]=2, [4]=4, [5]=5, [9]=9}",
                "[1,2,null,4,5,null,null,null,9]",
            ),
        ] {
            let encoded = bytes(&format!("cjson.encode({expression})"));
            assert_eq!(
                String::from_utf8_lossy(&encoded),
                String::from_utf8_lossy(json.as_bytes()),
                "cjson.encode({expression})"
            );
        }
        // Escapes as lua-cjson's table has them; other bytes, UTF-8 or not, pass through.
        assert_eq!(
            bytes(r#"cjson.encode('a/b"c\\d\n\t\1\127\200\255é')"#),
            b"\"a\\/b\\\"c\\\\d\\n\\t\\u0001\\u007f\xc8\xff\xc3\xa9\""
        );
    }

    #[test]
    fn lua_libs_cjson_encode_refusals() {
        for (statements, message) in [
            (
                "cjson.encode(function() end)",
                "Cannot serialise function: type not supported",
            ),
            (
                "cjson.encode({coroutine = 1, f = print})",
                "Cannot serialise function: type not supported",
            ),
            (
                "cjson.encode({[true]=1})",
                "Cannot serialise boolean: table key must be a number or string",
            ),
            (
                "cjson.encode(0/0)",
                "Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "cjson.encode({math.huge})",
                "Cannot serialise number: must not be NaN or Inf",
            ),
            (
                "cjson.encode({[1]=1, [2]=2, [20]=3})",
                "Cannot serialise table: excessively sparse array",
            ),
            (
                "cjson.encode()",
                "bad argument #1 to 'encode' (expected 1 argument)",
            ),
            (
                "cjson.encode(1, 2)",
                "bad argument #1 to 'encode' (expected 1 argument)",
            ),
        ] {
            assert_eq!(error(statements), raised(message), "{statements}");
        }
    }

    #[test]
    fn lua_libs_cjson_nesting_limits() {
        let nest = |levels: usize| {
            format!("local t = {{}} local c = t for i = 2, {levels} do c[1] = {{}} c = c[1] end")
        };
        // 1000 levels are fine, the 1001st is refused, as lua-cjson's default.
        let encoded = bytes(&format!(
            "(function() {} return cjson.encode(t) end)()",
            nest(1000)
        ));
        let expected = format!("{}{{}}{}", "[".repeat(999), "]".repeat(999));
        assert_eq!(encoded, expected.as_bytes());
        assert_eq!(
            error(&format!("{} cjson.encode(t)", nest(1001))),
            raised("Cannot serialise, excessive nesting (1001)")
        );
        // A cycle stops at the limit rather than looping.
        assert_eq!(
            error("local t = {} t[1] = t cjson.encode(t)"),
            raised("Cannot serialise, excessive nesting (1001)")
        );
        assert_eq!(
            error("cjson.encode_max_depth(2) cjson.encode({{{}}})"),
            raised("Cannot serialise, excessive nesting (3)")
        );
        // Raising the limit is honoured up to our own walk bound.
        let deep = MAX_WALK_DEPTH;
        assert!(truth(&format!(
            "(function() {} cjson.encode_max_depth(100000) return #cjson.encode(t) == {} end)()",
            nest(deep),
            deep * 2
        )));
        assert_eq!(
            error(&format!(
                "{} cjson.encode_max_depth(100000) cjson.encode(t)",
                nest(deep + 1)
            )),
            raised(&format!(
                "Cannot serialise, excessive nesting ({})",
                deep + 1
            ))
        );

        assert!(truth(
            "type(cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000))) == 'table'"
        ));
        assert_eq!(
            error("cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))"),
            raised("Found too many nested data structures (1001) at character 1001")
        );
        assert_eq!(
            error("cjson.decode('{\"a\":{\"b\":[1]}}') cjson.decode_max_depth(2) cjson.decode('{\"a\":{\"b\":[1]}}')"),
            raised("Found too many nested data structures (3) at character 11")
        );
        assert!(truth(&format!(
            "(function() cjson.decode_max_depth(100000) local t = cjson.decode(string.rep('[', {deep}) .. string.rep(']', {deep})) return type(t[1][1]) == 'table' end)()"
        )));
        assert_eq!(
            error(&format!(
                "cjson.decode_max_depth(100000) cjson.decode(string.rep('{{\"k\":', {n}) .. '1' .. string.rep('}}', {n}))",
                n = deep + 1
            )),
            raised(&format!(
                "Found too many nested data structures ({}) at character {}",
                deep + 1,
                deep * 5 + 1
            ))
        );
    }

    #[test]
    fn lua_libs_cjson_decodes() {
        assert!(truth("cjson.decode('[1,null]')[2] == cjson.null"));
        assert!(truth("cjson.decode('null') == cjson.null"));
        assert!(truth("type(cjson.null) == 'userdata'"));
        assert!(truth("cjson.decode('[1,null]')[1] == 1"));
        assert!(truth(
            "cjson.decode('{\"a\":[1,2,{\"b\":true}]}').a[3].b == true"
        ));
        assert!(truth("cjson.decode(' \\t\\r\\n 12.5e1 ') == 125"));
        assert!(truth("cjson.decode('-0.5') == -0.5"));
        assert!(truth("cjson.decode('false') == false"));
        assert!(truth(
            "next(cjson.decode('{}')) == nil and next(cjson.decode('[]')) == nil"
        ));
        // Numbers given for text are read as Lua's text for them.
        assert!(truth("cjson.decode(123) == 123"));
        // lua-cjson's default also reads what strtod reads beyond JSON.
        assert!(truth("cjson.decode('0x10') == 16"));
        assert!(truth("cjson.decode('+5') == 5"));
        assert!(truth("cjson.decode('007') == 7"));
        assert!(truth("cjson.decode('-Infinity') == -math.huge"));
        assert!(truth(
            "(function() local n = cjson.decode('NaN') return n ~= n end)()"
        ));
        assert_eq!(
            bytes(r#"cjson.decode('"a\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\"\\\\\\u0000"')"#),
            "aé😀/\u{8}\u{c}\n\r\t\"\\\0".as_bytes()
        );
        // Raw bytes inside strings, control characters included, pass through.
        assert_eq!(bytes("cjson.decode('\"\\1\\255\"')"), b"\x01\xff");
        // A NUL ends the text, as it ends the C string.
        assert!(truth("cjson.decode('[1]\\0garbage')[1] == 1"));
    }

    #[test]
    fn lua_libs_cjson_decode_errors() {
        for (json, message) in [
            ("", "Expected value but found T_END at character 1"),
            ("   ", "Expected value but found T_END at character 4"),
            ("[1,]", "Expected value but found T_ARR_END at character 4"),
            (
                "{\"a\" 1}",
                "Expected colon but found T_NUMBER at character 6",
            ),
            (
                "[1 2]",
                "Expected comma or array end but found T_NUMBER at character 4",
            ),
            (
                "{1:2}",
                "Expected object key string but found T_NUMBER at character 2",
            ),
            (
                "{\"a\":1,}",
                "Expected object key string but found T_OBJ_END at character 8",
            ),
            (
                "{\"a\":1 \"b\"}",
                "Expected comma or object end but found T_STRING at character 8",
            ),
            (
                "[1] x",
                "Expected the end but found invalid token at character 5",
            ),
            (
                "[1] [",
                "Expected the end but found T_ARR_BEGIN at character 5",
            ),
            (
                "\"abc",
                "Expected value but found unexpected end of string at character 5",
            ),
            (
                "\"\\q\"",
                "Expected value but found invalid escape code at character 2",
            ),
            (
                "\"ab\\ud800\"",
                "Expected value but found invalid unicode escape code at character 4",
            ),
            (
                "\"\\udc00\\u0041\"",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "\"\\u12\"",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            (
                "-",
                "Expected value but found invalid number at character 1",
            ),
            (
                "- 1",
                "Expected value but found invalid number at character 1",
            ),
            (
                "tru",
                "Expected value but found invalid token at character 1",
            ),
            (
                "nul",
                "Expected value but found invalid token at character 1",
            ),
            ("a", "Expected value but found invalid token at character 1"),
            (
                ".5",
                "Expected value but found invalid token at character 1",
            ),
            (
                "1e",
                "Expected the end but found invalid token at character 2",
            ),
            (
                "[true,  fals]",
                "Expected value but found invalid token at character 9",
            ),
            (
                "\u{e9}",
                "Expected value but found invalid token at character 1",
            ),
            ("a\0", "JSON parser does not support UTF-16 or UTF-32"),
            ("\0a", "JSON parser does not support UTF-16 or UTF-32"),
        ] {
            let lua = state();
            let text = lua.create_string(json).expect("a string");
            lua.globals().raw_set("text", text).expect("a global");
            let message_seen: String = lua
                .load(
                    "local ok, e = pcall(cjson.decode, text)
                     assert(not ok)
                     return e",
                )
                .eval()
                .expect("decode runs");
            assert_eq!(message_seen, message, "cjson.decode({json:?})");
        }
        assert_eq!(
            error("cjson.decode({})"),
            raised("bad argument #1 to 'decode' (string expected, got table)")
        );
        assert_eq!(
            error("cjson.decode()"),
            raised("bad argument #1 to 'decode' (expected 1 argument)")
        );
    }

    #[test]
    fn lua_libs_cjson_round_trips() {
        for json in [
            "[1,2,3]",
            r#"{"a":[1,2,{"b":true}]}"#,
            r#"["x",null,false,0.5,-3,1e+100]"#,
            r#"{"k":"\"quoted\" \/ and \\"}"#,
            "[[[{}]],{}]",
        ] {
            let round = bytes(&format!("cjson.encode(cjson.decode([==[{json}]==]))"));
            assert_eq!(String::from_utf8_lossy(&round), json);
        }
        assert!(truth(
            "(function() local t = cjson.decode(cjson.encode({a = {1, 2, 3}, b = 'x'})) return t.a[3] == 3 and t.b == 'x' end)()"
        ));
    }

    #[test]
    fn lua_libs_cjson_settings() {
        assert!(truth(
            "(function() local c, r, s = cjson.encode_sparse_array() return c == false and r == 2 and s == 10 end)()"
        ));
        assert_eq!(
            bytes(
                "(function() cjson.encode_sparse_array(true) return cjson.encode({[20]=1}) end)()"
            ),
            br#"{"20":1}"#
        );
        assert_eq!(bytes("(function() cjson.encode_sparse_array(false, 0) return cjson.encode({[5]=1}) end)()"), b"[null,null,null,null,1]");
        assert_eq!(
            bytes(
                "(function() cjson.encode_number_precision(3) return cjson.encode(3.14159) end)()"
            ),
            b"3.14"
        );
        assert_eq!(bytes("(function() cjson.encode_invalid_numbers(true) return cjson.encode({0/0, math.huge, -math.huge}) end)()"), b"[nan,inf,-inf]");
        assert_eq!(bytes("(function() cjson.encode_invalid_numbers('null') return cjson.encode({0/0, 1}) end)()"), b"[null,1]");
        assert!(truth("cjson.encode_invalid_numbers('null') == 'null'"));
        assert!(truth("cjson.encode_invalid_numbers('on') == true"));
        assert!(truth(
            "cjson.encode_keep_buffer(false) == false and cjson.encode_keep_buffer() == false"
        ));
        assert!(truth(
            "cjson.encode_max_depth() == 1000 and cjson.decode_max_depth(7) == 7"
        ));
        assert!(truth("cjson.decode_invalid_numbers() == true"));
        assert_eq!(
            error("cjson.decode_invalid_numbers(false) cjson.decode('0x10')"),
            raised("Expected value but found invalid number at character 1")
        );
        assert_eq!(
            error("cjson.decode_invalid_numbers('off') cjson.decode('NaN')"),
            raised("Expected value but found invalid token at character 1")
        );
        for (statements, message) in [
            ("cjson.encode_number_precision(15)", "bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)"),
            ("cjson.encode_max_depth(0)", "bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)"),
            ("cjson.encode_sparse_array(true, 2, -1)", "bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)"),
            ("cjson.encode_keep_buffer(1, 2)", "bad argument #2 to 'encode_keep_buffer' (found too many arguments)"),
            ("cjson.encode_keep_buffer('maybe')", "bad argument #1 to 'encode_keep_buffer' (invalid option 'maybe')"),
            ("cjson.encode_keep_buffer({})", "bad argument #1 to 'encode_keep_buffer' (string expected, got table)"),
            ("cjson.decode_max_depth('x')", "bad argument #1 to 'decode_max_depth' (number expected, got string)"),
        ] {
            assert_eq!(error(statements), raised(message), "{statements}");
        }
        // Each cjson.new() has settings of its own.
        assert_eq!(
            bytes("(function() local other = cjson.new() other.encode_number_precision(2) return other.encode(1.234) .. cjson.encode(1.234) end)()"),
            b"1.21.234"
        );
        assert!(truth(
            "cjson._NAME == 'cjson' and cjson._VERSION == '2.1.0'"
        ));
    }

    #[test]
    fn lua_libs_cmsgpack_packs_small_values_exactly() {
        for (expression, packed) in [
            ("1", &b"\x01"[..]),
            ("0", b"\x00"),
            ("127", b"\x7f"),
            ("128", b"\xcc\x80"),
            ("256", b"\xcd\x01\x00"),
            ("65536", b"\xce\x00\x01\x00\x00"),
            ("2^32", b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00"),
            ("-1", b"\xff"),
            ("-32", b"\xe0"),
            ("-33", b"\xd0\xdf"),
            ("-129", b"\xd1\xff\x7f"),
            ("-32769", b"\xd2\xff\xff\x7f\xff"),
            ("-2^31 - 1", b"\xd3\xff\xff\xff\xff\x7f\xff\xff\xff"),
            ("-0.0", b"\x00"),
            ("0.5", b"\xca\x3f\x00\x00\x00"),
            ("0.1", b"\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a"),
            ("math.huge", b"\xca\x7f\x80\x00\x00"),
            ("2^63", b"\xca\x5f\x00\x00\x00"),
            ("'abc'", b"\xa3abc"),
            ("''", b"\xa0"),
            (
                "string.rep('x', 32)",
                &[&b"\xd9\x20"[..], &[b'x'; 32]].concat(),
            ),
            (
                "string.rep('x', 256)",
                &[&b"\xda\x01\x00"[..], &[b'x'; 256]].concat(),
            ),
            ("{1,2}", b"\x92\x01\x02"),
            ("{}", b"\x90"),
            ("{a=1}", b"\x81\xa1a\x01"),
            ("{[2]=1}", b"\x81\x02\x01"),
            ("nil", b"\xc0"),
            ("true, false", b"\xc3\xc2"),
            ("1, 'a', {}", b"\x01\xa1a\x90"),
            ("print", b"\xc0"),
            ("cjson.null", b"\xc0"),
        ] {
            assert_eq!(
                bytes(&format!("cmsgpack.pack({expression})")),
                packed,
                "cmsgpack.pack({expression})"
            );
        }
        // Tables past sixteen levels are cut to nil.
        let nested = bytes("(function() local t = {} local c = t for i = 1, 20 do c[1] = {} c = c[1] end return cmsgpack.pack(t) end)()");
        assert_eq!(nested, [&[0x91u8; 16][..], b"\xc0"].concat());
        assert_eq!(
            error("cmsgpack.pack()"),
            raised("bad argument #0 to 'pack' (MessagePack pack needs input.)")
        );
        assert_eq!(
            error("cmsgpack.pack(unpack({}, 1, 4001))"),
            raised("bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)")
        );
    }

    #[test]
    fn lua_libs_cmsgpack_unpacks() {
        assert!(truth(
            "(function()
                local a, b, c, d = cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, {x = 4}}, -2.5))
                return a == 1 and b == 'two' and c[1] == 3 and c[2].x == 4 and d == -2.5
            end)()"
        ));
        assert!(truth("select('#', cmsgpack.unpack('')) == 0"));
        assert!(truth(
            "cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255') == -1"
        ));
        assert!(truth(
            "cmsgpack.unpack('\\206\\255\\255\\255\\255') == 4294967295"
        ));
        assert!(truth("cmsgpack.unpack('\\209\\255\\127') == -129"));
        assert!(truth("cmsgpack.unpack('\\202\\63\\0\\0\\0') == 0.5"));
        assert!(truth("(function() local t = cmsgpack.unpack('\\147\\1\\192\\3') return t[1] == 1 and t[2] == nil and t[3] == 3 end)()"));
        assert!(truth("(function() local t = cmsgpack.unpack('\\130\\161a\\1\\161b\\192') return t.a == 1 and t.b == nil end)()"));
        assert_eq!(bytes("cmsgpack.unpack('\\219\\0\\0\\0\\3abc')"), b"abc");

        assert!(truth(
            "(function()
                local data = cmsgpack.pack(1, 2, 3)
                local o1, v1 = cmsgpack.unpack_one(data)
                local o2, v2 = cmsgpack.unpack_one(data, o1)
                local o3, v3 = cmsgpack.unpack_one(data, o2)
                return o1 == 1 and v1 == 1 and o2 == 2 and v2 == 2 and o3 == -1 and v3 == 3
            end)()"
        ));
        assert!(truth(
            "(function()
                local data = cmsgpack.pack(1, 2, 3)
                local o, a, b = cmsgpack.unpack_limit(data, 2)
                local o2, c = cmsgpack.unpack_limit(data, 5, o)
                return o == 2 and a == 1 and b == 2 and o2 == -1 and c == 3
            end)()"
        ));
        assert!(truth("select('#', cmsgpack.unpack_one('\\1', 1)) == 1 and cmsgpack.unpack_one('\\1', 1) == -1"));

        for (statements, message) in [
            ("cmsgpack.unpack('\\196')", "Bad data format in input."),
            ("cmsgpack.unpack('\\205\\1')", "Missing bytes in input."),
            ("cmsgpack.unpack('\\146\\1')", "Missing bytes in input."),
            (
                "cmsgpack.unpack_one('\\1', -1)",
                "Invalid request to unpack with offset of -1 and limit of 1.",
            ),
            (
                "cmsgpack.unpack_one('\\1', 5)",
                "Start offset 5 greater than input length 1.",
            ),
            (
                "cmsgpack.unpack_limit('\\1')",
                "bad argument #2 to 'unpack_limit' (number expected, got no value)",
            ),
            (
                "cmsgpack.unpack()",
                "bad argument #1 to 'unpack' (string expected, got no value)",
            ),
        ] {
            assert_eq!(error(statements), raised(message), "{statements}");
        }

        // The VM's own refusal inside the C function carries no position.
        assert_eq!(
            error("cmsgpack.unpack('\\129\\192\\1')"),
            "table index is nil"
        );
        // Called from C (here pcall), a library error carries no position either.
        assert_eq!(
            error("local ok, e = pcall(cmsgpack.unpack, '\\196') error(e, 0)"),
            "Bad data format in input."
        );

        // Thousands of results come back; past Lua's C stack, lua-cmsgpack's refusal.
        assert!(truth(
            "select('#', cmsgpack.unpack(string.rep('\\1', 7997))) == 7997"
        ));
        assert_eq!(
            error("cmsgpack.unpack(string.rep('\\1', 7998))"),
            raised(TOO_MANY_RETURNS)
        );
        assert!(truth(
            "select('#', cmsgpack.unpack_limit(string.rep('\\1', 9000), 7996)) == 7997"
        ));
        assert_eq!(
            error("cmsgpack.unpack(string.rep('\\1', 9000))"),
            raised(TOO_MANY_RETURNS)
        );
        assert!(truth(
            "select('#', cmsgpack.unpack_limit(string.rep('\\1', 9000), 10)) == 11"
        ));
        // Deep nesting is refused, not followed into the Rust stack.
        assert_eq!(
            error("cmsgpack.unpack(string.rep('\\145', 100000) .. '\\1')"),
            raised(TOO_MANY_RETURNS)
        );
        assert!(truth(&format!(
            "type(cmsgpack.unpack(string.rep('\\145', {MAX_WALK_DEPTH}) .. '\\1')) == 'table'"
        )));
    }

    #[test]
    fn lua_libs_bit_matches_luabitop() {
        for (expression, value) in [
            ("bit.tobit(0xffffffff)", -1.0),
            ("bit.tobit(0xffffffff + 1)", 0.0),
            ("bit.tobit(2^40 + 1234)", 1234.0),
            ("bit.tobit(1.5)", 2.0),
            ("bit.tobit(2.5)", 2.0),
            ("bit.tobit(-1.5)", -2.0),
            ("bit.tobit('12')", 12.0),
            ("bit.bnot(0)", -1.0),
            ("bit.bnot(-1)", 0.0),
            ("bit.bnot(0xffffffff)", 0.0),
            ("bit.bor(1, 2, 4, 8)", 15.0),
            ("bit.band(0x12345678, 0xff)", 120.0),
            ("bit.bxor(0xa5a5f0f0, 0xaa55ff00)", 267_390_960.0),
            ("bit.band(-1)", -1.0),
            ("bit.lshift(1, 0)", 1.0),
            ("bit.lshift(1, 8)", 256.0),
            ("bit.lshift(1, 40)", 256.0),
            ("bit.lshift(1, 31)", -2_147_483_648.0),
            ("bit.rshift(256, 8)", 1.0),
            ("bit.rshift(-256, 8)", 16_777_215.0),
            ("bit.arshift(256, 8)", 1.0),
            ("bit.arshift(-256, 8)", -1.0),
            ("bit.lshift(0x87654321, 12)", 1_412_567_040.0),
            ("bit.rshift(0x87654321, 12)", 554_580.0),
            ("bit.arshift(0x87654321, 12)", -493_996.0),
            ("bit.rol(0x12345678, 12)", 1_164_411_171.0),
            ("bit.ror(0x12345678, 12)", 1_736_516_421.0),
            ("bit.rol(0x12345678, 0)", 305_419_896.0),
            ("bit.bswap(0x12345678)", 2_018_915_346.0),
            ("bit.bswap(0x78563412)", 305_419_896.0),
        ] {
            let got: f64 = run(&format!("return {expression}"));
            assert_eq!(got, value, "{expression}");
        }
        for (expression, text) in [
            ("bit.tohex(1)", "00000001"),
            ("bit.tohex(-1)", "ffffffff"),
            ("bit.tohex(0xffffffff)", "ffffffff"),
            ("bit.tohex(-1, -8)", "FFFFFFFF"),
            ("bit.tohex(0x21, 4)", "0021"),
            ("bit.tohex(0x87654321, 4)", "4321"),
            ("bit.tohex(0x87654321, -3)", "321"),
            ("bit.tohex(1, 20)", "00000001"),
            ("bit.tohex(1, 0)", ""),
        ] {
            assert_eq!(bytes(expression), text.as_bytes(), "{expression}");
        }
        assert_eq!(
            error("bit.band()"),
            raised("bad argument #1 to 'band' (number expected, got no value)")
        );
        assert_eq!(
            error("bit.bor(1, {}, 2)"),
            raised("bad argument #2 to 'bor' (number expected, got table)")
        );
        assert_eq!(
            error("bit.tohex(1, nil)"),
            raised("bad argument #2 to 'tohex' (number expected, got nil)")
        );
    }

    #[test]
    fn lua_libs_struct_packs_and_unpacks() {
        for (expression, packed) in [
            ("struct.pack('>I2', 258)", &b"\x01\x02"[..]),
            ("struct.pack('<I2', 258)", b"\x02\x01"),
            ("struct.pack('I2', 258)", b"\x02\x01"),
            ("struct.pack('<i4', -2)", b"\xfe\xff\xff\xff"),
            ("struct.pack('>i3', -2)", b"\xff\xff\xfe"),
            ("struct.pack('b', -1)", b"\xff"),
            ("struct.pack('>h', 1)", b"\x00\x01"),
            ("struct.pack('<l', 1)", b"\x01\0\0\0\0\0\0\0"),
            ("struct.pack('>d', 1.5)", b"\x3f\xf8\0\0\0\0\0\0"),
            ("struct.pack('<f', 1)", b"\0\0\x80\x3f"),
            ("struct.pack('s', 'ab')", b"ab\0"),
            ("struct.pack('c3', 'abcdef')", b"abc"),
            ("struct.pack('c0', 'xyz')", b"xyz"),
            ("struct.pack('bxb', 1, 2)", b"\x01\0\x02"),
            ("struct.pack('!4 b i4', 1, 2)", b"\x01\0\0\0\x02\0\0\0"),
            (
                "struct.pack('! b d', 1, 0)",
                b"\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            ),
            ("struct.pack('b i4', 1, 2)", b"\x01\x02\0\0\0"),
            ("struct.pack('<i16', -1)", &[[0xffu8; 8], [0u8; 8]].concat()),
        ] {
            assert_eq!(bytes(expression), packed, "{expression}");
        }
        assert!(truth("(function() local v, n = struct.unpack('<i4', '\\254\\255\\255\\255') return v == -2 and n == 5 end)()"));
        assert!(truth("(function() local v, n = struct.unpack('B', '\\255') return v == 255 and n == 2 end)()"));
        assert!(truth("(function() local a, b, n = struct.unpack('>I2 h', '\\1\\2\\255\\254') return a == 258 and b == -2 and n == 5 end)()"));
        assert!(truth("(function() local s, n = struct.unpack('s', 'ab\\0cd') return s == 'ab' and n == 4 end)()"));
        assert!(truth("(function() local s, n = struct.unpack('B c0', '\\3abcd') return s == 'abc' and n == 5 end)()"));
        assert!(truth("(function() local v, n = struct.unpack('b', '\\1\\2\\3', 2) return v == 2 and n == 3 end)()"));
        assert!(truth("(function() local d, n = struct.unpack('>d', struct.pack('>d', 0.1)) return d == 0.1 and n == 9 end)()"));
        assert!(truth("(function() local a, b, n = struct.unpack('!4 b i4', struct.pack('!4 b i4', 7, -9)) return a == 7 and b == -9 and n == 9 end)()"));
        for (format, size) in [
            ("b i4", 5),
            ("!4 b i4", 8),
            ("!bd", 16),
            ("<h", 2),
            ("c10", 10),
            ("i", 4),
            ("T l x", 17),
        ] {
            let got: f64 = run(&format!("return struct.size('{format}')"));
            assert_eq!(got, size as f64, "struct.size('{format}')");
        }
        for (statements, message) in [
            (
                "struct.pack('z')",
                "bad argument #1 to 'pack' (invalid format option 'z')",
            ),
            (
                "struct.size('s')",
                "bad argument #1 to 'size' (option 's' has no fixed size)",
            ),
            (
                "struct.size('c0')",
                "bad argument #1 to 'size' (option 'c0' has no fixed size)",
            ),
            (
                "struct.size('#')",
                "bad argument #1 to 'size' (invalid format option '#')",
            ),
            (
                "struct.pack('i33', 1)",
                "integral size 33 is larger than limit of 32",
            ),
            ("struct.pack('i99999999999', 1)", "integral size overflow"),
            ("struct.pack('!3')", "alignment 3 is not a power of 2"),
            (
                "struct.unpack('i4', 'abc')",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.unpack('b', 'a', 0)",
                "bad argument #3 to 'unpack' (offset must be 1 or greater)",
            ),
            (
                "struct.unpack('b', 'a', -1)",
                "bad argument #2 to 'unpack' (data string too short)",
            ),
            (
                "struct.pack('c5', 'ab')",
                "bad argument #3 to 'pack' (string too short)",
            ),
            (
                "struct.pack('i')",
                "bad argument #2 to 'pack' (number expected, got no value)",
            ),
            (
                "struct.pack('s', {})",
                "bad argument #2 to 'pack' (string expected, got table)",
            ),
            (
                "struct.unpack('c0', 'abc')",
                "format 'c0' needs a previous size",
            ),
            ("struct.unpack('s', 'abc')", "unfinished string in data"),
            (
                "struct.unpack('b')",
                "bad argument #2 to 'unpack' (string expected, got no value)",
            ),
        ] {
            assert_eq!(error(statements), raised(message), "{statements}");
        }
    }

    #[test]
    fn lua_libs_errors_carry_the_callers_line() {
        let lua = state();
        let message = |code: &str| -> String {
            let f = lua
                .load(code)
                .set_name("@user_script")
                .into_function()
                .expect(code);
            let text = match f.call::<Value>(()) {
                Err(mlua::Error::RuntimeError(text)) => text,
                other => panic!("{code}: {other:?}"),
            };
            // mlua appends a traceback, which the script runner strips.
            text.split("\nstack traceback:")
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(
            message("local x = 1\nlocal v = bit.band({})\nreturn v"),
            "user_script:2: bad argument #1 to 'band' (number expected, got table)"
        );
        // In tail position the caller's frame is gone before the library runs (Lua 5.1
        // reuses it for the callee), so unlike Redis's C function the error has no line.
        assert_eq!(
            message("return bit.band({})"),
            "bad argument #1 to 'band' (number expected, got table)"
        );
    }

    #[test]
    fn lua_libs_are_read_only() {
        for statements in [
            "cjson.encode = function() return 1 end",
            "cjson.new_field = 1",
            "cmsgpack.pack = nil",
            "bit.band = 1",
            "struct.pack = 1",
            "setmetatable(cjson, nil)",
        ] {
            let message = error(statements);
            assert!(
                message == raised("Attempt to modify a readonly table")
                    || message == raised("cannot change a protected metatable"),
                "{statements}: {message}"
            );
        }
        assert!(truth(
            "(function() pcall(function() cjson.encode = nil end) return cjson.encode({1}) == '[1]' end)()"
        ));
    }

    /// Cases from Redis's own test suite (tests/unit/scripting.tcl), with its answers.
    #[test]
    fn lua_libs_redis_suite_cases() {
        let hex = |expression: &str| -> String {
            bytes(expression)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_eq!(hex("cmsgpack.pack(0.1)"), "cb3fb999999999999a");
        assert_eq!(hex("cmsgpack.pack(-1099511627776)"), "d3ffffff0000000000");
        // A cycle is cut at sixteen levels, and the keys come out in Redis's Lua order.
        assert_eq!(
            hex("(function() local a = {x=nil,y=5} local b = {x=a} a['x'] = b return cmsgpack.pack(a) end)()"),
            "82a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905\
             a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a178c0"
        );
        assert!(truth(
            "(function()
                local a = {x=nil,y=5} local b = {x=a} a['x'] = b
                local re = cmsgpack.unpack(cmsgpack.pack(a))
                return re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.y == re.y
                    and re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x ~= nil
                    and re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x == nil
            end)()"
        ));
        assert_eq!(
            bytes(r#"table.concat(cjson.decode("[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]"), " ")"#),
            b"0 -5000 -1 0.0003 1023.2 0"
        );
        assert!(truth(
            r#"(function()
                local some_map = {s1="Some string", n1=100, a1={"Some","String","Array"}, nil1=nil, b1=true, b2=false}
                local decoded = cjson.decode(cjson.encode(some_map))
                assert(table.concat(some_map) == table.concat(decoded))
                cjson.encode_keep_buffer(false)
                decoded = cjson.decode(cjson.encode(some_map))
                assert(table.concat(some_map) == table.concat(decoded))
                local table1 = {one="one", [1]="one"}
                decoded = cjson.decode(cjson.encode(table1))
                assert(decoded["one"] == table1["one"])
                assert(decoded["1"] == table1[1])
                local array1 = {[1]="one", [2]="two", [3]="three"}
                decoded = cjson.decode(cjson.encode(array1))
                assert(table.concat(array1) == table.concat(decoded))
                local invalid_map = {}
                invalid_map[false] = "false"
                assert(pcall(cjson.encode, invalid_map) == false)
                cjson.encode_max_depth(1)
                assert(pcall(cjson.encode, some_map) == false)
                cjson.decode_max_depth(1)
                assert(pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}') == false)
                return true
            end)()"#
        ));
        assert!(truth(
            r#"(function()
                local str_long = string.rep("x", 100000)
                local array_big = {}
                for i = 1, 100000 do array_big[i] = i end
                local map_big = {}
                for i = 1, 100000 do map_big[tostring(i)] = i end
                local some_map = {
                    s1 = string.rep("x", 30), s2 = string.rep("x", 250), s3 = string.rep("x", 65530),
                    s4 = str_long, d1 = 0.1, i1 = 1, i2 = 250, i3 = 65530, i4 = 100000, i5 = 2^40,
                    i6 = -1, i7 = -120, i8 = -32000, i9 = -1200000000, b1 = true, b2 = false,
                    a1 = {1, 2, 3, 4, 5}, a3 = array_big, m1 = {a = 1, b = 2}, m2 = map_big,
                }
                local encoded = cmsgpack.pack(some_map)
                local decoded = cmsgpack.unpack(encoded)
                assert(decoded.m2["77777"] == 77777 and decoded.a3[100000] == 100000)
                assert(decoded.s4 == str_long and decoded.i5 == 2^40 and decoded.i9 == -1200000000)
                local offset, one = cmsgpack.unpack_one(encoded, 0)
                assert(offset == -1 and one.d1 == 0.1)
                local multiple = cmsgpack.pack(some_map.s1, some_map.s2, some_map.s3, str_long)
                local o, obj = cmsgpack.unpack_limit(multiple, 1, 0)
                assert(obj == some_map.s1)
                o, obj = cmsgpack.unpack_limit(multiple, 1, o)
                assert(obj == some_map.s2)
                o, obj = cmsgpack.unpack_limit(multiple, 1, o)
                assert(obj == some_map.s3)
                o, obj = cmsgpack.unpack_limit(multiple, 1, o)
                assert(obj == str_long and o == -1)
                -- JSON of the same sizes.
                local json = cjson.encode(map_big)
                assert(cjson.decode(json)["99999"] == 99999)
                assert(#cjson.encode(array_big) == #table.concat(array_big, ",") + 2)
                return true
            end)()"#
        ));
        assert!(truth(
            "bit.tobit(1) == 1 and bit.band(1) == 1 and bit.bxor(1,2) == 3 and bit.bor(1,2,4,8,16,32,64,128) == 255"
        ));
        // Redis patched tohex so the most negative width cannot overflow.
        assert_eq!(bytes("bit.tohex(65535, -2147483648)"), b"0000FFFF");
    }

    #[test]
    fn lua_libs_deep_objects_stay_within_limits() {
        let deep = MAX_WALK_DEPTH;
        assert!(truth(&format!(
            "(function()
                local t = {{}} local c = t
                for i = 2, {deep} do c.k = {{}} c = c.k end
                cjson.encode_max_depth(100000)
                local text = cjson.encode(t)
                cjson.decode_max_depth(100000)
                local back = cjson.decode(text)
                return #text == {len} and type(back.k.k.k) == 'table'
            end)()",
            len = (deep - 1) * 6 + 2
        )));
    }

    #[test]
    fn lua_libs_number_text_matches_c() {
        for (x, precision, text) in [
            (0.5, 14, "0.5"),
            (2.5, 1, "2"),
            (0.125, 2, "0.12"),
            (1e21, 14, "1e+21"),
            (1e-7, 14, "1e-07"),
            (123_456.0, 3, "1.23e+05"),
            (-0.0, 14, "-0"),
            (f64::INFINITY, 14, "inf"),
            (99_999_999_999_999.5, 14, "1e+14"),
        ] {
            assert_eq!(format_g(x, precision), text, "%.{precision}g of {x}");
        }
        for (text, value) in [
            (" 12 ", Some(12.0)),
            ("0x1A", Some(26.0)),
            ("1e2", Some(100.0)),
            ("-.5", Some(-0.5)),
            ("inf", Some(f64::INFINITY)),
            ("1e", None),
            ("", None),
            ("12abc", None),
            ("12\0abc", Some(12.0)),
        ] {
            assert_eq!(str_to_number(text.as_bytes()), value, "{text:?}");
        }
        assert_eq!(
            strtod_prefix(b"0x1p-1074").map(|(v, n)| (v.to_bits(), n)),
            Some((1, 9))
        );
        assert_eq!(strtod_prefix(b"0x"), Some((0.0, 1)));
    }
}
