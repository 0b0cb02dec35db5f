//! Proptest strategies for specs, predicates and payloads (feature
//! `arbitrary`), shared by this crate's tests and the kernel equivalence
//! tests of other crates.
//!
//! The generators are biased so that random predicates and random payloads
//! *interact*: classes are often built from a small set of "hot" bytes
//! ([`HOT_BYTES`]: letters of "hate" in both cases, JSON punctuation,
//! quote and backslash, CR/LF, NUL, 0xFF) that the payload generators also
//! favour, and patterns are often case-insensitive words the payloads embed.
//! Every construct appears, nested, together with the edge cases: empty
//! `and`/`or`, empty and full classes, windows past the payload, unbounded
//! windows, windows at the top of the offset range, patterns of 1 to 64
//! classes, `depth_le` whose open and close classes overlap or contain the
//! quote byte. Every value generated is valid (upholds the invariants of
//! [`crate::spec`]); payloads are at most 4,000 bytes.

use crate::spec::{
    Action, ByteClass, Cmp, Mode, Pattern, Policy, Pred, Spec, StreamView, Window, MAX_OFFSET,
    MAX_PATTERN_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// Bytes that classes and payloads both favour.
pub const HOT_BYTES: &[u8] = b"hHaAtTeE{}[]\"\\:, \r\n\t0x\x00\xff";

/// Fragments the payload generators join together.
pub const PAYLOAD_WORDS: &[&str] = &[
    "hate",
    "HATE",
    "hAtE",
    "hat",
    "ate",
    "hhate",
    "I hate bananas",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "\\\"",
    ":",
    ",",
    " ",
    "\r\n",
    "\t",
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "{\"a\":[1]}",
    "[[[1]]]",
    "\"[[[[\"",
    "{\"k\":\"v\\\"}\"}",
    "\u{0}",
    "\u{7f}",
    "ab",
    "x",
];

fn arb_byte() -> impl Strategy<Value = u8> {
    prop_oneof![3 => select(HOT_BYTES), 1 => any::<u8>()]
}

/// A byte and its other ASCII case, if it has one.
fn both_cases(b: u8) -> ByteClass {
    ByteClass::from_bytes([b.to_ascii_lowercase(), b.to_ascii_uppercase()])
}

/// Byte classes of every size: empty, single bytes, case pairs, small sets,
/// random ranges, complements of small sets, the named classes, full.
pub fn arb_class() -> BoxedStrategy<ByteClass> {
    prop_oneof![
        1 => Just(ByteClass::empty()),
        1 => Just(ByteClass::full()),
        1 => Just(ByteClass::printable()),
        1 => Just(ByteClass::text()),
        4 => arb_byte().prop_map(|b| ByteClass::from_bytes([b])),
        3 => arb_byte().prop_map(both_cases),
        2 => vec(arb_byte(), 1..6).prop_map(ByteClass::from_bytes),
        2 => vec((any::<u8>(), any::<u8>()), 1..4).prop_map(|pairs| {
            ByteClass::from_ranges(pairs.into_iter().map(|(a, b)| (a.min(b), a.max(b))))
        }),
        2 => vec(arb_byte(), 1..4).prop_map(|bytes| ByteClass::from_bytes(bytes).complement()),
    ]
    .boxed()
}

/// Windows: whole payload, unbounded from an offset, short bounded ones,
/// empty ones, ones reaching past typical payloads, and ones at the top of
/// the offset range (always empty for real payloads).
pub fn arb_window() -> BoxedStrategy<Window> {
    prop_oneof![
        3 => Just(Window::ALL),
        2 => (0u32..12).prop_map(|start| Window { start, end: None }),
        4 => (0u32..40, 0u32..40).prop_map(|(start, len)| Window {
            start,
            end: Some(start + len),
        }),
        1 => (0u32..50).prop_map(|start| Window {
            start,
            end: Some(start),
        }),
        2 => (0u32..400, 0u32..5000).prop_map(|(start, len)| Window {
            start,
            end: Some(start + len),
        }),
        1 => (MAX_OFFSET - 3..=MAX_OFFSET).prop_flat_map(|start| {
            prop_oneof![
                Just(Window { start, end: None }),
                (start..=MAX_OFFSET).prop_map(move |end| Window { start, end: Some(end) }),
            ]
        }),
        1 => Just(Window {
            start: 0,
            end: Some(MAX_OFFSET),
        }),
    ]
    .boxed()
}

/// A case-insensitive word as a pattern (one class per letter).
fn word_pattern(word: &str) -> Pattern {
    word.bytes().map(both_cases).collect()
}

/// Patterns of 1 to 64 classes: short random ones, case-insensitive words,
/// longer random ones, long ones cycling through a few classes, and short
/// cores padded with `any` on either side.
pub fn arb_pattern() -> BoxedStrategy<Pattern> {
    prop_oneof![
        4 => vec(arb_class(), 1..4),
        3 => select(&["hate", "h", "at", "ee", "{\"", "\\\"", "ab", "hatehate"][..]).prop_map(word_pattern),
        2 => vec(arb_class(), 4..12),
        1 => (vec(arb_class(), 1..3), 1..=MAX_PATTERN_LEN).prop_map(|(cycle, len)| {
            cycle.iter().cycle().take(len).cloned().collect()
        }),
        1 => (arb_class(), Just(MAX_PATTERN_LEN)).prop_map(|(c, len)| vec![c; len]),
        // Wildcard positions around a core: `any` before and after a word.
        2 => (0usize..3, vec(arb_class(), 1..3), 0usize..3).prop_map(|(before, core, after)| {
            let mut pattern = vec![ByteClass::full(); before];
            pattern.extend(core);
            pattern.extend(vec![ByteClass::full(); after]);
            pattern
        }),
    ]
    .boxed()
}

fn arb_cmp() -> impl Strategy<Value = Cmp> {
    select(&[Cmp::Lt, Cmp::Le, Cmp::Eq, Cmp::Ne, Cmp::Ge, Cmp::Gt][..])
}

/// Constants for `len` and `byte`: small, around typical payload sizes, and
/// at both ends of the range.
fn arb_offset() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..24,
        2 => 0u32..4100,
        1 => Just(0u32),
        1 => MAX_OFFSET - 2..=MAX_OFFSET,
    ]
}

