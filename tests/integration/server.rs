//! Starts the real binary on 127.0.0.1 with a free port and stops it on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub struct Exporter {
    child: Child,
    pub base: String,
    agent: ureq::Agent,
    log: Arc<Mutex<Vec<String>>>,
    _home: Option<Home>,
}

/// A response reduced to what tests assert on; its body as text, or as
/// bytes (`Reply<Vec<u8>>`) for answers that are not text.
pub struct Reply<B = String> {
    pub status: u16,
    pub body: B,
    pub headers: Vec<(String, String)>,
}

fn bytes_of(r: &mut ureq::http::Response<ureq::Body>) -> Reply<Vec<u8>> {
    Reply {
        status: r.status().as_u16(),
        headers: headers_of(r),
        body: r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("body"),
    }
}

fn headers_of<B>(r: &ureq::http::Response<B>) -> Vec<(String, String)> {
    r.headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect()
}

impl<B> Reply<B> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A config file and a state directory that outlive any one exporter process.
pub struct Home {
    dir: tempfile::TempDir,
    data: Option<PathBuf>,
}

impl Home {
    pub fn new(config: &str) -> Home {
        let home = Home {
            dir: tempfile::tempdir().expect("temp dir"),
            data: None,
        };
        home.write_config(config);
        home
    }

