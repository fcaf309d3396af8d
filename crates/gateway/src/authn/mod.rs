//! Authentication (checklist #2): request → `Principal`.
//!
//! Input: the matched route's `auth` rule and the request's credentials. Output: a
//! `Principal`, the verified identity every later phase reads. Failure:
//! `Rejection::Unauthorized` (401, `WWW-Authenticate: Bearer`) for missing, malformed,
//! unknown, expired, revoked or forged credentials, and `Rejection::AuthUnavailable` (503)
//! when the key store or the issuer's keys cannot be reached for a credential not already
//! cached: authentication fails closed.
//!
//! A `Principal` has private fields, so nothing outside this module can build one: an
//! identity exists only because this phase produced it.
//!
//! Where credentials are read: `X-Api-Key: pal_…`, or `Authorization: Bearer …` (a value
//! starting `pal_` is an API key, anything else a JWT). Never the query string, where keys
//! end up in logs and browser history. Two credentials in one request are refused rather
//! than one of them being picked: a gateway and an upstream that pick differently see two
//! different callers.

pub(crate) mod jwks;
pub(crate) mod jwt;
pub(crate) mod verified;

use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use palisade_store::{KeyRejection, KeyService};

use crate::config::{RouteAuth, RouteConfig};
use crate::ctx::RequestCtx;
use crate::headers::X_API_KEY;
use crate::observe::security::{Scope, security_event};
use crate::rejection::Rejection;
use jwt::{JwtRejection, JwtVerifier};

/// A verified identity. Only `Authenticator::authenticate` can construct one.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    subject: Option<Arc<str>>,
    roles: Arc<[String]>,
    scopes: Arc<[String]>,
    key_id: Option<Arc<str>>,
    claims: Option<Arc<serde_json::Value>>,
}

impl Principal {
    fn anonymous() -> Self {
        Principal {
            subject: None,
            roles: Arc::from(Vec::new()),
            scopes: Arc::from(Vec::new()),
            key_id: None,
            claims: None,
        }
    }

    /// The subject (user or application) the caller acts for.
    pub(crate) fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub(crate) fn roles(&self) -> &[String] {
        &self.roles
    }

    pub(crate) fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The public id of the API key used, never the key itself.
    pub(crate) fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Subject and key id, shared, for the request context (and so every later log line).
    pub(crate) fn identity(&self) -> (Option<Arc<str>>, Option<Arc<str>>) {
        (self.subject.clone(), self.key_id.clone())
    }

    /// Every claim of the JWT (for owner rules that name a claim other than `sub`).
    pub(crate) fn claims(&self) -> Option<&serde_json::Value> {
        self.claims.as_deref()
    }
}

/// The credential a request presents, before it is verified.
enum Credential<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
}

/// Why a request carries no usable credential (before any verification).
#[derive(Debug, Clone, Copy)]
enum Presented {
    Missing,
    Ambiguous,
    BadScheme,
}

