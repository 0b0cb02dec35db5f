//! Random specs through the whole compiler and the kernel.
//!
//! For arbitrary well-formed specs (`predicate_ir::arbitrary::arb_spec`:
//! every construct, nested up to 4 levels, empty `and`/`or`, windows past the
//! payload and at the top of the offset range, unbounded windows, classes of
//! every size, patterns of 1 to 64 classes, any policy):
//!
//! 1. lowering and code generation either succeed, or fail with a clear
//!    error before any object is written (a lowering error names a JSON path
//!    starting with `$`); the verifier is never the one to say no;
//! 2. the kernel verifier accepts every object that was written;
//! 3. the kernel's verdict equals `eval` (empty payloads pass) on 10-20
//!    generated payloads per spec, each also cut to its first 0..=16 bytes,
//!    in generated frame shapes; and ARP, ICMPv6 neighbour discovery, UDP
//!    and non-IP frames get the spec's policy.
//!
//! [`DEFAULT_SPECS`] specs by default, `LAGIC_PROPTEST_CASES` to change it.
//! A second property, [`fused_scans_verify_and_agree_with_eval`], aims at
//! the verifier's cost: 2 to 10 scans sharing one window (fused into one
//! pass) or spread over many windows ([`DEFAULT_FUSED_SPECS`] specs).
//! Any spec the verifier ever rejected is kept in `tests/regression-specs/`
//! and checked by [`regression_specs_load_and_agree`]; the hand-built specs
//! at the limits of lowering are checked by [`specs_at_the_limits_verify`].

use std::cell::RefCell;
use std::collections::BTreeMap;

use lagic_frames::{ExtHeader, Frame, IpVersion, VlanTag, ETH_P_IPV6};
use lagic_loader::{LoadError, LoadedProgram, Verdict};
use lagic_testkit::require_bpf;
use lagic_tests::{
    arb_boundary_payload, arb_shaped, proptest_cases, proptest_config, repo_root, show_payload,
    FrameShape,
};
use predicate_ir::arbitrary::{arb_payload, arb_spec};
use predicate_ir::spec::{MAX_OFFSET, MAX_PATTERN_LEN, MAX_PRED_DEPTH};
use predicate_ir::{Action, ByteClass, Cmp, Policy, Pred, Spec, Window};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// Specs in the default run.
const DEFAULT_SPECS: u32 = 200;

/// Smallest share of generated specs that must reach the kernel (a
/// generator check: a strategy whose specs all hit lowering limits would
/// test nothing).
const MIN_LOADED_SHARE: f64 = 0.8;

/// Prefix lengths each payload is also judged at.
const PREFIXES: usize = 16;

/// Every op name of a predicate tree.
fn ops(p: &Pred, seen: &mut BTreeMap<&'static str, usize>) {
    let name = match p {
        Pred::True => "true",
        Pred::False => "false",
        Pred::Not(_) => "not",
        Pred::And(_) => "and",
        Pred::Or(_) => "or",
        Pred::Len { .. } => "len",
        Pred::Byte { .. } => "byte",
        Pred::All { .. } => "all",
        Pred::Any { .. } => "any",
        Pred::Prefix { .. } => "prefix",
        Pred::Contains { .. } => "contains",
        Pred::DepthLe { .. } => "depth_le",
    };
    *seen.entry(name).or_default() += 1;
    match p {
        Pred::Not(q) => ops(q, seen),
        Pred::And(qs) | Pred::Or(qs) => qs.iter().for_each(|q| ops(q, seen)),
        _ => {}
    }
}

/// The last `lines` lines of a verifier log.
fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Loads an object, turning a verifier rejection into a report with the
/// spec's JSON and the tail of the verifier's log.
fn load_or_report(spec: &Spec, object: &[u8]) -> Result<LoadedProgram, String> {
    LoadedProgram::from_object(object).map_err(|e| {
        let log = match &e {
            LoadError::Rejected { verifier_log, .. } | LoadError::BtfRejected { verifier_log, .. } => {
                log_tail(verifier_log, 40)
            }
            _ => String::new(),
        };
        format!(
            "COMPILER BUG: the kernel refused a compiled spec.\nerror: {}\nspec:\n{}\nverifier log tail:\n{log}",
            e.to_string().lines().next().unwrap_or_default(),
            spec.to_json_string()
        )
    })
}

