//! The parsers: plain functions from a resolved string to a value, or a message. A
//! message quotes the value, except where it may be a secret.

use super::*;

pub(super) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("invalid address `{s}`: expected IP:port such as `127.0.0.1:8080` or `[::1]:8443`")
    })
}

pub(super) fn token(s: &str) -> Result<SecretString, String> {
    // Never quote the value: it is the secret.
    if s.len() < 16 {
        return Err(
            "the token must be at least 16 characters (e.g. `openssl rand -hex 32`)".to_owned(),
        );
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token contains whitespace or control characters".to_owned());
    }
    Ok(SecretString::from(s))
}

/// A CIDR network or a bare address (a /32 or /128). Host bits must be clear: `10.0.0.1/8`
/// most likely means a typo, and trusting a wider network than meant is the unsafe way to
/// guess.
pub(super) fn ip_net(s: &str) -> Result<IpNet, String> {
    let usage = "expected an address (`10.1.2.3`, `::1`) or a network (`10.0.0.0/8`, `fd00::/8`)";
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid network `{s}`: {usage}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= max && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("invalid network `{s}`: the prefix length must be 0 to {max}")
            })?,
    };
    let masked = mask(addr, prefix);
    if masked != addr {
        return Err(format!(
            "invalid network `{s}`: host bits are set (did you mean `{masked}/{prefix}`?)"
        ));
    }
    Ok(IpNet { addr, prefix })
}

pub(super) fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

pub(super) fn hsts(s: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "invalid HSTS value `{s}`: expected `max-age=<seconds>[; includeSubDomains][; preload]`"
        )
    };
    http::HeaderValue::from_str(s).map_err(|_| bad())?;
    let lower = s.to_ascii_lowercase();
    let seconds = lower.strip_prefix("max-age=").ok_or_else(bad)?;
    if !seconds.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// A rate-limit policy's name goes into the `RateLimit` headers as a quoted string, and
/// into logs and metric labels: the plain charset of `name`, at most 64 bytes.
pub(super) fn policy_name(s: &str) -> Result<String, String> {
    if s.len() > 64 {
        return Err(format!("invalid name `{s}`: at most 64 characters"));
    }
    name(s)
}

/// Upstream and route names show up in logs and metric labels: keep them plain.
pub(super) fn name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "invalid name `{s}`: use letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(s.to_owned())
}

/// A role, scope or claim name: it travels in headers, so printable ASCII without
/// separators.
pub(super) fn label(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(format!(
            "invalid name `{s}`: 1 to 64 printable characters, no spaces or commas"
        ));
    }
    Ok(s.to_owned())
}

/// A JSON pointer (RFC 6901) whose segments may be `*` (every item or member).
pub(super) fn json_pointer(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!(
            "invalid JSON pointer `{s}`: it starts with `/`, e.g. `/ownerId`"
        ));
    }
    let mut escapes = s.split('~').skip(1);
    if escapes.any(|rest| !(rest.starts_with('0') || rest.starts_with('1'))) {
        return Err(format!(
            "invalid JSON pointer `{s}`: `~` must be followed by 0 or 1"
        ));
    }
    Ok(s.to_owned())
}

pub(super) fn upstream_url(s: &str) -> Result<Uri, String> {
    // Don't quote a URL with credentials or a query: either may carry a secret.
    if s.contains('@') {
        return Err("credentials in an upstream URL are not supported".to_owned());
    }
    if s.contains('?') || s.contains('#') {
        return Err("an upstream URL has no query or fragment".to_owned());
    }
    let uri: Uri = s.parse().map_err(|e| format!("invalid URL `{s}`: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!(
            "invalid URL `{s}`: expected `http://` or `https://`"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid URL `{s}`: it has no host"));
    }
    Ok(uri)
}

pub(super) fn route_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("invalid path `{s}`: it must start with `/`"));
    }
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "invalid path `{s}`: a path has no query, fragment, whitespace or control characters"
        ));
    }
    Ok(s.to_owned())
}

