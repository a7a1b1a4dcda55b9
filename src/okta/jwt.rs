//! The JOSE pieces of the Okta OAuth flow: the service app's private key (RSA or EC P-256,
//! from PEM), JWS compact signing (RS256 / ES256), base64url, and public JWKs.
//!
//! It owns key parsing and signing only; what goes into the tokens is `oauth` (the client
//! assertion) and `dpop` (the proofs). It is deliberately small and built on the RustCrypto
//! crates (`rsa`, `p256`, `sha2`) instead of a JWT library, because DPoP needs the public key
//! as a `jwk` header and full control of the header.
//!
//! It must never reveal key material: the PEM stays in a [`SecretString`] and is parsed only
//! for the moment of a signature (the parsed keys zeroize on drop); `Debug` shows the
//! algorithm and `kid` only; error messages never quote the key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::traits::PublicKeyParts;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

/// Okta requires RSA keys of at least 2048 bits.
pub const MIN_RSA_BITS: usize = 2048;

/// base64url without padding, as JOSE uses it.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The algorithm family of a client key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, signed with RS256.
    Rsa,
    /// EC P-256, signed with ES256.
    Ec,
}

impl KeyKind {
    pub fn alg(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RS256",
            KeyKind::Ec => "ES256",
        }
    }
}

/// The private key a service app authenticates with (`private_key_jwt`).
pub struct ClientKey {
    pem: SecretString,
    kind: KeyKind,
    kid: Option<String>,
    public_jwk: Map<String, Value>,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.kind.alg())
            .field("kid", &self.kid)
            .field("pem", &"[redacted]")
            .finish()
    }
}

impl Clone for ClientKey {
    fn clone(&self) -> Self {
        ClientKey {
            pem: SecretString::from(self.pem.expose_secret().to_string()),
            kind: self.kind,
            kid: self.kid.clone(),
            public_jwk: self.public_jwk.clone(),
        }
    }
}

/// A parsed private key, alive only while signing.
enum Parsed {
    Rsa(Box<rsa::RsaPrivateKey>),
    Ec(p256::SecretKey),
}

fn parse_pem(pem: &str) -> Result<Parsed, String> {
    use p256::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;

    let text = pem.trim();
    let fix = "use an unencrypted PEM private key: PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN RSA \
               PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY), RSA of at least 2048 bits or EC P-256";
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(format!(
            "the key is encrypted with a passphrase; decrypt it (e.g. `openssl pkcs8 -topk8 \
             -nocrypt -in key.pem -out key-plain.pem`) and keep the file mode 0600; {fix}"
        ));
    }
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return rsa::RsaPrivateKey::from_pkcs1_pem(text)
            .map(|k| Parsed::Rsa(Box::new(k)))
            .map_err(|_| format!("not a valid PKCS#1 RSA private key; {fix}"));
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        return p256::SecretKey::from_sec1_pem(text)
            .map(Parsed::Ec)
            .map_err(|_| {
                format!("not a valid EC P-256 private key (other curves are not supported); {fix}")
            });
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
            return Ok(Parsed::Rsa(Box::new(k)));
        }
        return p256::SecretKey::from_pkcs8_pem(text)
            .map(Parsed::Ec)
            .map_err(|_| {
                format!(
                    "not a valid RSA or EC P-256 PKCS#8 private key (other curves are not \
                     supported); {fix}"
                )
            });
    }
    if text.contains("PUBLIC KEY-----") {
        return Err(format!(
            "this is a public key; the file must hold the private key (register the public key \
             on the Okta service app instead); {fix}"
        ));
    }
    Err(format!("no PEM private key found; {fix}"))
}

