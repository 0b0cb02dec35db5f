//! The `http_response` stream view: a connection's byte stream read as a
//! sequence of HTTP/1.x responses, each judged as a header block and a body.
//!
//! The view is a deterministic left-to-right parser: every decision it
//! takes depends only on bytes already read, and a violation is final. So
//! with prefix-closed predicates ([`crate::stream`]) the judgment
//! [`judge_http_responses`] is prefix-closed too: if a stream is
//! acceptable, so is every prefix of it (tested in `tests/stream.rs`).
//!
//! Framing, deliberately narrower than RFC 9112 so that every receiver
//! that parses HTTP at all splits the stream where the view does (anything
//! else is a violation, fail closed):
//!
//! - a response is a header block then a body; the header block is the
//!   status line and header lines, each ending in CR LF, up to and
//!   including the empty line; at most [`MAX_HEADER_BLOCK`] bytes. A bare
//!   CR or a bare LF anywhere in the header block is a violation (a
//!   receiver that ends lines at a bare LF would otherwise read body bytes
//!   the view judged as headers);
//! - the status line is `HTTP/1.1` or `HTTP/1.0`, a space, three digits,
//!   and optionally a space and a reason phrase;
//! - a header line is a name of token characters, a colon right after it,
//!   and a value; a line starting with a space or tab (obsolete folding)
//!   is a violation;
//! - status 100 and 102-199 are interim responses without a body, and must
//!   carry neither `Content-Length` nor `Transfer-Encoding`; 101, 204 and
//!   304 are violations (a protocol switch, and bodies a receiver may or
//!   may not expect);
//! - every other status needs exactly one `Content-Length` whose value is
//!   1 to 18 decimal digits (optional spaces around), and no
//!   `Transfer-Encoding`: chunked bodies are refused, not decoded;
//! - the body is exactly `Content-Length` bytes; the next response starts
//!   right after it (keep-alive).
//!
//! Judging: each header block is a stream of its own for the `headers`
//! predicate, each body one for the `body` predicate. A complete header
//! block or body must satisfy its predicate exactly ([`crate::eval()`]); the
//! part received so far of an incomplete one must satisfy its stream
//! meaning ([`crate::stream_eval`]). The stream as a whole is *complete*
//! ([`Judgment::complete`]) when it ends right after a body or interim
//! response.
//!
//! Not modelled: responses to `HEAD` requests (no body despite a
//! `Content-Length`): the view cannot see requests, so a receiver that sent
//! `HEAD` reads the next response where the view reads a body. The
//! enclave's server answers `HEAD` with 405 and a body, so it never happens
//! there; docs/stream.md states the assumption.

use crate::eval::eval;
use crate::spec::Pred;
use crate::stream::stream_eval;

/// Longest header block the view accepts, CR LF CR LF included.
pub const MAX_HEADER_BLOCK: usize = 8192;

/// Why a stream is not acceptable under the view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream offset {offset}: {reason}")]
pub struct HttpViolation {
    /// Offset in the stream of the byte that made the stream unacceptable
    /// (the last byte of the offending line, header block or body).
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// The outcome of judging a stream that is acceptable so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgment {
    /// The stream ends exactly after a complete response.
    pub complete: bool,
    /// Complete responses (interim ones included) in the stream.
    pub responses: usize,
}

fn violation(offset: usize, reason: impl Into<String>) -> HttpViolation {
    HttpViolation {
        offset,
        reason: reason.into(),
    }
}

