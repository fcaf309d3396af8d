//! Two gateway instances on one PostgreSQL: a key revoked through instance A is refused by
//! instance B within one second (LISTEN/NOTIFY), with no restart and no shared memory.

use std::time::{Duration, Instant};

use crate::common;

use palisade_testkit::config::ADMIN_TOKEN;
use palisade_testkit::{GatewayProcess, PostgresServer, RecordingUpstream, TestConfig};

fn start(upstream: &RecordingUpstream, database: &PostgresServer) -> GatewayProcess {
    let routes = format!(
        r#"
[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"
"#,
        url = upstream.url()
    );
    TestConfig::new()
        .store(database.url())
        .tables(&routes)
        .gateway(env!("CARGO_BIN_EXE_palisade"))
        .start()
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_on_one_instance_reaches_another_within_a_second() {
    let database = PostgresServer::start();
    let upstream = RecordingUpstream::start().await;
    let a = start(&upstream, &database);
    let b = start(&upstream, &database);
    let client = reqwest::Client::new();

    let (key, id) = common::create_key(
        &a,
        ADMIN_TOKEN,
        serde_json::json!({"name": "shared", "subject": "svc"}),
    )
    .await;
    // Both instances verify it, so both have it cached.
    assert_eq!(common::status_with(&a, &key).await, 200);
    assert_eq!(common::status_with(&b, &key).await, 200);

    let revoked = client
        .delete(format!("{}/keys/{id}", a.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let revoked_at = Instant::now();
    assert_eq!(common::status_with(&a, &key).await, 401);
    // The issue's bound: every instance within one second.
    loop {
        if common::status_with(&b, &key).await == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "instance B still accepted a key revoked on A after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
