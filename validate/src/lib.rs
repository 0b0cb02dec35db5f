//! Translation validation for lagic: checks, for one compiled object, that
//! its instructions implement the program lowered from the spec.
//!
//! Everything here executes the object's own bytes in [`vm`], an eBPF
//! interpreter written from the kernel's instruction-set documentation
//! ([`isa`] decodes raw instructions, [`object`] reads the ELF with
//! `goblin`), sharing no code with the emitter. The emitter's
//! [`emit_bpf::codemap::CodeMap`] is used only as a map of where to look;
//! what the code does always comes from running it.
//!
//! Checks ([`validate`]): every machine step, in every copy, on every
//! reachable state and byte ([`step`]); the walk over the window for every
//! payload length 0..=65,535 ([`walk`], by classes of lengths each proven
//! by one symbolic run); the formula for every combination
//! of scan results and length classes ([`formula`]), with the ring buffer
//! of drop events both free and full ([`watch`]); passes walked inline, by
//! straight-line code in the entry, get their own step and walk checks
//! ([`inline`]); a prefilter that jumps over a chunk's steps is checked lane
//! by lane against the IR ([`prefilter`]), the steps and walk on the object
//! with it bypassed; so is an inline pass's word test ([`swar`]); a table
//! pass's chunk stepped as interleaved chains is checked against the
//! chunk's ordinary steps ([`chains`]), the steps and walk with the chains
//! bypassed. docs/validation.md says what this implies and what it does
//! not cover.

pub mod chains;
pub mod formula;
pub mod frame;
pub mod http;
pub mod inline;
pub mod isa;
pub mod object;
pub mod patch;
pub mod prefilter;
pub mod rodata;
pub mod step;
pub mod stream;
pub mod swar;
pub mod vm;
pub mod walk;
pub mod watch;

use emit_bpf::codemap::CodeMap;
use predicate_ir::Program;

pub use object::{Object, ObjectError};
pub use stream::validate_stream;
pub use vm::VmError;

/// Where emitted code and IR disagree, or why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// The object could not be read.
    #[error("cannot read the object: {0}")]
    Object(#[from] ObjectError),
    /// The object does not have the shape the code map describes.
    #[error("the object does not match its code map: {0}")]
    Map(String),
    /// A machine step disagrees with the IR.
    #[error(
        "scan {scan} (pass {pass}, chunk byte {offset}), state {state}, byte {byte:#04x}: {what}"
    )]
    Step {
        /// The scan.
        scan: usize,
        /// The emitted pass (callback) holding the step.
        pass: usize,
        /// The chunk byte of the step's copy.
        offset: u16,
        /// The IR state stepped from.
        state: String,
        /// The byte value.
        byte: u8,
        /// What differs.
        what: String,
    },
    /// An inline pass (straight-line code in the entry) disagrees with the IR.
    #[error("inline pass {pass} (scans {scans:?}){at}: {what}")]
    Inline {
        /// The inline pass, in the order they run.
        pass: usize,
        /// Its scans.
        scans: Vec<usize>,
        /// Where: the payload length, or the step, state and byte.
        at: String,
        /// What differs.
        what: String,
    },
    /// A prefilter may skip a chunk the IR would not stay on, or does not
    /// continue like the steps it jumps over.
    #[error("prefilter {index} (pass {pass}): {what}")]
    Prefilter {
        /// The prefilter, an index into the code map's list.
        index: usize,
        /// The emitted pass holding it.
        pass: usize,
        /// What is wrong.
        what: String,
    },
    /// A chunk stepped as chains may leave another state than its
    /// ordinary steps, or the check could not run.
    #[error("chained chunk {index} (pass {pass}): {what}")]
    Chains {
        /// The chained chunk, an index into the code map's list.
        index: usize,
        /// The emitted pass holding it.
        pass: usize,
        /// What is wrong.
        what: String,
    },
    /// The callback stops the loop while a machine can still change.
    #[error("pass {pass}, machines in states [{states}]: {what}")]
    EarlyStop {
        /// The emitted pass.
        pass: usize,
        /// The machines' states.
        states: String,
        /// What happened.
        what: String,
    },
    /// The walk over the window does not visit each position once, in order.
    #[error("pass {pass} (scans {scans:?}), payload length {len}: {what}")]
    Walk {
        /// The emitted pass.
        pass: usize,
        /// Its scans.
        scans: Vec<usize>,
        /// The payload length.
        len: u32,
        /// What differs.
        what: String,
    },
    /// The formula disagrees with the IR's.
    #[error("formula, payload length {len}, scans accepted {accepted:?}{bytes}: the emitted code says {got}, the IR {want}")]
    Formula {
        /// The payload length.
        len: u32,
        /// Which scans accepted.
        accepted: Vec<bool>,
        /// The formula's byte tests' inputs, if any.
        bytes: String,
        /// The emitted verdict.
        got: String,
        /// The IR's verdict.
        want: String,
    },
    /// A stream diode's formulas disagree with the IR's ([`stream::formula`]).
    #[error("stream formulas, stream length {len}{}, scans accepted {accepted:?}, final states {states}: the emitted code says {got}, the IR {want}", if *fin { " with FIN" } else { " without FIN" })]
    StreamFormula {
        /// The stream length with the segment (what `len` tests read).
        len: u64,
        /// Whether the segment carries a FIN (the exact formula applies).
        fin: bool,
        /// Which scans accepted.
        accepted: Vec<bool>,
        /// The scans' final states and the ring buffer's state.
        states: String,
        /// What the emitted code did.
        got: String,
        /// What the IR says.
        want: String,
    },
    /// Executing the program failed where it must not.
    #[error("during {during}: {error}")]
    Exec {
        /// What was run.
        during: String,
        /// The interpreter's error.
        error: VmError,
    },
}

