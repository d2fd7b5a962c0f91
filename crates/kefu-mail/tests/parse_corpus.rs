//! A corpus of hand-built messages, generated here so each byte is explained: charsets,
//! transfer encodings, RFC 2047/2231, broken MIME, huge input, auto-replies, bounces.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use encoding_rs::{BIG5, Encoding, GB18030, GBK, ISO_2022_JP};
use kefu_mail::{MailKind, Problem, parse, thread_hints};

fn enc(encoding: &'static Encoding, s: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(s);
    assert!(!unmappable, "{s} not representable in {}", encoding.name());
    bytes.into_owned()
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// `=?charset?B?…?=`
fn encoded_word(charset: &str, bytes: &[u8]) -> String {
    format!("=?{charset}?B?{}?=", b64(bytes))
}

/// Quoted-printable, 76-column soft breaks, enough for tests.
fn qp(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut col = 0;
    for &b in bytes {
        let piece = if b == b'\n' {
            col = 0;
            out.push_str("\r\n");
            continue;
        } else if (33..=126).contains(&b) && b != b'=' || b == b' ' {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if col + piece.len() > 75 {
            out.push_str("=\r\n");
            col = 0;
        }
        col += piece.len();
        out.push_str(&piece);
    }
    out
}

fn msg(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut m = headers.replace('\n', "\r\n").into_bytes();
    m.extend_from_slice(b"\r\n");
    m.extend_from_slice(body);
    m
}

const BASE: &str = "From: =?UTF-8?B?5byg5LiJ?= <Zhang@Example.CN>\n\
To: Support <support@kefu.example>\n\
Date: Tue, 2 Jan 2024 10:00:00 +0800\n\
Message-ID: <m1@example.cn>\n\
MIME-Version: 1.0\n";

#[test]
fn charsets_and_encodings() {
    struct Case {
        name: &'static str,
        raw: Vec<u8>,
        subject: Option<&'static str>,
        text: &'static str,
        attachment: Option<&'static str>,
    }
    let gbk_body = "您好，我的订单还没有发货。";
    let big5_name = "發票.pdf";
    let cases = vec![
        Case {
            name: "GBK base64 body, Big5 RFC 2047 attachment name",
            raw: msg(
                &format!(
                    "{BASE}Subject: order\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n\
--b1\nContent-Type: text/plain; charset=GBK\nContent-Transfer-Encoding: base64\n\n{}\n\
--b1\nContent-Type: application/pdf; name=\"{}\"\n\
Content-Disposition: attachment; filename=\"{}\"\nContent-Transfer-Encoding: base64\n\n{}\n--b1--\n",
                    b64(&enc(GBK, gbk_body)),
                    encoded_word("big5", &enc(BIG5, big5_name)),
                    encoded_word("big5", &enc(BIG5, big5_name)),
                    b64(b"%PDF-1.4"),
                ),
                b"",
            ),
            subject: Some("order"),
            text: gbk_body,
            attachment: Some(big5_name),
        },
        Case {
            name: "GBK body, Big5 RFC 2231 filename",
            raw: msg(
                &format!(
                    "{BASE}Subject: x\nContent-Type: multipart/mixed; boundary=b2\n\n\
--b2\nContent-Type: text/plain; charset=gbk\nContent-Transfer-Encoding: 8bit\n\n"
                ),
                &[
                    enc(GBK, gbk_body),
                    format!(
                        "\r\n--b2\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename*=big5''{}\r\n\r\nx\r\n--b2--\r\n",
                        enc(BIG5, big5_name)
                            .iter()
                            .map(|b| format!("%{b:02X}"))
                            .collect::<String>()
                    )
                    .into_bytes(),
                ]
                .concat(),
            ),
            subject: Some("x"),
            text: gbk_body,
            attachment: Some(big5_name),
        },
        Case {
            name: "GB2312 encoded-word subject, quoted-printable body",
            raw: msg(
                &format!(
                    "{BASE}Subject: {}\nContent-Type: text/plain; charset=\"gb2312\"\n\
Content-Transfer-Encoding: quoted-printable\n",
                    encoded_word("gb2312", &enc(GBK, "退款申请"))
                ),
                qp(&enc(GBK, "请尽快处理我的退款，谢谢！")).as_bytes(),
            ),
            subject: Some("退款申请"),
            text: "请尽快处理我的退款，谢谢！",
            attachment: None,
        },
        Case {
            name: "GB18030 body with a character outside GBK",
            raw: msg(
                &format!("{BASE}Subject: s\nContent-Type: text/plain; charset=GB18030\n"),
                &enc(GB18030, "生僻字𠀀和欧元€"),
            ),
            subject: Some("s"),
            text: "生僻字𠀀和欧元€",
            attachment: None,
        },
        Case {
            name: "ISO-2022-JP subject and body",
            raw: msg(
                &format!(
                    "{BASE}Subject: {}\nContent-Type: text/plain; charset=ISO-2022-JP\n\
Content-Transfer-Encoding: 7bit\n",
                    encoded_word("ISO-2022-JP", &enc(ISO_2022_JP, "お問い合わせ"))
                ),
                &enc(ISO_2022_JP, "注文番号を確認してください。"),
            ),
            subject: Some("お問い合わせ"),
            text: "注文番号を確認してください。",
            attachment: None,
        },
        Case {
            name: "Big5 body, Big5 QP encoded-word subject",
            raw: msg(
                &format!(
                    "{BASE}Subject: =?big5?Q?{}?=\nContent-Type: text/plain; charset=big5\n\
Content-Transfer-Encoding: 8bit\n",
                    enc(BIG5, "繁體")
                        .iter()
                        .map(|b| format!("={b:02X}"))
                        .collect::<String>()
                ),
                &enc(BIG5, "請問何時出貨？"),
            ),
            subject: Some("繁體"),
            text: "請問何時出貨？",
            attachment: None,
        },
        Case {
            name: "UTF-8 quoted-printable with soft breaks",
            raw: msg(
                &format!(
                    "{BASE}Subject: =?utf-8?Q?caf=C3=A9_=E5=92=96=E5=95=A1?=\n\
Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n"
                ),
                qp("一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十 end".as_bytes())
                    .as_bytes(),
            ),
            subject: Some("café 咖啡"),
            text: "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十 end",
            attachment: None,
        },
        Case {
            name: "RFC 2231 filename continuation",
            raw: msg(
                &format!(
                    "{BASE}Subject: f\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\n\
Content-Type: text/plain\n\nsee file\n--zz\nContent-Type: application/octet-stream\n\
Content-Disposition: attachment;\n filename*0*=utf-8''%E5%90%88%E5%90%8C;\n filename*1*=%E6%89%AB%E6%8F%8F;\n filename*2=.pdf\n\nx\n--zz--\n"
                ),
                b"",
            ),
            subject: Some("f"),
            text: "see file",
            attachment: Some("合同扫描.pdf"),
        },
    ];
    assert!(!cases.is_empty());
    for c in cases {
        let p = parse(&c.raw);
        assert!(!p.unparsable, "{}: {:?}", c.name, p.problems);
        assert_eq!(p.subject.as_deref(), c.subject, "{}", c.name);
        assert_eq!(p.text.trim(), c.text, "{}", c.name);
        assert_eq!(
            p.attachments.first().and_then(|a| a.filename.as_deref()),
            c.attachment,
            "{}",
            c.name
        );
        let from = p.from.as_ref().expect("from");
        assert_eq!(from.address, "zhang@example.cn", "{}", c.name);
        assert_eq!(from.name.as_deref(), Some("张三"), "{}", c.name);
        assert_eq!(p.message_id.as_deref(), Some("m1@example.cn"));
        assert!(p.problems.is_empty(), "{}: {:?}", c.name, p.problems);
        assert_eq!(p.size, c.raw.len());
    }
}

#[test]
fn broken_and_missing() {
    struct Case {
        name: &'static str,
        raw: Vec<u8>,
        unparsable: bool,
        problem: Option<Problem>,
        text_contains: &'static str,
    }
    let cases = vec![
        Case {
            name: "zero bytes",
            raw: vec![],
            unparsable: true,
            problem: Some(Problem::Empty),
            text_contains: "",
        },
        Case {
            name: "missing closing boundary",
            raw: msg(
                &format!(
                    "{BASE}Subject: x\nContent-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n"
                ),
                b"truncated body here",
            ),
            unparsable: false,
            problem: None,
            text_contains: "truncated body",
        },
        Case {
            name: "bad base64",
            raw: msg(
                &format!(
                    "{BASE}Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n"
                ),
                b"5L2g5aW9!!!@@@###\r\n",
            ),
            unparsable: false,
            problem: Some(Problem::BadTransferEncoding { part: 0 }),
            // What decoded before the break is kept.
            text_contains: "你好",
        },
        Case {
            name: "no headers at all",
            raw: b"\r\njust a body".to_vec(),
            unparsable: false,
            problem: Some(Problem::MissingHeader {
                name: "From".into(),
            }),
            text_contains: "just a body",
        },
        Case {
            name: "missing Message-ID and Date",
            raw: msg("From: a@b.cn\nSubject: hi\n", b"hello"),
            unparsable: false,
            problem: Some(Problem::MissingHeader {
                name: "Message-ID".into(),
            }),
            text_contains: "hello",
        },
        Case {
            name: "bad date",
            raw: msg(
                "From: a@b.cn\nDate: yesterday-ish\nMessage-ID: <x@y>\n",
                b"hello",
            ),
            unparsable: false,
            problem: Some(Problem::BadHeader {
                name: "Date".into(),
            }),
            text_contains: "hello",
        },
        Case {
            name: "binary garbage",
            raw: vec![0xff, 0x00, 0xfe, 0x0d, 0x0a, 0x80],
            unparsable: false,
            problem: None,
            text_contains: "",
        },
    ];
    for c in cases {
        let p = parse(&c.raw);
        if c.name != "binary garbage" {
            assert_eq!(p.unparsable, c.unparsable, "{}: {p:?}", c.name);
        }
        if let Some(problem) = &c.problem {
            assert!(p.problems.contains(problem), "{}: {:?}", c.name, p.problems);
        }
        assert!(p.text.contains(c.text_contains), "{}: {:?}", c.name, p.text);
    }
}

#[test]
fn html_only_inline_images_and_quotes() {
    let raw = msg(
        &format!(
            "{BASE}Subject: Re: [#1024] 退款\nIn-Reply-To: <out-2@kefu.example>\n\
References: <out-1@kefu.example>\n <out-2@kefu.example>\n\
Cc: Support <support+abcdefgh23@kefu.example>\n\
Content-Type: multipart/related; boundary=r\n\n--r\nContent-Type: text/html; charset=utf-8\n\n\
<p>好的，收到了<img src=\"cid:logo@x\"></p><script>alert(1)</script>\
<div>在 2024年1月1日 10:00，客服 写道：</div><blockquote>旧内容</blockquote>\n\
--r\nContent-Type: image/png\nContent-ID: <logo@x>\nContent-Transfer-Encoding: base64\n\n{}\n--r--\n",
            b64(b"\x89PNG\r\n")
        ),
        b"",
    );
    let p = parse(&raw);
    let html = p.html.as_deref().expect("html");
    assert!(!html.contains("script"), "{html}");
    assert!(html.contains("src=\"cid/logo@x\""), "{html}");
    assert!(p.text.contains("好的，收到了"), "{}", p.text);
    assert!(p.text.contains("旧内容"), "{}", p.text);
    assert_eq!(p.visible_text, "好的，收到了", "{}", p.text);
    let img = &p.attachments[0];
    assert_eq!(img.content_type, "image/png");
    assert_eq!(img.content_id.as_deref(), Some("logo@x"));
    assert!(img.inline);
    assert_eq!(img.bytes, b"\x89PNG\r\n");

    let hints = thread_hints(&p, "Support@kefu.example");
    assert_eq!(hints.token.as_ref().map(|t| t.as_str()), Some("abcdefgh23"));
    assert_eq!(
        hints.message_ids,
        ["out-2@kefu.example", "out-1@kefu.example"]
    );
    assert_eq!(hints.ticket_number, Some(1024));
    // Another inbox's token is not ours.
    assert_eq!(thread_hints(&p, "sales@kefu.example").token, None);
}

#[test]
fn delivered_to_carries_the_token() {
    let raw = msg(
        "From: a@b.cn\nTo: list@corp.example\nDelivered-To: support+zzzzzzzz@kefu.example\n\
X-Original-To: other@kefu.example\nSubject: hi\n",
        b"x",
    );
    let hints = thread_hints(&parse(&raw), "support@kefu.example");
    assert_eq!(
        hints.token.map(|t| t.to_string()).as_deref(),
        Some("zzzzzzzz")
    );
    assert!(hints.message_ids.is_empty());
    assert_eq!(hints.ticket_number, None);
}

#[test]
fn auto_replies_and_bulk() {
    let cases: [(&str, Option<&str>); 12] = [
        ("Auto-Submitted: auto-replied\n", Some("auto")),
        ("Auto-Submitted: auto-generated; owner=x\n", Some("auto")),
        ("Auto-Submitted: no\n", None),
        ("Precedence: bulk\n", Some("bulk")),
        ("Precedence: junk\n", Some("bulk")),
        ("Precedence: list\n", Some("bulk")),
        ("Precedence: auto_reply\n", Some("auto")),
        ("X-Autoreply: yes\n", Some("auto")),
        ("X-Autorespond: Out of office\n", Some("auto")),
        ("List-Id: <news.example.com>\n", Some("bulk")),
        ("List-Unsubscribe: <mailto:u@example.com>\n", Some("bulk")),
        ("X-Mailer: Foxmail\n", None),
    ];
    for (header, want) in cases {
        let p = parse(&msg(
            &format!("From: a@b.cn\n{header}Subject: x\n"),
            b"body",
        ));
        let got = match &p.kind {
            MailKind::Normal => None,
            MailKind::AutoReply { .. } => Some("auto"),
            MailKind::Bulk { .. } => Some("bulk"),
            MailKind::Bounce(_) => Some("bounce"),
        };
        assert_eq!(got, want, "{header}: {:?}", p.kind);
        assert_eq!(p.kind.is_automated(), want.is_some());
    }
}

fn dsn(returned_part: &str) -> Vec<u8> {
    msg(
        &format!(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\nTo: support@kefu.example\n\
Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"dsn\"\n\n\
--dsn\nContent-Type: text/plain\n\nYour message could not be delivered.\n\
--dsn\nContent-Type: message/delivery-status\n\n\
Reporting-MTA: dns; mx.example.com\n\n\
Final-Recipient: rfc822; nobody@example.com\nAction: failed\nStatus: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.com>: Recipient address rejected\n\n\
{returned_part}\n--dsn--\n"
        ),
        b"",
    )
}

#[test]
fn bounces() {
    let cases = [
        "--dsn\nContent-Type: message/rfc822\n\nFrom: support@kefu.example\n\
Message-ID: <out-9@kefu.example>\nSubject: hi\n\nbody",
        "--dsn\nContent-Type: text/rfc822-headers\n\nFrom: support@kefu.example\n\
Message-ID:\n <out-9@kefu.example>\nSubject: hi\n",
    ];
    for returned in cases {
        let p = parse(&dsn(returned));
        let MailKind::Bounce(b) = &p.kind else {
            panic!("not a bounce: {:?}", p.kind)
        };
        assert_eq!(b.original_message_id.as_deref(), Some("out-9@kefu.example"));
        assert_eq!(b.recipients.len(), 1);
        assert_eq!(b.recipients[0].final_recipient, "nobody@example.com");
        assert_eq!(b.recipients[0].action, "failed");
        assert_eq!(b.recipients[0].status, "5.1.1");
        assert!(b.is_permanent_failure());
        assert!(p.kind.is_automated());
    }
}

/// 30 MB must parse without panicking, and twice the input must not take four times as
/// long (a quadratic step would show here long before it hurts in production).
#[test]
fn huge_messages_are_linear() {
    let build = |mb: usize| {
        let line = "这是一行很长的正文内容，用于测试大邮件的解析速度。> quoted? no\r\n";
        let text: String = line.repeat(mb * 1024 * 1024 / line.len() / 2);
        let attachment = b64(&vec![0x5au8; mb * 1024 * 1024 / 2 * 3 / 4]);
        let wrapped: String = attachment
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
            .collect();
        msg(
            &format!(
                "{BASE}Subject: big\nContent-Type: multipart/mixed; boundary=B\n\n--B\n\
Content-Type: text/plain; charset=utf-8\n\n{text}\n--B\nContent-Type: application/zip\n\
Content-Disposition: attachment; filename=big.zip\nContent-Transfer-Encoding: base64\n\n{wrapped}\n--B--\n"
            ),
            b"",
        )
    };
    let time = |raw: &[u8]| {
        let start = std::time::Instant::now();
        let p = parse(raw);
        (start.elapsed(), p)
    };
    let small = build(8);
    let big = build(30);
    let (t_small, _) = time(&small);
    let (t_big, p) = time(&big);
    assert!(big.len() >= 30 * 1024 * 1024 * 9 / 10, "{}", big.len());
    assert_eq!(p.size, big.len());
    assert_eq!(p.attachments.len(), 1);
    assert!(p.attachments[0].bytes.len() > 10 * 1024 * 1024);
    assert!(p.text.len() > 10 * 1024 * 1024);
    // 30/8 = 3.75× the input; allow noise but not n².
    let ratio = t_big.as_secs_f64() / t_small.as_secs_f64().max(0.001);
    assert!(ratio < 9.0, "small {t_small:?}, big {t_big:?}");
}

/// Deterministic pseudo-random bytes and mutations of real messages never panic.
#[test]
fn random_bytes_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        dsn("--dsn\nContent-Type: message/rfc822\n\nMessage-ID: <a@b>\n\nx"),
        msg(
            &format!(
                "{BASE}Subject: =?gbk?B?zcu/7g==?=\nContent-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: text/html\n\n<p>x</p>\n--a--\n"
            ),
            b"",
        ),
    ];
    let alphabet = b"=?:;<>\"\r\n-\t @.Bq%*'abc";
    for round in 0..3000 {
        let mut raw = if round % 3 == 0 {
            (0..(next() % 400))
                .map(|_| next() as u8)
                .collect::<Vec<u8>>()
        } else {
            seeds[round % seeds.len()].clone()
        };
        for _ in 0..(next() % 12) {
            if raw.is_empty() {
                break;
            }
            let at = (next() as usize) % raw.len();
            match next() % 3 {
                0 => raw[at] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    raw.remove(at);
                }
                _ => raw.insert(at, next() as u8),
            }
        }
        let p = parse(&raw);
        assert!(
            !p.problems.contains(&Problem::Panicked),
            "round {round}: {raw:?}"
        );
    }
}

