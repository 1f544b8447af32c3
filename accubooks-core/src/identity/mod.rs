//! Who may do what: users and their organizations, login, bearer tokens
//! and roles.
//!
//! A user belongs to one organization with a [`Role`]; a login proves the
//! password and yields a [`Principal`], which [`Tokens`] sign into a bearer
//! token. Password hashing has a bounded pool of its own
//! ([`PasswordHashing`]), and each request's role is the lesser of its
//! token's claim and the user's current role ([`MemberCache`]).

mod members;
mod passwords;
mod tokens;
mod users;

pub use members::{MEMBER_CACHE_TTL, MemberCache};
pub use passwords::{HashingBusy, PasswordHashing};
pub use tokens::{TokenError, Tokens};
pub use users::{
    Credentials, IdentityError, MAX_EMAIL_LEN, NewUser, Registration, RoleChange, User,
    create_user, list_users, login, member_role, normalize_email, register, remove_user, set_role,
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user's role within an organization, from least to most powerful.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, writes nothing.
    Viewer,
    /// Keeps the books.
    Accountant,
    /// Also manages users and settings.
    Owner,
}

/// Who is calling, as proven by a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user id (`sub`).
    pub user: Uuid,
    /// The organization every query is scoped to (`org`).
    pub organization: Uuid,
    /// The role (`role`).
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Accountant && Role::Accountant < Role::Owner);
    }
}
