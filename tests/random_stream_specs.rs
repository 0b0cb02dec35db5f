//! Random stream specs through the whole compiler, translation validation,
//! the kernel verifier and the kernel, against the reference stream diode.
//!
//! For random specs in stream mode that nobody wrote by hand, with the
//! whole-stream view and with the `http_response` view
//! (`predicate_ir::arbitrary::arb_stream_spec`, and random block lists:
//! `arb_stream_block_list`, words with NUL, 0xFF and other high bytes,
//! duplicates, words that are prefixes or suffixes of others, 1-byte
//! words, case-insensitive or not):
//!
//! 1. the spec's JSON reads back as the same spec (the reference accepts it
//!    as stream-safe);
//! 2. lowering and code generation either succeed or refuse it with a
//!    typed error naming one of lagic's documented limits and the JSON path
//!    of the construct (never an internal error);
//! 3. translation validation accepts the object, as `lagic compile` runs it;
//! 4. the kernel verifier accepts the object;
//! 5. random flows (segmentation, reordering, duplicates, overlaps with
//!    changed bytes, and rarely SYN, RST, URG, low TTL, bad checksum, no
//!    ACK, early FIN) run segment by segment through `BPF_PROG_TEST_RUN`,
//!    the flow map persisting between runs, get the verdict and RST of the
//!    reference `predicate_ir::stream_diode` configured as the kernel
//!    diode behaves (`retain = 0`, `min_ttl = 8`), and a receiver fed with
//!    the kernel's output reads only an accepted prefix of the judged
//!    stream (`lagic_tests::stream::try_check_lossy_flow`).
//!
//! Payloads embed the spec's own words and hot bytes; HTTP streams are
//! responses built with random header lines and bodies (mostly framed
//! correctly, sometimes with a wrong `Content-Length` or junk between).
//! [`DEFAULT_SPECS`] specs per property, `LAGIC_PROPTEST_CASES` to change
//! it. Failing seeds are kept in `tests/proptest-regressions/`, and specs
//! that once failed, by hand, in `tests/regression-specs/stream/`
//! ([`stream_regression_specs_compile_validate_and_agree`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use lagic_loader::{LoadError, LoadedProgram};
use lagic_testkit::require_bpf;
use lagic_tests::stream::{segments_with_cuts, try_check_lossy_flow, Outcome};
use lagic_tests::{proptest_cases, proptest_config, repo_root};
use predicate_ir::arbitrary::{
    arb_payload, arb_stream_block_list, arb_stream_pred, arb_stream_spec, PAYLOAD_WORDS,
};
use predicate_ir::stream_diode::Segment;
use predicate_ir::{LowerError, Mode, Spec, StreamView};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestRunner;

/// Specs per property in the default run (the whole file stays within a
/// minute on a CI machine shared with other work).
const DEFAULT_SPECS: u32 = 24;

/// Random flows run through each spec's diode.
const FLOWS: std::ops::Range<usize> = 3..6;

/// Flows of each diode's flow table. The size is only the map's
/// `max_entries` (the code is the same for every size, `lagic compile
/// --flows`); the default table of 65,536 preallocated flows takes most of
/// a second to load, this one a fraction.
const TABLE_FLOWS: u32 = 1024;

/// Smallest share of generated specs that must reach the kernel (a
/// generator check: a strategy whose specs all hit lowering limits would
/// test nothing).
const MIN_LOADED_SHARE: f64 = 0.7;

/// What one spec did, for the statistics.
#[derive(Default)]
struct Stats {
    specs: usize,
    http: usize,
    refused: Vec<String>,
    loaded: usize,
    flows: usize,
    segments: usize,
    outcomes: BTreeMap<&'static str, usize>,
    validate_ms_max: u128,
    /// Time spent compiling, validating, loading, running flows.
    ms: [u128; 4],
}

/// A refusal before emission is fine only as one of lagic's documented
/// limits (docs/compiler.md), with the JSON path of the construct.
fn check_lower_refusal(e: &LowerError) -> Result<(), String> {
    let documented = matches!(
        e,
        LowerError::DfaTooLarge { .. }
            | LowerError::ConstructionTooLarge { .. }
            | LowerError::CombinedConstructionTooLarge { .. }
            | LowerError::CombinedDfaTooLarge { .. }
            | LowerError::TooManyScans { .. }
            | LowerError::TooManyAtoms { .. }
    );
    if documented && e.path().starts_with('$') && e.to_string().starts_with('$') {
        Ok(())
    } else {
        Err(format!("lowering refused a stream-safe spec: {e:?}"))
    }
}

