//! Faults (issue 10): what the gateway does when what it depends on misbehaves, and that
//! it serves normally afterwards. Each test asserts the statuses clients got, that nothing
//! was lost, and a normal request at the end.
//!
//! - an upstream that answers garbage, hangs up before answering, or resets mid-response;
//! - reloads with broken configs (SIGHUP and `POST /reload`) under concurrent load;
//! - SIGTERM under load: every in-flight request finishes whole, exit 0;
//! - PostgreSQL stopped: keys the store confirmed before the outage keep working (nothing
//!   can be revoked in a database that is down; bounded by `STALE_MAX`), every other key
//!   fails closed (503, never 401, never 200), key creation fails cleanly, and service comes
//!   back with the database with nothing lost;
//! - the SQLite store made unwritable (immutable files, as a read-only disk): keys still
//!   verify, creation fails with a 503 problem or the CLI's exit 2 and the database's
//!   reason, no key is shown, and nothing stored is lost;
//! - Redis killed and restarted under concurrent load: no request hangs or fails in a way
//!   its `on_store_error` mode does not say, and every worker is decided by Redis again.
//!
//! (Timeouts, refused connections and upstream 5xx are in `proxy.rs`.)

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use palisade_testkit::config::{ADMIN_TOKEN, KEY_PEPPER};
use palisade_testkit::gateway::log_event;
use palisade_testkit::raw::{self, RawConnection};
use palisade_testkit::{GatewayProcess, PostgresServer, RecordingUpstream, TestConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// A deliberately broken upstream, by path:
/// `/garbage` answers bytes that are not HTTP; `/hangup` closes without a byte;
/// `/reset-body` announces 100,000 bytes, sends 1,000, then resets the connection;
/// anything else is a proper 200 with a small JSON body.
async fn broken_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                match path.as_str() {
                    "/garbage" => {
                        let _ = tcp
                            .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http\r\n\r\n")
                            .await;
                    }
                    "/hangup" => {}
                    "/reset-body" => {
                        let _ = tcp
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                                  Content-Length: 100000\r\n\r\n",
                            )
                            .await;
                        let _ = tcp.write_all(&[b'x'; 1000]).await;
                        let _ = tcp.flush().await;
                        // SO_LINGER 0: close sends RST, not FIN (blocking on drop is
                        // what is wanted here: nothing is left to send).
                        #[allow(deprecated)]
                        let _ = tcp.set_linger(Some(Duration::ZERO));
                    }
                    _ => {
                        let _ = tcp
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                  Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
                            )
                            .await;
                    }
                }
                drop(tcp);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_upstream_is_a_502_and_never_a_whole_looking_response() {
    let upstream = broken_upstream().await;
    let routes: String = ["/garbage", "/hangup", "/reset-body", "/ok"]
        .iter()
        .enumerate()
        .map(|(i, path)| {
            format!(
                "[[route]]\nname = \"r{i}\"\npath = \"{path}\"\nmethods = [\"GET\"]\n\
                 upstream = \"broken\"\nauth = \"public\"\n\n"
            )
        })
        .collect();
    let gw = GatewayProcess::builder(BIN)
        .config(format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n\n[limits]\nrequest_timeout = \"5s\"\n\n\
             [[upstream]]\nname = \"broken\"\nurl = \"http://{upstream}\"\n\n{routes}"
        ))
        .start();
    let addr = gw.http();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");

    for round in 0..3 {
        for path in ["/garbage", "/hangup"] {
            let rsp = raw::send(addr, get(path).as_bytes()).await;
            common::assert_problem(&rsp, 502, "bad-gateway", &format!("{path} (round {round})"));
        }
        // The status line may already be on its way when the upstream resets: then the
        // client must see a broken response (cut short), never a complete one; or 502.
        let mut conn = RawConnection::connect(addr).await;
        conn.write(get("/reset-body").as_bytes()).await;
        match conn.try_read_response().await {
            Ok(rsp) => {
                common::assert_problem(&rsp, 502, "bad-gateway", "/reset-body");
            }
            Err(e) => assert_ne!(
                e.kind(),
                std::io::ErrorKind::TimedOut,
                "/reset-body: the client was left hanging"
            ),
        }
        let rsp = raw::send(addr, get("/ok").as_bytes()).await;
        assert_eq!(rsp.status, 200, "/ok after the faults (round {round})");
        assert_eq!(rsp.json()["ok"], true);
    }
}

