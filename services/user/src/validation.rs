//! What a valid email, password and name are (API.md, Authentication).

use service_kit::problem::{FieldError, Problem};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters (at most 4 KiB): hashing cost must stay
/// bounded whatever a client sends.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest name accepted.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a value was refused; its text is the field error a client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("must not be empty")]
    Empty,
    #[error("must be at least {0} characters")]
    TooShort(usize),
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("is not an email address")]
    NotAnEmail,
    #[error("must not contain control characters")]
    ControlCharacters,
}

/// A trimmed, plausibly deliverable address: `local@domain.tld`, at most 254 bytes, no
/// spaces or control characters. Returns it trimmed.
pub fn email(value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Invalid::Empty);
    }
    if value.len() > 254 {
        return Err(Invalid::TooLong(254));
    }
    let Some((local, domain)) = value.split_once('@') else {
        return Err(Invalid::NotAnEmail);
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
        && !local.contains('@');
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(value.to_owned())
    } else {
        Err(Invalid::NotAnEmail)
    }
}

/// At least 8 characters, at most 1024.
pub fn password(value: &str) -> Result<(), Invalid> {
    let length = value.chars().count();
    if length < MIN_PASSWORD_CHARS {
        Err(Invalid::TooShort(MIN_PASSWORD_CHARS))
    } else if length > MAX_PASSWORD_CHARS {
        Err(Invalid::TooLong(MAX_PASSWORD_CHARS))
    } else {
        Ok(())
    }
}

/// Not empty after trimming, at most 200 characters. Returns it trimmed.
pub fn name(value: &str) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() {
        Err(Invalid::Empty)
    } else if value.chars().count() > MAX_NAME_CHARS {
        Err(Invalid::TooLong(MAX_NAME_CHARS))
    } else if value.chars().any(char::is_control) {
        Err(Invalid::ControlCharacters)
    } else {
        Ok(value.to_owned())
    }
}

/// Collects field errors so a client learns every problem with its request at once.
#[derive(Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    /// Records `field`'s error, if any, and passes its value on.
    pub fn check<T, E: ToString>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(FieldError::new(field, error.to_string()));
                None
            }
        }
    }

    /// Records that a required field is missing.
    pub fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.0.push(FieldError::new(field, "is required"));
        }
        value
    }

    /// `Ok` when nothing was recorded, else a 422 listing it all.
    pub fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_are_accepted_and_trimmed() {
        assert_eq!(
            email("  Ada@Example.com ").as_deref(),
            Ok("Ada@Example.com")
        );
        assert!(email("first.last+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            "a@b.com\u{7}",
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_need_eight_to_1024_characters() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(
            password("ééééééé").is_err(),
            "characters, not bytes, are counted"
        );
        assert!(password(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        // What the OpenAPI document says (`maxLength` counts characters).
        assert!(password(&"é".repeat(MAX_PASSWORD_CHARS)).is_ok());
    }

    #[test]
    fn names_are_trimmed_and_must_not_be_empty() {
        assert_eq!(name("  Ada ").as_deref(), Ok("Ada"));
        assert!(name("   ").is_err());
        assert!(name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
