//! RS256 JSON Web Tokens: the sandbox's signing key, its JWKS, signing and verification.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// The key the sandbox signs tokens with. Generating a 2048-bit RSA key takes a noticeable moment, so one
/// key is made per process and shared by every sandbox in it (tests start many).
#[derive(Clone)]
pub struct SigningKeyPair {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    signing: SigningKey<Sha256>,
    verifying: VerifyingKey<Sha256>,
    public: RsaPublicKey,
    kid: String,
}

impl SigningKeyPair {
    pub fn process_default() -> Self {
        static KEY: OnceLock<SigningKeyPair> = OnceLock::new();
        KEY.get_or_init(Self::generate).clone()
    }

    pub fn generate() -> Self {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation with a fixed, valid size");
        let public = private.to_public_key();
        // Entra's `kid` equals the certificate thumbprint (x5t); a hash of the modulus is as stable.
        let kid = B64.encode(&Sha256::digest(public.n().to_bytes_be())[..20]);
        Self {
            inner: Arc::new(KeyInner {
                signing: SigningKey::<Sha256>::new(private),
                verifying: VerifyingKey::<Sha256>::new(public.clone()),
                public,
                kid,
            }),
        }
    }

    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The JSON Web Key as Entra publishes it at `discovery/v2.0/keys`.
    pub fn jwk(&self, issuer: &str) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.inner.kid,
            "x5t": self.inner.kid,
            "n": B64.encode(self.inner.public.n().to_bytes_be()),
            "e": B64.encode(self.inner.public.e().to_bytes_be()),
            "issuer": issuer,
        })
    }

    /// Signs `claims` as a compact RS256 JWT. `version` picks the header Entra uses for that token version.
    pub fn sign(&self, claims: &Value, v1: bool) -> String {
        let header = if v1 {
            json!({"typ": "JWT", "alg": "RS256", "x5t": self.inner.kid, "kid": self.inner.kid})
        } else {
            json!({"typ": "JWT", "alg": "RS256", "kid": self.inner.kid})
        };
        let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature: Signature = self.inner.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }

    /// Checks the signature and returns the claims. Expiry and audience are the caller's to judge.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let header: Value = decode_segment(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(JwtError::Malformed);
        }
        if header.get("kid").and_then(Value::as_str) != Some(self.inner.kid.as_str()) {
            return Err(JwtError::UnknownKey);
        }
        let signature_bytes = B64.decode(signature).map_err(|_| JwtError::Malformed)?;
        let signature = Signature::try_from(signature_bytes.as_slice()).map_err(|_| JwtError::Malformed)?;
        let signing_input = &token[..header_len(token, payload)];
        self.inner.verifying.verify(signing_input.as_bytes(), &signature).map_err(|_| JwtError::BadSignature)?;
        decode_segment(payload)
    }
}

fn header_len(token: &str, payload: &str) -> usize {
    // "header.payload" is everything before the second dot.
    token.find('.').map_or(0, |first| first + 1 + payload.len())
}

fn decode_segment(segment: &str) -> Result<Value, JwtError> {
    let bytes = B64.decode(segment).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("the token is not a well-formed RS256 JWT")]
    Malformed,
    #[error("the token was signed with a key this sandbox does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let key = SigningKeyPair::process_default();
        let token = key.sign(&json!({"sub": "alice", "n": 1}), true);
        assert_eq!(key.verify(&token).expect("valid")["sub"], "alice");

        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(json!({"sub": "mallory", "n": 1}).to_string());
        parts[1] = &forged;
        assert_eq!(key.verify(&parts.join(".")), Err(JwtError::BadSignature));
        assert_eq!(key.verify("a.b"), Err(JwtError::Malformed));
        assert_eq!(SigningKeyPair::generate().verify(&token), Err(JwtError::UnknownKey));
    }
}
