//! The real `payment-create` binary, configured as `template.yaml` configures it on Lambda but
//! without a payment gateway, refuses to start: a clear start-up error, before any request, so a
//! deployed stack can never charge through the in-process mock (docs/security.md).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary with the Lambda environment plus `extra`; its exit status and standard error.
fn start(extra: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payment-create"));
    command
        .env_clear()
        .env("AWS_LAMBDA_FUNCTION_NAME", "payment-create")
        // Nothing listens there: a binary that got as far as asking for an event would hang on
        // it, not exit.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_REGION", "ap-northeast-2")
        .env("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("CAFE_BACKEND", "aws")
        .env("TABLE_NAME", "cafe-table")
        .env("REDIS_URL", "rediss://127.0.0.1:9")
        .env(
            "REDIS_AUTH_SECRET_ARN",
            "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:locks-AbCdEf",
        )
        .env(
            "TOKEN_VERIFYING_KEYS_ARN",
            "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:verifying-AbCdEf",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("payment-create starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let output = child.wait_with_output().expect("output");
            return (status, String::from_utf8_lossy(&output.stderr).into_owned());
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("payment-create did not refuse to start: it is waiting for requests");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_a_gateway_the_deployed_binary_refuses_to_start() {
    let (status, stderr) = start(&[]);
    assert!(!status.success(), "started: {stderr}");
    assert!(
        stderr.contains("PAYMENT_GATEWAY_URL") && stderr.contains("PAYMENT_GATEWAY_SECRET_ARN"),
        "the start-up error names what is missing: {stderr}"
    );
}

#[test]
fn a_plain_http_gateway_or_an_inline_secret_key_is_refused_at_start() {
    let (status, stderr) = start(&[
        ("PAYMENT_GATEWAY_URL", "http://pg.example"),
        (
            "PAYMENT_GATEWAY_SECRET_ARN",
            "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:pg-AbCdEf",
        ),
    ]);
    assert!(!status.success(), "started: {stderr}");
    assert!(stderr.contains("https://"), "{stderr}");
    let (status, stderr) = start(&[
        ("PAYMENT_GATEWAY_URL", "https://pg.example"),
        ("PAYMENT_GATEWAY_SECRET_KEY", "sk_live_in_plain_sight"),
    ]);
    assert!(!status.success(), "started: {stderr}");
    assert!(stderr.contains("PAYMENT_GATEWAY_SECRET_ARN"), "{stderr}");
    assert!(!stderr.contains("sk_live_in_plain_sight"), "{stderr}");
}
