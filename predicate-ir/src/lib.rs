//! predicate-ir: the front half of lagic.
//!
//! Data flow: spec JSON --[`parse`]--> [`Spec`] --[`normalize`]--> [`Pred`]
//! --[`lower`]--> [`Program`] (scans, passes, formula), which `emit-bpf`
//! compiles. [`eval`] is the reference meaning of a predicate, written
//! straight from DESIGN.md; [`Program::evaluate`] runs the lowered form.
//! The two must agree on every payload: that is what the tests check.

pub mod spec;
pub mod program;

pub use program::{Dfa, DepthCounter, Formula, Machine, Pass, Program, Scan, ScanId, StateId};
pub use spec::{Action, ByteClass, Cmp, Pattern, Policy, Pred, Spec, Window};
