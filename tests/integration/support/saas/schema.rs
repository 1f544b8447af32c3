//! A small checker of JSON answers against a provider's published OpenAPI
//! component schemas (the trimmed copies in `schemas/`, each naming its
//! source, commit and version at its top), so a fake cannot drift from the
//! provider: required fields present, types, `nullable`, `enum`, `anyOf`,
//! `allOf`, string lengths, arrays, `$ref`s, and no field the schema does
//! not name (an object schema without `additionalProperties` is closed
//! here, so a fake cannot send a field of another API version). `format`
//! is not checked. One checker for both providers: Stripe's copy keeps
//! OpenAPI's `components.schemas`; Plaid's keeps `schemas` and an `answers`
//! map from each path to the schema of its success and of its errors.

use std::sync::OnceLock;

use serde_json::Value;

/// Component schemas of one provider's spec.
pub struct Schemas {
    /// The vendored document.
    document: Value,
    schemas: Value,
}

impl Schemas {
    /// Stripe's, from `schemas/stripe.json`.
    pub fn stripe() -> &'static Schemas {
        static STRIPE: OnceLock<Schemas> = OnceLock::new();
        STRIPE.get_or_init(|| {
            let spec: Value = serde_json::from_str(include_str!("schemas/stripe.json"))
                .expect("schemas/stripe.json is JSON");
            Schemas {
                schemas: spec["components"]["schemas"].clone(),
                document: spec,
            }
        })
    }

    /// Plaid's, from `schemas/plaid.json` (trimmed from `plaid/plaid-openapi`
    /// `2020-09-14.yml`).
    pub fn plaid() -> &'static Schemas {
        static PLAID: OnceLock<Schemas> = OnceLock::new();
        PLAID.get_or_init(|| {
            let spec: Value = serde_json::from_str(include_str!("schemas/plaid.json"))
                .expect("schemas/plaid.json is JSON");
            Schemas {
                schemas: spec["schemas"].clone(),
                document: spec,
            }
        })
    }

    /// The vendored document (its `version`, its `answers`).
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// What in `body`, answered by `path` with `status`, the document's
    /// `answers` do not allow (the schema of its 2xx answer, or of its
    /// errors). A path the document does not name is itself a violation:
    /// every answer a fake gives must be checkable.
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

    /// What in `value` the schema `name` does not allow, one sentence each
    /// with its path; empty when it conforms.
    pub fn check(&self, name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let schema = self.named(name);
        self.node(schema, value, name, &mut errors);
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
        if value.is_null() {
            if schema["nullable"] != true {
                errors.push(format!("{path}: null, but not nullable"));
            }
            return;
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.node(part, value, path, errors);
        }
        if let Some(branches) = schema["anyOf"].as_array() {
            let fits = branches.iter().any(|branch| {
                let mut inner = Vec::new();
                self.node(branch, value, path, &mut inner);
                inner.is_empty()
            });
            if !fits {
                errors.push(format!("{path}: {value} fits none of {branches:?}"));
            }
            return;
        }
        if let Some(kind) = schema["type"].as_str() {
            let fits = match kind {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "object" => value.is_object(),
                "array" => value.is_array(),
                _ => true,
            };
            if !fits {
                errors.push(format!("{path}: {value} is not of type {kind}"));
                return;
            }
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
        if let Some(text) = value.as_str() {
            let length = text.chars().count() as u64;
            if schema["minLength"].as_u64().is_some_and(|min| length < min) {
                errors.push(format!("{path}: {value} is shorter than minLength"));
            }
            if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
                errors.push(format!("{path}: {value} is longer than maxLength"));
            }
        }
        if let Some(items) = value.as_array() {
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
                    Value::Object(_) => {
                        self.node(&schema["additionalProperties"], field, &path, errors)
                    }
                    Value::Bool(true) => {}
                    _ if properties.is_some() => {
                        errors.push(format!("{path}: not a field of the schema"))
                    }
                    _ => {}
                },
            }
        }
    }

    /// An event, and the object in its `data.object` against the schema its
    /// `object` field names.
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_checker_finds_what_a_schema_refuses() {
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
    fn the_checker_finds_what_does_not_conform_to_plaid() {
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
    }
}
