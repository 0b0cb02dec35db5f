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
        (stream.program, module, Some(stream.complete))
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
    let _ = writeln!(report, "predicate: {}", spec.predicate);
    let _ = write!(report, "{program}");
    if let Some(complete) = at_fin {
        // A stream diode judges each flow's bytes so far with the formula
        // above (windows count stream offsets) and a FIN with this one.
        let _ = writeln!(
            report,
            "stream: per flow in map {} ({} flows, LRU); at FIN: {complete}",
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
