//! A linearizability checker for one register (the kill switch), in the style of Wing & Gong
//! with Lowe's memoisation: search for an order of the operations that respects real time
//! (an operation that returned before another was invoked comes first) and in which every
//! read returns the value of the last write before it.
//!
//! Operations whose outcome is unknown (a timeout, a dropped connection, `-UNKNOWN`) have no
//! return event: they may take effect at any point after their invocation, or never. Writes
//! known not to have happened (`-CLUSTERDOWN`, `-TRYAGAIN`) and reads that failed carry no
//! information and are left out of the history by the caller.
//!
//! The search walks a doubly linked list of call and return events in time order. At a call
//! it tries to linearize that operation now (if the register allows it and the pair
//! (linearized set, state) was not seen before); at a return of an operation not yet
//! linearized it backtracks. It succeeds once every return event has been passed. Unknown
//! writes that no read singles out are only ever placed right before an operation that
//! needs them (see [`check`]), which keeps runs with many timeouts decidable.

use std::collections::HashSet;
use std::fmt;

/// A value of the register; `None` is the absent key.
pub type Value = Option<u64>;

/// What a client did to the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `SET key v`.
    Set(u64),
    /// `DEL key`; `Some(existed)` when the reply (1 or 0) is known.
    Del(Option<bool>),
    /// `GET key`, and what it returned.
    Get(Value),
}

/// One operation of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that ran it (for reports).
    pub client: u32,
    /// What it did.
    pub action: Action,
    /// When it was invoked (nanoseconds of simulated time).
    pub invoked: u64,
    /// When its reply arrived; `None` when the outcome is unknown.
    pub returned: Option<u64>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        write!(f, "c{} ", self.client)?;
        match &self.action {
            Action::Set(v) => write!(f, "SET {v}")?,
            Action::Del(None) => write!(f, "DEL -> ?")?,
            Action::Del(Some(existed)) => write!(f, "DEL -> {}", u8::from(*existed))?,
            Action::Get(None) => write!(f, "GET -> nil")?,
            Action::Get(Some(v)) => write!(f, "GET -> {v}")?,
        }
        match self.returned {
            Some(r) => write!(f, " [{:.3} ms, {:.3} ms]", ms(self.invoked), ms(r)),
            None => write!(f, " [{:.3} ms, unknown]", ms(self.invoked)),
        }
    }
}

/// Why a history is not linearizable (or could not be decided).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// No order fits. `stuck_at` is the operation whose return the search could never get
    /// past (the deepest point reached): something it or an earlier operation observed
    /// contradicts every order.
    NotLinearizable {
        /// Index in the history of the operation the search could not linearize in time.
        stuck_at: usize,
    },
    /// The search gave up after this many steps.
    TooLong(u64),
}

/// The register's transition: the state after `action`, or `None` if `action` cannot
/// happen in `state`.
fn step(state: Value, action: &Action) -> Option<Value> {
    match action {
        Action::Set(v) => Some(Some(*v)),
        Action::Del(None) => Some(None),
        Action::Del(Some(existed)) => (state.is_some() == *existed).then_some(None),
        Action::Get(seen) => (state == *seen).then_some(state),
    }
}

#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// Linked list of events with O(1) removal and re-insertion ("lift"/"unlift").
struct EventList {
    events: Vec<Event>,
    /// `next[i]`/`prev[i]` for event i; index `events.len()` is the head sentinel.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each operation: its call event and its return event, if any.
    call_of: Vec<usize>,
    return_of: Vec<Option<usize>>,
}

