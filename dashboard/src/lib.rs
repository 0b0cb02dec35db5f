//! The dashboard behind `lagic dashboard`: one page that shows the state of
//! the gate at a glance and lets a person test it.
//!
//! ```text
//!   browser  <--HTTP + server-sent events-->  dashboard (this crate, on the host)
//!                                                |  prompt: TCP from the host to the enclave,
//!                                                |  so the response crosses the diode
//!                                                v
//!                                  diode on IFACE  <==  enclave (lab namespace, VM or container)
//! ```
//!
//! What the page shows, all pushed by server-sent events (`GET /api/events`),
//! never polled by the page: the diode attached to the watched interface,
//! its verdict counters, every drop it records ([`lagic_loader::decisions`])
//! and the lab's status. `POST /api/generate` sends a prompt to the enclave
//! through the diode; when the diode records a drop for that connection's
//! flow (matched by the dashboard's local port), the request ends at once
//! with "blocked" and the drop's reason, offset and excerpt, instead of
//! waiting for a timeout. `POST /api/diode` compiles a spec (one of the
//! examples, or an uploaded one) with the [`SpecCompiler`] the caller gives
//! (`lagic` gives the path of `lagic compile`, validation included) and
//! replaces the diode with the loader's atomic replace.
//!
//! Invariants:
//! - Assets are compiled into the binary (`include_str!`); nothing is fetched
//!   from elsewhere.
//! - Fail closed: no prompt is sent while no active diode sits on the
//!   watched interface; a spec that does not compile or validate leaves the
//!   diode in place; an upload that is not a spec is refused.
//! - Bytes from the enclave (responses, excerpts) reach the page only as
//!   escaped text set with `textContent`, never as markup.
//! - Requests that change state (`POST`) must carry JSON and, when the
//!   browser sends an `Origin`, come from the page's own origin, so another
//!   site open in the same browser cannot replace the diode; and every
//!   request must name an IP address or `localhost` as its `Host`, so a
//!   host name pointed at this address (DNS rebinding) gains nothing.
//! - A ring buffer has one consumer position: without `--decisions`, this
//!   process is the only reader of the diode's ring buffer while it runs,
//!   and a `lagic watch` at the same time takes some of the events. With
//!   [`Options::decisions`] the drops come from the file a `lagic watch
//!   --tee` appends to (`follow`), and the ring buffer is not read here.

mod assets;
mod follow;
mod monitor;
mod prompt;
mod server;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use lagic_loader::attach::{self, Direction, Health};

pub use server::serve;

/// Compiles a spec into an object for the kernel. `lagic` implements it
/// with exactly the path of `lagic compile` (lower, emit, validate).
pub trait SpecCompiler: Send + Sync + 'static {
    /// The object bytes of the spec `bytes` read from `origin` (named in
    /// messages), or why it cannot be compiled, for people.
    fn compile(&self, origin: &str, bytes: &[u8]) -> Result<Vec<u8>, CompileRefused>;
}

/// Why a spec was not compiled: the message for people (what, where, what
/// to do), as `lagic compile` would print it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CompileRefused(pub String);

