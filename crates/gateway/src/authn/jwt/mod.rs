//! JWT verification for users (checklist #2, `[auth.jwt]`).
//!
//! Input: a compact JWS (the bearer token, without `Bearer `). Output: a [`VerifiedToken`]
//! (subject, roles, scopes, `jti`, issuer, `kid`, all claims). Failure: a [`JwtRejection`],
//! a closed enum whose [`reason`](JwtRejection::reason) goes to the log and never to the
//! client (the client sees one 401 for every variant).
//!
//! The checks, in order; each stops at the first failure:
//!
//! 1. size: longer than `max_token_bytes` → `TooLarge` (before any parsing);
//! 2. shape: exactly three dot-separated segments of strict base64url (no padding, no
//!    stray bits), a header and a payload that are JSON objects without duplicate members
//!    → else `Malformed`;
//! 3. algorithm, from the header we parsed ourselves: `none` in any spelling, any name not
//!    in the allow-list, an HMAC alg when the keys are asymmetric (the RS256→HS256
//!    key-confusion trick) or an asymmetric alg with a shared secret → `AlgorithmNotAllowed`;
//! 4. header parameters we do not follow or understand: `jku`, `x5u`, `jwk`, `x5c` (never
//!    fetched, never trusted), `crit`, and the JWE-only `enc`/`zip` → `UnsupportedHeader`;
//! 5. key: by `kid` (or the single suitable key when there is none) from the secret, the
//!    JWKS file, or the remote JWKS cache (see [`super::jwks`]); a key's own `alg` must match
//!    and its type/curve must fit the alg → `UnknownKey`, `AlgorithmNotAllowed` (the `kid`
//!    exists but cannot verify this alg), `KeysUnavailable` (no keys could be fetched);
//! 6. signature (aws-lc-rs through jsonwebtoken) → `BadSignature`; with shared secrets,
//!    each configured secret is tried, current first (several during a rotation), and a
//!    token signed with none of them is `BadSignature`;
//! 7. claims, only now that they are authentic: `exp` required (`MissingExpiry`) and not
//!    past (`Expired`); `nbf` not in the future (`NotYetValid`); `iat` not in the future
//!    (`IssuedInFuture`), all with the configured leeway; `iss` exactly the issuer
//!    (`WrongIssuer`); `aud` (string or array) naming one of the audiences
//!    (`WrongAudience`); `sub` a non-empty string (`MissingSubject`). A time claim that is
//!    not a number is `Malformed`.
//!
//! Roles come from `roles_claim`: the claim of that exact name if there is one (URL-style
//! names such as `https://example.com/roles` contain dots), else the dotted path
//! (`realm_access.roles`); an array of strings or a space-separated string. Scopes are the
//! union of `scope` (space-separated string, or array) and `scp` (array or string).
//!
//! For the `auth_failed` event, [`unverified_hints`] reads the header `kid`/`alg` and the
//! claimed `iss` of any token without verifying anything: attacker-chosen strings, trimmed
//! to printable ASCII, for the log only.

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::ExposeSecret;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::jwks::{self, KeySet, RemoteKeys, RemoteSource, VerifyKey};
use crate::config::{JwtAlgorithm, JwtConfig, JwtKeySource};

/// Why a token was refused. The variant is for logs and metrics; clients get one 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtRejection {
    /// Longer than `max_token_bytes`.
    #[error("too_large")]
    TooLarge,
    /// Not three segments of base64url-encoded JSON objects, or a claim of the wrong type.
    #[error("malformed")]
    Malformed,
    /// `none`, an algorithm outside the allow-list, or one the key cannot verify.
    #[error("algorithm_not_allowed")]
    AlgorithmNotAllowed,
    /// `jku`, `x5u`, `jwk`, `x5c`, `crit` (or JWE's `enc`/`zip`) in the header.
    #[error("unsupported_header")]
    UnsupportedHeader,
    /// No key with this `kid`, even after a refresh (or within the refresh cooldown).
    #[error("unknown_key")]
    UnknownKey,
    #[error("bad_signature")]
    BadSignature,
    /// No `exp` claim.
    #[error("missing_expiry")]
    MissingExpiry,
    #[error("expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("not_yet_valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("issued_in_future")]
    IssuedInFuture,
    #[error("wrong_issuer")]
    WrongIssuer,
    #[error("wrong_audience")]
    WrongAudience,
    /// No `sub`, or not a non-empty string.
    #[error("missing_subject")]
    MissingSubject,
    /// The key set could not be fetched and none is cached.
    #[error("keys_unavailable")]
    KeysUnavailable,
}

