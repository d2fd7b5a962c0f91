//! The console's socket: authenticated like any API call (session cookie or
//! Bearer token), it receives the events of the inboxes the agent is a member
//! of (all of them for admins) and nothing else. Every ping it checks again
//! that the agent, session or token is still valid and follows changes of
//! membership, so revoking access also ends open sockets within 25 s.

use super::conn::{Closed, Conn, Incoming, PING_EVERY};
use super::protocol::{Inbound, Outbound};
use crate::auth::{Principal, Via};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures::FutureExt;
use kefu_app::{Actor, AppError, Target};
use kefu_core::{Direction, Event};
use kefu_hub::{HubMsg, Party, Received, Signal, SubscriptionStream, Topic};
use std::collections::BTreeSet;
use tokio_stream::{StreamExt, StreamMap};
use uuid::Uuid;

pub async fn upgrade(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A cookie rides along on any page's WebSocket to us; only our own pages
    // may use it (cross-site WebSocket hijacking).
    if matches!(who.via, Via::Session { .. }) && !same_origin(&headers) {
        return Err(ApiError::Forbidden("cross-origin WebSocket refused"));
    }
    Ok(super::conn::configure_agent(ws).on_upgrade(move |socket| run(state, who, socket)))
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin.split_once("://").map(|(_, h)| h) == Some(host)
}

async fn run(state: AppState, who: Principal, socket: WebSocket) {
    let mut conn = Conn::new(socket, &state.metrics.open_sockets);
    let _online = state.hub.agent_online(who.agent.id).await;
    let mut session = Session {
        state: &state,
        who,
        inboxes: BTreeSet::new(),
        subs: StreamMap::new(),
    };
    let _ = session.serve(&mut conn).await;
    conn.close().await;
}

struct Session<'a> {
    state: &'a AppState,
    who: Principal,
    inboxes: BTreeSet<Uuid>,
    subs: StreamMap<Topic, SubscriptionStream>,
}

