//! `--web.config.file`, in the Prometheus exporter-toolkit format: TLS with
//! rustls (optionally requiring client certificates) and basic auth with
//! bcrypt hashes, so the exporter fits existing scrape configs.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
//!   client_ca_file: ca.crt
//!   min_version: TLS12                              # or TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...                          # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
}

/// The web config, checked: a TLS server config and bcrypt hashes by user.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// The TLS server settings, when `tls_server_config` is set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// User name to bcrypt hash.
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Every problem of a web config file at once.
#[derive(Debug, thiserror::Error)]
#[error("web config {path}: {}", .problems.join("; "))]
pub struct WebConfigError {
    /// The file.
    pub path: PathBuf,
    /// Each problem, with its key.
    pub problems: Vec<String>,
}

impl WebConfig {
    /// Reads and checks `path`; relative file names in it are relative to
    /// the file's directory, as in the exporter toolkit.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let fail = |problems: Vec<String>| WebConfigError {
            path: path.to_owned(),
            problems,
        };
        let text = crate::fields::file::text(path, crate::fields::file::CONFIG_BYTES)
            .map_err(|e| fail(vec![format!("cannot read it: {e}")]))?;
        let raw: RawWebConfig =
            serde_saphyr::from_str(&text).map_err(|e| fail(vec![e.to_string()]))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let tls = raw.tls_server_config.and_then(|t| match tls(&t, dir) {
            Ok(c) => Some(Arc::new(c)),
            Err(mut p) => {
                problems.append(&mut p);
                None
            }
        });
        for (user, hash) in &raw.basic_auth_users {
            if bcrypt::verify("", hash).is_err() {
                problems.push(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        Ok(WebConfig {
            tls,
            users: raw.basic_auth_users,
        })
    }
}

fn tls(raw: &RawTls, dir: &Path) -> Result<rustls::ServerConfig, Vec<String>> {
    let mut problems = Vec::new();
    let file = |name: &str, v: &Option<String>, problems: &mut Vec<String>| match v {
        Some(f) => Some(dir.join(f)),
        None => {
            problems.push(format!("tls_server_config.{name}: required"));
            None
        }
    };
    let cert_file = file("cert_file", &raw.cert_file, &mut problems);
    let key_file = file("key_file", &raw.key_file, &mut problems);
    let certs = cert_file
        .and_then(|f| certificates(&f, &mut problems))
        .unwrap_or_default();
    let key = key_file.and_then(|f| private_key(&f, &mut problems));
    let versions = versions(raw.min_version.as_deref(), &mut problems);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| vec![format!("tls_server_config: {e}")])?;
    let verifier = client_verifier(raw, dir, provider, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(key), false) = (key, certs.is_empty()) else {
        return Err(vec![
            "tls_server_config: certificate and key are required".to_owned(),
        ]);
    };
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        vec![format!(
            "tls_server_config: certificate and key do not fit: {e}"
        )]
    })?;
    // HTTP/1.1 is what is served: offering h2 would have clients that
    // prefer it (curl, browsers) speak HTTP/2 to an HTTP/1.1 server.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The PEM certificates of `cert_file`, at least one.
fn certificates(path: &Path, problems: &mut Vec<String>) -> Option<Vec<CertificateDer<'static>>> {
    match crate::fields::file::certificates(path) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(format!("tls_server_config.cert_file: {e}"));
            None
        }
    }
}

/// The PEM private key of `key_file`.
fn private_key(path: &Path, problems: &mut Vec<String>) -> Option<PrivateKeyDer<'static>> {
    match crate::fields::file::private_key(path) {
        Ok(k) => Some(k),
        Err(e) => {
            problems.push(format!("tls_server_config.key_file: {e}"));
            None
        }
    }
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The protocol versions from `min_version` (TLS 1.2 by default).
fn versions(
    min_version: Option<&str>,
    problems: &mut Vec<String>,
) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match min_version {
        None | Some("TLS12") => rustls::ALL_VERSIONS,
        Some("TLS13") => TLS13_ONLY,
        Some(other) => {
            problems.push(format!(
                "tls_server_config.min_version: `{other}` is not supported; use TLS12 or TLS13"
            ));
            rustls::ALL_VERSIONS
        }
    }
}

/// The client-certificate check of `client_auth_type` and `client_ca_file`.
fn client_verifier(
    raw: &RawTls,
    dir: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
    problems: &mut Vec<String>,
) -> Option<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    match (raw.client_auth_type.as_deref(), &raw.client_ca_file) {
        (None | Some("NoClientCert"), None) => None,
        (Some(kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven")), Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            let path = dir.join(ca);
            match crate::fields::file::certificates(&path) {
                Ok(cas) => {
                    for c in cas {
                        if let Err(e) = roots.add(c) {
                            problems.push(format!("tls_server_config.client_ca_file: {e}"));
                        }
                    }
                }
                Err(e) => problems.push(format!(
                    "tls_server_config.client_ca_file: cannot read {}: {e}",
                    path.display()
                )),
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if kind == "VerifyClientCertIfGiven" {
                v.allow_unauthenticated()
            } else {
                v
            };
            match v.build() {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(format!("tls_server_config.client_ca_file: {e}"));
                    None
                }
            }
        }
        (Some(kind), _) => {
            problems.push(format!(
                "tls_server_config.client_auth_type: `{kind}` needs client_ca_file and is one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ));
            None
        }
        (None, Some(_)) => {
            problems.push("tls_server_config.client_ca_file: set client_auth_type too".to_owned());
            None
        }
    }
}