/// Why the dashboard cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// `--enclave` is not an `http://HOST:PORT` URL.
    #[error("--enclave `{0}`: not an http://HOST[:PORT] URL (e.g. http://172.30.0.11:8080)")]
    BadEnclaveUrl(String),
    /// Neither `--enclave` nor a lab that is up says where the enclave is.
    #[error("no enclave address: lab `{lab}` is not up ({why}); start it with `lagic lab up --name {lab} --diode DIODE`, or pass --enclave URL")]
    NoEnclave {
        /// The lab looked for.
        lab: String,
        /// What was found instead.
        why: String,
    },
    /// Neither `--iface` nor a lab names the interface, and no diode is attached.
    #[error("no interface to watch: no lagic diode is attached and no lab is up; attach one with `lagic attach`, or pass --iface IF")]
    NoDiode,
    /// Several diodes are attached and nothing says which one to watch.
    #[error("no interface to watch: several lagic diodes are attached ({0}); pass --iface IF")]
    SeveralDiodes(String),
    /// Reading the attachments failed.
    #[error("reading the attached diodes: {0}")]
    Attachments(#[from] attach::AttachError),
    /// The examples directory cannot be read.
    #[error("--examples {path}: {source}")]
    Examples {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listening socket cannot be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or the server failed.
    #[error("the web server failed: {0}")]
    Server(#[source] std::io::Error),
}

/// What the command line says (`lagic dashboard`'s flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to serve the page.
    pub listen: SocketAddr,
    /// The lab whose status the page shows, and the default enclave and interface.
    pub lab: String,
    /// The enclave's URL (`http://HOST:PORT`), overriding the lab's.
    pub enclave: Option<String>,
    /// The interface whose diode the page shows, overriding the lab's.
    pub iface: Option<String>,
    /// The directory of spec files the picker offers; `None`: `examples`
    /// in the working directory when there is one (a checkout), else none
    /// (uploads only).
    pub examples: Option<PathBuf>,
    /// Take the drops from this file of `lagic watch --tee` lines instead
    /// of the diode's ring buffer.
    pub decisions: Option<PathBuf>,
}

/// The picker's directory when `--examples` is not given.
pub const DEFAULT_EXAMPLES: &str = "examples";

/// Where the enclave is: a host (name or address) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclaveAddr {
    /// Host name or IP address, as given.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl EnclaveAddr {
    /// Parses `http://HOST[:PORT][/]` (port 80 by default; IPv6 in brackets).
    pub fn parse(url: &str) -> Result<EnclaveAddr, DashboardError> {
        let bad = || DashboardError::BadEnclaveUrl(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '@', '?', '#', ' ']) {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            match after {
                "" => (host, 80),
                p => (
                    host,
                    p.strip_prefix(':')
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(bad)?,
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
                None => (authority, 80),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(EnclaveAddr {
            host: host.to_owned(),
            port,
        })
    }

    /// `HOST:PORT` for resolving and for the `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Everything the server needs, resolved from [`Options`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to serve the page.
    pub listen: SocketAddr,
    /// The lab whose status the page shows, if one by that name exists.
    pub lab: Option<String>,
    /// The enclave.
    pub enclave: EnclaveAddr,
    /// The interface whose diode the page shows and replaces.
    pub iface: String,
    /// The direction of that diode.
    pub direction: Direction,
    /// The directory of spec files the picker offers (none: uploads only).
    pub examples: Option<PathBuf>,
    /// The file of `lagic watch --tee` lines the drops come from (none:
    /// the diode's ring buffer).
    pub decisions: Option<PathBuf>,
}

/// Resolves the flags: `--enclave` and `--iface` win; otherwise the lab
/// (when it is up) gives both; otherwise the interface is that of the one
/// attached diode.
pub fn resolve(options: &Options) -> Result<Config, DashboardError> {
    let lab = lagic_lab::status(lagic_lab::LabKind::Lab, Some(&options.lab))
        .ok()
        .and_then(|mut labs| labs.pop());
    let enclave = match (&options.enclave, &lab) {
        (Some(url), _) => EnclaveAddr::parse(url)?,
        (None, Some(l)) if l.netns && l.link => EnclaveAddr {
            host: l.state.enclave_ip.to_string(),
            port: l.state.port,
        },
        (None, found) => {
            return Err(DashboardError::NoEnclave {
                lab: options.lab.clone(),
                why: match found {
                    Some(_) => "its namespace or link is gone".into(),
                    None => "no such lab".into(),
                },
            })
        }
    };
    let (iface, direction) = match (&options.iface, &lab) {
        (Some(iface), _) => (iface.clone(), attached_direction(iface)?),
        (None, Some(l)) if l.link => (l.state.host_if.clone(), Direction::Ingress),
        (None, _) => the_one_diode()?,
    };
    let examples = match &options.examples {
        Some(dir) => {
            std::fs::read_dir(dir).map_err(|source| DashboardError::Examples {
                path: dir.clone(),
                source,
            })?;
            Some(dir.clone())
        }
        None => Some(PathBuf::from(DEFAULT_EXAMPLES)).filter(|d| d.is_dir()),
    };
    Ok(Config {
        listen: options.listen,
        lab: lab.map(|l| l.state.name),
        enclave,
        iface,
        direction,
        examples,
        decisions: options.decisions.clone(),
    })
}

/// The direction of the diode on `iface`: ingress unless only an egress one is there.
fn attached_direction(iface: &str) -> Result<Direction, DashboardError> {
    let on_iface: Vec<Direction> = attach::attachments()?
        .into_iter()
        .filter(|a| a.iface == iface && a.health != Health::Stale)
        .map(|a| a.direction)
        .collect();
    Ok(if on_iface == [Direction::Egress] {
        Direction::Egress
    } else {
        Direction::Ingress
    })
}

/// The interface and direction of the only active diode.
fn the_one_diode() -> Result<(String, Direction), DashboardError> {
    let active: Vec<attach::Attachment> = attach::attachments()?
        .into_iter()
        .filter(|a| a.health == Health::Active && !a.foreign)
        .collect();
    match active.as_slice() {
        [] => Err(DashboardError::NoDiode),
        [one] => Ok((one.iface.clone(), one.direction)),
        several => Err(DashboardError::SeveralDiodes(
            several
                .iter()
                .map(|a| format!("{} {} on {}", a.diode, a.direction, a.iface))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// Serves the dashboard until SIGINT or SIGTERM; `listening` is called with
/// the bound address once the socket is open.
pub fn run(
    config: Config,
    compiler: Arc<dyn SpecCompiler>,
    listening: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), DashboardError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DashboardError::Server)?;
    runtime.block_on(async move {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        serve(config, compiler, listening, shutdown).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enclave_urls_parse() {
        let a = EnclaveAddr::parse("http://172.30.0.11:8080").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("172.30.0.11", 8080));
        assert_eq!(a.authority(), "172.30.0.11:8080");
        let b = EnclaveAddr::parse("http://enclave/").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("enclave", 80));
        let c = EnclaveAddr::parse("http://[fd00::11]:8080").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("fd00::11", 8080));
        assert_eq!(c.authority(), "[fd00::11]:8080");
    }

    #[test]
    fn bad_enclave_urls_are_refused() {
        for url in [
            "172.30.0.11:8080",
            "https://172.30.0.11",
            "http://",
            "http://h:0",
            "http://h:x",
            "http://h/api",
            "http://u@h:1",
            "http://[::1",
            "http://[nope]:1",
        ] {
            assert!(
                matches!(
                    EnclaveAddr::parse(url),
                    Err(DashboardError::BadEnclaveUrl(_))
                ),
                "{url}"
            );
        }
    }
}
