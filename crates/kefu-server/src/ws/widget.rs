//! The customer's socket. After `hello` with a valid visitor token, every
//! frame acts as that token's contact: it can read and write only that
//! contact's conversations, whatever ids it names.

use super::conn::{Closed, Conn, HELLO_TIMEOUT, Incoming, PING_EVERY};
use super::protocol::{Inbound, Outbound, WidgetConversation, WidgetMessage};
use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use kefu_app::{Actor, AppError, Channel, Target};
use kefu_core::{Conversation, Direction, Event, Message};
use kefu_hub::{HubMsg, Party, Received, Signal, Topic};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    super::conn::configure(ws).on_upgrade(move |socket| run(state, socket))
}

#[derive(Debug, Clone, Copy)]
struct Visitor {
    contact_id: Uuid,
    inbox_id: Uuid,
}

/// An idle socket's memory is mostly the size of this task's future, which
/// is as large as the largest future it awaits. The store calls behind a
/// frame are large and rare, so they are boxed: their state lives on the
/// heap only while a frame is being handled.
async fn run(state: AppState, socket: WebSocket) {
    let mut conn = Conn::new(socket, &state.metrics.open_sockets);
    if let Ok((visitor, resume)) = Box::pin(hello(&state, &mut conn)).await {
        let mut session = Session {
            state: &state,
            visitor,
            agents: HashMap::new(),
        };
        let _ = session.serve(&mut conn, resume).await;
    }
    conn.close().await;
}

/// What `hello` asked to replay: named conversations after a sequence, and
/// how many recent ones it holds nothing of.
struct Resume {
    after: BTreeMap<Uuid, i64>,
    recent: u8,
}

/// At most this many conversations are replayed whole for `recent`.
const MAX_RECENT: usize = 10;

/// Waits for `hello` with a token this server signed.
async fn hello(state: &AppState, conn: &mut Conn) -> Result<(Visitor, Resume), Closed> {
    let frame = match tokio::time::timeout(HELLO_TIMEOUT, conn.recv()).await {
        Ok(Ok(Incoming::Frame(f))) => f,
        Ok(Ok(Incoming::Refused)) | Ok(Err(Closed)) | Err(_) => return Err(Closed),
    };
    let Inbound::Hello {
        token: Some(token),
        resume,
        recent,
    } = frame
    else {
        conn.send(&Outbound::error(
            "unauthorized",
            "the first frame must be hello with a visitor token",
        ))
        .await?;
        return Err(Closed);
    };
    let Some(claims) = state.app.visitor_claims(&token).await.map_err(|_| Closed)? else {
        conn.send(&Outbound::error(
            "unauthorized",
            "visitor token is invalid or expired",
        ))
        .await?;
        return Err(Closed);
    };
    Ok((
        Visitor {
            contact_id: claims.c,
            inbox_id: claims.i,
        },
        Resume {
            after: resume,
            recent,
        },
    ))
}

/// Whether someone who sees the inbox's conversations (a member or an
/// admin) has a console open: the widget offers to leave an email when not.
pub(crate) async fn agents_online(state: &AppState, inbox_id: Uuid) -> bool {
    if !state.hub.any_agent_online() {
        return false;
    }
    match state.store.inbox_watchers(inbox_id).await {
        Ok(watchers) => state.hub.any_online(&watchers),
        // Unknown is told as online: the customer can write either way.
        Err(_) => true,
    }
}

struct Session<'a> {
    state: &'a AppState,
    visitor: Visitor,
    /// Agent names and avatars, looked up once per socket.
    agents: HashMap<Uuid, (String, Option<String>)>,
}

