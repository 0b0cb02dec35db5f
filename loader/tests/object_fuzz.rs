//! Malformed objects never panic the loader: thousands of byte changes and truncations of
//! real compiled diodes (the seed examples, compiled with `emit_bpf::compile_object`) go
//! through the object check, and what it accepts through Aya's own parser (`aya_obj`: parse,
//! BTF fixup, call relocation; the steps that panicked on malformed objects), which must not
//! panic. One mutation in [`FULL_LOAD_EVERY`] goes through [`LoadedProgram::from_object`], the
//! whole path `lagic run` and `lagic attach` take (Aya reads the kernel's BTF on every load, so
//! all of them would take minutes); there no failure may come from a panic caught at the Aya
//! boundary ([`LoadError::LoaderPanicked`]).
//!
//! Deterministic (a fixed-seed xorshift generator), so a failure reproduces.

use lagic_loader::elf_check;
use lagic_loader::testing::require_bpf;
use lagic_loader::{LoadError, LoadedProgram};

/// Mutations per seed object.
const MUTATIONS: usize = 3000;
/// One mutation in this many also goes through the verifier (slower: a load each).
const FULL_LOAD_EVERY: usize = 60;

fn seed_object(name: &str) -> Vec<u8> {
    let path = format!("{}/../examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("reading the example");
    let spec = predicate_ir::parse(&text).expect("parsing the example");
    let program = predicate_ir::lower(&spec).expect("lowering the example");
    emit_bpf::compile_object(&program).expect("compiling the example")
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One mutation of `object`: a byte set to a random or boundary value, a bit flipped, a
/// little-endian word set to a large value, or a truncation.
fn mutate(object: &[u8], rng: &mut XorShift) -> (Vec<u8>, String) {
    let mut m = object.to_vec();
    let at = rng.below(m.len());
    match rng.below(5) {
        0 => {
            let v = rng.next() as u8;
            m[at] = v;
            (m, format!("byte {at} = {v}"))
        }
        1 => {
            let bit = rng.below(8);
            m[at] ^= 1 << bit;
            (m, format!("byte {at} bit {bit} flipped"))
        }
        2 => {
            let v = [0u8, 1, 3, 0x7f, 0x80, 0xff][rng.below(6)];
            m[at] = v;
            (m, format!("byte {at} = {v}"))
        }
        3 => {
            let at = at & !3;
            let v = [u32::MAX, 0x8000_0000, 0x0001_0000][rng.below(3)];
            let end = (at + 4).min(m.len());
            m[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
            (m, format!("u32 at {at} = {v:#x}"))
        }
        _ => {
            m.truncate(at);
            (m, format!("truncated to {at} bytes"))
        }
    }
}

/// Aya's parse, BTF fixup and call relocation of `elf`, with a panic turned into its message.
fn aya_parse(elf: &[u8]) -> Result<(), String> {
    let result = std::panic::catch_unwind(|| {
        let Ok(mut obj) = aya_obj::Object::parse(elf) else {
            return;
        };
        let _ = obj.fixup_and_sanitize_btf(&aya_obj::btf::BtfFeatures::default());
        let text_sections = obj.functions.keys().map(|(section, _)| *section).collect();
        let _ = obj.relocate_calls(&text_sections);
    });
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

#[test]
fn byte_changes_and_truncations_of_compiled_diodes_never_panic() {
    if !require_bpf() {
        return;
    }
    let started = std::time::Instant::now();
    let mut rng = XorShift(0x1a61_c0de_5eed_0001);
    let (mut refused_by_check, mut passed_check, mut full_loads) = (0, 0, 0);
    for seed in ["minimal", "hateless"] {
        let object = seed_object(seed);
        assert!(
            LoadedProgram::from_object(&object).is_ok(),
            "{seed} loads unmutated"
        );
        for i in 0..MUTATIONS {
            let (bytes, what) = mutate(&object, &mut rng);
            if elf_check::check(&bytes).is_err() {
                refused_by_check += 1;
            } else {
                passed_check += 1;
                if let Err(why) = aya_parse(&bytes) {
                    panic!(
                        "{seed} with {what}: the object check let through an object Aya panics \
                         on: {why}"
                    );
                }
            }
            if i % FULL_LOAD_EVERY == 0 {
                full_loads += 1;
                if let Err(LoadError::LoaderPanicked(why)) = LoadedProgram::from_object(&bytes) {
                    panic!("{seed} with {what}: loading panicked inside Aya: {why}");
                }
            }
        }
    }
    eprintln!(
        "{} mutations in {} ms: {refused_by_check} refused by the object check, {passed_check} \
         passed it to Aya's parser; {full_loads} loaded through the kernel",
        2 * MUTATIONS,
        started.elapsed().as_millis()
    );
    // Both outcomes occur: the mutations reach the check's refusals and the parser behind it.
    assert!(refused_by_check > 0 && passed_check > 0);
}

#[test]
fn the_check_accepts_compiled_diodes_as_lagic_objects() {
    for seed in ["minimal", "hateless", "json_depth", "printable64"] {
        let object = seed_object(seed);
        assert_eq!(
            elf_check::check(&object),
            Ok(elf_check::Provenance::Lagic),
            "{seed}"
        );
    }
}
