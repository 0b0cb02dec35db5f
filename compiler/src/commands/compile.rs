//! `lagic compile SPEC -o OUT`: lower, emit, validate (unless
//! `--no-validate`), then write. A validation failure is a failed check
//! (exit 1) and nothing is written.

use super::shared;
use crate::cli::CompileArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: CompileArgs) -> Result<Outcome, Failure> {
    let spec = shared::read_spec(&args.spec)?;
    let flows = match args.flows {
        Some(_) if spec.mode == predicate_ir::Mode::Packet => {
            return Err(Failure::bad_input(format!(
                "{}: --flows sizes a stream diode's flow table; this spec is per-packet \
                 (\"mode\": \"stream\" makes a stream diode; docs/stream.md)",
                args.spec.display()
            )))
        }
        Some(flows) => flows,
        None => emit_bpf::STREAM_FLOWS_MAX,
    };
    let options = emit_bpf::Options {
        excerpt: args.excerpt,
        flows,
    };
    let object = shared::compile_spec(&args.spec, &spec, &options, !args.no_validate)?;
    io::write_output(&args.output, &object)?;
    Ok(Outcome::Success)
}