impl Session<'_> {
    async fn serve(&mut self, conn: &mut Conn, resume: Resume) -> Result<(), Closed> {
        // Subscribe before reading history, so nothing falls between the two.
        let mut sub = self
            .state
            .hub
            .subscribe(Topic::Contact(self.visitor.contact_id));
        let conversations = Box::pin(
            self.state
                .store
                .contact_conversations(self.visitor.contact_id),
        )
        .await
        .map_err(|_| Closed)?;
        let welcome = Outbound::WidgetWelcome {
            contact_id: self.visitor.contact_id,
            conversations: conversations.iter().map(WidgetConversation::from).collect(),
            agents_online: Box::pin(agents_online(self.state, self.visitor.inbox_id)).await,
        };
        conn.send(&welcome).await?;
        for (&id, &after) in &resume.after {
            if conversations.iter().any(|c| c.id == id) {
                Box::pin(self.replay(conn, id, after)).await?;
            }
        }
        let mut unheld: Vec<&Conversation> = conversations
            .iter()
            .filter(|c| c.last_seq > 0 && !resume.after.contains_key(&c.id))
            .collect();
        unheld.sort_by_key(|c| std::cmp::Reverse(c.last_activity_at));
        unheld.truncate(usize::from(resume.recent).min(MAX_RECENT));
        for c in unheld.into_iter().rev() {
            Box::pin(self.replay(conn, c.id, 0)).await?;
        }
        drop(conversations);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                incoming = conn.recv() => match incoming? {
                    Incoming::Frame(frame) => Box::pin(self.handle(conn, frame)).await?,
                    Incoming::Refused => {}
                },
                received = sub.recv() => Box::pin(self.forward(conn, received)).await?,
                _ = ping.tick() => conn.ping().await?,
            }
        }
    }

    /// Sends the messages after `after`, in order, in pages.
    async fn replay(
        &mut self,
        conn: &mut Conn,
        conversation_id: Uuid,
        mut after: i64,
    ) -> Result<(), Closed> {
        loop {
            let page = self
                .state
                .store
                .list_messages(conversation_id, after, 200, false)
                .await
                .map_err(|_| Closed)?;
            for m in &page {
                after = m.seq;
                if let Some(frame) = self.message_frame(m).await {
                    conn.send(&frame).await?;
                }
            }
            if page.len() < 200 {
                return Ok(());
            }
        }
    }

    async fn handle(&mut self, conn: &mut Conn, frame: Inbound) -> Result<(), Closed> {
        let actor = self.actor();
        match frame {
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
            // Signals about a conversation that is not this visitor's are
            // dropped without a word.
            Inbound::Typing {
                conversation_id,
                on,
            } => {
                let _ = self.state.app.typing(&actor, conversation_id, on).await;
                Ok(())
            }
            Inbound::Read {
                conversation_id,
                seq,
            } => {
                let _ = self.state.app.mark_read(&actor, conversation_id, seq).await;
                Ok(())
            }
            Inbound::Rate {
                conversation_id,
                score,
                comment,
            } => match self
                .state
                .app
                .rate_conversation(&actor, conversation_id, score, comment)
                .await
            {
                Ok(()) => Ok(()),
                Err(e) => conn.send(&Outbound::error("rejected", e.to_string())).await,
            },
            Inbound::Ping {} => conn.send(&Outbound::Pong).await,
            Inbound::Hello { .. } => {
                conn.send(&Outbound::error("bad_frame", "hello was already received"))
                    .await
            }
        }
    }

    /// The visitor as the application layer's actor: this contact, in this
    /// inbox, and nobody else whatever ids a frame names.
    fn actor(&self) -> Actor {
        Actor::Contact {
            contact_id: self.visitor.contact_id,
            inbox_id: self.visitor.inbox_id,
            channel: Channel::Widget,
        }
    }

    /// A customer's chat message: incoming (a note is refused by the
    /// operation), into their going conversation or a new one. Whether each
    /// file is this visitor's to send is the store's check; its refusal
    /// comes back as `rejected`.
    async fn send(
        &mut self,
        actor: &Actor,
        client_id: &str,
        named: Option<Uuid>,
        text: String,
        attachment_ids: Vec<Uuid>,
        note: bool,
    ) -> Result<Outbound, AppError> {
        let direction = if note {
            Direction::Note
        } else {
            Direction::Incoming
        };
        let target = Target::Chat { named };
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

    async fn forward(&mut self, conn: &mut Conn, received: Received) -> Result<(), Closed> {
        let msg = match received {
            Received::Lagged => return conn.send(&Outbound::Resync).await,
            Received::Msg(m) => m,
        };
        let frame = match &msg.msg {
            HubMsg::Resync => Some(Outbound::Resync),
            HubMsg::Event(Event::MessageCreated { message, .. }) => {
                self.message_frame(message).await
            }
            HubMsg::Event(
                Event::ConversationCreated { conversation }
                | Event::ConversationUpdated { conversation },
            ) => Some(Outbound::WidgetConversation {
                conversation: conversation.into(),
            }),
            HubMsg::Signal(Signal::Typing {
                conversation_id,
                from: from @ Party::Agent { .. },
                on,
                ..
            }) => Some(Outbound::Typing {
                conversation_id: *conversation_id,
                from: from.clone(),
                on: *on,
            }),
            HubMsg::Signal(Signal::Read {
                conversation_id,
                from: from @ Party::Agent { .. },
                seq,
                ..
            }) => Some(Outbound::Read {
                conversation_id: *conversation_id,
                from: from.clone(),
                seq: *seq,
            }),
            _ => None,
        };
        match frame {
            Some(f) => conn.send(&f).await,
            None => Ok(()),
        }
    }

    /// The customer's view of a message; `None` for notes and system lines.
    async fn message_frame(&mut self, m: &Message) -> Option<Outbound> {
        if !matches!(m.direction, Direction::Incoming | Direction::Outgoing) {
            return None;
        }
        let (sender_name, sender_avatar_url) = match (m.direction, m.sender_id) {
            (Direction::Outgoing, Some(agent)) => self.agent(agent).await,
            _ => (None, None),
        };
        Some(Outbound::WidgetMessage {
            message: WidgetMessage {
                id: m.id,
                conversation_id: m.conversation_id,
                seq: m.seq,
                direction: m.direction,
                sender_kind: m.sender_kind,
                sender_name,
                sender_avatar_url,
                text: m.text.clone(),
                attachments: m.attachments.clone(),
                created_at: m.created_at,
            },
        })
    }

    async fn agent(&mut self, id: Uuid) -> (Option<String>, Option<String>) {
        if let Some((n, a)) = self.agents.get(&id) {
            return (Some(n.clone()), a.clone());
        }
        match self.state.store.agent(id).await {
            Ok(agent) => {
                self.agents
                    .insert(id, (agent.name.clone(), agent.avatar_url.clone()));
                (Some(agent.name), agent.avatar_url)
            }
            Err(_) => (None, None),
        }
    }
}
