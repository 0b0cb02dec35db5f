//! The spec AST: the predicate language of docs/spec-format.md, one type per construct.
//!
//! Invariants every value built by [`crate::parse`] upholds (the lowering and
//! the emitter rely on them; constructors here do not re-check them):
//! - every offset, window bound and `len` constant is at most [`MAX_OFFSET`];
//! - a window's `end`, when present, is `>= start`;
//! - a [`ByteClass`] is stored as sorted, disjoint, non-adjacent ranges;
//! - a [`Pattern`] has between 1 and [`MAX_PATTERN_LEN`] classes.

/// The spec format version of per-packet specs: version 1 files, and the
/// canonical form of every [`Mode::Packet`] spec.
pub const FORMAT_VERSION: u64 = 1;

/// The spec format version that adds `mode` (and stream specs); a
/// [`Mode::Stream`] spec is always written as this version.
pub const FORMAT_VERSION_STREAM: u64 = 2;

/// Largest offset, window bound or length constant a spec may name.
/// A payload never exceeds 65,535 bytes (the IPv4 total length field).
pub const MAX_OFFSET: u32 = 65_535;

/// Longest pattern (`prefix`, `contains`) in byte classes.
pub const MAX_PATTERN_LEN: usize = 64;

/// Largest `max` of a `depth_le`.
pub const MAX_DEPTH: u32 = 65_535;

/// Largest spec text [`crate::parse`] reads: 4 MiB.
pub const MAX_SPEC_BYTES: usize = 4 << 20;

/// Deepest predicate nesting [`crate::parse`] accepts (the top predicate is
/// level 1). Each `and`/`or` level costs two JSON levels (object and `args`
/// array) and a pattern three more (pattern, class, range), so 48 levels
/// stay well inside serde_json's own limit of 127 nested arrays/objects: a
/// valid spec never trips that limit, and the nesting error names the path.
pub const MAX_PRED_DEPTH: usize = 48;

/// Longest diode name, in bytes (`[A-Za-z_][A-Za-z0-9_]{0,62}`).
pub const MAX_NAME_LEN: usize = 63;

/// A whole spec file: a named predicate plus the packet policy.
///
/// In [`Mode::Stream`] with the [`StreamView::HttpResponse`] view,
/// `predicate` is the *body* predicate (`$.view.http_response.body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Diode name: `[A-Za-z_][A-Za-z0-9_]{0,62}`; becomes the program name.
    pub name: String,
    /// Free text, carried into `lagic check` output only.
    pub description: String,
    /// What happens to packets that carry no TCP payload to judge.
    pub policy: Policy,
    /// The predicate every non-empty TCP payload must satisfy (packet
    /// mode), or the judged stream (stream mode; see [`Mode`]).
    pub predicate: Pred,
    /// What the predicate judges: each TCP payload on its own, or the byte
    /// stream of each TCP connection (spec format v2, docs/stream.md).
    pub mode: Mode,
}

/// What a spec's predicate judges (`"mode"` of spec format v2; every v1
/// spec is [`Mode::Packet`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Every TCP payload on its own: the meaning of every v1 spec.
    Packet,
    /// The byte stream of each TCP connection in the judged direction,
    /// through the given view. [`crate::parse`] accepts a stream spec only
    /// when its predicates pass [`crate::stream::check_stream_safe`].
    Stream(StreamView),
}

/// How a stream spec's predicates see the connection's byte stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamView {
    /// `predicate` judges the whole stream, from its first byte.
    Whole,
    /// The stream is a sequence of HTTP/1.x responses
    /// ([`crate::http_view`]): `headers` judges each response's header
    /// block, [`Spec::predicate`] each response's body, each from its own
    /// first byte.
    HttpResponse {
        /// The predicate over each header block (status line through the
        /// empty line, CR LF included).
        headers: Pred,
    },
}

/// What to do with a packet class that carries no inspectable TCP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let the packet through (`TC_ACT_OK`).
    Pass,
    /// Drop the packet (`TC_ACT_SHOT`).
    Drop,
}

