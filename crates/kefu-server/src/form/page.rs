//! The form's HTML: the form, the receipt after submitting, the status
//! page and the error page. Rendered on the server with `maud`, which
//! escapes every interpolated value, so nothing a customer or an admin
//! typed can become markup. Mobile-first, no JavaScript needed
//! (`/assets/form.js` only solves the challenge, disables the button
//! while sending and shows the status page's times in the reader's time
//! zone), in Chinese or English after `Accept-Language`.

use super::challenge::Challenge;
use super::settings::{Field, FieldKind, FormSettings, HONEYPOT};
use super::submit::{Problem, Problems};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kefu_core::{Conversation, ConversationStatus, Direction, Inbox, Message};
use maud::{DOCTYPE, Markup, html};
use std::collections::BTreeMap;

/// Forms post only to themselves; nothing loads from elsewhere; no page
/// may frame them (clickjacking).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// The first of zh/en in the order of the browser's preference; Chinese
    /// when neither is named.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut tags: Vec<(f32, &str)> = accept
            .split(',')
            .map(|part| {
                let mut it = part.split(';');
                let tag = it.next().unwrap_or_default().trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1.0);
                (q, tag)
            })
            .collect();
        tags.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, tag) in tags {
            let tag = tag.to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Lang::Zh;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::Zh
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn colon(self) -> &'static str {
        self.t("：", ": ")
    }

    pub fn file_word(self) -> &'static str {
        self.t("附件", "File")
    }

    /// The admin's label, else the built-in one for the usual names.
    pub fn label(self, f: &Field) -> String {
        if let Some(l) = &f.label {
            return l.clone();
        }
        let builtin = match f.name.as_str() {
            "name" => Some(self.t("姓名", "Name")),
            "email" => Some(self.t("邮箱", "Email")),
            "phone" => Some(self.t("手机号", "Phone")),
            "message" => Some(self.t("问题描述", "How can we help?")),
            _ => None,
        };
        builtin.map_or_else(|| f.name.clone(), str::to_string)
    }

    pub fn problem(self, p: &Problem) -> String {
        use super::challenge::ChallengeError as C;
        match (self, p) {
            (Lang::Zh, Problem::Required) => "必填".into(),
            (Lang::En, Problem::Required) => "Required".into(),
            (Lang::Zh, Problem::TooLong(n)) => format!("太长了：最多 {n} 个字"),
            (Lang::En, Problem::TooLong(n)) => format!("Too long: at most {n} characters"),
            (Lang::Zh, Problem::NotEmail) => "邮箱地址格式不对".into(),
            (Lang::En, Problem::NotEmail) => "Not an email address".into(),
            (Lang::Zh, Problem::NotPhone) => "手机号格式不对".into(),
            (Lang::En, Problem::NotPhone) => "Not a phone number".into(),
            (Lang::Zh, Problem::NotAnOption) => "请从选项中选择".into(),
            (Lang::En, Problem::NotAnOption) => "Choose one of the options".into(),
            (Lang::Zh, Problem::EmailOrPhone) => "请填写邮箱或手机号，方便我们联系您".into(),
            (Lang::En, Problem::EmailOrPhone) => {
                "Give an email or a phone number so we can reach you".into()
            }
            (Lang::Zh, Problem::TooManyFiles(n)) => format!("最多上传 {n} 个文件"),
            (Lang::En, Problem::TooManyFiles(n)) => format!("At most {n} files"),
            (Lang::Zh, Problem::FileTooLarge(b)) => {
                format!("文件太大：每个最多 {} MB", b / (1024 * 1024))
            }
            (Lang::En, Problem::FileTooLarge(b)) => {
                format!("File too large: at most {} MB each", b / (1024 * 1024))
            }
            (Lang::Zh, Problem::FileType) => {
                "不支持的文件类型（可上传图片、PDF、文本、Office 文档）".into()
            }
            (Lang::En, Problem::FileType) => {
                "File type not accepted (pictures, PDF, text, Office documents)".into()
            }
            (Lang::Zh, Problem::Unknown) => "表单中没有这一项".into(),
            (Lang::En, Problem::Unknown) => "Not a field of this form".into(),
            (Lang::Zh, Problem::NotText) => "请填写文字".into(),
            (Lang::En, Problem::NotText) => "Must be text".into(),
            (Lang::Zh, Problem::Challenge(C::Missing)) => "请回答验证题".into(),
            (Lang::En, Problem::Challenge(C::Missing)) => "Answer the check question".into(),
            (Lang::Zh, Problem::Challenge(C::Wrong)) => "验证题答案不对，请再试一次".into(),
            (Lang::En, Problem::Challenge(C::Wrong)) => {
                "Wrong answer to the check question; try again".into()
            }
            (Lang::Zh, Problem::Challenge(C::Expired)) => "验证题已过期，请回答新的题目".into(),
            (Lang::En, Problem::Challenge(C::Expired)) => {
                "The check question expired; answer the new one".into()
            }
            (Lang::Zh, Problem::Challenge(C::Replayed)) => {
                "这份表单已经提交过了；如需再次提交，请回答新的验证题".into()
            }
            (Lang::En, Problem::Challenge(C::Replayed)) => {
                "This form was sent already; answer the new question to send again".into()
            }
        }
    }

    fn status(self, s: ConversationStatus) -> &'static str {
        match s {
            ConversationStatus::Open => self.t("处理中", "Open"),
            ConversationStatus::Pending => self.t("等待您的回复", "Waiting for you"),
            ConversationStatus::Snoozed => self.t("处理中", "Open"),
            ConversationStatus::Resolved => self.t("已解决", "Resolved"),
            ConversationStatus::Closed => self.t("已关闭", "Closed"),
        }
    }
}

