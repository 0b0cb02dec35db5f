//! Code generation: a lowered [`Program`] becomes an entry function (the TC
//! classifier) plus one `bpf_loop` callback per scan pass not walked inline.
//!
//! The entry function, top to bottom:
//! 1. [`packet`]: make the whole skb linear, parse Ethernet / IPv4 / IPv6 /
//!    TCP by the packet model of docs/design.md, and leave the payload bounds in
//!    registers, or jump to a policy verdict. Everything malformed drops.
//! 2. For each pass: [`inline`] walks a window that ends early with
//!    straight-line code; otherwise [`scan`] sets up the scan context on
//!    the stack and calls `bpf_loop` with the pass's callback (whose
//!    64-byte chunks may start with a [`prefilter`]). Either way each scan's
//!    final state is stored on the stack.
//! 3. [`formula`]: branch on length tests, single-byte tests and the accept
//!    bytes to `PASS` or `DROP`.
//! 4. [`verdict`]: one exit per [`Reason`]: count it in the counters map
//!    and, for a drop, record a decision event in the ring buffer.
//!
//! Register conventions of the entry function: `r6` = skb throughout. The
//! prologue leaves `r7` = payload start offset, `r8` = payload end offset,
//! `r9` = payload length `n` (> 0), and stores the start and `n` into the
//! scan context; each pass and the formula reload them from there, so no
//! register carries their ranges across a `bpf_loop` call. Offsets count
//! from the frame's first byte and never exceed [`MAX_FRAME`].
//!
//! Keeping the verifier's work linear is a design goal here, not an
//! afterthought: the scan context, the per-scan final states and the
//! machine registers are all shaped so that paths which differ only in
//! run-time values prune into one another (see `scan.rs` and
//! docs/compiler.md). Tests hold every seed diode to a verifier budget and
//! the cost of passes to linear growth (tests/examples_kernel.rs).

mod asm;
mod formula;
mod http;
mod inline;
mod packet;
mod prefilter;
mod scan;
pub(crate) mod stream;
mod swar;
mod table;
mod verdict;

use predicate_ir::Program;

use crate::codemap::{CodeMap, InlineMap, PassMap, PrefilterMap, StepRange, WordTestMap};
use crate::decision::Reason;
use crate::insn::Insn;
use crate::module::{Function, Module};
use crate::Options;
use asm::{Asm, Label};
pub(crate) use scan::machine_state;

/// Largest frame the diode inspects. Direct packet access cannot reach a
/// variable offset above 0xFFFF (the verifier's MAX_PACKET_OFF); longer
/// frames are dropped as not fully inspectable.
pub(crate) const MAX_FRAME: i32 = 0xFFFF;

/// Errors of code generation. These indicate a program beyond what the
/// emitter supports or a bug; `lagic check` surfaces them before emission.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A bug in the emitter.
    #[error("internal code generation error: {0}")]
    Internal(&'static str),
    /// A jump farther than a 16-bit offset reaches: a function too long
    /// for the code the spec needs.
    #[error(
        "{path}: generated jump from slot {from} to slot {to} exceeds the 16-bit jump range; \
         simplify the spec"
    )]
    JumpTooFar {
        /// `$`: the whole spec (the assembler knows no construct).
        path: String,
        /// Slot of the jump.
        from: usize,
        /// Slot of its target.
        to: usize,
    },
    /// More scans than the stack frame holds final states for.
    #[error(
        "{path}: the spec needs {scans} distinct scans and this construct's is the first past \
         the emitter's limit of {max} scans per {kind} program ({why}); use fewer distinct \
         windows, or combine patterns over one window in one `or`/`and`"
    )]
    TooManyScans {
        /// JSON path of the first construct past the limit.
        path: String,
        /// Scans the spec needs.
        scans: usize,
        /// Most scans supported.
        max: usize,
        /// "packet" or "stream".
        kind: &'static str,
        /// Where the limit comes from.
        why: &'static str,
    },
    /// A stream spec whose scans carry more state than a flow value holds.
    #[error(
        "{path}: the stream spec's scans carry {slots} machine registers per flow and this \
         construct's are the first past the emitter's limit of {max} (a flow's value in the \
         flow map holds them); use fewer distinct scans"
    )]
    TooManyStreamSlots {
        /// JSON path of the first construct past the limit.
        path: String,
        /// Registers the scans need.
        slots: usize,
        /// Most supported.
        max: usize,
    },
    /// A stream diode's flow table size outside what lagic builds.
    #[error(
        "a flow table of {flows} flows requested; a stream diode's holds {min} to {max} \
         (docs/stream.md, \"The flow table\")"
    )]
    FlowsOutOfRange {
        /// Flows requested.
        flows: u32,
        /// Fewest supported.
        min: u32,
        /// Most supported.
        max: u32,
    },
    /// An excerpt longer than an event holds.
    #[error("excerpt of {excerpt} bytes requested; at most {max} are supported")]
    ExcerptTooLong {
        /// Bytes requested.
        excerpt: u32,
        /// Most supported.
        max: u32,
    },
    /// Transition tables beyond what one read-only map value holds.
    #[error(
        "{path}: its automaton of {states} states over {classes} byte classes needs {bytes} bytes \
         of tables in total; an object holds at most {max} bytes of read-only data (shorten \
         the list, or use fewer distinct classes)"
    )]
    TablesTooLarge {
        /// JSON path of the scan whose tables do not fit.
        path: String,
        /// States of its DFA.
        states: usize,
        /// Byte classes of its DFA.
        classes: usize,
        /// Bytes of read-only data with its tables.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A function beyond the emitter's size limit.
    #[error(
        "{path}: the generated {function} has {insns} instructions; the emitter's limit is {max} \
         per function (the kernel verifier processes at most 1,000,000); simplify the spec"
    )]
    ProgramTooLarge {
        /// JSON path of the construct the function runs (`$.predicate`
        /// for the entry function).
        path: String,
        /// The function: "entry function" or "scan callback N".
        function: String,
        /// Instructions of the function.
        insns: usize,
        /// The limit.
        max: usize,
    },
}

