//! Checklist #7, secrets never in logs: whatever a client puts in a request, no API key,
//! JWT or card number reaches a log line in the clear.

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
