//! The H5 form channel: a form inbox's public page `/f/{slug}`, its JSON
//! twin `/api/form/v1/{slug}` (per-inbox CORS), and the customer's status
//! link `/s/{token}`. Start with [`process`]: every submission, from the
//! page or the API, passes the same checks in the same order.
//!
//! - [`settings`]: `settings.form` of the inbox, checked (also by the inbox
//!   API when an admin saves it).
//! - [`submit`]: reading a body (urlencoded, multipart, JSON) and checking
//!   every field; [`upload`]: what a file really is.
//! - [`challenge`]: the self-hosted, signed, single-use challenge.
//! - `ticket`: a checked submission becomes contact + conversation + message.
//! - `status`: the private status page and its reply box.
//! - `page`: all HTML (maud, escaped), in Chinese or English.
//! - [`api`]: the JSON endpoints and their CORS.
//!
//! Abuse handling, in order: per-IP limit, honeypot (answered like a
//! success, nothing stored), field checks, challenge (verified, then spent
//! when the ticket is stored), upload count/size/type.

pub mod api;
pub mod challenge;
mod page;
pub mod settings;
pub mod status;
pub mod submit;
mod ticket;
mod upload;

use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use kefu_core::{Inbox, InboxKind};
use page::Lang;
use settings::FormSettings;
use std::net::SocketAddr;
use submit::{Problem, Problems, Submitted};

/// Everything that stops a submission, for the page and the API alike.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("no such form")]
    NotFound,
    #[error("this link is not valid")]
    BadLink,
    #[error("this link has expired")]
    ExpiredLink,
    #[error("this link was revoked")]
    RevokedLink,
    #[error("some fields need correcting")]
    Invalid {
        problems: Problems,
        /// The challenge was answered rightly (and not spent): the page
        /// keeps it so the customer need not answer again.
        challenge_ok: bool,
    },
    #[error("too many submissions; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("request body too large")]
    TooLarge,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Api(ApiError),
}

impl From<ApiError> for FormError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::RateLimited { retry_after_secs } => {
                FormError::RateLimited { retry_after_secs }
            }
            ApiError::NotFound => FormError::NotFound,
            ApiError::PayloadTooLarge => FormError::TooLarge,
            other => FormError::Api(other),
        }
    }
}

impl From<kefu_app::AppError> for FormError {
    fn from(e: kefu_app::AppError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<kefu_store::StoreError> for FormError {
    fn from(e: kefu_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl FormError {
    /// The error as a page of its own (when the form cannot be shown again).
    fn page(self, lang: Lang) -> Response {
        let zh = lang == Lang::Zh;
        let (status, text) = match &self {
            FormError::NotFound => (
                StatusCode::NOT_FOUND,
                if zh {
                    "找不到这个表单。".to_string()
                } else {
                    "There is no such form.".into()
                },
            ),
            FormError::BadLink => (
                StatusCode::NOT_FOUND,
                if zh {
                    "这个链接无效或已失效。请使用提交表单后得到的链接。".to_string()
                } else {
                    "This link is not valid. Use the link you were given after sending the form."
                        .into()
                },
            ),
            FormError::ExpiredLink => (
                StatusCode::GONE,
                if zh {
                    "这个链接已过期。如需继续，请回复我们的邮件，或重新提交表单。".to_string()
                } else {
                    "This link has expired. To carry on, answer our email or send the form again."
                        .into()
                },
            ),
            FormError::RevokedLink => (
                StatusCode::GONE,
                if zh {
                    "这个链接已被客服停用。如果客服给了您新的链接，请使用新链接。".to_string()
                } else {
                    "This link was turned off by the support team. If they gave you a new link, use that one."
                        .into()
                },
            ),
            FormError::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                if zh {
                    format!("提交太频繁，请 {retry_after_secs} 秒后再试。")
                } else {
                    format!("Too many submissions; try again in {retry_after_secs} s.")
                },
            ),
            FormError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                if zh {
                    "提交的内容太大（文件太大或太多）。请返回，减少附件后再试。".to_string()
                } else {
                    "What you sent is too large (files too big or too many). Go back and send fewer files.".into()
                },
            ),
            FormError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            FormError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, self.to_string()),
            FormError::Api(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::error!(error = %e, "form");
                }
                (
                    status,
                    if zh {
                        "服务暂时不可用，请稍后再试。".to_string()
                    } else {
                        "Something went wrong; please try again later.".into()
                    },
                )
            }
        };
        page::error_page(lang, status, &text)
    }
}

pub fn router() -> Router<AppState> {
    // Bodies are read and limited by the handlers (per form: file count and
    // size), so the router-wide JSON limit must not cut uploads short.
    Router::new()
        .route("/f/{slug}", get(show).post(post))
        .route("/s/{token}", get(status::get).post(status::reply))
        .route("/s/{token}/files/{id}", get(status::file))
        .layer(DefaultBodyLimit::disable())
}

