//! The framing of the `http_response` view as a machine the kernel runs:
//! a DFA over the bytes of one header block plus two counters.
//!
//! [`crate::http_view`] is the reference: a parser that looks at whole
//! lines. A diode sees a stream byte by byte, cut anywhere, so the same
//! rules are restated here as
//!
//! - [`HttpFrame::dfa`], a DFA over the bytes of a header block, started
//!   at each response's first byte. It checks the status line, every
//!   header line (token name, colon, `Content-Length` and
//!   `Transfer-Encoding` recognised case-insensitively, the value of
//!   `Content-Length` 1 to 18 digits with optional spaces and tabs around),
//!   bare CR and bare LF, and, at the empty line, the status class against
//!   the `Content-Length` seen. A line found wrong is a violation only once
//!   its CR LF arrives (the dead state [`HttpFrame::dead`] is entered at
//!   the LF), exactly where the reference decides, so that a diode and the
//!   reference agree on every prefix; a bare LF or a CR followed by
//!   anything but LF is a violation at once, as there.
//! - the header-block length, refused beyond [`MAX_HEADER_BLOCK`] bytes;
//! - the body length, built digit by digit from the states
//!   [`HttpFrame::digits`] (the DFA enters one of them exactly on a digit
//!   of the `Content-Length` value; at most 18 digits, so it fits a `u64`,
//!   and the builder refuses an overflow anyway), then counted down by the
//!   body's bytes.
//!
//! The DFA ends a header block in [`HttpFrame::end_interim`] (a 1xx
//! response: no body, the next response follows) or
//! [`HttpFrame::end_body`] (a body of `Content-Length` bytes follows); the
//! runner then restarts it from [`Machine::INITIAL`] for the next header
//! block. [`Framer`] is that runner, as executable Rust: the kernel's
//! per-byte dispatch (emit-bpf, `codegen/http.rs`) does what
//! [`Framer::step`] does, and the tests check that [`Framer`] accepts
//! exactly the prefixes [`crate::http_view::judge_http_responses`] accepts
//! with predicates that always hold.
//!
//! Invariants: [`HttpFrame::dead`] is a sink and the only non-accepting
//! state; the digit states are exactly the states entered by a digit of a
//! `Content-Length` value and form the contiguous range
//! [`HttpFrame::digits`]; the two end states are entered only by the LF
//! of a header block's empty line.

use std::collections::HashMap;

use crate::http_view::MAX_HEADER_BLOCK;
use crate::program::{Dfa, Machine, StateId};

/// The framing DFA and its distinguished states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFrame {
    /// The DFA over one header block's bytes; every state but
    /// [`HttpFrame::dead`] accepts (the block is fine so far).
    pub dfa: Dfa,
    /// States entered exactly on a digit of the `Content-Length` value.
    pub digits: std::ops::Range<StateId>,
    /// The header block of an interim (1xx) response ended.
    pub end_interim: StateId,
    /// The header block of a response with a body ended.
    pub end_body: StateId,
    /// A framing violation (sink).
    pub dead: StateId,
}

/// The status class, known after the status code's three digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    /// 100, 102-199: no body, no Content-Length.
    Interim,
    /// 101, 204, 304: refused at the end of the header block.
    Refused,
    /// Everything else: exactly one Content-Length.
    Final,
}

/// A framing state before numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum St {
    /// `k` bytes of `HTTP/1.` read (then the minor version digit).
    Version(u8),
    /// After `HTTP/1.`: the minor version digit read, expecting a space.
    Minor,
    /// Expecting the first status digit.
    Code0,
    /// First digit read: 1, 2, 3 or another.
    Code1(u8),
    /// Two digits read: `10`, `20`, `30`, or the class already known.
    Code2(u8, Option<Class>),
    /// After the three digits.
    AfterCode(Class),
    /// In the reason phrase.
    Reason(Class),
    /// CR of the status line read.
    StatusCr(Class),
    /// At the start of a header line (or the empty line).
    LineStart(Class, bool),
    /// In a name that matched `k` bytes of `content-length`.
    ClName(Class, bool, u8),
    /// In a name that matched `k` bytes of `transfer-encoding`.
    TeName(Class, bool, u8),
    /// In another token name.
    Name(Class, bool),
    /// In the value of an ordinary header.
    Value(Class, bool),
    /// CR of a good header line.
    LineCr(Class, bool),
    /// Content-Length value: spaces before the digits.
    ClLead(Class),
    /// Content-Length value: `k` digits read (1..=18).
    ClDigit(Class, u8),
    /// Content-Length value: spaces after the digits.
    ClTrail(Class),
    /// CR of a good Content-Length line.
    ClCr(Class),
    /// CR of the empty line.
    EmptyCr(Class, bool),
    /// A line found wrong, before its CR.
    Bad,
    /// A line found wrong, its CR read (whatever follows is a violation).
    BadCr,
    /// See [`HttpFrame::end_interim`].
    EndInterim,
    /// See [`HttpFrame::end_body`].
    EndBody,
    /// See [`HttpFrame::dead`].
    Dead,
}

