//! End to end under keep-alive: many requests per connection, several
//! connections, a real HTTP server (Debian's nginx) and a real load generator
//! (Debian's wrk), beside the one-request-per-connection load of
//! [`crate::e2e`].
//!
//! Why both: with one request per connection, connection set-up and teardown
//! take most of the time and hide what the diode costs per byte; under
//! keep-alive the bytes dominate, which is what a busy inference API sees.
//!
//! Set-up: nginx runs inside the benchmark lab's namespace (the lab of
//! [`crate::e2e`]), listening at the enclave address on [`NGINX_PORT`], with
//! a private configuration, pid file and logs under a temporary directory,
//! serving files of clean text (`/<size>.txt`). wrk runs in the host
//! namespace, so every response byte enters through the host-side veth's
//! ingress, where the filter under test sits. nginx is stopped on drop.
//!
//! wrk reports non-2xx responses and socket errors; a run with any counts
//! them as failures, so a filter that dropped clean traffic cannot pass for a
//! fast one.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// The port nginx listens on inside the lab's namespace (the lab's own
/// server keeps 8080).
pub const NGINX_PORT: u16 = 8081;
/// wrk's threads and connections (the load of issue 13's measurement).
pub const WRK_THREADS: usize = 2;
/// Connections kept open by wrk.
pub const WRK_CONNECTIONS: usize = 8;

/// Whether nginx and wrk are installed (scripts/bench installs them).
pub fn available() -> bool {
    ["nginx", "wrk"].iter().all(|tool| {
        Command::new(tool)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

/// nginx in the lab's namespace; stopped on drop.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx in `netns` at `ip`:[`NGINX_PORT`], serving one file of
    /// clean text per size in `sizes` (`/<size>.txt`), and waits until it
    /// answers.
    pub fn start(
        netns: &str,
        ip: std::net::IpAddr,
        sizes: &[usize],
        clean: impl Fn(usize) -> Vec<u8>,
    ) -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!("lagic-bench-nginx-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("www");
        fs::create_dir_all(&root).map_err(|e| BenchError::io("creating nginx's root", e))?;
        for &size in sizes {
            fs::write(root.join(format!("{size}.txt")), clean(size))
                .map_err(|e| BenchError::io("writing nginx's files", e))?;
        }
        let addr = SocketAddr::new(ip, NGINX_PORT);
        let conf = dir.join("nginx.conf");
        fs::write(&conf, config(&dir, &root, addr))
            .map_err(|e| BenchError::io("writing nginx.conf", e))?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "nginx", "-c"])
            .arg(&conf)
            .args(["-p"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::io("starting nginx", e))?;
        let nginx = Self { child, dir, addr };
        nginx.wait_ready(sizes.first().copied().unwrap_or(0))?;
        Ok(nginx)
    }

    fn wait_ready(&self, size: usize) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let path = format!("/{size}.txt");
        while Instant::now() < deadline {
            if let Ok(lagic_lab::http::Reply::Complete(r)) =
                lagic_lab::http::get(self.addr, &path, Duration::from_secs(1))
            {
                if r.status == 200 {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(BenchError::Setup(format!(
            "nginx did not answer at http://{}{path} within 10 s (its log: {})",
            self.addr,
            self.dir.join("error.log").display()
        )))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A configuration that keeps nginx in the foreground, unprivileged paths
/// only under `dir`, keep-alive on (the default), and no access log (writing
/// it would cost more than the diode).
fn config(dir: &Path, root: &Path, addr: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         \x20 keepalive_requests 1000000;\n  default_type text/plain;\n\
         \x20 server {{\n    listen {addr};\n    root {};\n  }}\n}}\n",
        root.display()
    )
}

/// One wrk run: completed requests per second and failed requests.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    /// Requests per second (wrk's "Requests/sec").
    pub rps: f64,
    /// Transfer in MB/s (10^6), from the requests and the body size.
    pub mb_per_s: f64,
    /// Non-2xx responses plus socket errors (connect, read, write, timeout).
    pub failures: u64,
}

/// Runs wrk against `url` for `seconds` (whole seconds, at least 1).
pub fn wrk(url: &str, body: usize, seconds: f64) -> Result<WrkRun, BenchError> {
    let secs = seconds.round().max(1.0) as u64;
    let out = Command::new("wrk")
        .args([
            "-t",
            &WRK_THREADS.to_string(),
            "-c",
            &WRK_CONNECTIONS.to_string(),
            "-d",
            &format!("{secs}s"),
            "--timeout",
            "2s",
            url,
        ])
        .output()
        .map_err(|e| BenchError::io("running wrk", e))?;
    if !out.status.success() {
        return Err(BenchError::Tool {
            what: format!("wrk {url}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text, body)
        .ok_or_else(|| BenchError::Setup(format!("wrk printed no \"Requests/sec\" line:\n{text}")))
}

/// Reads wrk's summary: "Requests/sec: N", optional "Non-2xx or 3xx
/// responses: N" and "Socket errors: connect A, read B, write C, timeout D".
fn parse_wrk(text: &str, body: usize) -> Option<WrkRun> {
    let rps: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let mut failures = 0u64;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            failures += n.trim().parse::<u64>().unwrap_or(u64::MAX / 2);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            failures += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some(WrkRun {
        rps,
        mb_per_s: rps * body as f64 / 1e6,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_summary_with_errors_is_read() {
        let text = "Running 2s test @ http://172.30.99.11:8081/100000.txt\n\
            \x20 2 threads and 8 connections\n\
            \x20 Socket errors: connect 0, read 3, write 0, timeout 2\n\
            \x20 Non-2xx or 3xx responses: 4\n\
            Requests/sec:   1234.50\n\
            Transfer/sec:    117.85MB\n";
        let run = parse_wrk(text, 100_000).unwrap();
        assert_eq!(run.rps, 1234.5);
        assert_eq!(run.failures, 9);
        assert!((run.mb_per_s - 123.45).abs() < 1e-9);
    }

    #[test]
    fn wrk_summary_without_requests_is_refused() {
        assert!(parse_wrk("unable to connect to 172.30.99.11:8081\n", 10).is_none());
    }
}
