//! `lagic-bench enclave`: lagic-enclave's inference speed against a C
//! llama2 written for this project (`bench/baseline/llama_run.c`), and
//! optionally against a user-built llama2.c `run` binary.
//!
//! Both sides run as whole processes on the same generated checkpoints
//! (lagic-enclave's `make-model`: the default tiny model and one of
//! stories15M's shape with a 32,000-token vocabulary), greedy decoding from
//! "Once upon a time" to the context end, single-threaded and on all cores
//! (C: `gcc -Ofast -march=native`, and the same with `-fopenmp`). Each
//! round runs the two sides back to back, alternating which goes first, and
//! the report gives the median of the per-round ratios (machine load drifts
//! by up to 2x between rounds; a ratio within a round is far steadier).
//!
//! Per run: tokens/s as each program reports it (forward passes over the
//! time from encoding the prompt to the last token), start-up (wall time
//! minus that), and peak resident memory (`ru_maxrss` from `wait4`). The
//! generated texts must be identical on both sides, or the run fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::measure::median;
use crate::{tools, BenchError};

/// The prompt every run continues.
pub const PROMPT: &str = "Once upon a time";

/// Options of `lagic-bench enclave`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds per configuration.
    pub rounds: usize,
    /// A llama2.c `run` binary to report beside ours.
    pub run_c: Option<PathBuf>,
    /// Only the tiny model (a smoke run).
    pub tiny_only: bool,
}

/// Parse `lagic-bench enclave` arguments (`--quick`, `--rounds N`,
/// `--run-c PATH`; `LAGIC_RUN_C` is the default of `--run-c`).
pub fn parse_args(args: &[String]) -> Result<Options, BenchError> {
    let mut opts = Options {
        rounds: 7,
        run_c: std::env::var_os("LAGIC_RUN_C").map(PathBuf::from),
        tiny_only: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.rounds = 3,
            "--tiny-only" => opts.tiny_only = true,
            "--rounds" => {
                opts.rounds = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| BenchError::Setup("--rounds needs a positive number".into()))?
            }
            "--run-c" => {
                opts.run_c = Some(PathBuf::from(it.next().ok_or_else(|| {
                    BenchError::Setup("--run-c needs the path of a llama2.c run binary".into())
                })?))
            }
            other => {
                return Err(BenchError::Setup(format!(
                    "unknown argument {other:?}; usage: lagic-bench enclave [--quick] [--rounds N] [--run-c PATH] [--tiny-only]"
                )))
            }
        }
    }
    if let Some(p) = &opts.run_c {
        if !p.is_file() {
            return Err(BenchError::Setup(format!(
                "--run-c {}: no such file",
                p.display()
            )));
        }
    }
    Ok(opts)
}

/// One finished process.
#[derive(Debug, Clone)]
pub struct Run {
    /// Standard output (the text).
    pub text: Vec<u8>,
    /// Tokens per second the program reported.
    pub tokens_per_s: f64,
    /// Wall time from spawn to exit, seconds.
    pub wall_s: f64,
    /// Wall time minus the generation time the program reported, seconds.
    pub startup_s: f64,
    /// Peak resident set, KiB.
    pub max_rss_kib: u64,
}

/// Which program a run uses.
#[derive(Debug, Clone)]
enum Side {
    Enclave { bin: PathBuf, threads: usize },
    C { bin: PathBuf, threads: usize },
    RunC { bin: PathBuf, threads: usize },
}

impl Side {
    fn name(&self) -> String {
        match self {
            Side::Enclave { .. } => "lagic-enclave".into(),
            Side::C { .. } => "C baseline".into(),
            Side::RunC { .. } => "llama2.c run".into(),
        }
    }

    fn command(&self, model: &Model) -> Command {
        match self {
            Side::Enclave { bin, threads } => {
                let mut c = Command::new(bin);
                c.arg("complete")
                    .arg("--model")
                    .arg(&model.model)
                    .arg("--tokenizer")
                    .arg(&model.tokenizer)
                    .args(["--temperature", "0", "--max-tokens", "1000000"])
                    .args(["--threads", &threads.to_string(), "--prompt", PROMPT]);
                c
            }
            Side::C { bin, threads } => {
                let mut c = Command::new(bin);
                c.arg(&model.model)
                    .arg(&model.tokenizer)
                    .arg(PROMPT)
                    .arg("1000000")
                    .env("OMP_NUM_THREADS", threads.to_string());
                c
            }
            Side::RunC { bin, threads } => {
                let mut c = Command::new(bin);
                c.arg(&model.model)
                    .arg("-z")
                    .arg(&model.tokenizer)
                    .args(["-t", "0", "-n", &model.seq_len.to_string(), "-i", PROMPT])
                    .env("OMP_NUM_THREADS", threads.to_string());
                c
            }
        }
    }

