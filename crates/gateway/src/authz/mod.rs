//! Authorization (checklist #3): `Principal` → `Permit`.
//!
//! Input: the route's rules (`roles`, `scopes`, `owner`), the principal from
//! authentication and the route's path parameters. Output: a `Permit`, the only value the
//! proxy accepts, carrying whatever owner check is still due on the upstream's object.
//! Failure: `Forbidden` (403) for a missing role or scope; `NotFound` (404, the same answer
//! as a missing object, so existence is never revealed) for an object the caller does not
//! own. A `Permit` has private fields and only `Authorizer::authorize` builds one, so a
//! request that skipped authentication or authorization cannot be forwarded.
//!
//! Owner rules come in two kinds. A `param` rule is decided here, from the path. A `field`
//! rule needs the object itself: the permit carries an `OwnerCheck` that the pipeline
//! applies to the upstream's response (GET/HEAD) or to a preflight GET before a write.

pub(crate) mod inspect;

use crate::authn::Principal;
use crate::config::{CollectionMode, OwnerMode, OwnerSource, RouteConfig};
use crate::ctx::RequestCtx;
use crate::observe::security::{Scope, security_event};
use crate::rejection::Rejection;

/// Proof that a principal may call a route. Consumed by `proxy::Upstream::forward`.
#[derive(Debug)]
pub(crate) struct Permit {
    principal: Principal,
    owner: Option<OwnerCheck>,
}

impl Permit {
    pub(crate) fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The owner check still due on the upstream's object, if any.
    pub(crate) fn owner_check(&self) -> Option<&OwnerCheck> {
        self.owner.as_ref()
    }
}

/// An owner check on the object's JSON, decided once the object is seen.
#[derive(Debug, Clone)]
pub(crate) struct OwnerCheck {
    /// JSON pointer to the owner in the object (or in each item of a collection).
    pub field: String,
    /// The caller's claim value the owner must equal.
    pub expected: String,
    pub collection: Option<String>,
    pub collection_mode: CollectionMode,
    pub mode: OwnerMode,
    /// Canonical path of the object, for a preflight GET before writes.
    pub object_path: String,
}

/// The authorization phase, built from the config on every (re)load.
#[derive(Debug, Default)]
pub(crate) struct Authorizer {}

impl Authorizer {
    pub(crate) fn new() -> Self {
        Authorizer {}
    }

    /// Decides whether `principal` may call `route`. Contract: reads only the principal,
    /// the route's rules and the path parameters; never the body; logs every denial.
    pub(crate) fn authorize(
        &self,
        ctx: &RequestCtx,
        route: &RouteConfig,
        principal: Principal,
        params: &[(String, String)],
        canonical_path: &str,
    ) -> Result<Permit, Rejection> {
        if !route.roles.is_empty() && !principal.roles().iter().any(|r| route.roles.contains(r)) {
            return Err(forbidden(ctx, &principal, "missing_role"));
        }
        if let Some(missing) = route
            .scopes
            .iter()
            .find(|s| !principal.scopes().contains(s))
        {
            tracing::debug!(request_id = ctx.id.as_str(), scope = %missing, "missing scope");
            return Err(forbidden(ctx, &principal, "missing_scope"));
        }
        let Some(rule) = &route.owner else {
            return Ok(Permit {
                principal,
                owner: None,
            });
        };
        if let Some(role) = principal
            .roles()
            .iter()
            .find(|r| rule.bypass_roles.contains(r))
        {
            security_event!(
                info,
                Scope::of(ctx).subject(principal.subject()).key_id(principal.key_id()),
                "owner_bypass",
                "bypass_role",
                role = %role,
            );
            return Ok(Permit {
                principal,
                owner: None,
            });
        }
        let Some(expected) = claim_value(&principal, &rule.claim) else {
            owner_violation(ctx, &principal, "claim_missing", rule.mode);
            return match rule.mode {
                OwnerMode::Enforce => Err(Rejection::NotFound),
                OwnerMode::Report => Ok(Permit {
                    principal,
                    owner: None,
                }),
            };
        };
        let owner = match &rule.source {
            OwnerSource::Param(name) => {
                let value = params
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| percent_decode(v));
                if value.as_deref() != Some(expected.as_str()) {
                    owner_violation(ctx, &principal, "param_mismatch", rule.mode);
                    if rule.mode == OwnerMode::Enforce {
                        return Err(Rejection::NotFound);
                    }
                }
                None
            }
            OwnerSource::Field(field) => Some(OwnerCheck {
                field: field.clone(),
                expected,
                collection: rule.collection.clone(),
                collection_mode: rule.collection_mode,
                mode: rule.mode,
                object_path: match &rule.object {
                    Some(pattern) => substitute(pattern, params),
                    None => canonical_path.to_owned(),
                },
            }),
        };
        Ok(Permit { principal, owner })
    }
}

/// The principal's value for an owner `claim`: the subject for `sub`, else that JWT claim
/// (a string, or a number in its JSON form).
pub(crate) fn claim_value(principal: &Principal, claim: &str) -> Option<String> {
    if claim == "sub" {
        return principal.subject().map(str::to_owned);
    }
    match principal.claims()?.get(claim)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Logs an owner violation (an attempted BOLA/IDOR, or a would-be one in report mode).
pub(crate) fn owner_violation(
    ctx: &RequestCtx,
    principal: &Principal,
    reason: &'static str,
    mode: OwnerMode,
) {
    security_event!(
        warn,
        Scope::of(ctx)
            .subject(principal.subject())
            .key_id(principal.key_id()),
        "owner_violation",
        reason,
        path = ctx.path.as_ref().map(|p| p.as_str()).unwrap_or("-"),
        mode = match mode {
            OwnerMode::Enforce => "enforce",
            OwnerMode::Report => "report",
        },
    );
}

fn forbidden(ctx: &RequestCtx, principal: &Principal, reason: &'static str) -> Rejection {
    security_event!(
        info,
        Scope::of(ctx)
            .subject(principal.subject())
            .key_id(principal.key_id()),
        "forbidden",
        reason,
    );
    Rejection::Forbidden
}

/// `/api/orders/{id}` with `id = 7` → `/api/orders/7` (values are canonical path text).
fn substitute(pattern: &str, params: &[(String, String)]) -> String {
    pattern
        .split('/')
        .map(|seg| {
            seg.strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|name| name.trim_start_matches('*'))
                .and_then(|name| params.iter().find(|(n, _)| n == name))
                .map_or(seg, |(_, v)| v.as_str())
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Decodes the percent-escapes a canonical path keeps (always valid UTF-8 there).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_are_built_from_route_parameters() {
        let params = vec![("id".to_owned(), "42".to_owned())];
        assert_eq!(substitute("/api/orders/{id}", &params), "/api/orders/42");
        assert_eq!(
            substitute("/api/orders/{id}/x", &params),
            "/api/orders/42/x"
        );
    }

    #[test]
    fn parameters_are_compared_decoded() {
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
