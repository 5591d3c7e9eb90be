//! Access control as Redis 7 has it: users with hashed passwords, allowed commands (by name
//! and by the command table's ACL categories), key patterns with read/write permissions and
//! channel patterns; the `ACL SETUSER` rule language that changes them, the text `ACL LIST`
//! shows, and the check a command must pass before it runs.
//!
//! Everything here is pure: the set of users is replicated state kept in the keyspace and
//! changed only by applied log entries, so the same rules produce the same users on every
//! node. Plaintext passwords never enter this module's state or the log: the node that
//! receives `ACL SETUSER u >secret` rewrites the rule to `#<sha256>` before proposing it
//! ([`hash_plaintext_rules`]).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::command::{flag, CommandSpec, Handler, COMMANDS};
use crate::keyspace::glob;

/// The user every connection starts as.
pub const DEFAULT_USER: &str = "default";

/// Redis's command categories, in the order `ACL CAT` lists them.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Why an `ACL SETUSER` rule was refused; the texts are Redis's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// `+foo`, `-@bar` naming nothing the table knows.
    #[error("Unknown command or category name in ACL")]
    Unknown,
    /// A rule that is not one.
    #[error("Syntax error")]
    Syntax,
    /// A key pattern after `allkeys`.
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    AfterAllKeys,
    /// A channel pattern after `allchannels`.
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    AfterAllChannels,
    /// `<pass` or `!hash` for a password the user does not have.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// `#hash` that is not 64 lower-case hex digits.
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
}

/// Why a command was refused (`-NOPERM`), and what `ACL LOG` records as its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The command (full name, `config|set` for a subcommand) is not allowed.
    Command(String),
    /// A key argument matches no pattern with the needed permission.
    Key(Bytes),
    /// A channel argument matches no channel pattern.
    Channel(Bytes),
}

impl Denied {
    /// The `-NOPERM` error a client gets, as Redis 7.2 words it.
    pub fn reply_text(&self, user: &str) -> String {
        match self {
            Denied::Command(name) => {
                format!("NOPERM User {user} has no permissions to run the '{name}' command")
            }
            Denied::Key(_) => "NOPERM No permissions to access a key".to_string(),
            Denied::Channel(_) => "NOPERM No permissions to access a channel".to_string(),
        }
    }

    /// The verbose text `ACL DRYRUN` answers with. It names the key or channel: the caller
    /// chose it, and only an administrator may run DRYRUN.
    pub fn dryrun_text(&self, user: &str) -> String {
        match self {
            Denied::Command(name) => {
                format!("User {user} has no permissions to run the '{name}' command")
            }
            Denied::Key(key) => format!(
                "User {user} has no permissions to access the '{}' key",
                String::from_utf8_lossy(key)
            ),
            Denied::Channel(channel) => format!(
                "User {user} has no permissions to access the '{}' channel",
                String::from_utf8_lossy(channel)
            ),
        }
    }

    /// `ACL LOG`'s `reason` field.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Command(_) => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
        }
    }
}

/// One key pattern and what it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyPattern {
    pattern: Bytes,
    read: bool,
    write: bool,
}

impl KeyPattern {
    fn describe(&self) -> String {
        let prefix = match (self.read, self.write) {
            (true, true) => "~",
            (true, false) => "%R~",
            (false, true) => "%W~",
            (false, false) => "%~",
        };
        format!("{prefix}{}", String::from_utf8_lossy(&self.pattern))
    }
}

/// One user: its switch, passwords and permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    name: String,
    enabled: bool,
    nopass: bool,
    /// Hex SHA-256 of each password, in the order they were added.
    passwords: Vec<String>,
    /// The command rules as given, starting with `+@all` or `-@all`; a later rule on the
    /// same name replaces an earlier one, as Redis compacts them.
    command_rules: Vec<String>,
    /// The full names (`get`, `config|set`) the rules allow, recomputed from the rules.
    allowed: Arc<HashSet<&'static str>>,
    all_keys: bool,
    keys: Vec<KeyPattern>,
    all_channels: bool,
    channels: Vec<Bytes>,
}

/// Every runnable command's full name with its spec: top-level commands, and each
/// subcommand as `container|sub` (a container itself never runs).
static FULL_NAMES: LazyLock<Vec<(String, &'static CommandSpec)>> = LazyLock::new(|| {
    let mut names = Vec::new();
    for spec in COMMANDS.iter() {
        if !matches!(spec.handler, Handler::Container) {
            names.push((spec.name.to_string(), *spec));
        }
        for sub in spec.subcommands {
            names.push((format!("{}|{}", spec.name, sub.name), sub));
        }
    }
    names
});

