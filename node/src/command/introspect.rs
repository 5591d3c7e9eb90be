//! `COMMAND` and its subcommands: the table described to clients (redis-cli reads
//! `COMMAND DOCS` at start, client libraries read `COMMAND INFO` for key positions).

use bytes::Bytes;

use super::{flag, keyspace_help, lookup, resolve, CommandSpec, Resolved, COMMANDS};
use crate::keyspace::glob;
use crate::resp::Frame;
use crate::server::Session;

fn simple(text: &str) -> Frame {
    Frame::Simple(text.to_string())
}

fn info_of(spec: &CommandSpec, parent: Option<&str>) -> Frame {
    let name = match parent {
        Some(p) => format!("{p}|{}", spec.name),
        None => spec.name.to_string(),
    };
    let mut flags: Vec<Frame> = flag::NAMES
        .iter()
        .filter(|(bit, _)| spec.flags & bit != 0)
        .map(|(_, n)| simple(n))
        .collect();
    if spec.keys.movable() {
        flags.push(simple("movablekeys"));
    }
    let acl = spec.acl.iter().map(|c| simple(&format!("@{c}"))).collect();
    let access = if spec.is_write() { "RW" } else { "RO" };
    let mut key_specs = if spec.keys.first > 0 {
        vec![Frame::Map(vec![
            (Frame::bulk("flags"), Frame::Set(vec![simple(access)])),
            (
                Frame::bulk("begin_search"),
                Frame::Map(vec![
                    (Frame::bulk("type"), Frame::bulk("index")),
                    (
                        Frame::bulk("spec"),
                        Frame::Map(vec![(
                            Frame::bulk("index"),
                            Frame::Integer(spec.keys.first.into()),
                        )]),
                    ),
                ]),
            ),
            (
                Frame::bulk("find_keys"),
                Frame::Map(vec![
                    (Frame::bulk("type"), Frame::bulk("range")),
                    (
                        Frame::bulk("spec"),
                        Frame::Map(vec![
                            (
                                Frame::bulk("lastkey"),
                                Frame::Integer(if spec.keys.last < 0 {
                                    spec.keys.last.into()
                                } else {
                                    (spec.keys.last - spec.keys.first).into()
                                }),
                            ),
                            (
                                Frame::bulk("keystep"),
                                Frame::Integer(spec.keys.step.into()),
                            ),
                            (Frame::bulk("limit"), Frame::Integer(0)),
                        ]),
                    ),
                ]),
            ),
        ])]
    } else {
        Vec::new()
    };
    if spec.keys.movable() {
        key_specs.push(numkeys_spec(access, spec.keys.numkeys_at));
    }
    let subs = spec
        .subcommands
        .iter()
        .map(|s| info_of(s, Some(spec.name)))
        .collect();
    Frame::Array(vec![
        Frame::bulk(name),
        Frame::Integer(spec.arity.into()),
        Frame::Set(flags),
        Frame::Integer(spec.keys.first.into()),
        Frame::Integer(spec.keys.last.into()),
        Frame::Integer(spec.keys.step.into()),
        Frame::Set(acl),
        Frame::Array(Vec::new()),
        Frame::Array(key_specs),
        Frame::Array(subs),
    ])
}

/// The key spec of a `numkeys` run: keys follow the count argument.
fn numkeys_spec(access: &str, numkeys_at: i32) -> Frame {
    Frame::Map(vec![
        (Frame::bulk("flags"), Frame::Set(vec![simple(access)])),
        (
            Frame::bulk("begin_search"),
            Frame::Map(vec![
                (Frame::bulk("type"), Frame::bulk("index")),
                (
                    Frame::bulk("spec"),
                    Frame::Map(vec![(
                        Frame::bulk("index"),
                        Frame::Integer(numkeys_at.into()),
                    )]),
                ),
            ]),
        ),
        (
            Frame::bulk("find_keys"),
            Frame::Map(vec![
                (Frame::bulk("type"), Frame::bulk("keynum")),
                (
                    Frame::bulk("spec"),
                    Frame::Map(vec![
                        (Frame::bulk("keynumidx"), Frame::Integer(0)),
                        (Frame::bulk("firstkey"), Frame::Integer(1)),
                        (Frame::bulk("keystep"), Frame::Integer(1)),
                    ]),
                ),
            ]),
        ),
    ])
}