const VERSION: &[u8] = b"HTTP/1.";
const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
/// Most digits of a Content-Length value.
pub const MAX_LENGTH_DIGITS: u8 = 18;

/// Token characters of a header name (RFC 9110 `tchar`), as the
/// reference's.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The transition function on unnumbered states.
fn next(s: St, b: u8) -> St {
    use St::*;
    // Bytes that end or break a line, the same in every line state.
    let line_break = |cr: St| match b {
        b'\n' => Some(Dead),
        b'\r' => Some(cr),
        _ => None,
    };
    match s {
        Dead | BadCr => Dead,
        EndInterim | EndBody => next(Version(0), b),
        Bad => line_break(BadCr).unwrap_or(Bad),
        StatusCr(c) => match b {
            b'\n' => LineStart(c, false),
            _ => Dead,
        },
        LineCr(c, seen) => match b {
            b'\n' => LineStart(c, seen),
            _ => Dead,
        },
        ClCr(c) => match b {
            b'\n' => LineStart(c, true),
            _ => Dead,
        },
        EmptyCr(c, seen) => match (b, c, seen) {
            (b'\n', Class::Interim, false) => EndInterim,
            (b'\n', Class::Final, true) => EndBody,
            _ => Dead,
        },
        Version(k) if usize::from(k) == VERSION.len() => {
            line_break(BadCr).unwrap_or(if b == b'0' || b == b'1' { Minor } else { Bad })
        }
        Version(k) => line_break(BadCr).unwrap_or(if b == VERSION[usize::from(k)] {
            Version(k + 1)
        } else {
            Bad
        }),
        Minor => line_break(BadCr).unwrap_or(if b == b' ' { Code0 } else { Bad }),
        Code0 => line_break(BadCr).unwrap_or(if b.is_ascii_digit() { Code1(b) } else { Bad }),
        Code1(d1) => line_break(BadCr).unwrap_or(if b.is_ascii_digit() {
            match (d1, b) {
                (b'1', b'0') => Code2(b'1', None),
                (b'1', _) => Code2(0, Some(Class::Interim)),
                (b'2', b'0') => Code2(b'2', None),
                (b'3', b'0') => Code2(b'3', None),
                _ => Code2(0, Some(Class::Final)),
            }
        } else {
            Bad
        }),
        Code2(d1, known) => line_break(BadCr).unwrap_or(if b.is_ascii_digit() {
            AfterCode(known.unwrap_or(match (d1, b) {
                (b'1', b'1') | (b'2', b'4') | (b'3', b'4') => Class::Refused,
                (b'1', _) => Class::Interim,
                _ => Class::Final,
            }))
        } else {
            Bad
        }),
        AfterCode(c) => line_break(StatusCr(c)).unwrap_or(if b == b' ' { Reason(c) } else { Bad }),
        Reason(c) => line_break(StatusCr(c)).unwrap_or(Reason(c)),
        LineStart(c, seen) => line_break(EmptyCr(c, seen)).unwrap_or(name_byte(c, seen, 0, 0, b)),
        ClName(c, seen, k) => line_break(BadCr).unwrap_or(name_byte(c, seen, k, 0, b)),
        TeName(c, seen, k) => line_break(BadCr).unwrap_or(name_byte(c, seen, 0, k, b)),
        Name(c, seen) => line_break(BadCr).unwrap_or(match b {
            b':' => Value(c, seen),
            _ if is_tchar(b) => Name(c, seen),
            _ => Bad,
        }),
        Value(c, seen) => line_break(LineCr(c, seen)).unwrap_or(Value(c, seen)),
        ClLead(c) => line_break(BadCr).unwrap_or(match b {
            _ if is_ws(b) => ClLead(c),
            _ if b.is_ascii_digit() => ClDigit(c, 1),
            _ => Bad,
        }),
        ClDigit(c, k) => line_break(ClCr(c)).unwrap_or(match b {
            _ if is_ws(b) => ClTrail(c),
            _ if b.is_ascii_digit() && k < MAX_LENGTH_DIGITS => ClDigit(c, k + 1),
            _ => Bad,
        }),
        ClTrail(c) => line_break(ClCr(c)).unwrap_or(if is_ws(b) { ClTrail(c) } else { Bad }),
    }
}

