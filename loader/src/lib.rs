//! lagic-loader: getting lagic diodes into the kernel, and frames through them.
//!
//! What the crate does now:
//! - [`packet`]: a frame builder for every shape the equivalence and adversarial tests need
//!   (Ethernet with VLAN tags, IPv4 and IPv6 with options and extension headers, TCP, UDP,
//!   ICMPv6, ARP, padding, truncation), shared by `lagic run`, tests and benchmarks;
//! - [`program`]: [`LoadedProgram`], a diode loaded through Aya from the ELF object lagic
//!   writes (or from raw instructions), with the verifier's statistics; [`bpf_available`];
//! - [`testrun`]: running frames through a loaded diode with `BPF_PROG_TEST_RUN` and reading
//!   its [`Verdict`];
//! - [`elf_check`]: checks every offset and index of an object before Aya parses it, and tells
//!   objects lagic wrote from foreign ones;
//! - [`testing`]: [`testing::require_bpf`], the skip-or-fail gate for kernel tests.
//!
//! - [`attach`]: attaching diodes to interfaces in any network namespace (TCX, or clsact
//!   where TCX is unavailable), atomic replacement, verification, detaching, and status: the
//!   policy;
//! - `pins` (private): the pin directories on the host's bpffs (`/sys/fs/bpf/lagic`), the
//!   lock and the metadata record;
//! - `sys` (private): every raw `bpf(2)` command the crate issues, one function each;
//! - `netlink` (private): lagic's own rtnetlink requests (clsact filter list and deletes).

pub mod attach;
pub mod elf_check;
mod netlink;
pub mod packet;
mod pins;
pub mod program;
mod sys;
pub mod testing;
pub mod testrun;

pub use attach::{
    AttachError, AttachOptions, AttachReport, Attachment, Direction, Health, Mode, ModeChoice,
};
pub use packet::{tcp_frame, Frame, IpVersion};
pub use program::{
    bpf_available, verifier_log_tail, LoadError, LoadedProgram, ObjectOrigin, ProgramStats,
};
pub use testrun::{
    min_test_run_len, RawRunResult, RunError, RunResult, Verdict, MAX_TEST_RUN_FRAME,
    MIN_TEST_RUN_FRAME,
};