impl JwtRejection {
    /// Whether this failure could be a forged token (counted by the failed-authentication
    /// lockout). A token the issuer really signed but that is expired, early, or meant for
    /// another audience is a client's mistake, not a guess.
    pub fn is_guess(self) -> bool {
        matches!(
            self,
            JwtRejection::TooLarge
                | JwtRejection::Malformed
                | JwtRejection::AlgorithmNotAllowed
                | JwtRejection::UnsupportedHeader
                | JwtRejection::UnknownKey
                | JwtRejection::BadSignature
        )
    }

    /// A snake_case name for logs and metrics; never shown to clients.
    pub fn reason(self) -> &'static str {
        match self {
            JwtRejection::TooLarge => "too_large",
            JwtRejection::Malformed => "malformed",
            JwtRejection::AlgorithmNotAllowed => "algorithm_not_allowed",
            JwtRejection::UnsupportedHeader => "unsupported_header",
            JwtRejection::UnknownKey => "unknown_key",
            JwtRejection::BadSignature => "bad_signature",
            JwtRejection::MissingExpiry => "missing_expiry",
            JwtRejection::Expired => "expired",
            JwtRejection::NotYetValid => "not_yet_valid",
            JwtRejection::IssuedInFuture => "issued_in_future",
            JwtRejection::WrongIssuer => "wrong_issuer",
            JwtRejection::WrongAudience => "wrong_audience",
            JwtRejection::MissingSubject => "missing_subject",
            JwtRejection::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub subject: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// `jti`, if present.
    pub token_id: Option<String>,
    pub issuer: String,
    /// The header's `kid`, if present.
    pub kid: Option<String>,
    /// Every claim, for later checks (object ownership).
    pub claims: Value,
}

/// Unverified, log-safe facts about a token, for the `auth_failed` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TokenHints {
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `alg`.
    pub alg: Option<String>,
    /// The payload's `iss` (as claimed, not verified).
    pub iss: Option<String>,
}

/// Header parameters that make us refuse a token outright (see the module doc).
const REFUSED_HEADERS: [&str; 7] = ["jku", "x5u", "jwk", "x5c", "crit", "enc", "zip"];
/// Longest string kept in [`TokenHints`].
const HINT_MAX_CHARS: usize = 128;
/// Longest token [`unverified_hints`] looks into.
const HINT_MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Verifies user JWTs against one issuer. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<JwtAlgorithm>,
    roles_claim: String,
    leeway_secs: f64,
    max_token_bytes: usize,
    keys: Keys,
    /// Tokens already verified under a key of the key set (not used with HMAC secrets).
    verified: super::verified::VerifiedSignatures,
}

