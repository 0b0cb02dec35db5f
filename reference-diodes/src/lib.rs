//! Reference diodes: the seven seed diodes of lagic as plain Rust functions.
//!
//! Each function decides, for a TCP payload `P`, whether the diode lets it through, written
//! straight from the meanings in the design notes and sharing no code with the compiler
//! (`predicate-ir`, `emit-bpf`): it is the independent witness that equivalence tests compare
//! the kernel's verdict and the IR's evaluator against.
//!
//! Scope: these judge the payload only. The packet model around it (an empty payload passes,
//! malformed frames drop) belongs to the compiled diode and to the tests, not here; so
//! `json_start(b"")` is `false` here even though an empty segment passes the diode.
//!
//! Byte classes used below: `text` is printable ASCII 0x20–0x7E plus TAB, LF and CR.

/// `text`: printable ASCII (0x20–0x7E) plus TAB (0x09), LF (0x0A), CR (0x0D).
fn is_text(byte: u8) -> bool {
    matches!(byte, 0x20..=0x7E | b'\t' | b'\n' | b'\r')
}

/// The first `k` bytes (fewer if the payload is shorter) are all `text`.
fn first_bytes_are_text(payload: &[u8], k: usize) -> bool {
    payload.iter().take(k).all(|&b| is_text(b))
}

/// minimal: `all [0,16) text`.
pub fn minimal(payload: &[u8]) -> bool {
    first_bytes_are_text(payload, 16)
}

/// printable16: `all [0,16) text`.
pub fn printable16(payload: &[u8]) -> bool {
    first_bytes_are_text(payload, 16)
}

/// printable64: `all [0,64) text`.
pub fn printable64(payload: &[u8]) -> bool {
    first_bytes_are_text(payload, 64)
}

/// json_start: `len < 1400` and `prefix "{"`.
pub fn json_start(payload: &[u8]) -> bool {
    payload.len() < 1400 && payload.first() == Some(&b'{')
}

/// json_prefix: the payload starts with `{` or `[`.
pub fn json_prefix(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(b'{' | b'['))
}

