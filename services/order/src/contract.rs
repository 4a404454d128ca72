//! What this service reads of the events it consumes and of its peers' answers: its side of the
//! consumer-driven contracts (`contracts::reads`). Its copy, the pact file
//! `docs/contracts/order.json`, is what the producers' tests hold their events and answers to.

use contracts::events::types;
use contracts::reads::Reads;

/// Every field this service reads, per message.
pub fn reads() -> Vec<Reads> {
    vec![
        Reads::event(types::INVENTORY_REJECTED, &["order_id"]),
        Reads::event(types::PAYMENT_SUCCEEDED, &["order_id"]),
        Reads::event(types::PAYMENT_DECLINED, &["order_id"]),
        // The order's owner, and its products' prices and stock.
        Reads::answer("User", &["id", "email", "name", "roles", "created_at"]),
        Reads::answer(
            "Product",
            &["id", "sku", "name", "price_cents", "currency", "available"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::inventory::Product;
    use contracts::reads::{decodes, no_answers};
    use contracts::users::User;

    #[test]
    fn a_message_of_only_the_declared_fields_is_all_this_service_needs() {
        contracts::reads::check_consumer(
            crate::state::SERVICE,
            crate::saga::HANDLED,
            &reads(),
            event_bus::envelope::decoding(crate::saga::wanted),
            |schema, answer| match schema {
                "User" => decodes::<User>(answer),
                "Product" => decodes::<Product>(answer),
                other => no_answers(other, answer),
            },
        );
    }
}
