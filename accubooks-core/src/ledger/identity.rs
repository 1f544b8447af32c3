//! Organizations and their users: registration, login and user management.
//! Passwords are hashed with Argon2id; hashing runs on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::Deserialize;
use uuid::Uuid;

use super::accounts::{AccountType, validate_currency, validate_name};
use super::sql::{BeginScoped, on_pool};
use super::{LedgerError, LedgerResult};
use crate::auth::{Principal, Role};
use crate::db::Database;

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

fn normalize_email(email: &str) -> LedgerResult<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
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
        Err(LedgerError::invalid(
            "INVALID_EMAIL",
            "Give a valid e-mail address.",
        ))
    }
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

async fn hash_password(password: String) -> LedgerResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .ok()
    .and_then(Result::ok)
    .ok_or_else(|| LedgerError::Storage(crate::Error::Setup("password hashing failed".to_owned())))
}

/// A valid hash of a random password: verifying against it when the e-mail
/// is unknown makes a failed login take as long whether or not the user exists.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Fw1fQ9FBSxDXLzvz8GVtOkeLS6yy3ugWgtWPbTRr4o";

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Creates an organization, its owner and its default chart of accounts.
pub async fn register(db: &Database, registration: Registration) -> LedgerResult<Principal> {
    let email = normalize_email(&registration.email)?;
    check_password(&registration.password)?;
    validate_name(&registration.organization)?;
    let currency = registration.currency.unwrap_or_else(|| "USD".to_owned());
    validate_currency(&currency)?;
    let hash = hash_password(registration.password).await?;
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
                Err(err) if super::sql::is_unique_violation(&err) => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await?;
    if created {
        Ok(principal)
    } else {
        Err(LedgerError::Conflict {
            code: "EMAIL_TAKEN",
            message: "An account with this e-mail address exists; log in instead.".to_owned(),
        })
    }
}

/// Checks credentials. Fails the same way for an unknown e-mail and a wrong
/// password.
pub async fn login(db: &Database, credentials: Credentials) -> LedgerResult<Principal> {
    let email = credentials.email.trim().to_lowercase();
    let found: Option<(String, String, String, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => {
                let mut tx = p.begin_for_login(&email).await?;
                let found = sqlx::query_as("SELECT id, organization_id, password_hash, role FROM users WHERE email = $1")
                    .bind(&email)
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
    let matches = verify_password(credentials.password, hash).await;
    let rejected = || LedgerError::Invalid {
        code: "INVALID_CREDENTIALS",
        message: "The e-mail address or the password is wrong.".to_owned(),
    };
    let (user, organization, _, role) = found.filter(|_| matches).ok_or_else(rejected)?;
    let role = match role.as_str() {
        "owner" => Role::Owner,
        "accountant" => Role::Accountant,
        _ => Role::Viewer,
    };
    Ok(Principal {
        user: user.parse().map_err(|_| rejected())?,
        organization: organization.parse().map_err(|_| rejected())?,
        role,
    })
}

/// Adds a user to the owner's organization.
pub async fn create_user(db: &Database, organization: Uuid, new: NewUser) -> LedgerResult<Uuid> {
    let email = normalize_email(&new.email)?;
    check_password(&new.password)?;
    let hash = hash_password(new.password).await?;
    let id = Uuid::new_v4();
    let role = match new.role {
        Role::Owner => "owner",
        Role::Accountant => "accountant",
        Role::Viewer => "viewer",
    };
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
                    .bind(role)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })
            }
            .await;
            match result {
                Ok(_) => Ok(true),
                Err(err) if super::sql::is_unique_violation(&err) => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await?;
    if created {
        Ok(id)
    } else {
        Err(LedgerError::Conflict {
            code: "EMAIL_TAKEN",
            message: "A user with this e-mail address exists.".to_owned(),
        })
    }
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
        for bad in ["", "no-at", "@x.com", "a@b", "a b@c.com", "a@.com"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_decoy_hash_parses_and_rejects() {
        assert!(!verify_password("anything at all".to_owned(), DECOY_HASH.to_owned()).await);
        let hash = hash_password("correct horse battery".to_owned())
            .await
            .unwrap();
        assert!(verify_password("correct horse battery".to_owned(), hash.clone()).await);
        assert!(!verify_password("wrong horse battery".to_owned(), hash).await);
    }
}
