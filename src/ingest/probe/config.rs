//! `sources.probes[]`: active HTTP checks, with blackbox_exporter's names
//! for what they share with it (`tls_config`, `follow_redirects`,
//! `body_size_limit` as `body_limit`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use serde::Deserialize;

use crate::fields::{Problems, Section, Text, bytes, flag, known_sla, one_of, span, text};
use crate::ingest::pattern::Pattern;
use crate::ingest::probe::{DEFAULT_BODY_LIMIT, Method, ProbeConfig, ProbeTls};
use crate::sla::Sla;

/// One `sources.probes` entry as written.
#[derive(Debug, Deserialize)]
pub struct RawProbe {
    pub(crate) name: Option<Text>,
    pub(crate) url: Option<Text>,
    pub(crate) method: Option<Text>,
    pub(crate) sla: Option<Text>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, Text>,
    pub(crate) interval: Option<Text>,
    pub(crate) timeout: Option<Text>,
    #[serde(default)]
    pub(crate) expect_status: Vec<Text>,
    pub(crate) expect_body: Option<Text>,
    pub(crate) expect_body_regex: Option<Text>,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, Text>,
    pub(crate) body: Option<Text>,
    pub(crate) follow_redirects: Option<Text>,
    pub(crate) body_limit: Option<Text>,
    pub(crate) phases: Option<Text>,
    pub(crate) tls_config: Option<RawProbeTls>,
}

/// A probe's `tls_config` as written, named as blackbox_exporter and Prometheus name it.
#[derive(Debug, Deserialize)]
pub struct RawProbeTls {
    pub(crate) ca_file: Option<Text>,
    pub(crate) cert_file: Option<Text>,
    pub(crate) key_file: Option<Text>,
    pub(crate) server_name: Option<Text>,
    pub(crate) insecure_skip_verify: Option<Text>,
}

/// Every key of the shapes above, for "did you mean".
pub const KEYS: &[&str] = &[
    "name",
    "url",
    "method",
    "sla",
    "labels",
    "interval",
    "timeout",
    "expect_status",
    "expect_body",
    "expect_body_regex",
    "headers",
    "body",
    "follow_redirects",
    "body_limit",
    "phases",
    "tls_config",
    "ca_file",
    "cert_file",
    "key_file",
    "server_name",
    "insecure_skip_verify",
];

pub(super) fn probe(
    p: &mut Problems,
    path: &str,
    index: usize,
    raw: &RawProbe,
    slas: &[Sla],
    names: &mut std::collections::HashSet<String>,
) -> Option<ProbeConfig> {
    let mut at = Section::new(p, path);
    // Its series and reload answers go by name: two probes must not share one.
    let name = raw
        .name
        .as_ref()
        .map_or(format!("probe{index}"), |n| n.value.trim().to_owned());
    if !names.insert(name.clone()) {
        at.problem(
            "name",
            raw.name.as_ref(),
            format!("duplicate probe name `{name}`"),
        );
    }
    let url = at.required("url", raw.url.as_ref(), http_url);
    let method = at.or(
        "method",
        raw.method.as_ref(),
        one_of("method", &Method::ALL),
        Method::Get,
    );
    let sla = at.required("sla", raw.sla.as_ref(), |s| known_sla(slas, s));
    let interval = at.or(
        "interval",
        raw.interval.as_ref(),
        span(Duration::from_millis(100), Duration::from_secs(86400)),
        Duration::from_secs(15),
    );
    let timeout = at.or(
        "timeout",
        raw.timeout.as_ref(),
        span(Duration::from_millis(10), Duration::from_secs(300)),
        Duration::from_secs(5).min(interval),
    );
    if timeout > interval {
        let why = "longer than the interval: checks would overlap";
        at.problem("timeout", raw.timeout.as_ref(), why);
    }
    let expect_status = at.each("expect_status", &raw.expect_status, http_status);
    let expect_body_regex = at.optional("expect_body_regex", raw.expect_body_regex.as_ref(), regex);
    let headers = headers(&mut at, raw);
    let body = at.optional("body", raw.body.as_ref(), text);
    let follow_redirects = at.or(
        "follow_redirects",
        raw.follow_redirects.as_ref(),
        flag,
        true,
    );
    let body_limit = at.or(
        "body_limit",
        raw.body_limit.as_ref(),
        bytes(1, 1 << 30),
        DEFAULT_BODY_LIMIT,
    );
    let phases = at.or("phases", raw.phases.as_ref(), flag, false);
    let tls = match &raw.tls_config {
        Some(t) => tls(&mut at, t),
        None => Some(ProbeTls::default()),
    };
    let labels = at.labels(&raw.labels, sla, text);
    if !at.clean() {
        return None;
    }
    Some(ProbeConfig {
        name,
        url: url?,
        method,
        headers,
        body,
        sla: sla?.name.as_str().into(),
        labels,
        interval,
        timeout,
        follow_redirects,
        body_limit,
        expect_status,
        // Not trimmed: the bytes to find, spaces included.
        expect_body: raw.expect_body.as_ref().map(|t| t.value.clone()),
        expect_body_regex,
        phases,
        tls: tls?,
    })
}

