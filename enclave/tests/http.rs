//! The HTTP server on a real socket (127.0.0.1, ephemeral port), spoken to
//! with raw TCP so that framing, status lines and connection closing are
//! observed exactly as a client (or the diode) sees them.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lagic_enclave::generator::{GenerateError, Generator};
use lagic_enclave::http::{Server, ServerConfig};
use lagic_enclave::llama2::sampler::SamplingParams;
use lagic_enclave::synth::{make_model, make_tokenizer, SynthSpec};
use lagic_enclave::{EchoGenerator, Llama2Generator};
use serde_json::{json, Value};

fn quiet() -> ServerConfig {
    ServerConfig {
        log_requests: false,
        ..ServerConfig::default()
    }
}

fn start(generator: Arc<dyn Generator>, config: ServerConfig) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0", generator, config).unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run().unwrap());
    addr
}

fn echo_server() -> SocketAddr {
    start(Arc::new(EchoGenerator::new(1)), quiet())
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Parse one response from everything the server sent before closing.
fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let reply = Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    let len: usize = reply.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(len, reply.body.len(), "Content-Length matches the body");
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    reply
}

/// Send raw bytes, read until the server closes (the test fails if it does
/// not close within 20 s: Connection: close must be honoured).
fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("server closes the connection");
    parse_reply(&raw)
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Reply {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: enclave\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    exchange(addr, &req)
}

fn generate(addr: SocketAddr, body: Value) -> Reply {
    post(addr, "/api/generate", body.to_string().as_bytes())
}

#[test]
fn health_reports_ok_and_generator() {
    let addr = echo_server();
    let r = exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["generator"]["kind"], "echo");
}

#[test]
fn generate_begins_with_prompt() {
    let addr = echo_server();
    let r = generate(
        addr,
        json!({"prompt": "Once upon a time", "wait_time": 5, "max_tokens": 12}),
    );
    assert_eq!(r.status, 200);
    let text = r.json()["response"].as_str().unwrap().to_string();
    assert!(text.starts_with("Once upon a time "), "{text}");
    assert_eq!(
        text["Once upon a time".len()..].split_whitespace().count(),
        12
    );
    // Deterministic: the same request gives the same text.
    let again = generate(
        addr,
        json!({"prompt": "Once upon a time", "wait_time": 5, "max_tokens": 12}),
    );
    assert_eq!(again.json()["response"], text.as_str());
}

#[test]
fn default_max_tokens_and_hackathon_body() {
    let addr = echo_server();
    let r = generate(addr, json!({"prompt": "I hate bananas", "wait_time": 10}));
    assert_eq!(r.status, 200);
    let text = r.json()["response"].as_str().unwrap().to_string();
    assert!(text.starts_with("I hate bananas"));
    assert_eq!(
        text["I hate bananas".len()..].split_whitespace().count(),
        64
    );
}

#[test]
fn large_prompt_is_echoed_and_large_response_is_clean() {
    let addr = echo_server();
    let prompt: String = "abcdefghij".repeat(12_000); // 120 KB
    let r = generate(addr, json!({"prompt": prompt, "max_tokens": 3}));
    assert_eq!(r.status, 200);
    let text = r.json()["response"].as_str().unwrap().to_string();
    assert!(text.starts_with(&prompt));

    let r = generate(
        addr,
        json!({"prompt": "Once upon a time", "max_tokens": 200_000}),
    );
    assert_eq!(r.status, 200);
    let text = r.json()["response"].as_str().unwrap().to_string();
    assert!(text.len() > 1_000_000, "{} bytes", text.len());
    assert!(!text.to_ascii_lowercase().contains("hate"));
}