/// The interned full name of a runnable command, so sets of them hold `&'static str`.
fn interned(full: &str) -> Option<&'static str> {
    static NAMES: LazyLock<HashSet<&'static str>> =
        LazyLock::new(|| FULL_NAMES.iter().map(|(n, _)| n.as_str()).collect());
    NAMES.get(full).copied()
}

/// The full names a command rule's target stands for: a category, a command (with all its
/// subcommands), or one subcommand.
fn rule_targets(target: &str) -> Result<Vec<&'static str>, RuleError> {
    let target = target.to_ascii_lowercase();
    if let Some(category) = target.strip_prefix('@') {
        if category == "all" {
            return Ok(FULL_NAMES.iter().map(|(n, _)| n.as_str()).collect());
        }
        if !CATEGORIES.contains(&category) {
            return Err(RuleError::Unknown);
        }
        return Ok(FULL_NAMES
            .iter()
            .filter(|(_, spec)| spec.acl.contains(&category))
            .map(|(n, _)| n.as_str())
            .collect());
    }
    if let Some(name) = interned(&target) {
        let prefix = format!("{name}|");
        let mut names = vec![name];
        names.extend(
            FULL_NAMES
                .iter()
                .filter(|(n, _)| n.starts_with(&prefix))
                .map(|(n, _)| n.as_str()),
        );
        return Ok(names);
    }
    // A container named alone stands for every subcommand.
    let prefix = format!("{target}|");
    let subs: Vec<&'static str> = FULL_NAMES
        .iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .map(|(n, _)| n.as_str())
        .collect();
    if subs.is_empty() {
        Err(RuleError::Unknown)
    } else {
        Ok(subs)
    }
}

