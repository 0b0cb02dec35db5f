//! Lowering a spec to a [`Program`]: scans, passes and a formula.
//!
//! Steps: [`normalize`] the predicate; map `len` and `byte` to formula atoms
//! and `prefix` to a conjunction of `byte` atoms (`n >= |pat|` and every
//! `P[j]` in `pat[j]` is exactly "every `byte j pat[j]` holds"; tests of
//! full classes before the last position are implied and left out), spliced
//! into an enclosing `and`; turn each
//! `all`, `any` and `contains` into a minimal [`crate::Dfa`] scan and each
//! `depth_le` into a [`DepthCounter`] scan. Identical scans (same window,
//! equal machine: DFAs are canonically numbered, so equal languages give
//! equal values) are shared; scans over the same window are grouped into one
//! [`Pass`], passes and scans ordered by first appearance in the formula.
//!
//! **Combined scans.** Within one `or`, the arguments that say "a pattern
//! occurs in window W" (`contains`, `any W C` = `contains W [C]`, `not all
//! W C` = `contains W [not C]`), two or more over the same window, become
//! ONE scan: a DFA accepting when some pattern has occurred
//! ([`crate::dfa::some_pattern_dfa`], Aho-Corasick-like), so a block list
//! reads each byte once whatever the number of words. Within one `and`, the
//! negated ones (`not contains`, `not any`, `all`) become `not` of such a
//! scan (De Morgan). The other polarity (`and` of `contains`: a product
//! automaton) keeps one scan per argument. A combined DFA larger than
//! [`Limits::max_dfa_states`] is split in halves until every part fits
//! (each part one scan); when the parts cannot fit [`Limits::max_scans`],
//! [`LowerError::CombinedDfaTooLarge`] names the `or`/`and` and the exact
//! state count the whole list needs.
//!
//! [`Limits`] bound what the emitter has to handle; exceeding one is a
//! [`LowerError`] naming the JSON path of the construct in the *original*
//! spec (normalization keeps scan constructs unchanged, so they are found
//! again there). `lagic check` runs this, so an over-limit spec is rejected
//! before emission.

use crate::dfa::{all_dfa, any_dfa, contains_dfa, some_pattern_dfa, CombineError};
use crate::http_frame::{Boundary, Framer, HttpFrame, Phase};
use crate::normalize::normalize;
use crate::program::{DepthCounter, Formula, Machine, Pass, Program, Scan, ScanId};
use crate::spec::{ByteClass, Mode, Pred, Spec, Window};

/// Bounds on a lowered program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most states of one scan's minimal DFA. Large DFAs run from tables
    /// of u16 state numbers in the emitter, hence at most 65,536.
    pub max_dfa_states: usize,
    /// Most states the subset construction of one `contains` may explore
    /// before minimization (it can be exponentially larger than the result).
    pub max_construction_states: usize,
    /// Most distinct scans in a program.
    pub max_scans: usize,
    /// Most atoms (`len`, `byte` and scan tests) in the formula; a `prefix`
    /// counts one per byte test it lowers to.
    pub max_formula_atoms: usize,
    /// Most states the subset construction of one *combined* scan (the
    /// patterns of an `or`/`and` over one window, see the module docs) may
    /// explore: about the total length of a block list's words.
    pub max_combined_construction_states: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dfa_states: 65_536,
            max_construction_states: 16_384,
            max_scans: 48,
            max_formula_atoms: 1024,
            max_combined_construction_states: 131_072,
        }
    }
}

