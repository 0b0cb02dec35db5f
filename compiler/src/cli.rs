//! Command-line syntax (clap). Behaviour lives in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes:
  0  success (object written, spec valid, verdict PASS)
  1  a verdict or check that failed (verdict DROP; a valid spec that lagic cannot emit)
  2  bad input or usage (unreadable or invalid file, bad flag, program refused by the kernel)

Examples:
  lagic compile examples/hateless.json -o hateless.o
  lagic check examples/json_depth.json
  lagic disasm hateless.o
  sudo lagic run hateless.o --payload 'I hate bananas'";

/// Compile formally specified content predicates into kernel-verified eBPF diodes.
///
/// A spec (JSON, format v1: docs/spec-format.md) says which TCP payloads may
/// leave an inference enclave. lagic validates it, lowers it to bounded
/// scans and writes an eBPF ELF object: a TC classifier that passes (TC_ACT_OK)
/// packets whose payload satisfies the predicate and drops (TC_ACT_SHOT) the
/// rest, including anything malformed or not fully inspectable.
#[derive(Debug, Parser)]
#[command(name = "lagic", version, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile a spec into an eBPF ELF object (a TC classifier in section "classifier").
    Compile(CompileArgs),
    /// Validate a spec and summarize the program lagic would emit; writes nothing.
    Check(CheckArgs),
    /// Print the instructions of an object that lagic wrote.
    Disasm(DisasmArgs),
    /// Run one TCP packet carrying a payload through a diode in the kernel
    /// (BPF_PROG_TEST_RUN; needs root) and print PASS or DROP.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Spec file (JSON, format v1), or - for standard input.
    pub spec: PathBuf,
    /// Where to write the object, or - for standard output. Written
    /// atomically: on any error an existing file is left untouched.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Spec file (JSON, format v1), or - for standard input.
    pub spec: PathBuf,
}

#[derive(Debug, Args)]
pub struct DisasmArgs {
    /// Object file written by `lagic compile`, or - for standard input.
    pub object: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A spec (compiled in memory) or an object written by `lagic compile`;
    /// - reads standard input.
    pub diode: PathBuf,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Carry the payload over IPv6 instead of IPv4.
    #[arg(long)]
    pub ipv6: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PayloadArgs {
    /// The payload, taken byte for byte as given (UTF-8).
    #[arg(long, value_name = "TEXT")]
    pub payload: Option<String>,
    /// Read the payload from a file (- for standard input).
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// The payload as hexadecimal digits (e.g. 7b22613a).
    #[arg(long, value_name = "HEX")]
    pub payload_hex: Option<String>,
}
