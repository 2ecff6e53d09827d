//! The project's gateway server (`cafe-pg`) for tests: built once, started on a free port with its
//! own ledger, killed with SIGKILL when dropped.
//!
//! Which `cafe-pg` runs: `$CAFE_PG_BIN` if set (it must be the binary); otherwise
//! `cargo build -p cafe-pg --message-format=json` once per test process (a no-op when fresh) and
//! the executable Cargo reports, so the current source is always what is tested and kill -9
//! reaches the server itself, not a `cargo run` wrapper. A server that cannot be built or started
//! fails the test, saying why.

use crate::gateway::HttpGateway;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The secret key `cafe-pg` accepts by default.
pub const SECRET: &str = "test_sk_cafe";

/// The `cafe-pg` binary, built once per test process.
pub fn pg_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("CAFE_PG_BIN") {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "CAFE_PG_BIN={} is not a file: build it with `cargo build -p cafe-pg`",
                path.display()
            );
            return path;
        }
        let cargo = std::env::var_os("CARGO")
            .or_else(|| option_env!("CARGO").map(Into::into))
            .unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("shared/ is in the workspace");
        let output = Command::new(&cargo)
            .args(["build", "-p", "cafe-pg", "--bin", "cafe-pg", "--message-format=json"])
            .current_dir(workspace)
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run {cargo:?} to build cafe-pg (set CAFE_PG_BIN instead): {error}")
            });
        assert!(
            output.status.success(),
            "`cargo build -p cafe-pg` failed ({}); the HTTP gateway tests need the cafe-pg binary:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| {
                message["reason"] == "compiler-artifact" && message["target"]["name"] == "cafe-pg"
            })
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no cafe-pg executable")
    })
}

pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "http-gateway-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A running `cafe-pg` on port 0; killed (SIGKILL) when dropped.
pub struct Pg {
    child: Child,
    pub base: String,
}

impl Pg {
    pub fn start(ledger: &Path, args: &[&str]) -> Pg {
        let binary = pg_binary();
        let stderr = ledger.with_extension("stderr.log");
        let mut command = Command::new(binary);
        for (name, _) in std::env::vars() {
            if name.starts_with("PG_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(["--port", "0", "--ledger"])
            .arg(ledger)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        match line.trim().strip_prefix("cafe-pg listening on ") {
            Some(base) => Pg {
                child,
                base: base.to_owned(),
            },
            None => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "cafe-pg ({}) did not start ({status:?}, stdout {line:?}); stderr:\n{}",
                    binary.display(),
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        }
    }

    pub fn gateway(&self, timeout: Duration) -> HttpGateway {
        HttpGateway::new(&self.base, SECRET, timeout).expect("gateway")
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.kill9();
    }
}
