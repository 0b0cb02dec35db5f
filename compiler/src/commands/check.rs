//! `lagic check SPEC`: validate, lower and generate code, write nothing.

use super::shared;
use crate::cli::CheckArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: CheckArgs) -> Result<Outcome, Failure> {
    let spec = shared::read_spec(&args.spec)?;
    let cannot = |e: &dyn std::fmt::Display| {
        Failure::failed(format!(
            "{}: cannot be compiled: {e}",
            io::display(&args.spec)
        ))
    };
    let (program, module, at_fin) = if spec.mode == predicate_ir::Mode::Packet {
        let program = shared::lower_spec(&args.spec, &spec)?;
        let module = emit_bpf::compile(&program).map_err(|e| cannot(&e))?;
        (program, module, None)
    } else {
        let stream = shared::lower_stream_spec(&args.spec, &spec)?;
        let (module, _) =
            emit_bpf::compile_stream_mapped_with(&stream, &emit_bpf::Options::default())
                .map_err(|e| cannot(&e))?;
        (stream.program, module, Some((stream.complete, stream.http)))
    };
    let policy = &spec.policy;
    use std::fmt::Write as _;
    let mut report = String::new();
    // Name and description come from the spec: one line each, whatever they contain.
    let _ = writeln!(
        report,
        "spec {} ok: {}",
        io::escape_controls(&spec.name, false),
        io::escape_controls(&spec.description, false)
    );
    let _ = writeln!(
        report,
        "policy: arp {:?}, ipv6_nd {:?}, other_ip {:?}, non_ip {:?}",
        policy.arp, policy.ipv6_nd, policy.other_ip, policy.non_ip
    );
    let http = at_fin.as_ref().and_then(|(_, http)| http.as_deref());
    if let predicate_ir::Mode::Stream(predicate_ir::StreamView::HttpResponse { headers }) =
        &spec.mode
    {
        let _ = writeln!(report, "view: http_response, each header block and body");
        let _ = writeln!(report, "headers: {headers}");
        let _ = writeln!(report, "body: {}", spec.predicate);
        let _ = write!(report, "header blocks: {program}");
    } else {
        let _ = writeln!(report, "predicate: {}", spec.predicate);
        let _ = write!(report, "{program}");
    }
    if let Some(http) = http {
        // Each body is judged by its own program; the framing DFA splits
        // the stream (docs/stream.md, "The `http_response` view in the kernel").
        let _ = write!(report, "bodies: {}", http.body.program);
        let _ = writeln!(
            report,
            "framing: dfa, {} states; at each header block's end: {}; at each body's end: {}",
            http.frame.dfa.next.len(),
            at_fin
                .as_ref()
                .map(|(c, _)| c.to_string())
                .unwrap_or_default(),
            http.body.complete
        );
        let _ = writeln!(
            report,
            "stream: per flow in map {} ({} flows, never evicted); at FIN: after a complete response",
            emit_bpf::STREAM_FLOWS_MAP,
            emit_bpf::STREAM_FLOWS_MAX
        );
    } else if let Some((complete, _)) = at_fin {
        // A stream diode judges each flow's bytes so far with the formula
        // above (windows count stream offsets) and a FIN with this one.
        let _ = writeln!(
            report,
            "stream: per flow in map {} ({} flows, never evicted); at FIN: {complete}",
            emit_bpf::STREAM_FLOWS_MAP,
            emit_bpf::STREAM_FLOWS_MAX
        );
    }
    let callback_insns: usize = module.callbacks.iter().map(|c| c.slot_count()).sum();
    let _ = writeln!(
        report,
        "emits: program {} ({} instructions) with {} scan callback(s) ({} instructions)",
        module.entry.name,
        module.entry.slot_count(),
        module.callbacks.len(),
        callback_insns
    );
    io::print_out(&report)?;
    Ok(Outcome::Success)
}