impl Session<'_> {
    async fn serve(&mut self, conn: &mut Conn) -> Result<(), Closed> {
        self.subs.insert(
            Topic::Agents,
            self.state.hub.subscribe(Topic::Agents).into_stream(),
        );
        self.follow_inboxes().await?;
        conn.send(&Outbound::AgentWelcome {
            agent_id: self.who.agent.id,
            inbox_ids: self.inboxes.iter().copied().collect(),
        })
        .await?;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                incoming = conn.recv() => match incoming? {
                    Incoming::Frame(frame) => Box::pin(self.handle(conn, frame)).await?,
                    Incoming::Refused => {}
                },
                Some((_, received)) = self.subs.next() => {
                    // Whatever else is already waiting goes out in the same
                    // write: under load a socket flushes once per batch.
                    Box::pin(self.forward(conn, received)).await?;
                    for _ in 0..64 {
                        let Some(Some((_, more))) = self.subs.next().now_or_never() else { break };
                        Box::pin(self.forward(conn, more)).await?;
                    }
                    conn.flush().await?;
                }
                _ = ping.tick() => {
                    Box::pin(self.still_allowed()).await?;
                    Box::pin(self.follow_inboxes()).await?;
                    conn.ping().await?;
                }
            }
        }
    }

    /// Subscribes to the inboxes the agent may see now, and drops the rest.
    async fn follow_inboxes(&mut self) -> Result<(), Closed> {
        let store = &self.state.store;
        let now: BTreeSet<Uuid> = if self.who.agent.role.is_admin() {
            store
                .list_inboxes(None)
                .await
                .map_err(|_| Closed)?
                .into_iter()
                .map(|i| i.id)
                .collect()
        } else {
            store
                .agent_inbox_ids(self.who.agent.id)
                .await
                .map_err(|_| Closed)?
                .into_iter()
                .collect()
        };
        for gone in self.inboxes.difference(&now) {
            self.subs.remove(&Topic::Inbox(*gone));
        }
        for new in now.difference(&self.inboxes) {
            self.subs.insert(
                Topic::Inbox(*new),
                self.state.hub.subscribe(Topic::Inbox(*new)).into_stream(),
            );
        }
        self.inboxes = now;
        Ok(())
    }

    async fn still_allowed(&mut self) -> Result<(), Closed> {
        let (session, token) = match self.who.via {
            Via::Session { id } => (Some(id), None),
            Via::Token { id, .. } => (None, Some(id)),
        };
        match self
            .state
            .store
            .credential_alive(self.who.agent.id, session, token)
            .await
        {
            Ok(Some(agent)) => {
                self.who.agent = agent;
                Ok(())
            }
            _ => Err(Closed),
        }
    }

    async fn handle(&mut self, conn: &mut Conn, frame: Inbound) -> Result<(), Closed> {
        let actor = self.who.actor();
        match frame {
            Inbound::Hello { resume, .. } => {
                for (id, after) in resume.into_iter().take(200) {
                    self.replay(conn, id, after).await?;
                }
                Ok(())
            }
            Inbound::Send {
                client_id,
                conversation_id,
                text,
                attachment_ids,
                note,
            } => {
                let reply = self
                    .send(
                        &actor,
                        &client_id,
                        conversation_id,
                        text,
                        attachment_ids,
                        note,
                    )
                    .await;
                conn.send(&reply.unwrap_or_else(|e| super::error_frame(e, Some(client_id))))
                    .await
            }
            // Signals about a conversation the agent may not see are
            // dropped without a word; a credential that may not write is
            // told so.
            Inbound::Typing {
                conversation_id,
                on,
            } => {
                let done = self.state.app.typing(&actor, conversation_id, on).await;
                self.refused(conn, done).await
            }
            Inbound::Read {
                conversation_id,
                seq,
            } => {
                let done = self.state.app.mark_read(&actor, conversation_id, seq).await;
                self.refused(conn, done.map(|_| ())).await
            }
            Inbound::Rate { .. } => {
                conn.send(&Outbound::error(
                    "rejected",
                    "only customers rate conversations",
                ))
                .await
            }
            Inbound::Ping {} => conn.send(&Outbound::Pong).await,
        }
    }

    /// Tells the console that a frame was refused for its credential.
    async fn refused(&self, conn: &mut Conn, done: Result<(), AppError>) -> Result<(), Closed> {
        match done {
            Err(e @ AppError::Forbidden(_)) => conn.send(&super::error_frame(e, None)).await,
            _ => Ok(()),
        }
    }

    async fn replay(&mut self, conn: &mut Conn, id: Uuid, mut after: i64) -> Result<(), Closed> {
        let Ok(c) = self.state.app.conversation(&self.who.actor(), id).await else {
            return conn
                .send(&Outbound::error(
                    "not_found",
                    format!("conversation {id} not found"),
                ))
                .await;
        };
        loop {
            let page = self
                .state
                .store
                .list_messages(id, after, 200, true)
                .await
                .map_err(|_| Closed)?;
            for m in page.iter() {
                after = m.seq;
                conn.send(&Outbound::Message {
                    inbox_id: c.inbox_id,
                    message: m.clone(),
                })
                .await?;
            }
            if page.len() < 200 {
                return Ok(());
            }
        }
    }

    /// An agent's reply or note on a conversation they see.
    async fn send(
        &mut self,
        actor: &Actor,
        client_id: &str,
        conversation_id: Option<Uuid>,
        text: String,
        attachment_ids: Vec<Uuid>,
        note: bool,
    ) -> Result<Outbound, AppError> {
        let direction = if note {
            Direction::Note
        } else {
            Direction::Outgoing
        };
        let id = conversation_id.ok_or(AppError::Rejected("conversation_id is required".into()))?;
        let target = Target::Conversation(id);
        super::send(
            &self.state.app,
            actor,
            target,
            client_id,
            direction,
            text,
            attachment_ids,
        )
        .await
    }

    /// Queues one hub message for the socket (written at the next flush).
    /// The frame is the same for every agent but for their own typing and
    /// read signals, which are skipped: it is encoded once for all sockets.
    async fn forward(&mut self, conn: &mut Conn, received: Received) -> Result<(), Closed> {
        let shared = match received {
            Received::Lagged => return conn.feed_text(&Outbound::Resync.to_text()).await,
            Received::Msg(m) => m,
        };
        let me = self.who.agent.id;
        if let HubMsg::Signal(
            Signal::Typing {
                from: Party::Agent { id, .. },
                ..
            }
            | Signal::Read {
                from: Party::Agent { id, .. },
                ..
            },
        ) = &shared.msg
            && *id == me
        {
            return Ok(());
        }
        match shared.agent_text(|msg| agent_frame(msg).map(|f| f.to_text())) {
            Some(text) => conn.feed_text(&text).await,
            None => Ok(()),
        }
    }
}

/// The frame every agent gets for a hub message (each socket skips its own
/// typing and read signals before); `None` for what consoles do not show.
fn agent_frame(msg: &HubMsg) -> Option<Outbound> {
    Some(match msg {
        HubMsg::Resync => Outbound::Resync,
        HubMsg::Event(Event::MessageCreated {
            inbox_id, message, ..
        }) => Outbound::Message {
            inbox_id: *inbox_id,
            message: message.clone(),
        },
        HubMsg::Event(
            Event::ConversationCreated { conversation }
            | Event::ConversationUpdated { conversation },
        ) => Outbound::Conversation {
            conversation: conversation.clone(),
        },
        HubMsg::Event(Event::MessageUpdated {
            inbox_id, message, ..
        }) => Outbound::MessageUpdated {
            inbox_id: *inbox_id,
            message: message.clone(),
        },
        HubMsg::Event(Event::ContactUpdated { .. }) => return None,
        HubMsg::Signal(Signal::Typing {
            conversation_id,
            from,
            on,
            ..
        }) => Outbound::Typing {
            conversation_id: *conversation_id,
            from: from.clone(),
            on: *on,
        },
        HubMsg::Signal(Signal::Read {
            conversation_id,
            from,
            seq,
            ..
        }) => Outbound::Read {
            conversation_id: *conversation_id,
            from: from.clone(),
            seq: *seq,
        },
        HubMsg::Signal(Signal::Presence { agent_id, online }) => Outbound::Presence {
            agent_id: *agent_id,
            online: *online,
        },
    })
}
