//! Which strings of an answer are dates and which are money, read from the
//! core's schema of the answer's type (the one the OpenAPI document shows):
//! a string property with `format: date` becomes a `datetime.date`, one with
//! the money format ([`MONEY_FORMAT`]) a `decimal.Decimal`. A new field of
//! a core type is typed in Python as soon as its schema says what it is; no
//! list of field names to keep up.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use accubooks_core::money::MONEY_FORMAT;
use serde_json::Value;
use utoipa::ToSchema;

/// The prefix of a reference to a component schema.
const COMPONENTS: &str = "#/components/schemas/";

/// How deep references and compositions are followed for one value: far
/// beyond any real schema, and a bound should one ever refer to itself.
const MAX_DEPTH: u8 = 32;

/// What a string of an answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text, left as `str`.
    Text,
    /// A `YYYY-MM-DD` date.
    Date,
    /// A decimal string of money.
    Money,
}

/// The JSON schema of an answer and the component schemas it refers to.
#[derive(Debug)]
pub(crate) struct Schema {
    root: Value,
    components: HashMap<String, Value>,
}

/// The schemas built so far, one per answer type (and list of one).
static BUILT: Mutex<Option<HashMap<TypeId, Arc<Schema>>>> = Mutex::new(None);

impl Schema {
    /// The schema of `T`'s JSON, built once per type.
    pub(crate) fn of<T: ToSchema + 'static>() -> Arc<Schema> {
        Self::cached::<T>(|| Schema::new::<T>(to_json(T::schema())))
    }

    /// The schema of a JSON list of `T`.
    pub(crate) fn list_of<T: ToSchema + 'static>() -> Arc<Schema> {
        Self::cached::<Vec<T>>(|| {
            Schema::new::<T>(serde_json::json!({"type": "array", "items": to_json(T::schema())}))
        })
    }

    fn cached<K: 'static>(build: impl FnOnce() -> Schema) -> Arc<Schema> {
        let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
        let built = built.get_or_insert_with(HashMap::new);
        Arc::clone(
            built
                .entry(TypeId::of::<K>())
                .or_insert_with(|| Arc::new(build())),
        )
    }

    fn new<T: ToSchema>(root: Value) -> Schema {
        let mut components = Vec::new();
        T::schemas(&mut components);
        Schema::from_parts(
            root,
            components
                .into_iter()
                .map(|(name, schema)| (name, to_json(schema))),
        )
    }

    /// A schema from its JSON and its components' JSON, by name.
    pub(crate) fn from_parts(
        root: Value,
        components: impl IntoIterator<Item = (String, Value)>,
    ) -> Schema {
        Schema {
            root,
            components: components.into_iter().collect(),
        }
    }

    /// The schema of the whole answer.
    pub(crate) fn root(&self) -> &Value {
        &self.root
    }

    /// `node` with references followed.
    fn resolve<'a>(&'a self, mut node: &'a Value) -> Option<&'a Value> {
        for _ in 0..MAX_DEPTH {
            match node.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    node = self.components.get(reference.strip_prefix(COMPONENTS)?)?;
                }
                None => return Some(node),
            }
        }
        None
    }

    /// The alternatives and parts of a composition (`oneOf`, `anyOf`,
    /// `allOf`): an `Option<T>` is a `oneOf` of null and `T`.
    fn parts(node: &Value) -> impl Iterator<Item = &Value> {
        ["oneOf", "anyOf", "allOf"]
            .into_iter()
            .filter_map(|key| node.get(key).and_then(Value::as_array))
            .flatten()
    }

    /// Searches `node` and its compositions for the first answer of `find`.
    fn search<'a, R>(
        &'a self,
        node: &'a Value,
        depth: u8,
        find: &impl Fn(&'a Value) -> Option<R>,
    ) -> Option<R> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let node = self.resolve(node)?;
        find(node).or_else(|| {
            Self::parts(node).find_map(|part| self.search(part, depth + 1, find))
        })
    }

    /// What a string described by `node` is.
    pub(crate) fn kind(&self, node: &Value) -> Kind {
        self.search(node, 0, &|node| {
            match node.get("format").and_then(Value::as_str)? {
                "date" => Some(Kind::Date),
                format if format == MONEY_FORMAT => Some(Kind::Money),
                _ => None,
            }
        })
        .unwrap_or(Kind::Text)
    }

    /// The schema of the items of a list described by `node`.
    pub(crate) fn items<'a>(&'a self, node: &'a Value) -> Option<&'a Value> {
        self.search(node, 0, &|node| node.get("items").filter(|i| i.is_object()))
    }

    /// The schema of the property `key` of an object described by `node`
    /// (or of its additional properties).
    pub(crate) fn property<'a>(&'a self, node: &'a Value, key: &str) -> Option<&'a Value> {
        self.search(node, 0, &|node| node.get("properties")?.get(key))
            .or_else(|| {
                self.search(node, 0, &|node| {
                    node.get("additionalProperties").filter(|a| a.is_object())
                })
            })
    }

    /// Every string property of every schema here whose kind is `kind`, as
    /// `(schema name, property)`: what a test checks the conversion against.
    #[cfg(test)]
    pub(crate) fn properties_of_kind(&self, kind: Kind) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (name, schema) in &self.components {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (property, node) in properties {
                if self.kind(node) == kind {
                    found.push((name.clone(), property.clone()));
                }
            }
        }
        found.sort();
        found
    }
}

fn to_json(schema: impl serde::Serialize) -> Value {
    // A utoipa schema is plain data: it always serializes.
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core's OpenAPI document, from an instance on a throwaway SQLite
    /// file (building one never waits for the database).
    fn document() -> Value {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("books.db").display());
        let config = accubooks_core::Config::from_vars([("DATABASE_URL", url)]).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let app = accubooks_core::AccuBooks::builder(config)
                .build()
                .await
                .unwrap();
            let doc = app.openapi().clone();
            app.close().await;
            doc
        })
    }

    #[test]
    fn dump() {
        let doc = document();
        let components = doc["components"]["schemas"].as_object().unwrap().clone();
        let all = Schema::from_parts(Value::Null, components);
        for kind in [Kind::Date, Kind::Money, Kind::Text] {
            for (name, property) in all.properties_of_kind(kind) {
                println!("{kind:?} {name}.{property}");
            }
        }
    }
}
