//! Pause points: named steps where a crash test stops a process (only with the cargo feature
//! `fault-injection`; without it every point compiles to nothing).
//!
//! The feature is for debug builds of the crash test only (`cargo test -p cafe-local --features
//! fault-injection --test crash_payments`): a release build with it is refused at compile time,
//! so no binary built for deployment can contain the hook, whatever the features unify to.

#[cfg(all(feature = "fault-injection", not(debug_assertions)))]
compile_error!(
    "the fault-injection hook (CAFE_PAUSE_AT) is for debug test builds only; a release build \
     never contains it: build without the `fault-injection` feature"
);

/// Fault injection for the crash tests (cargo feature `fault-injection`, which only the crash
/// test's build of cafe-local turns on; everywhere else this is a no-op). With
/// `CAFE_PAUSE_AT=<point>[,<point>…]`, a process that reaches `point` prints
/// `CAFE_PAUSED_AT <point>` on stderr and stops there for good, so a test can `kill -9` it at
/// exactly that step. Points: `payment:locked`, `payment:charged:<n>`, `payment:committed`,
/// `refund:refunded:<n>`, `cancel:committed`.
#[cfg(feature = "fault-injection")]
pub fn pause_point(point: &str) {
    static POINTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let points = POINTS.get_or_init(|| {
        std::env::var("CAFE_PAUSE_AT")
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
            .unwrap_or_default()
    });
    if points.iter().any(|p| p == point) {
        use std::io::Write;
        let mut stderr = std::io::stderr();
        let _ = writeln!(stderr, "CAFE_PAUSED_AT {point}");
        let _ = stderr.flush();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn pause_point(_point: &str) {}
