//! Timing and kernel statistics, always lagic and clang interleaved: each
//! round runs one side then the other (alternating which goes first, see
//! [`alternate`]), so drift in machine load hits both alike. Absolute times
//! drift by up to 2x within an hour on shared machines, so the ratio of the
//! two sides is taken *per round* and the median of those ratios (with
//! their min-max) is the number to read; the median absolute times are kept
//! for context.

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

/// Runs `first` and `second` once per round for `rounds` rounds, the first
/// side first in even rounds and second in odd ones; returns both sides'
/// values in round order.
pub fn alternate<E>(
    rounds: usize,
    mut first: impl FnMut() -> Result<f64, E>,
    mut second: impl FnMut() -> Result<f64, E>,
) -> Result<(Vec<f64>, Vec<f64>), E> {
    let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        if round % 2 == 0 {
            a.push(first()?);
            b.push(second()?);
        } else {
            b.push(second()?);
            a.push(first()?);
        }
    }
    Ok((a, b))
}

/// The median, least and greatest of per-round ratios.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Ratio {
    /// Median of the per-round ratios.
    pub median: f64,
    /// Least per-round ratio.
    pub min: f64,
    /// Greatest per-round ratio.
    pub max: f64,
}

impl Ratio {
    /// `num[i] / den[i]` for each round `i`, summarized.
    pub fn per_round(num: &[f64], den: &[f64]) -> Ratio {
        let ratios: Vec<f64> = num.iter().zip(den).map(|(n, d)| n / d).collect();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if ratios.is_empty() {
            return Ratio::default();
        }
        Ratio {
            median: median(ratios),
            min,
            max,
        }
    }

    /// `1.23 (1.10-1.31)`, with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.digits$} ({:.digits$}-{:.digits$})",
            self.median, self.min, self.max
        )
    }
}

/// Median whole-process compile times of two commands, interleaved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompilePair {
    /// lagic, milliseconds.
    pub lagic_ms: f64,
    /// clang, milliseconds.
    pub clang_ms: f64,
    /// clang / lagic: how many times faster lagic compiles (the median of
    /// the per-round ratios).
    pub speedup: f64,
    /// The per-round clang / lagic ratios: median, min, max (absent in
    /// results written before they were recorded).
    #[serde(default)]
    pub speedup_range: Ratio,
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
    let (l, c) = alternate(runs, || lagic().map(ms), || clang().map(ms))?;
    let speedup_range = Ratio::per_round(&c, &l);
    Ok(CompilePair {
        lagic_ms: median(l),
        clang_ms: median(c),
        speedup: speedup_range.median,
        speedup_range,
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
    /// lagic / clang (below 1: lagic faster): the median of the per-round
    /// ratios.
    pub ratio: f64,
    /// The per-round lagic / clang ratios: median, min, max (absent in
    /// results written before they were recorded).
    #[serde(default)]
    pub ratio_range: Ratio,
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
    let verdicts = std::cell::RefCell::new(Vec::new());
    let (l, c) = alternate(
        rounds,
        || {
            let (v, ns) = run(lagic, "lagic")?;
            verdicts.borrow_mut().push(v);
            Ok::<f64, BenchError>(ns)
        },
        || {
            let (v, ns) = run(clang, "clang")?;
            verdicts.borrow_mut().push(v);
            Ok(ns)
        },
    )?;
    let verdicts = verdicts.into_inner();
    if let Some(other) = verdicts.iter().find(|&&v| v != verdicts[0]) {
        return Err(BenchError::Run(format!(
            "timing frame of {payload} bytes: the two sides disagree ({} and {other})",
            verdicts[0]
        )));
    }
    let ratio_range = Ratio::per_round(&l, &c);
    Ok(RunPair {
        payload,
        verdict: verdicts.first().map(|v| v.to_string()).unwrap_or_default(),
        lagic_ns: median(l),
        clang_ns: median(c),
        ratio: ratio_range.median,
        ratio_range,
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
