//! A JWKS issuer for JWT tests: a real HTTP server with an in-process signing key ring.
//!
//! The server listens on `127.0.0.1:0` and answers:
//!
//! | path                                 | answer                                                  |
//! |--------------------------------------|---------------------------------------------------------|
//! | `/jwks.json`                         | `{"keys":[…]}`, the public half of every published key  |
//! | `/.well-known/openid-configuration`  | `{"issuer":…, "jwks_uri":…}`                             |
//! | anything else                        | 404                                                      |
//!
//! Knobs for the failure modes a verifier must survive: [`JwksServer::set_failing`] (every
//! answer becomes a 500), [`JwksServer::set_delay`] (slow issuer, for single-flight tests),
//! [`JwksServer::set_cache_max_age`] (`Cache-Control: max-age=N` on the key set),
//! [`JwksServer::set_issuer`] and [`JwksServer::set_discovery_jwks_uri`] (a lying discovery
//! document). [`JwksServer::fetch_count`] counts key-set requests, so tests can prove that a
//! verifier fetched once, or not at all.
//!
//! Keys are generated with aws-lc-rs at test time (RSA 2048 for RS*/PS*, P-256 for ES256,
//! P-384 for ES384, Ed25519 for EdDSA) and tokens are signed with jsonwebtoken's aws-lc
//! backend: real crypto, nothing mocked. [`JwksServer::sign_with_header`] signs any header
//! verbatim, for forgeries (`alg: none`, `jku`, `crit`, HS256 keyed with the RSA public key…).

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der},
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair, KeyPair,
    },
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{EncodingKey, jwk::Jwk};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinSet};

/// base64url without padding, as JWS uses it.
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url without padding; panics on bad input (test helper).
pub fn b64url_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// Seconds since the Unix epoch, for building `exp`/`iat`/`nbf` claims.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What signs a forged token in [`JwksServer::sign_with_header`].
#[derive(Debug, Clone, Copy)]
pub enum SigningKey<'a> {
    /// The private key behind this `kid`, with that key's own algorithm (whatever the header says).
    Kid(&'a str),
    /// HMAC with these secret bytes: HS384/HS512 if the header's `alg` says so, else HS256.
    Hmac(&'a [u8]),
    /// No signature at all: the token ends with a `.` (for `alg: none`).
    Unsigned,
}

struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    /// The public JWK, with `kid`, `alg` and `use`.
    jwk: Value,
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    public_pem: String,
    /// Listed in `/jwks.json`.
    published: bool,
}

struct State {
    keys: Vec<TestKey>,
    issuer: Option<String>,
    discovery_jwks_uri: Option<String>,
    max_age: Option<u64>,
    failing: bool,
    delay: Duration,
    next_id: u64,
}

/// The issuer as its tasks see it: keys and settings, fetch counts, its address.
struct Issuer {
    state: Mutex<State>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    addr: SocketAddr,
}

impl Issuer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issuer(&self) -> String {
        self.lock()
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}/", self.addr))
    }
}

/// A running JWKS/OIDC issuer. Dropping it stops the server.
pub struct JwksServer {
    shared: Arc<Issuer>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for JwksServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksServer")
            .field("issuer", &self.issuer())
            .finish_non_exhaustive()
    }
}

impl JwksServer {
    /// Starts an issuer with an empty key ring on `127.0.0.1:0`. Needs a tokio runtime.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind jwks server");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Issuer {
            state: Mutex::new(State {
                keys: Vec::new(),
                issuer: None,
                discovery_jwks_uri: None,
                max_age: None,
                failing: false,
                delay: Duration::ZERO,
                next_id: 1,
            }),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            addr,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        JwksServer { shared, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The `iss` this issuer puts in tokens and in its discovery document:
    /// `http://127.0.0.1:PORT/` unless [`set_issuer`](Self::set_issuer) changed it.
    pub fn issuer(&self) -> String {
        self.shared.issuer()
    }

    /// `http://127.0.0.1:PORT/jwks.json`
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks.json", self.shared.addr)
    }

    /// `http://127.0.0.1:PORT/.well-known/openid-configuration`
    pub fn discovery_url(&self) -> String {
        format!(
            "http://{}/.well-known/openid-configuration",
            self.shared.addr
        )
    }

    /// Overrides the issuer (in signed tokens and in the discovery document).
    pub fn set_issuer(&self, issuer: &str) {
        self.shared.lock().issuer = Some(issuer.to_owned());
    }