/// A name byte (not CR or LF) in a line whose name matched `cl` bytes of
/// `content-length` and `te` of `transfer-encoding` (at most one nonzero,
/// both zero at the line's start).
fn name_byte(c: Class, seen: bool, cl: u8, te: u8, b: u8) -> St {
    let at_start = cl == 0 && te == 0;
    let lower = b.to_ascii_lowercase();
    if b == b':' {
        return if at_start {
            St::Bad // empty name
        } else if usize::from(cl) == CONTENT_LENGTH.len() {
            if seen {
                St::Bad // a second Content-Length
            } else {
                St::ClLead(c)
            }
        } else if usize::from(te) == TRANSFER_ENCODING.len() {
            St::Bad // Transfer-Encoding is refused
        } else {
            St::Value(c, seen)
        };
    }
    if !is_tchar(b) {
        return St::Bad;
    }
    if (at_start || cl > 0)
        && usize::from(cl) < CONTENT_LENGTH.len()
        && lower == CONTENT_LENGTH[usize::from(cl)]
    {
        return St::ClName(c, seen, cl + 1);
    }
    if (at_start || te > 0)
        && usize::from(te) < TRANSFER_ENCODING.len()
        && lower == TRANSFER_ENCODING[usize::from(te)]
    {
        return St::TeName(c, seen, te + 1);
    }
    St::Name(c, seen)
}

impl HttpFrame {
    /// Builds the framing DFA.
    pub fn new() -> Self {
        // Explore from the start, then number: the start first, the digit
        // states together, the end states and the dead state last.
        let start = St::Version(0);
        let mut seen: HashMap<St, ()> = HashMap::new();
        let mut order = vec![start];
        seen.insert(start, ());
        let mut i = 0;
        while i < order.len() {
            let s = order[i];
            i += 1;
            for b in 0..=255u8 {
                let t = next(s, b);
                if seen.insert(t, ()).is_none() {
                    order.push(t);
                }
            }
        }
        for special in [St::EndInterim, St::EndBody, St::Dead] {
            if seen.insert(special, ()).is_none() {
                order.push(special);
            }
        }
        let is_digit = |s: &St| matches!(s, St::ClDigit(..));
        let is_special = |s: &St| matches!(s, St::EndInterim | St::EndBody | St::Dead);
        let mut numbered: Vec<St> = vec![start];
        numbered.extend(
            order
                .iter()
                .filter(|s| **s != start && !is_digit(s) && !is_special(s)),
        );
        let digits_from = numbered.len() as StateId;
        numbered.extend(order.iter().filter(|s| is_digit(s)));
        let digits_to = numbered.len() as StateId;
        numbered.extend([St::EndInterim, St::EndBody, St::Dead]);
        let id: HashMap<St, StateId> = numbered
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as StateId))
            .collect();
        let next = numbered
            .iter()
            .map(|&s| {
                let mut row = [0; 256];
                for b in 0..=255u8 {
                    row[usize::from(b)] = id[&next(s, b)];
                }
                row
            })
            .collect();
        let accepting = numbered.iter().map(|s| *s != St::Dead).collect();
        HttpFrame {
            dfa: Dfa { next, accepting },
            digits: digits_from..digits_to,
            end_interim: id[&St::EndInterim],
            end_body: id[&St::EndBody],
            dead: id[&St::Dead],
        }
    }

    /// The DFA as a machine.
    pub fn machine(&self) -> Machine {
        Machine::Dfa(self.dfa.clone())
    }
}

impl Default for HttpFrame {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a [`Framer`] is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// In a header block: `state` of the framing DFA, `len` bytes of the
    /// block read, `length` the Content-Length built so far.
    Head {
        /// Framing DFA state.
        state: StateId,
        /// Bytes of the header block read.
        len: u64,
        /// The Content-Length value built so far.
        length: u64,
    },
    /// In a body with `left` bytes still to come (at least 1).
    Body {
        /// Bytes of the body still to come.
        left: u64,
    },
}