fn action_verdict(action: Action) -> Verdict {
    match action {
        Action::Pass => Verdict::Pass,
        Action::Drop => Verdict::Drop,
    }
}

/// Frames the predicate never judges, with the verdict the policy demands.
fn policy_frames(policy: &Policy) -> Vec<(&'static str, Vec<u8>, Verdict)> {
    let other_ip = action_verdict(policy.other_ip);
    vec![
        ("ARP", Frame::arp().build(), action_verdict(policy.arp)),
        (
            "ICMPv6 neighbour solicitation",
            Frame::ipv6().icmpv6(135, 0).hop_limit(255).build(),
            action_verdict(policy.ipv6_nd),
        ),
        (
            "ICMPv6 echo request",
            Frame::ipv6().icmpv6(128, 0).payload(b"ping").build(),
            other_ip,
        ),
        (
            "UDP over IPv4",
            Frame::ipv4().udp().payload(b"hate\x00").build(),
            other_ip,
        ),
        (
            "UDP over IPv6",
            Frame::ipv6().udp().payload(b"dns").build(),
            other_ip,
        ),
        (
            "LLDP",
            Frame::other_ethertype(0x88cc).payload([0u8; 46]).build(),
            action_verdict(policy.non_ip),
        ),
        // Never judged, never let through, whatever the policy says.
        (
            "VLAN-tagged TCP",
            Frame::ipv4().vlan(VlanTag::dot1q(5)).payload(b"x").build(),
            Verdict::Drop,
        ),
        (
            "IPv4 fragment",
            Frame::ipv4().fragment(1, false).payload(b"x").build(),
            Verdict::Drop,
        ),
        (
            "IPv6 hop-by-hop",
            Frame::ipv6()
                .ext_header(ExtHeader::hop_by_hop(&[]))
                .udp()
                .payload(b"x")
                .build(),
            Verdict::Drop,
        ),
        (
            "IPv4 header under IPv6 EtherType",
            Frame::ipv4()
                .ethertype(ETH_P_IPV6)
                .payload(b"x")
                .pad_to(80)
                .build(),
            Verdict::Drop,
        ),
    ]
}

/// Runs every payload (and its short prefixes) and the policy frames
/// through `program`, comparing with `eval` and the policy.
fn check_verdicts(
    spec: &Spec,
    program: &LoadedProgram,
    cases: &[(Vec<u8>, FrameShape)],
    frames_run: &mut usize,
) -> Result<(), TestCaseError> {
    for (what, frame, want) in policy_frames(&spec.policy) {
        let got = program
            .run(&frame)
            .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?
            .verdict;
        prop_assert_eq!(got, want, "{}: policy not honoured for {}", spec.name, what);
        *frames_run += 1;
    }
    for (payload, shape) in cases {
        let cuts = (0..=payload.len().min(PREFIXES)).chain(std::iter::once(payload.len()));
        for cut in cuts {
            let p = &payload[..cut];
            let want = Verdict::from_bool(p.is_empty() || predicate_ir::eval(&spec.predicate, p));
            let got = program
                .run(&shape.frame(p))
                .map_err(|e| TestCaseError::fail(format!("test run: {e}")))?
                .verdict;
            prop_assert_eq!(
                got,
                want,
                "kernel disagrees with eval on {} in {:?}\nspec:\n{}",
                show_payload(p),
                shape,
                spec.to_json_string()
            );
            *frames_run += 1;
        }
    }
    Ok(())
}

