//! DPoP (RFC 9449) proofs for Okta: a per-process EC P-256 key pair and the proof JWTs sent
//! in the `DPoP` header — on the token request (`htm`, `htu`, `iat`, `jti`, and `nonce` once
//! Okta asked for one) and on every API call (plus `ath`, the base64url SHA-256 of the access
//! token).
//!
//! The key is generated in memory at start and never written anywhere; it is not the client
//! authentication key (Okta requires them to differ). Its private scalar is held in a
//! [`SecretBox`] and turned into a signing key only for the moment of a signature. `htu` is
//! the request URL without query and fragment (RFC 9449 §4.2).
//!
//! It must never log or return the private key; the proofs themselves carry only public
//! data and a hash of the token.

use secrecy::{ExposeSecret, SecretBox};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::jwt::{b64, ec_public_jwk, sign_es256, signing_input};

/// The per-process DPoP key.
pub struct DpopKey {
    scalar: SecretBox<[u8; 32]>,
    public_jwk: Value,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &"ES256")
            .field("private", &"[redacted]")
            .finish()
    }
}

impl DpopKey {
    /// A fresh random key.
    pub fn generate() -> DpopKey {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let public_jwk = ec_public_jwk(&secret.public_key());
        let scalar = SecretBox::init_with_mut(|b: &mut [u8; 32]| {
            b.copy_from_slice(&secret.to_bytes());
        });
        DpopKey { scalar, public_jwk }
    }

    /// The public JWK sent in each proof's header.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A proof for `method url`. `nonce` is the server's last `dpop-nonce`; `access_token`
    /// (API calls only) adds `ath`. `iat` is seconds since the epoch.
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        iat: u64,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, String> {
        let header = json!({
            "typ": "dpop+jwt",
            "alg": "ES256",
            "jwk": self.public_jwk,
        });
        let mut claims = json!({
            "htm": method,
            "htu": htu(url),
            "iat": iat,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = Value::String(n.to_string());
        }
        if let Some(token) = access_token {
            claims["ath"] = Value::String(ath(token));
        }
        let input = signing_input(&header, &claims)?;
        let key = p256::ecdsa::SigningKey::from_slice(self.scalar.expose_secret())
            .map_err(|_| "the DPoP key is unusable".to_string())?;
        let sig = sign_es256(&key, input.as_bytes())?;
        Ok(format!("{input}.{}", b64(sig)))
    }
}

/// The `htu` of a request: its URL without query and fragment.
pub fn htu(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// `ath`: base64url(SHA-256(access token)).
pub fn ath(access_token: &str) -> String {
    b64(Sha256::digest(access_token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    #[test]
    fn proofs_have_the_dpop_shape() {
        let key = DpopKey::generate();
        let url = Url::parse("https://x.okta.com/api/v1/apps/0oa1/users?limit=2#f").unwrap();
        let proof = key.proof("GET", &url, 1000, None, Some("tok")).unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(header["jwk"].get("d").is_none());
        assert_eq!(claims["htu"], "https://x.okta.com/api/v1/apps/0oa1/users");
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["ath"], ath("tok"));
        assert!(claims.get("nonce").is_none());
        let public = p256::PublicKey::from_jwk_str(&header["jwk"].to_string()).unwrap();
        let sig =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        use p256::ecdsa::signature::Verifier as _;
        p256::ecdsa::VerifyingKey::from(&public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.scalar.expose_secret())));
    }
}