fn arb_bracket_class() -> BoxedStrategy<ByteClass> {
    prop_oneof![
        3 => Just(ByteClass::from_bytes(*b"{[")),
        3 => Just(ByteClass::from_bytes(*b"}]")),
        1 => Just(ByteClass::from_bytes(*b"\"{")),
        1 => Just(ByteClass::from_bytes(*b"\\]")),
        3 => arb_class(),
    ]
    .boxed()
}

/// A `depth_le` shaped like a JSON nesting check (the seed `json_depth`).
fn arb_json_depth() -> BoxedStrategy<Pred> {
    (
        prop_oneof![3 => Just(Window::ALL), 1 => arb_window()],
        0u32..6,
        any::<bool>(),
    )
        .prop_map(|(window, max, strings)| Pred::DepthLe {
            window,
            max,
            open: ByteClass::from_bytes(*b"{["),
            close: ByteClass::from_bytes(*b"}]"),
            strings,
        })
        .boxed()
}

/// A `contains` whose window is just long enough (or one byte longer) for
/// its pattern, near the payload start: the boundary of "fits in the window".
fn arb_tight_contains() -> BoxedStrategy<Pred> {
    (arb_pattern(), 0u32..3, 0u32..2)
        .prop_map(|(pattern, start, slack)| Pred::Contains {
            window: Window {
                start,
                end: Some(start + pattern.len() as u32 + slack),
            },
            pattern,
        })
        .boxed()
}

