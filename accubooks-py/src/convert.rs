//! Values across the boundary.
//!
//! Out: the core's answers are serialized with serde_json exactly as the HTTP
//! API sends them, then turned into plain Python objects. In book answers the
//! strings the core's schema of the answer type marks as dates become
//! `datetime.date` and those it marks as money `decimal.Decimal` (exact:
//! built from the decimal string, never a float); see [`crate::schema`].
//!
//! In: dates are `datetime.date` or `"YYYY-MM-DD"`; money is `Decimal` or a
//! decimal string. A `float` is refused (money is never a float), and so is
//! an `int` (is `100` cents or dollars?).

use std::sync::Arc;

use accubooks_core::config;
use accubooks_core::invoicing::NewLine;
use accubooks_core::ledger::{EntryInput, LineInput};
use accubooks_core::money::AmountText;
use chrono::NaiveDate;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDate, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyType,
};
use serde_json::Value;

use crate::error::{Failure, Outcome, invalid};
use crate::instance::{Instance, Org};
use crate::schema::{Kind, Schema};
use crate::server::{Server, ServerTask};

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PAGE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn decimal_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DECIMAL.import(py, "decimal", "Decimal")
}

/// A JSON value as plain Python objects (health, a webhook's receipt).
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    convert(py, value, None)
}

/// A book answer as Python objects, its dates and money typed as `schema`
/// (the schema of the answer's type) says.
pub(crate) fn typed_to_py<'py>(
    py: Python<'py>,
    value: &Value,
    schema: &Schema,
) -> PyResult<Bound<'py, PyAny>> {
    convert(py, value, Some((schema, schema.root())))
}

/// `value` as Python objects; `at` is the schema that describes it, when
/// known.
fn convert<'py>(
    py: Python<'py>,
    value: &Value,
    at: Option<(&Schema, &Value)>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                int.into_pyobject(py)?.into_any()
            } else if let Some(int) = number.as_u64() {
                int.into_pyobject(py)?.into_any()
            } else {
                // Only health and metrics figures are fractional; money is
                // always a string.
                number
                    .as_f64()
                    .unwrap_or_default()
                    .into_pyobject(py)?
                    .into_any()
            }
        }
        Value::String(text) => match at.map(|(schema, node)| schema.kind(node)) {
            Some(Kind::Date) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => date.into_pyobject(py)?.into_any(),
                Err(_) => PyString::new(py, text).into_any(),
            },
            Some(Kind::Money) => decimal_type(py)?.call1((text.as_str(),))?,
            Some(Kind::Text) | None => PyString::new(py, text).into_any(),
        },
        Value::Array(items) => {
            let at = at.and_then(|(schema, node)| Some((schema, schema.items(node)?)));
            let items = items
                .iter()
                .map(|item| convert(py, item, at))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                let at = at.and_then(|(schema, node)| Some((schema, schema.property(node, key)?)));
                dict.set_item(key, convert(py, item, at)?)?;
            }
            dict.into_any()
        }
    })
}

/// A content error of the caller's input (422), as a Python exception.
fn invalid_input(code: &'static str, message: String) -> PyErr {
    invalid(code, message).into()
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// A structured argument (dicts, lists, strings, numbers) read as the JSON
/// of `T`, the use case's input: `Decimal`s and dates become their text, as
/// the HTTP API writes them. A mismatch is a 422 naming `what`.
pub(crate) fn json_arg<T: serde::de::DeserializeOwned>(
    value: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<T> {
    let py = value.py();
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("default", py.import("builtins")?.getattr("str")?)?;
    let text: String = py
        .import("json")?
        .call_method("dumps", (value,), Some(&kwargs))?
        .extract()?;
    serde_json::from_str(&text).map_err(|err| {
        crate::error::invalid("INVALID_FIELD", format!("{what} is not valid: {err}.")).into()
    })
}

/// A date argument: `datetime.date` or `"YYYY-MM-DD"` (checked by the core).
/// A `datetime.datetime` is refused: which day it means depends on a time
/// zone the caller should choose.
pub(crate) fn date_arg(value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if value.is_instance_of::<PyDateTime>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a datetime.date, not a datetime.datetime: pass .date() of it in the time zone you mean"
        )));
    }
    if value.is_instance_of::<PyDate>() {
        let date: NaiveDate = value.extract()?;
        return Ok(date.format("%Y-%m-%d").to_string());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return text.extract::<String>();
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a datetime.date or a \"YYYY-MM-DD\" string, not {}",
        type_name(value)
    )))
}

