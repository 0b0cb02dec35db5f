//! `lagic`: compile content predicates into eBPF diodes, inspect them, and
//! run packets through them in the kernel.
//!
//! Exit codes (stable, for scripts): 0 success; 1 a verdict or check that
//! failed (DROP, or a valid spec that lagic cannot emit); 2 bad input or
//! usage (unreadable or invalid files, bad flags, kernel refused to load).

mod cli;
mod commands;
mod failure;
mod io;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors
            // to stderr (exit 2), matching our contract.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match commands::dispatch(cli) {
        Ok(code) => code.into(),
        Err(failure) => {
            eprintln!("{failure}");
            failure.exit_code().into()
        }
    }
}
