//! Scenario 1: cold start. Each release binary is started against the Runtime API stand-in; we
//! time process start → first poll (init) and → end of the first invocation, median of N starts.

use crate::runtime_api::RuntimeApi;
use crate::stats::{Summary, summarize};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct ColdStart {
    pub function: String,
    pub binary_bytes: u64,
    pub init: Summary,
    pub first_invocation: Summary,
    pub failures: usize,
}

/// Whether a start counts only when its first invocation succeeds (our functions), or as soon
/// as it polls (a peer's binary, whose first call cannot reach the local emulators).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    WhenAnswered,
    AtFirstPoll,
}

/// Starts `binary` `runs` times with `event` as its first invocation.
pub async fn measure(
    function: &str,
    binary: &Path,
    event: &str,
    env: &[(String, String)],
    runs: usize,
    counted: Counted,
) -> std::io::Result<ColdStart> {
    let binary_bytes = std::fs::metadata(binary)?.len();
    let mut init = Vec::with_capacity(runs);
    let mut first = Vec::with_capacity(runs);
    let mut failures = 0;
    for _ in 0..runs {
        let api = RuntimeApi::start(event.to_owned()).await?;
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn()?;
        let seen = api.wait(Duration::from_secs(15)).await;
        let _ = child.kill().await;
        match (seen.first_poll, seen.answered) {
            (Some(poll), Some(answered)) if !seen.failed => {
                init.push(poll - started);
                first.push(answered - started);
            }
            (Some(poll), _) if counted == Counted::AtFirstPoll => init.push(poll - started),
            _ => failures += 1,
        }
    }
    Ok(ColdStart {
        function: function.to_owned(),
        binary_bytes,
        init: summarize(&mut init),
        first_invocation: summarize(&mut first),
        failures,
    })
}