    /// Makes the discovery document name another `jwks_uri` (`None`: the real one).
    pub fn set_discovery_jwks_uri(&self, uri: Option<&str>) {
        self.shared.lock().discovery_jwks_uri = uri.map(str::to_owned);
    }

    /// Generates a key for `alg`, publishes it, and returns its `kid`.
    ///
    /// RS*/PS*: RSA 2048; ES256: P-256; ES384: P-384; EdDSA: Ed25519; HS*: panics (an HMAC
    /// secret is never published in a JWKS).
    pub fn add_key(&self, alg: Algorithm) -> String {
        self.add_key_inner(alg, true)
    }

    /// Generates a key the issuer can sign with but does not publish (yet): tokens signed
    /// with it carry a `kid` the verifier cannot find. [`publish_key`](Self::publish_key)
    /// publishes it later.
    pub fn add_unpublished_key(&self, alg: Algorithm) -> String {
        self.add_key_inner(alg, false)
    }

    /// Publishes a key added with [`add_unpublished_key`](Self::add_unpublished_key).
    pub fn publish_key(&self, kid: &str) {
        let mut state = self.shared.lock();
        let key = state
            .keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .expect("unknown kid");
        key.published = true;
    }

    fn add_key_inner(&self, alg: Algorithm, published: bool) -> String {
        let (encoding, public_der) = generate(alg);
        let mut jwk = serde_json::to_value(
            Jwk::from_encoding_key(&encoding, alg).expect("jwk from generated key"),
        )
        .expect("jwk to json");
        let mut state = self.shared.lock();
        let kid = format!("test-key-{}", state.next_id);
        state.next_id += 1;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), Value::String(kid.clone()));
            obj.insert("use".into(), Value::String("sig".into()));
        }
        state.keys.push(TestKey {
            kid: kid.clone(),
            alg,
            encoding,
            jwk,
            public_pem: pem("PUBLIC KEY", &public_der),
            published,
        });
        kid
    }

    /// Removes a key from the ring (it is no longer published, and can no longer sign).
    pub fn remove_key(&self, kid: &str) {
        self.shared.lock().keys.retain(|k| k.kid != kid);
    }

    /// The public JWK of `kid` as published (with `kid`, `alg`, `use`).
    pub fn jwk(&self, kid: &str) -> Value {
        self.with_key(kid, |k| k.jwk.clone())
    }

    /// The JWKS document as served right now.
    pub fn jwks(&self) -> Value {
        jwks_document(&self.shared.lock())
    }

    /// The public key of `kid` as SubjectPublicKeyInfo PEM.
    pub fn public_pem(&self, kid: &str) -> String {
        self.with_key(kid, |k| k.public_pem.clone())
    }

    /// The algorithm `kid` signs with.
    pub fn key_alg(&self, kid: &str) -> Algorithm {
        self.with_key(kid, |k| k.alg)
    }

    fn with_key<T>(&self, kid: &str, f: impl FnOnce(&TestKey) -> T) -> T {
        let state = self.shared.lock();
        f(state
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("unknown kid {kid}")))
    }

    /// Claims a verifier configured for this issuer and `audience` accepts: `iss`, `aud`,
    /// `sub`, `iat` = now, `exp` = now + 5 min, `jti`.
    pub fn claims(&self, subject: &str, audience: &str) -> Value {
        let now = now_secs();
        json!({
            "iss": self.issuer(),
            "aud": audience,
            "sub": subject,
            "iat": now,
            "exp": now + 300,
            "jti": format!("jti-{now}-{subject}"),
        })
    }

    /// Signs `claims` with `kid`: header `{"alg": <the key's alg>, "typ": "JWT", "kid": kid}`.
    pub fn sign(&self, kid: &str, claims: Value) -> String {
        let alg = self.key_alg(kid);
        let header = json!({ "alg": alg_name(alg), "typ": "JWT", "kid": kid });
        self.sign_with_header(header, claims, SigningKey::Kid(kid))
    }

    /// Encodes `header` and `claims` verbatim and signs them with `key`. For forgeries:
    /// nothing about the header is checked or fixed up.
    pub fn sign_with_header(&self, header: Value, claims: Value, key: SigningKey<'_>) -> String {
        let message = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = match key {
            SigningKey::Kid(kid) => {
                let (encoding, alg) = self.with_key(kid, |k| (k.encoding.clone(), k.alg));
                jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, alg).expect("sign")
            }
            SigningKey::Hmac(secret) => {
                let alg = match header.get("alg").and_then(Value::as_str) {
                    Some("HS384") => Algorithm::HS384,
                    Some("HS512") => Algorithm::HS512,
                    _ => Algorithm::HS256,
                };
                jsonwebtoken::crypto::sign(
                    message.as_bytes(),
                    &EncodingKey::from_secret(secret),
                    alg,
                )
                .expect("hmac sign")
            }
            SigningKey::Unsigned => String::new(),
        };
        // A token is a bearer credential: the leak check looks for it in palisade's output.
        crate::secrets::record(format!("{message}.{signature}"))
    }

    /// How many times `/jwks.json` was requested (failing answers included).
    pub fn fetch_count(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was requested (failing answers included).
    pub fn discovery_count(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    /// `Cache-Control: max-age=SECS` on the key set from now on (`None`: no header).
    pub fn set_cache_max_age(&self, secs: Option<u64>) {
        self.shared.lock().max_age = secs;
    }

    /// While `true`, every request is answered `500` (and still counted).
    pub fn set_failing(&self, failing: bool) {
        self.shared.lock().failing = failing;
    }

    /// Every answer waits this long first (a slow issuer).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => panic!("unsupported algorithm {alg:?}"),
    }
}

