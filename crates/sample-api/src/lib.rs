//! A small, deliberately trusting sample API that Palisade protects.
//!
//! `palisade demo`, the integration tests and the benchmarks put this API behind the
//! gateway. It does **no security of its own** on purpose, so that every control the
//! demo shows is visibly the gateway's work:
//!
//! - it trusts `X-Palisade-Subject` blindly (the gateway sets it, and strips client copies);
//! - `GET /api/orders` returns every order, and `/api/orders/{id}` serves any order to
//!   anyone (stopping BOLA/IDOR is the gateway's job);
//! - `PUT /api/orders/{id}` lets a caller overwrite `ownerId` and `status` (mass assignment
//!   is stopped by the gateway's strict schema validation);
//! - `GET /api/debug/crash` answers a leaky 500 with a stack trace and a connection string
//!   (the gateway replaces upstream 5xx bodies);
//! - every response carries the fingerprinting headers `Server` and `X-Powered-By`
//!   (the gateway strips them).
//!
//! State lives in memory behind a [`Mutex`]; [`router`] builds a fresh, seeded copy each call,
//! so tests never see each other's writes.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    Json, Router,
    extract::{Path, Request, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `Server` header every response carries (a fingerprint the gateway must strip).
pub const SERVER_HEADER: &str = "sample-api/0.1";
/// The `X-Powered-By` header every response carries (a fingerprint the gateway must strip).
pub const POWERED_BY_HEADER: &str = "Express";
/// The secret-looking connection string `GET /api/debug/crash` leaks.
pub const LEAKED_CONNECTION_STRING: &str = "postgres://admin:s3cr3t@db.internal:5432/orders";

/// The header the gateway uses to pass the verified subject upstream.
const SUBJECT_HEADER: &str = "x-palisade-subject";

/// Users the login endpoint accepts: (username, password).
const USERS: &[(&str, &str)] = &[("alice", "wonderland"), ("bob", "builder")];

/// One order, as the API stores and returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    #[serde(rename = "ownerId")]
    pub owner_id: String,
    pub item: String,
    pub quantity: i64,
    pub status: String,
}

/// One task, as the API stores and returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
}

/// The whole in-memory database.
#[derive(Debug)]
struct Db {
    orders: Vec<Order>,
    tasks: Vec<Task>,
    next_order: u64,
    next_task: u64,
}

impl Db {
    fn seeded() -> Self {
        let order = |id: &str, owner: &str, item: &str, quantity| Order {
            id: id.to_owned(),
            owner_id: owner.to_owned(),
            item: item.to_owned(),
            quantity,
            status: "open".to_owned(),
        };
        Db {
            orders: vec![
                order("1", "alice", "book", 1),
                order("2", "bob", "lamp", 2),
                order("3", "alice", "pen", 10),
            ],
            tasks: Vec::new(),
            next_order: 4,
            next_task: 1,
        }
    }
}

type AppState = Arc<Mutex<Db>>;

/// Locks the state; a panicked handler must not wedge the whole demo, so poisoning is ignored.
fn lock(state: &AppState) -> MutexGuard<'_, Db> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The sample API with a fresh, seeded state.
pub fn router() -> Router {
    let state: AppState = Arc::new(Mutex::new(Db::seeded()));
    Router::new()
        .route("/api/login", axum::routing::post(login))
        .route("/api/orders", get(list_orders).post(create_order))
        .route(
            "/api/orders/{id}",
            get(get_order).put(update_order).delete(delete_order),
        )
        .route("/api/tasks", get(list_tasks).post(create_task))
        .route("/api/whoami", get(whoami))
        .route("/api/debug/crash", get(crash))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .with_state(state)
        // Outermost, so that fallback and rejection responses carry the fingerprints too.
        .layer(middleware::from_fn(fingerprint))
}

/// Serves [`router`] on `listener` until the task is dropped or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

/// Adds the fingerprinting headers a careless framework would add.
async fn fingerprint(req: Request, next: Next) -> Response {
    let mut rsp = next.run(req).await;
    let headers = rsp.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER_HEADER));
    headers.insert(
        HeaderName::from_static("x-powered-by"),
        HeaderValue::from_static(POWERED_BY_HEADER),
    );
    rsp
}