/// A block or allow list over one window: an `or` (or an `and` of
/// negations) of `contains` of overlapping words, words that are prefixes
/// or suffixes of others, case-insensitive or not, mixed with `any`,
/// `all` and random patterns; what lowering combines into one automaton.
fn arb_block_list() -> BoxedStrategy<Pred> {
    const WORDS: &[&str] = &[
        "he", "she", "hers", "his", "sh", "hat", "hate", "hatehate", "at", "ate", "x", "hex", "eh",
        "ee",
    ];
    let member = |window: Window| {
        prop_oneof![
            6 => (select(WORDS), any::<bool>()).prop_map(move |(w, icase)| Pred::Contains {
                window,
                pattern: if icase {
                    word_pattern(w)
                } else {
                    w.bytes().map(|b| ByteClass::from_bytes([b])).collect()
                },
            }),
            1 => arb_pattern().prop_map(move |pattern| Pred::Contains { window, pattern }),
            1 => arb_class().prop_map(move |class| Pred::Any { window, class }),
            1 => arb_class().prop_map(move |class| Pred::Not(Box::new(Pred::All { window, class }))),
        ]
    };
    (
        prop_oneof![3 => Just(Window::ALL), 1 => arb_window()],
        any::<bool>(),
    )
        .prop_flat_map(move |(window, as_and)| {
            vec(member(window), 2..12).prop_map(move |members| {
                if as_and {
                    // `and` of negations: the same list, by De Morgan.
                    Pred::And(
                        members
                            .into_iter()
                            .map(|m| match m {
                                Pred::Not(inner) => *inner,
                                other => Pred::Not(Box::new(other)),
                            })
                            .collect(),
                    )
                } else {
                    Pred::Not(Box::new(Pred::Or(members)))
                }
            })
        })
        .boxed()
}

fn arb_leaf() -> BoxedStrategy<Pred> {
    prop_oneof![
        1 => Just(Pred::True),
        1 => Just(Pred::False),
        2 => (arb_cmp(), arb_offset()).prop_map(|(cmp, value)| Pred::Len { cmp, value }),
        2 => (arb_offset(), arb_class()).prop_map(|(index, class)| Pred::Byte { index, class }),
        3 => (arb_window(), arb_class()).prop_map(|(window, class)| Pred::All { window, class }),
        3 => (arb_window(), arb_class()).prop_map(|(window, class)| Pred::Any { window, class }),
        2 => arb_pattern().prop_map(|pattern| Pred::Prefix { pattern }),
        4 => (arb_window(), arb_pattern()).prop_map(|(window, pattern)| Pred::Contains {
            window,
            pattern
        }),
        3 => (
            arb_window(),
            prop_oneof![4 => 0u32..5, 1 => 0u32..=MAX_OFFSET],
            arb_bracket_class(),
            arb_bracket_class(),
            any::<bool>()
        )
            .prop_map(|(window, max, open, close, strings)| Pred::DepthLe {
                window,
                max,
                open,
                close,
                strings
            }),
        3 => arb_json_depth(),
        2 => arb_tight_contains(),
        2 => arb_block_list(),
    ]
    .boxed()
}

/// Predicates nested up to `depth` levels of `not`/`and`/`or` (including
/// empty `and`/`or`) over every leaf construct.
pub fn arb_pred(depth: u32) -> BoxedStrategy<Pred> {
    arb_leaf()
        .prop_recursive(depth, 48, 5, |inner| {
            prop_oneof![
                2 => inner.clone().prop_map(|p| Pred::Not(Box::new(p))),
                3 => vec(inner.clone(), 0..5).prop_map(Pred::And),
                3 => vec(inner, 0..5).prop_map(Pred::Or),
            ]
        })
        .boxed()
}

