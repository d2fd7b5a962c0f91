//! What goes over the wire, without I/O: the frames the load sends, the
//! frames it reads (one enum variant per kind it cares about), the tag it
//! puts in each message's text so the agent side can tell which scheduled
//! send it is, and the small parsers of the command line (durations,
//! address ranges). Tested with plain tables.

use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// `hello`, the first frame of a widget socket.
pub fn hello(token: &str) -> String {
    json!({ "type": "hello", "token": token, "resume": {} }).to_string()
}

/// A customer's `send`. `conversation_id` is what the widget passes once
/// it knows it (the first send opens the conversation).
pub fn send(client_id: &str, conversation_id: Option<&str>, text: &str) -> String {
    let mut v = json!({ "type": "send", "client_id": client_id, "text": text });
    if let Some(c) = conversation_id {
        v["conversation_id"] = Value::from(c);
    }
    v.to_string()
}

/// The server frames the load looks at; everything else is `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    WidgetWelcome,
    AgentWelcome,
    Ack {
        client_id: String,
        conversation_id: String,
    },
    /// A message on an agent socket, with its text.
    Message {
        text: String,
    },
    Error {
        code: String,
        client_id: Option<String>,
    },
    Resync,
    Other(String),
}

impl Frame {
    /// Parses a text frame; `None` when it is not a JSON object with a type.
    pub fn parse(text: &str) -> Option<Frame> {
        let v: Value = serde_json::from_str(text).ok()?;
        let str_of = |v: &Value| v.as_str().map(str::to_string);
        let ty = v.get("type")?.as_str()?;
        Some(match ty {
            "widget_welcome" => Frame::WidgetWelcome,
            "agent_welcome" => Frame::AgentWelcome,
            "ack" => Frame::Ack {
                client_id: str_of(&v["client_id"])?,
                conversation_id: str_of(&v["conversation_id"]).unwrap_or_default(),
            },
            "message" => Frame::Message {
                text: str_of(&v["message"]["text"])?,
            },
            "error" => Frame::Error {
                code: str_of(&v["code"]).unwrap_or_else(|| "?".into()),
                client_id: str_of(&v["client_id"]),
            },
            "resync" => Frame::Resync,
            other => Frame::Other(other.to_string()),
        })
    }
}

/// Which scheduled send a message is: run, ramp step and the global index
/// of the send in that step. The index gives the scheduled time, so neither
/// side needs a table of send times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub run: u32,
    pub step: u32,
    pub index: u64,
}

/// What follows the tag in each message: a customer's question of typical
/// length (about 60 bytes of UTF-8).
const FILLER: &str = "您好，我想查询一下订单的物流信息，谢谢";

impl Tag {
    pub fn text(&self) -> String {
        format!(
            "wsload {:08x} {} {} {FILLER}",
            self.run, self.step, self.index
        )
    }

    pub fn client_id(&self) -> String {
        format!("{:08x}.{}.{}", self.run, self.step, self.index)
    }

    pub fn from_text(text: &str) -> Option<Tag> {
        let mut it = text.split(' ');
        if it.next()? != "wsload" {
            return None;
        }
        Some(Tag {
            run: u32::from_str_radix(it.next()?, 16).ok()?,
            step: it.next()?.parse().ok()?,
            index: it.next()?.parse().ok()?,
        })
    }

    pub fn from_client_id(id: &str) -> Option<Tag> {
        let mut it = id.split('.');
        let tag = Tag {
            run: u32::from_str_radix(it.next()?, 16).ok()?,
            step: it.next()?.parse().ok()?,
            index: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(tag)
    }
}

/// `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 30s, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// `1000,2000,4000` → the rates of a ramp.
pub fn parse_rates(s: &str) -> Result<Vec<f64>, String> {
    s.split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0 && r.is_finite())
                .ok_or_else(|| format!("{r:?} is not a positive rate"))
        })
        .collect()
}

/// The `n`-th address from `start` (127.0.0.2 + 3 = 127.0.0.5); `None`
/// past 255.255.255.255 or for IPv6 (loopback aliases are an IPv4 thing).
pub fn nth_ip(start: IpAddr, n: u32) -> Option<IpAddr> {
    match start {
        IpAddr::V4(v4) => u32::from(v4)
            .checked_add(n)
            .map(|x| IpAddr::V4(Ipv4Addr::from(x))),
        IpAddr::V6(_) => (n == 0).then_some(start),
    }
}