/// A spec that is valid but too big to lower within [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    #[error(
        "{path}: {construct} needs a DFA of {states} states; the limit is {limit} states per scan"
    )]
    /// A construct's minimized DFA has more states than [`Limits::max_dfa_states`].
    DfaTooLarge {
        /// JSON path of the construct.
        path: String,
        /// The construct's op.
        construct: &'static str,
        /// States of its minimized DFA.
        states: usize,
        /// The limit.
        limit: usize,
    },
    #[error(
        "{path}: contains: building its DFA explored more than {limit} states before minimization; \
         simplify the pattern (fewer distinct classes, or fewer wide classes followed by narrow ones)"
    )]
    /// Building a `contains` DFA explored more than [`Limits::max_construction_states`].
    ConstructionTooLarge {
        /// JSON path of the construct.
        path: String,
        /// The limit.
        limit: usize,
    },
    #[error(
        "{path}: building the automaton of the {patterns} patterns this {junction} combines over \
         one window explored more than {limit} states before minimization; shorten the list or \
         use fewer distinct classes"
    )]
    /// Building the combined automaton of an `or`/`and` (see the module
    /// docs) explored more than [`Limits::max_combined_construction_states`].
    CombinedConstructionTooLarge {
        /// JSON path of the `or` or `and`.
        path: String,
        /// `or` or `and`.
        junction: &'static str,
        /// Patterns combined.
        patterns: usize,
        /// The limit.
        limit: usize,
    },
    #[error(
        "{path}: the {patterns} patterns this {junction} combines over one window need a DFA of \
         {states} states; the limit is {limit} states per scan and {scans} scans per program \
         (shorten the list)"
    )]
    /// The combined automaton of an `or`/`and` of `contains`-like scans over
    /// one window has more states than [`Limits::max_dfa_states`], and
    /// splitting it into scans that fit would need more than
    /// [`Limits::max_scans`].
    CombinedDfaTooLarge {
        /// JSON path of the `or` or `and`.
        path: String,
        /// `or` or `and`.
        junction: &'static str,
        /// Patterns combined.
        patterns: usize,
        /// States of the minimal combined DFA.
        states: usize,
        /// The per-scan limit.
        limit: usize,
        /// The scan limit.
        scans: usize,
    },
    #[error("{path}: {construct} would be scan number {count}; the limit is {limit} distinct scans per program")]
    /// The program needs more distinct scans than [`Limits::max_scans`].
    TooManyScans {
        /// JSON path of the construct that would exceed the limit.
        path: String,
        /// The construct's op.
        construct: &'static str,
        /// The scan number it would be.
        count: usize,
        /// The limit.
        limit: usize,
    },
    #[error("{path}: with this construct the formula needs {count} atoms (len, byte and scan tests, prefix counting one per byte test); the limit is {limit}")]
    /// The formula needs more atoms than [`Limits::max_formula_atoms`].
    TooManyAtoms {
        /// JSON path of the construct that would exceed the limit.
        path: String,
        /// Atoms counted up to and including the offending construct.
        count: usize,
        /// The limit.
        limit: usize,
    },
    #[error(
        "{path}: stream mode is not implemented by the emitter yet; lagic cannot compile this \
         spec (it never compiles a stream spec as per-packet; see docs/stream.md)"
    )]
    /// A stream-mode spec: the emitter judges each packet on its own, which
    /// is not the meaning of a stream spec, so lowering refuses it.
    StreamModeNotImplemented {
        /// JSON path of the spec's mode (`$.mode`).
        path: String,
    },
    #[error("{path}: a packet-mode spec has no stream meaning; lower it with `lower`")]
    /// [`lower_stream`] was given a packet-mode spec.
    NotAStreamSpec {
        /// JSON path of the mode (`$.mode`).
        path: String,
    },
}

impl LowerError {
    /// JSON path of the offending construct in the spec.
    pub fn path(&self) -> &str {
        match self {
            LowerError::DfaTooLarge { path, .. }
            | LowerError::CombinedDfaTooLarge { path, .. }
            | LowerError::ConstructionTooLarge { path, .. }
            | LowerError::CombinedConstructionTooLarge { path, .. }
            | LowerError::TooManyScans { path, .. }
            | LowerError::TooManyAtoms { path, .. }
            | LowerError::StreamModeNotImplemented { path }
            | LowerError::NotAStreamSpec { path } => path,
        }
    }
}

/// Lowers `spec` with the default [`Limits`].
pub fn lower(spec: &Spec) -> Result<Program, LowerError> {
    lower_with(spec, &Limits::default())
}