/// The same for code generation: the emitter's documented limits, never an
/// internal error.
fn check_codegen_refusal(e: &emit_bpf::CodegenError) -> Result<(), String> {
    use emit_bpf::CodegenError as C;
    match e {
        C::TooManyScans { path, .. }
        | C::TooManyStreamSlots { path, .. }
        | C::TablesTooLarge { path, .. }
        | C::ProgramTooLarge { path, .. }
        | C::JumpTooFar { path, .. }
            if path.starts_with('$') =>
        {
            Ok(())
        }
        other => Err(format!(
            "code generation refused a stream-safe spec: {other:?}"
        )),
    }
}

/// The last `lines` lines of a verifier log.
fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Compiles `spec` as `lagic compile` does (validation on) and loads it;
/// `Ok(None)` where a documented limit refused it (recorded in `stats`).
fn compile_validate_load(spec: &Spec, stats: &mut Stats) -> Result<Option<LoadedProgram>, String> {
    let text = spec.to_json_string();
    let reread = predicate_ir::parse(&text).map_err(|e| format!("its JSON does not read: {e}"))?;
    if &reread != spec {
        return Err(format!("its JSON reads as another spec: {reread:?}"));
    }
    let t0 = std::time::Instant::now();
    let program = match predicate_ir::lower_stream(spec) {
        Ok(p) => p,
        Err(e) => {
            check_lower_refusal(&e)?;
            stats.refused.push(format!("lower: {e}"));
            return Ok(None);
        }
    };
    let options = emit_bpf::Options {
        flows: TABLE_FLOWS,
        ..emit_bpf::Options::default()
    };
    let (module, map) = match emit_bpf::compile_stream_mapped_with(&program, &options) {
        Ok(m) => m,
        Err(e) => {
            check_codegen_refusal(&e)?;
            stats.refused.push(format!("codegen: {e}"));
            return Ok(None);
        }
    };
    let object = module
        .write_elf()
        .map_err(|e| format!("the ELF writer refused it: {e}"))?;
    stats.ms[0] += t0.elapsed().as_millis();
    let t = std::time::Instant::now();
    lagic_validate::validate_stream(&program, &object, &map)
        .map_err(|e| format!("translation validation failed: {e}"))?;
    stats.validate_ms_max = stats.validate_ms_max.max(t.elapsed().as_millis());
    stats.ms[1] += t.elapsed().as_millis();
    let t = std::time::Instant::now();
    let prog = LoadedProgram::from_object(&object).map_err(|e| {
        let log = match &e {
            LoadError::Rejected { verifier_log, .. }
            | LoadError::BtfRejected { verifier_log, .. } => log_tail(verifier_log, 30),
            _ => String::new(),
        };
        format!("the kernel refused it: {e}\nverifier log tail:\n{log}")
    })?;
    stats.ms[2] += t.elapsed().as_millis();
    Ok(Some(prog))
}

/// Compiles, validates and loads `spec`, then runs `flows` through kernel
/// and reference; any difference is a failure naming the spec's JSON.
fn check_spec(spec: &Spec, flows: &[Vec<Segment>], stats: &mut Stats) -> Result<(), String> {
    stats.specs += 1;
    if matches!(spec.mode, Mode::Stream(StreamView::HttpResponse { .. })) {
        stats.http += 1;
    }
    let Some(prog) = compile_validate_load(spec, stats)? else {
        return Ok(());
    };
    stats.loaded += 1;
    let t = std::time::Instant::now();
    for (i, segments) in flows.iter().enumerate() {
        let delivered: Vec<(Segment, bool)> = segments.iter().map(|s| (s.clone(), false)).collect();
        let (outcomes, _) = try_check_lossy_flow(&prog, spec, i % 2 == 1, &delivered)?;
        stats.flows += 1;
        stats.segments += outcomes.len();
        for o in outcomes {
            let name = match o {
                Outcome::Pass => "pass",
                Outcome::Drop => "drop",
                Outcome::Reset(_) => "reset",
            };
            *stats.outcomes.entry(name).or_default() += 1;
        }
    }
    stats.ms[3] += t.elapsed().as_millis();
    Ok(())
}

/// Payload fragments for a spec: its own words and their case flips (when
/// it has a block list), the shared payload words, and single hot bytes.
fn fragments(words: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = PAYLOAD_WORDS
        .iter()
        .map(|w| w.as_bytes().to_vec())
        .collect();
    for w in words {
        out.push(w.clone());
        out.push(w.to_ascii_uppercase());
        out.push(w.to_ascii_lowercase());
        // Half a word: split matches across segments and responses.
        out.push(w[..w.len() / 2].to_vec());
        out.push(w[w.len() / 2..].to_vec());
    }
    for b in [
        0u8, 0xff, 0x80, b'h', b'"', b'{', b'}', b'[', b']', b'\\', b' ',
    ] {
        out.push(vec![b]);
    }
    out
}

