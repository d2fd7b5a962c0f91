//! Real-time fan-out. Sockets subscribe to topics — an inbox (agents who are
//! members), a contact (that customer's widget tabs), all agents (presence) —
//! and receive the store's committed events and the ephemeral signals
//! (typing, read receipts, presence) that never touch the database.
//!
//! - [`Hub::start`] spawns the pumps: store events → local topics, and with
//!   PostgreSQL, local events → `NOTIFY kefu_hub` and `LISTEN kefu_hub` →
//!   local topics, so several `kefu serve` nodes on one database share events.
//! - [`Subscription`]: one topic's receiver; the topic's channel is created on
//!   first subscribe and removed when its last subscriber drops.
//! - A subscriber that falls behind gets [`HubMsg::Resync`] and catches up from
//!   the database by sequence number; the hub never waits for a slow socket.

use kefu_core::{Conversation, Event};
use kefu_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use uuid::Uuid;

mod bridge;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Inbox(Uuid),
    Contact(Uuid),
    Agents,
}

/// Who did something ephemeral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Party {
    Contact,
    Agent { id: Uuid, name: String },
}

/// Ephemeral signals: delivered to whoever is connected, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signal {
    Typing {
        conversation_id: Uuid,
        inbox_id: Uuid,
        contact_id: Uuid,
        from: Party,
        on: bool,
    },
    Read {
        conversation_id: Uuid,
        inbox_id: Uuid,
        contact_id: Uuid,
        from: Party,
        seq: i64,
    },
    Presence {
        agent_id: Uuid,
        online: bool,
    },
}

// large_enum_variant: a HubMsg lives in the topics' broadcast slots, which
// are allocated whole either way; boxing the Event would add an allocation
// per delivered event on the hot path to save slot bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum HubMsg {
    Event(Event),
    Signal(Signal),
    /// Something may have been missed: reload from the database.
    Resync,
}

/// Per-topic buffer. A socket more than this many messages behind is told to
/// resync instead of holding memory for it. A broadcast channel allocates
/// all its slots up front, and every idle widget socket has its contact's
/// topic: 256 slots there cost ~10 KiB a socket, more than the rest of the
/// socket; a customer's own conversation never needs more than a few.
fn topic_capacity(topic: &Topic) -> usize {
    match topic {
        Topic::Contact(_) => 16,
        _ => 256,
    }
}

/// A message as every subscriber receives it: one allocation for all, with
/// room for the agent frame's JSON, made by the first agent socket that
/// sends it and reused by the rest (hundreds of consoles, one encoding).
#[derive(Debug)]
pub struct Shared {
    pub msg: HubMsg,
    agent_text: std::sync::OnceLock<Option<Arc<str>>>,
}

impl Shared {
    fn new(msg: HubMsg) -> Arc<Shared> {
        Arc::new(Shared {
            msg,
            agent_text: std::sync::OnceLock::new(),
        })
    }

    /// The agent frame's text, encoded once; `None` when agents get no frame.
    pub fn agent_text(&self, encode: impl FnOnce(&HubMsg) -> Option<String>) -> Option<Arc<str>> {
        self.agent_text
            .get_or_init(|| encode(&self.msg).map(Arc::from))
            .clone()
    }
}

type Sender = broadcast::Sender<Arc<Shared>>;

pub struct Hub {
    topics: Mutex<HashMap<Topic, Sender>>,
    /// Open agent sockets per agent: here, counts of this node's; from other
    /// nodes, 1 while their Presence says online.
    presence: Mutex<HashMap<Uuid, i64>>,
    listening: tokio::sync::watch::Sender<bool>,
    /// Wires waiting to be NOTIFYed to other nodes (PostgreSQL only).
    outbox: Option<tokio::sync::mpsc::Sender<bridge::Wire>>,
    store: Store,
    /// Tells this node's own notifications apart from other nodes'.
    node: Uuid,
}