/// A page with the headers every form page has.
pub fn html(status: StatusCode, body: Markup) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // A page holds a one-time challenge or a private ticket.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

fn layout(lang: Lang, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover";
                meta name="format-detection" content="telephone=no";
                title { (title) }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/form.css";
            }
            body.kf-form {
                main.sheet { (content) }
                script src="/assets/form.js" defer {}
            }
        }
    }
}

/// What the form page shows: the settings, what was typed, what is wrong.
pub struct FormView<'a> {
    pub inbox: &'a Inbox,
    pub settings: &'a FormSettings,
    pub values: &'a BTreeMap<String, String>,
    pub problems: &'a Problems,
    pub challenge: &'a Challenge,
    /// The answer kept when the challenge was right but a field was not.
    pub answer: &'a str,
    /// A message above the form (rate limit, body too large).
    pub notice: Option<String>,
}

pub fn form_page(lang: Lang, v: &FormView) -> Markup {
    let title = v
        .settings
        .title
        .clone()
        .unwrap_or_else(|| v.inbox.name.clone());
    let enctype = if v.settings.has_files() {
        "multipart/form-data"
    } else {
        "application/x-www-form-urlencoded"
    };
    let action = format!("/f/{}", v.settings.slug);
    layout(
        lang,
        &title,
        html! {
            h1 { (title) }
            @if let Some(intro) = &v.settings.intro { p.intro { (intro) } }
            @if let Some(n) = &v.notice { p.notice role="alert" { (n) } }
            @if !v.problems.is_empty() {
                p.notice role="alert" { (lang.t("请修改标出的内容后再提交。", "Please correct the marked fields and send again.")) }
            }
            form method="post" action=(action) enctype=(enctype) {
                @for f in v.settings.fields() { (field(lang, &f, v)) }
                (honeypot(lang))
                (challenge(lang, v))
                button type="submit" { (lang.t("提交", "Send")) }
            }
        },
    )
}

fn field(lang: Lang, f: &Field, v: &FormView) -> Markup {
    let id = format!("f-{}", f.name);
    let value = v.values.get(&f.name).map_or("", String::as_str);
    let problem = v.problems.get(&f.name);
    let err_id = format!("{id}-error");
    let invalid = problem.is_some().then_some("true");
    let described = problem.is_some().then_some(err_id.as_str());
    html! {
        div.field.invalid[problem.is_some()] {
            label for=(id) {
                (lang.label(f))
                @if f.required { span.req aria-hidden="true" { " *" } }
            }
            @match f.kind {
                FieldKind::Textarea => {
                    textarea id=(id) name=(f.name) rows="5" maxlength=(f.max_len()) required[f.required] aria-invalid=[invalid] aria-describedby=[described] { (value) }
                }
                FieldKind::Select => {
                    select id=(id) name=(f.name) required[f.required] aria-invalid=[invalid] aria-describedby=[described] {
                        option value="" { (lang.t("请选择", "Choose…")) }
                        @for o in &f.options { option value=(o) selected[o == value] { (o) } }
                    }
                }
                FieldKind::File => {
                    input id=(id) type="file" name=(f.name) multiple accept="image/*,.pdf,.txt,.doc,.docx,.xls,.xlsx,.zip" required[f.required] aria-invalid=[invalid] aria-describedby=[described];
                }
                kind => {
                    input id=(id) name=(f.name) value=(value) maxlength=(f.max_len()) required[f.required]
                        type=(input_type(kind)) inputmode=[input_mode(kind)] autocomplete=[autocomplete(f)]
                        aria-invalid=[invalid] aria-describedby=[described];
                }
            }
            @if f.kind == FieldKind::File && problem.is_none() && !v.problems.is_empty() {
                p.hint { (lang.t("如有附件，请重新选择。", "Please choose your files again.")) }
            }
            @if let Some(p) = problem { p.error id=(err_id) { (lang.problem(p)) } }
        }
    }
}

fn input_type(k: FieldKind) -> &'static str {
    match k {
        FieldKind::Email => "email",
        FieldKind::Phone => "tel",
        _ => "text",
    }
}

fn input_mode(k: FieldKind) -> Option<&'static str> {
    match k {
        FieldKind::Email => Some("email"),
        FieldKind::Phone => Some("tel"),
        _ => None,
    }
}