/// An optional date argument.
pub(crate) fn optional_date(
    value: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<String>> {
    value
        .filter(|v| !v.is_none())
        .map(|v| date_arg(v, what))
        .transpose()
}

/// A money argument: `Decimal` or a decimal string. `place` names the
/// argument in an error (built only then).
pub(crate) fn amount_arg(
    value: &Bound<'_, PyAny>,
    place: impl Fn() -> String,
) -> PyResult<AmountText> {
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(AmountText(text.extract()?));
    }
    if value.is_instance(decimal_type(value.py())?)? {
        // str() is the fast way; it writes large or tiny values with an
        // exponent ("1E+2"), which the fixed-point form spells out ("100").
        let text: String = value.str()?.extract()?;
        if !text.contains(['E', 'e']) {
            return Ok(AmountText(text));
        }
        let text: String = value.call_method1("__format__", ("f",))?.extract()?;
        return Ok(AmountText(text));
    }
    let hint = "pass decimal.Decimal(\"12.30\") or the string \"12.30\"";
    let place = place();
    if value.is_instance_of::<PyFloat>() {
        return Err(PyTypeError::new_err(format!(
            "{place} is a float; money is never a float: {hint}"
        )));
    }
    if value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{place} is an int, which could mean cents or dollars: {hint}"
        )));
    }
    Err(PyTypeError::new_err(format!(
        "{place} must be a decimal.Decimal or a decimal string, not {}: {hint}",
        type_name(value)
    )))
}

fn text_arg(value: &Bound<'_, PyAny>, place: &str) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(text) => text.extract::<String>(),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{place} must be a str, not {}",
            type_name(value)
        ))),
    }
}

/// A dict argument; `place` names it in the error (built only then).
fn dict_arg<'a, 'py>(
    value: &'a Bound<'py, PyAny>,
    place: impl Fn() -> String,
    example: &str,
) -> PyResult<&'a Bound<'py, PyDict>> {
    value.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{} must be a dict such as {example}, not {}",
            place(),
            type_name(value)
        ))
    })
}

fn list_arg<'py>(value: &Bound<'py, PyAny>, place: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let is_text = value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>();
    if is_text || value.is_instance_of::<PyDict>() {
        return Err(PyTypeError::new_err(format!(
            "{place} must be a list, not {}",
            type_name(value)
        )));
    }
    value
        .try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!("{place} must be a list, not {}", type_name(value)))
        })?
        .collect()
}

const LINE_EXAMPLE: &str = "{\"account\": \"1000\", \"debit\": Decimal(\"1.00\")}";