impl Hub {
    /// Creates the hub and spawns its pumps for as long as the runtime runs.
    /// With PostgreSQL the LISTEN connects in the background;
    /// [`Hub::listening`] waits for it.
    pub fn start(store: Store) -> Arc<Hub> {
        let postgres = store.backend() == kefu_store::Backend::Postgres;
        let (listening, _) = tokio::sync::watch::channel(!postgres);
        let (outbox, outbox_rx) = tokio::sync::mpsc::channel(16 * 1024);
        let hub = Arc::new(Hub {
            outbox: postgres.then_some(outbox),
            topics: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
            listening,
            store: store.clone(),
            node: Uuid::now_v7(),
        });
        tokio::spawn(bridge::pump_local(hub.clone(), store.subscribe()));
        if postgres {
            tokio::spawn(bridge::pump_remote(hub.clone()));
            tokio::spawn(bridge::pump_outbox(Arc::downgrade(&hub), outbox_rx));
        }
        hub
    }

    /// Completes once other nodes' events can arrive (at once on SQLite).
    pub async fn listening(&self) {
        let mut rx = self.listening.subscribe();
        let _ = rx.wait_for(|up| *up).await;
    }

    /// Marks an agent connected until the returned guard drops, and tells
    /// every node when the agent's first socket opens or last one closes.
    pub async fn agent_online(self: &Arc<Self>, agent_id: Uuid) -> Online {
        if self.count_presence(agent_id, 1) {
            self.signal(Signal::Presence {
                agent_id,
                online: true,
            })
            .await;
        }
        Online {
            hub: self.clone(),
            agent_id,
        }
    }

    /// True when one of `agents` has a console open (on any node that told us).
    pub fn any_online(&self, agents: &[Uuid]) -> bool {
        let p = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        agents.iter().any(|a| p.contains_key(a))
    }

    /// True when some agent has a console open (on any node that told us).
    pub fn any_agent_online(&self) -> bool {
        self.presence.lock().map(|p| !p.is_empty()).unwrap_or(false)
    }