fn reload_config(upstream: &str) -> TestConfig {
    TestConfig::new().tables(&format!(
        r#"
[[upstream]]
name = "app"
url = "{upstream}"

[[route]]
name = "old"
path = "/old"
methods = ["GET"]
upstream = "app"
auth = "public"
"#
    ))
}

/// Clients hammering the gateway while it is told, again and again, to load broken
/// configs: every request is answered 200 by the running config, which stays in force.
#[tokio::test(flavor = "multi_thread")]
async fn broken_reloads_under_load_fail_no_request() {
    let upstream = RecordingUpstream::start().await;
    let config = reload_config(&upstream.url());
    let good = config.render();
    let gw = config.gateway(BIN).start();
    let url = format!("{}/old", gw.http_url());

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, url) = (stop.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut bad) = (0u32, Vec::new());
            // Bounded in count as well as by the stop flag.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => bad.push(r.status().to_string()),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            (ok, bad)
        }));
    }
    upstream
        .wait_for_requests(20, Duration::from_secs(30))
        .await;

    let broken = [
        "[server\nhttp = ".to_owned(),
        good.replace("upstream = \"app\"\nauth", "upstream = \"nope\"\nauth"),
        good.replace(
            "${env:PALISADE_ADMIN_TOKEN}",
            "${env:PALISADE_NO_SUCH_VARIABLE}",
        ),
        good.replace(
            "methods = [\"GET\"]",
            "methods = [\"FETCH\"]\nunknown_key = 1",
        ),
        String::new(),
    ];
    let client = reqwest::Client::new();
    let failed_reloads = |gw: &GatewayProcess| {
        gw.logs()
            .iter()
            .filter(|v| log_event(v) == Some("config_reload_failed"))
            .count()
    };
    for (i, config) in broken.iter().enumerate() {
        gw.write_config(config);
        // Through the admin API: refused with 422.
        let rsp = client
            .post(format!("{}/reload", gw.admin_url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(rsp.status(), 422, "broken config {i} via POST /reload");
        // Through SIGHUP: logged as failed.
        let before = failed_reloads(&gw);
        gw.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        while failed_reloads(&gw) <= before {
            assert!(
                Instant::now() < deadline,
                "broken config {i}: no failed reload logged after SIGHUP"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for worker in workers {
        let (ok, bad) = worker.await.unwrap();
        assert!(
            bad.is_empty(),
            "requests failed during broken reloads: {bad:?}"
        );
        total += ok;
    }
    assert!(total > 0);
    println!("broken reloads under load: {total} requests, all 200");

    // The running config is the good one: /old serves; and a good reload still applies.
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    gw.write_config(&good.replace("/old", "/new"));
    let rsp = client
        .post(format!("{}/reload", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let new = reqwest::get(format!("{}/new", gw.http_url()))
        .await
        .unwrap();
    assert_eq!(new.status(), 200);
}

/// SIGTERM with slow requests in flight and large responses streaming: every one of them
/// finishes whole, and the process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_cuts_nothing_and_exits_0() {
    let upstream = RecordingUpstream::start().await;
    let mut gw = GatewayProcess::builder(BIN)
        .config(format!(
            "[server]\nhttp = \"127.0.0.1:0\"\n\n[limits]\ndrain_timeout = \"30s\"\n\n\
             [[upstream]]\nname = \"app\"\nurl = \"{}\"\n\n\
             [[route]]\nname = \"slow\"\npath = \"/slow\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n\n\
             [[route]]\nname = \"big\"\npath = \"/big\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n",
            upstream.url()
        ))
        .start();
    let base = gw.http_url();
    const SLOW: usize = 12;
    const BIG: usize = 4;
    const BIG_BYTES: usize = 8 * 1024 * 1024;

    let mut tasks = Vec::new();
    for i in 0..SLOW {
        let url = format!("{base}/slow?ms={}&n={i}", 1500 + 100 * i);
        tasks.push(tokio::spawn(async move {
            let rsp = reqwest::get(&url)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = rsp.status().as_u16();
            let body: serde_json::Value = rsp.json().await.map_err(|e| format!("{url}: {e}"))?;
            if status != 200 || body["upstream"] != "ok" {
                return Err(format!("{url}: {status} {body}"));
            }
            Ok(url)
        }));
    }
    upstream
        .wait_for_requests(SLOW, Duration::from_secs(30))
        .await;
    // Large bodies, read slowly: in flight when the signal lands.
    for i in 0..BIG {
        let url = format!("{base}/big?bytes={BIG_BYTES}&n={i}");
        tasks.push(tokio::spawn(async move {
            let mut rsp = reqwest::get(&url)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if rsp.status() != 200 {
                return Err(format!("{url}: {}", rsp.status()));
            }
            let mut len = 0;
            while let Some(chunk) = rsp.chunk().await.map_err(|e| format!("{url}: cut: {e}"))? {
                len += chunk.len();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if len != BIG_BYTES {
                return Err(format!("{url}: {len} of {BIG_BYTES} bytes"));
            }
            Ok(url)
        }));
    }
    upstream
        .wait_for_requests(SLOW + BIG, Duration::from_secs(30))
        .await;

    gw.signal("TERM");
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "cut by SIGTERM: {failures:?}");
    let code = tokio::task::spawn_blocking(move || {
        let code = gw.wait_exit(Duration::from_secs(60));
        (code, gw.stdout())
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "{}", code.1);
    assert!(
        !code.1.contains("\"drain_timeout\""),
        "requests were cut at the drain timeout"
    );
}

/// An API-keyed route `/api/orders` with its keys in the store at `store_url`, and the admin
/// API to create them.
fn keyed_config(upstream: &RecordingUpstream, store_url: &str) -> TestConfig {
    TestConfig::new().store(store_url).tables(&format!(
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
    ))
}

/// Waits (generously) until `key` gets `status`; panics naming `what` otherwise.
async fn wait_for_status(gw: &GatewayProcess, key: &str, status: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = common::status_with(gw, key).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `key` with another last character: its id with a wrong secret. (Always another: a fixed
/// replacement is the key itself when its secret happens to end with it.)
fn wrong_secret(key: &str) -> String {
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    format!("{}{last}", &key[..key.len() - 1])
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_keeps_cached_keys_fails_closed_for_others_and_recovers() {
    let database = PostgresServer::start();
    let upstream = RecordingUpstream::start().await;
    let gw = keyed_config(&upstream, &database.url())
        .gateway(BIN)
        .start();
    // The gateway clears its key cache when its LISTEN connection comes up, and nothing
    // makes that happen before `ready`: a key verified before then would not stay cached.
    common::wait_for_message(&gw, "listening for key revocations");
    let (cached, _) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "cached", "subject": "svc-cached"}),
    )
    .await;
    let (uncached, _) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "uncached", "subject": "svc-uncached"}),
    )
    .await;
    assert_eq!(
        common::status_with(&gw, &cached).await,
        200,
        "cached key, database up"
    );

    database.stop();
    // The gateway sees the database go when its LISTEN connection drops; from then on every
    // key is read from the store before use, and the read fails.
    common::wait_for_message(&gw, "lost the key revocation feed");
    // A key it has never verified cannot be: 503, never 401 (which would tell a client its
    // valid key is wrong), never 200.
    wait_for_status(
        &gw,
        &uncached,
        503,
        "uncached key once the database is gone",
    )
    .await;
    let served_before = upstream.requests().len();
    for round in 0..3 {
        // A key the store confirmed before the outage keeps working: nothing can be
        // revoked in a database that is down.
        assert_eq!(
            common::status_with(&gw, &cached).await,
            200,
            "cached key, database down ({round})"
        );
        assert_eq!(
            common::status_with(&gw, &uncached).await,
            503,
            "uncached key, database down ({round})"
        );
        let forged = wrong_secret(&uncached);
        assert_eq!(
            common::status_with(&gw, &forged).await,
            503,
            "unknown key, database down ({round})"
        );
    }
    let served: Vec<_> = upstream.requests().split_off(served_before);
    assert_eq!(
        served.len(),
        3,
        "only the cached key's requests were forwarded"
    );
    assert!(
        served
            .iter()
            .all(|r| r.header("x-palisade-subject") == Some("svc-cached")),
        "a key that could not be verified reached the upstream: {served:?}"
    );
    // Creating a key needs the database: a clear error, no key shown.
    let rsp = reqwest::Client::new()
        .post(format!("{}/keys", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "during-outage", "subject": "svc-x"}))
        .send()
        .await
        .unwrap();
    assert!(
        rsp.status().is_server_error(),
        "key creation while down: {}",
        rsp.status()
    );
    let body = rsp.text().await.unwrap();
    assert!(
        !body.contains("pal_"),
        "a key was shown while it could not be stored: {body}"
    );

    database.restart();
    wait_for_status(
        &gw,
        &uncached,
        200,
        "uncached key after the database returned",
    )
    .await;
    assert_eq!(
        common::status_with(&gw, &cached).await,
        200,
        "cached key after recovery"
    );
    let forged = wrong_secret(&uncached);
    assert_eq!(
        common::status_with(&gw, &forged).await,
        401,
        "unknown key after recovery"
    );
    // Nothing was lost: both keys work again (above), and a new one can be made.
    let (after, _) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "after", "subject": "svc-after"}),
    )
    .await;
    assert_eq!(
        common::status_with(&gw, &after).await,
        200,
        "a key made after recovery"
    );
}