/// What one byte did at a response boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// No boundary at this byte.
    None,
    /// The byte ended a header block of `len` bytes; a body of `body`
    /// bytes follows (`Some(0)`: an empty body, complete at once), or none
    /// (`None`, an interim response).
    HeadEnd {
        /// Length of the header block.
        len: u64,
        /// The body's length, `None` for an interim response.
        body: Option<u64>,
    },
    /// The byte ended a body.
    BodyEnd,
}

/// The framing runner: the DFA, the header-block length and the body
/// length, byte by byte. A violation is final.
#[derive(Debug, Clone)]
pub struct Framer<'f> {
    frame: &'f HttpFrame,
    /// Where the stream is, `None` after a violation.
    pub phase: Option<Phase>,
}

impl<'f> Framer<'f> {
    /// A framer at the start of a stream.
    pub fn new(frame: &'f HttpFrame) -> Self {
        Framer {
            frame,
            phase: Some(Phase::Head {
                state: Machine::INITIAL,
                len: 0,
                length: 0,
            }),
        }
    }

    /// One byte; `None` after a violation.
    pub fn step(&mut self, b: u8) -> Option<Boundary> {
        let (phase, boundary) = match self.phase? {
            Phase::Head { state, len, length } => {
                if len >= MAX_HEADER_BLOCK as u64 {
                    (None, Boundary::None)
                } else {
                    let state = self.frame.dfa.next[state as usize][usize::from(b)];
                    let len = len + 1;
                    if state == self.frame.dead {
                        (None, Boundary::None)
                    } else if state == self.frame.end_interim {
                        (Some(Self::head()), Boundary::HeadEnd { len, body: None })
                    } else if state == self.frame.end_body {
                        let boundary = Boundary::HeadEnd {
                            len,
                            body: Some(length),
                        };
                        if length == 0 {
                            (Some(Self::head()), boundary)
                        } else {
                            (Some(Phase::Body { left: length }), boundary)
                        }
                    } else if self.frame.digits.contains(&state) {
                        match length
                            .checked_mul(10)
                            .and_then(|n| n.checked_add(u64::from(b - b'0')))
                        {
                            Some(length) => {
                                (Some(Phase::Head { state, len, length }), Boundary::None)
                            }
                            None => (None, Boundary::None),
                        }
                    } else {
                        (Some(Phase::Head { state, len, length }), Boundary::None)
                    }
                }
            }
            Phase::Body { left } => {
                if left == 1 {
                    (Some(Self::head()), Boundary::BodyEnd)
                } else {
                    (Some(Phase::Body { left: left - 1 }), Boundary::None)
                }
            }
        };
        self.phase = phase;
        phase.map(|_| boundary)
    }

    fn head() -> Phase {
        Phase::Head {
            state: Machine::INITIAL,
            len: 0,
            length: 0,
        }
    }

    /// The stream ends right after a complete response (or is empty).
    pub fn complete(&self) -> bool {
        matches!(
            self.phase,
            Some(Phase::Head {
                state: Machine::INITIAL,
                len: 0,
                ..
            })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_state_is_the_only_rejecting_state_and_a_sink() {
        let f = HttpFrame::new();
        let m = f.machine();
        assert!(m.is_sink(f.dead));
        for s in 0..f.dfa.next.len() as StateId {
            assert_eq!(f.dfa.accepting[s as usize], s != f.dead, "{s}");
        }
        assert!(!f.digits.is_empty());
        // Reasonable size for step code.
        assert!(f.dfa.next.len() < 600, "{}", f.dfa.next.len());
    }
}

#[cfg(test)]
mod equivalence {
    use super::*;
    use crate::http_view::judge_http_responses;
    use crate::spec::Pred;

    /// Small deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, xs: &[&'a [u8]]) -> &'a [u8] {
            xs[self.below(xs.len())]
        }
    }