/// `http://host:port` → `ws://host:port/path` (and https → wss).
pub fn ws_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let table: &[(&str, Option<Frame>)] = &[
            (
                r#"{"type":"widget_welcome","contact_id":"c","conversations":[],"agents_online":true}"#,
                Some(Frame::WidgetWelcome),
            ),
            (
                r#"{"type":"agent_welcome","agent_id":"a","inbox_ids":[]}"#,
                Some(Frame::AgentWelcome),
            ),
            (
                r#"{"type":"ack","client_id":"m1","conversation_id":"c1","message_id":"x","seq":1,"duplicate":false}"#,
                Some(Frame::Ack {
                    client_id: "m1".into(),
                    conversation_id: "c1".into(),
                }),
            ),
            (
                r#"{"type":"message","inbox_id":"i","message":{"id":"x","text":"你好","seq":2}}"#,
                Some(Frame::Message {
                    text: "你好".into(),
                }),
            ),
            (
                r#"{"type":"error","code":"rate_limited","message":"slow down"}"#,
                Some(Frame::Error {
                    code: "rate_limited".into(),
                    client_id: None,
                }),
            ),
            (
                r#"{"type":"error","code":"internal","message":"x","client_id":"m2"}"#,
                Some(Frame::Error {
                    code: "internal".into(),
                    client_id: Some("m2".into()),
                }),
            ),
            (r#"{"type":"resync"}"#, Some(Frame::Resync)),
            (r#"{"type":"pong"}"#, Some(Frame::Other("pong".into()))),
            (r#"{"type":"ack"}"#, None),
            (r#"{"type":"message","message":{}}"#, None),
            ("[]", None),
            ("{", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(&Frame::parse(text), want, "{text}");
        }
    }

    #[test]
    fn sends_are_json() {
        let v: Value = serde_json::from_str(&send("a", Some("c"), "你好")).expect("json");
        assert_eq!(
            v,
            json!({"type":"send","client_id":"a","conversation_id":"c","text":"你好"})
        );
        let v: Value = serde_json::from_str(&send("a", None, "x")).expect("json");
        assert!(v.get("conversation_id").is_none());
        let v: Value = serde_json::from_str(&hello("v1.t")).expect("json");
        assert_eq!(v["token"], "v1.t");
    }

    #[test]
    fn tags_round_trip() {
        let t = Tag {
            run: 0xdead_beef,
            step: 3,
            index: 123_456,
        };
        assert_eq!(Tag::from_text(&t.text()), Some(t));
        assert_eq!(Tag::from_client_id(&t.client_id()), Some(t));
        assert!(t.client_id().len() <= 100, "client_id limit");
        for bad in ["", "wsload", "wsload zz 1 2", "hello 1 2 3", "wsload 1 x 2"] {
            assert_eq!(Tag::from_text(bad), None, "{bad}");
        }
        for bad in ["", "1.2", "1.2.3.4", "x.1.2", "1.x.2"] {
            assert_eq!(Tag::from_client_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_rates_addresses() {
        for (s, ms) in [
            ("500ms", 500),
            ("10s", 10_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("30", 30_000),
            ("1.5s", 1500),
        ] {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in ["", "s", "10x", "-1s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rates("1000, 2000"), Ok(vec![1000.0, 2000.0]));
        assert!(parse_rates("1000,0").is_err());
        assert!(parse_rates("").is_err());
        let start: IpAddr = "127.0.0.2".parse().expect("ip");
        assert_eq!(nth_ip(start, 0), Some(start));
        assert_eq!(nth_ip(start, 254), "127.0.1.0".parse().ok());
        assert_eq!(nth_ip("255.255.255.255".parse().expect("ip"), 1), None);
        assert_eq!(
            ws_url("http://127.0.0.1:8080/", "/ws/widget"),
            "ws://127.0.0.1:8080/ws/widget"
        );
        assert_eq!(
            ws_url("https://k.example", "/ws/agent"),
            "wss://k.example/ws/agent"
        );
    }
}