#[derive(Default)]
struct Stats {
    specs: usize,
    lower_rejected: usize,
    codegen_rejected: usize,
    loaded: usize,
    frames: usize,
    max_verified_insns: u32,
    ops: BTreeMap<&'static str, usize>,
    rejections: Vec<String>,
}

/// Runs `specs` generated specs through lowering, emission, the verifier
/// and the kernel (see the module docs); returns the statistics.
fn run_spec_property(
    property: &str,
    specs: u32,
    spec_strategy: BoxedStrategy<Spec>,
    payloads: std::ops::RangeInclusive<usize>,
) -> Stats {
    let stats = RefCell::new(Stats::default());
    let case =
        arb_shaped(|max| prop_oneof![1 => arb_payload(), 1 => arb_boundary_payload(max)].boxed());
    let strategy = (spec_strategy, vec(case, payloads));
    let mut runner = TestRunner::new(proptest_config(property, specs));
    let result = runner.run(&strategy, |(spec, cases)| {
        let mut stats = stats.borrow_mut();
        stats.specs += 1;
        let program = match predicate_ir::lower(&spec) {
            Ok(program) => program,
            Err(e) => {
                let message = e.to_string();
                prop_assert!(
                    e.path().starts_with('$') && message.starts_with('$'),
                    "lowering error without a JSON path: {}",
                    message
                );
                stats.lower_rejected += 1;
                stats.rejections.push(format!("lower: {message}"));
                return Ok(());
            }
        };
        let object = match emit_bpf::compile_object(&program) {
            Ok(object) => object,
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.is_empty(), "empty code generation error");
                stats.codegen_rejected += 1;
                stats.rejections.push(format!("codegen: {message}"));
                return Ok(());
            }
        };
        let loaded = load_or_report(&spec, &object).map_err(TestCaseError::fail)?;
        stats.loaded += 1;
        ops(&spec.predicate, &mut stats.ops);
        if let Ok(s) = loaded.stats() {
            stats.max_verified_insns = stats.max_verified_insns.max(s.verified_insns);
        }
        let mut frames = 0;
        let checked = check_verdicts(&spec, &loaded, &cases, &mut frames);
        stats.frames += frames;
        checked
    });
    if let Err(failure) = result {
        panic!("{property}: {failure}");
    }
    let stats = stats.into_inner();
    eprintln!(
        "{property}: {} specs generated, {} loaded (the verifier accepted every one), {} rejected \
         by lowering, {} by code generation; {} frames agree with eval and the policy; most \
         verifier-processed instructions {}; ops in loaded specs {:?}",
        stats.specs,
        stats.loaded,
        stats.lower_rejected,
        stats.codegen_rejected,
        stats.frames,
        stats.max_verified_insns,
        stats.ops
    );
    for rejection in stats.rejections.iter().take(10) {
        eprintln!("  rejected before emission: {rejection}");
    }
    assert!(
        stats.loaded as f64 >= MIN_LOADED_SHARE * stats.specs as f64,
        "{property}: only {} of {} specs reached the kernel",
        stats.loaded,
        stats.specs
    );
    stats
}

#[test]
fn random_specs_compile_verify_and_agree_with_eval() {
    if !require_bpf() {
        return;
    }
    let stats = run_spec_property(
        "random-specs",
        proptest_cases(DEFAULT_SPECS),
        arb_spec(),
        10..=20,
    );
    for op in predicate_ir::format::OPS {
        assert!(
            stats.ops.contains_key(op),
            "no loaded spec used {op}: {:?}",
            stats.ops
        );
    }
}

/// Specs in the default run of [`fused_scans_verify_and_agree_with_eval`].
const DEFAULT_FUSED_SPECS: u32 = 60;

