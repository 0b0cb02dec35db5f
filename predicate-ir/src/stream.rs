//! The stream meaning of a predicate, and the check that it is prefix-closed.
//!
//! In stream mode (spec format v2, docs/stream.md) a predicate judges the
//! byte stream of a TCP connection *as it arrives*: the diode must decide
//! on each byte before it knows the rest. The receiver reads some prefix of
//! what the diode let through, so the judgment only protects the reader if
//! it is **prefix-closed**: whenever a stream is accepted, so is every
//! prefix of it. [`stream_eval`] is the stream meaning, and
//! [`check_stream_safe`] a syntactic check that guarantees it is
//! prefix-closed.
//!
//! ## The stream meaning
//!
//! [`stream_eval`]`(p, s)` is [`eval`]`(p, s)` except for `byte` and `prefix`
//! in *positive* positions (under an even number of `not`s), which are read
//! "as far as the stream goes": `byte i C` also holds while `n <= i`, and
//! `prefix` holds while the first `min(n, m)` bytes match. In negative
//! positions they keep their exact meaning. This is the one documented
//! exception to "the stream meaning is `eval`": a stream that has not yet
//! reached byte `i` cannot have violated `byte i C`. Properties (tested in
//! `tests/stream.rs`, stated for Lean in `lean/Lagic/Stream.lean`):
//!
//! - `eval(p, s)` implies `stream_eval(p, s)`;
//! - the two agree once `s` is at least [`horizon`]`(p)` bytes long;
//! - for a predicate [`check_stream_safe`] accepts, `stream_eval(p, s ++ t)`
//!   implies `stream_eval(p, s)` (prefix-closure).
//!
//! ## The check
//!
//! Two syntactic classes, defined by mutual recursion:
//!
//! - *closed* (the stream meaning can only turn false as bytes arrive):
//!   `true`, `false`, `len <` / `<=`, `len == 0`, `len >= 0`, `byte`,
//!   `prefix`, `all`, `depth_le`, `any` with an empty class, `not` of an
//!   *upward* predicate, `and` / `or` of closed predicates;
//! - *upward* (the exact meaning can only turn true as bytes arrive):
//!   `true`, `false`, `len >` / `>=`, `len != 0`, `byte` and `prefix` (exact
//!   meaning, as in negative positions), `any`, `contains`, `all` with the
//!   full class, `not` of a closed predicate, `and` / `or` of upward ones.
//!
//! A stream spec's predicates must be closed. The check is **sufficient,
//! not necessary**: it rejects some prefix-closed predicates (`or` of
//! `contains` and its negation is `true`, but `contains` is not closed).
//! A rejection names the JSON path of the innermost offending construct and
//! says why it can judge a prefix differently from the whole stream.

use crate::eval::eval;
use crate::spec::{Cmp, Pred};

/// Whether the stream so far, `stream`, satisfies `pred` in stream mode
/// (the module docs define the meaning).
pub fn stream_eval(pred: &Pred, stream: &[u8]) -> bool {
    sat(pred, stream, true)
}

/// `pred` over `s`, read leniently (positive) or exactly (negative).
fn sat(pred: &Pred, s: &[u8], positive: bool) -> bool {
    match pred {
        Pred::Not(p) => !sat(p, s, !positive),
        Pred::And(ps) => ps.iter().all(|p| sat(p, s, positive)),
        Pred::Or(ps) => ps.iter().any(|p| sat(p, s, positive)),
        Pred::Byte { index, class } if positive => {
            s.get(*index as usize).is_none_or(|&b| class.contains(b))
        }
        Pred::Prefix { pattern } if positive => {
            pattern.iter().zip(s).all(|(class, &b)| class.contains(b))
        }
        other => eval(other, s),
    }
}

/// The stream length from which [`stream_eval`] equals [`eval`]: one past
/// the last byte any `byte` or `prefix` of `pred` looks at (0 if none).
pub fn horizon(pred: &Pred) -> usize {
    match pred {
        Pred::Not(p) => horizon(p),
        Pred::And(ps) | Pred::Or(ps) => ps.iter().map(horizon).max().unwrap_or(0),
        Pred::Byte { index, .. } => *index as usize + 1,
        Pred::Prefix { pattern } => pattern.len(),
        _ => 0,
    }
}

/// A predicate whose stream meaning is not known to be prefix-closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: not allowed in a stream spec: {reason}")]
pub struct NotStreamSafe {
    /// JSON path of the innermost offending construct.
    pub path: String,
    /// Why it can judge a prefix differently from the whole stream.
    pub reason: String,
}

/// Checks that `pred` (found at JSON path `path`) is *closed* (module docs),
/// so its stream meaning is prefix-closed.
pub fn check_stream_safe(pred: &Pred, path: &str) -> Result<(), NotStreamSafe> {
    closed(pred, path)
}

fn fail(path: &str, reason: impl Into<String>) -> Result<(), NotStreamSafe> {
    Err(NotStreamSafe {
        path: path.to_string(),
        reason: reason.into(),
    })
}

fn each(
    ps: &[Pred],
    path: &str,
    check: fn(&Pred, &str) -> Result<(), NotStreamSafe>,
) -> Result<(), NotStreamSafe> {
    for (i, p) in ps.iter().enumerate() {
        check(p, &format!("{path}.args[{i}]"))?;
    }
    Ok(())
}