/// The authentication phase, built from the config on every (re)load.
pub(crate) struct Authenticator {
    keys: Option<KeyService>,
    jwt: Option<JwtVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("api_keys", &self.keys.is_some())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl Authenticator {
    pub(crate) fn new(keys: Option<KeyService>, jwt: Option<JwtVerifier>) -> Self {
        Authenticator { keys, jwt }
    }

    /// Establishes who is calling. Contract: reads headers only (never the body or the
    /// query string); never forwards; every failure is logged as `auth_failed` with its
    /// reason and never with the credential.
    pub(crate) async fn authenticate(
        &self,
        ctx: &RequestCtx,
        route: &RouteConfig,
        headers: &HeaderMap,
    ) -> Result<Principal, Rejection> {
        if route.auth == RouteAuth::Public {
            return Ok(Principal::anonymous());
        }
        let credential = match credential(headers) {
            Ok(credential) => credential,
            Err(why) => {
                let (reason, given) = match why {
                    Presented::Missing => ("missing_credentials", Given::Nothing),
                    Presented::Ambiguous => ("ambiguous_credentials", Given::NotAGuess),
                    Presented::BadScheme => ("unsupported_scheme", Given::Nothing),
                };
                return Err(self.fail(ctx, reason, given, None, None));
            }
        };
        match credential {
            Credential::ApiKey(key) => {
                let Some(keys) = self.keys.as_ref().filter(|_| route.auth != RouteAuth::Jwt) else {
                    return Err(self.fail(
                        ctx,
                        "api_key_not_accepted",
                        Given::NotAGuess,
                        None,
                        None,
                    ));
                };
                match keys.verify(key).await {
                    Ok(verified) => Ok(Principal {
                        subject: Some(verified.subject),
                        roles: verified.roles,
                        scopes: verified.scopes,
                        key_id: Some(verified.id),
                        claims: None,
                    }),
                    Err(KeyRejection::StoreUnavailable) => {
                        security_event!(
                            warn,
                            Scope::of(ctx).key_id(key_id_of(key)),
                            "auth_failed",
                            "key_store_unavailable"
                        );
                        Err(Rejection::AuthUnavailable)
                    }
                    Err(rejection) => Err(self.fail(
                        ctx,
                        rejection.reason(),
                        Given::judged(rejection.is_guess()),
                        key_id_of(key),
                        None,
                    )),
                }
            }
            Credential::Jwt(token) => {
                let Some(verifier) = self
                    .jwt
                    .as_ref()
                    .filter(|_| route.auth != RouteAuth::ApiKey)
                else {
                    return Err(self.fail(ctx, "jwt_not_accepted", Given::NotAGuess, None, None));
                };
                match verifier.verify(token).await {
                    // The subject goes upstream in a header; one that cannot be written
                    // there would leave the upstream without an identity.
                    Ok(verified) if http::HeaderValue::from_str(&verified.subject).is_err() => {
                        Err(self.fail(ctx, "bad_subject", Given::NotAGuess, None, Some(token)))
                    }
                    Ok(verified) => Ok(Principal {
                        subject: Some(verified.subject.as_str().into()),
                        roles: verified.roles.into(),
                        scopes: verified.scopes.into(),
                        key_id: None,
                        claims: Some(Arc::new(verified.claims)),
                    }),
                    Err(JwtRejection::KeysUnavailable) => {
                        security_event!(
                            warn,
                            Scope::of(ctx),
                            "auth_failed",
                            "jwt_keys_unavailable"
                        );
                        Err(Rejection::AuthUnavailable)
                    }
                    Err(rejection) => Err(self.fail(
                        ctx,
                        rejection.reason(),
                        Given::judged(rejection.is_guess()),
                        None,
                        Some(token),
                    )),
                }
            }
        }
    }

    /// Logs an `auth_failed` event and builds the 401. The event names the reason and the
    /// public key id or the token's `kid`/`iss` (read without trusting them), never the
    /// credential itself.
    fn fail(
        &self,
        ctx: &RequestCtx,
        reason: &'static str,
        given: Given,
        key_id: Option<&str>,
        token: Option<&str>,
    ) -> Rejection {
        let hints = token.map(jwt::unverified_hints).unwrap_or_default();
        security_event!(
            info,
            Scope::of(ctx).key_id(key_id),
            "auth_failed",
            reason,
            kid = hints.kid.as_deref(),
            iss = hints.iss.as_deref(),
        );
        Rejection::Unauthorized {
            token_given: given != Given::Nothing,
            guess: given == Given::Guess,
        }
    }
}

/// What a failed request presented, for the 401's `WWW-Authenticate` and the lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    Nothing,
    /// A credential that is wrong in a way no guess produces (expired, revoked, meant
    /// for another route or audience).
    NotAGuess,
    /// A credential that could be a guess or a forgery (unknown, wrong secret, bad
    /// signature, malformed).
    Guess,
}

impl Given {
    fn judged(guess: bool) -> Given {
        if guess {
            Given::Guess
        } else {
            Given::NotAGuess
        }
    }
}

/// The one credential of a request, or why there is none.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, Presented> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let mut api_key = headers.get_all(X_API_KEY).iter();
    let (auth, second_auth) = (authorization.next(), authorization.next());
    let (key, second_key) = (api_key.next(), api_key.next());
    if second_auth.is_some() || second_key.is_some() || (auth.is_some() && key.is_some()) {
        return Err(Presented::Ambiguous);
    }
    if let Some(key) = key {
        let key = key.to_str().map_err(|_| Presented::BadScheme)?.trim();
        return Ok(Credential::ApiKey(key));
    }
    let Some(auth) = auth else {
        return Err(Presented::Missing);
    };
    let auth = auth.to_str().map_err(|_| Presented::BadScheme)?;
    // RFC 9110 §11.1: the scheme is case-insensitive.
    let (scheme, value) = auth.split_once(' ').ok_or(Presented::BadScheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Presented::BadScheme);
    }
    let value = value.trim();
    if value.starts_with("pal_") {
        Ok(Credential::ApiKey(value))
    } else {
        Ok(Credential::Jwt(value))
    }
}

/// The public key id of a presented key, if it is shaped like one (for the log only).
fn key_id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("pal_")?;
    let (id, _) = rest.split_once('_')?;
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn credentials_come_from_one_header_only() {
        assert!(matches!(credential(&headers(&[])), Err(Presented::Missing)));
        assert!(matches!(
            credential(&headers(&[("authorization", "Bearer pal_x_y")])),
            Ok(Credential::ApiKey("pal_x_y"))
        ));
        assert!(matches!(
            credential(&headers(&[("authorization", "bearer eyJ.a.b")])),
            Ok(Credential::Jwt("eyJ.a.b"))
        ));
        assert!(matches!(
            credential(&headers(&[("x-api-key", "pal_x_y")])),
            Ok(Credential::ApiKey("pal_x_y"))
        ));
        assert!(matches!(
            credential(&headers(&[("authorization", "Basic dTpw")])),
            Err(Presented::BadScheme)
        ));
        assert!(matches!(
            credential(&headers(&[
                ("authorization", "Bearer a"),
                ("x-api-key", "pal_b")
            ])),
            Err(Presented::Ambiguous)
        ));
        assert!(matches!(
            credential(&headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])),
            Err(Presented::Ambiguous)
        ));
    }

    #[test]
    fn key_ids_are_extracted_only_from_key_shaped_strings() {
        assert_eq!(key_id_of("pal_AbCdEf123456_secret"), Some("AbCdEf123456"));
        assert_eq!(key_id_of("pal_short_secret"), None);
        assert_eq!(key_id_of("eyJhbGciOi"), None);
    }
}