    /// Adds `delta` sockets for the agent; true when this changed whether the
    /// agent is online.
    fn count_presence(&self, agent_id: Uuid, delta: i64) -> bool {
        let mut p = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        let before = p.get(&agent_id).copied().unwrap_or(0);
        let after = (before + delta).max(0);
        if after == 0 {
            p.remove(&agent_id);
        } else {
            p.insert(agent_id, after);
        }
        (before == 0) != (after == 0)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn subscribe(self: &Arc<Self>, topic: Topic) -> Subscription {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let rx = topics
            .entry(topic)
            .or_insert_with(|| broadcast::channel(topic_capacity(&topic)).0)
            .subscribe();
        Subscription {
            rx: Some(rx),
            topic,
            hub: self.clone(),
        }
    }

    /// Sends a signal to local subscribers and, with PostgreSQL, to the other nodes.
    pub async fn signal(&self, signal: Signal) {
        self.deliver(&HubMsg::Signal(signal.clone()));
        bridge::announce(self, bridge::Wire::Signal(signal));
    }

    /// Local fan-out to every topic the message concerns.
    fn deliver(&self, msg: &HubMsg) {
        let targets = topics_of(msg);
        let msg = Shared::new(msg.clone());
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        for t in targets {
            if let Some(tx) = topics.get(&t) {
                // No receiver left is not an error: the drop guard removes it.
                let _ = tx.send(msg.clone());
            }
        }
    }

    fn resync_all(&self) {
        let msg = Shared::new(HubMsg::Resync);
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        for tx in topics.values() {
            let _ = tx.send(msg.clone());
        }
    }

    /// Another node's agent came or went. Counted as one socket: presence
    /// across nodes is a hint for "someone is there", not an exact count.
    fn remote_presence(&self, agent_id: Uuid, online: bool) {
        let mut p = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        if online {
            p.entry(agent_id).or_insert(1);
        } else {
            p.remove(&agent_id);
        }
    }

    /// Number of topics with subscribers (for tests and metrics).
    pub fn topic_count(&self) -> usize {
        self.topics.lock().map(|t| t.len()).unwrap_or(0)
    }
}

fn conversation_topics(c: &Conversation) -> Vec<Topic> {
    vec![Topic::Inbox(c.inbox_id), Topic::Contact(c.contact_id)]
}

fn topics_of(msg: &HubMsg) -> Vec<Topic> {
    match msg {
        HubMsg::Event(
            Event::ConversationCreated { conversation }
            | Event::ConversationUpdated { conversation },
        ) => conversation_topics(conversation),
        HubMsg::Event(
            Event::MessageCreated {
                inbox_id,
                contact_id,
                ..
            }
            | Event::MessageUpdated {
                inbox_id,
                contact_id,
                ..
            },
        ) => {
            vec![Topic::Inbox(*inbox_id), Topic::Contact(*contact_id)]
        }
        HubMsg::Event(Event::ContactUpdated { contact }) => vec![Topic::Contact(contact.id)],
        HubMsg::Signal(
            Signal::Typing {
                inbox_id,
                contact_id,
                ..
            }
            | Signal::Read {
                inbox_id,
                contact_id,
                ..
            },
        ) => {
            vec![Topic::Inbox(*inbox_id), Topic::Contact(*contact_id)]
        }
        HubMsg::Signal(Signal::Presence { .. }) => vec![Topic::Agents],
        HubMsg::Resync => vec![],
    }
}

/// Keeps an agent marked online while it lives.
pub struct Online {
    hub: Arc<Hub>,
    agent_id: Uuid,
}

impl Drop for Online {
    fn drop(&mut self) {
        if self.hub.count_presence(self.agent_id, -1) {
            let hub = self.hub.clone();
            let agent_id = self.agent_id;
            tokio::spawn(async move {
                hub.signal(Signal::Presence {
                    agent_id,
                    online: false,
                })
                .await
            });
        }
    }
}

pub enum Received {
    Msg(Arc<Shared>),
    /// The subscriber fell behind and lost messages: resync from the database.
    Lagged,
}

/// One topic's receiving end. Dropping the last subscription of a topic
/// removes the topic.
pub struct Subscription {
    rx: Option<broadcast::Receiver<Arc<Shared>>>,
    topic: Topic,
    hub: Arc<Hub>,
}

impl Subscription {
    pub fn topic(&self) -> Topic {
        self.topic
    }

    /// Waits for the next message. Pending forever once the hub is gone
    /// (never in a running server), so it is safe in `select!` loops.
    pub async fn recv(&mut self) -> Received {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(m) => Received::Msg(m),
            Err(broadcast::error::RecvError::Lagged(_)) => Received::Lagged,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }

    /// Turns the subscription into a stream, for merging several with a `StreamMap`.
    pub fn into_stream(mut self) -> SubscriptionStream {
        let rx = self.rx.take().unwrap_or_else(|| broadcast::channel(1).1);
        SubscriptionStream {
            inner: tokio_stream::wrappers::BroadcastStream::new(rx),
            _guard: Guard {
                topic: self.topic,
                hub: self.hub.clone(),
            },
        }
    }
}

/// A subscription as a `Stream`. Field order matters: the receiver drops
/// before the guard looks whether the topic has any left.
pub struct SubscriptionStream {
    inner: tokio_stream::wrappers::BroadcastStream<Arc<Shared>>,
    _guard: Guard,
}

impl tokio_stream::Stream for SubscriptionStream {
    type Item = Received;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Received>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(m))) => Poll::Ready(Some(Received::Msg(m))),
            Poll::Ready(Some(Err(_))) => Poll::Ready(Some(Received::Lagged)),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Guard {
    topic: Topic,
    hub: Arc<Hub>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.hub.release(self.topic);
    }
}

impl Hub {
    /// Removes a topic once its last receiver is gone.
    fn release(&self, topic: Topic) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if topics
            .get(&topic)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            topics.remove(&topic);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            drop(rx);
            self.hub.release(self.topic);
        }
    }
}
