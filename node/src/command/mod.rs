//! The command table: one entry per command with its arity (Redis's sign convention),
//! flags, key positions, ACL categories and handler. Dispatch, arity checks, the
//! write/read split and the `COMMAND` replies all read this one table.

#[cfg(test)]
mod compat_doc;
pub mod errors;
pub(crate) mod introspect;
mod table;

use std::sync::LazyLock;

use bytes::Bytes;

use crate::keyspace::{ReadCtx, WriteCtx};
use crate::resp::Frame;
use crate::server::Session;

pub(crate) use crate::keyspace::help_lines as keyspace_help;
pub use introspect::{command_count, command_docs, command_getkeys, command_info, command_list};
pub use table::COMMANDS;

/// Flags, as `COMMAND INFO` names them.
pub mod flag {
    /// May modify the keyspace: goes through the Raft log.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads data.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory use (refused under `maxmemory` pressure).
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative command.
    pub const ADMIN: u32 = 1 << 3;
    /// Pub/sub command.
    pub const PUBSUB: u32 = 1 << 4;
    /// Not allowed from scripts.
    pub const NOSCRIPT: u32 = 1 << 5;
    /// May block the client.
    pub const BLOCKING: u32 = 1 << 6;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 7;
    /// Allowed while the data is stale.
    pub const STALE: u32 = 1 << 8;
    /// O(1) or O(log n) command.
    pub const FAST: u32 = 1 << 9;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 10;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 11;
    /// Result may differ between calls with the same input and state.
    pub const NONDETERMINISTIC: u32 = 1 << 12;
    /// Not counted in the slow log / stats as a data command.
    pub const SKIP_SLOWLOG: u32 = 1 << 13;
    /// Allowed while a script is busy.
    pub const ALLOW_BUSY: u32 = 1 << 14;

