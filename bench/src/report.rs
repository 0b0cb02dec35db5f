//! The results of one run, and their two renderings: `BENCHMARKS.md` (tables
//! for people, with the machine, kernel and date, and each target marked met
//! or missed) and `bench/results.json` (everything, for machines). The
//! hand-written analysis in `bench/analysis.md` is appended to BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lagic_loader::LoadedProgram;
use serde::{Deserialize, Serialize};

use crate::e2e::E2eResult;
use crate::measure::{self, CompilePair, RunPair, Stats};
use crate::tools::command_text;
use crate::BenchError;

/// Where the numbers were taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// First line of `clang --version`.
    pub clang: String,
    /// Commit of the tree measured.
    pub commit: String,
    /// UTC date and time of the run.
    pub date: String,
}

impl Machine {
    /// Reads the machine's description.
    pub fn detect(clang: &Path) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let clang_version = command_text(&clang.to_string_lossy(), &["--version"])
            .and_then(|v| v.lines().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        let root = crate::tools::workspace_root();
        let root_str = root.to_string_lossy();
        let mut commit = command_text("git", &["-C", &root_str, "rev-parse", "--short", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        // Uncommitted changes in the compiler's crates change what is measured: say so.
        let dirty = command_text(
            "git",
            &[
                "-C",
                &root_str,
                "status",
                "--porcelain",
                "--",
                "predicate-ir",
                "emit-bpf",
                "compiler",
                "loader",
            ],
        )
        .unwrap_or_default();
        if !dirty.is_empty() {
            commit.push_str(" + uncommitted changes to the compiler crates");
        }
        Self {
            cpu,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: command_text("uname", &["-r"]).unwrap_or_else(|| "unknown".into()),
            clang: clang_version,
            commit,
            date: command_text("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// One seed diode, both sides.
#[derive(Debug, Serialize, Deserialize)]
pub struct SeedResult {
    /// The diode.
    pub diode: String,
    /// Frames on which both agreed with the reference before timing.
    pub equivalence_frames: usize,
    /// Compile latency.
    pub compile: CompilePair,
    /// Compile latency with lagic writing the object to stdout (`-o -`).
    pub compile_to_stdout: CompilePair,
    /// Compile latency with translation validation skipped
    /// (`--no-validate`, to a file): the difference to [`Self::compile`] is
    /// what validation costs (absent in older results).
    #[serde(default)]
    pub compile_no_validate: Option<CompilePair>,
    /// lagic's program in the kernel.
    pub lagic: Stats,
    /// clang's program in the kernel.
    pub clang: Stats,
    /// ns per packet by payload size.
    pub runtime: Vec<RunPair>,
}

/// One side of one scaling point: how long it compiled, or where it stopped.
#[derive(Debug, Serialize, Deserialize)]
pub struct Side {
    /// Median compile time, when it compiled.
    pub compile_ms: Option<f64>,
    /// The kernel's statistics, when it loaded.
    pub stats: Option<Stats>,
    /// Why it stopped (compiler or verifier), if it did.
    pub error: Option<String>,
    /// The loaded program, for the verdict check.
    #[serde(skip)]
    pub program: Option<LoadedProgram>,
}

fn first_line(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| l.contains("error") || l.contains("limit") || l.contains("too"))
        .or_else(|| s.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("");
    line.chars().take(max).collect()
}

/// The verifier's reason for a refusal: the last line before its
/// "processed N insns" summary that is not a source or instruction line.
fn verifier_reason(log: &str) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim).collect();
    let end = lines
        .iter()
        .rposition(|l| l.starts_with("processed "))
        .unwrap_or(lines.len());
    let reason = lines[..end]
        .iter()
        .rev()
        .find(|l| {
            !l.is_empty()
                && !l.starts_with(';')
                && !l.starts_with("stack depth")
                && !l.starts_with("verification time")
                && !l.starts_with(|c: char| c.is_ascii_digit())
        })
        .copied()
        .unwrap_or_else(|| lines.last().copied().unwrap_or(""));
    let summary = lines.get(end).copied().unwrap_or("");
    let processed = summary.split_whitespace().nth(1).unwrap_or("?");
    format!(
        "{} (after {processed} processed insns)",
        reason.chars().take(140).collect::<String>()
    )
}

impl Side {
    /// Both sides of a scaling point, their compiles alternating round by
    /// round (which side goes first alternates too), then both loaded.
    pub fn measure_pair(
        runs: usize,
        lagic: (impl FnMut() -> Result<Duration, BenchError>, &Path),
        clang: (impl FnMut() -> Result<Duration, BenchError>, &Path),
    ) -> (Self, Self) {
        let (mut lagic_compile, lagic_obj) = lagic;
        let (mut clang_compile, clang_obj) = clang;
        let (mut lt, mut le, mut l_more) = (Vec::new(), None, true);
        let (mut ct, mut ce, mut c_more) = (Vec::new(), None, true);
        for round in 0..runs.max(1) {
            if round % 2 == 0 {
                l_more = l_more && Self::compile_once(&mut lagic_compile, &mut lt, &mut le);
                c_more = c_more && Self::compile_once(&mut clang_compile, &mut ct, &mut ce);
            } else {
                c_more = c_more && Self::compile_once(&mut clang_compile, &mut ct, &mut ce);
                l_more = l_more && Self::compile_once(&mut lagic_compile, &mut lt, &mut le);
            }
            if !l_more && !c_more {
                break;
            }
        }
        (
            Self::finish(lt, le, lagic_obj),
            Self::finish(ct, ce, clang_obj),
        )
    }

    /// One timed compile; false when no more rounds are wanted (it failed,
    /// recorded in `error`, or took seconds: its noise is small next to it,
    /// and repeats would take most of the budget).
    fn compile_once(
        compile: &mut impl FnMut() -> Result<Duration, BenchError>,
        times: &mut Vec<f64>,
        error: &mut Option<String>,
    ) -> bool {
        match compile() {
            Ok(t) => {
                times.push(t.as_secs_f64() * 1e3);
                t <= Duration::from_secs(5)
            }
            Err(e) => {
                let msg = match e {
                    BenchError::Tool { stderr, .. } => {
                        let line = first_line(&stderr, 400);
                        let short = line
                            .split_once("cannot be compiled: ")
                            .map(|(_, rest)| rest.to_string())
                            .unwrap_or(line);
                        format!("compile: {}", short.chars().take(320).collect::<String>())
                    }
                    other => other.to_string(),
                };
                *error = Some(msg);
                false
            }
        }
    }

    /// The side after its compiles: a compile error, or `object` loaded.
    fn finish(times: Vec<f64>, error: Option<String>, object: &Path) -> Self {
        if let Some(msg) = error {
            return Self {
                compile_ms: None,
                stats: None,
                error: Some(msg),
                program: None,
            };
        }
        let compile_ms = Some(measure::median(times));
        match crate::load_object(object) {
            Ok(p) => {
                let stats = measure::stats(&p).ok();
                Self {
                    compile_ms,
                    stats,
                    error: None,
                    program: Some(p),
                }
            }
            Err(e) => {
                let msg = match e {
                    BenchError::Load { message, .. } => {
                        // The whole log next to the object, for reading by hand.
                        let _ = std::fs::write(object.with_extension("verifier.log"), &message);
                        format!("verifier: {}", verifier_reason(&message))
                    }
                    other => other.to_string(),
                };
                Self {
                    compile_ms,
                    stats: None,
                    error: Some(msg),
                    program: None,
                }
            }
        }
    }

    /// One line for the progress log.
    pub fn summary(&self) -> String {
        match (&self.compile_ms, &self.stats, &self.error) {
            (Some(ms), Some(s), _) => format!(
                "{ms:.1} ms, {} insns, verifier {}",
                s.xlated_insns, s.verified_insns
            ),
            (_, _, Some(e)) => format!("stops: {e}"),
            _ => "?".into(),
        }
    }
}

/// One scaling point.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScalingRow {
    /// `contains` or `windows`.
    pub family: String,
    /// Number of patterns or windows.
    pub k: usize,
    /// lagic.
    pub lagic: Side,
    /// clang.
    pub clang: Side,
}

/// One block-list size (see [`crate::blocklist`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct BlocklistRow {
    /// Words in the list.
    pub k: usize,
    /// lagic: compile time, kernel statistics, or where it stops.
    pub lagic: Side,
    /// The C baseline (Aho-Corasick table in read-only data).
    pub clang: Side,
    /// lagic's median compile time with `--no-validate`: the difference
    /// to `lagic.compile_ms` is what translation validation costs (absent
    /// in older results, or when the compile failed).
    #[serde(default)]
    pub lagic_no_validate_ms: Option<f64>,
    /// States of the C baseline's automaton (the trie's nodes).
    pub c_states: usize,
    /// Both sides timed at [`crate::blocklist::PAYLOAD`] bytes, when both
    /// loaded.
    pub timing: Option<RunPair>,
    /// The side that loaded alone and its median ns per packet.
    pub alone: Option<(String, f64)>,
}

/// Everything one run measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    /// Where.
    pub machine: Machine,
    /// The seed diodes.
    pub seeds: Vec<SeedResult>,
    /// Whole-payload scans (hateless, json_depth): ns per packet as the payload grows.
    pub per_byte: Vec<(String, RunPair)>,
    /// Scaling points.
    pub scaling: Vec<ScalingRow>,
    /// End to end in the lab (absent with --no-e2e).
    pub e2e: Option<E2eResult>,
    /// Why the end-to-end part is absent.
    #[serde(default)]
    pub e2e_error: Option<String>,
    /// Wall-clock seconds of the measuring binary.
    pub total_seconds: f64,
    /// Process start-up floor: median ms of `lagic --version` and `clang --version`.
    pub startup_floor: CompilePair,
    /// Block lists of 1 to 10,000 words (absent in older results).
    #[serde(default)]
    pub blocklist: Vec<BlocklistRow>,
    /// Block lists end to end, with iptables (absent with --no-e2e).
    #[serde(default)]
    pub blocklist_e2e: Option<Vec<crate::e2e::BlocklistPoint>>,
    /// Why the block-list end-to-end part is absent.
    #[serde(default)]
    pub blocklist_e2e_error: Option<String>,
    /// Stream mode per segment beside per-packet mode (absent in older
    /// results).
    #[serde(default)]
    pub stream: Option<crate::stream::StreamBench>,
}

/// A run-time ratio with its per-round range; results written before
/// ranges were recorded show the ratio alone.
fn ratio_cell(p: &measure::RunPair) -> String {
    if p.ratio_range.max > 0.0 {
        p.ratio_range.show(2)
    } else {
        format!("{:.2}", p.ratio)
    }
}

/// A compile speedup with its per-round range (or alone, in older results).
fn speedup_cell(c: &measure::CompilePair) -> String {
    let r = &c.speedup_range;
    if r.max > 0.0 {
        format!("{:.0}x ({:.0}-{:.0})", r.median, r.min, r.max)
    } else {
        format!("{:.0}x", c.speedup)
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

/// The block-list targets of BENCHMARKS.md (issue 13, item 2), from the
/// rows a run measured; none when the block lists were not run.
fn blocklist_target_rows(rows: &[BlocklistRow]) -> Vec<(String, String, bool)> {
    // ns per packet of lagic's object for `k` words, when it loaded and was timed.
    let lagic_ns = |k: usize| -> Option<f64> {
        let row = rows.iter().find(|b| b.k == k)?;
        match (&row.timing, &row.alone) {
            (Some(t), _) => Some(t.lagic_ns),
            (None, Some((side, ns))) if side == "lagic" => Some(*ns),
            _ => None,
        }
    };
    let mut out = Vec::new();
    if rows.iter().any(|b| b.k == 1) && rows.iter().any(|b| b.k == 1_000) {
        let (measured, met) = match (lagic_ns(1), lagic_ns(1_000)) {
            (Some(one), Some(thousand)) => {
                let ratio = thousand / one;
                (
                    format!(
                        "{:.2} against {:.2} ns/byte: {ratio:.2}x",
                        thousand / crate::blocklist::PAYLOAD as f64,
                        one / crate::blocklist::PAYLOAD as f64
                    ),
                    ratio <= 2.0,
                )
            }
            _ => ("not timed (see the block-list table)".to_string(), false),
        };
        out.push((
            format!(
                "block list: 1,000 words within 2x of one word's ns/byte ({} B)",
                crate::blocklist::PAYLOAD
            ),
            measured,
            met,
        ));
    }
    if let Some(row) = rows.iter().find(|b| b.k == 10_000) {
        let ran = lagic_ns(10_000);
        out.push((
            "block list: 10,000 words compile, load and judge".to_string(),
            match (ran, &row.lagic.error) {
                (Some(ns), _) => format!("{ns:.0} ns per packet"),
                (None, Some(e)) => format!("stopped: {}", first_line(e, 80)),
                (None, None) => "not timed".to_string(),
            },
            ran.is_some(),
        ));
    }
    out
}

fn verdict_mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// The block-list part of the scaling section.
pub fn blocklist_markdown(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### Block lists of random words\n\n\
         `not (or of k contains)` over the whole payload, k random case-insensitive words of 4 to 9 \
         letters (one fixed seed), timed on {} bytes of text no word occurs in. lagic combines the \
         list into one automaton, run from tables in read-only data past 24 states (each state held as its row's offset: an add and a load per byte on the chain from state to state); the C baseline is an Aho-Corasick table in read-only data (one table \
         load per byte, bench/src/blocklist.rs). Both must agree with the plain definition on 300 \
         frames first. ns: `BPF_PROG_TEST_RUN`, median of interleaved rounds (lagic/clang: median of \
         per-round ratios, min-max).\n",
        crate::blocklist::PAYLOAD
    );
    let _ = writeln!(s, "lagic ms is `lagic compile` with translation validation (the default); `--no-validate` ms skips it.\n");
    let _ = writeln!(s, "| k | lagic ms | lagic `--no-validate` ms | lagic insns | lagic verifier | C states | clang ms | clang verifier | lagic ns | lagic ns/B | clang ns | lagic/clang |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut stops = Vec::new();
    for row in &r.blocklist {
        let verifier = |side: &Side| {
            side.stats
                .as_ref()
                .map(|st| (st.xlated_insns.to_string(), st.verified_insns.to_string()))
                .unwrap_or_else(|| ("stops".into(), "stops".into()))
        };
        let (li, lv) = verifier(&row.lagic);
        let (_, cv) = verifier(&row.clang);
        let per_byte = |ns: f64| format!("{:.2}", ns / crate::blocklist::PAYLOAD as f64);
        let (lns, lnb, cns, ratio) = match (&row.timing, &row.alone) {
            (Some(p), _) => (
                format!("{:.0}", p.lagic_ns),
                per_byte(p.lagic_ns),
                format!("{:.0}", p.clang_ns),
                ratio_cell(p),
            ),
            (None, Some((who, ns))) if who == "lagic" => {
                (format!("{ns:.0}"), per_byte(*ns), "-".into(), "-".into())
            }
            (None, Some((_, ns))) => ("-".into(), "-".into(), format!("{ns:.0}"), "-".into()),
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {li} | {lv} | {} | {} | {cv} | {lns} | {lnb} | {cns} | {ratio} |",
            row.k,
            opt_ms(row.lagic.compile_ms),
            opt_ms(row.lagic_no_validate_ms),
            row.c_states,
            opt_ms(row.clang.compile_ms),
        );
        for (who, side) in [("lagic", &row.lagic), ("clang", &row.clang)] {
            if let Some(e) = &side.error {
                let note = if who == "lagic" {
                    " (not supported yet: needs table-driven automata in the emitter)"
                } else {
                    ""
                };
                stops.push(format!("- k={} ({who}){note}: {e}", row.k));
            }
        }
    }
    if !stops.is_empty() {
        let _ = writeln!(s, "\nWhere a side stops, and why:\n\n{}", stops.join("\n"));
    }
    match (&r.blocklist_e2e, &r.blocklist_e2e_error) {
        (Some(points), _) => {
            let _ = writeln!(
                s,
                "\nEnd to end through the veth ({}-byte responses, 4 client threads; iptables: one \
                 `-m string --algo bm --icase` DROP rule per word): requests/s, and in parentheses \
                 the median per-round fraction of no filter's (min-max).\n\n\
                 | k | none | lagic | clang | iptables |\n|---:|---:|---:|---:|---:|",
                crate::blocklist::PAYLOAD
            );
            for p in points {
                let cell = |filter: &str| {
                    let rps = p.rps.iter().find(|(f, _)| f == filter).map(|x| x.1);
                    let of = p.of_none.iter().find(|(f, _)| f == filter).map(|x| x.1);
                    let failed = p
                        .failures
                        .iter()
                        .find(|(f, _)| f == filter)
                        .map(|x| x.1)
                        .unwrap_or(0);
                    let failed = if failed > 0 {
                        format!(", {failed} failed")
                    } else {
                        String::new()
                    };
                    match (rps, of) {
                        (Some(v), Some(o)) => format!(
                            "{v:.0} ({:.0}%, {:.0}-{:.0}%{failed})",
                            o.median * 100.0,
                            o.min * 100.0,
                            o.max * 100.0
                        ),
                        (Some(v), None) => format!("{v:.0}{failed}"),
                        _ => "not loaded".into(),
                    }
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    p.k,
                    cell("none"),
                    cell("lagic"),
                    cell("clang"),
                    cell("iptables")
                );
            }
        }
        (None, why) => {
            let _ = writeln!(
                s,
                "\nEnd to end: no result ({}).",
                why.as_deref().unwrap_or("not run")
            );
        }
    }
    s
}

/// Renders BENCHMARKS.md.
pub fn markdown(r: &Results, analysis: &str) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# Benchmarks: lagic against clang\n");
    let _ = writeln!(
        s,
        "Generated by `sudo scripts/bench` on {} (commit {}), in {:.0} s of measuring.\n\n\
         - machine: {} ({} CPUs)\n- kernel: {}\n- baseline compiler: {} (`clang -O2 -g -target bpf -c`)\n\n\
         Both sides are measured in the same run, interleaved round by round. Every baseline and every lagic \
         object first gave the reference diode's verdict on {} generated frames each (payloads and packet-model \
         shapes, `BPF_PROG_TEST_RUN`), or no number would have been taken. The baselines are in \
         [`bench/baseline/`](bench/baseline/); how to rerun: [docs/benchmarks.md](docs/benchmarks.md).\n",
        m.date,
        m.commit,
        r.total_seconds,
        m.cpu,
        m.cpus,
        m.kernel,
        m.clang,
        r.seeds.first().map(|x| x.equivalence_frames).unwrap_or(0)
    );

    // Targets.
    let min_speedup = r
        .seeds
        .iter()
        .map(|x| x.compile.speedup)
        .fold(f64::INFINITY, f64::min);
    let max_ratio = r
        .seeds
        .iter()
        .flat_map(|x| x.runtime.iter().map(|p| p.ratio))
        .fold(0.0, f64::max);
    // Per diode: how many of its sizes lagic is slower on.
    let slower: Vec<String> = r
        .seeds
        .iter()
        .filter_map(|x| {
            let n = x.runtime.iter().filter(|p| p.ratio > 1.0).count();
            (n > 0).then(|| format!("{} {n}/{}", x.diode, x.runtime.len()))
        })
        .collect();
    let verifier_over: Vec<&str> = r
        .seeds
        .iter()
        .filter(|x| x.lagic.verified_insns > x.clang.verified_insns)
        .map(|x| x.diode.as_str())
        .collect();
    let hate3000 = r
        .seeds
        .iter()
        .find(|x| x.diode == "hateless")
        .and_then(|x| x.runtime.iter().find(|p| p.payload == 3000))
        .map(|p| 3000.0 / p.lagic_ns)
        .unwrap_or(0.0);
    let _ = writeln!(s, "## Targets\n\n| target | result | |\n|---|---|---|");
    let _ = writeln!(s, "| compile latency: lagic >= 50x faster than clang on every diode | smallest speedup {min_speedup:.0}x | {} |", verdict_mark(min_speedup >= 50.0));
    let _ = writeln!(
        s,
        "| run time: lagic <= 1.0x clang's ns/packet on every diode and size | largest ratio {max_ratio:.2}x{} | {} |",
        if slower.is_empty() { String::new() } else { format!(" (sizes where lagic is slower: {})", slower.join(", ")) },
        verdict_mark(slower.is_empty())
    );
    let _ = writeln!(
        s,
        "| verifier: lagic's processed instructions <= clang's | {} | {} |",
        if verifier_over.is_empty() {
            "every diode".to_string()
        } else {
            format!("more on {}", verifier_over.join(", "))
        },
        verdict_mark(verifier_over.is_empty())
    );
    let _ = writeln!(
        s,
        "| hateless scans >= 3 bytes/ns at 3,000 bytes | {hate3000:.2} bytes/ns | {} |",
        verdict_mark(hate3000 >= 3.0)
    );
    for (what, measured, met) in blocklist_target_rows(&r.blocklist) {
        let _ = writeln!(s, "| {what} | {measured} | {} |", verdict_mark(met));
    }
    if let Some(e) = &r.e2e {
        let worst = e.worst_diode_fraction();
        let _ = writeln!(s, "| end to end: throughput with a diode >= 90% of without | lagic hateless {:.0}% | {} |", worst * 100.0, verdict_mark(worst >= 0.9));
        for (what, measured, met) in e.target_rows() {
            let _ = writeln!(s, "| {what} | {measured} | {} |", verdict_mark(met));
        }
    }

    let _ = writeln!(
        s,
        "\n## Compile latency (whole process, median of {} runs)\n",
        r.seeds.first().map(|x| x.compile.runs).unwrap_or(0)
    );
    let _ = writeln!(
        s,
        "Ratios are medians of per-round ratios (min-max over the rounds in parentheses).\n\n\
         `lagic compile` validates the object it writes unless `--no-validate` is given; the last column is the same \
         compile without validation (its clang / lagic ratio in parentheses).\n\n\
         | diode | lagic ms | clang ms | clang / lagic | lagic `-o -` ms | clang ms (same rounds) | clang / lagic `-o -` | lagic `--no-validate` ms |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for x in &r.seeds {
        let o = &x.compile_to_stdout;
        let no_validate = match &x.compile_no_validate {
            Some(n) => format!("{:.2} ({})", n.lagic_ms, speedup_cell(n)),
            None => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.1} | {} | {:.2} | {:.1} | {} | {no_validate} |",
            x.diode,
            x.compile.lagic_ms,
            x.compile.clang_ms,
            speedup_cell(&x.compile),
            o.lagic_ms,
            o.clang_ms,
            speedup_cell(o)
        );
    }
    let f = &r.startup_floor;
    let _ = writeln!(
        s,
        "\nProcess start-up alone (`lagic --version` / `clang --version`, same rounds): {:.2} ms / {:.1} ms. \
         Whole-process time includes it on both sides. `lagic compile -o FILE` writes atomically (temporary \
         file, fsync, rename); `-o -` writes the object to standard output.",
        f.lagic_ms, f.clang_ms
    );

    let _ = writeln!(
        s,
        "\n## Run time per packet (`BPF_PROG_TEST_RUN`, ns, median of interleaved rounds)\n"
    );
    let _ = writeln!(s, "Each cell: lagic / clang ns (median per-round lagic/clang ratio, min-max over the rounds). The payload is ordinary text the diode passes (JSON for json_depth; json_start drops at 1,400 bytes and more by its `len < 1400`).\n");
    let sizes: Vec<usize> = r
        .seeds
        .first()
        .map(|x| x.runtime.iter().map(|p| p.payload).collect())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "| diode | {} |\n|---|{}",
        sizes
            .iter()
            .map(|n| format!("{n} B"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(sizes.len())
    );
    for x in &r.seeds {
        let cells: Vec<String> = x
            .runtime
            .iter()
            .map(|p| format!("{:.0} / {:.0} ({})", p.lagic_ns, p.clang_ns, ratio_cell(p)))
            .collect();
        let _ = writeln!(s, "| {} | {} |", x.diode, cells.join(" | "));
    }

    if let Some(stream) = &r.stream {
        s.push_str(&stream.markdown());
    }

    let _ = writeln!(s, "\n## Verifier cost and program size\n");
    let _ = writeln!(s, "| diode | verifier insns lagic | clang | xlated insns lagic | clang | JIT bytes lagic | clang |\n|---|---:|---:|---:|---:|---:|---:|");
    for x in &r.seeds {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            x.diode,
            x.lagic.verified_insns,
            x.clang.verified_insns,
            x.lagic.xlated_insns,
            x.clang.xlated_insns,
            x.lagic.jited_bytes,
            x.clang.jited_bytes
        );
    }

    let _ = writeln!(
        s,
        "\n## Scanning speed as the payload grows (whole-payload scans)\n"
    );
    let _ = writeln!(s, "| diode | payload B | lagic ns | clang ns | lagic B/ns | clang B/ns | lagic/clang (min-max) |\n|---|---:|---:|---:|---:|---:|---:|");
    for (diode, p) in &r.per_byte {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
            diode,
            p.payload,
            p.lagic_ns,
            p.clang_ns,
            p.payload as f64 / p.lagic_ns,
            p.payload as f64 / p.clang_ns,
            ratio_cell(p)
        );
    }

    let _ = writeln!(s, "\n## Scaling with the size of the spec\n");
    let _ = writeln!(
        s,
        "`contains k`: `not (or of k contains)` over the whole payload (a block list of k 4-letter words); \
         `windows k`: `and` of k `all [16i, 16i+16) C_i` with a different class per window. `depth k`: json_depth with its bound raised to k (the C side: the json_depth baseline with `MAX_DEPTH` k). The C side is \
         generated for the same predicate (bench/src/scaling.rs). Compile ms is the median whole-process time; \
         both objects must also agree with the plain definition on 300 frames before their row counts.\n"
    );
    let _ = writeln!(s, "| spec | k | lagic ms | lagic insns | lagic verifier | clang ms | clang insns | clang verifier |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut stops = Vec::new();
    for row in &r.scaling {
        let cells = |side: &Side| {
            let (i, v) = side
                .stats
                .as_ref()
                .map(|st| (st.xlated_insns.to_string(), st.verified_insns.to_string()))
                .unwrap_or_else(|| ("stops".into(), "stops".into()));
            format!("{} | {} | {}", opt_ms(side.compile_ms), i, v)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            row.family,
            row.k,
            cells(&row.lagic),
            cells(&row.clang)
        );
        for (who, side) in [("lagic", &row.lagic), ("clang", &row.clang)] {
            if let Some(e) = &side.error {
                stops.push(format!("- {} k={} ({who}): {e}", row.family, row.k));
            }
        }
    }
    if !stops.is_empty() {
        let _ = writeln!(s, "\nWhere a side stops, and why:\n\n{}", stops.join("\n"));
    }
    if !r.blocklist.is_empty() || r.blocklist_e2e.is_some() {
        s.push_str(&blocklist_markdown(r));
    }

    if let Some(e) = &r.e2e {
        s.push('\n');
        s.push_str(&e.markdown());
    } else {
        let why = r.e2e_error.as_deref().unwrap_or("not run");
        let _ = writeln!(s, "\n## End to end\n\nNo result: {why}");
    }

    if !analysis.trim().is_empty() {
        s.push('\n');
        s.push_str(analysis.trim_end());
        s.push('\n');
    }
    s
}

/// Writes BENCHMARKS.md and bench/results.json under `root`; returns the
/// path of BENCHMARKS.md.
pub fn write(r: &Results, root: &Path) -> Result<PathBuf, BenchError> {
    let analysis =
        std::fs::read_to_string(root.join("bench").join("analysis.md")).unwrap_or_default();
    let json = serde_json::to_string_pretty(r)
        .map_err(|e| BenchError::Setup(format!("serializing results: {e}")))?;
    let json_path = root.join("bench").join("results.json");
    std::fs::write(&json_path, json + "\n")
        .map_err(|e| BenchError::io(&format!("writing {}", json_path.display()), e))?;
    let md_path = root.join("BENCHMARKS.md");
    std::fs::write(&md_path, markdown(r, &analysis))
        .map_err(|e| BenchError::io(&format!("writing {}", md_path.display()), e))?;
    Ok(md_path)
}

/// Re-renders BENCHMARKS.md from `bench/results.json` and the current
/// `bench/analysis.md`, without measuring anything.
pub fn rerender(root: &Path) -> Result<PathBuf, BenchError> {
    let json_path = root.join("bench").join("results.json");
    let text = std::fs::read_to_string(&json_path)
        .map_err(|e| BenchError::io(&format!("reading {}", json_path.display()), e))?;
    let results: Results = serde_json::from_str(&text)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", json_path.display())))?;
    write(&results, root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block-list row whose lagic object ran at `ns` per packet (or did
    /// not load, with `error`).
    fn row(k: usize, ns: Option<f64>, error: Option<&str>) -> BlocklistRow {
        let timing = ns.map(|ns| {
            serde_json::from_value::<RunPair>(serde_json::json!({
                "payload": crate::blocklist::PAYLOAD, "verdict": "pass",
                "lagic_ns": ns, "clang_ns": 4400.0, "ratio": ns / 4400.0,
            }))
            .unwrap()
        });
        BlocklistRow {
            k,
            lagic: Side {
                compile_ms: Some(1.0),
                stats: None,
                error: error.map(str::to_string),
                program: None,
            },
            clang: Side {
                compile_ms: Some(50.0),
                stats: None,
                error: None,
                program: None,
            },
            lagic_no_validate_ms: None,
            c_states: 10,
            timing,
            alone: None,
        }
    }

    #[test]
    fn block_list_targets_compare_a_thousand_words_with_one() {
        let rows = [
            row(1, Some(1000.0), None),
            row(1_000, Some(2100.0), None),
            row(10_000, Some(2200.0), None),
        ];
        let out = blocklist_target_rows(&rows);
        assert_eq!(out.len(), 2);
        assert!(out[0].1.ends_with("2.10x"), "{:?}", out[0]);
        assert!(!out[0].2, "2.1x is over the 2x target");
        assert!(out[1].2 && out[1].1 == "2200 ns per packet", "{:?}", out[1]);

        let rows = [
            row(1, Some(1000.0), None),
            row(1_000, Some(1900.0), None),
            row(10_000, None, Some("verifier: program too large")),
        ];
        let out = blocklist_target_rows(&rows);
        assert!(out[0].2, "1.9x meets the target: {:?}", out[0]);
        assert!(
            !out[1].2 && out[1].1.starts_with("stopped: "),
            "{:?}",
            out[1]
        );
        // Without block lists there is nothing to claim.
        assert!(blocklist_target_rows(&[]).is_empty());
    }
}
