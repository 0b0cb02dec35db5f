//! Memory a request costs, measured by a counting global allocator (this
//! test binary's own): a request body must not be amplified by the JSON
//! parser. The bodies carry an ignored field `"x":[0,0,...]`, which a
//! parser building a JSON tree turns into ~16x its size in heap.
//!
//! Also here, for the same allocator: a forward pass allocates nothing.
//!
//! One `#[test]` only, so that no other test's allocations run while the
//! peak is measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lagic_enclave::http::{parse_generate_body, Server, ServerConfig};
use lagic_enclave::llama2::transformer::{forward_with, Compute, RunState};
use lagic_enclave::synth::{make_model, make_tokenizer, SynthSpec};
use lagic_enclave::EchoGenerator;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as both blocks alive at once: the worst case of a copy.
            grew(new_size);
            CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes above the current level that `f` needed at its peak.
fn peak_extra<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

/// `{"prompt":"...","max_tokens":2,"x":[0,0,...]}` of exactly `size` bytes.
fn amplifying_body(size: usize) -> Vec<u8> {
    let head = br#"{"prompt":"Once upon a time","max_tokens":2,"x":[0"#;
    let mut body = head.to_vec();
    while body.len() + 2 + 2 <= size {
        body.extend_from_slice(b",0");
    }
    body.push(b']');
    while body.len() < size - 1 {
        body.push(b' ');
    }
    body.push(b'}');
    assert_eq!(body.len(), size);
    body
}

fn post(addr: std::net::SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /api/generate HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    raw
}

#[test]
fn request_memory_is_a_small_factor_of_the_body() {
    const MIB: usize = 1024 * 1024;
    let body = amplifying_body(8 * MIB);
    let config = ServerConfig {
        log_requests: false,
        ..ServerConfig::default()
    };

    // The parser alone: the ignored array costs nothing, the prompt its length.
    let (params, extra) = peak_extra(|| parse_generate_body(&body, &config));
    let params = params.unwrap();
    assert_eq!(params.prompt, "Once upon a time");
    assert_eq!(params.max_tokens, 2);
    println!("parse of an 8 MiB amplifying body: peak {extra} bytes");
    assert!(
        extra < 64 * 1024,
        "parsing an 8 MiB body allocated {extra} bytes at its peak"
    );
    // Deep nesting inside an ignored field is skipped without recursion
    // (no stack overflow) and costs at most a byte per level.
    let deep = format!(
        r#"{{"prompt":"a","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (res, extra) = peak_extra(|| parse_generate_body(deep.as_bytes(), &config));
    assert_eq!(res.unwrap().prompt, "a");
    assert!(extra <= deep.len(), "{extra}");
    // Deep nesting where a field's value belongs is refused (the parser's
    // recursion limit), not recursed into without bound.
    let deep = format!(
        r#"{{"prompt":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (res, extra) = peak_extra(|| parse_generate_body(deep.as_bytes(), &config));
    assert!(res.is_err());
    assert!(extra <= deep.len(), "{extra}");
    // A long prompt costs about its own length (plus the parser's scratch
    // for an escaped string).
    let escaped = format!(r#"{{"prompt":"{}"}}"#, "a\\n".repeat(MIB));
    let (res, extra) = peak_extra(|| parse_generate_body(escaped.as_bytes(), &config));
    assert_eq!(res.unwrap().prompt.len(), 2 * MIB);
    assert!(extra <= 2 * escaped.len() + 64 * 1024, "{extra}");

    // A whole request through the server: the body buffer, the prompt and
    // the response, nothing proportional to the ignored field beyond the body.
    let server = Server::bind("127.0.0.1:0", Arc::new(EchoGenerator::new(1)), config).unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run().unwrap());
    // Warm up (thread-local and socket buffers).
    let raw = post(addr, br#"{"prompt":"hi"}"#);
    assert!(raw.starts_with(b"HTTP/1.1 200 "));
    for _ in 0..3 {
        let (raw, extra) = peak_extra(|| post(addr, &body));
        assert!(
            raw.starts_with(b"HTTP/1.1 200 "),
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
        println!("8 MiB request through the server: peak {extra} bytes");
        // Documented in the README: at most 3x the body (plus 1 MiB of
        // fixed buffers) per request; the old JSON-tree parse took ~16x.
        assert!(
            extra <= 3 * body.len() + MIB,
            "one 8 MiB request took {} MiB at its peak",
            extra / MIB
        );
    }

    // Forward passes, single- and multi-threaded (every step split), after
    // a warm-up: no heap allocation at all.
    let tokenizer = make_tokenizer();
    let model = make_model(
        &SynthSpec {
            seq_len: 64,
            ..SynthSpec::default()
        },
        &tokenizer,
    )
    .unwrap();
    for compute in [
        Compute::single(),
        Compute::with_threads(2).unwrap().split_above(0),
    ] {
        let mut state = RunState::new(model.config(), 64).unwrap();
        forward_with(&compute, &model, &mut state, 1, 0).unwrap();
        let (_, extra) = peak_extra(|| {
            for pos in 1..64 {
                forward_with(&compute, &model, &mut state, (pos * 5) as u32, pos).unwrap();
            }
        });
        assert_eq!(
            extra,
            0,
            "{} thread(s): forward passes allocated",
            compute.threads()
        );
    }
}
