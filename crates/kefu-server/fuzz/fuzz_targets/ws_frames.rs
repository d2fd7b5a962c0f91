//! Feeds arbitrary text to the WebSocket frame parser, as a socket task
//! does with every text frame: parsing must return, never panic; a parsed
//! frame must print for the log (`Debug`);
//! a refusal must encode to the JSON error frame the client is sent.
#![no_main]

use kefu_server::ws::protocol::{Inbound, Outbound};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // a WebSocket text frame is UTF-8 by the protocol
    };
    match Inbound::parse(text) {
        Ok(frame) => {
            let _ = format!("{frame:?}");
        }
        Err(message) => {
            let encoded = Outbound::error("bad_frame", message).to_text();
            let value: serde_json::Value =
                serde_json::from_str(&encoded).expect("an error frame is JSON");
            assert_eq!(value["type"], "error");
        }
    }
});