    /// A home whose state directory is `data` (a mount point, say).
    pub fn with_data(config: &str, data: PathBuf) -> Home {
        Home {
            data: Some(data),
            ..Home::new(config)
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("amaze.yaml")
    }

    pub fn data(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    pub fn write_config(&self, config: &str) {
        std::fs::write(self.config(), config).expect("write config");
    }

    /// Starts an exporter on this home with extra flags.
    pub fn start(&self, flags: &[&str]) -> Exporter {
        self.try_start(flags)
            .unwrap_or_else(|log| panic!("exporter did not start:\n{log}"))
    }

    /// Starts an exporter, or returns what it logged before it exited.
    pub fn try_start(&self, flags: &[&str]) -> Result<Exporter, String> {
        self.try_start_with_env(flags, &[])
    }

    /// As [`Home::try_start`], with extra environment variables.
    pub fn try_start_with_env(
        &self,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Exporter, String> {
        self.spawn(&[], flags, env)
    }

    /// Starts an exporter through `wrapper`, a command that execs the
    /// exporter in its own process (such as `prlimit --nofile=1024:1024`).
    pub fn start_wrapped(&self, wrapper: &[&str], flags: &[&str]) -> Exporter {
        self.spawn(wrapper, flags, &[])
            .unwrap_or_else(|log| panic!("exporter did not start:\n{log}"))
    }

    fn spawn(
        &self,
        wrapper: &[&str],
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Exporter, String> {
        let bin = env!("CARGO_BIN_EXE_amaze-exporter");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg(format!("--config.file={}", self.config().display()))
            .arg(format!("--storage.path={}", self.data().display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .args(flags)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn amaze-exporter");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // logfmt (` addr=...`) or JSON (`"addr":"..."`), of the
                // main listener (OTLP/gRPC logs an address of its own).
                let main = line.contains("amaze-exporter listening");
                let addr = match line.split(" addr=").nth(1).filter(|_| main) {
                    Some(a) => a.split_whitespace().next().map(str::to_owned),
                    None if !main => None,
                    None => line
                        .split("\"addr\":\"")
                        .nth(1)
                        .and_then(|a| a.split('"').next())
                        .map(str::to_owned),
                };
                // Logged before it is announced, so the log holds the line.
                lines.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Let the reader thread drain what is left.
                std::thread::sleep(Duration::from_millis(100));
                return Err(log.lock().unwrap().join("\n"));
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Exporter {
            child,
            base: format!("http://{addr}"),
            agent,
            log,
            _home: None,
        })
    }
}

impl Exporter {
    /// Starts the exporter with `config` (YAML text) in a fresh home and waits until it listens.
    pub fn start(config: &str) -> Exporter {
        let home = Home::new(config);
        let mut ex = home.start(&[]);
        ex._home = Some(home);
        ex
    }

    /// `127.0.0.1:PORT`, for clients that speak TCP themselves.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Everything the exporter logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{name} failed");
    }

    /// Attaches `strace -f` to the running exporter with `faults` (`-e
    /// inject=...` options): from now on the kernel's answers to the chosen
    /// system calls are replaced, until the returned guard is dropped.
    pub fn inject(&self, faults: &[&str]) -> Injection {
        let pid = self.child.id();
        let strace = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-p", &pid.to_string()])
            .args(faults)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strace");
        let status = format!("/proc/{pid}/status");
        let traced = || {
            std::fs::read_to_string(&status).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !traced() {
            assert!(
                std::time::Instant::now() < deadline,
                "strace did not attach (ptrace not allowed?)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Every thread is attached a moment after the first.
        std::thread::sleep(Duration::from_millis(200));
        Injection(strace)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code and everything logged.
    pub fn stop_and_log(self) -> (Option<i32>, String) {
        let log = self.log.clone();
        let code = self.stop();
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let lines = log.lock().unwrap().join("\n");
        (code, lines)
    }

    /// SIGTERM, then waits for the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "exporter did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .expect("GET");
        let headers = headers_of(&r);
        Reply {
            status: r.status().as_u16(),
            body: r.body_mut().read_to_string().expect("body"),
            headers,
        }
    }

    /// GET with request headers, the body kept as bytes (gzip, protobuf).
    pub fn get_bytes(&self, path: &str, headers: &[(&str, &str)]) -> Reply<Vec<u8>> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut r = request.call().expect("GET");
        bytes_of(&mut r)
    }

    /// POST with request headers, the answer kept as bytes (protobuf).
    pub fn post_bytes(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply<Vec<u8>> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut r = request.send(body).expect("POST");
        bytes_of(&mut r)
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.post_with(path, content_type, body, &[])
    }

    /// POST with extra request headers.
    pub fn post_with(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut r = request.send(body).expect("POST");
        let headers = headers_of(&r);
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .expect("body");
        Reply {
            status: r.status().as_u16(),
            body,
            headers,
        }
    }

    pub fn reload(&self) -> Reply {
        self.post("/-/reload", "text/plain", b"")
    }

    pub fn push(&self, ndjson: &str) -> Reply {
        self.post(
            "/api/v1/deliveries",
            "application/x-ndjson",
            ndjson.as_bytes(),
        )
    }

    pub fn metrics(&self) -> Metrics {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200);
        Metrics(r.body)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// strace attached to an exporter; detached (the faults end) on drop.
pub struct Injection(Child);

impl Drop for Injection {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scraped exposition, with lookups by metric name and labels.
pub struct Metrics(pub String);

impl Metrics {
    /// Value of the one sample of `name` whose labels include every `labels` pair.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
                if metric != name {
                    return None;
                }
                let all = labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                // An unlisted SLA label would make the match ambiguous: require exact label count.
                let count = rest.matches("=\"").count();
                (all && count == labels.len()).then(|| parse_value(value))
            })
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matched {} samples",
            found.len()
        );
        found.first().copied()
    }
}

impl Metrics {
    /// Sum of every sample of `name` whose labels include every `labels` pair.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
                let all = labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                (metric == name && all).then(|| parse_value(value))
            })
            .sum()
    }

    /// The SLA figures and settings alone: every `amaze_` sample but the
    /// exporter's own health, which legitimately differs between processes.
    pub fn figures(&self) -> Vec<String> {
        const OWN: [&str; 9] = [
            "amaze_ingest_",
            "amaze_report_",
            "amaze_window_memory",
            "amaze_build_",
            "amaze_config_",
            "amaze_storage_",
            "amaze_wal_",
            "amaze_snapshot_",
            "amaze_recovery_",
        ];
        self.0
            .lines()
            .filter(|l| l.starts_with("amaze_") && !OWN.iter().any(|o| l.starts_with(o)))
            .map(str::to_owned)
            .collect()
    }
}

fn parse_value(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => v.parse().unwrap_or(f64::NAN),
    }
}

/// Whether `python3` can import `module` (from the PyPI package `pip`); in
/// CI (`AMAZE_REQUIRE_TOOLS=1`) a missing one fails the test.
pub fn python_has(module: &str, pip: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("AMAZE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "python3 module {module} is required (pip install {pip})"
        );
        eprintln!("skipping: python3 module {module} is not installed (pip install {pip})");
    }
    ok
}

/// Fails in CI (AMAZE_REQUIRE_TOOLS=1) when `tool` is missing; elsewhere
/// returns false after saying why the test is skipped.
/// A port free now on 127.0.0.1, for a server that must come back on the
/// same one (bound, noted, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn tool_available(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("AMAZE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{tool} is required (AMAZE_REQUIRE_TOOLS=1) but not installed"
        );
        eprintln!("skipping: {tool} is not installed (.ci/run installs it)");
    }
    found
}