#[test]
fn bad_json_and_bad_fields_are_400_with_json_errors() {
    let addr = echo_server();
    let cases: Vec<&[u8]> = vec![
        b"{not json",
        b"",
        b"[1,2]",
        b"\"prompt\"",
        br#"{"max_tokens": 5}"#,
        br#"{"prompt": 5}"#,
        br#"{"prompt": "x", "max_tokens": -1}"#,
        br#"{"prompt": "x", "max_tokens": "ten"}"#,
        br#"{"prompt": "x", "max_tokens": 1.5}"#,
        br#"{"prompt": "x", "max_tokens": 1000001}"#,
        br#"{"prompt": "x", "wait_time": -2}"#,
        br#"{"prompt": "x", "wait_time": "soon"}"#,
        br#"{"prompt": "x", "seed": -4}"#,
        b"{\"prompt\": \"\xff\xfe\"}",
    ];
    for body in cases {
        let r = post(addr, "/api/generate", body);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(body));
        let v = r.json();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    // null means absent; unknown fields are ignored.
    let r = post(
        addr,
        "/api/generate",
        br#"{"prompt": "x", "max_tokens": null, "model": "llama2"}"#,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn oversize_body_is_413_before_reading_it() {
    let addr = start(
        Arc::new(EchoGenerator::new(1)),
        ServerConfig {
            max_body: 1000,
            ..quiet()
        },
    );
    // Announce 10 MB, send only a little: the answer must not wait for the rest.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /api/generate HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n{\"prompt\": \"")
        .unwrap();
    s.write_all(&[b'a'; 4000]).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let r = parse_reply(&raw);
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("1000"));
    // Exactly at the limit is fine.
    let body = format!("{{\"prompt\": \"{}\"}}", "b".repeat(1000 - 14));
    assert_eq!(body.len(), 1000);
    assert_eq!(post(addr, "/api/generate", body.as_bytes()).status, 200);
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405() {
    let addr = echo_server();
    let r = exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = exchange(addr, b"GET /api/generate HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST"));
    let r = post(addr, "/health", b"{}");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET"));
    let r = exchange(addr, b"DELETE /api/generate HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 405);
    // Query strings do not change the route.
    let r = exchange(addr, b"GET /health?verbose=1 HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn malformed_heads_get_4xx_or_5xx() {
    let addr = echo_server();
    assert_eq!(exchange(addr, b"HELLO\r\n\r\n").status, 400);
    assert_eq!(exchange(addr, b"GET /health HTTP/2.0\r\n\r\n").status, 505);
    assert_eq!(
        exchange(addr, b"GET /health HTTP/1.1\r\nNoColon\r\n\r\n").status,
        400
    );
    assert_eq!(
        exchange(
            addr,
            b"POST /api/generate HTTP/1.1\r\nContent-Length: x\r\n\r\n"
        )
        .status,
        400
    );
    assert_eq!(
        exchange(
            addr,
            b"POST /api/generate HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
        )
        .status,
        400
    );
    assert_eq!(
        exchange(addr, b"POST /api/generate HTTP/1.1\r\n\r\n").status,
        411
    );
    assert_eq!(
        exchange(
            addr,
            b"POST /api/generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        .status,
        501
    );
    let mut huge = b"GET /health HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        huge.extend_from_slice(format!("X-Filler-{i}: yes\r\n").as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    assert_eq!(exchange(addr, &huge).status, 431);
}

#[test]
fn expect_100_continue_is_answered() {
    let addr = echo_server();
    let body = json!({"prompt": "Once", "max_tokens": 2}).to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/generate HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_reply(&raw).status, 200);
}

#[test]
fn truncated_body_is_400() {
    let addr = echo_server();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /api/generate HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_reply(&raw).status, 400);
}

#[test]
fn slow_and_abrupt_clients_do_not_hurt_the_server() {
    let addr = start(
        Arc::new(EchoGenerator::new(1)),
        ServerConfig {
            io_timeout: Duration::from_millis(300),
            head_timeout: Duration::from_secs(2),
            ..quiet()
        },
    );
    // Silent client: answered 408 and closed after the read timeout.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    silent.write_all(b"GET /hea").unwrap();
    let t = Instant::now();
    let mut raw = Vec::new();
    silent.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_reply(&raw).status, 408);
    assert!(t.elapsed() < Duration::from_secs(5));

    // Clients that vanish at every stage.
    for partial in [
        &b""[..],
        b"POST /api/gen",
        b"POST /api/generate HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"pro",
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(partial).unwrap();
        drop(s);
    }
    // A client that trickles bytes slower than the whole-request deadline.
    let mut trickle = TcpStream::connect(addr).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut answered = Vec::new();
    for b in b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if trickle.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if t.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let _ = trickle.read_to_end(&mut answered);
    if !answered.is_empty() {
        assert_eq!(parse_reply(&answered).status, 408);
    }
    assert!(t.elapsed() < Duration::from_secs(8));

    let r = exchange(addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 200);
}

