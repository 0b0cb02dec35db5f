//! Where the emitted code keeps things: a map for translation validation.
//!
//! The map says only WHERE to look in the emitted instructions (which
//! instruction ranges step which machine on which chunk byte, which
//! registers and stack slots hold a machine's state, where the formula
//! starts). It says nothing about what the code does: a validator executes
//! the instructions themselves (see the `lagic-validate` crate). A wrong
//! map makes validation fail; it cannot make wrong code pass, because every
//! range it names is run on every state and byte.
//!
//! Instruction positions are slots (8-byte units, an `ld_imm64` takes two)
//! counted from the function's first instruction, as in the object.

use predicate_ir::{ScanId, Window};

/// The map of one emitted module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeMap {
    /// One per callback, in [`crate::Module::callbacks`] order.
    pub passes: Vec<PassMap>,
    /// Passes walked by straight-line code in the entry function, without
    /// a callback, in the order they run.
    pub inline: Vec<InlineMap>,
    /// Prefilters: code in a callback that may jump over a chunk's steps.
    pub prefilters: Vec<PrefilterMap>,
    /// Chunks of table passes stepped as interleaved chains, in front of
    /// their ordinary steps.
    pub chains: Vec<ChainMap>,
    /// Stack offset (from the entry's `r10`) of each scan's 8-byte final
    /// state, indexed by [`ScanId`].
    pub final_states: Vec<i16>,
    /// Entry slot where the formula's code begins.
    pub formula_start: usize,
    /// Stack offsets (from the entry's `r10`) of the payload's start offset
    /// and length, each a u16.
    pub payload_start: i16,
    /// See `payload_start`.
    pub payload_len: i16,
    /// A stream diode with the `http_response` view: its byte callback's
    /// machine steps. `None` otherwise.
    pub http: Option<HttpMap>,
}

/// The byte callback of a stream diode with the `http_response` view
/// (emit-bpf's `codegen/http.rs`): straight-line register code steps each
/// machine on the byte in `r8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMap {
    /// Index of the callback in [`crate::Module::callbacks`].
    pub callback: usize,
    /// Every machine step in the callback.
    pub steps: Vec<HttpStep>,
}

/// Which machine an [`HttpStep`] steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMachine {
    /// The framing DFA (`predicate_ir::http_frame`).
    Frame,
    /// Scan `ScanId` of the header-block program.
    Headers(ScanId),
    /// Scan `ScanId` of the body program.
    Body(ScanId),
}

/// One machine step of the byte callback: slots `start..end`, the state in
/// `encoding`'s registers before and after, the byte in `r8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpStep {
    /// The machine.
    pub machine: HttpMachine,
    /// Registers holding its state.
    pub encoding: StateEncoding,
    /// First slot of the step.
    pub start: usize,
    /// The slot after it.
    pub end: usize,
}

/// One pass: a callback stepping some machines over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassMap {
    /// The window every machine of the pass reads.
    pub window: Window,
    /// Entry slot where the pass's setup begins (after the previous pass).
    pub setup_start: usize,
    /// The machines, in the order the callback steps them on each byte.
    pub machines: Vec<MachineMap>,
    /// Every step range in the callback: chunk byte `offset` of the
    /// machine `machine` (an index into `machines`) is the straight-line
    /// code `start..end`.
    pub steps: Vec<StepRange>,
}

/// One inline pass: machines stepped over a short window by unrolled code
/// in the entry function (see `codegen/inline.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineMap {
    /// The window every machine of the pass reads.
    pub window: Window,
    /// Entry slot of the pass's first instruction.
    pub start: usize,
    /// Entry slot after its last: the final states are stored by then.
    pub end: usize,
    /// The machines, in the order each byte's steps come.
    pub machines: Vec<MachineMap>,
    /// Every step range, in the entry function: `offset` is the byte's
    /// position inside its block.
    pub steps: Vec<StepRange>,
    /// Word tests (see `codegen/swar.rs`), in the order they come.
    pub words: Vec<WordTestMap>,
}