    /// A stream of responses, well-framed or almost: pieces of status
    /// lines, header lines and bodies, with random damage.
    fn stream(rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..1 + rng.below(3) {
            out.extend_from_slice(rng.pick(&[
                b"HTTP/1.1 200 OK",
                b"HTTP/1.0 200",
                b"HTTP/1.1 100 Continue",
                b"HTTP/1.1 102 x",
                b"HTTP/1.1 101 Switching",
                b"HTTP/1.1 204 No Content",
                b"HTTP/1.1 304 Not Modified",
                b"HTTP/1.1 404 Not Found",
                b"HTTP/1.1 199",
                b"HTTP/1.1 110",
                b"HTTP/1.2 200 OK",
                b"HTTP/1.1 2000",
                b"HTTP/1.1 20",
                b"http/1.1 200 OK",
                b"HTTP/1.1 000",
            ]));
            out.extend_from_slice(b"\r\n");
            let mut length = None;
            for _ in 0..rng.below(4) {
                let n = rng.below(30);
                let line: Vec<u8> = match rng.below(12) {
                    0 | 1 => format!("Content-Length: {n}").into_bytes(),
                    2 => format!("content-LENGTH:\t{n} ").into_bytes(),
                    3 => b"Content-Type: application/json".to_vec(),
                    4 => b"Transfer-Encoding: chunked".to_vec(),
                    5 => rng
                        .pick(&[
                            b"Content-Length: +1",
                            b"Content-Length: 1 2",
                            b"Content-Length:",
                            b"Content-Length: 1234567890123456789",
                            b"Content-Length: 123456789012345678",
                            b"Content-Length : 2",
                            b" folded",
                            b": empty name",
                            b"Content-Lengthy: 3",
                            b"Transfer-Encodin: x",
                            b"no colon",
                            b"X-\x80: high",
                            b"Connection: close",
                        ])
                        .to_vec(),
                    _ => format!("X-{n}: v{n}").into_bytes(),
                };
                if line.starts_with(b"Content-Length: ") || line.starts_with(b"content-LENGTH") {
                    length = Some(n);
                }
                out.extend_from_slice(&line);
                out.extend_from_slice(rng.pick(&[b"\r\n", b"\r\n", b"\r\n", b"\n", b"\rx"]));
            }
            out.extend_from_slice(b"\r\n");
            let body = length.unwrap_or(rng.below(3));
            for i in 0..body + rng.below(2) {
                out.push(b"{}[]\"\\ab\r\n"[i % 10]);
            }
        }
        // Random damage: a byte replaced.
        if rng.below(4) == 0 && !out.is_empty() {
            let i = rng.below(out.len());
            out[i] = rng.pick(&[b"\r", b"\n", b" ", b":", b"0", b"x"])[0];
        }
        out
    }

    fn framer_accepts(frame: &HttpFrame, s: &[u8]) -> bool {
        let mut f = Framer::new(frame);
        s.iter().all(|&b| f.step(b).is_some())
    }

    #[test]
    fn the_framer_accepts_exactly_the_prefixes_the_reference_accepts() {
        let frame = HttpFrame::new();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..3000 {
            let s = stream(&mut rng);
            let mut f = Framer::new(&frame);
            let mut ok = true;
            for n in 0..=s.len() {
                if n > 0 && ok {
                    ok = f.step(s[n - 1]).is_some();
                }
                let reference = judge_http_responses(&Pred::True, &Pred::True, &s[..n]);
                assert_eq!(
                    ok,
                    reference.is_ok(),
                    "{:?} at {n}: {reference:?}",
                    String::from_utf8_lossy(&s[..n])
                );
                if let Ok(j) = reference {
                    assert_eq!(
                        f.complete(),
                        j.complete,
                        "{:?}",
                        String::from_utf8_lossy(&s[..n])
                    );
                }
            }
            if ok {
                accepted += 1
            } else {
                refused += 1
            }
        }
        // Both outcomes are exercised.
        assert!(accepted > 50 && refused > 300, "{accepted} {refused}");
    }

    #[test]
    fn the_header_block_limit_and_the_length_digits() {
        let frame = HttpFrame::new();
        let head = |filler: usize| {
            let mut s = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: ".to_vec();
            s.extend(std::iter::repeat_n(b'a', filler));
            s.extend_from_slice(b"\r\n\r\n{");
            s
        };
        let base = head(0).len() - 1; // the header block without filler
        for filler in [
            MAX_HEADER_BLOCK - base - 1,
            MAX_HEADER_BLOCK - base,
            MAX_HEADER_BLOCK - base + 1,
        ] {
            let s = head(filler);
            let ok = judge_http_responses(&Pred::True, &Pred::True, &s).is_ok();
            assert_eq!(ok, s.len() - 1 <= MAX_HEADER_BLOCK, "{filler}");
            assert_eq!(framer_accepts(&frame, &s), ok, "{filler}");
        }
        let eighteen = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n";
        let mut f = Framer::new(&frame);
        for &b in eighteen {
            f.step(b).unwrap();
        }
        assert_eq!(
            f.phase,
            Some(Phase::Body {
                left: 999_999_999_999_999_999
            })
        );
    }
}