/// Lowers `spec` within `limits`.
pub fn lower_with(spec: &Spec, limits: &Limits) -> Result<Program, LowerError> {
    // Fail closed: a stream spec is never judged per packet; it goes
    // through `lower_stream`.
    if spec.mode != Mode::Packet {
        return Err(LowerError::StreamModeNotImplemented {
            path: "$.mode".to_string(),
        });
    }
    let normalized = normalize(&spec.predicate);
    let mut builder = Builder {
        limits,
        original: &spec.predicate,
        root: "$.predicate",
        scans: Vec::new(),
        built: Vec::new(),
        atoms: 0,
    };
    let formula = builder.formula(&normalized)?;
    let scans = builder.scans;
    let mut passes: Vec<Pass> = Vec::new();
    for (id, scan) in scans.iter().enumerate() {
        match passes.iter_mut().find(|p| p.window == scan.window) {
            Some(pass) => pass.scans.push(id),
            None => passes.push(Pass {
                window: scan.window,
                scans: vec![id],
            }),
        }
    }
    Ok(Program {
        name: spec.name.clone(),
        policy: spec.policy,
        scans,
        passes,
        formula,
    })
}

/// A stream spec lowered for the kernel's stream mode: the scans run over
/// each flow's bytes as they arrive, their states carried between segments.
///
/// Invariants: `program.formula` is the *stream meaning*
/// ([`crate::stream_eval`]) of the spec's predicate and `complete` its exact
/// meaning ([`crate::eval()`]), both over the same scans; neither contains a
/// [`Formula::Byte`] (a `byte i C` becomes a scan of the one-byte window
/// `[i, i+1)`: `all` where it is read leniently, `any` where exactly), so
/// every atom is a scan, whose state can be carried, or a `len` test of the
/// stream length so far. Windows count stream offsets.
///
/// With the `http_response` view ([`StreamProgram::http`]), `program` and
/// `complete` judge each header block (windows and `len` count from the
/// block's first byte) and [`HttpProgram::body`] each body the same way;
/// the framing machine [`HttpFrame`] splits the stream into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamProgram {
    /// The scans, passes and the stream-meaning formula (checked on every
    /// segment with new bytes).
    pub program: Program,
    /// The exact meaning: whether the stream may end here (checked at FIN).
    pub complete: Formula,
    /// The `http_response` view, `None` for the whole-stream view.
    pub http: Option<Box<HttpProgram>>,
}

/// The lowered `http_response` view: the framing and the body's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProgram {
    /// The framing machine ([`crate::http_frame`]).
    pub frame: HttpFrame,
    /// Each body's scans and meanings, as a whole-stream program of its
    /// own (its `http` is `None`).
    pub body: StreamProgram,
}

impl StreamProgram {
    /// The stream-view judgment the kernel computes, run directly: for the
    /// whole-stream view, whether `stream` satisfies the stream meaning
    /// (`Some(complete)` where `complete` is the exact meaning, `None` when
    /// refused); for the http view, the framing run byte by byte with each
    /// header block's and body's exact meaning checked where it ends and
    /// the stream meaning of the unfinished one at the end.
    /// Equals [`crate::stream_diode`]'s judgment (tests/stream.rs).
    pub fn judge(&self, stream: &[u8]) -> Option<bool> {
        let Some(http) = &self.http else {
            return self.program.evaluate(stream).then(|| self.exact(stream));
        };
        let mut framer = Framer::new(&http.frame);
        let mut part_start = 0;
        for (i, &b) in stream.iter().enumerate() {
            match framer.step(b)? {
                Boundary::None => {}
                Boundary::HeadEnd { body, .. } => {
                    if !self.exact(&stream[part_start..=i]) {
                        return None;
                    }
                    part_start = i + 1;
                    if body == Some(0) && !http.body.exact(&[]) {
                        return None;
                    }
                }
                Boundary::BodyEnd => {
                    if !http.body.exact(&stream[part_start..=i]) {
                        return None;
                    }
                    part_start = i + 1;
                }
            }
        }
        let rest = &stream[part_start..];
        let ok = match framer.phase? {
            Phase::Head { len: 0, .. } => true,
            Phase::Head { .. } => self.program.evaluate(rest),
            Phase::Body { .. } => http.body.program.evaluate(rest),
        };
        ok.then(|| framer.complete())
    }

    /// The exact meaning on `part` (scans run from their initial states).
    fn exact(&self, part: &[u8]) -> bool {
        let accepted: Vec<bool> = (0..self.program.scans.len())
            .map(|id| {
                let m = &self.program.scans[id].machine;
                m.accepts(self.program.run_scan(id, part))
            })
            .collect();
        self.complete.evaluate(part, &accepted)
    }
}

