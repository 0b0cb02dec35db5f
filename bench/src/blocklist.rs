//! The block-list family: `not (or of k contains)` over the whole payload,
//! k random case-insensitive words of 4 to 9 letters (one fixed seed; the
//! list of k words is the first k of one sequence), for k = 1 .. 10,000,
//! timed at 1,400 bytes per packet.
//!
//! Three ways to enforce the same list:
//! - lagic: lowering combines the list into one automaton
//!   (predicate-ir's combined scans); past 24 states the emitter runs it
//!   from a byte-class map and a transition table in `.rodata`
//!   (emit-bpf's `codegen/table.rs`), one table load per byte, so the cost
//!   per byte hardly depends on the list's length.
//! - C: what a C programmer writes for BPF past a handful of words (one
//!   matcher per word is hopeless under the verifier): an Aho-Corasick
//!   automaton generated offline into read-only global data (`.rodata`,
//!   loaded as a frozen array map), a byte-class table and one table load
//!   per byte, in `bpf_loop` 16 bytes per iteration. The automaton is built
//!   here by the textbook construction (trie, failure links), sharing no
//!   code with lagic.
//! - iptables: one `-m string --algo bm --icase` rule per word (end to end,
//!   see [`crate::e2e::blocklist`]).
//!
//! Every object must agree with [`reference`] (the plain definition) on
//! generated frames before its numbers count.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;

use crate::rng::Rng;

/// The list sizes measured: powers of ten.
pub const SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

/// Payload bytes per timed packet.
pub const PAYLOAD: usize = 1_400;

/// The first `k` words of the family's one sequence: distinct lowercase
/// words of 4 to 9 letters.
pub fn words(k: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0xB10C_0005);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let len = 4 + rng.below(6);
        let w: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

/// The predicate JSON "no word of `words` occurs in the payload, in any
/// case mix": `not (or of contains)` over the whole payload, one `contains`
/// of case-insensitive letter classes per word (lowercase ASCII letters).
/// The block lists here and the `contains` scaling family
/// ([`crate::scaling`]) share it.
pub fn case_insensitive_block_list<W: AsRef<[u8]>>(words: &[W]) -> String {
    let args: Vec<String> = words
        .iter()
        .map(|w| {
            let classes: Vec<String> = w
                .as_ref()
                .iter()
                .map(|&c| {
                    let up = c.to_ascii_uppercase();
                    format!("[[{up},{up}],[{c},{c}]]")
                })
                .collect();
            format!(
                r#"{{"op":"contains","window":{{"start":0,"end":null}},"pattern":[{}]}}"#,
                classes.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"op":"not","arg":{{"op":"or","args":[{}]}}}}"#,
        args.join(",")
    )
}

/// The spec JSON of the list of `k` words.
pub fn spec(k: usize) -> String {
    format!(
        r#"{{"version":1,"name":"blocklist_{k}","policy":{{"arp":"pass","ipv6_nd":"pass","other_ip":"drop","non_ip":"drop"}},"predicate":{}}}"#,
        case_insensitive_block_list(&words(k))
    )
}

/// The plain definition: no word occurs in the payload, ignoring ASCII case
/// (an empty payload passes by the packet model).
pub struct Reference {
    words: HashSet<Vec<u8>>,
}

impl Reference {
    /// The reference for the list of `k` words.
    pub fn new(k: usize) -> Self {
        Self {
            words: words(k).into_iter().collect(),
        }
    }

    /// True: the payload passes.
    pub fn passes(&self, payload: &[u8]) -> bool {
        let lower = payload.to_ascii_lowercase();
        !(0..lower.len()).any(|i| {
            (4..=9).any(|len| i + len <= lower.len() && self.words.contains(&lower[i..i + len]))
        })
    }
}

/// Byte classes of the C table: letters are 1..=26 (either case),
/// everything else 0.
pub const CLASSES: usize = 27;

