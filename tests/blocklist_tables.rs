//! Block lists of 1,000, 10,000 and 20,000 words: one combined automaton, run from
//! transition tables in `.rodata` (emit-bpf's `codegen/table.rs`).
//!
//! Each list is random (one fixed seed per list) and built to be hard:
//! case-insensitive letter classes, words that are prefixes of other words,
//! words that overlap others (one's end is another's start), and words with
//! a digit class in them. The spec compiles with translation validation on
//! (as `lagic compile` runs it), loads through lagic's loader (Aya, the
//! real verifier, `elf_check` first), and on every payload the kernel's
//! verdict (BPF_PROG_TEST_RUN) equals the plain definition (a word occurs,
//! ignoring case) and the lowered program's; `eval` of the spec joins them
//! on a share of the payloads (it tries every word at every offset, and
//! this crate is not optimized). Payloads are random and crafted: text with words planted in
//! random case at the start, the end, across the 64- and 8-byte chunk
//! boundaries of the walk, near misses (one letter changed), a word cut
//! short at the payload's end, binary bytes, and lengths from 1 to the
//! longest a test run carries.

use std::collections::HashSet;

use lagic_frames::IpVersion;
use lagic_loader::{LoadedProgram, Verdict};
use lagic_testkit::require_bpf;
use lagic_tests::{show_payload, FrameShape};
use predicate_ir::{ByteClass, Pred, Spec, Window};

/// A deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One symbol of a word: a letter (either case) or any digit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Sym {
    Letter(u8),
    Digit,
}

fn letter(rng: &mut Rng) -> Sym {
    Sym::Letter(b'a' + rng.below(26) as u8)
}

