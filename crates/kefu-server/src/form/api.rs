//! The form as JSON, for a company's own H5 pages or a mini-program
//! web-view: the schema with a fresh challenge, and submission (JSON, or
//! multipart when there are files). CORS is per inbox: only the origins in
//! `settings.form.cors_origins` get CORS headers, preflight included; any
//! other origin gets none, so the browser keeps its page from reading the
//! answer (or, for a preflighted request, from sending it at all).

use super::page::Lang;
use super::settings::{FieldKind, FormSettings, HONEYPOT};
use super::submit::{self, Problems};
use super::{FormError, challenge, load, now_secs, process, receipt};
use crate::extract::Path;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::options;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(form_schema, submit_form))
        .routes(routes!(super::status::new_link))
        .route("/api/form/v1/{slug}", options(preflight))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

#[derive(Serialize, ToSchema)]
struct FormSchema {
    slug: String,
    title: Option<String>,
    intro: Option<String>,
    success_text: Option<String>,
    fields: Vec<SchemaField>,
    /// At least one email or phone field must be filled.
    require_email_or_phone: bool,
    max_files: u8,
    max_file_bytes: usize,
    /// Send this field empty (or not at all): a filled one marks a bot.
    honeypot: &'static str,
    challenge: challenge::Challenge,
}

#[derive(Serialize, ToSchema)]
struct SchemaField {
    name: String,
    /// In the language of `Accept-Language` for the built-in fields.
    label: String,
    #[serde(rename = "type")]
    kind: FieldKind,
    required: bool,
    options: Vec<String>,
    max_len: usize,
}

#[derive(Serialize, ToSchema)]
struct Created {
    ticket_number: i64,
    /// The customer's private link to the ticket (`/s/…`).
    status_url: String,
}

/// The form's fields and a fresh challenge.
#[utoipa::path(get, path = "/api/form/v1/{slug}", tag = "forms", params(("slug" = String, Path)),
    responses((status = 200, body = FormSchema), (status = 404)))]
async fn form_schema(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let result = async {
        let (inbox, s) = load(&state, &slug).await?;
        let key = challenge::key(&state.visitor_key().await?);
        let body = FormSchema {
            title: s.title.clone().or(Some(inbox.name)),
            fields: fields(&s, lang),
            require_email_or_phone: s.require_email_or_phone,
            max_files: s.max_files,
            max_file_bytes: s.max_file_bytes(state.config.max_upload_bytes),
            honeypot: HONEYPOT,
            challenge: challenge::issue(&key, now_secs()),
            slug: s.slug.clone(),
            intro: s.intro.clone(),
            success_text: s.success_text.clone(),
        };
        Ok::<_, FormError>((s, axum::Json(body).into_response()))
    }
    .await;
    answer(result, &headers, lang)
}

fn fields(s: &FormSettings, lang: Lang) -> Vec<SchemaField> {
    s.fields()
        .into_iter()
        .map(|f| SchemaField {
            label: lang.label(&f),
            max_len: f.max_len(),
            name: f.name,
            kind: f.kind,
            required: f.required,
            options: f.options,
        })
        .collect()
}

/// Submits the form: a flat object of field values plus `challenge_token`
/// and `challenge_answer` (the sum, or `pow:NONCE`), as JSON, or as
/// multipart with the files under their field's name.
#[utoipa::path(post, path = "/api/form/v1/{slug}", tag = "forms", params(("slug" = String, Path)),
    request_body(content = serde_json::Value, description = "`{\"name\": \"王小明\", \"email\": \"…\", \"message\": \"…\", \"challenge_token\": \"fc1.…\", \"challenge_answer\": \"7\"}`; multipart/form-data with the same names when there are files"),
    responses((status = 201, body = Created), (status = 404), (status = 413),
        (status = 422, description = "`error.fields` maps each refused field to its message"), (status = 429)))]
async fn submit_form(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let result = async {
        let (inbox, s) = load(&state, &slug).await?;
        let outcome = async {
            state.form_per_ip.check(&addr.ip())?;
            let submitted = submit::read(req, super::limits(&state, &s), &state.blobs).await?;
            process(&state, &inbox, &s, &submitted, lang).await
        }
        .await;
        let res = match outcome {
            Ok(o) => {
                let (ticket_number, status_url) = receipt(&state, &headers, o);
                (
                    StatusCode::CREATED,
                    axum::Json(Created {
                        ticket_number,
                        status_url,
                    }),
                )
                    .into_response()
            }
            Err(e) => error(e, lang),
        };
        Ok::<_, FormError>((s, res))
    }
    .await;
    answer(result, &headers, lang)
}

/// CORS preflight: the allowed origin gets the methods and headers it may
/// use; any other gets no CORS headers at all.
async fn preflight(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let (Some(origin), Ok((_, s))) = (origin(&headers), load(&state, &slug).await)
        && s.allows_origin(&origin)
    {
        let h = res.headers_mut();
        allow(h, &origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("3600"),
        );
    }
    vary(res)
}

fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
}

fn allow(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
}

/// Answers differ by Origin: caches must keep them apart.
fn vary(mut res: Response) -> Response {
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    res
}

/// The response, with CORS headers when the form allows the caller's origin.
fn answer(
    result: Result<(FormSettings, Response), FormError>,
    headers: &HeaderMap,
    lang: Lang,
) -> Response {
    match result {
        Ok((s, mut res)) => {
            if let Some(o) = origin(headers).filter(|o| s.allows_origin(o)) {
                allow(res.headers_mut(), &o);
            }
            vary(res)
        }
        Err(e) => vary(error(e, lang)),
    }
}

/// The API's error shape, plus `fields` (name → message) for a 422.
fn error(e: FormError, lang: Lang) -> Response {
    let e = match e {
        FormError::Api(api) => return api.into_response(),
        e => e,
    };
    let (status, code) = match &e {
        FormError::NotFound | FormError::BadLink => (StatusCode::NOT_FOUND, "not_found"),
        FormError::ExpiredLink | FormError::RevokedLink => (StatusCode::GONE, "gone"),
        FormError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        FormError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        FormError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        FormError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        FormError::Api(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let mut body = json!({ "error": { "code": code, "message": e.to_string() } });
    if let FormError::Invalid { problems, .. } = &e {
        body["error"]["fields"] = json!(worded(problems, lang));
    }
    let mut res = (status, axum::Json(body)).into_response();
    if let FormError::RateLimited { retry_after_secs } = e
        && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn worded(problems: &Problems, lang: Lang) -> BTreeMap<String, String> {
    problems
        .iter()
        .map(|(k, p)| (k.clone(), lang.problem(p)))
        .collect()
}
