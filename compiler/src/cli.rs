//! Command-line syntax (clap). Behaviour lives in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes (each command's --help lists its own):
  0  success (object written, spec valid, verdict PASS, diode attached or detached)
  1  a verdict or check that failed: verdict DROP or RESET; a valid spec that lagic cannot
     emit, or whose object fails translation validation; detach finding nothing attached;
     lab status finding a lab down or unhealthy
  2  bad input or usage (unreadable or invalid file, bad flag, program refused by the kernel),
     or an environment error (not root, no such interface, bpffs or netlink failures, output
     that cannot be written)

Files:
  -o PATH writes a new temporary file beside PATH (exclusive, random name, never through a
  symlink) and renames it over PATH: on error PATH is untouched. A symlink at PATH is replaced
  itself; a device node, FIFO or socket at PATH is refused (use -o - > PATH to write into one).
  Inputs: regular files, FIFOs and pipes, or - for stdin; a FIFO with no writer for 10 s is an
  error, and device nodes are refused unopened (- < PATH reads one). Output that cannot be
  written (full disk, closed stdout) is exit 2.

Examples:
  lagic compile examples/hateless.json -o hateless.o
  lagic check examples/json_depth.json
  lagic disasm hateless.o
  sudo lagic run hateless.o --payload 'I hate bananas'
  sudo lagic attach hateless.o --iface veth0 --direction ingress
  sudo lagic status
  sudo lagic watch --iface veth0 --json
  sudo lagic dashboard                          (then open http://127.0.0.1:8501/)
  sudo lagic lab up --diode hateless.o
  sudo lagic lab up --vm --diode hateless.o      (after vm/build)";

const COMPILE_HELP: &str = "\
Exit codes:
  0  the object is written
  1  a valid spec that lagic cannot emit, or an object that fails translation validation
     (nothing is written)
  2  bad input: an unreadable or invalid spec, a bad flag, or an output that cannot be written
     (an existing OUT is left untouched)

Examples:
  lagic compile examples/hateless.json -o hateless.o
  lagic compile examples/stream/hateless.json --flows 4096 -o stream.o
  lagic compile - -o - < examples/minimal.json > minimal.o";

const CHECK_HELP: &str = "\
Exit codes:
  0  the spec is valid and lagic can emit it (the summary is on standard output)
  1  a valid spec that lagic cannot emit (beyond its limits; the message says which)
  2  an unreadable or invalid spec (the message names the JSON path)

Example:
  lagic check examples/json_depth.json";

const DISASM_HELP: &str = "\
Exit codes:
  0  the instructions are printed
  2  an unreadable file, or not an object lagic wrote

Example:
  lagic disasm hateless.o | head -20";

const RUN_HELP: &str = "\
Exit codes:
  0  PASS
  1  DROP, or RESET (a stream diode turned the segment into a RST)
  2  bad input (an unreadable or invalid diode, a bad payload), not root, or a program the
     kernel refused

Examples:
  sudo lagic run hateless.o --payload 'I hate bananas'
  sudo lagic run examples/json_start.json --payload-hex 7b7d --ipv6
  sudo lagic run examples/stream/hateless.json --payload 'I hate it'";

const ATTACH_HELP: &str = "\
Exit codes:
  0  the diode is in place, read back from the kernel
  2  bad input or environment: not root, no such interface, an invalid diode, one the verifier
     refuses (an attached diode stays in place), an object lagic did not write (without
     --allow-foreign-object), a pin lock held by another process

Examples:
  sudo lagic attach hateless.o --iface veth0
  sudo lagic attach examples/printable64.json --iface veth0 --direction egress --mode clsact";

const DETACH_HELP: &str = "\
Exit codes:
  0  the diode is detached and its pins removed (or only stale pins were left: removed)
  1  no lagic diode is attached there (`lagic status` lists attachments)
  2  not root, a bad --netns, or bpffs or netlink failures

Examples:
  sudo lagic detach --iface veth0
  sudo lagic detach --iface eth1 --direction egress --netns blue      (an `ip netns` name)";

const STATUS_HELP: &str = "\
Exit codes:
  0  the list is printed (also when nothing is attached)
  2  not root, or bpffs failures

Examples:
  sudo lagic status
  sudo lagic status --json";

const WATCH_HELP: &str = "\
Exit codes:
  0  ended by Ctrl-C (SIGINT) or by a closed standard output
  2  no lagic diode attached (on --iface), none that records decisions, not root, a --spec
     that cannot be read, or a --tee file that cannot be written

Examples:
  sudo lagic watch --iface veth0
  sudo lagic watch --json --tee /run/lagic-decisions.jsonl";

const DASHBOARD_HELP: &str = "\
Exit codes:
  0  ended by Ctrl-C or SIGTERM
  2  a bad flag, no enclave address, no attached diode or several (pick one with --iface),
     an address already in use, or not root

Examples:
  sudo lagic dashboard                          (with a lab up; then open http://127.0.0.1:8501/)
  sudo lagic dashboard --enclave http://172.30.0.11:8080 --iface veth0 --listen 127.0.0.1:8502";

const LAB_UP_HELP: &str = "\
Exit codes:
  0  the lab is up
  2  not root, a bad name or subnet, a name or subnet already in use, an invalid diode or one
     the verifier refuses, an enclave that does not start (nothing is left behind)

Examples:
  sudo lagic lab up --diode examples/hateless.json
  sudo lagic lab up --name two --subnet 172.30.1.0/24 --diode hateless.o
  sudo lagic lab up --vm --diode hateless.o      (after vm/build)";

const LAB_DOWN_HELP: &str = "\
Exit codes:
  0  everything the lab had is removed (or there was nothing to remove)
  2  not root, or a bad name

Example:
  sudo lagic lab down --name two";

const LAB_STATUS_HELP: &str = "\
Exit codes:
  0  every lab asked about is up
  1  a lab is down or degraded, or none is up
  2  not root

Examples:
  sudo lagic lab status
  sudo lagic lab status --name main --json";

/// Compile formally specified content predicates into kernel-verified eBPF diodes.
///
/// A spec (JSON, format v1 or v2: docs/spec-format.md) says which TCP payloads may
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
    #[command(after_help = COMPILE_HELP)]
    Compile(CompileArgs),
    /// Validate a spec and summarize the program lagic would emit; writes nothing.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Print the instructions of an object that lagic wrote.
    #[command(after_help = DISASM_HELP)]
    Disasm(DisasmArgs),
    /// Run one TCP packet carrying a payload through a diode in the kernel
    /// (BPF_PROG_TEST_RUN; needs root) and print PASS, DROP or, for a stream
    /// diode, RESET (the segment turned into a RST).
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Attach a diode to a network interface as a TC classifier (needs root).
    ///
    /// Uses TCX where the kernel has it (Linux 6.6+), a clsact filter
    /// otherwise, and pins the attachment on the host's bpffs under
    /// /sys/fs/bpf/lagic/netns-INO/IFINDEX/DIRECTION so it outlives this
    /// process. The interface is looked up in lagic's network namespace (use
    /// `nsenter --net=/run/netns/NAME lagic attach ...` for another one).
    /// Where a lagic diode is already attached, the new one replaces it
    /// atomically: no packet passes unfiltered. Succeeds only once the kernel
    /// shows the diode in place.
    #[command(after_help = ATTACH_HELP)]
    Attach(AttachArgs),
    /// Detach the lagic diode from an interface and remove its pins (needs root).
    #[command(after_help = DETACH_HELP)]
    Detach(DetachArgs),
    /// Show the diodes lagic has attached, in every network namespace (needs
    /// root): namespace, interface, direction, diode, program id, since when,
    /// and each diode's verdict counts.
    #[command(after_help = STATUS_HELP)]
    Status(StatusArgs),
    /// Print the drops of attached diodes as they happen (needs root):
    /// one line each, or one JSON object per line with --json
    /// (docs/watch.md). Watches every attached diode unless --iface is
    /// given; ends on Ctrl-C.
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
    /// Serve a page to test the gate (needs root): the attached diode, the
    /// lab, live counters and drops, a prompt sent through the diode, and a
    /// picker that compiles a spec and replaces the diode (docs/dashboard.md).
    /// Ends on Ctrl-C or SIGTERM.
    #[command(after_help = DASHBOARD_HELP)]
    Dashboard(DashboardArgs),
    /// The enclave lab: lagic-enclave in a network namespace behind a veth,
    /// with a diode on the host side (needs root).
    #[command(subcommand)]
    Lab(LabCommand),
}

/// Which way packets cross the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Packets arriving on the interface.
    Ingress,
    /// Packets leaving through the interface.
    Egress,
}