/// The hex SHA-256 of a password, as Redis stores and shows it.
pub fn hash_password(password: &[u8]) -> String {
    let digest = Sha256::digest(password);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

fn valid_hash(hex: &[u8]) -> bool {
    hex.len() == 64 && hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Rewrites `>password` into `#<sha256>` and `<password` into `!<sha256>`, so the rules
/// that travel through the log and sit in snapshots never hold a plaintext password.
pub fn hash_plaintext_rules(rules: &[Bytes]) -> Vec<Bytes> {
    rules
        .iter()
        .map(|rule| match rule.first() {
            Some(b'>') => Bytes::from(format!("#{}", hash_password(&rule[1..]))),
            Some(b'<') => Bytes::from(format!("!{}", hash_password(&rule[1..]))),
            _ => rule.clone(),
        })
        .collect()
}

/// Whether a user name is one Redis accepts.
pub fn valid_user_name(name: &[u8]) -> bool {
    !name.iter().any(|b| *b == b' ' || *b == 0)
}

impl User {
    /// A user as `ACL SETUSER` creates it: off, no password, no keys, no channels, no
    /// commands.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            command_rules: vec!["-@all".to_string()],
            allowed: Arc::new(HashSet::new()),
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
        }
    }

    /// The default user as a server starts it: on, no password, everything allowed.
    pub fn default_user() -> User {
        let mut user = User::new(DEFAULT_USER);
        for rule in ["on", "nopass", "allkeys", "allchannels", "allcommands"] {
            // These rules are fixed and valid.
            let _ = user.apply_rule(rule.as_bytes());
        }
        user
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it may authenticate at all (`on`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether any password opens it (`nopass`).
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// Whether `password` opens this user: it must be on, and `nopass` or hold the hash.
    pub fn authenticates(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(password);
        // Every stored hash is compared, so the time taken does not say which one matched.
        self.passwords.iter().fold(false, |found, stored| {
            found | constant_time_eq(stored, &hash)
        })
    }

    /// Applies every rule, or none: the first invalid rule is returned with its index and the
    /// user is left as it was.
    pub fn apply_rules(&mut self, rules: &[Bytes]) -> Result<(), (usize, RuleError)> {
        let mut next = self.clone();
        for (i, rule) in rules.iter().enumerate() {
            next.apply_rule(rule).map_err(|e| (i, e))?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one `ACL SETUSER` rule.
    pub fn apply_rule(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"allkeys" => {
                self.all_keys = true;
                self.keys.clear();
            }
            b"resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            b"allchannels" => {
                self.all_channels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            b"allcommands" => self.command_rule(true, "@all")?,
            b"nocommands" => self.command_rule(false, "@all")?,
            // Payload sanitizing is about RESTORE, which cellkv does not serve; selectors are
            // not supported, so clearing them changes nothing.
            b"sanitize-payload" | b"skip-sanitize-payload" | b"clearselectors" => {}
            b"reset" => {
                let name = std::mem::take(&mut self.name);
                *self = User::new(&name);
                self.apply_rule(b"sanitize-payload")?;
            }
            _ => return self.apply_operator_rule(rule),
        }
        Ok(())
    }

    fn apply_operator_rule(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let Some((&first, rest)) = rule.split_first() else {
            return Err(RuleError::Syntax);
        };
        match first {
            b'>' => {
                self.add_hash(hash_password(rest));
            }
            b'#' => {
                if !valid_hash(rest) {
                    return Err(RuleError::BadHash);
                }
                self.add_hash(String::from_utf8_lossy(rest).into_owned());
            }
            b'<' | b'!' => {
                let hash = if first == b'<' {
                    hash_password(rest)
                } else if valid_hash(rest) {
                    String::from_utf8_lossy(rest).into_owned()
                } else {
                    return Err(RuleError::BadHash);
                };
                let before = self.passwords.len();
                self.passwords.retain(|p| *p != hash);
                if self.passwords.len() == before {
                    return Err(RuleError::NoSuchPassword);
                }
            }
            b'~' => self.add_key_pattern(rest, true, true)?,
            b'%' => {
                let tilde = rest
                    .iter()
                    .position(|b| *b == b'~')
                    .ok_or(RuleError::Syntax)?;
                let (mut read, mut write) = (false, false);
                for b in &rest[..tilde] {
                    match b.to_ascii_uppercase() {
                        b'R' => read = true,
                        b'W' => write = true,
                        _ => return Err(RuleError::Syntax),
                    }
                }
                if !read && !write {
                    return Err(RuleError::Syntax);
                }
                self.add_key_pattern(&rest[tilde + 1..], read, write)?;
            }
            b'&' => {
                if rest == b"*" {
                    self.all_channels = true;
                    self.channels.clear();
                } else if self.all_channels {
                    return Err(RuleError::AfterAllChannels);
                } else if !self.channels.iter().any(|c| c == rest) {
                    self.channels.push(Bytes::copy_from_slice(rest));
                }
            }
            b'+' | b'-' => {
                let target = std::str::from_utf8(rest).map_err(|_| RuleError::Unknown)?;
                if target.is_empty() {
                    return Err(RuleError::Syntax);
                }
                self.command_rule(first == b'+', target)?;
            }
            b'(' => return Err(RuleError::Syntax),
            _ => return Err(RuleError::Syntax),
        }
        Ok(())
    }

    fn add_hash(&mut self, hash: String) {
        self.nopass = false;
        if !self.passwords.contains(&hash) {
            self.passwords.push(hash);
        }
    }

    fn add_key_pattern(
        &mut self,
        pattern: &[u8],
        read: bool,
        write: bool,
    ) -> Result<(), RuleError> {
        // `~*` is `allkeys`, repeatable like it.
        if pattern == b"*" && read && write {
            self.all_keys = true;
            self.keys.clear();
            return Ok(());
        }
        if self.all_keys {
            return Err(RuleError::AfterAllKeys);
        }
        if let Some(existing) = self.keys.iter_mut().find(|k| k.pattern == pattern) {
            existing.read |= read;
            existing.write |= write;
        } else {
            self.keys.push(KeyPattern {
                pattern: Bytes::copy_from_slice(pattern),
                read,
                write,
            });
        }
        Ok(())
    }

    /// Adds `+target` or `-target` to the command rules and recomputes what they allow.
    fn command_rule(&mut self, allow: bool, target: &str) -> Result<(), RuleError> {
        let targets = rule_targets(target)?;
        let target = target.to_ascii_lowercase();
        let sign = if allow { '+' } else { '-' };
        if target == "@all" {
            self.command_rules = vec![format!("{sign}@all")];
        } else {
            self.command_rules.retain(|r| r[1..] != target);
            self.command_rules.push(format!("{sign}{target}"));
        }
        let mut allowed = (*self.allowed).clone();
        for name in targets {
            if allow {
                allowed.insert(name);
            } else {
                allowed.remove(name);
            }
        }
        self.allowed = Arc::new(allowed);
        Ok(())
    }

    /// Whether nothing is taken away: every command, key and channel. Such a user's
    /// scripts and transactions need no check inside apply.
    pub fn unrestricted(&self) -> bool {
        self.all_commands() && self.all_keys && self.all_channels
    }

    /// Whether the command rules allow every command (`+@all` and nothing taken away).
    fn all_commands(&self) -> bool {
        self.command_rules.len() == 1 && self.command_rules[0] == "+@all"
    }

    /// The flags `ACL GETUSER` lists.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        flags
    }

    /// Password hashes, hex.
    pub fn password_hashes(&self) -> &[String] {
        &self.passwords
    }

    /// The command rules as `ACL GETUSER` shows them (`+@all -@dangerous`).
    pub fn commands_text(&self) -> String {
        self.command_rules.join(" ")
    }

    /// The key patterns as `ACL GETUSER` shows them (`~celery* %R~cache:*`).
    pub fn keys_text(&self) -> String {
        if self.all_keys {
            return "~*".to_string();
        }
        self.keys
            .iter()
            .map(KeyPattern::describe)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The channel patterns as `ACL GETUSER` shows them (`&pubsub:*`).
    pub fn channels_text(&self) -> String {
        if self.all_channels {
            return "&*".to_string();
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The rules that rebuild this user from nothing, as `ACL LIST` shows them after
    /// `user <name>`: flags, password hashes, keys, channels, commands.
    pub fn describe_rules(&self) -> Vec<String> {
        let mut rules: Vec<String> = self.flags().iter().map(|f| f.to_string()).collect();
        rules.extend(self.passwords.iter().map(|h| format!("#{h}")));
        if self.all_keys {
            rules.push("~*".into());
        } else {
            rules.extend(self.keys.iter().map(KeyPattern::describe));
        }
        if self.all_channels {
            rules.push("&*".into());
        } else if self.channels.is_empty() {
            rules.push("resetchannels".into());
        } else {
            rules.extend(
                self.channels
                    .iter()
                    .map(|c| format!("&{}", String::from_utf8_lossy(c))),
            );
        }
        rules.extend(self.command_rules.iter().cloned());
        rules
    }

    /// The `ACL LIST` line.
    pub fn describe(&self) -> String {
        format!("user {} {}", self.name, self.describe_rules().join(" "))
    }

    /// Whether `args` (resolved to `spec`, full name `full_name`) may run for this user.
    pub fn check(&self, spec: &CommandSpec, full_name: &str, args: &[Bytes]) -> Result<(), Denied> {
        if spec.flags & flag::NO_AUTH == 0
            && !self.all_commands()
            && !self.allowed.contains(full_name)
        {
            return Err(Denied::Command(full_name.to_string()));
        }
        if !self.all_keys {
            let (read, write) = key_access(spec, full_name, args);
            for key in spec.keys.extract(args) {
                let ok = self.keys.iter().any(|p| {
                    (!read || p.read)
                        && (!write || p.write)
                        && glob::matches(&p.pattern, key, false)
                });
                if !ok {
                    return Err(Denied::Key(key.clone()));
                }
            }
        }
        if !self.all_channels {
            for (channel, literal) in channels_of(full_name, args) {
                let ok = self.channels.iter().any(|p| {
                    if literal {
                        p == channel
                    } else {
                        glob::matches(p, channel, false)
                    }
                });
                if !ok {
                    return Err(Denied::Channel(channel.clone()));
                }
            }
        }
        Ok(())
    }
}

/// Compares two hex digests without stopping at the first difference.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Commands whose keys are only written, never read back to the client, so a `%W~`
/// pattern suffices. Any other write command also needs read access: the table has no
/// per-key access flags, and a write that returns data (`GETDEL`, `LPOP`, `INCR`) must
/// not leak a key a write-only user may not read.
const WRITE_ONLY: &[&str] = &[
    "set",
    "setex",
    "psetex",
    "mset",
    "del",
    "unlink",
    "lpush",
    "rpush",
    "hset",
    "hmset",
    "sadd",
    "zadd",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "persist",
];

/// The access a command's keys need: (read, write).
fn key_access(spec: &CommandSpec, full_name: &str, args: &[Bytes]) -> (bool, bool) {
    if !spec.is_write() {
        return (true, false);
    }
    let returns_old_value =
        full_name == "set" && args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get"));
    if WRITE_ONLY.contains(&full_name) && !returns_old_value {
        (false, true)
    } else {
        (true, true)
    }
}

/// The channels a command names, each with whether it must be matched literally (a
/// `PSUBSCRIBE` pattern must be one of the user's patterns exactly, as in Redis).
fn channels_of<'a>(full_name: &str, args: &'a [Bytes]) -> Vec<(&'a Bytes, bool)> {
    match full_name {
        "publish" | "spublish" => args.get(1).map(|c| (c, false)).into_iter().collect(),
        "subscribe" | "ssubscribe" => args.iter().skip(1).map(|c| (c, false)).collect(),
        "psubscribe" => args.iter().skip(1).map(|c| (c, true)).collect(),
        _ => Vec::new(),
    }
}

/// The full name of a resolved command: `container|sub` for a subcommand.
pub fn full_name(spec: &'static CommandSpec, args: &[Bytes]) -> String {
    match args.first().and_then(|n| crate::command::lookup(n)) {
        Some(top) if !std::ptr::eq(top, spec) => format!("{}|{}", top.name, spec.name),
        _ => spec.name.to_string(),
    }
}

/// The replicated set of users.
#[derive(Clone, Debug, PartialEq)]
pub struct Users {
    users: imbl::OrdMap<String, Arc<User>>,
    /// SHA-256 of the last `aclfile`/`requirepass` loaded at start, so a restart with the
    /// same configuration leaves runtime changes in place.
    loaded_digest: Option<String>,
}

impl Default for Users {
    fn default() -> Self {
        let mut users = imbl::OrdMap::new();
        users.insert(DEFAULT_USER.to_string(), Arc::new(User::default_user()));
        Users {
            users,
            loaded_digest: None,
        }
    }
}

/// One user as rules from nothing: what the aclfile, the log's load entry and the snapshot
/// hold.
pub type UserRules = (String, Vec<Bytes>);

impl Users {
    /// The user named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.users.get(name).cloned()
    }

    /// Every user, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }

    /// `ACL SETUSER name rules...`: creates the user if needed; all rules or none.
    pub fn set_user(&mut self, name: &str, rules: &[Bytes]) -> Result<(), (usize, RuleError)> {
        let mut user = self
            .users
            .get(name)
            .map(|u| (**u).clone())
            .unwrap_or_else(|| User::new(name));
        user.apply_rules(rules)?;
        self.users.insert(name.to_string(), Arc::new(user));
        Ok(())
    }

    /// `ACL DELUSER`: how many of `names` existed and were removed. The default user stays.
    pub fn del_users(&mut self, names: &[String]) -> usize {
        names
            .iter()
            .filter(|n| n.as_str() != DEFAULT_USER)
            .filter(|n| self.users.remove(n.as_str()).is_some())
            .count()
    }

    /// Replaces every user with `users` (built from the defaults: a file that does not name
    /// `default` leaves it as a server starts it), unless `digest` is what was loaded last.
    /// Returns whether anything was replaced.
    pub fn load(&mut self, digest: &str, users: &[UserRules]) -> Result<bool, String> {
        if self.loaded_digest.as_deref() == Some(digest) {
            return Ok(false);
        }
        let mut next = Users::default();
        for (name, rules) in users {
            // Each listed user is built from nothing, `default` included.
            next.users.remove(name.as_str());
            next.set_user(name, rules).map_err(|(i, e)| {
                format!(
                    "Error in user '{name}' rule '{}': {e}",
                    rules
                        .get(i)
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                        .unwrap_or_default()
                )
            })?;
        }
        next.loaded_digest = Some(digest.to_string());
        *self = next;
        Ok(true)
    }

    /// The digest of the startup configuration last loaded.
    pub fn loaded_digest(&self) -> Option<&str> {
        self.loaded_digest.as_deref()
    }

    /// The state as rule lists (for snapshots).
    pub fn to_rules(&self) -> (Option<String>, Vec<UserRules>) {
        let users = self
            .users
            .values()
            .map(|u| {
                (
                    u.name.clone(),
                    u.describe_rules().into_iter().map(Bytes::from).collect(),
                )
            })
            .collect();
        (self.loaded_digest.clone(), users)
    }

    /// Rebuilds the state from [`Users::to_rules`]; rules that no longer parse (a command
    /// removed from the table) are skipped rather than lose the user.
    pub fn from_rules(digest: Option<String>, users: Vec<UserRules>) -> Users {
        let mut state = Users {
            users: imbl::OrdMap::new(),
            loaded_digest: digest,
        };
        for (name, rules) in users {
            let mut user = User::new(&name);
            for rule in &rules {
                let _ = user.apply_rule(rule);
            }
            state.users.insert(name, Arc::new(user));
        }
        if !state.users.contains_key(DEFAULT_USER) {
            state
                .users
                .insert(DEFAULT_USER.to_string(), Arc::new(User::default_user()));
        }
        state
    }

    /// Whether a new connection must authenticate: the default user has a password or is
    /// off.
    pub fn auth_required(&self) -> bool {
        self.users
            .get(DEFAULT_USER)
            .is_none_or(|u| !u.enabled || !u.nopass)
    }
}

/// Parses an aclfile: one `user <name> <rules...>` per line, blank lines and `#` comments
/// skipped. Errors name the line, never a rule's text past its first character (a rule may
/// be a `>password`).
pub fn parse_acl_file(text: &str) -> Result<Vec<UserRules>, String> {
    let mut users: Vec<UserRules> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("user") {
            return Err(format!("line {line_no}: should start with user keyword"));
        }
        let Some(name) = words.next() else {
            return Err(format!("line {line_no}: user name missing"));
        };
        if users.iter().any(|(n, _)| n == name) {
            return Err(format!("line {line_no}: duplicate user '{name}' found"));
        }
        let rules: Vec<Bytes> = words.map(|w| Bytes::from(w.to_string())).collect();
        let rules = hash_plaintext_rules(&rules);
        let mut probe = User::new(name);
        if let Err((_, e)) = probe.apply_rules(&rules) {
            return Err(format!("line {line_no}: {e}"));
        }
        users.push((name.to_string(), rules));
    }
    Ok(users)
}

/// Users from the `aclfile` and `requirepass` options, in the order they apply (the
/// password last, as `requirepass` sets the default user's password after the file), and
/// the digest that tells a restart whether they changed.
pub fn startup_users(
    file: Option<&str>,
    requirepass: Option<&str>,
) -> Result<Option<(String, Vec<UserRules>)>, String> {
    if file.is_none() && requirepass.is_none() {
        return Ok(None);
    }
    let mut users = match file {
        Some(text) => parse_acl_file(text)?,
        None => Vec::new(),
    };
    if let Some(pass) = requirepass {
        let rules: Vec<Bytes> = if pass.is_empty() {
            vec![Bytes::from("nopass")]
        } else {
            vec![
                Bytes::from("resetpass"),
                Bytes::from(format!("#{}", hash_password(pass.as_bytes()))),
            ]
        };
        match users.iter_mut().find(|(n, _)| n == DEFAULT_USER) {
            Some((_, existing)) => existing.extend(rules),
            None => {
                let mut default = User::default_user().describe_rules();
                default.extend(
                    rules
                        .iter()
                        .map(|r| String::from_utf8_lossy(r).into_owned()),
                );
                users.push((
                    DEFAULT_USER.to_string(),
                    default.into_iter().map(Bytes::from).collect(),
                ))
            }
        }
    }
    let mut hasher = Sha256::new();
    for (name, rules) in &users {
        hasher.update(name.as_bytes());
        for rule in rules {
            hasher.update(b" ");
            hasher.update(rule);
        }
        hasher.update(b"\n");
    }
    let digest = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Some((digest, users)))
}

/// A password for `ACL GENPASS`: `bits` random bits (rounded up to a hex digit) as hex.
pub fn genpass(bits: usize) -> String {
    let digits = bits.div_ceil(4);
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        let word: u64 = rand::random();
        out.push_str(&format!("{word:016x}"));
    }
    out.truncate(digits);
    out
}

