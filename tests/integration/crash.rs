//! `kill -9` at random moments under concurrent load: every acknowledged
//! delivery is counted exactly once, and no batch is half applied.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::server::{Exporter, Home};

const CONFIG: &str = r#"
version: 1
slas:
  - name: crash_sync
    promise: 100ms
    objective: 99%
    labels: [client]
  - name: crash_async
    promise: 100ms
    objective: 99%
    durability: async
"#;

const CLIENTS: usize = 4;

/// One request as sent, and whether it was acknowledged with 2xx.
struct Sent {
    body: String,
    lines: u64,
    acked: bool,
}

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn batch(rng: &mut Rng, round: usize, client: usize, seq: usize) -> Sent {
    let lines = 1 + rng.below(20);
    let mut body = String::new();
    for i in 0..lines {
        let ms = 1 + rng.below(150);
        let id = format!("{round}-{client}-{seq}-{i}");
        if (seq + i as usize).is_multiple_of(2) {
            body.push_str(&format!(
                "{{\"sla\":\"crash_sync\",\"duration\":\"{ms}ms\",\"id\":\"{id}\",\"labels\":{{\"client\":\"c{client}\"}}}}\n"
            ));
        } else {
            body.push_str(&format!(
                "{{\"sla\":\"crash_async\",\"duration\":\"{ms}ms\",\"id\":\"{id}\"}}\n"
            ));
        }
    }
    Sent {
        body,
        lines,
        acked: false,
    }
}

/// Pushes batches until the exporter dies; records what was acknowledged.
fn client(base: String, round: usize, client: usize, seed: u64, sent: Arc<Mutex<Vec<Sent>>>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut rng = Rng(seed | 1);
    for seq in 0.. {
        let mut s = batch(&mut rng, round, client, seq);
        let reply = agent
            .post(format!("{base}/api/v1/deliveries"))
            .header("content-type", "application/x-ndjson")
            .send(s.body.as_bytes());
        let alive = match reply {
            Ok(r) => {
                s.acked = r.status().is_success();
                true
            }
            Err(_) => false,
        };
        sent.lock().unwrap().push(s);
        if !alive {
            return;
        }
    }
}

fn total(ex: &Exporter) -> u64 {
    let m = ex.metrics();
    (m.sum("amaze_deliveries_total", &[("sla", "crash_sync")])
        + m.sum("amaze_deliveries_total", &[("sla", "crash_async")])) as u64
}

#[test]
fn kill_9_under_load_loses_and_doubles_nothing() {
    let rounds: usize = std::env::var("AMAZE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("AMAZE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test: {rounds} rounds, AMAZE_CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let home = Home::new(CONFIG);
    let sent = Arc::new(Mutex::new(Vec::new()));
    for round in 0..rounds {
        // Snapshots often, so kills land before, during and after them.
        let ex = home.start(&["--storage.snapshot-interval=150ms"]);
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (base, sent, seed) = (ex.base.clone(), sent.clone(), rng.next());
                std::thread::spawn(move || client(base, round, c, seed, sent))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        ex.crash();
        for t in threads {
            t.join().unwrap();
        }
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let acked: u64 = sent.iter().filter(|s| s.acked).map(|s| s.lines).sum();
    assert!(
        acked > 1000,
        "too little load to prove anything: {acked} acknowledged"
    );

    let ex = home.start(&[]);
    let counted = total(&ex);
    // Send every batch again: a recorded delivery comes back a duplicate.
    let mut recorded = 0;
    let mut unacked_applied = 0;
    for s in &sent {
        let r = ex.push(&s.body);
        assert_eq!(r.status, 200, "{}", r.body);
        let (accepted, duplicates) = (
            r.json()["accepted"].as_u64().unwrap(),
            r.json()["duplicates"].as_u64().unwrap(),
        );
        if s.acked {
            assert_eq!(
                (accepted, duplicates),
                (0, s.lines),
                "an acknowledged batch was lost (seed {seed}):\n{}",
                s.body
            );
        } else {
            assert!(
                accepted == 0 || duplicates == 0,
                "an unacknowledged batch was half applied (seed {seed}):\n{}",
                s.body
            );
            unacked_applied += u64::from(duplicates > 0);
        }
        recorded += duplicates;
    }
    assert_eq!(
        counted, recorded,
        "counted deliveries differ from the distinct ids recorded (seed {seed})"
    );
    eprintln!(
        "crash test: {} batches, {acked} deliveries acknowledged, all counted once; \
         {unacked_applied} unacknowledged batches were applied whole",
        sent.len()
    );
}
