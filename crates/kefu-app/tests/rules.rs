//! The application layer's rules, through a real store on both databases:
//! who may post what where, whatever transport asks. Each case is one a
//! transport once got wrong on its own (a read token writing through a
//! socket) or would get wrong without this layer.

use kefu_app::{Actor, AgentActor, App, AppError, Channel, Credential, Target};
use kefu_core::{
    Agent, Direction, InboxKind, NewAgent, NewContact, NewConversation, NewInbox, NewMessage,
    Priority, Role, TokenScope,
};
use kefu_store::Store;
use uuid::Uuid;

struct Env {
    app: App,
    _dir: tempfile::TempDir,
}

async fn open(postgres: bool) -> Option<Env> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = kefu_testdb::url(postgres, dir.path()).await?;
    let store = Store::open(&url).await.expect("open store");
    Some(Env {
        app: App::new(store),
        _dir: dir,
    })
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(env) = super::open(false).await { super::$name(env).await }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = super::open(true).await { super::$name(env).await }
            }
        }
    )*};
}

on_both!(
    every_actor_writes_only_where_and_what_it_may,
    resends_are_stored_once_per_actor,
);

async fn agent(app: &App, email: &str, role: Role) -> Agent {
    app.store()
        .create_agent(
            &NewAgent {
                email: email.into(),
                name: "王芳".into(),
                role,
                password: None,
            },
            None,
        )
        .await
        .expect("agent")
}

fn as_agent(agent: &Agent, credential: Credential) -> Actor {
    Actor::Agent(AgentActor {
        agent: agent.clone(),
        credential,
        ip: None,
    })
}

async fn inbox(app: &App, name: &str, members: Vec<Uuid>) -> Uuid {
    app.store()
        .create_inbox(&NewInbox {
            kind: InboxKind::Widget,
            name: name.into(),
            sla: Default::default(),
            settings: serde_json::json!({}),
            member_ids: members,
        })
        .await
        .expect("inbox")
        .id
}

fn chat(text: &str) -> NewMessage {
    NewMessage::text(Direction::Incoming, text)
}

fn new_conversation(inbox_id: Uuid, phone: &str) -> NewConversation {
    NewConversation {
        inbox_id,
        contact_id: None,
        contact: Some(NewContact {
            name: Some("张伟".into()),
            phone: Some(phone.into()),
            ..NewContact::default()
        }),
        subject: Some("退款进度".into()),
        priority: Priority::Medium,
        assignee_id: None,
        team_id: None,
        tags: vec![],
        message: Some(chat("我的退款什么时候到账？")),
    }
}

