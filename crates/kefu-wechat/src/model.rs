//! The normalized output: every source format is turned into [`Record`]s made
//! of these owned types, so the importer needs to know one shape, not eight.
//!
//! Times are UTC milliseconds (`i64`) everywhere: WeChat mixes seconds and
//! milliseconds between APIs, and converting once, here, keeps the importer
//! from guessing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a reader yields for each item it could not turn into a record; the
/// reader goes on with the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// 1-based line (row, for spreadsheets) where the rejected item starts.
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for Rejected {}

/// One item of a reader's output.
pub type Item = Result<Record, Rejected>;

/// One normalized item, one variant per kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Contact(ContactRecord),
    TagGroup(TagGroupRecord),
    Message(MessageRecord),
}

impl Record {
    pub fn as_message(&self) -> Option<&MessageRecord> {
        match self {
            Record::Message(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_contact(&self) -> Option<&ContactRecord> {
        match self {
            Record::Contact(c) => Some(c),
            _ => None,
        }
    }

    pub fn as_tag_group(&self) -> Option<&TagGroupRecord> {
        match self {
            Record::TagGroup(g) => Some(g),
            _ => None,
        }
    }
}

/// The kinds of identity kefu keys contacts by; the text form is the one
/// `kefu_core::Identity::kind` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    WechatExternalUserid,
    WechatOpenid,
    WechatUnionid,
    WechatUserid,
    Phone,
    Email,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::WechatExternalUserid => "wechat_external_userid",
            IdentityKind::WechatOpenid => "wechat_openid",
            IdentityKind::WechatUnionid => "wechat_unionid",
            IdentityKind::WechatUserid => "wechat_userid",
            IdentityKind::Phone => "phone",
            IdentityKind::Email => "email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub kind: IdentityKind,
    pub id: String,
}

impl Identity {
    pub fn new(kind: IdentityKind, id: impl Into<String>) -> Self {
        Identity {
            kind,
            id: id.into(),
        }
    }
}

/// Where a contact record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactSource {
    /// `kf/customer/batchget`.
    KfCustomer,
    /// `externalcontact/get` or `externalcontact/batch/get_by_user`.
    ExternalContact,
    /// Official Account `user/info`.
    OaUser,
    /// A CSV or XLSX row.
    Spreadsheet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Unknown,
    Male,
    Female,
}

impl Gender {
    /// WeChat's 0/1/2 code; anything else is unknown.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Gender::Male,
            2 => Gender::Female,
            _ => Gender::Unknown,
        }
    }
}

/// Which tag system a tag belongs to: they have separate id spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagKind {
    /// WeCom enterprise tag (`type` 1, has a `tag_id`).
    Corp,
    /// A member's personal tag (`type` 2, no id).
    Personal,
    /// Official Account tag (integer ids, names from `tags/get`).
    OfficialAccount,
    /// A tag column of a spreadsheet: names only.
    Spreadsheet,
}

/// A tag attached to a contact. Either `name` or `id` is set; OA users carry
/// ids only, resolved by the importer against the `tags/get` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRef {
    pub kind: TagKind,
    pub group: Option<String>,
    pub name: Option<String>,
    pub id: Option<String>,
}

/// One member's relation to an external contact (`follow_user` item or a
/// spreadsheet row's 添加人): each member keeps their own remark and tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Follow {
    pub userid: Option<String>,
    pub remark: Option<String>,
    pub description: Option<String>,
    pub remark_company: Option<String>,
    pub remark_mobiles: Vec<String>,
    pub added_at: Option<i64>,
    /// Kept raw: the meaning of the codes changes between WeCom versions.
    pub add_way: Option<i64>,
    pub tags: Vec<TagRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactRecord {
    pub source: ContactSource,
    /// Strongest first: WeChat ids, then phone and email.
    pub identities: Vec<Identity>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub gender: Option<Gender>,
    /// The first follower's remark (the name the company gave the contact).
    pub remark: Option<String>,
    pub description: Option<String>,
    pub company: Option<String>,
    pub position: Option<String>,
    pub phones: Vec<String>,
    pub email: Option<String>,
    /// When the contact was added / subscribed (earliest follow), UTC ms.
    pub added_at: Option<i64>,
    /// The member who added the contact first.
    pub owner: Option<String>,
    /// All tags of all follows, deduplicated.
    pub tags: Vec<TagRef>,
    pub follows: Vec<Follow>,
    /// Everything else the source had, by its own field names.
    pub attributes: Map<String, Value>,
    /// Values that were present but not trusted (e.g. numbers Excel mangled).
    pub warnings: Vec<String>,
}