/// A fresh private key for `alg` (as jsonwebtoken wants it) and its public key (SPKI DER).
fn generate(alg: Algorithm) -> (EncodingKey, Vec<u8>) {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
            let pkcs8: Pkcs8V1Der<'_> = pair.as_der().expect("rsa pkcs8");
            let public: PublicKeyX509Der<'_> = pair.public_key().as_der().expect("rsa spki");
            let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
                .expect("rsa encoding key");
            (encoding, public.as_ref().to_vec())
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let signing = if alg == Algorithm::ES256 {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::generate(signing).expect("ec keygen");
            let pkcs8 = pair.to_pkcs8v1().expect("ec pkcs8");
            let public: PublicKeyX509Der<'_> = pair.public_key().as_der().expect("ec spki");
            let encoding = EncodingKey::from_ec_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
                .expect("ec encoding key");
            (encoding, public.as_ref().to_vec())
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::generate().expect("ed25519 keygen");
            // PKCS#8 v1: what jsonwebtoken's JWK export expects (48 bytes).
            let pkcs8 = pair.to_pkcs8v1().expect("ed25519 pkcs8");
            let public: PublicKeyX509Der<'_> = pair.public_key().as_der().expect("ed25519 spki");
            let encoding = EncodingKey::from_ed_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
                .expect("ed25519 encoding key");
            (encoding, public.as_ref().to_vec())
        }
        other => panic!("add_key: {other:?} has no public key to publish"),
    }
}

/// PEM-armours `der` under `label`, 64 columns.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn jwks_document(state: &State) -> Value {
    let keys: Vec<Value> = state
        .keys
        .iter()
        .filter(|k| k.published)
        .map(|k| k.jwk.clone())
        .collect();
    json!({ "keys": keys })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Issuer>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(req, shared.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Issuer>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/jwks.json" => {
            shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        }
        "/.well-known/openid-configuration" => {
            shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
    let delay = shared.lock().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let issuer = shared.issuer();
    let state = shared.lock();
    if state.failing {
        return Ok(respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "issuer down".into(),
            None,
        ));
    }
    let rsp = match path.as_str() {
        "/jwks.json" => respond(
            StatusCode::OK,
            "application/json",
            jwks_document(&state).to_string(),
            state.max_age,
        ),
        "/.well-known/openid-configuration" => {
            let jwks_uri = state
                .discovery_jwks_uri
                .clone()
                .unwrap_or_else(|| format!("http://{}/jwks.json", shared.addr));
            let doc = json!({
                "issuer": issuer,
                "jwks_uri": jwks_uri,
                "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
            });
            respond(StatusCode::OK, "application/json", doc.to_string(), None)
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found".into(),
            None,
        ),
    };
    Ok(rsp)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    max_age: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from(body)));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(secs) = max_age
        && let Ok(value) = HeaderValue::from_str(&format!("public, max-age={secs}"))
    {
        rsp.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    rsp
}
