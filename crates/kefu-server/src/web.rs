//! The web pages embedded in the binary (from `web/`), served from an
//! allow-list of files with explicit content types. `/setup` is the
//! first-admin page the setup link opens; `/` is the console, whose modules
//! live in `web/console/`; `/widget.js` is the customer chat widget that other
//! sites load with one script tag.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Assets;

/// kefu's own pages may load only from kefu; the console talks to its own
/// origin over fetch and WebSocket (`'self'` covers ws: and wss:).
const PAGE_CSP: &str =
    "default-src 'self'; img-src 'self' data: https:; style-src 'self'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(console))
        .route("/setup", get(|| async { asset("setup.html") }))
        .route("/login", get(|| async { asset("login.html") }))
        .route("/widget.js", get(|| async { widget() }))
        .route(
            "/assets/{file}",
            get(|Path(file): Path<String>| async move { asset_in("", &file) }),
        )
        .route(
            "/assets/console/{file}",
            get(|Path(file): Path<String>| async move { asset_in("console/", &file) }),
        )
}

/// The console, for a signed-in agent. Anyone else is sent to the sign-in
/// page before the console loads, rather than loading it to have its first
/// request refused (a 401 in the browser's console, and a flash of an empty
/// console); the console still handles a session that ends while it is open.
async fn console(who: Result<Principal, ApiError>) -> Response {
    match who {
        Ok(_) => asset("console.html"),
        Err(ApiError::Unauthorized) => Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

/// A file of one allowed folder. The name is one plain path segment, so a
/// decoded `..%2F` or `%2F` cannot reach another folder — rust-embed reads
/// from disk in debug builds, where that would matter.
fn asset_in(folder: &str, file: &str) -> Response {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return StatusCode::NOT_FOUND.into_response();
    }
    asset(&format!("{folder}{file}"))
}

fn content_type(name: &str) -> Option<&'static str> {
    Some(match name.rsplit('.').next()? {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

/// One of the embedded pages, for routes outside this module.
pub(crate) fn page(name: &str) -> Response {
    asset(name)
}

fn asset(name: &str) -> Response {
    let (Some(file), Some(content_type)) = (Assets::get(name), content_type(name)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
        ],
        file.data,
    )
        .into_response()
}

/// The widget script, loaded by customers' sites from their own origin: open
/// CORS and a cross-origin resource policy so that pages with COEP can load it
/// too, and a short cache so that an upgrade reaches visitors within minutes.
/// No CSP header: it would not apply to the host page anyway, and the
/// script's behaviour is governed by the host page's policy.
fn widget() -> Response {
    let Some(file) = Assets::get("widget.js") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
        ],
        file.data,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_known_types_are_served() {
        assert_eq!(asset_in("", "kefu.css").status(), StatusCode::OK);
        assert_eq!(asset_in("console/", "main.js").status(), StatusCode::OK);
        for bad in [
            "",
            ".",
            "..",
            "../Cargo.toml",
            "a/b.js",
            "..%2Fx.js",
            ".hidden.js",
        ] {
            assert_eq!(asset_in("", bad).status(), StatusCode::NOT_FOUND, "{bad}");
            assert_eq!(
                asset_in("console/", bad).status(),
                StatusCode::NOT_FOUND,
                "{bad}"
            );
        }
        assert_eq!(asset_in("", "widget.rs").status(), StatusCode::NOT_FOUND);
        let w = widget();
        assert_eq!(w.status(), StatusCode::OK);
        assert_eq!(w.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(w.headers().get(header::CONTENT_SECURITY_POLICY).is_none());
    }
}
