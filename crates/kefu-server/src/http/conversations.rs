//! Conversations (tickets) and their messages. An agent who is not a member
//! of a conversation's inbox gets 404 for it everywhere, by id or by filter.

use super::{Paged, page_limit};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kefu_app::Target;
use kefu_core::{
    Conversation, ConversationPatch, ConversationStatus, Message, MessagePreview, NewConversation,
    NewMessage,
};
use kefu_store::ConversationFilter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(counts))
        .routes(routes!(get_one, update))
        .routes(routes!(assign))
        .routes(routes!(set_status))
        .routes(routes!(add_tags))
        .routes(routes!(remove_tag))
        .routes(routes!(list_messages, add_message))
        .routes(routes!(merge))
        .routes(routes!(mark_read))
}

#[derive(Deserialize, IntoParams)]
struct ListQuery {
    status: Option<ConversationStatus>,
    /// An agent id, or `none` for unassigned conversations.
    assignee_id: Option<String>,
    inbox_id: Option<Uuid>,
    team_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    tag: Option<String>,
    /// Text contained in the subject or any message.
    q: Option<String>,
    cursor: Option<String>,
    /// 1–100, default 25.
    limit: Option<usize>,
}

/// Conversations the caller may see, most recent activity first.
/// A conversation in a list, with the caller's unread count.
#[derive(Serialize, ToSchema)]
struct ConversationItem {
    #[serde(flatten)]
    conversation: Conversation,
    /// Incoming messages after the caller's read position.
    unread: i64,
    /// The latest message that is not a system line.
    last_message: Option<MessagePreview>,
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ListQuery), responses((status = 200, body = Paged<ConversationItem>)))]
async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Paged<ConversationItem>>> {
    let assignee = match q.assignee_id.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(s) => Some(Some(Uuid::try_parse(s).map_err(|_| {
            ApiError::BadRequest("assignee_id: an agent id or `none`".into())
        })?)),
    };
    let filter = ConversationFilter {
        status: q.status,
        assignee,
        inbox_id: q.inbox_id,
        team_id: q.team_id,
        contact_id: q.contact_id,
        tag: q.tag,
        q: q.q.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        cursor: q.cursor,
        limit: page_limit(q.limit),
    };
    let page = state
        .store
        .list_conversations(who.visibility(), &filter)
        .await?;
    let ids: Vec<Uuid> = page.items.iter().map(|c| c.id).collect();
    let (unread, mut last) = tokio::try_join!(
        state.store.unread_counts(who.agent.id, &ids),
        state.store.last_messages(&ids)
    )?;
    let items = page
        .items
        .into_iter()
        .map(|c| ConversationItem {
            unread: unread.get(&c.id).copied().unwrap_or(0),
            last_message: last.remove(&c.id),
            conversation: c,
        })
        .collect();
    Ok(axum::Json(Paged {
        items,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
struct CountQuery {
    /// Count only conversations of this status; every status when absent.
    status: Option<ConversationStatus>,
}

/// How many conversations each of the console's views holds.
#[derive(Serialize, ToSchema)]
struct ViewCounts {
    /// Assigned to the caller.
    mine: i64,
    unassigned: i64,
    /// Every conversation the caller may see.
    all: i64,
    /// By inbox id.
    inboxes: BTreeMap<String, i64>,
    /// By tag name.
    tags: BTreeMap<String, i64>,
    /// By status: the waiting ones (open, pending, snoozed) always, and
    /// `status` when asked for; every status when `status` is absent.
    statuses: BTreeMap<String, i64>,
}

/// The sidebar's badges: conversations per view (of one status, usually
/// `open`: the ones waiting for someone), among those the caller may see.
/// The console asks again when a conversation event arrives, so the badges
/// follow new, assigned and resolved conversations.
#[utoipa::path(get, path = "/api/v1/conversations/counts", tag = "conversations", params(CountQuery), responses((status = 200, body = ViewCounts)))]
async fn counts(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<CountQuery>,
) -> ApiResult<axum::Json<ViewCounts>> {
    use ConversationStatus::{Open, Pending, Snoozed};
    let counted: Vec<ConversationStatus> = match q.status {
        None => Vec::new(),
        Some(s) if [Open, Pending, Snoozed].contains(&s) => vec![Open, Pending, Snoozed],
        Some(s) => vec![Open, Pending, Snoozed, s],
    };
    let all = state
        .store
        .conversation_counts(who.visibility(), &counted)
        .await?;
    let wanted = |s: ConversationStatus| q.status.is_none_or(|w| w == s);
    let shown = if counted.is_empty() {
        ConversationStatus::ALL
    } else {
        &counted[..]
    };
    let mut out = ViewCounts {
        mine: 0,
        unassigned: 0,
        all: 0,
        inboxes: BTreeMap::new(),
        tags: BTreeMap::new(),
        statuses: shown.iter().map(|s| (s.as_str().to_string(), 0)).collect(),
    };
    for g in &all.groups {
        *out.statuses.entry(g.status.as_str().into()).or_default() += g.count;
        if !wanted(g.status) {
            continue;
        }
        out.all += g.count;
        match g.assignee_id {
            None => out.unassigned += g.count,
            Some(a) if a == who.agent.id => out.mine += g.count,
            Some(_) => {}
        }
        *out.inboxes.entry(g.inbox_id.to_string()).or_default() += g.count;
    }
    for t in all.tags.iter().filter(|t| wanted(t.status)) {
        *out.tags.entry(t.tag.clone()).or_default() += t.count;
    }
    Ok(axum::Json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadUpTo {
    /// The sequence number of the newest message the agent has seen.
    seq: i64,
}

/// Records that the caller has read the conversation up to `seq`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "conversations", params(("id" = Uuid, Path)), request_body = ReadUpTo, responses((status = 204), (status = 404)))]
async fn mark_read(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<ReadUpTo>,
) -> ApiResult<StatusCode> {
    state.app.mark_read(&who.actor(), id, body.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct Created {
    conversation: Conversation,
    message: Option<Message>,
}

/// Opens a conversation, with an existing or a new contact and an optional
/// first message. The caller must be a member of the inbox.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", request_body = NewConversation, responses((status = 201, body = Created), (status = 422)))]
async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<NewConversation>,
) -> ApiResult<(StatusCode, axum::Json<Created>)> {
    let (conversation, message) = state.app.open_conversation(&who.actor(), body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Created {
            conversation,
            message,
        }),
    ))
}

async fn visible(state: &AppState, who: &Principal, id: Uuid) -> ApiResult<Conversation> {
    Ok(state.app.conversation(&who.actor(), id).await?)
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = Uuid, Path)), responses((status = 200, body = Conversation), (status = 404)))]
async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Conversation>> {
    Ok(axum::Json(visible(&state, &who, id).await?))
}

/// Changes subject, status (with `snoozed_until` for snoozed), priority,
/// assignee or team.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", params(("id" = Uuid, Path)), request_body = ConversationPatch, responses((status = 200, body = Conversation), (status = 404), (status = 422)))]
async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(patch): Json<ConversationPatch>,
) -> ApiResult<axum::Json<Conversation>> {
    apply(&state, &who, id, patch).await.map(axum::Json)
}

