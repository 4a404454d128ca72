//! What this service reads of the events it consumes and of its peers' answers: its side of the
//! consumer-driven contracts (`contracts::reads`). Its copy, the pact file
//! `docs/contracts/notification.json`, is what the producers' tests hold their events and answers to.

use contracts::events::types;
use contracts::reads::Reads;

/// Every field this service reads, per message.
pub fn reads() -> Vec<Reads> {
    vec![
        Reads::event(
            types::ORDER_CONFIRMED,
            &["order_id", "user_id", "total_cents", "currency"],
        ),
        Reads::event(
            types::ORDER_CANCELLED,
            &["order_id", "user_id", "reason", "total_cents", "currency"],
        ),
        // Webhooks forward these as they are: nothing of them is read.
        Reads::event(types::ORDER_CREATED, &[]),
        Reads::event(types::PAYMENT_SUCCEEDED, &[]),
        Reads::event(types::PAYMENT_DECLINED, &[]),
        Reads::event(types::PAYMENT_REFUNDED, &[]),
        // Each notification's recipient.
        Reads::answer("User", &["id", "email", "name", "roles", "created_at"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::reads::{decodes, no_answers};
    use contracts::users::User;

    #[test]
    fn a_message_of_only_the_declared_fields_is_all_this_service_needs() {
        contracts::reads::check_consumer(
            crate::state::SERVICE,
            crate::events::HANDLED,
            &reads(),
            event_bus::envelope::decoding(crate::events::message),
            |schema, answer| match schema {
                "User" => decodes::<User>(answer),
                other => no_answers(other, answer),
            },
        );
    }
}