async fn every_actor_writes_only_where_and_what_it_may(env: Env) {
    let app = &env.app;
    let member = agent(app, "member@kefu.example", Role::Agent).await;
    let outsider = agent(app, "outsider@kefu.example", Role::Agent).await;
    let mine = inbox(app, "官网客服", vec![member.id]).await;
    let other = inbox(app, "另一个网站", vec![]).await;
    let channel = Actor::Inbound {
        inbox_id: mine,
        channel: Channel::Form,
    };
    let (c, _) = app
        .open_conversation(&channel, new_conversation(mine, "13800138000"))
        .await
        .expect("a channel opens a conversation in its own inbox");
    // ...and in no other.
    let refused = app
        .open_conversation(&channel, new_conversation(other, "13900139000"))
        .await;
    assert!(matches!(refused, Err(AppError::Invalid(_))), "{refused:?}");

    let to_c = Target::Conversation(c.id);
    let reply = || NewMessage::text(Direction::Outgoing, "已为您加急处理。");
    // A read token writes nothing, through whatever transport.
    let reader = as_agent(
        &member,
        Credential::Token {
            id: Uuid::now_v7(),
            scope: TokenScope::Read,
        },
    );
    let r = app.post_message(&reader, to_c, reply()).await;
    assert!(matches!(r, Err(AppError::Forbidden(_))), "{r:?}");
    let r = app.typing(&reader, c.id, true).await;
    assert!(matches!(r, Err(AppError::Forbidden(_))), "{r:?}");
    let r = app.mark_read(&reader, c.id, 1).await;
    assert!(matches!(r, Err(AppError::Forbidden(_))), "{r:?}");
    // An agent outside the inbox does not even see it.
    let stranger = as_agent(&outsider, Credential::Session { id: Uuid::now_v7() });
    let r = app.post_message(&stranger, to_c, reply()).await;
    assert!(matches!(r, Err(AppError::NotFound)), "{r:?}");
    // A member replies; system lines are kefu's alone.
    let writer = as_agent(&member, Credential::Session { id: Uuid::now_v7() });
    let posted = app
        .post_message(&writer, to_c, reply())
        .await
        .expect("reply");
    assert_eq!(posted.message.seq, 2);
    assert_eq!(posted.message.sender_id, Some(member.id));
    let system = NewMessage::text(Direction::System, "冒充系统");
    let r = app.post_message(&writer, to_c, system).await;
    assert!(matches!(r, Err(AppError::Invalid(_))), "{r:?}");

    // The customer writes incoming messages on their own conversations only.
    let customer = Actor::Contact {
        contact_id: c.contact_id,
        inbox_id: mine,
        channel: Channel::Widget,
    };
    let note = NewMessage::text(Direction::Note, "客户写的备注");
    let r = app.post_message(&customer, to_c, note).await;
    assert!(matches!(r, Err(AppError::Rejected(_))), "{r:?}");
    let posted = app
        .post_message(&customer, to_c, chat("好的，谢谢"))
        .await
        .expect("the customer's message");
    assert_eq!(posted.message.seq, 3);
    let someone_else = Actor::Contact {
        contact_id: Uuid::now_v7(),
        inbox_id: mine,
        channel: Channel::Widget,
    };
    let r = app.post_message(&someone_else, to_c, chat("越权")).await;
    assert!(matches!(r, Err(AppError::NotFound)), "{r:?}");
    // Nothing refused was stored.
    let messages = app
        .store()
        .list_messages(c.id, 0, 100, true)
        .await
        .expect("messages");
    assert_eq!(messages.len(), 3, "{messages:?}");
    // A customer with no conversation going gets a new one from a chat message.
    let fresh = app
        .store()
        .create_contact(&NewContact::default())
        .await
        .expect("contact");
    let visitor = Actor::Contact {
        contact_id: fresh.id,
        inbox_id: mine,
        channel: Channel::Widget,
    };
    let first = app
        .post_message(&visitor, Target::Chat { named: Some(c.id) }, chat("你好"))
        .await
        .expect("a new chat");
    assert_ne!(
        first.message.conversation_id, c.id,
        "not someone else's conversation"
    );
    assert_eq!(first.message.seq, 1);
}

async fn resends_are_stored_once_per_actor(env: Env) {
    let app = &env.app;
    let member = agent(app, "agent@kefu.example", Role::Agent).await;
    let id = inbox(app, "售后", vec![member.id]).await;
    let channel = Actor::Inbound {
        inbox_id: id,
        channel: Channel::Email,
    };
    let (c, _) = app
        .open_conversation(&channel, new_conversation(id, "13700137000"))
        .await
        .expect("conversation");
    let customer = Actor::Contact {
        contact_id: c.contact_id,
        inbox_id: id,
        channel: Channel::Widget,
    };
    let writer = as_agent(&member, Credential::Session { id: Uuid::now_v7() });
    for actor in [&customer, &writer] {
        let key = kefu_app::messages::client_key(actor, "c-1").expect("key");
        let mut first = None;
        for _ in 0..3 {
            let direction = if actor.agent().is_some() {
                Direction::Outgoing
            } else {
                Direction::Incoming
            };
            let mut m = NewMessage::text(direction, "只发一次");
            m.external_id = Some(key.clone());
            let posted = app
                .post_message(actor, Target::Conversation(c.id), m)
                .await
                .expect("post");
            match first {
                None => {
                    assert!(posted.created);
                    first = Some(posted.message.id);
                }
                Some(id) => {
                    assert!(!posted.created);
                    assert_eq!(posted.message.id, id);
                }
            }
        }
    }
    let r = kefu_app::messages::client_key(&customer, "");
    assert!(matches!(r, Err(AppError::Rejected(_))), "{r:?}");
    let messages = app
        .store()
        .list_messages(c.id, 0, 100, true)
        .await
        .expect("messages");
    assert_eq!(
        messages.len(),
        3,
        "first message + one per actor: {messages:?}"
    );
}
