//! The request headers the upstream receives.
//!
//! Identity headers (`X-Palisade-*`) are always removed because only the gateway may
//! assert an identity, and forwarding headers are rebuilt by the gateway: a client that is
//! not a configured trusted proxy cannot choose the address or scheme the upstream
//! believes in.

use http::HeaderMap;
use http::header::{AUTHORIZATION, HOST, HeaderValue};

use crate::authn::Principal;
use crate::config::IpNet;
use crate::ctx::{IpText, RequestCtx};
use crate::headers::{
    X_API_KEY, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_PALISADE_KEY_ID,
    X_PALISADE_ROLES, X_PALISADE_SCOPES, X_PALISADE_SUBJECT, X_REQUEST_ID, remove_hop_by_hop,
    remove_where,
};

/// Rewrites the client's headers into the headers the upstream receives.
///
/// `original_host` is the host the client addressed (`Host` or the URI authority),
/// passed on as `X-Forwarded-Host`; `Host` itself is set to the upstream's authority by
/// the HTTP client.
pub(super) fn prepare(
    headers: &mut HeaderMap,
    ctx: &RequestCtx,
    original_host: Option<&str>,
    trusted: &[IpNet],
    principal: &Principal,
    forward_credentials: bool,
) {
    // Forwarding: extend the chain only for a trusted peer, otherwise start it afresh. A
    // trusted peer's values are read here, before every client copy is removed below.
    let peer = ctx.conn.peer.ip();
    let peer_trusted = trusted.iter().any(|net| net.contains(peer));
    let prior_chain = if peer_trusted {
        let chain: Vec<String> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        (!chain.is_empty()).then(|| chain.join(", "))
    } else {
        None
    };
    let prior_proto = peer_trusted
        .then(|| headers.get(X_FORWARDED_PROTO).cloned())
        .flatten();
    let prior_host = peer_trusted
        .then(|| headers.get(X_FORWARDED_HOST).cloned())
        .flatten();
    remove_hop_by_hop(headers);
    headers.remove(HOST);
    remove_spoofable(headers);
    // The upstream learns who called from X-Palisade-*; the credential itself stays here
    // unless the route asks for it, so a compromised upstream cannot replay it.
    if !forward_credentials {
        headers.remove(AUTHORIZATION);
        headers.remove(X_API_KEY);
    }

    // Identity: only the gateway speaks for the caller (client copies went above).
    if let Some(subject) = principal
        .subject()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        headers.insert(X_PALISADE_SUBJECT, subject);
    }
    if !principal.roles().is_empty()
        && let Ok(roles) = HeaderValue::from_str(&principal.roles().join(","))
    {
        headers.insert(X_PALISADE_ROLES, roles);
    }
    if !principal.scopes().is_empty()
        && let Ok(scopes) = HeaderValue::from_str(&principal.scopes().join(" "))
    {
        headers.insert(X_PALISADE_SCOPES, scopes);
    }
    if let Some(key_id) = principal
        .key_id()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        headers.insert(X_PALISADE_KEY_ID, key_id);
    }

    let chain = match prior_chain {
        Some(chain) => format!("{chain}, {}", IpText(peer)),
        None => IpText(peer).to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    let proto = prior_proto
        .unwrap_or_else(|| HeaderValue::from_static(if ctx.conn.tls { "https" } else { "http" }));
    headers.insert(X_FORWARDED_PROTO, proto);
    let host = prior_host.or_else(|| original_host.and_then(|h| HeaderValue::from_str(h).ok()));
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Ok(id) = HeaderValue::from_str(ctx.id.as_str()) {
        headers.insert(X_REQUEST_ID, id);
    }
}

/// Headers that let a client steer what the upstream believes: the client address, the
/// URL it was reached by, the method and the path. The gateway decides those.
const SPOOFABLE: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "front-end-https",
    "x-url-scheme",
    // httpoxy (CVE-2016-5385): CGI-style servers expose it as HTTP_PROXY.
    "proxy",
];

/// Removes every header a client could use to impersonate the gateway's view of the
/// request: `X-Palisade-*`, every `X-Forwarded-*`, the list above, and any name with an
/// underscore, because CGI-style servers (WSGI, PHP, Rack) read `X-Palisade_Subject` as
/// `HTTP_X_PALISADE_SUBJECT`, the same variable as the real header (nginx drops them too).
fn remove_spoofable(headers: &mut HeaderMap) {
    remove_where(headers, |name| {
        let name = name.as_str();
        name.contains('_')
            || name.starts_with("x-palisade-")
            || name.starts_with("x-forwarded-")
            || SPOOFABLE.contains(&name)
    });
}
