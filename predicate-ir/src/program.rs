//! The lowered program: what the emitter compiles.
//!
//! A [`Program`] splits a predicate into
//! - **scans**: a [`Machine`] run over one [`Window`] of the payload, byte by
//!   byte, whose whole state is one small integer ([`StateId`]), so that a
//!   scan can stop after any byte and resume later (stream mode);
//! - **passes**: scans over the same window, fused so that the emitted code
//!   reads each byte once for all of them;
//! - a **formula**: a boolean combination of payload-length tests, single-byte
//!   tests and "scan `i` accepted" atoms, evaluated after (or lazily around)
//!   the passes.
//!
//! Invariants (established by [`crate::lower()`]):
//! - every `Formula::Scan(i)` names an existing scan, and every scan is in
//!   exactly one pass; all scans of a pass share the pass's window;
//! - a machine's states are `0..state_count()`, the initial state is
//!   [`Machine::INITIAL`] (0), and `step` maps states to states;
//! - a *sink* state steps to itself on every byte: once every scan of a pass
//!   is in a sink, the rest of the window cannot change the pass's results.

use crate::spec::{ByteClass, Cmp, Policy, Window};

/// A scan machine state. Small by construction (see [`crate::lower::Limits`]).
pub type StateId = u32;

/// Index of a scan in [`Program::scans`].
pub type ScanId = usize;

/// The lowered form of a [`crate::spec::Spec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The spec's name; becomes the program's name in the object.
    pub name: String,
    /// The spec's packet policy.
    pub policy: Policy,
    /// Every machine, each over its window; [`Formula::Scan`] indexes this.
    pub scans: Vec<Scan>,
    /// The scans grouped by window: one walk over the payload per pass.
    /// Every scan is in exactly one pass.
    pub passes: Vec<Pass>,
    /// The verdict of a non-empty payload, over the scans' results.
    pub formula: Formula,
}

/// One machine over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The bytes the machine reads, in order.
    pub window: Window,
    /// The machine, started in [`Machine::INITIAL`].
    pub machine: Machine,
    /// JSON path in the spec of the construct this scan decides (of the
    /// first one, when several constructs lower to the same scan), for
    /// reports such as `lagic watch`; `$.predicate` when normalization
    /// rewrote the construct past recognition.
    pub path: String,
}

/// Scans over the same window, run together in one pass over its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The window every scan of the pass shares.
    pub window: Window,
    /// The scans stepped on each byte.
    pub scans: Vec<ScanId>,
}

/// A boolean formula over the payload; the verdict of a non-empty payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formula {
    /// A constant verdict.
    Const(bool),
    /// Holds when the argument does not.
    Not(Box<Formula>),
    /// Holds when every argument does.
    And(Vec<Formula>),
    /// Holds when some argument does.
    Or(Vec<Formula>),
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
    /// The scan's final state is accepting.
    Scan(ScanId),
}

/// A deterministic, resumable byte machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    /// An explicit automaton (`all`, `any`, `contains`).
    Dfa(Dfa),
    /// The bracket-depth counter of `depth_le`; its state packs the depth and
    /// the string mode into one integer (see [`DepthCounter`]).
    Depth(DepthCounter),
}

/// An explicit DFA over bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dfa {
    /// `next[s][b]`: the state after reading byte `b` in state `s`.
    pub next: Vec<[StateId; 256]>,
    /// `accepting[s]`: the scan holds if it ends in state `s`.
    pub accepting: Vec<bool>,
}

/// String mode of the depth counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StringMode {
    /// Outside a string literal (or `strings == false`).
    Code = 0,
    /// Inside a string literal.
    Str = 1,
    /// Inside a string literal, right after a backslash.
    StrEscape = 2,
}

/// `depth_le`: depth `d` in `0..=max`, a string mode, or the failed sink.
///
/// State encoding: depth `d` in mode `m` is `d * 3 + m`, and the failed sink
/// is `(max + 1) * 3`. The initial state (depth 0, `Code`) is therefore 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthCounter {
    /// The deepest nesting allowed; one more enters the failed sink.
    pub max: u32,
    /// Bytes that open a level.
    pub open: ByteClass,
    /// Bytes that close a level (never below 0).
    pub close: ByteClass,
    /// Skip bytes inside JSON string literals (`"`..`"`, `\` escapes one byte).
    pub strings: bool,
}

/// The byte `"` that opens and closes string literals.
pub const QUOTE: u8 = b'"';
/// The byte `\` that escapes the next byte inside a string literal.
pub const BACKSLASH: u8 = b'\\';

impl DepthCounter {
    /// The sink entered when the depth exceeds `max`; it never leaves.
    pub fn failed_state(&self) -> StateId {
        (self.max + 1) * 3
    }

    /// The state of depth `depth` in string mode `mode`.
    pub fn state(depth: u32, mode: StringMode) -> StateId {
        depth * 3 + mode as u32
    }

    /// `(depth, mode)` of a non-failed state.
    pub fn decode(&self, state: StateId) -> Option<(u32, StringMode)> {
        if state >= self.failed_state() {
            return None;
        }
        let mode = match state % 3 {
            0 => StringMode::Code,
            1 => StringMode::Str,
            _ => StringMode::StrEscape,
        };
        Some((state / 3, mode))
    }

