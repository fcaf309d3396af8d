//! JSON Web Key Sets: parsing one, and keeping a remote one fresh.
//!
//! Input: a JWKS document (RFC 7517) from a file, an URL or OIDC discovery. Output: the
//! verification key for a token's `kid` and `alg`. Failure: a [`JwtRejection`]
//! (`UnknownKey`, `AlgorithmNotAllowed`, `KeysUnavailable`), never a panic.
//!
//! Parsing is strict per key and lenient per set: a key that is malformed, symmetric
//! (`oct`), meant for encryption (`use` other than `sig`, `key_ops` without `verify`), of an
//! unknown type or curve, or an RSA key under 2048 bits is skipped with a warning, and the
//! rest of the set stays usable. Supported: RSA (RS*/PS*), EC P-256 (ES256), EC P-384
//! (ES384), OKP Ed25519 (EdDSA).
//!
//! The remote cache ([`RemoteKeys`]):
//! - the first verification fetches the set (nothing is fetched when the verifier is built);
//! - the set is fresh for the response's `Cache-Control: max-age`, bounded to
//!   [[`MIN_TTL`], [`MAX_TTL`]], or for `jwks_refresh` when there is none; a request that
//!   finds its key in a stale set is served at once and a background refresh is started;
//! - an unknown `kid` triggers one refresh, *single flight*: concurrent requests wait on one
//!   lock, and whoever gets it after somebody else fetched reuses that result. Refreshes
//!   caused by unknown `kid`s are at most one per `jwks_cooldown`; during the cooldown an
//!   unknown `kid` is `UnknownKey` at once, so a flood of made-up `kid`s costs the issuer
//!   nothing;
//! - after a failed fetch, no fetch of any kind is attempted for `jwks_cooldown`; the last
//!   good set keeps being served (stale) meanwhile, with a warning per failure; with no set
//!   at all, verification answers `KeysUnavailable`;
//! - fetches time out after [`FETCH_TIMEOUT`], bodies are capped at [`MAX_DOCUMENT_BYTES`],
//!   redirects are followed only to the same scheme/host/port (at most 3);
//! - discovery: the document's `issuer` must equal the configured issuer exactly; its
//!   `jwks_uri` must be https (http only for loopback hosts). The discovered `jwks_uri` is
//!   remembered until a key-set fetch from it fails.

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::jwt::{JwtRejection, b64url_decode};
use crate::config::JwtAlgorithm;

/// Shortest freshness honoured from a `Cache-Control: max-age`.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(60);
/// Longest freshness honoured from a `Cache-Control: max-age`.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Whole-request timeout of a key-set or discovery fetch.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key-set or discovery document accepted.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Keys beyond this many in one set are ignored.
const MAX_KEYS: usize = 100;

/// The type (and curve) of a verification key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind can verify `alg` (the `kty`/curve must fit the alg).
    pub(crate) fn fits(self, alg: JwtAlgorithm) -> bool {
        use JwtAlgorithm::*;
        match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => self == KeyKind::Rsa,
            ES256 => self == KeyKind::EcP256,
            ES384 => self == KeyKind::EcP384,
            EdDSA => self == KeyKind::Ed25519,
            HS256 | HS384 | HS512 => false,
        }
    }
}

/// One public verification key from a JWKS.
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    /// The key's own `alg`, if it named one; a token's alg must then be exactly this.
    pub alg: Option<JwtAlgorithm>,
    pub kind: KeyKind,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    fn fits(&self, alg: JwtAlgorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// The outcome of looking a token's key up in a set.
#[derive(Debug)]
pub(crate) enum Selection {
    Found(Arc<VerifyKey>),
    /// Keys with this `kid` exist, but none fits the token's alg.
    Unsuitable,
    /// No key with this `kid` (or, without a `kid`, no key fits the alg).
    Missing,
    /// No `kid`, and more than one key fits the alg.
    Ambiguous,
}

/// A parsed, immutable key set.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys":[…]}`). Fails only if the document itself is not a
    /// JWKS; unusable keys are skipped (see the module doc).
    pub(crate) fn parse(document: &[u8]) -> Result<KeySet, String> {
        let value: Value = serde_json::from_slice(document)
            .map_err(|e| format!("the key set is not JSON: {e}"))?;
        let Some(entries) = value.get("keys").and_then(Value::as_array) else {
            return Err("the key set has no \"keys\" array".into());
        };
        if entries.len() > MAX_KEYS {
            tracing::warn!(
                keys = entries.len(),
                "jwks: key set too long; only the first {MAX_KEYS} keys are used"
            );
        }
        let mut keys = Vec::new();
        for (index, entry) in entries.iter().take(MAX_KEYS).enumerate() {
            match parse_key(entry) {
                Ok(Some(key)) => keys.push(Arc::new(key)),
                Ok(None) => {}
                Err(why) => {
                    let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::warn!(index, kid, "jwks: key skipped: {why}");
                }
            }
        }
        Ok(KeySet { keys })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Finds the key for a token: by `kid` if it has one; without one, the only key that
    /// fits `alg`.
    pub(crate) fn select(&self, kid: Option<&str>, alg: JwtAlgorithm) -> Selection {
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Selection::Missing;
                }
                named
                    .find(|k| k.fits(alg))
                    .map_or(Selection::Unsuitable, |k| Selection::Found(k.clone()))
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (None, _) => Selection::Missing,
                    (Some(k), None) => Selection::Found(k.clone()),
                    (Some(_), Some(_)) => Selection::Ambiguous,
                }
            }
        }
    }
}

