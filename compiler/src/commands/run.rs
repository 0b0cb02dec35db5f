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
            .with_hint("run it as root, e.g. with sudo")
    })?;
    let origin = if args.allow_foreign_object {
        ObjectOrigin::AnyToolchain
    } else {
        ObjectOrigin::LagicOnly
    };
    let program = LoadedProgram::from_object_with(&object, origin)
        .map_err(|e| load_failure(e, &args.diode))?;
    if is_stream_diode(&object) {
        return run_stream(&program, &payload, version);
    }
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

/// Whether `object` is a stream diode: it carries the flow map.
fn is_stream_diode(object: &[u8]) -> bool {
    let name = emit_bpf::STREAM_FLOWS_MAP.as_bytes();
    object.windows(name.len()).any(|w| w == name)
}

/// A stream diode judges flows, not packets: the payload is sent as the
/// only data of a new flow, after its SYN. PASS (0) when it passes, DROP
/// (1) when it is dropped, RESET (1) when the diode turned it into a RST.
fn run_stream(
    program: &LoadedProgram,
    payload: &[u8],
    version: IpVersion,
) -> Result<Outcome, Failure> {
    use lagic_frames::{tcp_flags, Frame};
    const ISN: u32 = 1_000;
    let segment = |seq: u32, flags: u8, payload: &[u8]| match version {
        IpVersion::V4 => Frame::ipv4()
            .tcp()
            .seq(seq)
            .tcp_flags(flags)
            .payload(payload)
            .build(),
        IpVersion::V6 => Frame::ipv6()
            .tcp()
            .seq(seq)
            .tcp_flags(flags)
            .payload(payload)
            .build(),
    };
    let failed = |e: lagic_loader::RunError| Failure::bad_input(format!("test run failed: {e}"));
    let syn = segment(ISN, tcp_flags::SYN | tcp_flags::ACK, b"");
    let (retval, out) = program.run_out(&syn).map_err(failed)?;
    if retval != lagic_loader::testrun::TC_ACT_OK || out != syn {
        return Err(Failure::bad_input(format!(
            "the stream diode did not pass the flow's SYN (return value {retval})"
        )));
    }
    let data = segment(ISN + 1, tcp_flags::PSH | tcp_flags::ACK, payload);
    let (retval, out) = program.run_out(&data).map_err(failed)?;
    let (word, outcome) = match retval {
        lagic_loader::testrun::TC_ACT_OK if out == data => ("PASS", Outcome::Success),
        lagic_loader::testrun::TC_ACT_OK => ("RESET", Outcome::Failed),
        lagic_loader::testrun::TC_ACT_SHOT => ("DROP", Outcome::Failed),
        other => {
            return Err(Failure::bad_input(format!(
                "the diode returned {other}, which is neither TC_ACT_OK (0) nor TC_ACT_SHOT (2)"
            )))
        }
    };
    io::print_out(&format!("{word}\n"))?;
    Ok(outcome)
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
