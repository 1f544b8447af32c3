//! One delivery attempt: a signed `POST` of the event's JSON, bounded in
//! time (15 s, answer included), in what is read of the answer (256
//! bytes) and in where it may go (the SSRF guard before and after DNS; no
//! redirect followed; no proxy, which would resolve names out of our
//! sight).

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::address::{self, ForbiddenName, GuardedResolver};
use super::{ATTEMPT_TIMEOUT_MS, EXCERPT_BYTES, signing};

/// The HTTP client of deliveries. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// A 2xx answered it.
    pub delivered: bool,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Why it failed, in a sentence.
    pub error: Option<String>,
    /// At most 256 bytes of the answer's body (lossy UTF-8).
    pub excerpt: Option<String>,
}

impl Attempt {
    fn failed(error: impl Into<String>) -> Self {
        Attempt {
            delivered: false,
            status: None,
            error: Some(error.into()),
            excerpt: None,
        }
    }
}

impl Sender {
    /// The client; with `allow_private` (`WEBHOOK_ALLOW_PRIVATE=1`) any
    /// address may be reached.
    pub fn new(allow_private: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(ATTEMPT_TIMEOUT_MS.unsigned_abs()))
            .connect_timeout(Duration::from_secs(10))
            .no_proxy()
            .user_agent(concat!("AccuBooks-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Sender {
            client: builder
                .build()
                .expect("a client with a resolver and timeouts always builds"),
            allow_private,
        }
    }

    /// Sends `body` to `url` as the event `id`, signed at `timestamp` (Unix
    /// seconds) with `secrets` (current first).
    pub async fn send(
        &self,
        url: &str,
        id: &str,
        timestamp: i64,
        body: &str,
        secrets: &[SecretString],
    ) -> Attempt {
        // The literal forms reqwest connects to without asking the resolver.
        let url = match address::parse(url, self.allow_private) {
            Ok((url, _)) => url,
            Err(forbidden) => return Attempt::failed(forbidden.0),
        };
        let refs: Vec<&SecretString> = secrets.iter().collect();
        let Some(signature) = signing::signature_header(&refs, id, timestamp, body.as_bytes())
        else {
            return Attempt::failed("The endpoint's signing secret is malformed; rotate it.");
        };
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return Attempt::failed(describe(&err)),
        };
        let status = response.status();
        let mut excerpt: Vec<u8> = Vec::new();
        while excerpt.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = EXCERPT_BYTES - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                // The status decides; a body cut short is only its excerpt.
                Ok(None) | Err(_) => break,
            }
        }
        let excerpt = (!excerpt.is_empty()).then(|| lossy(&excerpt));
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(format!(
                "The receiver answered {status} (a redirect); redirects are not followed: \
                 give the endpoint its final URL."
            ))
        } else {
            Some(format!("The receiver answered {status}."))
        };
        Attempt {
            delivered: status.is_success(),
            status: Some(status.as_u16()),
            error,
            excerpt,
        }
    }
}

/// The bytes as UTF-8, invalid sequences replaced, cut at a character
/// boundary within [`EXCERPT_BYTES`].
fn lossy(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A sentence for a failed request: the guard's refusal as it is, else the
/// kind of failure (never more than the kind and the first cause).
fn describe(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(forbidden) = cause.downcast_ref::<ForbiddenName>() {
            return format!("Not sent: {forbidden}.");
        }
        source = cause.source();
    }
    if err.is_timeout() {
        return format!(
            "The receiver did not answer within {} s.",
            ATTEMPT_TIMEOUT_MS / 1000
        );
    }
    let cause = std::error::Error::source(err)
        .map(|c| c.to_string())
        .unwrap_or_default();
    let cause: String = cause.chars().take(160).collect();
    if err.is_connect() {
        format!("Could not connect to the receiver ({cause}).")
    } else {
        format!("The request failed ({cause}).")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_cut_at_a_character_boundary() {
        let text = "é".repeat(200); // 400 bytes
        let cut = lossy(&text.as_bytes()[..EXCERPT_BYTES]);
        assert_eq!(cut.len(), EXCERPT_BYTES);
        let odd = lossy(&text.as_bytes()[..255]);
        assert!(odd.len() <= EXCERPT_BYTES, "{}", odd.len());
        assert!(odd.ends_with('\u{fffd}') || odd.ends_with('é'));
    }
}