    /// Tokens/s and generation seconds from the program's stderr.
    fn speed(&self, stderr: &str) -> Option<(f64, Option<f64>)> {
        match self {
            // "... N forward passes in S s: T tokens/s"
            Side::Enclave { .. } | Side::C { .. } => {
                let tail = stderr.rsplit(" forward passes in ").next()?;
                let secs: f64 = tail.split(" s:").next()?.trim().parse().ok()?;
                let tps: f64 = tail
                    .split(": ")
                    .nth(1)?
                    .split(" tokens/s")
                    .next()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((tps, Some(secs)))
            }
            // llama2.c prints "achieved tok/s: T" (excluding its first step).
            Side::RunC { .. } => {
                let tps = stderr
                    .rsplit("achieved tok/s:")
                    .next()?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()?;
                Some((tps, None))
            }
        }
    }

    fn run(&self, model: &Model) -> Result<Run, BenchError> {
        let what = format!("{} on {}", self.name(), model.name);
        let mut cmd = self.command(model);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::io(&format!("starting {what}"), e))?;
        let mut out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        let mut text = Vec::new();
        let _ = out.read_to_end(&mut text);
        let (status, max_rss_kib) = wait_with_rusage(child.id())
            .map_err(|e| BenchError::io(&format!("waiting for {what}"), e))?;
        let wall_s = start.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
        if status != 0 {
            return Err(BenchError::Tool {
                what,
                status: format!("wait status {status}"),
                stderr,
            });
        }
        let (tokens_per_s, gen_s) = self
            .speed(&stderr)
            .ok_or_else(|| BenchError::Run(format!("{what}: no speed in its stderr: {stderr}")))?;
        Ok(Run {
            text,
            tokens_per_s,
            wall_s,
            startup_s: gen_s.map_or(f64::NAN, |g| (wall_s - g).max(0.0)),
            max_rss_kib,
        })
    }
}

