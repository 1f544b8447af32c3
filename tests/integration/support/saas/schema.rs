//! One checker of JSON against the providers' published OpenAPI 3.0
//! schemas (the trimmed copies in `schemas/`, each naming its source,
//! commit and version at its top), so a fake cannot drift from the
//! provider: `$ref`, `type`, `nullable`, `required`, `properties`,
//! `additionalProperties`, `items`, `allOf`, `oneOf`, `anyOf`, `enum`,
//! string and array bounds, and the `date` and `date-time` formats.
//!
//! Stripe's copy keeps OpenAPI's `components.schemas`, and its object
//! schemas are closed (a field the schema does not name is refused, so a
//! fake cannot send a field of another API version). Plaid's copies keep
//! `schemas` and say `additionalProperties` where it matters, with maps of
//! each path's answers (`answers`), requests and webhooks to their schema.

use std::sync::OnceLock;

use serde_json::Value;

/// The schemas of one vendored document.
pub struct Schemas {
    document: Value,
    schemas: Value,
    /// Whether an object schema that names its properties and says nothing
    /// of others refuses others (Stripe's spec); else they are allowed.
    closed: bool,
}

fn load(text: &str, schemas: &[&str], closed: bool) -> Schemas {
    let document: Value = serde_json::from_str(text).expect("a vendored schema file is JSON");
    let schemas = schemas.iter().fold(&document, |v, key| &v[key]).clone();
    Schemas {
        document,
        schemas,
        closed,
    }
}

