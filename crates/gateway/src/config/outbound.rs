//! The one policy for URLs the gateway itself calls (JWKS and OIDC discovery, the OTLP
//! collector, alert webhooks): https, or plain http to a loopback host only (a local
//! collector, relay or test issuer). Anything fetched or sent over plain http elsewhere
//! could be read or swapped by anyone on the path.
//!
//! Messages name what the URL is for and never quote it: webhook and collector URLs
//! often carry a token.

use std::net::IpAddr;

/// Parses `s` as an outbound URL for `what` ("webhook", "OTLP endpoint", "key URL").
pub fn parse(s: &str, what: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|_| format!("the {what} is not a valid URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "the {what} must be https (http only to a loopback host)"
            ));
        }
        _ => return Err(format!("the {what} must be an http(s) URL")),
    }
    if url.host().is_none() {
        return Err(format!("the {what} has no host"));
    }
    Ok(url)
}

/// An issuer's key URL (`jwks_url`, discovery, a discovered `jwks_uri`). Keys are public,
/// so the URL is quoted in messages; for the same reason credentials in it are refused:
/// they would be quoted by every error and log line naming the URL.
pub fn key_url(url: &str) -> Result<reqwest::Url, String> {
    const CREDENTIALS: &str = "credentials (user info before `@`) in a key URL are not supported: an issuer's keys are public";
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    if (authority.split(['/', '?', '#']).next().unwrap_or("")).contains('@') {
        return Err(CREDENTIALS.to_owned());
    }
    let parsed = parse(url, "key URL").map_err(|e| format!("{url:?}: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CREDENTIALS.to_owned());
    }
    Ok(parsed)
}

/// Whether the URL's host is `localhost` or a loopback address (never a name that merely
/// starts with one, such as `127.0.0.1.evil.example`).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        assert!(parse("https://hooks.example.com/x", "webhook").is_ok());
        for local in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://LOCALHOST/x",
        ] {
            assert!(parse(local, "webhook").is_ok(), "{local}");
        }
        let err = parse("http://127.0.0.1.evil.example/x", "webhook").unwrap_err();
        assert_eq!(
            err,
            "the webhook must be https (http only to a loopback host)"
        );
        let err = parse("ftp://example.com/x", "OTLP endpoint").unwrap_err();
        assert_eq!(err, "the OTLP endpoint must be an http(s) URL");
        let err = parse("https://tok:secret@/x", "webhook").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn fetch_urls_must_be_https_or_loopback() {
        assert!(key_url("https://id.example.com/jwks.json").is_ok());
        assert!(key_url("http://127.0.0.1:8080/jwks.json").is_ok());
        assert!(key_url("http://[::1]:8080/jwks.json").is_ok());
        assert!(key_url("http://localhost/jwks.json").is_ok());
        assert!(key_url("http://id.example.com/jwks.json").is_err());
        assert!(key_url("http://127.0.0.1.evil.com/jwks.json").is_err());
        assert!(key_url("file:///etc/passwd").is_err());
        for with_user in [
            "https://u:Hunter2@id.example.com/jwks.json",
            "https://Hunter2@id.example.com/jwks.json",
            "http://u:Hunter2@127.0.0.1:8080/jwks.json",
            "https:u:Hunter2@id.example.com/jwks.json",
        ] {
            let err = key_url(with_user).unwrap_err();
            assert!(err.contains("credentials"), "{with_user}: {err}");
            assert!(!err.contains("Hunter2"), "{err}");
        }
        // An `@` after the host is a path, not user info.
        assert!(key_url("https://id.example.com/@keys/jwks.json").is_ok());
        assert!(key_url("not a url").is_err());
    }
}
