//! Tests of alerts: threshold, window, cooldown, filters, reloads, the webhook's payload and
//! retries, and the Prometheus rules.

use super::*;

fn rule(name: &str, threshold: u32, window: u64, cooldown: u64) -> AlertRule {
    AlertRule {
        name: name.to_owned(),
        event: "auth_failed".to_owned(),
        route: None,
        reason: None,
        threshold,
        window: Duration::from_secs(window),
        cooldown: Duration::from_secs(cooldown),
        webhook: None,
        builtin: false,
    }
}

/// A test clock: `t(s)` is `s` seconds after a fixed start.
fn clock() -> impl Fn(f64) -> Instant {
    let start = Instant::now();
    move |s| start + Duration::from_secs_f64(s)
}

fn names(fired: &[Fired]) -> Vec<&str> {
    fired.iter().map(|f| f.rule.name.as_str()).collect()
}

#[test]
fn the_threshold_th_event_inside_the_window_fires_and_not_one_before() {
    let t = clock();
    let set = RuleSet::new(&[rule("r", 3, 60, 600)], None);
    assert!(set.observe("auth_failed", None, None, t(0.0)).is_empty());
    assert!(set.observe("auth_failed", None, None, t(10.0)).is_empty());
    let fired = set.observe("auth_failed", None, None, t(59.9));
    assert_eq!(names(&fired), ["r"]);
    assert_eq!(fired[0].count, 3);
}

#[test]
fn events_that_left_the_window_do_not_count() {
    let t = clock();
    let set = RuleSet::new(&[rule("r", 3, 60, 600)], None);
    set.observe("auth_failed", None, None, t(0.0));
    set.observe("auth_failed", None, None, t(10.0));
    // Exactly one window after the first: it has left.
    assert!(set.observe("auth_failed", None, None, t(60.0)).is_empty());
    // The events at 10 and 60 and this one are inside one window.
    assert_eq!(
        names(&set.observe("auth_failed", None, None, t(69.0))),
        ["r"]
    );
}

#[test]
fn the_cooldown_holds_refires_and_a_lasting_spike_refires_after_it() {
    let t = clock();
    let set = RuleSet::new(&[rule("r", 2, 60, 300)], None);
    set.observe("auth_failed", None, None, t(0.0));
    assert_eq!(
        names(&set.observe("auth_failed", None, None, t(1.0))),
        ["r"]
    );
    for s in [2.0, 3.0, 100.0, 200.0, 299.0, 300.5] {
        assert!(
            set.observe("auth_failed", None, None, t(s)).is_empty(),
            "refired at {s}s, inside the cooldown"
        );
    }
    // Cooldown over (it began at 1s) and two events inside the window: fires again.
    assert_eq!(
        names(&set.observe("auth_failed", None, None, t(301.0))),
        ["r"]
    );
    // After the cooldown, a lone event does not fire.
    assert!(set.observe("auth_failed", None, None, t(900.0)).is_empty());
}

#[test]
fn route_reason_and_event_filters() {
    let t = clock();
    let mut login = rule("login", 2, 60, 60);
    login.route = Some("login".into());
    let mut sig = rule("sig", 2, 60, 60);
    sig.reason = Some("bad_signature".into());
    let set = RuleSet::new(&[login, sig], None);
    // Other events, routes, reasons and `alert` itself never count.
    for (event, reason, route) in [
        ("rate_limited", Some("bad_signature"), Some("login")),
        ("alert", Some("bad_signature"), Some("login")),
        ("alert", Some("bad_signature"), Some("login")),
        ("auth_failed", Some("expired"), Some("orders")),
        ("auth_failed", None, None),
    ] {
        assert!(set.observe(event, reason, route, t(1.0)).is_empty());
    }
    assert!(
        set.observe("auth_failed", Some("expired"), Some("login"), t(2.0))
            .is_empty()
    );
    assert_eq!(
        names(&set.observe("auth_failed", Some("bad_signature"), Some("login"), t(3.0))),
        ["login"]
    );
    assert_eq!(
        names(&set.observe("auth_failed", Some("bad_signature"), None, t(4.0))),
        ["sig"]
    );
}

