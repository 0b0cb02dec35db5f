//! predicate-ir: the front half of lagic.
//!
//! Data flow: spec JSON --[`parse`]--> [`Spec`] --[`normalize()`]--> [`Pred`]
//! --[`lower()`]--> [`Program`] (scans, passes, formula), which `emit-bpf`
//! compiles. [`eval()`] is the reference meaning of a predicate, written
//! straight from docs/spec-format.md; [`Program::evaluate`] runs the lowered form.
//! The two must agree on every payload: that is what the tests check.
//!
//! Modules, in pipeline order: [`spec`] (the AST and its limits),
//! [`format`](mod@format) (spec formats v1 and v2: read with path-naming
//! errors, write canonically), [`eval`](mod@eval) (the meaning), [`normalize`](mod@normalize) (simplification),
//! [`dfa`] (automata construction and minimization), [`lower`](mod@lower) (spec to
//! program), [`program`] (the lowered form and how it runs). Stream mode
//! (spec format v2, docs/stream.md): [`stream`] (the stream meaning and the
//! prefix-closure check), [`http_view`] (the `http_response` view) and
//! [`stream_diode`] (the reference stream diode and a receiver model);
//! [`lower()`] refuses stream specs (they are never judged per packet);
//! [`lower_stream`] lowers them for the kernel's stream mode (whole-stream
//! view only). With the
//! `arbitrary` feature, the `arbitrary` module holds proptest strategies for specs
//! and payloads.
//!
//! ```
//! use predicate_ir::{eval, lower, parse};
//!
//! let spec = parse(r#"{
//!     "version": 1,
//!     "name": "no_hi",
//!     "predicate": {"op": "not", "arg": {"op": "contains",
//!         "window": {"start": 0, "end": null},
//!         "pattern": [[[72, 72], [104, 104]], [[73, 73], [105, 105]]]}}
//! }"#)?;
//! let program = lower(&spec)?;
//! for payload in [&b"oh, HI there"[..], b"hello"] {
//!     assert_eq!(program.evaluate(payload), eval(&spec.predicate, payload));
//! }
//! assert!(!program.evaluate(b"oh, HI there"));
//! print!("{program}"); // the summary `lagic check` shows
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod program;
pub mod spec;

pub mod dfa;
mod display;
pub mod eval;
pub mod format;
pub mod http_frame;
pub mod http_view;
mod json;
pub mod lower;
pub mod normalize;
pub mod stream;
pub mod stream_diode;

#[cfg(feature = "arbitrary")]
pub mod arbitrary;

pub use eval::eval;
pub use format::{is_valid_name, parse, SpecError, SpecErrorKind};
pub use lower::{
    lower, lower_stream, lower_stream_with, lower_with, HttpProgram, Limits, LowerError,
    StreamProgram,
};
pub use normalize::normalize;
pub use program::{DepthCounter, Dfa, Formula, Machine, Pass, Program, Scan, ScanId, StateId};
pub use spec::{Action, ByteClass, Cmp, Mode, Pattern, Policy, Pred, Spec, StreamView, Window};
pub use stream::{check_stream_safe, stream_eval};
