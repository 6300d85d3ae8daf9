//! One probe check, measured the way Prometheus's blackbox_exporter
//! measures: a fresh connection every time, each phase timed (resolve,
//! connect, TLS, processing up to the response's first byte, transfer of
//! the body), redirects followed as set, and the whole response read, body
//! included, before the check counts as answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::{Position, Url};

use super::tls::earliest_expiry;
use super::{Method, ProbeConfig};

/// Redirects followed at most, as browsers and blackbox_exporter allow.
pub const MAX_REDIRECTS: usize = 10;

/// What a check sends as `User-Agent` unless the probe sets one.
const USER_AGENT: &str = concat!("amaze-exporter/", env!("CARGO_PKG_VERSION"));

/// Time spent in each phase of a check, summed over its redirects.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// Looking the host up.
    pub resolve: Duration,
    /// Opening the TCP connection.
    pub connect: Duration,
    /// The TLS handshake (https only).
    pub tls: Duration,
    /// From sending the request to the response's first byte.
    pub processing: Duration,
    /// Reading the body.
    pub transfer: Duration,
}

impl Phases {
    /// Each phase by its `phase` label value.
    pub fn labelled(&self) -> [(&'static str, Duration); 5] {
        [
            ("resolve", self.resolve),
            ("connect", self.connect),
            ("tls", self.tls),
            ("processing", self.processing),
            ("transfer", self.transfer),
        ]
    }
}

/// Why a check failed: the `reason` label of
/// `amaze_probe_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The host could not be looked up.
    Resolve,
    /// No address took the connection.
    Connect,
    /// The TLS handshake failed (untrusted or expired certificate, wrong
    /// name, no common protocol).
    Tls,
    /// No complete answer within the probe's timeout.
    Timeout,
    /// The server broke HTTP (a bad response, a reset mid-body).
    Http,
    /// A status the probe does not expect.
    Status,
    /// A body longer than `body_limit`.
    BodyTooLarge,
    /// A body without `expect_body` or not matching `expect_body_regex`.
    BodyMismatch,
    /// More than [`MAX_REDIRECTS`] redirects, or one to nowhere.
    Redirects,
}

impl Reason {
    /// Every reason, so each probe's counters show from the start.
    pub const ALL: [Reason; 9] = [
        Reason::Resolve,
        Reason::Connect,
        Reason::Tls,
        Reason::Timeout,
        Reason::Http,
        Reason::Status,
        Reason::BodyTooLarge,
        Reason::BodyMismatch,
        Reason::Redirects,
    ];

    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Resolve => "resolve",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Timeout => "timeout",
            Reason::Http => "http",
            Reason::Status => "status",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyMismatch => "body_mismatch",
            Reason::Redirects => "redirects",
        }
    }
}

/// A failed check: its reason, and what happened in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The counted reason.
    pub reason: Reason,
    /// For the log.
    pub detail: String,
}

impl Failure {
    fn new(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// Answered as expected, or why not.
    pub result: Option<Failure>,
    /// From the start of the lookup to the end of the body: the delivery
    /// time.
    pub took: Duration,
    /// The phases, as far as the check got.
    pub phases: Phases,
    /// The last response's status.
    pub status: Option<u16>,
    /// When the first of the certificates the (last) server showed expires,
    /// in unix seconds.
    pub cert_expiry: Option<i64>,
}

/// A connection a check talks HTTP over: plain TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Ends a connection's driver task when the check is done with it.
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one check of `config`, bounded by its timeout.
pub async fn check(config: &ProbeConfig, connector: &TlsConnector) -> Checked {
    let started = Instant::now();
    let mut out = Checked::default();
    let exchanged =
        tokio::time::timeout(config.timeout, exchange(config, connector, &mut out)).await;
    out.result = match exchanged {
        Ok(Ok(())) => None,
        Ok(Err(f)) => Some(f),
        Err(_) => Some(Failure::new(
            Reason::Timeout,
            format!(
                "no complete answer within {}",
                humantime::format_duration(config.timeout)
            ),
        )),
    };
    out.took = started.elapsed();
    out
}

/// Requests, follows redirects and reads the final response whole.
async fn exchange(
    config: &ProbeConfig,
    connector: &TlsConnector,
    out: &mut Checked,
) -> Result<(), Failure> {
    let mut url = config.url.clone();
    let mut method = config.method;
    let mut body = config.body.clone();
    let mut hops = 0;
    loop {
        let io = connect(&url, config, connector, out).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| Failure::new(Reason::Http, format!("HTTP handshake failed: {e}")))?;
        let (ended, why_ended) = tokio::sync::oneshot::channel();
        let _driver = Driver(tokio::spawn(async move {
            if let Err(e) = conn.await {
                let _ = ended.send(e);
            }
        }));
        let request = request(&url, method, body.as_deref(), config)?;
        let sent = Instant::now();
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                // Under TLS 1.3 a server refuses a client certificate after
                // the handshake: its alert ends the connection, not the
                // handshake. Said as the TLS failure it is.
                let cause = tokio::time::timeout(Duration::from_millis(100), why_ended)
                    .await
                    .ok()
                    .and_then(Result::ok);
                return Err(match cause.as_ref().and_then(tls_cause) {
                    Some(tls) => Failure::new(Reason::Tls, format!("TLS failed: {tls}")),
                    None => Failure::new(Reason::Http, format!("no response: {e}")),
                });
            }
        };
        out.phases.processing += sent.elapsed();
        let status = response.status().as_u16();
        out.status = Some(status);
        let location = response
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
        let keep =
            !redirect && (config.expect_body.is_some() || config.expect_body_regex.is_some());
        let content = read_body(response.into_body(), config.body_limit, keep, out).await?;
        if redirect && config.follow_redirects {
            let Some(location) = location else {
                return Err(Failure::new(
                    Reason::Redirects,
                    format!("status {status} without a Location"),
                ));
            };
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(Failure::new(
                    Reason::Redirects,
                    format!("more than {MAX_REDIRECTS} redirects"),
                ));
            }
            url = url.join(&location).map_err(|e| {
                Failure::new(Reason::Redirects, format!("bad Location `{location}`: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Failure::new(
                    Reason::Redirects,
                    format!("redirect to `{url}`, not http or https"),
                ));
            }
            // As browsers do: 303, and 301/302 after a POST, fetch with GET.
            if status == 303 || (matches!(status, 301 | 302) && method == Method::Post) {
                (method, body) = (Method::Get, None);
            }
            continue;
        }
        return expected(config, status, &content);
    }
}

