//! Control 1, HTTPS/TLS + HSTS.
//!
//! Input: the target URL (and `--http-port` for the redirect). Output, item by item: https
//! answers (a plain-http target FAILs); TLS 1.0 and 1.1 are refused (a hand-built
//! ClientHello, since rustls cannot offer them); plain http answers with a redirect to https
//! on the same host; `Strict-Transport-Security` carries `max-age` of at least 180 days. An
//! item that cannot be tried is listed, and the control is then NOT_TESTED, never PASS.

use std::time::Duration;

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Context;
use crate::client::{Probe, ProbeError};
use crate::model::{ControlResult, Finding, Severity};

const ID: u8 = 1;
/// 180 days, the least HSTS `max-age` accepted.
pub const MIN_HSTS: u64 = 180 * 24 * 3600;

pub async fn run(ctx: &Context<'_>) -> ControlResult {
    let base = ctx.prober.base().clone();
    let host = base.host_str().unwrap_or("").to_owned();
    // `[::1]` in a URL, `::1` for a socket.
    let socket_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut findings = Vec::new();
    let mut untested: Vec<String> = Vec::new();
    if base.scheme() == "http" {
        return match ctx.prober.send(Probe::new(Method::GET, "/")).await {
            Ok(x) => ControlResult::conclude(
                ID,
                vec![Finding::new(
                    ID,
                    Severity::High,
                    "the API is served over plain http",
                    Some(base.to_string()),
                    x.request_line(),
                )],
                true,
                "",
            ),
            Err(ProbeError::Budget) => ControlResult::not_tested(ID, ctx.budget_reason()),
            Err(e) => ControlResult::error(ID, format!("{base}: {e}")),
        };
    }
    // 1. https answers.
    let first = match ctx.prober.send(Probe::new(Method::GET, "/")).await {
        Ok(x) => x,
        Err(ProbeError::Budget) => return ControlResult::not_tested(ID, ctx.budget_reason()),
        Err(e) => {
            return ControlResult::conclude(
                ID,
                vec![Finding::new(
                    ID,
                    Severity::High,
                    "https does not answer",
                    Some(base.to_string()),
                    e.to_string(),
                )],
                true,
                "",
            );
        }
    };
    // 2. HSTS.
    match first.header("strict-transport-security") {
        None => findings.push(Finding::new(
            ID,
            Severity::Medium,
            "no Strict-Transport-Security header",
            Some(base.to_string()),
            first.request_line(),
        )),
        Some(value) => {
            let max_age = hsts_max_age(value);
            if max_age.is_none_or(|age| age < MIN_HSTS) {
                findings.push(Finding::new(
                    ID,
                    Severity::Medium,
                    "HSTS max-age below 180 days",
                    Some(base.to_string()),
                    format!("strict-transport-security: {value}"),
                ));
            }
        }
    }
    // 3. Old protocol versions.
    let port = base.port_or_known_default().unwrap_or(443);
    for (name, version) in [("TLS 1.0", 0x0301u16), ("TLS 1.1", 0x0302)] {
        if ctx.prober.budget().acquire().await.is_err() {
            untested.push(format!("{name}: {}", ctx.budget_reason()));
            continue;
        }
        match old_version_accepted(&socket_host, port, version).await {
            Ok(true) => findings.push(Finding::new(
                ID,
                Severity::High,
                format!("{name} is offered"),
                Some(format!("{host}:{port}")),
                format!("the server answered a {name}-only ClientHello with a {name} ServerHello"),
            )),
            Ok(false) => {}
            Err(e) => untested.push(format!("{name}: {e}")),
        }
    }
    // 4. Plain http redirects to https on the same host.
    let http_port = ctx.options.http_port.or((port == 443).then_some(80));
    match http_port {
        None => untested.push(
            "the http→https redirect: the target is not on port 443; give --http-port".to_owned(),
        ),
        Some(http_port) => {
            let mut url = base.clone();
            let _ = url.set_scheme("http");
            let _ = url.set_port(Some(http_port));
            match ctx
                .prober
                .send_to(url.clone(), Probe::new(Method::GET, base.path().to_owned()))
                .await
            {
                Ok(x) => {
                    let location = x.header("location").and_then(|l| url.join(l).ok());
                    let good = matches!(x.status, 301 | 302 | 307 | 308)
                        && location.as_ref().is_some_and(|l| {
                            l.scheme() == "https" && l.host_str() == Some(host.as_str())
                        });
                    if !good {
                        findings.push(Finding::new(
                            ID,
                            Severity::Medium,
                            "plain http does not redirect to https on the same host",
                            Some(url.to_string()),
                            format!(
                                "{} location: {}",
                                x.request_line(),
                                x.header("location").unwrap_or("-")
                            ),
                        ));
                    }
                }
                Err(ProbeError::Transport(e)) => findings.push(Finding::new(
                    ID,
                    Severity::Info,
                    "plain http does not answer",
                    Some(url.to_string()),
                    e,
                )),
                Err(e) => untested.push(format!("the http→https redirect: {e}")),
            }
        }
    }
    for note in &untested {
        findings.push(
            Finding::new(ID, Severity::Info, "not tested", None, note.clone())
                // Several notes share the title: each its own fingerprint.
                .keyed(ID, note),
        );
    }
    ControlResult::conclude(
        ID,
        findings,
        untested.is_empty(),
        &format!("partly tested: {}", untested.join("; ")),
    )
}

