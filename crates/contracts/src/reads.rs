//! Consumer-driven contracts: what each consumer reads of each event it consumes and of
//! each HTTP peer's answer, declared beside its handlers, and the checks both sides run.
//!
//! Pact's model, with the AsyncAPI and OpenAPI documents as the producers' side:
//! - a consumer declares its [`Reads`]; its own test ([`check_consumer`]) decodes, through
//!   the consumer's real decoding step, a message made of only the declared fields, so
//!   the declaration holds everything it needs, and keeps the declaration's JSON copy
//!   (`docs/contracts/<consumer>.json`, the pact file) equal to it;
//! - the producers' tests read every pact file and check each declared field against
//!   what they publish: a required field of the message's schema ([`unmet_in_schema`])
//!   and present in every real message ([`absent_from`]). A producer change that drops
//!   or renames a field some consumer reads fails there, naming the consumer.
//!
//! A field is a path: `order_id`, or `items[].product_id` for a field of every item of
//! an array.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Where the pact files are: `docs/contracts/<consumer>.json`.
pub const PACTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/contracts");

/// The OpenAPI document the peers' answers are held to: the gateway's, whose schemas
/// the services' answers share.
pub const OPENAPI_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../services/gateway/openapi.json"
);

/// One message a consumer reads, and the fields it reads of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reads {
    /// The `data` of an event of this type (`order.created`).
    Event { event: String, fields: Vec<String> },
    /// A peer's answer of this OpenAPI schema (`User` in the gateway's document).
    Answer { schema: String, fields: Vec<String> },
}

impl Reads {
    /// The fields `fields` of events of type `event_type`.
    pub fn event(event_type: &str, fields: &[&str]) -> Self {
        Self::Event {
            event: event_type.to_owned(),
            fields: fields.iter().map(|&field| field.to_owned()).collect(),
        }
    }

    /// The fields `fields` of answers of the OpenAPI schema `schema`.
    pub fn answer(schema: &str, fields: &[&str]) -> Self {
        Self::Answer {
            schema: schema.to_owned(),
            fields: fields.iter().map(|&field| field.to_owned()).collect(),
        }
    }

    pub fn fields(&self) -> &[String] {
        match self {
            Self::Event { fields, .. } | Self::Answer { fields, .. } => fields,
        }
    }
}

/// A consumer's pact file: its name and everything it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pact {
    pub consumer: String,
    pub reads: Vec<Reads>,
}

/// The schema of an event's `data` in the AsyncAPI document, if it has the type.
pub fn event_schema<'a>(asyncapi: &'a Value, event_type: &str) -> Option<&'a Value> {
    asyncapi["components"]["messages"][event_type]["payload"]["properties"]
        .get("data")
        .filter(|schema| schema.is_object())
}

/// The schema `name` of an OpenAPI document, if it has one.
pub fn answer_schema<'a>(openapi: &'a Value, name: &str) -> Option<&'a Value> {
    openapi["components"]["schemas"]
        .get(name)
        .filter(|schema| schema.is_object())
}

/// The path's steps: `items[].product_id` is `items`, every item, `product_id`.
fn steps(field: &str) -> impl Iterator<Item = Step<'_>> {
    field
        .split('.')
        .flat_map(|part| match part.strip_suffix("[]") {
            Some(name) => [Some(Step::Member(name)), Some(Step::Items)],
            None => [Some(Step::Member(part)), None],
        })
        .flatten()
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Member(&'a str),
    Items,
}

/// `schema` with a `#/components/schemas/..` reference followed in `document`.
fn resolved<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => reference
            .strip_prefix("#/")
            .map(|path| {
                path.split('/')
                    .fold(document, |node, segment| &node[segment])
            })
            .unwrap_or(&Value::Null),
        None => schema,
    }
}

/// Why `schema` (of `document`) does not promise `field`, if it does not: a member
/// missing, optional, or not an array where the path says so. A consumer may rely only
/// on what every message has.
pub fn unmet_in_schema(document: &Value, schema: &Value, field: &str) -> Option<String> {
    let mut node = resolved(document, schema);
    for step in steps(field) {
        node = match step {
            Step::Member(name) => {
                let Some(member) = node["properties"].get(name) else {
                    return Some(format!("`{name}` is not in the schema"));
                };
                let required = node["required"]
                    .as_array()
                    .is_some_and(|names| names.iter().any(|n| n == name));
                if !required {
                    return Some(format!("`{name}` is optional"));
                }
                resolved(document, member)
            }
            Step::Items => match node.get("items") {
                Some(items) if node["type"] == "array" => resolved(document, items),
                _ => return Some("not an array".to_owned()),
            },
        };
    }
    None
}