impl EventList {
    fn new(history: &[Operation]) -> EventList {
        // (time, calls before returns at the same instant: the permissive choice), op.
        let mut keyed: Vec<(u64, u8, usize)> = Vec::new();
        for (op, o) in history.iter().enumerate() {
            keyed.push((o.invoked, 0, op));
            if let Some(r) = o.returned {
                keyed.push((r.max(o.invoked), 1, op));
            }
        }
        keyed.sort_unstable();
        let n = keyed.len();
        let mut call_of = vec![0; history.len()];
        let mut return_of = vec![None; history.len()];
        let events: Vec<Event> = keyed
            .iter()
            .enumerate()
            .map(|(i, &(_, kind, op))| {
                if kind == 0 {
                    call_of[op] = i;
                } else {
                    return_of[op] = Some(i);
                }
                Event {
                    op,
                    is_call: kind == 0,
                }
            })
            .collect();
        let head = n;
        let mut next = vec![usize::MAX; n + 1];
        let mut prev = vec![usize::MAX; n + 1];
        let mut last = head;
        for (i, p) in prev.iter_mut().enumerate().take(n) {
            next[last] = i;
            *p = last;
            last = i;
        }
        next[last] = usize::MAX;
        EventList {
            events,
            next,
            prev,
            call_of,
            return_of,
        }
    }

    fn head(&self) -> usize {
        self.events.len()
    }

    fn first(&self) -> Option<usize> {
        self.after(self.head())
    }

    fn after(&self, at: usize) -> Option<usize> {
        let n = self.next[at];
        (n != usize::MAX).then_some(n)
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != usize::MAX {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != usize::MAX {
            self.prev[n] = e;
        }
    }

    /// Removes an operation's events (it is linearized).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if let Some(r) = self.return_of[op] {
            self.unlink(r);
        }
    }

    /// Puts them back, in the reverse order of removal.
    fn unlift(&mut self, op: usize) {
        if let Some(r) = self.return_of[op] {
            self.relink(r);
        }
        self.relink(self.call_of[op]);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The value an unknown `SET` nobody read is checked as: such writes differ only in when they
/// took effect, so they are interchangeable.
const UNSEEN: u64 = u64::MAX - 1;

/// Unknown-outcome writes that no read can single out: unknown `SET`s whose value nobody
/// read (checked as writes of [`UNSEEN`]) and unknown `DEL`s. Each list is in invocation
/// order.
struct Optional {
    sets: Vec<usize>,
    dels: Vec<usize>,
    /// For every operation: whether it is in one of the lists.
    is_optional: Vec<bool>,
}

/// Classifies the history; returns the actions to check (with [`UNSEEN`] substituted).
fn optional_writes(history: &[Operation]) -> (Vec<Action>, Optional) {
    let seen: HashSet<u64> = history
        .iter()
        .filter_map(|o| match o.action {
            Action::Get(Some(v)) => Some(v),
            _ => None,
        })
        .collect();
    let mut actions = Vec::with_capacity(history.len());
    let mut optional = Optional {
        sets: Vec::new(),
        dels: Vec::new(),
        is_optional: vec![false; history.len()],
    };
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&i| history[i].invoked);
    for o in history {
        actions.push(match o.action {
            Action::Set(v) if o.returned.is_none() && !seen.contains(&v) => Action::Set(UNSEEN),
            ref other => other.clone(),
        });
    }
    for i in order {
        if history[i].returned.is_some() {
            continue;
        }
        match actions[i] {
            Action::Set(UNSEEN) => optional.sets.push(i),
            Action::Del(None) => optional.dels.push(i),
            _ => continue,
        }
        optional.is_optional[i] = true;
    }
    (actions, optional)
}

/// One linearized step: `ops` (an optional write then the operation that needed it, or just
/// the operation), the state before them, and which alternative it was.
struct Frame {
    ops: [Option<usize>; 2],
    before: Value,
    alternative: u8,
}

