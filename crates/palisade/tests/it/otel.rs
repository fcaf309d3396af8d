//! OpenTelemetry traces (the `otel` feature): one span per request reaches a real OTLP/HTTP
//! collector with the request id, route and status; a collector that is down or hangs never
//! slows or fails a request; `[telemetry]` is refused when it is invalid, and by a binary
//! built without the feature. Run with `cargo test -p palisade --features otel --test it otel::`;
//! in the default build only the "built without the feature" test runs.

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// A gateway config with one public route `orders` to `upstream` and `telemetry` at the end.
fn config(upstream: &str, telemetry: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[[upstream]]
name = "app"
url = "{upstream}"

[[route]]
name = "orders"
path = "/orders/{{id}}"
methods = ["GET"]
upstream = "app"
auth = "public"

[[route]]
name = "failing"
path = "/fail"
methods = ["GET"]
upstream = "app"
auth = "public"

[telemetry]
{telemetry}
"#
    )
}

#[cfg(not(feature = "otel"))]
#[test]
fn an_otlp_endpoint_in_a_build_without_the_feature_fails_the_load() {
    use palisade_testkit::GatewayProcess;
    use std::time::Duration;

    let source = config(
        "http://127.0.0.1:9",
        r#"otlp_endpoint = "http://127.0.0.1:4318""#,
    );
    let (code, _stdout, stderr) = GatewayProcess::builder(BIN)
        .config(source.clone())
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("telemetry.otlp_endpoint") && stderr.contains("without the `otel` feature"),
        "{stderr}"
    );
    // The same refusal from `check`: never a config that passes check and then does less.
    let (code, stdout, stderr) = GatewayProcess::builder(BIN)
        .config(source)
        .args(["check", "-c", "{config}"])
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("without the `otel` feature"),
        "{stdout}{stderr}"
    );
}

#[cfg(feature = "otel")]
mod with_otel {
    use std::time::{Duration, Instant};

    use palisade_testkit::{GatewayProcess, RecordingUpstream};
    use serde_json::Value;

    use super::{BIN, config};

