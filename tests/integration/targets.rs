//! Web servers for probes to check: HTTP/1.1 with keep-alive on 127.0.0.1,
//! plain or over rustls with certificates made here (rcgen), serving pages
//! that are slow, redirect, large, not UTF-8, or echo what was sent. Each
//! runs until the test process ends.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server certificate's `notAfter`: 2030-06-15T00:00:00Z.
pub const SERVER_CERT_EXPIRY: i64 = 1_907_712_000;

/// A CA, a server certificate for `localhost` only (not `127.0.0.1`, so
/// `server_name` matters), and a client certificate, as PEM files.
pub struct Pki {
    /// Holds the files while the PKI lives.
    _dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_pem: String,
    ca_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.not_after = rcgen::date_time_ymd(2035, 1, 1);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        server_params.not_after = rcgen::date_time_ymd(2030, 6, 15);
        let server = server_params.signed_by(&server_key, &issuer).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["prober".into()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca_file: write("ca.crt", &ca.pem()),
            client_cert_file: write("client.crt", &client.pem()),
            client_key_file: write("client.key", &client_key.serialize_pem()),
            server_chain: vec![server.der().clone()],
            server_key_pem: server_key.serialize_pem(),
            ca_pem: ca.pem(),
            _dir: dir,
        }
    }

    /// The server side: this PKI's server certificate, and client
    /// certificates from its CA required when `client_auth`.
    fn server_config(&self, client_auth: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).unwrap();
        Arc::new(
            builder
                .with_single_cert(self.server_chain.clone(), key)
                .unwrap(),
        )
    }
}

/// A running server: where it is, and how many connections and requests
/// it has taken.
pub struct Target {
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub base: String,
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

/// A plain HTTP target.
pub fn http() -> Target {
    serve(None)
}

/// An HTTPS target with `pki`'s server certificate.
pub fn https(pki: &Pki, client_auth: bool) -> Target {
    serve(Some(pki.server_config(client_auth)))
}

/// An HTTPS target showing a self-signed certificate for `localhost` that is
/// marked as a CA, as `openssl req -x509` makes one, written to `cert_file`
/// for a probe's `ca_file`. `not_after` is its expiry.
pub fn https_self_signed(cert_file: &std::path::Path, not_after: (i32, u8, u8)) -> Target {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(cert_file, cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    serve(Some(Arc::new(config)))
}

fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let base = match tls {
        Some(_) => format!("https://localhost:{port}"),
        None => format!("http://127.0.0.1:{port}"),
    };
    let (c, r) = (connections.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let (tls, r) = (tls.clone(), r.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                match tls {
                    None => converse(stream, &r),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        converse(rustls::StreamOwned::new(conn, stream), &r);
                    }
                }
            });
        }
    });
    Target {
        base,
        port,
        connections,
        requests,
    }
}

/// Answers requests on one connection until the client closes it.
fn converse<S: Read + Write>(stream: S, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("/").to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let stream = reader.get_mut();
        if answer(stream, &method, &path, &headers, &body).is_err() {
            return;
        }
        if headers.get("connection").is_some_and(|c| c == "close") {
            return;
        }
    }
}

fn answer(
    out: &mut impl Write,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> std::io::Result<()> {
    let respond = |out: &mut dyn Write, status: &str, extra: &str, body: &[u8]| {
        write!(
            out,
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n",
            body.len()
        )?;
        out.write_all(body)?;
        out.flush()
    };
    match path {
        "/ok" | "/fresh" => respond(out, "200 OK", "", b"all ok"),
        "/fail" => respond(out, "500 Internal Server Error", "", b"boom"),
        "/wrongbody" => respond(out, "200 OK", "", b"nope"),
        "/slow" => {
            std::thread::sleep(Duration::from_millis(600));
            respond(out, "200 OK", "", b"all ok")
        }
        // Issue 14, input 9: the headers at once, the body 2 s later.
        "/slow-body" => {
            write!(out, "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n")?;
            out.flush()?;
            std::thread::sleep(Duration::from_secs(2));
            out.write_all(b"all ok")?;
            out.flush()
        }
        "/redirect" => respond(out, "302 Found", "location: /ok\r\n", b""),
        "/loop" => respond(out, "302 Found", "location: /loop\r\n", b""),
        "/big" => respond(out, "200 OK", "", &vec![b'x'; 3 << 20]),
        "/latin1" => respond(
            out,
            "200 OK",
            "content-type: text/html; charset=iso-8859-1\r\n",
            b"<p>caf\xe9 ok</p>",
        ),
        "/echo" => {
            let asked = method == "POST" && headers.get("x-probe").is_some_and(|v| v == "yes");
            match asked {
                true => {
                    let mut said = b"got ".to_vec();
                    said.extend_from_slice(body);
                    respond(out, "200 OK", "", &said)
                }
                false => respond(out, "400 Bad Request", "", b"say please"),
            }
        }
        _ => respond(out, "404 Not Found", "", b""),
    }
}