/// Whether the final response is what the probe expects.
fn expected(config: &ProbeConfig, status: u16, body: &[u8]) -> Result<(), Failure> {
    let status_ok = match config.expect_status.is_empty() {
        true => (200..300).contains(&status),
        false => config.expect_status.contains(&status),
    };
    if !status_ok {
        return Err(Failure::new(
            Reason::Status,
            format!("unexpected status {status}"),
        ));
    }
    if let Some(text) = &config.expect_body
        && memchr::memmem::find(body, text.as_bytes()).is_none()
    {
        return Err(Failure::new(
            Reason::BodyMismatch,
            format!("body does not contain `{text}`"),
        ));
    }
    if let Some(p) = &config.expect_body_regex
        && !p.is_match(body)
    {
        return Err(Failure::new(
            Reason::BodyMismatch,
            format!("body does not match `{}`", p.as_str()),
        ));
    }
    Ok(())
}

/// Looks `url`'s host up, connects, and handshakes TLS for https.
async fn connect(
    url: &Url,
    config: &ProbeConfig,
    connector: &TlsConnector,
    out: &mut Checked,
) -> Result<Box<dyn Stream>, Failure> {
    let host = url
        .host_str()
        .ok_or_else(|| Failure::new(Reason::Resolve, format!("`{url}` has no host")))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let looked_up = Instant::now();
    let addrs: Vec<_> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| Failure::new(Reason::Resolve, format!("cannot look up `{bare}`: {e}")))?
        .collect();
    out.phases.resolve += looked_up.elapsed();
    let connecting = Instant::now();
    let mut failed = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => failed = Some(format!("cannot connect to {addr}: {e}")),
        }
    }
    out.phases.connect += connecting.elapsed();
    let stream = stream.ok_or_else(|| {
        let why = failed.unwrap_or_else(|| format!("`{bare}` has no address"));
        Failure::new(Reason::Connect, why)
    })?;
    let _ = stream.set_nodelay(true);
    if url.scheme() != "https" {
        return Ok(Box::new(stream));
    }
    let name = config
        .tls
        .server_name(host)
        .map_err(|e| Failure::new(Reason::Tls, format!("bad server name {e}")))?;
    let handshake = Instant::now();
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| Failure::new(Reason::Tls, format!("TLS handshake failed: {e}")))?;
    out.phases.tls += handshake.elapsed();
    out.cert_expiry = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(earliest_expiry);
    Ok(Box::new(tls))
}

/// The request for `url`: `Host` and `User-Agent` unless the probe sets
/// them, then the probe's headers and body.
fn request(
    url: &Url,
    method: Method,
    body: Option<&str>,
    config: &ProbeConfig,
) -> Result<hyper::Request<Full<Bytes>>, Failure> {
    let target = &url[Position::BeforePath..Position::AfterQuery];
    let mut builder = hyper::Request::builder()
        .method(method.as_str())
        .uri(if target.is_empty() { "/" } else { target });
    let set = |name: &str| {
        config
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !set("host") {
        builder = builder.header(
            hyper::header::HOST,
            &url[Position::BeforeHost..Position::AfterPort],
        );
    }
    if !set("user-agent") {
        builder = builder.header(hyper::header::USER_AGENT, USER_AGENT);
    }
    for (name, value) in &config.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = Bytes::from(body.unwrap_or("").to_owned());
    builder
        .body(Full::new(body))
        .map_err(|e| Failure::new(Reason::Http, format!("cannot build the request: {e}")))
}

/// Reads the body to its end, at most `limit` bytes, keeping it when
/// `keep` (to match it); the time goes to the transfer phase.
async fn read_body(
    mut body: Incoming,
    limit: u64,
    keep: bool,
    out: &mut Checked,
) -> Result<Vec<u8>, Failure> {
    let reading = Instant::now();
    let mut kept = Vec::new();
    let mut read: u64 = 0;
    let result = loop {
        let Some(frame) = body.frame().await else {
            break Ok(kept);
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => break Err(Failure::new(Reason::Http, format!("body cut short: {e}"))),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        read += data.len() as u64;
        if read > limit {
            break Err(Failure::new(
                Reason::BodyTooLarge,
                format!("body longer than body_limit ({limit} bytes)"),
            ));
        }
        if keep {
            kept.extend_from_slice(&data);
        }
    };
    out.phases.transfer += reading.elapsed();
    result
}

/// The TLS connector of a probe's `tls_config`.
pub fn connector(config: &ProbeConfig) -> Result<TlsConnector, rustls::Error> {
    Ok(TlsConnector::from(Arc::new(config.tls.client_config()?)))
}

/// The rustls error behind `e`, if TLS is why the connection ended.
fn tls_cause(e: &hyper::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(tls.to_string());
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        next = err.source();
    }
    None
}
