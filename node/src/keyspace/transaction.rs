//! Applying a `MULTI`/`EXEC` entry: check the watched keys, then run every queued command
//! against the same state in one go, so the transaction is atomic on every replica.

use bytes::Bytes;

use super::{acl_refusal, run_in_apply, Args, Keyspace, Watch, WriteCtx, DATABASES};
use crate::acl::Denied;
use crate::command::{errors as err, parse_i64, Resolved};
use crate::resp::Frame;

/// Runs a transaction entry; a null reply when a watched key changed.
pub(super) fn exec(
    keyspace: &mut Keyspace,
    index: u64,
    now_ms: u64,
    db: u32,
    watches: &[Watch],
    commands: &[Args],
) -> Frame {
    let changed = watches.iter().any(|w| {
        keyspace
            .db(w.db)
            .is_none_or(|d| d.changed_since(&w.key, w.since_index, w.watched_at_ms, now_ms))
    });
    if changed {
        return Frame::NullArray;
    }
    let mut ctx = WriteCtx {
        keyspace,
        db: db.min(DATABASES - 1),
        now_ms,
        index,
        in_transaction: true,
    };
    let replies = commands
        .iter()
        .map(|args| {
            if let Some(denied) = refused_since_queued(&ctx, args) {
                return Frame::error(rules_changed(&denied));
            }
            match args.first() {
                Some(name) if name.eq_ignore_ascii_case(b"select") => select(&mut ctx, args),
                _ => run_in_apply(&mut ctx, args),
            }
        })
        .collect();
    Frame::Array(replies)
}

/// Commands were checked when queued; as in Redis, the user's rules are checked again at
/// `EXEC`, here as the entry applies, so a rule changed in between is enforced.
fn refused_since_queued(ctx: &WriteCtx<'_>, args: &[Bytes]) -> Option<Denied> {
    match crate::command::resolve(args) {
        Resolved::Command(spec) => acl_refusal(ctx.keyspace.acting_user(), spec, args),
        Resolved::Error(_) => None,
    }
}

/// Redis's reply for a queued command its user may no longer run.
pub(crate) fn rules_changed(denied: &Denied) -> String {
    let reason = match denied {
        Denied::Command(_) => "no permission to execute the command or subcommand",
        Denied::Key(_) => "no permission to touch the specified keys",
        Denied::Channel(_) => "no permission to access one of the channels used as arguments",
    };
    format!(
        "NOPERM ACLs rules changed between the moment the transaction was accumulated and \
         the EXEC call. This command is no longer allowed for the following reason: {reason}"
    )
}

/// `SELECT` queued in a transaction moves the rest of it to another database.
fn select(ctx: &mut WriteCtx<'_>, args: &[Bytes]) -> Frame {
    let [_, index] = args else {
        return Frame::error(err::wrong_arity("select"));
    };
    match parse_i64(index) {
        None => Frame::error(err::NOT_INTEGER),
        Some(db) if !(0..DATABASES as i64).contains(&db) => {
            Frame::error(err::DB_INDEX_OUT_OF_RANGE)
        }
        Some(db) => {
            ctx.db = db as u32;
            Frame::ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Op, Request};

    fn args(line: &str) -> Args {
        line.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn exec_entry(ks: &mut Keyspace, index: u64, watches: Vec<Watch>, lines: &[&str]) -> Frame {
        ks.apply(
            index,
            &Request {
                time_ms: 1000,
                op: Op::Exec {
                    db: 0,
                    watches,
                    commands: lines.iter().map(|l| args(l)).collect(),
                },
            },
        )
    }

    fn watch(key: &str, since_index: u64) -> Watch {
        Watch {
            db: 0,
            key: Bytes::copy_from_slice(key.as_bytes()),
            since_index,
            watched_at_ms: 1000,
        }
    }

    #[test]
    fn runs_every_command_and_fails_only_the_bad_one() {
        let mut ks = Keyspace::new();
        let reply = exec_entry(
            &mut ks,
            1,
            vec![],
            &["set a x", "incr a", "set b 1", "get b"],
        );
        let Frame::Array(items) = reply else {
            panic!("expected an array, got {reply:?}");
        };
        assert_eq!(items[0], Frame::ok());
        assert!(
            matches!(&items[1], Frame::Error(e) if e.starts_with("ERR value is not an integer"))
        );
        assert_eq!(items[3], Frame::bulk("1"));
    }

    #[test]
    fn a_watched_key_changed_after_the_watch_aborts() {
        let mut ks = Keyspace::new();
        exec_entry(&mut ks, 1, vec![], &["set k 1"]);
        // Watched at index 1: a write at index 2 aborts, an unrelated one does not.
        exec_entry(&mut ks, 2, vec![], &["set other 1"]);
        assert!(matches!(
            exec_entry(&mut ks, 3, vec![watch("k", 1)], &["set k 2"]),
            Frame::Array(_)
        ));
        assert_eq!(
            exec_entry(&mut ks, 4, vec![watch("k", 1)], &["set k 3"]),
            Frame::NullArray
        );
        assert_eq!(
            exec_entry(&mut ks, 5, vec![watch("k", 3)], &["del k"]),
            Frame::Array(vec![Frame::Integer(1)])
        );
        assert_eq!(
            exec_entry(&mut ks, 6, vec![watch("k", 4)], &["set k 4"]),
            Frame::NullArray
        );
    }

    /// A write that changes nothing (ZADD of the same score, ZREM of a missing member) is not
    /// a change for WATCH; one that changes the set is.
    #[test]
    fn only_real_changes_to_a_sorted_set_abort_a_watch() {
        let mut ks = Keyspace::new();
        exec_entry(&mut ks, 1, vec![], &["zadd z 1 a 2 b"]);
        exec_entry(&mut ks, 2, vec![], &["zadd z 1 a", "zrem z nosuch"]);
        assert!(matches!(
            exec_entry(&mut ks, 3, vec![watch("z", 1)], &["zcard z"]),
            Frame::Array(_)
        ));
        exec_entry(&mut ks, 4, vec![], &["zadd z 3 a"]);
        assert_eq!(
            exec_entry(&mut ks, 5, vec![watch("z", 3)], &["zcard z"]),
            Frame::NullArray
        );
        exec_entry(&mut ks, 6, vec![], &["zrem z a b"]);
        assert!(
            ks.db(0).and_then(|d| d.get(b"z", 0)).is_none(),
            "emptied set deleted"
        );
        assert_eq!(
            exec_entry(&mut ks, 7, vec![watch("z", 5)], &["zcard z"]),
            Frame::NullArray
        );
    }

    #[test]
    fn select_moves_the_rest_of_the_transaction() {
        let mut ks = Keyspace::new();
        exec_entry(&mut ks, 1, vec![], &["select 3", "set k v"]);
        assert!(ks.db(3).and_then(|d| d.get(b"k", 0)).is_some());
        assert!(ks.db(0).and_then(|d| d.get(b"k", 0)).is_none());
    }
}
