//! The AsyncAPI 3 document of the event side: every stream, every event type on it,
//! and the JSON schema of each event as it is stored in a stream entry (the envelope
//! with the payload in `data`). The payload schemas are generated from the types in
//! [`crate::events`], so the document is what the code produces; the gateway serves it
//! at `/api/asyncapi.json` and `docs/asyncapi.json` holds a copy that a test keeps equal.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::events::{self, streams, types};

/// One event type: its name, what it means, and its payload's schema.
struct Event {
    name: &'static str,
    summary: &'static str,
    payload: fn(&mut SchemaGenerator) -> Value,
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    let mut schema = generator.root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
    schema
}

/// Every stream, the service that writes it, and the events on it.
fn channels() -> [(&'static str, &'static str, &'static str, Vec<Event>); 4] {
    [
        (
            "order",
            streams::ORDER,
            "order",
            vec![
                Event {
                    name: types::ORDER_CREATED,
                    summary: "An order was accepted and waits for stock and payment.",
                    payload: schema::<events::OrderCreated>,
                },
                Event {
                    name: types::ORDER_CONFIRMED,
                    summary: "The order's stock is held and its payment captured.",
                    payload: schema::<events::OrderConfirmed>,
                },
                Event {
                    name: types::ORDER_CANCELLED,
                    summary: "The order will not be fulfilled; whatever it holds is given back.",
                    payload: schema::<events::OrderCancelled>,
                },
            ],
        ),
        (
            "inventory",
            streams::INVENTORY,
            "inventory",
            vec![
                Event {
                    name: types::INVENTORY_RESERVED,
                    summary: "Every line's stock is held for the order.",
                    payload: schema::<events::InventoryReserved>,
                },
                Event {
                    name: types::INVENTORY_REJECTED,
                    summary: "Some line could not be reserved; nothing is held.",
                    payload: schema::<events::InventoryRejected>,
                },
                Event {
                    name: types::INVENTORY_RELEASED,
                    summary: "The order's held stock is available again.",
                    payload: schema::<events::InventoryReleased>,
                },
            ],
        ),
        (
            "payment",
            streams::PAYMENT,
            "payment",
            vec![
                Event {
                    name: types::PAYMENT_SUCCEEDED,
                    summary: "The order's payment was captured.",
                    payload: schema::<events::PaymentOutcome>,
                },
                Event {
                    name: types::PAYMENT_DECLINED,
                    summary: "The card provider declined the order's payment.",
                    payload: schema::<events::PaymentOutcome>,
                },
                Event {
                    name: types::PAYMENT_REFUNDED,
                    summary: "A captured payment of a cancelled order was refunded.",
                    payload: schema::<events::PaymentOutcome>,
                },
            ],
        ),
        (
            "user",
            streams::USER,
            "user",
            vec![Event {
                name: types::USER_REGISTERED,
                summary: "A new account exists.",
                payload: schema::<events::UserRegistered>,
            }],
        ),
    ]
}

/// Every consumer: the service whose group (named as the service) reads the streams,
/// and every event type it handles, as its `HANDLED` says; its contract test
/// (`reads::check_consumer`) holds the two equal.
const RECEIVERS: [(&str, &[&str]); 4] = [
    (
        "inventory",
        &[
            types::ORDER_CREATED,
            types::ORDER_CANCELLED,
            types::PAYMENT_SUCCEEDED,
            types::PAYMENT_DECLINED,
        ],
    ),
    (
        "payment",
        &[types::INVENTORY_RESERVED, types::ORDER_CANCELLED],
    ),
    (
        "order",
        &[
            types::INVENTORY_REJECTED,
            types::PAYMENT_SUCCEEDED,
            types::PAYMENT_DECLINED,
        ],
    ),
    (
        "notification",
        &[
            types::ORDER_CREATED,
            types::ORDER_CONFIRMED,
            types::ORDER_CANCELLED,
            types::PAYMENT_SUCCEEDED,
            types::PAYMENT_DECLINED,
            types::PAYMENT_REFUNDED,
        ],
    ),
];

/// The event types `consumer`'s receive operations in `document` name.
pub fn received_by<'a>(document: &'a Value, consumer: &str) -> Vec<&'a str> {
    let prefix = format!("{consumer}.receives.");
    let Some(operations) = document["operations"].as_object() else {
        return Vec::new();
    };
    operations
        .iter()
        .filter(|(name, operation)| name.starts_with(&prefix) && operation["action"] == "receive")
        .flat_map(|(_, operation)| operation["messages"].as_array().into_iter().flatten())
        .filter_map(|message| message["$ref"].as_str()?.rsplit('/').next())
        .collect()
}

