//! Organizations and their users: registration, login and user management.
//! Passwords are hashed with Argon2id on the password-hashing pool
//! ([`PasswordHashing`]).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{HashingBusy, PasswordHashing, Principal, Role};
use crate::db::Database;
use crate::db::sql::{BeginScoped, Unique, in_scope, on_pool};
use crate::ledger::accounts::{AccountType, validate_currency, validate_name};
use crate::ledger::{LedgerError, LedgerResult};
use crate::paging::{Page, PageRequest};
use crate::throttle::{AuthLimits, Throttled};

/// Why registration, login or adding a user did not go through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// What the books refused or failed at (bad input, a conflict, storage).
    #[error(transparent)]
    Books(#[from] LedgerError),
    /// Login with an unknown e-mail address or a wrong password (401).
    #[error("The e-mail address or the password is wrong.")]
    InvalidCredentials,
    /// Too many attempts from this client or for this key (429).
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// Every password-hashing worker is busy (503, retry shortly).
    #[error(transparent)]
    HashingBusy(#[from] HashingBusy),
}

impl From<crate::Error> for IdentityError {
    fn from(err: crate::Error) -> Self {
        IdentityError::Books(LedgerError::Storage(err))
    }
}

/// Shorthand for the results of the password-checking functions.
type IdentityResult<T> = Result<T, IdentityError>;

/// `POST /api/auth/register`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The owner's e-mail address.
    pub email: String,
    /// The owner's password, 10 to 1024 characters.
    pub password: String,
    /// The organization's name.
    pub organization: String,
    /// The currency of the default chart of accounts (default USD).
    #[serde(default)]
    pub currency: Option<String>,
}

/// `POST /api/auth/login`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `POST /api/users`: an owner adds a user to the organization.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// E-mail address.
    pub email: String,
    /// Password, 10 to 1024 characters.
    pub password: String,
    /// Role.
    pub role: Role,
}

/// The chart every new organization starts with; invoices and payments
/// post to these codes.
pub const DEFAULT_CHART: &[(&str, &str, AccountType)] = &[
    ("1000", "Cash", AccountType::Asset),
    ("1100", "Accounts Receivable", AccountType::Asset),
    ("2000", "Accounts Payable", AccountType::Liability),
    ("2100", "Sales Tax Payable", AccountType::Liability),
    ("3000", "Owner's Equity", AccountType::Equity),
    ("3900", "Retained Earnings", AccountType::Equity),
    ("4000", "Sales Revenue", AccountType::Revenue),
    ("4900", "Sales Returns", AccountType::Revenue),
    ("5000", "Operating Expenses", AccountType::Expense),
];

/// The longest e-mail address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Trims and lowercases an e-mail address, or refuses one that is too long
/// or not shaped like an address (422). Checked before anything else is
/// done with it, so no limiter or query ever sees an unbounded one.
pub fn normalize_email(email: &str) -> LedgerResult<String> {
    // Measured before trimming too: a megabyte of spaces is no address.
    if email.len() > 4 * MAX_EMAIL_LEN {
        return Err(invalid_email());
    }
    let email = email.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL_LEN
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(invalid_email())
    }
}

fn invalid_email() -> LedgerError {
    LedgerError::invalid(
        "INVALID_EMAIL",
        "Give a valid e-mail address (at most 254 characters).",
    )
}

fn check_password(password: &str) -> LedgerResult<()> {
    if (10..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(LedgerError::invalid(
            "WEAK_PASSWORD",
            "A password has at least 10 and at most 1024 characters.",
        ))
    }
}

async fn hash_password(hashing: &PasswordHashing, password: String) -> IdentityResult<String> {
    hashing
        .run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(|_| crate::Error::Setup("password hashing failed".to_owned()).into())
}

/// A valid hash of a random password: verifying against it when the e-mail
/// is unknown makes a failed login take as long whether or not the user exists.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Fw1fQ9FBSxDXLzvz8GVtOkeLS6yy3ugWgtWPbTRr4o";