/// The API's one error shape: `{"error": message}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A rejected request body; answers 400 in the API's own error shape.
struct BadBody(String);

impl IntoResponse for BadBody {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.0)
    }
}

/// Maps axum's JSON rejection (bad syntax, wrong types, wrong content type) to a 400 in the
/// API's own error shape, so clients never see axum's plain-text bodies.
fn body_or_400<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, BadBody> {
    body.map(|Json(value)| value)
        .map_err(|rejection| BadBody(rejection.body_text()))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

async fn login(body: Result<Json<Login>, JsonRejection>) -> Response {
    let login = match body_or_400(body) {
        Ok(v) => v,
        Err(bad) => return bad.into_response(),
    };
    // Plain comparison on purpose: this API is not the place where security happens.
    let known = USERS
        .iter()
        .any(|(user, pass)| *user == login.username && *pass == login.password);
    if known {
        Json(json!({ "subject": login.username, "message": "welcome" })).into_response()
    } else {
        error(StatusCode::UNAUTHORIZED, "invalid credentials")
    }
}

async fn list_orders(State(state): State<AppState>) -> Response {
    // Deliberately unfiltered: the gateway's owner rule is what stops BOLA.
    Json(json!({ "items": lock(&state).orders })).into_response()
}

#[derive(Deserialize)]
struct NewOrder {
    item: String,
    quantity: i64,
    #[serde(rename = "ownerId")]
    owner_id: Option<String>,
}

async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Response {
    let new = match body_or_400(body) {
        Ok(v) => v,
        Err(bad) => return bad.into_response(),
    };
    // Deliberately trusting: a body-supplied owner wins over the verified subject.
    let owner_id = new
        .owner_id
        .or_else(|| {
            headers
                .get(SUBJECT_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "anonymous".to_owned());
    let mut db = lock(&state);
    let order = Order {
        id: db.next_order.to_string(),
        owner_id,
        item: new.item,
        quantity: new.quantity,
        status: "open".to_owned(),
    };
    db.next_order += 1;
    db.orders.push(order.clone());
    let location = format!("/api/orders/{}", order.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(order),
    )
        .into_response()
}

async fn get_order(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match lock(&state).orders.iter().find(|o| o.id == id) {
        Some(order) => Json(order.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Every writable field, including the ones a client should never set (`ownerId`, `status`):
/// the mass-assignment hole the gateway's schema validation closes.
#[derive(Deserialize)]
struct OrderUpdate {
    item: Option<String>,
    quantity: Option<i64>,
    status: Option<String>,
    #[serde(rename = "ownerId")]
    owner_id: Option<String>,
}

async fn update_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<OrderUpdate>, JsonRejection>,
) -> Response {
    let update = match body_or_400(body) {
        Ok(v) => v,
        Err(bad) => return bad.into_response(),
    };
    let mut db = lock(&state);
    let Some(order) = db.orders.iter_mut().find(|o| o.id == id) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    if let Some(item) = update.item {
        order.item = item;
    }
    if let Some(quantity) = update.quantity {
        order.quantity = quantity;
    }
    if let Some(status) = update.status {
        order.status = status;
    }
    if let Some(owner_id) = update.owner_id {
        order.owner_id = owner_id;
    }
    Json(order.clone()).into_response()
}

async fn delete_order(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let mut db = lock(&state);
    let before = db.orders.len();
    db.orders.retain(|o| o.id != id);
    if db.orders.len() == before {
        error(StatusCode::NOT_FOUND, "not found")
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn list_tasks(State(state): State<AppState>) -> Response {
    Json(json!({ "items": lock(&state).tasks })).into_response()
}

/// `due` is taken as given: checking the `YYYY-MM-DD` format is the gateway's schema's job.
#[derive(Deserialize)]
struct NewTask {
    title: String,
    done: bool,
    due: Option<String>,
}

async fn create_task(
    State(state): State<AppState>,
    body: Result<Json<NewTask>, JsonRejection>,
) -> Response {
    let new = match body_or_400(body) {
        Ok(v) => v,
        Err(bad) => return bad.into_response(),
    };
    let mut db = lock(&state);
    let task = Task {
        id: db.next_task.to_string(),
        title: new.title,
        done: new.done,
        due: new.due,
    };
    db.next_task += 1;
    db.tasks.push(task.clone());
    let location = format!("/api/tasks/{}", task.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(task),
    )
        .into_response()
}

/// Echoes the identity and forwarding headers exactly as they arrived, so the demo can show
/// that spoofed copies never get through the gateway. Repeated headers are joined with ", ".
async fn whoami(headers: HeaderMap) -> Response {
    let get = |name: &str| -> Value {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-ascii>"))
            .collect();
        if values.is_empty() {
            Value::Null
        } else {
            Value::String(values.join(", "))
        }
    };
    Json(json!({
        "subject": get(SUBJECT_HEADER),
        "roles": get("x-palisade-roles"),
        "key_id": get("x-palisade-key-id"),
        "forwarded_for": get("x-forwarded-for"),
        "forwarded_proto": get("x-forwarded-proto"),
        "forwarded_host": get("x-forwarded-host"),
        "host": get("host"),
    }))
    .into_response()
}

/// A realistic leaky crash page: internals a client must never see.
async fn crash() -> Response {
    let body = format!(
        "Internal Server Error\n\
         Error: connect ECONNREFUSED 10.0.3.17:5432 ({LEAKED_CONNECTION_STRING})\n\
         \x20   at Pool.connect (/srv/sample-api/node_modules/pg-pool/index.js:45:11)\n\
         \x20   at OrdersRepository.findAll (/srv/sample-api/src/repositories/orders.js:88:23)\n\
         \x20   at OrdersController.list (/srv/sample-api/src/controllers/orders.js:31:40)\n\
         \x20   at Layer.handle [as handle_request] (/srv/sample-api/node_modules/express/lib/router/layer.js:95:5)\n\
         \x20   at next (/srv/sample-api/node_modules/express/lib/router/route.js:149:13)\n\
         DATABASE_URL={LEAKED_CONNECTION_STRING}\n\
         NODE_ENV=production pid=4242 host=api-7f9c-prod\n"
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// Sends one request to `app` (a clone, so state is shared across calls) and returns
    /// status, headers and the body parsed as JSON (or as a string when it is not JSON).
    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Body::from(body.unwrap_or("").to_owned()))
            .expect("request");
        let rsp = app.clone().oneshot(req).await.expect("infallible");
        let status = rsp.status();
        let headers = rsp.headers().clone();
        let bytes = axum::body::to_bytes(rsp.into_body(), usize::MAX)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, value)
    }

    #[tokio::test]
    async fn login_accepts_known_users_only() {
        let app = router();
        let (status, headers, body) = call(
            &app,
            "POST",
            "/api/login",
            &[],
            Some(r#"{"username":"alice","password":"wonderland"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"subject": "alice", "message": "welcome"}));
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");

        let (status, _, body) = call(
            &app,
            "POST",
            "/api/login",
            &[],
            Some(r#"{"username":"alice","password":"builder"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"error": "invalid credentials"}));

        let (status, _, body) = call(&app, "POST", "/api/login", &[], Some("{not json")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].is_string(), "{body}");
    }

    #[tokio::test]
    async fn orders_are_seeded_and_unfiltered() {
        let app = router();
        let (status, _, body) = call(&app, "GET", "/api/orders", &[], None).await;
        assert_eq!(status, StatusCode::OK);
        let items = body["items"].as_array().expect("items");
        let summary: Vec<(&str, &str, &str, i64)> = items
            .iter()
            .map(|o| {
                (
                    o["id"].as_str().unwrap(),
                    o["ownerId"].as_str().unwrap(),
                    o["item"].as_str().unwrap(),
                    o["quantity"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("1", "alice", "book", 1),
                ("2", "bob", "lamp", 2),
                ("3", "alice", "pen", 10)
            ]
        );
    }

    #[tokio::test]
    async fn order_create_read_update_delete() {
        let app = router();
        // Owner comes from the gateway's subject header when the body has none.
        let (status, headers, created) = call(
            &app,
            "POST",
            "/api/orders",
            &[("x-palisade-subject", "bob")],
            Some(r#"{"item":"mug","quantity":3}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(headers[header::LOCATION], "/api/orders/4");
        assert_eq!(
            created,
            json!({"id":"4","ownerId":"bob","item":"mug","quantity":3,"status":"open"})
        );

        // A body-supplied owner wins (deliberately), and no header at all means "anonymous".
        let (_, _, o5) = call(
            &app,
            "POST",
            "/api/orders",
            &[("x-palisade-subject", "bob")],
            Some(r#"{"item":"x","quantity":1,"ownerId":"mallory"}"#),
        )
        .await;
        assert_eq!(o5["id"], "5");
        assert_eq!(o5["ownerId"], "mallory");
        let (_, _, o6) = call(
            &app,
            "POST",
            "/api/orders",
            &[],
            Some(r#"{"item":"y","quantity":1}"#),
        )
        .await;
        assert_eq!(o6["id"], "6");
        assert_eq!(o6["ownerId"], "anonymous");

        let (status, _, read) = call(&app, "GET", "/api/orders/4", &[], None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read, created);

        // Mass assignment is possible on purpose.
        let (status, _, updated) = call(
            &app,
            "PUT",
            "/api/orders/4",
            &[],
            Some(r#"{"quantity":7,"status":"shipped","ownerId":"mallory"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            updated,
            json!({"id":"4","ownerId":"mallory","item":"mug","quantity":7,"status":"shipped"})
        );

        let (status, _, body) = call(&app, "DELETE", "/api/orders/4", &[], None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(body, Value::String(String::new()));

        for method in ["GET", "DELETE"] {
            let (status, _, body) = call(&app, method, "/api/orders/4", &[], None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
            assert_eq!(body, json!({"error": "not found"}));
        }
        let (status, _, _) = call(&app, "PUT", "/api/orders/4", &[], Some("{}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, _, body) = call(&app, "POST", "/api/orders", &[], Some(r#"{"item":1}"#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].is_string());
    }

    #[tokio::test]
    async fn tasks_create_and_list() {
        let app = router();
        let (status, _, task) = call(
            &app,
            "POST",
            "/api/tasks",
            &[],
            Some(r#"{"title":"write docs","done":false,"due":"2030-01-31"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            task,
            json!({"id":"1","title":"write docs","done":false,"due":"2030-01-31"})
        );
        let (_, _, list) = call(&app, "GET", "/api/tasks", &[], None).await;
        assert_eq!(list, json!({"items": [task]}));

        let (status, headers, body) = call(
            &app,
            "POST",
            "/api/tasks",
            &[],
            Some(r#"{"title":"x","done":"yes"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(body["error"].is_string());
    }

    #[tokio::test]
    async fn whoami_echoes_identity_headers() {
        let app = router();
        let (status, _, body) = call(
            &app,
            "GET",
            "/api/whoami",
            &[
                ("x-palisade-subject", "alice"),
                ("x-palisade-roles", "customer"),
                ("x-forwarded-for", "10.0.0.1"),
                ("host", "api.example"),
            ],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({
                "subject": "alice", "roles": "customer", "key_id": null,
                "forwarded_for": "10.0.0.1", "forwarded_proto": null,
                "forwarded_host": null, "host": "api.example"
            })
        );
    }

    #[tokio::test]
    async fn crash_leaks_and_every_response_is_fingerprinted() {
        let app = router();
        let (status, headers, body) = call(&app, "GET", "/api/debug/crash", &[], None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = body.as_str().expect("text body");
        assert!(text.contains(LEAKED_CONNECTION_STRING));
        assert!(text.contains("orders.js:88"));

        for (method, uri) in [
            ("GET", "/healthz"),
            ("GET", "/api/orders"),
            ("GET", "/nope"),
            ("POST", "/api/whoami"),
        ] {
            let (_, headers, _) = call(&app, method, uri, &[], None).await;
            assert_eq!(headers[header::SERVER], SERVER_HEADER, "{method} {uri}");
            assert_eq!(headers["x-powered-by"], POWERED_BY_HEADER, "{method} {uri}");
        }
    }

    #[tokio::test]
    async fn serve_answers_over_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.to_ascii_lowercase()
                .contains("server: sample-api/0.1\r\n")
        );
        assert!(out.ends_with("\r\n\r\nok"), "{out}");
        server.abort();
    }
}