/// A scan construct (`all`, `any`, `contains`, `depth_le`) over `window`.
fn arb_scan_over(window: Window) -> BoxedStrategy<Pred> {
    let depth = (
        0u32..6,
        prop_oneof![
            3 => Just(ByteClass::from_bytes(*b"{[")),
            1 => predicate_ir::arbitrary::arb_class(),
        ],
        prop_oneof![
            3 => Just(ByteClass::from_bytes(*b"}]")),
            1 => predicate_ir::arbitrary::arb_class(),
        ],
        any::<bool>(),
    )
        .prop_map(move |(max, open, close, strings)| Pred::DepthLe {
            window,
            max,
            open,
            close,
            strings,
        });
    prop_oneof![
        2 => predicate_ir::arbitrary::arb_class().prop_map(move |class| Pred::All { window, class }),
        2 => predicate_ir::arbitrary::arb_class().prop_map(move |class| Pred::Any { window, class }),
        3 => predicate_ir::arbitrary::arb_pattern()
            .prop_map(move |pattern| Pred::Contains { window, pattern }),
        3 => depth,
    ]
    .prop_flat_map(|scan| prop_oneof![Just(scan.clone()), Just(Pred::Not(Box::new(scan)))])
    .boxed()
}

/// Specs whose scans share one window (so they fuse into one pass, the
/// shape that once exhausted the verifier), or spread over many windows
/// (many passes): 2 to 10 scans, and-ed or or-ed.
fn arb_fused_spec() -> BoxedStrategy<Spec> {
    let shared = prop_oneof![
        3 => Just(Window::ALL),
        1 => (0u32..20).prop_map(|start| Window { start, end: None }),
        1 => (0u32..20, 1u32..3000).prop_map(|(start, len)| Window {
            start,
            end: Some(start + len),
        }),
    ];
    let one_window = shared.prop_flat_map(|w| vec(arb_scan_over(w), 2..=10));
    let many_windows = vec(
        predicate_ir::arbitrary::arb_window().prop_flat_map(arb_scan_over),
        2..=10,
    );
    (
        prop_oneof![2 => one_window, 1 => many_windows],
        any::<bool>(),
        predicate_ir::arbitrary::arb_policy(),
    )
        .prop_map(|(scans, conjunction, policy)| Spec {
            name: "fused".into(),
            description: String::new(),
            policy,
            predicate: if conjunction {
                Pred::And(scans)
            } else {
                Pred::Or(scans)
            },
            mode: predicate_ir::Mode::Packet,
        })
        .boxed()
}

/// Many scans at once: every generated spec that compiles must load, and
/// agree with `eval`.
#[test]
fn fused_scans_verify_and_agree_with_eval() {
    if !require_bpf() {
        return;
    }
    run_spec_property(
        "fused-scans",
        proptest_cases(DEFAULT_FUSED_SPECS),
        arb_fused_spec(),
        6..=10,
    );
}

fn class(bytes: &[u8]) -> ByteClass {
    ByteClass::from_bytes(bytes.iter().copied())
}

fn spec(name: &str, predicate: Pred) -> Spec {
    Spec {
        name: name.into(),
        description: String::new(),
        policy: Policy::default(),
        predicate,
        mode: predicate_ir::Mode::Packet,
    }
}