/// A stream entry's JSON: the envelope every event travels in, a CloudEvents 1.0 event
/// in the structured JSON format, with `payload` as its `data` and `event_type` as its
/// `type`. `version`, `correlationid`, `causationid`, `traceparent` and `partitionkey`
/// are CloudEvents extension attributes.
fn envelope(event_type: &str, payload: Value) -> Value {
    json!({
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "version", "data"],
        "additionalProperties": false,
        "properties": {
            "specversion": {"const": "1.0", "description": "The CloudEvents version."},
            "id": {"type": "string", "format": "uuid", "description": "Unique per event; consumers deduplicate by it."},
            "source": {"type": "string", "format": "uri-reference", "description": "The producing service."},
            "type": {"const": event_type},
            "time": {"type": "string", "format": "date-time", "description": "When the producer made the event."},
            "datacontenttype": {"const": "application/json"},
            "version": {"type": "integer", "minimum": 1, "description": "The payload's schema version."},
            "correlationid": {"type": "string", "description": "The request or saga the event belongs to."},
            "causationid": {"type": "string", "format": "uuid", "description": "The event that caused this one."},
            "traceparent": {"type": "string", "description": "W3C trace context of the span that published it (CloudEvents distributed tracing extension)."},
            "partitionkey": {"type": "string", "description": "The entity whose events stay in order (the order id); picks the partition (CloudEvents partitioning extension)."},
            "data": payload,
        },
    })
}

/// The document; its version is this crate's, where the types come from.
pub fn document() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let mut generator = SchemaSettings::draft07()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let (mut channel_map, mut operations, mut messages) = (Map::new(), Map::new(), Map::new());
    let mut receives: Map<String, Value> = Map::new();
    for (name, address, producer, events) in channels() {
        let mut on_channel = Map::new();
        let mut sent = Vec::new();
        for (consumer, handled) in RECEIVERS {
            let read: Vec<Value> = events
                .iter()
                .filter(|event| handled.contains(&event.name))
                .map(|event| json!({"$ref": format!("#/channels/{name}/messages/{}", event.name)}))
                .collect();
            if !read.is_empty() {
                receives.insert(
                    format!("{consumer}.receives.{name}"),
                    json!({
                        "action": "receive",
                        "title": format!("The {consumer} service reads the {producer} service's events"),
                        "description": format!(
                            "As consumer group `{consumer}`: every replica of the service \
                             shares it, so each entry is handled by one of them."
                        ),
                        "channel": {"$ref": format!("#/channels/{name}")},
                        "messages": read,
                    }),
                );
            }
        }
        for event in events {
            let payload = (event.payload)(&mut generator);
            messages.insert(
                event.name.to_owned(),
                json!({
                    "name": event.name,
                    "title": event.name,
                    "summary": event.summary,
                    "contentType": "application/json",
                    "payload": envelope(event.name, payload),
                }),
            );
            on_channel.insert(
                event.name.to_owned(),
                json!({"$ref": format!("#/components/messages/{}", event.name)}),
            );
            sent.push(json!({"$ref": format!("#/channels/{name}/messages/{}", event.name)}));
        }
        channel_map.insert(
            name.to_owned(),
            json!({
                "address": address,
                "title": format!("The {producer} service's events"),
                "description": format!(
                    "A Redis stream written by the {producer} service through its outbox; \
                     each entry's `envelope` field holds one event as a CloudEvents 1.0 \
                     event in the structured JSON format. With \
                     EVENT_PARTITIONS above 1 the stream is that many keys (`{{{address}:0}}`, ...)."
                ),
                "servers": [{"$ref": "#/servers/redis"}],
                "messages": on_channel,
            }),
        );
        operations.insert(
            format!("{producer}.publishes"),
            json!({
                "action": "send",
                "title": format!("The {producer} service publishes"),
                "channel": {"$ref": format!("#/channels/{name}")},
                "messages": sent,
            }),
        );
    }
    operations.extend(receives);
    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "Switchyard events",
            "version": version,
            "description": "The order saga's events on Redis Streams: what each service \
                            publishes and what each consumer reads, each a CloudEvents 1.0 \
                            event in the structured JSON format.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "redis": {
                "host": "localhost:6379",
                "protocol": "redis",
                "description": "The Redis (or Redis Cluster) every service shares (REDIS_URL).",
            },
        },
        "channels": channel_map,
        "operations": operations,
        "components": {"messages": messages},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/asyncapi.json");

    /// `docs/asyncapi.json` is the generated document; `UPDATE_ASYNCAPI=1` rewrites it.
    #[test]
    fn the_copy_in_docs_is_the_generated_document() {
        let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("UPDATE_ASYNCAPI").is_some() {
            std::fs::write(COPY, &generated).unwrap();
        }
        let copy = std::fs::read_to_string(COPY).unwrap_or_default();
        assert!(
            copy == generated,
            "docs/asyncapi.json is not the generated document: run \
             UPDATE_ASYNCAPI=1 cargo test -p contracts --lib asyncapi"
        );
    }

    #[test]
    fn every_event_type_has_a_message_whose_type_is_its_name() {
        let document = document();
        let messages = document["components"]["messages"].as_object().unwrap();
        assert_eq!(messages.len(), 10);
        for (name, message) in messages {
            assert_eq!(message["payload"]["properties"]["type"]["const"], *name);
            assert!(
                message["payload"]["properties"]["data"]["properties"]["order_id"].is_object()
                    || name == types::USER_REGISTERED
            );
        }
    }
}
