//! The services' internal keys in tests: one value per service, whichever test starts
//! it (the service itself, a peer that calls it, the gateway in front of it).

pub const USER_KEY: &str = "test-user-service-key";
pub const ORDER_KEY: &str = "test-order-service-key";
pub const INVENTORY_KEY: &str = "test-inventory-service-key";
pub const PAYMENT_KEY: &str = "test-payment-service-key";
pub const NOTIFICATION_KEY: &str = "test-notification-service-key";
