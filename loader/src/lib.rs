//! lagic-loader: getting lagic diodes into the kernel, and frames through them.
//!
//! What the crate does now:
//! - [`program`]: [`LoadedProgram`], a diode loaded through Aya from the ELF object lagic
//!   writes (or from raw instructions), with the verifier's statistics; [`bpf_available`];
//! - [`testrun`]: running frames through a loaded diode with `BPF_PROG_TEST_RUN` and reading
//!   its [`Verdict`] (the frames themselves come from `lagic-frames`; the tests' skip-or-fail
//!   gates from `lagic-testkit`);
//! - [`elf_check`]: checks every offset and index of an object before Aya parses it, and tells
//!   objects lagic wrote from foreign ones;
//! - [`decisions`]: a diode's verdict counters and drop events ([`decisions::DiodeMaps`]);
//!
//! - [`attach`]: attaching diodes to interfaces in any network namespace (TCX, or clsact
//!   where TCX is unavailable), atomic replacement, verification, detaching, and status: the
//!   policy;
//! - `pins` (private): the pin directories on the host's bpffs (`/sys/fs/bpf/lagic`), the
//!   lock and the metadata record;
//! - `sys` (private): every raw `bpf(2)` command the crate issues, one function each;
//! - `netlink` (private): lagic's own rtnetlink requests (clsact filter list and deletes).

pub mod attach;
pub mod decisions;
pub mod elf_check;
mod netlink;
mod pins;
pub mod program;
mod sys;
pub mod testrun;

pub use attach::{
    AttachError, AttachOptions, AttachReport, Attachment, Direction, Health, Mode, ModeChoice,
};
pub use program::{
    bpf_available, verifier_log_tail, LoadError, LoadedProgram, ObjectOrigin, ProgramStats,
};
pub use testrun::{
    min_test_run_len, RawRunResult, RunError, RunResult, Verdict, MAX_TEST_RUN_FRAME,
    MIN_TEST_RUN_FRAME,
};