impl ClientKey {
    /// Parses and checks a PEM private key. `kid` is the key id Okta shows for the registered
    /// public key (sent as the JWS `kid` header when set). Errors never include the key.
    pub fn from_pem(pem: SecretString, kid: Option<String>) -> Result<ClientKey, String> {
        let parsed = parse_pem(pem.expose_secret())?;
        let (kind, mut public_jwk) = match &parsed {
            Parsed::Rsa(k) => {
                let bits = k.size() * 8;
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "the RSA key has {bits} bits; Okta requires at least {MIN_RSA_BITS}"
                    ));
                }
                k.validate()
                    .map_err(|_| "the RSA key is not consistent (validation failed)".to_string())?;
                let public = k.to_public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(public.n().to_bytes_be()),
                    "e": b64(public.e().to_bytes_be()),
                });
                (KeyKind::Rsa, jwk)
            }
            Parsed::Ec(k) => (KeyKind::Ec, ec_public_jwk(&k.public_key())),
        };
        drop(parsed);
        let Value::Object(ref mut map) = public_jwk else {
            return Err("internal error: JWK is not an object".into());
        };
        map.insert("alg".into(), Value::String(kind.alg().into()));
        map.insert("use".into(), Value::String("sig".into()));
        if let Some(kid) = &kid {
            map.insert("kid".into(), Value::String(kid.clone()));
        }
        let key = ClientKey {
            pem,
            kind,
            kid,
            public_jwk: map.clone(),
        };
        // Prove it can sign now, so a broken key fails at start, not at the first token.
        key.sign(&json!({"typ": "JWT"}), &json!({"check": true}))?;
        Ok(key)
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn alg(&self) -> &'static str {
        self.kind.alg()
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public JWK to register on the Okta service app (public data; safe to print).
    pub fn public_jwk(&self) -> Value {
        Value::Object(self.public_jwk.clone())
    }

    /// Signs `claims` as a compact JWS. `header` gets `alg` (and `kid` when set) added.
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, String> {
        let mut header = header.clone();
        if let Value::Object(map) = &mut header {
            map.insert("alg".into(), Value::String(self.alg().into()));
            if let Some(kid) = &self.kid {
                map.insert("kid".into(), Value::String(kid.clone()));
            }
        }
        let input = signing_input(&header, claims)?;
        let signature = match parse_pem(self.pem.expose_secret())? {
            Parsed::Rsa(k) => {
                use rsa::signature::{SignatureEncoding as _, Signer as _};
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(*k);
                signer
                    .try_sign(input.as_bytes())
                    .map_err(|_| "RS256 signing failed".to_string())?
                    .to_vec()
            }
            Parsed::Ec(k) => sign_es256(&p256::ecdsa::SigningKey::from(&k), input.as_bytes())?,
        };
        Ok(format!("{input}.{}", b64(signature)))
    }
}

/// `base64url(header) . base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> Result<String, String> {
    let h = serde_json::to_vec(header).map_err(|e| format!("cannot encode the JWS header: {e}"))?;
    let c = serde_json::to_vec(claims).map_err(|e| format!("cannot encode the JWS claims: {e}"))?;
    Ok(format!("{}.{}", b64(h), b64(c)))
}

/// An ES256 signature in JWS form: `r || s`, 64 bytes.
pub fn sign_es256(key: &p256::ecdsa::SigningKey, input: &[u8]) -> Result<Vec<u8>, String> {
    use p256::ecdsa::signature::Signer as _;
    let sig: p256::ecdsa::Signature = key
        .try_sign(input)
        .map_err(|_| "ES256 signing failed".to_string())?;
    Ok(sig.to_bytes().to_vec())
}

/// The public JWK (`kty`, `crv`, `x`, `y`) of a P-256 key.
pub fn ec_public_jwk(public: &p256::PublicKey) -> Value {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let point = public.to_encoded_point(false);
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": point.x().map(b64).unwrap_or_default(),
        "y": point.y().map(b64).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey as _;

    fn ec_pem() -> SecretString {
        let k = p256::SecretKey::random(&mut rand::rngs::OsRng);
        SecretString::from(
            k.to_pkcs8_pem(Default::default())
                .unwrap()
                .as_str()
                .to_string(),
        )
    }

    #[test]
    fn ec_keys_sign_verifiable_es256() {
        let key = ClientKey::from_pem(ec_pem(), Some("k1".into())).unwrap();
        assert_eq!(key.alg(), "ES256");
        let jws = key.sign(&json!({"typ": "JWT"}), &json!({"a": 1})).unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        let jwk = key.public_jwk();
        assert_eq!(jwk["alg"], "ES256");
        let bare = json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]});
        let public = p256::PublicKey::from_jwk_str(&bare.to_string()).unwrap();
        let sig =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        use p256::ecdsa::signature::Verifier as _;
        p256::ecdsa::VerifyingKey::from(&public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for (pem, needle) in [
            ("nothing here", "no PEM private key"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
                "public key",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
                "encrypted",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nQUJDREVGR0g=\n-----END PRIVATE KEY-----",
                "not a valid",
            ),
        ] {
            let err = ClientKey::from_pem(SecretString::from(pem.to_string()), None).unwrap_err();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains("AAAA") && !err.contains("QUJD"), "{err}");
        }
    }
}
