//! Shared helpers of the cross-crate tests: the seed examples, compiling
//! them, and loading them into the kernel.

pub mod stream;
use std::path::PathBuf;

use lagic_loader::LoadedProgram;
use predicate_ir::{Program, Spec};

/// The seven seed diodes: the workspace's one list, `reference_diodes::SEED_NAMES`.
pub const SEED_DIODES: [&str; reference_diodes::ALL.len()] = reference_diodes::SEED_NAMES;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// Reads and parses `examples/<name>.json`.
pub fn example_spec(name: &str) -> Spec {
    let path = repo_root().join("examples").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A spec lowered and compiled: the program and its object bytes.
pub struct Compiled {
    /// The spec compiled.
    pub spec: Spec,
    /// Its lowered program.
    pub program: Program,
    /// The ELF object lagic writes for it.
    pub object: Vec<u8>,
}

/// Lowers and compiles a spec; panics (failing the test) if either stage refuses it.
pub fn compile(spec: &Spec) -> Compiled {
    let program =
        predicate_ir::lower(spec).unwrap_or_else(|e| panic!("lowering {}: {e}", spec.name));
    let object = emit_bpf::compile_object(&program)
        .unwrap_or_else(|e| panic!("compiling {}: {e}", spec.name));
    Compiled {
        spec: spec.clone(),
        program,
        object,
    }
}

/// Compiles `examples/<name>.json`.
pub fn compile_example(name: &str) -> Compiled {
    compile(&example_spec(name))
}

/// Loads a compiled diode into the kernel (the verifier runs here).
pub fn load(compiled: &Compiled) -> LoadedProgram {
    LoadedProgram::from_object(&compiled.object)
        .unwrap_or_else(|e| panic!("the kernel refused {}: {e}", compiled.spec.name))
}

// ---------------------------------------------------------------------------
// Property-test support: case counts, regression files, frame shapes and
// payload generators shared by equivalence.rs, random_specs.rs and
// lean_cases.rs.
// ---------------------------------------------------------------------------

use lagic_frames::{tcp_flags, Frame, IpVersion};
use lagic_loader::MAX_TEST_RUN_FRAME;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, FileFailurePersistence};

/// Environment variable that overrides how many cases each property runs
/// (for random_specs.rs: how many specs).
pub const CASES_ENV: &str = "LAGIC_PROPTEST_CASES";

/// The case count of a property: `$LAGIC_PROPTEST_CASES`, else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    match std::env::var(CASES_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CASES_ENV}={text:?} is not a case count")),
        Err(_) => default,
    }
}

/// A proptest configuration running `cases` cases, whose failing seeds are
/// kept in `tests/proptest-regressions/<property>.txt` (committed, and
/// replayed first on every run). One file per property, so that a seed is
/// only ever replayed against the strategy that found it.
pub fn proptest_config(property: &str, cases: u32) -> Config {
    let path = repo_root()
        .join("tests")
        .join("proptest-regressions")
        .join(format!("{property}.txt"));
    // `Direct` wants a `&'static str`; one small leak per property.
    let path: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
        // A failing case is re-run in the kernel at every shrink step; bound
        // the time spent so a failure is reported within minutes.
        max_shrink_time: 180_000,
        ..Config::default()
    }
}

/// How a TCP payload is framed for a test run: IP version, options, flags
/// and Ethernet padding. Every shape is well formed, so the verdict depends
/// on the payload alone (empty payloads pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameShape {
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// IPv4 option bytes (at most 40; ignored for IPv6).
    pub ip_options: Vec<u8>,
    /// TCP option bytes (at most 40).
    pub tcp_options: Vec<u8>,
    /// TCP flags of the segment.
    pub tcp_flags: u8,
    /// IPv4 Don't Fragment (allowed: not a fragment).
    pub dont_fragment: bool,
    /// Ethernet padding of short frames: a frame under 60 bytes gets these
    /// bytes (cut to fit) after the IP packet, then zeros up to 60. They are
    /// never payload and must never be judged.
    pub padding: Option<Vec<u8>>,
}

impl FrameShape {
    /// No options, PSH|ACK, no padding.
    pub fn plain(version: IpVersion) -> Self {
        FrameShape {
            version,
            ip_options: Vec::new(),
            tcp_options: Vec::new(),
            tcp_flags: tcp_flags::PSH | tcp_flags::ACK,
            dont_fragment: false,
            padding: None,
        }
    }

