//! The web server: routes, the shared state the monitors update, the event
//! stream to the pages, and replacing the diode.
//!
//! Routes: `GET /` (the page) and its assets, `GET /api/state` (everything
//! the page shows, once), `GET /api/events` (server-sent events: `diode`,
//! `counters`, `decision`, `lab`; the stream starts with the current state),
//! `POST /api/generate` (a prompt through the diode: [`crate::prompt`]) and
//! `POST /api/diode` (compile a spec and replace the diode).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use emit_bpf::decision::Atom;
use futures_util::Stream;
use lagic_loader::attach::{self, AttachOptions, ModeChoice};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::views::{CountersView, DecisionView, DiodeView, LabView};
use crate::{assets, monitor, prompt, Config, DashboardError, SpecCompiler};

/// How many recent drops a newly opened page gets.
const RECENT: usize = 50;
/// The largest request body: an uploaded spec of the largest size a spec
/// may have, as a JSON string (escaping at most sextuples a byte: `\u0001`).
const MAX_REQUEST_BYTES: usize = predicate_ir::spec::MAX_SPEC_BYTES * 6 + (64 << 10);
/// How long requests in flight may still run after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A change the monitors saw, pushed to every page.
#[derive(Debug, Clone)]
pub(crate) enum Push {
    /// The diode on the watched interface.
    Diode(DiodeView),
    /// Its counters.
    Counters(CountersView),
    /// No counters to show (no diode).
    NoCounters,
    /// One drop.
    Decision(DecisionView),
    /// The lab.
    Lab(LabView),
}

impl Push {
    fn event(&self) -> Event {
        let (name, data) = match self {
            Push::Diode(d) => ("diode", serde_json::to_string(d)),
            Push::Counters(c) => ("counters", serde_json::to_string(c)),
            Push::NoCounters => ("counters", Ok("null".to_owned())),
            Push::Decision(d) => ("decision", serde_json::to_string(d)),
            Push::Lab(l) => ("lab", serde_json::to_string(l)),
        };
        Event::default()
            .event(name)
            .data(data.unwrap_or_else(|_| "null".into()))
    }
}

/// Everything a page shows, as it is now.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Snapshot {
    pub diode: DiodeView,
    pub counters: Option<CountersView>,
    pub lab: Option<LabView>,
    pub recent: VecDeque<DecisionView>,
    pub enclave: String,
    pub examples: Vec<Example>,
}

/// A spec the picker offers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Example {
    /// The file's name without `.json`: what the picker sends.
    pub name: String,
    /// The diode name inside.
    pub diode: String,
    /// Its description.
    pub description: String,
}

/// State shared by the handlers and the monitor threads.
pub(crate) struct Shared {
    pub config: Config,
    pub compiler: Arc<dyn SpecCompiler>,
    pub feed: broadcast::Sender<Push>,
    pub snapshot: Mutex<Snapshot>,
    /// Set to make the diode monitor re-read the attachment now.
    pub refresh: AtomicBool,
    /// Set to end the monitors.
    pub stop: AtomicBool,
    /// Atoms of the specs compiled here, by program name.
    pub atoms: Mutex<HashMap<String, Vec<Atom>>>,
    /// One replace at a time.
    pub replacing: tokio::sync::Mutex<()>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Records a change and pushes it to the pages when it is one.
    pub(crate) fn update(&self, push: Push) {
        let Ok(mut s) = self.snapshot.lock() else {
            return;
        };
        let changed = match &push {
            Push::Diode(d) => replace_if_new(&mut s.diode, d.clone()),
            Push::Counters(c) => {
                let new = Some(c.clone());
                let changed = s.counters != new;
                s.counters = new;
                changed
            }
            Push::NoCounters => s.counters.take().is_some(),
            Push::Lab(l) => {
                let new = Some(l.clone());
                let changed = s.lab != new;
                s.lab = new;
                changed
            }
            Push::Decision(d) => {
                if s.recent.len() == RECENT {
                    s.recent.pop_front();
                }
                s.recent.push_back(d.clone());
                true
            }
        };
        drop(s);
        if changed {
            // No page listening is fine.
            let _ = self.feed.send(push);
        }
    }

    /// The diode view now.
    pub(crate) fn diode(&self) -> Option<DiodeView> {
        self.snapshot.lock().ok().map(|s| s.diode.clone())
    }
}

fn replace_if_new<T: PartialEq>(slot: &mut T, new: T) -> bool {
    let changed = *slot != new;
    *slot = new;
    changed
}