    /// Names in the order Redis prints them.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (NO_AUTH, "no_auth"),
        (FAST, "fast"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Reads the keyspace; runs on the read path (or inside apply, within a transaction).
    Read(fn(&ReadCtx<'_>, &[Bytes]) -> Frame),
    /// Changes the keyspace; becomes a Raft log entry and runs inside apply on every replica.
    Write(fn(&mut WriteCtx<'_>, &[Bytes]) -> Frame),
    /// Acts on the connection or the server, never on the keyspace.
    Session(fn(&mut Session, &[Bytes]) -> Frame),
    /// Acts on the connection and answers with any number of replies (`SUBSCRIBE` and kin).
    Replies(fn(&mut Session, &[Bytes]) -> Vec<Frame>),
    /// Run by the connection loop itself because it must wait (`EXEC`, `WATCH`).
    Connection,
    /// A container whose second argument names a subcommand.
    Container,
}

/// Where the keys of a command are among its arguments (0 = the command name): a fixed
/// range, plus for commands like `LMPOP` or `ZUNIONSTORE` a run of keys whose length is
/// given by a `numkeys` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPositions {
    /// First key of the fixed range, 0 when there is none.
    pub first: i32,
    /// Last key; negative counts from the end (-1 = last argument).
    pub last: i32,
    /// Distance between keys.
    pub step: i32,
    /// Position of the `numkeys` argument, 0 when there is none.
    pub numkeys_at: i32,
}

impl KeyPositions {
    /// No keys at all.
    pub const NONE: KeyPositions = KeyPositions {
        first: 0,
        last: 0,
        step: 0,
        numkeys_at: 0,
    };

    /// Whether the keys depend on an argument's value (Redis's `movablekeys`).
    pub fn movable(&self) -> bool {
        self.numkeys_at > 0
    }

    /// The keys of `args` (the full command, name included) according to these positions.
    pub fn extract<'a>(&self, args: &'a [Bytes]) -> Vec<&'a Bytes> {
        let mut keys = Vec::new();
        if self.first > 0 && self.step > 0 {
            let argc = args.len() as i64;
            let last = if self.last < 0 {
                argc + self.last as i64
            } else {
                self.last as i64
            };
            let mut i = self.first as i64;
            while i <= last && i < argc {
                if let Some(key) = args.get(i as usize) {
                    keys.push(key);
                }
                i += self.step as i64;
            }
        }
        if self.numkeys_at > 0 {
            let at = self.numkeys_at as usize;
            let count = args.get(at).and_then(|n| parse_i64(n)).unwrap_or(0).max(0) as usize;
            keys.extend(args.iter().skip(at + 1).take(count));
        }
        keys
    }
}

/// One command (or subcommand) of the table.
pub struct CommandSpec {
    /// Lower-case name; a subcommand's is its own name only (`setname`).
    pub name: &'static str,
    /// Redis arity: n = exactly n arguments (name included), -n = at least n.
    pub arity: i32,
    /// Bit set of [`flag`] values.
    pub flags: u32,
    /// Key positions.
    pub keys: KeyPositions,
    /// ACL categories without the `@`.
    pub acl: &'static [&'static str],
    /// Documentation group (`string`, `generic`, `connection`, `server`).
    pub group: &'static str,
    /// Redis version that introduced it.
    pub since: &'static str,
    /// One-line summary, as `COMMAND DOCS` shows.
    pub summary: &'static str,
    /// What runs it.
    pub handler: Handler,
    /// Subcommands of a container.
    pub subcommands: &'static [CommandSpec],
    /// For a write: its reply when the current state shows it would change nothing, so the
    /// node answers it as a read instead of appending a log entry (Redis likewise neither
    /// propagates nor fsyncs a write that changed nothing).
    pub unchanged: Option<UnchangedCheck>,
}

/// Answers a write from the state before it, or `None` when it may change something. Any
/// `Some` reply must equal what apply would answer in that state, with the state left as it
/// was: [`crate::keyspace::tests::check_transcript`] holds every transcript to that.
pub type UnchangedCheck = fn(&ReadCtx<'_>, &[Bytes]) -> Option<Frame>;

impl CommandSpec {
    /// The same command, answered without a log entry when `check` finds it changes nothing.
    pub const fn unless_unchanged(self, check: UnchangedCheck) -> Self {
        CommandSpec {
            unchanged: Some(check),
            ..self
        }
    }

    /// Whether `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Whether the command changes the keyspace.
    pub fn is_write(&self) -> bool {
        self.flags & flag::WRITE != 0
    }

    /// Looks a subcommand up by name, case-insensitively.
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands
            .iter()
            .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
    }
}

// Looked up for every request, with a short key: FxHash hashes a command name several times
// faster than the default SipHash, whose resistance to chosen keys a fixed table of our own
// names does not need.
static BY_NAME: LazyLock<rustc_hash::FxHashMap<&'static str, &'static CommandSpec>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name, *c)).collect());

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    // Every command name fits in 32 bytes; longer input cannot match.
    let mut lower = [0u8; 32];
    let target = lower.get_mut(..name.len())?;
    for (dst, src) in target.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    let key = std::str::from_utf8(target).ok()?;
    BY_NAME.get(key).copied()
}

