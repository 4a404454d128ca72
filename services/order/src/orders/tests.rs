use service_kit::problem::FieldError;

use super::*;

fn input(items: Vec<(Option<&str>, Option<i64>)>, method: Option<&str>) -> OrderInput {
    OrderInput {
        items: Some(
            items
                .into_iter()
                .map(|(id, quantity)| LineInput {
                    product_id: id.map(str::to_owned),
                    quantity,
                })
                .collect(),
        ),
        payment_method: method.map(str::to_owned),
    }
}

fn fields(result: Result<OrderRequest, Vec<FieldError>>) -> Vec<String> {
    result
        .expect_err("invalid")
        .into_iter()
        .map(|e| e.field)
        .collect()
}

const A: &str = "0190a4b8-0000-7000-8000-000000000001";

#[test]
fn every_bad_field_is_named() {
    let bad = input(
        vec![
            (Some(A), Some(0)),
            (Some(A), Some(1)),
            (Some("x"), Some(1001)),
        ],
        Some("tok_mastercard"),
    );
    assert_eq!(
        fields(OrderRequest::parse(bad)),
        [
            "items[0].quantity",
            "items[1].product_id",
            "items[2].product_id",
            "items[2].quantity",
            "payment_method"
        ]
    );
}

#[test]
fn the_digest_tells_bodies_apart() {
    let a = OrderRequest::parse(input(vec![(Some(A), Some(1))], Some("tok_visa"))).unwrap();
    let b = OrderRequest::parse(input(vec![(Some(A), Some(2))], Some("tok_visa"))).unwrap();
    let c = OrderRequest::parse(input(vec![(Some(A), Some(1))], Some("tok_declined"))).unwrap();
    assert_eq!(a.digest(), a.clone().digest());
    assert_ne!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
}
