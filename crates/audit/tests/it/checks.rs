//! Each control against a small server built to pass it, and the same server with exactly
//! one flaw, which must fail exactly that control. The good server also proves the checks
//! raise no false positives: another user's object answers 404, and a missing credential a
//! 401 with a JSON body.

// The test server answers errors as whole responses, and a poisoned lock may panic a test.
#![allow(clippy::result_large_err, clippy::unwrap_in_result)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use palisade_audit::{Options, Report, Status};
use serde_json::{Value, json};

const SPEC: &str = r##"
openapi: 3.1.0
info: { title: test, version: "1" }
security: [{ user: [] }]
paths:
  /login:
    post:
      operationId: login
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [username, password]
              properties:
                username: { type: string, maxLength: 64 }
                password: { type: string, maxLength: 64 }
  /things:
    get: { operationId: listThings }
    post:
      operationId: createThing
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Thing" }
  /things/{id}:
    parameters: [{ name: id, in: path, required: true, schema: { type: string } }]
    get: { operationId: getThing }
    put:
      operationId: updateThing
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Thing" }
    delete: { operationId: deleteThing }
  /boom:
    get: { operationId: boom }
components:
  schemas:
    Thing:
      type: object
      additionalProperties: false
      required: [name]
      properties:
        name: { type: string, maxLength: 50 }
"##;

/// The one flaw a server has (none: the good server).
#[derive(Debug, Clone, Copy, Default)]
struct Flaws {
    no_auth: bool,
    no_owner_check: bool,
    no_rate_limit: bool,
    no_retry_after: bool,
    lax_validation: bool,
    leaky_errors: bool,
    inconsistent_headers: bool,
}

#[derive(Default)]
struct Db {
    things: Vec<(String, String, String)>, // id, owner, name
    next: u32,
}

#[derive(Clone)]
struct App {
    flaws: Flaws,
    db: Arc<Mutex<Db>>,
    logins: Arc<AtomicU32>,
    requests: Arc<AtomicU32>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The caller from `X-User` (alice or bob); 401 with a JSON body otherwise.
fn user(app: &App, headers: &HeaderMap) -> Result<String, Response> {
    match headers.get("x-user").and_then(|v| v.to_str().ok()) {
        Some(u @ ("alice" | "bob")) => Ok(u.to_owned()),
        _ if app.flaws.no_auth => Ok("anonymous".to_owned()),
        _ => Err(error(StatusCode::UNAUTHORIZED, "unauthorized")),
    }
}

/// A thing's name from a body, strictly (or anything, with the lax flaw).
fn name(app: &App, body: &[u8]) -> Result<String, Response> {
    let bad = || error(StatusCode::BAD_REQUEST, "invalid body");
    let value: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    if app.flaws.lax_validation {
        return Ok(value["name"].as_str().unwrap_or("x").to_owned());
    }
    let object = value.as_object().ok_or_else(bad)?;
    match (object.len(), object.get("name").and_then(Value::as_str)) {
        (1, Some(name)) if name.chars().count() <= 50 => Ok(name.to_owned()),
        _ => Err(bad()),
    }
}

async fn login(State(app): State<App>, body: Bytes) -> Response {
    if !app.flaws.no_rate_limit && app.logins.fetch_add(1, Ordering::SeqCst) >= 3 {
        let mut rsp = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
        if !app.flaws.no_retry_after {
            rsp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        return rsp;
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v["username"].is_string() && v["password"].is_string() => {
            error(StatusCode::UNAUTHORIZED, "invalid credentials")
        }
        _ => error(StatusCode::BAD_REQUEST, "invalid body"),
    }
}

async fn list(State(app): State<App>, headers: HeaderMap) -> Response {
    let who = match user(&app, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let db = app.db.lock().unwrap();
    let items: Vec<Value> = db
        .things
        .iter()
        .filter(|(_, owner, _)| app.flaws.no_owner_check || *owner == who)
        .map(|(id, owner, name)| json!({"id": id, "owner": owner, "name": name}))
        .collect();
    axum::Json(json!({ "items": items })).into_response()
}

async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let (who, name) = match user(&app, &headers).and_then(|w| Ok((w, name(&app, &body)?))) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut db = app.db.lock().unwrap();
    db.next += 1;
    let id = db.next.to_string();
    db.things.push((id.clone(), who.clone(), name.clone()));
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "owner": who, "name": name})),
    )
        .into_response()
}