fn docs_of(spec: &CommandSpec, parent: Option<&str>) -> (Frame, Frame) {
    let name = match parent {
        Some(p) => format!("{p}|{}", spec.name),
        None => spec.name.to_string(),
    };
    let mut fields = vec![
        (Frame::bulk("summary"), Frame::bulk(spec.summary)),
        (Frame::bulk("since"), Frame::bulk(spec.since)),
        (Frame::bulk("group"), Frame::bulk(spec.group)),
    ];
    if !spec.subcommands.is_empty() {
        let subs = spec
            .subcommands
            .iter()
            .map(|s| docs_of(s, Some(spec.name)))
            .collect();
        fields.push((Frame::bulk("subcommands"), Frame::Map(subs)));
    }
    (Frame::bulk(name), Frame::Map(fields))
}

/// Resolves `container|sub` or a plain name.
fn find(name: &[u8]) -> Option<(&'static CommandSpec, Option<&'static str>)> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name).map(|s| (s, None)),
        Some(bar) => {
            let parent = lookup(&name[..bar])?;
            parent
                .subcommand(&name[bar + 1..])
                .map(|s| (s, Some(parent.name)))
        }
    }
}

/// COMMAND: every command's info.
pub fn command_all(_session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::Array(COMMANDS.iter().map(|c| info_of(c, None)).collect())
}

/// COMMAND COUNT
pub fn command_count(_session: &mut Session, _args: &[Bytes]) -> Frame {
    Frame::Integer(COMMANDS.len() as i64)
}

/// COMMAND INFO [name ...]: nil for an unknown name, as Redis does.
pub fn command_info(session: &mut Session, args: &[Bytes]) -> Frame {
    if args.len() == 2 {
        return command_all(session, args);
    }
    Frame::Array(
        args[2..]
            .iter()
            .map(|n| find(n).map_or(Frame::NullArray, |(s, p)| info_of(s, p)))
            .collect(),
    )
}

/// COMMAND DOCS [name ...]: unknown names are left out.
pub fn command_docs(_session: &mut Session, args: &[Bytes]) -> Frame {
    if args.len() == 2 {
        return Frame::Map(COMMANDS.iter().map(|c| docs_of(c, None)).collect());
    }
    Frame::Map(
        args[2..]
            .iter()
            .filter_map(|n| find(n))
            .map(|(s, p)| docs_of(s, p))
            .collect(),
    )
}

/// COMMAND LIST [FILTERBY ACLCAT category | PATTERN pattern | MODULE name]
pub fn command_list(_session: &mut Session, args: &[Bytes]) -> Frame {
    let names = COMMANDS.iter().map(|c| c.name);
    let filtered: Vec<&str> = match args.len() {
        2 => names.collect(),
        5 if args[2].eq_ignore_ascii_case(b"filterby") => {
            let value = &args[4];
            if args[3].eq_ignore_ascii_case(b"aclcat") {
                let wanted = String::from_utf8_lossy(value).to_ascii_lowercase();
                let wanted = wanted.trim_start_matches('@').to_string();
                COMMANDS
                    .iter()
                    .filter(|c| c.acl.contains(&wanted.as_str()))
                    .map(|c| c.name)
                    .collect()
            } else if args[3].eq_ignore_ascii_case(b"pattern") {
                names
                    .filter(|n| glob::matches(value, n.as_bytes(), true))
                    .collect()
            } else if args[3].eq_ignore_ascii_case(b"module") {
                Vec::new()
            } else {
                return Frame::error(super::errors::SYNTAX);
            }
        }
        _ => return Frame::error(super::errors::SYNTAX),
    };
    Frame::Array(filtered.into_iter().map(Frame::bulk).collect())
}

/// COMMAND GETKEYS command [arg ...]
pub fn command_getkeys(_session: &mut Session, args: &[Bytes]) -> Frame {
    let inner = &args[2..];
    if lookup(&inner[0]).is_none() {
        return Frame::error("ERR Invalid command specified");
    }
    match resolve(inner) {
        Resolved::Error(_) => Frame::error("ERR Invalid number of arguments specified for command"),
        Resolved::Command(spec) => {
            let keys = spec.keys.extract(inner);
            if keys.is_empty() {
                Frame::error("ERR The command has no key arguments")
            } else {
                Frame::Array(keys.into_iter().map(|k| Frame::Bulk(k.clone())).collect())
            }
        }
    }
}

/// COMMAND HELP
pub fn command_help(_session: &mut Session, _args: &[Bytes]) -> Frame {
    keyspace_help(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
        ],
    )
}