enum Keys {
    /// HS*: the shared secrets, current first (zeroized on drop by jsonwebtoken).
    Secret(Vec<DecodingKey>),
    /// A JWKS file read at build time.
    Static(KeySet),
    /// `jwks_url` or discovery.
    Remote(Arc<RemoteKeys>),
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.inner.keys {
            Keys::Secret(_) => "secret",
            Keys::Static(_) => "jwks_file",
            Keys::Remote(_) => "remote",
        };
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("algorithms", &self.inner.algorithms)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Builds the verifier. `JwksUrl`/`Discovery`: nothing is fetched now (keys are fetched
    /// on first use, then cached), but the URL must be https (or http to a loopback host).
    /// `JwksFile`: the file is read and parsed now and must hold at least one usable key.
    /// `Secret`: the HMAC key is built now. HMAC algorithms are accepted only with `Secret`,
    /// and `Secret` only with HMAC algorithms. The error is a message for a `ConfigError`.
    pub fn new(config: &JwtConfig) -> Result<JwtVerifier, String> {
        if config.algorithms.is_empty() {
            return Err("no algorithm is allowed".into());
        }
        if config.audiences.is_empty() {
            return Err("no audience is configured".into());
        }
        let secret = matches!(config.keys, JwtKeySource::Secret(_));
        if let Some(alg) = config.algorithms.iter().find(|a| a.is_hmac() != secret) {
            return Err(if secret {
                format!("{alg:?} cannot be verified with a shared secret")
            } else {
                format!("{alg:?} needs a shared secret, not a key set")
            });
        }
        let keys = match &config.keys {
            JwtKeySource::Secret(secrets) => {
                if secrets.is_empty() {
                    return Err("no JWT secret is configured".into());
                }
                let mut keys = Vec::with_capacity(secrets.len());
                for secret in secrets {
                    let bytes = secret.expose_secret().as_bytes();
                    if bytes.is_empty() {
                        return Err("a JWT secret is empty".into());
                    }
                    keys.push(DecodingKey::from_secret(bytes));
                }
                Keys::Secret(keys)
            }
            JwtKeySource::JwksFile(path) => {
                let document = read_capped(path)?;
                let set =
                    KeySet::parse(&document).map_err(|e| format!("{}: {e}", path.display()))?;
                if set.is_empty() {
                    return Err(format!(
                        "{}: the key set has no usable keys",
                        path.display()
                    ));
                }
                Keys::Static(set)
            }
            JwtKeySource::JwksUrl(uri) => Keys::Remote(Arc::new(RemoteKeys::new(
                RemoteSource::Jwks(crate::config::outbound::key_url(&uri.to_string())?),
                &config.issuer,
                config.jwks_refresh,
                config.jwks_cooldown,
            )?)),
            JwtKeySource::Discovery(uri) => Keys::Remote(Arc::new(RemoteKeys::new(
                RemoteSource::Discovery(crate::config::outbound::key_url(&uri.to_string())?),
                &config.issuer,
                config.jwks_refresh,
                config.jwks_cooldown,
            )?)),
        };
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                issuer: config.issuer.clone(),
                audiences: config.audiences.clone(),
                algorithms: config.algorithms.clone(),
                roles_claim: config.roles_claim.clone(),
                leeway_secs: config.leeway.as_secs_f64(),
                max_token_bytes: config.max_token_bytes,
                keys,
                verified: Default::default(),
            }),
        })
    }

    /// Verifies a compact JWS (see the module doc for the order of checks). Never follows
    /// `jku`, `x5u`, `jwk` or `x5c`.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, JwtRejection> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(JwtRejection::TooLarge);
        }
        let parts = Parts::split(token)?;
        let header = decode_object(parts.header)?;

        // The algorithm, from our own parse of the header, before any key is looked at.
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwtRejection::Malformed)?;
        let alg = JwtAlgorithm::from_name(alg_name)
            .filter(|alg| inner.algorithms.contains(alg))
            .ok_or(JwtRejection::AlgorithmNotAllowed)?;
        if alg.is_hmac() != matches!(inner.keys, Keys::Secret(_)) {
            return Err(JwtRejection::AlgorithmNotAllowed);
        }
        if REFUSED_HEADERS
            .iter()
            .any(|name| header.contains_key(*name))
        {
            return Err(JwtRejection::UnsupportedHeader);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwtRejection::Malformed),
        };

        // Well-formed payload and signature before a key lookup can cost a fetch.
        let claims = decode_object(parts.payload)?;
        b64url_decode(parts.signature).ok_or(JwtRejection::Malformed)?;

        let selected: Arc<VerifyKey>;
        let (keys, set_key) = match &inner.keys {
            Keys::Secret(keys) => (keys.as_slice(), None),
            Keys::Static(set) => {
                selected = jwks::settle(set.select(kid, alg))?;
                (std::slice::from_ref(&selected.key), Some(&selected))
            }
            Keys::Remote(remote) => {
                selected = remote.key_for(kid, alg).await?;
                (std::slice::from_ref(&selected.key), Some(&selected))
            }
        };
        // A token this key already verified skips the signature check, and only that
        // (see `verified`): the claims below are checked on every request.
        let digest = set_key.map(|_| super::verified::digest(token));
        let seen = matches!((set_key, &digest), (Some(key), Some(digest)) if inner.verified.holds(digest, key));
        // Current secret first; stopping at the first match only tells the holder of a
        // valid token which secret signed it. A forgery is always checked against all.
        let signed = seen
            || keys.iter().any(|key| {
                jsonwebtoken::crypto::verify(
                    parts.signature,
                    parts.signing_input.as_bytes(),
                    key,
                    jwt_algorithm(alg),
                )
                .unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "jwt: signature check failed");
                    false
                })
            });
        if !signed {
            return Err(JwtRejection::BadSignature);
        }

        let now = now_secs();
        inner.check_claims(&claims, now)?;
        if !seen
            && let (Some(key), Some(digest)) = (set_key, digest)
            && let Ok(Some(expires_at)) = numeric_date(&claims, "exp")
        {
            inner.verified.insert(digest, key, expires_at, now);
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let token_id = claims.get("jti").and_then(Value::as_str).map(str::to_owned);
        let roles = string_list(claim_at(&claims, &inner.roles_claim));
        let mut scopes = string_list(claims.get("scope"));
        for scope in string_list(claims.get("scp")) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(VerifiedToken {
            subject,
            roles,
            scopes,
            token_id,
            issuer: inner.issuer.clone(),
            kid: kid.map(str::to_owned),
            claims: Value::Object(claims),
        })
    }
}

