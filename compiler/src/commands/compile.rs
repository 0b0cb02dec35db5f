//! `lagic compile SPEC -o OUT`: lower, emit, validate (unless
//! `--no-validate`), then write. A validation failure is a failed check
//! (exit 1) and nothing is written.

use super::shared;
use crate::cli::CompileArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: CompileArgs) -> Result<Outcome, Failure> {
    let spec = shared::read_spec(&args.spec)?;
    let options = emit_bpf::Options {
        excerpt: args.excerpt,
    };
    let object = shared::compile_spec(&args.spec, &spec, &options, !args.no_validate)?;
    io::write_output(&args.output, &object)?;
    Ok(Outcome::Success)
}
