//! Metadata: the string keys and values a client attaches to what it posts
//! (contract §5), so that a product built on the books can find its own
//! records again (an order id, a region, a source system).
//!
//! Bounded so that no record carries more than about 10 KB of it: at most
//! [`MAX_KEYS`] keys, each matching `[a-z0-9_.-]{1,40}`, each value at most
//! [`MAX_VALUE_CHARS`] characters. A map outside the bounds is refused when
//! it is read (a `422 INVALID_FIELD` naming the key), never stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most keys one record's metadata holds.
pub const MAX_KEYS: usize = 20;
/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 40;
/// Longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 500;

/// String keys and values, in key order. Empty when none were given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "BTreeMap<String, String>")]
#[schema(value_type = BTreeMap<String, String>, example = json!({"order": "A-1042"}))]
pub struct Metadata(BTreeMap<String, String>);

/// Metadata outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// More than [`MAX_KEYS`] keys.
    #[error("metadata holds at most 20 keys; this has {count}.")]
    TooManyKeys {
        /// How many it has.
        count: usize,
    },
    /// A key that is empty, too long or has a character outside `[a-z0-9_.-]`.
    #[error("metadata key {key:?} must be 1 to 40 characters of a-z, 0-9, '_', '.' and '-'.")]
    InvalidKey {
        /// The key (its first 60 characters).
        key: String,
    },
    /// A value longer than [`MAX_VALUE_CHARS`].
    #[error("the metadata value of {key:?} is longer than 500 characters.")]
    ValueTooLong {
        /// The value's key.
        key: String,
    },
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = MetadataError;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        if map.len() > MAX_KEYS {
            return Err(MetadataError::TooManyKeys { count: map.len() });
        }
        for (key, value) in &map {
            check_key(key)?;
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(MetadataError::ValueTooLong { key: key.clone() });
            }
        }
        Ok(Metadata(map))
    }
}

/// Checks one key, as a filter names it too.
pub fn check_key(key: &str) -> Result<(), MetadataError> {
    let valid = (1..=MAX_KEY_CHARS).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(MetadataError::InvalidKey {
            key: key.chars().take(60).collect(),
        })
    }
}

impl Metadata {
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds `key` unless it is there already; `false` when there is no room
    /// for another key. `key` must be a valid key.
    pub(crate) fn insert_if_room(&mut self, key: &str, value: String) -> bool {
        debug_assert!(check_key(key).is_ok(), "{key:?} is not a metadata key");
        if self.0.contains_key(key) {
            return true;
        }
        if self.0.len() >= MAX_KEYS {
            return false;
        }
        self.0.insert(key.to_owned(), value);
        true
    }

    /// As stored: the JSON object, or `None` when empty (no bytes for the
    /// records that carry none).
    pub fn to_stored(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(&self.0).expect("strings serialize"))
    }

    /// From what [`Metadata::to_stored`] wrote. Stored text that is not a
    /// map of strings (it cannot be: only this module writes it) reads as
    /// none rather than failing the read of the record.
    pub fn from_stored(text: Option<&str>) -> Self {
        text.and_then(|text| serde_json::from_str(text).ok())
            .map(Metadata)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<Metadata, String> {
        serde_json::from_value(json).map_err(|err| err.to_string())
    }

    #[test]
    fn keys_and_values_are_bounded() {
        let ok = parse(serde_json::json!({"order": "A-1", "region.eu": "", "x_1-y": "v"})).unwrap();
        assert_eq!(ok.iter().count(), 3);
        let many: serde_json::Map<String, serde_json::Value> =
            (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(parse(many.into()).unwrap_err().contains("at most 20 keys"));
        for key in ["", "Order", "a b", "é", &"k".repeat(41)] {
            let err = parse(serde_json::json!({ key: "v" })).unwrap_err();
            assert!(err.contains("must be 1 to 40 characters"), "{key:?}: {err}");
        }
        let err = parse(serde_json::json!({"note": "x".repeat(501)})).unwrap_err();
        assert!(err.contains("longer than 500"), "{err}");
        assert!(
            parse(serde_json::json!({"n": 1})).is_err(),
            "a number is not a string"
        );
        assert!(parse(serde_json::json!({"n": "x".repeat(500)})).is_ok());
    }

    #[test]
    fn it_is_stored_as_json_and_nothing_when_empty() {
        let metadata = parse(serde_json::json!({"b": "2", "a": "1"})).unwrap();
        let stored = metadata.to_stored().unwrap();
        assert_eq!(stored, r#"{"a":"1","b":"2"}"#);
        assert_eq!(Metadata::from_stored(Some(&stored)), metadata);
        assert_eq!(Metadata::default().to_stored(), None);
        assert_eq!(Metadata::from_stored(None), Metadata::default());
    }
}
