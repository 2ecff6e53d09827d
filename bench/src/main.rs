//! `bench [all|coldstart|handler|e2e|contention|expiry|lockscope …] [--runs N] [--quick]
//! [--out FILE]`: runs the benchmark scenarios on this machine, prints a table per scenario and
//! writes them all to BENCHMARKS.md. `--quick` shrinks every size tenfold (development runs).
//! `scripts/bench.sh` builds the release binaries, starts Redis and moto, and runs this.

mod caller;
mod coldstart;
mod contention;
mod e2e;
mod endpoints;
mod expiry;
mod fixture;
mod handler;
mod lockscope;
mod runtime_api;
mod stats;

use stats::ms;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

struct Args {
    scenarios: Vec<String>,
    runs: usize,
    quick: bool,
    out: PathBuf,
}

const ALL: [&str; 6] = [
    "coldstart",
    "handler",
    "e2e",
    "contention",
    "expiry",
    "lockscope",
];

fn parse_args() -> Args {
    let mut args = Args {
        scenarios: Vec::new(),
        runs: 20,
        quick: false,
        out: PathBuf::from("BENCHMARKS.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => args.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(20),
            "--quick" => args.quick = true,
            "--out" => args.out = it.next().map(PathBuf::from).unwrap_or(args.out),
            other => args.scenarios.push(other.to_owned()),
        }
    }
    if args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == "all") {
        args.scenarios = ALL.iter().map(|s| (*s).to_owned()).collect();
    }
    args
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Every function crate under `functions/`, sorted.
fn function_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("functions"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Variables passed to every function: the AWS backend pointed at the local emulators.
fn function_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("CAFE_BACKEND", "aws"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("ARGON2_MEMORY_KIB", "19456"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // Inline keys: the signing functions get the private keyset, the rest its public half, as
    // the template's two secrets would give them.
    let keyset = cafe::auth::SigningKeyset::development();
    env.push(("TOKEN_SIGNING_KEYS".into(), keyset.to_json()));
    if let Ok(jwks) = keyset.public_jwks() {
        env.push((
            "TOKEN_VERIFYING_KEYS".into(),
            serde_json::to_string(&jwks).unwrap_or_default(),
        ));
    }
    for (from, to) in [
        ("CAFE_BENCH_DYNAMODB_ENDPOINT", "DYNAMODB_ENDPOINT"),
        // moto serves EventBridge too: the stream publisher must not reach for AWS.
        ("CAFE_BENCH_DYNAMODB_ENDPOINT", "EVENTBRIDGE_ENDPOINT"),
        ("CAFE_BENCH_REDIS_URL", "REDIS_URL"),
        ("CAFE_BENCH_TABLE_NAME", "TABLE_NAME"),
    ] {
        if let Ok(value) = std::env::var(from) {
            env.push((to.to_owned(), value));
        }
    }
    env
}

/// The sample event as EventBridge sends it in production: the scheduled samples carry a `now`
/// override for tests, which production refuses (`CAFE_ENV`), so it is taken out here.
fn as_deployed(sample: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(sample) {
        Ok(serde_json::Value::Object(mut event)) if event.contains_key("now") => {
            event.remove("now");
            serde_json::Value::Object(event).to_string()
        }
        _ => sample.to_owned(),
    }
}

async fn coldstart(root: &Path, runs: usize, report: &mut String) -> std::io::Result<()> {
    let release = root.join("target/release");
    let env = function_env();
    let floor_event = std::fs::read_to_string(root.join("events/items-list.json"))?;
    let floor = coldstart::measure(
        "hello-floor",
        &release.join("hello-floor"),
        &floor_event,
        &[],
        runs,
        coldstart::Counted::WhenAnswered,
    )
    .await?;
    let floor_init = floor.init.median.as_secs_f64().max(1e-9);
    let _ = writeln!(
        report,
        "## 1. Cold start\n\nProcess start → first poll of the Runtime API (init) and → end of the first \
         invocation, median of {runs} starts, release build (`opt-level = \"s\"`, fat LTO, \
         `codegen-units = 1`, `panic = \"abort\"`, stripped), x86_64 host build of the same code, \
         `CAFE_BACKEND=aws` (SDK clients built at init) against local Redis and moto.\n"
    );
    let _ = writeln!(
        report,
        "| function | binary (MB) | starts | init median (ms) | init p99 (ms) | init ÷ floor | first invocation median (ms) | failed starts |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut rows = vec![floor];
    // `CAFE_BENCH_ONLY=name,…` starts only those functions (the floor and peers still run).
    let only = std::env::var("CAFE_BENCH_ONLY").unwrap_or_default();
    let chosen = |name: &str| only.is_empty() || only.split(',').any(|n| n.trim() == name);
    for name in function_names(root).into_iter().filter(|n| chosen(n)) {
        let event = std::fs::read_to_string(root.join(format!("events/{name}.json")))
            .map(|sample| as_deployed(&sample))
            .unwrap_or_else(|_| "{}".to_owned());
        let binary = release.join(&name);
        if !binary.exists() {
            eprintln!("skipping {name}: {} not built", binary.display());
            continue;
        }
        eprintln!("cold start: {name}");
        rows.push(
            coldstart::measure(
                &name,
                &binary,
                &event,
                &env,
                runs,
                coldstart::Counted::WhenAnswered,
            )
            .await?,
        );
    }
    // Peers built elsewhere (`CAFE_BENCH_PEERS=name=/path/to/binary,…`), started in the same run
    // with the same environment. Their first call goes to real AWS endpoints and cannot succeed
    // here, so only their init counts.
    for (name, binary) in std::env::var("CAFE_BENCH_PEERS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|peer| peer.split_once('='))
    {
        eprintln!("cold start: {name} (peer)");
        let mut row = coldstart::measure(
            name,
            Path::new(binary),
            &floor_event,
            &env,
            runs,
            coldstart::Counted::AtFirstPoll,
        )
        .await?;
        row.function = format!("{name} (peer, init only)");
        rows.push(row);
    }
    for row in &rows {
        let _ = writeln!(
            report,
            "| {} | {:.2} | {} | {} | {} | {:.2}× | {} | {} |",
            row.function,
            row.binary_bytes as f64 / 1e6,
            row.init.count,
            ms(row.init.median),
            ms(row.init.p99),
            row.init.median.as_secs_f64() / floor_init,
            ms(row.first_invocation.median),
            row.failures
        );
    }
    let _ = writeln!(report);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), fixture::BoxError> {
    let args = parse_args();
    // Logs only when asked for (RUST_LOG): a log line per request would distort the timings.
    if std::env::var_os("RUST_LOG").is_some() {
        cafe::telemetry::init();
    }
    let root = workspace_root();
    let services = fixture::Services::from_env();
    if services.is_none() {
        eprintln!(
            "CAFE_BENCH_DYNAMODB_ENDPOINT / CAFE_BENCH_REDIS_URL not set: the Redis + moto parts are skipped (run scripts/bench.sh)"
        );
    }
    let scale = |full: usize| if args.quick { (full / 10).max(1) } else { full };
    let mut report = String::new();
    for scenario in &args.scenarios {
        eprintln!("== {scenario}");
        let outcome: Result<(), fixture::BoxError> = async {
            match scenario.as_str() {
                "coldstart" => {
                    if let (Some(services), Ok(table)) =
                        (&services, std::env::var("CAFE_BENCH_TABLE_NAME"))
                    {
                        fixture::ensure_table(services, &table).await?;
                    }
                    coldstart(&root, args.runs, &mut report).await?
                }
                "handler" => handler::run(scale(2_000), scale(20).max(3), &mut report).await?,
                "e2e" => match &services {
                    Some(services) => e2e::run(services, scale(30), &mut report).await?,
                    None => {
                        report.push_str("## 3. End-to-end latency\n\nSkipped: no Redis + moto.\n\n")
                    }
                },
                "contention" => contention::run(services.as_ref(), args.quick, &mut report).await?,
                "expiry" => expiry::run(services.as_ref(), args.quick, &mut report).await?,
                "lockscope" => lockscope::run(services.as_ref(), args.quick, &mut report).await?,
                other => return Err(format!("unknown scenario {other}").into()),
            }
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            eprintln!("{scenario} failed: {error}");
            let _ = writeln!(report, "## {scenario}\n\n**Failed**: {error}\n");
        }
    }
    println!("{report}");
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        std::env::consts::ARCH
    );
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let document = format!(
        "# Benchmarks\n\nMachine: {machine} ({cpu}), shared with other builds while it ran. \
         Date: {}. Commit: `{}`. Reproduce: `scripts/bench.sh` (starts Redis and moto on free \
         ports, builds every binary in release, creates the functions' table, runs \
         `target/release/bench all`); one scenario: `scripts/bench.sh e2e`. Method notes: \
         `docs/benchmarks.md`.\n\n{report}",
        date.trim(),
        commit.trim()
    );
    std::fs::write(&args.out, document)?;
    Ok(())
}
