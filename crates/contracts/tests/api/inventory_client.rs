//! The typed inventory client against a stand-in server, until the inventory service
//! exists.

use contracts::inventory::InventoryClient;
use serde_json::json;
use service_client::{Client, ClientSettings, PeerConfig};
use service_kit::config::Secret;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(url: &str) -> InventoryClient {
    let settings = ClientSettings {
        http_client_backoff_base_ms: 1,
        ..ClientSettings::default()
    };
    InventoryClient::new(
        Client::new(
            "order",
            PeerConfig::new(
                "inventory",
                url,
                Secret::new("inventory-key-0001"),
                &settings,
            ),
        )
        .unwrap(),
    )
}

fn product(id: uuid::Uuid) -> serde_json::Value {
    json!({"id": id, "sku": "SKU-1", "name": "Widget", "price_cents": 1250, "currency": "USD", "available": 7})
}

#[tokio::test]
async fn get_product_decodes_a_product_and_maps_404_to_none() {
    let server = MockServer::start().await;
    let id = uuid::Uuid::new_v4();
    Mock::given(method("GET"))
        .and(path(format!("/products/{id}")))
        .and(header("authorization", "Bearer inventory-key-0001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(product(id)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;

    let inventory = client(&server.uri());
    let found = inventory.get_product(id).await.unwrap().unwrap();
    assert_eq!(found.price_cents, 1250);
    assert_eq!(found.currency, "USD");
    assert_eq!(
        inventory.get_product(uuid::Uuid::new_v4()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn get_products_by_ids_asks_once_for_all_and_is_retried_on_503() {
    let server = MockServer::start().await;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    Mock::given(method("POST"))
        .and(path("/internal/products/batch"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/internal/products/batch"))
        .and(body_json(json!({"ids": [a, b]})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": [product(a), product(b)]})),
        )
        .mount(&server)
        .await;

    let products = client(&server.uri())
        .get_products_by_ids(&[a, b])
        .await
        .unwrap();
    assert_eq!(products.iter().map(|p| p.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_malformed_product_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "nope"})))
        .mount(&server)
        .await;
    let error = client(&server.uri())
        .get_product(uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(
        matches!(error.kind, service_client::ErrorKind::Decode(_)),
        "{error}"
    );
    assert_eq!(error.fault(), service_client::Fault::Internal);
}
