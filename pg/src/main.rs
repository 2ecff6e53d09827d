//! `cafe-pg`: a small payment gateway server shaped like a Korean PG's API (Toss Payments
//! style), for the cafe's `HttpGateway` to talk to out of process. Its ledger is a file, so a
//! crash of the server or of its caller loses nothing that was answered.
//!
//! # API
//!
//! Every request needs `Authorization: Basic base64(<secretKey>:)` (else 401
//! `UNAUTHORIZED_KEY`). Every error is JSON `{"code", "message"}`.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/payments/confirm`, `Idempotency-Key`, `{"orderId", "amount", "method"}` | 200 the payment (`status: "DONE"`); 400 `REJECT_CARD_PAYMENT` (simulated decline, nothing charged) |
//! | `POST /v1/payments/{paymentKey}/cancel`, `Idempotency-Key`, `{"cancelReason", "cancelAmount"?}` | 200 the payment (`status: "CANCELED"`), also when it already was; 404 `NOT_FOUND_PAYMENT` |
//! | `GET /v1/payments/{paymentKey}` | 200 the payment; 404 `NOT_FOUND_PAYMENT` |
//! | `GET /v1/payments/by-idempotency-key/{key}` | 200 the payment confirmed under that key (DONE or CANCELED); 404 `NOT_FOUND_PAYMENT`; 409 while its confirm is in flight |
//! | `GET /v1/ledger` | 200 `{"charges": [{paymentKey, orderId, amount, idempotencyKey, status}], "declines": [...]}` |
//!
//! A payment is `{paymentKey, orderId, status, totalAmount, balanceAmount, method, approvedAt
//! (RFC 3339, +09:00), idempotencyKey, cancels}` (`cancels` is null until cancelled).
//!
//! Idempotency (`Idempotency-Key`: 1–300 visible ASCII characters, required on both POSTs;
//! confirm keys and cancel keys are two separate namespaces):
//! - a confirm repeated with the same key and the same body answers the first answer again
//!   (verbatim, also a decline) and charges nothing; the same key with another body answers 422
//!   `INVALID_REQUEST`; the same key while its first request is still being processed answers
//!   409 `ALREADY_PROCESSING_REQUEST`;
//! - a cancel is idempotent per payment: cancelling a cancelled payment answers 200 again and
//!   refunds nothing; a cancel key reused for another payment answers 422; two cancels of one
//!   payment at once: the second answers 409 `ALREADY_PROCESSING_REQUEST`.
//!
//! Request bodies: `orderId` 1–64 visible ASCII, `amount` a whole number ≥ 1, `method` 1–32 of
//! `A-Z` and `_` (`CARD`, `POINT`, `NAVER_PAY`, …); `cancelReason` 1–200 characters,
//! `cancelAmount` (optional) must be the whole amount (400 `NOT_CANCELABLE_AMOUNT`: no partial
//! cancels). Other fields are ignored. A malformed request answers 400 `INVALID_REQUEST`.
//!
//! # Knobs
//!
//! Each is a flag (`--name value` or `--name=value`) or an environment variable; the flag wins.
//!
//! | flag | variable | default | meaning |
//! |---|---|---|---|
//! | `--ledger <file>` | `PG_LEDGER` | required | the ledger file (created if missing) |
//! | `--port <n>` | `PG_PORT` | `8090` | port on 127.0.0.1; `0` = any free port |
//! | `--secret-key <key>` | `PG_SECRET_KEY` | `test_sk_cafe` | the secret key callers must present |
//! | `--min-latency-ms <n>` | `PG_MIN_LATENCY_MS` | `0` | least latency added to each request |
//! | `--max-latency-ms <n>` | `PG_MAX_LATENCY_MS` | `0` (= min) | most latency; uniform in between |
//! | `--failure-rate <0..1>` | `PG_FAILURE_RATE` | `0` | share of new confirms declined (400 `REJECT_CARD_PAYMENT`) |
//! | `--drop-rate <0..1>` | `PG_DROP_RATE` | `0` | share of new charges and cancels recorded durably and then left unanswered (the connection is closed) |
//! | — | `RUST_LOG` | `info` | log filter (logs go to stderr) |
//!
//! Once bound it prints `cafe-pg listening on http://127.0.0.1:<port>` on stdout (the only
//! thing it prints there), so a test can start it on port 0 and read the port.
//!
//! The latency is slept once per request: for a new confirm or cancel after its key is taken and
//! before the outcome is decided (so a repeat or a lookup meanwhile sees 409), for anything else
//! after the answer is decided (it tells the state as the request found it). Declines and drops
//! apply to new state changes only: a repeat answers what was recorded, and reads are never
//! dropped.
//!
//! # Durability
//!
//! Every state change (a charge, a decline, a cancel) is appended to the ledger as one JSON line
//! and fsync'ed before it takes effect or is answered; on start the file is replayed to rebuild
//! every key, payment and cancel. So a restart, or a `kill -9` of the server or of its caller,
//! loses nothing that was answered. A torn last line (a crash mid-write: it was never answered)
//! is dropped with a warning and cut off the file; a bad line before the last one is corruption,
//! and the server refuses to start, naming the line. One server holds the file at a time (an
//! exclusive lock; a second one refuses to start).
//!
//! Only 127.0.0.1 is bound. The secret key is never logged.

