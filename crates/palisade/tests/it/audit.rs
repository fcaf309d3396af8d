//! `palisade audit`: the real binary against the bundled sample API, directly and behind the
//! demo gateway, and its exit status and output formats.

use std::process::Command;

use palisade_testkit::GatewayProcess;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/openapi.yaml");

/// Runs `palisade audit ARGS --format json` and returns (exit code, report).
fn audit(args: &[&str]) -> (i32, Value) {
    let output = palisade_testkit::secrets::checked_output(
        Command::new(BIN)
            .arg("audit")
            .args(args)
            .args(["--format", "json", "--rps", "0"]),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

fn status(report: &Value, id: u64) -> &str {
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no control {id}: {report}"))
}

/// A summary of every control for assertion messages.
fn summary(report: &Value) -> String {
    serde_json::to_string_pretty(report).unwrap()
}

async fn sample_api() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(palisade_sample_api::serve(listener));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_api_alone_fails_the_controls_the_gateway_provides() {
    let url = sample_api().await;
    let (code, report) = tokio::task::spawn_blocking(move || {
        audit(&[
            &url,
            "--openapi",
            SPEC,
            "--identity",
            "alice:X-Palisade-Subject=alice",
            "--identity",
            "bob:X-Palisade-Subject=bob",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "a failing control exits 1");
    for id in [2, 3, 4, 5, 6] {
        assert_eq!(
            status(&report, id),
            "FAIL",
            "control {id}: {}",
            summary(&report)
        );
    }
    assert_eq!(status(&report, 7), "NOT_TESTED");
    assert!(report["requests"].as_u64().unwrap() <= 300);
    let text = report.to_string();
    // Evidence quotes the leak without repeating the password it carries.
    assert!(!text.contains("s3cr3t"), "{text}");
    let bola = &report["controls"][2]["findings"][0];
    assert_eq!(bola["title"], "bob reads alice's object", "{bola}");
    assert!(bola["evidence"].as_str().unwrap().contains("as bob → 200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_api_behind_the_demo_gateway_passes_them() {
    let gw = GatewayProcess::builder(BIN)
        .args([
            "demo",
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ])
        .start();
    gw.wait_for_log(
        |line| {
            line.as_str()
                .is_some_and(|l| l.contains("Stop with Ctrl-C."))
        },
        std::time::Duration::from_secs(10),
    );
    let stdout = gw.stdout();
    let key_of = |who: &str| {
        let prefix = format!("export {who}=");
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("the tour prints {who}'s key:\n{stdout}"))
    };
    let alice = format!("alice:X-Api-Key={}", key_of("ALICE"));
    let bob = format!("bob:X-Api-Key={}", key_of("BOB"));
    let url = gw.https_url();
    let http_port = gw.http().port().to_string();
    let (code, report) = tokio::task::spawn_blocking(move || {
        audit(&[
            &url,
            "--openapi",
            SPEC,
            "--identity",
            &alice,
            "--identity",
            &bob,
            "--insecure",
            "--http-port",
            &http_port,
        ])
    })
    .await
    .unwrap();
    for id in [1, 2, 3, 4, 5, 6] {
        assert_eq!(
            status(&report, id),
            "PASS",
            "control {id}: {}",
            summary(&report)
        );
    }
    assert_eq!(code, 0, "{}", summary(&report));
    // The keys never appear in the report.
    let text = report.to_string();
    assert!(!text.contains(&key_of("ALICE")) && !text.contains(&key_of("BOB")));
}

#[test]
fn bad_usage_exits_2_before_any_request() {
    for args in [
        vec!["http://127.0.0.1:9", "--identity", "no-colon-here"],
        vec![
            "http://127.0.0.1:9",
            "--openapi",
            "/nonexistent/openapi.yaml",
        ],
        vec!["ftp://127.0.0.1:9"],
        vec!["http://127.0.0.1:9", "--format", "xml"],
        vec!["http://127.0.0.1:9", "--rps", "-1"],
        vec!["http://127.0.0.1:9", "--rps", "NaN"],
    ] {
        let output =
            palisade_testkit::secrets::checked_output(Command::new(BIN).arg("audit").args(&args));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sarif_and_junit_go_to_the_out_file() {
    let url = sample_api().await;
    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [("sarif", "audit.sarif"), ("junit", "audit.xml")] {
        let out = dir.path().join(file);
        let (url, out2) = (url.clone(), out.clone());
        let output = tokio::task::spawn_blocking(move || {
            palisade_testkit::secrets::checked_output(
                Command::new(BIN)
                    .args([
                        "audit",
                        &url,
                        "--openapi",
                        SPEC,
                        "--rps",
                        "0",
                        "--max-requests",
                        "60",
                    ])
                    .args(["--format", format, "--out"])
                    .arg(&out2),
            )
        })
        .await
        .unwrap();
        assert_eq!(output.status.code(), Some(1), "the bare sample API fails");
        assert!(output.stdout.is_empty(), "the report goes to the file only");
        let text = std::fs::read_to_string(&out).unwrap();
        if format == "sarif" {
            let sarif: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(sarif["version"], "2.1.0");
            let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap();
            assert_eq!(rules.len(), 10);
            assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
        } else {
            assert_eq!(text.matches("<testcase ").count(), 10, "{text}");
            assert!(text.contains("<failure "), "{text}");
        }
    }
}

#[test]
fn a_malformed_identity_is_refused_without_echoing_its_credential() {
    palisade_testkit::secrets::record("supersecret-credential");
    for identity in [
        "alice=supersecret-credential",
        "alice:Authorization: Bearer supersecret-credential==",
    ] {
        for flag in ["--identity", "--admin-identity"] {
            let output = palisade_testkit::secrets::checked_output(Command::new(BIN).args([
                "audit",
                "http://127.0.0.1:9",
                flag,
                identity,
            ]));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{stderr}");
            assert!(!stderr.contains("supersecret"), "{stderr}");
            assert!(stderr.contains(flag), "{stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stderr_stays_quiet_when_it_is_not_a_terminal() {
    // The progress bar is for people at a terminal: a CI log (a pipe) gets nothing on
    // stderr, only the report on stdout.
    let url = sample_api().await;
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["audit", &url, "--openapi", SPEC, "--rps", "0"])
            .args(["--identity", "alice:X-Palisade-Subject=alice"])
            .args(["--identity", "bob:X-Palisade-Subject=bob"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("palisade audit of ") && stdout.contains("10  Dependencies"),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "nothing on a piped stderr"
    );
}
