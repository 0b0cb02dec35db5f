//! `POST /api/generate`: a prompt to the enclave, through the diode.
//!
//! The dashboard opens the TCP connection itself, from the host to the
//! enclave's address, so the enclave's response crosses the diode on its
//! way back. It listens to the drop events from before it connects; a drop
//! whose flow is this connection (the enclave's address and port on one
//! side, the dashboard's local address and port on the other, either way
//! round) ends the request at once as "blocked", with the drop's reason,
//! offset and excerpt. A complete response is "answered"; anything else by
//! the deadline (`wait_time` plus a margin for the exchange) is
//! "no_answer", with what did arrive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::server::{cross_origin, refuse, Push, Shared};
use crate::views::{escape, DecisionView};

/// The enclave's generation time when the page gives none, seconds.
const DEFAULT_WAIT: f64 = 10.0;
/// The longest `wait_time` the page may ask for, seconds.
const MAX_WAIT: f64 = 300.0;
/// Time beyond `wait_time` for connecting and the response to arrive.
const MARGIN: Duration = Duration::from_secs(5);
/// The most response bytes kept.
const MAX_RESPONSE: usize = 1 << 20;
/// The most prompt bytes sent.
const MAX_PROMPT: usize = 64 << 10;

/// The page's request.
#[derive(Debug, Deserialize)]
pub(crate) struct PromptRequest {
    prompt: String,
    /// Seconds the enclave may generate (the enclave API's `wait_time`).
    wait_time: Option<f64>,
    max_tokens: Option<u32>,
}

pub(crate) async fn generate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(req): Json<PromptRequest>,
) -> Response {
    if let Some(r) = cross_origin(&headers) {
        return r;
    }
    if req.prompt.len() > MAX_PROMPT {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the prompt is longer than {MAX_PROMPT} bytes"),
        );
    }
    let wait = req.wait_time.unwrap_or(DEFAULT_WAIT);
    if !(wait.is_finite() && wait > 0.0 && wait <= MAX_WAIT) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("wait_time must be a number of seconds in (0, {MAX_WAIT}]"),
        );
    }
    // Fail closed: without a diode in place, the enclave's bytes would reach
    // us unjudged.
    let diode = match shared.diode() {
        Some(d) if d.active => d,
        Some(d) => {
            return refuse(
                StatusCode::CONFLICT,
                format!(
                    "no lagic diode is active on {} {}: not sending the prompt unfiltered",
                    d.iface, d.direction
                ),
            )
        }
        None => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "no state"),
    };
    let mut feed = shared.feed.subscribe();
    let authority = shared.config.enclave.authority();
    let started = Instant::now();
    let deadline = Duration::from_secs_f64(wait) + MARGIN;
    let addr = match tokio::net::lookup_host(&authority).await {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => a,
            None => return refuse(StatusCode::BAD_GATEWAY, format!("{authority}: no address")),
        },
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, format!("{authority}: {e}")),
    };
    let mut stream = match tokio::time::timeout(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!("connecting to the enclave at {addr}: {e}"),
            )
        }
        Err(_) => {
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                format!("connecting to the enclave at {addr}: no answer in {deadline:?}"),
            )
        }
    };
    let local = match stream.local_addr() {
        Ok(l) => l,
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, format!("local address: {e}")),
    };
    let mut body = serde_json::json!({ "prompt": req.prompt, "wait_time": wait });
    if let Some(n) = req.max_tokens {
        body["max_tokens"] = n.into();
    }
    let body = body.to_string();
    let request = format!(
        "POST /api/generate HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return refuse(
            StatusCode::BAD_GATEWAY,
            format!("sending to the enclave at {addr}: {e}"),
        );
    }

    let mut received = Vec::new();
    let outcome = tokio::select! {
        read = read_response(&mut stream, &mut received) => match read {
            Ok(true) => answered(&received),
            Ok(false) => no_answer("the enclave closed the connection before the response was complete", &received),
            Err(e) => no_answer(&format!("reading the response: {e}"), &received),
        },
        d = our_drop(&mut feed, addr, local) => blocked(&d),
        _ = tokio::time::sleep(deadline.saturating_sub(started.elapsed())) => {
            no_answer(&format!("no complete response in {:.1} s", deadline.as_secs_f64()), &received)
        }
    };
    let mut outcome = outcome;
    outcome["elapsed_ms"] = (started.elapsed().as_millis() as u64).into();
    outcome["local_port"] = local.port().into();
    outcome["diode_at_send"] = diode.diode.into();
    Json(outcome).into_response()
}

