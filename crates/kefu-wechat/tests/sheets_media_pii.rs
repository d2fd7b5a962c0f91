//! Spreadsheets (GBK / UTF-8-BOM CSV, XLSX), the media index, PII masking on
//! Chinese message text, sessionizing a real stream, and "no input panics".

use kefu_wechat::media::{MatchedBy, MediaIndex, Resolution};
use kefu_wechat::pii::{PiiMode, PiiPolicy, PiiSummary};
use kefu_wechat::*;
use serde_json::json;

fn contacts(items: impl Iterator<Item = Item>) -> (Vec<ContactRecord>, Vec<Rejected>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for item in items {
        match item {
            Ok(Record::Contact(c)) => ok.push(c),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

const CSV: &str = "客户名称,描述,添加人,添加人账号,添加人所属部门,添加时间,来源,手机,企业,邮箱,地址,职务,身份证号,标签组1(客户等级),标签组2（地区）,标签\n\
张三,老客户,李四,lisi,销售部,2023-05-01 08:00:00,扫描二维码,13800000000、13900000000,某某公司,zs@example.com,北京市,经理,11010519491231002X,VIP、重要,北京,\"线上,活动\"\n\
王五,,李四,lisi,销售部,2023/5/2 9:30,搜索手机号,1.38E+10,,,,,3.40524E+17,,,\n\
,,,,,,,,,,,,,,,\n\
,只有备注,,,,,,,,,,,,,,\n";

fn check_csv_rows(people: &[ContactRecord], rejected: &[Rejected]) {
    assert_eq!(people.len(), 2, "{rejected:?}");
    let zs = &people[0];
    assert_eq!(zs.name.as_deref(), Some("张三"));
    assert_eq!(zs.description.as_deref(), Some("老客户"));
    assert_eq!(zs.owner.as_deref(), Some("lisi"));
    assert_eq!(zs.attributes["owner_name"], "李四");
    assert_eq!(zs.added_at, Some(1_682_899_200_000), "Beijing time");
    assert_eq!(zs.phones, ["13800000000", "13900000000"]);
    assert_eq!(
        (
            zs.company.as_deref(),
            zs.email.as_deref(),
            zs.position.as_deref()
        ),
        (Some("某某公司"), Some("zs@example.com"), Some("经理"))
    );
    assert_eq!(zs.attributes["source"], "扫描二维码");
    assert_eq!(zs.attributes["address"], "北京市");
    assert_eq!(zs.attributes["添加人所属部门"], "销售部");
    let tags: Vec<_> = zs
        .tags
        .iter()
        .map(|t| (t.group.as_deref(), t.name.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        tags,
        [
            (Some("客户等级"), "VIP"),
            (Some("客户等级"), "重要"),
            (Some("地区"), "北京"),
            (None, "线上"),
            (None, "活动")
        ]
    );
    assert!(
        zs.identities
            .contains(&Identity::new(IdentityKind::Email, "zs@example.com"))
    );
    assert!(zs.warnings.is_empty(), "{:?}", zs.warnings);
    let ww = &people[1];
    assert!(ww.phones.is_empty(), "a mangled phone is not used");
    assert_eq!(ww.warnings.len(), 2, "{:?}", ww.warnings);
    assert!(ww.warnings.iter().any(|w| w.contains("3.40524E+17")));
    assert_eq!(ww.attributes["身份证号"], "3.40524E+17");
    assert_eq!(ww.added_at, Some(1_682_991_000_000));
    // The blank row is skipped; the row with only a remark is rejected.
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].line, 5);
}

#[test]
fn csv_gbk_and_utf8_bom() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(CSV);
    assert!(!unmappable);
    let gbk_path = dir.path().join("客户列表.csv");
    std::fs::write(&gbk_path, &gbk).expect("write");
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(CSV.as_bytes());
    let bom_path = dir.path().join("bom.csv");
    std::fs::write(&bom_path, &bom).expect("write");
    // A CSV without the .csv extension is recognized by its header.
    let plain_path = dir.path().join("export.txt");
    std::fs::write(&plain_path, CSV).expect("write");
    for path in [&gbk_path, &bom_path, &plain_path] {
        let (format, items) = open(path, None, SheetOptions::default()).expect("open");
        assert_eq!(format, Format::Csv);
        let (people, rejected) = contacts(items);
        check_csv_rows(&people, &rejected);
    }
    let csv = CsvRecords::new(
        std::fs::File::open(&gbk_path).expect("open"),
        SheetOptions::default(),
    )
    .expect("csv");
    assert_eq!(csv.encoding, "gb18030");
}

/// A customer list saved by Excel on Traditional Chinese Windows: Big5, no
/// BOM, CRLF. Read as GB18030 it was mojibake; it is detected, and
/// `--encoding` (SheetOptions::encoding) overrides detection.
#[test]
fn csv_big5_detected_and_encoding_forced() {
    let text = "客戶名稱,手機,電子郵件,公司,地址,標籤\r\n\
                陳大文,0912345678,tai.man@example.com.tw,台灣積體電路製造股份有限公司,新竹市東區力行六路8號,重要客戶\r\n\
                林美玲,0987654321,mei@example.com.hk,鴻海精密工業股份有限公司,臺北市信義區市府路45號,\r\n";
    let (big5, _, unmappable) = encoding_rs::BIG5.encode(text);
    assert!(!unmappable);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("客戶名單.csv");
    std::fs::write(&path, &big5).expect("write");
    let (format, items) = open(&path, None, SheetOptions::default()).expect("open");
    assert_eq!(format, Format::Csv);
    let (people, rejected) = contacts(items);
    assert!(rejected.is_empty(), "{rejected:?}");
    let names: Vec<_> = people.iter().map(|p| p.name.as_deref()).collect();
    assert_eq!(names, [Some("陳大文"), Some("林美玲")]);
    assert_eq!(
        people[0].company.as_deref(),
        Some("台灣積體電路製造股份有限公司")
    );
    assert_eq!(people[0].email.as_deref(), Some("tai.man@example.com.tw"));
    let csv = CsvRecords::new(&big5[..], SheetOptions::default()).expect("csv");
    assert_eq!(csv.encoding, "Big5");

    // Forced: the same bytes read as the user says, whatever detection thinks.
    let forced = SheetOptions {
        encoding: Some(encoding_for_label("gbk").expect("label")),
        ..Default::default()
    };
    let csv = CsvRecords::new(&big5[..], forced).expect("csv");
    assert_eq!(csv.encoding, "gb18030");
    let (people, _) = contacts(csv);
    assert!(
        people.iter().all(|p| p.name.as_deref() != Some("陳大文")),
        "read as told: {people:?}"
    );
    let big5_opts = SheetOptions {
        encoding: Some(encoding_for_label("big5").expect("label")),
        ..Default::default()
    };
    let (people, _) = contacts(CsvRecords::new(&big5[..], big5_opts).expect("csv"));
    assert_eq!(people[1].name.as_deref(), Some("林美玲"));
    assert!(encoding_for_label("no-such-encoding").is_err());
}

#[test]
fn csv_configurable_offset() {
    let text = "姓名,添加时间\n甲,2023-05-01 00:00:00\n";
    let opts = SheetOptions {
        utc_offset_secs: 0,
        ..Default::default()
    };
    let (people, _) = contacts(CsvRecords::new(text.as_bytes(), opts).expect("csv"));
    assert_eq!(people[0].added_at, Some(1_682_899_200_000));
}

#[test]
fn xlsx_generated() {
    use rust_xlsxwriter::{ExcelDateTime, Format as XFormat, Workbook};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("客户.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let headers = [
        "客户名称",
        "添加时间",
        "手机",
        "身份证号",
        "标签组1(等级)",
        "企业",
    ];
    for (i, h) in headers.iter().enumerate() {
        ws.write_string(0, i as u16, *h).expect("header");
    }
    let date_fmt = XFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let when = ExcelDateTime::parse_from_str("2023-05-01 08:00:00").expect("date");
    ws.write_string(1, 0, "张三").expect("cell");
    ws.write_datetime_with_format(1, 1, &when, &date_fmt)
        .expect("cell");
    ws.write_number(1, 2, 13800000000.0).expect("cell");
    ws.write_string(1, 3, "11010519491231002X").expect("cell");
    ws.write_string(1, 4, "VIP、重要").expect("cell");
    ws.write_string(1, 5, "某某公司").expect("cell");
    ws.write_string(2, 0, "李四").expect("cell");
    ws.write_string(2, 1, "2023-05-02 09:30:00").expect("cell");
    ws.write_number(2, 2, 13900000000.0).expect("cell");
    // Excel stored the 18-digit id as a number: precision is gone.
    ws.write_number(2, 3, 340524199001011000.0).expect("cell");
    wb.save(&path).expect("save");

    let (format, items) = open(&path, None, SheetOptions::default()).expect("open");
    assert_eq!(format, Format::Xlsx);
    let (people, rejected) = contacts(items);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(people.len(), 2);
    assert_eq!(people[0].added_at, Some(1_682_899_200_000));
    assert_eq!(people[0].phones, ["13800000000"]);
    assert_eq!(people[0].tags.len(), 2);
    assert_eq!(people[0].attributes["身份证号"], "11010519491231002X");
    assert_eq!(people[1].added_at, Some(1_682_991_000_000));
    assert_eq!(people[1].warnings.len(), 1, "{:?}", people[1].warnings);

    let garbage = dir.path().join("broken.xlsx");
    std::fs::write(&garbage, b"PK\x03\x04 not really a zip").expect("write");
    assert!(open(&garbage, None, SheetOptions::default()).is_err());
}

#[test]
fn media_present_missing_and_md5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("voice")).expect("mkdir");
    std::fs::write(root.join("IMG_MEDIA.jpg"), b"\xFF\xD8\xFF\xE0jpeg").expect("write");
    std::fs::write(
        root.join("voice").join("VOICE_MEDIA.amr"),
        b"#!AMR\n\x00\x01",
    )
    .expect("write");
    std::fs::write(root.join("SDKVOICE"), b"\x02#!SILK_V3\x0c\x00").expect("write");
    std::fs::write(root.join("whatever-name.bin"), b"hello").expect("write");
    let mut index = MediaIndex::scan(root).expect("scan");
    assert_eq!(index.files, 4);

    let kf = |id: &str| MediaRef {
        kind: Some(MediaKind::Image),
        media_id: Some(id.into()),
        ..MediaRef::default()
    };
    match index.resolve(&kf("IMG_MEDIA")) {
        Resolution::Found { mime, by, .. } => {
            assert_eq!((mime, by), (Some("image/jpeg"), MatchedBy::FileName))
        }
        other => panic!("{other:?}"),
    }
    match index.resolve(&kf("VOICE_MEDIA")) {
        Resolution::Found { mime, path, .. } => {
            assert_eq!(mime, Some("audio/amr"));
            assert!(path.ends_with("voice/VOICE_MEDIA.amr"));
        }
        other => panic!("{other:?}"),
    }
    let silk = MediaRef {
        sdkfileid: Some("SDKVOICE".into()),
        md5sum: Some("x".into()),
        duration_secs: Some(5),
        ..MediaRef::default()
    };
    assert!(matches!(
        index.resolve(&silk),
        Resolution::Found {
            mime: Some("audio/silk"),
            ..
        }
    ));
    assert_eq!(
        index.resolve(&kf("GONE")),
        Resolution::Missing {
            keys: vec!["GONE".into()]
        }
    );
    // md5("hello") names no file, but matches by content once hashed.
    let by_md5 = MediaRef {
        md5sum: Some("5D41402ABC4B2A76B9719D911017C592".into()),
        ..MediaRef::default()
    };
    assert!(matches!(index.resolve(&by_md5), Resolution::Missing { .. }));
    assert_eq!(index.hash_files(), 4);
    assert!(matches!(
        index.resolve(&by_md5),
        Resolution::Found {
            by: MatchedBy::ContentMd5,
            ..
        }
    ));
}

