//! HTTPS/TLS (checklist #1): the server side of TLS.
//!
//! Input: `[server.tls]`. Output: a rustls `ServerConfig` (aws-lc-rs) offering TLS 1.3
//! and 1.2 only, ALPN `h2` then `http/1.1`, and the HSTS header value. Failure: a
//! `ConfigError` naming `server.tls.cert`/`key` when the files cannot be read or do not
//! form a usable certificate and key.
//!
//! Certificates are read each time the pipeline is built, so a reload (SIGHUP or
//! `POST /reload`) picks up renewed files without a restart; connections already open
//! keep the certificate they were made with.

use std::sync::{Arc, OnceLock};

use http::HeaderValue;
use rustls::ServerConfig;
use rustls::version::{TLS12, TLS13};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::{Config, ConfigError, TlsSource};

/// The TLS side of one pipeline.
#[derive(Clone)]
pub struct Tls {
    pub server_config: Arc<ServerConfig>,
    pub hsts: HeaderValue,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("hsts", &self.hsts)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Builds the TLS settings of `config`, or `None` when it has no `[server.tls]`.
    pub fn build(config: &Config) -> Result<Option<Tls>, ConfigError> {
        let Some(tls) = &config.server.tls else {
            return Ok(None);
        };
        let (chain, key) = match &tls.source {
            TlsSource::Files { cert, key } => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        config.error_at(
                            "server.tls.cert",
                            format!("cannot read a certificate from {}: {e}", cert.display()),
                        )
                    })?;
                if chain.is_empty() {
                    return Err(config.error_at(
                        "server.tls.cert",
                        format!("{} holds no certificate", cert.display()),
                    ));
                }
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    config.error_at(
                        "server.tls.key",
                        format!("cannot read a private key from {}: {e}", key.display()),
                    )
                })?;
                (chain, key)
            }
            TlsSource::SelfSigned => self_signed(),
        };
        let server_config = server_config(chain, key).map_err(|e| {
            config.error_at(
                "server.tls",
                format!("the certificate and key are not usable: {e}"),
            )
        })?;
        let hsts = HeaderValue::from_str(&tls.hsts)
            .map_err(|_| config.error_at("server.tls.hsts", "not a valid header value"))?;
        Ok(Some(Tls {
            server_config,
            hsts,
        }))
    }
}

/// A rustls server config with palisade's fixed policy: TLS 1.2+, ALPN h2 and http/1.1.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13, &TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A development certificate for localhost, made once per process so that reloads do
/// not change it under clients that pinned it.
fn self_signed() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    static CERT: OnceLock<(CertificateDer<'static>, Vec<u8>)> = OnceLock::new();
    let (cert, key) = CERT.get_or_init(|| {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        // Generating a P-256 key and signing one certificate cannot fail with valid names.
        let certified = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
        (
            certified.cert.der().clone(),
            certified.signing_key.serialize_der(),
        )
    });
    (
        vec![cert.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone())),
    )
}