/// Stack layout of the entry function (offsets from `r10`).
pub(crate) mod frame {
    /// The scan context handed to every callback (see [`super::scan`]).
    pub const CTX: i16 = -super::scan::ctx::SIZE;
    /// The final state of scan `k` (its DFA state, or its depth counter's
    /// mode) as an 8-byte spill at `FINAL_STATES - 8 * k`. Spilled scalars
    /// that are only compared with constants stay imprecise, so paths that
    /// reach the formula with different final states prune into one
    /// another instead of doubling the verifier's work for every scan.
    pub const FINAL_STATES: i16 = CTX - 8;
    /// Most scans one program may have: 48 final states and the context
    /// nearly fill the 512-byte stack.
    pub const MAX_SCANS: usize = 48;
    /// A zero the verifier cannot see: the difference of two loads of
    /// `skb->len`, spilled as an unknown scalar. Scan slots are initialized
    /// from it, so every path through a pass (loop run, loop skipped,
    /// window empty) leaves them equally unknown to the verifier, and states
    /// prune instead of multiplying with every pass.
    pub const OPAQUE_ZERO: i16 = FINAL_STATES - 8 * MAX_SCANS as i16;
}

/// The verdict labels every part of the entry function jumps to, one per
/// [`Reason`] (see [`verdict`]): each counts its reason, and every drop
/// label but `predicate`'s atoms also records an event.
pub(crate) struct Verdicts {
    pub pass: Label,
    /// A malformed or not fully readable frame.
    pub drop: Label,
    /// The formula is false, decided by no single atom (a constant).
    pub predicate: Label,
    pub vlan: Label,
    pub fragment: Label,
    pub ipv6_extension: Label,
    pub oversize: Label,
    pub policy_arp: Label,
    pub policy_ipv6_nd: Label,
    pub policy_other_ip: Label,
    pub policy_non_ip: Label,
    /// Stream mode: the flow is latched (its segments become RSTs).
    pub latched: Label,
    /// Stream mode: a segment not at the next expected byte.
    pub out_of_order: Label,
    /// Stream mode: no flow state (not seen from its SYN).
    pub evicted: Label,
    /// Stream mode: the flow table is full.
    pub table_full: Label,
    /// Stream mode: a SYN refused on an open flow (or with payload).
    pub bad_syn: Label,
    /// Stream mode: a checksum left to be completed after the diode.
    pub partial_checksum: Label,
}

impl Verdicts {
    fn new(a: &mut Asm) -> Verdicts {
        Verdicts {
            pass: a.label(),
            drop: a.label(),
            predicate: a.label(),
            vlan: a.label(),
            fragment: a.label(),
            ipv6_extension: a.label(),
            oversize: a.label(),
            policy_arp: a.label(),
            policy_ipv6_nd: a.label(),
            policy_other_ip: a.label(),
            policy_non_ip: a.label(),
            latched: a.label(),
            out_of_order: a.label(),
            evicted: a.label(),
            table_full: a.label(),
            bad_syn: a.label(),
            partial_checksum: a.label(),
        }
    }