/// The header `kid`/`alg` and the claimed `iss` of `token`, read without verifying
/// anything, for the log of a failed verification (`auth_failed`). Empty for tokens over
/// 64 KiB or whose segments do not parse. The values are attacker-chosen: printable ASCII
/// only (anything else becomes `?`), at most 128 characters each.
pub(crate) fn unverified_hints(token: &str) -> TokenHints {
    if token.len() > HINT_MAX_TOKEN_BYTES {
        return TokenHints::default();
    }
    let mut segments = token.split('.');
    let header = segments.next().and_then(|h| decode_object(h).ok());
    let payload = segments.next().and_then(|p| decode_object(p).ok());
    let field = |obj: &Option<Map<String, Value>>, name: &str| {
        obj.as_ref()
            .and_then(|o| o.get(name))
            .and_then(Value::as_str)
            .map(log_safe)
    };
    TokenHints {
        kid: field(&header, "kid"),
        alg: field(&header, "alg"),
        iss: field(&payload, "iss"),
    }
}

impl Inner {
    fn check_claims(&self, claims: &Map<String, Value>, now: f64) -> Result<(), JwtRejection> {
        let leeway = self.leeway_secs;
        let exp = numeric_date(claims, "exp")?.ok_or(JwtRejection::MissingExpiry)?;
        if now >= exp + leeway {
            return Err(JwtRejection::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && nbf > now + leeway
        {
            return Err(JwtRejection::NotYetValid);
        }
        if let Some(iat) = numeric_date(claims, "iat")?
            && iat > now + leeway
        {
            return Err(JwtRejection::IssuedInFuture);
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(JwtRejection::WrongIssuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => {
                if auds.iter().any(|a| !a.is_string()) {
                    return Err(JwtRejection::Malformed);
                }
                auds.iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audiences.iter().any(|mine| mine == a))
            }
            _ => false,
        };
        if !audience_ok {
            return Err(JwtRejection::WrongAudience);
        }
        match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => Ok(()),
            _ => Err(JwtRejection::MissingSubject),
        }
    }
}

/// A token's three segments, borrowed.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, what the signature covers.
    signing_input: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, JwtRejection> {
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(JwtRejection::Malformed);
        };
        Ok(Parts {
            header,
            payload,
            signature,
            signing_input: &token[..header.len() + 1 + payload.len()],
        })
    }
}

/// Strict base64url → JSON object without duplicate members.
fn decode_object(segment: &str) -> Result<Map<String, Value>, JwtRejection> {
    let bytes = b64url_decode(segment).ok_or(JwtRejection::Malformed)?;
    serde_json::from_slice::<StrictObject>(&bytes)
        .map(|o| o.0)
        .map_err(|_| JwtRejection::Malformed)
}

/// A JSON object that refuses duplicate member names (parser-differential tricks such as
/// two `sub`s or two `alg`s).
struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    if map.insert(key, value).is_some() {
                        return Err(de::Error::custom("duplicate member"));
                    }
                }
                Ok(StrictObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Strict base64url without padding (RFC 7515 §2): only the url-safe alphabet, no `=`, no
/// impossible length, and the unused low bits of the last character must be zero (so every
/// byte string has exactly one encoding).
pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }
    let input = text.as_bytes();
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    for chunk in input.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => {
                if acc & 0b11 != 0 {
                    return None;
                }
                out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
            }
            2 => {
                if acc & 0b1111 != 0 {
                    return None;
                }
                out.push((acc >> 4) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A NumericDate claim: absent → `None`; present but not a finite number → `Malformed`.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, JwtRejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite())
            .map(Some)
            .ok_or(JwtRejection::Malformed),
    }
}

/// The claim named `path` if it exists as is, else the dotted path through nested objects.
fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut segments = path.split('.');
    let mut value = claims.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// An array of strings (other elements ignored) or a space-separated string.
fn string_list(value: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Roles and scopes travel upstream joined by `,` and ` `: an entry containing either
    // (`"customer,admin"`) would become two there, so such entries are dropped.
    let mut push = |s: &str| {
        let plain = s.bytes().all(|b| b.is_ascii_graphic() && b != b',');
        if plain && !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    match value {
        Some(Value::String(s)) => s.split_whitespace().for_each(&mut push),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut push),
        _ => {}
    }
    out
}

fn log_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(HINT_MAX_CHARS)
        .collect()
}

fn jwt_algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reads a JWKS file, refusing anything over the document cap.
fn read_capped(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut document = Vec::new();
    file.take(jwks::MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut document)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if document.len() > jwks::MAX_DOCUMENT_BYTES {
        return Err(format!(
            "{}: key set over {} bytes",
            path.display(),
            jwks::MAX_DOCUMENT_BYTES
        ));
    }
    Ok(document)
}

#[cfg(test)]
mod tests;