/// Lowers a stream spec (`"mode": "stream"`, whole-stream view) for the
/// kernel's stream mode, with the default [`Limits`].
pub fn lower_stream(spec: &Spec) -> Result<StreamProgram, LowerError> {
    lower_stream_with(spec, &Limits::default())
}

/// [`lower_stream`] within `limits`.
///
/// The predicate is not [`normalize`]d: normalization folds by the 64 KiB
/// bound of a payload (`len <= 65535` is `true`), which a stream exceeds.
pub fn lower_stream_with(spec: &Spec, limits: &Limits) -> Result<StreamProgram, LowerError> {
    match &spec.mode {
        Mode::Packet => Err(LowerError::NotAStreamSpec {
            path: "$.mode".to_string(),
        }),
        Mode::Stream(crate::spec::StreamView::HttpResponse { headers }) => {
            let mut program =
                lower_stream_pred(spec, headers, "$.view.http_response.headers", limits)?;
            let body =
                lower_stream_pred(spec, &spec.predicate, "$.view.http_response.body", limits)?;
            program.http = Some(Box::new(HttpProgram {
                frame: HttpFrame::new(),
                body,
            }));
            Ok(program)
        }
        Mode::Stream(crate::spec::StreamView::Whole) => {
            lower_stream_pred(spec, &spec.predicate, "$.predicate", limits)
        }
    }
}

/// The whole-stream lowering of `predicate`, with `spec`'s name and policy.
fn lower_stream_pred(
    spec: &Spec,
    predicate: &Pred,
    root: &'static str,
    limits: &Limits,
) -> Result<StreamProgram, LowerError> {
    let lenient = bytes_as_scans(predicate, true, true);
    let exact = bytes_as_scans(predicate, true, false);
    let mut builder = Builder {
        limits,
        original: predicate,
        root,
        scans: Vec::new(),
        built: Vec::new(),
        atoms: 0,
    };
    let formula = builder.formula(&lenient)?;
    let complete = builder.formula(&exact)?;
    let scans = builder.scans;
    let mut passes: Vec<Pass> = Vec::new();
    for (id, scan) in scans.iter().enumerate() {
        match passes.iter_mut().find(|p| p.window == scan.window) {
            Some(pass) => pass.scans.push(id),
            None => passes.push(Pass {
                window: scan.window,
                scans: vec![id],
            }),
        }
    }
    Ok(StreamProgram {
        program: Program {
            name: spec.name.clone(),
            policy: spec.policy,
            scans,
            passes,
            formula,
        },
        complete,
        http: None,
    })
}

/// `p` with every `byte` and `prefix` turned into scans of one-byte
/// windows: read leniently (`lenient` and under an even number of `not`s,
/// `positive`) `byte i C` holds while the stream is shorter than `i + 1`,
/// which is `all [i, i+1) C`; read exactly it is `any [i, i+1) C`.
fn bytes_as_scans(p: &Pred, positive: bool, lenient: bool) -> Pred {
    let one = |index: u32, class: &ByteClass| {
        let window = Window {
            start: index,
            end: Some(index + 1),
        };
        if positive && lenient {
            Pred::All {
                window,
                class: class.clone(),
            }
        } else {
            Pred::Any {
                window,
                class: class.clone(),
            }
        }
    };
    match p {
        Pred::Not(q) => Pred::Not(Box::new(bytes_as_scans(q, !positive, lenient))),
        Pred::And(qs) => Pred::And(
            qs.iter()
                .map(|q| bytes_as_scans(q, positive, lenient))
                .collect(),
        ),
        Pred::Or(qs) => Pred::Or(
            qs.iter()
                .map(|q| bytes_as_scans(q, positive, lenient))
                .collect(),
        ),
        Pred::Byte { index, class } => one(*index, class),
        Pred::Prefix { pattern } => Pred::And(
            pattern
                .iter()
                .enumerate()
                .map(|(j, class)| one(j as u32, class))
                .collect(),
        ),
        other => other.clone(),
    }
}

struct Builder<'a> {
    limits: &'a Limits,
    original: &'a Pred,
    /// JSON path of `original` in the spec.
    root: &'static str,
    scans: Vec<Scan>,
    /// Scan constructs already lowered, with their scan.
    built: Vec<(Pred, ScanId)>,
    atoms: usize,
}

