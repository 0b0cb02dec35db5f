//! Meaning-preserving simplification of predicates.
//!
//! [`normalize`] flattens nested `and`/`or`, folds constants, and rewrites
//! constructs whose outcome is decided by their window, class or pattern
//! alone (an `all` over the full class, a `contains` whose pattern cannot fit
//! in its window, ...). It keeps the meaning exactly:
//! `eval(&normalize(p), P) == eval(p, P)` for every payload of at most
//! [`MAX_OFFSET`] bytes (the domain of [`crate::eval()`]; a few folds, such as
//! `len <= 65535` to `true`, rely on that bound). The tests check this with
//! random predicates and payloads.
//!
//! The result is also idempotent (`normalize(normalize(p)) == normalize(p)`)
//! and never contains `true`/`false` below the root, an `and`/`or` with
//! fewer than two arguments, an `and` directly inside an `and` (nor `or` in
//! `or`), `not` of `not`, `not` of `len`, or a window that is always empty.
//! Scan constructs it keeps are returned unchanged, so lowering errors can
//! find them again in the original tree.

use crate::spec::{ByteClass, Cmp, Pred, MAX_OFFSET};
use std::collections::HashSet;

/// A simpler predicate with the same meaning (see the module docs).
pub fn normalize(pred: &Pred) -> Pred {
    match pred {
        Pred::True => Pred::True,
        Pred::False => Pred::False,
        Pred::Not(p) => match normalize(p) {
            Pred::True => Pred::False,
            Pred::False => Pred::True,
            Pred::Not(inner) => *inner,
            Pred::Len { cmp, value } => fold_len(cmp.negate(), value),
            other => Pred::Not(Box::new(other)),
        },
        Pred::And(ps) => junction(ps, true),
        Pred::Or(ps) => junction(ps, false),
        Pred::Len { cmp, value } => fold_len(*cmp, *value),
        Pred::Byte { index, class } => {
            if class.is_empty() {
                Pred::False
            } else if class.is_full() {
                // `index < n`.
                fold_len(Cmp::Gt, *index)
            } else {
                pred.clone()
            }
        }
        Pred::All { window, class } => {
            if window.max_len() == 0 || class.is_full() {
                Pred::True
            } else if class.is_empty() {
                // Holds exactly when the window selects nothing, i.e. `n <= start`
                // (its end is above its start, or `max_len` would be 0).
                fold_len(Cmp::Le, window.start)
            } else {
                pred.clone()
            }
        }
        Pred::Any { window, class } => {
            if window.max_len() == 0 || class.is_empty() {
                Pred::False
            } else if class.is_full() {
                // Holds exactly when the window selects a byte: `n > start`.
                fold_len(Cmp::Gt, window.start)
            } else {
                pred.clone()
            }
        }
        Pred::Prefix { pattern } => {
            if pattern.iter().any(ByteClass::is_empty) {
                Pred::False
            } else if pattern.iter().all(ByteClass::is_full) {
                fold_len(Cmp::Ge, pattern.len() as u32)
            } else {
                pred.clone()
            }
        }
        Pred::Contains { window, pattern } => {
            let m = pattern.len() as u32;
            if window.max_len() < m || pattern.iter().any(ByteClass::is_empty) {
                Pred::False
            } else if pattern.iter().all(ByteClass::is_full) {
                // Holds exactly when the window selects at least `m` bytes.
                // `max_len >= m` makes the window's own end no obstacle and
                // keeps `start + m <= MAX_OFFSET`.
                fold_len(Cmp::Ge, window.start + m)
            } else {
                pred.clone()
            }
        }
        Pred::DepthLe {
            window, max, open, ..
        } => {
            // Each byte raises the depth by at most one, so a window that can
            // hold at most `max` bytes (or no opening byte at all) never fails.
            if open.is_empty() || *max >= window.max_len() {
                Pred::True
            } else {
                pred.clone()
            }
        }
    }
}

/// `n cmp value`, folded to a constant when it is one for every `n` in
/// `0..=MAX_OFFSET`.
fn fold_len(cmp: Cmp, value: u32) -> Pred {
    match (cmp, value) {
        (Cmp::Lt, 0) => Pred::False,
        (Cmp::Ge, 0) => Pred::True,
        (Cmp::Le, v) if v >= MAX_OFFSET => Pred::True,
        (Cmp::Gt, v) if v >= MAX_OFFSET => Pred::False,
        (Cmp::Lt, v) if v > MAX_OFFSET => Pred::True,
        (Cmp::Ge, v) if v > MAX_OFFSET => Pred::False,
        (Cmp::Eq, v) if v > MAX_OFFSET => Pred::False,
        (Cmp::Ne, v) if v > MAX_OFFSET => Pred::True,
        _ => Pred::Len { cmp, value },
    }
}

/// Normalizes `and` (`is_and`) or `or` over `args`: flattens, drops the
/// neutral constant and duplicates, short-circuits on the absorbing one.
fn junction(args: &[Pred], is_and: bool) -> Pred {
    let (neutral, absorbing) = if is_and {
        (Pred::True, Pred::False)
    } else {
        (Pred::False, Pred::True)
    };
    // Arguments in first-appearance order, without duplicates; the set keeps
    // a hostile `and` of 100,000 arguments from costing quadratic time.
    let mut out: Vec<Pred> = Vec::with_capacity(args.len());
    let mut seen: HashSet<Pred> = HashSet::with_capacity(args.len());
    let mut push = |p: Pred, out: &mut Vec<Pred>| {
        if seen.insert(p.clone()) {
            out.push(p);
        }
    };
    for arg in args {
        let p = normalize(arg);
        if p == absorbing {
            return absorbing;
        }
        if p == neutral {
            continue;
        }
        match p {
            Pred::And(inner) if is_and => inner.into_iter().for_each(|q| push(q, &mut out)),
            Pred::Or(inner) if !is_and => inner.into_iter().for_each(|q| push(q, &mut out)),
            other => push(other, &mut out),
        }
    }
    match out.len() {
        0 => neutral,
        1 => out.pop().expect("one element"),
        _ if is_and => Pred::And(out),
        _ => Pred::Or(out),
    }
}
