//! Scaling: generated specs that grow with `k`, each with the C a programmer
//! (or a spec-to-C generator) would write for the same predicate.
//!
//! - `contains`: `not (or [contains [0,inf) w_1, .., w_k])`, a block list
//!   of k case-insensitive 4-letter words over the whole payload. The C
//!   side runs k KMP-style matchers in one `bpf_loop` pass (the hateless
//!   baseline, generalized), with fewer bytes per iteration as k grows.
//! - `windows`: `and [all [16i, 16i+16) C_i]` for i < k, where `C_i` is
//!   printable ASCII minus one letter (so no two windows share a class and
//!   neither side can merge them). The C side checks the windows in order
//!   with one bounded 16-byte loop each.
//!
//! - `depth`: `depth_le [0,inf) k` over JSON brackets with strings skipped,
//!   the json_depth seed with its bound raised to k; the C side is the
//!   json_depth baseline with `MAX_DEPTH` set to k.
//!
//! Words are chosen so that their first letter does not reappear in them:
//! on a mismatch the only possible restart is a fresh first letter, which
//! keeps the C matcher a two-way choice (the reference below is the plain
//! definition, independent of that trick).

use std::fmt::Write as _;

use crate::rng::Rng;

/// The json_depth baseline, the template of the `depth` family.
const JSON_DEPTH_C: &str = include_str!("../baseline/json_depth.c");

/// The two spec families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Family {
    /// `or` of k `contains` patterns (negated: a block list).
    Contains,
    /// `and` of k `all` windows.
    Windows,
    /// `depth_le [0,inf) k` over JSON brackets, strings skipped (json_depth
    /// with its bound raised to k).
    Depth,
}

impl Family {
    /// Short name, used in file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            Family::Contains => "contains",
            Family::Windows => "windows",
            Family::Depth => "depth",
        }
    }
}

