//! `reply_email_inbox` in a form's or a widget's settings
//! (`settings.form.reply_email_inbox`, `settings.widget.reply_email_inbox`):
//! the email inbox through which a form or widget inbox also answers its
//! customers by mail. kefu-mail sends the replies through it and threads the
//! customers' answers back; here the link is checked when an inbox is saved,
//! the same way for both kinds.

use crate::error::ApiResult;
use crate::state::AppState;
use kefu_core::{Inbox, InboxKind, ValidationError};
use serde_json::Value;
use uuid::Uuid;

const WIDGET_FIELD: &str = "settings.widget.reply_email_inbox";

/// Refuses a link that does not name an email inbox, naming `field`.
pub(crate) async fn check(state: &AppState, field: &str, reply: Option<Uuid>) -> ApiResult<()> {
    let Some(reply) = reply else {
        return Ok(());
    };
    let named = match state.store.inbox(reply).await {
        Ok(i) => Some(i),
        Err(kefu_store::StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    if named.is_some_and(|i| i.kind == InboxKind::Email) {
        Ok(())
    } else {
        Err(ValidationError::new(field, "must be the id of an email inbox").into())
    }
}

/// A widget inbox's link; absent or null is none. (A form's is parsed with
/// the rest of `settings.form`.)
fn widget_link(settings: &Value) -> Result<Option<Uuid>, ValidationError> {
    match settings.pointer("/widget/reply_email_inbox") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| ValidationError::new(WIDGET_FIELD, "must be the id of an email inbox")),
    }
}

/// Before a widget inbox's settings are stored: its link, if any, names an
/// email inbox.
pub(crate) async fn prepare_widget(
    state: &AppState,
    kind: InboxKind,
    settings: &Value,
) -> ApiResult<()> {
    if kind != InboxKind::Widget {
        return Ok(());
    }
    check(state, WIDGET_FIELD, widget_link(settings)?).await
}

/// Whether agents' replies in this widget inbox also reach customers who
/// left an address by mail: it is linked to an email inbox that has a relay
/// to send through. The widget promises email follow-up only then.
pub(crate) async fn email_follow_up(state: &AppState, widget: &Inbox) -> bool {
    let Ok(Some(id)) = widget_link(&widget.settings) else {
        return false;
    };
    match state.store.inbox(id).await {
        Ok(email) => {
            email.kind == InboxKind::Email
                && email
                    .settings
                    .pointer("/email/smtp")
                    .is_some_and(Value::is_object)
        }
        Err(e) => {
            if !matches!(e, kefu_store::StoreError::NotFound) {
                tracing::warn!(error = %e, "reading a widget's linked email inbox");
            }
            false
        }
    }
}
