//! The reference meaning of a predicate, written straight from the table in
//! docs/spec-format.md ("Predicates"), one arm per construct.
//!
//! This is deliberately the simplest code that is obviously right: no
//! automata, no sharing with [`crate::program`] or [`crate::lower`](mod@crate::lower). It is the
//! oracle the lowering, the emitted eBPF and the Rust reference diodes are
//! tested against. It is quadratic for `contains`; that is fine for an oracle.
//!
//! Domain: payloads of at most [`crate::spec::MAX_OFFSET`] bytes (no TCP
//! payload is longer). [`crate::normalize()`] relies on that bound.

use crate::spec::{ByteClass, Pred, Window};

/// Whether `payload` satisfies `pred`.
pub fn eval(pred: &Pred, payload: &[u8]) -> bool {
    let n = payload.len();
    match pred {
        Pred::True => true,
        Pred::False => false,
        Pred::Not(p) => !eval(p, payload),
        Pred::And(ps) => ps.iter().all(|p| eval(p, payload)),
        Pred::Or(ps) => ps.iter().any(|p| eval(p, payload)),
        Pred::Len { cmp, value } => cmp.holds(n as u64, u64::from(*value)),
        Pred::Byte { index, class } => payload
            .get(*index as usize)
            .is_some_and(|&b| class.contains(b)),
        Pred::All { window, class } => selected(window, payload).iter().all(|&b| class.contains(b)),
        Pred::Any { window, class } => selected(window, payload).iter().any(|&b| class.contains(b)),
        Pred::Prefix { pattern } => {
            n >= pattern.len()
                && pattern
                    .iter()
                    .zip(payload)
                    .all(|(class, &b)| class.contains(b))
        }
        Pred::Contains { window, pattern } => {
            let w = selected(window, payload);
            w.len() >= pattern.len()
                && (0..=w.len() - pattern.len()).any(|s| matches_at(pattern, &w[s..]))
        }
        Pred::DepthLe {
            window,
            max,
            open,
            close,
            strings,
        } => depth_never_exceeds(selected(window, payload), *max, open, close, *strings),
    }
}

/// `P[a .. min(b, n))`, empty when `a >= n` (or `a >= b`).
fn selected<'p>(window: &Window, payload: &'p [u8]) -> &'p [u8] {
    let n = payload.len();
    let start = window.start as usize;
    let end = window.end.map_or(n, |e| (e as usize).min(n));
    if start < end {
        &payload[start..end]
    } else {
        &[]
    }
}

/// `pattern[j]` holds `bytes[j]` for every `j` of the pattern.
fn matches_at(pattern: &[ByteClass], bytes: &[u8]) -> bool {
    bytes.len() >= pattern.len() && pattern.iter().zip(bytes).all(|(c, &b)| c.contains(b))
}

/// The depth rule of `depth_le`, byte by byte. Per byte, in this order:
/// with `strings`, string-literal handling (inside a literal a backslash
/// skips the next byte and `"` ends it; outside, `"` starts one) consumes
/// the byte; otherwise an `open` byte deepens (failing once the depth
/// exceeds `max`), else a `close` byte surfaces (never below 0).
fn depth_never_exceeds(
    bytes: &[u8],
    max: u32,
    open: &ByteClass,
    close: &ByteClass,
    strings: bool,
) -> bool {
    let mut depth: u64 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if strings {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            if b == b'"' {
                in_string = true;
                continue;
            }
        }
        if open.contains(b) {
            depth += 1;
            if depth > u64::from(max) {
                return false;
            }
        } else if close.contains(b) {
            depth = depth.saturating_sub(1);
        }
    }
    true
}
