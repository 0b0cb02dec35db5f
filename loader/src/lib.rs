//! lagic-loader: getting lagic diodes into the kernel, and frames through them.
//!
//! What the crate does now:
//! - [`program`]: [`LoadedProgram`], a diode loaded through Aya from the ELF object lagic
//!   writes (or from raw instructions), with the verifier's statistics; [`bpf_available`];
//! - [`testrun`]: running frames through a loaded diode with `BPF_PROG_TEST_RUN` and reading
//!   its [`Verdict`] (the frames themselves come from `lagic-frames`; the tests' skip-or-fail
//!   gates from `lagic-testkit`);
//! - [`attach`]: attaching diodes to interfaces (TCX, or clsact where TCX is unavailable),
//!   atomic replacement, detaching, pins under `/sys/fs/bpf/lagi`, and status.

pub mod attach;
pub mod program;
mod sys;
pub mod testrun;

pub use attach::{
    AttachError, AttachOptions, AttachReport, Attachment, Direction, Health, Mode, ModeChoice,
};
pub use program::{bpf_available, LoadError, LoadedProgram, ProgramStats};
pub use testrun::{
    min_test_run_len, RawRunResult, RunError, RunResult, Verdict, MAX_TEST_RUN_FRAME,
    MIN_TEST_RUN_FRAME,
};
