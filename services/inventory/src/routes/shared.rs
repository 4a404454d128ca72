//! What several routes check the same way: the product id in the path, and that the
//! caller is an admin.

use service_kit::Problem;
use service_kit::internal_auth::Caller;
use uuid::Uuid;

/// The 404 of a product that does not exist.
pub(super) fn not_found() -> Problem {
    Problem::not_found("No such product.")
}

/// The id in the path, or the 404 an unknown product would get.
pub(super) fn product_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

/// Only admins change the catalogue.
pub(super) fn require_admin(caller: &Caller) -> Result<(), Problem> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Problem::forbidden("Only an admin may change products."))
    }
}
