//! Outgoing webhook endpoints and their deliveries (owners only).

use super::idempotent::Keyed;
use super::{Answer, Books, ClientKey, Result, org};
use crate::identity::{Principal, Role};
use crate::paging::{Page, PageRequest};
use crate::webhooks::{self, Created, Delivery, Endpoint, NewEndpoint};

impl Books<'_> {
    /// Creates an endpoint; its `whsec_…` secret is answered only here and
    /// on rotation. A retry under the same `Idempotency-Key` answers the
    /// same endpoint with its current secret (the stored answer keeps no
    /// secret: it is opened from the endpoint's sealed one).
    pub async fn create_webhook_endpoint(
        &self,
        caller: &Principal,
        input: NewEndpoint,
        key: Option<ClientKey>,
    ) -> Result<Answer<Created>> {
        let keyed = Keyed {
            operation: "create_webhook_endpoint",
            target: None,
            input: &input,
        };
        let secret = std::sync::Mutex::new(None);
        let (app, input) = (self.app, input.clone());
        let answer = self
            .run_keyed(caller, Role::Owner, key, keyed, |_key| async {
                let created = webhooks::create_endpoint(
                    app.database(),
                    app.sealer(),
                    &org(caller),
                    input,
                    app.config().webhook_allow_private,
                    crate::clock::now_ms(),
                )
                .await?;
                *secret
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(created.secret);
                Ok(created.endpoint)
            })
            .await?;
        match answer {
            Answer::Done(endpoint) => {
                let secret = secret
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .expect("a created endpoint has its secret");
                Ok(Answer::Done(Created { endpoint, secret }))
            }
            Answer::Replayed(text) => {
                let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|err| {
                    crate::Error::Setup(format!("a stored answer is not JSON: {err}"))
                })?;
                let id = value["id"].as_i64().unwrap_or_default();
                let secret =
                    webhooks::endpoint_secret(app.database(), app.sealer(), &org(caller), id)
                        .await?;
                value["secret"] = serde_json::Value::String(
                    secrecy::ExposeSecret::expose_secret(&secret).to_owned(),
                );
                Ok(Answer::Replayed(value.to_string()))
            }
        }
    }

    /// A page of the organization's endpoints, oldest first.
    pub async fn webhook_endpoints(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Endpoint>>> {
        self.run("webhook_endpoints", Some(caller), Role::Owner, async {
            Ok(webhooks::list_endpoints(self.app.database(), &org(caller), &page).await?)
        })
        .await
    }

    /// Deletes an endpoint and its deliveries.
    pub async fn delete_webhook_endpoint(&self, caller: &Principal, id: i64) -> Result<()> {
        self.run(
            "delete_webhook_endpoint",
            Some(caller),
            Role::Owner,
            async { Ok(webhooks::delete_endpoint(self.app.database(), &org(caller), id).await?) },
        )
        .await
    }

    /// Gives an endpoint a new secret, answered once; the previous one
    /// keeps signing beside it for 24 hours.
    pub async fn rotate_webhook_secret(&self, caller: &Principal, id: i64) -> Result<Created> {
        self.run("rotate_webhook_secret", Some(caller), Role::Owner, async {
            let app = self.app;
            Ok(webhooks::rotate_secret(
                app.database(),
                app.sealer(),
                &org(caller),
                id,
                crate::clock::now_ms(),
            )
            .await?)
        })
        .await
    }

    /// A page of an endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        caller: &Principal,
        endpoint: i64,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Delivery>>> {
        self.run("webhook_deliveries", Some(caller), Role::Owner, async {
            Ok(
                webhooks::list_deliveries(self.app.database(), &org(caller), endpoint, &page)
                    .await?,
            )
        })
        .await
    }

    /// Makes one delivery pending and due now, and asks for its endpoint's
    /// job at once.
    pub async fn retry_webhook_delivery(
        &self,
        caller: &Principal,
        endpoint: i64,
        delivery: i64,
    ) -> Result<Delivery> {
        self.run("retry_webhook_delivery", Some(caller), Role::Owner, async {
            let db = self.app.database();
            let now = crate::clock::now_ms();
            let retried =
                webhooks::retry_delivery(db, &org(caller), endpoint, delivery, now).await?;
            if webhooks::ask_for_endpoint(db, &org(caller), endpoint, now).await? {
                self.app.jobs().wake(webhooks::QUEUE);
            }
            Ok(retried)
        })
        .await
    }
}
