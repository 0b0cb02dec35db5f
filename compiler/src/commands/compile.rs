//! `lagic compile SPEC -o OUT`.

use super::shared;
use crate::cli::CompileArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: CompileArgs) -> Result<Outcome, Failure> {
    let spec = shared::read_spec(&args.spec)?;
    let program = shared::lower_spec(&args.spec, &spec)?;
    let options = emit_bpf::Options {
        excerpt: args.excerpt,
    };
    let object = emit_bpf::compile_object_with(&program, &options).map_err(|e| {
        Failure::failed(format!(
            "{}: cannot be compiled: {e}",
            io::display(&args.spec)
        ))
    })?;
    io::write_output(&args.output, &object)?;
    Ok(Outcome::Success)
}
