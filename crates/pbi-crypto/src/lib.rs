//! Encryption at rest for tokens and client secrets: AES-256-GCM envelopes under a key ring with key ids.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the value is not an envelope this version of pbi-bridge wrote")]
    Malformed,
    #[error("the value was encrypted under key {0}, which is not configured: add it back to the key ring")]
    UnknownKey(u32),
    /// Wrong key material, an edited envelope, or an envelope moved to another row.
    #[error("the value does not decrypt: it was altered, moved to another row, or the key {0} has other material than when it was written")]
    Tampered(u32),
    #[error("the key ring is not valid: {0}")]
    BadKeys(String),
    #[error("the key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
}

/// The configured keys; the highest id encrypts, all of them decrypt. `Debug` lists key ids only.
pub struct KeyRing {
    keys: BTreeMap<u32, Aes256Gcm>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("key_ids", &self.keys.keys().collect::<Vec<_>>()).field("current", &self.current_key_id()).finish()
    }
}

fn random_key() -> SecretBox<[u8; 32]> {
    let mut key = SecretBox::new(Box::new([0u8; 32]));
    rand::thread_rng().fill_bytes(secrecy::ExposeSecretMut::expose_secret_mut(&mut key));
    key
}

impl KeyRing {
    /// Reads `ID:BASE64` lines (blank lines and `#` comments allowed); each key is 32 bytes.
    pub fn parse(text: &SecretString) -> Result<Self, CryptoError> {
        let mut keys = BTreeMap::new();
        for (number, line) in text.expose_secret().lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| CryptoError::BadKeys(format!("line {number}: {why}; expected ID:BASE64 with a 32-byte key"));
            let (id, material) = line.split_once(':').ok_or_else(|| bad("no ':'"))?;
            let id: u32 = id.trim().parse().map_err(|_| bad("the id is not a number"))?;
            let bytes = SecretBox::new(Box::new(B64.decode(material.trim()).map_err(|_| bad("the key is not base64"))?));
            if bytes.expose_secret().len() != 32 {
                return Err(bad("the key is not 32 bytes"));
            }
            let cipher = Aes256Gcm::new_from_slice(bytes.expose_secret()).map_err(|_| bad("the key is not 32 bytes"))?;
            if keys.insert(id, cipher).is_some() {
                return Err(bad("the id is used twice"));
            }
        }
        if keys.is_empty() {
            return Err(CryptoError::BadKeys("no keys configured".into()));
        }
        Ok(Self { keys })
    }

    /// A new random 32-byte key, sealed with the newest key for `context`: what a store keeps for a key its
    /// instances share (they read it back with `decrypt`).
    pub fn new_sealed_key(&self, context: &str) -> Vec<u8> {
        self.encrypt(random_key().expose_secret(), context)
    }

    /// A line for a new random key with id `id`, to append to a key file or configuration.
    pub fn new_key_line(id: u32) -> SecretString {
        let key = random_key();
        SecretString::from(format!("{id}:{}\n", B64.encode(key.expose_secret())))
    }

    /// Loads the key file, or creates it with one fresh key and mode 0600 when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        match Self::load(path) {
            Err(CryptoError::KeyFile { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let line = Self::new_key_line(1);
                Self::write_new_key_file(path, &line)?;
                Self::parse(&line)
            }
            other => other,
        }
    }

    /// Reads an existing key file.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::KeyFile { path: path.display().to_string(), source })?;
        Self::parse(&SecretString::from(text))
    }

    /// Writes a new key file holding `line` (from `new_key_line`), readable by its owner only (0600 whatever
    /// the umask). An existing file is never replaced: it may hold the only key to data already written.
    pub fn write_new_key_file(path: &Path, line: &SecretString) -> Result<(), CryptoError> {
        let file_error = |source| CryptoError::KeyFile { path: path.display().to_string(), source };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(file_error)?;
        // The umask can only take bits away from 0600; setting it again makes the mode exact.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(file_error)?;
        let content =
            format!("# pbi-bridge encryption keys: ID:BASE64, the highest id encrypts. Keep this file secret.\n{}", line.expose_secret());
        file.write_all(content.as_bytes()).map_err(file_error)?;
        file.sync_all().map_err(file_error)
    }

    pub fn current_key_id(&self) -> u32 {
        self.keys.keys().next_back().copied().unwrap_or_default()
    }

    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Encrypts under the current key; `context` (the row's identity) must be given again to decrypt.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let key_id = self.current_key_id();
        let cipher = &self.keys[&key_id];
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let header = header(key_id);
        let aad = associated_data(&header, context);
        // AES-GCM encryption cannot fail for inputs under 64 GiB; a failure here is a broken invariant.
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .expect("AES-GCM encrypts any input of a sane size");
        let mut envelope = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ciphertext.len());
        envelope.extend_from_slice(&header);
        envelope.extend_from_slice(&nonce);
        envelope.extend_from_slice(&ciphertext);
        envelope
    }

    pub fn encrypt_str(&self, plaintext: &SecretString, context: &str) -> Vec<u8> {
        self.encrypt(plaintext.expose_secret().as_bytes(), context)
    }

    pub fn decrypt(&self, envelope: &[u8], context: &str) -> Result<SecretBox<Vec<u8>>, CryptoError> {
        let key_id = key_id_of(envelope)?;
        let cipher = self.keys.get(&key_id).ok_or(CryptoError::UnknownKey(key_id))?;
        let (header, rest) = envelope.split_at(HEADER_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(header, context);
        let plaintext =
            cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| CryptoError::Tampered(key_id))?;
        Ok(SecretBox::new(Box::new(plaintext)))
    }

    pub fn decrypt_str(&self, envelope: &[u8], context: &str) -> Result<SecretString, CryptoError> {
        let bytes = self.decrypt(envelope, context)?;
        let text = String::from_utf8(bytes.expose_secret().clone()).map_err(|_| CryptoError::Malformed)?;
        Ok(SecretString::from(text))
    }

    /// Whether `envelope` was written under an older key (key rotation re-encrypts those).
    pub fn needs_rotation(&self, envelope: &[u8]) -> Result<bool, CryptoError> {
        Ok(key_id_of(envelope)? != self.current_key_id())
    }
}