/// Random whole-stream payloads: joined fragments, or a generated payload
/// (at most 600 bytes).
fn arb_stream_payload(frags: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => vec(select(frags), 0..20).prop_map(|parts| parts.concat()),
        1 => arb_payload().prop_map(|mut p| { p.truncate(600); p }),
    ]
    .boxed()
}

/// One HTTP response: a status line, random header lines (values from the
/// fragments: some break the framing), `Content-Length` (rarely off by
/// one, or missing), the empty line and the body; or an interim response.
fn arb_response(frags: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    let value = vec(select(frags.clone()), 0..3).prop_map(|p| p.concat());
    let header = (
        select(&["Content-Type", "X-Note", "Server", "x"][..]),
        prop_oneof![
            3 => Just(b"application/json".to_vec()),
            2 => value.clone(),
        ],
    )
        .prop_map(|(name, value)| [name.as_bytes(), b": ", &value, b"\r\n"].concat());
    let body = vec(select(frags), 0..10).prop_map(|p| p.concat());
    prop_oneof![
        8 => (
            select(&["200 OK", "404 Not Found", "500 Oops", "201"][..]),
            vec(header, 0..3),
            body,
            prop_oneof![12 => Just(Some(0i64)), 1 => Just(Some(-1)), 1 => Just(Some(1)), 1 => Just(None)],
        )
            .prop_map(|(status, headers, body, delta)| {
                let mut r = format!("HTTP/1.1 {status}\r\n").into_bytes();
                r.extend(headers.concat());
                if let Some(d) = delta {
                    let len = (body.len() as i64 + d).max(0);
                    r.extend(format!("Content-Length: {len}\r\n").into_bytes());
                }
                r.extend(b"\r\n");
                r.extend(body);
                r
            }),
        1 => Just(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
        1 => value.prop_map(|v| v),
    ]
    .boxed()
}

/// A stream of 1 to 3 responses (keep-alive).
fn arb_http_stream(frags: Vec<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    vec(arb_response(frags), 1..4)
        .prop_map(|r| r.concat())
        .boxed()
}

/// Flows for `spec`: payloads of its view, cut into short segments
/// (1-8 bytes) or long ones (up to 700 bytes), edited as
/// [`segments_with_cuts`] does.
fn arb_flows(spec: &Spec, words: &[Vec<u8>]) -> BoxedStrategy<Vec<Vec<Segment>>> {
    let frags = fragments(words);
    let payload = match spec.mode {
        Mode::Stream(StreamView::HttpResponse { .. }) => arb_http_stream(frags),
        _ => arb_stream_payload(frags),
    };
    let flow = prop_oneof![
        3 => segments_with_cuts(payload.clone(), 1..9).boxed(),
        1 => segments_with_cuts(payload, 1..700).boxed(),
    ];
    vec(flow, FLOWS).boxed()
}

/// A stream spec with the given view and predicates (name and policy
/// fixed: the policy is not what these properties test).
fn stream_spec(name: &str, body: predicate_ir::Pred, headers: Option<predicate_ir::Pred>) -> Spec {
    Spec {
        name: name.to_string(),
        description: String::new(),
        policy: predicate_ir::Policy {
            arp: predicate_ir::Action::Pass,
            ipv6_nd: predicate_ir::Action::Pass,
            other_ip: predicate_ir::Action::Drop,
            non_ip: predicate_ir::Action::Drop,
        },
        predicate: body,
        mode: Mode::Stream(match headers {
            None => StreamView::Whole,
            Some(headers) => StreamView::HttpResponse { headers },
        }),
    }
}

/// Runs `specs` cases of `strategy` (a spec, its block-list words, its
/// flows) through [`check_spec`]; prints the statistics and returns them.
fn run_property(
    property: &str,
    specs: u32,
    strategy: BoxedStrategy<(Spec, Vec<Vec<Segment>>)>,
) -> Stats {
    let stats = RefCell::new(Stats::default());
    let mut runner = TestRunner::new(proptest_config(property, specs));
    let result = runner.run(&strategy, |(spec, flows)| {
        check_spec(&spec, &flows, &mut stats.borrow_mut())
            .map_err(|e| TestCaseError::fail(format!("{e}\nspec:\n{}", spec.to_json_string())))
    });
    if let Err(failure) = result {
        panic!("{property}: {failure}");
    }
    let stats = stats.into_inner();
    eprintln!(
        "{property}: {} specs ({} with the http view), {} loaded (validation and the verifier \
         accepted every one), {} refused by a documented limit; {} flows, {} segments agree with \
         the reference {:?}; slowest validation {} ms; ms compiling, validating, loading, running \
         flows {:?}",
        stats.specs,
        stats.http,
        stats.loaded,
        stats.refused.len(),
        stats.flows,
        stats.segments,
        stats.outcomes,
        stats.validate_ms_max,
        stats.ms,
    );
    for r in stats.refused.iter().take(5) {
        eprintln!("  refused: {r}");
    }
    assert!(
        stats.loaded as f64 >= MIN_LOADED_SHARE * stats.specs as f64,
        "{property}: only {} of {} specs reached the kernel",
        stats.loaded,
        stats.specs
    );
    stats
}

/// Random stream specs of both views (`arb_stream_spec`).
#[test]
fn random_stream_specs_compile_validate_and_agree() {
    if !require_bpf() {
        return;
    }
    let strategy = arb_stream_spec()
        .prop_flat_map(|spec| {
            let flows = arb_flows(&spec, &[]);
            (Just(spec), flows)
        })
        .boxed();
    let stats = run_property(
        "random-stream-specs",
        proptest_cases(DEFAULT_SPECS),
        strategy,
    );
    assert!(
        stats.http > 0 && stats.http < stats.specs,
        "both views drawn"
    );
}

/// Random block lists, over the whole stream or as the body or header
/// predicate of the http view, with payloads that embed their words.
#[test]
fn random_block_lists_compile_validate_and_agree() {
    if !require_bpf() {
        return;
    }
    let strategy = (
        arb_stream_block_list(),
        0usize..4,
        arb_stream_pred(1),
        arb_stream_block_list(),
    )
        .prop_flat_map(|((list, words), view, other, (list2, words2))| {
            let spec = match view {
                0 | 1 => stream_spec("block_list", list, None),
                2 => stream_spec("body_list", list, Some(other)),
                _ => stream_spec("both_lists", list, Some(list2)),
            };
            let mut all = words;
            if view == 3 {
                all.extend(words2);
            }
            let flows = arb_flows(&spec, &all);
            (Just(spec), flows)
        })
        .boxed();
    let stats = run_property(
        "random-stream-block-lists",
        proptest_cases(DEFAULT_SPECS),
        strategy,
    );
    let resets = stats.outcomes.get("reset").copied().unwrap_or(0);
    let passes = stats.outcomes.get("pass").copied().unwrap_or(0);
    assert!(
        resets > 0 && passes > 0,
        "the flows both pass and hit the lists: {:?}",
        stats.outcomes
    );
}

/// A few fixed flows for a regression spec: its view's honest stream (an
/// HTTP response, or text) whole, cut in short segments, with the second
/// half first, and with a changed retransmission.
fn fixed_flows(spec: &Spec) -> Vec<Vec<Segment>> {
    let stream: &[u8] = match spec.mode {
        Mode::Stream(StreamView::HttpResponse { .. }) => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\":\"hat\"}HTTP/1.1 100 Continue\r\n\r\n"
        }
        _ => b"once upon a time \x00\xff hat hate",
    };
    let isn = 7u32;
    let at = |off: usize, bytes: &[u8]| Segment::data(isn + 1 + off as u32, bytes);
    let fin = Segment::fin(isn + 1 + stream.len() as u32, b"");
    let half = stream.len() / 2;
    let mut short = vec![Segment::syn(isn)];
    short.extend(stream.chunks(3).enumerate().map(|(i, c)| at(3 * i, c)));
    short.push(fin.clone());
    let mut changed = stream[..half].to_vec();
    changed[half - 1] ^= 0x20;
    vec![
        vec![Segment::syn(isn), at(0, stream), fin.clone()],
        short,
        vec![
            Segment::syn(isn),
            at(half, &stream[half..]),
            at(0, &stream[..half]),
            at(half, &stream[half..]),
            fin.clone(),
        ],
        vec![
            Segment::syn(isn),
            at(0, &stream[..half]),
            at(0, &changed),
            at(half, &stream[half..]),
            fin,
        ],
    ]
}

/// Specs that once failed, kept by hand in `tests/regression-specs/stream/`
/// (each file's description says what failed): each compiles, passes
/// translation validation and the verifier, and agrees with the reference
/// on fixed flows.
#[test]
fn stream_regression_specs_compile_validate_and_agree() {
    if !require_bpf() {
        return;
    }
    let dir = repo_root().join("tests/regression-specs/stream");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no specs in {}", dir.display());
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable");
        let spec = predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut stats = Stats::default();
        let flows = fixed_flows(&spec);
        check_spec(&spec, &flows, &mut stats).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(stats.loaded, 1, "{}: {:?}", path.display(), stats.refused);
        assert_eq!(stats.flows, flows.len());
    }
}