/// The Aho-Corasick automaton of the list as a full transition table over
/// `CLASSES` columns; every transition into a state where some word ends
/// goes to the extra state `states` (the match), which the C never leaves.
pub struct Automaton {
    /// States without the match state.
    pub states: usize,
    /// `delta[s * CLASSES + c]`.
    pub delta: Vec<u32>,
}

/// Builds the automaton: a trie of the words, failure links breadth-first,
/// then the full table (a missing edge follows the failure link's).
pub fn automaton(words: &[Vec<u8>]) -> Automaton {
    let mut child: Vec<[u32; CLASSES]> = vec![[0; CLASSES]];
    let mut terminal = vec![false];
    for w in words {
        let mut s = 0usize;
        for &b in w {
            let c = usize::from(b - b'a' + 1);
            if child[s][c] == 0 {
                child.push([0; CLASSES]);
                terminal.push(false);
                child[s][c] = (child.len() - 1) as u32;
            }
            s = child[s][c] as usize;
        }
        terminal[s] = true;
    }
    let n = child.len();
    let mut fail = vec![0u32; n];
    let mut delta = vec![0u32; n * CLASSES];
    let mut queue = VecDeque::new();
    for c in 0..CLASSES {
        let t = child[0][c];
        delta[c] = t;
        if t != 0 {
            queue.push_back(t as usize);
        }
    }
    while let Some(s) = queue.pop_front() {
        let f = fail[s] as usize;
        // A state is a match when its word or the longest suffix it fails to is.
        terminal[s] = terminal[s] || terminal[f];
        for c in 0..CLASSES {
            let t = child[s][c];
            if t != 0 {
                fail[t as usize] = delta[f * CLASSES + c];
                delta[s * CLASSES + c] = t;
                queue.push_back(t as usize);
            } else {
                delta[s * CLASSES + c] = delta[f * CLASSES + c];
            }
        }
    }
    let matched = n as u32;
    for t in delta.iter_mut() {
        if terminal[*t as usize] {
            *t = matched;
        }
    }
    Automaton { states: n, delta }
}

/// The C baseline of the list of `k` words (see the module docs).
pub fn c_source(k: usize) -> String {
    let a = automaton(&words(k));
    let ty = if a.states < usize::from(u16::MAX) {
        "__u16"
    } else {
        "__u32"
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "/* Generated by lagic-bench: a block list of {k} words as an Aho-Corasick\n * automaton in read-only data ({} states). */\n#include \"packet_model.h\"\n\n#define STATES {}\n#define MATCHED {}\n",
        a.states, a.states, a.states
    );
    s.push_str("static const __u8 byte_class[256] = {");
    for b in 0..=255u8 {
        let c = if b.is_ascii_alphabetic() {
            b.to_ascii_lowercase() - b'a' + 1
        } else {
            0
        };
        let _ = write!(s, "{c},");
    }
    s.push_str("};\n");
    let _ = write!(s, "static const {ty} delta[STATES * {CLASSES}] = {{");
    for (i, t) in a.delta.iter().enumerate() {
        if i % 32 == 0 {
            s.push('\n');
        }
        let _ = write!(s, "{t},");
    }
    s.push_str("\n};\n\n");
    let _ = writeln!(
        s,
        r#"/* One byte: 1 when a word has ended (or the state is out of range,
 * which cannot happen, but the verifier needs the bound). */
static __always_inline int step(__u32 *state, __u8 b)
{{
	__u64 i = (__u64)*state * {CLASSES} + byte_class[b];
	/* clang can prove the table's values in range and would drop the
	 * bound the verifier needs: hide the index from it, then check the
	 * register the load uses. */
	asm volatile("" : "+r"(i));
	if (i >= STATES * {CLASSES})
		return 1;
	__u32 s = delta[i];
	*state = s;
	return s == MATCHED;
}}

static long scan_chunk(__u32 idx, void *arg)
{{
	struct scan_ctx *c = arg;
	__u32 s = c->state;
	__u32 off;
	if (idx < c->chunks) {{
		off = c->start + idx * CHUNK;
		if (off > 0xFFFF - CHUNK)
			goto fail;
		__u8 *b = c->data + off;
		if ((void *)(b + CHUNK) > c->data_end)
			goto fail;
#pragma unroll
		for (int i = 0; i < CHUNK; i++)
			if (step(&s, b[i]))
				goto fail;
	}} else {{
		off = c->start + c->chunks * CHUNK + (idx - c->chunks);
		if (off > 0xFFFF - 1)
			goto fail;
		__u8 *b = c->data + off;
		if ((void *)(b + 1) > c->data_end)
			goto fail;
		if (step(&s, b[0]))
			goto fail;
	}}
	c->state = s;
	return 0;
fail:
	c->failed = 1;
	return 1;
}}

SEC("classifier")
int blocklist_{k}(struct __sk_buff *skb)
{{
	struct payload p;
	int verdict = parse_payload(skb, &p);
	if (verdict != VERDICT_INSPECT)
		return verdict;
	struct scan_ctx c;
	__u32 loops;
	scan_setup(skb, &p, &c, &loops);
	bpf_loop(loops, scan_chunk, &c, 0);
	return c.failed ? TC_ACT_SHOT : TC_ACT_OK;
}}"#
    );
    s
}

