//! An app's secret keys: what its backend authenticates with. A key is `pbs_` and 43 characters of
//! randomness (256 bits), shown once when it is made; only its SHA-256 hash and a hint (the prefix and four
//! characters, too few to guess the rest) are kept. Rotating makes a new key and lets the older ones work on
//! for an overlap, so that the app's deployment can switch without an outage.

use base64::Engine as _;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// What every app secret key starts with, so that secret scanners and people can tell what it is.
pub const SECRET_KEY_PREFIX: &str = "pbs_";
/// How long older keys keep working after a rotation when nothing is asked.
pub const DEFAULT_OVERLAP_HOURS: i64 = 24;
/// The longest overlap a rotation may give older keys.
pub const MAX_OVERLAP_HOURS: i64 = 30 * 24;

/// A key just made: the key itself (for the app, once) and what is kept of it.
pub struct NewSecretKey {
    pub secret: SecretString,
    pub hash: String,
    pub hint: String,
}

impl std::fmt::Debug for NewSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecretKey").field("hint", &self.hint).finish_non_exhaustive()
    }
}

/// A fresh secret key.
pub fn generate() -> NewSecretKey {
    let text = random_token(SECRET_KEY_PREFIX);
    let hint = text.chars().take(SECRET_KEY_PREFIX.len() + 4).collect();
    NewSecretKey { hash: hash(&text), hint, secret: SecretString::from(text) }
}

/// `prefix` and 256 random bits (43 characters, URL-safe): a secret key's or a connect session's token.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The hash a key (or a session token) is kept and looked up by.
pub fn hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` has a secret key's shape (its prefix and length), to tell a caller who sent something else
/// what they sent, before any lookup.
pub fn looks_like_secret_key(text: &str) -> bool {
    looks_like_token(text, SECRET_KEY_PREFIX)
}

/// Whether `text` has the shape `random_token(prefix)` gives.
pub fn looks_like_token(text: &str, prefix: &str) -> bool {
    text.len() == prefix.len() + 43 && text.starts_with(prefix)
}

/// How long older keys keep working after a rotation, in seconds: `hours` from 0 (at once) to 30 days, 24
/// hours when not given.
pub fn overlap_seconds(hours: Option<i64>) -> Result<i64, crate::AppError> {
    match hours.unwrap_or(DEFAULT_OVERLAP_HOURS) {
        h @ 0..=MAX_OVERLAP_HOURS => Ok(h * 3600),
        _ => Err(crate::AppError::invalid(
            "overlapHours",
            format!(
                "older keys may keep working 0 to {MAX_OVERLAP_HOURS} hours (30 days) after a rotation; leave it out for {DEFAULT_OVERLAP_HOURS}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_key_is_prefixed_random_and_kept_only_as_its_hash_and_hint() {
        let (one, two) = (generate(), generate());
        let text = one.secret.expose_secret();
        assert!(looks_like_secret_key(text), "{}", one.hint);
        assert_ne!(text, two.secret.expose_secret());
        assert_eq!(one.hash, hash(text));
        assert_eq!(one.hint.len(), 8);
        assert!(text.starts_with(&one.hint));
        assert!(!format!("{one:?}").contains(&text[8..]), "Debug shows the hint only");
        assert!(!looks_like_secret_key("pbb_an-api-token"));
    }

    #[test]
    fn an_overlap_is_zero_to_thirty_days() {
        assert_eq!(overlap_seconds(None).ok(), Some(86_400));
        assert_eq!(overlap_seconds(Some(0)).ok(), Some(0));
        assert_eq!(overlap_seconds(Some(720)).ok(), Some(720 * 3600));
        for bad in [-1, 721] {
            let error = overlap_seconds(Some(bad)).expect_err("refused");
            assert_eq!(error.field(), Some("overlapHours"));
        }
    }
}