async fn verify_password(
    hashing: &PasswordHashing,
    password: String,
    hash: String,
) -> IdentityResult<bool> {
    Ok(hashing
        .run(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await?)
}

/// Creates an organization, its owner and its default chart of accounts.
pub async fn register(
    db: &Database,
    hashing: &PasswordHashing,
    registration: Registration,
) -> IdentityResult<Principal> {
    let email = normalize_email(&registration.email)?;
    check_password(&registration.password)?;
    validate_name(&registration.organization)?;
    let currency = registration.currency.unwrap_or_else(|| "USD".to_owned());
    validate_currency(&currency)?;
    let hash = hash_password(hashing, registration.password).await?;
    let principal = Principal {
        user: Uuid::new_v4(),
        organization: Uuid::new_v4(),
        role: Role::Owner,
    };
    let organization_name = registration.organization;
    let created = db
        .run(|pool| async move {
            let org = principal.organization.to_string();
            let user = principal.user.to_string();
            let result: Result<(), sqlx::Error> = async {
                    on_pool!(pool, p => {
                let mut tx = p.begin_for(&org).await?;
                sqlx::query("INSERT INTO organizations (id, name) VALUES ($1, $2)")
                    .bind(&org)
                    .bind(&organization_name)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO users (id, organization_id, email, password_hash, role) VALUES ($1, $2, $3, $4, 'owner')")
                    .bind(&user)
                    .bind(&org)
                    .bind(&email)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                for (code, name, kind) in DEFAULT_CHART {
                    sqlx::query("INSERT INTO accounts (organization_id, code, name, type, currency) VALUES ($1, $2, $3, $4, $5)")
                        .bind(&org)
                        .bind(*code)
                        .bind(*name)
                        .bind(kind.as_str())
                        .bind(&currency)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            })
            }
            .await;
            match result {
                Ok(()) => Ok(true),
                Err(err) if crate::db::sql::unique_violation(&err) == Some(Unique::Email) => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await?;
    if created {
        Ok(principal)
    } else {
        Err(IdentityError::Books(LedgerError::Conflict {
            code: "EMAIL_TAKEN",
            message: "An account with this e-mail address exists; log in instead.".to_owned(),
        }))
    }
}

/// Checks credentials, spending an attempt of the client's and the e-mail
/// address's budgets first. Fails the same way for an unknown e-mail and a
/// wrong password ([`IdentityError::InvalidCredentials`]).
pub async fn login(
    db: &Database,
    hashing: &PasswordHashing,
    limits: &AuthLimits,
    client: Option<IpAddr>,
    credentials: Credentials,
) -> IdentityResult<Principal> {
    let email = normalize_email(&credentials.email)?;
    limits.check_login(client, &email)?;
    let looked_up = email.clone();
    let found: Option<(String, String, String, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for_login(&looked_up).await?;
                let found = sqlx::query_as("SELECT id, organization_id, password_hash, role FROM users WHERE email = $1")
                    .bind(&looked_up)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(found)
            })
        })
        .await?;
    let hash = found
        .as_ref()
        .map_or(DECOY_HASH.to_owned(), |f| f.2.clone());
    let matches = verify_password(hashing, credentials.password, hash).await?;
    let rejected = || IdentityError::InvalidCredentials;
    if found.is_none() || !matches {
        limits.login_failed(client, &email);
    }
    let (user, organization, _, role) = found.filter(|_| matches).ok_or_else(rejected)?;
    let role = parse_role(&role);
    Ok(Principal {
        user: user.parse().map_err(|_| rejected())?,
        organization: organization.parse().map_err(|_| rejected())?,
        role,
    })
}

/// Adds a user to the owner's organization; answers it as listed.
pub async fn create_user(
    db: &Database,
    hashing: &PasswordHashing,
    organization: Uuid,
    new: NewUser,
) -> IdentityResult<User> {
    let email = normalize_email(&new.email)?;
    check_password(&new.password)?;
    let hash = hash_password(hashing, new.password).await?;
    let id = Uuid::new_v4();
    let role = new.role;
    let shown = email.clone();
    let created = db
        .run(|pool| async move {
            let result: Result<_, sqlx::Error> = async {
                    on_pool!(pool, p => {
                let organization = organization.to_string();
                let mut tx = p.begin_for(&organization).await?;
                sqlx::query("INSERT INTO users (id, organization_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id.to_string())
                    .bind(&organization)
                    .bind(&email)
                    .bind(&hash)
                    .bind(role_name(role))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })
            }
            .await;
            match result {
                Ok(_) => Ok(true),
                Err(err) if crate::db::sql::unique_violation(&err) == Some(Unique::Email) => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await?;
    if created {
        Ok(User {
            id,
            email: shown,
            role,
        })
    } else {
        Err(IdentityError::Books(LedgerError::Conflict {
            code: "EMAIL_TAKEN",
            message: "A user with this e-mail address exists.".to_owned(),
        }))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Accountant => "accountant",
        Role::Viewer => "viewer",
    }
}

fn parse_role(name: &str) -> Role {
    match name {
        "owner" => Role::Owner,
        "accountant" => Role::Accountant,
        _ => Role::Viewer,
    }
}

/// A user of an organization, as `GET /api/users` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// The user id (a token's `sub`).
    #[schema(value_type = String, format = "uuid")]
    pub id: Uuid,
    /// E-mail address.
    pub email: String,
    /// Role.
    pub role: Role,
}

/// `PUT /api/users/{id}`: an owner changes a user's role.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// The new role.
    pub role: Role,
}

/// The current role of `user` in `organization`, `None` when no such user
/// exists there (removed, or never was): what every request's access check
/// trusts instead of the role its token claims.
pub async fn member_role(
    db: &Database,
    organization: Uuid,
    user: Uuid,
) -> LedgerResult<Option<Role>> {
    let (organization, user) = (organization.to_string(), user.to_string());
    let role: Option<(String,)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as("SELECT role FROM users WHERE id = $1 AND organization_id = $2")
                    .bind(&user)
                    .bind(&organization)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    Ok(role.map(|(name,)| parse_role(&name)))
}

/// A page of the users of `organization`, by e-mail address (unique, and
/// never changed once the user exists).
pub async fn list_users(
    db: &Database,
    organization: Uuid,
    page: &PageRequest<String>,
) -> LedgerResult<Page<Vec<User>>> {
    let organization = organization.to_string();
    let after = page.after.clone().unwrap_or_default();
    let fetch = page.limit.fetch();
    let rows: Vec<(String, String, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as("SELECT id, email, role FROM users WHERE organization_id = $1 AND email > $2 ORDER BY email LIMIT $3")
                    .bind(&organization)
                    .bind(&after)
                    .bind(fetch)
                    .fetch_all(&mut *tx)
                    .await?
            }))
        })
        .await?;
    let users = rows
        .into_iter()
        .map(|(id, email, role)| {
            let id = id.parse().map_err(|_| {
                LedgerError::Storage(crate::Error::Setup(format!("user id {id:?} is not a UUID")))
            })?;
            Ok(User {
                id,
                email,
                role: parse_role(&role),
            })
        })
        .collect::<LedgerResult<Vec<User>>>()?;
    Ok(page.page(users, |user| user.email.clone()))
}

