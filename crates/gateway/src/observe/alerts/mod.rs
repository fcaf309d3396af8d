//! Alerts (checklist #7): a spike of security events, logged and sent to a webhook.
//!
//! Input: every security event as it is logged (handed over by
//! `security::SecurityEventLayer`, whatever the log filter), and the alert rules of the
//! running config. Output: when `threshold` matching events fall inside a rule's sliding
//! `window`, one `alert` log line, a count in `palisade_alerts_fired_total{alert}`, and a
//! JSON POST to the rule's webhook; then the rule rests for `cooldown`. Failure: a webhook
//! that is down, slow or refusing costs retries in a background task and one count in
//! `palisade_alert_webhook_failures_total{reason}` with an `alert_webhook_failed` line;
//! requests never wait on it: the hand-off is a `try_send` on a bounded queue, and a full
//! queue drops the delivery (and counts it) rather than block.
//!
//! The rules live in a process-wide slot that `Server::start` fills and every reload
//! replaces; a rule whose counting is unchanged keeps its window and cooldown across a
//! reload, so a reload neither forgets a spike nor fires it twice.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::config::AlertRule;
use crate::observe::security::{Scope, security_event};

/// Deliveries waiting for the sender; beyond this a firing is not sent (and counted).
const QUEUE: usize = 256;
/// Deliveries in flight at once, so a hung webhook ties up a bounded number of tasks.
const IN_FLIGHT: usize = 4;
/// Tries per delivery, and the wait before the first retry (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Bound on one attempt: connect, send and the response head.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    alert: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `queue_full`, `timeout`, `connect`, `status`, `error` or `no_sender`.
    reason: String,
}

/// Alerts fired in this process, by rule.
pub static FIRED: LazyLock<Family<AlertLabels, Counter>> = LazyLock::new(Family::default);
/// Deliveries given up, by why.
pub static WEBHOOK_FAILURES: LazyLock<Family<FailureLabels, Counter>> =
    LazyLock::new(Family::default);

/// One rule and what it has seen.
struct Rule {
    spec: AlertRule,
    state: Arc<Mutex<Window>>,
}

/// The last `threshold` matching events (older ones cannot matter: the rule fires when
/// the oldest of the last `threshold` is still inside the window), and the end of the rest.
#[derive(Default)]
struct Window {
    times: VecDeque<Instant>,
    quiet_until: Option<Instant>,
}

/// A rule that fired, with what the log line and the payload say.
#[derive(Debug, Clone)]
pub struct Fired {
    pub rule: AlertRule,
    /// Matching events inside the window when it fired (the threshold, since it fires on
    /// the event that reaches it; a refire after the cooldown counts at most that many).
    pub count: u32,
}

/// The rules of one config, with their state.
pub struct RuleSet {
    rules: Vec<Arc<Rule>>,
}

impl RuleSet {
    /// The rules of `specs`; those whose counting `previous` already had keep its state.
    pub fn new(specs: &[AlertRule], previous: Option<&RuleSet>) -> RuleSet {
        let rules = specs
            .iter()
            .map(|spec| {
                // Same counting: share the state (the webhook may have changed).
                let state = previous
                    .and_then(|p| p.rules.iter().find(|r| r.spec.same_counting(spec)))
                    .map(|r| r.state.clone())
                    .unwrap_or_default();
                Arc::new(Rule {
                    spec: spec.clone(),
                    state,
                })
            })
            .collect();
        RuleSet { rules }
    }

