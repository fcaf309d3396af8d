//! Certificates made at test time: a throw-away CA and a server certificate it signs.
//!
//! Nothing is committed to the repository: each [`TestPki::new`] generates fresh ECDSA P-256
//! keys with rcgen (on aws-lc-rs), so tests exercise real chain validation (a client that
//! trusts only the CA) rather than "accept any certificate".
//!
//! The rustls configs are built with an explicit aws-lc-rs provider
//! (`builder_with_provider`), so tests need no process-wide default provider.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig, crypto::CryptoProvider};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the default server certificate is valid for.
pub const DEFAULT_NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// A test CA and one server certificate signed by it.
pub struct TestPki {
    /// The CA certificate, PEM; what clients trust.
    pub ca_pem: String,
    /// The CA certificate, DER.
    pub ca_der: CertificateDer<'static>,
    /// The server certificate (leaf only), PEM.
    pub cert_pem: String,
    /// The server certificate (leaf only), DER.
    pub cert_der: CertificateDer<'static>,
    /// The server's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The server's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The names (DNS or IP) the server certificate is valid for.
    pub names: Vec<String>,
    /// Kept so [`TestPki::issue`] can sign more certificates with the same CA.
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestPki {
    // The PEM blobs are noise in a failed assertion; the names are what matters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// A leaf certificate issued by a [`TestPki`] CA.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A fresh CA and a server certificate for `localhost` and `127.0.0.1`.
    pub fn new() -> Self {
        Self::with_names(DEFAULT_NAMES)
    }

    /// A fresh CA and a server certificate for `names` (DNS names or IP addresses).
    pub fn with_names(names: &[&str]) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        params
            .distinguished_name
            .push(DnType::CommonName, "Palisade Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("generate CA key");
        let ca_cert = params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(params, ca_key);

        let leaf = issue_with(&issuer, names);
        TestPki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            cert_pem: leaf.cert_pem,
            cert_der: leaf.cert_der,
            key_pem: leaf.key_pem,
            key_der: leaf.key_der,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            issuer,
        }
    }

    /// Issues another server certificate from the same CA (e.g. for a second upstream, or to
    /// test a hot-reloaded certificate that clients must still trust).
    pub fn issue(&self, names: &[&str]) -> IssuedCert {
        issue_with(&self.issuer, names)
    }

    /// Writes `server.pem`, `server.key` and `ca.pem` into `dir`; returns (cert, key, ca) paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        fs::create_dir_all(dir).expect("create pki dir");
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        let ca = dir.join("ca.pem");
        fs::write(&cert, &self.cert_pem).expect("write server.pem");
        fs::write(&key, &self.key_pem).expect("write server.key");
        fs::write(&ca, &self.ca_pem).expect("write ca.pem");
        (cert, key, ca)
    }

    /// The CA as a root store, for clients built elsewhere.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add test CA");
        roots
    }

    /// A client config (TLS 1.2 + 1.3) that trusts only this CA, offering `alpn`
    /// (e.g. `&[b"h2", b"http/1.1"]`, or `&[]` for none).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default versions")
            .with_root_certificates(self.root_store())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A server config (TLS 1.2 + 1.3, ALPN `h2` and `http/1.1`) presenting the server
    /// certificate, for a TLS upstream or a stand-in TLS server.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .expect("valid test certificate and key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// The aws-lc-rs provider, passed explicitly: `ring` must never be needed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn issue_with(issuer: &Issuer<'static, KeyPair>, names: &[&str]) -> IssuedCert {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("valid subject alt names");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "localhost".into()),
    );
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("generate leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    // The private key's base64 (past its fixed PKCS#8 prefix) for the leak check.
    for line in key
        .serialize_pem()
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with("-----"))
    {
        crate::secrets::record(line);
    }
    IssuedCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::{ServerName, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn pems_parse_and_files_are_written() {
        let pki = TestPki::new();
        let cert = CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap();
        assert_eq!(cert, pki.cert_der);
        PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
        CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let (c, k, ca) = pki.write_to(dir.path());
        assert_eq!(fs::read_to_string(c).unwrap(), pki.cert_pem);
        assert_eq!(fs::read_to_string(k).unwrap(), pki.key_pem);
        assert_eq!(fs::read_to_string(ca).unwrap(), pki.ca_pem);
    }

    /// A full TLS 1.3 handshake, by DNS name and by IP, proves the chain and SANs are right;
    /// a client trusting another CA must fail.
    #[tokio::test]
    async fn client_trusts_server_through_ca() {
        let pki = TestPki::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"hello").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });

        for name in ["localhost", "127.0.0.1"] {
            let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[b"h2"]));
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let server_name = ServerName::try_from(name.to_owned()).unwrap();
            let mut tls = connector.connect(server_name, tcp).await.unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.unwrap();
            assert_eq!(buf, b"hello");
        }

        let other = TestPki::new();
        let connector = tokio_rustls::TlsConnector::from(other.client_config(&[]));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_name = ServerName::try_from("localhost").unwrap();
        assert!(connector.connect(server_name, tcp).await.is_err());
    }
}
