//! What `sam build` packages is what deploys: every function's `bootstrap` in `.aws-sam/build`.
//! None may contain the crash tests' fault-injection hook (`CAFE_PAUSE_AT`, which stops a process
//! for good at a named step): the feature is off in every build but the crash test's own, and a
//! release build with it does not compile (`cafe::fault`). Run by scripts/test.sh after
//! `sam build`, with `CAFE_SAM_BUILD_DIR` naming the build directory.

mod template;

use std::path::PathBuf;

/// What the hook's code carries: the variable it reads and the line it prints when it stops.
const HOOK_MARKERS: [&[u8]; 2] = [b"CAFE_PAUSE_AT", b"CAFE_PAUSED_AT"];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_marker_search_finds_the_hook_where_it_is() {
    // The search itself, on a binary that does carry the markers.
    let with_hook = [b"\x7fELF....".as_slice(), b"CAFE_PAUSE_AT", b"\0\0"].concat();
    assert!(HOOK_MARKERS.iter().any(|m| contains(&with_hook, m)));
    assert!(
        !HOOK_MARKERS
            .iter()
            .any(|m| contains(b"\x7fELF CAFE_PAUSE", m))
    );
}

#[test]
#[ignore = "needs `sam build` output: scripts/test.sh sets CAFE_SAM_BUILD_DIR"]
fn no_packaged_bootstrap_contains_the_fault_injection_hook() {
    let dir = PathBuf::from(
        std::env::var("CAFE_SAM_BUILD_DIR").expect("CAFE_SAM_BUILD_DIR names .aws-sam/build"),
    );
    let template = template::template();
    let functions = template::functions(&template);
    let mut checked = 0;
    let mut carrying = Vec::new();
    for (binary, (logical, _)) in &functions {
        let bootstrap = dir.join(logical).join("bootstrap");
        let bytes = std::fs::read(&bootstrap)
            .unwrap_or_else(|e| panic!("{binary}: {} not packaged: {e}", bootstrap.display()));
        assert!(bytes.len() > 1_000_000, "{binary}: a real binary");
        checked += 1;
        for marker in HOOK_MARKERS {
            if contains(&bytes, marker) {
                carrying.push(format!("{binary} ({})", String::from_utf8_lossy(marker)));
            }
        }
    }
    assert_eq!(checked, functions.len());
    assert!(checked >= 23, "every function packaged: {checked}");
    assert!(
        carrying.is_empty(),
        "deployable binaries carrying the fault-injection hook: {carrying:?}"
    );
}
