//! `lagic-enclave`: serve text generation over HTTP, make synthetic
//! llama2.c models, or run one completion from the command line.
//!
//! Exit codes: 0 success, 1 runtime failure (for example the address is in
//! use), 2 bad flags or unusable input files.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use lagic_enclave::generator::{GenerationRequest, Generator};
use lagic_enclave::http::{Server, ServerConfig};
use lagic_enclave::init;
use lagic_enclave::llama2::sampler::SamplingParams;
use lagic_enclave::synth::{write_model_dir, SynthSpec};
use lagic_enclave::{EchoGenerator, Llama2Generator};

#[derive(Parser, Debug)]
#[command(
    name = "lagic-enclave",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a synthetic llama2.c model (model.bin, tokenizer.bin) into a directory.
    MakeModel(MakeModelArgs),
    /// Run one completion, print it to stdout and its speed to stderr.
    Complete(CompleteArgs),
    /// Be PID 1 of the enclave VM: mount /proc, /sys, /dev, load the NIC's modules, set
    /// the address from the kernel command line (lagic.ip=A.B.C.D/N), then serve; power
    /// off if serving ends. Refuses to run as any other pid. The initramfs's /init is
    /// this binary, which enters this mode by its name.
    Init,
}

/// Which generator to use and how it samples.
#[derive(Args, Debug)]
struct ModelArgs {
    /// llama2.c checkpoint (model.bin); without it the deterministic echo generator runs.
    #[arg(long, requires = "tokenizer")]
    model: Option<PathBuf>,
    /// llama2.c tokenizer (tokenizer.bin) matching --model.
    #[arg(long, requires = "model")]
    tokenizer: Option<PathBuf>,
    /// Seed of the sampler (and of the echo generator).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    temperature: f32,
    /// Nucleus sampling mass in [0, 1]; 0 or 1 disables it.
    #[arg(long = "top-p", default_value_t = 0.9, allow_negative_numbers = true)]
    top_p: f32,
    /// Threads per forward pass (0: one per available core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl ModelArgs {
    /// The generator to serve, and the llama2 one again (same `Arc`, no
    /// copy of the weights) when there is one, for its statistics.
    fn generator(&self) -> Result<Loaded, String> {
        let params = SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
        };
        params.validate()?;
        match (&self.model, &self.tokenizer) {
            (Some(m), Some(t)) => {
                let g = Llama2Generator::load(m, t, params)
                    .and_then(|g| g.with_threads(self.threads))
                    .map_err(|e| e.to_string())?;
                let g = Arc::new(g);
                Ok((g.clone(), Some(g)))
            }
            _ => Ok((Arc::new(EchoGenerator::new(self.seed)), None)),
        }
    }
}

/// A generator ready to serve, with its llama2 view when it has one.
type Loaded = (Arc<dyn Generator>, Option<Arc<Llama2Generator>>);

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_body: usize,
    /// Connections served at once. When all are taken a newcomer evicts the
    /// connection that has been receiving its request longest.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Extra connections that answer only GET /health while every served
    /// connection is generating (others get 503).
    #[arg(long, default_value_t = 8)]
    health_reserve: usize,
    /// Seconds a client has to send its request head.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    head_timeout: f64,
    /// max_tokens of requests that give none.
    #[arg(long, default_value_t = 64)]
    default_max_tokens: usize,
    /// Generation time limit in seconds (and ceiling of a request's wait_time).
    #[arg(long, default_value_t = 300.0, allow_negative_numbers = true)]
    max_wait: f64,
    /// Do not log requests to stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct MakeModelArgs {
    /// Directory to write model.bin and tokenizer.bin into.
    #[arg(long)]
    out: PathBuf,
    /// Weight seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Residual width.
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Feed-forward width.
    #[arg(long, default_value_t = 176)]
    hidden_dim: usize,
    /// Transformer layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Query heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Key/value heads.
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    /// Context length.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Pad the vocabulary to this many tokens with never-sampled pieces
    /// (0: natural size, about 1,900).
    #[arg(long, default_value_t = 0)]
    vocab_size: usize,
}

#[derive(Args, Debug)]
struct CompleteArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Text to continue.
    #[arg(long, default_value = "Once upon a time")]
    prompt: String,
    /// Tokens to add after the prompt.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
}

fn main() -> ExitCode {
    if std::env::args()
        .next()
        .is_some_and(|a| init::invoked_as_init(&a))
    {
        return vm_init();
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::MakeModel(a)) => make_model(a),
        Some(Command::Complete(a)) => complete(a),
        Some(Command::Init) => vm_init(),
        None => serve(cli.serve),
    }
}

