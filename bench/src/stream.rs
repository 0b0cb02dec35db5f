//! The stream diode's cost per segment beside the per-packet diode's
//! (`BPF_PROG_TEST_RUN`): `examples/stream/hateless.json` and
//! `examples/hateless.json` on the same realistic flow, a SYN, then
//! [`SEGMENT`]-byte segments of clean text at consecutive sequence
//! numbers, then a FIN.
//!
//! A stream diode keeps state per flow, so a segment cannot be repeated to
//! time it (a repeat is behind the next expected byte and dropped without
//! judging). Each round therefore runs one whole new flow (its own source
//! port; the flow map persists across runs, as on a link), one
//! `BPF_PROG_TEST_RUN` per segment, and takes the mean of the kernel's
//! per-run times over its data segments; the per-packet diode runs the same
//! frames the same way. Rounds alternate which diode goes first.
//!
//! Before timing, a gate: every frame of a clean flow passes both diodes
//! unchanged, and a flow with "hate" split across two segments gets its
//! second segment rewritten into a RST by the stream diode while the
//! per-packet diode passes both halves: the stream diode is judging the
//! stream on this kernel.
//!
//! The `http_response` views ([`HTTP_VIEWS`]) run in the same rounds on a
//! flow of HTTP responses of the enclave's format (`Content-Length`; the
//! view refuses chunked encoding, so there is nothing chunked to time) with
//! JSON bodies, cut into [`SEGMENT`]-byte segments regardless of where a
//! response ends: one response whose body fills the flow, or, for a view
//! whose body predicate bounds the body's length, keep-alive responses as
//! long as it allows. Their gate: the clean flow passes unchanged and a
//! response with a body that breaks every view's body predicate gets its
//! segment rewritten into a RST. Each round runs every diode once, starting
//! one diode later than the round before.

use std::path::Path;

use lagic_frames::{tcp_flags, Frame};
use lagic_loader::{LoadedProgram, Verdict};
use serde::{Deserialize, Serialize};

use crate::measure::{self, Ratio};
use crate::{load_object, tools, BenchError};

/// Payload bytes per data segment: a full segment at a 1,500-byte MTU with
/// TCP timestamps.
pub const SEGMENT: usize = 1448;

/// The result: ns per data segment of each diode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamBench {
    /// Payload bytes per data segment.
    pub segment: usize,
    /// Data segments per flow (one flow per round and diode).
    pub segments: usize,
    /// Rounds.
    pub rounds: usize,
    /// The stream `hateless`: median over rounds of the mean ns per data segment.
    pub stream_ns: f64,
    /// The per-packet `hateless`, the same way.
    pub packet_ns: f64,
    /// Per-round stream / per-packet ratios.
    pub ratio: Ratio,
    /// The stream diode's SYN and FIN (median ns, the flow's first and last run).
    pub stream_syn_ns: f64,
    /// See `stream_syn_ns`.
    pub stream_fin_ns: f64,
    /// The `http_response` views, timed in the same rounds (none in
    /// results recorded before they were).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpViewBench>,
}

/// One `http_response` view's cost per segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpViewBench {
    /// The spec, relative to the workspace (`examples/stream/...`).
    pub spec: String,
    /// HTTP responses in the flow.
    pub responses: usize,
    /// Bytes of the flow's longest body.
    pub body: usize,
    /// Data segments per flow.
    pub segments: usize,
    /// Median over rounds of the mean ns per data segment.
    pub ns: f64,
    /// Per-round ratios to the stream `hateless`.
    pub vs_stream: Ratio,
    /// Per-round ratios to the per-packet `hateless`.
    pub vs_packet: Ratio,
}

/// The `http_response` views timed, and the longest body each one's body
/// predicate accepts (`None`: no bound). `http_json_start`'s body
/// predicate holds `len < 1400`.
pub const HTTP_VIEWS: [(&str, Option<usize>); 3] = [
    ("http_json_start", Some(1399)),
    ("http_json_prefix", None),
    ("http_json_depth", None),
];

