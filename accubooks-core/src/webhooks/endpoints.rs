//! The endpoints' rows: created, listed, deleted and their secret rotated
//! by owners. The signing secret is kept sealed; it is answered only at
//! creation and rotation.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{
    EVENT_TYPES, MAX_DESCRIPTION_BYTES, MAX_ENDPOINTS, MAX_EVENT_TYPES, NO_SUCH_ENDPOINT,
    ROTATION_OVERLAP_MS, address, rfc3339, signing,
};
use crate::db::sql::{BeginScoped, in_scope, on_pool};
use crate::db::{Database, Pool};
use crate::ledger::{LedgerError, LedgerResult};
use crate::organization::OrganizationId;
use crate::paging::{Page, PageRequest};
use crate::sealed::Sealer;

/// Whether an endpoint gets deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    /// Gets the events it subscribes to.
    Enabled,
    /// Failed continuously for five days: gets nothing more.
    Disabled,
}

impl EndpointStatus {
    fn parse(text: &str) -> Self {
        if text == "disabled" {
            EndpointStatus::Disabled
        } else {
            EndpointStatus::Enabled
        }
    }
}

/// `POST /api/webhook-endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where events are POSTed: `https://`, at most 2,048 bytes, resolving
    /// only to public addresses (unless `WEBHOOK_ALLOW_PRIVATE=1`).
    pub url: String,
    /// The event types wanted (at most 32, each of contract §10's list), or
    /// `["*"]` alone for all.
    pub events: Vec<String>,
    /// At most 256 bytes.
    #[serde(default)]
    pub description: String,
}

/// An endpoint, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// Its id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it gets, or `["*"]`.
    pub events: Vec<String>,
    /// What the owner wrote about it.
    pub description: String,
    /// `enabled` or `disabled`.
    pub status: EndpointStatus,
    /// Why it was disabled, when it was.
    pub disabled_reason: Option<String>,
    /// Since when its deliveries have failed without a success (RFC 3339),
    /// or null.
    pub failing_since: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// An endpoint with its signing secret: the answer of its creation and of
/// a rotation, the only ones that show the secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Created {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` and the base64 of 32 random bytes: the key receivers
    /// verify `webhook-signature` with.
    #[schema(value_type = String, example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
}

fn expose<S: serde::Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// The context a secret is sealed for: its organization and endpoint.
pub(super) fn secret_context(organization: &OrganizationId, endpoint: i64) -> String {
    format!("webhook-endpoint:{organization}:{endpoint}")
}

const ENDPOINT_COLUMNS: &str =
    "id, url, event_types, description, status, disabled_reason, failing_since_ms, created_ms";

fn endpoint_of<R>(row: &R) -> Result<Endpoint, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<String>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> Option<i64>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let types: String = row.try_get("event_types")?;
    let status: String = row.try_get("status")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&types).unwrap_or_default(),
        description: row.try_get("description")?,
        status: EndpointStatus::parse(&status),
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: row
            .try_get::<Option<i64>, _>("failing_since_ms")?
            .map(rfc3339),
        created_at: rfc3339(row.try_get("created_ms")?),
    })
}

