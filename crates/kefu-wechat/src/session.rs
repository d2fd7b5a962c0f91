//! [`Sessionizer`]: where one customer's conversation with one account ends
//! and the next begins.
//!
//! WeChat keeps one endless chat per customer; kefu has conversations. When
//! the export has session events (微信客服 `session_status_change`, OA
//! close records), an "ended" event closes the conversation and the next
//! message opens a new one. Without them, a silence longer than the gap
//! (default 24 h) does. Once a stream has shown session events, gaps no
//! longer split it: a customer waiting two days on an open session is still
//! in that session.

use crate::model::{MessageRecord, SessionChangeKind};
use serde::Serialize;

/// Pure and streaming: feed one customer+account's messages in time order.
#[derive(Debug, Clone, Serialize)]
pub struct Sessionizer {
    gap_ms: i64,
    /// Time of the previous message, to measure the gap.
    last_at: Option<i64>,
    /// Whether the stream has shown session events: they then decide alone.
    has_session_events: bool,
    /// The previous message ended the session: the next one starts anew.
    ended: bool,
}

/// Default silence that separates two conversations.
pub const DEFAULT_GAP_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for Sessionizer {
    fn default() -> Self {
        Self::new(DEFAULT_GAP_MS)
    }
}

impl Sessionizer {
    pub fn new(gap_ms: i64) -> Self {
        Sessionizer {
            gap_ms: gap_ms.max(0),
            last_at: None,
            has_session_events: false,
            ended: false,
        }
    }

    /// Takes the next message (time in UTC ms, and its session change if it
    /// is a session event) and says whether it starts a new conversation.
    /// The "ended" event itself belongs to the conversation it closes.
    pub fn push(&mut self, sent_at: i64, session: Option<SessionChangeKind>) -> bool {
        let starts = match self.last_at {
            None => true,
            Some(_) if self.ended => true,
            Some(last) => !self.has_session_events && sent_at.saturating_sub(last) > self.gap_ms,
        };
        if session.is_some() {
            self.has_session_events = true;
        }
        self.ended = session == Some(SessionChangeKind::Ended);
        self.last_at = Some(self.last_at.map_or(sent_at, |l| l.max(sent_at)));
        starts
    }

    /// [`Sessionizer::push`] for a record.
    pub fn push_message(&mut self, m: &MessageRecord) -> bool {
        self.push(m.sent_at, m.session.as_ref().map(|s| s.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionChangeKind::*;

    const H: i64 = 60 * 60 * 1000;

    /// Each case: messages as (hour, session event), expected "starts" flags.
    #[test]
    fn table() {
        type Case<'a> = (&'a str, &'a [(i64, Option<SessionChangeKind>)], &'a [bool]);
        let cases: &[Case] = &[
            ("empty", &[], &[]),
            ("first opens", &[(0, None)], &[true]),
            (
                "short gaps stay",
                &[(0, None), (1, None), (20, None)],
                &[true, false, false],
            ),
            (
                "long gap splits",
                &[(0, None), (25, None), (26, None)],
                &[true, true, false],
            ),
            (
                "exactly the gap stays",
                &[(0, None), (24, None)],
                &[true, false],
            ),
            (
                "ended splits",
                &[(0, None), (1, Some(Ended)), (2, None)],
                &[true, false, true],
            ),
            (
                "ended then reopened",
                &[(0, None), (1, Some(Ended)), (2, Some(Reopened)), (3, None)],
                &[true, false, true, false],
            ),
            (
                "events disable gap",
                &[(0, Some(Picked)), (1, None), (100, None)],
                &[true, false, false],
            ),
            (
                "transfer does not split",
                &[(0, None), (1, Some(Transferred)), (2, None)],
                &[true, false, false],
            ),
            (
                "gap before first event splits",
                &[(0, None), (30, Some(Picked)), (31, None)],
                &[true, true, false],
            ),
            (
                "ended as first message",
                &[(0, Some(Ended)), (1, None)],
                &[true, true],
            ),
            (
                "out of order does not split",
                &[(0, None), (30, None), (5, None)],
                &[true, true, false],
            ),
        ];
        for (name, input, want) in cases {
            let mut s = Sessionizer::default();
            let got: Vec<bool> = input.iter().map(|(h, e)| s.push(h * H, *e)).collect();
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn custom_gap() {
        let mut s = Sessionizer::new(30 * 60 * 1000);
        assert!(s.push(0, None));
        assert!(s.push(H, None));
    }
}