    /// Headers plus payload, before padding.
    fn build_unpadded(&self, payload: &[u8], trailer: &[u8], pad: bool) -> Vec<u8> {
        let pad_to = if pad { 60 } else { 0 };
        match self.version {
            IpVersion::V4 => Frame::ipv4()
                .ip_options(&self.ip_options)
                .dont_fragment(self.dont_fragment)
                .tcp_options(&self.tcp_options)
                .tcp_flags(self.tcp_flags)
                .payload(payload)
                .trailer(trailer)
                .pad_to(pad_to)
                .build(),
            IpVersion::V6 => Frame::ipv6()
                .tcp_options(&self.tcp_options)
                .tcp_flags(self.tcp_flags)
                .payload(payload)
                .trailer(trailer)
                .pad_to(pad_to)
                .build(),
        }
    }

    /// The frame carrying `payload` in this shape.
    pub fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let bare = self.build_unpadded(payload, &[], false);
        match &self.padding {
            Some(junk) if bare.len() < 60 => {
                let room = 60 - bare.len();
                self.build_unpadded(payload, &junk[..junk.len().min(room)], true)
            }
            _ => bare,
        }
    }

    /// The longest payload whose frame a test run still takes: the
    /// test-run limit less this shape's headers (padding only ever fills
    /// short frames, so it never counts).
    pub fn max_payload(&self) -> usize {
        MAX_TEST_RUN_FRAME - self.build_unpadded(&[], &[], false).len()
    }
}

/// Frame shapes: IPv4 and IPv6, with and without IP and TCP options, several
/// flag sets (SYN and FIN with data included), Ethernet padding with junk.
pub fn arb_frame_shape() -> BoxedStrategy<FrameShape> {
    let ip_options = prop_oneof![
        3 => Just(Vec::new()),
        // Record Route with room for one address.
        1 => Just(vec![7, 7, 4, 0, 0, 0, 0]),
        // Router Alert, then NOPs.
        1 => (0usize..=36).prop_map(|nops| {
            let mut o = vec![0x94, 4, 0, 0];
            o.extend(std::iter::repeat_n(1, nops));
            o
        }),
        // Option bytes are skipped by IHL, never parsed: any bytes will do.
        1 => vec(any::<u8>(), 1..=40),
    ];
    let tcp_options = prop_oneof![
        3 => Just(Vec::new()),
        // MSS, SACK permitted, timestamps (a typical SYN).
        1 => Just(vec![2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1]),
        // NOP NOP timestamps (a typical data segment).
        1 => Just(vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]),
        1 => vec(any::<u8>(), 1..=40),
    ];
    let flags = select(
        &[
            tcp_flags::PSH | tcp_flags::ACK,
            tcp_flags::ACK,
            tcp_flags::FIN | tcp_flags::ACK,
            tcp_flags::SYN,
            tcp_flags::SYN | tcp_flags::ACK,
            tcp_flags::RST | tcp_flags::ACK,
            tcp_flags::URG | tcp_flags::PSH | tcp_flags::ACK,
        ][..],
    );
    let padding = prop_oneof![
        2 => Just(None),
        1 => Just(Some(Vec::new())),
        1 => vec(any::<u8>(), 1..8).prop_map(Some),
        1 => Just(Some(b"hate\x01{[".to_vec())),
    ];
    (
        any::<bool>(),
        ip_options,
        tcp_options,
        flags,
        any::<bool>(),
        padding,
    )
        .prop_map(
            |(v6, ip_options, tcp_options, tcp_flags, dont_fragment, padding)| FrameShape {
                version: if v6 { IpVersion::V6 } else { IpVersion::V4 },
                ip_options: if v6 { Vec::new() } else { ip_options },
                tcp_options,
                tcp_flags,
                dont_fragment,
                padding,
            },
        )
        .boxed()
}

/// Payload lengths the seed diodes' windows make interesting; every frame
/// shape adds its own longest payload ([`FrameShape::max_payload`]).
pub const BOUNDARY_LENGTHS: [usize; 11] = [0, 1, 15, 16, 17, 63, 64, 65, 1399, 1400, 1401];

/// The boundary lengths of a frame shape whose longest payload is `max`:
/// [`BOUNDARY_LENGTHS`] that fit, and `max` itself.
pub fn boundary_lengths(max: usize) -> Vec<usize> {
    BOUNDARY_LENGTHS
        .iter()
        .copied()
        .filter(|&n| n < max)
        .chain(std::iter::once(max))
        .collect()
}

