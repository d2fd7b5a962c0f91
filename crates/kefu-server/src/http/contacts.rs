//! Contacts: the customers, found by text, tag or an external identity.
//!
//! An agent sees and changes only the contacts that have a conversation in
//! one of their inboxes (admins: all), the same line as for conversations:
//! a contact outside it answers 404, and lists and lookups leave it out.
//! Creating a contact is open to every agent; it becomes theirs to see with
//! its first conversation in one of their inboxes.

use super::{Paged, page_limit};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{Contact, ContactPatch, Conversation, Identity, NewContact, validate};
use kefu_store::{ConversationFilter, Page};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update))
        .routes(routes!(add_identity))
        .routes(routes!(remove_identity))
        .routes(routes!(conversations))
}

#[derive(Deserialize, IntoParams)]
struct ContactQuery {
    /// Part of the name, email or phone.
    q: Option<String>,
    tag: Option<String>,
    /// With `identity_value`: the contact holding that identity (0 or 1 result).
    identity_kind: Option<String>,
    identity_value: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Contacts the caller may see: for agents, those with a conversation in
/// one of their inboxes (admins: all). Any other contact answers 404.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactQuery), responses((status = 200, body = Paged<Contact>)))]
async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<ContactQuery>,
) -> ApiResult<axum::Json<Paged<Contact>>> {
    if let (Some(kind), Some(value)) = (&q.identity_kind, &q.identity_value) {
        let mut identity = Identity {
            kind: kind.clone(),
            value: value.clone(),
        };
        validate::identity(&mut identity)?;
        let items = match state
            .store
            .contact_by_identity(&identity.kind, &identity.value)
            .await
        {
            Ok(c) if state.store.contact_visible(c.id, who.visibility()).await? => vec![c],
            Ok(_) => vec![],
            Err(kefu_store::StoreError::NotFound) => vec![],
            Err(e) => return Err(e.into()),
        };
        return Ok(axum::Json(Paged {
            items,
            next_cursor: None,
        }));
    }
    let text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let page = state
        .store
        .list_contacts(
            who.visibility(),
            text,
            q.tag.as_deref(),
            q.cursor.as_deref(),
            page_limit(q.limit),
        )
        .await?;
    Ok(axum::Json(page.into()))
}

#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = NewContact, responses((status = 201, body = Contact), (status = 409), (status = 422)))]
async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<NewContact>,
) -> ApiResult<(StatusCode, axum::Json<Contact>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(state.app.create_contact(&who.actor(), body).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)), responses((status = 200, body = Contact), (status = 404)))]
async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Contact>> {
    Ok(axum::Json(state.app.contact(&who.actor(), id).await?))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = Uuid, Path)), request_body = ContactPatch, responses((status = 200, body = Contact), (status = 404), (status = 409)))]
async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(patch): Json<ContactPatch>,
) -> ApiResult<axum::Json<Contact>> {
    Ok(axum::Json(
        state.app.update_contact(&who.actor(), id, patch).await?,
    ))
}

/// Adds an external identity; 409 when another contact holds it.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/identities", tag = "contacts", params(("id" = Uuid, Path)), request_body = Identity, responses((status = 200, body = Contact), (status = 409)))]
async fn add_identity(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(identity): Json<Identity>,
) -> ApiResult<axum::Json<Contact>> {
    Ok(axum::Json(
        state.app.add_identity(&who.actor(), id, identity).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}/identities/{kind}/{value}", tag = "contacts",
    params(("id" = Uuid, Path), ("kind" = String, Path), ("value" = String, Path)), responses((status = 200, body = Contact), (status = 404)))]
async fn remove_identity(
    State(state): State<AppState>,
    who: Principal,
    Path((id, kind, value)): Path<(Uuid, String, String)>,
) -> ApiResult<axum::Json<Contact>> {
    Ok(axum::Json(
        state
            .app
            .remove_identity(&who.actor(), id, &kind, &value)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// The contact's past and present conversations that the caller may see.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/conversations", tag = "contacts", params(("id" = Uuid, Path), PageQuery), responses((status = 200, body = Paged<Conversation>)))]
async fn conversations(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Paged<Conversation>>> {
    state.app.contact(&who.actor(), id).await?;
    let filter = ConversationFilter {
        contact_id: Some(id),
        cursor: q.cursor,
        limit: page_limit(q.limit),
        ..Default::default()
    };
    let page: Page<Conversation> = state
        .store
        .list_conversations(who.visibility(), &filter)
        .await?;
    Ok(axum::Json(page.into()))
}
