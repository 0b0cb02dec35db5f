//! `lagic-bench`: the whole benchmark in one run (see lib.rs for the parts).
//!
//! Usage (`lagic-bench --help` prints it): `lagic-bench [--quick] [--no-e2e]` (or `--render`: rewrite
//! BENCHMARKS.md from bench/results.json; or `--e2e-only [--quick]`: only the
//! end-to-end part, its table on stdout, nothing written; or
//! `--keepalive-only [--body N]... [--seconds S] [FILTER...]`: only its
//! keep-alive load, for the filters named (`lagic`, `stream`, `clang`,
//! `iptables`; default all)
//! beside no filter; or `--wire-only [--quick]`: only its per-packet
//! comparison with iptables), as root, after building
//! `lagic` and `lagic-enclave` in the same profile; `scripts/bench` does all
//! of that. `lagic-bench serve ADDR` is the HTTP server the end-to-end part
//! starts inside its namespace. `lagic-bench enclave [--quick] [--rounds N]
//! [--run-c PATH]` compares lagic-enclave's inference speed with a C llama2
//! (needs gcc, not root; see enclave.rs). `lagic-bench --stream-only
//! [--quick]`: only the stream diodes' run time per segment (`hateless`
//! and the `http_response` views) beside the per-packet diode's (see
//! stream.rs), its section on stdout, nothing written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lagic_bench::measure::{self, CompilePair, RunPair, Stats};
use lagic_bench::report::{self, BlocklistRow, Machine, Results, ScalingRow, SeedResult, Side};
use lagic_bench::scaling::{self, Family};
use lagic_bench::{e2e, equivalence, load_object, tools, BenchError, DIODES};

/// Knobs: the full run, or a quick smoke run.
struct Plan {
    equivalence_frames: usize,
    compile_runs: usize,
    rounds: usize,
    scaling_ks: Vec<usize>,
    scaling_runs: usize,
    blocklist_ks: Vec<usize>,
    e2e: bool,
    e2e_seconds: f64,
}

/// What `--help` prints.
const USAGE: &str = "\
lagic-bench: lagic against clang, iptables and no filter (run as root; scripts/bench builds and runs it)

usage:
  lagic-bench [--quick] [--no-e2e]       the whole benchmark: rewrites BENCHMARKS.md and bench/results.json
  lagic-bench --render                   BENCHMARKS.md again from bench/results.json (no measuring)
  lagic-bench --runtime-only [DIODE...] [--quick]   run time of seed diodes against their C baselines
  lagic-bench --stream-only [--quick]    stream diodes' time per segment beside the per-packet diode's
  lagic-bench --scaling-only [--quick]   the scaling families
  lagic-bench --blocklist-only [--quick] [--no-e2e]   block lists of 1 to 10,000 words
  lagic-bench --blocklist-spec K         the block-list spec of K words on stdout
  lagic-bench --blocklist-compare K A.o B.o [BYTES]   two objects of the K-word list, alternated
  lagic-bench --events-compare A.o B.o [ROUNDS]       two objects' cost with and without events
  lagic-bench --e2e-only [--quick]       the end-to-end part (veth, HTTP, iptables), tables on stdout
  lagic-bench --keepalive-only [--body N]... [--seconds S] [FILTER...]   the keep-alive load alone
                                         (FILTER: lagic, stream, clang, iptables; default all)
  lagic-bench --wire-only [--quick]      per packet through the veth: 1,000 words against 1,000 iptables rules
  lagic-bench enclave [--quick] [--tiny-only] [--rounds N] [--run-c PATH]   lagic-enclave's inference speed against C llama2
  lagic-bench --help                     this text

The parts other than --render, --blocklist-spec and enclave need root (BPF, namespaces, iptables).
docs/benchmarks.md explains what each part measures.";

/// Every option the modes above read.
const KNOWN_FLAGS: [&str; 19] = [
    "--quick",
    "--no-e2e",
    "--render",
    "--runtime-only",
    "--stream-only",
    "--scaling-only",
    "--blocklist-only",
    "--blocklist-spec",
    "--blocklist-compare",
    "--events-compare",
    "--e2e-only",
    "--keepalive-only",
    "--body",
    "--seconds",
    "--wire-only",
    "--rounds",
    "--run-c",
    "--help",
    "-h",
];

