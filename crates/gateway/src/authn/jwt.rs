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
pub struct TokenHints {
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
pub fn unverified_hints(token: &str) -> TokenHints {
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
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
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
mod tests {
    use std::time::Duration;

    use palisade_testkit::jwks::{JwksServer, SigningKey, b64url, b64url_decode, now_secs};
    use secrecy::SecretString;
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_that_would_split_upstream_are_dropped() {
        let claim =
            serde_json::json!(["customer", "customer,admin", "a b", "ok-role", "tab\there"]);
        assert_eq!(string_list(Some(&claim)), ["customer", "ok-role"]);
        let scope = serde_json::json!("orders:read  profile");
        assert_eq!(string_list(Some(&scope)), ["orders:read", "profile"]);
    }

    const AUDIENCE: &str = "orders-api";

    fn config(keys: JwtKeySource, issuer: &str, algorithms: &[JwtAlgorithm]) -> JwtConfig {
        JwtConfig {
            issuer: issuer.to_owned(),
            audiences: vec![AUDIENCE.to_owned(), "other-api".to_owned()],
            algorithms: algorithms.to_vec(),
            keys,
            roles_claim: "roles".to_owned(),
            leeway: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
            jwks_refresh: Duration::from_secs(600),
            jwks_cooldown: Duration::from_secs(30),
        }
    }

    fn jwks_url(server: &JwksServer) -> JwtKeySource {
        JwtKeySource::JwksUrl(server.jwks_url().parse().unwrap())
    }

    fn verifier_for(server: &JwksServer, algorithms: &[JwtAlgorithm]) -> JwtVerifier {
        JwtVerifier::new(&config(jwks_url(server), &server.issuer(), algorithms)).unwrap()
    }

    /// An issuer with one key for `alg`, and a verifier allowing `allowed` from its JWKS URL.
    async fn issuer_with(
        alg: Algorithm,
        allowed: &[JwtAlgorithm],
    ) -> (JwksServer, String, JwtVerifier) {
        let server = JwksServer::start().await;
        let kid = server.add_key(alg);
        let verifier = verifier_for(&server, allowed);
        (server, kid, verifier)
    }

    async fn rs256() -> (JwksServer, String, JwtVerifier) {
        issuer_with(Algorithm::RS256, &[JwtAlgorithm::RS256]).await
    }

    fn claims(server: &JwksServer) -> Value {
        server.claims("alice", AUDIENCE)
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    /// A token from raw segments (already-encoded header and payload, any signature).
    fn raw_token(header: &str, payload: &str, signature: &str) -> String {
        format!("{header}.{payload}.{signature}")
    }

    async fn assert_valid(alg: Algorithm, allowed: JwtAlgorithm) {
        let (server, kid, verifier) = issuer_with(alg, &[allowed]).await;
        let token = server.sign(&kid, claims(&server));
        let verified = verifier.verify(&token).await.expect("valid token");
        assert_eq!(verified.subject, "alice");
        assert_eq!(verified.issuer, server.issuer());
        assert_eq!(verified.kid.as_deref(), Some(kid.as_str()));
        assert!(verified.token_id.as_deref().unwrap().starts_with("jti-"));
        assert_eq!(verified.claims["aud"], AUDIENCE);
        assert_eq!(server.fetch_count(), 1);
        // Cached: a second token costs no fetch.
        verifier.verify(&token).await.expect("valid again");
        assert_eq!(server.fetch_count(), 1);
    }

    /// A token verified once is remembered by its exact bytes and key: using it again skips
    /// the signature check but not the claims (it still expires), and a token that differs
    /// in its signature is verified, and refused, afresh — and never remembered.
    #[tokio::test]
    async fn remembered_tokens_still_expire_and_forgeries_are_never_remembered() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::ES256);
        let mut config = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::ES256]);
        config.leeway = Duration::ZERO;
        let verifier = JwtVerifier::new(&config).unwrap();
        // Two seconds at least (one, were `now` about to tick over), and short enough to wait.
        let exp = now_secs() + 2;
        let token = server.sign(&kid, with(claims(&server), "exp", json!(exp)));
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");
        assert_eq!(verifier.inner.verified.entries(), 1);
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");

        let (head, signature) = token.rsplit_once('.').unwrap();
        let mut forged: Vec<u8> = signature.bytes().collect();
        forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
        let forged = format!("{head}.{}", String::from_utf8(forged).unwrap());
        assert_eq!(
            verifier.verify(&forged).await.unwrap_err(),
            JwtRejection::BadSignature
        );
        assert_eq!(
            verifier.inner.verified.entries(),
            1,
            "the forgery is not remembered"
        );

