//! The header names the gateway speaks, the client address behind trusted proxies, and
//! header hygiene shared by both sides of the proxy: hop-by-hop headers are removed
//! (RFC 9110 §7.6.1) wherever a message crosses the gateway. The request side, which
//! rebuilds identity and forwarding headers for the upstream, is `proxy::upstream_headers`.
//!
//! Response side (`finish_response`): fingerprinting headers (`Server`, `X-Powered-By`)
//! and hop-by-hop headers are removed; `X-Request-Id`, `X-Content-Type-Options: nosniff`
//! and, on https, the configured `Strict-Transport-Security` are set on every response,
//! including the gateway's own errors.

use std::net::IpAddr;

use http::header::{
    CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    STRICT_TRANSPORT_SECURITY, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, Response};

use crate::config::IpNet;

/// The header API keys may arrive in besides `Authorization`.
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_PALISADE_SUBJECT: HeaderName = HeaderName::from_static("x-palisade-subject");
pub(crate) const X_PALISADE_ROLES: HeaderName = HeaderName::from_static("x-palisade-roles");
pub(crate) const X_PALISADE_KEY_ID: HeaderName = HeaderName::from_static("x-palisade-key-id");
pub(crate) const X_PALISADE_SCOPES: HeaderName = HeaderName::from_static("x-palisade-scopes");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    // Never let `Connection: x-request-id` or similar strip what the gateway sets: the
    // gateway's own headers are inserted after this.
    remove_where(headers, |name| {
        HOP_BY_HOP.contains(name) || named.contains(name)
    });
}

/// Removes every header whose name `doomed` picks.
///
/// One pass over the names present (a request or response carries a handful) instead of
/// one lookup per name that might be there: on every request both sides remove a few
/// dozen names, and most of them are absent.
pub(crate) fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(name))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// The client's address as the gateway believes it.
///
/// With no trusted proxies this is the peer. When the peer is trusted, the
/// `X-Forwarded-For` chain is walked from the right, skipping trusted hops, and the first
/// untrusted address is the client: the only entries that can be believed are those
/// appended by proxies we trust. Hops may carry a port (`1.2.3.4:5555`, `[2001:db8::1]:443`,
/// as some proxies append them). A hop that cannot be read ends the walk at the nearest
/// address already verified: skipping it would let the entries to its left, which the
/// client wrote, be believed.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let values: Vec<&[u8]> = (headers.get_all(X_FORWARDED_FOR).iter())
        .map(|v| v.as_bytes())
        .collect();
    let mut nearest = peer;
    for value in values.into_iter().rev() {
        let Ok(value) = std::str::from_utf8(value) else {
            return nearest;
        };
        for hop in value.rsplit(',') {
            let Some(ip) = hop_address(hop.trim()) else {
                return nearest;
            };
            if !is_trusted(ip) {
                return ip;
            }
            nearest = ip;
        }
    }
    nearest
}

/// An `X-Forwarded-For` hop: an address, optionally with a port, IPv6 optionally in brackets.
fn hop_address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return if port_ok { ip.parse().ok() } else { None };
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Response headers that only fingerprint the upstream's software or expose its internals.
const FINGERPRINTS: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-runtime",
    "x-debug-token",
    "x-debug-token-link",
    "x-backend-server",
    "x-generator",
    "via",
];

/// Applies the response-side rules to every response, proxied or generated.
pub(crate) fn finish_response<B>(
    response: &mut Response<B>,
    request_id: &str,
    hsts: Option<&HeaderValue>,
) {
    let headers = response.headers_mut();
    remove_hop_by_hop(headers);
    remove_where(headers, |name| FINGERPRINTS.contains(&name.as_str()));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID, id);
    }
    match hsts {
        Some(value) => {
            headers.insert(STRICT_TRANSPORT_SECURITY, value.clone());
        }
        // HSTS is meaningless (and ignored by browsers) over plain http; an upstream's
        // own value must not leak out on that listener either.
        None => {
            headers.remove(STRICT_TRANSPORT_SECURITY);
        }
    }
}

/// Content types, read the same way by every control that reads a body.
/// The lower-case `type/subtype` of a message's `Content-Type`.
pub(crate) fn media_essence(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// Whether the `Content-Type` names no charset, or UTF-8.
pub(crate) fn utf8_charset(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    value
        .split(';')
        .skip(1)
        .all(|parameter| match parameter.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                let charset = charset.trim().trim_matches('"');
                charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

/// Whether a media type essence is JSON: `application/json` or `application/*+json`.
pub(crate) fn is_json_media(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        let (addr, prefix) = s.split_once('/').unwrap();
        IpNet {
            addr: addr.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
        }
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert!(headers.get("x-secret").is_none());
        assert!(headers.get(TE).is_none());
        assert!(headers.get(CONNECTION).is_none());
        assert_eq!(headers["x-kept"], "1");
    }

    #[test]
    fn client_ip_ignores_forwarded_for_from_untrusted_peers() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, &[]), peer);
        assert_eq!(client_ip(peer, &headers, &[net("10.0.0.0/8")]), peer);
    }

    #[test]
    fn client_ip_walks_trusted_hops_from_the_right() {
        let mut headers = HeaderMap::new();
        headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("6.6.6.6, 198.51.100.7, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        // The spoofable leftmost entry is never chosen while an untrusted hop is nearer.
        assert_eq!(
            client_ip(peer, &headers, &[net("10.0.0.0/8")]),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn hops_with_ports_are_read_and_unreadable_hops_end_the_walk() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = [net("10.0.0.0/8")];
        let client = |xff: &'static [u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(X_FORWARDED_FOR, HeaderValue::from_bytes(xff).unwrap());
            client_ip(peer, &headers, &trusted).to_string()
        };
        assert_eq!(client(b"9.9.9.9, 1.2.3.4:5555"), "1.2.3.4");
        assert_eq!(client(b"9.9.9.9, [2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(client(b"9.9.9.9, [2001:db8::1]"), "2001:db8::1");
        // The spoofed left entry is never reached past something unreadable.
        assert_eq!(client(b"9.9.9.9, unknown"), "10.0.0.1");
        assert_eq!(client(b"9.9.9.9, 10.0.0.5, garbage:port"), "10.0.0.1");
        assert_eq!(client(b"9.9.9.9, garbage, 10.0.0.5"), "10.0.0.5");
        assert_eq!(client(b"9.9.9.9, \xff"), "10.0.0.1");
    }

    #[test]
    fn finish_strips_fingerprints_and_sets_security_headers() {
        let mut response = Response::new(());
        response
            .headers_mut()
            .insert("server", HeaderValue::from_static("Apache/2.4.1"));
        response
            .headers_mut()
            .insert("x-powered-by", HeaderValue::from_static("PHP/5.6"));
        let hsts = HeaderValue::from_static("max-age=31536000");
        finish_response(&mut response, "abc", Some(&hsts));
        let h = response.headers();
        assert!(h.get("server").is_none());
        assert!(h.get("x-powered-by").is_none());
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[X_REQUEST_ID], "abc");
        assert_eq!(h[STRICT_TRANSPORT_SECURITY], "max-age=31536000");
    }
}