/// Packet policy for traffic the predicate does not judge.
/// Defaults follow the packet model (docs/design.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    /// ARP frames (EtherType 0x0806). Default: pass.
    pub arp: Action,
    /// ICMPv6 neighbour discovery, types 133-137. Default: pass.
    pub ipv6_nd: Action,
    /// IPv4/IPv6 packets whose protocol is not TCP (and, for IPv6, not an
    /// extension header, which is always dropped). Default: drop.
    pub other_ip: Action,
    /// Other EtherTypes (VLAN tags excepted: always dropped). Default: drop.
    pub non_ip: Action,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            arp: Action::Pass,
            ipv6_nd: Action::Pass,
            other_ip: Action::Drop,
            non_ip: Action::Drop,
        }
    }
}

/// A set of byte values, kept as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteClass {
    ranges: Vec<(u8, u8)>,
}

impl ByteClass {
    /// Builds a class from any inclusive ranges (each `lo <= hi`), normalizing them.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u8, u8)>) -> ByteClass {
        let mut v: Vec<(u8, u8)> = ranges.into_iter().collect();
        v.sort_unstable();
        let mut out: Vec<(u8, u8)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            debug_assert!(lo <= hi);
            match out.last_mut() {
                Some(last) if u16::from(lo) <= u16::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        ByteClass { ranges: out }
    }

    /// The class holding exactly `bytes`.
    pub fn from_bytes(bytes: impl IntoIterator<Item = u8>) -> ByteClass {
        ByteClass::from_ranges(bytes.into_iter().map(|b| (b, b)))
    }

    /// The class with no byte in it (`[]`).
    pub fn empty() -> ByteClass {
        ByteClass { ranges: Vec::new() }
    }

    /// The class of all 256 byte values (`"any"`).
    pub fn full() -> ByteClass {
        ByteClass {
            ranges: vec![(0, 255)],
        }
    }

    /// `printable`: 0x20-0x7E.
    pub fn printable() -> ByteClass {
        ByteClass::from_ranges([(0x20, 0x7e)])
    }

    /// `text`: printable plus TAB, LF, CR.
    pub fn text() -> ByteClass {
        ByteClass::from_ranges([(0x09, 0x0a), (0x0d, 0x0d), (0x20, 0x7e)])
    }

    /// The inclusive ranges, sorted, disjoint and not adjacent (canonical).
    pub fn ranges(&self) -> &[(u8, u8)] {
        &self.ranges
    }

    /// Whether `byte` is in the class.
    pub fn contains(&self, byte: u8) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= byte && byte <= hi)
    }

    /// Whether no byte is in the class.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether every byte is in the class.
    pub fn is_full(&self) -> bool {
        self.ranges == [(0, 255)]
    }

    /// Number of byte values in the class.
    pub fn len(&self) -> usize {
        self.ranges
            .iter()
            .map(|&(lo, hi)| usize::from(hi - lo) + 1)
            .sum()
    }

    /// The bytes not in the class.
    pub fn complement(&self) -> ByteClass {
        ByteClass::from_bytes((0..=255u8).filter(|&b| !self.contains(b)))
    }
}

/// A sequence of byte classes; position `j` of a match must be in class `j`.
pub type Pattern = Vec<ByteClass>;

/// `[start, end)` over the payload; `end == None` is unbounded.
/// Selects `P[start .. min(end, n))`, empty when `start >= n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First payload offset selected.
    pub start: u32,
    /// Offset one past the last selected byte; `None` runs to the payload's end.
    pub end: Option<u32>,
}

impl Window {
    /// The whole payload.
    pub const ALL: Window = Window {
        start: 0,
        end: None,
    };

    /// The selected byte range of a payload of `n` bytes, as `start..end` indices.
    pub fn bounds(&self, n: usize) -> std::ops::Range<usize> {
        let start = self.start as usize;
        let end = self.end.map_or(n, |e| (e as usize).min(n));
        if start >= end {
            start.min(n)..start.min(n)
        } else {
            start..end
        }
    }

    /// The most bytes this window can select from any payload of at most
    /// [`MAX_OFFSET`] bytes: 0 means it is empty for every payload.
    pub fn max_len(&self) -> u32 {
        self.end
            .unwrap_or(MAX_OFFSET)
            .min(MAX_OFFSET)
            .saturating_sub(self.start)
    }
}