mod api;
mod ledger;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
cafe-pg: a Toss-Payments-style payment gateway with a durable ledger file

usage: cafe-pg --ledger <file> [options]

options (each also an environment variable; the flag wins):
  --ledger <file>          PG_LEDGER          the ledger file, created if missing (required)
  --port <n>               PG_PORT            port on 127.0.0.1, 0 = any free port (8090)
  --secret-key <key>       PG_SECRET_KEY      secret key callers must present (test_sk_cafe)
  --min-latency-ms <n>     PG_MIN_LATENCY_MS  least latency added to a request (0)
  --max-latency-ms <n>     PG_MAX_LATENCY_MS  most latency added to a request (= min)
  --failure-rate <0..1>    PG_FAILURE_RATE    share of new confirms declined (0)
  --drop-rate <0..1>       PG_DROP_RATE       share of new charges/cancels recorded, then left
                                              unanswered: the connection is closed (0)
  -h, --help                                  this text
  RUST_LOG (info) filters the logs, written to stderr.

endpoints (Authorization: Basic base64(<secretKey>:)):
  POST /v1/payments/confirm                      Idempotency-Key, {orderId, amount, method}
  POST /v1/payments/{paymentKey}/cancel          Idempotency-Key, {cancelReason, cancelAmount?}
  GET  /v1/payments/{paymentKey}
  GET  /v1/payments/by-idempotency-key/{key}
  GET  /v1/ledger

Once bound it prints `cafe-pg listening on http://127.0.0.1:<port>` on stdout.
";

/// What the server was started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub ledger: PathBuf,
    pub secret_key: String,
    pub min_latency: Duration,
    pub max_latency: Duration,
    pub failure_rate: f64,
    pub drop_rate: f64,
}

enum Parsed {
    Run(Config),
    Help,
}

/// The flags and their variables.
const OPTIONS: [(&str, &str); 7] = [
    ("ledger", "PG_LEDGER"),
    ("port", "PG_PORT"),
    ("secret-key", "PG_SECRET_KEY"),
    ("min-latency-ms", "PG_MIN_LATENCY_MS"),
    ("max-latency-ms", "PG_MAX_LATENCY_MS"),
    ("failure-rate", "PG_FAILURE_RATE"),
    ("drop-rate", "PG_DROP_RATE"),
];

fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Parsed, String> {
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (body, None),
        };
        let Some(&(known, _)) = OPTIONS.iter().find(|(flag, _)| *flag == name) else {
            return Err(format!("unknown option --{name}"));
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("--{known} needs a value"))?,
        };
        flags.retain(|(flag, _)| *flag != known);
        flags.push((known, value));
    }
    // The flag, else the variable; empty counts as unset.
    let get = |flag: &str| -> Option<(String, String)> {
        let variable = OPTIONS.iter().find(|(f, _)| *f == flag).map(|(_, v)| *v)?;
        flags
            .iter()
            .find(|(f, _)| *f == flag)
            .map(|(_, value)| (format!("--{flag}"), value.clone()))
            .or_else(|| env(variable).map(|value| (variable.to_owned(), value)))
            .filter(|(_, value)| !value.trim().is_empty())
    };
    let millis = |flag: &str| -> Result<Option<Duration>, String> {
        get(flag)
            .map(|(name, raw)| {
                raw.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&ms| ms <= 3_600_000)
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        format!("{name} must be a whole number of milliseconds up to 3600000, not {raw:?}")
                    })
            })
            .transpose()
    };
    let rate = |flag: &str| -> Result<f64, String> {
        match get(flag) {
            None => Ok(0.0),
            Some((name, raw)) => raw
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|rate| (0.0..=1.0).contains(rate))
                .ok_or_else(|| format!("{name} must be a number from 0 to 1, not {raw:?}")),
        }
    };
    let ledger = get("ledger")
        .map(|(_, path)| PathBuf::from(path))
        .ok_or("the ledger file is required: --ledger <file> or PG_LEDGER")?;
    let port = match get("port") {
        None => 8090,
        Some((name, raw)) => raw
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("{name} must be a port number from 0 to 65535, not {raw:?}"))?,
    };
    let secret_key = get("secret-key").map_or_else(|| "test_sk_cafe".to_owned(), |(_, key)| key);
    let min_latency = millis("min-latency-ms")?.unwrap_or(Duration::ZERO);
    let max_latency = millis("max-latency-ms")?.unwrap_or(min_latency);
    if max_latency < min_latency {
        return Err(format!(
            "the max latency ({} ms) is below the min latency ({} ms)",
            max_latency.as_millis(),
            min_latency.as_millis()
        ));
    }
    Ok(Parsed::Run(Config {
        port,
        ledger,
        secret_key,
        min_latency,
        max_latency,
        failure_rate: rate("failure-rate")?,
        drop_rate: rate("drop-rate")?,
    }))
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("cafe-pg: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cafe-pg: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("cafe-pg: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let (ledger, records) = ledger::LedgerFile::open(&config.ledger)
        .map_err(|error| format!("ledger {}: {error}", config.ledger.display()))?;
    let state = api::State::replay(&records)
        .map_err(|error| format!("ledger {}: {error}", config.ledger.display()))?;
    tracing::info!(
        ledger = %config.ledger.display(),
        records = records.len(),
        charges = state.charge_count(),
        "ledger replayed"
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .map_err(|error| format!("cannot bind 127.0.0.1:{}: {error}", config.port))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    tracing::info!(
        %address,
        min_latency = ?config.min_latency,
        max_latency = ?config.max_latency,
        failure_rate = config.failure_rate,
        drop_rate = config.drop_rate,
        "serving"
    );
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "cafe-pg listening on http://{address}");
        let _ = stdout.flush();
    }
    api::serve(listener, Arc::new(api::Server::new(config, state, ledger))).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match parse(args.iter().map(|a| (*a).to_owned()), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })? {
            Parsed::Run(config) => Ok(config),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn flags_win_over_variables_and_defaults_apply() {
        let config = run(&["--ledger", "a.jsonl"], &[]).unwrap();
        assert_eq!(config.port, 8090);
        assert_eq!(config.secret_key, "test_sk_cafe");
        assert_eq!(config.min_latency, Duration::ZERO);
        assert_eq!(config.max_latency, Duration::ZERO);
        let config = run(
            &["--port=0", "--min-latency-ms", "5", "--ledger=b"],
            &[
                ("PG_PORT", "1234"),
                ("PG_LEDGER", "env"),
                ("PG_SECRET_KEY", "sk"),
                ("PG_DROP_RATE", "0.5"),
            ],
        )
        .unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.ledger, PathBuf::from("b"));
        assert_eq!(config.secret_key, "sk");
        assert_eq!(config.min_latency, Duration::from_millis(5));
        assert_eq!(config.max_latency, Duration::from_millis(5));
        assert_eq!(config.drop_rate, 0.5);
    }

    #[test]
    fn bad_values_are_refused_naming_them() {
        assert!(run(&[], &[]).unwrap_err().contains("--ledger"));
        assert!(
            run(&["--ledger", "l", "--failure-rate", "2"], &[])
                .unwrap_err()
                .contains("--failure-rate")
        );
        assert!(
            run(&["--ledger", "l"], &[("PG_PORT", "x")])
                .unwrap_err()
                .contains("PG_PORT")
        );
        assert!(
            run(
                &[
                    "--ledger",
                    "l",
                    "--min-latency-ms",
                    "9",
                    "--max-latency-ms",
                    "3"
                ],
                &[]
            )
            .unwrap_err()
            .contains("below")
        );
        assert!(
            run(&["--ledger", "l", "--nope"], &[])
                .unwrap_err()
                .contains("--nope")
        );
        assert!(
            run(&["--ledger"], &[])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(matches!(
            parse(["--help".to_owned()], |_| None),
            Ok(Parsed::Help)
        ));
    }
}