/// Payload lengths up to `max`: near a boundary of [`boundary_lengths`]
/// (within 2, never past `max`), short, or anything.
pub fn arb_payload_len(max: usize) -> BoxedStrategy<usize> {
    prop_oneof![
        4 => select(boundary_lengths(max))
            .prop_flat_map(move |n| n.saturating_sub(2)..=(n + 2).min(max)),
        3 => 0..=max.min(99),
        2 => 0..=max,
    ]
    .boxed()
}

/// A frame shape with a payload from `payloads`, which is given the shape's
/// longest payload ([`FrameShape::max_payload`]) as its bound; payloads
/// longer than that bound are cut to it.
pub fn arb_shaped<F>(payloads: F) -> BoxedStrategy<(Vec<u8>, FrameShape)>
where
    F: Fn(usize) -> BoxedStrategy<Vec<u8>> + 'static,
{
    arb_frame_shape()
        .prop_flat_map(move |shape| (payloads(shape.max_payload()), Just(shape)))
        .prop_map(|(mut payload, shape)| {
            payload.truncate(shape.max_payload());
            (payload, shape)
        })
        .boxed()
}

/// Bytes of `text`: printable ASCII plus TAB, LF and CR, with CR/LF and
/// the letters of "hate" favoured.
const TEXT_BYTES: &[u8] =
    b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?-_/()<>=+*&%$#@~^`'|\r\n\r\n\t hate HATE {}[]\"\\";

/// Bytes outside `text`.
pub fn arb_non_text_byte() -> BoxedStrategy<u8> {
    prop_oneof![
        0u8..=8,
        0x0bu8..=0x0c,
        0x0eu8..=0x1f,
        Just(0x7f),
        0x80u8..=0xff
    ]
    .boxed()
}

