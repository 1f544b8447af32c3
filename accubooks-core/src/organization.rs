//! The id of an organization, the tenant every row and every query belongs
//! to.
//!
//! It is parsed once, at the door (a token's `org` claim, a stored row), and
//! travels typed from there: a function of the books takes an
//! [`OrganizationId`], so a caller cannot hand it a customer's name or an
//! e-mail address by mistake. It reads as `&str` (the form the storage keys
//! rows by and row-level security compares), but no `&str` becomes one
//! without [`OrganizationId::parse`].

use std::fmt;
use std::ops::Deref;

use uuid::Uuid;

/// An organization's id: a UUID, held in its canonical text (lower-case,
/// hyphenated), the form every table keys its rows by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct OrganizationId(String);

/// A text that is not an organization id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an organization id (a UUID).")]
pub struct InvalidOrganizationId(String);

impl OrganizationId {
    /// Parses an id in any form a UUID is written in; keeps the canonical one.
    pub fn parse(text: &str) -> Result<Self, InvalidOrganizationId> {
        Uuid::parse_str(text)
            .map(Self::from)
            .map_err(|_| InvalidOrganizationId(text.chars().take(64).collect()))
    }

    /// The id as the storage keys it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Uuid> for OrganizationId {
    fn from(id: Uuid) -> Self {
        OrganizationId(id.hyphenated().to_string())
    }
}

impl Deref for OrganizationId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrganizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
impl OrganizationId {
    /// The `n`th organization of a unit test.
    pub(crate) fn nth(n: u128) -> Self {
        Uuid::from_u128(n).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_uuid_in_its_canonical_text() {
        let id = Uuid::new_v4();
        let parsed = OrganizationId::parse(&id.simple().to_string().to_uppercase()).unwrap();
        assert_eq!(parsed.as_str(), id.to_string());
        assert_eq!(parsed, OrganizationId::from(id));
        assert!(OrganizationId::parse("Acme Ltd").is_err());
        assert!(OrganizationId::parse("").is_err());
    }
}
