//! Time is UTC everywhere. The database holds milliseconds since the Unix
//! epoch as a 64-bit integer in both dialects: it sorts and compares the same
//! way in SQLite and PostgreSQL, which text timestamps do not.

use chrono::{DateTime, TimeZone, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now()
}

pub fn to_millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// Out-of-range values (only possible by editing the database by hand) fall
/// back to the epoch rather than panicking.
pub fn from_millis(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