/// The full names of the commands in `category` (`ACL CAT <category>`); `None` for a
/// category Redis does not have.
pub fn commands_in_category(category: &str) -> Option<Vec<&'static str>> {
    let category = category.to_ascii_lowercase();
    if !CATEGORIES.contains(&category.as_str()) {
        return None;
    }
    let names: BTreeSet<&'static str> = FULL_NAMES
        .iter()
        .filter(|(_, spec)| spec.acl.contains(&category.as_str()))
        .map(|(n, _)| n.as_str())
        .collect();
    Some(names.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{resolve, Resolved};

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn rules(line: &str) -> Vec<Bytes> {
        args(line)
    }

    fn check(user: &User, line: &str) -> Result<(), Denied> {
        let args = args(line);
        let Resolved::Command(spec) = resolve(&args) else {
            panic!("{line} does not resolve");
        };
        user.check(spec, &full_name(spec, &args), &args)
    }

    fn celery() -> User {
        let mut user = User::new("celery");
        user.apply_rules(&rules(
            "on >s3cret ~celery* ~_kombu.* ~unacked* +@all -@dangerous",
        ))
        .expect("celery rules");
        user
    }

    #[test]
    fn the_default_user_allows_everything_without_a_password() {
        let user = User::default_user();
        assert!(user.authenticates(b"anything"));
        assert_eq!(user.describe(), "user default on nopass ~* &* +@all");
        assert!(check(&user, "flushall").is_ok());
        assert!(check(&user, "get bff:session:x").is_ok());
        assert!(!Users::default().auth_required());
    }

    #[test]
    fn a_celery_user_touches_only_its_keys() {
        let user = celery();
        assert!(check(&user, "lpush celery a").is_ok());
        assert!(check(&user, "hset unacked t v").is_ok());
        assert!(check(&user, "get _kombu.binding.x").is_ok());
        assert_eq!(
            check(&user, "get bff:session:x"),
            Err(Denied::Key(Bytes::from("bff:session:x")))
        );
        // One forbidden key among allowed ones refuses the whole command.
        assert!(check(&user, "mget celery bff:session:x").is_err());
        // Dangerous commands are out even though +@all came first.
        assert_eq!(
            check(&user, "flushall"),
            Err(Denied::Command("flushall".into()))
        );
        assert_eq!(
            check(&user, "config get maxclients"),
            Err(Denied::Command("config|get".into()))
        );
        assert_eq!(
            Denied::Command("flushall".into()).reply_text("celery"),
            "NOPERM User celery has no permissions to run the 'flushall' command"
        );
        assert_eq!(
            Denied::Key(Bytes::new()).reply_text("celery"),
            "NOPERM No permissions to access a key"
        );
        // AUTH and HELLO are never refused by command rules.
        assert!(check(&user, "auth celery x").is_ok());
        assert_eq!(
            user.describe(),
            format!(
                "user celery on #{} ~celery* ~_kombu.* ~unacked* resetchannels +@all -@dangerous",
                hash_password(b"s3cret")
            )
        );
    }

    #[test]
    fn passwords_are_stored_hashed_and_checked() {
        let mut user = User::new("u");
        user.apply_rules(&rules("on >pw1")).expect("rules");
        assert!(user.authenticates(b"pw1"));
        assert!(!user.authenticates(b"pw2"));
        assert_eq!(user.password_hashes(), [hash_password(b"pw1")]);
        // The SHA-256 of "pw1", as `echo -n pw1 | sha256sum` prints it.
        assert_eq!(user.password_hashes()[0].len(), 64);
        let hashed = format!("#{}", hash_password(b"pw2"));
        user.apply_rules(&[Bytes::from(hashed)]).expect("hash rule");
        assert!(user.authenticates(b"pw2"));
        user.apply_rules(&rules("<pw1")).expect("remove");
        assert!(!user.authenticates(b"pw1"));
        assert_eq!(
            user.apply_rules(&rules("<pw1")),
            Err((0, RuleError::NoSuchPassword))
        );
        assert_eq!(
            user.apply_rules(&rules("#abc")),
            Err((0, RuleError::BadHash))
        );
        user.apply_rules(&rules("off")).expect("off");
        assert!(
            !user.authenticates(b"pw2"),
            "a disabled user never authenticates"
        );
        user.apply_rules(&rules("on nopass")).expect("nopass");
        assert!(user.authenticates(b"whatever"));
        user.apply_rules(&rules("resetpass")).expect("resetpass");
        assert!(!user.authenticates(b"whatever"));
        assert_eq!(hash_password(b"").len(), 64);
        assert_eq!(
            hash_password(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn plaintext_rules_become_hashes_before_they_travel() {
        let out = hash_plaintext_rules(&rules("on >secret <old ~k*"));
        let text: Vec<String> = out
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect();
        assert_eq!(text[0], "on");
        assert_eq!(text[1], format!("#{}", hash_password(b"secret")));
        assert_eq!(text[2], format!("!{}", hash_password(b"old")));
        assert!(!text.iter().any(|t| t.contains("secret")));
    }

    #[test]
    fn rules_are_atomic_and_errors_are_redis_texts() {
        let mut user = User::new("u");
        assert_eq!(
            user.apply_rules(&rules("on ~a* +nosuchcommand")),
            Err((2, RuleError::Unknown))
        );
        assert!(!user.enabled(), "nothing applied from a failed SETUSER");
        assert_eq!(
            user.apply_rules(&rules("bogus")),
            Err((0, RuleError::Syntax))
        );
        assert_eq!(
            user.apply_rules(&rules("allkeys ~x")),
            Err((1, RuleError::AfterAllKeys))
        );
        assert_eq!(
            user.apply_rules(&rules("allchannels &x")),
            Err((1, RuleError::AfterAllChannels))
        );
        assert_eq!(
            user.apply_rules(&rules("%X~a")),
            Err((0, RuleError::Syntax))
        );
        assert_eq!(
            user.apply_rules(&rules("+@nosuch")),
            Err((0, RuleError::Unknown))
        );
    }

    #[test]
    fn command_rules_by_name_subcommand_and_category() {
        let mut user = User::new("u");
        user.apply_rules(&rules("on nopass allkeys -@all +@read +config|get -get"))
            .expect("rules");
        assert!(check(&user, "strlen k").is_ok());
        assert!(check(&user, "config get x").is_ok());
        assert!(check(&user, "config set x y").is_err());
        assert_eq!(check(&user, "get k"), Err(Denied::Command("get".into())));
        assert!(check(&user, "set k v").is_err());
        assert_eq!(user.commands_text(), "-@all +@read +config|get -get");
        // A later rule on the same name replaces the earlier one.
        user.apply_rules(&rules("+get")).expect("rules");
        assert_eq!(user.commands_text(), "-@all +@read +config|get +get");
        assert!(check(&user, "get k").is_ok());
        // A container named alone stands for every subcommand.
        user.apply_rules(&rules("+config")).expect("rules");
        assert!(check(&user, "config set x y").is_ok());
        user.apply_rules(&rules("nocommands")).expect("rules");
        assert_eq!(user.commands_text(), "-@all");
        assert!(check(&user, "strlen k").is_err());
    }

    #[test]
    fn read_and_write_key_patterns() {
        let mut user = User::new("u");
        user.apply_rules(&rules("on nopass +@all %R~cache:* %W~logs:* ~both:*"))
            .expect("rules");
        assert!(check(&user, "get cache:a").is_ok());
        assert!(check(&user, "set cache:a v").is_err());
        assert!(check(&user, "set logs:a v").is_ok());
        assert!(check(&user, "get logs:a").is_err());
        // A write that returns data needs read access too.
        assert!(check(&user, "getdel logs:a").is_err());
        assert!(check(&user, "set logs:a v get").is_err());
        assert!(check(&user, "incr both:n").is_ok());
        assert_eq!(user.keys_text(), "%R~cache:* %W~logs:* ~both:*");
        user.apply_rules(&rules("resetkeys allkeys"))
            .expect("rules");
        assert!(check(&user, "set anything v").is_ok());
        assert_eq!(user.keys_text(), "~*");
    }

    #[test]
    fn channel_patterns_and_literal_psubscribe_patterns() {
        let mut user = User::new("u");
        user.apply_rules(&rules("on nopass +@all allkeys &pubsub:progress:*"))
            .expect("rules");
        assert!(check(&user, "publish pubsub:progress:1 hi").is_ok());
        assert!(check(&user, "subscribe pubsub:progress:9").is_ok());
        assert_eq!(
            check(&user, "publish other hi"),
            Err(Denied::Channel(Bytes::from("other")))
        );
        assert!(check(&user, "psubscribe pubsub:progress:*").is_ok());
        assert!(check(&user, "psubscribe pubsub:progress:1*").is_err());
        assert_eq!(
            Denied::Channel(Bytes::new()).reply_text("u"),
            "NOPERM No permissions to access a channel"
        );
        assert_eq!(user.channels_text(), "&pubsub:progress:*");
    }

    #[test]
    fn users_round_trip_through_their_rules_and_reset() {
        let mut users = Users::default();
        users
            .set_user("celery", &rules("on >pw ~celery* +@all -@dangerous &x"))
            .expect("setuser");
        users
            .set_user("ro", &rules("on >pw2 %R~* +@read -keys"))
            .expect("setuser");
        let (digest, list) = users.to_rules();
        let back = Users::from_rules(digest, list);
        assert_eq!(back, users);
        assert_eq!(
            users.del_users(&["celery".into(), "nobody".into(), "default".into()]),
            1
        );
        assert!(users.get("celery").is_none());
        assert!(users.get("default").is_some());
        let mut user = User::default_user();
        user.apply_rules(&rules("reset")).expect("reset");
        assert_eq!(user.describe(), "user default off resetchannels -@all");
    }

    #[test]
    fn startup_users_from_a_file_and_requirepass() {
        let file = "# users\nuser celery on >pw ~celery* +@all -@dangerous\n\nuser ro on nopass %R~* +@read\n";
        let (digest, users) = startup_users(Some(file), Some("top"))
            .expect("valid")
            .expect("something to load");
        let mut state = Users::default();
        assert!(state.load(&digest, &users).expect("load"));
        assert!(state.auth_required());
        let default = state.get("default").expect("default");
        assert!(default.authenticates(b"top"));
        assert!(!default.authenticates(b"other"));
        assert!(state.get("celery").expect("celery").authenticates(b"pw"));
        // The same configuration again changes nothing: runtime changes survive a restart.
        state.set_user("extra", &rules("on")).expect("setuser");
        assert!(!state.load(&digest, &users).expect("load"));
        assert!(state.get("extra").is_some());
        // No plaintext reaches the rules that travel.
        for (_, rules) in &users {
            assert!(!rules.iter().any(|r| r.windows(3).any(|w| w == b"top")));
        }
        assert!(parse_acl_file("user a bogus").is_err());
        assert!(parse_acl_file("nouser a").is_err());
        assert!(parse_acl_file("user a on\nuser a off").is_err());
        assert_eq!(startup_users(None, None), Ok(None));
    }

    #[test]
    fn categories_come_from_the_table() {
        let dangerous = commands_in_category("dangerous").expect("category");
        assert!(dangerous.contains(&"flushall"));
        assert!(dangerous.contains(&"config|set"));
        assert!(!dangerous.contains(&"get"));
        assert!(commands_in_category("nosuch").is_none());
        assert_eq!(genpass(256).len(), 64);
        assert_eq!(genpass(5).len(), 2);
    }
}