/// Maps a selection to the key or the rejection it means once no refresh can help.
pub(crate) fn settle(selection: Selection) -> Result<Arc<VerifyKey>, JwtRejection> {
    match selection {
        Selection::Found(key) => Ok(key),
        Selection::Unsuitable => Err(JwtRejection::AlgorithmNotAllowed),
        Selection::Missing | Selection::Ambiguous => Err(JwtRejection::UnknownKey),
    }
}

/// `Ok(None)`: a well-formed key we do not use for verification (symmetric, encryption).
fn parse_key(entry: &Value) -> Result<Option<VerifyKey>, String> {
    let Some(obj) = entry.as_object() else {
        return Err("not an object".into());
    };
    let text = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("\"{name}\" is not a string")),
        }
    };
    let kid = text("kid")?.map(str::to_owned);
    if let Some(usage) = text("use")?
        && usage != "sig"
    {
        return Ok(None);
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("\"key_ops\" is not an array")?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(None);
        }
    }
    let alg = match text("alg")? {
        None => None,
        Some(name) => match JwtAlgorithm::from_name(name) {
            Some(alg) if !alg.is_hmac() => Some(alg),
            // An encryption or HMAC algorithm: not a JWS verification key for us.
            _ => return Ok(None),
        },
    };
    let required = |name: &str| -> Result<&str, String> {
        text(name)?.ok_or_else(|| format!("\"{name}\" is missing"))
    };
    let (kind, key) = match required("kty")? {
        "RSA" => {
            let n = required("n")?;
            let e = required("e")?;
            let modulus = b64url_decode(n).ok_or("\"n\" is not base64url")?;
            b64url_decode(e).ok_or("\"e\" is not base64url")?;
            let bits = bit_length(&modulus);
            if bits < 2048 {
                return Err(format!(
                    "RSA modulus of {bits} bits; at least 2048 required"
                ));
            }
            let key = DecodingKey::from_rsa_components(n, e).map_err(|e| e.to_string())?;
            (KeyKind::Rsa, key)
        }
        "EC" => {
            let (kind, len) = match required("crv")? {
                "P-256" => (KeyKind::EcP256, 32),
                "P-384" => (KeyKind::EcP384, 48),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            let x = required("x")?;
            let y = required("y")?;
            let coordinate_ok = |c: &str| b64url_decode(c).is_some_and(|b| b.len() == len);
            if !coordinate_ok(x) || !coordinate_ok(y) {
                return Err("bad EC coordinates".into());
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|e| e.to_string())?;
            (kind, key)
        }
        "OKP" => {
            if required("crv")? != "Ed25519" {
                return Err("unsupported OKP curve".into());
            }
            let x = required("x")?;
            if b64url_decode(x).is_none_or(|b| b.len() != 32) {
                return Err("bad Ed25519 public key".into());
            }
            let key = DecodingKey::from_ed_components(x).map_err(|e| e.to_string())?;
            (KeyKind::Ed25519, key)
        }
        // Symmetric keys never come from a key set.
        "oct" => return Ok(None),
        other => return Err(format!("unsupported key type {other:?}")),
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err(format!("key type {kind:?} cannot verify {alg:?}"));
    }
    Ok(Some(VerifyKey {
        kid,
        alg,
        kind,
        key,
    }))
}

fn bit_length(big_endian: &[u8]) -> usize {
    let Some(first) = big_endian.iter().position(|&b| b != 0) else {
        return 0;
    };
    (big_endian.len() - first) * 8 - big_endian[first].leading_zeros() as usize
}

/// Freshness from `Cache-Control`: `max-age` bounded to [[`MIN_TTL`], [`MAX_TTL`]];
/// `no-cache`/`no-store` mean [`MIN_TTL`]; `None` when the header says nothing about it.
pub(crate) fn cache_ttl(headers: &http::HeaderMap) -> Option<Duration> {
    let mut ttl = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive
                .split_once('=')
                .map_or((directive, None), |(n, a)| (n.trim(), Some(a.trim())));
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(MIN_TTL);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.trim_matches('"').parse::<u64>().ok())
            {
                ttl = Some(Duration::from_secs(secs).clamp(MIN_TTL, MAX_TTL));
            }
        }
    }
    ttl
}