pub(super) fn jwt_algorithm(s: &str) -> Result<JwtAlgorithm, String> {
    if let Some(alg) = JwtAlgorithm::from_name(s) {
        return Ok(alg);
    }
    if s.eq_ignore_ascii_case("none") {
        return Err("`none` is never allowed: unsigned tokens prove nothing".to_owned());
    }
    Err(format!(
        "unknown algorithm `{s}`: expected RS256/384/512, PS256/384/512, ES256/384, EdDSA or HS256/384/512"
    ))
}

/// A key-material URL: https, or http to a loopback host (a test or sidecar issuer). Keys
/// fetched over plain http from elsewhere could be swapped by anyone on the path. The
/// policy is the fetcher's own, so config and runtime can never disagree.
pub(super) fn key_url(s: &str) -> Result<Uri, String> {
    crate::config::outbound::key_url(s)?;
    s.parse().map_err(|e| format!("invalid URL `{s}`: {e}"))
}

pub(super) fn method(s: &str) -> Result<http::Method, String> {
    http::Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method `{s}`: expected a method such as `GET` or `POST`"))
}

pub(super) fn host(s: &str) -> Result<String, String> {
    if s.contains("://") {
        return Err(format!(
            "invalid host `{s}`: write the host name alone, without a scheme"
        ));
    }
    let authority: Authority = s.parse().map_err(|_| format!("invalid host `{s}`"))?;
    if authority.port().is_some() {
        return Err(format!(
            "invalid host `{s}`: write the host name alone, without a port"
        ));
    }
    if s.contains('@') || authority.host().is_empty() {
        return Err(format!("invalid host `{s}`"));
    }
    Ok(s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net = |s: &str| ip_net(s).map(|n| (n.addr.to_string(), n.prefix));
        assert_eq!(net("10.0.0.0/8"), Ok(("10.0.0.0".into(), 8)));
        assert_eq!(net("10.1.2.3"), Ok(("10.1.2.3".into(), 32)));
        assert_eq!(net("::1"), Ok(("::1".into(), 128)));
        assert_eq!(net("fd00::/8"), Ok(("fd00::".into(), 8)));
        assert_eq!(net("0.0.0.0/0"), Ok(("0.0.0.0".into(), 0)));
        assert!(net("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(net("::/129").unwrap_err().contains("0 to 128"));
        assert!(net("10.0.0.0/+8").is_err());
        assert!(net("10.0.0.0/").is_err());
        assert!(net("example.com").is_err());
        assert!(
            net("10.1.2.3/8")
                .unwrap_err()
                .contains("did you mean `10.0.0.0/8`")
        );
    }

    #[test]
    fn upstream_urls() {
        assert!(upstream_url("http://127.0.0.1:3000").is_ok());
        assert!(upstream_url("https://api.internal/v1").is_ok());
        for bad in [
            "ftp://x",
            "127.0.0.1:3000",
            "/just/a/path",
            "http://",
            "http://u:p@host",
            "http://h/?q=1",
            "http://h/#f",
            "",
        ] {
            assert!(upstream_url(bad).is_err(), "{bad}");
        }
        assert!(
            !upstream_url("http://u:secret@h")
                .unwrap_err()
                .contains("secret")
        );
    }

    #[test]
    fn methods_and_hosts() {
        assert_eq!(method("get"), Ok(http::Method::GET));
        assert_eq!(method("PURGE").unwrap().as_str(), "PURGE");
        assert!(method("GE T").is_err());
        assert!(method("").is_err());
        assert_eq!(host("API.Example.com").as_deref(), Ok("api.example.com"));
        assert!(host("api.example.com:443").unwrap_err().contains("port"));
        assert!(
            host("https://api.example.com")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(host("a/b").is_err());
        assert!(host("").is_err());
    }

    #[test]
    fn hsts_values() {
        assert!(hsts("max-age=31536000; includeSubDomains").is_ok());
        assert!(hsts("Max-Age=0").is_ok());
        assert!(hsts("includeSubDomains").is_err());
        assert!(hsts("max-age=").is_err());
        assert!(hsts("max-age=1\n").is_err());
    }

    #[test]
    fn tokens_are_never_quoted() {
        assert!(token("0123456789abcdef").is_ok());
        let err = token("has space 0123456789").err().unwrap();
        assert!(!err.contains("has space"), "{err}");
        let err = token("short").err().unwrap();
        assert!(err.contains("16") && !err.contains("short"), "{err}");
    }
}