/// json_depth: `depth_le [0,inf) 2 {'{','['} {'}',']'} strings`.
///
/// Scanning with depth `d = 0`: outside string literals an opening bracket raises `d`, a
/// closing one lowers it but never below 0, and the scan fails as soon as `d > 2`. A `"`
/// outside a literal opens one; inside a literal a backslash escapes the next byte and an
/// unescaped `"` closes it. Bytes handled as part of a literal (the quotes included) never
/// count as brackets. A literal left open at the end is fine: only depth can fail.
pub fn json_depth(payload: &[u8]) -> bool {
    const MAX_DEPTH: u32 = 2;
    let mut depth: u32 = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in payload {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// hateless: no occurrence of "hate" in any mix of case anywhere in the payload.
pub fn hateless(payload: &[u8]) -> bool {
    !payload.windows(4).any(|w| w.eq_ignore_ascii_case(b"hate"))
}

/// A reference diode: does the payload pass?
pub type Diode = fn(&[u8]) -> bool;

/// Every seed diode by its name (the names of the example spec files).
pub const ALL: [(&str, Diode); 7] = [
    ("minimal", minimal),
    ("printable16", printable16),
    ("printable64", printable64),
    ("json_start", json_start),
    ("json_prefix", json_prefix),
    ("json_depth", json_depth),
    ("hateless", hateless),
];

/// The names of the seed diodes, in the order of [`ALL`]: each is `examples/<name>.json`.
/// This is the workspace's one list of seeds; tests and tools iterate it instead of
/// repeating the names.
pub const SEED_NAMES: [&str; ALL.len()] = {
    let mut names = [""; ALL.len()];
    let mut i = 0;
    while i < ALL.len() {
        names[i] = ALL[i].0;
        i += 1;
    }
    names
};

/// The reference diode named `name`, if there is one.
pub fn by_name(name: &str) -> Option<Diode> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(len: usize) -> Vec<u8> {
        b"The quick brown fox, 0123456789.\r\n\t"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    fn with_byte_at(len: usize, at: usize, byte: u8) -> Vec<u8> {
        let mut p = text_of(len);
        p[at] = byte;
        p
    }

    #[test]
    fn text_class_boundaries() {
        for b in [0x09, 0x0A, 0x0D, 0x20, b'A', b'~'] {
            assert!(is_text(b), "{b:#04x} is text");
        }
        for b in [0x00, 0x08, 0x0B, 0x0C, 0x0E, 0x1F, 0x7F, 0x80, 0xFF] {
            assert!(!is_text(b), "{b:#04x} is not text");
        }
    }

    #[test]
    fn printable16_and_minimal_judge_only_the_first_16_bytes() {
        for f in [minimal, printable16] {
            assert!(f(b""));
            for len in [1, 15, 16, 17, 100] {
                assert!(f(&text_of(len)), "text of {len}");
            }
            for bad in [0x7F, 0x1F, 0x80, 0x00] {
                assert!(!f(&with_byte_at(16, 15, bad)), "byte 15 = {bad:#x}");
                assert!(!f(&with_byte_at(15, 14, bad)), "last byte of 15");
                assert!(!f(&with_byte_at(17, 0, bad)), "first byte");
                assert!(f(&with_byte_at(17, 16, bad)), "byte 16 is outside");
                assert!(f(&with_byte_at(64, 63, bad)));
            }
            assert!(f(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert!(f(b"a\tb\r\nc"));
        }
    }

    #[test]
    fn printable64_judges_the_first_64_bytes() {
        assert!(printable64(b""));
        for len in [1, 63, 64, 65, 1400] {
            assert!(printable64(&text_of(len)));
        }
        for bad in [0x7F, 0x1F, 0x80] {
            assert!(!printable64(&with_byte_at(64, 63, bad)));
            assert!(!printable64(&with_byte_at(63, 62, bad)));
            assert!(!printable64(&with_byte_at(65, 63, bad)));
            assert!(printable64(&with_byte_at(65, 64, bad)));
            assert!(!printable64(&with_byte_at(65, 15, bad)));
        }
    }

    #[test]
    fn json_start_needs_a_brace_and_fewer_than_1400_bytes() {
        let doc = |len: usize| {
            let mut p = vec![b' '; len];
            p[0] = b'{';
            p
        };
        assert!(json_start(b"{"));
        assert!(json_start(&doc(1399)));
        assert!(!json_start(&doc(1400)));
        assert!(!json_start(&doc(1401)));
        assert!(!json_start(b""));
        assert!(!json_start(b"["));
        assert!(!json_start(b" {"));
        assert!(!json_start(b"x{"));
    }

    #[test]
    fn json_prefix_takes_brace_or_bracket() {
        assert!(json_prefix(b"{"));
        assert!(json_prefix(b"[1,2]"));
        assert!(json_prefix(&[b'['; 5000]));
        assert!(!json_prefix(b""));
        assert!(!json_prefix(b" ["));
        assert!(!json_prefix(b"}"));
        assert!(!json_prefix(b"\"{"));
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert!(json_depth(b""));
        assert!(json_depth(b"plain text"));
        assert!(json_depth(b"{}"));
        assert!(json_depth(b"{\"a\": [1, 2]}"));
        assert!(json_depth(b"[[]]"));
        assert!(!json_depth(b"[[["));
        assert!(!json_depth(b"{\"a\": {\"b\": [1]}}"));
        assert!(!json_depth(b"{[{"));
        // Mixed kinds count alike: `]` closes a `{` too.
        assert!(json_depth(b"{]{]{]"));
        assert!(json_depth(b"{[]{}[]}"));
        // Failing is immediate: a later close does not undo it.
        assert!(!json_depth(b"[[[]]]"));
        // The deciding bracket at the last byte.
        let mut long = vec![b' '; 3000];
        long[0] = b'[';
        long[1] = b'[';
        assert!(json_depth(&long));
        long[2999] = b'{';
        assert!(!json_depth(&long));
    }

    #[test]
    fn json_depth_unbalanced_closes_stay_at_zero() {
        assert!(json_depth(b"]]]]"));
        assert!(json_depth(b"}}}[["));
        assert!(!json_depth(b"}}}[[["));
        assert!(json_depth(b"]][]][]"));
    }

    #[test]
    fn json_depth_skips_string_literals() {
        assert!(json_depth(b"{\"[[[\"}"));
        assert!(json_depth(b"[\"{{{{\", \"]]]]\"]"));
        // An escaped quote does not end the literal.
        assert!(json_depth(b"{\"a\\\"[[[\"}"));
        // An escaped backslash does: the bracket after the closing quote counts.
        assert!(!json_depth(b"[\"a\\\\\"[["));
        assert!(json_depth(b"[\"a\\\\\"]"));
        // A literal left open hides everything after it.
        assert!(json_depth(b"[\"[[[[[[["));
        // A backslash outside a literal is an ordinary byte and escapes nothing.
        assert!(!json_depth(b"[\\[["));
        assert!(
            json_depth(b"\\\"[[[["),
            "the quote after an outside backslash opens a literal"
        );
        // Brackets between literals count.
        assert!(!json_depth(b"\"x\"[\"y\"[\"z\"["));
    }

    #[test]
    fn hateless_finds_the_word_in_any_case_anywhere() {
        assert!(hateless(b""));
        assert!(hateless(b"hat"));
        assert!(hateless(b"I love you"));
        assert!(!hateless(b"hate"));
        assert!(!hateless(b"hate speech"));
        assert!(!hateless(b"I hate it"));
        assert!(!hateless(b"whatever"));
        for word in [&b"HATE"[..], b"Hate", b"hAtE", b"HaTe", b"hatE"] {
            assert!(!hateless(word));
            let mut tail = text_of(3000);
            tail.extend_from_slice(word);
            assert!(!hateless(&tail), "at the last four bytes");
        }
        // Near misses.
        assert!(hateless(b"ha te"));
        assert!(hateless(b"ha\rte"));
        assert!(hateless(b"hat e"));
        assert!(hateless(b"h4te"));
        assert!(hateless(b"hathat"));
        assert!(hateless(b"hhaattee"));
        assert!(hateless(b"etah"));
        assert!(!hateless(b"hhate"));
        assert!(!hateless(b"hahate"));
        // Non-ASCII bytes that fold to nothing in ASCII case rules.
        assert!(hateless(&[b'h', b'a', b't', 0xC5]));
        assert!(hateless(&[b'h', 0xC1, b't', b'e']));
        // A split across what would be two segments is still one payload here.
        let mut split = b"...ha".to_vec();
        split.extend_from_slice(b"te...");
        assert!(!hateless(&split));
    }

    #[test]
    fn seed_names_are_the_example_specs() {
        // Every name is an example spec and every example spec (but the shared test cases)
        // is a seed: the list cannot drift from examples/.
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut on_disk: Vec<String> = std::fs::read_dir(&examples)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
            .filter(|n| n != "cases")
            .collect();
        on_disk.sort();
        let mut names: Vec<String> = SEED_NAMES.iter().map(|n| n.to_string()).collect();
        names.sort();
        assert_eq!(names, on_disk);
        assert_eq!(SEED_NAMES.len(), 7);
        for (i, (name, _)) in ALL.iter().enumerate() {
            assert_eq!(SEED_NAMES[i], *name);
        }
        assert_eq!(by_name("hateless").map(|f| f(b"hate")), Some(false));
        assert!(by_name("nope").is_none());
    }
}