/// Where a remote key set comes from.
#[derive(Debug)]
pub(crate) enum RemoteSource {
    Jwks(reqwest::Url),
    Discovery(reqwest::Url),
}

#[derive(Debug, Default)]
struct CacheState {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    ttl: Duration,
    /// Fetch attempts so far (success or not): how a waiter learns someone else fetched.
    attempts: u64,
    last_failure: Option<Instant>,
    last_kid_refresh: Option<Instant>,
    /// The `jwks_uri` from discovery, once known.
    discovered: Option<reqwest::Url>,
}

/// A remote key set, fetched lazily and cached. Cheap to share (`Arc`).
#[derive(Debug)]
pub(crate) struct RemoteKeys {
    source: RemoteSource,
    issuer: String,
    client: reqwest::Client,
    default_ttl: Duration,
    cooldown: Duration,
    state: Mutex<CacheState>,
    /// Held for the duration of a fetch: the single flight.
    refreshing: tokio::sync::Mutex<()>,
    background: AtomicBool,
}

/// Why a refresh is wanted; it decides which throttle applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// No keys at all yet (or every fetch so far failed).
    Empty,
    /// A token named a `kid` the set does not have.
    UnknownKid,
    /// The set outlived its freshness.
    Expired,
}

impl RemoteKeys {
    /// Builds the cache; touches no network.
    pub(crate) fn new(
        source: RemoteSource,
        issuer: &str,
        default_ttl: Duration,
        cooldown: Duration,
    ) -> Result<RemoteKeys, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(same_origin_redirects())
            .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the key set: {e}"))?;
        Ok(RemoteKeys {
            source,
            issuer: issuer.to_owned(),
            client,
            default_ttl,
            cooldown,
            state: Mutex::new(CacheState::default()),
            refreshing: tokio::sync::Mutex::new(()),
            background: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cooling(&self, since: Option<Instant>) -> bool {
        since.is_some_and(|t| t.elapsed() < self.cooldown)
    }

    /// The key for a token's `kid` and `alg`, fetching or refreshing the set as the module
    /// doc describes.
    pub(crate) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: JwtAlgorithm,
    ) -> Result<Arc<VerifyKey>, JwtRejection> {
        let (keys, fresh, attempts, last_failure, last_kid_refresh) = {
            let s = self.lock();
            let fresh = s.fetched_at.is_some_and(|t| t.elapsed() < s.ttl);
            (
                s.keys.clone(),
                fresh,
                s.attempts,
                s.last_failure,
                s.last_kid_refresh,
            )
        };
        let cause = match &keys {
            Some(set) => match set.select(kid, alg) {
                Selection::Found(key) => {
                    if !fresh && !self.cooling(last_failure) {
                        self.refresh_in_background(attempts);
                    }
                    return Ok(key);
                }
                // An expired set is refreshed whatever the kid cooldown says.
                Selection::Missing if !fresh => Cause::Expired,
                Selection::Missing => Cause::UnknownKid,
                other => return settle(other),
            },
            None => Cause::Empty,
        };
        // A refresh might help; the throttles decide whether we may try one.
        let throttled = self.cooling(last_failure)
            || (cause == Cause::UnknownKid && self.cooling(last_kid_refresh));
        if throttled {
            return Err(match cause {
                Cause::Empty => JwtRejection::KeysUnavailable,
                _ => JwtRejection::UnknownKey,
            });
        }
        self.refresh(attempts, cause).await;
        let keys = self.lock().keys.clone();
        match keys {
            None => Err(JwtRejection::KeysUnavailable),
            Some(set) => settle(set.select(kid, alg)),
        }
    }

    fn refresh_in_background(self: &Arc<Self>, seen_attempts: u64) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.refresh(seen_attempts, Cause::Expired).await;
            this.background.store(false, Ordering::Release);
        });
    }

    /// Fetches the set unless somebody else fetched since `seen_attempts` (single flight).
    async fn refresh(&self, seen_attempts: u64, cause: Cause) {
        let _flight = self.refreshing.lock().await;
        if self.lock().attempts != seen_attempts {
            return; // a fetch finished while we waited: use its result
        }
        let started = Instant::now();
        let result = self.fetch().await;
        let mut s = self.lock();
        s.attempts += 1;
        if cause == Cause::UnknownKid {
            s.last_kid_refresh = Some(started);
        }
        match result {
            Ok((set, ttl)) => {
                tracing::debug!(
                    issuer = %self.issuer,
                    keys = set.len(),
                    ttl_secs = ttl.unwrap_or(self.default_ttl).as_secs(),
                    "jwks: key set fetched"
                );
                s.keys = Some(Arc::new(set));
                s.fetched_at = Some(Instant::now());
                s.ttl = ttl.unwrap_or(self.default_ttl);
                s.last_failure = None;
            }
            Err(why) => {
                s.last_failure = Some(Instant::now());
                s.discovered = None;
                if s.keys.is_some() {
                    tracing::warn!(issuer = %self.issuer, "jwks: refresh failed, serving the cached keys: {why}");
                } else {
                    tracing::warn!(issuer = %self.issuer, "jwks: fetch failed, no keys available: {why}");
                }
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), String> {
        let url = match &self.source {
            RemoteSource::Jwks(url) => url.clone(),
            RemoteSource::Discovery(discovery) => {
                let known = self.lock().discovered.clone();
                match known {
                    Some(url) => url,
                    None => {
                        let url = self.discover(discovery).await?;
                        self.lock().discovered = Some(url.clone());
                        url
                    }
                }
            }
        };
        let (body, headers) = self.get(&url).await?;
        let set = KeySet::parse(&body)?;
        if set.is_empty() {
            return Err(format!("{url}: the key set has no usable keys"));
        }
        Ok((set, cache_ttl(&headers)))
    }

    async fn discover(&self, discovery: &reqwest::Url) -> Result<reqwest::Url, String> {
        let (body, _) = self.get(discovery).await?;
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{discovery}: the discovery document is not JSON: {e}"))?;
        let issuer = doc.get("issuer").and_then(Value::as_str);
        if issuer != Some(self.issuer.as_str()) {
            return Err(format!(
                "{discovery}: the discovery document names issuer {issuer:?}, not {:?}",
                self.issuer
            ));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{discovery}: the discovery document has no jwks_uri"))?;
        crate::config::outbound::key_url(jwks_uri)
    }

    /// GET with the size cap; any non-2xx answer is an error.
    async fn get(&self, url: &reqwest::Url) -> Result<(Vec<u8>, http::HeaderMap), String> {
        let mut rsp = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !rsp.status().is_success() {
            return Err(format!("{url}: answered {}", rsp.status()));
        }
        if rsp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!("{url}: document over {MAX_DOCUMENT_BYTES} bytes"));
        }
        let headers = rsp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = rsp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: document over {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, headers))
    }
}