/// The lines of an entry: dicts with `account` and one of `debit` and
/// `credit`. Fields are looked up by interned name and error texts built
/// only on error: a batch of 10,000 entries converts in milliseconds.
pub(crate) fn lines_arg(value: &Bound<'_, PyAny>, prefix: &str) -> PyResult<Vec<LineInput>> {
    let py = value.py();
    let (account_key, debit_key, credit_key) = (
        intern!(py, "account"),
        intern!(py, "debit"),
        intern!(py, "credit"),
    );
    list_arg(value, &format!("{prefix}lines"))?
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let place = || format!("{prefix}Line {}", index + 1);
            let dict = dict_arg(item, place, LINE_EXAMPLE)?;
            let mut known = 0;
            let mut amount =
                |key: &Bound<'_, PyString>, name: &str| -> PyResult<Option<AmountText>> {
                    match dict.get_item(key)? {
                        None => Ok(None),
                        Some(field) => {
                            known += 1;
                            if field.is_none() {
                                return Ok(None);
                            }
                            amount_arg(&field, || format!("{}: \"{name}\"", place())).map(Some)
                        }
                    }
                };
            let debit = amount(debit_key, "debit")?;
            let credit = amount(credit_key, "credit")?;
            let account = match dict.get_item(account_key)? {
                Some(field) => {
                    known += 1;
                    text_arg(&field, &format!("{}: \"account\"", place()))?
                }
                None => {
                    return Err(invalid_input(
                        "INVALID_FIELD",
                        format!("{}: \"account\" is missing.", place()),
                    ));
                }
            };
            if dict.len() > known {
                return Err(unknown_field(
                    dict,
                    &place(),
                    &["account", "debit", "credit"],
                    "a line has \"account\" and one of \"debit\" and \"credit\"",
                ));
            }
            Ok(LineInput {
                account,
                debit,
                credit,
            })
        })
        .collect()
}

/// The error for a dict with a key outside `known` (or a key that is not a
/// `str`).
fn unknown_field(dict: &Bound<'_, PyDict>, place: &str, known: &[&str], shape: &str) -> PyErr {
    for (key, _) in dict.iter() {
        let Ok(name) = key.cast::<PyString>() else {
            return PyTypeError::new_err(format!(
                "{place}: a key must be a str, not {}",
                type_name(&key)
            ));
        };
        let name = name.to_string();
        if !known.contains(&name.as_str()) {
            return invalid_input(
                "INVALID_FIELD",
                format!("{place}: unknown field {name:?}; {shape}."),
            );
        }
    }
    invalid_input("INVALID_FIELD", format!("{place}: {shape}."))
}

const INVOICE_LINE_EXAMPLE: &str = "{\"description\": \"Consulting\", \"quantity\": Decimal(\"2\"), \"unit_price\": Decimal(\"150.00\"), \"tax_rate\": Decimal(\"0.08\")}";

/// The lines of an invoice or credit note: dicts with `description`,
/// `quantity`, `unit_price` and optionally `tax_rate` (decimals).
pub(crate) fn invoice_lines_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<NewLine>> {
    list_arg(value, "lines")?
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let place = format!("Line {}", index + 1);
            let dict = dict_arg(item, || place.clone(), INVOICE_LINE_EXAMPLE)?;
            let (mut description, mut quantity, mut unit_price) = (None, None, None);
            let mut tax_rate = AmountText("0".to_owned());
            for (key, field) in dict.iter() {
                let key = text_arg(&key, &format!("{place}: a key"))?;
                let at = format!("{place}: {key:?}");
                match key.as_str() {
                    "description" => description = Some(text_arg(&field, &at)?),
                    "quantity" => quantity = Some(amount_arg(&field, || at.clone())?),
                    "unit_price" => unit_price = Some(amount_arg(&field, || at.clone())?),
                    "tax_rate" => tax_rate = amount_arg(&field, || at.clone())?,
                    other => {
                        return Err(invalid_input(
                            "INVALID_FIELD",
                            format!(
                                "{place}: unknown field {other:?}; a line has \"description\", \"quantity\", \"unit_price\" and \"tax_rate\"."
                            ),
                        ));
                    }
                }
            }
            let missing =
                |name: &str| invalid_input("INVALID_FIELD", format!("{place}: {name:?} is missing."));
            Ok(NewLine {
                description: description.ok_or_else(|| missing("description"))?,
                quantity: quantity.ok_or_else(|| missing("quantity"))?,
                unit_price: unit_price.ok_or_else(|| missing("unit_price"))?,
                tax_rate,
            })
        })
        .collect()
}