#[test]
fn pii_on_chinese_messages() {
    let line = json!({"msgid": "13812345678", "action": "send", "from": "wmCustomer", "tolist": ["13900001111"],
        "roomid": "", "msgtime": 1, "msgtype": "text",
        "text": {"content": "我的电话是13812345678，身份证11010519491231002X；卡号6222 0200 1234 5671。邮箱zhang＠qq.com，订单号2138123456789"}});
    let line = line.to_string();
    let mut items = JsonRecords::new(Format::Archive, line.as_bytes());
    let Some(Ok(Record::Message(mut m))) = items.next() else {
        panic!("message")
    };
    let policy = PiiPolicy::all(PiiMode::Mask);
    let mut summary = PiiSummary::default();
    policy.apply_to_message(&mut m, &mut summary);
    let want = "我的电话是138****5678，身份证110105********002X；卡号6222 **** **** 5671。邮箱z***＠qq.com，订单号2138123456789";
    assert_eq!(m.text, want);
    assert_eq!(m.raw["text"]["content"], want);
    assert_eq!(m.msgid, "13812345678", "ids are never scanned");
    assert_eq!(m.raw["tolist"][0], "13900001111");
    assert_eq!(
        (
            summary.mobile.masked,
            summary.resident_id.masked,
            summary.bank_card.masked,
            summary.email.masked
        ),
        (1, 1, 1, 1)
    );
    let report = serde_json::to_string(&summary).expect("serialize");
    assert!(report.contains("\"resident_id\""));
}

