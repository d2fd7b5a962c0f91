//! 客户联系: `externalcontact/get`, `externalcontact/batch/get_by_user` and
//! `externalcontact/get_corp_tag_list`.

use crate::model::*;
use crate::value::*;
use serde_json::Value;

/// Any of: a `get` response, a `batch/get_by_user` response, or a bare
/// `external_contact` object.
pub(crate) fn convert_contacts(v: Value) -> Vec<Result<Record, String>> {
    if let Some(list) = v.get("external_contact_list").and_then(Value::as_array) {
        return list
            .iter()
            .map(|e| {
                let follow = e
                    .get("follow_info")
                    .map(std::slice::from_ref)
                    .unwrap_or_default();
                contact(e.get("external_contact").unwrap_or(&Value::Null), follow)
            })
            .collect();
    }
    if let Some(ec) = v.get("external_contact") {
        return vec![contact(ec, array_of(&v, "follow_user"))];
    }
    if v.get("external_userid").is_some() {
        return vec![contact(&v, array_of(&v, "follow_user"))];
    }
    if v.get("errcode").is_some() {
        return Vec::new();
    }
    vec![Err("no external_contact in object".into())]
}

const CONTACT_FIELDS: &[&str] = &[
    "external_userid",
    "name",
    "position",
    "avatar",
    "corp_name",
    "gender",
    "unionid",
    "follow_user",
];

fn contact(ec: &Value, follows: &[Value]) -> Result<Record, String> {
    let id = str_of(ec, "external_userid").ok_or("missing external_userid")?;
    let mut rec = ContactRecord::new(ContactSource::ExternalContact);
    rec.add_identity(IdentityKind::WechatExternalUserid, &id);
    if let Some(u) = str_of(ec, "unionid") {
        rec.add_identity(IdentityKind::WechatUnionid, &u);
    }
    rec.name = str_of(ec, "name");
    rec.position = str_of(ec, "position");
    rec.avatar_url = str_of(ec, "avatar");
    rec.company = str_of(ec, "corp_name").or_else(|| str_of(ec, "corp_full_name"));
    rec.gender = int_of(ec, "gender").map(Gender::from_code);
    if let Some(obj) = ec.as_object() {
        for (k, val) in obj
            .iter()
            .filter(|(k, _)| !CONTACT_FIELDS.contains(&k.as_str()))
        {
            rec.attributes.insert(k.clone(), val.clone());
        }
    }
    let mut follows: Vec<Follow> = follows.iter().map(follow).collect();
    // The earliest follower is the owner; its remark and time describe the contact.
    follows.sort_by_key(|f| f.added_at.unwrap_or(i64::MAX));
    merge_follows(&mut rec, &follows);
    rec.follows = follows;
    Ok(Record::Contact(rec))
}

fn merge_follows(rec: &mut ContactRecord, follows: &[Follow]) {
    if let Some(first) = follows.first() {
        rec.owner = first.userid.clone();
        rec.remark = first.remark.clone();
        rec.description = first.description.clone();
        rec.added_at = first.added_at;
    }
    for f in follows {
        for phone in &f.remark_mobiles {
            if !rec.phones.contains(phone) {
                rec.phones.push(phone.clone());
            }
        }
        for t in &f.tags {
            rec.add_tag(t.clone());
        }
    }
    for phone in rec.phones.clone() {
        rec.add_identity(IdentityKind::Phone, &phone);
    }
}

fn follow(f: &Value) -> Follow {
    let mut tags: Vec<TagRef> = array_of(f, "tags").iter().map(tag_ref).collect();
    // The batch form lists corp tag ids only.
    for id in strs_of(f, "tag_id") {
        tags.push(TagRef {
            kind: TagKind::Corp,
            group: None,
            name: None,
            id: Some(id),
        });
    }
    Follow {
        userid: str_of(f, "userid"),
        remark: str_of(f, "remark"),
        description: str_of(f, "description"),
        remark_company: str_of(f, "remark_corp_name"),
        remark_mobiles: strs_of(f, "remark_mobiles"),
        added_at: int_of(f, "createtime").and_then(secs_to_ms),
        add_way: int_of(f, "add_way"),
        tags,
    }
}

fn tag_ref(t: &Value) -> TagRef {
    let personal = int_of(t, "type") == Some(2);
    TagRef {
        kind: if personal {
            TagKind::Personal
        } else {
            TagKind::Corp
        },
        group: str_of(t, "group_name"),
        name: str_of(t, "tag_name"),
        id: if personal { None } else { str_of(t, "tag_id") },
    }
}