/// The outcome of resolving a request against the table.
pub enum Resolved {
    /// A runnable (sub)command; `full_name` is `container|sub` for subcommands.
    Command(&'static CommandSpec),
    /// An error to reply with (unknown command, wrong arity, unknown subcommand).
    Error(String),
}

/// Finds the command for `args` and checks its arity, exactly as Redis orders those checks.
pub fn resolve(args: &[Bytes]) -> Resolved {
    let Some(name) = args.first() else {
        return Resolved::Error(errors::unknown_command(args));
    };
    let Some(spec) = lookup(name) else {
        return Resolved::Error(errors::unknown_command(args));
    };
    if !spec.arity_ok(args.len()) {
        return Resolved::Error(errors::wrong_arity(spec.name));
    }
    // A container needs its subcommand; COMMAND alone also runs by itself.
    let is_container = matches!(spec.handler, Handler::Container);
    if !spec.subcommands.is_empty() && (is_container || args.len() > 1) {
        let Some(sub_name) = args.get(1) else {
            return Resolved::Error(errors::wrong_arity(spec.name));
        };
        let Some(sub) = spec.subcommand(sub_name) else {
            return Resolved::Error(errors::unknown_subcommand(spec.name, sub_name));
        };
        if !sub.arity_ok(args.len()) {
            return Resolved::Error(errors::wrong_arity(&format!("{}|{}", spec.name, sub.name)));
        }
        return Resolved::Command(sub);
    }
    Resolved::Command(spec)
}

/// Integer arguments parse exactly as Redis's `string2ll` does (the RESP parser's rule
/// for lengths is the same one).
pub use crate::resp::string2ll as parse_i64;

/// Parses a float argument as Redis does for `INCRBYFLOAT` and scores: no leading or
/// trailing space, `inf`/`-inf` accepted, NaN refused.
pub fn parse_f64(raw: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(raw).ok()?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let value: f64 = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => text.parse().ok()?,
    };
    if value.is_nan() {
        None
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_refuse_spaces_and_nan() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"abc"), None);
    }

    #[test]
    fn every_command_resolves_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for spec in COMMANDS.iter() {
            assert!(seen.insert(spec.name), "duplicate {}", spec.name);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(lookup(spec.name.to_ascii_uppercase().as_bytes()).is_some());
            let is_container = matches!(spec.handler, Handler::Container);
            assert!(
                !is_container || !spec.subcommands.is_empty(),
                "{}",
                spec.name
            );
            let write = spec.flags & flag::WRITE != 0;
            let read = spec.flags & flag::READONLY != 0;
            assert!(!(write && read), "{} is both write and readonly", spec.name);
            match spec.handler {
                Handler::Write(_) => assert!(write, "{} writes without the flag", spec.name),
                Handler::Read(_) => assert!(!write, "{} flagged write but reads", spec.name),
                _ => {}
            }
        }
    }

    #[test]
    fn arity_follows_the_sign_convention() {
        let get = lookup(b"get").expect("get");
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let del = lookup(b"DEL").expect("del");
        assert!(del.arity_ok(2) && del.arity_ok(5) && !del.arity_ok(1));
    }

    #[test]
    fn key_positions_extract_keys() {
        let args: Vec<Bytes> = ["mset", "a", "1", "b", "2"].map(Bytes::from).to_vec();
        let mset = lookup(b"mset").expect("mset");
        let keys: Vec<_> = mset.keys.extract(&args).into_iter().cloned().collect();
        assert_eq!(keys, vec![Bytes::from("a"), Bytes::from("b")]);
    }

    #[test]
    fn resolve_reports_redis_errors() {
        let args: Vec<Bytes> = ["nosuch", "x"].map(Bytes::from).to_vec();
        match resolve(&args) {
            Resolved::Error(e) => {
                assert_eq!(
                    e,
                    "ERR unknown command 'nosuch', with args beginning with: 'x' "
                )
            }
            Resolved::Command(_) => panic!("resolved an unknown command"),
        }
        let args: Vec<Bytes> = ["get"].map(Bytes::from).to_vec();
        match resolve(&args) {
            Resolved::Error(e) => assert_eq!(e, "ERR wrong number of arguments for 'get' command"),
            Resolved::Command(_) => panic!("arity not checked"),
        }
        let args: Vec<Bytes> = ["client", "bogus"].map(Bytes::from).to_vec();
        match resolve(&args) {
            Resolved::Error(e) => {
                assert_eq!(e, "ERR unknown subcommand 'bogus'. Try CLIENT HELP.")
            }
            Resolved::Command(_) => panic!("unknown subcommand resolved"),
        }
    }
}
