//! Identifiers: random opaque values, stable demo GUIDs, and GUID parsing as Power BI accepts it.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A random URL-safe string with `bytes` bytes of entropy (codes, refresh tokens, session ids).
pub fn opaque(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A GUID derived from a name, so demo ids are the same in every run (README examples use them).
pub fn stable(name: &str) -> Uuid {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Power BI ids are GUIDs in any case, with or without braces.
pub fn parse_guid(text: &str) -> Option<Uuid> {
    let trimmed = text.trim_start_matches('{').trim_end_matches('}');
    if trimmed.len() != 36 {
        return None;
    }
    Uuid::parse_str(trimmed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stable_ids_are_stable_and_distinct() {
        assert_eq!(stable("a"), stable("a"));
        assert_ne!(stable("a"), stable("b"));
    }

    proptest! {
        #[test]
        fn any_guid_round_trips_in_any_case(bytes in any::<[u8; 16]>(), upper in any::<bool>()) {
            let id = Uuid::from_bytes(bytes);
            let text = if upper { id.to_string().to_uppercase() } else { id.to_string() };
            prop_assert_eq!(parse_guid(&text), Some(id));
        }

        #[test]
        fn parse_guid_never_panics(text in ".{0,64}") {
            let _ = parse_guid(&text);
        }
    }
}