/// Reads until the response is complete (`Ok(true)`: the head and every
/// `Content-Length` byte, or the server's close after the head) or the
/// server closes early (`Ok(false)`).
async fn read_response(stream: &mut TcpStream, raw: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        if let Some(head) = lagic_lab::http::parse_head(raw) {
            if head
                .content_length
                .is_some_and(|n| raw.len() >= head.len + n)
            {
                return Ok(true);
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            let head = lagic_lab::http::parse_head(raw);
            return Ok(
                head.is_some_and(|h| h.content_length.is_none_or(|n| raw.len() >= h.len + n))
            );
        }
        if raw.len() + n > MAX_RESPONSE {
            return Err(std::io::Error::other(format!(
                "the response is longer than {MAX_RESPONSE} bytes"
            )));
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The first drop of the connection between `local` and `enclave`.
async fn our_drop(
    feed: &mut broadcast::Receiver<Push>,
    enclave: SocketAddr,
    local: SocketAddr,
) -> DecisionView {
    loop {
        match feed.recv().await {
            Ok(Push::Decision(d)) if is_flow(&d, enclave, local) => return d,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            // The server is going away: let the deadline end the request.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Whether `d` dropped a packet of the TCP connection `local` <-> `enclave`.
pub(crate) fn is_flow(d: &DecisionView, enclave: SocketAddr, local: SocketAddr) -> bool {
    let Some(f) = &d.flow else {
        return false;
    };
    let end = |ip: &str, port: Option<u16>, addr: SocketAddr| {
        port == Some(addr.port()) && ip == addr.ip().to_canonical().to_string()
    };
    f.proto == 6
        && ((end(&f.src_ip, f.src_port, enclave) && end(&f.dest_ip, f.dest_port, local))
            || (end(&f.src_ip, f.src_port, local) && end(&f.dest_ip, f.dest_port, enclave)))
}

fn answered(raw: &[u8]) -> serde_json::Value {
    let head = lagic_lab::http::parse_head(raw);
    let body = head.as_ref().map_or(&raw[..0], |h| &raw[h.len..]);
    // The enclave answers `{"response": TEXT}`; anything else is shown escaped as it came.
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("response")
                .and_then(|r| r.as_str())
                .map(str::to_owned)
        })
        .map(|t| escape(t.as_bytes()))
        .unwrap_or_else(|| escape(body));
    serde_json::json!({
        "outcome": "answered",
        "status": head.map(|h| h.status),
        "response": text,
    })
}

fn blocked(d: &DecisionView) -> serde_json::Value {
    serde_json::json!({
        "outcome": "blocked",
        "drop": d,
    })
}

fn no_answer(why: &str, received: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "outcome": "no_answer",
        "why": why,
        "received_bytes": received.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::FlowView;

    fn drop_of(src: &str, sport: u16, dst: &str, dport: u16) -> DecisionView {
        DecisionView {
            time_ms: 0,
            diode: "hateless".into(),
            iface: "lgh-main".into(),
            reason: "predicate",
            flow: Some(FlowView {
                src_ip: src.into(),
                src_port: Some(sport),
                dest_ip: dst.into(),
                dest_port: Some(dport),
                proto: 6,
            }),
            decided_by: None,
            offset: Some(64),
            offset_span: Some(64),
            excerpt_start: 64,
            excerpt: String::new(),
            payload_len: 175,
            frame_len: 241,
        }
    }

    #[test]
    fn only_our_connection_matches() {
        let enclave: SocketAddr = "172.30.0.11:8080".parse().unwrap();
        let local: SocketAddr = "172.30.0.1:43502".parse().unwrap();
        assert!(is_flow(
            &drop_of("172.30.0.11", 8080, "172.30.0.1", 43502),
            enclave,
            local
        ));
        // The other way round (a diode on the requests' path).
        assert!(is_flow(
            &drop_of("172.30.0.1", 43502, "172.30.0.11", 8080),
            enclave,
            local
        ));
        // Another connection of the same host.
        assert!(!is_flow(
            &drop_of("172.30.0.11", 8080, "172.30.0.1", 43503),
            enclave,
            local
        ));
        // Another enclave port or address.
        assert!(!is_flow(
            &drop_of("172.30.0.11", 8081, "172.30.0.1", 43502),
            enclave,
            local
        ));
        assert!(!is_flow(
            &drop_of("172.30.0.12", 8080, "172.30.0.1", 43502),
            enclave,
            local
        ));
        let mut udp = drop_of("172.30.0.11", 8080, "172.30.0.1", 43502);
        udp.flow.as_mut().unwrap().proto = 17;
        assert!(!is_flow(&udp, enclave, local));
        let mut none = udp;
        none.flow = None;
        assert!(!is_flow(&none, enclave, local));
    }

    #[test]
    fn an_answer_is_the_response_field_escaped() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 35\r\n\r\n{\"response\":\"Once upon a\\ntime\"}\r\n";
        let v = answered(raw);
        assert_eq!(v["outcome"], "answered");
        assert_eq!(v["status"], 200);
        assert_eq!(v["response"], "Once upon a\\x0atime");
    }
}