    /// The drop labels of reasons other than the predicate's (the stream
    /// ones are unreachable, and so left out, in per-packet code).
    fn drops(&self) -> [(Label, Reason); 15] {
        [
            (self.drop, Reason::Malformed),
            (self.vlan, Reason::Vlan),
            (self.fragment, Reason::Fragment),
            (self.ipv6_extension, Reason::Ipv6Extension),
            (self.oversize, Reason::Oversize),
            (self.policy_arp, Reason::PolicyArp),
            (self.policy_ipv6_nd, Reason::PolicyIpv6Nd),
            (self.policy_other_ip, Reason::PolicyOtherIp),
            (self.policy_non_ip, Reason::PolicyNonIp),
            (self.latched, Reason::Latched),
            (self.out_of_order, Reason::OutOfOrder),
            (self.evicted, Reason::Evicted),
            (self.table_full, Reason::TableFull),
            (self.bad_syn, Reason::BadSyn),
            (self.partial_checksum, Reason::PartialChecksum),
        ]
    }
}

/// Upper bound on the instructions of one function (privileged verifier
/// limit is 1M processed instructions; keep programs far below).
const MAX_FUNCTION_INSNS: usize = 200_000;

/// Compiles a lowered program into an entry function and its callbacks.
pub(crate) fn compile(
    program: &Program,
    options: &Options,
) -> Result<(Module, CodeMap), CodegenError> {
    if program.scans.len() > frame::MAX_SCANS {
        return Err(CodegenError::TooManyScans {
            path: program.scans[frame::MAX_SCANS].path.clone(),
            scans: program.scans.len(),
            max: frame::MAX_SCANS,
            kind: "packet",
            why: "each scan's final state takes an 8-byte slot of the 512-byte stack, beside \
                  the scan context",
        });
    }
    let mut entry = Asm::new();
    let verdicts = Verdicts::new(&mut entry);

    packet::emit_prologue(&mut entry, &program.policy, &verdicts, false);

    let mut rodata = Vec::new();
    let groups = packet_groups(program, &mut rodata)?;
    let mut passes = Passes::with_capacity(groups.len());
    // Passes are walked inline in program order while the entry has room;
    // table-driven passes always run as callbacks.
    let mut inline_left = inline::ENTRY_INLINE_BUDGET;
    let mut walked_inline = vec![false; groups.len()];
    for (index, group) in groups.iter().enumerate() {
        let inline_cost = match group.table {
            Some(_) => None,
            None => inline::cost(program, group).filter(|&c| c <= inline_left),
        };
        if let Some(cost) = inline_cost {
            inline_left -= cost;
            let marks = inline::emit(&mut entry, program, group, &verdicts)?;
            passes.inline.push((group, marks));
            walked_inline[index] = true;
            continue;
        }
        let setup = entry.label();
        entry.bind(setup);
        passes.entry_marks.push(setup);
        if let Some(layout) = &group.table {
            table::emit_pointer_spill(&mut entry, layout, frame::CTX);
        }
        // The callback's function index counts callbacks only; `index`
        // (the pass's place among all passes) names it in drop events.
        let callback_index = passes.callbacks.len();
        scan::emit_pass_call(&mut entry, program, group, callback_index as i32, &verdicts)?;
        passes.push_callback(program, group, index, true)?;
    }

    let formula_start = entry.label();
    entry.bind(formula_start);
    passes.entry_marks.push(formula_start);
    let stubs = formula::emit(&mut entry, program, &groups, &walked_inline, &verdicts);
    verdict::emit(&mut entry, &verdicts, &stubs, options, false);
    finish(program, entry, passes, verdict::maps(), rodata)
}

/// A per-packet program's pass groups: automata too large for branchy code
/// run from tables, laid out in `rodata` (the object's `.rodata`).
fn packet_groups(
    program: &Program,
    rodata: &mut Vec<u8>,
) -> Result<Vec<scan::PassGroup>, CodegenError> {
    let mut groups = scan::plan(program);
    for group in &mut groups {
        if let [id] = group.scans[..] {
            let scan = &program.scans[id];
            if let predicate_ir::Machine::Dfa(dfa) = &scan.machine {
                if table::is_table_machine(&scan.machine) {
                    group.table = Some(table::build(dfa, rodata, &scan.path)?);
                }
            }
        }
    }
    Ok(groups)
}