/// What validation did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Instructions the step check executed.
    pub step_insns: u64,
    /// Payload lengths the walk check covered, summed over passes.
    pub walk_lengths: u64,
    /// Classes of lengths the walk check proved by one symbolic run each.
    pub walk_classes: u64,
    /// Lengths the walk check ran one by one.
    pub walk_one_by_one: u64,
    /// Formula cases run (length class, scan results, tested bytes).
    pub formula_cases: u64,
    /// Paths the prefilter check followed (per prefilter and state).
    pub prefilter_paths: u64,
    /// Runs of inline word tests the word-test check made ([`swar`]).
    pub word_test_runs: u64,
    /// Time spent in the step, walk and formula checks.
    pub times: [std::time::Duration; 3],
    /// Stream diodes whose windows end past stream offset
    /// `stream::walk::MAX_TAIL_START`: the stream offsets below the tail
    /// the walk check sampled out (0: every offset was run; the CLI says
    /// so when it is not).
    pub stream_offsets_unchecked: u64,
}

/// Validates `object` (the bytes about to be written) against `program`,
/// using `map` to find the machines' code.
pub fn validate(
    program: &Program,
    object: &[u8],
    map: &CodeMap,
) -> Result<Report, ValidationError> {
    let object = Object::parse(object)?;
    if object.callbacks.len() != map.passes.len() {
        return Err(ValidationError::Map(format!(
            "{} callbacks in the object, {} passes in the map",
            object.callbacks.len(),
            map.passes.len()
        )));
    }
    let t = std::time::Instant::now();
    // The steps and the walk run on the object with every chunk stepped
    // byte by byte; the prefilters are then checked on their own.
    let stepped = chains::bypassed(&prefilter::bypassed(&object, map)?, map)?;
    let (step_insns, checked_steps) = step::check(program, &stepped, map)?;
    let step_time = t.elapsed();
    let t = std::time::Instant::now();
    let walk = walk::check(program, &stepped, map, 0..=walk::MAX_LEN, &checked_steps)?;
    let prefilter_paths = prefilter::check(program, &object, map, Some(&checked_steps))?;
    // Chained chunks: against their ordinary steps, proven above.
    let chain_insns = chains::check(program, &object, map, &checked_steps)?;
    let walk_time = t.elapsed();
    // Inline passes: their steps and walk (counted with the others').
    let t = std::time::Instant::now();
    // Word tests are bypassed there (their byte steps run) and checked on
    // their own.
    let words_bypassed = swar::bypassed(&object, map)?;
    let (inline_insns, inline_walk) = inline::check(program, &words_bypassed, map)?;
    let word_test_runs = swar::check(program, &object, map)?;
    let step_insns = step_insns + inline_insns + chain_insns;
    let walk_time = walk_time + t.elapsed();
    let t = std::time::Instant::now();
    let formula_cases = formula::check(program, &object, map)?;
    Ok(Report {
        step_insns,
        walk_lengths: walk.lengths + inline_walk.lengths,
        walk_classes: walk.classes + inline_walk.classes,
        walk_one_by_one: walk.one_by_one + inline_walk.one_by_one,
        formula_cases,
        prefilter_paths,
        word_test_runs,
        times: [step_time, walk_time, t.elapsed()],
        stream_offsets_unchecked: 0,
    })
}
