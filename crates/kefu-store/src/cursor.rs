//! Keyset pagination. A cursor is the sort key of the last row returned,
//! opaque to clients (`<millis>.<uuid>`), so pages stay stable while new rows
//! arrive and cost the same at page 1 and page 10,000.

use crate::StoreError;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub(crate) fn encode(at_millis: i64, id: Uuid) -> String {
    format!("{at_millis}.{}", id.simple())
}

pub(crate) fn decode(cursor: &str) -> Result<(i64, Uuid), StoreError> {
    let bad = || StoreError::Invalid("cursor is not one this server gave".into());
    let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        at.parse().map_err(|_| bad())?,
        Uuid::try_parse(id).map_err(|_| bad())?,
    ))
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says that
/// another page exists.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> (i64, Uuid)) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|r| {
            let (a, i) = key(r);
            encode(a, i)
        })
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(
            decode(&encode(1_700_000_000_123, id)).ok(),
            Some((1_700_000_000_123, id))
        );
        for bad in ["", "x", "1.", ".abc", "12.not-a-uuid", "一.二"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