/// What each scan's state registers hold per IR state in a per-packet
/// program (1, or a table's row stride: `scan::state_scales`); all 1 for a
/// program the emitter refuses.
pub(crate) fn packet_state_scales(program: &Program) -> Vec<u32> {
    match packet_groups(program, &mut Vec::new()) {
        Ok(groups) => scan::state_scales(program, &groups),
        Err(_) => vec![1; program.scans.len()],
    }
}

/// Compiles a lowered stream program (see [`stream`]): the entry function
/// keeps each flow's state in the flow map and judges each segment's new
/// bytes from the carried scan states. Every pass runs as a `bpf_loop`
/// callback, without tables (what the stream validator checks,
/// docs/validation.md); a pass of one DFA may start its chunks with the
/// prefilter, which tests the carried state like any other (it skips a
/// chunk only from the initial state).
pub(crate) fn compile_stream(
    stream_program: &predicate_ir::StreamProgram,
    options: &Options,
) -> Result<(Module, CodeMap), CodegenError> {
    if let Some(http) = &stream_program.http {
        return http::compile(stream_program, http, options);
    }
    let program = &stream_program.program;
    let groups = scan::plan(program);
    let (value_slots, slots) = stream::group_value_slots(program, &groups);
    stream::check_fits(stream_program, slots)?;
    let mut entry = Asm::new();
    let verdicts = Verdicts::new(&mut entry);

    packet::emit_prologue(&mut entry, &program.policy, &verdicts, true);
    stream::emit_segment(&mut entry, &verdicts, stream::value::size(slots));

    let walk_failed = entry.label();
    let mut passes = Passes::with_capacity(groups.len());
    for (index, group) in groups.iter().enumerate() {
        let setup = entry.label();
        entry.bind(setup);
        passes.entry_marks.push(setup);
        scan::emit_stream_pass_call(
            &mut entry,
            program,
            group,
            index as i32,
            value_slots[index],
            walk_failed,
        )?;
        // The prefilter: under keep-alive the stream hateless scanned at
        // about 1 byte/ns without it (docs/benchmarks.md).
        passes.push_callback(program, group, index, true)?;
    }

    let formula_start = entry.label();
    entry.bind(formula_start);
    passes.entry_marks.push(formula_start);
    let judged = entry.label();
    let stubs = formula::emit_stream(
        &mut entry,
        program,
        &program.formula,
        &groups,
        &verdicts,
        judged,
        verdicts.predicate,
    );
    stream::emit_commit(&mut entry, stream_program, &groups, &verdicts, judged);
    // A walk that failed may have stored some passes' states: latch.
    entry.bind(walk_failed);
    stream::emit_latch_judged(&mut entry);
    entry.ja(verdicts.latched);
    verdict::emit(&mut entry, &verdicts, &stubs, options, true);
    finish(
        program,
        entry,
        passes,
        stream::maps(slots, options.flows),
        Vec::new(),
    )
}

/// The passes of one program as they are emitted: callbacks with their
/// maps, inline passes with their labels, and the entry labels to resolve
/// (each callback pass's setup, then the formula's start).
struct Passes<'g> {
    callbacks: Vec<Function>,
    maps: Vec<PassMap>,
    prefilters: Vec<PrefilterMap>,
    chains: Vec<crate::codemap::ChainMap>,
    inline: Vec<(&'g scan::PassGroup, inline::InlineMarks)>,
    entry_marks: Vec<Label>,
}

impl<'g> Passes<'g> {
    fn with_capacity(n: usize) -> Self {
        Self {
            callbacks: Vec::with_capacity(n),
            maps: Vec::with_capacity(n),
            prefilters: Vec::new(),
            chains: Vec::new(),
            inline: Vec::new(),
            entry_marks: Vec::with_capacity(n + 1),
        }
    }

    /// Emits the callback of `group` (pass `index` of all passes), with a
    /// prefilter where `allow_prefilter` and the pass allows one.
    fn push_callback(
        &mut self,
        program: &Program,
        group: &scan::PassGroup,
        index: usize,
        allow_prefilter: bool,
    ) -> Result<(), CodegenError> {
        let callback_index = self.callbacks.len();
        let (body, steps, prefilter, chains) =
            scan::emit_callback(program, group, index as i32, allow_prefilter)?;
        if let Some(mut chains) = chains {
            chains.pass = callback_index;
            self.chains.push(chains);
        }
        for (start, slow, skip, span) in prefilter {
            self.prefilters.push(PrefilterMap {
                pass: callback_index,
                start,
                slow,
                skip,
                span,
            });
        }
        self.callbacks.push(Function {
            name: format!("scan_pass_{callback_index}"),
            insns: body,
        });
        self.maps.push(PassMap {
            window: group.window,
            setup_start: 0, // set once the entry is finished
            machines: scan::machine_maps(program, group),
            steps,
        });
        Ok(())
    }
}