/// Redirects only to the same scheme, host and port, at most 3.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        let next = attempt.url();
        let same = next.scheme() == first.scheme()
            && next.host_str() == first.host_str()
            && next.port_or_known_default() == first.port_or_known_default();
        if attempt.previous().len() > 3 || !same {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age_is_bounded() {
        let mut h = http::HeaderMap::new();
        assert_eq!(cache_ttl(&h), None);
        h.insert(
            http::header::CACHE_CONTROL,
            "public, max-age=600".parse().unwrap(),
        );
        assert_eq!(cache_ttl(&h), Some(Duration::from_secs(600)));
        h.insert(http::header::CACHE_CONTROL, "max-age=5".parse().unwrap());
        assert_eq!(cache_ttl(&h), Some(MIN_TTL));
        h.insert(
            http::header::CACHE_CONTROL,
            "max-age=99999999".parse().unwrap(),
        );
        assert_eq!(cache_ttl(&h), Some(MAX_TTL));
        h.insert(http::header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(cache_ttl(&h), Some(MIN_TTL));
        h.insert(http::header::CACHE_CONTROL, "max-age=abc".parse().unwrap());
        assert_eq!(cache_ttl(&h), None);
    }

    #[test]
    fn symmetric_encryption_and_weak_keys_are_skipped() {
        let doc = serde_json::json!({ "keys": [
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
            { "kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB" },
            { "kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB" },
            { "kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA" },
            { "kty": "OKP", "crv": "Ed25519", "kid": "ed", "use": "sig",
              "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
            { "kty": "OKP", "crv": "Ed25519", "kid": "ed-enc-ops", "key_ops": ["encrypt"],
              "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(matches!(
            set.select(Some("ed"), JwtAlgorithm::EdDSA),
            Selection::Found(_)
        ));
        assert!(matches!(
            set.select(Some("ed"), JwtAlgorithm::ES256),
            Selection::Unsuitable
        ));
        assert!(matches!(
            set.select(Some("hmac"), JwtAlgorithm::EdDSA),
            Selection::Missing
        ));
        assert!(matches!(
            set.select(None, JwtAlgorithm::EdDSA),
            Selection::Found(_)
        ));
        assert!(matches!(
            set.select(None, JwtAlgorithm::RS256),
            Selection::Missing
        ));
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\": 1}").is_err());
    }

    #[test]
    fn rsa_modulus_bit_length() {
        assert_eq!(bit_length(&[0, 0x01]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[]), 0);
    }
}
