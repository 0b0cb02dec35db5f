//! End to end: HTTP responses through a real veth, with no diode, with
//! lagic's hateless, with the clang baseline, and with the netfilter string
//! match (`iptables -m string --algo kmp --icase --string hate -j DROP`) on
//! the same host-side veth.
//!
//! Set-up: a lab of the lagic-lab crate, of the benchmark's own kind
//! ([`LabKind::Bench`]: namespace `lagicb-e2e`, veth `lbh-e2e` (172.30.99.1/24)
//! <-> `lbe-e2e` (172.30.99.11/24)), so it never collides with a `lagic lab`
//! of any name; offloads as the kernel sets them (TSO/GSO on, so the diode
//! sees large non-linear skbs). Its enclave is this binary's `serve` mode,
//! listening at 172.30.99.11:8080; the load generator runs in the host
//! namespace, so every response byte enters the host through `lbh-e2e`
//! ingress, where the diode and the iptables INPUT rule sit. The lab is
//! removed by `Lab`'s `Drop`, also on error, and a crashed run's leftovers
//! are removed before the next one starts. Request counts and time are
//! bounded. Every request goes through the lab's HTTP client
//! ([`lagic_lab::http`]).
//!
//! Server paths: `/health`, `/bytes/N` (N bytes of clean text), `/split` (a
//! body whose "hate" is split across two TCP segments: "...ha", a pause,
//! "te..."), `/large` (120 KB of clean text with "hate" in the last kilobyte).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lagic_lab::{http, Enclave, LabKind, LabNames, Subnet, UpRequest};
use serde::{Deserialize, Serialize};

use crate::BenchError;

/// The benchmark lab's name (its kind gives it prefixes of its own).
const LAB_NAME: &str = "e2e";
const SUBNET: &str = "172.30.99.0/24";
const CLEAN: &[u8] = b"once upon a time there was a little frog who liked the garden; ";
const LARGE: usize = 120_000;
const LOAD_THREADS: usize = 4;
/// Interleaved rounds per filter and response size.
const E2E_ROUNDS: usize = 4;

/// What the end-to-end part needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The lagic binary (for `attach` / `detach`).
    pub lagic: PathBuf,
    /// lagic's hateless object.
    pub lagic_obj: PathBuf,
    /// clang's hateless object.
    pub clang_obj: PathBuf,
    /// lagic's stream hateless (`examples/stream/hateless.json`), measured
    /// as the filter `stream` when present.
    pub stream_obj: Option<PathBuf>,
    /// lagic's object for the block list of [`WIRE_WORDS`] words, for the
    /// per-packet comparison with iptables ([`crate::wire`]); that part is
    /// skipped without it.
    pub blocklist_obj: Option<PathBuf>,
    /// Seconds per filter and response size (split over interleaved rounds).
    pub seconds: f64,
}

/// Throughput of one configuration at one response size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// `none`, `lagic`, `clang`, `iptables`.
    pub filter: String,
    /// Response body bytes.
    pub body: usize,
    /// Completed requests per second.
    pub rps: f64,
    /// Response bytes per second, in MB (10^6).
    pub mb_per_s: f64,
    /// Requests that failed or timed out.
    pub failures: u64,
    /// Per-round fraction of the no-filter throughput in the same round
    /// (median, min, max; absent in older results).
    #[serde(default)]
    pub of_none: crate::measure::Ratio,
}

/// Whether a filter lets a response through.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeakCheck {
    /// The filter.
    pub filter: String,
    /// The split-word response arrived whole ("hate" across two segments).
    pub split_word_through: bool,
    /// The 120 KB response with "hate" in its last KB arrived whole.
    pub large_through: bool,
    /// A clean 120 KB response arrived whole (it must).
    pub clean_large_through: bool,
}

/// The end-to-end results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct E2eResult {
    /// Throughput rows.
    pub throughput: Vec<Throughput>,
    /// Leak checks.
    pub leaks: Vec<LeakCheck>,
    /// Throughput under keep-alive (nginx and wrk, [`crate::keepalive`]);
    /// empty when they were not installed or in older results.
    #[serde(default)]
    pub keepalive: Vec<Throughput>,
    /// Why the keep-alive part did not run, if it did not.
    #[serde(default)]
    pub keepalive_error: Option<String>,
    /// Per packet through the veth: diodes against iptables string rules
    /// ([`crate::wire`]); absent in older results.
    #[serde(default)]
    pub per_packet: Option<crate::wire::WireResult>,
    /// Why the per-packet part did not run, if it did not.
    #[serde(default)]
    pub per_packet_error: Option<String>,
}

impl E2eResult {
    fn get(&self, filter: &str, body: usize) -> Option<&Throughput> {
        self.throughput
            .iter()
            .find(|t| t.filter == filter && t.body == body)
    }

    /// The smallest fraction of the no-filter throughput (MB/s) that lagic
    /// keeps over the measured sizes.
    pub fn worst_diode_fraction(&self) -> f64 {
        self.throughput
            .iter()
            .filter(|t| t.filter == "lagic")
            .filter_map(|t| self.get("none", t.body).map(|n| t.mb_per_s / n.mb_per_s))
            .fold(f64::INFINITY, f64::min)
    }

