//! What this service reads of the events it consumes: its side of the
//! consumer-driven contracts (`contracts::reads`). Its copy, the pact file
//! `docs/contracts/inventory.json`, is what the producers' tests hold their events to.

use contracts::events::types;
use contracts::reads::Reads;

/// Every field this service reads, per message.
pub fn reads() -> Vec<Reads> {
    vec![
        Reads::event(
            types::ORDER_CREATED,
            &[
                "order_id",
                "user_id",
                "items[].product_id",
                "items[].quantity",
                "items[].unit_price_cents",
                "total_cents",
                "currency",
                "payment_method",
            ],
        ),
        Reads::event(types::PAYMENT_SUCCEEDED, &["order_id"]),
        Reads::event(types::PAYMENT_DECLINED, &["order_id"]),
        Reads::event(types::ORDER_CANCELLED, &["order_id"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_only_the_declared_fields_is_all_this_service_needs() {
        contracts::reads::check_consumer(
            crate::state::SERVICE,
            crate::saga::HANDLED,
            &reads(),
            event_bus::envelope::decoding(crate::saga::step),
            contracts::reads::no_answers,
        );
    }
}