/// Closed: once false on a stream, false on every longer stream.
fn closed(pred: &Pred, path: &str) -> Result<(), NotStreamSafe> {
    match pred {
        Pred::True | Pred::False => Ok(()),
        Pred::Byte { .. } | Pred::Prefix { .. } | Pred::All { .. } | Pred::DepthLe { .. } => Ok(()),
        Pred::Len { cmp, value } => match (cmp, value) {
            (Cmp::Lt | Cmp::Le, _) | (Cmp::Eq, 0) | (Cmp::Ge, 0) => Ok(()),
            _ => fail(
                path,
                format!(
                    "len {} {value} can fail on a prefix of a stream it accepts (the receiver \
                     reads the prefix first); in a stream only len < and len <= are allowed",
                    cmp.symbol()
                ),
            ),
        },
        Pred::Any { class, .. } if class.is_empty() => Ok(()),
        Pred::Any { .. } => fail(
            path,
            "any can only become true as the stream grows, after the bytes before the match \
             have reached the receiver; say what every byte must be (all, or not any)",
        ),
        Pred::Contains { .. } => fail(
            path,
            "contains can only become true as the stream grows, after the bytes before the \
             match have reached the receiver; only not contains is allowed in a stream",
        ),
        Pred::Not(p) => upward(p, &format!("{path}.arg")),
        Pred::And(ps) | Pred::Or(ps) => each(ps, path, closed),
    }
}

/// Upward: once true on a stream (exact meaning), true on every longer one.
fn upward(pred: &Pred, path: &str) -> Result<(), NotStreamSafe> {
    const UNDER_NOT: &str = "under a not (an odd number of them), so the whole can fail on a \
                             prefix of a stream it accepts";
    match pred {
        Pred::True | Pred::False => Ok(()),
        Pred::Byte { .. } | Pred::Prefix { .. } | Pred::Any { .. } | Pred::Contains { .. } => {
            Ok(())
        }
        Pred::Len { cmp, value } => match (cmp, value) {
            (Cmp::Gt | Cmp::Ge, _) | (Cmp::Ne, 0) | (Cmp::Lt, 0) => Ok(()),
            _ => fail(
                path,
                format!(
                    "len {} {value} is {UNDER_NOT}; under a not only len > and len >= are \
                     allowed",
                    cmp.symbol()
                ),
            ),
        },
        Pred::All { class, .. } if class.is_full() => Ok(()),
        Pred::All { .. } => fail(
            path,
            format!("all can turn false as bytes arrive and is {UNDER_NOT}"),
        ),
        Pred::DepthLe { .. } => fail(
            path,
            format!("depth_le can turn false as bytes arrive and is {UNDER_NOT}"),
        ),
        Pred::Not(p) => closed(p, &format!("{path}.arg")),
        Pred::And(ps) | Pred::Or(ps) => each(ps, path, upward),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ByteClass, Window};

    fn contains(word: &[u8]) -> Pred {
        Pred::Contains {
            window: Window::ALL,
            pattern: word.iter().map(|&b| ByteClass::from_bytes([b])).collect(),
        }
    }

    #[test]
    fn the_seed_shapes_are_stream_safe() {
        let not_hate = Pred::Not(Box::new(contains(b"hate")));
        assert_eq!(check_stream_safe(&not_hate, "$.predicate"), Ok(()));
        let start = Pred::And(vec![
            Pred::Len {
                cmp: Cmp::Lt,
                value: 1400,
            },
            Pred::Prefix {
                pattern: vec![ByteClass::from_bytes(*b"{")],
            },
        ]);
        assert_eq!(check_stream_safe(&start, "$.predicate"), Ok(()));
        // `prefix` is read as far as the stream goes.
        assert!(stream_eval(&start, b""));
        assert!(!eval(&start, b""));
        assert!(stream_eval(&start, b"{\"a"));
        assert!(!stream_eval(&start, b"x"));
    }

    #[test]
    fn rejections_name_the_innermost_construct() {
        let e = check_stream_safe(&contains(b"hi"), "$.predicate").unwrap_err();
        assert_eq!(e.path, "$.predicate");
        let nested = Pred::And(vec![
            Pred::True,
            Pred::Not(Box::new(Pred::Or(vec![
                contains(b"x"),
                Pred::Len {
                    cmp: Cmp::Le,
                    value: 3,
                },
            ]))),
        ]);
        let e = check_stream_safe(&nested, "$.predicate").unwrap_err();
        assert_eq!(e.path, "$.predicate.args[1].arg.args[1]");
        assert!(e.to_string().contains("len <= 3"), "{e}");
        let ge = Pred::Len {
            cmp: Cmp::Ge,
            value: 2,
        };
        assert!(check_stream_safe(&ge, "$.p").is_err());
    }

    #[test]
    fn byte_is_exact_under_not() {
        let not_byte = Pred::Not(Box::new(Pred::Byte {
            index: 2,
            class: ByteClass::from_bytes(*b"x"),
        }));
        assert_eq!(check_stream_safe(&not_byte, "$"), Ok(()));
        // Byte 2 not yet seen: it is not (yet) an `x`.
        assert!(stream_eval(&not_byte, b"ab"));
        assert!(!stream_eval(&not_byte, b"abx"));
        assert_eq!(horizon(&not_byte), 3);
    }
}
