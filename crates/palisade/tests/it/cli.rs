//! The command line's contract: subcommands, exit status, and config errors that name the
//! file, the line and the key.

use std::process::Command;
use std::time::Duration;

use palisade_testkit::GatewayProcess;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

fn serve_expecting_failure(config: &str) -> (i32, String) {
    let (code, _stdout, stderr) = GatewayProcess::builder(BIN)
        .config(config)
        .env_remove("PALISADE_TEST_MISSING")
        .run_to_exit(Duration::from_secs(20));
    (code, stderr)
}

#[test]
fn help_lists_every_subcommand_and_the_exit_status() {
    let output = palisade_testkit::secrets::checked_output(Command::new(BIN).arg("--help"));
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for subcommand in ["serve", "demo", "config", "sample-api"] {
        assert!(
            help.contains(subcommand),
            "--help lacks {subcommand}:\n{help}"
        );
    }
    assert!(help.contains("Exit status"), "{help}");
}

#[test]
fn bad_usage_exits_2() {
    let output =
        palisade_testkit::secrets::checked_output(Command::new(BIN).arg("no-such-command"));
    assert_eq!(output.status.code(), Some(2));
    let output = palisade_testkit::secrets::checked_output(
        Command::new(BIN).args(["serve", "--no-such-flag"]),
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn config_errors_name_the_file_line_and_key_and_exit_2() {
    let cases = [
        // (config, the line the error must name, fragments the message must contain)
        (
            "[server]\nhttp = \"127.0.0.1:0\"\nhtps = \"127.0.0.1:0\"\n",
            3,
            vec!["server.htps", "unknown field"],
        ),
        (
            "[server]\nhttp = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n\n[[route]]\nname = \"r\"\npath = \"/x\"\nmethods = [\"GET\"]\nupstream = \"ap\"\nauth = \"public\"\n",
            12,
            vec!["route[0].upstream", "no upstream named `ap`"],
        ),
        (
            "[server]\nhttp = \"127.0.0.1:0\"\n\n[limits]\nrequest_timeout = \"soon\"\n",
            5,
            vec!["limits.request_timeout"],
        ),
        (
            "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nadmin_token = \"${env:PALISADE_TEST_MISSING}\"\n",
            4,
            vec!["server.admin_token", "${env:PALISADE_TEST_MISSING}"],
        ),
        (
            "[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"0.0.0.0:0\"\n",
            3,
            vec!["server.admin", "admin_token"],
        ),
        (
            "[server]\nhttp = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n\n[[route]]\nname = \"a\"\npath = \"/x/{id}\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n\n[[route]]\nname = \"b\"\npath = \"/x/{other}\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n",
            17,
            vec!["route[1].path"],
        ),
        ("[server\nhttp = 1\n", 1, vec![]),
    ];
    for (config, line, fragments) in cases {
        let (code, stderr) = serve_expecting_failure(config);
        assert_eq!(code, 2, "exit status for:\n{config}\nstderr: {stderr}");
        let location = format!("palisade.toml:{line}:");
        assert!(
            stderr.contains(&location),
            "expected {location} in: {stderr}"
        );
        for fragment in fragments {
            assert!(
                stderr.contains(fragment),
                "expected {fragment:?} in: {stderr}"
            );
        }
    }
}

#[test]
fn a_missing_config_file_exits_2_naming_it() {
    let (code, _stdout, stderr) = GatewayProcess::builder(BIN).run_to_exit(Duration::from_secs(20));
    assert_eq!(code, 2);
    assert!(stderr.contains("palisade.toml"), "{stderr}");
}

#[test]
fn config_schema_is_json_schema_of_the_config_types() {
    let output =
        palisade_testkit::secrets::checked_output(Command::new(BIN).args(["config", "schema"]));
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        schema["$schema"]
            .as_str()
            .unwrap_or_default()
            .contains("json-schema.org")
    );
    let properties = schema["properties"]
        .as_object()
        .expect("top-level properties");
    for section in ["server", "limits", "upstream", "route"] {
        assert!(properties.contains_key(section), "schema lacks {section}");
    }
    // deny_unknown_fields shows up as a closed object.
    assert_eq!(schema["additionalProperties"], false);
}

/// A config whose admin token comes from `${env:ENVFILE_ADMIN_TOKEN}`.
const ENV_CONFIG: &str = r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "${env:ENVFILE_ADMIN_TOKEN}"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn env_file_is_read_when_named_and_reread_on_reload() {
    // The `.env` values are secrets the leak check must look for.
    for token in [
        "first-token-0123456789abcdef",
        "second-token-0123456789abcdef",
    ] {
        palisade_testkit::secrets::record(token);
    }
    let gw = GatewayProcess::builder(BIN)
        .config(ENV_CONFIG)
        .file(
            ".env",
            "# test\nexport ENVFILE_ADMIN_TOKEN='first-token-0123456789abcdef'\n",
        )
        .env_remove("ENVFILE_ADMIN_TOKEN")
        .args(["serve", "-c", "{config}", "--env-file", "{dir}/.env"])
        .start();
    let reload = |token: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/reload", gw.admin_url()))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        reload("first-token-0123456789abcdef")
            .await
            .unwrap()
            .status(),
        200
    );
    // Rotation: the file changes, a reload reads it again, the old token stops working.
    gw.write_file(
        ".env",
        "ENVFILE_ADMIN_TOKEN=second-token-0123456789abcdef\n",
    );
    assert_eq!(
        reload("first-token-0123456789abcdef")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reload("first-token-0123456789abcdef")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        reload("second-token-0123456789abcdef")
            .await
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn a_dot_env_is_never_read_unless_named() {
    for value in [
        "never-read-0123456789abcdef",
        "ok-0123456789abcdef",
        "secret-value-on-line-2",
    ] {
        palisade_testkit::secrets::record(value);
    }
    let (code, _stdout, stderr) = GatewayProcess::builder(BIN)
        .config(ENV_CONFIG)
        .file(".env", "ENVFILE_ADMIN_TOKEN=never-read-0123456789abcdef\n")
        .env_remove("ENVFILE_ADMIN_TOKEN")
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ENVFILE_ADMIN_TOKEN"), "{stderr}");
    // An unreadable line is reported by its number, never its content.
    let (code, _stdout, stderr) = GatewayProcess::builder(BIN)
        .config(ENV_CONFIG)
        .file(
            ".env",
            "ENVFILE_ADMIN_TOKEN=ok-0123456789abcdef\nsecret-value-on-line-2\n",
        )
        .env_remove("ENVFILE_ADMIN_TOKEN")
        .args(["serve", "-c", "{config}", "--env-file", "{dir}/.env"])
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(".env:2") && !stderr.contains("secret-value"),
        "{stderr}"
    );
}