    /// Rows of BENCHMARKS.md's table of targets (issue 13, item 4 and the
    /// block-list target on the wire): what, measured, met.
    pub fn target_rows(&self) -> Vec<(String, String, bool)> {
        let mut rows = Vec::new();
        let keepalive = |filter: &str, body: usize| {
            self.keepalive
                .iter()
                .find(|t| t.filter == filter && t.body == body)
        };
        for (filter, what) in [("lagic", "per-packet"), ("stream", "stream")] {
            if let Some(t) = keepalive(filter, 100_000) {
                rows.push((
                    format!("keep-alive, 100 KB: {what} hateless >= 90% of no filter's requests/s"),
                    format!("{:.0}%", t.of_none.median * 100.0),
                    t.of_none.median >= 0.9 && t.failures == 0,
                ));
            }
            let sizes: Vec<String> = self
                .keepalive
                .iter()
                .filter(|t| t.filter == filter)
                .filter_map(|t| {
                    let ipt = keepalive("iptables", t.body)?;
                    Some(format!(
                        "{} B: {:.0}% vs {:.0}%",
                        t.body,
                        t.of_none.median * 100.0,
                        ipt.of_none.median * 100.0
                    ))
                })
                .collect();
            if !sizes.is_empty() {
                let ahead = self
                    .keepalive
                    .iter()
                    .filter(|t| t.filter == filter)
                    .all(|t| {
                        keepalive("iptables", t.body)
                            .is_some_and(|i| t.of_none.median > i.of_none.median)
                    });
                rows.push((
                    format!("keep-alive: {what} hateless ahead of iptables string at every size"),
                    sizes.join("; "),
                    ahead,
                ));
            }
        }
        if let Some(p) = &self.per_packet {
            for r in p.rows.iter().filter(|r| {
                r.filter.starts_with("iptables")
                    && r.filter.ends_with(&format!("{} rules", p.words))
            }) {
                rows.push((
                    format!(
                        "per packet on the veth: lagic >= 100x faster than {} (what each filter adds)",
                        r.filter
                    ),
                    format!("{:.0}x", r.added_of_diode.median),
                    r.added_of_diode.median >= 100.0,
                ));
            }
        }
        rows
    }

    /// The end-to-end section of BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        // `--keepalive-only` measures no one-request-per-connection load.
        if !self.throughput.is_empty() || !self.leaks.is_empty() {
            s.push_str(
            "## End to end through a veth (HTTP, 4 client threads, one request per connection)\n\n",
        );
            s.push_str("% of no filter: the median of per-round fractions (min-max over the rounds); older results: the ratio of totals.\n\n| filter | body B | requests/s | MB/s | % of no filter | failed |\n|---|---:|---:|---:|---:|---:|\n");
            for t in &self.throughput {
                let base = if t.of_none.max > 0.0 {
                    format!(
                        "{:.0}% ({:.0}-{:.0}%)",
                        t.of_none.median * 100.0,
                        t.of_none.min * 100.0,
                        t.of_none.max * 100.0
                    )
                } else {
                    let total = self
                        .get("none", t.body)
                        .map(|n| t.mb_per_s / n.mb_per_s * 100.0)
                        .unwrap_or(0.0);
                    format!("{total:.0}%")
                };
                s.push_str(&format!(
                    "| {} | {} | {:.0} | {:.1} | {base} | {} |\n",
                    t.filter, t.body, t.rps, t.mb_per_s, t.failures
                ));
            }
            s.push_str(
                "\nWhat gets through (\"LEAKS\" = a response carrying `hate` arrived whole):\n\n",
            );
            s.push_str("| filter | split word (\"ha\" + \"te\" in two segments) | `hate` in the last KB of 120 KB | clean 120 KB |\n|---|---|---|---|\n");
            let word = |through: bool| if through { "LEAKS" } else { "blocked" };
            for l in &self.leaks {
                s.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    l.filter,
                    word(l.split_word_through),
                    word(l.large_through),
                    if l.clean_large_through {
                        "arrives"
                    } else {
                        "**blocked**"
                    }
                ));
            }
        }
        s.push_str(&format!(
            "\n### Under keep-alive (nginx, wrk: {} threads, {} connections)\n\n",
            crate::keepalive::WRK_THREADS,
            crate::keepalive::WRK_CONNECTIONS
        ));
        if let Some(why) = &self.keepalive_error {
            s.push_str(&format!("Not measured: {why}\n"));
        } else {
            s.push_str("% of no filter: the median of per-round fractions (min-max over the rounds).\n\n| filter | body B | requests/s | MB/s | % of no filter | failed |\n|---|---:|---:|---:|---:|---:|\n");
            for t in &self.keepalive {
                s.push_str(&format!(
                    "| {} | {} | {:.0} | {:.1} | {} | {} |\n",
                    t.filter,
                    t.body,
                    t.rps,
                    t.mb_per_s,
                    if t.filter == "none" {
                        "-".to_string()
                    } else {
                        format!(
                            "{:.0}% ({:.0}-{:.0}%)",
                            t.of_none.median * 100.0,
                            t.of_none.min * 100.0,
                            t.of_none.max * 100.0
                        )
                    },
                    t.failures
                ));
            }
        }
        if let Some(p) = &self.per_packet {
            s.push('\n');
            s.push_str(&p.markdown());
        } else if let Some(why) = &self.per_packet_error {
            s.push_str(&format!(
                "\n### Per packet through the veth\n\nNot measured: {why}\n"
            ));
        }
        s
    }
}

