//! The TLS side of a probe: which servers it trusts (the system's roots, or
//! a CA file), the client certificate it shows, and when the certificates
//! it was shown expire.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// `tls_config` of a probe, as Prometheus's blackbox_exporter reads it, with
/// its files already read (and checked) when the config was.
#[derive(Debug, Clone, Default)]
pub struct ProbeTls {
    /// Trusted instead of the system's roots when given (`ca_file`). A
    /// server showing one of these certificates itself is trusted too, as
    /// OpenSSL and Go trust it: a self-signed certificate made with
    /// `openssl req -x509` is marked as a CA, which WebPKI alone refuses as
    /// a server's.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    /// The client certificate chain and its key (`cert_file`, `key_file`).
    pub client: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// The name to ask for and verify instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any certificate: the check still times the handshake and
    /// reports the expiry, but trusts nothing.
    pub insecure_skip_verify: bool,
}

impl PartialEq for ProbeTls {
    fn eq(&self, other: &ProbeTls) -> bool {
        let key = |c: &Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>| {
            c.as_ref()
                .map(|(chain, key)| (chain.clone(), key.secret_der().to_vec()))
        };
        self.ca == other.ca
            && key(&self.client) == key(&other.client)
            && self.server_name == other.server_name
            && self.insecure_skip_verify == other.insecure_skip_verify
    }
}

/// The system's trusted roots (`/etc/ssl/certs` and the like), read once.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a system root certificate could not be read");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    ignored,
                    "no system root certificates: https probes without ca_file will fail"
                );
            }
            Arc::new(roots)
        })
        .clone()
}

impl ProbeTls {
    /// The rustls client config of these settings, HTTP/1.1 over ALPN.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let trust = if self.insecure_skip_verify {
            Some(Trust::Anything)
        } else if let Some(certs) = &self.ca {
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots.add(c.clone())?;
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            Some(Trust::CaFile {
                webpki,
                pinned: certs.clone(),
            })
        } else {
            None
        };
        let builder = match trust {
            Some(trust) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verifier { provider, trust })),
            None => builder.with_root_certificates(system_roots()),
        };
        let mut config = match &self.client {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The name to ask for and verify: `server_name`, else `host`.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, String> {
        let name = self.server_name.as_deref().unwrap_or(host);
        // An IPv6 host comes bracketed from a URL.
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned()).map_err(|e| format!("`{name}`: {e}"))
    }
}

/// The earliest `notAfter` of `chain`, in unix seconds: when the first of
/// the certificates a server showed expires (blackbox_exporter's
/// `probe_ssl_earliest_cert_expiry`). `None` when none parses.
pub fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<i64> {
    chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
}

/// The verifier of a probe that does not use the system's roots as they
/// are: the handshake's signatures are checked with the provider's
/// algorithms either way, so the connection is a real TLS one.
#[derive(Debug)]
struct Verifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    trust: Trust,
}

/// Which server certificates a [`Verifier`] accepts.
#[derive(Debug)]
enum Trust {
    /// `insecure_skip_verify`: any.
    Anything,
    /// `ca_file`: a chain to one of its certificates, as WebPKI verifies it,
    /// or one of its certificates itself, for the name asked for and valid
    /// now.
    CaFile {
        webpki: Arc<WebPkiServerVerifier>,
        pinned: Vec<CertificateDer<'static>>,
    },
}

/// Whether `end_entity`, a certificate trusted as such, is for
/// `server_name` and valid at `now`.
fn pinned_valid(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let at = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if at < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidYet,
        ));
    }
    if at > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
    }
    Ok(ServerCertVerified::assertion())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Trust::CaFile { webpki, pinned } = &self.trust else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(verified) => Ok(verified),
            Err(_) if pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                pinned_valid(end_entity, server_name, now)
            }
            Err(refused) => Err(refused),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
