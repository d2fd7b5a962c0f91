//! The web pages embedded in the binary (from `web/`), served from an
//! allow-list of files with explicit content types. `/setup` is the
//! first-admin page the setup link opens; `/` is the console, whose modules
//! live in `web/console/`; `/widget.js` is the customer chat widget that other
//! sites load with one script tag.
//!
//! Every file carries an ETag made from the SHA-256 that rust-embed records
//! for it, and a request whose If-None-Match names it gets 304 with no body:
//! the console's modules are `no-cache` (checked on every load, so an upgrade
//! shows at once), which without validators meant downloading all of them on
//! every reload. Bodies are compressed (gzip or brotli, as the browser
//! accepts) by tower-http's CompressionLayer on this router; the ETag is
//! weak, since the compressed bytes differ from the file's while the content
//! is the same.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::{EmbeddedFile, RustEmbed};
use tower_http::compression::CompressionLayer;

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
        .route("/setup", get(|h: HeaderMap| async move { asset("setup.html", &h) }))
        .route("/login", get(|h: HeaderMap| async move { asset("login.html", &h) }))
        .route("/widget.js", get(|h: HeaderMap| async move { widget(&h) }))
        .route(
            "/assets/{file}",
            get(|Path(file): Path<String>, h: HeaderMap| async move { asset_in("", &file, &h) }),
        )
        .route(
            "/assets/console/{file}",
            get(|Path(file): Path<String>, h: HeaderMap| async move {
                asset_in("console/", &file, &h)
            }),
        )
        .layer(CompressionLayer::new())
}

/// The console, for a signed-in agent. Anyone else is sent to the sign-in
/// page before the console loads, rather than loading it to have its first
/// request refused (a 401 in the browser's console, and a flash of an empty
/// console); the console still handles a session that ends while it is open.
async fn console(who: Result<Principal, ApiError>, h: HeaderMap) -> Response {
    match who {
        Ok(_) => asset("console.html", &h),
        Err(ApiError::Unauthorized) => Redirect::to("/login").into_response(),
        Err(e) => e.into_response(),
    }
}

/// A file of one allowed folder. The name is one plain path segment, so a
/// decoded `..%2F` or `%2F` cannot reach another folder — rust-embed reads
/// from disk in debug builds, where that would matter.
fn asset_in(folder: &str, file: &str, req: &HeaderMap) -> Response {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return StatusCode::NOT_FOUND.into_response();
    }
    asset(&format!("{folder}{file}"), req)
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
    asset(name, &HeaderMap::new())
}

fn asset(name: &str, req: &HeaderMap) -> Response {
    let (Some(file), Some(content_type)) = (Assets::get(name), content_type(name)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
    ];
    validated(&file, req, headers)
}

/// The widget script, loaded by customers' sites from their own origin: open
/// CORS and a cross-origin resource policy so that pages with COEP can load it
/// too, and a short cache so that an upgrade reaches visitors within minutes
/// (after which the ETag makes the check cheap).
/// No CSP header: it would not apply to the host page anyway, and the
/// script's behaviour is governed by the host page's policy.
fn widget(req: &HeaderMap) -> Response {
    let Some(file) = Assets::get("widget.js") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (header::CACHE_CONTROL, "public, max-age=300"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "cross-origin",
        ),
    ];
    validated(&file, req, headers)
}

/// The file with its headers and ETag, or 304 when the request's
/// If-None-Match already names that ETag. The 304 keeps the headers too, as
/// a cache refreshes its stored ones from it (RFC 9110 15.4.5).
fn validated<const N: usize>(
    file: &EmbeddedFile,
    req: &HeaderMap,
    headers: [(header::HeaderName, &'static str); N],
) -> Response {
    let tag = etag(file);
    let mut res = if matches_etag(req, &tag) {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, file.data.clone()).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// `W/"…"` of the first 16 bytes of the file's SHA-256: enough to tell
/// versions apart, half the header.
fn etag(file: &EmbeddedFile) -> String {
    let hash = file.metadata.sha256_hash();
    format!("W/\"{}\"", hex::encode(&hash[..16]))
}

/// If-None-Match uses the weak comparison: `W/` aside, the opaque tags are
/// equal; `*` matches any current file.
fn matches_etag(req: &HeaderMap, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = bare(tag);
    req.get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_known_types_are_served() {
        let none = HeaderMap::new();
        assert_eq!(asset_in("", "kefu.css", &none).status(), StatusCode::OK);
        assert_eq!(
            asset_in("console/", "main.js", &none).status(),
            StatusCode::OK
        );
        for bad in [
            "",
            ".",
            "..",
            "../Cargo.toml",
            "a/b.js",
            "..%2Fx.js",
            ".hidden.js",
        ] {
            assert_eq!(
                asset_in("", bad, &none).status(),
                StatusCode::NOT_FOUND,
                "{bad}"
            );
            assert_eq!(
                asset_in("console/", bad, &none).status(),
                StatusCode::NOT_FOUND,
                "{bad}"
            );
        }
        assert_eq!(
            asset_in("", "widget.rs", &none).status(),
            StatusCode::NOT_FOUND
        );
        let w = widget(&none);
        assert_eq!(w.status(), StatusCode::OK);
        assert_eq!(w.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(w.headers().get(header::CONTENT_SECURITY_POLICY).is_none());
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let tag = r#"W/"0123abcd""#;
        let req = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).expect("a header value"),
            );
            h
        };
        for hit in [
            r#"W/"0123abcd""#,
            r#""0123abcd""#,
            r#""other", W/"0123abcd""#,
            "*",
        ] {
            assert!(matches_etag(&req(hit), tag), "{hit}");
        }
        for miss in [r#""0123abce""#, r#"W/"0123abc""#, "", "0123abcd, x"] {
            assert!(!matches_etag(&req(miss), tag), "{miss}");
        }
        assert!(!matches_etag(&HeaderMap::new(), tag));
    }
}