/// The form inbox named by `slug`, with its checked settings.
async fn load(state: &AppState, slug: &str) -> Result<(Inbox, FormSettings), FormError> {
    let (inbox, _) = state
        .store
        .inbox_by_public_token(&slug.to_ascii_lowercase())
        .await?;
    if inbox.kind != InboxKind::Form {
        return Err(FormError::NotFound);
    }
    match FormSettings::of(&inbox.settings) {
        Ok(s) => Ok((inbox, s)),
        Err(e) => {
            tracing::warn!(inbox = %inbox.id, "form settings unusable: {e}");
            Err(FormError::NotFound)
        }
    }
}

fn limits(state: &AppState, s: &FormSettings) -> submit::Limits {
    submit::Limits {
        max_files: s.max_files,
        max_file_bytes: s.max_file_bytes(state.config.max_upload_bytes),
    }
}

fn now_secs() -> i64 {
    kefu_core::time::now().timestamp()
}

/// What a submission came to.
enum Outcome {
    Ticket(ticket::Ticket),
    /// The honeypot was filled: answered like a success, nothing stored.
    Trapped,
}

/// The checks every submission passes, then the ticket. The rate limit is
/// the caller's, checked before the body is read.
async fn process(
    state: &AppState,
    inbox: &Inbox,
    settings: &FormSettings,
    s: &Submitted,
    lang: Lang,
) -> Result<Outcome, FormError> {
    if s.trapped() {
        tracing::info!(inbox = %inbox.id, "form honeypot filled; nothing stored");
        return Ok(Outcome::Trapped);
    }
    let checked = submit::check(settings, s, limits(state, settings));
    let key = challenge::key(&state.visitor_key().await?);
    let verdict = challenge::verify(
        &key,
        s.value("challenge_token"),
        s.value("challenge_answer"),
        now_secs(),
    );
    let challenge_ok = verdict.is_ok();
    let (valid, claims) = match (checked, verdict) {
        (Ok(v), Ok(c)) => (v, c),
        (checked, verdict) => {
            let mut problems = checked.err().unwrap_or_default();
            if let Err(e) = verdict {
                problems.insert("challenge_answer".into(), Problem::Challenge(e));
            }
            return Err(FormError::Invalid {
                problems,
                challenge_ok,
            });
        }
    };
    let until = kefu_core::time::from_millis(claims.e.saturating_mul(1000));
    if !state
        .app
        .spend_once(&challenge::spent_key(&claims), until)
        .await?
    {
        let problems = Problems::from([(
            "challenge_answer".into(),
            Problem::Challenge(challenge::ChallengeError::Replayed),
        )]);
        return Err(FormError::Invalid {
            problems,
            challenge_ok: false,
        });
    }
    let t = ticket::create(state, inbox, settings, &valid, lang).await?;
    Ok(Outcome::Ticket(t))
}

/// The ticket number and status URL the customer is shown. A trapped bot
/// gets a made-up number and a link that leads nowhere.
fn receipt(state: &AppState, headers: &HeaderMap, outcome: Outcome) -> (i64, String) {
    match outcome {
        Outcome::Ticket(t) => (
            t.number,
            format!("{}{}", base_url(state, headers), t.status_path),
        ),
        Outcome::Trapped => {
            let fake = 1_000 + i64::from(rand::random::<u16>());
            let token = crate::auth::new_secret();
            (fake, format!("{}/s/s1.{token}", base_url(state, headers)))
        }
    }
}

/// Where customers reach kefu: the configured public URL, else the Host
/// the request came to.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

// ------------------------------------------------------------------ pages

async fn show(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    match load(&state, &slug).await {
        Ok((inbox, settings)) => {
            form_again(
                &state,
                &inbox,
                &settings,
                &Submitted::default(),
                Problems::new(),
                false,
                None,
                lang,
            )
            .await
        }
        Err(e) => e.page(lang),
    }
}

/// `POST /f/{slug}`: the receipt, or the form again with every value the
/// customer typed and a message at each field that needs correcting.
async fn post(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let (inbox, settings) = match load(&state, &slug).await {
        Ok(found) => found,
        Err(e) => return e.page(lang),
    };
    // The limit comes first: a refused client must not make the server
    // read (and store) what it sends.
    if let Err(limited) = state.form_per_ip.check(&addr.ip()) {
        return limited_page(&state, &inbox, &settings, req, limited.into(), lang).await;
    }
    let submitted = match submit::read(req, limits(&state, &settings), &state.blobs).await {
        Ok(s) => s,
        Err(e) => return e.page(lang),
    };
    let result = process(&state, &inbox, &settings, &submitted, lang).await;
    match result {
        Ok(outcome) => {
            let title = settings.title.clone().unwrap_or_else(|| inbox.name.clone());
            let (number, url) = receipt(&state, &headers, outcome);
            page::html(
                StatusCode::OK,
                page::success_page(lang, &settings, &title, number, &url),
            )
        }
        Err(FormError::Invalid {
            problems,
            challenge_ok,
        }) => {
            form_again(
                &state,
                &inbox,
                &settings,
                &submitted,
                problems,
                challenge_ok,
                None,
                lang,
            )
            .await
        }
        Err(e) => e.page(lang),
    }
}