/// A word test in an inline pass: from `start` the entry either jumps to
/// `slow` (the steps of the word's eight bytes, which end at `skip`) or
/// falls through to `skip` with every register the code after it reads
/// unchanged. The pass has one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordTestMap {
    /// First slot of the test (its word load).
    pub start: usize,
    /// Where the word's byte steps begin.
    pub slow: usize,
    /// Where the test and the byte steps both continue.
    pub skip: usize,
}

/// A prefilter (see `codegen/prefilter.rs`): code in callback `pass` that,
/// from `start`, either falls to `slow` (the chunk's steps, run byte by
/// byte) or jumps to `skip` (the chunk's end, the steps passed over) with
/// the machine's state unchanged. Only the pass's one machine is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefilterMap {
    /// The callback, an index into [`CodeMap::passes`].
    pub pass: usize,
    /// First slot of the test.
    pub start: usize,
    /// Where the chunk's steps begin.
    pub slow: usize,
    /// Where the chunk's steps end.
    pub skip: usize,
    /// Bytes the chunk holds, from the chunk pointer at `start` on.
    pub span: u16,
}

/// A chunk stepped as interleaved chains of table steps (see
/// `codegen/table.rs`): code in callback `pass` that, from `start`, either
/// falls to `slow` (the chunk's ordinary steps) or steps the chunk's `span`
/// bytes as [`ChainMap::chains`], merges their states into the pass's state
/// register from `merge` on, and jumps to `skip` (where the ordinary steps
/// end). Only the pass's one machine is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMap {
    /// The callback, an index into [`CodeMap::passes`].
    pub pass: usize,
    /// First slot of the chains' code.
    pub start: usize,
    /// Where the chunk's ordinary steps begin.
    pub slow: usize,
    /// Where the chunk's ordinary steps end.
    pub skip: usize,
    /// First slot of the merge, after the last chain step.
    pub merge: usize,
    /// Bytes the chunk holds, from the chunk pointer at `start` on.
    pub span: u16,
    /// Bytes each chain but the first steps from the initial state before
    /// its share of the chunk begins.
    pub resync: u16,
    /// The chains, in chunk order.
    pub chains: Vec<ChainSpan>,
    /// Every chain step, in slot order.
    pub steps: Vec<ChainStep>,
}

/// One chain of a [`ChainMap`]: its state register and the chunk bytes
/// `from..to` it steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSpan {
    /// The register holding the chain's state (times the table's scale).
    pub reg: u8,
    /// First chunk byte stepped.
    pub from: u16,
    /// Chunk byte after the last one stepped.
    pub to: u16,
}

/// One table step of a chain on one chunk byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainStep {
    /// Index into [`ChainMap::chains`].
    pub chain: usize,
    /// The chunk byte stepped on.
    pub offset: u16,
    /// First slot of the step.
    pub start: usize,
    /// Slot after the step.
    pub end: usize,
}

/// Where one machine's state lives inside a callback or an inline pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineMap {
    /// The scan the machine runs.
    pub scan: ScanId,
    /// How its state sits in registers.
    pub encoding: StateEncoding,
}

/// How an IR state is held in registers (register numbers 0..=10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateEncoding {
    /// The DFA state number times `scale`, in one register: 1 for branchy
    /// steps; a table-driven step keeps the state premultiplied by its
    /// table's row size (its byte offset in the table), so no multiply or
    /// shift lengthens the chain of dependent loads from byte to byte.
    Dfa {
        /// The register.
        reg: u8,
        /// The register holds `state * scale`.
        scale: u32,
    },
    /// The depth counter: the depth in one register, the mode in another.
    /// `modes` = the register values of code, string, escape and failed.
    Depth {
        /// The depth register.
        depth_reg: u8,
        /// The mode register (its value is also the scan's final state).
        mode_reg: u8,
        /// Mode values: code, in a string, after a backslash, failed.
        modes: [i32; 4],
    },
}

/// One machine's step on one chunk byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRange {
    /// Index into [`PassMap::machines`].
    pub machine: usize,
    /// The chunk byte stepped on (0 for the single-byte tier).
    pub offset: u16,
    /// First slot of the step.
    pub start: usize,
    /// Slot after the step: every path through it ends here.
    pub end: usize,
}