async fn apply(
    state: &AppState,
    who: &Principal,
    id: Uuid,
    patch: ConversationPatch,
) -> ApiResult<Conversation> {
    Ok(state
        .app
        .update_conversation(&who.actor(), id, patch)
        .await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Assignment {
    /// `null` unassigns.
    assignee_id: Option<Uuid>,
    team_id: Option<Uuid>,
}

/// Assigns to an agent and/or a team (`null` assignee unassigns).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/assign", tag = "conversations", params(("id" = Uuid, Path)), request_body = Assignment, responses((status = 200, body = Conversation)))]
async fn assign(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(a): Json<Assignment>,
) -> ApiResult<axum::Json<Conversation>> {
    let patch = ConversationPatch {
        assignee_id: Some(a.assignee_id),
        team_id: a.team_id.map(Some),
        ..Default::default()
    };
    apply(&state, &who, id, patch).await.map(axum::Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: ConversationStatus,
    snoozed_until: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/status", tag = "conversations", params(("id" = Uuid, Path)), request_body = StatusChange, responses((status = 200, body = Conversation)))]
async fn set_status(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(s): Json<StatusChange>,
) -> ApiResult<axum::Json<Conversation>> {
    let patch = ConversationPatch {
        status: Some(s.status),
        snoozed_until: s.snoozed_until,
        ..Default::default()
    };
    apply(&state, &who, id, patch).await.map(axum::Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TagList {
    tags: Vec<String>,
}

/// Adds tags (created when new).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/tags", tag = "conversations", params(("id" = Uuid, Path)), request_body = TagList, responses((status = 200, body = Conversation)))]
async fn add_tags(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<TagList>,
) -> ApiResult<axum::Json<Conversation>> {
    Ok(axum::Json(
        state
            .app
            .tag_conversation(&who.actor(), id, &body.tags)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/tags/{tag}", tag = "conversations", params(("id" = Uuid, Path), ("tag" = String, Path)), responses((status = 200, body = Conversation)))]
async fn remove_tag(
    State(state): State<AppState>,
    who: Principal,
    Path((id, tag)): Path<(Uuid, String)>,
) -> ApiResult<axum::Json<Conversation>> {
    Ok(axum::Json(
        state.app.untag_conversation(&who.actor(), id, &tag).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
struct MessageQuery {
    /// Only messages with a greater sequence number (resume point).
    after_seq: Option<i64>,
    /// 1–500, default 100.
    limit: Option<usize>,
}

/// Messages in order, notes included.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", params(("id" = Uuid, Path), MessageQuery), responses((status = 200, body = Vec<Message>)))]
async fn list_messages(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Query(q): Query<MessageQuery>,
) -> ApiResult<axum::Json<Vec<Message>>> {
    visible(&state, &who, id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    Ok(axum::Json(
        state
            .store
            .list_messages(id, q.after_seq.unwrap_or(0), limit, true)
            .await?,
    ))
}

/// Adds a reply (`outgoing`), an internal `note`, or (for API inboxes) an
/// `incoming` message from the contact. Resending the same `external_id`
/// returns the first message with 200 instead of 201.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", params(("id" = Uuid, Path)), request_body = NewMessage, responses((status = 201, body = Message), (status = 200, body = Message)))]
async fn add_message(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<NewMessage>,
) -> ApiResult<(StatusCode, axum::Json<Message>)> {
    let posted = state
        .app
        .post_message(&who.actor(), Target::Conversation(id), body)
        .await?;
    let status = if posted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(posted.message)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MergeRequest {
    /// The conversation that receives the messages and stays open.
    into_id: Uuid,
}

#[derive(Serialize, ToSchema)]
struct Merged {
    source: Conversation,
    target: Conversation,
}

/// Merges this conversation into `into_id`: its messages move there and it
/// is closed with `merged_into_id` pointing at the target.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/merge", tag = "conversations", params(("id" = Uuid, Path)), request_body = MergeRequest, responses((status = 200, body = Merged), (status = 404), (status = 422)))]
async fn merge(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<MergeRequest>,
) -> ApiResult<axum::Json<Merged>> {
    let (source, target) = state
        .app
        .merge_conversations(&who.actor(), id, body.into_id)
        .await?;
    Ok(axum::Json(Merged { source, target }))
}