/// The SQLite store's directory and files made unwritable, for as long as it lives; made
/// writable again when dropped (also when the test fails, so the directory can be removed).
///
/// As root, file modes do not stop writes: the files and the directory are made immutable
/// (`chattr +i`), which refuses every write, including through descriptors the gateway
/// already holds — what a disk remounted read-only does. Returns `None` where that is not
/// possible (not root, or a filesystem without the attribute).
struct Unwritable {
    paths: Vec<std::path::PathBuf>,
}

impl Unwritable {
    fn make(dir: &std::path::Path) -> Option<Unwritable> {
        if !palisade_testkit::postgres::euid_is_root().unwrap_or(false) {
            return None;
        }
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        paths.push(dir.to_path_buf());
        let set = std::process::Command::new("chattr")
            .arg("+i")
            .args(&paths)
            .status()
            .is_ok_and(|s| s.success());
        let guard = Unwritable { paths };
        set.then_some(guard)
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.paths)
            .status();
    }
}

/// The SQLite key store becomes unwritable while the gateway runs (a full or read-only
/// disk): creating a key fails with a clear error and shows no key, keys keep verifying,
/// nothing that was stored is lost or corrupted, and once the store is writable again keys
/// are created and used as before.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_sqlite_store_fails_writes_cleanly_and_loses_nothing() {
    let upstream = RecordingUpstream::start().await;
    let gw = keyed_config(&upstream, "sqlite://store/keys.db")
        .gateway(BIN)
        .start();
    let (used, used_id) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "used", "subject": "svc-used"}),
    )
    .await;
    let (unused, unused_id) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "unused", "subject": "svc-unused"}),
    )
    .await;
    assert_eq!(
        common::status_with(&gw, &used).await,
        200,
        "before the fault"
    );

    let store = gw.dir().join("store");
    let Some(fault) = Unwritable::make(&store) else {
        eprintln!("skipped: making a store unwritable needs root and chattr (see Unwritable)");
        return;
    };
    let rsp = reqwest::Client::new()
        .post(format!("{}/keys", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"name": "during-fault", "subject": "svc-x"}))
        .send()
        .await
        .unwrap();
    let status = rsp.status();
    let body = rsp.text().await.unwrap();
    assert_eq!(status, 503, "key creation on an unwritable store: {body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "urn:palisade:problem:store-unavailable");
    assert!(
        !body.contains("pal_"),
        "a key was shown while it could not be stored: {body}"
    );
    // Keys keep verifying: the one the gateway has seen, and the one it reads now.
    for round in 0..3 {
        assert_eq!(
            common::status_with(&gw, &used).await,
            200,
            "used key, store unwritable ({round})"
        );
        // An unwritable store is still readable: a key never used before is read and works.
        assert_eq!(
            common::status_with(&gw, &unused).await,
            200,
            "unused key, store unwritable ({round})"
        );
    }
    // The command line fails too, and says why.
    let cli = palisade_testkit::secrets::checked_output(
        std::process::Command::new(BIN)
            .args(["keys", "-c"])
            .arg(gw.config_path())
            .args(["create", "--name", "cli-during-fault", "--subject", "svc-y"])
            .env("PALISADE_KEY_PEPPER", KEY_PEPPER)
            .env("PALISADE_ADMIN_TOKEN", ADMIN_TOKEN)
            .current_dir(gw.dir()),
    );
    let stderr = String::from_utf8_lossy(&cli.stderr);
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(cli.status.code(), Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("pal_"), "{stdout}");
    assert!(
        stderr.contains("key store") && stderr.contains("readonly database"),
        "a clear error: {stderr}"
    );

    drop(fault);
    let (after, after_id) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "after", "subject": "svc-after"}),
    )
    .await;
    for key in [&used, &unused, &after] {
        wait_for_status(&gw, key, 200, "every key once the store is writable").await;
    }
    // Nothing stored was lost: the store lists exactly the three keys created through it.
    let listed = reqwest::Client::new()
        .get(format!("{}/keys", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    let mut ids: Vec<&str> = listed
        .as_array()
        .or_else(|| listed["keys"].as_array())
        .expect("a list of keys")
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![used_id.as_str(), unused_id.as_str(), after_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
}

/// Redis, the shared rate-limit store, is killed and restarted while clients keep sending.
/// With `on_store_error = "allow"` every request must still be answered 200 within the
/// client's timeout (none hangs on the dead store, none fails), each exactly once upstream;
/// after the restart every worker's own Redis connection comes back, so requests on fresh
/// connections (spread across the workers) are decided by Redis again, not by the fallback.
#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_and_restarted_under_load_loses_no_request() {
    let redis = palisade_testkit::RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let config = format!(
        r#"
[server]
http = "127.0.0.1:0"

[rate_limit]
store = "{redis}"
on_store_error = "allow"
store_timeout = "1s"

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "items"
path = "/api/items"
methods = ["GET"]
upstream = "app"
auth = "public"
rate_limit = {{ limit = 1000000, window = "1m", per = "ip" }}
"#,
        redis = redis.url(),
        url = upstream.url()
    );
    let gw = GatewayProcess::builder(BIN).config(config).start();
    let url = format!("{}/api/items", gw.http_url());

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, url) = (stop.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut answered = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let rsp = client.get(&url).send().await;
                let status = rsp.as_ref().map(|r| r.status().as_u16());
                assert!(
                    matches!(status, Ok(200)),
                    "request {answered} of a client during the Redis outage: {rsp:?}"
                );
                answered += 1;
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.stop();
    tokio::task::block_in_place(|| {
        gw.wait_for_event("rate_limit_store_unavailable", Duration::from_secs(10))
    })
    .unwrap_or_else(|| panic!("the outage was not noticed\n{}", gw.stdout()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.restart();
    tokio::task::block_in_place(|| {
        gw.wait_for_event("rate_limit_store_recovered", Duration::from_secs(10))
    })
    .unwrap_or_else(|| panic!("no recovery\n{}", gw.stdout()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        answered += client.await.unwrap();
    }
    assert!(answered > 100, "the load ran: {answered} requests");
    assert_eq!(
        upstream.requests().len(),
        answered,
        "every answered request reached the upstream exactly once"
    );

    // Every worker decides through Redis again: a batch of requests, each on a connection
    // of its own, none of them falling back. (A worker whose connection has not come back
    // yet falls back once and reconnects; the batch is repeated until one is clean.)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut fell_back = 0;
        for _ in 0..16 {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let rsp = client.get(&url).send().await.unwrap();
            assert_eq!(rsp.status(), 200);
            let id = rsp.headers()["x-request-id"].to_str().unwrap().to_owned();
            let line = common::log_line(&gw, "request", &id);
            if palisade_testkit::gateway::log_field(&line, "rate_limit_fallback")
                .is_some_and(|v| !v.is_null())
            {
                fell_back += 1;
            }
        }
        if fell_back == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests still fall back {fell_back}/16 after Redis returned\n{}",
            gw.stdout()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The restarted Redis (its statistics start at zero) ran the limiter's script.
    let stats = redis
        .command(&["INFO", "commandstats"])
        .unwrap()
        .as_string()
        .unwrap();
    assert!(
        stats.contains("cmdstat_evalsha:calls=") || stats.contains("cmdstat_eval:calls="),
        "requests are decided in Redis again: {stats}"
    );
}