/// `k` distinct words of at least four symbols (shorter ones would match
/// nearly every text): random ones, prefixes of earlier words, overlaps
/// (the end of one word and the start of another), and some with a digit.
fn words(k: usize, seed: u64) -> Vec<Vec<Sym>> {
    let mut rng = Rng(seed);
    let mut seen = HashSet::new();
    let mut out: Vec<Vec<Sym>> = Vec::with_capacity(k);
    while out.len() < k {
        let w: Vec<Sym> = match rng.below(10) {
            0 if out.len() > 1 => {
                // A prefix of an earlier word.
                let base = &out[rng.below(out.len())];
                let cut = 4 + rng.below(base.len().saturating_sub(4).max(1));
                base[..cut.min(base.len())].to_vec()
            }
            1 if out.len() > 1 => {
                // The end of one word then the start of another.
                let a = &out[rng.below(out.len())];
                let b = &out[rng.below(out.len())];
                let mut w = a[a.len() - 2..].to_vec();
                w.extend_from_slice(&b[..3.min(b.len())]);
                w
            }
            2 => {
                let mut w: Vec<Sym> = (0..5 + rng.below(4)).map(|_| letter(&mut rng)).collect();
                let at = rng.below(w.len());
                w[at] = Sym::Digit;
                w
            }
            _ => (0..4 + rng.below(6)).map(|_| letter(&mut rng)).collect(),
        };
        if w.len() >= 4 && seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

fn class(sym: Sym) -> ByteClass {
    match sym {
        Sym::Letter(c) => ByteClass::from_bytes([c, c.to_ascii_uppercase()]),
        Sym::Digit => ByteClass::from_ranges([(b'0', b'9')]),
    }
}

fn spec(name: &str, list: &[Vec<Sym>]) -> Spec {
    let args = list
        .iter()
        .map(|w| Pred::Contains {
            window: Window::ALL,
            pattern: w.iter().map(|&s| class(s)).collect(),
        })
        .collect();
    Spec {
        name: name.to_string(),
        description: String::new(),
        policy: Default::default(),
        mode: predicate_ir::Mode::Packet,
        predicate: Pred::Not(Box::new(Pred::Or(args))),
    }
}

/// The plain definition: the payload passes when no word occurs in it.
struct Reference {
    words: HashSet<Vec<Sym>>,
    lengths: Vec<usize>,
}

impl Reference {
    fn new(list: &[Vec<Sym>]) -> Self {
        let mut lengths: Vec<usize> = list.iter().map(Vec::len).collect();
        lengths.sort_unstable();
        lengths.dedup();
        Reference {
            words: list.iter().cloned().collect(),
            lengths,
        }
    }

    fn passes(&self, payload: &[u8]) -> bool {
        // Bytes that no word can hold break every match: mark them.
        let syms: Vec<Option<Sym>> = payload
            .iter()
            .map(|&b| match b {
                b'a'..=b'z' | b'A'..=b'Z' => Some(Sym::Letter(b.to_ascii_lowercase())),
                b'0'..=b'9' => Some(Sym::Digit),
                _ => None,
            })
            .collect();
        !(0..syms.len()).any(|i| {
            self.lengths.iter().any(|&n| {
                i + n <= syms.len()
                    && syms[i..i + n]
                        .iter()
                        .copied()
                        .collect::<Option<Vec<Sym>>>()
                        .is_some_and(|w| self.words.contains(&w))
            })
        })
    }
}

fn render(rng: &mut Rng, w: &[Sym]) -> Vec<u8> {
    w.iter()
        .map(|&s| match s {
            Sym::Letter(c) if rng.chance(50) => c.to_ascii_uppercase(),
            Sym::Letter(c) => c,
            Sym::Digit => b'0' + rng.below(10) as u8,
        })
        .collect()
}

/// Random and crafted payloads (see the module docs).
fn payloads(list: &[Vec<Sym>], seed: u64, count: usize, max: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(count);
    let lengths = [1, 3, 7, 8, 9, 63, 64, 65, 72, 100, 1_400, max];
    // Chunk boundaries of the walk (64-byte chunks, then 8, then bytes).
    let boundaries = [0usize, 60, 61, 62, 63, 64, 70, 71, 127, 128];
    for i in 0..count {
        let n = if i < lengths.len() * 2 {
            lengths[i % lengths.len()]
        } else {
            1 + rng.below(max)
        };
        let mut p: Vec<u8> = (0..n)
            .map(|_| match rng.below(10) {
                0..=6 => b'a' + rng.below(26) as u8,
                7 => b' ',
                8 => b'0' + rng.below(10) as u8,
                _ => rng.below(256) as u8,
            })
            .collect();
        // Random letters alone hit short words often; mostly tone them
        // down to text of short "words" so both verdicts stay common.
        if rng.chance(60) {
            for (j, b) in p.iter_mut().enumerate() {
                if j % 4 == 3 {
                    *b = b' ';
                }
            }
        }
        let w = &list[rng.below(list.len())];
        let mut token = render(&mut rng, w);
        match rng.below(6) {
            0 => {} // nothing planted
            1 => {
                // A near miss: one symbol changed to a byte no word holds.
                let at = rng.below(token.len());
                token[at] = b'-';
            }
            2 => token.truncate(token.len() - 1), // cut short
            _ => {}
        }
        if token.len() <= n && rng.chance(80) {
            let at = match rng.below(4) {
                0 => 0,
                1 => n - token.len(),
                2 => boundaries[rng.below(boundaries.len())].min(n - token.len()),
                _ => rng.below(n - token.len() + 1),
            };
            p[at..at + token.len()].copy_from_slice(&token);
        }
        out.push(p);
    }
    out
}

/// Compiles, validates, loads and compares on `count` payloads; `eval` of
/// the spec runs on every `eval_every`-th payload.
fn check_list(k: usize, seed: u64, count: usize, eval_every: usize) {
    if !require_bpf() {
        return;
    }
    let list = words(k, seed);
    let spec = spec(&format!("blocklist_{k}"), &list);
    let program = predicate_ir::lower(&spec).unwrap_or_else(|e| panic!("lowering: {e}"));
    let (module, map) =
        emit_bpf::compile_mapped(&program).unwrap_or_else(|e| panic!("compiling: {e}"));
    assert!(
        !module.rodata.is_empty(),
        "{k} words: the automaton is not table-driven"
    );
    // Its 64-byte chunks run as interleaved chains (emit-bpf's table.rs).
    assert!(
        !map.chains.is_empty(),
        "{k} words: the chunks are not stepped as chains"
    );
    let object = module.write_elf().expect("writes");
    lagic_validate::validate(&program, &object, &map)
        .unwrap_or_else(|e| panic!("{k} words: validation: {e}"));
    let loaded = LoadedProgram::from_object(&object)
        .unwrap_or_else(|e| panic!("{k} words: the kernel refused the object: {e}"));

    let reference = Reference::new(&list);
    let shapes = [
        FrameShape::plain(IpVersion::V4),
        FrameShape::plain(IpVersion::V6),
    ];
    let max = shapes.iter().map(FrameShape::max_payload).min().unwrap();
    let (mut passed, mut dropped, mut evaluated) = (0, 0, 0);
    for (i, payload) in payloads(&list, seed ^ 0x5eed, count, max)
        .iter()
        .enumerate()
    {
        let want = reference.passes(payload);
        assert_eq!(
            program.verdict(payload),
            want,
            "{k} words: the lowered program disagrees with the definition on {}",
            show_payload(payload)
        );
        if i % eval_every == 0 {
            assert_eq!(
                predicate_ir::eval(&spec.predicate, payload),
                want,
                "{k} words: eval disagrees with the definition on {}",
                show_payload(payload)
            );
            evaluated += 1;
        }
        let shape = &shapes[i % 2];
        let got = loaded
            .run(&shape.frame(payload))
            .unwrap_or_else(|e| panic!("test run: {e}"))
            .verdict;
        assert_eq!(
            got,
            Verdict::from_bool(want),
            "{k} words: the kernel disagrees with the definition on {} ({:?})",
            show_payload(payload),
            shape.version
        );
        if want {
            passed += 1;
        } else {
            dropped += 1;
        }
    }
    eprintln!(
        "{k} words: {count} payloads agree (kernel == program == definition; eval on \
         {evaluated}): {passed} pass, {dropped} drop"
    );
    // The generator must reach both verdicts often.
    assert!(
        passed * 10 >= count && dropped * 10 >= count,
        "{k} words: lopsided payloads ({passed} pass, {dropped} drop)"
    );
}

#[test]
fn a_thousand_words_compile_load_and_judge_like_the_definition() {
    check_list(1_000, 0x1000, 400, 4);
}

#[test]
fn ten_thousand_words_compile_load_and_judge_like_the_definition() {
    check_list(10_000, 0x10_000, 300, 30);
}

/// Past what u32 row offsets fit in 4 MiB of read-only data, the table
/// holds u16 state numbers and each step shifts them (emit-bpf's
/// `codegen/table.rs`): that layout too compiles, validates, loads and
/// judges like the definition.
#[test]
fn twenty_thousand_words_take_numbered_states_and_judge_like_the_definition() {
    let list = words(20_000, 0x20_000);
    let program = predicate_ir::lower(&spec("blocklist_20000", &list)).expect("lowers");
    let (module, _) = emit_bpf::compile_mapped(&program).expect("compiles");
    let states = program.scans[0].machine.state_count();
    // Premultiplied u32 entries need at least 4 bytes per state and class
    // (about 27 classes, 32 columns): more than the object holds.
    assert!(
        states * 32 * 4 > 4 << 20 && module.rodata.len() < states * 32 * 4,
        "{states} states in {} bytes of tables: not the numbered layout",
        module.rodata.len()
    );
    check_list(20_000, 0x20_000, 150, 50);
}

/// libbpf (bpftool) and iproute2's tc load the tables too (a `.rodata`
/// map they create, fill and freeze), without a warning, and judge alike.
/// Touches namespaces and pins: run under the kernel lock.
#[test]
fn a_table_driven_list_loads_with_bpftool_and_tc_and_judges_alike() {
    use lagic_tests::external::{bpftool_verdict, tc_verdict};
    if !require_bpf() {
        return;
    }
    let list = words(1_000, 0x1000);
    let spec = spec("blocklist_ext", &list);
    let compiled = lagic_tests::compile(&spec);
    let reference = Reference::new(&list);
    let mut rng = Rng(0xe7);
    let clean = b"a b c d e f g h i j k l m n o p q r s t u v w x y z ".repeat(20);
    let mut dirty = clean.clone();
    let word = render(&mut rng, &list[7]);
    dirty[300..300 + word.len()].copy_from_slice(&word);
    for (payload, passes) in [(clean, true), (dirty, false)] {
        assert_eq!(reference.passes(&payload), passes);
        let frame = lagic_frames::tcp_frame(&payload, IpVersion::V4);
        let want = if passes { 0 } else { 2 };
        assert_eq!(bpftool_verdict(&compiled.object, &frame), want, "bpftool");
        assert_eq!(tc_verdict(&compiled.object, &frame), want, "tc");
    }
}
