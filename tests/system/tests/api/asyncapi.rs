//! What a saga run puts on the streams, held to the AsyncAPI document and to
//! CloudEvents: every event on every stream validates against its message's schema, so
//! the document cannot drift from what the services publish, and the CloudEvents
//! project's SDK reads every entry as a CloudEvent, and each holds every field a
//! consumer declares it reads of its type.

use std::collections::BTreeSet;
use std::time::Duration;

use cloudevents::AttributesReader;

use contracts::events::{streams, types};
use contracts::reads::Reads;
use serde_json::json;
use system_tests::System;

#[tokio::test]
async fn every_event_a_saga_run_puts_on_the_streams_is_a_cloudevent_valid_against_the_asyncapi_document_and_the_pacts()
 {
    let system = System::start(&[]).await;
    let admin = system.admin().await;
    let ada = system.user("Ada").await;
    let mug = system.product(&admin, 1_250, 5).await;
    // Confirmed, declined (stock released), and out of stock.
    for (quantity, card) in [(1, "tok_visa"), (1, "tok_declined"), (50, "tok_visa")] {
        let order = system.order(&ada, &mug, quantity, card).await;
        system
            .settled(&ada.token, order["id"].as_str().unwrap())
            .await;
    }
    // Confirmed, then cancelled by its owner: refunded and released.
    let order = system.order(&ada, &mug, 1, "tok_visa").await;
    let id = order["id"].as_str().unwrap();
    system.settled(&ada.token, id).await;
    let cancel = system
        .post(&format!("/orders/{id}/cancel"), &ada.token, json!({}))
        .await;
    assert_eq!(cancel.status(), 202);
    let payments = format!("{}{}", system.redis_prefix(), streams::PAYMENT);
    let refunded = test_support::eventually(Duration::from_secs(20), || async {
        test_support::streams::envelopes(&payments)
            .await
            .iter()
            .any(|event| event["type"] == types::PAYMENT_REFUNDED)
    })
    .await;
    assert!(refunded, "the cancelled order's payment was refunded");

    let document = contracts::asyncapi::document();
    // What each consumer reads of each event type (its pact).
    let declared: Vec<(String, String, String)> = crate::contracts::pacts()
        .into_iter()
        .flat_map(|pact| {
            pact.reads.into_iter().filter_map(move |reads| match reads {
                Reads::Event { event, fields } => Some(
                    fields
                        .into_iter()
                        .map(|field| (pact.consumer.clone(), event.clone(), field))
                        .collect::<Vec<_>>(),
                ),
                Reads::Answer { .. } => None,
            })
        })
        .flatten()
        .collect();
    let messages = &document["components"]["messages"];
    let mut seen = BTreeSet::new();
    for stream in [
        streams::USER,
        streams::ORDER,
        streams::INVENTORY,
        streams::PAYMENT,
    ] {
        let key = format!("{}{stream}", system.redis_prefix());
        for envelope in test_support::streams::envelopes(&key).await {
            let event_type = envelope["type"].as_str().unwrap().to_owned();
            let schema = &messages[&event_type]["payload"];
            assert!(
                schema.is_object(),
                "{event_type} on {stream} is not in the document"
            );
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(schema)
                .unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&envelope)
                .map(|error| format!("{}: {error}", error.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{event_type} on {stream}: {errors:?}\n{envelope:#}"
            );
            let event: cloudevents::Event = serde_json::from_value(envelope.clone())
                .unwrap_or_else(|error| panic!("not a CloudEvent: {error}\n{envelope:#}"));
            assert_eq!(event.id(), envelope["id"].as_str().unwrap());
            assert_eq!(event.ty(), event_type);
            assert_eq!(
                event.source().as_str(),
                stream.trim_start_matches("events:")
            );
            assert!(event.time().is_some(), "{event}");
            assert!(event.extension("traceparent").is_some(), "{event}");
            for (consumer, _, field) in declared.iter().filter(|(_, e, _)| *e == event_type) {
                assert!(
                    !contracts::reads::absent_from(&envelope["data"], field),
                    "{consumer} reads {field} of {event_type}, which lacks it: {envelope:#}"
                );
            }
            seen.insert(event_type);
        }
    }
    let expected: BTreeSet<String> = [
        types::USER_REGISTERED,
        types::ORDER_CREATED,
        types::ORDER_CONFIRMED,
        types::ORDER_CANCELLED,
        types::INVENTORY_RESERVED,
        types::INVENTORY_REJECTED,
        types::INVENTORY_RELEASED,
        types::PAYMENT_SUCCEEDED,
        types::PAYMENT_DECLINED,
        types::PAYMENT_REFUNDED,
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(
        seen, expected,
        "the run put every one of these on the streams"
    );
}