fn sh(program: &str, args: &[&str]) -> Result<(), BenchError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| BenchError::io(&format!("running {program}"), e))?;
    if !out.status.success() {
        return Err(BenchError::Tool {
            what: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// The benchmark's lab with its server; removed on drop.
struct Lab {
    names: LabNames,
    server: SocketAddr,
    lagic: PathBuf,
    iptables_rule: bool,
}

/// The administrator's alternative on `iface`, tagged with a comment so a
/// crashed run's rule is recognisable.
fn ipt(action: &str, iface: &str) -> Result<(), BenchError> {
    sh(
        "iptables",
        &[
            action,
            "INPUT",
            "-i",
            iface,
            "-p",
            "tcp",
            "-m",
            "string",
            "--algo",
            "kmp",
            "--icase",
            "--string",
            "hate",
            "-m",
            "comment",
            "--comment",
            "lagic-bench",
            "-j",
            "DROP",
        ],
    )
}

impl Lab {
    fn up(lagic: PathBuf) -> Result<Self, BenchError> {
        let names = LabNames::of(LabKind::Bench, LAB_NAME)?;
        let subnet = Subnet::parse(SUBNET)?;
        // Leftovers of a crashed run go first: they are the benchmark's own (its
        // kind's prefixes), never a `lagic lab`.
        let _ = ipt("-D", &names.host_if);
        lagic_lab::down(LabKind::Bench, LAB_NAME)?;
        let exe =
            std::env::current_exe().map_err(|e| BenchError::io("locating the bench binary", e))?;
        let server = subnet.enclave_addr();
        lagic_lab::up(
            &UpRequest {
                kind: LabKind::Bench,
                name: LAB_NAME.into(),
                subnet,
                // The filters are switched below, one at a time.
                diode: None,
                enclave: Enclave::Program {
                    program: exe,
                    args: vec!["serve".into(), server.to_string()],
                },
            },
            &mut |line| eprintln!("lagic-bench: lab: {line}"),
        )?;
        Ok(Self {
            names,
            server,
            lagic,
            iptables_rule: false,
        })
    }

    fn set_filter(&mut self, filter: &str, cfg: &Config) -> Result<(), BenchError> {
        self.clear_filter();
        match filter {
            "none" => Ok(()),
            "lagic" | "clang" | "stream" => {
                let obj = match filter {
                    "lagic" => cfg.lagic_obj.to_string_lossy(),
                    "clang" => cfg.clang_obj.to_string_lossy(),
                    _ => cfg
                        .stream_obj
                        .as_deref()
                        .ok_or_else(|| BenchError::Setup("no stream object to attach".into()))?
                        .to_string_lossy(),
                };
                let mut args = vec!["attach", &obj, "--iface", &self.names.host_if];
                // lagic attaches only objects it wrote unless told otherwise;
                // the clang baseline is ours and trusted.
                if filter == "clang" {
                    args.push("--allow-foreign-object");
                }
                sh(&self.lagic.to_string_lossy(), &args)
            }
            "iptables" => {
                ipt("-I", &self.names.host_if)?;
                self.iptables_rule = true;
                Ok(())
            }
            other => Err(BenchError::Setup(format!("unknown filter {other}"))),
        }
    }

    fn clear_filter(&mut self) {
        let _ = Command::new(&self.lagic)
            .args(["detach", "--iface", &self.names.host_if])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if self.iptables_rule {
            let _ = ipt("-D", &self.names.host_if);
            self.iptables_rule = false;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.clear_filter();
        if let Err(e) = lagic_lab::down(LabKind::Bench, &self.names.name) {
            eprintln!("lagic-bench: removing the lab: {e}");
        }
    }
}

/// GETs `path` from the server; the body if the whole response arrived,
/// with status 200, within `timeout`.
fn fetch(server: SocketAddr, path: &str, timeout: Duration) -> Option<Vec<u8>> {
    match http::get(server, path, timeout) {
        Ok(http::Reply::Complete(r)) if r.status == 200 => Some(r.body),
        _ => None,
    }
}

fn throughput(server: SocketAddr, body: usize, seconds: f64) -> (u64, u64, u64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..LOAD_THREADS)
        .map(|_| {
            let (stop, done, bytes, failed) =
                (stop.clone(), done.clone(), bytes.clone(), failed.clone());
            std::thread::spawn(move || {
                let path = format!("/bytes/{body}");
                // Bounded: at most 200,000 requests per thread.
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match fetch(server, &path, Duration::from_secs(2)) {
                        Some(b) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        elapsed,
    )
}

/// The filters of `cfg`: no filter, lagic's per-packet and (when compiled)
/// stream hateless, the clang baseline, the iptables string match.
pub fn filters(cfg: &Config) -> Vec<&'static str> {
    let mut filters = vec!["none", "lagic"];
    if cfg.stream_obj.is_some() {
        filters.push("stream");
    }
    filters.extend(["clang", "iptables"]);
    filters
}

/// The keep-alive load alone (for working on the wire: perf, counters),
/// with `only` restricting the filters (`none` is always measured: every
/// fraction is of its throughput in the same round), `bodies` the response
/// sizes (none: all) and `seconds` each wrk run's length (none: as in the
/// whole run).
pub fn keepalive_only(
    cfg: &Config,
    only: &[String],
    bodies: &[usize],
    seconds: Option<f64>,
) -> Result<E2eResult, BenchError> {
    let mut filters = filters(cfg);
    if !only.is_empty() {
        if let Some(unknown) = only.iter().find(|f| !filters.contains(&f.as_str())) {
            return Err(BenchError::Setup(format!(
                "unknown filter {unknown} (known: {})",
                filters.join(", ")
            )));
        }
        filters.retain(|f| *f == "none" || only.iter().any(|o| o == f));
    }
    let mut lab = Lab::up(cfg.lagic.clone())?;
    let bodies = if bodies.is_empty() {
        &KEEPALIVE_BODIES[..]
    } else {
        bodies
    };
    let seconds = seconds.unwrap_or((cfg.seconds / E2E_ROUNDS as f64).max(1.0));
    let keepalive = keepalive_rounds(&mut lab, cfg, &filters, bodies, seconds)?;
    drop(lab);
    Ok(E2eResult {
        throughput: Vec::new(),
        leaks: Vec::new(),
        keepalive,
        keepalive_error: None,
        per_packet: None,
        per_packet_error: None,
    })
}

/// Runs the end-to-end part.
pub fn run(cfg: &Config) -> Result<E2eResult, BenchError> {
    let mut lab = Lab::up(cfg.lagic.clone())?;
    let filters = filters(cfg);
    let bodies = [1_000usize, 100_000];
    // Short rounds, every other one in reverse order, so drift in machine
    // load hits every filter alike.
    let mut totals: Vec<(String, usize, u64, u64, u64, f64)> = Vec::new();
    // Per filter and body: requests/s of each round, in round order.
    let mut rounds: Vec<(String, usize, Vec<f64>)> = Vec::new();
    for round in 0..E2E_ROUNDS {
        let order: Vec<&str> = if round % 2 == 0 {
            filters.clone()
        } else {
            filters.iter().rev().copied().collect()
        };
        for filter in order {
            lab.set_filter(filter, cfg)?;
            for body in bodies {
                let (n, b, f, t) = throughput(lab.server, body, cfg.seconds / E2E_ROUNDS as f64);
                eprintln!(
                    "lagic-bench: e2e {filter} {body} B: {:.0} req/s, {:.1} MB/s, {f} failed",
                    n as f64 / t,
                    b as f64 / t / 1e6
                );
                match rounds.iter_mut().find(|x| x.0 == filter && x.1 == body) {
                    Some(x) => x.2.push(n as f64 / t),
                    None => rounds.push((filter.to_string(), body, vec![n as f64 / t])),
                }
                match totals.iter_mut().find(|x| x.0 == filter && x.1 == body) {
                    Some(x) => {
                        x.2 += n;
                        x.3 += b;
                        x.4 += f;
                        x.5 += t;
                    }
                    None => totals.push((filter.to_string(), body, n, b, f, t)),
                }
            }
        }
    }
    let throughput = totals
        .into_iter()
        .map(|(filter, body, n, b, f, t)| {
            let per_round = |name: &str| {
                rounds
                    .iter()
                    .find(|x| x.0 == name && x.1 == body)
                    .map(|x| x.2.clone())
                    .unwrap_or_default()
            };
            let of_none = crate::measure::Ratio::per_round(&per_round(&filter), &per_round("none"));
            Throughput {
                filter,
                body,
                rps: n as f64 / t,
                mb_per_s: b as f64 / t / 1e6,
                failures: f,
                of_none,
            }
        })
        .collect();
    let mut leaks = Vec::new();
    for &filter in &filters {
        lab.set_filter(filter, cfg)?;
        let timeout = Duration::from_secs(3);
        let check = LeakCheck {
            filter: filter.to_string(),
            split_word_through: fetch(lab.server, "/split", timeout).is_some(),
            large_through: fetch(lab.server, "/large", timeout).is_some(),
            clean_large_through: fetch(lab.server, &format!("/bytes/{LARGE}"), timeout).is_some(),
        };
        eprintln!("lagic-bench: e2e {check:?}");
        leaks.push(check);
    }
    let (keepalive, keepalive_error) = if crate::keepalive::available() {
        match keepalive_rounds(
            &mut lab,
            cfg,
            &filters,
            &KEEPALIVE_BODIES,
            (cfg.seconds / E2E_ROUNDS as f64).max(1.0),
        ) {
            Ok(rows) => (rows, None),
            Err(e) => {
                eprintln!("lagic-bench: e2e keep-alive: {e}");
                (Vec::new(), Some(e.to_string()))
            }
        }
    } else {
        (
            Vec::new(),
            Some("nginx or wrk not installed (scripts/bench installs them)".to_string()),
        )
    };
    let (per_packet, per_packet_error) = match &cfg.blocklist_obj {
        Some(obj) => {
            let filters = wire_filters(obj, &cfg.lagic_obj);
            let iface = lab.names.host_if.clone();
            crate::wire::remove_chain(&iface);
            let result = wire_payload().and_then(|payload| {
                per_packet_in(
                    &mut lab,
                    &filters,
                    &payload,
                    WIRE_WORDS,
                    WIRE_ROUNDS,
                    (cfg.seconds / 8.0).max(0.5),
                )
            });
            crate::wire::remove_chain(&iface);
            match result {
                Ok(r) => (Some(r), None),
                Err(e) => {
                    eprintln!("lagic-bench: e2e per packet: {e}");
                    (None, Some(e.to_string()))
                }
            }
        }
        None => (None, Some("no block-list object".to_string())),
    };
    lab.clear_filter();
    drop(lab);
    Ok(E2eResult {
        throughput,
        leaks,
        keepalive,
        keepalive_error,
        per_packet,
        per_packet_error,
    })
}

/// Words in the block list of the per-packet comparison (issue 13's
/// target is stated at 1,000 rules).
pub const WIRE_WORDS: usize = 1_000;
/// Alternated rounds of the per-packet comparison.
const WIRE_ROUNDS: usize = 3;

/// The per-packet comparison's filters: no filter, lagic's block list of
/// [`WIRE_WORDS`] words, the same words as iptables string rules (Boyer-Moore
/// and Knuth-Morris-Pratt, case-insensitive), and for scale lagic's
/// hateless against one `hate` rule.
pub fn wire_filters(blocklist_obj: &Path, hateless_obj: &Path) -> Vec<crate::wire::WireFilter> {
    use crate::wire::WireFilter;
    let words = crate::blocklist::words(WIRE_WORDS);
    vec![
        WireFilter::None,
        WireFilter::Diode {
            name: format!("lagic, {WIRE_WORDS} words"),
            object: blocklist_obj.to_path_buf(),
        },
        WireFilter::Iptables {
            name: format!("iptables bm, {WIRE_WORDS} rules"),
            algo: "bm",
            words: words.clone(),
        },
        WireFilter::Iptables {
            name: format!("iptables kmp, {WIRE_WORDS} rules"),
            algo: "kmp",
            words,
        },
        WireFilter::Diode {
            name: "lagic hateless".into(),
            object: hateless_obj.to_path_buf(),
        },
        WireFilter::Iptables {
            name: "iptables kmp, 1 rule (hate)".into(),
            algo: "kmp",
            words: vec![b"hate".to_vec()],
        },
    ]
}

/// The per-packet payload: [`crate::blocklist::PAYLOAD`] bytes of text no
/// word of the list occurs in (nor `hate`), so every filter reads all of it.
pub fn wire_payload() -> Result<Vec<u8>, BenchError> {
    let reference = crate::blocklist::Reference::new(WIRE_WORDS);
    let payload = crate::blocklist::timing_payload(&reference);
    let hate = payload
        .to_ascii_lowercase()
        .windows(4)
        .any(|w| w == b"hate");
    if !reference.passes(&payload) || hate {
        return Err(BenchError::Setup(format!(
            "the per-packet payload holds a word of the {WIRE_WORDS}-word list or `hate`"
        )));
    }
    Ok(payload)
}

/// Per filter and body: requests/s per round, MB/s per round, failures.
type KeepaliveRounds = (String, usize, Vec<f64>, Vec<f64>, u64);

/// Response sizes of the keep-alive load.
const KEEPALIVE_BODIES: [usize; 3] = [1_000, 10_000, 100_000];

/// The keep-alive load: nginx in the lab's namespace, wrk from the host,
/// filters alternated round by round as in [`run`].
fn keepalive_rounds(
    lab: &mut Lab,
    cfg: &Config,
    filters: &[&str],
    bodies: &[usize],
    seconds: f64,
) -> Result<Vec<Throughput>, BenchError> {
    let nginx =
        crate::keepalive::Nginx::start(&lab.names.netns, lab.server.ip(), bodies, clean_body)?;
    let mut rounds: Vec<KeepaliveRounds> = Vec::new();
    for round in 0..E2E_ROUNDS {
        let order: Vec<&str> = if round % 2 == 0 {
            filters.to_vec()
        } else {
            filters.iter().rev().copied().collect()
        };
        for filter in order {
            lab.set_filter(filter, cfg)?;
            for &body in bodies {
                let url = format!("http://{}/{body}.txt", nginx.addr);
                let run = crate::keepalive::wrk(&url, body, seconds)?;
                eprintln!(
                    "lagic-bench: e2e keep-alive {filter} {body} B: {:.0} req/s, {:.1} MB/s, {} failed",
                    run.rps, run.mb_per_s, run.failures
                );
                match rounds.iter_mut().find(|x| x.0 == filter && x.1 == body) {
                    Some(x) => {
                        x.2.push(run.rps);
                        x.3.push(run.mb_per_s);
                        x.4 += run.failures;
                    }
                    None => rounds.push((
                        filter.to_string(),
                        body,
                        vec![run.rps],
                        vec![run.mb_per_s],
                        run.failures,
                    )),
                }
            }
        }
    }
    lab.clear_filter();
    drop(nginx);
    let per_round = |name: &str, body: usize| {
        rounds
            .iter()
            .find(|x| x.0 == name && x.1 == body)
            .map(|x| x.2.clone())
            .unwrap_or_default()
    };
    Ok(rounds
        .iter()
        .map(|(filter, body, rps, mbs, failures)| Throughput {
            filter: filter.clone(),
            body: *body,
            rps: crate::measure::median(rps.clone()),
            mb_per_s: crate::measure::median(mbs.clone()),
            failures: *failures,
            of_none: crate::measure::Ratio::per_round(rps, &per_round("none", *body)),
        })
        .collect())
}

fn clean_body(len: usize) -> Vec<u8> {
    CLEAN.iter().copied().cycle().take(len).collect()
}

fn respond(mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 2048];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 || req.len() > 16384 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let head = |len: usize| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    if path == "/health" {
        s.write_all(head(2).as_bytes())?;
        s.write_all(b"ok")?;
    } else if path == "/split" {
        // "ha" ends the first segment, "te" opens the second: no segment holds the word.
        let first = b"The diode must judge this: I ha";
        let second = b"te bananas, said the model.";
        s.set_nodelay(true)?;
        s.write_all(head(first.len() + second.len()).as_bytes())?;
        s.write_all(first)?;
        s.flush()?;
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(second)?;
    } else if path == "/large" {
        let mut body = clean_body(LARGE);
        let at = LARGE - 500;
        body[at..at + 4].copy_from_slice(b"HaTe");
        s.write_all(head(body.len()).as_bytes())?;
        s.write_all(&body)?;
    } else if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let body = clean_body(n.min(10_000_000));
        s.write_all(head(body.len()).as_bytes())?;
        s.write_all(&body)?;
    } else {
        s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    }
    let _ = s.shutdown(Shutdown::Write);
    Ok(())
}

/// The server side: one thread per connection, one response per connection.
pub fn serve(addr: &str) -> Result<(), BenchError> {
    let listener =
        TcpListener::bind(addr).map_err(|e| BenchError::io(&format!("binding {addr}"), e))?;
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = respond(stream);
        });
    }
    Ok(())
}

/// The iptables chain of the block-list part (its own, so a crashed run's
/// rules are recognisable and removed).
const BLOCKLIST_CHAIN: &str = "LAGICB-BLOCKLIST";

/// One block-list size end to end: requests/s of responses of
/// [`crate::blocklist::PAYLOAD`] bytes with each filter that loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlocklistPoint {
    /// Words in the list.
    pub k: usize,
    /// `none`, `lagic`, `clang`, `iptables`, with requests/s.
    pub rps: Vec<(String, f64)>,
    /// Per-round ratio of each filter's requests/s to `none`'s in the same
    /// round, for every filter but `none`.
    pub of_none: Vec<(String, crate::measure::Ratio)>,
    /// Requests that failed or timed out, per filter.
    pub failures: Vec<(String, u64)>,
}