/// The frames of one flow to port `port`: SYN, one data segment per
/// piece of `pieces` at consecutive sequence numbers, FIN.
fn frames_of<'a>(port: u16, pieces: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    const ISN: u32 = 0x1000_0000;
    let frame = |seq: u32, flags: u8, payload: &[u8]| {
        Frame::ipv4()
            .tcp()
            .ports(8080, port)
            .seq(seq)
            .ack(1)
            .tcp_flags(flags)
            .payload(payload)
            .build()
    };
    let mut frames = vec![frame(ISN, tcp_flags::SYN | tcp_flags::ACK, b"")];
    let mut seq = ISN.wrapping_add(1);
    for piece in pieces {
        frames.push(frame(seq, tcp_flags::ACK | tcp_flags::PSH, piece));
        seq = seq.wrapping_add(piece.len() as u32);
    }
    frames.push(frame(seq, tcp_flags::FIN | tcp_flags::ACK, b""));
    frames
}

/// The frames of one flow to port `port`: SYN, `segments` data segments
/// (the [`SEGMENT`]-byte pieces of `text` in turn, round and round), FIN.
fn flow_frames(port: u16, text: &[u8], segments: usize) -> Vec<Vec<u8>> {
    let pieces = text.len() / SEGMENT;
    frames_of(
        port,
        (0..segments).map(|i| &text[(i % pieces) * SEGMENT..][..SEGMENT]),
    )
}

/// The frames of one flow carrying `stream` in [`SEGMENT`]-byte segments
/// (the last one shorter if it must be).
fn stream_frames(port: u16, stream: &[u8]) -> Vec<Vec<u8>> {
    frames_of(port, stream.chunks(SEGMENT))
}

/// A JSON body of exactly `len` bytes (at least [`MIN_BODY`]) like the
/// enclave's `/api/generate` answer: an object whose generated text holds
/// escaped quotes and brackets (inside a string, so `json_depth` must track
/// strings), then an array: nesting depth 2.
fn json_body(len: usize) -> Vec<u8> {
    const TEXT: &[u8] = b"Once upon a time, a \\\"robot\\\" said [hello] to {everyone}. ";
    let mut body = BODY_HEAD.to_vec();
    body.extend(TEXT.iter().cycle().take(len - MIN_BODY));
    // Never end the string on an escape's backslash.
    if let Some(last @ b'\\') = body.last_mut() {
        *last = b' ';
    }
    body.extend_from_slice(BODY_TAIL);
    body
}

const BODY_HEAD: &[u8] = b"{\"model\":\"stories15M\",\"response\":\"";
const BODY_TAIL: &[u8] = b"\",\"done\":true,\"context\":[1,2,3]}";
/// Shortest body [`json_body`] builds.
const MIN_BODY: usize = BODY_HEAD.len() + BODY_TAIL.len();

