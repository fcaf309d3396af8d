//! Control 1 item by item, against small servers built to fail exactly one item: an https
//! server (a certificate from a throw-away CA) with or without HSTS, a plain-http listener
//! that redirects well or to another host, and one that agrees to a TLS 1.0 ClientHello.

use std::sync::Arc;

use palisade_audit::{Options, Report, Status};
use palisade_testkit::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the test servers behave.
#[derive(Clone, Copy)]
struct Setup {
    /// The `Strict-Transport-Security` value the https server sends, if any.
    hsts: Option<&'static str>,
    /// Where the plain-http listener redirects: `None` for https on the same host and
    /// port, `Some(host)` for https on another host.
    redirect_host: Option<&'static str>,
    /// Answer a ClientHello that offers TLS 1.0 or 1.1 only with a TLS 1.0 ServerHello.
    old_tls: bool,
}

const GOOD: Setup = Setup {
    hsts: Some("max-age=31536000; includeSubDomains"),
    redirect_host: None,
    old_tls: false,
};

/// Reads one request head (up to the blank line) and writes `response`, then closes.
async fn answer<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut stream: S, response: String) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A TLS 1.0 ServerHello record: what a server that still speaks TLS 1.0 answers.
fn tls10_server_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x01];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0xc0, 0x13, 0]); // ECDHE-RSA-AES128-SHA, no compression
    let mut handshake = vec![2, 0, 0, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![22, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    record
}

/// Starts the https server and the plain-http listener; returns (https URL, http port).
async fn serve(setup: Setup) -> (String, u16) {
    let pki = TestPki::new();
    let mut config = (*pki.server_config()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https_port = https.local_addr().unwrap().port();
    let hsts = setup
        .hsts
        .map(|v| format!("Strict-Transport-Security: {v}\r\n"))
        .unwrap_or_default();
    let ok = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n{hsts}\r\n{{}}"
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = https.accept().await {
            let (acceptor, ok) = (acceptor.clone(), ok.clone());
            tokio::spawn(async move {
                // The ClientHello's client_version sits after the record header (5 bytes)
                // and the handshake header (4): below 0x0303 it offers TLS 1.0 or 1.1 only.
                let mut hello = [0u8; 11];
                if setup.old_tls
                    && tcp.peek(&mut hello).await.is_ok_and(|n| n == 11)
                    && u16::from_be_bytes([hello[9], hello[10]]) < 0x0303
                {
                    let mut tcp = tcp;
                    let _ = tcp.write_all(&tls10_server_hello()).await;
                    return;
                }
                if let Ok(tls) = acceptor.accept(tcp).await {
                    answer(tls, ok).await;
                }
            });
        }
    });
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = http.local_addr().unwrap().port();
    let location = match setup.redirect_host {
        None => format!("https://127.0.0.1:{https_port}/"),
        Some(host) => format!("https://{host}:{https_port}/"),
    };
    let redirect = format!(
        "HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = http.accept().await {
            tokio::spawn(answer(tcp, redirect.clone()));
        }
    });
    (format!("https://127.0.0.1:{https_port}/"), http_port)
}

async fn audit(setup: Setup) -> Report {
    let (url, http_port) = serve(setup).await;
    let mut options = Options::new(url.parse().unwrap());
    options.insecure = true;
    options.http_port = Some(http_port);
    options.rps = 0.0;
    palisade_audit::run(options).await.unwrap()
}

/// Control 1's status and its findings' titles (info notes left out).
fn control_1(report: &Report) -> (Status, Vec<String>) {
    let control = report.control(1).unwrap();
    let titles = control
        .findings
        .iter()
        .filter(|f| f.severity != palisade_audit::Severity::Info)
        .map(|f| f.title.clone())
        .collect();
    (control.status, titles)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_hsts_a_same_host_redirect_and_no_old_tls_passes() {
    let report = audit(GOOD).await;
    let (status, titles) = control_1(&report);
    assert_eq!(
        status,
        Status::Pass,
        "{titles:?}\n{}",
        palisade_audit::report::table(&report)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_without_hsts_fails() {
    let report = audit(Setup { hsts: None, ..GOOD }).await;
    assert_eq!(
        control_1(&report),
        (
            Status::Fail,
            vec!["no Strict-Transport-Security header".to_owned()]
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_hsts_max_age_fails() {
    // One day; and a header without max-age at all.
    for hsts in ["max-age=86400", "includeSubDomains"] {
        let report = audit(Setup {
            hsts: Some(hsts),
            ..GOOD
        })
        .await;
        assert_eq!(
            control_1(&report),
            (Status::Fail, vec!["HSTS max-age below 180 days".to_owned()]),
            "{hsts}"
        );
    }
    // Exactly 180 days is enough.
    let report = audit(Setup {
        hsts: Some("max-age=15552000"),
        ..GOOD
    })
    .await;
    assert_eq!(control_1(&report), (Status::Pass, vec![]));
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_redirecting_to_another_host_fails() {
    let report = audit(Setup {
        redirect_host: Some("evil.example"),
        ..GOOD
    })
    .await;
    assert_eq!(
        control_1(&report),
        (
            Status::Fail,
            vec!["plain http does not redirect to https on the same host".to_owned()]
        )
    );
    let finding = &report.control(1).unwrap().findings[0];
    assert!(finding.evidence.contains("evil.example"), "{finding:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_agrees_to_tls_1_0_fails() {
    let report = audit(Setup {
        old_tls: true,
        ..GOOD
    })
    .await;
    assert_eq!(
        control_1(&report),
        (
            Status::Fail,
            vec![
                "TLS 1.0 is offered".to_owned(),
                "TLS 1.1 is offered".to_owned()
            ]
        )
    );
}