    /// One byte of the depth counter. The order of the tests is normative
    /// (docs/spec-format.md): string handling first when `strings` is set,
    /// then `open`, then `close`.
    ///
    /// Exactly: the failed state is a sink. With `strings`, in `StrEscape`
    /// the byte is skipped and the mode returns to `Str`; in `Str` a
    /// backslash moves to `StrEscape`, a quote back to `Code`, and any other
    /// byte is skipped; in `Code` a quote moves to `Str`. A byte not consumed
    /// by those rules (every byte when `strings` is off) that is in `open`
    /// deepens by one, failing if the depth would exceed `max`; otherwise,
    /// if it is in `close`, the depth drops by one, never below zero.
    pub fn step(&self, state: StateId, byte: u8) -> StateId {
        let Some((depth, mode)) = self.decode(state) else {
            return state;
        };
        if self.strings {
            match mode {
                StringMode::Str if byte == BACKSLASH => {
                    return Self::state(depth, StringMode::StrEscape)
                }
                StringMode::Str if byte == QUOTE => return Self::state(depth, StringMode::Code),
                StringMode::Str => return state,
                StringMode::StrEscape => return Self::state(depth, StringMode::Str),
                StringMode::Code if byte == QUOTE => return Self::state(depth, StringMode::Str),
                StringMode::Code => {}
            }
        }
        if self.open.contains(byte) {
            if depth + 1 > self.max {
                self.failed_state()
            } else {
                Self::state(depth + 1, mode)
            }
        } else if self.close.contains(byte) {
            Self::state(depth.saturating_sub(1), mode)
        } else {
            state
        }
    }
}

impl Machine {
    /// The state every machine starts in, for either kind.
    pub const INITIAL: StateId = 0;

    /// How many states the machine has (states are `0..state_count()`).
    pub fn state_count(&self) -> usize {
        match self {
            Machine::Dfa(d) => d.next.len(),
            Machine::Depth(c) => c.failed_state() as usize + 1,
        }
    }

    /// The state after reading `byte` in `state`.
    pub fn step(&self, state: StateId, byte: u8) -> StateId {
        match self {
            Machine::Dfa(d) => d.next[state as usize][usize::from(byte)],
            Machine::Depth(c) => c.step(state, byte),
        }
    }

    /// Whether the scan holds when its window ends in `state`.
    pub fn accepts(&self, state: StateId) -> bool {
        match self {
            Machine::Dfa(d) => d.accepting[state as usize],
            Machine::Depth(c) => state != c.failed_state(),
        }
    }

    /// True when `state` steps to itself on every byte.
    pub fn is_sink(&self, state: StateId) -> bool {
        match self {
            Machine::Dfa(d) => d.next[state as usize].iter().all(|&t| t == state),
            Machine::Depth(c) => state == c.failed_state(),
        }
    }
}

impl Machine {
    /// Runs the machine from `state` over `bytes`: a scan resumed on the
    /// next chunk of its window continues from the state it stopped in.
    pub fn run(&self, state: StateId, bytes: &[u8]) -> StateId {
        bytes.iter().fold(state, |s, &b| self.step(s, b))
    }
}

impl Formula {
    /// The formula's value for `payload`, given whether each scan accepted
    /// (`scan_accepted[i]` for [`Formula::Scan`]`(i)`).
    pub fn evaluate(&self, payload: &[u8], scan_accepted: &[bool]) -> bool {
        match self {
            Formula::Const(b) => *b,
            Formula::Not(f) => !f.evaluate(payload, scan_accepted),
            Formula::And(fs) => fs.iter().all(|f| f.evaluate(payload, scan_accepted)),
            Formula::Or(fs) => fs.iter().any(|f| f.evaluate(payload, scan_accepted)),
            Formula::Len { cmp, value } => cmp.holds(payload.len() as u64, u64::from(*value)),
            Formula::Byte { index, class } => payload
                .get(*index as usize)
                .is_some_and(|&b| class.contains(b)),
            Formula::Scan(id) => scan_accepted[*id],
        }
    }

    /// Number of atoms (`Len`, `Byte`, `Scan`) in the formula.
    pub fn atom_count(&self) -> usize {
        match self {
            Formula::Const(_) => 0,
            Formula::Not(f) => f.atom_count(),
            Formula::And(fs) | Formula::Or(fs) => fs.iter().map(Formula::atom_count).sum(),
            Formula::Len { .. } | Formula::Byte { .. } | Formula::Scan(_) => 1,
        }
    }
}

impl Program {
    /// The final state of scan `id` on `payload`: its machine run from
    /// [`Machine::INITIAL`] over the scan window's bytes.
    pub fn run_scan(&self, id: ScanId, payload: &[u8]) -> StateId {
        let scan = &self.scans[id];
        let bytes = &payload[scan.window.bounds(payload.len())];
        scan.machine.run(Machine::INITIAL, bytes)
    }

    /// Whether `payload` satisfies the lowered predicate: every scan run,
    /// then the formula. Equals [`crate::eval()`] of the spec's predicate for
    /// every payload of at most [`crate::spec::MAX_OFFSET`] bytes.
    pub fn evaluate(&self, payload: &[u8]) -> bool {
        let accepted: Vec<bool> = (0..self.scans.len())
            .map(|id| self.scans[id].machine.accepts(self.run_scan(id, payload)))
            .collect();
        self.formula.evaluate(payload, &accepted)
    }

    /// The packet verdict for a TCP payload under the packet model of docs/design.md:
    /// an empty payload (pure ACK/SYN/FIN) passes, any other is judged by
    /// the predicate. True means pass.
    pub fn verdict(&self, payload: &[u8]) -> bool {
        payload.is_empty() || self.evaluate(payload)
    }
}
