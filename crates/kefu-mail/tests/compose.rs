//! Building replies and reading them back with our own parser.

use kefu_mail::compose::{self, DkimAlgorithm, DkimSigner, Lang};
use kefu_mail::{
    Mailbox, OutgoingAttachment, OutgoingEmail, ReplyToken, build, parse, thread_hints,
};

fn mailbox(address: &str, name: Option<&str>) -> Mailbox {
    Mailbox {
        address: address.into(),
        name: name.map(Into::into),
    }
}

fn reply() -> OutgoingEmail {
    OutgoingEmail {
        from: mailbox("support@kefu.example", Some("某某客服")),
        to: vec![mailbox("zhang@example.cn", Some("张三"))],
        cc: vec![mailbox("li@example.cn", None)],
        subject: "Re: [#1024] 退款进度".into(),
        text: "您好，退款已处理。".into(),
        html: Some("<p>您好，退款已<b>处理</b>。<img src=\"cid:logo\"></p>".into()),
        attachments: vec![
            OutgoingAttachment {
                filename: "回执.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.4 test".to_vec(),
                content_id: None,
            },
            OutgoingAttachment {
                filename: "logo.png".into(),
                content_type: "image/png".into(),
                bytes: b"\x89PNG".to_vec(),
                content_id: Some("logo".into()),
            },
        ],
        in_reply_to: Some("m2@example.cn".into()),
        references: vec!["m1@example.cn".into(), "m2@example.cn".into()],
        reply_token: Some(ReplyToken::parse("abcdefgh2345").expect("token")),
        auto_submitted: false,
    }
}

#[test]
fn reply_round_trips() {
    let built = build(&reply(), None).expect("build");
    assert!(
        built.message_id.ends_with("@kefu.example"),
        "{}",
        built.message_id
    );
    assert_eq!(built.envelope_from, "support@kefu.example");
    assert_eq!(built.recipients, ["zhang@example.cn", "li@example.cn"]);

    let p = parse(&built.bytes);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.message_id.as_deref(), Some(built.message_id.as_str()));
    assert_eq!(p.in_reply_to, ["m2@example.cn"]);
    assert_eq!(p.references, ["m1@example.cn", "m2@example.cn"]);
    assert_eq!(p.reply_to[0].address, "support+abcdefgh2345@kefu.example");
    let from = p.from.as_ref().expect("from");
    assert_eq!(from.address, "support@kefu.example");
    assert_eq!(from.name.as_deref(), Some("某某客服"));
    assert_eq!(p.subject.as_deref(), Some("Re: [#1024] 退款进度"));
    assert_eq!(p.text, "您好，退款已处理。");
    assert!(p.html.as_deref().unwrap_or("").contains("<b>处理</b>"));
    assert_eq!(p.to[0].name.as_deref(), Some("张三"));
    assert_eq!(p.cc[0].address, "li@example.cn");
    let names: Vec<_> = p
        .attachments
        .iter()
        .map(|a| a.filename.as_deref())
        .collect();
    assert!(names.contains(&Some("回执.pdf")), "{names:?}");
    let logo = p
        .attachments
        .iter()
        .find(|a| a.content_id.as_deref() == Some("logo"));
    assert!(
        logo.is_some_and(|l| l.inline && l.bytes == b"\x89PNG"),
        "{:?}",
        p.attachments
    );
    let content_type = p.header("Content-Type").unwrap_or("");
    assert!(
        content_type.starts_with("multipart/mixed"),
        "{content_type}"
    );
    let raw = String::from_utf8_lossy(&built.bytes);
    assert!(raw.contains("multipart/alternative") && raw.contains("multipart/related"));
    assert!(!p.kind.is_automated());

    // The customer answers that reply: every threading hint points back to us.
    let (in_reply_to, references) = compose::reply_headers(&p);
    assert_eq!(in_reply_to.as_deref(), Some(built.message_id.as_str()));
    assert_eq!(references.last(), Some(&built.message_id));
    let answer = format!(
        "From: zhang@example.cn\r\nTo: {}\r\nSubject: Re: [#1024] 退款进度\r\n\
In-Reply-To: <{}>\r\nMessage-ID: <a1@example.cn>\r\n\r\n谢谢",
        p.reply_to[0].address, built.message_id
    );
    let hints = thread_hints(&parse(answer.as_bytes()), "support@kefu.example");
    assert_eq!(
        hints.token.map(|t| t.to_string()).as_deref(),
        Some("abcdefgh2345")
    );
    assert_eq!(hints.message_ids, std::slice::from_ref(&built.message_id));
    assert_eq!(hints.ticket_number, Some(1024));
}

#[test]
fn text_only_and_errors() {
    let mut e = reply();
    e.html = None;
    e.attachments.clear();
    e.reply_token = None;
    e.in_reply_to = None;
    e.references.clear();
    let p = parse(&build(&e, None).expect("build").bytes);
    assert_eq!(p.text, "您好，退款已处理。");
    assert!(p.html.is_none() && p.reply_to.is_empty() && p.in_reply_to.is_empty());

    let mut bad = reply();
    bad.to = vec![mailbox("not an address", None)];
    assert!(build(&bad, None).is_err());
    bad.to.clear();
    bad.cc.clear();
    assert!(build(&bad, None).is_err());
}

#[test]
fn auto_ack_is_marked_automatic() {
    for lang in [Lang::ZhCn, Lang::En] {
        let ack = compose::auto_ack(lang, 1024, "退款", "某某客服");
        let mut e = reply();
        e.subject = ack.subject;
        e.text = ack.text;
        e.html = Some(ack.html);
        e.attachments.clear();
        e.auto_submitted = true;
        let p = parse(&build(&e, None).expect("build").bytes);
        assert!(p.kind.is_automated(), "{:?}", p.kind);
        assert_eq!(
            kefu_mail::thread::ticket_number(p.subject.as_deref().unwrap_or("")),
            Some(1024)
        );
        assert!(p.text.contains("#1024"));
    }
}

#[test]
fn dkim_signs() {
    // A fixed Ed25519 seed (32 bytes of 7, base64): a test key, not a secret.
    let seed = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let signer =
        DkimSigner::new("kefu", "kefu.example", seed, DkimAlgorithm::Ed25519).expect("signer");
    let built = build(&reply(), Some(&signer)).expect("build");
    let p = parse(&built.bytes);
    let sig = p.header("DKIM-Signature").expect("signature");
    assert!(
        sig.contains("d=kefu.example") && sig.contains("s=kefu"),
        "{sig}"
    );
    assert!(sig.contains("a=ed25519-sha256"), "{sig}");
    assert!(DkimSigner::new("s", "d", "not base64!", DkimAlgorithm::Ed25519).is_err());
    assert!(
        DkimSigner::new(
            "s",
            "d",
            "-----BEGIN RSA PRIVATE KEY-----",
            DkimAlgorithm::Rsa
        )
        .is_err()
    );
}
