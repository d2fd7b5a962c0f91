//! WeChat records → what the store stages. Pure: the reader thread runs it.

use crate::tags::TagBook;
use kefu_core::Identity;
use kefu_store::{ImportContact, StagedBody, StagedMessage};
use kefu_wechat::pii::{PiiPolicy, PiiSummary};
use kefu_wechat::{
    ContactRecord, Direction, IdentityKind, MediaRef, MessageRecord, MessageSource, Record,
    Rejected, SessionChangeKind,
};
use serde_json::{Map, Value, json};

/// One record, ready for the store (or why it is not).
#[derive(Debug)]
pub enum Item {
    Contact(Box<ImportContact>),
    Message(Box<Prepared>),
    Rejected(Rejected),
    Skipped(Skip),
}

/// A message and what the importer still has to do with it outside the
/// store's transaction: fetch its media, count its conversation.
#[derive(Debug)]
pub struct Prepared {
    pub staged: StagedMessage,
    pub media: Vec<MediaRef>,
    pub session: Option<SessionChangeKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A group chat without `--keep-groups`.
    Group,
    /// An event with no customer (a servicer's status change).
    NoCustomer,
    /// A contact without any id to recognise it by.
    NoIdentity,
    /// Tag definitions: read by the first pass.
    TagGroup,
}

/// What conversion needs besides the record.
pub struct Ctx {
    pub tags: std::sync::Arc<TagBook>,
    pub keep_deleted_tags: bool,
    pub keep_groups: bool,
    pub pii: PiiPolicy,
    /// How spreadsheets are read (`--encoding`, time zone).
    pub sheet: kefu_wechat::SheetOptions,
}

pub fn item(ctx: &Ctx, r: Result<Record, Rejected>, pii: &mut PiiSummary) -> Item {
    match r {
        Err(rejected) => Item::Rejected(rejected),
        Ok(Record::TagGroup(_)) => Item::Skipped(Skip::TagGroup),
        Ok(Record::Contact(c)) => match contact(ctx, c) {
            Some(c) => Item::Contact(Box::new(c)),
            None => Item::Skipped(Skip::NoIdentity),
        },
        Ok(Record::Message(m)) => message(ctx, m, pii),
    }
}

/// The name a message source has in keys and tags.
pub fn source_name(s: MessageSource) -> &'static str {
    match s {
        MessageSource::Kf => "kf",
        MessageSource::Archive => "archive",
        MessageSource::Oa => "oa",
    }
}

/// The conversation tag of a source.
pub fn source_label(s: MessageSource) -> &'static str {
    match s {
        MessageSource::Kf => "微信客服",
        MessageSource::Archive => "会话存档",
        MessageSource::Oa => "公众号",
    }
}

/// unionid first: it is the same person across a company's apps, while
/// external_userid and openid differ per app and would split them.
fn rank(k: IdentityKind) -> u8 {
    match k {
        IdentityKind::WechatUnionid => 0,
        IdentityKind::WechatExternalUserid => 1,
        IdentityKind::WechatOpenid => 2,
        IdentityKind::WechatUserid => 3,
        IdentityKind::Phone => 4,
        IdentityKind::Email => 5,
    }
}

/// (WeChat ids, phone and email keys). Phones and emails are weak: they
/// join a record to a contact of another source (a spreadsheet row to the
/// WeCom contact with that mobile) but never two WeChat ids into one
/// person — two customers may share a number (a family, a shop), and
/// merging them would mix their histories (the store keeps them apart and
/// reports it). Keys are normalised (`kefu_core::keys`) so that
/// "+86-138-0013-8000" and "138 0013 8000" are one number; a phone or
/// email that is none is not used to find anyone.
fn identities(c: &ContactRecord) -> (Vec<Identity>, Vec<Identity>) {
    let mut ids = c.identities.clone();
    ids.sort_by_key(|i| rank(i.kind));
    let (mut strong, mut weak) = (Vec::new(), Vec::new());
    for i in ids {
        let key = match i.kind {
            IdentityKind::Phone => kefu_core::keys::phone_key(&i.id),
            IdentityKind::Email => kefu_core::keys::email_key(&i.id),
            _ => Some(i.id),
        };
        let Some(value) = key else { continue };
        let id = Identity {
            kind: i.kind.as_str().into(),
            value,
        };
        let list = if rank(i.kind) <= 3 {
            &mut strong
        } else {
            &mut weak
        };
        if !list.contains(&id) {
            list.push(id);
        }
    }
    (strong, weak)
}

fn contact(ctx: &Ctx, c: ContactRecord) -> Option<ImportContact> {
    let (identities, weak_identities) = identities(&c);
    if identities.is_empty() && weak_identities.is_empty() {
        return None;
    }
    let mut tags: Vec<String> = Vec::new();
    for t in &c.tags {
        if let Some(name) = ctx.tags.name(t, ctx.keep_deleted_tags)
            && !tags.contains(&name)
        {
            tags.push(name);
        }
    }
    Some(ImportContact {
        identities,
        weak_identities,
        name: c.name.clone().or(c.nickname.clone()).or(c.remark.clone()),
        phone: c.phones.first().cloned(),
        email: c.email.clone(),
        avatar_url: c.avatar_url.clone(),
        attributes: attributes(&c),
        tags,
    })
}

