//! Checks the fakes' answers against the providers' published schemas: a
//! small validator of the OpenAPI 3.0 schema keywords the vendored copies
//! use (`type`, `nullable`, `properties`, `required`, `items`, `allOf`,
//! `enum`, `minLength`, `maxLength`, `$ref`). `format` is not checked.
//! A keyword it does not know is reported, so a newly vendored schema
//! cannot pass by being ignored.

use std::sync::LazyLock;

use serde_json::Value;

/// Plaid's schemas (`schemas/plaid.json`, trimmed from `plaid/plaid-openapi`
/// `2020-09-14.yml`; its top names the version and commit).
pub static PLAID: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("schemas/plaid.json")).expect("schemas/plaid.json is JSON")
});

/// The violations of `body`, answered by `path` with `status`, against the
/// vendored document `spec` (empty when it conforms). A path the document
/// does not name is itself a violation: every answer the fake gives must be
/// checkable.
pub fn check_answer(spec: &Value, path: &str, status: u16, body: &Value) -> Vec<String> {
    let answers = &spec["answers"][path];
    let schema = if (200..300).contains(&status) {
        &answers["200"]
    } else {
        &answers["default"]
    };
    let Some(name) = schema.as_str() else {
        return vec![format!(
            "{path} {status}: no schema vendored for this answer"
        )];
    };
    let mut found = Vec::new();
    check(
        spec,
        &json_ref(name),
        body,
        &format!("{path} {status}"),
        &mut found,
    );
    found
}

fn json_ref(name: &str) -> Value {
    serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
}

const KNOWN: &[&str] = &[
    "$ref",
    "type",
    "nullable",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "allOf",
    "enum",
    "format",
    "minLength",
    "maxLength",
];

/// Checks `value` against `schema`, adding what does not conform to `found`.
pub fn check(spec: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        found.push(format!("{at}: the schema is not an object"));
        return;
    };
    if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        found.push(format!(
            "{at}: the checker does not know the keyword {unknown}"
        ));
    }
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        match spec["schemas"].get(name) {
            Some(target) => check(spec, target, value, at, found),
            None => found.push(format!("{at}: {reference} is not vendored")),
        }
        return;
    }
    if value.is_null() && object.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(all) = object.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(spec, part, value, at, found);
        }
    }
    if let Some(allowed) = object.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        found.push(format!("{at}: {value} is not one of the allowed values"));
    }
    let Some(kind) = object.get("type").and_then(Value::as_str) else {
        return;
    };
    let fits = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        other => {
            found.push(format!("{at}: unknown type {other}"));
            return;
        }
    };
    if !fits {
        found.push(format!("{at}: {value} is not of type {kind}"));
        return;
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if object
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| length < m)
        {
            found.push(format!("{at}: {value} is shorter than minLength"));
        }
        if object
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| length > m)
        {
            found.push(format!("{at}: {value} is longer than maxLength"));
        }
    }
    if let (Some(items), Some(values)) = (object.get("items"), value.as_array()) {
        for (n, item) in values.iter().enumerate() {
            check(spec, items, item, &format!("{at}[{n}]"), found);
        }
    }
    if let Some(fields) = value.as_object() {
        if let Some(required) = object.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    found.push(format!("{at}: the required field {name} is missing"));
                }
            }
        }
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            for (name, field) in fields {
                if let Some(property) = properties.get(name) {
                    check(spec, property, field, &format!("{at}.{name}"), found);
                }
            }
        }
    }
}

#[test]
fn the_checker_finds_what_does_not_conform() {
    let spec = &*PLAID;
    assert_eq!(
        spec["version"]
            .as_str()
            .map(|v| v.starts_with("2020-09-14")),
        Some(true)
    );
    let error = serde_json::json!({
        "error_type": "ITEM_ERROR", "error_code": "ITEM_LOGIN_REQUIRED",
        "error_message": "m", "display_message": null, "request_id": "r",
    });
    assert_eq!(
        check_answer(spec, "/accounts/get", 400, &error),
        Vec::<String>::new()
    );
    let mut wrong = error.clone();
    wrong["error_type"] = "NOT_A_TYPE".into();
    wrong.as_object_mut().unwrap().remove("display_message");
    let found = check_answer(spec, "/accounts/get", 400, &wrong);
    assert_eq!(found.len(), 2, "{found:?}");
    // A sync answer without the accounts Plaid's schema requires.
    let found = check_answer(
        spec,
        "/transactions/sync",
        200,
        &serde_json::json!({"added": [], "modified": [], "removed": [], "next_cursor": "c",
                            "has_more": false, "request_id": "r",
                            "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE"}),
    );
    assert_eq!(
        found,
        vec!["/transactions/sync 200: the required field accounts is missing".to_owned()]
    );
    assert!(!check_answer(spec, "/link/token/create", 200, &Value::Null).is_empty());
}