/// The `max-age` of a `Strict-Transport-Security` value (directive names are
/// case-insensitive, the value may be quoted: RFC 6797 §6.1).
fn hsts_max_age(value: &str) -> Option<u64> {
    value.split(';').find_map(|directive| {
        let (name, age) = directive.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| age.trim().trim_matches('"').parse().ok())?
    })
}

/// Sends a ClientHello offering only `version` (no `supported_versions`) and says whether
/// the server agreed to it.
async fn old_version_accepted(host: &str, port: u16, version: u16) -> Result<bool, String> {
    let attempt = async {
        let mut tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.write_all(&client_hello(version, host))
            .await
            .map_err(|e| e.to_string())?;
        let mut header = [0u8; 5];
        if tcp.read_exact(&mut header).await.is_err() {
            return Ok(false); // closed: refused
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut fragment = vec![0u8; len];
        if tcp.read_exact(&mut fragment).await.is_err() {
            return Ok(false);
        }
        match header[0] {
            21 => Ok(false), // alert
            22 if fragment.first() == Some(&2) && fragment.len() >= 6 => {
                Ok(u16::from_be_bytes([fragment[4], fragment[5]]) <= version)
            }
            other => Err(format!("unexpected TLS record type {other}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| "no answer to the ClientHello within 10 s".to_owned())?
}

/// A minimal ClientHello (RFC 5246 §7.4.1.2) offering `version` with suites valid for
/// TLS 1.0–1.2 and the extensions old clients send; no `supported_versions`, so the
/// server cannot pick TLS 1.3 instead.
fn client_hello(version: u16, server_name: &str) -> Vec<u8> {
    fn u16be(out: &mut Vec<u8>, v: usize) {
        out.extend_from_slice(&(v as u16).to_be_bytes());
    }
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        u16be(out, data.len());
        out.extend_from_slice(data);
    }
    let mut body = version.to_be_bytes().to_vec();
    body.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    body.push(0);
    let suites: [u16; 8] = [
        0xc02b, 0xc02c, 0xc02f, 0xc030, 0xcca9, 0xc009, 0xc013, 0x002f,
    ];
    u16be(&mut body, suites.len() * 2);
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    let name = server_name.as_bytes();
    let mut sni = Vec::new();
    u16be(&mut sni, name.len() + 3);
    sni.push(0);
    u16be(&mut sni, name.len());
    sni.extend_from_slice(name);
    if server_name.parse::<std::net::IpAddr>().is_err() {
        ext(&mut exts, 0x0000, &sni);
    }
    ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]);
    ext(&mut exts, 0x000b, &[1, 0]);
    let schemes: [u16; 8] = [
        0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0501, 0x0601, 0x0201,
    ];
    let mut sig = Vec::new();
    u16be(&mut sig, schemes.len() * 2);
    for s in schemes {
        sig.extend_from_slice(&s.to_be_bytes());
    }
    ext(&mut exts, 0x000d, &sig);
    u16be(&mut body, exts.len());
    body.extend_from_slice(&exts);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![22, 0x03, 0x01];
    u16be(&mut record, handshake.len());
    record.extend_from_slice(&handshake);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_max_age_is_read_whatever_the_case_and_quotes() {
        assert_eq!(
            hsts_max_age("max-age=31536000; includeSubDomains"),
            Some(31_536_000)
        );
        assert_eq!(
            hsts_max_age("includeSubDomains; Max-Age=\"15552000\""),
            Some(15_552_000)
        );
        assert_eq!(hsts_max_age("includeSubDomains"), None);
        assert_eq!(hsts_max_age("max-age=soon"), None);
    }
}