/// Checks `history` starting from `initial`. `max_steps` bounds the search.
///
/// Optional writes (see [`Optional`]) are never linearized on their own. One is inserted
/// only right before an operation that cannot take effect without it, and only the earliest
/// invoked of its kind that is still pending: any linearization can be rewritten into that
/// form (an optional write followed by another write, or by an operation that does not need
/// it, can be dropped; two of one kind are interchangeable, and one that never returns may
/// take effect later). Without this a run with k of them would have 2^k subsets to search.
pub fn check(history: &[Operation], initial: Value, max_steps: u64) -> Result<(), Violation> {
    let (actions, optional) = optional_writes(history);
    let mut list = EventList::new(history);
    let mut returns_left = list.return_of.iter().filter(|r| r.is_some()).count();
    let mut linearized = Bits::new(history.len());
    let mut seen: HashSet<(Bits, Value)> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = initial;
    let mut entry = list.first();
    let mut first_alternative = 0u8;
    let mut steps = 0u64;
    // How many optional writes of each kind are linearized (always the earliest ones).
    let (mut sets_used, mut dels_used) = (0usize, 0usize);
    // The furthest return event reached, by position in time order.
    let mut deepest: Option<usize> = None;
    while returns_left > 0 {
        steps += 1;
        if steps > max_steps {
            return Err(Violation::TooLong(steps));
        }
        let Some(e) = entry else {
            // Unreachable while a return is left (it would have been met), but never loop.
            return Err(Violation::NotLinearizable {
                stuck_at: deepest.map_or(0, |d| list.events[d].op),
            });
        };
        let event = list.events[e];
        if event.is_call {
            let op = event.op;
            if optional.is_optional[op] {
                entry = list.after(e);
                first_alternative = 0;
                continue;
            }
            // The first remaining return event bounds which optional writes were invoked.
            let horizon = first_return(&list, history);
            let mut chosen = None;
            for alternative in first_alternative..3 {
                let helper = match alternative {
                    0 => None,
                    1 => match optional.sets.get(sets_used) {
                        Some(&u) if history[u].invoked <= horizon => Some(u),
                        _ => continue,
                    },
                    _ => match optional.dels.get(dels_used) {
                        Some(&u) if history[u].invoked <= horizon => Some(u),
                        _ => continue,
                    },
                };
                let mid = match helper {
                    None => Some(state),
                    Some(u) => step(state, &actions[u]),
                };
                let Some(after) = mid.and_then(|m| step(m, &actions[op])) else {
                    continue;
                };
                let mut with = linearized.clone();
                with.set(op);
                if let Some(u) = helper {
                    with.set(u);
                }
                if seen.insert((with, after)) {
                    chosen = Some((alternative, helper, after));
                    break;
                }
            }
            first_alternative = 0;
            if let Some((alternative, helper, after)) = chosen {
                stack.push(Frame {
                    ops: [helper, Some(op)],
                    before: state,
                    alternative,
                });
                state = after;
                for o in [helper, Some(op)].into_iter().flatten() {
                    linearized.set(o);
                    list.lift(o);
                    if list.return_of[o].is_some() {
                        returns_left -= 1;
                    }
                }
                match alternative {
                    1 => sets_used += 1,
                    2 => dels_used += 1,
                    _ => {}
                }
                entry = list.first();
            } else {
                entry = list.after(e);
            }
        } else {
            if deepest.is_none_or(|d| e > d) {
                deepest = Some(e);
            }
            let Some(frame) = stack.pop() else {
                return Err(Violation::NotLinearizable {
                    stuck_at: list.events[deepest.unwrap_or(e)].op,
                });
            };
            state = frame.before;
            for o in frame.ops.into_iter().flatten().rev() {
                linearized.clear(o);
                list.unlift(o);
                if list.return_of[o].is_some() {
                    returns_left += 1;
                }
            }
            match frame.alternative {
                1 => sets_used -= 1,
                2 => dels_used -= 1,
                _ => {}
            }
            // Try the same operation's next alternative.
            let op = frame.ops[1].unwrap_or(0);
            entry = Some(list.call_of[op]);
            first_alternative = frame.alternative + 1;
        }
    }
    Ok(())
}

/// The time of the first return event still in the list (no return left: the end of time).
fn first_return(list: &EventList, history: &[Operation]) -> u64 {
    let mut at = list.first();
    while let Some(e) = at {
        let event = list.events[e];
        if !event.is_call {
            return history[event.op].returned.unwrap_or(u64::MAX);
        }
        at = list.after(e);
    }
    u64::MAX
}