/// Checks the event types: each a known type, at most 32, or `["*"]`
/// alone; answers them without duplicates, in the order given.
fn checked_types(events: &[String]) -> LedgerResult<Vec<String>> {
    if events.is_empty() {
        return Err(LedgerError::invalid(
            "INVALID_FIELD",
            "events must name at least one event type, or be [\"*\"] for all.",
        ));
    }
    if events.len() > MAX_EVENT_TYPES {
        return Err(LedgerError::invalid(
            "TOO_MANY_EVENT_TYPES",
            format!(
                "events names {} types; an endpoint takes at most {MAX_EVENT_TYPES}.",
                events.len()
            ),
        ));
    }
    if events.iter().any(|e| e == "*") {
        if events.len() > 1 {
            return Err(LedgerError::invalid(
                "UNKNOWN_EVENT_TYPE",
                "\"*\" stands for every event type and must be alone in events.",
            ));
        }
        return Ok(events.to_vec());
    }
    let mut kept: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            return Err(LedgerError::invalid(
                "UNKNOWN_EVENT_TYPE",
                format!(
                    "{:?} is not an event type; use [\"*\"] or some of: {}.",
                    event.chars().take(64).collect::<String>(),
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !kept.contains(event) {
            kept.push(event.clone());
        }
    }
    Ok(kept)
}

/// Whether an endpoint subscribed to `events` gets an event of `kind`.
pub(super) fn wants(events: &[String], kind: &str) -> bool {
    events.iter().any(|e| e == "*" || e == kind)
}

/// Creates an endpoint after the checks of its fields and URL (422 naming
/// the bound or the refusal). It gets the events committed after it.
pub async fn create_endpoint(
    db: &Database,
    sealer: &Sealer,
    organization: &OrganizationId,
    input: NewEndpoint,
    allow_private: bool,
    now_ms: i64,
) -> LedgerResult<Created> {
    if input.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(LedgerError::invalid(
            "DESCRIPTION_TOO_LONG",
            format!(
                "description is {} bytes long; at most {MAX_DESCRIPTION_BYTES} are allowed.",
                input.description.len()
            ),
        ));
    }
    if input.url.len() > address::MAX_URL_BYTES {
        return Err(LedgerError::invalid(
            "URL_TOO_LONG",
            format!(
                "url is {} bytes long; at most {} are allowed.",
                input.url.len(),
                address::MAX_URL_BYTES
            ),
        ));
    }
    let events = checked_types(&input.events)?;
    let url = address::check_at_creation(&input.url, allow_private)
        .await
        .map_err(|forbidden| LedgerError::invalid("WEBHOOK_URL_FORBIDDEN", forbidden.0))?;
    let secret = signing::new_secret();
    let owned = organization.to_owned();
    let types = serde_json::to_string(&events).expect("strings serialize");
    let (url, description) = (url.to_string(), input.description);
    let created: Result<i64, i64> = db
        .run(|pool| {
            let (url, description, types) = (url.clone(), description.clone(), types.clone());
            let secret = &secret;
            let owned = &owned;
            async move {
                // Counting and inserting under the organization's row lock
                // keeps two creations at once within the bound.
                let lock = match pool {
                    Pool::Postgres(_) => " FOR NO KEY UPDATE",
                    Pool::Sqlite(_) => "",
                };
                on_pool!(pool, p => {
                    let mut tx = p.begin_writing_for(owned).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM organizations WHERE id = $1{lock}")))
                        .bind(owned)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let count: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM webhook_endpoints WHERE organization_id = $1",
                    )
                    .bind(owned)
                    .fetch_one(&mut *tx)
                    .await?;
                    if count >= MAX_ENDPOINTS {
                        return Ok(Err(count));
                    }
                    // The endpoint gets the events committed after it: those
                    // numbered up to now are behind its cursor.
                    let cursor: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE organization_id = $1",
                    )
                    .bind(owned)
                    .fetch_one(&mut *tx)
                    .await?;
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO webhook_endpoints (organization_id, url, description, \
                         event_types, secret_sealed, status, event_cursor, created_ms) \
                         VALUES ($1, $2, $3, $4, '', 'enabled', $5, $6) RETURNING id",
                    )
                    .bind(owned)
                    .bind(&url)
                    .bind(&description)
                    .bind(&types)
                    .bind(cursor)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                    let sealed = sealer.seal(secret.expose_secret(), &secret_context(owned, id));
                    sqlx::query("UPDATE webhook_endpoints SET secret_sealed = $1 WHERE id = $2")
                        .bind(&sealed)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Ok(id))
                })
            }
        })
        .await?;
    let id = created.map_err(|count| {
        LedgerError::invalid(
            "TOO_MANY_ENDPOINTS",
            format!(
                "The organization has {count} webhook endpoints, the most it may have \
                 ({MAX_ENDPOINTS}); delete one first."
            ),
        )
    })?;
    tracing::info!(endpoint = id, "webhook endpoint created");
    Ok(Created {
        endpoint: Endpoint {
            id,
            url,
            events,
            description,
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            failing_since: None,
            created_at: rfc3339(now_ms),
        },
        secret,
    })
}

/// A page of the organization's endpoints, oldest first.
pub async fn list_endpoints(
    db: &Database,
    organization: &OrganizationId,
    page: &PageRequest<i64>,
) -> LedgerResult<Page<Vec<Endpoint>>> {
    let owned = organization.to_owned();
    let (after, fetch) = (page.after.unwrap_or(0), page.limit.fetch());
    let endpoints = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                     WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                )))
                .bind(&owned)
                .bind(after)
                .bind(fetch)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(endpoint_of)
                .collect::<Result<Vec<_>, _>>()?
            }))
        })
        .await?;
    Ok(page.page(endpoints, |e| e.id))
}

/// One endpoint of the organization (404 otherwise).
pub async fn get_endpoint(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<Endpoint> {
    let owned = organization.to_owned();
    let endpoint = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                     WHERE organization_id = $1 AND id = $2"
                )))
                .bind(&owned)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(endpoint_of)
                .transpose()?
            }))
        })
        .await?;
    endpoint.ok_or_else(|| LedgerError::NotFound(NO_SUCH_ENDPOINT.to_owned()))
}

