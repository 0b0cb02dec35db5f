//! `lagic run DIODE --payload ...`: one packet through the kernel.

use std::path::Path;

use lagic_frames::{tcp_frame, IpVersion};
use lagic_loader::{LoadError, LoadedProgram, ObjectOrigin, Verdict, MAX_TEST_RUN_FRAME};

use super::shared;
use crate::cli::{PayloadArgs, RunArgs};
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: RunArgs) -> Result<Outcome, Failure> {
    let payload = read_payload(&args.payload)?;
    let version = if args.ipv6 {
        IpVersion::V6
    } else {
        IpVersion::V4
    };
    let frame = tcp_frame(&payload, version);
    if frame.len() > MAX_TEST_RUN_FRAME {
        return Err(Failure::bad_input(format!(
            "payload of {} bytes makes a {}-byte frame; BPF_PROG_TEST_RUN takes at most {} bytes",
            payload.len(),
            frame.len(),
            MAX_TEST_RUN_FRAME
        ))
        .with_hint(
            "larger payloads need real traffic through a veth (see the lab in the README)",
        ));
    }

    let object = shared::diode_object(&args.diode, !args.no_validate)?;
    lagic_loader::bpf_available().map_err(|why| {
        Failure::bad_input(format!("cannot load programs into the kernel: {why}"))
            .with_hint("run as root (CAP_BPF and CAP_SYS_ADMIN), e.g. with sudo")
    })?;
    let origin = if args.allow_foreign_object {
        ObjectOrigin::AnyToolchain
    } else {
        ObjectOrigin::LagicOnly
    };
    let program = LoadedProgram::from_object_with(&object, origin)
        .map_err(|e| load_failure(e, &args.diode))?;
    let result = program
        .run(&frame)
        .map_err(|e| Failure::bad_input(format!("test run failed: {e}")))?;
    match result.verdict {
        Verdict::Pass => {
            io::print_out("PASS\n")?;
            Ok(Outcome::Success)
        }
        Verdict::Drop => {
            io::print_out("DROP\n")?;
            Ok(Outcome::Failed)
        }
    }
}

/// Renders a load error: a malformed or foreign object is bad input, as is a kernel refusal
/// (exit 2 either way); the message says which.
fn load_failure(e: LoadError, diode: &Path) -> Failure {
    let name = io::display(diode);
    match e {
        LoadError::Malformed(_) | LoadError::LoaderPanicked(_) => {
            Failure::bad_input(format!("{name}: {e}"))
                .with_hint("recompile the diode with `lagic compile`")
        }
        LoadError::Foreign => Failure::bad_input(format!("{name}: {e}")).with_hint(
            "pass --allow-foreign-object to load an object from another toolchain that you trust",
        ),
        other => Failure::bad_input(format!("the kernel refused {name}: {other}")),
    }
}

fn read_payload(args: &PayloadArgs) -> Result<Vec<u8>, Failure> {
    if let Some(text) = &args.payload {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(path) = &args.payload_file {
        return io::read_input(path, "payload file", MAX_TEST_RUN_FRAME);
    }
    if let Some(hex) = &args.payload_hex {
        return decode_hex(hex);
    }
    Err(Failure::bad_input("no payload given")
        .with_hint("use --payload, --payload-file or --payload-hex"))
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, Failure> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(Failure::bad_input(format!(
            "--payload-hex has {} hex digits; it needs an even number",
            digits.len()
        )));
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let s = std::str::from_utf8(pair).unwrap_or("??");
            u8::from_str_radix(s, 16).map_err(|_| {
                Failure::bad_input(format!(
                    "--payload-hex: '{s}' at byte {i} is not a hex byte"
                ))
            })
        })
        .collect()
}