/// Reap `pid` (a child not yet waited for) and return its wait status and
/// peak RSS in KiB.
fn wait_with_rusage(pid: u32) -> std::io::Result<(i32, u64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 writes it and the status.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child, which std has not reaped (never waited).
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r >= 0 {
            return Ok((status, usage.ru_maxrss.max(0) as u64));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A generated checkpoint.
#[derive(Debug, Clone)]
pub struct Model {
    /// Short name for the report.
    pub name: String,
    /// `model.bin`.
    pub model: PathBuf,
    /// `tokenizer.bin`.
    pub tokenizer: PathBuf,
    /// Context length.
    pub seq_len: usize,
    /// File size in bytes.
    pub bytes: u64,
}

fn make_model(
    enclave: &Path,
    dir: &Path,
    name: &str,
    args: &[&str],
    seq_len: usize,
) -> Result<Model, BenchError> {
    let out = dir.join(name);
    let model = out.join("model.bin");
    let tokenizer = out.join("tokenizer.bin");
    let mut cmd = Command::new(enclave);
    cmd.arg("make-model").arg("--out").arg(&out).args(args);
    tools::run_timed(&format!("lagic-enclave make-model ({name})"), cmd)?;
    let bytes = std::fs::metadata(&model)
        .map_err(|e| BenchError::io(&format!("reading {}", model.display()), e))?
        .len();
    Ok(Model {
        name: name.into(),
        model,
        tokenizer,
        seq_len,
        bytes,
    })
}

/// The `lagic-enclave` binary next to the running executable (same profile).
fn enclave_binary() -> Result<PathBuf, BenchError> {
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench binary", e))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    [
        dir.join("lagic-enclave"),
        dir.join("..").join("lagic-enclave"),
    ]
    .into_iter()
    .find(|c| c.is_file())
    .ok_or_else(|| {
        BenchError::Setup(format!(
            "no lagic-enclave next to {}; build it first (cargo build --release -p lagic-enclave)",
            exe.display()
        ))
    })
}

fn build_c(gcc: &Path, out: &Path, openmp: bool) -> Result<(), BenchError> {
    let mut cmd = Command::new(gcc);
    cmd.args(["-Ofast", "-march=native"]);
    if openmp {
        cmd.arg("-fopenmp");
    }
    cmd.arg("-o")
        .arg(out)
        .arg(tools::baseline_dir().join("llama_run.c"))
        .arg("-lm");
    tools::run_timed(&format!("gcc {}", out.display()), cmd).map(|_| ())
}

/// Medians of one side in one configuration.
#[derive(Debug, Clone)]
pub struct SideSummary {
    /// Program name.
    pub name: String,
    /// Median tokens/s.
    pub tokens_per_s: f64,
    /// Median start-up seconds (NaN when the program does not report its
    /// generation time).
    pub startup_s: f64,
    /// Median peak RSS in KiB.
    pub max_rss_kib: f64,
}

/// One model and thread count: lagic-enclave against the C baseline.
#[derive(Debug, Clone)]
pub struct Row {
    /// Model name.
    pub model: String,
    /// Threads both sides used.
    pub threads: usize,
    /// lagic-enclave.
    pub ours: SideSummary,
    /// The C baseline.
    pub c: SideSummary,
    /// Median over rounds of ours / C tokens/s.
    pub ratio: f64,
    /// Lowest and highest per-round ratio.
    pub ratio_range: (f64, f64),
    /// llama2.c's run, when given, and its median ratio to ours.
    pub run_c: Option<(SideSummary, f64)>,
}

fn summarize(name: String, runs: &[Run]) -> SideSummary {
    SideSummary {
        name,
        tokens_per_s: median(runs.iter().map(|r| r.tokens_per_s).collect()),
        startup_s: median(runs.iter().map(|r| r.startup_s).collect()),
        max_rss_kib: median(runs.iter().map(|r| r.max_rss_kib as f64).collect()),
    }
}

/// Run the whole comparison; progress on stderr, the table on stdout.
pub fn main(args: &[String]) -> Result<Vec<Row>, BenchError> {
    let opts = parse_args(args)?;
    let enclave = enclave_binary()?;
    let gcc = tools::find_on_path("gcc")
        .ok_or_else(|| BenchError::Setup("gcc not found (apt-get install gcc)".into()))?;
    let work = tools::workspace_root().join("target").join("enclave-bench");
    std::fs::create_dir_all(&work)
        .map_err(|e| BenchError::io(&format!("creating {}", work.display()), e))?;
    let c_single = work.join("llama_run");
    let c_omp = work.join("llama_run_omp");
    build_c(&gcc, &c_single, false)?;
    build_c(&gcc, &c_omp, true)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut models = vec![make_model(&enclave, &work, "tiny", &[], 512)?];
    if !opts.tiny_only {
        models.push(make_model(
            &enclave,
            &work,
            "stories15M-shape",
            &[
                "--dim",
                "288",
                "--hidden-dim",
                "768",
                "--layers",
                "6",
                "--heads",
                "6",
                "--kv-heads",
                "6",
                "--seq-len",
                "256",
                "--vocab-size",
                "32000",
            ],
            256,
        )?);
    }

    let mut rows = Vec::new();
    for model in &models {
        let mut thread_counts = vec![1];
        if cores > 1 {
            thread_counts.push(cores);
        }
        for &threads in &thread_counts {
            let ours = Side::Enclave {
                bin: enclave.clone(),
                threads,
            };
            let c = Side::C {
                bin: if threads == 1 {
                    c_single.clone()
                } else {
                    c_omp.clone()
                },
                threads,
            };
            let run_c = opts.run_c.clone().map(|bin| Side::RunC { bin, threads });
            let (mut o_runs, mut c_runs, mut r_runs) = (Vec::new(), Vec::new(), Vec::new());
            let (mut ratios, mut r_ratios) = (Vec::new(), Vec::new());
            for round in 0..opts.rounds {
                let (o, c_run) = if round % 2 == 0 {
                    let o = ours.run(model)?;
                    (o, c.run(model)?)
                } else {
                    let c_run = c.run(model)?;
                    (ours.run(model)?, c_run)
                };
                if o.text != c_run.text {
                    return Err(BenchError::Run(format!(
                        "{} threads on {}: lagic-enclave and the C baseline wrote different text:\n{}\n---\n{}",
                        threads,
                        model.name,
                        String::from_utf8_lossy(&o.text),
                        String::from_utf8_lossy(&c_run.text)
                    )));
                }
                ratios.push(o.tokens_per_s / c_run.tokens_per_s);
                if let Some(r) = &run_c {
                    let rr = r.run(model)?;
                    if rr.text != o.text {
                        eprintln!(
                            "lagic-bench enclave: note: llama2.c run wrote different text on {}",
                            model.name
                        );
                    }
                    r_ratios.push(o.tokens_per_s / rr.tokens_per_s);
                    r_runs.push(rr);
                }
                eprintln!(
                    "lagic-bench enclave: {} {} thread(s) round {}: lagic-enclave {:.1} tok/s, C {:.1} tok/s",
                    model.name,
                    threads,
                    round + 1,
                    o.tokens_per_s,
                    c_run.tokens_per_s
                );
                o_runs.push(o);
                c_runs.push(c_run);
            }
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            rows.push(Row {
                model: model.name.clone(),
                threads,
                ours: summarize(ours.name(), &o_runs),
                c: summarize(
                    if threads == 1 {
                        "C -Ofast -march=native".into()
                    } else {
                        "C -Ofast -march=native -fopenmp".into()
                    },
                    &c_runs,
                ),
                ratio: median(ratios),
                ratio_range: (lo, hi),
                run_c: run_c.map(|r| (summarize(r.name(), &r_runs), median(r_ratios))),
            });
        }
    }
    println!("{}", render(&rows, &models, opts.rounds));
    Ok(rows)
}

/// The results as a Markdown table.
pub fn render(rows: &[Row], models: &[Model], rounds: usize) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Greedy decoding from {PROMPT:?} to the context end; medians of {rounds} interleaved rounds; ratio = lagic-enclave tokens/s / C tokens/s, median of per-round ratios (min-max).\n\n"
    ));
    for m in models {
        s.push_str(&format!(
            "- {}: {} bytes, context {}\n",
            m.name, m.bytes, m.seq_len
        ));
    }
    s.push_str("\n| model | threads | lagic-enclave tok/s | C tok/s | ratio | start-up ours / C (ms) | peak RSS ours / C (MiB) |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.2}x ({:.2}-{:.2}) | {:.1} / {:.1} | {:.1} / {:.1} |\n",
            r.model,
            r.threads,
            r.ours.tokens_per_s,
            r.c.tokens_per_s,
            r.ratio,
            r.ratio_range.0,
            r.ratio_range.1,
            r.ours.startup_s * 1e3,
            r.c.startup_s * 1e3,
            r.ours.max_rss_kib / 1024.0,
            r.c.max_rss_kib / 1024.0,
        ));
    }
    if rows.iter().any(|r| r.run_c.is_some()) {
        s.push_str("\n| model | threads | llama2.c run tok/s | lagic-enclave / run | run peak RSS (MiB) |\n|---|---|---|---|---|\n");
        for r in rows {
            if let Some((rc, ratio)) = &r.run_c {
                s.push_str(&format!(
                    "| {} | {} | {:.0} | {:.2}x | {:.1} |\n",
                    r.model,
                    r.threads,
                    rc.tokens_per_s,
                    ratio,
                    rc.max_rss_kib / 1024.0
                ));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_parsed_from_both_programs() {
        let ours = Side::Enclave {
            bin: "x".into(),
            threads: 1,
        };
        let line = "lagic-enclave: 5 prompt tokens, 252 generated, 256 forward passes in 2.381 s: 107.5 tokens/s\n";
        assert_eq!(ours.speed(line), Some((107.5, Some(2.381))));
        let c = Side::C {
            bin: "x".into(),
            threads: 1,
        };
        assert_eq!(
            c.speed("llama_run: 512 forward passes in 0.034 s: 15111.7 tokens/s\n"),
            Some((15111.7, Some(0.034)))
        );
        let run = Side::RunC {
            bin: "x".into(),
            threads: 1,
        };
        assert_eq!(
            run.speed("achieved tok/s: 408.123456\n"),
            Some((408.123456, None))
        );
        assert_eq!(ours.speed("garbage"), None);
    }

    #[test]
    fn arguments() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&["--quick"]).unwrap().rounds, 3);
        assert_eq!(a(&["--rounds", "5"]).unwrap().rounds, 5);
        assert!(a(&["--rounds", "0"]).is_err());
        assert!(a(&["--run-c", "/nonexistent/run"]).is_err());
        assert!(a(&["--bogus"]).is_err());
    }
}
