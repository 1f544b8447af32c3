//! Registration, login and user management.

use http::{Method, StatusCode};
use serde_json::json;

use super::{
    Access, ApiError, NoFilter, Request, Response, Route, json_response, list_query, page_response,
};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::identity::Role;
use crate::identity::{Credentials, NewUser, Registration, RoleChange, User};
use crate::usecases::Client;
use uuid::Uuid;

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
            .summary("The organization's users (owners only), by e-mail address")
            .paged()
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

fn client(request: &Request) -> Client {
    Client::Remote(request.client)
}

async fn register(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let books = app.books();
    let principal = books.register(request.json()?, client(&request)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "token": books.token(principal),
            "organization_id": principal.organization,
            "user_id": principal.user,
        }),
    ))
}

async fn login(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let books = app.books();
    let principal = books.login(request.json()?, client(&request)).await?;
    let token = books.token(principal);
    Ok(json_response(StatusCode::OK, &json!({"token": token})))
}

async fn list_users(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let users = app.books().users(&request.principal()?, page).await?;
    Ok(page_response(&request, &users))
}

async fn create_user(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new) = (request.principal()?, request.json()?);
    let user = app.books().create_user(&caller, new).await?;
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
    let (caller, user) = (request.principal()?, user_id(&request)?);
    let changed = app.books().set_role(&caller, user, change.role).await?;
    Ok(json_response(StatusCode::OK, &changed))
}

async fn remove_user(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, user) = (request.principal()?, user_id(&request)?);
    app.books().remove_user(&caller, user).await?;
    let mut response = http::Response::new(super::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
