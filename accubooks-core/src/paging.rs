//! Pages of lists: the one place that knows how a list is cut.
//!
//! Every list (HTTP routes and Python methods alike) answers at most
//! [`Limit`] items (`?limit=` 1–[`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and,
//! when more remain, a [`Cursor`] naming where the next page starts.
//!
//! Paging is keyset paging, never `OFFSET`: a page is "the first `limit`
//! items whose sort key comes after the cursor's". Each list sorts on a key
//! that is unique and never changes (an id, or a tuple ending in one), so a
//! record added while a client pages sorts either before the page it is on
//! (and is not shown) or after it (and is shown once); no record that existed
//! when the first page was read is repeated or skipped.
//!
//! The cursor is opaque to clients: the hex of the JSON of the last item's
//! sort key. Only the list that made it can read it back; anything else is
//! [`PagingError::InvalidCursor`], never a server error.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Items a page holds when the request names no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most items a page holds, whatever the request asks.
pub const MAX_LIMIT: u32 = 500;
/// The query parameter that sets the page size.
pub const LIMIT_PARAM: &str = "limit";
/// The query parameter that carries the cursor.
pub const AFTER_PARAM: &str = "after";
/// Longest cursor accepted: the longest key of any list (a 254-character
/// e-mail address, a date with two ids) fits with room to spare, and a
/// longer text is refused before it is decoded.
const MAX_CURSOR_LEN: usize = 2048;

/// A page request that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PagingError {
    /// `limit` is not a whole number from 1 to [`MAX_LIMIT`].
    #[error("limit must be a whole number from 1 to 500 (default 100); {given:?} is not.")]
    InvalidLimit {
        /// What the request said.
        given: String,
    },
    /// `after` is not a cursor this list gave.
    #[error(
        "The after cursor is not one this list answered; start again without it, or follow \
         the URL of the Link header (rel=\"next\") as it is."
    )]
    InvalidCursor,
}

impl PagingError {
    /// The machine code of the error answer.
    pub fn code(&self) -> &'static str {
        match self {
            PagingError::InvalidLimit { .. } => "INVALID_LIMIT",
            PagingError::InvalidCursor => "INVALID_CURSOR",
        }
    }
}

/// How many items a page may hold: 1 to [`MAX_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Default for Limit {
    fn default() -> Self {
        Limit(DEFAULT_LIMIT)
    }
}

impl Limit {
    /// The largest page, for callers that read a list whole page by page.
    pub const MAX: Limit = Limit(MAX_LIMIT);

    /// A limit from a number; outside 1 to [`MAX_LIMIT`] it is refused.
    pub fn new(limit: i64) -> Result<Self, PagingError> {
        u32::try_from(limit)
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .map(Limit)
            .ok_or_else(|| PagingError::InvalidLimit {
                given: limit.to_string(),
            })
    }

    /// A limit from a query's text: absent, the default.
    pub fn parse(text: Option<&str>) -> Result<Self, PagingError> {
        let Some(text) = text else {
            return Ok(Limit::default());
        };
        let invalid = || PagingError::InvalidLimit {
            given: text.chars().take(40).collect(),
        };
        let number: i64 = text.trim().parse().map_err(|_| invalid())?;
        Limit::new(number).map_err(|_| invalid())
    }

    /// The number of items.
    pub fn get(self) -> u32 {
        self.0
    }

    /// How many rows a query fetches: one more than the page holds, so
    /// that the page knows whether another follows.
    pub fn fetch(self) -> i64 {
        i64::from(self.0) + 1
    }
}

/// Where a page starts: opaque text that names the sort key of the item
/// before it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// The cursor after an item whose sort key is `key`.
    pub fn after<K: Serialize>(key: &K) -> Self {
        let json = serde_json::to_vec(key).expect("sort keys serialize");
        Cursor(hex::encode(json))
    }

    /// The text a client sends back as `after`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the sort key back; any text this list did not make is
    /// [`PagingError::InvalidCursor`].
    pub fn key<K: DeserializeOwned>(text: &str) -> Result<K, PagingError> {
        if text.len() > MAX_CURSOR_LEN {
            return Err(PagingError::InvalidCursor);
        }
        let json = hex::decode(text.trim()).map_err(|_| PagingError::InvalidCursor)?;
        serde_json::from_slice(&json).map_err(|_| PagingError::InvalidCursor)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which page of a list to read: its size, and the sort key of the item
/// before it (`None`: the first page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// Most items the page holds.
    pub limit: Limit,
    /// The sort key the page starts after.
    pub after: Option<K>,
}

impl<K> Default for PageRequest<K> {
    fn default() -> Self {
        PageRequest {
            limit: Limit::default(),
            after: None,
        }
    }
}