/// How to hook the diode into TC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// TCX where the kernel has it, clsact otherwise.
    Auto,
    /// A TCX bpf_link (Linux 6.6+).
    Tcx,
    /// A direct-action filter under the clsact qdisc.
    Clsact,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Object written by `lagic compile`, or a spec (compiled and validated in memory).
    pub diode: PathBuf,
    /// Interface to attach to.
    #[arg(long, value_name = "IF")]
    pub iface: String,
    /// Direction on the interface.
    #[arg(long, value_enum, default_value = "ingress")]
    pub direction: DirectionArg,
    /// Mode of a new attachment (a replacement keeps the mode in place).
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: ModeArg,
    /// Accept an object that lagic did not write (by default only lagic's own objects load).
    #[arg(long)]
    pub allow_foreign_object: bool,
    /// Skip translation validation of a spec compiled here
    /// (docs/validation.md); an object file is loaded as it is.
    #[arg(long)]
    pub no_validate: bool,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Interface to detach from.
    #[arg(long, value_name = "IF")]
    pub iface: String,
    /// The network namespace of the interface, as `lagic status` shows it: an `ip netns`
    /// name, `net:[INODE]` or the inode (default: lagic's own namespace).
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    /// Direction on the interface.
    #[arg(long, value_enum, default_value = "ingress")]
    pub direction: DirectionArg,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (an array of attachments) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create the lab: a namespace running lagic-enclave at .11:8080, a veth
    /// to the host at .1, and the diode on the host-side veth's ingress.
    #[command(after_help = LAB_UP_HELP)]
    Up(LabUpArgs),
    /// Remove everything `lab up` made (idempotent; safe after a crash).
    #[command(after_help = LAB_DOWN_HELP)]
    Down(LabDownArgs),
    /// Show the lab: namespace, links, enclave process and health, diode.
    #[command(after_help = LAB_STATUS_HELP)]
    Status(LabStatusArgs),
}