/// Metadata from a `dict` of `str` to `str` (or `None`: none), checked as
/// the HTTP door checks it.
pub(crate) fn metadata_arg(
    value: Option<&Bound<'_, PyAny>>,
    place: &str,
) -> PyResult<accubooks_core::metadata::Metadata> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Default::default());
    };
    let dict = dict_arg(value, || place.to_owned(), "{\"order\": \"A-1042\"}")?;
    let mut map = std::collections::BTreeMap::new();
    for (key, field) in dict.iter() {
        let key = text_arg(&key, &format!("{place}: a key"))?;
        let field = text_arg(&field, &format!("{place}: {key:?}"))?;
        map.insert(key, field);
    }
    accubooks_core::metadata::Metadata::try_from(map)
        .map_err(|err| invalid_input("INVALID_FIELD", format!("{place}: {err}")))
}

/// One entry from its parts.
pub(crate) fn entry_input(
    date: &Bound<'_, PyAny>,
    lines: &Bound<'_, PyAny>,
    memo: String,
    metadata: Option<&Bound<'_, PyAny>>,
    prefix: &str,
) -> PyResult<EntryInput> {
    Ok(EntryInput {
        date: date_arg(date, &format!("{prefix}date"))?,
        memo,
        lines: lines_arg(lines, prefix)?,
        metadata: metadata_arg(metadata, &format!("{prefix}metadata"))?,
    })
}

/// The entries of a batch: dicts with `date`, `lines` and optionally `memo`.
pub(crate) fn entries_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<EntryInput>> {
    let example =
        "{\"date\": date(2026, 1, 31), \"lines\": [...], \"memo\": \"...\", \"metadata\": {...}}";
    let py = value.py();
    let (date_key, lines_key, memo_key, metadata_key) = (
        intern!(py, "date"),
        intern!(py, "lines"),
        intern!(py, "memo"),
        intern!(py, "metadata"),
    );
    list_arg(value, "entries")?
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let place = || format!("Entry {}", index + 1);
            let dict = dict_arg(item, place, example)?;
            let missing = |name: &str| {
                invalid_input(
                    "INVALID_FIELD",
                    format!("{}: {name:?} is missing.", place()),
                )
            };
            let date = dict.get_item(date_key)?.ok_or_else(|| missing("date"))?;
            let lines = dict.get_item(lines_key)?.ok_or_else(|| missing("lines"))?;
            let memo = match dict.get_item(memo_key)? {
                Some(memo) => Some(text_arg(&memo, &format!("{}: \"memo\"", place()))?),
                None => None,
            };
            let metadata = dict.get_item(metadata_key)?;
            let known = 2 + usize::from(memo.is_some()) + usize::from(metadata.is_some());
            if dict.len() > known {
                return Err(unknown_field(
                    dict,
                    &place(),
                    &["date", "lines", "memo", "metadata"],
                    "an entry has \"date\", \"lines\", \"memo\" and \"metadata\"",
                ));
            }
            entry_input(
                &date,
                &lines,
                memo.unwrap_or_default(),
                metadata.as_ref(),
                &format!("{}: ", place()),
            )
        })
        .collect()
}

/// The configuration map of `AccuBooks(database_url, **config)`.
pub(crate) fn config_vars(
    database_url: Option<String>,
    config: Option<&Bound<'_, PyDict>>,
) -> PyResult<Vec<(String, String)>> {
    let mut vars = Vec::new();
    if let Some(url) = database_url {
        vars.push(("DATABASE_URL".to_owned(), url));
    }
    for (key, value) in config.into_iter().flat_map(|c| c.iter()) {
        let key = text_arg(&key, "a configuration keyword")?;
        let name = key.to_ascii_uppercase();
        if key != key.to_ascii_lowercase() || !config::variables().any(|v| v == name) {
            return Err(PyTypeError::new_err(format!(
                "AccuBooks() got an unexpected keyword argument {key:?}: configuration keywords are the contract's variables in lower case, such as jwt_secret or redis_url"
            )));
        }
        if value.is_none() {
            continue;
        }
        let text = if value.is_instance_of::<PyBool>() {
            None
        } else if value.is_instance_of::<PyInt>() {
            Some(value.str()?.extract::<String>()?)
        } else {
            value
                .cast::<PyString>()
                .ok()
                .map(|s| s.extract::<String>())
                .transpose()?
        };
        let text = text.ok_or_else(|| {
            PyTypeError::new_err(format!(
                "{key} must be a str or an int, not {}",
                type_name(&value)
            ))
        })?;
        vars.push((name, text));
    }
    Ok(vars)
}