#[test]
fn sessionizer_over_kf_stream() {
    let item = |id: &str, t: i64, ev: Option<i64>| match ev {
        None => {
            json!({"msgid": id, "external_userid": "wm1", "open_kfid": "wk1", "send_time": t, "origin": 3, "msgtype": "text", "text": {"content": id}})
        }
        Some(c) => json!({"msgid": id, "send_time": t, "origin": 4, "msgtype": "event",
                          "event": {"event_type": "session_status_change", "external_userid": "wm1", "open_kfid": "wk1", "change_type": c}}),
    };
    let lines = [
        item("a", 0, None),
        item("p", 10, Some(1)),
        item("b", 20, None),
        item("end", 30, Some(3)),
        item("c", 40, None),
    ];
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    let mut s = Sessionizer::default();
    let starts: Vec<(String, bool)> = JsonRecords::new(Format::KfMessages, text.as_bytes())
        .filter_map(|i| i.ok())
        .filter_map(|r| match r {
            Record::Message(m) => Some((m.msgid.clone(), s.push_message(&m))),
            _ => None,
        })
        .collect();
    let flags: Vec<bool> = starts.iter().map(|(_, f)| *f).collect();
    assert_eq!(flags, [true, false, false, false, true]);
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Bytes biased towards JSON syntax so the parsers go deep.
    let alphabet: &[u8] =
        b"{}[],:\"\\\n 0123456789eE+-.xX@tnrufals\xEF\xBB\xBF\xE4\xB8\xAD\x02#!AMR";
    let seeds = [
        r#"{"msg_list":[{"msgid":"a","send_time":1,"origin":3,"msgtype":"event","event":{"event_type":"session_status_change","change_type":3}}]}"#,
        r#"{"msgid":"a","action":"send","from":"wm","tolist":["k"],"msgtime":1,"msgtype":"chatrecord","chatrecord":{"item":[{"type":"text","content":"{}"}]}}"#,
        "客户名称,手机,添加时间\n张三,3.4E+17,2023-01-01\n",
    ];
    for round in 0..3000 {
        let mut input: Vec<u8> = if round % 3 == 0 {
            let seed = seeds[(rng.next() % seeds.len() as u64) as usize]
                .as_bytes()
                .to_vec();
            let mut s = seed;
            for _ in 0..(rng.next() % 6) {
                if s.is_empty() {
                    break;
                }
                let i = (rng.next() % s.len() as u64) as usize;
                s[i] = alphabet[(rng.next() % alphabet.len() as u64) as usize];
            }
            s
        } else {
            (0..rng.next() % 200)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect()
        };
        if round % 7 == 0 {
            input.extend((0..rng.next() % 50).map(|_| rng.next() as u8));
        }
        let _ = detect(&input, None);
        for format in Format::ALL.into_iter().filter(|f| f.is_json()) {
            for item in JsonRecords::new(format, input.as_slice()) {
                if let Ok(Record::Message(mut m)) = item {
                    PiiPolicy::all(PiiMode::Mask)
                        .apply_to_message(&mut m, &mut PiiSummary::default());
                }
            }
        }
        if let Ok(csv) = CsvRecords::new(input.as_slice(), SheetOptions::default()) {
            csv.for_each(drop);
        }
        let text = String::from_utf8_lossy(&input);
        PiiPolicy::all(PiiMode::Drop).apply(&text, &mut PiiSummary::default());
        let _ = media::sniff_mime(&input);
    }
}