/// Judges `stream` (every byte of one direction of a connection so far)
/// under the `http_response` view with predicates `headers` and `body`.
pub fn judge_http_responses(
    headers: &Pred,
    body: &Pred,
    stream: &[u8],
) -> Result<Judgment, HttpViolation> {
    let mut pos = 0;
    let mut responses = 0;
    loop {
        if pos == stream.len() {
            return Ok(Judgment {
                complete: true,
                responses,
            });
        }
        let rest = &stream[pos..];
        let head = match header_block(rest, pos)? {
            Head::Partial => {
                let shown = &rest[..rest.len().min(MAX_HEADER_BLOCK)];
                if !stream_eval(headers, shown) {
                    return Err(violation(
                        stream.len() - 1,
                        "the header block so far fails the headers predicate",
                    ));
                }
                return Ok(Judgment {
                    complete: false,
                    responses,
                });
            }
            Head::Complete { len, body_len } => {
                if !eval(headers, &rest[..len]) {
                    return Err(violation(
                        pos + len - 1,
                        "the header block fails the headers predicate",
                    ));
                }
                (len, body_len)
            }
        };
        let (head_len, body_len) = head;
        let body_start = pos + head_len;
        let Some(body_len) = body_len else {
            responses += 1;
            pos = body_start;
            continue;
        };
        let available = (stream.len() - body_start) as u64;
        if available < body_len {
            if !stream_eval(body, &stream[body_start..]) {
                return Err(violation(
                    stream.len() - 1,
                    "the body so far fails the body predicate",
                ));
            }
            return Ok(Judgment {
                complete: false,
                responses,
            });
        }
        // body_len <= available <= usize::MAX here.
        let body_end = body_start + body_len as usize;
        if !eval(body, &stream[body_start..body_end]) {
            return Err(violation(
                body_end.max(1) - 1,
                "the body fails the body predicate",
            ));
        }
        responses += 1;
        pos = body_end;
    }
}

enum Head {
    /// The header block has not ended yet (and is fine so far).
    Partial,
    /// A complete, well-framed header block of `len` bytes.
    /// `body_len` is `None` for an interim response, which has no body
    /// (not even an empty one for the body predicate to judge).
    Complete { len: usize, body_len: Option<u64> },
}

/// Parses the header block at the start of `rest` (at stream offset `at`),
/// checking each complete line.
fn header_block(rest: &[u8], at: usize) -> Result<Head, HttpViolation> {
    let mut line_start = 0;
    let mut status: Option<u16> = None;
    let mut content_length: Option<u64> = None;
    let mut i = 0;
    while i < rest.len() {
        if i >= MAX_HEADER_BLOCK {
            return Err(violation(
                at + i,
                format!("header block longer than {MAX_HEADER_BLOCK} bytes"),
            ));
        }
        match rest[i] {
            b'\n' => return Err(violation(at + i, "bare LF in the header block")),
            b'\r' => match rest.get(i + 1) {
                None => return Ok(Head::Partial),
                // The LF is the block's byte at `i + 1`: past the limit too.
                Some(b'\n') if i + 1 >= MAX_HEADER_BLOCK => {
                    return Err(violation(
                        at + i + 1,
                        format!("header block longer than {MAX_HEADER_BLOCK} bytes"),
                    ))
                }
                Some(b'\n') => {}
                Some(_) => return Err(violation(at + i + 1, "bare CR in the header block")),
            },
            _ => {
                i += 1;
                continue;
            }
        }
        // A complete line: rest[line_start..i], its CR LF at i, i + 1.
        let line = &rest[line_start..i];
        let end = at + i + 1;
        i += 2;
        line_start = i;
        let Some(code) = status else {
            status = Some(status_line(line).ok_or_else(|| {
                violation(
                    end,
                    "the status line is not HTTP/1.1 or HTTP/1.0, a space and a 3-digit status",
                )
            })?);
            continue;
        };
        if line.is_empty() {
            let body_len = match (code, content_length) {
                (101 | 204 | 304, _) => {
                    return Err(violation(
                        end,
                        format!("status {code} is not supported by the http_response view"),
                    ))
                }
                (100..=199, None) => None,
                (100..=199, Some(_)) => {
                    return Err(violation(
                        end,
                        "an interim (1xx) response with a Content-Length",
                    ))
                }
                (_, Some(n)) => Some(n),
                (_, None) => {
                    return Err(violation(
                        end,
                        "a response without Content-Length (bodies must be delimited by it)",
                    ))
                }
            };
            return Ok(Head::Complete { len: i, body_len });
        }
        let (name, value) = header_line(line)
            .ok_or_else(|| violation(end, "a header line is not `name: value`"))?;
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(violation(
                end,
                "Transfer-Encoding is refused (chunked bodies are not decoded)",
            ));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(violation(end, "more than one Content-Length"));
            }
            content_length = Some(
                decimal(value)
                    .ok_or_else(|| violation(end, "Content-Length is not 1 to 18 digits"))?,
            );
        }
    }
    Ok(Head::Partial)
}

