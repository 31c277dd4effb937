//! pbi-bridge's own accounts: argon2id password hashes (PHC strings), never passwords.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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

/// Failed sign-ins per user name: after `MAX_FAILURES` within `WINDOW_SECONDS`, that name is refused until the
/// window has passed, whatever the password, so passwords cannot be guessed at speed. Kept in memory, per
/// instance; a success clears the name's count. Times are Unix seconds from the caller's clock.
#[derive(Default)]
pub struct SignInGuard {
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl SignInGuard {
    pub const MAX_FAILURES: u32 = 10;
    pub const WINDOW_SECONDS: i64 = 15 * 60;
    /// Beyond this many names, names whose window has passed are forgotten (and, if that is not enough, all).
    const MAX_NAMES: usize = 10_000;

    fn key(username: &str) -> String {
        username.trim().to_lowercase()
    }

    /// Seconds until `username` may try again, when it is refused now.
    pub fn locked_for(&self, username: &str, now: i64) -> Option<i64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, since) = *failures.get(&Self::key(username))?;
        let left = since + Self::WINDOW_SECONDS - now;
        (count >= Self::MAX_FAILURES && left > 0).then_some(left)
    }

    pub fn failed(&self, username: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= Self::MAX_NAMES {
            failures.retain(|_, (_, since)| now - *since < Self::WINDOW_SECONDS);
            if failures.len() >= Self::MAX_NAMES {
                failures.clear();
            }
        }
        let entry = failures.entry(Self::key(username)).or_insert((0, now));
        if now - entry.1 >= Self::WINDOW_SECONDS {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, username: &str) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&Self::key(username));
    }
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

    const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-";

    /// Names built from the rule: valid ones (1 to 64 characters of the alphabet, maybe padded with
    /// spaces), then the same names broken one way each: empty, too long, or one character from outside
    /// the alphabet (Unicode look-alikes, spaces, controls, punctuation) put anywhere.
    fn names() -> impl Strategy<Value = (String, bool)> {
        let valid = proptest::collection::vec(proptest::sample::select(ALPHABET.chars().collect::<Vec<_>>()), 1..=64)
            .prop_map(|chars| chars.into_iter().collect::<String>());
        let padded = (valid.clone(), proptest::sample::select(vec!["", " ", "\t", "  "]))
            .prop_map(|(name, pad)| (format!("{pad}{name}{pad}"), true));
        let outsider =
            proptest::sample::select(vec![' ', '\n', '\u{0}', '\u{a0}', 'é', 'а', '\u{3000}', '/', '<', '"', '\'', '+', '#', '%']);
        let broken_char = (valid.clone(), outsider, any::<prop::sample::Index>()).prop_map(|(name, c, at)| {
            let mut chars: Vec<char> = name.chars().collect();
            // Inside the name (not at an end, where a space would be trimmed).
            let at = 1 + at.index(chars.len().max(1));
            chars.insert(at.min(chars.len()), c);
            if chars.last() == Some(&c) && c.is_whitespace() {
                chars.push('x');
            }
            (chars.into_iter().collect(), false)
        });
        let too_long = valid.prop_map(|name| (format!("{name}{}", "a".repeat(65)), false));
        prop_oneof![3 => padded, 2 => broken_char, 1 => too_long, 1 => Just((String::new(), false)), 1 => Just(("   ".to_owned(), false))]
    }

    proptest! {
        #[test]
        fn a_user_name_is_accepted_only_in_its_alphabet((text, valid) in names()) {
            match parse_username(&text) {
                Ok(name) => {
                    prop_assert!(valid, "{:?} was accepted", text);
                    prop_assert!(!name.is_empty() && name.len() <= 64 && name == text.trim());
                    prop_assert!(name.chars().all(|c| ALPHABET.contains(c)), "{:?}", name);
                }
                Err(error) => {
                    prop_assert!(!valid, "{:?} was refused", text);
                    prop_assert_eq!(error.field, "username");
                }
            }
        }
    }

    #[test]
    fn ten_failures_lock_a_name_until_its_window_has_passed() {
        let guard = SignInGuard::default();
        for i in 0..SignInGuard::MAX_FAILURES {
            assert_eq!(guard.locked_for("Alice", 100 + i64::from(i)), None);
            guard.failed("Alice", 100 + i64::from(i));
        }
        assert_eq!(guard.locked_for(" alice ", 200), Some(100 + SignInGuard::WINDOW_SECONDS - 200), "names are compared trimmed, any case");
        assert_eq!(guard.locked_for("bob", 200), None, "other names are not affected");
        assert_eq!(guard.locked_for("alice", 100 + SignInGuard::WINDOW_SECONDS), None, "the window passed");
        guard.failed("alice", 100 + SignInGuard::WINDOW_SECONDS);
        assert_eq!(guard.locked_for("alice", 101 + SignInGuard::WINDOW_SECONDS), None, "a new window starts counting again");
        guard.succeeded("ALICE");
        assert!(guard.failures.lock().expect("lock").is_empty());
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
