//! Closed-loop load for the benches: keep-alive connections, each sending
//! one request after another until a deadline; any error ends the bench.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Requests answered, and the time they took.
pub struct Run {
    pub requests: u64,
    pub elapsed: Duration,
}

/// GETs `url`, or POSTs `body` to it as `(content type, bytes)`, over
/// `connections` for `seconds`.
pub fn run(url: &str, body: Option<(&str, Arc<Vec<u8>>)>, connections: usize, seconds: u64) -> Run {
    let requests = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let url = url.to_owned();
            let body = body.as_ref().map(|(ct, b)| (ct.to_string(), b.clone()));
            let requests = requests.clone();
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(true)
                    .build()
                    .new_agent();
                while Instant::now() < deadline {
                    let answered = match &body {
                        Some((ct, b)) => agent
                            .post(&url)
                            .header("content-type", ct)
                            .send(&b[..])
                            .and_then(|mut r| r.body_mut().read_to_vec()),
                        None => agent
                            .get(&url)
                            .call()
                            .and_then(|mut r| r.body_mut().read_to_vec()),
                    };
                    if let Err(e) = answered {
                        panic!("request failed: {e}");
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    Run {
        requests: requests.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}