#[derive(Debug, Args)]
pub struct LabUpArgs {
    /// The diode: an object written by `lagic compile`, or a spec (compiled and validated in memory).
    #[arg(long, value_name = "OBJ")]
    pub diode: PathBuf,
    /// IPv4 subnet of the veth (host .1, enclave .11).
    #[arg(long, default_value = "172.30.0.0/24")]
    pub subnet: String,
    /// Lab name (1-8 of [a-z0-9-]); namespace, links and state derive from it.
    #[arg(long, default_value = "main")]
    pub name: String,
    /// The lagic-enclave binary (default: next to lagic, then PATH).
    #[arg(long, value_name = "PATH")]
    pub enclave_bin: Option<PathBuf>,
    /// Extra arguments for lagic-enclave (e.g. --enclave-arg=--seed --enclave-arg=7).
    /// With --vm they go on the guest's kernel command line (no spaces or quotes).
    #[arg(long = "enclave-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub enclave_args: Vec<String>,
    /// Run the enclave inside a QEMU VM (kernel and initramfs from `vm/build`), behind a
    /// bridge and tap in the namespace; the diode stays on the host-side veth.
    #[arg(long, conflicts_with = "enclave_bin")]
    pub vm: bool,
    /// The VM's kernel (default: vmlinux in $LAGIC_VM_CACHE or ~/.cache/lagic/vm).
    #[arg(long, value_name = "PATH", requires = "vm")]
    pub kernel: Option<PathBuf>,
    /// The VM's initramfs (default: initramfs.img next to the default kernel).
    #[arg(long, value_name = "PATH", requires = "vm")]
    pub initrd: Option<PathBuf>,
    /// The VM's memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = lagic_lab::vm::DEFAULT_MEMORY_MIB, requires = "vm",
          value_parser = clap::value_parser!(u32).range(96..=65536))]
    pub vm_memory: u32,
    /// How the VM's CPU runs: KVM where it can run a stock kernel, else software emulation.
    #[arg(long, value_enum, default_value = "auto", requires = "vm")]
    pub accel: AccelArg,
    /// Skip translation validation of a spec compiled here
    /// (docs/validation.md); an object file is loaded as it is.
    #[arg(long)]
    pub no_validate: bool,
}

/// The VM's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when usable, else TCG.
    Auto,
    /// Hardware virtualisation (/dev/kvm); an error where unusable.
    Kvm,
    /// QEMU's software emulation (always works, slower).
    Tcg,
}