impl<K: DeserializeOwned> PageRequest<K> {
    /// A request from the texts of `limit` and `after`, as a query or a
    /// Python call gives them.
    pub fn parse(limit: Option<&str>, after: Option<&str>) -> Result<Self, PagingError> {
        Ok(PageRequest {
            limit: Limit::parse(limit)?,
            after: after.map(Cursor::key).transpose()?,
        })
    }

    /// A request from a number and a cursor (the Python door's arguments).
    pub fn new(limit: Option<i64>, after: Option<&str>) -> Result<Self, PagingError> {
        Ok(PageRequest {
            limit: limit.map_or(Ok(Limit::default()), Limit::new)?,
            after: after.map(Cursor::key).transpose()?,
        })
    }
}

impl<K: Serialize> PageRequest<K> {
    /// Cuts the rows a query fetched ([`Limit::fetch`] of them, in sort
    /// order) into a page: at most `limit` items, and a cursor after the
    /// last when a row was left over.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> K) -> Page<Vec<T>> {
        let more = rows.len() > self.limit.get() as usize;
        rows.truncate(self.limit.get() as usize);
        let next = if more {
            rows.last().map(|last| Cursor::after(&key(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next,
            limit: self.limit,
        }
    }
}

/// One page of a list (or of a report's rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items (for a report, the report with this page's rows).
    pub items: T,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// The limit the page was read with, repeated in the next page's link.
    pub limit: Limit,
}

impl<T> Page<T> {
    /// The page with its items changed by `f`, its cursor kept.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Page<U> {
        Page {
            items: f(self.items),
            next: self.next,
            limit: self.limit,
        }
    }
}

/// The `Link` header value (RFC 8288) of the page after this one: the
/// request's own path and query with `after` and `limit` replaced, so the
/// filters of the request carry over. The URI is relative to the request's
/// (a proxy's host and scheme stay the client's).
pub fn next_link(path: &str, query: Option<&str>, next: &Cursor, limit: Limit) -> String {
    let kept = query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            name != LIMIT_PARAM && name != AFTER_PARAM
        });
    let mut url = format!("{path}?{AFTER_PARAM}={next}&{LIMIT_PARAM}={}", limit.get());
    for pair in kept {
        url.push('&');
        url.push_str(pair);
    }
    format!("<{url}>; rel=\"next\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_one_to_five_hundred_with_a_default_of_a_hundred() {
        assert_eq!(Limit::parse(None).unwrap().get(), 100);
        assert_eq!(Limit::parse(Some("1")).unwrap().get(), 1);
        assert_eq!(Limit::parse(Some("500")).unwrap().get(), 500);
        for bad in ["0", "501", "-1", "x", "", "1.5", "99999999999999999999"] {
            let err = Limit::parse(Some(bad)).unwrap_err();
            assert_eq!(err.code(), "INVALID_LIMIT", "{bad}");
            assert!(err.to_string().contains("limit"), "{err}");
        }
    }

    #[test]
    fn cursors_read_back_their_key_and_refuse_anything_else() {
        let cursor = Cursor::after(&("2026-01-31", 42_i64, 3_i32));
        let key: (String, i64, i32) = Cursor::key(cursor.as_str()).unwrap();
        assert_eq!(key, ("2026-01-31".to_owned(), 42, 3));
        assert_eq!(Cursor::key::<i64>(Cursor::after(&7_i64).as_str()), Ok(7));
        for bad in ["", "zz", "5b", "not a cursor", &"a".repeat(5000)] {
            assert_eq!(Cursor::key::<i64>(bad), Err(PagingError::InvalidCursor));
        }
        // Another list's cursor is refused, not misread.
        assert_eq!(
            Cursor::key::<i64>(Cursor::after(&"a@b.example").as_str()),
            Err(PagingError::InvalidCursor)
        );
    }

    #[test]
    fn a_page_keeps_limit_items_and_names_the_last_when_more_remain() {
        let request = PageRequest::<i64> {
            limit: Limit::new(2).unwrap(),
            after: None,
        };
        let page = request.page(vec![1_i64, 2, 3], |n| *n);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next, Some(Cursor::after(&2_i64)));
        let last = request.page(vec![1_i64, 2], |n| *n);
        assert_eq!(last.next, None);
    }

    #[test]
    fn the_next_link_keeps_the_filters_and_replaces_the_paging() {
        let next = Cursor::after(&9_i64);
        let link = next_link(
            "/api/invoices",
            Some("status=issued&after=00&limit=10&customer_id=4"),
            &next,
            Limit::new(10).unwrap(),
        );
        assert_eq!(
            link,
            format!(
                "</api/invoices?after={next}&limit=10&status=issued&customer_id=4>; rel=\"next\""
            )
        );
        let plain = next_link("/api/customers", None, &next, Limit::default());
        assert_eq!(
            plain,
            format!("</api/customers?after={next}&limit=100>; rel=\"next\"")
        );
    }
}