const SIZES: [usize; 5] = [16, 64, 512, 1400, 3000];
const PER_BYTE_SIZES: [usize; 8] = [64, 128, 256, 512, 1024, 2048, 3000, 3600];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let addr = args
            .get(1)
            .cloned()
            .unwrap_or_else(|| "0.0.0.0:8090".into());
        if let Err(e) = e2e::serve(&addr) {
            eprintln!("lagic-bench serve: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("blast") {
        // The per-packet sender, started by the benchmark in its lab's namespace.
        if let Err(e) = lagic_bench::wire::blast(&args[1..]) {
            eprintln!("lagic-bench blast: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("enclave") {
        if let Err(e) = lagic_bench::enclave::main(&args[1..]) {
            eprintln!("lagic-bench enclave: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    // An unknown flag must not fall through to the full run: that run
    // rewrites BENCHMARKS.md and touches namespaces and iptables.
    if let Some(bad) = args
        .iter()
        .find(|a| a.starts_with('-') && !KNOWN_FLAGS.contains(&a.as_str()))
    {
        eprintln!("lagic-bench: unknown option `{bad}` (see `lagic-bench --help`)");
        std::process::exit(2);
    }
    if args.first().map(String::as_str) == Some("--blocklist-spec") {
        // For probing lagic by hand: the block-list spec of K words on stdout.
        match args.get(1).and_then(|k| k.parse::<usize>().ok()) {
            Some(k) => print!("{}", lagic_bench::blocklist::spec(k)),
            None => {
                eprintln!("usage: lagic-bench --blocklist-spec K");
                std::process::exit(2);
            }
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--blocklist-compare") {
        // Two objects for the same K-word list (e.g. lagic built two ways),
        // timed alternately on the family's timing payload (of BYTES bytes,
        // the family's size by default).
        let result = (|| -> Result<String, BenchError> {
            let usage = || {
                BenchError::Setup("usage: lagic-bench --blocklist-compare K A.o B.o [BYTES]".into())
            };
            let k: usize = args.get(1).and_then(|k| k.parse().ok()).ok_or_else(usage)?;
            let (a, b) = (
                args.get(2).ok_or_else(usage)?,
                args.get(3).ok_or_else(usage)?,
            );
            let (pa, pb) = (load_object(Path::new(a))?, load_object(Path::new(b))?);
            let reference = lagic_bench::blocklist::Reference::new(k);
            let size = match args.get(4) {
                Some(bytes) => bytes
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| (1..=60_000).contains(&n))
                    .ok_or_else(usage)?,
                None => lagic_bench::blocklist::PAYLOAD,
            };
            let payload = lagic_bench::blocklist::timing_payload_of(&reference, size);
            let frame = measure::frame(&payload);
            let pair = measure::run_pair(&pa, &pb, &frame, size, 9, repeat_for(size))?;
            Ok(format!(
                "{size} B: {a}: {:.0} ns ({:.2} ns/B), {b}: {:.0} ns ({:.2} ns/B), first/second {}\n",
                pair.lagic_ns,
                pair.lagic_ns / size as f64,
                pair.clang_ns,
                pair.clang_ns / size as f64,
                pair.ratio_range.show(2)
            ))
        })();
        match result {
            Ok(line) => print!("{line}"),
            Err(e) => {
                eprintln!("lagic-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--events-compare") {
        // The seed diodes compiled two ways (e.g. before and after a change
        // to the drop path), timed alternately on pass and drop traffic.
        let result = (|| -> Result<String, BenchError> {
            let usage = || {
                BenchError::Setup("usage: lagic-bench --events-compare A_DIR B_DIR [ROUNDS]".into())
            };
            let (a, b) = (
                args.get(1).ok_or_else(usage)?,
                args.get(2).ok_or_else(usage)?,
            );
            let rounds = match args.get(3) {
                Some(r) => r.parse().map_err(|_| usage())?,
                None => 15,
            };
            events_compare(Path::new(a), Path::new(b), rounds)
        })();
        match result {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("lagic-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if args.iter().any(|a| a == "--render") {
        // BENCHMARKS.md again from bench/results.json, e.g. after editing bench/analysis.md.
        match report::rerender(&tools::workspace_root()) {
            Ok(path) => println!("lagic-bench: wrote {}", path.display()),
            Err(e) => {
                eprintln!("lagic-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let plan = Plan {
        equivalence_frames: if quick { 500 } else { 3000 },
        compile_runs: if quick { 3 } else { 15 },
        rounds: if quick { 3 } else { 9 },
        scaling_ks: if quick {
            vec![1, 8, 48, 64]
        } else {
            vec![1, 2, 4, 8, 16, 32, 48, 49, 64, 128, 256]
        },
        scaling_runs: if quick { 1 } else { 3 },
        blocklist_ks: if quick {
            vec![1, 10, 1_000]
        } else {
            lagic_bench::blocklist::SIZES.to_vec()
        },
        e2e: !args.iter().any(|a| a == "--no-e2e"),
        e2e_seconds: if quick { 2.0 } else { 8.0 },
    };
    let started = Instant::now();
    if args.iter().any(|a| a == "--scaling-only") {
        // For working on the generators: the scaling table on stderr only.
        let result = (|| -> Result<(), BenchError> {
            let clang = tools::find_on_path("clang")
                .ok_or_else(|| BenchError::Setup("clang not found".into()))?;
            let (lagic, work) = (tools::lagic_binary()?, work_dir()?);
            for family in [Family::Contains, Family::Windows, Family::Depth] {
                for &k in &plan.scaling_ks {
                    let row = scaling_row(family, k, 1, &lagic, &clang, &work)?;
                    eprintln!(
                        "{} k={k}: lagic {} / clang {}",
                        family.name(),
                        row.lagic.summary(),
                        row.clang.summary()
                    );
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("lagic-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--blocklist-only") {
        // The block-list family alone (with its end-to-end part unless
        // --no-e2e): its section on stdout, nothing written.
        let result = (|| -> Result<String, BenchError> {
            let clang = tools::find_on_path("clang")
                .ok_or_else(|| BenchError::Setup("clang not found".into()))?;
            let (lagic, work) = (tools::lagic_binary()?, work_dir()?);
            let rows = blocklist_rows(&plan, &lagic, &clang, &work)?;
            let (e2e, e2e_error) = blocklist_e2e(&plan, &lagic, &rows, &work);
            let results = Results {
                machine: Machine::detect(&clang),
                seeds: Vec::new(),
                per_byte: Vec::new(),
                scaling: Vec::new(),
                e2e: None,
                e2e_error: None,
                total_seconds: started.elapsed().as_secs_f64(),
                // Not measured in this mode; the section does not show it.
                startup_floor: CompilePair {
                    lagic_ms: 0.0,
                    clang_ms: 0.0,
                    speedup: 0.0,
                    speedup_range: Default::default(),
                    runs: 0,
                },
                blocklist: rows,
                blocklist_e2e: e2e,
                blocklist_e2e_error: e2e_error,
                stream: None,
            };
            Ok(report::blocklist_markdown(&results))
        })();
        match result {
            Ok(table) => print!("{table}"),
            Err(e) => {
                eprintln!("lagic-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if args.iter().any(|a| a == "--runtime-only") {
        // For working on the emitter: run time per packet of some seeds
        // (all without names), gated and alternated as in a full run; lines
        // on stderr, nothing written.
        let names: Vec<&str> = args
            .iter()
            .filter(|a| !a.starts_with("--"))
            .map(String::as_str)
            .collect();
        if let Err(e) = runtime_only(&plan, &names) {
            eprintln!("lagic-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--stream-only") {
        let result = (|| -> Result<String, BenchError> {
            lagic_loader::bpf_available().map_err(|why| {
                BenchError::Setup(format!("BPF is not available (run as root): {why}"))
            })?;
            let (lagic, work) = (tools::lagic_binary()?, work_dir()?);
            Ok(stream_bench(&plan, &lagic, &work)?.markdown())
        })();
        match result {
            Ok(table) => print!("{table}"),
            Err(e) => {
                eprintln!("lagic-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let keepalive_only = args.iter().any(|a| a == "--keepalive-only");
    let wire_only = args.iter().any(|a| a == "--wire-only");
    if keepalive_only || wire_only || args.iter().any(|a| a == "--e2e-only") {
        // For working on the lab: the end-to-end part alone (or only its
        // keep-alive load, for some filters), nothing written.
        let result = (|| -> Result<String, BenchError> {
            let clang = tools::find_on_path("clang")
                .ok_or_else(|| BenchError::Setup("clang not found".into()))?;
            let (lagic, work) = (tools::lagic_binary()?, work_dir()?);
            let lagic_obj = work.join("hateless.lagic.o");
            let clang_obj = work.join("hateless.clang.o");
            tools::compile_spec(&lagic, &tools::example_spec("hateless"), &lagic_obj)?;
            tools::compile_c(
                &clang,
                &tools::baseline_dir().join("hateless.c"),
                &clang_obj,
            )?;
            let stream_obj = work.join("hateless.stream.lagic.o");
            tools::compile_spec(&lagic, &tools::stream_example_spec("hateless"), &stream_obj)?;
            let blocklist_obj = wire_blocklist_object(&lagic, &work)?;
            let config = e2e::Config {
                lagic,
                lagic_obj,
                clang_obj,
                stream_obj: Some(stream_obj),
                blocklist_obj: Some(blocklist_obj),
                seconds: plan.e2e_seconds,
            };
            let result = if wire_only {
                let filters = e2e::wire_filters(
                    config.blocklist_obj.as_deref().unwrap_or(Path::new("")),
                    &config.lagic_obj,
                );
                let rounds = if quick { 2 } else { 5 };
                let r = e2e::per_packet(
                    config.lagic.clone(),
                    &filters,
                    &e2e::wire_payload()?,
                    e2e::WIRE_WORDS,
                    rounds,
                    1.0,
                )?;
                return Ok(r.markdown());
            } else if keepalive_only {
                // Filters named on the command line (none: all of them),
                // `--body N` (repeatable) and `--seconds S` per wrk run.
                let bad = |what: &str| BenchError::Setup(format!("--keepalive-only: {what}"));
                let (mut only, mut bodies, mut seconds) = (Vec::new(), Vec::new(), None);
                let mut it = args.iter();
                while let Some(a) = it.next() {
                    match a.as_str() {
                        "--body" => bodies.push(
                            it.next()
                                .and_then(|n| n.parse::<usize>().ok())
                                .ok_or_else(|| bad("--body needs a size in bytes"))?,
                        ),
                        "--seconds" => {
                            seconds = Some(
                                it.next()
                                    .and_then(|n| n.parse::<f64>().ok())
                                    .filter(|s| *s >= 1.0)
                                    .ok_or_else(|| bad("--seconds needs a number >= 1"))?,
                            )
                        }
                        a if a.starts_with("--") => {}
                        f => only.push(f.to_string()),
                    }
                }
                e2e::keepalive_only(&config, &only, &bodies, seconds)?
            } else {
                e2e::run(&config)?
            };
            Ok(result.markdown())
        })();
        match result {
            Ok(table) => print!("{table}"),
            Err(e) => {
                eprintln!("lagic-bench: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    match run(&plan, started) {
        Ok(path) => println!(
            "lagic-bench: wrote {} in {:.0} s",
            path.display(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("lagic-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// One seed diode, built and loaded on both sides, past the gate.
struct Seed {
    diode: &'static str,
    spec: PathBuf,
    source: PathBuf,
    lagic_obj: PathBuf,
    clang_obj: PathBuf,
    lagic: lagic_loader::LoadedProgram,
    clang: lagic_loader::LoadedProgram,
    checked: usize,
}

fn work_dir() -> Result<PathBuf, BenchError> {
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench binary", e))?;
    let dir = exe.parent().unwrap_or(Path::new(".")).join("bench-work");
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::io(&format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// Builds both sides of seed `diode` and gates them on equivalence.
fn build_seed(
    diode: &'static str,
    plan: &Plan,
    lagic: &Path,
    clang: &Path,
    work: &Path,
) -> Result<Seed, BenchError> {
    let spec = tools::example_spec(diode);
    let source = tools::baseline_dir().join(format!("{diode}.c"));
    let lagic_obj = work.join(format!("{diode}.lagic.o"));
    let clang_obj = work.join(format!("{diode}.clang.o"));
    tools::compile_spec(lagic, &spec, &lagic_obj)?;
    tools::compile_c(clang, &source, &clang_obj)?;
    let l = load_object(&lagic_obj)?;
    let c = load_object(&clang_obj)?;
    let reference = reference_diodes::by_name(diode)
        .ok_or_else(|| BenchError::Setup(format!("no reference diode {diode}")))?;
    let cases = equivalence::cases(
        reference,
        plan.equivalence_frames,
        0xD10DE ^ diode.len() as u64,
    );
    let checked = equivalence::check(diode, &[("lagic", &l), ("clang", &c)], &cases)?;
    eprintln!(
        "lagic-bench: {diode}: lagic and clang agree with the reference diode on {checked} frames"
    );
    Ok(Seed {
        diode,
        spec,
        source,
        lagic_obj,
        clang_obj,
        lagic: l,
        clang: c,
        checked,
    })
}

/// `--runtime-only`: the run-time comparison of section 3 for `names`.
fn runtime_only(plan: &Plan, names: &[&str]) -> Result<(), BenchError> {
    lagic_loader::bpf_available()
        .map_err(|why| BenchError::Setup(format!("BPF is not available (run as root): {why}")))?;
    let clang = tools::find_on_path("clang")
        .ok_or_else(|| BenchError::Setup("clang not found; scripts/bench installs it".into()))?;
    let (lagic, work) = (tools::lagic_binary()?, work_dir()?);
    for diode in DIODES {
        if !names.is_empty() && !names.contains(&diode) {
            continue;
        }
        let seed = build_seed(diode, plan, &lagic, &clang, &work)?;
        let sizes: Vec<usize> = if diode == "hateless" {
            PER_BYTE_SIZES.to_vec()
        } else {
            SIZES.to_vec()
        };
        for size in sizes {
            let frame = measure::frame(&measure::timing_payload(diode, size));
            let pair = measure::run_pair(
                &seed.lagic,
                &seed.clang,
                &frame,
                size,
                plan.rounds,
                repeat_for(size),
            )?;
            eprintln!(
                "lagic-bench: {diode} {size} B: lagic {:.1} ns ({:.2} B/ns), clang {:.1} ns, lagic/clang {} over {} rounds",
                pair.lagic_ns,
                size as f64 / pair.lagic_ns,
                pair.clang_ns,
                pair.ratio_range.show(2),
                plan.rounds
            );
        }
    }
    Ok(())
}

fn run(plan: &Plan, started: Instant) -> Result<PathBuf, BenchError> {
    lagic_loader::bpf_available()
        .map_err(|why| BenchError::Setup(format!("BPF is not available (run as root): {why}")))?;
    let clang = tools::find_on_path("clang")
        .ok_or_else(|| BenchError::Setup("clang not found; scripts/bench installs it".into()))?;
    let lagic = tools::lagic_binary()?;
    let work = work_dir()?;
    let machine = Machine::detect(&clang);
    eprintln!(
        "lagic-bench: {} / kernel {} / {}",
        machine.cpu, machine.kernel, machine.clang
    );

    // 1. Build both sides of every seed diode and gate them on equivalence.
    let mut seeds = Vec::new();
    for diode in DIODES {
        seeds.push(build_seed(diode, plan, &lagic, &clang, &work)?);
    }

    // 2. Compile latency, interleaved, whole process.
    let mut results = Vec::new();
    for Seed {
        diode,
        spec,
        source,
        lagic_obj,
        clang_obj,
        lagic: l,
        clang: c,
        checked,
    } in &seeds
    {
        let compile: CompilePair = measure::compile_pair(
            plan.compile_runs,
            || tools::compile_spec(&lagic, spec, lagic_obj),
            || tools::compile_c(&clang, source, clang_obj),
        )?;
        // The same compile writing to stdout: no temporary file, fsync and
        // rename, which is where most of lagic's whole-process time goes.
        let to_stdout: CompilePair = measure::compile_pair(
            plan.compile_runs,
            || {
                let mut cmd = std::process::Command::new(&lagic);
                cmd.arg("compile").arg(spec).args(["-o", "-"]);
                cmd.stdout(std::process::Stdio::null());
                tools::run_timed("lagic compile -o -", cmd)
            },
            || tools::compile_c(&clang, source, clang_obj),
        )?;
        // Without translation validation: what validation adds.
        let no_validate: CompilePair = measure::compile_pair(
            plan.compile_runs,
            || {
                let mut cmd = std::process::Command::new(&lagic);
                cmd.arg("compile")
                    .arg(spec)
                    .arg("--no-validate")
                    .arg("-o")
                    .arg(lagic_obj);
                tools::run_timed("lagic compile --no-validate", cmd)
            },
            || tools::compile_c(&clang, source, clang_obj),
        )?;
        let lagic_stats: Stats = measure::stats(l)?;
        let clang_stats: Stats = measure::stats(c)?;
        eprintln!(
            "lagic-bench: {diode}: compile {:.2} ms vs {:.1} ms ({:.0}x); verifier {} vs {}",
            compile.lagic_ms,
            compile.clang_ms,
            compile.speedup,
            lagic_stats.verified_insns,
            clang_stats.verified_insns
        );
        results.push(SeedResult {
            diode: diode.to_string(),
            equivalence_frames: *checked,
            compile,
            compile_to_stdout: to_stdout,
            compile_no_validate: Some(no_validate),
            lagic: lagic_stats,
            clang: clang_stats,
            runtime: Vec::new(),
        });
    }

    let startup_floor = measure::compile_pair(
        plan.compile_runs,
        || tools::run_timed("lagic --version", version_command(&lagic)),
        || tools::run_timed("clang --version", version_command(&clang)),
    )?;

    // 3. Run time per packet, interleaved rounds.
    for (
        result,
        Seed {
            diode,
            lagic: l,
            clang: c,
            ..
        },
    ) in results.iter_mut().zip(&seeds)
    {
        for size in SIZES {
            let frame = measure::frame(&measure::timing_payload(diode, size));
            let pair: RunPair =
                measure::run_pair(l, c, &frame, size, plan.rounds, repeat_for(size))?;
            eprintln!(
                "lagic-bench: {diode} {size} B: {:.1} ns vs {:.1} ns ({:.2})",
                pair.lagic_ns, pair.clang_ns, pair.ratio
            );
            result.runtime.push(pair);
        }
    }
    // Whole-payload scans as the payload grows.
    let mut per_byte = Vec::new();
    for diode in ["hateless", "json_depth"] {
        let seed = seeds
            .iter()
            .find(|s| s.diode == diode)
            .ok_or_else(|| BenchError::Setup(format!("no {diode}")))?;
        for size in PER_BYTE_SIZES {
            let frame = measure::frame(&measure::timing_payload(diode, size));
            let pair = measure::run_pair(
                &seed.lagic,
                &seed.clang,
                &frame,
                size,
                plan.rounds,
                repeat_for(size),
            )?;
            per_byte.push((diode.to_string(), pair));
        }
    }
    let hateless = seeds
        .iter()
        .find(|s| s.diode == "hateless")
        .ok_or_else(|| BenchError::Setup("no hateless".into()))?;

    // 4. Scaling.
    let mut scaling_rows = Vec::new();
    for family in [Family::Contains, Family::Windows, Family::Depth] {
        for &k in &plan.scaling_ks {
            let row = scaling_row(family, k, plan.scaling_runs, &lagic, &clang, &work)?;
            eprintln!(
                "lagic-bench: scaling {} k={k}: lagic {} / clang {}",
                family.name(),
                row.lagic.summary(),
                row.clang.summary()
            );
            scaling_rows.push(row);
        }
    }

    // 4b. Block lists of 1 to 10,000 words.
    let blocklist = blocklist_rows(plan, &lagic, &clang, &work)?;

    // 4c. Stream mode per segment, beside per-packet mode.
    let stream = stream_bench(plan, &lagic, &work)?;

    // 5. End to end in the lab.
    // A failure here (no iptables, no veth support) costs only this part:
    // the report says why, and everything measured above is still written.
    let (e2e, e2e_error) = if plan.e2e {
        let stream_obj = work.join("hateless.stream.lagic.o");
        let stream_obj =
            match tools::compile_spec(&lagic, &tools::stream_example_spec("hateless"), &stream_obj)
            {
                Ok(_) => Some(stream_obj),
                Err(e) => {
                    eprintln!(
                        "lagic-bench: the stream hateless did not compile, not measured: {e}"
                    );
                    None
                }
            };
        let blocklist_obj = match wire_blocklist_object(&lagic, &work) {
            Ok(obj) => Some(obj),
            Err(e) => {
                eprintln!(
                    "lagic-bench: the block list did not compile, per packet not measured: {e}"
                );
                None
            }
        };
        let config = e2e::Config {
            lagic: lagic.clone(),
            lagic_obj: hateless.lagic_obj.clone(),
            clang_obj: hateless.clang_obj.clone(),
            stream_obj,
            blocklist_obj,
            seconds: plan.e2e_seconds,
        };
        match e2e::run(&config) {
            Ok(result) => (Some(result), None),
            Err(e) => {
                eprintln!("lagic-bench: end to end failed: {e}");
                (None, Some(e.to_string()))
            }
        }
    } else {
        (None, Some("not run (--no-e2e)".to_string()))
    };

    let (blocklist_e2e, blocklist_e2e_error) = blocklist_e2e(plan, &lagic, &blocklist, &work);
    let results = Results {
        machine,
        seeds: results,
        per_byte,
        scaling: scaling_rows,
        e2e,
        e2e_error,
        total_seconds: started.elapsed().as_secs_f64(),
        startup_floor,
        blocklist,
        blocklist_e2e,
        blocklist_e2e_error,
        stream: Some(stream),
    };
    report::write(&results, &tools::workspace_root())
}

/// lagic's object for the per-packet comparison's block list.
fn wire_blocklist_object(lagic: &Path, work: &Path) -> Result<PathBuf, BenchError> {
    let name = format!("blocklist_{}", e2e::WIRE_WORDS);
    let spec = work.join(format!("{name}.wire.json"));
    let obj = work.join(format!("{name}.wire.lagic.o"));
    std::fs::write(&spec, lagic_bench::blocklist::spec(e2e::WIRE_WORDS))
        .map_err(|e| BenchError::io(&format!("writing {}", spec.display()), e))?;
    tools::compile_spec(lagic, &spec, &obj)?;
    Ok(obj)
}

/// Data segments per flow in the stream benchmark: about a 100 KB response.
const STREAM_SEGMENTS: usize = 70;

/// The stream benchmark (stream.rs) with the plan's rounds.
fn stream_bench(
    plan: &Plan,
    lagic: &Path,
    work: &Path,
) -> Result<lagic_bench::stream::StreamBench, BenchError> {
    let rounds = plan.rounds.max(3);
    let result = lagic_bench::stream::run(lagic, work, rounds, STREAM_SEGMENTS)?;
    eprintln!(
        "lagic-bench: stream hateless {:.0} ns per {}-byte segment, per-packet {:.0} ns ({} over {} rounds)",
        result.stream_ns,
        result.segment,
        result.packet_ns,
        result.ratio.show(2),
        rounds
    );
    for h in &result.http {
        eprintln!(
            "lagic-bench: {} {:.0} ns per segment ({} of the stream hateless)",
            h.spec,
            h.ns,
            h.vs_stream.show(2)
        );
    }
    Ok(result)
}

fn version_command(program: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.arg("--version");
    cmd
}

/// Repetitions per test run: enough for a few milliseconds per call.
fn repeat_for(size: usize) -> u32 {
    match size {
        0..=100 => 200_000,
        101..=1000 => 50_000,
        _ => 20_000,
    }
}

fn scaling_row(
    family: Family,
    k: usize,
    runs: usize,
    lagic: &Path,
    clang: &Path,
    work: &Path,
) -> Result<ScalingRow, BenchError> {
    let name = format!("{}_{k}", family.name());
    let spec = work.join(format!("{name}.json"));
    let source = work.join(format!("{name}.c"));
    std::fs::write(&spec, scaling::spec(family, k))
        .map_err(|e| BenchError::io("writing a scaling spec", e))?;
    std::fs::write(&source, scaling::c_source(family, k))
        .map_err(|e| BenchError::io("writing a scaling source", e))?;
    let lagic_obj = work.join(format!("{name}.lagic.o"));
    let clang_obj = work.join(format!("{name}.clang.o"));
    let (lagic_side, clang_side) = Side::measure_pair(
        runs,
        (|| tools::compile_spec(lagic, &spec, &lagic_obj), &lagic_obj),
        (|| tools::compile_c(clang, &source, &clang_obj), &clang_obj),
    );
    // Where both load, they must agree with the plain definition before their numbers count.
    if let (Some(l), Some(c)) = (&lagic_side.program, &clang_side.program) {
        let mut rng = lagic_bench::rng::Rng::new(k as u64);
        for i in 0..300 {
            let len = rng.below(3000);
            let mut payload = equivalence::payload(&mut rng, len);
            if family == Family::Contains && len >= 4 && rng.chance(1, 3) {
                let words = scaling::words(k);
                let w = rng.pick(&words);
                let at = rng.below(len - 3);
                payload[at..at + 4].copy_from_slice(w);
            }
            if family == Family::Depth && rng.chance(1, 2) {
                // Nested brackets and strings, deep enough to cross small bounds.
                for b in payload.iter_mut() {
                    *b = *rng.pick(b"{{[[\"\\ a]]}}");
                }
            }
            if family == Family::Windows && rng.chance(1, 2) {
                for b in payload.iter_mut() {
                    *b = b' ' + (*b % 95);
                }
            }
            let expected =
                lagic_loader::Verdict::from_bool(scaling::reference(family, k, &payload));
            let frame = measure::frame(&payload);
            for (side, p) in [("lagic", l), ("clang", c)] {
                let got = p
                    .run(&frame)
                    .map_err(|e| BenchError::Run(format!("{name} {side}: {e}")))?
                    .verdict;
                if got != expected {
                    return Err(BenchError::Mismatch(Box::new(
                        lagic_bench::Counterexample {
                            diode: name.clone(),
                            side: side.into(),
                            what: format!("scaling frame {i}, {len}-byte payload"),
                            expected: expected.to_string(),
                            got: got.to_string(),
                            frame_hex: frame.iter().map(|b| format!("{b:02x}")).collect(),
                        },
                    )));
                }
            }
        }
    }
    Ok(ScalingRow {
        family: family.name().to_string(),
        k,
        lagic: lagic_side,
        clang: clang_side,
    })
}

/// The block-list family: both sides built, gated against the plain
/// definition, and timed at 1,400 bytes (see lagic_bench::blocklist).
fn blocklist_rows(
    plan: &Plan,
    lagic: &Path,
    clang: &Path,
    work: &Path,
) -> Result<Vec<BlocklistRow>, BenchError> {
    use lagic_bench::blocklist;
    let mut rows = Vec::new();
    for &k in &plan.blocklist_ks {
        let name = format!("blocklist_{k}");
        let spec = work.join(format!("{name}.json"));
        let source = work.join(format!("{name}.c"));
        std::fs::write(&spec, blocklist::spec(k))
            .map_err(|e| BenchError::io("writing a block-list spec", e))?;
        std::fs::write(&source, blocklist::c_source(k))
            .map_err(|e| BenchError::io("writing a block-list source", e))?;
        let c_states = blocklist::automaton(&blocklist::words(k)).states;
        let lagic_obj = work.join(format!("{name}.lagic.o"));
        let clang_obj = work.join(format!("{name}.clang.o"));
        let (l, c) = Side::measure_pair(
            plan.scaling_runs,
            (|| tools::compile_spec(lagic, &spec, &lagic_obj), &lagic_obj),
            (|| tools::compile_c(clang, &source, &clang_obj), &clang_obj),
        );
        // The same compile without translation validation: what it costs.
        let lagic_no_validate_ms = l.compile_ms.and_then(|_| {
            let times: Result<Vec<f64>, BenchError> = (0..plan.scaling_runs.max(1))
                .map(|_| {
                    let mut cmd = std::process::Command::new(lagic);
                    cmd.arg("compile")
                        .arg(&spec)
                        .arg("--no-validate")
                        .arg("-o")
                        .arg(&lagic_obj);
                    tools::run_timed("lagic compile --no-validate", cmd)
                        .map(|d| d.as_secs_f64() * 1e3)
                })
                .collect();
            times.ok().map(measure::median)
        });
        eprintln!(
            "lagic-bench: block list {k}: lagic {} ({} ms without validation) / clang {}",
            l.summary(),
            lagic_no_validate_ms.map_or("-".into(), |ms| format!("{ms:.1}")),
            c.summary()
        );
        // The gate: every loaded side agrees with the plain definition.
        let reference = blocklist::Reference::new(k);
        let list = blocklist::words(k);
        let mut rng = lagic_bench::rng::Rng::new(0xB10C ^ k as u64);
        for i in 0..300 {
            let len = 1 + rng.below(2000);
            let payload = blocklist::check_payload(&mut rng, &list, len);
            let expected = lagic_loader::Verdict::from_bool(reference.passes(&payload));
            let frame = measure::frame(&payload);
            for (side, p) in [("lagic", &l.program), ("clang", &c.program)] {
                let Some(p) = p else { continue };
                let got = p
                    .run(&frame)
                    .map_err(|e| BenchError::Run(format!("{name} {side}: {e}")))?
                    .verdict;
                if got != expected {
                    return Err(BenchError::Mismatch(Box::new(
                        lagic_bench::Counterexample {
                            diode: name.clone(),
                            side: side.into(),
                            what: format!("block-list frame {i}, {len}-byte payload"),
                            expected: expected.to_string(),
                            got: got.to_string(),
                            frame_hex: frame.iter().map(|b| format!("{b:02x}")).collect(),
                        },
                    )));
                }
            }
        }
        let frame = measure::frame(&blocklist::timing_payload(&reference));
        let repeat = repeat_for(blocklist::PAYLOAD);
        let (timing, alone) = match (&l.program, &c.program) {
            (Some(lp), Some(cp)) => {
                let pair =
                    measure::run_pair(lp, cp, &frame, blocklist::PAYLOAD, plan.rounds, repeat)?;
                eprintln!(
                    "lagic-bench: block list {k}: {:.0} ns vs {:.0} ns ({})",
                    pair.lagic_ns,
                    pair.clang_ns,
                    pair.ratio_range.show(2)
                );
                (Some(pair), None)
            }
            (Some(p), None) | (None, Some(p)) => {
                let who = if l.program.is_some() {
                    "lagic"
                } else {
                    "clang"
                };
                let mut ns = Vec::new();
                for _ in 0..plan.rounds {
                    let r = p
                        .run_repeat(&frame, repeat)
                        .map_err(|e| BenchError::Run(format!("{name} {who}: {e}")))?;
                    ns.push(r.duration.as_nanos() as f64);
                }
                let ns = measure::median(ns);
                eprintln!("lagic-bench: block list {k}: {who} alone {ns:.0} ns");
                (None, Some((who.to_string(), ns)))
            }
            (None, None) => (None, None),
        };
        rows.push(BlocklistRow {
            k,
            lagic: l,
            clang: c,
            lagic_no_validate_ms,
            c_states,
            timing,
            alone,
        });
    }
    Ok(rows)
}

/// The block lists end to end (iptables with one rule per word, and the
/// objects that loaded), or why not.
fn blocklist_e2e(
    plan: &Plan,
    lagic: &Path,
    rows: &[BlocklistRow],
    work: &Path,
) -> (Option<Vec<e2e::BlocklistPoint>>, Option<String>) {
    if !plan.e2e {
        return (None, Some("not run (--no-e2e)".into()));
    }
    let cases: Vec<e2e::BlocklistCase> = rows
        .iter()
        .map(|row| {
            let name = format!("blocklist_{}", row.k);
            e2e::BlocklistCase {
                k: row.k,
                lagic_obj: row
                    .lagic
                    .program
                    .is_some()
                    .then(|| work.join(format!("{name}.lagic.o"))),
                clang_obj: row
                    .clang
                    .program
                    .is_some()
                    .then(|| work.join(format!("{name}.clang.o"))),
            }
        })
        .collect();
    match e2e::blocklist(lagic.to_path_buf(), &cases, plan.e2e_seconds / 2.0) {
        Ok(points) => (Some(points), None),
        Err(e) => {
            eprintln!("lagic-bench: block lists end to end failed: {e}");
            (None, Some(e.to_string()))
        }
    }
}

/// A payload of `len` bytes that `diode` drops, decided near byte 40 where
/// a scan decides (the start for the prefix diodes).
fn drop_payload(diode: &str, len: usize) -> Vec<u8> {
    let mut p = measure::timing_payload(diode, len);
    let at = 40.min(len.saturating_sub(4));
    match diode {
        "hateless" => p[at..at + 4].copy_from_slice(b"hate"),
        "json_depth" => p[at..at + 4].copy_from_slice(b"[[[["),
        "json_start" | "json_prefix" => p[0] = b'x',
        _ => p[10.min(len - 1)] = 0x01, // minimal, printable16/64: a control byte
    }
    p
}

/// `--events-compare`: for each seed diode, `A_DIR/NAME.o` against
/// `B_DIR/NAME.o`, `rounds` interleaved rounds each of: a passing payload
/// of 129 and 1,400 bytes; a dropped one of 129 bytes with the ring
/// drained before every batch of 1,000 runs (each drop records its
/// event); and the same drop with the ring full (the lost-event path).
/// Objects without the event maps (from before them) time the drops
/// alike; their rings are simply absent.
fn events_compare(a_dir: &Path, b_dir: &Path, rounds: usize) -> Result<String, BenchError> {
    use lagic_loader::decisions::DiodeMaps;
    let mut out = String::from(
        "diode | pass 129 B: A / B ns (B/A) | pass 1400 B | drop, event recorded | drop, ring full\n",
    );
    for name in DIODES {
        let pa = load_object(&a_dir.join(format!("{name}.o")))?;
        let pb = load_object(&b_dir.join(format!("{name}.o")))?;
        // None for an object without the event maps.
        let maps = |p: &lagic_loader::LoadedProgram| DiodeMaps::for_program(p.fd()).ok();
        let (mut ma, mut mb) = (maps(&pa), maps(&pb));
        let mut cells = Vec::new();
        for len in [129usize, 1400] {
            let frame = measure::frame(&measure::timing_payload(name, len));
            let pair = measure::run_pair(&pa, &pb, &frame, len, rounds, 20_000)?;
            cells.push(format!(
                "{:.0} / {:.0} ({})",
                pair.lagic_ns,
                pair.clang_ns,
                flip(pair.ratio_range).show(3)
            ));
        }
        let frame = measure::frame(&drop_payload(name, 129));
        // The ring holds about 1,100 records: batches of 1,000 runs, each
        // after draining it, 10 batches a round (the mean of their
        // whole-ns averages).
        let run = |p: &lagic_loader::LoadedProgram, m: &mut Option<DiodeMaps>| {
            let mut total = 0.0;
            for _ in 0..10 {
                while m.as_mut().and_then(DiodeMaps::next_event).is_some() {}
                let r = p
                    .run_repeat(&frame, 1000)
                    .map_err(|e| BenchError::Run(e.to_string()))?;
                if r.verdict != lagic_loader::Verdict::Drop {
                    return Err(BenchError::Run(format!("{name}: the drop payload passed")));
                }
                total += r.duration.as_nanos() as f64;
            }
            Ok(total / 10.0)
        };
        let (na, nb) = measure::alternate(rounds, || run(&pa, &mut ma), || run(&pb, &mut mb))?;
        let ratio = measure::Ratio::per_round(&nb, &na);
        cells.push(format!(
            "{:.0} / {:.0} ({})",
            measure::median(na),
            measure::median(nb),
            ratio.show(3)
        ));
        // Fill both rings, then time the drops whose events are lost.
        for p in [&pa, &pb] {
            p.run_repeat(&frame, 5000)
                .map_err(|e| BenchError::Run(e.to_string()))?;
        }
        let pair = measure::run_pair(&pa, &pb, &frame, 129, rounds, 20_000)?;
        cells.push(format!(
            "{:.0} / {:.0} ({})",
            pair.lagic_ns,
            pair.clang_ns,
            flip(pair.ratio_range).show(3)
        ));
        out.push_str(&format!("{name} | {}\n", cells.join(" | ")));
    }
    Ok(out)
}

/// `A/B` per-round ratios as `B/A`.
fn flip(r: measure::Ratio) -> measure::Ratio {
    measure::Ratio {
        median: 1.0 / r.median,
        min: 1.0 / r.max,
        max: 1.0 / r.min,
    }
}
