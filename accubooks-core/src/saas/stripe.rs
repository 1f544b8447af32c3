//! Stripe's API: the few calls payments need, in its wire format
//! (form-encoded bodies, `Idempotency-Key` headers, error objects).

use std::sync::Arc;
use std::time::Duration;

use super::Api;
use crate::config::ApiCredentials;
use crate::deps::Dependency;

/// A Stripe client.
pub(crate) struct Stripe {
    pub(crate) api: Api,
    pub(crate) credentials: ApiCredentials,
}

impl Stripe {
    /// A client of Stripe at the credentials' API base.
    pub(crate) fn new(
        credentials: ApiCredentials,
        timeout: Duration,
        dependency: Arc<Dependency>,
    ) -> Self {
        Stripe {
            api: Api::new(&credentials.api_base, timeout, dependency),
            credentials,
        }
    }
}