/// A readable account of a violation: the operations around the one the search got stuck at.
pub fn explain(history: &[Operation], violation: &Violation) -> String {
    match violation {
        Violation::TooLong(steps) => {
            let mut out = format!(
                "linearizability search gave up after {steps} steps ({} operations)\n",
                history.len()
            );
            for (i, o) in history.iter().enumerate().take(200) {
                out.push_str(&format!("  #{i} {o}\n"));
            }
            out
        }
        Violation::NotLinearizable { stuck_at } => {
            let stuck = &history[*stuck_at];
            let end = stuck.returned.unwrap_or(stuck.invoked);
            let mut out = format!(
                "not linearizable: no order fits operation #{stuck_at}: {stuck}\n\
                 the {CONTEXT} operations invoked last before it returned:\n"
            );
            let mut ops: Vec<(usize, &Operation)> = history
                .iter()
                .enumerate()
                .filter(|(_, o)| o.invoked <= end)
                .collect();
            ops.sort_by_key(|(_, o)| o.invoked);
            let skip = ops.len().saturating_sub(CONTEXT);
            for (i, o) in ops.into_iter().skip(skip) {
                let mark = if i == *stuck_at { " <==" } else { "" };
                out.push_str(&format!("  #{i} {o}{mark}\n"));
            }
            out
        }
    }
}