impl Builder<'_> {
    fn formula(&mut self, p: &Pred) -> Result<Formula, LowerError> {
        Ok(match p {
            Pred::True => Formula::Const(true),
            Pred::False => Formula::Const(false),
            Pred::Not(q) => Formula::Not(Box::new(self.formula(q)?)),
            Pred::And(qs) => {
                // A normalized `and` has no `and` arguments, so an `And`
                // here is a lowered `prefix`: splice its byte tests in.
                let mut flat = Vec::with_capacity(qs.len());
                for f in self.junction(qs, true)? {
                    match f {
                        Formula::And(inner) => flat.extend(inner),
                        other => flat.push(other),
                    }
                }
                Formula::And(flat)
            }
            Pred::Or(qs) => Formula::Or(self.junction(qs, false)?),
            Pred::Len { cmp, value } => {
                self.count_atoms(p, 1)?;
                Formula::Len {
                    cmp: *cmp,
                    value: *value,
                }
            }
            Pred::Byte { index, class } => {
                self.count_atoms(p, 1)?;
                Formula::Byte {
                    index: *index,
                    class: class.clone(),
                }
            }
            Pred::Prefix { pattern } => {
                // `byte j C` for each position, skipping full classes before
                // the last position: `byte (m-1) C` already demands n >= m.
                let last = pattern.len() - 1;
                let mut bytes: Vec<Formula> = pattern
                    .iter()
                    .enumerate()
                    .filter(|&(j, class)| j == last || !class.is_full())
                    .map(|(j, class)| Formula::Byte {
                        index: j as u32,
                        class: class.clone(),
                    })
                    .collect();
                self.count_atoms(p, bytes.len())?;
                if bytes.len() == 1 {
                    bytes.pop().expect("one atom")
                } else {
                    Formula::And(bytes)
                }
            }
            Pred::All { .. } | Pred::Any { .. } | Pred::Contains { .. } | Pred::DepthLe { .. } => {
                self.count_atoms(p, 1)?;
                Formula::Scan(self.scan(p)?)
            }
        })
    }

    /// Counts `n` more atoms for construct `p`, failing as soon as the
    /// limit is passed (before any more DFAs are built).
    fn count_atoms(&mut self, p: &Pred, n: usize) -> Result<(), LowerError> {
        self.atoms += n;
        if self.atoms > self.limits.max_formula_atoms {
            return Err(LowerError::TooManyAtoms {
                path: self.path_of(p),
                count: self.atoms,
                limit: self.limits.max_formula_atoms,
            });
        }
        Ok(())
    }

    /// The arguments of an `and` (`is_and`) or `or`, with the
    /// contains-like arguments over one window combined into one scan where
    /// there are at least two (see [`literal`]): in an `or` the positive
    /// ones (`contains`, `any`, `not all`) become "some pattern occurs"; in
    /// an `and` the negative ones (`not contains`, `not any`, `all`) become
    /// "no pattern occurs", by De Morgan. The combined formula takes the
    /// place of the group's first member; the rest keep their order.
    fn junction(&mut self, ps: &[Pred], is_and: bool) -> Result<Vec<Formula>, LowerError> {
        // Groups of combinable arguments: window, argument indices.
        let mut groups: Vec<(Window, Vec<usize>)> = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            if let Some((window, positive, _)) = literal(p) {
                if positive != is_and {
                    match groups.iter_mut().find(|(w, _)| *w == window) {
                        Some((_, members)) => members.push(i),
                        None => groups.push((window, vec![i])),
                    }
                }
            }
        }
        groups.retain(|(_, members)| members.len() >= 2);
        let mut out = Vec::with_capacity(ps.len());
        for (i, p) in ps.iter().enumerate() {
            match groups.iter().find(|(_, members)| members.contains(&i)) {
                None => out.push(self.formula(p)?),
                Some((window, members)) if members[0] == i => {
                    let members: Vec<&Pred> = members.iter().map(|&m| &ps[m]).collect();
                    for id in self.combined(*window, &members, is_and)? {
                        let scan = Formula::Scan(id);
                        out.push(if is_and {
                            Formula::Not(Box::new(scan))
                        } else {
                            scan
                        });
                    }
                }
                Some(_) => {} // lowered with its group's first member
            }
        }
        Ok(out)
    }

    /// The scans "some pattern of `members` occurs in `window`": one when
    /// the combined DFA fits [`Limits::max_dfa_states`], else the members
    /// split in halves until each part fits, within [`Limits::max_scans`].
    fn combined(
        &mut self,
        window: Window,
        members: &[&Pred],
        is_and: bool,
    ) -> Result<Vec<ScanId>, LowerError> {
        let patterns: Vec<Vec<ByteClass>> = members
            .iter()
            .map(|p| literal(p).expect("grouped members are literals").2)
            .collect();
        let free_scans = self.limits.max_scans.saturating_sub(self.scans.len());
        let mut parts: Vec<crate::Dfa> = Vec::new();
        let mut todo: Vec<std::ops::Range<usize>> = Vec::new();
        todo.push(0..members.len());
        let mut whole_states = None;
        while let Some(range) = todo.pop() {
            let slice: Vec<&[ByteClass]> =
                patterns[range.clone()].iter().map(Vec::as_slice).collect();
            match some_pattern_dfa(
                &slice,
                self.limits.max_combined_construction_states,
                self.limits.max_dfa_states,
            ) {
                Ok(dfa) => parts.push(dfa),
                Err(CombineError::Construction(too_many)) => {
                    return Err(if range.len() == 1 {
                        LowerError::ConstructionTooLarge {
                            path: self.path_of(members[range.start]),
                            limit: too_many.budget,
                        }
                    } else {
                        LowerError::CombinedConstructionTooLarge {
                            path: self.junction_path(members[range.start]),
                            junction: if is_and { "and" } else { "or" },
                            patterns: range.len(),
                            limit: too_many.budget,
                        }
                    })
                }
                Err(CombineError::TooLarge { states }) => {
                    let whole = *whole_states.get_or_insert(states);
                    let too_large = || LowerError::CombinedDfaTooLarge {
                        path: self.junction_path(members[0]),
                        junction: if is_and { "and" } else { "or" },
                        patterns: members.len(),
                        states: whole,
                        limit: self.limits.max_dfa_states,
                        scans: self.limits.max_scans,
                    };
                    if range.len() == 1 {
                        // One pattern alone is too large: name it.
                        let p = members[range.start];
                        return Err(LowerError::DfaTooLarge {
                            path: self.path_of(p),
                            construct: construct_name(p),
                            states,
                            limit: self.limits.max_dfa_states,
                        });
                    }
                    // Parts cannot fit when even perfectly balanced ones would not.
                    let pending = parts.len() + todo.len();
                    if whole > self.limits.max_dfa_states * free_scans.saturating_sub(pending) {
                        return Err(too_large());
                    }
                    let mid = range.start + range.len() / 2;
                    // Pop the first half first, so parts keep the members' order.
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            }
        }
        if parts.len() > free_scans {
            return Err(LowerError::CombinedDfaTooLarge {
                path: self.junction_path(members[0]),
                junction: if is_and { "and" } else { "or" },
                patterns: members.len(),
                states: whole_states.unwrap_or(0),
                limit: self.limits.max_dfa_states,
                scans: self.limits.max_scans,
            });
        }
        let mut ids = Vec::with_capacity(parts.len());
        for dfa in parts {
            let machine = Machine::Dfa(dfa);
            let id = match self
                .scans
                .iter()
                .position(|s| s.window == window && s.machine == machine)
            {
                Some(id) => id,
                None => {
                    if self.scans.len() >= self.limits.max_scans {
                        return Err(LowerError::TooManyScans {
                            path: self.junction_path(members[0]),
                            construct: if is_and { "and" } else { "or" },
                            count: self.scans.len() + 1,
                            limit: self.limits.max_scans,
                        });
                    }
                    // A combined scan is named after its and/or: several constructs decide in it.
                    let path = self.junction_path(members[0]);
                    self.scans.push(Scan {
                        window,
                        machine,
                        path,
                    });
                    self.scans.len() - 1
                }
            };
            self.count_atoms(members[0], 1)?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// The path of the `and`/`or` holding `member` in the original spec.
    fn junction_path(&self, member: &Pred) -> String {
        let path = self.path_of(member);
        match path.rfind(".args[") {
            Some(at) if path.ends_with(']') => path[..at].to_string(),
            _ => path,
        }
    }

    fn scan(&mut self, p: &Pred) -> Result<ScanId, LowerError> {
        if let Some((_, id)) = self.built.iter().find(|(q, _)| q == p) {
            return Ok(*id);
        }
        let (window, machine) = self.machine(p)?;
        let id = match self
            .scans
            .iter()
            .position(|s| s.window == window && s.machine == machine)
        {
            Some(id) => id,
            None => {
                if self.scans.len() >= self.limits.max_scans {
                    return Err(LowerError::TooManyScans {
                        path: self.path_of(p),
                        construct: construct_name(p),
                        count: self.scans.len() + 1,
                        limit: self.limits.max_scans,
                    });
                }
                let path = self.path_of(p);
                self.scans.push(Scan {
                    window,
                    machine,
                    path,
                });
                self.scans.len() - 1
            }
        };
        self.built.push((p.clone(), id));
        Ok(id)
    }

    fn machine(&self, p: &Pred) -> Result<(Window, Machine), LowerError> {
        let (window, dfa) = match p {
            Pred::All { window, class } => (*window, all_dfa(class)),
            Pred::Any { window, class } => (*window, any_dfa(class)),
            Pred::Contains { window, pattern } => {
                let dfa = contains_dfa(pattern, self.limits.max_construction_states).map_err(
                    |too_many| LowerError::ConstructionTooLarge {
                        path: self.path_of(p),
                        limit: too_many.budget,
                    },
                )?;
                (*window, dfa)
            }
            Pred::DepthLe {
                window,
                max,
                open,
                close,
                strings,
            } => {
                let counter = DepthCounter {
                    max: *max,
                    open: open.clone(),
                    close: close.clone(),
                    strings: *strings,
                };
                return Ok((*window, Machine::Depth(counter)));
            }
            _ => unreachable!("machine() is called on scan constructs only"),
        };
        if dfa.next.len() > self.limits.max_dfa_states {
            return Err(LowerError::DfaTooLarge {
                path: self.path_of(p),
                construct: construct_name(p),
                states: dfa.next.len(),
                limit: self.limits.max_dfa_states,
            });
        }
        Ok((window, Machine::Dfa(dfa)))
    }

    fn path_of(&self, p: &Pred) -> String {
        let mut path = self.root.to_string();
        if find_path(self.original, p, &mut path) {
            path
        } else {
            self.root.to_string()
        }
    }
}

/// A scan construct read as "`pattern` occurs in `window`" (`positive`) or
/// its negation: `contains W pat`; `any W C` is `contains W [C]`; `all W C`
/// is `not contains W [not C]`; `not` flips the polarity.
fn literal(p: &Pred) -> Option<(Window, bool, Vec<ByteClass>)> {
    match p {
        Pred::Contains { window, pattern } => Some((*window, true, pattern.clone())),
        Pred::Any { window, class } => Some((*window, true, vec![class.clone()])),
        Pred::All { window, class } => Some((*window, false, vec![class.complement()])),
        Pred::Not(q) => match **q {
            Pred::Not(_) => None,
            ref inner => literal(inner).map(|(w, positive, pat)| (w, !positive, pat)),
        },
        _ => None,
    }
}

fn construct_name(p: &Pred) -> &'static str {
    match p {
        Pred::All { .. } => "all",
        Pred::Any { .. } => "any",
        Pred::Contains { .. } => "contains",
        Pred::DepthLe { .. } => "depth_le",
        _ => "predicate",
    }
}

/// Extends `path` to the first subterm of `tree` equal to `target` (in
/// document order) and returns true, or leaves `path` as it was.
fn find_path(tree: &Pred, target: &Pred, path: &mut String) -> bool {
    if tree == target {
        return true;
    }
    let len = path.len();
    match tree {
        Pred::Not(q) => {
            path.push_str(".arg");
            if find_path(q, target, path) {
                return true;
            }
        }
        Pred::And(qs) | Pred::Or(qs) => {
            for (i, q) in qs.iter().enumerate() {
                path.push_str(&format!(".args[{i}]"));
                if find_path(q, target, path) {
                    return true;
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
    path.truncate(len);
    false
}