/// The index of `id` if the caller may see it; 404 (never 403) otherwise.
fn find(app: &App, headers: &HeaderMap, id: &str) -> Result<usize, Response> {
    let who = user(app, headers)?;
    let db = app.db.lock().unwrap();
    db.things
        .iter()
        .position(|(i, owner, _)| i == id && (app.flaws.no_owner_check || *owner == who))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "not found"))
}

async fn read(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match find(&app, &headers, &id) {
        Ok(i) => {
            let (id, owner, name) = app.db.lock().unwrap().things[i].clone();
            axum::Json(json!({"id": id, "owner": owner, "name": name})).into_response()
        }
        Err(r) => r,
    }
}

async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let i = match find(&app, &headers, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match name(&app, &body) {
        Ok(name) => {
            let mut db = app.db.lock().unwrap();
            db.things[i].2 = name;
            let (id, owner, name) = db.things[i].clone();
            axum::Json(json!({"id": id, "owner": owner, "name": name})).into_response()
        }
        Err(r) => r,
    }
}

async fn delete(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match find(&app, &headers, &id) {
        Ok(i) => {
            app.db.lock().unwrap().things.remove(i);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn boom(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Err(r) = user(&app, &headers) {
        return r;
    }
    if app.flaws.leaky_errors {
        let trace = "Traceback (most recent call last):\n  File \"/srv/app/views.py\", line 12, in boom\npsycopg2.errors.SyntaxError: syntax error at or near \"'\"";
        return (StatusCode::INTERNAL_SERVER_ERROR, trace).into_response();
    }
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Counts requests, gives every response `nosniff` (but one route, with that flaw) and one
/// JSON error shape, as a gateway would.
async fn edge(State(app): State<App>, req: Request, next: Next) -> Response {
    app.requests.fetch_add(1, Ordering::SeqCst);
    let skip = app.flaws.inconsistent_headers && req.uri().path() == "/things";
    let mut rsp = next.run(req).await;
    let json = rsp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let leaky = app.flaws.leaky_errors && rsp.status() == StatusCode::INTERNAL_SERVER_ERROR;
    if rsp.status().as_u16() >= 400 && !json && !leaky {
        rsp = error(
            rsp.status(),
            rsp.status().canonical_reason().unwrap_or("error"),
        );
    }
    if !skip {
        rsp.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    rsp
}

struct Server {
    url: String,
    requests: Arc<AtomicU32>,
}

async fn serve(flaws: Flaws) -> Server {
    let app = App {
        flaws,
        db: Arc::default(),
        logins: Arc::default(),
        requests: Arc::default(),
    };
    let requests = app.requests.clone();
    let router = Router::new()
        .route("/login", post(login))
        .route("/things", get(list).post(create))
        .route("/things/{id}", get(read).put(update).delete(delete))
        .route("/boom", get(boom))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(if flaws.lax_validation {
            4 << 20
        } else {
            1 << 20
        }))
        .layer(middleware::from_fn_with_state(app.clone(), edge))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Server { url, requests }
}

fn options(url: &str, spec_dir: &tempfile::TempDir) -> Options {
    let spec = spec_dir.path().join("openapi.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let mut options = Options::new(url.parse().unwrap());
    options.openapi = Some(spec);
    options.identities = vec![
        "alice:X-User=alice".parse().unwrap(),
        "bob:X-User=bob".parse().unwrap(),
    ];
    options.rps = 0.0;
    options.burst = 10;
    options
}

async fn audit(flaws: Flaws) -> Report {
    let server = serve(flaws).await;
    let dir = tempfile::tempdir().unwrap();
    let report = palisade_audit::run(options(&server.url, &dir))
        .await
        .unwrap();
    assert_eq!(
        report.requests,
        server.requests.load(Ordering::SeqCst),
        "every request is counted"
    );
    report
}

fn status(report: &Report, id: u8) -> Status {
    report.control(id).unwrap().status
}

fn describe(report: &Report) -> String {
    palisade_audit::report::table(report)
}

/// Controls 2–6 and 8: the HTTP controls a flaw can fail.
const HTTP_CONTROLS: [u8; 6] = [2, 3, 4, 5, 6, 8];

#[tokio::test(flavor = "multi_thread")]
async fn the_good_server_passes_every_http_control() {
    let report = audit(Flaws::default()).await;
    for id in HTTP_CONTROLS {
        assert_eq!(
            status(&report, id),
            Status::Pass,
            "control {id}\n{}",
            describe(&report)
        );
    }
    // The create with privileged members gets a 400 where the plain one worked: the
    // members were refused, and only the function-level part did not run.
    assert_eq!(
        report.control(3).unwrap().reason.as_deref(),
        Some("partly tested: function-level checks need --admin-identity"),
        "{}",
        describe(&report)
    );
    // Plain http is a TLS failure, and the only one.
    assert_eq!(status(&report, 1), Status::Fail);
    assert!(
        !report.failed()
            || report
                .controls
                .iter()
                .filter(|c| c.status == Status::Fail)
                .count()
                == 1
    );
}

/// Runs the server with `flaws` and asserts that exactly control `id` fails among the HTTP
/// controls.
async fn fails_exactly(flaws: Flaws, id: u8) -> Report {
    let report = audit(flaws).await;
    for other in HTTP_CONTROLS {
        let expected = other == id;
        assert_eq!(
            status(&report, other) == Status::Fail,
            expected,
            "control {other} with {flaws:?}\n{}",
            describe(&report)
        );
    }
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn no_authentication_fails_authentication() {
    let report = fails_exactly(
        Flaws {
            no_auth: true,
            ..Flaws::default()
        },
        2,
    )
    .await;
    let finding = &report.control(2).unwrap().findings[0];
    assert!(finding.title.contains("no credentials"), "{finding:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_owner_check_fails_authorization_with_the_request_pair() {
    let report = fails_exactly(
        Flaws {
            no_owner_check: true,
            ..Flaws::default()
        },
        3,
    )
    .await;
    let titles: Vec<&str> = report
        .control(3)
        .unwrap()
        .findings
        .iter()
        .map(|f| f.title.as_str())
        .collect();
    for expected in [
        "bob reads alice's object",
        "bob's list shows alice's object",
        "bob changes alice's object",
        "bob deletes alice's object",
    ] {
        assert!(titles.contains(&expected), "{titles:?}");
    }
    let read = &report.control(3).unwrap().findings[0];
    assert!(
        read.evidence.contains("as alice → 200") && read.evidence.contains("as bob → 200"),
        "{read:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_rate_limit_fails_rate_limiting() {
    fails_exactly(
        Flaws {
            no_rate_limit: true,
            ..Flaws::default()
        },
        4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_without_retry_after_fails_rate_limiting() {
    let report = fails_exactly(
        Flaws {
            no_retry_after: true,
            ..Flaws::default()
        },
        4,
    )
    .await;
    let finding = &report.control(4).unwrap().findings[0];
    assert_eq!(finding.title, "429 without Retry-After", "{finding:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lax_validation_fails_validation() {
    fails_exactly(
        Flaws {
            lax_validation: true,
            ..Flaws::default()
        },
        5,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leaky_errors_fail_errors() {
    let report = fails_exactly(
        Flaws {
            leaky_errors: true,
            ..Flaws::default()
        },
        6,
    )
    .await;
    let kinds: Vec<&str> = report
        .control(6)
        .unwrap()
        .findings
        .iter()
        .map(|f| f.title.as_str())
        .collect();
    assert!(
        kinds.contains(&"stack trace in a response")
            && kinds.contains(&"SQL error text in a response"),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_without_the_shared_headers_fails_gateway_consistency() {
    fails_exactly(
        Flaws {
            inconsistent_headers: true,
            ..Flaws::default()
        },
        8,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_budget_is_never_exceeded() {
    for max in [0, 1, 7, 25] {
        let server = serve(Flaws::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(&server.url, &dir);
        opts.max_requests = max;
        let report = palisade_audit::run(opts).await.unwrap();
        let seen = server.requests.load(Ordering::SeqCst);
        assert!(
            seen <= max && report.requests == seen,
            "max {max}: server saw {seen}, report {}",
            report.requests
        );
        // What the budget cut short is never a PASS.
        for id in [2, 4, 5] {
            assert_ne!(
                status(&report, id),
                Status::Pass,
                "max {max}, control {id}\n{}",
                describe(&report)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_with_secrets_fails_logging_and_a_clean_one_passes() {
    let server = serve(Flaws::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "{\"msg\":\"login\",\"user\":\"alice\"}\n{\"msg\":\"paid\",\"card\":\"4111 1111 1111 1111\"}\n").unwrap();
    let mut opts = options(&server.url, &dir);
    opts.log = Some(log.clone());
    opts.max_requests = 1;
    let report = palisade_audit::run(opts.clone()).await.unwrap();
    let control = report.control(7).unwrap();
    assert_eq!(control.status, Status::Fail);
    assert!(
        control.findings[0]
            .location
            .as_deref()
            .unwrap()
            .ends_with("app.log:2")
    );
    assert!(!format!("{control:?}").contains("4111 1111 1111 1111"));

    // Passwords and opaque tokens are findings whatever their length or entropy; each
    // line on its own fails the control.
    for line in [
        r#"{"msg":"login","user":"alice","password":"hunter2"}"#,
        "POST /login user=alice&password=Tr0ub4dor%263",
        r#"{"msg":"signup","pwd":"correct horse battery"}"#,
        "GET /orders Authorization: Bearer 3f9a0c7e21",
        r#"{"headers":{"authorization":"Basic YWxpY2U6aHVudGVyMg=="}}"#,
        "level=info msg=connect db_password=s3cret",
    ] {
        std::fs::write(&log, format!("{{\"msg\":\"start\"}}\n{line}\n")).unwrap();
        let report = palisade_audit::run(opts.clone()).await.unwrap();
        let control = report.control(7).unwrap();
        assert_eq!(
            control.status,
            Status::Fail,
            "{line}\n{}",
            describe(&report)
        );
        assert!(
            control.findings[0]
                .location
                .as_deref()
                .unwrap()
                .ends_with("app.log:2"),
            "{line}: {control:?}"
        );
        for secret in [
            "hunter2",
            "Tr0ub4dor",
            "horse",
            "3f9a0c7e21",
            "YWxpY2U6",
            "s3cret",
        ] {
            assert!(!format!("{control:?}").contains(secret), "{control:?}");
        }
    }

    // Masked values, and password-named keys without a value, are not findings.
    std::fs::write(
        &log,
        concat!(
            "{\"msg\":\"login\",\"user\":\"alice\",\"key\":\"pal_abcd…\"}\n",
            "{\"msg\":\"login\",\"password\":\"***\"}\n",
            "{\"msg\":\"login\",\"password\":\"[redacted]\",\"key\":\"pal_xxx_***\"}\n",
            "POST /login user=alice&password=[FILTERED]\n",
            "GET /orders Authorization: Bearer ***\n",
            "{\"msg\":\"password changed\",\"password_set\":true,\"pwd\":\"\"}\n",
            "level=info msg=bypass compass=north\n",
        ),
    )
    .unwrap();
    let report = palisade_audit::run(opts).await.unwrap();
    assert_eq!(
        report.control(7).unwrap().status,
        Status::Pass,
        "{}",
        describe(&report)
    );
}

/// What a hostile or broken server saw: every `METHOD path`.
type Seen = Arc<Mutex<Vec<String>>>;

/// A server that answers every request with `answer(method, path, headers)`, recording
/// what it saw; requests to `stall` (if any) wait a minute before the answer.
async fn hostile<F>(stall: Option<&'static str>, answer: F) -> (String, Seen)
where
    F: Fn(&str, &str, &HeaderMap) -> Response + Clone + Send + Sync + 'static,
{
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let router = Router::new().fallback(move |req: Request| {
        let (answer, record) = (answer.clone(), record.clone());
        async move {
            let (parts, body) = req.into_parts();
            let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
            record.lock().unwrap().push(format!("{method} {path}"));
            // The whole body is read before the answer, as a server does. Answered unread,
            // the connection is closed under a client that may already have sent its next
            // request on it, and that probe fails or not as the scheduler decides.
            let _ = axum::body::to_bytes(body, usize::MAX).await;
            if stall == Some(path.as_str()) {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            }
            answer(&method, &path, &parts.headers)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

/// Options for a hostile server, with a spec that also has a singleton (`PUT /settings`)
/// and a collection-wide delete (`DELETE /things`), which no probe may touch.
fn hostile_options(url: &str, dir: &tempfile::TempDir, identities: [&str; 2]) -> Options {
    let spec = SPEC.replace(
        "  /boom:",
        "  /settings:\n    put:\n      operationId: putSettings\n      requestBody:\n        content:\n          application/json:\n            schema: { $ref: \"#/components/schemas/Thing\" }\n  /boom:",
    )
    .replace(
        "    post:\n      operationId: createThing",
        "    delete: { operationId: deleteAllThings }\n    post:\n      operationId: createThing",
    );
    // Written after `options`, which writes the plain SPEC as openapi.yaml.
    let mut options = options(url, dir);
    std::fs::write(dir.path().join("hostile.yaml"), spec).unwrap();
    options.openapi = Some(dir.path().join("hostile.yaml"));
    options.identities = identities.iter().map(|i| i.parse().unwrap()).collect();
    options
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_echoes_credentials_never_gets_them_into_any_report_format() {
    let (url, _) = hostile(None, |_, _, headers: &HeaderMap| {
        let echoed = format!("{headers:?}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Traceback (most recent call last):\n{echoed}"),
        )
            .into_response()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let alice = "alice:X-Api-Key=alice-Q7r2Vx5Lmn3Pq4Zt";
    let bob = "bob:Authorization=Bearer bob-token-9f8e7d6c5b4a";
    let mut options = hostile_options(
        &url.replace("http://", "http://user:urlpassw0rd@"),
        &dir,
        [alice, bob],
    );
    options.admin_identity = Some("root:X-Admin=root-key-0a1b2c3d4e".parse().unwrap());
    let report = palisade_audit::run(options).await.unwrap();
    assert!(report.failed(), "{}", describe(&report));
    for format in [
        palisade_audit::report::Format::Table,
        palisade_audit::report::Format::Json,
        palisade_audit::report::Format::Sarif,
        palisade_audit::report::Format::Junit,
    ] {
        let text = palisade_audit::report::render(&report, format);
        for secret in [
            "Q7r2Vx5Lmn3Pq4Zt",
            "9f8e7d6c5b4a",
            "0a1b2c3d4e",
            "urlpassw0rd",
        ] {
            assert!(!text.contains(secret), "{format:?} shows {secret}:\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_probe_writes_what_the_audit_did_not_create() {
    // Creates answer the id `..`, which would turn `/things/{id}` into `/`.
    let (url, seen) = hostile(None, |method, _, _| match method {
        "POST" => (
            StatusCode::CREATED,
            axum::Json(json!({"id": "..", "name": "x"})),
        )
            .into_response(),
        _ => error(StatusCode::UNAUTHORIZED, "unauthorized"),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = hostile_options(&url, &dir, ["alice:X-User=alice", "bob:X-User=bob"]);
    options.rate_limit_operation = Some("PUT /settings".into());
    let report = palisade_audit::run(options).await.unwrap();
    let writes: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| !r.starts_with("GET ") && !r.starts_with("POST "))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:?}\n{}", describe(&report));
    assert_eq!(
        status(&report, 4),
        Status::NotTested,
        "{}",
        describe(&report)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_that_prove_nothing_are_never_a_pass() {
    // Alice's objects work; everyone else is rate limited, every route 404s for writes.
    let db: Arc<Mutex<Vec<String>>> = Arc::default();
    let (url, _) = hostile(None, move |method, path, headers: &HeaderMap| {
        let who = headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match (method, path, who) {
            ("POST", "/things", "alice") => {
                db.lock().unwrap().push("1".into());
                (StatusCode::CREATED, axum::Json(json!({"id": "1"}))).into_response()
            }
            ("GET", "/things/1", "alice") => {
                axum::Json(json!({"id": "1", "name": "palisade-audit"})).into_response()
            }
            (_, _, "alice") => error(StatusCode::NOT_FOUND, "not found"),
            _ => error(StatusCode::TOO_MANY_REQUESTS, "slow down"),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let options = hostile_options(&url, &dir, ["alice:X-User=alice", "bob:X-User=bob"]);
    let report = palisade_audit::run(options).await.unwrap();
    // The marker never comes back, so authorization cannot be tested at all; validation
    // probes only meet 404s and 429s.
    for id in [2, 3, 5] {
        assert_ne!(
            status(&report, id),
            Status::Pass,
            "control {id}\n{}",
            describe(&report)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_second_identity_is_not_evidence_of_object_ownership() {
    let (url, _) = hostile(None, |method, path, headers: &HeaderMap| {
        let who = headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match (method, path, who) {
            (_, _, "bob") => error(StatusCode::TOO_MANY_REQUESTS, "slow down"),
            ("POST", "/things", "alice") => {
                (StatusCode::CREATED, axum::Json(json!({"id": "7"}))).into_response()
            }
            ("GET", "/things/7", "alice") => {
                // The marker is whatever alice created; echo a body that holds any marker.
                axum::Json(json!({"id": "7"})).into_response()
            }
            _ => error(StatusCode::UNAUTHORIZED, "unauthorized"),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let options = hostile_options(&url, &dir, ["alice:X-User=alice", "bob:X-User=bob"]);
    let report = palisade_audit::run(options).await.unwrap();
    assert_ne!(status(&report, 3), Status::Pass, "{}", describe(&report));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_huge_garbage_target_cannot_hang_or_break_the_audit() {
    // Logins stall for a minute; everything else is 8 MiB of bytes that are not UTF-8.
    let (url, _) = hostile(Some("/login"), |_, _, _| {
        (StatusCode::OK, vec![0xffu8; 8 << 20]).into_response()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = hostile_options(&url, &dir, ["alice:X-User=alice", "bob:X-User=bob"]);
    options.deadline = std::time::Duration::from_secs(4);
    // Ten stalled logins alone would take ten minutes: the deadline stops the requests,
    // and what is left is scanning the (capped) bodies already received.
    let started = std::time::Instant::now();
    let report = palisade_audit::run(options).await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(status(&report, 4), Status::Pass, "{}", describe(&report));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_answers_401_to_everything_never_passes_validation() {
    // The path-parameter injection probes get a 401 too: it shows nothing was validated.
    let (url, seen) = hostile(None, |_, _, _| {
        error(StatusCode::UNAUTHORIZED, "unauthorized")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let options = hostile_options(&url, &dir, ["alice:X-User=alice", "bob:X-User=bob"]);
    let report = palisade_audit::run(options).await.unwrap();
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("%27%20OR") || r.contains("' OR")),
        "the path-parameter probe was sent: {:?}",
        seen.lock().unwrap()
    );
    let control = report.control(5).unwrap();
    assert_eq!(control.status, Status::NotTested, "{}", describe(&report));
    assert!(
        format!("{control:?}").contains("in a path parameter: 401"),
        "{control:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn findings_of_a_leaky_server_keep_their_fingerprints_across_runs() {
    // Every answer leaks a stack trace; creates hand out a new id each time, and every
    // forged credential gets through.
    let (url, _) = hostile(None, |method, path, _| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let trace = format!(
            "Traceback (most recent call last):\n  File \"/srv/app/views.py\", line 12, in {path}\n"
        );
        match method {
            "POST" => (
                StatusCode::CREATED,
                axum::Json(json!({"id": nanos.to_string(), "debug": trace})),
            )
                .into_response(),
            _ => (StatusCode::OK, trace).into_response(),
        }
    })
    .await;
    let mut runs = Vec::new();
    let mut titles = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let options = hostile_options(&url, &dir, ["alice:X-User=alice", "bob:X-User=bob"]);
        let report = palisade_audit::run(options).await.unwrap();
        let errors = report.control(6).unwrap();
        assert_eq!(errors.status, Status::Fail, "{}", describe(&report));
        // One finding per kind and operation template, never per concrete path.
        for f in &errors.findings {
            let location = f.location.as_deref().unwrap_or("");
            assert!(
                !location.contains("palisade-audit-")
                    && !location.chars().any(|c| c.is_ascii_digit()),
                "{f:?}"
            );
        }
        let authn = report.control(2).unwrap();
        assert_eq!(authn.status, Status::Fail, "{}", describe(&report));
        let mut fingerprints: Vec<(u8, String)> = report
            .controls
            .iter()
            .flat_map(|c| {
                c.findings
                    .iter()
                    .map(move |f| (c.id, f.fingerprint.clone()))
            })
            .collect();
        fingerprints.sort();
        let len = fingerprints.len();
        fingerprints.dedup();
        assert_eq!(len, fingerprints.len(), "fingerprints are unique in a run");
        runs.push(fingerprints);
        titles.push(describe(&report));
    }
    assert_eq!(
        runs[0], runs[1],
        "first run:\n{}\nsecond run:\n{}",
        titles[0], titles[1]
    );
}

/// Objects as whole JSON documents: (id, owner, body).
type Store = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A server with owner checks everywhere, for the mass-assignment and function-level parts
/// of control 3: creates store the whole body (`store_all`, the flaw) or only `name`;
/// `GET /admin/users` answers any identity (`admin_open`, the flaw) or only `root`.
async fn objects_server(store_all: bool, admin_open: bool) -> String {
    let store: Store = Arc::default();
    let who = |headers: &HeaderMap| {
        headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .filter(|u| matches!(*u, "alice" | "bob" | "root"))
            .map(str::to_owned)
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "unauthorized"))
    };
    let (s1, s2, s3, s4, s5) = (
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        store,
    );
    let router = Router::new()
        .route(
            "/things",
            post(move |headers: HeaderMap, body: Bytes| async move {
                let user = match who(&headers) {
                    Ok(u) => u,
                    Err(r) => return r,
                };
                let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&body) else {
                    return error(StatusCode::BAD_REQUEST, "invalid body");
                };
                if !doc.get("name").is_some_and(Value::is_string) {
                    return error(StatusCode::BAD_REQUEST, "invalid body");
                }
                if !store_all {
                    doc.retain(|k, _| k == "name");
                }
                let mut store = s1.lock().unwrap();
                let id = (store.len() + 1).to_string();
                doc.insert("id".into(), json!(id));
                store.push((id, user, Value::Object(doc.clone())));
                (StatusCode::CREATED, axum::Json(Value::Object(doc))).into_response()
            })
            .get(move |headers: HeaderMap| async move {
                let user = match who(&headers) {
                    Ok(u) => u,
                    Err(r) => return r,
                };
                let items: Vec<Value> = s2
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, owner, _)| *owner == user)
                    .map(|(_, _, doc)| doc.clone())
                    .collect();
                axum::Json(json!({ "items": items })).into_response()
            }),
        )
        .route(
            "/things/{id}",
            get(
                move |headers: HeaderMap, Path(id): Path<String>| async move {
                    let user = match who(&headers) {
                        Ok(u) => u,
                        Err(r) => return r,
                    };
                    s3.lock()
                        .unwrap()
                        .iter()
                        .find(|(i, owner, _)| *i == id && *owner == user)
                        .map_or_else(
                            || error(StatusCode::NOT_FOUND, "not found"),
                            |(_, _, doc)| axum::Json(doc.clone()).into_response(),
                        )
                },
            )
            .delete(
                move |headers: HeaderMap, Path(id): Path<String>| async move {
                    let user = match who(&headers) {
                        Ok(u) => u,
                        Err(r) => return r,
                    };
                    let mut store = s4.lock().unwrap();
                    match store.iter().position(|(i, o, _)| *i == id && *o == user) {
                        Some(i) => {
                            store.remove(i);
                            StatusCode::NO_CONTENT.into_response()
                        }
                        None => error(StatusCode::NOT_FOUND, "not found"),
                    }
                },
            ),
        )
        .route(
            "/admin/users",
            get(move |headers: HeaderMap| async move {
                match who(&headers) {
                    Ok(u) if u == "root" || admin_open => {
                        let _ = &s5;
                        axum::Json(json!({"users": ["alice", "bob", "root"]})).into_response()
                    }
                    Ok(_) => error(StatusCode::FORBIDDEN, "forbidden"),
                    Err(r) => r,
                }
            }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Audits an [`objects_server`] with a spec whose `GET /admin/users` is `x-admin: true`
/// and whose things take any members; `root` is the admin identity when `admin` is set.
async fn audit_objects(store_all: bool, admin_open: bool, admin: bool) -> Report {
    let url = objects_server(store_all, admin_open).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SPEC
        .replace(
            "  /boom:",
            "  /admin/users:\n    get: { operationId: listUsers, x-admin: true }\n  /boom:",
        )
        .replace(
            "    Thing:\n      type: object\n      additionalProperties: false\n",
            "    Thing:\n      type: object\n",
        );
    assert!(
        spec.contains("x-admin")
            && !spec.contains("additionalProperties: false\n      required: [name]")
    );
    let mut opts = options(&url, &dir);
    std::fs::write(dir.path().join("objects.yaml"), spec).unwrap();
    opts.openapi = Some(dir.path().join("objects.yaml"));
    opts.admin_identity = admin.then(|| "root:X-User=root".parse().unwrap());
    palisade_audit::run(opts).await.unwrap()
}

fn titles(report: &Report, id: u8) -> Vec<String> {
    report
        .control(id)
        .unwrap()
        .findings
        .iter()
        .filter(|f| f.severity != palisade_audit::Severity::Info)
        .map(|f| f.title.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_stores_privileged_members_fails_authorization() {
    let report = audit_objects(true, false, true).await;
    assert_eq!(status(&report, 3), Status::Fail, "{}", describe(&report));
    assert_eq!(
        titles(&report, 3),
        ["mass assignment: privileged members are stored"]
    );
    let finding = &report.control(3).unwrap().findings[0];
    assert!(finding.evidence.contains("\"isAdmin\":true"), "{finding:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_operation_open_to_a_normal_identity_fails_authorization() {
    let report = audit_objects(false, true, true).await;
    assert_eq!(status(&report, 3), Status::Fail, "{}", describe(&report));
    assert_eq!(titles(&report, 3), ["alice calls an admin-only operation"]);
    assert_eq!(
        report.control(3).unwrap().findings[0].location.as_deref(),
        Some("GET /admin/users")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn owner_checks_ignored_privileged_members_and_a_403_for_admin_operations_pass() {
    let report = audit_objects(false, false, true).await;
    let control = report.control(3).unwrap();
    assert_eq!(control.status, Status::Pass, "{}", describe(&report));
    assert_eq!(control.reason, None, "every part ran: {control:?}");

    // Without --admin-identity the function-level part did not run: still a PASS for what
    // ran, but the status cell says it was partly tested.
    let report = audit_objects(false, false, false).await;
    let control = report.control(3).unwrap();
    assert_eq!(control.status, Status::Pass, "{}", describe(&report));
    assert_eq!(
        control.reason.as_deref(),
        Some("partly tested: function-level checks need --admin-identity")
    );
    assert!(
        describe(&report)
            .contains("PASS (partly tested: function-level checks need --admin-identity)"),
        "{}",
        describe(&report)
    );
}
