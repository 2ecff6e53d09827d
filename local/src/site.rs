//! The web screens (`site/`: the customer's `index.html`, the barista's `board.html`, the pickup
//! `display.html`) served as static files beside the API, so `cargo run -p cafe-local` shows the
//! whole cafe at `http://127.0.0.1:3000/`. A `GET` or `HEAD` that matches no API route is looked
//! up here; a path that is not a plain file name below the site directory (`..`, `%`,
//! backslashes, hidden files) is never read. The directory is `site/` at the repository root
//! (found from this crate's `CARGO_MANIFEST_DIR`), or `CAFE_SITE_DIR` when set.

use lambda_http::{Body, Response};
use std::path::{Path, PathBuf};

/// The variable that overrides where the site's files are read from.
pub const SITE_DIR_VAR: &str = "CAFE_SITE_DIR";

/// `CAFE_SITE_DIR`, else the repository's `site/`.
pub fn site_dir() -> PathBuf {
    match std::env::var_os(SITE_DIR_VAR).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../site"),
    }
}

/// The content type of a file the site serves, by its extension; `None` for any other file.
pub fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

/// The file below the site directory a request path names (`/` is `index.html`), or `None`
/// when the path could name anything outside it or a file the site does not serve.
pub fn relative_path(path: &str) -> Option<String> {
    let path = path.strip_prefix('/')?;
    let path = if path.is_empty() { "index.html" } else { path };
    let safe = path.split('/').all(|segment| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    });
    (safe && content_type(path).is_some()).then(|| path.to_owned())
}

/// The file `path` names under `dir`, as a response; `None` when there is no such file (the
/// caller answers its usual 404).
pub async fn serve(dir: &Path, path: &str, head: bool) -> Option<Response<Body>> {
    let relative = relative_path(path)?;
    let content_type = content_type(&relative)?;
    let root = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || dir.canonicalize()
    });
    let root = root.await.ok()?.ok()?;
    let file = root.join(&relative);
    let bytes = tokio::task::spawn_blocking(move || {
        // Belt and braces: whatever the name, nothing outside the directory (a symlink) is read.
        let real = file.canonicalize().ok()?;
        if !real.starts_with(&root) || !real.is_file() {
            return None;
        }
        std::fs::read(real).ok()
    })
    .await
    .ok()??;
    let length = bytes.len();
    let body = if head {
        Body::Empty
    } else {
        Body::Binary(bytes)
    };
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, length)
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(body)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_below_the_site_are_served() {
        assert_eq!(relative_path("/").as_deref(), Some("index.html"));
        assert_eq!(relative_path("/board.html").as_deref(), Some("board.html"));
        assert_eq!(relative_path("/js/api.js").as_deref(), Some("js/api.js"));
        for bad in [
            "/../Cargo.toml",
            "/js/../../secret.html",
            "/%2e%2e/x.html",
            "/.git/config",
            "/js//api.js",
            "/a\\b.html",
            "/Cargo.toml",
            "relative.html",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("a.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type("a.html"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type("a.css"), Some("text/css; charset=utf-8"));
        assert_eq!(content_type("a.rs"), None);
    }
}