/// An http:// or https:// URL with a host.
fn http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    match (url.scheme(), url.host_str()) {
        ("http" | "https", Some(_)) => Ok(url),
        ("http" | "https", None) => Err(format!("`{s}` has no host")),
        _ => Err(format!("`{s}` is not an http:// or https:// URL")),
    }
}

/// An HTTP status code, 100 to 599.
fn http_status(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| format!("`{s}` is not an HTTP status"))
}

fn regex(s: &str) -> Result<Pattern, String> {
    Pattern::new(s).map_err(|e| format!("not a regular expression: {e}"))
}

/// `headers`: each a name and value that can be sent.
fn headers(at: &mut Section<'_>, raw: &RawProbe) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let key = format!("headers.{name}");
        if let Some(v) = at.optional(&key, Some(value), |v| header(name, v)) {
            headers.push((name.clone(), v));
        }
    }
    headers
}

/// A request header's value, if `name` and `value` can be sent.
fn header(name: &str, value: &str) -> Result<String, String> {
    hyper::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not an HTTP header name"))?;
    hyper::header::HeaderValue::from_str(value)
        .map_err(|_| format!("the value of `{name}` cannot be sent in a header"))?;
    Ok(value.to_owned())
}

/// The PEM certificates in file `f`, at least one.
fn certificates(f: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    crate::fields::file::certificates(std::path::Path::new(f))
}

/// `tls_config`: its files read now, so a missing or wrong file stops the
/// config, not a check.
fn tls(at: &mut Section<'_>, raw: &RawProbeTls) -> Option<ProbeTls> {
    let ca = at.optional("tls_config.ca_file", raw.ca_file.as_ref(), certificates);
    let chain = at.optional("tls_config.cert_file", raw.cert_file.as_ref(), certificates);
    let key = at.optional("tls_config.key_file", raw.key_file.as_ref(), |f| {
        crate::fields::file::private_key(std::path::Path::new(f))
    });
    let client = match (chain, key, &raw.cert_file, &raw.key_file) {
        (Some(chain), Some(key), _, _) => Some((chain, Arc::new(key))),
        (_, _, Some(_), None) => {
            at.problem("tls_config.key_file", None, "required with cert_file");
            None
        }
        (_, _, None, Some(k)) => {
            at.problem("tls_config.cert_file", Some(k), "required with key_file");
            None
        }
        _ => None,
    };
    let server_name = at.optional("tls_config.server_name", raw.server_name.as_ref(), |s| {
        rustls::pki_types::ServerName::try_from(s)
            .map(|_| s.to_owned())
            .map_err(|_| format!("`{s}` is not a DNS name or IP address"))
    });
    let insecure_skip_verify = at.or(
        "tls_config.insecure_skip_verify",
        raw.insecure_skip_verify.as_ref(),
        flag,
        false,
    );
    let settings = ProbeTls {
        ca,
        client,
        server_name,
        insecure_skip_verify,
    };
    // rustls checks that the key fits the certificate.
    if let Err(e) = settings.client_config() {
        let where_ = raw.cert_file.as_ref().or(raw.ca_file.as_ref());
        let why = e.to_string();
        // rustls reads X.509 v3 only; `openssl x509 -req` without
        // extensions makes v1, which its message does not name plainly.
        let message = if why.contains("UnsupportedCertVersion") {
            "a certificate is X.509 v1, which rustls does not read: make it v3 (`openssl x509 -req ... -extfile` with extensions, or `openssl req -x509`)".to_owned()
        } else {
            format!("the certificates and key do not work together: {why}")
        };
        at.problem("tls_config", where_, message);
        return None;
    }
    Some(settings)
}