        while now_secs() < exp {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::Expired
        );
    }

    // --- valid tokens, one per algorithm family -------------------------------------------

    #[tokio::test]
    async fn valid_rs256() {
        assert_valid(Algorithm::RS256, JwtAlgorithm::RS256).await;
    }

    #[tokio::test]
    async fn valid_ps256() {
        assert_valid(Algorithm::PS256, JwtAlgorithm::PS256).await;
    }

    #[tokio::test]
    async fn valid_es256() {
        assert_valid(Algorithm::ES256, JwtAlgorithm::ES256).await;
    }

    #[tokio::test]
    async fn valid_es384() {
        assert_valid(Algorithm::ES384, JwtAlgorithm::ES384).await;
    }

    #[tokio::test]
    async fn valid_eddsa() {
        assert_valid(Algorithm::EdDSA, JwtAlgorithm::EdDSA).await;
    }

    /// During a rotation (`secret = [new, old]`) tokens signed with either verify; one
    /// signed with neither is a bad signature; once the old one is dropped, its tokens fail.
    #[tokio::test]
    async fn hs256_with_two_secrets_during_a_rotation() {
        let server = JwksServer::start().await; // only for claims and signing
        let (new, old) = (
            "the-new-shared-secret-for-hs256-0123456789",
            "the-old-shared-secret-for-hs256-0123456789",
        );
        let verifier = |list: &[&str]| {
            JwtVerifier::new(&config(
                JwtKeySource::Secret(list.iter().map(|s| SecretString::from(*s)).collect()),
                &server.issuer(),
                &[JwtAlgorithm::HS256],
            ))
            .unwrap()
        };
        let header = json!({ "alg": "HS256", "typ": "JWT" });
        let sign = |secret: &str| {
            server.sign_with_header(
                header.clone(),
                claims(&server),
                SigningKey::Hmac(secret.as_bytes()),
            )
        };
        let during = verifier(&[new, old]);
        for secret in [new, old] {
            let verified = during.verify(&sign(secret)).await.expect("either secret");
            assert_eq!(verified.subject, "alice");
        }
        let neither = sign("a-third-secret-that-nobody-configured-0123");
        assert_eq!(
            during.verify(&neither).await.unwrap_err(),
            JwtRejection::BadSignature
        );
        let after = verifier(&[new]);
        assert!(after.verify(&sign(new)).await.is_ok());
        assert_eq!(
            after.verify(&sign(old)).await.unwrap_err(),
            JwtRejection::BadSignature
        );
    }

    #[tokio::test]
    async fn valid_hs256_with_a_secret() {
        let server = JwksServer::start().await; // only for claims and signing
        let secret = "a-long-shared-secret-for-hs256-tests-0123456789";
        let verifier = JwtVerifier::new(&config(
            JwtKeySource::Secret(vec![SecretString::from(secret)]),
            &server.issuer(),
            &[JwtAlgorithm::HS256],
        ))
        .unwrap();
        let header = json!({ "alg": "HS256", "typ": "JWT" });
        let token = server.sign_with_header(
            header.clone(),
            claims(&server),
            SigningKey::Hmac(secret.as_bytes()),
        );
        let verified = verifier.verify(&token).await.expect("valid HS256");
        assert_eq!(verified.subject, "alice");
        assert_eq!(verified.kid, None);

        let forged =
            server.sign_with_header(header, claims(&server), SigningKey::Hmac(b"another secret"));
        assert_eq!(
            verifier.verify(&forged).await.unwrap_err(),
            JwtRejection::BadSignature
        );

        // An asymmetric token is refused by a secret-keyed verifier.
        let kid = server.add_key(Algorithm::RS256);
        let rsa = server.sign(&kid, claims(&server));
        assert_eq!(
            verifier.verify(&rsa).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed
        );
        assert_eq!(server.fetch_count(), 0);
    }

    #[tokio::test]
    async fn valid_with_jwks_file() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::ES256);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, server.jwks().to_string()).unwrap();
        let verifier = JwtVerifier::new(&config(
            JwtKeySource::JwksFile(path.clone()),
            &server.issuer(),
            &[JwtAlgorithm::ES256],
        ))
        .unwrap();
        let token = server.sign(&kid, claims(&server));
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");
        assert_eq!(server.fetch_count(), 0);

        let other = server.add_unpublished_key(Algorithm::ES256);
        let token = server.sign(&other, claims(&server));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::UnknownKey
        );

        // Build errors: a missing file, a file with no usable key.
        let missing = config(
            JwtKeySource::JwksFile(dir.path().join("nope.json")),
            "i",
            &[JwtAlgorithm::ES256],
        );
        assert!(
            JwtVerifier::new(&missing)
                .unwrap_err()
                .contains("nope.json")
        );
        let empty_path = dir.path().join("empty.json");
        std::fs::write(&empty_path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let empty = config(
            JwtKeySource::JwksFile(empty_path),
            "i",
            &[JwtAlgorithm::ES256],
        );
        assert!(
            JwtVerifier::new(&empty)
                .unwrap_err()
                .contains("no usable keys")
        );
    }

    // --- algorithm attacks ------------------------------------------------------------------

    #[tokio::test]
    async fn alg_none_is_rejected_in_every_spelling() {
        let (server, kid, verifier) = rs256().await;
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
            let unsigned =
                server.sign_with_header(header.clone(), claims(&server), SigningKey::Unsigned);
            assert!(unsigned.ends_with('.'));
            assert_eq!(
                verifier.verify(&unsigned).await.unwrap_err(),
                JwtRejection::AlgorithmNotAllowed,
                "{alg}"
            );
            // Even with a real signature attached.
            let signed = server.sign_with_header(header, claims(&server), SigningKey::Kid(&kid));
            assert_eq!(
                verifier.verify(&signed).await.unwrap_err(),
                JwtRejection::AlgorithmNotAllowed,
                "{alg}"
            );
        }
        // Rejected from the header alone: no key was ever looked up.
        assert_eq!(server.fetch_count(), 0);
    }

    #[tokio::test]
    async fn hs256_keyed_with_the_rsa_public_key_is_rejected() {
        // The RS256→HS256 key-confusion trick: HMAC-sign with the issuer's public key PEM,
        // hoping the verifier feeds "the key" to HMAC.
        let (server, kid, verifier) = rs256().await;
        let pem = server.public_pem(&kid);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        for alg in ["HS256", "HS384", "HS512"] {
            let header = json!({ "alg": alg, "typ": "JWT", "kid": kid });
            let forged =
                server.sign_with_header(header, claims(&server), SigningKey::Hmac(pem.as_bytes()));
            assert_eq!(
                verifier.verify(&forged).await.unwrap_err(),
                JwtRejection::AlgorithmNotAllowed,
                "{alg}"
            );
        }
        // Without a kid too.
        let header = json!({ "alg": "HS256" });
        let forged =
            server.sign_with_header(header, claims(&server), SigningKey::Hmac(pem.as_bytes()));
        assert_eq!(
            verifier.verify(&forged).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed
        );
        assert_eq!(server.fetch_count(), 0);

        // A verifier cannot even be built to allow HS256 next to an asymmetric key set.
        let mixed = config(
            jwks_url(&server),
            &server.issuer(),
            &[JwtAlgorithm::RS256, JwtAlgorithm::HS256],
        );
        assert!(JwtVerifier::new(&mixed).is_err());
        let secret_rsa = config(
            JwtKeySource::Secret(vec![SecretString::from("s")]),
            &server.issuer(),
            &[JwtAlgorithm::HS256, JwtAlgorithm::RS256],
        );
        assert!(JwtVerifier::new(&secret_rsa).is_err());
    }

    #[tokio::test]
    async fn alg_outside_the_allow_list_is_rejected() {
        let server = JwksServer::start().await;
        let rsa = server.add_key(Algorithm::RS256);
        let ec = server.add_key(Algorithm::ES256);
        let verifier = verifier_for(&server, &[JwtAlgorithm::RS256]);
        // A real ES256 token from a published key, but ES256 is not allowed.
        let token = server.sign(&ec, claims(&server));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed
        );
        // RS512 with the RSA key: same family, still not in the list.
        let header = json!({ "alg": "RS512", "kid": rsa });
        let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&rsa));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed
        );
        // Names we do not know, and a non-string alg.
        for alg in [
            json!("XS256"),
            json!("rs256"),
            json!(""),
            json!(256),
            json!(null),
        ] {
            let header = json!({ "alg": alg, "kid": rsa });
            let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&rsa));
            let err = verifier.verify(&token).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    JwtRejection::AlgorithmNotAllowed | JwtRejection::Malformed
                ),
                "{alg}: {err:?}"
            );
        }
        assert_eq!(server.fetch_count(), 0);
    }

    #[tokio::test]
    async fn kid_of_a_key_that_cannot_verify_the_alg_is_rejected() {
        let server = JwksServer::start().await;
        let ec = server.add_key(Algorithm::ES256);
        let rsa = server.add_key(Algorithm::RS256);
        let verifier = verifier_for(&server, &[JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
        // Header says RS256 and names the EC key's kid (signed by the RSA key).
        let header = json!({ "alg": "RS256", "kid": ec });
        let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&rsa));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::AlgorithmNotAllowed
        );
    }

    // --- header parameters that are never followed --------------------------------------------

    #[tokio::test]
    async fn jku_x5u_jwk_x5c_and_crit_headers_are_rejected() {
        let (server, kid, verifier) = rs256().await;
        // Warm the cache, so any later fetch would show.
        verifier
            .verify(&server.sign(&kid, claims(&server)))
            .await
            .unwrap();
        assert_eq!(server.fetch_count(), 1);

        let attacker = server.add_unpublished_key(Algorithm::RS256);
        let cases = [
            ("jku", json!(server.jwks_url())),
            ("x5u", json!(format!("http://{}/cert.pem", server.addr()))),
            ("jwk", server.jwk(&attacker)),
            (
                "x5c",
                json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
            ),
            ("crit", json!(["exp"])),
            ("crit", json!(["b64"])),
        ];
        for (name, value) in cases {
            for signer in [kid.as_str(), attacker.as_str()] {
                let mut header = json!({ "alg": "RS256", "typ": "JWT", "kid": signer });
                header[name] = value.clone();
                let token =
                    server.sign_with_header(header, claims(&server), SigningKey::Kid(signer));
                assert_eq!(
                    verifier.verify(&token).await.unwrap_err(),
                    JwtRejection::UnsupportedHeader,
                    "{name}"
                );
            }
        }
        // Nothing was fetched because of them (the jku pointed right at the JWKS).
        assert_eq!(server.fetch_count(), 1);
    }

    // --- size and shape ------------------------------------------------------------------------

    #[tokio::test]
    async fn oversize_tokens_are_rejected_first() {
        let (server, kid, _) = rs256().await;
        let token = server.sign(&kid, with(claims(&server), "pad", json!("x".repeat(600))));
        let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::RS256]);
        cfg.max_token_bytes = token.len();
        let exact = JwtVerifier::new(&cfg).unwrap();
        assert!(exact.verify(&token).await.is_ok());
        cfg.max_token_bytes = token.len() - 1;
        let smaller = JwtVerifier::new(&cfg).unwrap();
        assert_eq!(
            smaller.verify(&token).await.unwrap_err(),
            JwtRejection::TooLarge
        );
        // Checked before parsing: garbage over the limit is TooLarge, not Malformed.
        let garbage = "!".repeat(9000);
        assert_eq!(
            exact.verify(&garbage).await.unwrap_err(),
            JwtRejection::TooLarge
        );
        assert_eq!(server.fetch_count(), 1);
    }

    #[tokio::test]
    async fn wrong_segment_counts_are_malformed() {
        let (server, kid, verifier) = rs256().await;
        let token = server.sign(&kid, claims(&server));
        let segments: Vec<&str> = token.split('.').collect();
        let two = format!("{}.{}", segments[0], segments[1]);
        let four = format!("{token}.{}", segments[2]);
        let five = format!("{token}.x.y");
        for bad in [
            two.as_str(),
            four.as_str(),
            five.as_str(),
            "",
            ".",
            "..",
            "abc",
        ] {
            assert_eq!(
                verifier.verify(bad).await.unwrap_err(),
                JwtRejection::Malformed,
                "{bad:?}"
            );
        }
        assert_eq!(server.fetch_count(), 0);
    }

    #[tokio::test]
    async fn malformed_base64_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let token = server.sign(&kid, claims(&server));
        let s: Vec<&str> = token.split('.').collect();
        let cases = [
            // Standard-alphabet characters, padding, whitespace, junk.
            raw_token(
                &s[0].replacen(|c: char| c.is_ascii_alphabetic(), "+", 1),
                s[1],
                s[2],
            ),
            raw_token(&format!("{}=", s[0]), s[1], s[2]),
            raw_token(s[0], &format!("{} ", s[1]), s[2]),
            raw_token(s[0], &format!("{}!", s[1]), s[2]),
            raw_token(s[0], s[1], &format!("{}/", s[2])),
            // An impossible length (4n+1).
            raw_token(
                s[0],
                &format!("{}A", &s[1][..s[1].len() - s[1].len() % 4]),
                s[2],
            ),
            // Non-zero unused bits in the last character ("QR" is "A" with a stray bit).
            raw_token(&b64url(br#"{"alg":"RS256"}"#), "QR", s[2]),
        ];
        for bad in &cases {
            assert_eq!(
                verifier.verify(bad).await.unwrap_err(),
                JwtRejection::Malformed,
                "{bad}"
            );
        }
        assert_eq!(server.fetch_count(), 0);
    }

    #[tokio::test]
    async fn malformed_json_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let good_header = b64url(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#).as_bytes());
        let good_payload = b64url(claims(&server).to_string().as_bytes());
        let cases = [
            raw_token(&b64url(b"{\"alg\":\"RS256\""), &good_payload, "AAAA"),
            raw_token(&b64url(b"[\"RS256\"]"), &good_payload, "AAAA"),
            raw_token(&b64url(b"\"RS256\""), &good_payload, "AAAA"),
            raw_token(&b64url(b"\xff\xfe"), &good_payload, "AAAA"),
            // Duplicate members: two algs, two subs (parser-differential tricks).
            raw_token(
                &b64url(br#"{"alg":"RS256","alg":"none"}"#),
                &good_payload,
                "AAAA",
            ),
            raw_token(&good_header, &b64url(b"{not json}"), "AAAA"),
            raw_token(&good_header, &b64url(b"[1,2,3]"), "AAAA"),
            raw_token(
                &good_header,
                &b64url(br#"{"sub":"alice","sub":"admin"}"#),
                "AAAA",
            ),
            raw_token(&good_header, &b64url(b"{} trailing"), "AAAA"),
            // A kid that is not a string.
            raw_token(
                &b64url(br#"{"alg":"RS256","kid":7}"#),
                &good_payload,
                "AAAA",
            ),
        ];
        for bad in &cases {
            assert_eq!(
                verifier.verify(bad).await.unwrap_err(),
                JwtRejection::Malformed,
                "{bad}"
            );
        }
        // A correctly signed token whose time claim is not a number.
        let token = server.sign(&kid, with(claims(&server), "exp", json!("tomorrow")));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::Malformed
        );
        assert_eq!(server.fetch_count(), 1);
    }

    // --- keys and signatures ------------------------------------------------------------------

    #[tokio::test]
    async fn bad_signature_is_rejected() {
        let (server, kid, verifier) = issuer_with(Algorithm::ES256, &[JwtAlgorithm::ES256]).await;
        let token = server.sign(&kid, claims(&server));
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = b64url_decode(signature);
        bytes[10] ^= 0x01;
        let flipped = format!("{message}.{}", b64url(&bytes));
        assert_eq!(
            verifier.verify(&flipped).await.unwrap_err(),
            JwtRejection::BadSignature
        );

        // Claims changed after signing.
        let (header, _) = message.split_once('.').unwrap();
        let tampered_claims = with(claims(&server), "sub", json!("admin"));
        let tampered = raw_token(
            header,
            &b64url(tampered_claims.to_string().as_bytes()),
            signature,
        );
        assert_eq!(
            verifier.verify(&tampered).await.unwrap_err(),
            JwtRejection::BadSignature
        );

        // Signed by another key under a published kid.
        let impostor = server.add_unpublished_key(Algorithm::ES256);
        let header = json!({ "alg": "ES256", "kid": kid });
        let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&impostor));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::BadSignature
        );

        // An empty signature.
        assert_eq!(
            verifier.verify(&format!("{message}.")).await.unwrap_err(),
            JwtRejection::BadSignature
        );
    }

    #[tokio::test]
    async fn unknown_kid_is_rejected_after_one_refresh() {
        let (server, kid, verifier) = rs256().await;
        verifier
            .verify(&server.sign(&kid, claims(&server)))
            .await
            .unwrap();
        assert_eq!(server.fetch_count(), 1);
        let unpublished = server.add_unpublished_key(Algorithm::RS256);
        let token = server.sign(&unpublished, claims(&server));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::UnknownKey
        );
        assert_eq!(
            server.fetch_count(),
            2,
            "an unknown kid triggers exactly one refresh"
        );
    }

    #[tokio::test]
    async fn token_without_kid_uses_the_only_suitable_key() {
        let (server, kid, verifier) = rs256().await;
        let header = json!({ "alg": "RS256", "typ": "JWT" });
        let token = server.sign_with_header(header.clone(), claims(&server), SigningKey::Kid(&kid));
        let verified = verifier.verify(&token).await.unwrap();
        assert_eq!(verified.kid, None);
        // With two RSA keys, a token without kid is ambiguous.
        let second = server.add_key(Algorithm::RS256);
        let token = server.sign_with_header(header, claims(&server), SigningKey::Kid(&second));
        let server_fetches = server.fetch_count();
        let fresh = verifier_for(&server, &[JwtAlgorithm::RS256]);
        assert_eq!(
            fresh.verify(&token).await.unwrap_err(),
            JwtRejection::UnknownKey
        );
        assert_eq!(server.fetch_count(), server_fetches + 1);
    }

    #[tokio::test]
    async fn key_rotation_at_the_issuer_is_picked_up() {
        let (server, old, verifier) = rs256().await;
        verifier
            .verify(&server.sign(&old, claims(&server)))
            .await
            .unwrap();
        // The issuer rotates: a new key is published, the old one withdrawn.
        let new = server.add_key(Algorithm::RS256);
        server.remove_key(&old);
        let token = server.sign(&new, claims(&server));
        assert_eq!(
            verifier.verify(&token).await.unwrap().kid.as_deref(),
            Some(new.as_str())
        );
        assert_eq!(server.fetch_count(), 2);
        // The same verifier keeps accepting the new key, from its cache.
        verifier.verify(&token).await.unwrap();
        assert_eq!(server.fetch_count(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_kids_refresh_single_flight_then_cool_down() {
        let (server, kid, verifier) = rs256().await;
        verifier
            .verify(&server.sign(&kid, claims(&server)))
            .await
            .unwrap();
        assert_eq!(server.fetch_count(), 1);

        server.set_delay(Duration::from_millis(300));
        let unknown = server.add_unpublished_key(Algorithm::RS256);
        let token = server.sign(&unknown, claims(&server));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let verifier = verifier.clone();
            let token = token.clone();
            tasks.spawn(async move { verifier.verify(&token).await });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(result.unwrap().unwrap_err(), JwtRejection::UnknownKey);
        }
        assert_eq!(
            server.fetch_count(),
            2,
            "20 concurrent unknown kids, one fetch"
        );

        // Within the cooldown another unknown kid is refused without asking the issuer,
        // even though it would now be found there.
        server.set_delay(Duration::ZERO);
        let another = server.add_key(Algorithm::RS256);
        let token = server.sign(&another, claims(&server));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::UnknownKey
        );
        assert_eq!(server.fetch_count(), 2);
        // Known keys keep working meanwhile.
        verifier
            .verify(&server.sign(&kid, claims(&server)))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_start_fetches_once_for_concurrent_requests() {
        let (server, kid, verifier) = rs256().await;
        server.set_delay(Duration::from_millis(200));
        let token = server.sign(&kid, claims(&server));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let verifier = verifier.clone();
            let token = token.clone();
            tasks.spawn(async move { verifier.verify(&token).await });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(result.unwrap().unwrap().subject, "alice");
        }
        assert_eq!(server.fetch_count(), 1);
    }

    #[tokio::test]
    async fn building_the_verifier_fetches_nothing() {
        let server = JwksServer::start().await;
        server.add_key(Algorithm::RS256);
        let _verifier = verifier_for(&server, &[JwtAlgorithm::RS256]);
        let _discovery = JwtVerifier::new(&config(
            JwtKeySource::Discovery(server.discovery_url().parse().unwrap()),
            &server.issuer(),
            &[JwtAlgorithm::RS256],
        ))
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(server.fetch_count() + server.discovery_count(), 0);
    }

    #[tokio::test]
    async fn plain_http_to_a_remote_host_is_refused_at_build() {
        let cfg = config(
            JwtKeySource::JwksUrl("http://id.example.com/jwks.json".parse().unwrap()),
            "https://id.example.com/",
            &[JwtAlgorithm::RS256],
        );
        assert!(JwtVerifier::new(&cfg).unwrap_err().contains("https"));
    }

    #[tokio::test]
    async fn stale_keys_are_served_while_the_issuer_fails() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::ES256);
        let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::ES256]);
        cfg.jwks_refresh = Duration::from_millis(200);
        let verifier = JwtVerifier::new(&cfg).unwrap();
        let token = server.sign(&kid, claims(&server));
        verifier.verify(&token).await.unwrap();
        assert_eq!(server.fetch_count(), 1);

        server.set_failing(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Stale now: served anyway, and a background refresh is attempted (and fails).
        verifier.verify(&token).await.unwrap();
        wait_for_fetches(&server, 2).await;
        verifier.verify(&token).await.unwrap();
        // After a failure the issuer is left alone for the cooldown.
        tokio::time::sleep(Duration::from_millis(100)).await;
        verifier.verify(&token).await.unwrap();
        assert_eq!(server.fetch_count(), 2);
    }

    #[tokio::test]
    async fn no_keys_and_a_failing_issuer_is_keys_unavailable() {
        let (server, kid, verifier) = rs256().await;
        server.set_failing(true);
        let token = server.sign(&kid, claims(&server));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::KeysUnavailable
        );
        assert_eq!(server.fetch_count(), 1);
        // Within the cooldown, no new attempt.
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::KeysUnavailable
        );
        assert_eq!(server.fetch_count(), 1);

        // An issuer that is not there at all.
        let port = server.addr().port();
        drop(server);
        let cfg = config(
            JwtKeySource::JwksUrl(
                format!("http://127.0.0.1:{port}/jwks.json")
                    .parse()
                    .unwrap(),
            ),
            "http://127.0.0.1/",
            &[JwtAlgorithm::RS256],
        );
        let verifier = JwtVerifier::new(&cfg).unwrap();
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::KeysUnavailable
        );
    }

    #[tokio::test]
    async fn key_set_is_refreshed_after_its_freshness_ends() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::RS256);
        let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::RS256]);
        cfg.jwks_refresh = Duration::from_millis(200);
        let verifier = JwtVerifier::new(&cfg).unwrap();
        let token = server.sign(&kid, claims(&server));
        verifier.verify(&token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        verifier.verify(&token).await.unwrap();
        wait_for_fetches(&server, 2).await;

        // A Cache-Control max-age (bounded to at least 60 s) takes precedence over jwks_refresh.
        server.set_cache_max_age(Some(3600));
        let verifier = JwtVerifier::new(&cfg).unwrap();
        verifier.verify(&token).await.unwrap();
        let fetched = server.fetch_count();
        tokio::time::sleep(Duration::from_millis(300)).await;
        verifier.verify(&token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.fetch_count(), fetched);
    }

    async fn wait_for_fetches(server: &JwksServer, n: usize) {
        for _ in 0..100 {
            if server.fetch_count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} fetches, saw {}", server.fetch_count());
    }

    // --- OIDC discovery ---------------------------------------------------------------------------

    #[tokio::test]
    async fn discovery_finds_the_key_set() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::RS256);
        let discovery = JwtKeySource::Discovery(server.discovery_url().parse().unwrap());
        let verifier =
            JwtVerifier::new(&config(discovery, &server.issuer(), &[JwtAlgorithm::RS256])).unwrap();
        let token = server.sign(&kid, claims(&server));
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "alice");
        assert_eq!((server.discovery_count(), server.fetch_count()), (1, 1));
        // Rotation through discovery: the jwks_uri is remembered, only the set is refetched.
        let new = server.add_key(Algorithm::RS256);
        verifier
            .verify(&server.sign(&new, claims(&server)))
            .await
            .unwrap();
        assert_eq!((server.discovery_count(), server.fetch_count()), (1, 2));
    }

    #[tokio::test]
    async fn discovery_with_another_issuer_is_refused() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::RS256);
        let token = server.sign(&kid, claims(&server));
        server.set_issuer("https://evil.example/");
        let discovery = JwtKeySource::Discovery(server.discovery_url().parse().unwrap());
        let issuer = format!("http://{}/", server.addr());
        let verifier =
            JwtVerifier::new(&config(discovery, &issuer, &[JwtAlgorithm::RS256])).unwrap();
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::KeysUnavailable
        );
        assert_eq!((server.discovery_count(), server.fetch_count()), (1, 0));
    }

    #[tokio::test]
    async fn discovery_pointing_to_plain_http_elsewhere_is_refused() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::RS256);
        server.set_discovery_jwks_uri(Some("http://keys.example.com/jwks.json"));
        let discovery = JwtKeySource::Discovery(server.discovery_url().parse().unwrap());
        let verifier =
            JwtVerifier::new(&config(discovery, &server.issuer(), &[JwtAlgorithm::RS256])).unwrap();
        let token = server.sign(&kid, claims(&server));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::KeysUnavailable
        );
        assert_eq!((server.discovery_count(), server.fetch_count()), (1, 0));
    }

    // --- claims -------------------------------------------------------------------------------------

    #[tokio::test]
    async fn expired_token_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let now = now_secs();
        let token = server.sign(&kid, with(claims(&server), "exp", json!(now - 120)));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::Expired
        );
        // Within the 30 s leeway it still passes.
        let token = server.sign(&kid, with(claims(&server), "exp", json!(now - 10)));
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn token_without_exp_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let token = server.sign(&kid, without(claims(&server), "exp"));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::MissingExpiry
        );
    }

    #[tokio::test]
    async fn nbf_in_the_future_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let now = now_secs();
        let token = server.sign(&kid, with(claims(&server), "nbf", json!(now + 120)));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::NotYetValid
        );
        let token = server.sign(&kid, with(claims(&server), "nbf", json!(now + 10)));
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn iat_in_the_future_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let now = now_secs();
        let token = server.sign(&kid, with(claims(&server), "iat", json!(now + 120)));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::IssuedInFuture
        );
        let token = server.sign(&kid, with(claims(&server), "iat", json!(now + 10)));
        assert!(verifier.verify(&token).await.is_ok());
        let token = server.sign(&kid, without(claims(&server), "iat"));
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn wrong_issuer_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let issuer = server.issuer();
        let variants = [
            json!("https://evil.example/"),
            json!(issuer.trim_end_matches('/')),
            json!(issuer.to_uppercase()),
            json!([issuer]),
            json!(null),
        ];
        for iss in variants {
            let token = server.sign(&kid, with(claims(&server), "iss", iss.clone()));
            assert_eq!(
                verifier.verify(&token).await.unwrap_err(),
                JwtRejection::WrongIssuer,
                "{iss}"
            );
        }
        let token = server.sign(&kid, without(claims(&server), "iss"));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::WrongIssuer
        );
    }

    #[tokio::test]
    async fn wrong_audience_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        for aud in [
            json!("billing-api"),
            json!(["billing-api", "x"]),
            json!([]),
            json!(""),
        ] {
            let token = server.sign(&kid, with(claims(&server), "aud", aud.clone()));
            assert_eq!(
                verifier.verify(&token).await.unwrap_err(),
                JwtRejection::WrongAudience,
                "{aud}"
            );
        }
        let token = server.sign(&kid, without(claims(&server), "aud"));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::WrongAudience
        );
        // An array naming one of ours is fine, and so is any configured audience.
        let token = server.sign(
            &kid,
            with(claims(&server), "aud", json!(["billing-api", AUDIENCE])),
        );
        assert!(verifier.verify(&token).await.is_ok());
        let token = server.sign(&kid, with(claims(&server), "aud", json!("other-api")));
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn missing_subject_is_rejected() {
        let (server, kid, verifier) = rs256().await;
        let token = server.sign(&kid, without(claims(&server), "sub"));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtRejection::MissingSubject
        );
        for sub in [json!(""), json!(42), json!(null), json!(["alice"])] {
            let token = server.sign(&kid, with(claims(&server), "sub", sub.clone()));
            assert_eq!(
                verifier.verify(&token).await.unwrap_err(),
                JwtRejection::MissingSubject,
                "{sub}"
            );
        }
    }

    #[tokio::test]
    async fn roles_from_a_dotted_claim_and_scopes_from_scope_and_scp() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::RS256);
        let mut cfg = config(jwks_url(&server), &server.issuer(), &[JwtAlgorithm::RS256]);
        cfg.roles_claim = "realm_access.roles".into();
        let verifier = JwtVerifier::new(&cfg).unwrap();

        let mut c = claims(&server);
        c["realm_access"] = json!({ "roles": ["customer", "admin", 7] });
        c["scope"] = json!("orders:read orders:write");
        c["scp"] = json!(["orders:read", "profile"]);
        let verified = verifier.verify(&server.sign(&kid, c)).await.unwrap();
        assert_eq!(verified.roles, ["customer", "admin"]);
        assert_eq!(verified.scopes, ["orders:read", "orders:write", "profile"]);

        // Roles as a space-separated string; scp as a string; no scope claim.
        let mut c = claims(&server);
        c["realm_access"] = json!({ "roles": "customer  auditor" });
        c["scp"] = json!("orders:read");
        let verified = verifier.verify(&server.sign(&kid, c)).await.unwrap();
        assert_eq!(verified.roles, ["customer", "auditor"]);
        assert_eq!(verified.scopes, ["orders:read"]);

        // Nothing at the path: no roles, no scopes.
        let verified = verifier
            .verify(&server.sign(&kid, claims(&server)))
            .await
            .unwrap();
        assert!(verified.roles.is_empty() && verified.scopes.is_empty());

        // A claim whose name contains dots (URL-namespaced) is taken as is.
        cfg.roles_claim = "https://example.com/roles".into();
        let verifier = JwtVerifier::new(&cfg).unwrap();
        let c = with(
            claims(&server),
            "https://example.com/roles",
            json!(["admin"]),
        );
        assert_eq!(
            verifier.verify(&server.sign(&kid, c)).await.unwrap().roles,
            ["admin"]
        );
    }

    // --- helpers ------------------------------------------------------------------------------------

    #[tokio::test]
    async fn hints_read_kid_and_iss_without_trusting_them() {
        let server = JwksServer::start().await;
        let kid = server.add_key(Algorithm::RS256);
        let token = server.sign(&kid, claims(&server));
        let hints = unverified_hints(&token);
        assert_eq!(hints.kid.as_deref(), Some(kid.as_str()));
        assert_eq!(hints.alg.as_deref(), Some("RS256"));
        assert_eq!(hints.iss, Some(server.issuer()));

        let header =
            json!({ "alg": "none", "kid": format!("evil\n\u{1b}[31m{}", "k".repeat(500)) });
        let forged = server.sign_with_header(header, claims(&server), SigningKey::Unsigned);
        let hints = unverified_hints(&forged);
        let kid = hints.kid.unwrap();
        assert!(kid.starts_with("evil??[31m"));
        assert_eq!(kid.len(), 128);
        assert_eq!(unverified_hints("garbage"), TokenHints::default());
    }

    #[test]
    fn rejection_reasons_are_snake_case_and_distinct() {
        use JwtRejection::*;
        let all = [
            TooLarge,
            Malformed,
            AlgorithmNotAllowed,
            UnsupportedHeader,
            UnknownKey,
            BadSignature,
            MissingExpiry,
            Expired,
            NotYetValid,
            IssuedInFuture,
            WrongIssuer,
            WrongAudience,
            MissingSubject,
            KeysUnavailable,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(|r| r.reason()).collect();
        assert_eq!(reasons.len(), all.len());
        for r in all {
            assert!(
                r.reason()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert_eq!(r.to_string(), r.reason());
        }
    }

    #[test]
    fn strict_base64url() {
        assert_eq!(super::b64url_decode("").unwrap(), b"");
        assert_eq!(super::b64url_decode("QQ").unwrap(), b"A");
        assert_eq!(super::b64url_decode("QUI").unwrap(), b"AB");
        assert_eq!(super::b64url_decode("QUJD").unwrap(), b"ABC");
        assert_eq!(super::b64url_decode("-_-_").unwrap(), [0xfb, 0xff, 0xbf]);
        for bad in ["QQ==", "QR", "QUJ", "Q", "QUJD+", "QU/D", "QU D"] {
            assert!(super::b64url_decode(bad).is_none(), "{bad}");
        }
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\x00\xfe"] {
            assert_eq!(super::b64url_decode(&b64url(data)).unwrap(), data);
        }
    }
}