/// PID 1 of the VM: boot, then serve with the arguments the kernel command line gave.
fn vm_init() -> ExitCode {
    let argv = match init::boot() {
        Ok(argv) => argv,
        Err(e @ init::InitError::NotPid1(_)) => {
            eprintln!("lagic-enclave: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("lagic-enclave init: {e}");
            init::halt()
        }
    };
    eprintln!("lagic-enclave init: serving: {}", argv.join(" "));
    match Cli::try_parse_from(&argv) {
        Ok(cli) => {
            // A panic must not end PID 1 (the kernel would panic too): report it, power off.
            let code = std::panic::catch_unwind(|| serve(cli.serve));
            eprintln!("lagic-enclave init: the server ended ({code:?})");
        }
        Err(e) => eprintln!("lagic-enclave init: bad server arguments: {e}"),
    }
    init::halt()
}

fn serve(args: ServeArgs) -> ExitCode {
    let Ok(max_wait) = Duration::try_from_secs_f64(args.max_wait) else {
        eprintln!(
            "lagic-enclave: --max-wait {} is not a usable number of seconds",
            args.max_wait
        );
        return ExitCode::from(2);
    };
    let head_timeout = match Duration::try_from_secs_f64(args.head_timeout) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            eprintln!(
                "lagic-enclave: --head-timeout {} is not a positive number of seconds",
                args.head_timeout
            );
            return ExitCode::from(2);
        }
    };
    if args.max_connections == 0 {
        eprintln!("lagic-enclave: --max-connections must be at least 1");
        return ExitCode::from(2);
    }
    if let Err(e) = args.listen.to_socket_addrs() {
        eprintln!(
            "lagic-enclave: --listen {}: not an address: {e}",
            args.listen
        );
        return ExitCode::from(2);
    }
    let (generator, _) = match args.model.generator() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("lagic-enclave: {e}");
            return ExitCode::from(2);
        }
    };
    let config = ServerConfig {
        max_body: args.max_body,
        max_connections: args.max_connections,
        health_reserve: args.health_reserve,
        head_timeout,
        default_max_tokens: args.default_max_tokens,
        max_wait,
        log_requests: !args.quiet,
        ..ServerConfig::default()
    };
    return_large_buffers_to_the_os();
    let description = generator.describe();
    let server = match Server::bind(&args.listen, generator, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lagic-enclave: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    match server.local_addr() {
        Ok(addr) => eprintln!("lagic-enclave: listening on {addr} (generator: {description})"),
        Err(e) => eprintln!("lagic-enclave: listening (address unknown: {e})"),
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lagic-enclave: server failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Request bodies (up to --max-body) are freed after each request. glibc
/// raises its mmap threshold after freeing a large block, after which such
/// blocks come from the heap and stay resident when freed (hundreds of MB
/// after a burst of large requests); a fixed threshold keeps every block of
/// 1 MiB or more mapped on its own and unmapped when freed.
fn return_large_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // connection thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn make_model(a: MakeModelArgs) -> ExitCode {
    let spec = SynthSpec {
        dim: a.dim,
        hidden_dim: a.hidden_dim,
        n_layers: a.layers,
        n_heads: a.heads,
        n_kv_heads: a.kv_heads,
        seq_len: a.seq_len,
        seed: a.seed,
        vocab_size: a.vocab_size,
    };
    match write_model_dir(&a.out, &spec) {
        Ok((m, t)) => {
            let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "lagic-enclave: wrote {} ({} bytes) and {} ({} bytes)",
                m.display(),
                size(&m),
                t.display(),
                size(&t)
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("lagic-enclave: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("lagic-enclave: cannot write into {}: {e}", a.out.display());
            ExitCode::from(1)
        }
    }
}

fn complete(a: CompleteArgs) -> ExitCode {
    let (generator, llama) = match a.model.generator() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("lagic-enclave: {e}");
            return ExitCode::from(2);
        }
    };
    let request = GenerationRequest::new(&a.prompt, a.max_tokens);
    let result = match &llama {
        Some(l) => l.complete(&request).map(|(text, stats)| {
            let secs = stats.elapsed.as_secs_f64();
            eprintln!(
                "lagic-enclave: {} prompt tokens, {} generated, {} forward passes in {:.3} s: {:.1} tokens/s",
                stats.prompt_tokens,
                stats.generated_tokens,
                stats.forward_passes,
                secs,
                stats.forward_passes as f64 / secs.max(1e-9)
            );
            text
        }),
        None => generator.generate_request(&request),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lagic-enclave: {e}");
            ExitCode::from(2)
        }
    }
}