/// A payload for the equivalence check: ordinary text, and in a third of
/// them one word of the list (in random case) at a random place.
pub fn check_payload(rng: &mut Rng, list: &[Vec<u8>], len: usize) -> Vec<u8> {
    let mut p = crate::equivalence::payload(rng, len);
    if rng.chance(1, 2) {
        // Letters and spaces: where partial matches happen.
        for b in p.iter_mut() {
            *b = *rng.pick(b"abcdefghijklmnopqrstuvwxyz ETAOIN");
        }
    }
    let w = rng.pick(list);
    if len >= w.len() && rng.chance(1, 3) {
        let at = rng.below(len - w.len() + 1);
        for (i, &c) in w.iter().enumerate() {
            p[at + i] = if rng.chance(1, 2) {
                c.to_ascii_uppercase()
            } else {
                c
            };
        }
    }
    p
}

/// The timed payload: [`PAYLOAD`] bytes of ordinary text in which no word
/// of the list occurs (so every side scans all of it): the seed diodes'
/// timing text when it holds no word, else text of random words of one to
/// three letters (no word of four or more can occur in it).
pub fn timing_payload(reference: &Reference) -> Vec<u8> {
    timing_payload_of(reference, PAYLOAD)
}

/// [`timing_payload`] of `len` bytes.
pub fn timing_payload_of(reference: &Reference, len: usize) -> Vec<u8> {
    let text = crate::measure::timing_payload("blocklist", len);
    if reference.passes(&text) {
        return text;
    }
    let mut rng = Rng::new(0x7E47);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        for _ in 0..1 + rng.below(3) {
            out.push(b'a' + rng.below(26) as u8);
        }
        out.push(*rng.pick(b"  ,."));
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automaton_matches_the_plain_definition() {
        let list = words(200);
        let a = automaton(&list);
        let reference = Reference::new(200);
        let mut rng = Rng::new(7);
        for _ in 0..300 {
            let len = rng.below(300);
            let p = check_payload(&mut rng, &list, len);
            let mut s = 0u32;
            let mut hit = false;
            for &b in &p {
                let c = if b.is_ascii_alphabetic() {
                    usize::from(b.to_ascii_lowercase() - b'a' + 1)
                } else {
                    0
                };
                s = a.delta[s as usize * CLASSES + c];
                if s as usize == a.states {
                    hit = true;
                    break;
                }
            }
            assert_eq!(!hit, reference.passes(&p), "{p:?}");
        }
    }

    #[test]
    fn words_are_distinct_and_nested() {
        let ten = words(10);
        assert_eq!(ten.len(), 10);
        assert_eq!(&words(100)[..10], &ten[..]);
        assert!(ten.iter().all(|w| (4..=9).contains(&w.len())));
    }
}
