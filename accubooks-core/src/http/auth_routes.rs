//! Registration, login and user management.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use super::{Access, ApiError, Request, Response, Route, json_response};
use crate::app::AccuBooks;
use crate::auth::Role;
use crate::deps::DATABASE;
use crate::ledger::{self, Credentials, NewUser, Registration};

/// How long a token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/api/auth/register", register)
            .needs(DATABASE)
            .access(Access::Public)
            .summary("Create an organization, its owner and a default chart of accounts")
            .body::<Registration>()
            .returns::<TokenAnswer>(201),
        Route::new(Method::POST, "/api/auth/login", login)
            .needs(DATABASE)
            .access(Access::Public)
            .summary("Exchange credentials for a token (attempts are rate limited)")
            .body::<Credentials>()
            .returns::<TokenAnswer>(200),
        Route::new(Method::POST, "/api/users", create_user)
            .needs(DATABASE)
            .access(Access::Role(Role::Owner))
            .summary("Add a user to the organization (owners only)")
            .body::<NewUser>(),
    ]
}

/// A bearer token.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct TokenAnswer {
    /// HS256 JWT with claims sub, org, role, exp.
    token: String,
}

async fn register(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let registration: Registration = request.json()?;
    let principal = ledger::register(app.database(), registration).await?;
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
    // Slow down guessing: a budget of attempts per e-mail and per client
    // address, refilled over time.
    let email_key = format!("email:{}", credentials.email.trim().to_lowercase());
    let peer_key = request.peer.map(|p| format!("ip:{}", p.ip()));
    for key in std::iter::once(email_key).chain(peer_key) {
        app.login_limiter().check(&key)?;
    }
    let principal = ledger::login(app.database(), credentials)
        .await
        .map_err(|err| match ApiError::from(err) {
            ApiError::Invalid {
                code: "INVALID_CREDENTIALS",
                ..
            } => ApiError::Unauthorized("The e-mail address or the password is wrong."),
            other => other,
        })?;
    let token = app.tokens().issue(principal, TOKEN_LIFETIME);
    Ok(json_response(StatusCode::OK, &json!({"token": token})))
}

async fn create_user(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let new: NewUser = request.json()?;
    let (email, role) = (new.email.trim().to_lowercase(), new.role);
    let organization = request.principal()?.organization;
    let id = ledger::create_user(app.database(), organization, new).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"id": id, "email": email, "role": role}),
    ))
}
