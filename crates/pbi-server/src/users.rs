//! pbi-bridge's own accounts: argon2id password hashes (PHC strings), never passwords.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HashError(String);

/// At least this many characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// An account detail that cannot be used, with the field at fault and what to enter instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AccountError {
    pub field: &'static str,
    pub message: String,
}

/// A user name: 1 to 64 of the letters a–z, A–Z, digits and `. _ @ -` (an e-mail address is fine).
pub fn parse_username(text: &str) -> Result<String, AccountError> {
    let name = text.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(AccountError {
            field: "username",
            message: "a user name is 1 to 64 letters, digits and . _ @ - (such as jane.doe or jane@contoso.com)".into(),
        });
    }
    Ok(name.to_owned())
}

/// A display name: 1 to 100 characters on one line; the user name when left empty.
pub fn parse_display_name(text: &str, username: &str) -> Result<String, AccountError> {
    let name = text.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AccountError { field: "displayName", message: "a display name is at most 100 characters on one line".into() });
    }
    Ok(if name.is_empty() { username.to_owned() } else { name.to_owned() })
}

pub fn hash_password(password: &SecretString) -> Result<String, HashError> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        return Err(HashError(format!("a password needs at least {MIN_PASSWORD_CHARS} characters")));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.expose_secret().as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `hash`; a malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash to verify against when the user does not exist, so both cases take the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&SecretString::from("decoy-password-never-used".to_owned())).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_user_name_is_accepted_only_in_its_alphabet(text in ".{0,80}") {
            match parse_username(&text) {
                Ok(name) => prop_assert!(!name.is_empty() && name.len() <= 64 && name == text.trim()),
                Err(error) => prop_assert_eq!(error.field, "username"),
            }
        }
    }

    #[test]
    fn account_details_are_checked() {
        assert_eq!(parse_username(" jane.doe@contoso.com ").as_deref(), Ok("jane.doe@contoso.com"));
        assert!(parse_username("jane doe").is_err() && parse_username("").is_err() && parse_username("<script>").is_err());
        assert_eq!(parse_display_name("", "jane").as_deref(), Ok("jane"));
        assert_eq!(parse_display_name("a\nb", "jane").map_err(|e| e.field), Err("displayName"));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password(&SecretString::from("correct horse battery".to_owned())).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("Correct horse battery", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert!(hash_password(&SecretString::from("short".to_owned())).is_err());
    }
}