#[test]
fn a_reload_keeps_the_state_of_unchanged_rules_only() {
    let t = clock();
    let old = RuleSet::new(
        &[rule("same", 2, 60, 600), rule("changed", 2, 60, 600)],
        None,
    );
    old.observe("auth_failed", None, None, t(0.0));
    assert_eq!(
        names(&old.observe("auth_failed", None, None, t(1.0))),
        ["same", "changed"]
    );
    let reloaded = RuleSet::new(
        &[rule("same", 2, 60, 600), rule("changed", 3, 60, 600)],
        Some(&old),
    );
    // `same` is still resting; `changed` starts afresh and needs three events.
    assert!(
        reloaded
            .observe("auth_failed", None, None, t(2.0))
            .is_empty()
    );
    assert!(
        reloaded
            .observe("auth_failed", None, None, t(3.0))
            .is_empty()
    );
    assert_eq!(
        names(&reloaded.observe("auth_failed", None, None, t(4.0))),
        ["changed"]
    );
}

#[test]
fn payload_fields() {
    let mut r = rule("login_failures", 5, 120, 600);
    r.route = Some("login".into());
    let fired = Fired { rule: r, count: 5 };
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_566_896);
    let body: serde_json::Value = serde_json::from_slice(&payload(&fired, at)).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "alert": "login_failures",
            "event": "auth_failed",
            "route": "login",
            "reason": null,
            "threshold": 5,
            "count": 5,
            "window_seconds": 120,
            "fired_at": "2024-05-01T12:34:56Z",
            "text": "palisade alert login_failures: 5 auth_failed events on route login within 120s",
        })
    );
}

/// A webhook that answers each connection with the next status of `statuses` (then
/// 200), counting the requests it saw.
async fn scripted_webhook(statuses: Vec<u16>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            // The payload is small: the head and body arrive before the blank line's end.
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let status = statuses.get(n).copied().unwrap_or(200);
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, seen)
}

fn failures(reason: &str) -> u64 {
    WEBHOOK_FAILURES
        .get_or_create(&FailureLabels {
            reason: reason.to_owned(),
        })
        .get()
}

#[tokio::test]
async fn deliveries_retry_transient_failures_and_give_up_on_others() {
    use std::sync::atomic::Ordering;
    let client = webhook_client().unwrap();
    let delivery = |url: &str| Delivery {
        alert: "r".to_owned(),
        url: SecretString::from(url),
        body: b"{}".to_vec(),
    };
    // 503, then 429, then 200: delivered on the third attempt, no failure counted.
    let (url, seen) = scripted_webhook(vec![503, 429]).await;
    let before = failures("status");
    deliver(&client, delivery(&url), Duration::from_millis(5)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(failures("status"), before);
    // 404 is final: one attempt, one failure.
    let (url, seen) = scripted_webhook(vec![404]).await;
    deliver(&client, delivery(&url), Duration::from_millis(5)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(failures("status"), before + 1);
    // Always 500: every attempt, then one failure.
    let (url, seen) = scripted_webhook(vec![500; 10]).await;
    deliver(&client, delivery(&url), Duration::from_millis(5)).await;
    assert_eq!(seen.load(Ordering::SeqCst), ATTEMPTS as usize);
    assert_eq!(failures("status"), before + 2);
}

#[test]
fn prometheus_rules_mirror_each_rule() {
    let mut login = rule("login_failures", 5, 90, 3600);
    login.route = Some("login".into());
    login.reason = Some("bad_signature".into());
    let mut rules = crate::config::builtin_rules(None);
    rules.push(login);
    let yaml = prometheus_rules(&rules);
    let doc: serde_json::Value = yaml_serde::from_str(&yaml).unwrap();
    let rules = doc["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[0]["alert"], "auth_failed_spike");
    assert_eq!(
        rules[0]["expr"],
        r#"sum(increase(palisade_security_events_total{event="auth_failed"}[5m])) >= 100"#
    );
    assert_eq!(rules[0]["annotations"]["cooldown"], "15m");
    assert_eq!(
        rules[3]["expr"],
        r#"sum(increase(palisade_security_events_total{event="auth_failed",route="login",reason="bad_signature"}[90s])) >= 5"#
    );
    assert_eq!(rules[3]["annotations"]["cooldown"], "1h");
    assert_eq!(rules[3]["labels"]["severity"], "warning");
}