impl Schemas {
    /// Stripe's, from `schemas/stripe.json`.
    pub fn stripe() -> &'static Schemas {
        static STRIPE: OnceLock<Schemas> = OnceLock::new();
        STRIPE.get_or_init(|| {
            load(
                include_str!("schemas/stripe.json"),
                &["components", "schemas"],
                true,
            )
        })
    }

    /// Plaid's of the transaction sync (`schemas/plaid.json`).
    pub fn plaid() -> &'static Schemas {
        static PLAID: OnceLock<Schemas> = OnceLock::new();
        PLAID.get_or_init(|| load(include_str!("schemas/plaid.json"), &["schemas"], false))
    }

    /// Plaid's of the link flow and webhooks (`schemas/plaid-link.json`).
    pub fn plaid_link() -> &'static Schemas {
        static LINK: OnceLock<Schemas> = OnceLock::new();
        LINK.get_or_init(|| load(include_str!("schemas/plaid-link.json"), &["schemas"], false))
    }

    /// The vendored document (its `version`, its maps).
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The schema name listed under `group` (`answers`, `requests`,
    /// `webhooks`) for `key` (an endpoint or a webhook's `TYPE.CODE`).
    pub fn name(&self, group: &str, key: &str) -> String {
        self.document[group][key]
            .as_str()
            .unwrap_or_else(|| panic!("no {group} schema for {key}"))
            .to_owned()
    }

    /// What in `value` the schema `name` does not allow, one sentence each
    /// with its path; empty when it conforms.
    pub fn check(&self, name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.node(self.named(name), value, name, &mut errors);
        errors
    }

    /// Panics naming every place where `value` breaks the schema `name`.
    pub fn assert_valid(&self, name: &str, value: &Value) {
        let errors = self.check(name, value);
        assert!(
            errors.is_empty(),
            "{name} does not accept {value}:\n{}",
            errors.join("\n")
        );
    }

    /// What in `body`, answered by `path` with `status`, the document's
    /// `answers` do not allow (`{"200": …, "default": …}` per path). A path
    /// the document does not name is itself a violation: every answer a
    /// fake gives must be checkable.
    pub fn check_answer(&self, path: &str, status: u16, body: &Value) -> Vec<String> {
        let answers = &self.document["answers"][path];
        let schema = if (200..300).contains(&status) {
            &answers["200"]
        } else {
            &answers["default"]
        };
        match schema.as_str() {
            Some(name) if self.schemas.get(name).is_some() => {
                let mut errors = Vec::new();
                self.node(
                    self.named(name),
                    body,
                    &format!("{path} {status}"),
                    &mut errors,
                );
                errors
            }
            _ => vec![format!(
                "{path} {status}: no schema vendored for this answer"
            )],
        }
    }

    /// An event, and the object in its `data.object` against the schema its
    /// `object` field names (Stripe).
    pub fn check_event(&self, event: &Value) -> Vec<String> {
        let mut errors = self.check("event", event);
        let object = &event["data"]["object"];
        match object["object"].as_str() {
            Some(name) if self.schemas.get(name).is_some() => {
                errors.extend(self.check(name, object));
            }
            other => errors.push(format!("event.data.object: no schema for {other:?}")),
        }
        errors
    }

    fn named(&self, name: &str) -> &Value {
        let schema = &self.schemas[name];
        assert!(schema.is_object(), "no schema {name}");
        schema
    }

    fn node(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap();
            return self.node(self.named(name), value, path, errors);
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.node(part, value, path, errors);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = schema[key].as_array() {
                let fits = branches.iter().any(|branch| {
                    let mut inner = Vec::new();
                    self.node(branch, value, path, &mut inner);
                    inner.is_empty()
                });
                if !fits {
                    errors.push(format!("{path}: {value} fits none of its {key}"));
                }
                return;
            }
        }
        if value.is_null() {
            let typed = schema.get("type").is_some() || schema.get("enum").is_some();
            if typed && schema["nullable"] != true {
                errors.push(format!("{path}: null, but not nullable"));
            }
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
        if let Some(kind) = schema["type"].as_str() {
            let fits = match kind {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "object" => value.is_object(),
                "array" => value.is_array(),
                other => panic!("{path}: the checker does not know the type {other}"),
            };
            if !fits {
                errors.push(format!("{path}: {value} is not of type {kind}"));
                return;
            }
        }
        if let Some(text) = value.as_str() {
            let length = text.chars().count() as u64;
            if schema["minLength"].as_u64().is_some_and(|min| length < min)
                || schema["maxLength"].as_u64().is_some_and(|max| length > max)
            {
                errors.push(format!("{path}: {value} has a length out of bounds"));
            }
            let formatted = match schema["format"].as_str() {
                Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                Some("date") => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
                _ => true,
            };
            if !formatted {
                errors.push(format!("{path}: {value} is not a {}", schema["format"]));
            }
        }
        if let Some(items) = value.as_array() {
            let count = items.len() as u64;
            if schema["minItems"].as_u64().is_some_and(|min| count < min)
                || schema["maxItems"].as_u64().is_some_and(|max| count > max)
            {
                errors.push(format!("{path}: {count} items is out of bounds"));
            }
            for (i, item) in items.iter().enumerate() {
                self.node(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        let Some(fields) = value.as_object() else {
            return;
        };
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap();
            if !fields.contains_key(required) {
                errors.push(format!("{path}: required field {required} is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, field) in fields {
            let path = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => self.node(property, field, &path, errors),
                None => match &schema["additionalProperties"] {
                    extra @ Value::Object(_) => self.node(extra, field, &path, errors),
                    Value::Bool(false) => errors.push(format!("{path}: not a field of the schema")),
                    Value::Null if self.closed && properties.is_some() => {
                        errors.push(format!("{path}: not a field of the schema"))
                    }
                    _ => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The checker itself finds what it should: a check that cannot fail
    /// proves nothing.
    #[test]
    fn the_checker_finds_what_stripes_schemas_refuse() {
        let schemas = Schemas::stripe();
        let error = json!({"error": {"type": "api_error", "message": "x"}});
        assert_eq!(schemas.check("error", &error), Vec::<String>::new());
        for (bad, what) in [
            (json!({"error": {"message": "x"}}), "required field type"),
            (json!({"error": {"type": "oops"}}), "is not one of"),
            (
                json!({"error": {"type": "api_error", "code": 5}}),
                "not of type string",
            ),
            (
                json!({"error": {"type": "api_error", "colour": "red"}}),
                "not a field",
            ),
            (
                json!({"error": {"type": "api_error", "message": null}}),
                "not nullable",
            ),
        ] {
            let errors = schemas.check("error", &bad);
            assert!(errors.iter().any(|e| e.contains(what)), "{bad}: {errors:?}");
        }
    }

    #[test]
    fn the_checker_finds_what_plaids_schemas_refuse() {
        let plaid = Schemas::plaid();
        assert_eq!(
            plaid.document()["version"]
                .as_str()
                .map(|v| v.starts_with("2020-09-14")),
            Some(true)
        );
        let error = json!({
            "error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED",
            "error_message": "m", "display_message": null, "request_id": "r",
        });
        assert_eq!(
            plaid.check_answer("/accounts/get", 400, &error),
            Vec::<String>::new()
        );
        let mut wrong = error.clone();
        wrong["error_type"] = "NOT_A_TYPE".into();
        wrong.as_object_mut().unwrap().remove("display_message");
        let found = plaid.check_answer("/accounts/get", 400, &wrong);
        assert_eq!(found.len(), 2, "{found:?}");
        // A sync answer without the accounts Plaid's schema requires.
        let found = plaid.check_answer(
            "/transactions/sync",
            200,
            &json!({"added": [], "modified": [], "removed": [], "next_cursor": "c",
                    "has_more": false, "request_id": "r",
                    "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE"}),
        );
        assert_eq!(
            found,
            vec!["/transactions/sync 200: required field accounts is missing".to_owned()]
        );
        assert!(
            !plaid
                .check_answer("/no/such/path", 200, &Value::Null)
                .is_empty()
        );

        let link = Schemas::plaid_link();
        let error = json!({"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED",
                           "error_message": "m", "display_message": null});
        link.assert_valid("PlaidError", &error);
        for broken in [
            json!({"error_type": "ITEM_ERROR", "error_code": "X", "display_message": null}),
            json!({"error_type": "NOT_A_TYPE", "error_code": "X", "error_message": "m", "display_message": null}),
            json!({"error_type": "ITEM_ERROR", "error_code": 7, "error_message": "m", "display_message": null}),
        ] {
            assert!(
                !link.check("PlaidError", &broken).is_empty(),
                "{broken} passed"
            );
        }
        let key = json!({"alg": "ES256", "kid": "k", "kty": "EC", "crv": "P-256", "x": "x", "y": "y",
                         "use": "sig", "created_at": 1, "expired_at": null});
        link.assert_valid("JWKPublicKey", &key);
        let mut stale = key.clone();
        stale["created_at"] = json!("yesterday");
        assert!(!link.check("JWKPublicKey", &stale).is_empty());
    }
}
