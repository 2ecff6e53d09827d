//! Scenario 2: handler overhead on the embedded default (in-memory store, in-process lock),
//! every endpoint called through `cafe_local::dispatch` in process: no HTTP, no I/O.

use crate::caller::Caller;
use crate::endpoints::{self, EndpointTiming};
use crate::fixture::{self, BoxError};
use crate::stats::us;
use cafe::config::Argon2Params;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

const TARGET: Duration = Duration::from_micros(50);

pub async fn run(
    iterations: usize,
    hashing_iterations: usize,
    report: &mut String,
) -> Result<(), BoxError> {
    let cheap = Argon2Params::cheapest_for_tests();
    let production = Argon2Params::default();
    let (app, _) = fixture::memory_app(fixture::config(cheap, fixture::instant_gateway())).await?;
    let app = Arc::new(app);
    let caller = Caller::Dispatch(app.clone());
    // Warm-up: first-touch allocations and lazy statics are not what this measures.
    endpoints::run_plan(&caller, &app, 20).await?;
    let mut rows = endpoints::run_plan(&caller, &app, iterations).await?;
    rows.extend(endpoints::run_hashing(&caller, iterations, "cheap Argon2 (8 KiB, 1 pass)").await?);

    let (prod_app, _) =
        fixture::memory_app(fixture::config(production, fixture::instant_gateway())).await?;
    let prod_caller = Caller::Dispatch(Arc::new(prod_app));
    rows.extend(
        endpoints::run_hashing(
            &prod_caller,
            hashing_iterations,
            "production Argon2id (19 MiB, 2 passes, 1 lane)",
        )
        .await?,
    );

    let _ = writeln!(
        report,
        "## 2. Handler overhead (embedded default)\n\nEach endpoint called through \
         `cafe_local::dispatch` in process (the Lambda handler itself: parsing, auth, use case, \
         in-memory store, in-process lock, JSON answer; no HTTP), on a success path, one call at \
         a time; the mock gateway answers at once. {iterations} calls per endpoint after a \
         warm-up. Sign-up and log-in hash or verify a password: they are shown with the \
         production Argon2id parameters ({hashing_iterations} calls) and with the cheapest ones; \
         the ≤ 50 µs target applies to the other endpoints.\n"
    );
    table(report, &rows);
    Ok(())
}

fn table(report: &mut String, rows: &[EndpointTiming]) {
    let _ = writeln!(
        report,
        "| endpoint | state | calls | median (µs) | p99 (µs) | ≤ 50 µs | failed |\n|---|---|---:|---:|---:|:---:|---:|"
    );
    for row in rows {
        let hashing = row.function == "member-signup" || row.function == "auth-login";
        let verdict = if hashing {
            "n/a"
        } else if row.summary.median <= TARGET {
            "yes"
        } else {
            "**no**"
        };
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.function,
            row.note,
            row.summary.count,
            us(row.summary.median),
            us(row.summary.p99),
            verdict,
            row.failures
        );
    }
    let _ = writeln!(report);
}