/// Real samples written by Python's `email` library (tests/resources/charsets/make.py):
/// charset labels outside the usual spelling (`eucgb2312_cn`, `cp936`/`ms936`,
/// `big5_tw`, `johab`), bodies whose bytes are not their declared charset, base64
/// broken half-way. Each `.eml` has a `.json` with what must be read from it; on a
/// mismatch the actual reading is written beside it as `.failed`.
#[test]
fn charset_samples() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resources/charsets");
    let mut emls: Vec<_> = std::fs::read_dir(&dir)
        .expect("resources/charsets")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    emls.sort();
    assert!(emls.len() >= 7, "samples missing: {emls:?}");
    let mut failed = Vec::new();
    for eml in &emls {
        let p = parse(&std::fs::read(eml).expect("read eml"));
        let got = serde_json::json!({
            "subject": p.subject,
            "from_name": p.from.as_ref().and_then(|f| f.name.clone()),
            "text": p.text,
            "attachments": p.attachments.iter().map(|a| serde_json::json!({
                "filename": a.filename,
                "content_type": a.content_type,
                "len": a.bytes.len(),
            })).collect::<Vec<_>>(),
            "problems": p.problems,
        });
        let expected = eml.with_extension("json");
        let want: Option<serde_json::Value> = std::fs::read(&expected)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let failed_path = eml.with_extension("failed");
        if want.as_ref() == Some(&got) {
            let _ = std::fs::remove_file(&failed_path);
        } else {
            let pretty = serde_json::to_string_pretty(&got).expect("json");
            std::fs::write(&failed_path, pretty + "\n").expect("write .failed");
            failed.push(eml.file_name().map(|n| n.to_string_lossy().into_owned()));
        }
    }
    assert!(failed.is_empty(), "differ (see .failed files): {failed:?}");
}
