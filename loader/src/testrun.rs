//! Running frames through a loaded diode in the kernel with `BPF_PROG_TEST_RUN`.
//!
//! The kernel builds a linear skb from the frame, runs the classifier once (or `repeat` times)
//! and reports its return value and the average run time. Facts this module enforces up front,
//! so that callers get a clear error instead of a bare `EINVAL`:
//! - a TC test run takes at most [`MAX_TEST_RUN_FRAME`] bytes (one page minus the skb's
//!   headroom and shared-info tailroom); larger or non-linear skbs need real traffic;
//! - it takes at least [`MIN_TEST_RUN_FRAME`] bytes (an Ethernet header), and, measured on
//!   Linux 6.18, an untagged frame with EtherType IPv4 needs a whole 20-byte IPv4 header
//!   (34 bytes) and one with EtherType IPv6 a whole 40-byte IPv6 header (54 bytes), whatever
//!   the header says; [`min_test_run_len`] tells. Shorter frames can still arrive as real
//!   traffic; a test run cannot show what a diode does with them.
//!
//! A diode answers `TC_ACT_OK` (0, [`Verdict::Pass`]) or `TC_ACT_SHOT` (2, [`Verdict::Drop`]);
//! [`LoadedProgram::run`] treats any other return value as an error, while
//! [`LoadedProgram::run_raw`] reports it as is.

use std::io;
use std::time::Duration;

use crate::program::LoadedProgram;
use crate::sys;

/// The largest frame `BPF_PROG_TEST_RUN` accepts for a TC program: 4096 (page) − 64
/// (`NET_SKB_PAD`) − 320 (aligned `struct skb_shared_info`) bytes.
pub const MAX_TEST_RUN_FRAME: usize = 3712;

/// The smallest frame `BPF_PROG_TEST_RUN` accepts for a TC program: an Ethernet header.
pub const MIN_TEST_RUN_FRAME: usize = 14;

/// Frame lengths below which the kernel refuses an untagged frame of EtherType IPv4 / IPv6.
const MIN_IPV4_TEST_RUN_FRAME: usize = 14 + 20;
const MIN_IPV6_TEST_RUN_FRAME: usize = 14 + 40;

/// The shortest prefix of `frame` that `BPF_PROG_TEST_RUN` accepts, and what it must hold:
/// an Ethernet header, plus the fixed IP header when the (outer) EtherType is IPv4 or IPv6.
pub fn min_test_run_len(frame: &[u8]) -> (usize, &'static str) {
    match frame.get(12..14) {
        Some([0x08, 0x00]) => (MIN_IPV4_TEST_RUN_FRAME, "a 20-byte IPv4 header"),
        Some([0x86, 0xDD]) => (MIN_IPV6_TEST_RUN_FRAME, "a 40-byte IPv6 header"),
        _ => (MIN_TEST_RUN_FRAME, "an Ethernet header"),
    }
}

/// `TC_ACT_OK`.
pub const TC_ACT_OK: u32 = 0;
/// `TC_ACT_SHOT`.
pub const TC_ACT_SHOT: u32 = 2;

/// A diode's decision on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `TC_ACT_OK`: the frame goes on.
    Pass,
    /// `TC_ACT_SHOT`: the frame is dropped.
    Drop,
}

impl Verdict {
    /// The verdict a predicate result stands for: `true` passes.
    pub fn from_bool(holds: bool) -> Self {
        if holds {
            Verdict::Pass
        } else {
            Verdict::Drop
        }
    }

    /// The verdict for a TC return value, if it is one a diode may give.
    pub fn from_retval(retval: u32) -> Option<Self> {
        match retval {
            TC_ACT_OK => Some(Verdict::Pass),
            TC_ACT_SHOT => Some(Verdict::Drop),
            _ => None,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Drop => "DROP",
        })
    }
}

/// The outcome of running a frame through a diode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunResult {
    /// The diode's decision.
    pub verdict: Verdict,
    /// Average run time per repetition, as the kernel measured it (coarse for single runs).
    pub duration: Duration,
}

/// The outcome of running a frame through any TC program, return value uninterpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRunResult {
    /// The program's return value.
    pub retval: u32,
    /// Average run time per repetition, as the kernel measured it.
    pub duration: Duration,
}

/// Why a frame could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The frame exceeds what a TC test run takes.
    #[error("frame of {len} bytes exceeds the {max}-byte limit of BPF_PROG_TEST_RUN for TC programs (larger skbs need real traffic through a veth)")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// [`MAX_TEST_RUN_FRAME`].
        max: usize,
    },
    /// The frame is too short for the kernel to run (see [`min_test_run_len`]).
    #[error("frame of {len} bytes is too short for BPF_PROG_TEST_RUN, which requires at least {min} bytes ({requirement}) and refuses shorter frames")]
    FrameTooShort {
        /// The frame's length.
        len: usize,
        /// The minimum for this frame.
        min: usize,
        /// What the minimum covers.
        requirement: &'static str,
    },
    /// The syscall failed.
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    Syscall(#[source] io::Error),
    /// The program returned something other than `TC_ACT_OK` or `TC_ACT_SHOT`.
    #[error("the program returned {retval}, which is neither TC_ACT_OK (0) nor TC_ACT_SHOT (2)")]
    UnexpectedRetval {
        /// The return value.
        retval: u32,
    },
}

