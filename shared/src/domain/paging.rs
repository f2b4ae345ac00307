//! Cursor pagination: newest first, the cursor naming the last item seen (its creation
//! time and id), so pages stay stable while new items arrive.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// The most items a page may hold, and the default.
pub const MAX_LIMIT: u32 = 100;
pub const DEFAULT_LIMIT: u32 = 20;

/// Where a page starts: after `cursor` (the first page has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// The position of one item in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// Opaque to clients: base64url of `micros:uuid`.
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// What `encode` made; anything else is refused with a reason.
    pub fn decode(text: &str) -> Result<Cursor, String> {
        use base64::Engine;
        let invalid = || "is not a cursor this API gave (use next_cursor as it is)".to_owned();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(Cursor {
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }
}

/// One page of items, and the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// From up to `limit + 1` items fetched in order: the extra one says a next page exists.
    pub fn from_rows(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> Cursor) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = match more {
            true => items.last().map(|last| cursor_of(last).encode()),
            false => None,
        };
        Paged { items, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_junk_is_refused() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for junk in ["", "abc", "!!!", "MTIzOm5vdC1hLXV1aWQ"] {
            assert!(Cursor::decode(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_extra_row_makes_a_next_cursor() {
        let at = |i: i64| Cursor {
            created_at: DateTime::from_timestamp_micros(i).unwrap(),
            id: Uuid::nil(),
        };
        let page = Paged::from_rows(vec![3, 2, 1], 2, |i| at(*i));
        assert_eq!(page.items, vec![3, 2]);
        assert_eq!(page.next_cursor, Some(at(2).encode()));
        let last = Paged::from_rows(vec![1], 2, |i| at(*i));
        assert_eq!(last.next_cursor, None);
    }
}