/// What a change of the users of an organization found.
enum Change {
    Done(User),
    Missing,
    LastOwner,
}

/// Changes a user's role (`Some`) or removes the user (`None`), refusing to
/// leave the organization without an owner. The first statement is a no-op
/// update of the organization's row: it serializes changes of one
/// organization's users on both backends (a row lock on PostgreSQL, the
/// write lock on SQLite), so two owners demoting each other at once cannot
/// both succeed.
async fn change_user(
    db: &Database,
    organization: Uuid,
    user: Uuid,
    role: Option<Role>,
) -> LedgerResult<User> {
    let (org, id) = (organization.to_string(), user.to_string());
    let change = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for(&org).await?;
                sqlx::query("UPDATE organizations SET name = name WHERE id = $1")
                    .bind(&org)
                    .execute(&mut *tx)
                    .await?;
                let found: Option<(String, String)> = sqlx::query_as(
                    "SELECT email, role FROM users WHERE id = $1 AND organization_id = $2",
                )
                .bind(&id)
                .bind(&org)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((email, current)) = found else {
                    return Ok(Change::Missing);
                };
                let (owners,): (i64,) = sqlx::query_as(
                    "SELECT count(*) FROM users WHERE organization_id = $1 AND role = 'owner'",
                )
                .bind(&org)
                .fetch_one(&mut *tx)
                .await?;
                if current == "owner" && role != Some(Role::Owner) && owners <= 1 {
                    return Ok(Change::LastOwner);
                }
                match role {
                    Some(role) => {
                        sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND organization_id = $3")
                            .bind(role_name(role))
                            .bind(&id)
                            .bind(&org)
                            .execute(&mut *tx)
                            .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM users WHERE id = $1 AND organization_id = $2")
                            .bind(&id)
                            .bind(&org)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(Change::Done(User {
                    id: user,
                    email,
                    role: role.unwrap_or_else(|| parse_role(&current)),
                }))
            })
        })
        .await?;
    match change {
        Change::Done(user) => Ok(user),
        Change::Missing => Err(LedgerError::NotFound(
            "No user with this id exists in the organization.".to_owned(),
        )),
        Change::LastOwner => Err(LedgerError::Conflict {
            code: "LAST_OWNER",
            message: "This is the organization's last owner: make another user an owner first."
                .to_owned(),
        }),
    }
}

/// Gives `user` a new role; the last owner cannot be demoted (409 `LAST_OWNER`).
pub async fn set_role(
    db: &Database,
    organization: Uuid,
    user: Uuid,
    role: Role,
) -> LedgerResult<User> {
    change_user(db, organization, user, Some(role)).await
}

/// Removes `user`; the last owner cannot be removed (409 `LAST_OWNER`).
/// Returns the user as it was.
pub async fn remove_user(db: &Database, organization: Uuid, user: Uuid) -> LedgerResult<User> {
    change_user(db, organization, user, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        let long = format!("{}@example.com", "a".repeat(250));
        let huge = format!("{}@example.com", "a".repeat(1_000_000));
        for bad in [
            "",
            "no-at",
            "@x.com",
            "a@b",
            "a b@c.com",
            "a@.com",
            &long,
            &huge,
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_decoy_hash_parses_and_rejects() {
        let pool = PasswordHashing::new(1);
        let verify = |password: &str, hash: String| {
            let (pool, password) = (pool.clone(), password.to_owned());
            async move { verify_password(&pool, password, hash).await.unwrap() }
        };
        assert!(!verify("anything at all", DECOY_HASH.to_owned()).await);
        let hash = hash_password(&pool, "correct horse battery".to_owned())
            .await
            .unwrap();
        assert!(verify("correct horse battery", hash.clone()).await);
        assert!(!verify("wrong horse battery", hash).await);
    }
}
