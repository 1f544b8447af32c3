//! Registration, login and user management.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use super::{Access, ApiError, Request, Response, Route, json_response};
use crate::app::AccuBooks;
use crate::auth::Role;
use crate::deps::DATABASE;
use crate::ledger::{self, Credentials, NewUser, Registration, RoleChange, User};
use uuid::Uuid;

/// How long a token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub(crate) fn routes() -> Vec<Route> {
    let owner = Access::Role(Role::Owner);
    vec![
        Route::new(Method::POST, "/api/auth/register", register)
            .needs(DATABASE)
            .access(Access::Public)
            .summary("Create an organization, its owner and a default chart of accounts")
            .body::<Registration>()
            .returns::<TokenAnswer>(201)
            .answers(409, "The e-mail address is taken (EMAIL_TAKEN)")
            .answers(
                429,
                "Too many registrations from this client address (REGISTRATIONS_PER_HOUR)",
            ),
        Route::new(Method::POST, "/api/auth/login", login)
            .needs(DATABASE)
            .access(Access::Public)
            .summary("Exchange credentials for a token (attempts are rate limited)")
            .body::<Credentials>()
            .returns::<TokenAnswer>(200)
            .answers(401, "Wrong e-mail address or password")
            .answers(
                429,
                "Too many attempts from this client or for this e-mail address",
            ),
        Route::new(Method::GET, "/api/users", list_users)
            .needs(DATABASE)
            .access(owner)
            .summary("The organization's users (owners only)")
            .returns_list::<User>(200),
        Route::new(Method::POST, "/api/users", create_user)
            .needs(DATABASE)
            .access(owner)
            .summary("Add a user to the organization (owners only)")
            .body::<NewUser>()
            .returns::<User>(201)
            .answers(409, "The e-mail address is taken (EMAIL_TAKEN)"),
        Route::new(Method::PUT, "/api/users/{id}", set_role)
            .needs(DATABASE)
            .access(owner)
            .summary("Change a user's role; it applies to the user's existing tokens at once")
            .body::<RoleChange>()
            .returns::<User>(200)
            .answers(409, "The last owner cannot be demoted (LAST_OWNER)"),
        Route::new(Method::DELETE, "/api/users/{id}", remove_user)
            .needs(DATABASE)
            .access(owner)
            .summary("Remove a user; the user's existing tokens stop working at once")
            .returns_empty(204)
            .answers(409, "The last owner cannot be removed (LAST_OWNER)"),
    ]
}

/// A bearer token.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct TokenAnswer {
    /// HS256 JWT with claims sub, org, role, exp.
    token: String,
}

fn client(request: &Request) -> Option<std::net::IpAddr> {
    request.peer.map(|peer| peer.ip())
}

async fn register(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let registration: Registration = request.json()?;
    // Each registration costs an Argon2 hash: a budget per client address.
    app.auth_limits().check_register(client(&request))?;
    let principal = ledger::register(app.database(), app.password_hashing(), registration).await?;
    let token = app.tokens().issue(principal, TOKEN_LIFETIME);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "token": token,
            "organization_id": principal.organization,
            "user_id": principal.user,
        }),
    ))
}

async fn login(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let credentials: Credentials = request.json()?;
    let principal = ledger::login(
        app.database(),
        app.password_hashing(),
        app.auth_limits(),
        client(&request),
        credentials,
    )
    .await?;
    let token = app.tokens().issue(principal, TOKEN_LIFETIME);
    Ok(json_response(StatusCode::OK, &json!({"token": token})))
}

async fn list_users(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let organization = request.principal()?.organization;
    let users = ledger::list_users(app.database(), organization).await?;
    Ok(json_response(StatusCode::OK, &users))
}

async fn create_user(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let new: NewUser = request.json()?;
    let organization = request.principal()?.organization;
    let user =
        ledger::create_user(app.database(), app.password_hashing(), organization, new).await?;
    Ok(json_response(StatusCode::CREATED, &user))
}

fn user_id(request: &Request) -> Result<Uuid, ApiError> {
    request
        .param("id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            ApiError::NotFound("No user with this id exists in the organization.".to_owned())
        })
}

async fn set_role(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let change: RoleChange = request.json()?;
    let (organization, user) = (request.principal()?.organization, user_id(&request)?);
    let changed = ledger::set_role(app.database(), organization, user, change.role).await;
    app.members().invalidate(user);
    Ok(json_response(StatusCode::OK, &changed?))
}

async fn remove_user(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (organization, user) = (request.principal()?.organization, user_id(&request)?);
    let removed = ledger::remove_user(app.database(), organization, user).await;
    app.members().invalidate(user);
    removed?;
    let mut response = http::Response::new(bytes::Bytes::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
