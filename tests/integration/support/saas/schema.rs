//! Checks JSON against a vendored, trimmed copy of a provider's OpenAPI
//! 3.0 schemas (`schemas/*.json`, each naming its source, version and
//! commit), so a fake cannot drift from the provider's published format.
//!
//! The keywords the trimmed copies keep: `$ref`, `type`, `nullable`,
//! `required`, `properties`, `additionalProperties`, `items`, `allOf`,
//! `oneOf`, `anyOf`, `enum`, `minLength`, `maxLength`, `minItems`,
//! `maxItems`, and the `date-time` and `date` formats.

use serde_json::Value;

/// A vendored schema set.
pub struct Schemas {
    doc: Value,
}

impl Schemas {
    /// Plaid's schemas of the link flow (`schemas/plaid-link.json`).
    pub fn plaid_link() -> Schemas {
        Schemas {
            doc: serde_json::from_str(include_str!("schemas/plaid-link.json")).unwrap(),
        }
    }

    /// The schema name listed under `group` (`answers`, `requests`,
    /// `webhooks`) for `key` (an endpoint or a webhook's `TYPE.CODE`).
    pub fn name(&self, group: &str, key: &str) -> String {
        self.doc[group][key]
            .as_str()
            .unwrap_or_else(|| panic!("no {group} schema for {key}"))
            .to_owned()
    }

    /// Every place where `value` breaks the schema `name`.
    pub fn problems(&self, name: &str, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let schema = &self.doc["schemas"][name];
        assert!(!schema.is_null(), "no schema {name}");
        self.check(schema, value, "$", &mut problems);
        problems
    }

    /// Panics naming every place where `value` breaks the schema `name`.
    pub fn assert_valid(&self, name: &str, value: &Value) {
        let problems = self.problems(name, value);
        assert!(
            problems.is_empty(),
            "{name} does not accept {value}:\n{}",
            problems.join("\n")
        );
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(target) => {
                let name = target.rsplit('/').next().unwrap();
                let found = &self.doc["schemas"][name];
                assert!(!found.is_null(), "unresolved {target}");
                self.resolve(found)
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(all) = schema["allOf"].as_array() {
            for part in all {
                self.check(part, value, at, problems);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(any) = schema[key].as_array() {
                let fits = any.iter().any(|part| {
                    let mut none = Vec::new();
                    self.check(part, value, at, &mut none);
                    none.is_empty()
                });
                if !fits {
                    problems.push(format!("{at}: fits none of {key}"));
                }
            }
        }
        if value.is_null() {
            let typed = schema.get("type").is_some() || schema.get("enum").is_some();
            if typed && schema["nullable"] != true {
                problems.push(format!("{at}: null where the schema allows none"));
            }
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        let fits = match schema["type"].as_str() {
            None => true,
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            Some(other) => panic!("{at}: unknown type {other}"),
        };
        if !fits {
            problems.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let Some(text) = value.as_str() {
            let length = text.chars().count() as u64;
            if schema["minLength"].as_u64().is_some_and(|min| length < min)
                || schema["maxLength"].as_u64().is_some_and(|max| length > max)
            {
                problems.push(format!("{at}: {value} has a length out of bounds"));
            }
            let formatted = match schema["format"].as_str() {
                Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                Some("date") => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
                _ => true,
            };
            if !formatted {
                problems.push(format!("{at}: {value} is not a {}", schema["format"]));
            }
        }
        if let Some(items) = value.as_array() {
            let count = items.len() as u64;
            if schema["minItems"].as_u64().is_some_and(|min| count < min)
                || schema["maxItems"].as_u64().is_some_and(|max| count > max)
            {
                problems.push(format!("{at}: {count} items is out of bounds"));
            }
            if let Some(item) = schema.get("items") {
                for (i, value) in items.iter().enumerate() {
                    self.check(item, value, &format!("{at}[{i}]"), problems);
                }
            }
        }
        if let Some(fields) = value.as_object() {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap();
                if !fields.contains_key(name) {
                    problems.push(format!("{at}: the required {name} is missing"));
                }
            }
            for (name, value) in fields {
                let at = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => self.check(property, value, &at, problems),
                    None => match &schema["additionalProperties"] {
                        Value::Bool(false) => problems.push(format!("{at}: not in the schema")),
                        extra @ Value::Object(_) => self.check(extra, value, &at, problems),
                        _ => {}
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The checker itself finds what it should: a check that cannot fail
    /// proves nothing.
    #[test]
    fn the_checker_finds_missing_wrong_and_unknown_values() {
        let schemas = Schemas::plaid_link();
        let error = json!({"error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED",
                           "error_message": "m", "display_message": null});
        schemas.assert_valid("PlaidError", &error);
        for broken in [
            json!({"error_type": "ITEM_ERROR", "error_code": "X", "display_message": null}),
            json!({"error_type": "NOT_A_TYPE", "error_code": "X", "error_message": "m", "display_message": null}),
            json!({"error_type": "ITEM_ERROR", "error_code": 7, "error_message": "m", "display_message": null}),
        ] {
            assert!(
                !schemas.problems("PlaidError", &broken).is_empty(),
                "{broken} passed"
            );
        }
        let key = json!({"alg": "ES256", "kid": "k", "kty": "EC", "crv": "P-256", "x": "x", "y": "y",
                         "use": "sig", "created_at": 1, "expired_at": null});
        schemas.assert_valid("JWKPublicKey", &key);
        let mut stale = key.clone();
        stale["created_at"] = json!("yesterday");
        assert!(!schemas.problems("JWKPublicKey", &stale).is_empty());
    }
}