    /// Counts one event that happened at `now` against every rule it matches; returns the
    /// rules that fire. `alert` events never match (no rule counts alerts).
    pub fn observe(
        &self,
        event: &str,
        reason: Option<&str>,
        route: Option<&str>,
        now: Instant,
    ) -> Vec<Fired> {
        let mut fired = Vec::new();
        if event == "alert" {
            return fired;
        }
        for rule in &self.rules {
            let spec = &rule.spec;
            if spec.event != event
                || spec.route.as_deref().is_some_and(|r| Some(r) != route)
                || spec.reason.as_deref().is_some_and(|r| Some(r) != reason)
            {
                continue;
            }
            let mut window = lock(&rule.state);
            window.times.push_back(now);
            while window.times.len() > spec.threshold as usize {
                window.times.pop_front();
            }
            // Inside the window: younger than `window` (an event exactly that old has left).
            while window
                .times
                .front()
                .is_some_and(|&t| now.saturating_duration_since(t) >= spec.window)
            {
                window.times.pop_front();
            }
            let resting = window.quiet_until.is_some_and(|until| now < until);
            if window.times.len() == spec.threshold as usize && !resting {
                window.quiet_until = Some(now + spec.cooldown);
                fired.push(Fired {
                    rule: spec.clone(),
                    count: spec.threshold,
                });
            }
        }
        fired
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running rules and the queue to the webhook sender.
struct Engine {
    rules: ArcSwap<RuleSet>,
    queue: mpsc::Sender<Delivery>,
}

static ACTIVE: ArcSwapOption<Engine> = ArcSwapOption::const_empty();

/// Makes `rules` the running alert rules. The first call starts the webhook sender on the
/// current tokio runtime; later calls (reloads) swap the rules and keep it.
pub fn install(rules: &[AlertRule]) {
    let running = ACTIVE.load_full();
    let previous = running.as_ref().map(|engine| engine.rules.load_full());
    if let Some(engine) = running
        && !engine.queue.is_closed()
    {
        engine
            .rules
            .store(Arc::new(RuleSet::new(rules, previous.as_deref())));
        return;
    }
    // First start, or the runtime that ran the sender has ended (a server started again in
    // the same process, as in tests): a new sender on this runtime.
    let (queue, deliveries) = mpsc::channel(QUEUE);
    match webhook_client() {
        Ok(client) => {
            tokio::spawn(send_all(deliveries, client));
        }
        Err(error) => {
            // Alerts are still logged; each delivery will count as a failure.
            tracing::error!(event = "alert_webhook_unavailable", error = %error);
        }
    }
    ACTIVE.store(Some(Arc::new(Engine {
        rules: ArcSwap::from_pointee(RuleSet::new(rules, previous.as_deref())),
        queue,
    })));
}

/// Called for every security event as it is logged.
pub(crate) fn observe(event: &str, reason: Option<&str>, route: Option<&str>) {
    let Some(engine) = ACTIVE.load_full() else {
        return;
    };
    let fired = engine
        .rules
        .load()
        .observe(event, reason, route, Instant::now());
    for fired in fired {
        announce(&engine, &fired);
    }
}

/// Logs, counts and enqueues one firing.
fn announce(engine: &Engine, fired: &Fired) {
    let rule = &fired.rule;
    security_event!(
        warn,
        Scope::outside().route(rule.route.as_deref()),
        "alert",
        "threshold_crossed",
        alert = rule.name.as_str(),
        trigger_event = rule.event.as_str(),
        trigger_reason = rule.reason.as_deref().unwrap_or("-"),
        count = fired.count,
        threshold = rule.threshold,
        window_seconds = rule.window.as_secs(),
        webhook = rule.webhook.is_some(),
    );
    FIRED
        .get_or_create(&AlertLabels {
            alert: rule.name.clone(),
        })
        .inc();
    let Some(url) = &rule.webhook else { return };
    let delivery = Delivery {
        alert: rule.name.clone(),
        url: url.clone(),
        body: payload(fired, SystemTime::now()),
    };
    match engine.queue.try_send(delivery) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => failed(&rule.name, "queue_full", None, 0),
        Err(mpsc::error::TrySendError::Closed(_)) => failed(&rule.name, "no_sender", None, 0),
    }
}

/// The JSON body POSTed for a firing.
#[derive(Serialize)]
struct Payload<'a> {
    alert: &'a str,
    event: &'a str,
    route: Option<&'a str>,
    reason: Option<&'a str>,
    threshold: u32,
    count: u32,
    window_seconds: u64,
    fired_at: String,
    /// One line for chat webhooks (Slack, Mattermost) that show `text`.
    text: String,
}

fn payload(fired: &Fired, at: SystemTime) -> Vec<u8> {
    let rule = &fired.rule;
    let body = Payload {
        alert: &rule.name,
        event: &rule.event,
        route: rule.route.as_deref(),
        reason: rule.reason.as_deref(),
        threshold: rule.threshold,
        count: fired.count,
        window_seconds: rule.window.as_secs(),
        fired_at: super::clock::rfc3339(at),
        text: format!(
            "palisade alert {}: {} {} within {}s",
            rule.name,
            fired.count,
            counted(rule),
            rule.window.as_secs()
        ),
    };
    // A struct of strings and integers always serializes.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What a rule counts, in words: `auth_failed events on route login (bad_signature)`.
fn counted(rule: &AlertRule) -> String {
    let mut text = format!("{} events", rule.event);
    if let Some(route) = &rule.route {
        text.push_str(&format!(" on route {route}"));
    }
    if let Some(reason) = &rule.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

/// `2024-05-01T12:34:56Z` (UTC, whole seconds).
struct Delivery {
    alert: String,
    url: SecretString,
    body: Vec<u8>,
}

fn webhook_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        // A redirect would send the alert (and the token in the URL) somewhere unnamed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The sender: one task per delivery, at most [`IN_FLIGHT`] at once; waiting for a slot
/// backs deliveries up in the queue, never into a request.
async fn send_all(mut deliveries: mpsc::Receiver<Delivery>, client: reqwest::Client) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(delivery) = deliveries.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        tokio::spawn(async move {
            deliver(&client, delivery, FIRST_BACKOFF).await;
            drop(slot);
        });
    }
}