/// Specs at the edges of what lowering accepts: the most scans, the longest
/// patterns, the deepest nesting, the largest depth bound, windows at the top
/// of the offset range, and every construct over the same window.
fn specs_at_the_limits() -> Vec<Spec> {
    let window = |start: u32, end: Option<u32>| Window { start, end };
    let mut out = Vec::new();
    // Many distinct scans over the same unbounded window end: one `any`
    // per window start; as many as lowering allows must load, one more is
    // refused by lowering (see INTENTIONALLY_REFUSED).
    let max_scans = predicate_ir::Limits::default().max_scans as u32;
    for (name, scans) in [
        ("scans_16", 16u32),
        ("scans_at_the_limit", max_scans),
        ("scans_past_the_limit", max_scans + 1),
    ] {
        out.push(spec(
            name,
            Pred::And(
                (0..scans)
                    .map(|i| {
                        Pred::Not(Box::new(Pred::Any {
                            window: window(i, None),
                            class: class(&[i as u8]),
                        }))
                    })
                    .collect(),
            ),
        ));
    }
    // Bounded windows: eight passes (16 are in tests/regression-specs/).
    out.push(spec(
        "eight_bounded_passes",
        Pred::And(
            (0..8)
                .map(|i| {
                    Pred::Not(Box::new(Pred::Any {
                        window: window(i, Some(i + 100)),
                        class: class(&[i as u8]),
                    }))
                })
                .collect(),
        ),
    ));
    // The longest pattern, case-insensitive letters cycling.
    let letters: Vec<ByteClass> = b"hatelove"
        .iter()
        .cycle()
        .take(MAX_PATTERN_LEN)
        .map(|&b| class(&[b, b.to_ascii_uppercase()]))
        .collect();
    out.push(spec(
        "longest_contains",
        Pred::Not(Box::new(Pred::Contains {
            window: Window::ALL,
            pattern: letters.clone(),
        })),
    ));
    out.push(spec("longest_prefix", Pred::Prefix { pattern: letters }));
    // Nesting as deep as the format allows.
    let mut deep = Pred::Contains {
        window: Window::ALL,
        pattern: vec![class(b"hH"), class(b"aA")],
    };
    for level in 0..MAX_PRED_DEPTH - 1 {
        deep = match level % 3 {
            0 => Pred::Not(Box::new(deep)),
            1 => Pred::And(vec![
                deep,
                Pred::Len {
                    cmp: Cmp::Ge,
                    value: 0,
                },
            ]),
            _ => Pred::Or(vec![
                deep,
                Pred::Byte {
                    index: level as u32,
                    class: class(b"!"),
                },
            ]),
        };
    }
    out.push(spec("deepest_nesting", deep));
    // Depth bounds at both ends; windows at the top of the offset range.
    out.push(spec(
        "depth_extremes",
        Pred::And(vec![
            Pred::DepthLe {
                window: Window::ALL,
                max: 0,
                open: class(b"{["),
                close: class(b"}]"),
                strings: true,
            },
            Pred::Not(Box::new(Pred::DepthLe {
                window: window(1, None),
                max: predicate_ir::spec::MAX_DEPTH,
                open: ByteClass::full(),
                close: ByteClass::empty(),
                strings: false,
            })),
        ]),
    ));
    out.push(spec(
        "top_of_the_offset_range",
        Pred::Or(vec![
            Pred::All {
                window: window(MAX_OFFSET, None),
                class: ByteClass::empty(),
            },
            Pred::Any {
                window: window(0, Some(MAX_OFFSET)),
                class: class(b"\x00"),
            },
            Pred::Byte {
                index: MAX_OFFSET,
                class: ByteClass::full(),
            },
            Pred::Len {
                cmp: Cmp::Ge,
                value: MAX_OFFSET,
            },
        ]),
    ));
    // Every scan construct on one window (one fused pass).
    out.push(spec(
        "fused_pass",
        Pred::And(vec![
            Pred::All {
                window: window(3, Some(3000)),
                class: ByteClass::text(),
            },
            Pred::Any {
                window: window(3, Some(3000)),
                class: class(b"{"),
            },
            Pred::Not(Box::new(Pred::Contains {
                window: window(3, Some(3000)),
                pattern: vec![class(b"hH"), class(b"aA"), class(b"tT"), class(b"eE")],
            })),
            Pred::DepthLe {
                window: window(3, Some(3000)),
                max: 3,
                open: class(b"{["),
                close: class(b"}]"),
                strings: true,
            },
        ]),
    ));
    out
}

/// Where a spec the tests build by hand is refused before any object exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Lowering,
    CodeGeneration,
}

/// The fixed specs that lowering or code generation refuse on purpose, by
/// name, with the stage and the reason. Every other fixed spec must load: a
/// refusal of an unlisted spec fails the test (a compiler that starts
/// refusing what it used to compile has regressed), and so does a listed
/// spec that compiles (the list must stay true).
const INTENTIONALLY_REFUSED: &[(&str, Refusal, &str)] = &[(
    "scans_past_the_limit",
    Refusal::Lowering,
    "one distinct scan more than Limits::max_scans",
)];