#[derive(Debug, Args)]
pub struct LabDownArgs {
    /// Lab name.
    #[arg(long, default_value = "main")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LabStatusArgs {
    /// Lab name (default: every lab).
    #[arg(long)]
    pub name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Spec file (JSON, format v1 or v2), or - for standard input.
    pub spec: PathBuf,
    /// Where to write the object, or - for standard output. Written
    /// atomically through a new temporary file: on any error an existing file
    /// is left untouched. Only a regular file or a symlink (replaced itself)
    /// is replaced; a device node or FIFO is refused.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Bytes of payload each drop event carries around the deciding byte
    /// (0 turns excerpts off; see docs/watch.md).
    #[arg(long, value_name = "N", default_value_t = emit_bpf::decision::DEFAULT_EXCERPT,
          value_parser = clap::value_parser!(u32).range(0..=emit_bpf::decision::MAX_EXCERPT as i64))]
    pub excerpt: u32,
    /// Stream specs only: flows (distinct 4-tuples) the diode's flow table
    /// holds, 1 to 4194304 [default: 65536]. Preallocated in the kernel
    /// (about 150 to 300 bytes each); a full table refuses new flows
    /// (docs/stream.md, "The flow table").
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(
              *emit_bpf::STREAM_FLOWS_RANGE.start() as i64..=*emit_bpf::STREAM_FLOWS_RANGE.end() as i64))]
    pub flows: Option<u32>,
    /// Skip translation validation (docs/validation.md): by default the
    /// emitted code is run in an independent interpreter and checked
    /// against the lowered automata before anything is written.
    #[arg(long)]
    pub no_validate: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch only the diodes on this interface.
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// A spec of an attached diode, to name the formula atoms that decide
    /// (matched by program name; repeatable). Without it, atoms are named
    /// from the spec the diode was attached from, if it was one.
    #[arg(long, value_name = "FILE")]
    pub spec: Vec<PathBuf>,
    /// Also append every decision to FILE as one JSON line (the --json
    /// schema), whatever the output format: the feed of `lagic dashboard
    /// --decisions FILE`, so one process reads the ring buffer and both
    /// see every drop. Created if missing; emptied when the next line
    /// would take it past --tee-max-bytes.
    #[arg(long, value_name = "FILE")]
    pub tee: Option<PathBuf>,
    /// The size bound of the --tee file, in bytes (at least 4096).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, requires = "tee",
          value_parser = clap::value_parser!(u64).range(4096..))]
    pub tee_max_bytes: u64,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address and port to serve the page on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8501")]
    pub listen: std::net::SocketAddr,
    /// The lab whose status the page shows; it also gives the enclave and
    /// the interface unless --enclave or --iface do.
    #[arg(long, value_name = "NAME", default_value = "main")]
    pub lab: String,
    /// The enclave's URL (http://HOST:PORT); prompts go there through the diode.
    #[arg(long, value_name = "URL")]
    pub enclave: Option<String>,
    /// The interface whose diode the page shows and replaces (default: the
    /// lab's, else the one attached diode's).
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// The directory of spec files the picker offers (default: ./examples
    /// when there is one, else none: uploads only).
    #[arg(long, value_name = "DIR")]
    pub examples: Option<PathBuf>,
    /// Take the decision feed (and the drops that end a prompt as blocked)
    /// from FILE, the JSON lines of `lagic watch --tee FILE`, instead of
    /// the diode's ring buffer, which has a single reader. Follows FILE
    /// from its end as it grows, and from its start after it is emptied.
    #[arg(long, value_name = "FILE")]
    pub decisions: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Spec file (JSON, format v1 or v2), or - for standard input.
    pub spec: PathBuf,
}

#[derive(Debug, Args)]
pub struct DisasmArgs {
    /// Object file written by `lagic compile`, or - for standard input.
    pub object: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A spec (compiled and validated in memory) or an object written by `lagic compile`;
    /// - reads standard input.
    pub diode: PathBuf,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Carry the payload over IPv6 instead of IPv4.
    #[arg(long)]
    pub ipv6: bool,
    /// Accept an object that lagic did not write (by default only lagic's own objects load).
    #[arg(long)]
    pub allow_foreign_object: bool,
    /// Skip translation validation of a spec compiled here
    /// (docs/validation.md); an object file is loaded as it is.
    #[arg(long)]
    pub no_validate: bool,
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