impl LoadedProgram {
    /// Runs `frame` through the diode once and returns its verdict.
    pub fn run(&self, frame: &[u8]) -> Result<RunResult, RunError> {
        self.run_repeat(frame, 1)
    }

    /// Runs `frame` through the diode `repeat` times in one syscall (for benchmarks; 0 counts
    /// as 1) and returns its verdict with the average time per run.
    pub fn run_repeat(&self, frame: &[u8], repeat: u32) -> Result<RunResult, RunError> {
        let raw = self.run_raw_repeat(frame, repeat)?;
        let verdict = Verdict::from_retval(raw.retval)
            .ok_or(RunError::UnexpectedRetval { retval: raw.retval })?;
        Ok(RunResult {
            verdict,
            duration: raw.duration,
        })
    }

    /// Runs `frame` once and reports the return value without interpreting it.
    pub fn run_raw(&self, frame: &[u8]) -> Result<RawRunResult, RunError> {
        self.run_raw_repeat(frame, 1)
    }

    /// Runs `frame` once and returns the return value and the frame as the program left it
    /// (a stream diode rewrites a segment into a RST). Map state persists between runs.
    pub fn run_out(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), RunError> {
        if frame.len() > MAX_TEST_RUN_FRAME {
            return Err(RunError::FrameTooLarge {
                len: frame.len(),
                max: MAX_TEST_RUN_FRAME,
            });
        }
        let (min, requirement) = min_test_run_len(frame);
        if frame.len() < min {
            return Err(RunError::FrameTooShort {
                len: frame.len(),
                min,
                requirement,
            });
        }
        sys::prog_test_run_out(self.fd(), frame, MAX_TEST_RUN_FRAME).map_err(RunError::Syscall)
    }

    /// Runs `frame` `repeat` times and reports the return value without interpreting it.
    pub fn run_raw_repeat(&self, frame: &[u8], repeat: u32) -> Result<RawRunResult, RunError> {
        if frame.len() > MAX_TEST_RUN_FRAME {
            return Err(RunError::FrameTooLarge {
                len: frame.len(),
                max: MAX_TEST_RUN_FRAME,
            });
        }
        let (min, requirement) = min_test_run_len(frame);
        if frame.len() < min {
            return Err(RunError::FrameTooShort {
                len: frame.len(),
                min,
                requirement,
            });
        }
        let out = sys::prog_test_run(self.fd(), frame, repeat).map_err(RunError::Syscall)?;
        Ok(RawRunResult {
            retval: out.retval,
            duration: Duration::from_nanos(u64::from(out.duration_ns)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagic_frames::{tcp_frame, Frame, IpVersion, VlanTag};
    use lagic_testkit::require_bpf;

    /// `r0 = 0; exit`.
    const PASS_ALL: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];

    /// The limits this module enforces are the kernel's own: asked directly, it takes exactly
    /// 14..=3712 bytes.
    #[test]
    fn kernel_frame_limits_match_the_constants() {
        if !require_bpf() {
            return;
        }
        let prog = LoadedProgram::from_insns("pass_all", &PASS_ALL).unwrap();
        // Repeated, because a garbage byte in the attribute would fail only some calls.
        for len in [MIN_TEST_RUN_FRAME, MAX_TEST_RUN_FRAME].repeat(3) {
            let out = sys::prog_test_run(prog.fd(), &vec![0u8; len], 1)
                .unwrap_or_else(|err| panic!("{len} bytes: {err}"));
            assert_eq!(out.retval, TC_ACT_OK, "{len} bytes");
        }
        for len in [MIN_TEST_RUN_FRAME - 1, MAX_TEST_RUN_FRAME + 1] {
            let err = sys::prog_test_run(prog.fd(), &vec![0u8; len], 1)
                .err()
                .unwrap_or_else(|| panic!("the kernel took {len} bytes"));
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{len} bytes");
        }
    }

    /// The IP minimums are the kernel's too, for every truncation of real frames, while
    /// other EtherTypes (ARP, VLAN-tagged IP) run down to the Ethernet header.
    #[test]
    fn kernel_refuses_truncated_fixed_ip_headers() {
        if !require_bpf() {
            return;
        }
        let prog = LoadedProgram::from_insns("pass_all", &PASS_ALL).unwrap();
        let frames = [
            tcp_frame(b"abc", IpVersion::V4),
            tcp_frame(b"abc", IpVersion::V6),
            Frame::arp().build(),
            Frame::ipv4()
                .vlan(VlanTag::dot1q(7))
                .payload(b"abc")
                .build(),
        ];
        for frame in &frames {
            for len in MIN_TEST_RUN_FRAME..=frame.len() {
                let cut = &frame[..len];
                let kernel_ok = sys::prog_test_run(prog.fd(), cut, 1).is_ok();
                let (min, _) = min_test_run_len(cut);
                assert_eq!(kernel_ok, len >= min, "{len} of {:02x?}", &frame[..14]);
            }
        }
    }

    #[test]
    fn verdicts_map_from_tc_return_values() {
        assert_eq!(Verdict::from_retval(0), Some(Verdict::Pass));
        assert_eq!(Verdict::from_retval(2), Some(Verdict::Drop));
        assert_eq!(Verdict::from_retval(1), None);
        assert_eq!(Verdict::from_retval(u32::MAX), None);
        assert_eq!(Verdict::from_bool(true), Verdict::Pass);
        assert_eq!(Verdict::Drop.to_string(), "DROP");
    }
}