/// The specs in `dir` (files `*.json` that parse as specs), by file name.
fn examples(dir: Option<&Path>) -> Vec<Example> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    let mut out: Vec<Example> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let path = e.path();
                    let name = path
                        .file_name()?
                        .to_str()?
                        .strip_suffix(".json")?
                        .to_owned();
                    if !e.file_type().ok()?.is_file() {
                        return None;
                    }
                    let text = read_capped(&path).ok()?;
                    let spec = predicate_ir::parse(&String::from_utf8(text).ok()?).ok()?;
                    Some(Example {
                        name,
                        diode: spec.name,
                        description: spec.description,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(predicate_ir::spec::MAX_SPEC_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > predicate_ir::spec::MAX_SPEC_BYTES {
        return Err(std::io::Error::other("larger than a spec may be"));
    }
    Ok(bytes)
}

/// Serves the dashboard on `config.listen` until `shutdown` completes.
pub async fn serve(
    config: Config,
    compiler: Arc<dyn SpecCompiler>,
    listening: impl FnOnce(SocketAddr) + Send + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DashboardError::Listen {
            addr: config.listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(DashboardError::Server)?;
    let (feed, _) = broadcast::channel(1024);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_for_server = stop_rx.clone();
    let snapshot = Snapshot {
        diode: DiodeView::of(&config.iface, config.direction.as_str(), None, None),
        counters: None,
        lab: config.lab.as_ref().map(|name| LabView::of(name, None)),
        recent: VecDeque::new(),
        enclave: format!("http://{}", config.enclave.authority()),
        examples: examples(config.examples.as_deref()),
    };
    let shared = Arc::new(Shared {
        config,
        compiler,
        feed,
        snapshot: Mutex::new(snapshot),
        refresh: AtomicBool::new(true),
        stop: AtomicBool::new(false),
        atoms: Mutex::new(HashMap::new()),
        replacing: tokio::sync::Mutex::new(()),
        shutdown: stop_rx,
    });
    let threads = monitor::start(shared.clone());
    let app = Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/style.css", get(style))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/api/generate", post(prompt::generate))
        .route("/api/diode", post(replace_diode))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn(known_host))
        .with_state(shared.clone());
    listening(bound);
    let mut stopping = stop_rx_for_server;
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    let result = tokio::select! {
        done = server => done.map_err(DashboardError::Server),
        () = async {
            shutdown.await;
            // Ends the event streams, so open pages do not hold the shutdown up,
            let _ = stop_tx.send(true);
            // and cuts off a prompt still waiting for the enclave after a grace period.
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    };
    shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    result
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", assets::INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", assets::APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", assets::STYLE_CSS)
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    match shared.snapshot.lock() {
        Ok(s) => Json(s.clone()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The current state, then every change, until the server shuts down.
async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before reading the snapshot, so no change falls between them.
    let rx = shared.feed.subscribe();
    let mut first: VecDeque<Event> = VecDeque::new();
    if let Ok(s) = shared.snapshot.lock() {
        first.push_back(Push::Diode(s.diode.clone()).event());
        first.push_back(match &s.counters {
            Some(c) => Push::Counters(c.clone()).event(),
            None => Push::NoCounters.event(),
        });
        if let Some(l) = &s.lab {
            first.push_back(Push::Lab(l.clone()).event());
        }
        for d in &s.recent {
            first.push_back(Push::Decision(d.clone()).event());
        }
    }
    let stop = shared.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (first, rx, stop),
        |(mut first, mut rx, mut stop)| async move {
            if let Some(e) = first.pop_front() {
                return Some((Ok(e), (first, rx, stop)));
            }
            loop {
                if *stop.borrow() {
                    return None;
                }
                tokio::select! {
                    got = rx.recv() => match got {
                        Ok(push) => return Some((Ok(push.event()), (first, rx, stop))),
                        // A slow page misses some changes; the next ones still come.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = stop.changed() => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Refuses requests whose `Host` is a name other than `localhost`: a page
/// of another site whose name an attacker points at this address (DNS
/// rebinding) names its own host there, and would otherwise be same-origin
/// with the dashboard. IP addresses and `localhost` are accepted.
async fn known_host(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if host.is_some_and(host_is_address) {
        next.run(request).await
    } else {
        refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "open the dashboard by IP address or localhost (a Host header naming another host is refused)",
        )
    }
}

/// Whether `host` (a `Host` header: `NAME[:PORT]`, `[V6][:PORT]`) names an
/// IP address or `localhost`.
pub(crate) fn host_is_address(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split_once(']').is_some_and(|(ip, rest)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (rest.is_empty()
                    || rest
                        .strip_prefix(':')
                        .is_some_and(|p| p.parse::<u16>().is_ok()))
        });
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    port.is_none_or(|p| p.parse::<u16>().is_ok())
        && (name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok())
}

/// A failed request: status and `{"error": MESSAGE}`.
pub(crate) fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The refusal of a state-changing request from another origin (a page of
/// another site in the same browser): its `Origin` must name our `Host`.
pub(crate) fn cross_origin(headers: &HeaderMap) -> Option<Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return None; // not a browser's cross-site request (curl, the tests' client)
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.to_str().ok().and_then(|o| o.strip_prefix("http://"));
    match (origin_host, host) {
        (Some(o), Some(h)) if o == h => None,
        _ => Some(refuse(
            StatusCode::FORBIDDEN,
            "request from another origin refused",
        )),
    }
}

/// `POST /api/diode`: `{"example": NAME}` or `{"upload": FILE NAME, "spec": TEXT}`.
#[derive(Debug, Deserialize)]
pub(crate) struct DiodeRequest {
    example: Option<String>,
    upload: Option<String>,
    spec: Option<String>,
}

async fn replace_diode(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(req): Json<DiodeRequest>,
) -> Response {
    if let Some(r) = cross_origin(&headers) {
        return r;
    }
    let (origin, source, bytes) = match (&req.example, &req.upload, req.spec) {
        (Some(name), None, None) => {
            // Only a name the picker lists: never a path from the request.
            let Some(dir) = shared.config.examples.as_deref() else {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "no examples directory (start the dashboard with --examples DIR)",
                );
            };
            if !examples(Some(dir)).iter().any(|e| &e.name == name) {
                return refuse(
                    StatusCode::NOT_FOUND,
                    format!("no spec `{name}` in {}", dir.display()),
                );
            }
            let path: PathBuf = dir.join(format!("{name}.json"));
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            match read_capped(&path) {
                Ok(bytes) => (
                    path.display().to_string(),
                    path.display().to_string(),
                    bytes,
                ),
                Err(e) => return refuse(StatusCode::NOT_FOUND, format!("{}: {e}", path.display())),
            }
        }
        (None, Some(file), Some(spec)) => {
            if spec.len() > predicate_ir::spec::MAX_SPEC_BYTES {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "uploaded {file}: larger than a spec may be ({} bytes)",
                        predicate_ir::spec::MAX_SPEC_BYTES
                    ),
                );
            }
            let shown = format!("uploaded {}", file.replace(|c: char| c.is_control(), "?"));
            (
                shown.clone(),
                format!("{shown} (dashboard)"),
                spec.into_bytes(),
            )
        }
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "send {\"example\": NAME} or {\"upload\": FILE, \"spec\": TEXT}",
            )
        }
    };
    let _one = shared.replacing.lock().await;
    let worker = shared.clone();
    let done = tokio::task::spawn_blocking(move || {
        let object = worker
            .compiler
            .compile(&origin, &bytes)
            .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
        let named = std::str::from_utf8(&bytes)
            .ok()
            .and_then(monitor::name_and_atoms);
        let options = AttachOptions {
            mode: ModeChoice::Auto,
            source: Some(source),
            allow_foreign_object: false,
        };
        let report = attach::attach(
            &object,
            &worker.config.iface,
            worker.config.direction,
            &options,
        )
        .map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
        if let (Some((name, atoms)), Ok(mut known)) = (named, worker.atoms.lock()) {
            known.insert(name, atoms);
        }
        Ok::<_, (StatusCode, String)>(report)
    })
    .await;
    shared.refresh.store(true, Ordering::SeqCst);
    match done {
        Ok(Ok(report)) => Json(serde_json::json!({
            "diode": report.attachment.diode,
            "program_id": report.attachment.program_id,
            "iface": report.attachment.iface,
            "direction": report.attachment.direction.as_str(),
            "mode": report.attachment.mode.as_str(),
            "replaced_program_id": report.replaced_program_id,
        }))
        .into_response(),
        Ok(Err((status, message))) => refuse(status, message),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("replacing the diode failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cross_origin_posts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8501"));
        assert!(
            cross_origin(&h).is_none(),
            "no Origin: not a cross-site browser request"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8501"),
        );
        assert!(cross_origin(&h).is_none());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_origin(&h).is_some());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_origin(&h).is_some());
    }

    #[test]
    fn only_addresses_and_localhost_are_hosts() {
        for ok in [
            "127.0.0.1:8501",
            "localhost:8501",
            "LOCALHOST",
            "172.30.0.1",
            "[::1]:8501",
            "[fd00::1]",
        ] {
            assert!(host_is_address(ok), "{ok}");
        }
        for bad in [
            "evil.example:8501",
            "evil.example",
            "127.0.0.1.nip.io",
            "[::1",
            "[::1]x",
            "localhost:x",
            "",
        ] {
            assert!(!host_is_address(bad), "{bad}");
        }
    }

    #[test]
    fn examples_lists_the_seed_specs_and_skips_other_json() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let names: Vec<String> = examples(Some(&dir)).into_iter().map(|e| e.name).collect();
        assert!(names.contains(&"hateless".to_owned()), "{names:?}");
        assert!(names.contains(&"printable64".to_owned()), "{names:?}");
        // cases.json is JSON but not a spec.
        assert!(!names.contains(&"cases".to_owned()), "{names:?}");
        assert!(examples(None).is_empty());
    }
}