fn header(key_id: u32) -> [u8; HEADER_LEN] {
    let id = key_id.to_be_bytes();
    [VERSION, id[0], id[1], id[2], id[3]]
}

/// The header and the context, length-prefixed so that no two (header, context) pairs collide.
fn associated_data(header: &[u8], context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 8 + context.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(&(context.len() as u64).to_be_bytes());
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// The key an envelope was written under.
pub fn key_id_of(envelope: &[u8]) -> Result<u32, CryptoError> {
    if envelope.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || envelope[0] != VERSION {
        return Err(CryptoError::Malformed);
    }
    Ok(u32::from_be_bytes([envelope[1], envelope[2], envelope[3], envelope[4]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(ids: &[u32]) -> (KeyRing, String) {
        let text: String = ids.iter().map(|id| KeyRing::new_key_line(*id).expose_secret().to_owned()).collect();
        (KeyRing::parse(&SecretString::from(text.clone())).expect("valid"), text)
    }

    #[test]
    fn round_trips_and_binds_the_row() {
        let (keys, _) = ring(&[1]);
        let envelope = keys.encrypt(b"refresh-token", "connection:1:refresh_token");
        assert_eq!(keys.decrypt(&envelope, "connection:1:refresh_token").expect("decrypts").expose_secret(), b"refresh-token");
        assert!(matches!(keys.decrypt(&envelope, "connection:2:refresh_token"), Err(CryptoError::Tampered(1))), "moved to another row");
        let mut edited = envelope.clone();
        let last = edited.len() - 1;
        edited[last] ^= 1;
        assert!(matches!(keys.decrypt(&edited, "connection:1:refresh_token"), Err(CryptoError::Tampered(1))));
        assert!(!envelope.windows(13).any(|w| w == b"refresh-token"), "the plaintext is not in the envelope");
    }

    #[test]
    fn the_newest_key_encrypts_and_old_keys_still_decrypt() {
        let (old, old_text) = ring(&[1]);
        let envelope = old.encrypt(b"secret", "ctx");
        let new_line = KeyRing::new_key_line(2);
        let both = KeyRing::parse(&SecretString::from(format!("{old_text}# rotated\n{}", new_line.expose_secret()))).expect("two keys");
        let newer = KeyRing::parse(&new_line).expect("the new key alone");
        assert_eq!(both.current_key_id(), 2);
        assert!(both.needs_rotation(&envelope).expect("an envelope"));
        assert_eq!(both.decrypt(&envelope, "ctx").expect("old key decrypts").expose_secret(), b"secret");
        let rotated = both.encrypt(both.decrypt(&envelope, "ctx").expect("decrypts").expose_secret(), "ctx");
        assert_eq!(key_id_of(&rotated).expect("id"), 2);
        assert!(matches!(newer.decrypt(&envelope, "ctx"), Err(CryptoError::UnknownKey(1))));
    }

    #[test]
    fn bad_key_text_is_refused_with_the_line() {
        for (text, needle) in [("", "no keys"), ("1:abc", "line 1"), ("x:AAAA", "id"), ("1\n", "':'")] {
            let error = KeyRing::parse(&SecretString::from(text.to_owned())).expect_err(text);
            assert!(error.to_string().contains(needle), "{text}: {error}");
        }
        let line = KeyRing::new_key_line(3);
        let twice = format!("{}{}", line.expose_secret(), line.expose_secret());
        assert!(KeyRing::parse(&SecretString::from(twice)).is_err());
    }

    #[test]
    fn debug_output_shows_ids_only() {
        let (keys, text) = ring(&[4, 7]);
        let debug = format!("{keys:?}");
        assert_eq!(debug, "KeyRing { key_ids: [4, 7], current: 7 }");
        for line in text.lines() {
            assert!(!debug.contains(line.split(':').nth(1).unwrap_or("-")));
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_new_key_file_is_private_and_reloads() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pbi-keys-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let created = KeyRing::load_or_create(&path).expect("created");
        assert_eq!(std::fs::metadata(&path).expect("file").permissions().mode() & 0o777, 0o600);
        let envelope = created.encrypt(b"x", "c");
        let reloaded = KeyRing::load_or_create(&path).expect("reloaded");
        assert_eq!(reloaded.decrypt(&envelope, "c").expect("same key").expose_secret(), b"x");
        std::fs::remove_file(&path).expect("cleanup");
    }

    proptest! {
        #[test]
        fn any_value_round_trips_and_any_other_context_fails(value in proptest::collection::vec(any::<u8>(), 0..300), context in ".{0,40}", other in ".{0,40}") {
            let (keys, _) = ring(&[1]);
            let envelope = keys.encrypt(&value, &context);
            let decrypted = keys.decrypt(&envelope, &context).expect("decrypts");
            prop_assert_eq!(decrypted.expose_secret(), &value);
            if other != context {
                prop_assert!(keys.decrypt(&envelope, &other).is_err());
            }
        }

        /// Envelopes written by the ring, then changed one way: a byte flipped anywhere (header, nonce,
        /// ciphertext, tag), cut short, extended, or given another key id (known or not) or version. Only
        /// the envelope as written decrypts; every change is refused with the error for its part, and
        /// nothing panics.
        #[test]
        fn only_the_envelope_as_written_decrypts(
            value in proptest::collection::vec(any::<u8>(), 0..64),
            change in 0usize..6,
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let (keys, _) = ring(&[1, 2]);
            let mut envelope = keys.encrypt(&value, "c");
            let key = key_id_of(&envelope).expect("a header");
            prop_assert_eq!(key, 2);
            let position = at.index(envelope.len());
            let outcome = match change {
                0 => {
                    let decrypted = keys.decrypt(&envelope, "c").expect("as written");
                    prop_assert_eq!(decrypted.expose_secret(), &value);
                    return Ok(());
                }
                1 => { envelope[position] ^= 1 << bit; keys.decrypt(&envelope, "c") }
                2 => { envelope.truncate(at.index(HEADER_LEN + NONCE_LEN + TAG_LEN)); keys.decrypt(&envelope, "c") }
                3 => { envelope.push(bit); keys.decrypt(&envelope, "c") }
                4 => { envelope[1..5].copy_from_slice(&[0, 0, 0, if bit % 2 == 0 { 1 } else { 3 }]); keys.decrypt(&envelope, "c") }
                _ => { envelope[0] = VERSION.wrapping_add(1 + bit); keys.decrypt(&envelope, "c") }
            };
            match (change, outcome) {
                (1, Err(CryptoError::Tampered(_) | CryptoError::Malformed | CryptoError::UnknownKey(_))) => {}
                (2 | 5, Err(CryptoError::Malformed)) => {}
                (3, Err(CryptoError::Tampered(2))) => {}
                (4, Err(CryptoError::UnknownKey(3))) if bit % 2 == 1 => {}
                (4, Err(CryptoError::Tampered(1))) if bit % 2 == 0 => {}
                (change, outcome) => prop_assert!(false, "change {} gave {:?}", change, outcome.map(|_| "decrypted")),
            }
        }
    }
}
