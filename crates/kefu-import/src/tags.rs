//! The tag book: what the tag files say about each tag id, so that contacts
//! carrying only ids (Official Account users) get names, and tags deleted in
//! WeCom are left out.

use kefu_wechat::{TagGroupRecord, TagKind, TagRef};
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct TagInfo {
    name: String,
    group: Option<String>,
    deleted: bool,
}

/// Small (a company has hundreds of tags, not millions): kept in memory.
#[derive(Debug, Default)]
pub struct TagBook {
    by_id: HashMap<(u8, String), TagInfo>,
}

/// `TagKind` has separate id spaces and no `Hash`.
fn kind_key(kind: TagKind) -> u8 {
    match kind {
        TagKind::Corp => 0,
        TagKind::Personal => 1,
        TagKind::OfficialAccount => 2,
        TagKind::Spreadsheet => 3,
    }
}

impl TagBook {
    pub fn add(&mut self, g: &TagGroupRecord) {
        for t in &g.tags {
            let info = TagInfo {
                name: t.name.clone(),
                group: g.name.clone().filter(|n| !n.is_empty()),
                deleted: g.deleted || t.deleted,
            };
            self.by_id.insert((kind_key(g.kind), t.id.clone()), info);
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every tag of the tag files as kefu names it, in name order: the
    /// whole live list, so that agents can tag new customers with tags
    /// nobody carries yet. Deleted tags and the tags of deleted groups stay
    /// out unless kept; so do the Official Account's reserved ids 0–2.
    pub fn live_names(&self, keep_deleted: bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .by_id
            .iter()
            .filter(|((kind, id), info)| {
                let reserved = *kind == kind_key(TagKind::OfficialAccount)
                    && matches!(id.as_str(), "0" | "1" | "2");
                !reserved && (keep_deleted || !info.deleted)
            })
            .map(|(_, info)| match &info.group {
                Some(g) => format!("{g}/{}", info.name),
                None => info.name.clone(),
            })
            .filter(|n| !n.trim().is_empty())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The kefu tag name ("组名/标签名", or the bare name without a group);
    /// `None` for a deleted tag (unless kept) or an id no tag file named.
    pub fn name(&self, t: &TagRef, keep_deleted: bool) -> Option<String> {
        let info =
            t.id.as_ref()
                .and_then(|id| self.by_id.get(&(kind_key(t.kind), id.clone())));
        if !keep_deleted && info.is_some_and(|i| i.deleted) {
            return None;
        }
        let name = t
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| info.map(|i| i.name.clone()))?;
        let group = t
            .group
            .clone()
            .filter(|g| !g.is_empty())
            .or_else(|| info.and_then(|i| i.group.clone()));
        Some(match group {
            Some(g) => format!("{g}/{name}"),
            None => name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_wechat::TagDef;

    fn def(id: &str, name: &str, deleted: bool) -> TagDef {
        TagDef {
            id: id.into(),
            name: name.into(),
            created_at: None,
            order: None,
            deleted,
            count: None,
        }
    }

    #[test]
    fn names_table() {
        let mut book = TagBook::default();
        book.add(&TagGroupRecord {
            kind: TagKind::Corp,
            group_id: Some("g1".into()),
            name: Some("客户等级".into()),
            created_at: None,
            order: None,
            deleted: false,
            tags: vec![def("t1", "VIP", false), def("t2", "旧", true)],
        });
        book.add(&TagGroupRecord {
            kind: TagKind::OfficialAccount,
            group_id: None,
            name: None,
            created_at: None,
            order: None,
            deleted: false,
            tags: vec![def("100", "老客户", false)],
        });
        let r = |kind, group: Option<&str>, name: Option<&str>, id: Option<&str>| TagRef {
            kind,
            group: group.map(str::to_string),
            name: name.map(str::to_string),
            id: id.map(str::to_string),
        };
        let cases = [
            (
                r(TagKind::Corp, None, None, Some("t1")),
                false,
                Some("客户等级/VIP"),
            ),
            (
                r(TagKind::Corp, Some("等级"), Some("VIP"), Some("t1")),
                false,
                Some("等级/VIP"),
            ),
            (r(TagKind::Corp, None, Some("旧"), Some("t2")), false, None),
            (
                r(TagKind::Corp, None, Some("旧"), Some("t2")),
                true,
                Some("客户等级/旧"),
            ),
            (
                r(TagKind::Personal, Some("我的"), Some("重要"), None),
                false,
                Some("我的/重要"),
            ),
            (
                r(TagKind::OfficialAccount, None, None, Some("100")),
                false,
                Some("老客户"),
            ),
            (
                r(TagKind::OfficialAccount, None, None, Some("999")),
                false,
                None,
            ),
            // Same id, other id space: not the corp tag.
            (
                r(TagKind::OfficialAccount, None, None, Some("t1")),
                false,
                None,
            ),
        ];
        for (tag, keep, want) in cases {
            assert_eq!(book.name(&tag, keep).as_deref(), want, "{tag:?}");
        }
    }

    #[test]
    fn live_list() {
        let mut book = TagBook::default();
        let group = |id: &str, name: &str, deleted, tags| TagGroupRecord {
            kind: TagKind::Corp,
            group_id: Some(id.into()),
            name: Some(name.into()),
            created_at: None,
            order: None,
            deleted,
            tags,
        };
        book.add(&group(
            "g1",
            "客户等级",
            false,
            vec![def("t1", "VIP", false), def("t2", "旧", true)],
        ));
        book.add(&group("g2", "停用", true, vec![def("t3", "甲", false)]));
        book.add(&TagGroupRecord {
            kind: TagKind::OfficialAccount,
            group_id: None,
            name: None,
            created_at: None,
            order: None,
            deleted: false,
            tags: vec![def("2", "星标组", false), def("100", "老客户", false)],
        });
        assert_eq!(book.live_names(false), ["客户等级/VIP", "老客户"]);
        assert_eq!(
            book.live_names(true),
            ["停用/甲", "客户等级/VIP", "客户等级/旧", "老客户"]
        );
    }
}