/// POSTs one payload, retrying timeouts, connection failures, 408, 429 and 5xx with
/// exponential backoff from `first_backoff`; another answer is final.
async fn deliver(client: &reqwest::Client, delivery: Delivery, first_backoff: Duration) {
    let Ok(url) = reqwest::Url::parse(delivery.url.expose_secret()) else {
        failed(&delivery.alert, "error", None, 0);
        return;
    };
    let mut backoff = first_backoff;
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(delivery.body.clone())
            .send()
            .await;
        // Never log the error itself: its text carries the URL.
        let (reason, status, retry) = match sent {
            Ok(rsp) if rsp.status().is_success() => return,
            Ok(rsp) => {
                let status = rsp.status();
                let retry = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
                ("status", Some(status.as_u16()), retry)
            }
            Err(e) if e.is_timeout() => ("timeout", None, true),
            Err(e) if e.is_connect() => ("connect", None, true),
            Err(_) => ("error", None, true),
        };
        if !retry || attempt == ATTEMPTS {
            failed(&delivery.alert, reason, status, attempt);
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

fn failed(alert: &str, reason: &str, status: Option<u16>, attempts: u32) {
    tracing::warn!(
        event = "alert_webhook_failed",
        alert,
        reason,
        status,
        attempts
    );
    WEBHOOK_FAILURES
        .get_or_create(&FailureLabels {
            reason: reason.to_owned(),
        })
        .inc();
}

/// Prometheus alerting rules equivalent to `rules`, as a YAML rule file
/// (`palisade check --emit-prometheus-rules`). A rule's cooldown has no PromQL form: it is
/// Alertmanager's `repeat_interval`, noted in an annotation.
pub fn prometheus_rules(rules: &[AlertRule]) -> String {
    #[derive(Serialize)]
    struct File {
        groups: Vec<Group>,
    }
    #[derive(Serialize)]
    struct Group {
        name: &'static str,
        rules: Vec<PromRule>,
    }
    #[derive(Serialize)]
    struct PromRule {
        alert: String,
        expr: String,
        labels: Labels,
        annotations: Annotations,
    }
    #[derive(Serialize)]
    struct Labels {
        severity: &'static str,
        source: &'static str,
    }
    #[derive(Serialize)]
    struct Annotations {
        summary: String,
        cooldown: String,
    }
    let rules = rules
        .iter()
        .map(|rule| {
            let mut selector = format!("event=\"{}\"", promql_escape(&rule.event));
            if let Some(route) = &rule.route {
                selector.push_str(&format!(",route=\"{}\"", promql_escape(route)));
            }
            if let Some(reason) = &rule.reason {
                selector.push_str(&format!(",reason=\"{}\"", promql_escape(reason)));
            }
            let window = prom_duration(rule.window);
            PromRule {
                alert: rule.name.clone(),
                expr: format!(
                    "sum(increase(palisade_security_events_total{{{selector}}}[{window}])) >= {}",
                    rule.threshold
                ),
                labels: Labels {
                    severity: "warning",
                    source: "palisade",
                },
                annotations: Annotations {
                    summary: format!(
                        "{} or more {} within {window}",
                        rule.threshold,
                        counted(rule)
                    ),
                    cooldown: prom_duration(rule.cooldown),
                },
            }
        })
        .collect();
    let file = File {
        groups: vec![Group {
            name: "palisade",
            rules,
        }],
    };
    // Plain structs of strings always serialize.
    let yaml = yaml_serde::to_string(&file).unwrap_or_default();
    format!(
        "# Prometheus alerting rules generated by `palisade check --emit-prometheus-rules`.\n\
         # Each rule's cooldown is Alertmanager's repeat_interval for that alert.\n{yaml}"
    )
}

fn promql_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A PromQL duration in its largest exact unit: `5m`, `1h`, `90s`, `1500ms`.
fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests;