/// What an operation answers, before it becomes Python objects.
pub(crate) enum Payload {
    /// A book answer (dates and money converted as its schema says).
    Books(Typed),
    /// One page of a list (or a report's rows) and the cursor of the next:
    /// an `accubooks.types.Page` (a `list` with `next_cursor`), or for a
    /// report its dict with a `next_cursor` key.
    Page(Typed, Option<String>),
    /// JSON without dates or money (the ids of a batch), as JSON says.
    Plain(Value),
    /// `True` or `False`.
    Flag(bool),
    /// `None`.
    Unit,
    /// An asyncio organization handle.
    AsyncOrg(Arc<Instance>, Org),
    /// A running server.
    Server(Arc<ServerTask>),
}

/// An answer for `future_into_py`: it becomes Python objects (or the
/// exception) on the thread where `pyo3-async-runtimes` holds the GIL, never
/// on a runtime worker.
pub(crate) struct Reply(Outcome<Payload>);

impl Reply {
    /// A book answer.
    pub(crate) fn books(outcome: Outcome<Typed>) -> Self {
        Reply(outcome.map(Payload::Books))
    }

    /// `None`, or the failure.
    pub(crate) fn unit(outcome: Outcome<()>) -> Self {
        Reply(outcome.map(|()| Payload::Unit))
    }

    /// Any payload.
    pub(crate) fn new(outcome: Outcome<Payload>) -> Self {
        Reply(outcome)
    }
}

impl<'py> IntoPyObject<'py> for Reply {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Err(failure) => Err(failure.into_pyerr(py)),
            Ok(Payload::Books(answer)) => answer.to_py(py),
            Ok(Payload::Page(items, next)) => {
                let items = items.to_py(py)?;
                if let Ok(report) = items.cast::<pyo3::types::PyDict>() {
                    report.set_item("next_cursor", next)?;
                    return Ok(items);
                }
                let page = PAGE.import(py, "accubooks.types", "Page")?;
                page.call1((items, next))
            }
            Ok(Payload::Plain(value)) => to_py(py, &value),
            Ok(Payload::Flag(flag)) => Ok(PyBool::new(py, flag).to_owned().into_any()),
            Ok(Payload::Unit) => Ok(py.None().into_bound(py)),
            Ok(Payload::AsyncOrg(instance, org)) => {
                Ok(Bound::new(py, crate::aio::AsyncOrganization::new(instance, org))?.into_any())
            }
            Ok(Payload::Server(task)) => Ok(Bound::new(py, Server::new(task))?.into_any()),
        }
    }
}

/// A book answer's JSON with the schema of its type.
pub(crate) struct Typed {
    /// The JSON the HTTP API would send.
    pub(crate) value: Value,
    /// The schema of the answer's type.
    pub(crate) schema: Arc<Schema>,
}

impl Typed {
    /// The answer as Python objects.
    pub(crate) fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        typed_to_py(py, &self.value, &self.schema)
    }
}

impl From<Typed> for Payload {
    fn from(answer: Typed) -> Self {
        Payload::Books(answer)
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload::Plain(value)
    }
}

impl From<Failure> for Reply {
    fn from(failure: Failure) -> Self {
        Reply(Err(failure))
    }
}