/// Holds every generation until released, to keep connections busy.
struct Gate(std::sync::Mutex<bool>, std::sync::Condvar);
impl Generator for Gate {
    fn generate(&self, prompt: &str, _: usize) -> Result<String, GenerateError> {
        let mut open = self.0.lock().unwrap();
        while !*open {
            open = self.1.wait(open).unwrap();
        }
        Ok(prompt.to_string())
    }
}

#[test]
fn connection_limit_evicts_idle_then_reserves_health_then_503() {
    let gate = Arc::new(Gate(
        std::sync::Mutex::new(false),
        std::sync::Condvar::new(),
    ));
    let addr = start(
        gate.clone(),
        ServerConfig {
            max_connections: 2,
            health_reserve: 1,
            io_timeout: Duration::from_secs(5),
            ..quiet()
        },
    );
    // Idle connections hold both slots: a newcomer evicts the oldest.
    let mut idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").status, 200);
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    // The evicted connection is closed without an answer.
    assert_eq!(idle[0].read_to_end(&mut rest).unwrap(), 0);
    drop(idle);

    // Both slots generating (not evictable): /health is still answered from
    // the reserve, anything else there is 503.
    let body = json!({"prompt": "held"}).to_string();
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || post(addr, "/api/generate", body.as_bytes()).status)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").status, 200);
    assert_eq!(post(addr, "/api/generate", body.as_bytes()).status, 503);
    // A reserve held by an idle connection is taken over by the next one.
    let _idle = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").status, 200);

    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for b in busy {
        assert_eq!(b.join().unwrap(), 200);
    }
    let t = Instant::now();
    while post(addr, "/api/generate", body.as_bytes()).status != 200 {
        assert!(t.elapsed() < Duration::from_secs(5), "slots never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With no reserve and every slot generating, newcomers get 503 right away.
#[test]
fn connection_limit_answers_503_when_all_slots_work() {
    let gate = Arc::new(Gate(
        std::sync::Mutex::new(false),
        std::sync::Condvar::new(),
    ));
    let addr = start(
        gate.clone(),
        ServerConfig {
            max_connections: 1,
            health_reserve: 0,
            ..quiet()
        },
    );
    let busy = std::thread::spawn(move || generate(addr, json!({"prompt": "held"})).status);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").status, 503);
    assert!(t.elapsed() < Duration::from_secs(5));
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    assert_eq!(busy.join().unwrap(), 200);
    // The slot comes back when the connection's thread ends, just after it answered.
    let t = Instant::now();
    while exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").status != 200 {
        assert!(t.elapsed() < Duration::from_secs(5), "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Panicky;
impl Generator for Panicky {
    fn generate(&self, prompt: &str, _: usize) -> Result<String, GenerateError> {
        if prompt == "boom" {
            panic!("generator bug");
        }
        Err(GenerateError::Internal("disk on fire".into()))
    }
}

#[test]
fn generator_panics_and_internal_errors_are_500() {
    let addr = start(Arc::new(Panicky), quiet());
    assert_eq!(generate(addr, json!({"prompt": "boom"})).status, 500);
    assert_eq!(generate(addr, json!({"prompt": "other"})).status, 500);
    assert_eq!(exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").status, 200);
}

fn llama_server(seq_len: usize) -> SocketAddr {
    let tokenizer = make_tokenizer();
    let model = make_model(
        &SynthSpec {
            seq_len,
            ..SynthSpec::default()
        },
        &tokenizer,
    )
    .unwrap();
    let g = Llama2Generator::new(model, tokenizer, SamplingParams::default()).unwrap();
    start(Arc::new(g), quiet())
}

#[test]
fn llama2_server_generates_and_rejects_long_prompts() {
    let addr = llama_server(64);
    let r = exchange(addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(r.json()["generator"]["kind"], "llama2");
    assert_eq!(r.json()["generator"]["seq_len"], 64);

    let r = generate(
        addr,
        json!({"prompt": "Once upon a time", "max_tokens": 20, "seed": 3}),
    );
    assert_eq!(r.status, 200);
    let text = r.json()["response"].as_str().unwrap().to_string();
    assert!(text.starts_with("Once upon a time"), "{text}");
    assert!(text.len() > "Once upon a time".len() + 20, "{text}");
    let again = generate(
        addr,
        json!({"prompt": "Once upon a time", "max_tokens": 20, "seed": 3}),
    );
    assert_eq!(again.json()["response"], text.as_str());

    // Fits: 64 tokens of context, max_tokens beyond it is cut at the context end.
    let r = generate(
        addr,
        json!({"prompt": "I hate bananas", "max_tokens": 1000}),
    );
    assert_eq!(r.status, 200);

    // 100 words of context-busting prompt, and a 200 KB one (rejected fast).
    let long = "once upon a time ".repeat(30);
    let r = generate(addr, json!({"prompt": long}));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("context"));
    let t = Instant::now();
    let r = generate(addr, json!({"prompt": "x".repeat(200_000)}));
    assert_eq!(r.status, 400);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn llama2_wait_time_bounds_generation() {
    let addr = llama_server(512);
    let t = Instant::now();
    let r = generate(
        addr,
        json!({"prompt": "Once", "max_tokens": 400, "wait_time": 0}),
    );
    assert_eq!(r.status, 200);
    // Deadline already passed: only the prompt comes back.
    assert_eq!(r.json()["response"], "Once");
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// Seeded random garbage (and random mutations of a valid request) never
/// takes the server down: each connection gets an HTTP answer or is closed.
#[test]
fn random_requests_never_break_the_server() {
    let addr = start(
        Arc::new(EchoGenerator::new(1)),
        ServerConfig {
            io_timeout: Duration::from_millis(500),
            head_timeout: Duration::from_secs(2),
            ..quiet()
        },
    );
    let valid = b"POST /api/generate HTTP/1.1\r\nContent-Length: 39\r\n\r\n{\"prompt\": \"hi there\", \"max_tokens\": 3}";
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    assert_eq!(exchange(addr, valid).status, 200);
    let mut statuses = std::collections::BTreeSet::new();
    for round in 0..120 {
        let mut req = valid.to_vec();
        if round % 3 == 0 {
            let len = (next() % 300) as usize;
            req = (0..len).map(|_| next() as u8).collect();
        } else {
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % req.len();
                req[i] = next() as u8;
            }
        }
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&req);
        let _ = s.shutdown(Shutdown::Write);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        if !raw.is_empty() {
            assert!(raw.starts_with(b"HTTP/1.1 "), "round {round}");
            let status = parse_reply(&raw).status;
            assert!([200, 400, 404, 405, 408, 411, 413, 431, 501, 505].contains(&status));
            statuses.insert(status);
        }
    }
    // Mutations in the body leave some requests valid, others not.
    assert!(
        statuses.contains(&200) && statuses.contains(&400),
        "{statuses:?}"
    );
    assert_eq!(exchange(addr, b"GET /health HTTP/1.1\r\n\r\n").status, 200);
}