/// Deletes an endpoint and its deliveries (404 for another organization's).
pub async fn delete_endpoint(
    db: &Database,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<()> {
    let owned = organization.to_owned();
    let deleted = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query("DELETE FROM webhook_deliveries WHERE organization_id = $1 AND endpoint_id = $2")
                    .bind(&owned)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM webhook_endpoints WHERE organization_id = $1 AND id = $2")
                    .bind(&owned)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }))
        })
        .await?;
    if deleted == 0 {
        return Err(LedgerError::NotFound(NO_SUCH_ENDPOINT.to_owned()));
    }
    tracing::info!(endpoint = id, "webhook endpoint deleted");
    Ok(())
}

/// Gives an endpoint a new secret; the previous one keeps signing (beside
/// the new) for 24 hours, so receivers can switch without losing an event.
pub async fn rotate_secret(
    db: &Database,
    sealer: &Sealer,
    organization: &OrganizationId,
    id: i64,
    now_ms: i64,
) -> LedgerResult<Created> {
    let secret = signing::new_secret();
    let sealed = sealer.seal(secret.expose_secret(), &secret_context(organization, id));
    let owned = organization.to_owned();
    let changed = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, \
                     previous_until_ms = $1, secret_sealed = $2 \
                     WHERE organization_id = $3 AND id = $4",
                )
                .bind(now_ms + ROTATION_OVERLAP_MS)
                .bind(&sealed)
                .bind(&owned)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            }))
        })
        .await?;
    if changed == 0 {
        return Err(LedgerError::NotFound(NO_SUCH_ENDPOINT.to_owned()));
    }
    tracing::info!(endpoint = id, "webhook endpoint secret rotated");
    let endpoint = get_endpoint(db, organization, id).await?;
    Ok(Created { endpoint, secret })
}

/// The secrets an attempt at `now_ms` signs with: the current one, and the
/// previous one during a rotation's overlap.
pub(super) fn secrets_of(
    sealer: &Sealer,
    organization: &OrganizationId,
    id: i64,
    current: &str,
    previous: Option<(&str, i64)>,
    now_ms: i64,
) -> Result<Vec<SecretString>, crate::sealed::Unreadable> {
    let context = secret_context(organization, id);
    let mut secrets = vec![sealer.open(current, &context)?];
    if let Some((sealed, until)) = previous
        && now_ms < until
    {
        secrets.push(sealer.open(sealed, &context)?);
    }
    Ok(secrets)
}

/// The current secret of an endpoint (a replayed creation answers it).
pub async fn endpoint_secret(
    db: &Database,
    sealer: &Sealer,
    organization: &OrganizationId,
    id: i64,
) -> LedgerResult<SecretString> {
    let owned = organization.to_owned();
    let sealed: Option<String> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &owned, tx => {
                sqlx::query_scalar(
                    "SELECT secret_sealed FROM webhook_endpoints WHERE organization_id = $1 AND id = $2",
                )
                .bind(&owned)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            }))
        })
        .await?;
    let sealed = sealed.ok_or_else(|| LedgerError::NotFound(NO_SUCH_ENDPOINT.to_owned()))?;
    sealer
        .open(&sealed, &secret_context(organization, id))
        .map_err(|_| unreadable())
}

/// The conflict of a secret that no longer opens.
pub(super) fn unreadable() -> LedgerError {
    LedgerError::Conflict {
        code: "WEBHOOK_SECRET_UNREADABLE",
        message: "The endpoint's signing secret no longer opens (SESSION_SECRET changed?); \
                  rotate its secret."
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn event_types_are_known_or_a_lone_star() {
        assert_eq!(checked_types(&types(&["*"])).unwrap(), types(&["*"]));
        assert_eq!(
            checked_types(&types(&["invoice.paid", "entry.posted", "invoice.paid"])).unwrap(),
            types(&["invoice.paid", "entry.posted"])
        );
        let code = |list: &[&str]| match checked_types(&types(list)) {
            Err(LedgerError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(&["invoice.pad"]), "UNKNOWN_EVENT_TYPE");
        assert_eq!(code(&["*", "invoice.paid"]), "UNKNOWN_EVENT_TYPE");
        assert_eq!(code(&[]), "INVALID_FIELD");
        assert_eq!(code(&["entry.posted"; 33]), "TOO_MANY_EVENT_TYPES");
        assert!(wants(&types(&["*"]), "job.dead"));
        assert!(!wants(&types(&["invoice.paid"]), "job.dead"));
    }
}