/// The enclave's response header block for a body of `len` bytes.
fn response_head(len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\
         Connection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

/// A stream of exactly `total` bytes of whole responses with JSON bodies:
/// one response, or, with `max_body`, as few responses as keep every body
/// at most `max_body` bytes (and no shorter than 1,000, so every header
/// block has the same length). Returns the stream, its responses and its
/// longest body.
fn http_stream(total: usize, max_body: Option<usize>) -> (Vec<u8>, usize, usize) {
    let bodies: Vec<usize> = match max_body {
        None => {
            // The header's length depends on the body's digits: settle it.
            let mut body = total - response_head(total).len();
            body = total - response_head(body).len();
            vec![body]
        }
        Some(max) => {
            let head = response_head(max).len();
            let n = total.div_ceil(head + max);
            let bytes = total - n * head;
            (0..n)
                .map(|i| bytes / n + usize::from(i < bytes % n))
                .collect()
        }
    };
    let mut stream = Vec::with_capacity(total);
    for &b in &bodies {
        stream.extend(response_head(b));
        stream.extend(json_body(b));
    }
    let longest = bodies.iter().copied().max().unwrap_or(0);
    (stream, bodies.len(), longest)
}

/// A response whose body breaks every view of [`HTTP_VIEWS`]: not `{` or
/// `[` first, and nested three deep.
const BAD_BODY: &[u8] = b"x[[[1]]]";

/// Clean text: the bench's timing text (no "hate" anywhere, nor where the
/// last piece meets the first), four segments long.
fn clean_text() -> Vec<u8> {
    measure::timing_payload("hateless", 4 * SEGMENT)
}

fn run_error(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Run(format!("{what}: {e}"))
}

/// Every frame must come back unchanged (a RST rewrite returns TC_ACT_OK
/// too, so the verdict alone does not show it).
fn passes_unchanged(p: &LoadedProgram, side: &str, frames: &[Vec<u8>]) -> Result<(), BenchError> {
    for (i, f) in frames.iter().enumerate() {
        let (ret, out) = p.run_out(f).map_err(|e| run_error(side, e))?;
        if ret != 0 || out != *f {
            return Err(BenchError::Run(format!(
                "{side}: frame {i} of a clean flow did not pass unchanged (return {ret})"
            )));
        }
    }
    Ok(())
}

/// The gate of the module docs.
fn gate(
    stream: &LoadedProgram,
    packet: &LoadedProgram,
    ports: &mut u16,
    segments: usize,
) -> Result<(), BenchError> {
    let text = clean_text();
    let frames = flow_frames(*ports, &text, segments);
    *ports += 1;
    passes_unchanged(stream, "stream hateless", &frames)?;
    passes_unchanged(packet, "hateless", &frames)?;
    // "... ha" | "te ...": the second half must become a RST.
    let mut split = text[..2 * SEGMENT].to_vec();
    split[SEGMENT - 2..SEGMENT + 2].copy_from_slice(b"hate");
    let frames = flow_frames(*ports, &split, 2);
    *ports += 1;
    passes_unchanged(packet, "hateless (split word)", &frames)?;
    resets_last(stream, "stream hateless (split word)", &frames[..3])
}

/// Runs one flow through `p`; returns the mean ns per data segment and the
/// SYN's and FIN's ns.
fn time_flow(p: &LoadedProgram, side: &str, frames: &[Vec<u8>]) -> Result<[f64; 3], BenchError> {
    let mut ns = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        let r = p.run(f).map_err(|e| run_error(side, e))?;
        if r.verdict != Verdict::Pass {
            return Err(BenchError::Run(format!(
                "{side}: frame {i} of a timed flow: {}",
                r.verdict
            )));
        }
        ns.push(r.duration.as_nanos() as f64);
    }
    let data = &ns[1..ns.len() - 1];
    Ok([
        data.iter().sum::<f64>() / data.len() as f64,
        ns[0],
        ns[ns.len() - 1],
    ])
}

/// Whether running `frames` through `p` in turn resets the last one (the
/// earlier ones pass unchanged).
fn resets_last(p: &LoadedProgram, side: &str, frames: &[Vec<u8>]) -> Result<(), BenchError> {
    let Some((last, before)) = frames.split_last() else {
        return Err(BenchError::Run(format!("{side}: no frames to check")));
    };
    passes_unchanged(p, side, before)?;
    let (ret, out) = p.run_out(last).map_err(|e| run_error(side, e))?;
    let tcp = out.get(14 + 20..14 + 40).unwrap_or_default();
    if ret != 0 || tcp.len() < 20 || tcp[13] & tcp_flags::RST == 0 {
        return Err(BenchError::Run(format!(
            "{side}: the segment that breaks the diode was not turned into a RST"
        )));
    }
    Ok(())
}

/// The gate of an `http_response` view (module docs): `stream` passes,
/// and after a good response, a bad body is reset.
fn gate_http(p: &LoadedProgram, side: &str, stream: &[u8], port: u16) -> Result<(), BenchError> {
    passes_unchanged(p, side, &stream_frames(port, stream))?;
    let mut good = response_head(MIN_BODY);
    good.extend(json_body(MIN_BODY));
    let mut bad = response_head(BAD_BODY.len());
    bad.extend_from_slice(BAD_BODY);
    let frames = frames_of(port + 1, [&good[..], &bad[..]].into_iter());
    resets_last(p, side, &frames[..3])
}

/// One diode timed in the rounds: one round's mean ns per data segment.
type Side<'a> = Box<dyn FnMut() -> Result<f64, BenchError> + 'a>;

