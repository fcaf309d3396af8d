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
pub(crate) struct Tls {
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
    pub(crate) fn build(config: &Config) -> Result<Option<Tls>, ConfigError> {
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

/// The cipher suites, most preferred first; the server's order decides, not the client's.
///
/// AES-128-GCM first: it is TLS 1.3's mandatory suite, its strength matches the rest of the
/// handshake (X25519 and P-256 give about 128 bits), it encrypts in 10 AES rounds rather than
/// 14, and its SHA-256 key schedule runs on the CPU's SHA instructions where SHA-384 (the
/// AES-256 suite's) has none — on this project's machine the key schedule was a fifth of a
/// handshake's CPU with SHA-384. ChaCha20 next, for clients that do not offer AES; AES-256
/// last. Every suite of the provider stays available; only the order changes.
const SUITE_PREFERENCE: [rustls::CipherSuite; 6] = [
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// A rustls server config with palisade's fixed policy: TLS 1.2+, the suite order of
/// [`SUITE_PREFERENCE`], ALPN h2 and http/1.1.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // Listed suites in the listed order, then the provider's others in its own order.
    provider.cipher_suites.sort_by_key(|suite| {
        SUITE_PREFERENCE
            .iter()
            .position(|preferred| *preferred == suite.suite())
            .unwrap_or(SUITE_PREFERENCE.len())
    });
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&TLS13, &TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.ignore_client_order = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite;

    /// Handshakes a client offering `suites` (in that order) and `versions` with the server
    /// config over an in-memory pipe; the suite they agreed on.
    async fn negotiate(
        suites: &[CipherSuite],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> CipherSuite {
        let (chain, key) = self_signed();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(chain[0].clone()).unwrap();
        let server = server_config(chain, key).unwrap();
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.cipher_suites = suites
            .iter()
            .map(|wanted| {
                *provider
                    .cipher_suites
                    .iter()
                    .find(|s| s.suite() == *wanted)
                    .unwrap()
            })
            .collect();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let accept = tokio_rustls::TlsAcceptor::from(server).accept(server_io);
        let connect = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect("localhost".try_into().unwrap(), client_io);
        let (accepted, connected) = tokio::join!(accept, connect);
        let (_, server_side) = accepted.unwrap().into_inner();
        let (_, client_side) = connected.unwrap().into_inner();
        let agreed = client_side.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(
            server_side.negotiated_cipher_suite().unwrap().suite(),
            agreed
        );
        agreed
    }

    #[tokio::test]
    async fn the_server_order_decides_and_every_suite_stays_available() {
        use CipherSuite::*;
        // A client preferring AES-256 (OpenSSL's default order) gets AES-128.
        let preferring_256 = [
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS13_AES_128_GCM_SHA256,
        ];
        assert_eq!(
            negotiate(&preferring_256, &[&TLS13]).await,
            TLS13_AES_128_GCM_SHA256
        );
        // A client without AES gets ChaCha20; one offering only AES-256 gets it.
        assert_eq!(
            negotiate(&[TLS13_CHACHA20_POLY1305_SHA256], &[&TLS13]).await,
            TLS13_CHACHA20_POLY1305_SHA256
        );
        assert_eq!(
            negotiate(&[TLS13_AES_256_GCM_SHA384], &[&TLS13]).await,
            TLS13_AES_256_GCM_SHA384
        );
        // TLS 1.2 with the development certificate's P-256 key: ECDSA with AES-128 first.
        let tls12 = [
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ];
        assert_eq!(
            negotiate(&tls12, &[&TLS12]).await,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        );
    }
}