/// `get_corp_tag_list` → one record per group.
pub(crate) fn convert_corp_tags(v: Value) -> Vec<Result<Record, String>> {
    match v.get("tag_group").and_then(Value::as_array) {
        Some(groups) => groups.iter().map(group).collect(),
        None if v.get("group_id").is_some() => vec![group(&v)],
        None if v.get("errcode").is_some() => Vec::new(),
        None => vec![Err("no tag_group in object".into())],
    }
}

fn group(g: &Value) -> Result<Record, String> {
    let group_id = str_of(g, "group_id").ok_or("missing group_id")?;
    let tags = array_of(g, "tag")
        .iter()
        .filter_map(|t| {
            Some(TagDef {
                id: str_of(t, "id")?,
                name: str_of(t, "name")?,
                created_at: int_of(t, "create_time").and_then(secs_to_ms),
                order: int_of(t, "order"),
                deleted: is_true(t, "deleted"),
                count: None,
            })
        })
        .collect();
    Ok(Record::TagGroup(TagGroupRecord {
        kind: TagKind::Corp,
        group_id: Some(group_id),
        name: str_of(g, "group_name"),
        created_at: int_of(g, "create_time").and_then(secs_to_ms),
        order: int_of(g, "order"),
        deleted: is_true(g, "deleted"),
        tags,
    }))
}

fn is_true(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false) || int_of(v, key).is_some_and(|n| n != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> ContactRecord {
        match convert_contacts(v).pop() {
            Some(Ok(Record::Contact(c))) => c,
            other => panic!("expected a contact, got {other:?}"),
        }
    }

    #[test]
    fn get_response() {
        let c = one(
            json!({"errcode": 0, "external_contact": {"external_userid": "wmA", "name": "李四", "position": "经理",
            "corp_name": "腾讯", "type": 1, "gender": 1, "unionid": "uA", "external_profile": {"x": 1}},
            "follow_user": [
              {"userid": "late", "remark": "后加", "createtime": 2000, "remark_mobiles": ["13800000001"], "add_way": 1,
               "tags": [{"group_name": "等级", "tag_name": "VIP", "tag_id": "et1", "type": 1}]},
              {"userid": "zs", "remark": "李总", "description": "大客户", "createtime": 1000, "remark_mobiles": ["13800000000"],
               "add_way": 10, "tags": [{"group_name": "", "tag_name": "朋友", "type": 2}]}
            ]}),
        );
        assert_eq!(c.owner.as_deref(), Some("zs"));
        assert_eq!(c.remark.as_deref(), Some("李总"));
        assert_eq!(c.added_at, Some(1_000_000));
        assert_eq!(c.phones, vec!["13800000000", "13800000001"]);
        assert_eq!(c.gender, Some(Gender::Male));
        assert_eq!(c.company.as_deref(), Some("腾讯"));
        let kinds: Vec<_> = c.tags.iter().map(|t| (t.kind, t.id.is_some())).collect();
        assert_eq!(
            kinds,
            vec![(TagKind::Personal, false), (TagKind::Corp, true)]
        );
        assert!(c.attributes.contains_key("external_profile"));
        assert_eq!(c.identities.len(), 4);
    }

    #[test]
    fn batch_form() {
        let out = convert_contacts(json!({"external_contact_list": [
            {"external_contact": {"external_userid": "wmB", "name": "王五"}, "follow_info": {"userid": "zs", "createtime": 5, "tag_id": ["et2"]}},
            {"follow_info": {}}
        ]}));
        assert_eq!(out.len(), 2);
        assert!(out[1].is_err());
        let Ok(Record::Contact(c)) = &out[0] else {
            panic!("contact")
        };
        assert_eq!(c.tags[0].id.as_deref(), Some("et2"));
    }

    #[test]
    fn corp_tags() {
        let out = convert_corp_tags(
            json!({"errcode": 0, "tag_group": [{"group_id": "g1", "group_name": "等级", "create_time": 1,
            "order": 1, "deleted": false, "tag": [{"id": "t1", "name": "VIP", "create_time": 1, "order": 2, "deleted": true}]}]}),
        );
        let Ok(Record::TagGroup(g)) = &out[0] else {
            panic!("group")
        };
        assert_eq!(
            (g.name.as_deref(), g.tags.len(), g.tags[0].deleted),
            (Some("等级"), 1, true)
        );
    }
}