/// Compiles the diodes with `lagic` into `work`, gates them and times
/// `rounds` rounds of one flow of `segments` data segments each per diode.
pub fn run(
    lagic: &Path,
    work: &Path,
    rounds: usize,
    segments: usize,
) -> Result<StreamBench, BenchError> {
    let stream_obj = work.join("hateless_stream.lagic.o");
    let packet_obj = work.join("hateless.stream-bench.o");
    tools::compile_spec(lagic, &tools::stream_example_spec("hateless"), &stream_obj)?;
    tools::compile_spec(lagic, &tools::example_spec("hateless"), &packet_obj)?;
    let stream = load_object(&stream_obj)?;
    let packet = load_object(&packet_obj)?;
    let mut first_port = 30_000u16;
    gate(&stream, &packet, &mut first_port, segments)?;
    let total = segments * SEGMENT;
    let mut views = Vec::new();
    for (name, max_body) in HTTP_VIEWS {
        let obj = work.join(format!("{name}.stream-bench.o"));
        tools::compile_spec(lagic, &tools::stream_example_spec(name), &obj)?;
        let program = load_object(&obj)?;
        let (bytes, responses, body) = http_stream(total, max_body);
        gate_http(&program, name, &bytes, first_port)?;
        first_port += 2;
        views.push((name, program, bytes, responses, body));
    }
    // Every stream diode's flow is new (its own port); the flow map persists.
    let port = std::cell::Cell::new(first_port);
    let next_port = || {
        let p = port.get();
        port.set(p.wrapping_add(1).max(first_port));
        p
    };
    let text = clean_text();
    let (syn, fin) = (
        std::cell::RefCell::new(Vec::new()),
        std::cell::RefCell::new(Vec::new()),
    );
    let mut sides: Vec<Side<'_>> = vec![
        Box::new(|| {
            let frames = flow_frames(next_port(), &text, segments);
            let [data, syn_ns, fin_ns] = time_flow(&stream, "stream hateless", &frames)?;
            syn.borrow_mut().push(syn_ns);
            fin.borrow_mut().push(fin_ns);
            Ok(data)
        }),
        Box::new(|| {
            let frames = flow_frames(30_000, &text, segments);
            Ok(time_flow(&packet, "hateless", &frames)?[0])
        }),
    ];
    for (name, program, bytes, ..) in &views {
        sides.push(Box::new(|| {
            Ok(time_flow(program, name, &stream_frames(next_port(), bytes))?[0])
        }));
    }
    let times = rotate(rounds, &mut sides)?;
    let http = views
        .iter()
        .zip(&times[2..])
        .map(|((name, _, bytes, responses, body), ns)| HttpViewBench {
            spec: format!("examples/stream/{name}.json"),
            responses: *responses,
            body: *body,
            segments: bytes.len().div_ceil(SEGMENT),
            ns: measure::median(ns.clone()),
            vs_stream: Ratio::per_round(ns, &times[0]),
            vs_packet: Ratio::per_round(ns, &times[1]),
        })
        .collect();
    drop(sides);
    Ok(StreamBench {
        segment: SEGMENT,
        segments,
        rounds,
        stream_ns: measure::median(times[0].clone()),
        packet_ns: measure::median(times[1].clone()),
        ratio: Ratio::per_round(&times[0], &times[1]),
        stream_syn_ns: measure::median(syn.into_inner()),
        stream_fin_ns: measure::median(fin.into_inner()),
        http,
    })
}

/// Runs every side once per round, round `r` starting with side `r` (mod
/// the sides), so no diode always runs first or after the same one;
/// returns each side's values in round order.
fn rotate(rounds: usize, sides: &mut [Side<'_>]) -> Result<Vec<Vec<f64>>, BenchError> {
    let n = sides.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            times[i].push(sides[i]()?);
        }
    }
    Ok(times)
}

