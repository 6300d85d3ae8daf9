//! The release exporter as the load benches start it: on 127.0.0.1:0 with a
//! config and a state directory, its address read from its log.
//!
//! Included by each bench with `#[path = "support/exporter.rs"] mod exporter;`
//! (a file under `benches/support/` is not a bench of its own).

// Each bench reads the fields it needs; none reads them all.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Exporter {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The StatsD source's UDP address, when one is configured.
    pub udp: Option<String>,
    /// The restore time the exporter logged (`took=`).
    pub took: Option<String>,
    /// From spawn to the "listening" line.
    pub startup: Duration,
}

/// The value after ` key=` in a logfmt line.
fn field(line: &str, key: &str) -> Option<String> {
    line.split(&format!(" {key}="))
        .nth(1)
        .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
}

impl Exporter {
    /// Spawns the exporter and waits until it listens; its later log is
    /// drained so it never blocks on a full pipe.
    pub fn start(config: &Path, data: &Path) -> Exporter {
        Exporter::start_with(config, data, &[])
    }

    /// As [`Exporter::start`], with extra flags.
    pub fn start_with(config: &Path, data: &Path, flags: &[&str]) -> Exporter {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_amaze-exporter"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .args(flags)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start exporter");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (mut udp, mut took, mut addr) = (None, None, None);
        for line in lines.by_ref().map_while(Result::ok) {
            udp = udp.or_else(|| field(&line, "udp"));
            took = took.or_else(|| field(&line, "took"));
            addr = field(&line, "addr");
            if addr.is_some() {
                break;
            }
        }
        let startup = started.elapsed();
        let addr = addr.expect("exporter did not report its address");
        std::thread::spawn(move || lines.for_each(drop));
        Exporter {
            child,
            base: format!("http://{addr}"),
            udp,
            took,
            startup,
        }
    }

    /// `kill -9`: no final snapshot.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
