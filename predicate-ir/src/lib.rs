//! predicate-ir: the front half of lagic.
//!
//! Data flow: spec JSON --[`parse`]--> [`Spec`] --[`normalize`]--> [`Pred`]
//! --[`lower`]--> [`Program`] (scans, passes, formula), which `emit-bpf`
//! compiles. [`eval`] is the reference meaning of a predicate, written
//! straight from DESIGN.md; [`Program::evaluate`] runs the lowered form.
//! The two must agree on every payload: that is what the tests check.
//!
//! Modules, in pipeline order: [`spec`] (the AST and its limits),
//! [`format`] (spec format v1: read with path-naming errors, write
//! canonically), [`eval`] (the meaning), [`normalize`] (simplification),
//! [`dfa`] (automata construction and minimization), [`lower`] (spec to
//! program), [`program`] (the lowered form and how it runs). With the
//! `arbitrary` feature, [`arbitrary`] holds proptest strategies for specs
//! and payloads.

pub mod program;
pub mod spec;

pub mod dfa;
mod display;
pub mod eval;
pub mod format;
mod json;
pub mod lower;
pub mod normalize;

#[cfg(feature = "arbitrary")]
pub mod arbitrary;

pub use eval::eval;
pub use format::{is_valid_name, parse, SpecError, SpecErrorKind};
pub use lower::{lower, lower_with, Limits, LowerError};
pub use normalize::normalize;
pub use program::{DepthCounter, Dfa, Formula, Machine, Pass, Program, Scan, ScanId, StateId};
pub use spec::{Action, ByteClass, Cmp, Pattern, Policy, Pred, Spec, Window};