impl StreamBench {
    /// The section of BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        format!(
            "\n## Stream mode: run time per segment (`BPF_PROG_TEST_RUN`, ns)\n\n\
             One flow per round and diode: a SYN, {} data segments of {} bytes of clean text, \
             a FIN, each segment its own run with the flow map persisting (a stream diode cannot \
             repeat a segment: the repeat is behind the next expected byte). Mean ns per data \
             segment, median of {} alternated rounds.\n\n\
             | diode | ns per {}-byte segment | stream / per-packet (min-max) |\n\
             |---|---:|---:|\n\
             | `examples/stream/hateless.json` | {:.0} | {} |\n\
             | `examples/hateless.json` (per packet) | {:.0} | |\n\n\
             The stream diode's SYN (creating the flow's entry) took {:.0} ns and its FIN {:.0} ns.\n",
            self.segments,
            self.segment,
            self.rounds,
            self.segment,
            self.stream_ns,
            self.ratio.show(2),
            self.packet_ns,
            self.stream_syn_ns,
            self.stream_fin_ns,
        ) + &self.http_markdown()
    }

    /// The `http_response` views' rows (nothing before they were timed).
    fn http_markdown(&self) -> String {
        if self.http.is_empty() {
            return String::new();
        }
        let mut md = format!(
            "\nThe `http_response` views in the same rounds, each on one flow of HTTP responses \
             (the enclave's header block with `Content-Length`, a JSON body of escaped quotes \
             and brackets in a string), cut into {}-byte segments:\n\n\
             | view | flow | ns per segment | / stream `hateless` | / per-packet `hateless` |\n\
             |---|---|---:|---:|---:|\n",
            self.segment
        );
        for h in &self.http {
            let flow = if h.responses == 1 {
                format!("1 response, {}-byte body", h.body)
            } else {
                format!("{} responses, bodies up to {} bytes", h.responses, h.body)
            };
            md.push_str(&format!(
                "| `{}` | {}, {} segments | {:.0} | {} | {} |\n",
                h.spec,
                flow,
                h.segments,
                h.ns,
                h.vs_stream.show(2),
                h.vs_packet.show(2)
            ));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of a frame built by [`flow_frames`] (IPv4, TCP without options).
    fn payload(frame: &[u8]) -> &[u8] {
        &frame[14 + 20 + 20..]
    }

    fn seq(frame: &[u8]) -> u32 {
        u32::from_be_bytes(frame[38..42].try_into().unwrap())
    }

    #[test]
    fn a_timed_flow_is_consecutive_clean_text() {
        let frames = flow_frames(30_000, &clean_text(), 70);
        assert_eq!(frames.len(), 72);
        let mut stream = Vec::new();
        for pair in frames.windows(2) {
            let step = seq(&pair[1]).wrapping_sub(seq(&pair[0]));
            let expect = if pair[0][14 + 20 + 13] & tcp_flags::SYN != 0 {
                1
            } else {
                SEGMENT as u32
            };
            assert_eq!(step, expect);
        }
        for f in &frames[1..71] {
            assert_eq!(payload(f).len(), SEGMENT);
            stream.extend_from_slice(payload(f));
        }
        assert!(
            !stream.windows(4).any(|w| w.eq_ignore_ascii_case(b"hate")),
            "the timed stream must pass the stream diode"
        );
        assert!(payload(&frames[0]).is_empty() && payload(&frames[71]).is_empty());
    }

    #[test]
    fn the_section_renders_the_numbers() {
        let b = StreamBench {
            segment: SEGMENT,
            segments: 70,
            rounds: 9,
            stream_ns: 1390.4,
            packet_ns: 480.2,
            ratio: Ratio {
                median: 2.9,
                min: 2.7,
                max: 4.6,
            },
            stream_syn_ns: 3968.0,
            stream_fin_ns: 158.0,
            http: Vec::new(),
        };
        // Results written before the section existed still load, and
        // BENCHMARKS.md gets the section once a run records it.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results.json");
        let text = std::fs::read_to_string(&path).unwrap();
        // The committed results load and render whether their stream
        // section holds the http views (a run since they were timed) or
        // not (one before).
        let committed: crate::report::Results = serde_json::from_str(&text).unwrap();
        if let Some(s) = &committed.stream {
            assert_eq!(s.markdown().contains("http_response"), !s.http.is_empty());
            assert!(crate::report::markdown(&committed, "").contains(&s.markdown()));
        }
        // The committed results, as a run before the section wrote them.
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        old.as_object_mut()
            .expect("results are an object")
            .remove("stream");
        let mut results: crate::report::Results = serde_json::from_value(old).unwrap();
        assert!(!crate::report::markdown(&results, "").contains("## Stream mode"));
        results.stream = Some(b.clone());
        assert!(crate::report::markdown(&results, "").contains(&b.markdown()));
        let md = b.markdown();
        assert!(
            md.contains("| `examples/stream/hateless.json` | 1390 | 2.90 (2.70-4.60) |"),
            "{md}"
        );
        assert!(
            md.contains("| `examples/hateless.json` (per packet) | 480 | |"),
            "{md}"
        );
        assert!(md.contains("70 data segments of 1448 bytes"), "{md}");
        assert!(!md.contains("http_response"), "{md}");

        // With the http views: their rows follow, and the results load
        // back with them.
        let mut with = b.clone();
        with.http = vec![HttpViewBench {
            spec: "examples/stream/http_json_depth.json".into(),
            responses: 1,
            body: 101_263,
            segments: 70,
            ns: 5123.4,
            vs_stream: Ratio {
                median: 3.5,
                min: 3.1,
                max: 4.0,
            },
            vs_packet: Ratio {
                median: 11.0,
                min: 10.0,
                max: 12.25,
            },
        }];
        let md = with.markdown();
        assert!(md.starts_with(&b.markdown()), "{md}");
        assert!(
            md.contains(
                "| `examples/stream/http_json_depth.json` | 1 response, 101263-byte body, \
                 70 segments | 5123 | 3.50 (3.10-4.00) | 11.00 (10.00-12.25) |"
            ),
            "{md}"
        );
        results.stream = Some(with.clone());
        let back: crate::report::Results =
            serde_json::from_str(&serde_json::to_string(&results).unwrap()).unwrap();
        assert!(crate::report::markdown(&back, "").contains(&md));
    }

    /// The responses of a stream from [`http_stream`]: (header block, body).
    fn responses(mut s: &[u8]) -> Vec<(String, &[u8])> {
        let mut out = Vec::new();
        while !s.is_empty() {
            let end = s.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = std::str::from_utf8(&s[..end]).unwrap().to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            out.push((head, &s[end..end + len]));
            s = &s[end + len..];
        }
        out
    }

    /// Greatest bracket nesting outside JSON strings.
    fn depth(body: &[u8]) -> usize {
        let (mut d, mut max, mut string, mut escape) = (0usize, 0, false, false);
        for &c in body {
            match (string, escape, c) {
                (true, true, _) => escape = false,
                (true, false, b'\\') => escape = true,
                (true, false, b'"') => string = false,
                (true, ..) => {}
                (false, _, b'"') => string = true,
                (false, _, b'{' | b'[') => {
                    d += 1;
                    max = max.max(d);
                }
                (false, _, b'}' | b']') => d -= 1,
                _ => {}
            }
        }
        assert_eq!((d, string), (0, false), "an unbalanced body");
        max
    }

    #[test]
    fn the_http_flows_are_whole_json_responses_that_fill_the_segments() {
        let total = 70 * SEGMENT;
        for (name, max_body) in HTTP_VIEWS {
            let (s, n, longest) = http_stream(total, max_body);
            assert_eq!(s.len(), total, "{name}");
            let rs = responses(&s);
            assert_eq!(rs.len(), n, "{name}");
            assert_eq!(rs.iter().map(|r| r.1.len()).max(), Some(longest));
            for (head, body) in &rs {
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
                assert!(!head.to_ascii_lowercase().contains("transfer-encoding"));
                assert!(max_body.is_none_or(|m| body.len() <= m), "{name}");
                assert_eq!(body[0], b'{');
                assert_eq!(depth(body), 2, "{name}");
                assert!(body.windows(2).any(|w| w == b"\\\""), "escaped quotes");
            }
            match max_body {
                None => assert!(n == 1 && longest > 100_000, "{name}: {longest}"),
                Some(_) => assert!(n > 1, "{name}"),
            }
            let frames = stream_frames(30_000, &s);
            assert_eq!(frames.len(), 72);
            let data: Vec<u8> = frames[1..71]
                .iter()
                .flat_map(|f| payload(f).to_vec())
                .collect();
            assert_eq!(data, s);
        }
        // The gate's bad body breaks every view.
        assert_ne!(BAD_BODY[0], b'{');
        assert_ne!(BAD_BODY[0], b'[');
        assert_eq!(depth(BAD_BODY), 3);
    }
}