fn autocomplete(f: &Field) -> Option<&'static str> {
    match (f.kind, f.name.as_str()) {
        (FieldKind::Email, _) => Some("email"),
        (FieldKind::Phone, _) => Some("tel"),
        (FieldKind::Text, "name") => Some("name"),
        _ => None,
    }
}

/// Off-screen for people (and screen readers are told to skip it); bots
/// that fill every input fill this one too.
fn honeypot(lang: Lang) -> Markup {
    html! {
        div.hp aria-hidden="true" {
            label for="f-website" { (lang.t("请勿填写此项", "Leave this empty")) }
            input id="f-website" type="text" name=(HONEYPOT) tabindex="-1" autocomplete="off" value="";
        }
    }
}

fn challenge(lang: Lang, v: &FormView) -> Markup {
    let c = v.challenge;
    let problem = v.problems.get("challenge_answer");
    html! {
        div.field.challenge.invalid[problem.is_some()] data-pow-bits=(c.pow_bits) {
            input type="hidden" name="challenge_token" value=(c.token);
            label for="f-challenge" { (lang.t("验证：", "Check: ")) (c.question) " = ?" }
            input id="f-challenge" name="challenge_answer" value=(v.answer) inputmode="numeric" autocomplete="off" required;
            @if let Some(p) = problem { p.error { (lang.problem(p)) } }
        }
    }
}

/// The receipt: the ticket number and the private link.
pub fn success_page(
    lang: Lang,
    settings: &FormSettings,
    title: &str,
    number: i64,
    status_url: &str,
) -> Markup {
    layout(
        lang,
        title,
        html! {
            div.done {
                h1 { (lang.t("提交成功", "Sent")) }
                p.ticket { (lang.t("工单号", "Ticket number")) " " strong #ticket-number { "#" (number) } }
                @if let Some(t) = &settings.success_text { p { (t) } }
                p { (lang.t("收藏下面的链接，可随时查看回复并继续沟通（请勿分享给他人）：",
                            "Keep this link to read our replies and write back (do not share it):")) }
                p.link { a #status-link href=(status_url) { (status_url) } }
            }
        },
    )
}

pub struct StatusView<'a> {
    pub token: &'a str,
    pub inbox: &'a Inbox,
    pub conversation: &'a Conversation,
    pub messages: &'a [Message],
    pub draft: &'a str,
    pub problem: Option<Problem>,
}

pub fn status_page(lang: Lang, v: &StatusView) -> Markup {
    let c = v.conversation;
    let title = format!("#{} · {}", c.number, v.inbox.name);
    let last = v.messages.len().saturating_sub(1);
    layout(
        lang,
        &title,
        html! {
            h1 { (lang.t("工单", "Ticket")) " #" (c.number) }
            p.state { (lang.t("状态：", "Status: ")) span.badge #ticket-status { (lang.status(c.status)) } }
            @if let Some(s) = &c.subject { p.muted { (s) } }
            ol.thread {
                @for (i, m) in v.messages.iter().enumerate() {
                    li class=(bubble(m.direction)) id=[(i == last).then_some("latest")] {
                        div.who { (who(lang, m.direction)) " · " (super::status::message_time(lang, m.created_at)) }
                        div.text { (m.text) }
                        @for a in &m.attachments {
                            div.file { a href=(format!("/s/{}/files/{}", v.token, a.id)) { "📎 " (a.filename) } }
                        }
                    }
                }
            }
            form.reply method="post" action=(format!("/s/{}", v.token)) {
                label for="f-reply" { (lang.t("继续留言", "Write a reply")) }
                textarea id="f-reply" name="text" rows="4" maxlength=(super::status::MAX_REPLY_CHARS) required { (v.draft) }
                @if let Some(p) = &v.problem { p.error role="alert" { (lang.problem(p)) } }
                button type="submit" { (lang.t("发送", "Send")) }
            }
            p.muted { a href=(format!("/s/{}", v.token)) { (lang.t("刷新查看新回复", "Reload for new replies")) } }
        },
    )
}

fn bubble(d: Direction) -> &'static str {
    match d {
        Direction::Incoming => "msg mine",
        Direction::System => "msg system",
        _ => "msg theirs",
    }
}

fn who(lang: Lang, d: Direction) -> &'static str {
    match d {
        Direction::Incoming => lang.t("我", "Me"),
        Direction::System => lang.t("系统", "System"),
        _ => lang.t("客服", "Support"),
    }
}

/// A refusal the customer can understand.
pub fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let title = lang.t("出错了", "Something went wrong");
    html(
        status,
        layout(
            lang,
            title,
            html! {
                div.done.failed {
                    h1 { (title) }
                    p #error-message { (message) }
                }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(accept: &str) -> Lang {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(accept).unwrap(),
        );
        Lang::from_headers(&h)
    }

    #[test]
    fn language_follows_the_browser() {
        assert_eq!(lang("en-US,en;q=0.9"), Lang::En);
        assert_eq!(lang("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(lang("en;q=0.5, zh-TW;q=0.8"), Lang::Zh);
        assert_eq!(lang("fr-FR, en;q=0.7"), Lang::En);
        assert_eq!(lang("fr"), Lang::Zh);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::Zh);
    }
}