impl ContactRecord {
    pub fn new(source: ContactSource) -> Self {
        ContactRecord {
            source,
            identities: Vec::new(),
            name: None,
            nickname: None,
            avatar_url: None,
            gender: None,
            remark: None,
            description: None,
            company: None,
            position: None,
            phones: Vec::new(),
            email: None,
            added_at: None,
            owner: None,
            tags: Vec::new(),
            follows: Vec::new(),
            attributes: Map::new(),
            warnings: Vec::new(),
        }
    }

    /// Adds an identity unless the same one is already there.
    pub fn add_identity(&mut self, kind: IdentityKind, id: &str) {
        let id = id.trim();
        if id.is_empty() || self.identities.iter().any(|i| i.kind == kind && i.id == id) {
            return;
        }
        self.identities.push(Identity::new(kind, id));
    }

    pub fn add_tag(&mut self, tag: TagRef) {
        if !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
    }
}

/// A group of tags with their definitions (`get_corp_tag_list` group, or the
/// whole `tags/get` list of an Official Account).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagGroupRecord {
    pub kind: TagKind,
    pub group_id: Option<String>,
    pub name: Option<String>,
    pub created_at: Option<i64>,
    pub order: Option<i64>,
    pub deleted: bool,
    pub tags: Vec<TagDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagDef {
    pub id: String,
    pub name: String,
    pub created_at: Option<i64>,
    pub order: Option<i64>,
    pub deleted: bool,
    /// OA only: how many users carry the tag.
    pub count: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageSource {
    /// 微信客服 `kf/sync_msg`.
    Kf,
    /// 会话内容存档.
    Archive,
    /// Official Account customer-service records.
    Oa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Incoming,
    /// From an agent (or the company's side).
    Outgoing,
    /// Events: session changes, recalls, consent, switches.
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Voice,
    Video,
    File,
    Emotion,
    /// A thumbnail (mini-program cover).
    Thumb,
}

/// What is needed to find a message's file in a media directory: the
/// directory's file stems are media_id, sdkfileid or md5sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MediaRef {
    pub kind: Option<MediaKind>,
    pub media_id: Option<String>,
    pub sdkfileid: Option<String>,
    pub md5sum: Option<String>,
    pub filename: Option<String>,
    pub size: Option<u64>,
    /// Voice/video length in seconds, from the message (AMR/Silk files are
    /// kept as they are and not decoded to measure them).
    pub duration_secs: Option<u64>,
}

impl MediaRef {
    /// The keys to look for, most specific first.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        [&self.media_id, &self.sdkfileid, &self.md5sum]
            .into_iter()
            .filter_map(|k| k.as_deref())
            .filter(|k| !k.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionChangeKind {
    Picked,
    Transferred,
    Ended,
    Reopened,
    Other,
}

impl SessionChangeKind {
    /// `session_status_change.change_type`.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => SessionChangeKind::Picked,
            2 => SessionChangeKind::Transferred,
            3 => SessionChangeKind::Ended,
            4 => SessionChangeKind::Reopened,
            _ => SessionChangeKind::Other,
        }
    }
}

/// A change of a customer-service session (who serves the customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionChange {
    pub kind: SessionChangeKind,
    pub old_servicer: Option<String>,
    pub new_servicer: Option<String>,
}

/// One message or event. Readers yield duplicates and out-of-order items as
/// they find them: deduplication (by `source` + `msgid`) and ordering (by
/// `sent_at`) are the importer's job, because only it sees every file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRecord {
    pub source: MessageSource,
    /// The idempotency key. For OA records, which have none, a stable hash of
    /// the record's fields prefixed with `oa:`.
    pub msgid: String,
    /// The customer side, if the message has one (kf system events and
    /// archive switches / internal chats have none).
    pub customer: Option<Identity>,
    /// The company account: open_kfid, the OA account from `worker`, or the
    /// archive's internal userid.
    pub account: Option<String>,
    /// The agent: servicer_userid, worker, or the archive's internal userid.
    pub agent: Option<String>,
    pub direction: Direction,
    /// UTC milliseconds.
    pub sent_at: i64,
    /// The source's message type (`text`, `image`, `event`…).
    pub msgtype: String,
    /// For `event` messages: the event_type.
    pub event: Option<String>,
    /// A readable form of every type, Chinese labels ([图片], [语音 5秒]…).
    pub text: String,
    pub media: Vec<MediaRef>,
    pub recall_of: Option<String>,
    pub session: Option<SessionChange>,
    /// Group chat id (archive `roomid`): the importer may keep or skip it.
    pub group: Option<String>,
    /// The item exactly as read, for metadata.
    pub raw: Value,
}