/// The contact's WeChat details under stable keys, then whatever else the
/// source had by its own names.
fn attributes(c: &ContactRecord) -> Map<String, Value> {
    let mut a = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            a.insert(k.into(), v);
        }
    };
    put("wechat_source", json!(c.source));
    put("nickname", json!(c.nickname));
    put("gender", json!(c.gender));
    put("remark", json!(c.remark));
    put("description", json!(c.description));
    put("company", json!(c.company));
    put("position", json!(c.position));
    put("owner", json!(c.owner));
    put("added_at", json!(c.added_at));
    if c.phones.len() > 1 {
        put("phones", json!(c.phones));
    }
    if !c.follows.is_empty() {
        put("follows", json!(c.follows));
    }
    if !c.warnings.is_empty() {
        put("warnings", json!(c.warnings));
    }
    for (k, v) in &c.attributes {
        a.entry(k.clone()).or_insert_with(|| v.clone());
    }
    a
}

fn direction(d: Direction) -> kefu_core::Direction {
    match d {
        Direction::Incoming => kefu_core::Direction::Incoming,
        Direction::Outgoing => kefu_core::Direction::Outgoing,
        Direction::System => kefu_core::Direction::System,
    }
}

/// What groups a customer's conversations. An OA record names its account
/// only on agent replies (`worker` = "name@account"), so the customer's own
/// messages would land in another conversation; an openid is per account
/// anyway, so OA messages share one account key.
fn account(m: &MessageRecord) -> String {
    match m.source {
        MessageSource::Oa => "oa".into(),
        _ => m.account.clone().unwrap_or_default(),
    }
}

/// The fields of a 微信客服 text item that the message does not hold
/// itself, when that is all it has beyond its text: then its raw JSON adds
/// nothing and is not stored (non-text items and anything unusual keep it).
fn plain_kf_text(m: &MessageRecord) -> Option<serde_json::Map<String, Value>> {
    const KNOWN: [&str; 8] = [
        "external_userid",
        "msgid",
        "msgtype",
        "open_kfid",
        "origin",
        "send_time",
        "servicer_userid",
        "text",
    ];
    let raw = m.raw.as_object()?;
    let text = raw.get("text")?.as_object()?;
    let plain = m.source == MessageSource::Kf
        && m.msgtype == "text"
        && raw.keys().all(|k| KNOWN.contains(&k.as_str()))
        && text.len() == 1
        && text.get("content").and_then(Value::as_str) == Some(m.text.as_str());
    plain.then(|| {
        ["open_kfid", "origin", "servicer_userid"]
            .into_iter()
            .filter_map(|k| Some((k.to_string(), raw.get(k)?.clone())))
            .collect()
    })
}

fn message(ctx: &Ctx, mut m: MessageRecord, pii: &mut PiiSummary) -> Item {
    if m.group.is_some() && !ctx.keep_groups {
        return Item::Skipped(Skip::Group);
    }
    // A kept group is one thread: the room is the "customer" and the
    // account, and the sender stays in the metadata.
    let (customer, account) = match (&m.group, &m.customer) {
        (Some(room), _) => (
            Identity {
                kind: "wechat_roomid".into(),
                value: room.clone(),
            },
            room.clone(),
        ),
        (None, Some(c)) => (
            Identity {
                kind: c.kind.as_str().into(),
                value: c.id.clone(),
            },
            account(&m),
        ),
        (None, None) => return Item::Skipped(Skip::NoCustomer),
    };
    ctx.pii.apply_to_message(&mut m, pii);
    let source = source_name(m.source);
    let mut metadata = json!({
        "msgid": m.msgid,
        "source": source,
        "msgtype": m.msgtype,
    });
    if let Value::Object(map) = &mut metadata {
        if let Some(e) = &m.event {
            map.insert("event".into(), json!(e));
        }
        if m.group.is_some() {
            map.insert("group".into(), json!(m.group));
            map.insert("customer".into(), json!(m.customer));
        }
        match plain_kf_text(&m) {
            // Every field of the raw item is kept elsewhere: these three
            // here, the rest in the message (text, time, direction) and
            // its contact. Half the bytes of a typical history.
            Some(fields) => map.extend(fields),
            None => {
                map.insert("raw".into(), std::mem::take(&mut m.raw));
            }
        }
    }
    let session = m.session.as_ref().map(|s| s.kind);
    let staged = StagedMessage {
        key: format!("{source}:{}", m.msgid),
        customer,
        account,
        sent_at: m.sent_at,
        agent_ref: m.agent.clone().filter(|a| !a.is_empty()),
        body: StagedBody {
            direction: direction(m.direction),
            text: std::mem::take(&mut m.text),
            metadata,
            recall_of: m.recall_of.as_ref().map(|id| format!("{source}:{id}")),
            ends_session: session == Some(SessionChangeKind::Ended),
            attachment_ids: Vec::new(),
        },
    };
    Item::Message(Box::new(Prepared {
        staged,
        media: std::mem::take(&mut m.media),
        session,
    }))
}