/// Compiles and loads `spec` and compares it with `eval` on a fixed set of
/// payloads (up to the longest a test run takes) in both IP versions. A
/// refusal by lowering or code generation is an error unless the spec is in
/// [`INTENTIONALLY_REFUSED`] for that stage; a verifier rejection or a wrong
/// verdict is always one.
fn check_fixed_spec(spec: &Spec) -> Result<(), String> {
    let expected = INTENTIONALLY_REFUSED
        .iter()
        .find(|(name, _, _)| *name == spec.name)
        .map(|&(_, stage, reason)| (stage, reason));
    let refused = |stage: Refusal, error: String| match expected {
        Some((want, reason)) if want == stage => {
            eprintln!("{}: refused as intended ({reason}): {error}", spec.name);
            Ok(())
        }
        _ => Err(format!(
            "{}: refused by {stage:?}, but it must compile (not in INTENTIONALLY_REFUSED \
             for that stage): {error}",
            spec.name
        )),
    };
    let program = match predicate_ir::lower(spec) {
        Ok(program) => program,
        Err(e) => return refused(Refusal::Lowering, e.to_string()),
    };
    let object = match emit_bpf::compile_object(&program) {
        Ok(object) => object,
        Err(e) => return refused(Refusal::CodeGeneration, e.to_string()),
    };
    if let Some((stage, reason)) = expected {
        return Err(format!(
            "{}: listed as refused by {stage:?} ({reason}), but it compiled; update \
             INTENTIONALLY_REFUSED",
            spec.name
        ));
    }
    let loaded = load_or_report(spec, &object)?;
    let mut payloads: Vec<Vec<u8>> = vec![
        b"x".to_vec(),
        b"{\"a\":[1]}".to_vec(),
        b"hatelovehatelove".repeat(8),
        b"HateLoveHateLove".repeat(8),
        vec![b'{'; 3000],
        vec![0u8; 3400],
    ];
    payloads.push((0..=255u8).collect());
    let mut shifted = b"hatelove".repeat(8);
    shifted.insert(0, b' ');
    payloads.push(shifted);
    for version in [IpVersion::V4, IpVersion::V6] {
        let shape = FrameShape::plain(version);
        // The longest payload of this frame shape: text, then the same with
        // the word at its very end.
        let longest = shape.max_payload();
        let mut tail = vec![b'a'; longest];
        tail[longest - 4..].copy_from_slice(b"hate");
        for payload in payloads.iter().chain([&vec![b' '; longest], &tail]) {
            let want = Verdict::from_bool(predicate_ir::eval(&spec.predicate, payload));
            let got = loaded
                .run(&shape.frame(payload))
                .map_err(|e| format!("{}: test run: {e}", spec.name))?
                .verdict;
            if got != want {
                return Err(format!(
                    "{} {version:?}: kernel {got}, eval {want} on {}",
                    spec.name,
                    show_payload(payload)
                ));
            }
        }
    }
    Ok(())
}

/// Checks every spec, then fails listing every one that failed.
fn check_all(specs: impl IntoIterator<Item = Spec>) {
    let failures: Vec<String> = specs
        .into_iter()
        .filter_map(|spec| check_fixed_spec(&spec).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} spec(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn specs_at_the_limits_verify() {
    if !require_bpf() {
        return;
    }
    check_all(specs_at_the_limits());
}

/// Specs the verifier rejected (kept as `tests/regression-specs/*.json`,
/// with the date in their description). Each must load and agree with
/// `eval`.
#[test]
fn regression_specs_load_and_agree() {
    if !require_bpf() {
        return;
    }
    let dir = repo_root().join("tests").join("regression-specs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    check_all(paths.iter().map(|path| {
        let text = std::fs::read_to_string(path).expect("readable");
        predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }));
}