/// The k distinct lowercase words of the `contains` family.
pub fn words(k: usize) -> Vec<[u8; 4]> {
    let mut rng = Rng::new(0x5EED + k as u64);
    let mut out: Vec<[u8; 4]> = Vec::with_capacity(k);
    while out.len() < k {
        let first = b'a' + rng.below(26) as u8;
        let mut w = [first, 0, 0, 0];
        for slot in w.iter_mut().skip(1) {
            let mut c = b'a' + rng.below(26) as u8;
            while c == first {
                c = b'a' + rng.below(26) as u8;
            }
            *slot = c;
        }
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// The letter window `i` of the `windows` family excludes.
pub fn excluded(i: usize) -> u8 {
    b'A' + (i % 26) as u8
}

/// The spec JSON of `family` at size `k`.
pub fn spec(family: Family, k: usize) -> String {
    let name = format!("{}_{k}", family.name());
    let predicate = match family {
        Family::Contains => crate::blocklist::case_insensitive_block_list(&words(k)),
        Family::Windows => {
            let args: Vec<String> = (0..k)
                .map(|i| {
                    let x = excluded(i);
                    format!(
                        r#"{{"op": "all", "window": {{"start": {}, "end": {}}}, "class": [[32, {}], [{}, 126]]}}"#,
                        16 * i,
                        16 * i + 16,
                        x - 1,
                        x + 1
                    )
                })
                .collect();
            format!(r#"{{"op": "and", "args": [{}]}}"#, args.join(", "))
        }
        Family::Depth => format!(
            r#"{{"op": "depth_le", "window": {{"start": 0, "end": null}}, "max": {k}, "open": [[91, 91], [123, 123]], "close": [[93, 93], [125, 125]], "strings": true}}"#
        ),
    };
    format!(
        r#"{{"version": 1, "name": "{name}", "policy": {{"arp": "pass", "ipv6_nd": "pass", "other_ip": "drop", "non_ip": "drop"}}, "predicate": {predicate}}}"#
    )
}

/// The reference verdict of `family` at size `k` on `payload` (plain
/// definitions; an empty payload passes by the packet model).
pub fn reference(family: Family, k: usize, payload: &[u8]) -> bool {
    if payload.is_empty() {
        return true;
    }
    match family {
        Family::Contains => !words(k)
            .iter()
            .any(|w| payload.windows(4).any(|x| x.eq_ignore_ascii_case(w))),
        Family::Windows => payload
            .iter()
            .take(16 * k)
            .enumerate()
            .all(|(i, &c)| (0x20..=0x7E).contains(&c) && c != excluded(i / 16)),
        Family::Depth => depth_within(payload, k),
    }
}

/// Bracket depth never above `max` outside JSON strings (a backslash in a
/// string escapes the next byte).
fn depth_within(payload: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &c in payload {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'{' || c == b'[' {
            depth += 1;
            if depth > max {
                return false;
            }
        } else if c == b'}' || c == b']' {
            depth = depth.saturating_sub(1);
        }
    }
    true
}

/// The C source of `family` at size `k`.
pub fn c_source(family: Family, k: usize) -> String {
    if family == Family::Depth {
        // The json_depth baseline with its bound raised: what a C programmer
        // would change.
        return JSON_DEPTH_C.replace("#define MAX_DEPTH 2", &format!("#define MAX_DEPTH {k}"));
    }
    let mut s = String::new();
    let name = format!("{}_{k}", family.name());
    let _ = writeln!(
        s,
        "/* Generated by lagic-bench: {name}. */\n#include \"packet_model.h\"\n"
    );
    match family {
        Family::Contains => {
            // Bytes per bpf_loop iteration: 16 for one word, fewer as words
            // are added (the unrolled chunk grows with k), one from 16 words
            // on. Without the opaque zero below, the verifier re-checks the
            // callback for every combination of constant word states and
            // gives up ("sequence of 8193 jumps is too complex") from k = 2.
            let chunk = (16 / k.next_power_of_two()).max(1);
            let _ = writeln!(
                s,
                "#undef CHUNK\n#define CHUNK {chunk}\nstruct mctx {{ void *data; void *data_end; __u32 start; __u32 chunks; int failed; __u32 zero; __u8 st[{k}]; }};\n"
            );
            let _ = writeln!(s, "static __always_inline int step(struct mctx *m, __u8 c)\n{{\n\t__u8 l = c | 0x20;\n\t__u32 s;");
            for (j, w) in words(k).iter().enumerate() {
                let packed = u32::from_le_bytes(*w);
                let _ = writeln!(
                    s,
                    "\ts = m->st[{j}]; s = l == ((0x{packed:08x}u >> (s * 8)) & 0xFF) ? s + 1 : (l == {first}); if (s == 4) return 1; m->st[{j}] = s ^ m->zero;",
                    first = w[0]
                );
            }
            s.push_str("\treturn 0;\n}\n\n");
            s.push_str(
                "static long chunk(__u32 idx, void *arg)\n{\n\tstruct mctx *m = arg;\n\tif (idx < m->chunks) {\n\t\t__u32 off = m->start + idx * CHUNK;\n\t\tif (off > 0xFFFF - CHUNK)\n\t\t\tgoto fail;\n\t\t__u8 *b = m->data + off;\n\t\tif ((void *)(b + CHUNK) > m->data_end)\n\t\t\tgoto fail;\n#pragma unroll\n\t\tfor (int i = 0; i < CHUNK; i++)\n\t\t\tif (step(m, b[i]))\n\t\t\t\tgoto fail;\n\t} else {\n\t\t__u32 off = m->start + m->chunks * CHUNK + (idx - m->chunks);\n\t\tif (off > 0xFFFF - 1)\n\t\t\tgoto fail;\n\t\t__u8 *b = m->data + off;\n\t\tif ((void *)(b + 1) > m->data_end)\n\t\t\tgoto fail;\n\t\tif (step(m, b[0]))\n\t\t\tgoto fail;\n\t}\n\treturn 0;\nfail:\n\tm->failed = 1;\n\treturn 1;\n}\n\n",
            );
            let _ = writeln!(
                s,
                "SEC(\"classifier\")\nint {name}(struct __sk_buff *skb)\n{{\n\tstruct payload p;\n\tint verdict = parse_payload(skb, &p);\n\tif (verdict != VERDICT_INSPECT)\n\t\treturn verdict;\n\tstruct mctx m = {{}};\n\t__u32 n = p.end - p.start;\n\tm.data = (void *)(long)skb->data;\n\tm.data_end = (void *)(long)skb->data_end;\n\tm.start = p.start;\n\tm.chunks = n / CHUNK;\n\t/* A zero the verifier cannot see: states stored through it are unknown\n\t * to it, so it checks the callback once instead of once per state. */\n\tm.zero = skb->len;\n\tasm volatile(\"\" ::: \"memory\");\n\tm.zero -= skb->len;\n\tbpf_loop(m.chunks + n % CHUNK, chunk, &m, 0);\n\treturn m.failed ? TC_ACT_SHOT : TC_ACT_OK;\n}}"
            );
        }
        Family::Depth => {} // returned above
        Family::Windows => {
            let _ = writeln!(
                s,
                "SEC(\"classifier\")\nint {name}(struct __sk_buff *skb)\n{{\n\tstruct payload p;\n\tint verdict = parse_payload(skb, &p);\n\tif (verdict != VERDICT_INSPECT)\n\t\treturn verdict;\n\tvoid *data = (void *)(long)skb->data;\n\tvoid *data_end = (void *)(long)skb->data_end;\n\t__u32 n = p.end - p.start;\n\tif (p.start > 256)\n\t\treturn TC_ACT_SHOT;\n\t__u8 *b = data + p.start;"
            );
            for i in 0..k {
                let _ = writeln!(
                    s,
                    "\tfor (int j = {lo}; j < {hi}; j++) {{\n\t\tif (j >= n)\n\t\t\treturn TC_ACT_OK;\n\t\tif ((void *)(b + j + 1) > data_end)\n\t\t\treturn TC_ACT_SHOT;\n\t\t__u8 c = b[j];\n\t\tif (c < 0x20 || c > 0x7E || c == {x})\n\t\t\treturn TC_ACT_SHOT;\n\t}}",
                    lo = 16 * i,
                    hi = 16 * i + 16,
                    x = excluded(i)
                );
            }
            s.push_str("\treturn TC_ACT_OK;\n}\n");
        }
    }
    s
}