/// Removes the block-list chain and its jump, if there.
fn remove_blocklist_chain(iface: &str) {
    let quiet = |args: &[&str]| {
        let _ = Command::new("iptables")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    quiet(&[
        "-D",
        "INPUT",
        "-i",
        iface,
        "-p",
        "tcp",
        "-j",
        BLOCKLIST_CHAIN,
    ]);
    quiet(&["-F", BLOCKLIST_CHAIN]);
    quiet(&["-X", BLOCKLIST_CHAIN]);
}

/// Installs one `-m string --algo bm --icase` DROP rule per word in the
/// block-list chain, jumped to from INPUT on `iface`, in one
/// `iptables-restore --noflush` (one `iptables` call per rule would take
/// minutes for 10,000).
fn install_blocklist_chain(iface: &str, words: &[Vec<u8>]) -> Result<(), BenchError> {
    let mut rules = format!("*filter\n:{BLOCKLIST_CHAIN} - [0:0]\n");
    for w in words {
        rules.push_str(&format!(
            "-A {BLOCKLIST_CHAIN} -m string --algo bm --icase --string {} -j DROP\n",
            String::from_utf8_lossy(w)
        ));
    }
    rules.push_str(&format!(
        "-I INPUT -i {iface} -p tcp -j {BLOCKLIST_CHAIN}\nCOMMIT\n"
    ));
    crate::tools::iptables_restore(
        &rules,
        &format!("iptables-restore of {} rules", words.len()),
    )
}

/// One block-list size to measure end to end: the list and the objects
/// that loaded.
#[derive(Debug, Clone)]
pub struct BlocklistCase {
    /// Words in the list.
    pub k: usize,
    /// lagic's object, when lagic compiled and the kernel loaded it.
    pub lagic_obj: Option<PathBuf>,
    /// The C baseline's object, when it loaded.
    pub clang_obj: Option<PathBuf>,
}

/// The block lists end to end: for each case, responses of
/// [`crate::blocklist::PAYLOAD`] bytes (clean text no word of the list
/// occurs in, checked) with no filter, lagic's and the C baseline's
/// object where they loaded, and one iptables string rule per word; the
/// filters alternate round by round, every other round in reverse order.
pub fn blocklist(
    lagic: PathBuf,
    cases: &[BlocklistCase],
    seconds: f64,
) -> Result<Vec<BlocklistPoint>, BenchError> {
    let mut lab = Lab::up(lagic.clone())?;
    let iface = lab.names.host_if.clone();
    remove_blocklist_chain(&iface);
    // The chain goes on every path out, errors included.
    let result = blocklist_in(&mut lab, &iface, lagic, cases, seconds);
    remove_blocklist_chain(&iface);
    drop(lab);
    result
}

fn blocklist_in(
    lab: &mut Lab,
    iface: &str,
    lagic: PathBuf,
    cases: &[BlocklistCase],
    seconds: f64,
) -> Result<Vec<BlocklistPoint>, BenchError> {
    let body = crate::blocklist::PAYLOAD;
    let rounds = 2;
    let mut points = Vec::new();
    for case in cases {
        let reference = crate::blocklist::Reference::new(case.k);
        if !reference.passes(&clean_body(body)) {
            return Err(BenchError::Setup(format!(
                "the clean response body holds a word of the {}-word list",
                case.k
            )));
        }
        let mut filters = vec!["none"];
        if case.lagic_obj.is_some() {
            filters.push("lagic");
        }
        if case.clang_obj.is_some() {
            filters.push("clang");
        }
        filters.push("iptables");
        let cfg = Config {
            lagic: lagic.clone(),
            lagic_obj: case.lagic_obj.clone().unwrap_or_default(),
            clang_obj: case.clang_obj.clone().unwrap_or_default(),
            stream_obj: None,
            blocklist_obj: None,
            seconds,
        };
        // per filter: per-round rps, failures
        let mut per_round: Vec<(String, Vec<f64>, u64)> = filters
            .iter()
            .map(|f| (f.to_string(), Vec::new(), 0))
            .collect();
        for round in 0..rounds {
            let order: Vec<&str> = if round % 2 == 0 {
                filters.clone()
            } else {
                filters.iter().rev().copied().collect()
            };
            for filter in order {
                if filter == "iptables" {
                    lab.clear_filter();
                    install_blocklist_chain(iface, &crate::blocklist::words(case.k))?;
                } else {
                    lab.set_filter(filter, &cfg)?;
                }
                let (n, _, f, t) = throughput(lab.server, body, seconds / rounds as f64);
                if filter == "iptables" {
                    remove_blocklist_chain(iface);
                }
                eprintln!(
                    "lagic-bench: block list {} words, {filter}: {:.0} req/s, {f} failed",
                    case.k,
                    n as f64 / t
                );
                let slot = per_round
                    .iter_mut()
                    .find(|x| x.0 == filter)
                    .expect("every filter has a slot");
                slot.1.push(n as f64 / t);
                slot.2 += f;
            }
        }
        lab.clear_filter();
        let none = per_round[0].1.clone();
        points.push(BlocklistPoint {
            k: case.k,
            rps: per_round
                .iter()
                .map(|(f, v, _)| (f.clone(), crate::measure::median(v.clone())))
                .collect(),
            of_none: per_round[1..]
                .iter()
                .map(|(f, v, _)| (f.clone(), crate::measure::Ratio::per_round(v, &none)))
                .collect(),
            failures: per_round.iter().map(|(f, _, n)| (f.clone(), *n)).collect(),
        });
    }
    Ok(points)
}

/// Per packet through the veth ([`crate::wire`]): for `rounds` rounds, each
/// filter of `filters` in turn (every other round reversed), one sender
/// for `seconds` writing segments of `payload`. The first filter must be
/// [`crate::wire::WireFilter::None`]; ratios are to the first diode in `filters`.
pub fn per_packet(
    lagic: PathBuf,
    filters: &[crate::wire::WireFilter],
    payload: &[u8],
    words: usize,
    rounds: usize,
    seconds: f64,
) -> Result<crate::wire::WireResult, BenchError> {
    use crate::wire::{self, WireFilter};
    if !matches!(filters.first(), Some(WireFilter::None)) {
        return Err(BenchError::Setup(
            "per packet: the first filter must be none".into(),
        ));
    }
    let mut lab = Lab::up(lagic)?;
    let iface = lab.names.host_if.clone();
    wire::remove_chain(&iface);
    // The chain goes on every path out, errors included.
    let result = per_packet_in(&mut lab, filters, payload, words, rounds, seconds);
    wire::remove_chain(&iface);
    lab.clear_filter();
    drop(lab);
    result
}

fn per_packet_in(
    lab: &mut Lab,
    filters: &[crate::wire::WireFilter],
    payload: &[u8],
    words: usize,
    rounds: usize,
    seconds: f64,
) -> Result<crate::wire::WireResult, BenchError> {
    use crate::wire::{self, WireFilter};
    let iface = lab.names.host_if.clone();
    let mac_path = format!("/sys/class/net/{iface}/address");
    let host_mac = std::fs::read_to_string(&mac_path)
        .map_err(|e| BenchError::io(&format!("reading {mac_path}"), e))?;
    let subnet = Subnet::parse(SUBNET)?;
    let (host_ip, enclave_ip) = (subnet.host(), subnet.enclave());
    let payload_file =
        std::env::temp_dir().join(format!("lagic-bench-wire-{}.bin", std::process::id()));
    std::fs::write(&payload_file, payload)
        .map_err(|e| BenchError::io("writing the sender's payload", e))?;
    // Per filter: ns per packet of each round, sent, lost, CPU ns per packet.
    let mut per_round: Vec<(Vec<f64>, u64, u64, Vec<f64>)> =
        vec![(Vec::new(), 0, 0, Vec::new()); filters.len()];
    let outcome = (|| -> Result<(), BenchError> {
        for round in 0..rounds {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..filters.len()).collect()
            } else {
                (0..filters.len()).rev().collect()
            };
            for i in order {
                lab.clear_filter();
                wire::remove_chain(&iface);
                match &filters[i] {
                    WireFilter::None => wire::install_chain(&iface, None)?,
                    WireFilter::Diode { object, .. } => {
                        wire::install_chain(&iface, None)?;
                        sh(
                            &lab.lagic.to_string_lossy(),
                            &["attach", &object.to_string_lossy(), "--iface", &iface],
                        )?;
                    }
                    WireFilter::Iptables { algo, words, .. } => {
                        wire::install_chain(&iface, Some((algo, words)))?
                    }
                }
                let blast = wire::run_blast(
                    &lab.names.netns,
                    &lab.names.enclave_if,
                    host_mac.trim(),
                    enclave_ip,
                    host_ip,
                    &payload_file,
                    seconds,
                )?;
                // Frames still in a backlog are counted within moments.
                std::thread::sleep(Duration::from_millis(50));
                let counted = wire::counted()?;
                let ns = blast.elapsed.as_nanos() as f64 / blast.sent as f64;
                eprintln!(
                    "lagic-bench: per packet {}: {:.0} packets/s, {ns:.0} ns/packet, {} of {} counted",
                    filters[i].name(),
                    1e9 / ns,
                    counted,
                    blast.sent
                );
                let slot = &mut per_round[i];
                slot.0.push(ns);
                slot.1 += blast.sent;
                slot.2 += blast.sent.saturating_sub(counted);
                slot.3.push(blast.cpu.as_nanos() as f64 / blast.sent as f64);
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&payload_file);
    outcome?;
    let none = per_round[0].0.clone();
    let added = |ns: &[f64]| -> Vec<f64> { ns.iter().zip(&none).map(|(a, n)| a - n).collect() };
    let diode = filters
        .iter()
        .position(|f| matches!(f, WireFilter::Diode { .. }));
    let rows = filters
        .iter()
        .zip(&per_round)
        .map(|(f, (ns, sent, lost, cpu))| {
            let (of_diode, added_of_diode) = match diode {
                Some(d) if !matches!(f, WireFilter::None) => (
                    crate::measure::Ratio::per_round(ns, &per_round[d].0),
                    crate::measure::Ratio::per_round(&added(ns), &added(&per_round[d].0)),
                ),
                _ => Default::default(),
            };
            let ns_median = crate::measure::median(ns.clone());
            wire::WireRow {
                filter: f.name().to_string(),
                pps: 1e9 / ns_median,
                ns_per_packet: ns_median,
                cpu_ns_per_packet: crate::measure::median(cpu.clone()),
                added_ns: crate::measure::median(added(ns)),
                of_diode,
                added_of_diode,
                lost: *lost,
                sent: *sent,
            }
        })
        .collect();
    Ok(wire::WireResult {
        payload: payload.len(),
        words,
        rounds,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Ratio;

    fn row(filter: &str, body: usize, of_none: f64) -> Throughput {
        Throughput {
            filter: filter.into(),
            body,
            rps: 1.0,
            mb_per_s: 1.0,
            failures: 0,
            of_none: Ratio {
                median: of_none,
                min: of_none,
                max: of_none,
            },
        }
    }

    fn wire_row(filter: &str, added_x: f64) -> crate::wire::WireRow {
        crate::wire::WireRow {
            filter: filter.into(),
            pps: 1.0,
            ns_per_packet: 1.0,
            cpu_ns_per_packet: 1.0,
            added_ns: 1.0,
            of_diode: Ratio::default(),
            added_of_diode: Ratio {
                median: added_x,
                min: added_x,
                max: added_x,
            },
            lost: 0,
            sent: 1,
        }
    }

    #[test]
    fn target_rows_say_what_is_met_and_what_is_not() {
        let result = E2eResult {
            throughput: Vec::new(),
            leaks: Vec::new(),
            keepalive: vec![
                row("none", 1_000, 1.0),
                row("none", 100_000, 1.0),
                row("lagic", 1_000, 0.95),
                row("lagic", 100_000, 0.91),
                // Behind iptables at 1 KB, short of 90% at 100 KB.
                row("stream", 1_000, 0.5),
                row("stream", 100_000, 0.6),
                row("iptables", 1_000, 0.8),
                row("iptables", 100_000, 0.3),
            ],
            keepalive_error: None,
            per_packet: Some(crate::wire::WireResult {
                payload: 1_400,
                words: 1_000,
                rounds: 1,
                rows: vec![
                    wire_row("iptables bm, 1000 rules", 450.0),
                    wire_row("iptables kmp, 1000 rules", 90.0),
                    wire_row("iptables kmp, 1 rule (hate)", 1.0),
                ],
            }),
            per_packet_error: None,
        };
        let rows = result.target_rows();
        let met = |what: &str| {
            rows.iter()
                .find(|(w, _, _)| w.contains(what))
                .unwrap_or_else(|| panic!("no row for {what}: {rows:?}"))
                .2
        };
        assert!(met("100 KB: per-packet"));
        assert!(!met("100 KB: stream"));
        assert!(met("per-packet hateless ahead"));
        assert!(!met("stream hateless ahead"));
        assert!(met("iptables bm, 1000 rules"));
        assert!(!met("iptables kmp, 1000 rules"));
        // The one-rule row is context, not a target.
        assert!(!rows.iter().any(|(w, _, _)| w.contains("1 rule")));
        // Without the one-request-per-connection load (--keepalive-only),
        // no empty table of it; the keep-alive and per-packet ones are there.
        let md = result.markdown();
        assert!(!md.contains("one request per connection"), "{md}");
        assert!(md.contains("| stream | 100000 |"), "{md}");
        assert!(md.contains("| iptables bm, 1000 rules |"), "{md}");
    }
}
