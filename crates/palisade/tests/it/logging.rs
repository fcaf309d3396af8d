//! Checklist #7, secrets never in logs: whatever a client puts in a request, no API key,
//! JWT or card number reaches a log line in the clear.

use palisade_testkit::gateway::{log_event, log_field};
use palisade_testkit::{GatewayProcess, RecordingUpstream};

#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_any_part_of_a_request_are_masked_in_every_line() {
    let upstream = RecordingUpstream::start().await;
    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(format!(
            r#"
[server]
http = "127.0.0.1:0"

[[upstream]]
name = "app"
url = "{}"

[[route]]
name = "files"
path = "/files/{{*rest}}"
methods = ["GET"]
upstream = "app"
auth = "public"
"#,
            upstream.url()
        ))
        .start();
    let key = "pal_02eaGUt6L2Ll_aUDtlyH4qgvx6bx4m0UchcH7sVGpECsvwGavag7zIki";
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    let card = "4111111111111111";
    for path in [
        format!("/files/{key}"),
        format!("/files/{jwt}"),
        format!("/files/cards/{card}"),
    ] {
        let response = reqwest::get(format!("{}{path}", gw.http_url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let lines = tokio::task::block_in_place(|| {
        gw.wait_for_log(
            |l| l["path"] == "/files/cards/card:****1111",
            std::time::Duration::from_secs(5),
        );
        gw.stdout()
    });
    for secret in ["aUDtlyH4qgvx6bx4m0Uch", "c2lnbmF0dXJl", card] {
        assert!(!lines.contains(secret), "{secret} in the log:\n{lines}");
    }
    assert!(
        lines.contains("/files/pal_02eaGUt6L2Ll_***"),
        "the key id stays for correlation:\n{lines}"
    );
    assert!(lines.contains("/files/jwt:"), "{lines}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_file_takes_every_line_and_rotates_by_size() {
    let upstream = RecordingUpstream::start().await;
    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(format!(
            r#"
[server]
http = "127.0.0.1:0"

[log]
file = "palisade.log"
max_size = "4KiB"
keep = 2

[[upstream]]
name = "app"
url = "{}"

[[route]]
name = "items"
path = "/items/{{id}}"
methods = ["GET"]
upstream = "app"
auth = "public"
"#,
            upstream.url()
        ))
        .spawn();
    // A log-file gateway announces its listener and readiness in the file, not on stdout.
    let addr =
        tokio::task::block_in_place(|| listening_in_log_file(&gw.dir().join("palisade.log")));
    let client = reqwest::Client::new();
    let url = |n: usize| format!("http://{addr}/items/{n}?token=t0ken-value-{n}");
    assert_eq!(client.get(url(0)).send().await.unwrap().status(), 200);
    for n in 1..=60 {
        let response = client.get(url(n)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let log = gw.dir().join("palisade.log");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut all = String::new();
    for _ in 0..100 {
        all = [
            gw.dir().join("palisade.log.2"),
            gw.dir().join("palisade.log.1"),
            log.clone(),
        ]
        .iter()
        .map(|p| read(p))
        .collect();
        if all.contains("\"path\":\"/items/60?token=***\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(all.contains("\"path\":\"/items/60?token=***\""), "{all}");
    // Rotated at 4 KiB, two old files kept, the oldest lines gone.
    assert!(gw.dir().join("palisade.log.2").exists());
    assert!(!gw.dir().join("palisade.log.3").exists());
    assert!(
        !all.contains("\"path\":\"/items/1?"),
        "the oldest file was deleted"
    );
    for file in ["palisade.log", "palisade.log.1", "palisade.log.2"] {
        let text = read(&gw.dir().join(file));
        assert!(text.len() <= 4096, "{file} is {} bytes", text.len());
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{file}: a line that is not JSON ({e}): {line}"));
            assert!(value["timestamp"].is_string(), "{line}");
        }
    }
    assert!(!all.contains("t0ken-value"), "query values are redacted");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the log is readable by its owner only");
    }
    // Nothing went to stdout: the file is the log.
    assert!(
        !gw.stdout().contains("\"event\":\"request\""),
        "{}",
        gw.stdout()
    );
}

/// The HTTP listener's address, once the log file says the gateway is ready.
fn listening_in_log_file(log: &std::path::Path) -> std::net::SocketAddr {
    let deadline = std::time::Instant::now() + palisade_testkit::gateway::READY_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let ready = lines.iter().any(|l| log_event(l) == Some("ready"));
        let http = lines.iter().find_map(|l| {
            (log_event(l) == Some("listening")
                && log_field(l, "listener").and_then(serde_json::Value::as_str) == Some("http"))
            .then(|| log_field(l, "addr")?.as_str()?.parse().ok())
            .flatten()
        });
        if let (true, Some(addr)) = (ready, http) {
            return addr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway was not ready in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