/// Whether `message` lacks `field` (for an array, any of its items lacking the rest).
pub fn absent_from(message: &Value, field: &str) -> bool {
    fn absent(node: &Value, steps: &[Step<'_>]) -> bool {
        match steps.split_first() {
            None => node.is_null(),
            Some((Step::Member(name), rest)) => {
                node.get(name).is_none_or(|member| absent(member, rest))
            }
            Some((Step::Items, rest)) => node
                .as_array()
                .is_none_or(|items| items.iter().any(|item| absent(item, rest))),
        }
    }
    absent(message, &steps(field).collect::<Vec<_>>())
}

/// A message of `schema` holding only `fields`, each a value of its schema's type: what
/// a consumer that reads only those fields must be able to decode.
pub fn only(document: &Value, schema: &Value, fields: &[String]) -> Value {
    let mut message = Value::Object(Map::new());
    for field in fields {
        let steps: Vec<Step<'_>> = steps(field).collect();
        insert(document, resolved(document, schema), &mut message, &steps);
    }
    message
}

fn insert(document: &Value, schema: &Value, node: &mut Value, steps: &[Step<'_>]) {
    match steps.split_first() {
        None => *node = example(schema),
        Some((Step::Member(name), rest)) => {
            let member = resolved(document, &schema["properties"][*name]);
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let slot = node
                .as_object_mut()
                .map(|object| object.entry(*name).or_insert(Value::Null));
            if let Some(slot) = slot {
                insert(document, member, slot, rest);
            }
        }
        Some((Step::Items, rest)) => {
            let items = resolved(document, &schema["items"]);
            if !node.is_array() {
                *node = json!([{}]);
            }
            if let Some(item) = node.as_array_mut().and_then(|items| items.first_mut()) {
                insert(document, items, item, rest);
            }
        }
    }
}

/// A value `schema` accepts, for the schemas the documents use.
fn example(schema: &Value) -> Value {
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema["enum"].get(0) {
        return first.clone();
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().find(|k| *k != "null").cloned(),
        kind => Some(kind.clone()),
    };
    match kind.as_ref().and_then(Value::as_str) {
        Some("integer" | "number") => json!(schema["minimum"].as_i64().unwrap_or(0).max(1)),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => json!({}),
        _ => match schema["format"].as_str() {
            Some("uuid") => json!("0190a7b4-7a00-7000-8000-000000000001"),
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            Some("email") => json!("ada@example.com"),
            _ => json!("x"),
        },
    }
}

/// Why the pact `pact` does not hold against the producers' documents: one line per
/// declared field the schemas do not promise, naming the consumer.
pub fn unmet(pact: &Pact, asyncapi: &Value, openapi: &Value) -> Vec<String> {
    let mut unmet = Vec::new();
    for reads in &pact.reads {
        let (what, document, schema) = match reads {
            Reads::Event { event, .. } => (event, asyncapi, event_schema(asyncapi, event)),
            Reads::Answer { schema, .. } => (schema, openapi, answer_schema(openapi, schema)),
        };
        let Some(schema) = schema else {
            unmet.push(format!("{} reads {what}: no such message", pact.consumer));
            continue;
        };
        for field in reads.fields() {
            if let Some(why) = unmet_in_schema(document, schema, field) {
                unmet.push(format!("{} reads {field} of {what}: {why}", pact.consumer));
            }
        }
    }
    unmet
}

/// Decoding an answer as `T`, the type a consumer's client reads it into, for
/// [`check_consumer`]'s `decode_answer`.
pub fn decodes<T: DeserializeOwned>(answer: Value) -> Result<(), String> {
    serde_json::from_value::<T>(answer)
        .map(drop)
        .map_err(|error| error.to_string())
}

/// [`check_consumer`]'s `decode_answer` for a consumer that reads no peer's answer.
pub fn no_answers(schema: &str, _: Value) -> Result<(), String> {
    Err(format!("this consumer reads no {schema} answer"))
}

/// A consumer's side of its contract, for its own tests. Checks that:
/// - the AsyncAPI document's receive operations for it name exactly the event types it
///   handles;
/// - every event type it handles has a declaration;
/// - `decode_event(type, data)` and `decode_answer(schema, answer)`, the consumer's real
///   decoding steps, accept a message holding only the declared fields;
/// - its pact file in [`PACTS_DIR`] holds the declaration (`UPDATE_CONTRACTS=1` rewrites
///   it).
///
/// Panics with what does not hold.
pub fn check_consumer(
    consumer: &str,
    handled: &[&str],
    reads: &[Reads],
    decode_event: impl Fn(&str, Value) -> Result<(), String>,
    decode_answer: impl Fn(&str, Value) -> Result<(), String>,
) {
    let asyncapi = crate::asyncapi::document();
    let openapi: Value = std::fs::read_to_string(OPENAPI_FILE)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .expect("the OpenAPI document");
    let pact_file = format!("{PACTS_DIR}/{consumer}.json");
    let mut received = crate::asyncapi::received_by(&asyncapi, consumer);
    let mut expected = handled.to_vec();
    received.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        received, expected,
        "the AsyncAPI document's receive operations for {consumer} (asyncapi::RECEIVERS) \
         are not the events it handles"
    );
    for event_type in handled {
        assert!(
            reads
                .iter()
                .any(|r| matches!(r, Reads::Event { event, .. } if event == event_type)),
            "{consumer} handles {event_type} but declares nothing it reads of it"
        );
    }
    for declared in reads {
        let result = match declared {
            Reads::Event { event, fields } => {
                let schema = event_schema(&asyncapi, event)
                    .unwrap_or_else(|| panic!("{event} is not in the AsyncAPI document"));
                decode_event(event, only(&asyncapi, schema, fields))
            }
            Reads::Answer {
                schema: name,
                fields,
            } => {
                let schema = answer_schema(&openapi, name)
                    .unwrap_or_else(|| panic!("{name} is not in the OpenAPI document"));
                decode_answer(name, only(&openapi, schema, fields))
            }
        };
        if let Err(error) = result {
            panic!("{consumer} reads more of {declared:?} than it declares: {error}");
        }
    }
    let pact = Pact {
        consumer: consumer.to_owned(),
        reads: reads.to_vec(),
    };
    let text = serde_json::to_string_pretty(&pact).expect("a pact is JSON") + "\n";
    if std::env::var_os("UPDATE_CONTRACTS").is_some() {
        std::fs::write(&pact_file, &text).expect("writing the pact file");
    }
    let kept = std::fs::read_to_string(&pact_file).unwrap_or_default();
    assert!(
        kept == text,
        "{pact_file} is not {consumer}'s declaration: run `UPDATE_CONTRACTS=1 cargo test \
         -p {consumer}-service --lib contract` and commit it"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        json!({"components": {"schemas": {
            "Line": {"type": "object", "required": ["sku"], "properties": {
                "sku": {"type": "string"}, "note": {"type": ["string", "null"]}}},
            "Order": {"type": "object", "required": ["id", "lines"], "properties": {
                "id": {"type": "string", "format": "uuid"},
                "total": {"type": "integer", "minimum": 1},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}}}},
        }}})
    }

    #[test]
    fn a_schema_promises_only_required_members_along_the_whole_path() {
        let document = document();
        let order = &document["components"]["schemas"]["Order"];
        assert_eq!(unmet_in_schema(&document, order, "id"), None);
        assert_eq!(unmet_in_schema(&document, order, "lines[].sku"), None);
        assert_eq!(
            unmet_in_schema(&document, order, "total").as_deref(),
            Some("`total` is optional")
        );
        assert_eq!(
            unmet_in_schema(&document, order, "lines[].note").as_deref(),
            Some("`note` is optional")
        );
        assert_eq!(
            unmet_in_schema(&document, order, "lines[].price").as_deref(),
            Some("`price` is not in the schema")
        );
        assert_eq!(
            unmet_in_schema(&document, order, "id[].x").as_deref(),
            Some("not an array")
        );
    }

    #[test]
    fn a_message_of_only_the_declared_fields_has_them_and_nothing_else() {
        let document = document();
        let order = &document["components"]["schemas"]["Order"];
        let fields = ["id".to_owned(), "lines[].sku".to_owned()];
        let message = only(&document, order, &fields);
        assert_eq!(
            message,
            json!({"id": "0190a7b4-7a00-7000-8000-000000000001", "lines": [{"sku": "x"}]})
        );
        assert!(!absent_from(&message, "lines[].sku"));
        assert!(absent_from(&message, "total"));
        assert!(absent_from(
            &json!({"lines": [{"sku": "a"}, {}]}),
            "lines[].sku"
        ));
        assert!(absent_from(&json!({"id": null}), "id"));
    }
}