    /// A fresh random hex string (std only): secrets are generated per test.
    fn generated() -> String {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        format!("{:016x}{:016x}", state.hash_one(1u8), state.hash_one(2u8))
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// GET `path`: (status, `X-Request-Id`).
    async fn get(client: &reqwest::Client, gw: &GatewayProcess, path: &str) -> (u16, String) {
        let response = client
            .get(format!("{}{path}", gw.http_url()))
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        (response.status().as_u16(), id)
    }

    /// Every span the collector has received so far.
    fn spans(collector: &RecordingUpstream) -> Vec<Value> {
        let mut out = Vec::new();
        for request in collector.requests() {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            for resource in body["resourceSpans"].as_array().unwrap() {
                for scope in resource["scopeSpans"].as_array().unwrap() {
                    out.extend(scope["spans"].as_array().unwrap().iter().cloned());
                }
            }
        }
        out
    }

    /// The span whose `palisade.request_id` is `id`, waiting up to 10 s for it.
    async fn span_of(collector: &RecordingUpstream, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(span) = spans(collector)
                .into_iter()
                .find(|s| attribute(s, "palisade.request_id") == Some(Value::from(id)))
            {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no span for request {id}; received {:?}",
                spans(collector)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An attribute's value (`stringValue` as a string, `intValue` as a number).
    fn attribute(span: &Value, key: &str) -> Option<Value> {
        let value = &span["attributes"]
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)?["value"];
        if let Some(s) = value["stringValue"].as_str() {
            return Some(Value::from(s));
        }
        value["intValue"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .map(Value::from)
    }

    fn metric(text: &str, line_start: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn each_request_becomes_a_span_with_its_request_id_route_and_status() {
        let upstream = RecordingUpstream::start().await;
        let collector = RecordingUpstream::start().await;
        let token = generated();
        let gw = GatewayProcess::builder(BIN)
            .env("PALISADE_OTLP_TOKEN", format!("Bearer {token}"))
            .config(config(
                &upstream.url(),
                &format!(
                    r#"otlp_endpoint = "{}"
service_name = "orders-gateway"
otlp_headers = {{ authorization = "${{env:PALISADE_OTLP_TOKEN}}" }}"#,
                    collector.url()
                ),
            ))
            .start();
        let client = client();

        let (status, id) = get(&client, &gw, "/orders/7?token=hunter2").await;
        assert_eq!(status, 200);
        let span = span_of(&collector, &id).await;
        assert_eq!(span["name"], "orders");
        assert_eq!(span["kind"], 2);
        assert_eq!(attribute(&span, "palisade.route"), Some("orders".into()));
        assert_eq!(attribute(&span, "http.request.method"), Some("GET".into()));
        // The canonical path, never the query (where tokens end up).
        assert_eq!(attribute(&span, "url.path"), Some("/orders/7".into()));
        assert_eq!(
            attribute(&span, "http.response.status_code"),
            Some(200.into())
        );
        assert_eq!(attribute(&span, "client.address"), Some("127.0.0.1".into()));
        assert_eq!(attribute(&span, "palisade.upstream"), Some("app".into()));
        assert!(span["status"].get("code").is_none(), "{span}");
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 0 && start <= end, "{span}");

        // What the collector received: OTLP/JSON at /v1/traces, with the configured header
        // and the service name.
        let export = collector.requests().remove(0);
        assert_eq!(export.method, "POST");
        assert_eq!(export.path(), "/v1/traces");
        assert_eq!(export.header("content-type"), Some("application/json"));
        let expected_auth = format!("Bearer {token}");
        assert_eq!(export.header("authorization"), Some(expected_auth.as_str()));
        let body: Value = serde_json::from_slice(&export.body).unwrap();
        let resource = &body["resourceSpans"][0]["resource"]["attributes"];
        assert!(
            resource.as_array().unwrap().iter().any(
                |a| a["key"] == "service.name" && a["value"]["stringValue"] == "orders-gateway"
            ),
            "{body}"
        );

        // An upstream 5xx: the span is an error; an unknown path: a span named `unmatched`.
        let (status, id) = get(&client, &gw, "/fail").await;
        assert_eq!(status, 500);
        let span = span_of(&collector, &id).await;
        assert_eq!(span["name"], "failing");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(
            attribute(&span, "http.response.status_code"),
            Some(500.into())
        );
        let (status, id) = get(&client, &gw, "/nowhere").await;
        assert_eq!(status, 404);
        let span = span_of(&collector, &id).await;
        assert_eq!(span["name"], "unmatched");
        assert_eq!(attribute(&span, "palisade.route"), None);
        assert_eq!(attribute(&span, "url.path"), Some("/nowhere".into()));

        // A key and a card number in the path are masked in the span, as in the log: the
        // collector never receives them.
        let key_id = &generated()[..12];
        let key_secret = format!("{}{}{}", generated(), generated(), generated());
        let key_secret = &key_secret[..43];
        let key = format!("pal_{key_id}_{key_secret}");
        let (status, id) = get(&client, &gw, &format!("/orders/{key}")).await;
        assert_eq!(status, 200);
        let span = span_of(&collector, &id).await;
        assert_eq!(
            attribute(&span, "url.path"),
            Some(format!("/orders/pal_{key_id}_***").into())
        );
        let (status, id) = get(&client, &gw, "/orders/4111111111111111").await;
        assert_eq!(status, 200);
        let span = span_of(&collector, &id).await;
        assert_eq!(
            attribute(&span, "url.path"),
            Some("/orders/card:****1111".into())
        );
        for export in collector.requests() {
            let body = String::from_utf8_lossy(&export.body);
            assert!(
                !body.contains(key_secret) && !body.contains("4111111111111111"),
                "{body}"
            );
        }

        let metrics = client
            .get(format!("{}/metrics", gw.admin_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metric(&metrics, "palisade_otel_spans_exported_total ") >= 5.0,
            "{metrics}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn spans_still_queued_at_shutdown_are_flushed() {
        let upstream = RecordingUpstream::start().await;
        let collector = RecordingUpstream::start().await;
        let mut gw = GatewayProcess::builder(BIN)
            .config(config(
                &upstream.url(),
                &format!(r#"otlp_endpoint = "{}""#, collector.url()),
            ))
            .start();
        let client = client();
        let (status, id) = get(&client, &gw, "/orders/1").await;
        assert_eq!(status, 200);
        drop(client);
        gw.signal("TERM");
        assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));
        // The gateway has exited: the span was sent before it did.
        assert!(
            spans(&collector)
                .iter()
                .any(|s| attribute(s, "palisade.request_id") == Some(id.clone().into())),
            "{:?}",
            spans(&collector)
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_collector_that_is_down_or_hangs_never_slows_requests() {
        let upstream = RecordingUpstream::start().await;
        // Down: a port nothing listens on (bound, then closed).
        let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down_url = format!("http://{}", down.local_addr().unwrap());
        drop(down);
        let gw = GatewayProcess::builder(BIN)
            .config(config(
                &upstream.url(),
                &format!(r#"otlp_endpoint = "{down_url}""#),
            ))
            .start();
        let client = client();
        for _ in 0..20 {
            let (status, _) = get(&client, &gw, "/orders/1").await;
            assert_eq!(status, 200);
        }
        let failed = gw
            .wait_for_event("otel_export_failed", Duration::from_secs(10))
            .expect("an otel_export_failed line");
        assert_eq!(failed["reason"], "connect", "{failed}");
        let metrics = client
            .get(format!("{}/metrics", gw.admin_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metric(
                &metrics,
                r#"palisade_otel_spans_dropped_total{reason="export_failed"} "#
            ) >= 1.0,
            "{metrics}"
        );
        drop(gw);

        // Hangs: accepts connections and never answers; each export waits out its timeout
        // while requests go on at full speed.
        let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hole_url = format!("http://{}", hole.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = hole.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                open.push(stream);
            }
        });
        let gw = GatewayProcess::builder(BIN)
            .config(config(
                &upstream.url(),
                &format!(r#"otlp_endpoint = "{hole_url}""#),
            ))
            .start();
        let (status, _) = get(&client, &gw, "/orders/2").await;
        assert_eq!(status, 200);
        // Wait until the exporter is connected and waiting for an answer that never comes…
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the exporter never connected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // …then requests are answered all the same, while that export is still hanging.
        for _ in 0..20 {
            let (status, _) = get(&client, &gw, "/orders/2").await;
            assert_eq!(status, 200);
        }
        assert!(
            !held.is_finished(),
            "the collector still holds the connection"
        );
        held.abort();
    }

    /// Runs `serve` with `telemetry` and returns its stderr, expecting exit 2.
    fn refused(telemetry: &str) -> String {
        let (code, _stdout, stderr) = GatewayProcess::builder(BIN)
            .config(config("http://127.0.0.1:9", telemetry))
            .run_to_exit(Duration::from_secs(20));
        assert_eq!(code, 2, "{telemetry}: {stderr}");
        assert!(stderr.contains("telemetry."), "{stderr}");
        stderr
    }

    #[test]
    fn invalid_telemetry_settings_are_refused() {
        let stderr = refused(r#"otlp_endpoint = "http://collector.example.com:4318""#);
        assert!(stderr.contains("must be https"), "{stderr}");
        let stderr = refused(r#"otlp_endpoint = "ftp://127.0.0.1:4318""#);
        assert!(stderr.contains("http(s)"), "{stderr}");
        let stderr = refused(r#"otlp_endpoint = "not a url""#);
        assert!(stderr.contains("not a valid URL"), "{stderr}");
        // Credentials written in the file are refused, and never echoed.
        let stderr = refused(r#"otlp_endpoint = "https://user:pa55word@otlp.example.com""#);
        assert!(
            stderr.contains("reference") && !stderr.contains("pa55word"),
            "{stderr}"
        );
        let stderr = refused(
            r#"otlp_endpoint = "https://otlp.example.com"
otlp_headers = { authorization = "Bearer literal-token" }"#,
        );
        assert!(
            stderr.contains("telemetry.otlp_headers.authorization")
                && !stderr.contains("literal-token"),
            "{stderr}"
        );
        let stderr = refused(
            r#"otlp_endpoint = "https://otlp.example.com"
sample_ratio = 1.5"#,
        );
        assert!(stderr.contains("telemetry.sample_ratio"), "{stderr}");
    }
}
