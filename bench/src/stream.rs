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
}

/// The frames of one flow to port `port`: SYN, `segments` data segments
/// (the [`SEGMENT`]-byte pieces of `text` in turn, round and round), FIN.
fn flow_frames(port: u16, text: &[u8], segments: usize) -> Vec<Vec<u8>> {
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
    for i in 0..segments {
        let at = (i % (text.len() / SEGMENT)) * SEGMENT;
        frames.push(frame(
            seq,
            tcp_flags::ACK | tcp_flags::PSH,
            &text[at..at + SEGMENT],
        ));
        seq = seq.wrapping_add(SEGMENT as u32);
    }
    frames.push(frame(seq, tcp_flags::FIN | tcp_flags::ACK, b""));
    frames
}

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
    passes_unchanged(stream, "stream hateless (first half)", &frames[..2])?;
    let (ret, out) = stream
        .run_out(&frames[2])
        .map_err(|e| run_error("stream hateless", e))?;
    let tcp = out.get(14 + 20..14 + 40).unwrap_or_default();
    if ret != 0 || tcp.len() < 20 || tcp[13] & tcp_flags::RST == 0 {
        return Err(BenchError::Run(
            "stream hateless: the split word's second half was not turned into a RST".into(),
        ));
    }
    Ok(())
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

/// Compiles both diodes with `lagic` into `work`, gates them and times
/// `rounds` rounds of one flow of `segments` data segments each.
pub fn run(
    lagic: &Path,
    work: &Path,
    rounds: usize,
    segments: usize,
) -> Result<StreamBench, BenchError> {
    let stream_obj = work.join("hateless_stream.lagic.o");
    let packet_obj = work.join("hateless.stream-bench.o");
    tools::compile_spec(
        lagic,
        &tools::workspace_root().join("examples/stream/hateless.json"),
        &stream_obj,
    )?;
    tools::compile_spec(lagic, &tools::example_spec("hateless"), &packet_obj)?;
    let stream = load_object(&stream_obj)?;
    let packet = load_object(&packet_obj)?;
    let mut port = 30_000u16;
    gate(&stream, &packet, &mut port, segments)?;
    let text = clean_text();
    let (mut syn, mut fin) = (Vec::new(), Vec::new());
    let (s, p) = measure::alternate(
        rounds,
        || {
            let frames = flow_frames(port, &text, segments);
            port += 1;
            let [data, syn_ns, fin_ns] = time_flow(&stream, "stream hateless", &frames)?;
            syn.push(syn_ns);
            fin.push(fin_ns);
            Ok::<f64, BenchError>(data)
        },
        || {
            let frames = flow_frames(30_000, &text, segments);
            Ok(time_flow(&packet, "hateless", &frames)?[0])
        },
    )?;
    let ratio = Ratio::per_round(&s, &p);
    Ok(StreamBench {
        segment: SEGMENT,
        segments,
        rounds,
        stream_ns: measure::median(s),
        packet_ns: measure::median(p),
        ratio,
        stream_syn_ns: measure::median(syn),
        stream_fin_ns: measure::median(fin),
    })
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
        )
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
        };
        // Results written before the section existed still load, and
        // BENCHMARKS.md gets the section once a run records it.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results.json");
        let text = std::fs::read_to_string(&path).unwrap();
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
    }
}