/// Predicates that [`crate::check_stream_safe`] accepts (*closed* in the
/// sense of [`crate::stream`]), nested up to `depth` levels: closed leaves,
/// `not` of upward predicates, `and`/`or` of closed ones. Leaves are drawn
/// from the same generator as [`arb_pred`] and kept when the check agrees.
pub fn arb_stream_pred(depth: u32) -> BoxedStrategy<Pred> {
    fn level(depth: u32, closed: bool) -> BoxedStrategy<Pred> {
        let leaf = arb_leaf()
            .prop_filter("leaf of the wanted class", move |p| {
                let candidate = if closed {
                    p.clone()
                } else {
                    Pred::Not(Box::new(p.clone()))
                };
                crate::check_stream_safe(&candidate, "$").is_ok()
            })
            .boxed();
        if depth == 0 {
            return leaf;
        }
        let same = level(depth - 1, closed);
        let other = level(depth - 1, !closed);
        prop_oneof![
            3 => leaf,
            2 => other.prop_map(|p| Pred::Not(Box::new(p))),
            2 => vec(same.clone(), 0..4).prop_map(Pred::And),
            2 => vec(same, 0..4).prop_map(Pred::Or),
        ]
        .boxed()
    }
    level(depth, true)
}

fn arb_action() -> impl Strategy<Value = Action> {
    select(&[Action::Pass, Action::Drop][..])
}

/// Any packet policy.
pub fn arb_policy() -> BoxedStrategy<Policy> {
    (arb_action(), arb_action(), arb_action(), arb_action())
        .prop_map(|(arp, ipv6_nd, other_ip, non_ip)| Policy {
            arp,
            ipv6_nd,
            other_ip,
            non_ip,
        })
        .boxed()
}

/// Whole specs: valid name, free-text description, any policy, and a
/// predicate nested up to 4 levels.
pub fn arb_spec() -> BoxedStrategy<Spec> {
    (
        "[A-Za-z_][A-Za-z0-9_]{0,20}",
        "[ -~]{0,30}",
        arb_policy(),
        arb_pred(4),
    )
        .prop_map(|(name, description, policy, predicate)| Spec {
            name,
            description,
            policy,
            predicate,
            mode: Mode::Packet,
        })
        .boxed()
}

/// Stream specs (format v2): any policy, the whole-stream view or the
/// `http_response` view, predicates from [`arb_stream_pred`].
pub fn arb_stream_spec() -> BoxedStrategy<Spec> {
    (
        "[A-Za-z_][A-Za-z0-9_]{0,20}",
        "[ -~]{0,30}",
        arb_policy(),
        arb_stream_pred(3),
        proptest::option::of(arb_stream_pred(2)),
    )
        .prop_map(|(name, description, policy, predicate, headers)| Spec {
            name,
            description,
            policy,
            predicate,
            mode: Mode::Stream(match headers {
                None => StreamView::Whole,
                Some(headers) => StreamView::HttpResponse { headers },
            }),
        })
        .boxed()
}

/// Bytes block-list words are made of: letters of both cases, NUL, 0xFF,
/// other high bytes (lone UTF-8 lead and continuation bytes), CR/LF,
/// JSON punctuation.
pub const BLOCK_WORD_BYTES: &[u8] = b"hHaAtTeEsSx\x00\xff\x80\xc3\xa9\xfe\r\n\"{";

/// Words of a random block list (1 to 8): short words over
/// [`BLOCK_WORD_BYTES`], with duplicates, 1-byte words, and words that are
/// prefixes, suffixes or case-flipped copies of others, the shapes where a
/// combined automaton's shared states and overlapping matches go wrong.
pub fn arb_block_words() -> BoxedStrategy<Vec<Vec<u8>>> {
    (
        vec(vec(select(BLOCK_WORD_BYTES), 1..6), 1..5),
        vec((0usize..6, any::<prop::sample::Index>(), 1usize..5), 0..5),
    )
        .prop_map(|(mut words, derived)| {
            for (how, from, cut) in derived {
                let w = words[from.index(words.len())].clone();
                let cut = cut.min(w.len());
                words.push(match how {
                    0 => w,                           // a duplicate
                    1 => w[..cut].to_vec(),           // a prefix
                    2 => w[w.len() - cut..].to_vec(), // a suffix
                    3 => vec![w[0]],                  // one byte
                    4 => w.to_ascii_uppercase(),
                    _ => [&w[..], &w[..cut]].concat(), // the word, then its own prefix
                });
            }
            words
        })
        .boxed()
}