/// Comparison operator of `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl Cmp {
    /// Whether `lhs self rhs` holds.
    pub fn holds(self, lhs: u64, rhs: u64) -> bool {
        match self {
            Cmp::Lt => lhs < rhs,
            Cmp::Le => lhs <= rhs,
            Cmp::Eq => lhs == rhs,
            Cmp::Ne => lhs != rhs,
            Cmp::Ge => lhs >= rhs,
            Cmp::Gt => lhs > rhs,
        }
    }

    /// The operator that holds exactly when `self` does not.
    pub fn negate(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Ge,
            Cmp::Le => Cmp::Gt,
            Cmp::Eq => Cmp::Ne,
            Cmp::Ne => Cmp::Eq,
            Cmp::Ge => Cmp::Lt,
            Cmp::Gt => Cmp::Le,
        }
    }

    /// The operator as written in spec JSON.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Ge => ">=",
            Cmp::Gt => ">",
        }
    }
}

/// A predicate over the payload `P` (length `n`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pred {
    /// Always holds.
    True,
    /// Never holds.
    False,
    /// Holds when the argument does not.
    Not(Box<Pred>),
    /// Holds when every argument does (the empty `and` holds).
    And(Vec<Pred>),
    /// Holds when some argument does (the empty `or` does not).
    Or(Vec<Pred>),
    /// `n cmp value`.
    Len {
        /// The comparison.
        cmp: Cmp,
        /// The length compared with.
        value: u32,
    },
    /// `index < n` and `P[index]` in `class`.
    Byte {
        /// Payload offset of the byte.
        index: u32,
        /// Bytes allowed there.
        class: ByteClass,
    },
    /// Every byte of the window is in `class`.
    All {
        /// The bytes judged.
        window: Window,
        /// Bytes allowed.
        class: ByteClass,
    },
    /// Some byte of the window is in `class`.
    Any {
        /// The bytes searched.
        window: Window,
        /// Bytes looked for.
        class: ByteClass,
    },
    /// `n >= |pattern|` and `P[j]` in `pattern[j]` for every `j`.
    Prefix {
        /// One class per leading byte.
        pattern: Pattern,
    },
    /// `pattern` occurs entirely inside the window.
    Contains {
        /// The bytes searched; a match must lie wholly inside.
        window: Window,
        /// The class sequence looked for.
        pattern: Pattern,
    },
    /// Nesting depth never exceeds `max` (see docs/spec-format.md).
    DepthLe {
        /// The bytes the counter reads.
        window: Window,
        /// The deepest nesting allowed.
        max: u32,
        /// Bytes that open a level.
        open: ByteClass,
        /// Bytes that close a level (never below 0).
        close: ByteClass,
        /// Whether bytes inside JSON string literals are skipped.
        strings: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_and_max_len() {
        let w = Window {
            start: 4,
            end: Some(8),
        };
        assert_eq!(w.bounds(100), 4..8);
        assert_eq!(w.bounds(6), 4..6);
        assert_eq!(w.bounds(3), 3..3);
        assert_eq!(w.max_len(), 4);
        assert_eq!(Window::ALL.max_len(), MAX_OFFSET);
        assert_eq!(
            Window {
                start: 7,
                end: Some(7)
            }
            .max_len(),
            0
        );
        assert_eq!(
            Window {
                start: MAX_OFFSET,
                end: None
            }
            .max_len(),
            0
        );
    }

    #[test]
    fn cmp_negation_is_complement() {
        for cmp in [Cmp::Lt, Cmp::Le, Cmp::Eq, Cmp::Ne, Cmp::Ge, Cmp::Gt] {
            for (a, b) in [(0, 0), (1, 2), (2, 1)] {
                assert_eq!(cmp.negate().holds(a, b), !cmp.holds(a, b));
            }
        }
    }

    #[test]
    fn classes_normalize() {
        let c = ByteClass::from_ranges([(10, 20), (0, 3), (4, 9), (30, 30)]);
        assert_eq!(c.ranges(), &[(0, 20), (30, 30)]);
        assert_eq!(c.len(), 22);
        assert_eq!(c.complement().len(), 234);
        assert!(ByteClass::from_ranges([(0, 255)]).is_full());
    }
}