/// Operations shown around a violation.
const CONTEXT: usize = 30;

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: u64 = 1_000_000;

    fn op(client: u32, action: Action, invoked: u64, returned: Option<u64>) -> Operation {
        Operation {
            client,
            action,
            invoked,
            returned,
        }
    }

    /// Sequential writes and reads that each see the last write pass.
    #[test]
    fn sequential_history_passes() {
        let h = vec![
            op(1, Action::Get(None), 0, Some(1)),
            op(1, Action::Set(1), 2, Some(3)),
            op(2, Action::Get(Some(1)), 4, Some(5)),
            op(2, Action::Del(Some(true)), 6, Some(7)),
            op(1, Action::Get(None), 8, Some(9)),
            op(1, Action::Del(Some(false)), 10, Some(11)),
        ];
        assert_eq!(check(&h, None, STEPS), Ok(()));
    }

    /// Concurrent operations may be ordered either way: a read overlapping a write may see
    /// the old or the new value, and two overlapping reads may see different ones as long as
    /// some order explains both.
    #[test]
    fn overlapping_operations_pass() {
        let h = vec![
            op(1, Action::Set(1), 0, Some(1)),
            op(2, Action::Set(2), 2, Some(10)),
            op(3, Action::Get(Some(1)), 3, Some(4)),
            op(4, Action::Get(Some(2)), 5, Some(6)),
            op(3, Action::Get(Some(2)), 7, Some(8)),
        ];
        assert_eq!(check(&h, None, STEPS), Ok(()));
    }

    /// A read that returns an older value after a newer write was acknowledged fails.
    #[test]
    fn stale_read_fails() {
        let h = vec![
            op(1, Action::Set(1), 0, Some(1)),
            op(1, Action::Set(2), 2, Some(3)),
            op(2, Action::Get(Some(1)), 4, Some(5)),
        ];
        assert_eq!(
            check(&h, None, STEPS),
            Err(Violation::NotLinearizable { stuck_at: 2 })
        );
        assert!(explain(&h, &Violation::NotLinearizable { stuck_at: 2 }).contains("GET -> 1"));
    }

    /// Two reads that see the register go back and forth fail even when each alone could be
    /// explained: once a read saw 2, a later read cannot see 1 again.
    #[test]
    fn value_going_back_fails() {
        let h = vec![
            op(1, Action::Set(1), 0, Some(1)),
            op(2, Action::Set(2), 2, Some(20)),
            op(3, Action::Get(Some(2)), 3, Some(4)),
            op(4, Action::Get(Some(1)), 5, Some(6)),
        ];
        assert!(check(&h, None, STEPS).is_err());
    }

    /// A write whose outcome is unknown may have happened at any time after its invocation,
    /// even long after its client gave up, or never.
    #[test]
    fn unknown_writes_may_or_may_not_apply() {
        let applied_late = vec![
            op(1, Action::Set(1), 0, None),
            op(2, Action::Get(None), 5, Some(6)),
            op(2, Action::Get(Some(1)), 100, Some(101)),
        ];
        assert_eq!(check(&applied_late, None, STEPS), Ok(()));
        let never = vec![
            op(1, Action::Set(1), 0, None),
            op(2, Action::Get(None), 100, Some(101)),
        ];
        assert_eq!(check(&never, None, STEPS), Ok(()));
        // But once seen, it cannot be unseen without another write.
        let flicker = vec![
            op(1, Action::Set(1), 0, None),
            op(2, Action::Get(Some(1)), 5, Some(6)),
            op(2, Action::Get(None), 7, Some(8)),
        ];
        assert!(check(&flicker, None, STEPS).is_err());
        // An unknown write nobody read can still explain what a DEL found, or a missing key.
        let del_finds_it = vec![
            op(1, Action::Set(1), 0, None),
            op(2, Action::Del(Some(true)), 5, Some(6)),
        ];
        assert_eq!(check(&del_finds_it, None, STEPS), Ok(()));
        let deleted = vec![
            op(1, Action::Set(1), 0, Some(1)),
            op(2, Action::Del(None), 2, None),
            op(3, Action::Get(None), 5, Some(6)),
            op(3, Action::Del(Some(false)), 7, Some(8)),
        ];
        assert_eq!(check(&deleted, None, STEPS), Ok(()));
        // But not before it was invoked.
        let too_early = vec![
            op(2, Action::Del(Some(true)), 0, Some(1)),
            op(1, Action::Set(1), 5, None),
        ];
        assert!(check(&too_early, None, STEPS).is_err());
    }

    /// A value nobody wrote (or a write acknowledged and then lost) fails.
    #[test]
    fn lost_acknowledged_write_fails() {
        let h = vec![
            op(1, Action::Set(7), 0, Some(1)),
            op(2, Action::Get(None), 2, Some(3)),
        ];
        assert!(check(&h, None, STEPS).is_err());
        let phantom = vec![op(2, Action::Get(Some(9)), 2, Some(3))];
        assert!(check(&phantom, None, STEPS).is_err());
    }

    /// `DEL`'s reply says whether the key existed, and that is checked too.
    #[test]
    fn del_reply_is_checked() {
        let h = vec![
            op(1, Action::Set(1), 0, Some(1)),
            op(2, Action::Del(Some(false)), 2, Some(3)),
        ];
        assert!(check(&h, None, STEPS).is_err());
        let ok = vec![
            op(1, Action::Set(1), 0, Some(10)),
            op(2, Action::Del(Some(false)), 2, Some(3)),
            op(2, Action::Get(Some(1)), 11, Some(12)),
        ];
        assert_eq!(check(&ok, None, STEPS), Ok(()));
    }

    /// Many unknown writes nobody read, overlapping many reads, are decided quickly, whether
    /// the history is linearizable or not.
    #[test]
    fn many_unread_unknown_writes_are_decided() {
        let mut h = vec![op(1, Action::Set(1), 0, Some(1))];
        for i in 0..60u64 {
            h.push(op(2, Action::Set(100 + i), 10 + i, None));
            h.push(op(3, Action::Del(None), 10 + i, None));
            h.push(op(4, Action::Get(Some(1)), 10 + 2 * i, Some(11 + 2 * i)));
        }
        assert_eq!(check(&h, None, STEPS), Ok(()));
        h.push(op(5, Action::Set(2), 200, Some(201)));
        h.push(op(4, Action::Get(Some(1)), 202, Some(203)));
        assert!(matches!(
            check(&h, None, STEPS),
            Err(Violation::NotLinearizable { .. })
        ));
    }

    /// Many concurrent unknown writes still finish quickly thanks to the memo.
    #[test]
    fn wide_history_is_decided() {
        let mut h = Vec::new();
        for i in 0..40u64 {
            h.push(op(1, Action::Set(i), i * 10, None));
            h.push(op(2, Action::Get(Some(i)), i * 10 + 5, Some(i * 10 + 6)));
        }
        assert_eq!(check(&h, None, STEPS), Ok(()));
        h.push(op(3, Action::Get(Some(3)), 1000, Some(1001)));
        assert!(check(&h, None, STEPS).is_err());
    }
}
