//! Plaid's API: the few calls bank feeds need, in its wire format (JSON
//! bodies carrying `client_id` and `secret`; errors as `error_type`,
//! `error_code`, `error_message`).

use std::sync::Arc;
use std::time::Duration;

use super::Api;
use crate::config::ApiCredentials;
use crate::deps::Dependency;

/// A Plaid client.
pub(crate) struct Plaid {
    pub(crate) api: Api,
    pub(crate) credentials: ApiCredentials,
}

impl Plaid {
    /// A client of Plaid at the credentials' API base.
    pub(crate) fn new(
        credentials: ApiCredentials,
        timeout: Duration,
        dependency: Arc<Dependency>,
    ) -> Self {
        Plaid {
            api: Api::new(&credentials.api_base, timeout, dependency),
            credentials,
        }
    }
}
