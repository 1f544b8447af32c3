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
        find(node).or_else(|| Self::parts(node).find_map(|part| self.search(part, depth + 1, find)))
    }

    /// What a string described by `node` is.
    pub(crate) fn kind(&self, node: &Value) -> Kind {
        self.search(
            node,
            0,
            &|node| match node.get("format").and_then(Value::as_str)? {
                "date" => Some(Kind::Date),
                format if format == MONEY_FORMAT => Some(Kind::Money),
                _ => None,
            },
        )
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

    /// Words that, as a property's name or a `_`-separated part of it, say
    /// the property holds money (or a decimal figure with it: quantity,
    /// tax rate).
    const MONEY_WORDS: &[&str] = &[
        "amount",
        "annual",
        "assets",
        "balance",
        "credit",
        "credited",
        "current",
        "debit",
        "earnings",
        "equity",
        "expenses",
        "gross",
        "income",
        "liabilities",
        "net",
        "outstanding",
        "over",
        "paid",
        "price",
        "quantity",
        "rate",
        "revenue",
        "subtotal",
        "tax",
        "total",
    ];

    /// Properties whose names have a money word but hold no money.
    const NOT_MONEY: &[&str] = &[
        // `line` or `document`: how tax is rounded (a plain string on Invoice).
        "tax_rounding",
    ];

    /// Whether `node` (followed through references) is a free string, or
    /// a free string or null (not one of an enumeration's names).
    fn is_string(schema: &Schema, node: &Value) -> bool {
        schema
            .search(node, 0, &|node| match node.get("type")? {
                _ if node.get("enum").is_some() => Some(false),
                Value::String(kind) => Some(kind == "string"),
                Value::Array(kinds) => Some(kinds.iter().any(|k| k == "string")),
                _ => None,
            })
            .unwrap_or(false)
    }

    /// A money field declared as a plain `String` (without
    /// `#[schema(value_type = AmountText)]`) would reach Python as `str`:
    /// every string property of the document whose name says money must
    /// carry the money format.
    #[test]
    fn every_string_named_like_money_has_the_money_format() {
        let doc = document();
        let components = doc["components"]["schemas"].as_object().unwrap().clone();
        let all = Schema::from_parts(Value::Null, components.clone());
        let mut untyped = Vec::new();
        let mut typed = 0;
        for (name, component) in &components {
            let Some(properties) = component.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (property, node) in properties {
                let money_named = property.split('_').any(|word| MONEY_WORDS.contains(&word));
                let exempt = NOT_MONEY.contains(&property.as_str());
                if !money_named || exempt || !is_string(&all, node) {
                    continue;
                }
                match all.kind(node) {
                    Kind::Money => typed += 1,
                    _ => untyped.push(format!("{name}.{property}")),
                }
            }
        }
        assert!(untyped.is_empty(), "money as a plain string: {untyped:?}");
        assert!(typed > 40, "only {typed} money properties found");
    }

    fn at<'a>(schema: &'a Schema, path: &[&str]) -> &'a Value {
        let mut node = schema.root();
        for step in path {
            node = match *step {
                "[]" => schema.items(node),
                key => schema.property(node, key),
            }
            .unwrap_or_else(|| panic!("no {step} in {path:?}"));
        }
        node
    }

    #[test]
    fn answers_are_typed_through_references_lists_options_and_variants() {
        use accubooks_core::invoicing::Invoice;
        use accubooks_core::ledger::{Account, GeneralLedger, TrialBalance};
        use accubooks_core::payroll::Employee;
        use accubooks_core::usecases::Answer;

        let invoice = Schema::of::<Answer<Invoice>>();
        assert_eq!(invoice.kind(at(&invoice, &["total"])), Kind::Money);
        assert_eq!(invoice.kind(at(&invoice, &["due_date"])), Kind::Date);
        assert_eq!(invoice.kind(at(&invoice, &["void_date"])), Kind::Date);
        assert_eq!(invoice.kind(at(&invoice, &["number"])), Kind::Text);
        let line = ["lines", "[]", "unit_price"];
        assert_eq!(invoice.kind(at(&invoice, &line)), Kind::Money);

        let accounts = Schema::list_of::<Account>();
        assert_eq!(
            accounts.kind(at(&accounts, &["[]", "balance"])),
            Kind::Money
        );
        assert_eq!(accounts.kind(at(&accounts, &["[]", "code"])), Kind::Text);

        let ledger = Schema::of::<GeneralLedger>();
        let debit = ["rows", "[]", "debit"];
        assert_eq!(ledger.kind(at(&ledger, &debit)), Kind::Money);
        assert_eq!(
            ledger.kind(at(&ledger, &["rows", "[]", "date"])),
            Kind::Date
        );
        assert_eq!(ledger.kind(at(&ledger, &["from"])), Kind::Date);

        let trial = Schema::of::<TrialBalance>();
        assert_eq!(trial.kind(at(&trial, &["total_debit"])), Kind::Money);

        let employee = Schema::of::<Employee>();
        assert_eq!(
            employee.kind(at(&employee, &["pay", "annual"])),
            Kind::Money
        );
        assert_eq!(employee.kind(at(&employee, &["start_date"])), Kind::Date);

        // Built once per type.
        assert!(Arc::ptr_eq(&trial, &Schema::of::<TrialBalance>()));
    }
}
