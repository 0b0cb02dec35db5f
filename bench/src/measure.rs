//! Timing and kernel statistics, always lagic and clang interleaved: each
//! round runs one side then the other (alternating which goes first), so
//! drift in machine load hits both alike, and the median over rounds is
//! reported.

use std::time::Duration;

use lagic_frames::IpVersion;
use lagic_loader::{LoadedProgram, Verdict};
use serde::{Deserialize, Serialize};

use crate::BenchError;

/// The median of `values` (0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median whole-process compile times of two commands, interleaved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompilePair {
    /// lagic, milliseconds.
    pub lagic_ms: f64,
    /// clang, milliseconds.
    pub clang_ms: f64,
    /// clang / lagic: how many times faster lagic compiles.
    pub speedup: f64,
    /// Rounds behind each median.
    pub runs: usize,
}

/// Runs `lagic` and `clang` (closures returning one timed compile each)
/// `runs` times, interleaved.
pub fn compile_pair(
    runs: usize,
    mut lagic: impl FnMut() -> Result<Duration, BenchError>,
    mut clang: impl FnMut() -> Result<Duration, BenchError>,
) -> Result<CompilePair, BenchError> {
    let mut l = Vec::with_capacity(runs);
    let mut c = Vec::with_capacity(runs);
    for round in 0..runs {
        if round % 2 == 0 {
            l.push(ms(lagic()?));
            c.push(ms(clang()?));
        } else {
            c.push(ms(clang()?));
            l.push(ms(lagic()?));
        }
    }
    let (lagic_ms, clang_ms) = (median(l), median(c));
    Ok(CompilePair {
        lagic_ms,
        clang_ms,
        speedup: clang_ms / lagic_ms,
        runs,
    })
}

/// What the kernel reports about one loaded program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    /// Instructions the verifier processed.
    pub verified_insns: u32,
    /// Program size in instructions after verification (xlated).
    pub xlated_insns: u32,
    /// JIT-compiled size in bytes.
    pub jited_bytes: u32,
}

/// The kernel's statistics of `program`.
pub fn stats(program: &LoadedProgram) -> Result<Stats, BenchError> {
    let s = program
        .stats()
        .map_err(|e| BenchError::io("reading bpf_prog_info", e))?;
    Ok(Stats {
        verified_insns: s.verified_insns,
        xlated_insns: s.xlated_insns,
        jited_bytes: s.jited_bytes,
    })
}

/// Median ns per packet of both programs on one frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunPair {
    /// Payload bytes.
    pub payload: usize,
    /// The verdict both gave.
    pub verdict: String,
    /// lagic, ns per packet.
    pub lagic_ns: f64,
    /// clang, ns per packet.
    pub clang_ns: f64,
    /// lagic / clang (below 1: lagic faster).
    pub ratio: f64,
}

/// Runs `frame` through both programs, `rounds` interleaved rounds of
/// `repeat` runs each (one `BPF_PROG_TEST_RUN` per round and side). The
/// kernel reports a whole-ns average per round; with repeat in the
/// hundreds of thousands its rounding is below the noise.
pub fn run_pair(
    lagic: &LoadedProgram,
    clang: &LoadedProgram,
    frame: &[u8],
    payload: usize,
    rounds: usize,
    repeat: u32,
) -> Result<RunPair, BenchError> {
    let run = |p: &LoadedProgram, side: &str| -> Result<(Verdict, f64), BenchError> {
        // Ask for the total time by running `repeat` times and reading the
        // average; the kernel's average is total / repeat rounded down.
        let r = p
            .run_repeat(frame, repeat)
            .map_err(|e| BenchError::Run(format!("{side}: {e}")))?;
        Ok((r.verdict, r.duration.as_nanos() as f64))
    };
    let mut l = Vec::new();
    let mut c = Vec::new();
    let mut verdicts = None;
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = run(lagic, "lagic")?;
            (a, run(clang, "clang")?)
        } else {
            let b = run(clang, "clang")?;
            (run(lagic, "lagic")?, b)
        };
        if a.0 != b.0 {
            return Err(BenchError::Run(format!(
                "timing frame of {payload} bytes: lagic says {}, clang says {}",
                a.0, b.0
            )));
        }
        verdicts = Some(a.0);
        l.push(a.1);
        c.push(b.1);
    }
    let (lagic_ns, clang_ns) = (median(l), median(c));
    Ok(RunPair {
        payload,
        verdict: verdicts.map(|v| v.to_string()).unwrap_or_default(),
        lagic_ns,
        clang_ns,
        ratio: lagic_ns / clang_ns,
    })
}

/// The payload each diode is timed on: ordinary traffic the diode passes
/// (where its predicate allows the size), so every scan runs to the end.
pub fn timing_payload(diode: &str, len: usize) -> Vec<u8> {
    let pattern: &[u8] = match diode {
        "json_depth" => b"{\"key\": [1, 2, \"s{[\"], \"v\": {\"w\": 3}} ",
        _ => b"The quick brown fox jumps over the lazy dog; 0123456789.\r\n",
    };
    let mut p: Vec<u8> = pattern.iter().copied().cycle().take(len).collect();
    if matches!(diode, "json_start" | "json_prefix") && len > 0 {
        p[0] = b'{';
    }
    p
}

/// An IPv4 TCP frame around `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    lagic_frames::tcp_frame(payload, IpVersion::V4)
}
