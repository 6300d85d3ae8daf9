//! The log tail against real software: nginx (Debian) writes its access
//! log under a bounded load while real logrotate rotates it, and the
//! exporter is stopped and killed in between. Every line the log files hold
//! is counted once, and the quantiles match exact ones within 1%.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amaze_exporter::decimal::Decimal;

use crate::conformance::wait_for;
use crate::server::{Exporter, Home, tool_available};

/// An upstream that answers after a few milliseconds, 503 for every 37th
/// request, so nginx logs varied times and some failures.
fn backend() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    std::thread::spawn(move || {
        let mut n = 0u64;
        for stream in listener.incoming() {
            if done.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            n += 1;
            let (wait, status) = (
                n % 23,
                if n.is_multiple_of(37) {
                    "503 Busy"
                } else {
                    "200 OK"
                },
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf);
                std::thread::sleep(Duration::from_millis(wait));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            });
        }
    });
    (port, stop)
}

struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, backend: u16) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            r#"worker_processes 1;
user root root;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format amaze '$uri $status $request_time';
    access_log {dir}/access.log amaze;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{backend}; }}
    }}
}}
"#,
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            dir: dir.to_owned(),
            port,
        }
    }

    /// `requests` GETs from 4 clients, routes `/r0`..`/r4`.
    fn load(&self, requests: usize) {
        let port = self.port;
        let clients: Vec<_> = (0..4)
            .map(|c| {
                std::thread::spawn(move || {
                    let agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .new_agent();
                    for i in (c..requests).step_by(4) {
                        let _ = agent
                            .get(format!("http://127.0.0.1:{port}/r{}", i % 5))
                            .call();
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    }

    /// Real logrotate with `how` (`create` with a late reopen, or
    /// `copytruncate`), forced.
    fn rotate(&self, how: &str) {
        let pid = self.child.id();
        let conf = format!(
            "{dir}/access.log {{\n  rotate 20\n  {how}\n  postrotate\n    sleep 1.5; kill -USR1 {pid}\n  endscript\n}}\n",
            dir = self.dir.display()
        );
        let conf = if how == "copytruncate" {
            format!(
                "{dir}/access.log {{\n  rotate 20\n  copytruncate\n}}\n",
                dir = self.dir.display()
            )
        } else {
            conf
        };
        std::fs::write(self.dir.join("logrotate.conf"), conf).unwrap();
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(self.dir.join("logrotate.state"))
            .arg(self.dir.join("logrotate.conf"))
            .output()
            .expect("run logrotate");
        assert!(
            out.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every line of the access log and its rotations, as (route, status,
    /// seconds).
    fn lines(&self) -> Vec<(String, u16, f64)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("access.log") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            for line in text.lines() {
                let mut parts = line.split(' ');
                let (Some(route), Some(status), Some(secs)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    panic!("unexpected line {line:?}");
                };
                out.push((
                    route.to_owned(),
                    status.parse().unwrap(),
                    secs.parse().unwrap(),
                ));
            }
        }
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too, which SIGKILL would orphan.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path) -> String {
    format!(
        r#"version: 1
slas:
  - name: web
    promise: 40ms
    objective: 90%
    min_deliveries: 1
    labels: [route]
sources:
  log_tail:
    - name: nginx
      paths: ["{}/access.log"]
      start_at: beginning
      regex: '^(?P<route>\S+) (?P<status>\d+) (?P<secs>[\d.]+)$'
      sla: web
      duration_field: secs
      duration_unit: s
      failed_field: status
      failed_match: '^5'
      labels: {{route: route}}
      poll_interval: 50ms
      rotate_wait: 3s
"#,
        dir.display()
    )
}

fn counted(ex: &Exporter) -> f64 {
    ex.metrics()
        .sum("amaze_deliveries_total", &[("sla", "web")])
}

#[test]
fn nginx_access_logs_rotated_by_logrotate_are_counted_exactly_once() {
    if !tool_available_quietly("nginx") || !tool_available("logrotate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let (backend, stop_backend) = backend();
    let nginx = Nginx::start(dir.path(), backend);
    let home = Home::new(&config(dir.path()));
    let ex = home.start(&[]);
    nginx.load(600);
    // Rotation with a late reopen: nginx writes to the renamed file for 1.5 s.
    std::thread::scope(|s| {
        s.spawn(|| nginx.rotate("create"));
        nginx.load(600);
    });
    // Stopped mid-load, then killed with lines unread, then rotated while
    // down.
    std::thread::scope(|s| {
        s.spawn(|| nginx.load(400));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(ex.stop(), Some(0));
    });
    let ex = home.start(&[]);
    nginx.load(300);
    ex.crash();
    nginx.load(300);
    nginx.rotate("create");
    nginx.load(200);
    let ex = home.start(&[]);
    nginx.load(200);
    // nginx writes a request's log line after its response: wait for the last.
    wait_for("nginx logged every request", || nginx.lines().len() >= 2600);
    let lines = nginx.lines();
    assert_eq!(lines.len(), 2600, "nginx logged every request once");
    wait_for("every logged line counted", || {
        counted(&ex) >= lines.len() as f64
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counted(&ex), lines.len() as f64, "each line counted once");
    let m = ex.metrics();
    let failed = lines.iter().filter(|l| l.1 >= 500).count() as f64;
    assert_eq!(
        m.sum(
            "amaze_deliveries_total",
            &[("sla", "web"), ("result", "failed")]
        ),
        failed
    );
    for route in ["/r0", "/r1", "/r2", "/r3", "/r4"] {
        let logged = lines.iter().filter(|l| l.0 == route).count() as f64;
        assert_eq!(
            m.sum("amaze_deliveries_total", &[("route", route)]),
            logged,
            "{route}"
        );
    }
    // Quantiles over the day against the exact nearest-rank ones, failures
    // last.
    let mut seconds: Vec<f64> = lines
        .iter()
        .map(|l| if l.1 >= 500 { f64::INFINITY } else { l.2 })
        .collect();
    seconds.sort_by(f64::total_cmp);
    for q in ["0.5", "0.9"] {
        let exact = seconds[Decimal::parse(q).unwrap().rank(seconds.len() as u64) as usize - 1];
        let got = m
            .value(
                "amaze_quantile_seconds",
                &[("sla", "web"), ("scope", "sla"), ("window", "1d"), ("q", q)],
            )
            .unwrap();
        assert!(
            (got - exact).abs() <= exact * 0.01 + 1e-9,
            "p{q}: {got} against {exact}"
        );
    }
    // copytruncate: the lines copied away before they were read are read
    // from the copy; what nginx wrote between logrotate's copy and its
    // truncation is in no file, and at most that is counted beyond them.
    std::thread::scope(|s| {
        s.spawn(|| nginx.load(600));
        std::thread::sleep(Duration::from_millis(100));
        nginx.rotate("copytruncate");
    });
    let lines = nginx.lines();
    wait_for("lines after copytruncate", || {
        counted(&ex) >= lines.len() as f64 - 5.0
    });
    std::thread::sleep(Duration::from_millis(500));
    let difference = counted(&ex) - lines.len() as f64;
    eprintln!(
        "copytruncate: {} lines on disk, {} counted",
        lines.len(),
        counted(&ex)
    );
    assert!(
        (0.0..=5.0).contains(&difference),
        "{difference} lines apart"
    );
    stop_backend.store(true, Ordering::Relaxed);
}

/// nginx answers `-v` on stderr; `tool_available` runs `--version`.
fn tool_available_quietly(tool: &str) -> bool {
    let found = Command::new(tool).arg("-v").output().is_ok();
    if !found {
        tool_available(tool);
    }
    found
}