/// Resolves the entry function, fills in the code map and checks sizes.
fn finish(
    program: &Program,
    entry: Asm,
    passes: Passes<'_>,
    maps: Vec<crate::module::MapDef>,
    rodata: Vec<u8>,
) -> Result<(Module, CodeMap), CodegenError> {
    let Passes {
        callbacks,
        maps: mut pass_maps,
        prefilters,
        chains,
        inline: inline_passes,
        mut entry_marks,
    } = passes;
    // Inline passes' labels follow the setups and the formula's start.
    let callback_marks = entry_marks.len();
    for (_, marks) in &inline_passes {
        entry_marks.push(marks.start);
        entry_marks.push(marks.end);
        for step in &marks.steps {
            entry_marks.push(step.start);
            entry_marks.push(step.end);
        }
        entry_marks.extend(marks.words.iter().flatten());
    }
    let (entry, marked) = entry.finish_marked(&entry_marks)?;
    for (pass, &slot) in pass_maps.iter_mut().zip(&marked) {
        pass.setup_start = slot;
    }
    let mut inline = Vec::with_capacity(inline_passes.len());
    let mut at = callback_marks;
    for (group, marks) in &inline_passes {
        let (start, end) = (marked[at], marked[at + 1]);
        at += 2;
        let steps = marks
            .steps
            .iter()
            .map(|m| {
                let range = StepRange {
                    machine: m.machine,
                    offset: m.offset,
                    start: marked[at],
                    end: marked[at + 1],
                };
                at += 2;
                range
            })
            .collect();
        let words = marks
            .words
            .iter()
            .map(|_| {
                let test = WordTestMap {
                    start: marked[at],
                    slow: marked[at + 1],
                    skip: marked[at + 2],
                };
                at += 3;
                test
            })
            .collect();
        inline.push(InlineMap {
            window: group.window,
            start,
            end,
            machines: scan::machine_maps(program, group),
            steps,
            words,
        });
    }
    let map = CodeMap {
        passes: pass_maps,
        final_states: (0..program.scans.len())
            .map(scan::final_state_offset)
            .collect(),
        formula_start: marked[callback_marks - 1],
        inline,
        prefilters,
        chains,
        payload_start: frame::CTX + scan::ctx::PAYLOAD_START,
        payload_len: frame::CTX + scan::ctx::PAYLOAD_LEN,
        http: None,
    };
    check_function_size(&entry, "entry function".into(), "$.predicate")?;
    for (i, (callback, pass)) in callbacks.iter().zip(&map.passes).enumerate() {
        let path = pass
            .machines
            .first()
            .map_or("$.predicate", |m| program.scans[m.scan].path.as_str());
        check_function_size(&callback.insns, format!("scan callback {i}"), path)?;
    }
    Ok((
        Module {
            entry: Function {
                name: program_symbol(&program.name),
                insns: entry,
            },
            callbacks,
            license: "GPL".to_string(),
            maps,
            rodata,
        },
        map,
    ))
}

/// Refuses a function past [`MAX_FUNCTION_INSNS`], naming it and the
/// construct it runs.
fn check_function_size(insns: &[Insn], function: String, path: &str) -> Result<(), CodegenError> {
    let slots: usize = insns.iter().map(Insn::slots).sum();
    if slots > MAX_FUNCTION_INSNS {
        return Err(CodegenError::ProgramTooLarge {
            path: path.to_string(),
            function,
            insns: slots,
            max: MAX_FUNCTION_INSNS,
        });
    }
    Ok(())
}

/// The entry function's symbol: the kernel keeps 15 bytes of a program name.
fn program_symbol(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(15)
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
        s.truncate(15);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_past_the_size_limit_names_itself_and_the_path() {
        let insns = vec![Insn::exit(); MAX_FUNCTION_INSNS + 1];
        let e = check_function_size(&insns, "scan callback 2".into(), "$.predicate.args[3]")
            .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("$.predicate.args[3]: "), "{text}");
        assert!(
            text.contains(&format!(
                "scan callback 2 has {} instructions",
                MAX_FUNCTION_INSNS + 1
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("limit is {MAX_FUNCTION_INSNS} per function")),
            "{text}"
        );
        check_function_size(&insns[1..], "entry function".into(), "$.predicate")
            .expect("at the limit");
    }
}
