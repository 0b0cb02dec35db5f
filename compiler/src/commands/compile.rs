//! `lagic compile SPEC -o OUT`.

use crate::cli::CompileArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: CompileArgs) -> Result<Outcome, Failure> {
    let spec = super::read_spec(&args.spec)?;
    let program = super::lower_spec(&args.spec, &spec)?;
    let object = super::emit(&args.spec, &program)?;
    io::write_output(&args.output, &object)?;
    Ok(Outcome::Success)
}
