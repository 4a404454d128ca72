//! The producers' side of the consumer-driven contracts: every field a consumer
//! declares it reads (its pact file in `docs/contracts`) is a required field of what its
//! producer publishes: the event's schema in the AsyncAPI document, generated from the
//! types the producers serialise, or the answer's schema in the OpenAPI document that
//! schemathesis holds the services to. The saga run in `asyncapi` checks the same
//! fields on every real entry.

use contracts::events::types;
use contracts::reads::{self, Pact, Reads};
use serde_json::Value;

/// Every consumer's pact file.
pub fn pacts() -> Vec<Pact> {
    let mut pacts: Vec<Pact> = std::fs::read_dir(reads::PACTS_DIR)
        .expect("docs/contracts")
        .map(|entry| {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path:?}: {error}"))
        })
        .collect();
    pacts.sort_by(|a, b| a.consumer.cmp(&b.consumer));
    pacts
}

fn openapi() -> Value {
    serde_json::from_str(&std::fs::read_to_string(reads::OPENAPI_FILE).unwrap()).unwrap()
}

#[test]
fn every_field_a_consumer_declares_is_a_required_field_of_what_its_producer_publishes() {
    let pacts = pacts();
    let consumers: Vec<&str> = pacts.iter().map(|pact| pact.consumer.as_str()).collect();
    assert_eq!(consumers, ["inventory", "notification", "order", "payment"]);
    let (asyncapi, openapi) = (contracts::asyncapi::document(), openapi());
    let unmet: Vec<String> = pacts
        .iter()
        .flat_map(|pact| reads::unmet(pact, &asyncapi, &openapi))
        .collect();
    assert!(unmet.is_empty(), "{unmet:#?}");
}

#[test]
fn a_producer_that_drops_or_renames_a_field_a_consumer_reads_fails_its_contract() {
    let pacts = pacts();
    let notification = pacts.iter().find(|p| p.consumer == "notification").unwrap();
    let (mut asyncapi, mut openapi) = (contracts::asyncapi::document(), openapi());
    assert_eq!(
        reads::unmet(notification, &asyncapi, &openapi),
        Vec::<String>::new()
    );

    // The order service stops sending `currency` in `order.confirmed` ...
    let data = &mut asyncapi["components"]["messages"][types::ORDER_CONFIRMED]["payload"]["properties"]
        ["data"];
    data["properties"]
        .as_object_mut()
        .unwrap()
        .remove("currency");
    data["required"]
        .as_array_mut()
        .unwrap()
        .retain(|name| name != "currency");
    // ... and the user service makes `email` optional in its answers.
    openapi["components"]["schemas"]["User"]["required"]
        .as_array_mut()
        .unwrap()
        .retain(|name| name != "email");
    assert_eq!(
        reads::unmet(notification, &asyncapi, &openapi),
        [
            "notification reads currency of order.confirmed: `currency` is not in the schema",
            "notification reads email of User: `email` is optional",
        ]
    );
    // A consumer that reads nothing of it is not held to it.
    let payment = pacts.iter().find(|p| p.consumer == "payment").unwrap();
    assert!(
        !payment
            .reads
            .iter()
            .any(|r| matches!(r, Reads::Event { event, .. } if event == types::ORDER_CONFIRMED))
    );
    assert_eq!(
        reads::unmet(payment, &asyncapi, &openapi),
        Vec::<String>::new()
    );
}