/// The pattern of a block-list word: byte for byte, or case-insensitive
/// (both ASCII cases of every letter; other bytes as they are).
pub fn word_as_pattern(word: &[u8], case_insensitive: bool) -> Pattern {
    word.iter()
        .map(|&b| {
            if case_insensitive {
                both_cases(b)
            } else {
                ByteClass::from_bytes([b])
            }
        })
        .collect()
}

/// A stream-safe block list: none of `words` (each byte for byte, or
/// case-insensitive where `case_insensitive` says so, cycling) inside
/// `window`, as `not or` of `contains` or as `and` of `not contains`.
pub fn block_list_pred(
    words: &[Vec<u8>],
    case_insensitive: &[bool],
    window: Window,
    as_and: bool,
) -> Pred {
    let member = |(i, w): (usize, &Vec<u8>)| Pred::Contains {
        window,
        pattern: word_as_pattern(w, case_insensitive[i % case_insensitive.len().max(1)]),
    };
    let members = words.iter().enumerate().map(member);
    if as_and {
        Pred::And(members.map(|m| Pred::Not(Box::new(m))).collect())
    } else {
        Pred::Not(Box::new(Pred::Or(members.collect())))
    }
}

/// A random block list for a stream spec ([`block_list_pred`] over
/// [`arb_block_words`], mostly over the whole stream), sometimes beside a
/// random stream predicate in an `and`; with its words, for payloads that
/// embed them.
pub fn arb_stream_block_list() -> BoxedStrategy<(Pred, Vec<Vec<u8>>)> {
    (
        arb_block_words(),
        vec(any::<bool>(), 1..4),
        prop_oneof![
            4 => Just(Window::ALL),
            1 => (0u32..6).prop_map(|start| Window { start, end: None }),
            1 => (0u32..6, 1u32..40).prop_map(|(start, len)| Window { start, end: Some(start + len) }),
        ],
        any::<bool>(),
        proptest::option::weighted(0.25, arb_stream_pred(1)),
    )
        .prop_map(|(words, icase, window, as_and, beside)| {
            let list = block_list_pred(&words, &icase, window, as_and);
            let pred = match beside {
                Some(other) => Pred::And(vec![list, other]),
                None => list,
            };
            (pred, words)
        })
        .boxed()
}

/// JSON-like text: nested arrays and objects whose strings hold brackets,
/// escaped quotes and escaped backslashes.
pub fn arb_json_text() -> BoxedStrategy<String> {
    let string = vec(
        select(&["a", "[", "{", "]", "}", "\\\"", "\\\\", " ", ":"][..]),
        0..6,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()));
    let leaf = prop_oneof![string, Just("1".to_string()), Just("null".to_string())];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(","))),
            vec(inner, 0..4).prop_map(|items| {
                let fields: Vec<String> = items.iter().map(|v| format!("\"k\":{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
    .boxed()
}

/// Payloads: hot bytes, raw binary, text with CR/LF, JSON-ish text, nested
/// JSON with tricky strings, joined
/// words (with the pattern words embedded), and long repetitive payloads
/// that run past most windows. Empty payloads included; at most 4,000 bytes.
pub fn arb_payload() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => vec(arb_byte(), 0..48),
        2 => vec(any::<u8>(), 0..300),
        2 => vec(select(&b"abcdefghij hate HATE.,;:!?\r\n\t"[..]), 0..200),
        2 => vec(select(&b"{}[]\":,\\ a1"[..]), 0..120),
        3 => vec(select(PAYLOAD_WORDS), 0..24).prop_map(|words| words.concat().into_bytes()),
        3 => arb_json_text().prop_map(String::into_bytes),
        1 => (vec(arb_byte(), 1..8), 500usize..4000).prop_map(|(cycle, len)| {
            cycle.iter().cycle().take(len).copied().collect()
        }),
    ]
    .boxed()
}