/// A JSON string literal with brackets, escaped quotes and backslashes.
fn arb_json_string() -> BoxedStrategy<String> {
    vec(
        select(
            &[
                "a", "b", " ", "[", "{", "]", "}", "\\\"", "\\\\", "\\n", "\\u005b", ":", ",",
            ][..],
        ),
        0..6,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
    .boxed()
}

fn arb_json_leaf() -> BoxedStrategy<String> {
    prop_oneof![
        3 => arb_json_string(),
        1 => select(&["1", "-2.5e3", "true", "false", "null"][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

/// JSON-like documents of nesting depth 0 to 5: random trees, and exact
/// towers of a chosen depth (so depths 2 and 3, the json_depth boundary,
/// are frequent), with strings holding brackets and escapes, and with CR/LF
/// whitespace between items.
pub fn arb_json_doc() -> BoxedStrategy<String> {
    let separator = select(&[",", ", ", ",\r\n  ", ",\n"][..]);
    let tree = arb_json_leaf().prop_recursive(5, 48, 4, move |inner| {
        prop_oneof![
            (vec(inner.clone(), 0..4), separator.clone())
                .prop_map(|(items, sep)| format!("[{}]", items.join(sep))),
            (vec((arb_json_string(), inner), 0..4), separator.clone()).prop_map(|(fields, sep)| {
                let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", fields.join(sep))
            }),
        ]
    });
    let tower = (vec(any::<bool>(), 0..=5), arb_json_leaf()).prop_map(|(levels, leaf)| {
        levels.iter().rev().fold(leaf, |inner, &object| {
            if object {
                format!("{{\"k\":{inner}}}")
            } else {
                format!("[{inner}]")
            }
        })
    });
    prop_oneof![tree, tower].boxed()
}

/// `unit` repeated (and cut) to exactly `n` bytes; empty when `unit` is.
fn cycle_to(unit: &[u8], n: usize) -> Vec<u8> {
    unit.iter().copied().cycle().take(n).collect()
}

/// What a payload is made of before edits.
pub fn arb_fill(n: usize) -> BoxedStrategy<Vec<u8>> {
    if n == 0 {
        return Just(Vec::new()).boxed();
    }
    let unit = n.min(256);
    let words = &[
        "GET / HTTP/1.1\r\n",
        "Host: x\r\n",
        "\r\n",
        "hello ",
        "world",
        "hat",
        "ate",
        "h",
        "e",
        "whatever ",
        "{\"a\":1}",
        " ",
        "\t",
    ][..];
    prop_oneof![
        // Text with CR/LF and TAB.
        3 => vec(select(TEXT_BYTES), 1..=unit).prop_map(move |u| cycle_to(&u, n)),
        // Binary: random bytes, in full for short payloads.
        2 => vec(any::<u8>(), n.min(512)).prop_map(move |u| cycle_to(&u, n)),
        // Words and HTTP framing.
        2 => vec(select(words), 1..16).prop_map(move |w| cycle_to(w.concat().as_bytes(), n)),
        // JSON: a document cut to n, or repeated, or padded with whitespace.
        3 => (arb_json_doc(), 0u8..3).prop_map(move |(doc, how)| {
            let doc = doc.into_bytes();
            match how {
                0 => cycle_to(&doc, n),
                1 => {
                    let mut p = doc;
                    p.resize(n, b' ');
                    p
                }
                _ => {
                    let mut p = cycle_to(b" \r\n", n.saturating_sub(doc.len()));
                    p.extend_from_slice(&doc);
                    p.truncate(n);
                    p
                }
            }
        }),
        // Letters of the word, in both cases, and spaces.
        2 => vec(select(&b"hateHATE "[..]), 1..=unit.min(16)).prop_map(move |u| cycle_to(&u, n)),
        // One byte repeated.
        1 => any::<u8>().prop_map(move |b| vec![b; n]),
    ]
    .boxed()
}

/// Where an edit writes its token.
#[derive(Debug, Clone)]
pub enum At {
    /// At offset 0.
    Start,
    /// Ending `k` bytes before the end (0: the token's last byte is the payload's last).
    FromEnd(usize),
    /// Anywhere.
    Anywhere(Index),
    /// At a fixed offset (skipped when the token would not fit).
    Offset(usize),
}

/// A case mix of `word` (or of its first `len` letters).
fn arb_case_mix(word: &'static str) -> BoxedStrategy<Vec<u8>> {
    vec(any::<bool>(), word.len())
        .prop_map(move |upper| {
            word.bytes()
                .zip(upper)
                .map(|(b, up)| if up { b.to_ascii_uppercase() } else { b })
                .collect()
        })
        .boxed()
}

/// Tokens edits write: the word hate in any case mix (whole or cut short),
/// non-text bytes, CR/LF/TAB, JSON punctuation and brackets in strings.
pub fn arb_token() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => arb_case_mix("hate"),
        1 => (arb_case_mix("hate"), 1usize..4).prop_map(|(w, k)| w[..k].to_vec()),
        2 => arb_non_text_byte().prop_map(|b| vec![b]),
        1 => select(&["\r", "\n", "\t", "\r\n"][..]).prop_map(|s| s.as_bytes().to_vec()),
        2 => select(&["{", "[", "}", "]", "\"", "\\", "\\\"", "[[[", "{{{", "]]]", "\"[[[\""][..])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
    .boxed()
}

/// Edit positions: the start, the last bytes, anywhere, and the window
/// boundaries of the seed diodes.
pub fn arb_at() -> BoxedStrategy<At> {
    prop_oneof![
        2 => Just(At::Start),
        3 => (0usize..3).prop_map(At::FromEnd),
        3 => any::<Index>().prop_map(At::Anywhere),
        2 => select(&[13usize, 14, 15, 16, 17, 61, 62, 63, 64, 65, 1398, 1399, 1400][..])
            .prop_map(At::Offset),
    ]
    .boxed()
}

/// Overwrites `payload` with `token` at `at` (no-op when it does not fit).
pub fn apply_edit(payload: &mut [u8], at: &At, token: &[u8]) {
    let n = payload.len();
    if token.len() > n {
        return;
    }
    let last_start = n - token.len();
    let start = match at {
        At::Start => 0,
        At::FromEnd(k) => last_start.saturating_sub(*k),
        At::Anywhere(i) => i.index(last_start + 1),
        At::Offset(o) if *o <= last_start => *o,
        At::Offset(_) => return,
    };
    payload[start..start + token.len()].copy_from_slice(token);
}

/// Payloads of at most `max` bytes for the equivalence properties: a
/// length near a boundary, a fill (text, binary, words, JSON, letters),
/// then up to three edits that put a token (the word in any case, a
/// non-text byte, a bracket, ...) at the start, the last bytes, a window
/// boundary or anywhere.
pub fn arb_boundary_payload(max: usize) -> BoxedStrategy<Vec<u8>> {
    arb_payload_len(max)
        .prop_flat_map(|n| (arb_fill(n), vec((arb_at(), arb_token()), 0..4)))
        .prop_map(|(mut payload, edits)| {
            for (at, token) in &edits {
                apply_edit(&mut payload, at, token);
            }
            payload
        })
        .boxed()
}

/// A payload shown in a failure message: length and a lossy prefix.
pub fn show_payload(payload: &[u8]) -> String {
    const SHOWN: usize = 120;
    let head = String::from_utf8_lossy(&payload[..payload.len().min(SHOWN)]);
    if payload.len() > SHOWN {
        format!("n={} {head:?}...", payload.len())
    } else {
        format!("n={} {head:?}", payload.len())
    }
}

/// The other loaders users have: libbpf (through `bpftool`) and iproute2
/// (`tc`). Each helper loads an object, runs one frame through the loaded
/// program with `bpftool prog run`, cleans up, and returns the program's
/// return value.
pub mod external {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn unique(what: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!(
            "lagic-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{cmd:?} failed:\n{text}");
        text
    }

    /// A file, pin or namespace removed on drop.
    enum Cleanup {
        File(PathBuf),
        Netns(String),
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            match self {
                Cleanup::File(p) => {
                    let _ = std::fs::remove_file(p);
                }
                Cleanup::Netns(n) => {
                    let _ = Command::new("ip")
                        .args(["netns", "del", n.as_str()])
                        .status();
                }
            }
        }
    }

    fn temp_file(what: &str, bytes: &[u8]) -> Cleanup {
        let path = std::env::temp_dir().join(unique(what));
        std::fs::write(&path, bytes).expect("write temp file");
        Cleanup::File(path)
    }

    fn path(c: &Cleanup) -> &Path {
        match c {
            Cleanup::File(p) => p,
            Cleanup::Netns(_) => unreachable!("a namespace has no path"),
        }
    }

    /// `bpftool prog run PROG data_in FRAME` -> return value.
    fn bpftool_run(prog: &[&str], frame: &[u8]) -> u32 {
        let frame = temp_file("frame", frame);
        let text = run(Command::new("bpftool")
            .args(["prog", "run"])
            .args(prog)
            .arg("data_in")
            .arg(path(&frame)));
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Return value: "))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no return value in:\n{text}"))
    }

    /// Loads `object` with `bpftool prog load` (libbpf) and runs `frame`.
    pub fn bpftool_verdict(object: &[u8], frame: &[u8]) -> u32 {
        let obj = temp_file("obj.o", object);
        let pin = Cleanup::File(PathBuf::from("/sys/fs/bpf").join(unique("pin")));
        let out = run(Command::new("bpftool")
            .args(["prog", "load"])
            .arg(path(&obj))
            .arg(path(&pin)));
        assert!(!out.contains("libbpf:"), "libbpf warned:\n{out}");
        bpftool_run(&["pinned", path(&pin).to_str().unwrap()], frame)
    }

    /// Attaches `object` with `tc filter add ... bpf da obj X sec classifier`
    /// to a veth in a fresh namespace and runs `frame` through the attached
    /// program.
    pub fn tc_verdict(object: &[u8], frame: &[u8]) -> u32 {
        let obj = temp_file("obj.o", object);
        let ns_name = unique("ns");
        run(Command::new("ip").args(["netns", "add", &ns_name]));
        let ns = Cleanup::Netns(ns_name.clone());
        run(Command::new("ip").args([
            "-n", &ns_name, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]));
        run(Command::new("tc").args(["-n", &ns_name, "qdisc", "add", "dev", "v0", "clsact"]));
        let out = run(Command::new("tc")
            .args([
                "-n", &ns_name, "filter", "add", "dev", "v0", "ingress", "bpf", "da", "obj",
            ])
            .arg(path(&obj))
            .args(["sec", "classifier"]));
        assert!(!out.contains("libbpf:"), "tc/libbpf warned:\n{out}");
        let shown = run(
            Command::new("tc").args(["-n", &ns_name, "filter", "show", "dev", "v0", "ingress"])
        );
        let id = shown
            .split_whitespace()
            .skip_while(|w| *w != "id")
            .nth(1)
            .unwrap_or_else(|| panic!("no program id in:\n{shown}"))
            .to_owned();
        let verdict = bpftool_run(&["id", &id], frame);
        drop(ns);
        verdict
    }
}