/// A rate-limited page submission. A small body (a form without files,
/// as a browser sends it) is read so that the form comes back with what was
/// typed; anything larger, or of unknown length, is answered without
/// reading a byte of it (the browser's back button still has the values).
async fn limited_page(
    state: &AppState,
    inbox: &Inbox,
    settings: &FormSettings,
    req: Request,
    limited: FormError,
    lang: Lang,
) -> Response {
    let small = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= submit::MAX_TEXT_BYTES);
    if !small {
        return limited.page(lang);
    }
    // No files: a file part is read through and dropped.
    let text_only = submit::Limits {
        max_files: 0,
        max_file_bytes: 0,
    };
    let submitted = submit::read(req, text_only, &state.blobs)
        .await
        .unwrap_or_default();
    let notice = limited.notice(lang);
    form_again(
        state,
        inbox,
        settings,
        &submitted,
        Problems::new(),
        false,
        Some(notice),
        lang,
    )
    .await
}

impl FormError {
    fn notice(&self, lang: Lang) -> String {
        match (self, lang) {
            (FormError::RateLimited { retry_after_secs }, Lang::Zh) => {
                format!("提交太频繁，请 {retry_after_secs} 秒后再提交。您填写的内容已保留。")
            }
            (FormError::RateLimited { retry_after_secs }, Lang::En) => format!(
                "Too many submissions; send again in {retry_after_secs} s. What you typed is kept."
            ),
            (e, _) => e.to_string(),
        }
    }
}

/// The form, with what was typed and what is wrong. A challenge answered
/// rightly is kept; otherwise a new one is asked.
#[allow(clippy::too_many_arguments)]
async fn form_again(
    state: &AppState,
    inbox: &Inbox,
    settings: &FormSettings,
    s: &Submitted,
    problems: Problems,
    challenge_ok: bool,
    notice: Option<String>,
    lang: Lang,
) -> Response {
    let key = match state.visitor_key().await {
        Ok(k) => challenge::key(&k),
        Err(e) => return FormError::from(e).page(lang),
    };
    let now = now_secs();
    let kept = challenge_ok
        .then(|| {
            challenge::verify(
                &key,
                s.value("challenge_token"),
                s.value("challenge_answer"),
                now,
            )
            .ok()
        })
        .flatten();
    let (c, answer) = match kept {
        Some(claims) => (
            challenge::shown(s.value("challenge_token"), &claims),
            s.value("challenge_answer"),
        ),
        None => (challenge::issue(&key, now), ""),
    };
    let status = match (&notice, problems.is_empty()) {
        (Some(_), _) => StatusCode::TOO_MANY_REQUESTS,
        (None, false) => StatusCode::UNPROCESSABLE_ENTITY,
        (None, true) => StatusCode::OK,
    };
    let view = page::FormView {
        inbox,
        settings,
        values: &s.values,
        problems: &problems,
        challenge: &c,
        answer,
        notice,
    };
    page::html(status, page::form_page(lang, &view))
}

// ---------------------------------------------------------- inbox admin

/// For the inbox API: a form inbox's settings are completed (slug, default
/// fields) and checked before they are stored, and the slug must not name
/// another inbox. Returns the slug to publish once the inbox is saved.
pub(crate) async fn prepare_inbox(
    state: &AppState,
    kind: InboxKind,
    settings: &mut serde_json::Value,
    id: Option<uuid::Uuid>,
) -> Result<Option<String>, ApiError> {
    if kind != InboxKind::Form {
        return Ok(None);
    }
    let FormSettings {
        slug,
        reply_email_inbox,
        ..
    } = settings::prepare(settings)?;
    crate::reply_inbox::check(state, "settings.form.reply_email_inbox", reply_email_inbox).await?;
    match state.store.inbox_by_public_token(&slug).await {
        Ok((other, _)) if Some(other.id) != id => Err(kefu_core::ValidationError::new(
            "settings.form.slug",
            format!("{slug:?} is taken by another inbox"),
        )
        .into()),
        Ok(_) | Err(kefu_store::StoreError::NotFound) => Ok(Some(slug)),
        Err(e) => Err(e.into()),
    }
}