/// The status code of `HTTP/1.x SSS[ reason]`.
fn status_line(line: &[u8]) -> Option<u16> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let (digits, after) = rest.split_at_checked(3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(after.is_empty() || after[0] == b' ') {
        return None;
    }
    digits
        .iter()
        .try_fold(0u16, |n, &d| Some(n * 10 + u16::from(d - b'0')))
}

/// Token characters of a header name (RFC 9110 `tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `name: value` with a non-empty token name and the value's surrounding
/// spaces and tabs trimmed.
fn header_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |e| e + 1);
    Some((name, &value[start..end]))
}

fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ByteClass;

    fn json_body() -> Pred {
        Pred::Prefix {
            pattern: vec![ByteClass::from_bytes(*b"{")],
        }
    }

    fn text() -> Pred {
        Pred::All {
            window: crate::spec::Window::ALL,
            class: ByteClass::text(),
        }
    }

    fn judge(stream: &[u8]) -> Result<Judgment, HttpViolation> {
        judge_http_responses(&text(), &json_body(), stream)
    }

    const OK: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}";

    #[test]
    fn the_enclave_response_shape_is_accepted_whole_and_at_every_prefix() {
        let two = [OK, OK].concat();
        let j = judge(&two).unwrap();
        assert_eq!(
            j,
            Judgment {
                complete: true,
                responses: 2
            }
        );
        for n in 0..two.len() {
            let j = judge(&two[..n]).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(j.complete, n == 0 || n == OK.len(), "{n}");
        }
        let interim = [&b"HTTP/1.1 100 Continue\r\n\r\n"[..], OK].concat();
        assert_eq!(judge(&interim).unwrap().responses, 2);
    }

    #[test]
    fn framing_violations() {
        let cases: &[(&[u8], &str)] = &[
            (b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", "bare LF"),
            (b"HTTP/1.1 200 OK\rX", "bare CR"),
            (b"HTTP/2 200 OK\r\n", "status line"),
            (b"HTTP/1.1 200 OK\r\n\r\n", "without Content-Length"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
                "Transfer-Encoding",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n",
                "more than one",
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n", "digits"),
            (b"HTTP/1.1 200 OK\r\n folded\r\n", "name: value"),
            (b"HTTP/1.1 200 OK\r\nName : v\r\n", "name: value"),
            (b"HTTP/1.1 204 No Content\r\n\r\n", "not supported"),
            (
                b"HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\n",
                "interim",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab",
                "body predicate",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                "body predicate",
            ),
            (b"HTTP/1.1 200 OK\r\nX: \x01\r\n", "headers predicate"),
        ];
        for (stream, needle) in cases {
            let e = judge(stream).expect_err(&String::from_utf8_lossy(stream));
            assert!(e.reason.contains(needle), "{e} vs {needle}");
            assert!(e.offset < stream.len());
        }
        let long = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; MAX_HEADER_BLOCK]].concat();
        assert!(judge(&long).unwrap_err().reason.contains("longer than"));
    }

    #[test]
    fn a_partial_body_is_judged_as_far_as_it_goes() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert!(!judge(head).unwrap().complete);
        assert!(judge(&[&head[..], b"{\"a"].concat()).is_ok());
        assert!(judge(&[&head[..], b"x"].concat()).is_err());
    }
}

#[cfg(test)]
mod limit {
    use super::*;

    /// A header block whose last LF is its byte 8193 is refused, like one
    /// with any other byte there (the limit counts every byte).
    #[test]
    fn the_limit_counts_the_last_lf() {
        let mut s = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX: ".to_vec();
        let fill = MAX_HEADER_BLOCK - s.len() - 3;
        s.extend(std::iter::repeat_n(b'a', fill));
        s.extend_from_slice(b"\r\n\r\n");
        assert_eq!(s.len(), MAX_HEADER_BLOCK + 1);
        let e = judge_http_responses(&Pred::True, &Pred::True, &s).unwrap_err();
        assert!(e.reason.contains("longer than"), "{e}");
        assert!(judge_http_responses(&Pred::True, &Pred::True, &s[1..]).is_err()); // no status line
        let cut = s.len() - 5; // the last filler byte
        let ok = [&s[..cut], &s[cut + 1..]].concat();
        assert!(judge_http_responses(&Pred::True, &Pred::True, &ok).is_ok());
    }
}
