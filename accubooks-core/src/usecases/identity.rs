//! Organizations, users and their tokens.

use std::net::IpAddr;
use std::time::Duration;

use uuid::Uuid;

use super::{Books, Error, Result};
use crate::identity;
use crate::identity::{Credentials, NewUser, Registration, User};
use crate::identity::{Principal, Role};
use crate::ledger::LedgerError;
use crate::paging::{Page, PageRequest};

/// How long a token from [`Books::token`] is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Who is calling register or login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A client over the network, from this address when the host knows it:
    /// registration and login attempts are budgeted per address.
    Remote(Option<IpAddr>),
    /// The embedding program itself (the Python API): no address budget.
    Host,
}

impl Books<'_> {
    /// Creates an organization, its owner and its default chart of accounts.
    pub async fn register(&self, registration: Registration, client: Client) -> Result<Principal> {
        self.run("register", None, Role::Viewer, async {
            // Each registration costs an Argon2 hash: a budget per address.
            if let Client::Remote(address) = client {
                self.app
                    .auth_limits()
                    .check_register(address)
                    .map_err(Error::from)?;
            }
            let (db, hashing) = (self.app.database(), self.app.password_hashing());
            Ok(identity::register(db, hashing, registration).await?)
        })
        .await
    }

    /// Checks credentials, within the attempt budgets of the client's
    /// address and of the e-mail address.
    pub async fn login(&self, credentials: Credentials, client: Client) -> Result<Principal> {
        self.run("login", None, Role::Viewer, async {
            let address = match client {
                Client::Remote(address) => address,
                Client::Host => None,
            };
            let app = &self.app;
            Ok(identity::login(
                app.database(),
                app.password_hashing(),
                app.auth_limits(),
                address,
                credentials,
            )
            .await?)
        })
        .await
    }

    /// A signed token for `principal`, valid for [`TOKEN_LIFETIME`].
    pub fn token(&self, principal: Principal) -> String {
        self.app.tokens().issue(principal, TOKEN_LIFETIME)
    }

    /// The organization `id` with owner rights, for the embedding program
    /// (no user: [`Principal::user`] is nil). `NOT_FOUND` when it does not
    /// exist (every organization has its default chart).
    pub async fn open_organization(&self, id: Uuid) -> Result<Principal> {
        let principal = Principal {
            user: Uuid::nil(),
            organization: id,
            role: Role::Owner,
        };
        let first = PageRequest {
            limit: crate::paging::Limit::new(1).expect("1 is a valid limit"),
            after: None,
        };
        let accounts = self.accounts(&principal, Default::default(), first).await?;
        if accounts.items.is_empty() {
            return Err(LedgerError::NotFound(format!("There is no organization {id}.")).into());
        }
        Ok(principal)
    }

    /// A page of the organization's users (owners only), by e-mail address.
    pub async fn users(
        &self,
        caller: &Principal,
        page: PageRequest<String>,
    ) -> Result<Page<Vec<User>>> {
        self.run("users", Some(caller), Role::Owner, async {
            let db = self.app.database();
            Ok(identity::list_users(db, caller.organization, &page).await?)
        })
        .await
    }

    /// Adds a user to the organization (owners only).
    pub async fn create_user(&self, caller: &Principal, new: NewUser) -> Result<User> {
        self.run("create_user", Some(caller), Role::Owner, async {
            let (db, hashing) = (self.app.database(), self.app.password_hashing());
            Ok(identity::create_user(db, hashing, caller.organization, new).await?)
        })
        .await
    }

    /// Changes a user's role (owners only); it applies to the user's
    /// existing tokens at once. The last owner cannot be demoted.
    pub async fn set_role(&self, caller: &Principal, user: Uuid, role: Role) -> Result<User> {
        self.run("set_role", Some(caller), Role::Owner, async {
            let changed =
                identity::set_role(self.app.database(), caller.organization, user, role).await;
            self.app.members().invalidate(user);
            Ok(changed?)
        })
        .await
    }

    /// Removes a user (owners only); the user's existing tokens stop
    /// working at once. The last owner cannot be removed.
    pub async fn remove_user(&self, caller: &Principal, user: Uuid) -> Result<()> {
        self.run("remove_user", Some(caller), Role::Owner, async {
            let removed =
                identity::remove_user(self.app.database(), caller.organization, user).await;
            self.app.members().invalidate(user);
            removed.map(drop).map_err(Error::from)
        })
        .await
    }
}
