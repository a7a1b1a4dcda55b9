//! The Okta emulator's OAuth 2.0 side: the org authorization server's token endpoint
//! (`POST /oauth2/v1/token`, client credentials with `private_key_jwt`, DPoP with the
//! `use_dpop_nonce` dance) and the checks of OAuth access tokens on API calls (token, DPoP
//! proof with `ath`, scope per route), following docs/api-facts.md "Okta OAuth", "Okta errors".
//!
//! Everything is verified for real, with its own JOSE code (it shares nothing with the
//! client): the client assertion's signature against the app's registered public JWKs (RSA
//! RS256 or EC P-256 ES256, chosen by `kid` when the assertion has one), its claims (`iss` =
//! `sub` = a known client, `aud` = this server's token URL, `exp` in the future and at most
//! 1 h ahead, `jti` present and never seen before); the DPoP proof's `typ`, `alg`, public
//! `jwk`, signature, `htm`, `htu`, `iat` (within 5 min back / 1 min ahead), unique `jti`, and
//! on the token endpoint the current nonce; on API calls `ath` and the key binding (`jkt`).
//!
//! Failures look like Okta's: the token endpoint answers OAuth JSON (`invalid_client` 401;
//! `invalid_scope`, `invalid_dpop_proof`, `use_dpop_nonce` with a `dpop-nonce` header,
//! `invalid_request`, `unsupported_grant_type` 400); API calls answer 401/403 with a
//! `WWW-Authenticate: DPoP …` (or `Bearer …`) challenge and **no body** for
//! `invalid_dpop_proof` and `insufficient_scope`, and E0000011 for an unknown token.
//!
//! Choices where the reference is silent: client authentication is checked before the scopes
//! and the DPoP proof; the `invalid_scope` description names the scopes that are not granted;
//! a `manage` scope satisfies the matching `read` scope; a proof sent by a client that does
//! not require DPoP still yields a DPoP-bound token (RFC 9449); API-call proofs need no nonce
//! (docs/api-facts.md "Okta OAuth"). It must never panic on request input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::OktaSim;
use crate::common::random_alnum;
use crate::fixture::OAuthClientFixture;

/// Route key of the token endpoint (as counted by `request_count`).
pub(crate) const ROUTE_TOKEN: &str = "POST /oauth2/v1/token";
pub(crate) const TOKEN_PATH: &str = "/oauth2/v1/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const MAX_ASSERTION_LIFETIME: u64 = 3600;
const PROOF_MAX_AGE: u64 = 300;
const MAX_FUTURE_SKEW: u64 = 60;
const ALGS: &str = "RS256 RS384 RS512 ES256 ES384 ES512";

/// One issued access token.
#[derive(Debug, Clone)]
struct Issued {
    scopes: Vec<String>,
    expires_at: SystemTime,
    /// JWK thumbprint of the DPoP key the token is bound to.
    jkt: Option<String>,
}

/// The authorization server's state.
#[derive(Debug)]
pub(crate) struct OAuthState {
    clients: BTreeMap<String, OAuthClientFixture>,
    tokens: HashMap<String, Issued>,
    assertion_jtis: HashSet<String>,
    proof_jtis: HashSet<String>,
    nonce: String,
    pub token_lifetime: Duration,
    /// Added to the emulator's clock for every OAuth time check (a server clock ahead of
    /// the client's makes fresh assertions look expired).
    pub clock_offset: Duration,
}

impl OAuthState {
    pub(crate) fn new(clients: &[OAuthClientFixture], token_lifetime_secs: u64) -> OAuthState {
        OAuthState {
            clients: clients
                .iter()
                .map(|c| (c.client_id.clone(), c.clone()))
                .collect(),
            tokens: HashMap::new(),
            assertion_jtis: HashSet::new(),
            proof_jtis: HashSet::new(),
            nonce: random_alnum(32),
            token_lifetime: Duration::from_secs(token_lifetime_secs.max(1)),
            clock_offset: Duration::ZERO,
        }
    }

    pub(crate) fn add_client(&mut self, c: OAuthClientFixture) {
        self.clients.insert(c.client_id.clone(), c);
    }

    pub(crate) fn rotate_nonce(&mut self) {
        self.nonce = random_alnum(32);
    }

    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }

    pub(crate) fn revoke_all(&mut self) {
        self.tokens.clear();
    }
}

fn now_secs(sim: &OktaSim, offset: Duration) -> u64 {
    (sim.clock().system_now() + offset)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// JOSE, independent of the client's.

struct Jws {
    header: Value,
    claims: Value,
    input: String,
    signature: Vec<u8>,
}

fn decode_jws(text: &str) -> Result<Jws, String> {
    let parts: Vec<&str> = text.trim().split('.').collect();
    if parts.len() != 3 {
        return Err("it is not a compact JWS (three dot-separated parts)".into());
    }
    let part = |i: usize, what: &str| -> Result<Vec<u8>, String> {
        URL_SAFE_NO_PAD
            .decode(parts[i])
            .map_err(|_| format!("the {what} is not base64url"))
    };
    let header: Value = serde_json::from_slice(&part(0, "header")?)
        .map_err(|_| "the header is not JSON".to_string())?;
    let claims: Value = serde_json::from_slice(&part(1, "payload")?)
        .map_err(|_| "the payload is not JSON".to_string())?;
    if !header.is_object() || !claims.is_object() {
        return Err("the header or payload is not a JSON object".into());
    }
    Ok(Jws {
        header,
        claims,
        input: format!("{}.{}", parts[0], parts[1]),
        signature: part(2, "signature")?,
    })
}

fn b64_field(jwk: &Value, name: &str) -> Result<Vec<u8>, String> {
    let s = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the JWK has no {name}"))?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("the JWK's {name} is not base64url"))
}

/// Verifies `sig` over `input` with a public JWK and the JWS `alg`.
fn verify(jwk: &Value, alg: &str, input: &[u8], sig: &[u8]) -> Result<(), String> {
    if jwk.get("d").is_some() {
        return Err("the JWK contains private key material".into());
    }
    match (jwk.get("kty").and_then(Value::as_str), alg) {
        (Some("EC"), "ES256") => {
            use p256::ecdsa::signature::Verifier as _;
            if jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
                return Err("only P-256 EC keys are supported".into());
            }
            let x = b64_field(jwk, "x")?;
            let y = b64_field(jwk, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("the EC JWK's coordinates are not 32 bytes".into());
            }
            let mut sec1 = Vec::with_capacity(65);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|_| "the EC JWK is not a point on P-256".to_string())?;
            let sig = p256::ecdsa::Signature::from_slice(sig)
                .map_err(|_| "the ES256 signature is not 64 bytes".to_string())?;
            key.verify(input, &sig)
                .map_err(|_| "the signature does not verify".to_string())
        }
        (Some("RSA"), "RS256") => {
            use rsa::signature::Verifier as _;
            let n = rsa::BigUint::from_bytes_be(&b64_field(jwk, "n")?);
            let e = rsa::BigUint::from_bytes_be(&b64_field(jwk, "e")?);
            let key = rsa::RsaPublicKey::new(n, e)
                .map_err(|_| "the RSA JWK is not a valid public key".to_string())?;
            let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key);
            let sig = rsa::pkcs1v15::Signature::try_from(sig)
                .map_err(|_| "the RS256 signature is malformed".to_string())?;
            verifier
                .verify(input, &sig)
                .map_err(|_| "the signature does not verify".to_string())
        }
        (kty, alg) => Err(format!(
            "unsupported key type / algorithm {} / {alg}",
            kty.unwrap_or("?")
        )),
    }
}

/// RFC 7638 thumbprint of a public JWK.
fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    let canonical = match s("kty")? {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// A verified DPoP proof: the key's thumbprint and the claims.
struct Proof {
    jkt: String,
    claims: Value,
}

/// Checks a DPoP proof's form, signature, `htm`, `htu`, `iat` and `jti`.
fn verify_proof(
    st: &mut OAuthState,
    value: &str,
    method: &str,
    htu: &str,
    now: u64,
) -> Result<Proof, String> {
    let jws = decode_jws(value).map_err(|e| format!("The DPoP proof JWT is malformed: {e}."))?;
    if jws.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err("The DPoP proof JWT header 'typ' must be 'dpop+jwt'.".into());
    }
    let alg = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
    let jwk = jws
        .header
        .get("jwk")
        .ok_or("The DPoP proof JWT header has no 'jwk'.")?;
    verify(jwk, alg, jws.input.as_bytes(), &jws.signature)
        .map_err(|e| format!("The DPoP proof JWT signature is invalid: {e}."))?;
    let c = &jws.claims;
    if c.get("htm").and_then(Value::as_str) != Some(method) {
        return Err(format!("The DPoP proof 'htm' does not match {method}."));
    }
    if c.get("htu").and_then(Value::as_str) != Some(htu) {
        return Err(format!("The DPoP proof 'htu' does not match {htu}."));
    }
    let iat = c
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or("The DPoP proof has no 'iat'.")?;
    if iat + PROOF_MAX_AGE < now || iat > now + MAX_FUTURE_SKEW {
        return Err("The DPoP proof 'iat' is not recent.".into());
    }
    let jti = c
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or("The DPoP proof has no 'jti'.")?;
    if !st.proof_jtis.insert(jti.to_string()) {
        return Err("The DPoP proof 'jti' has already been used.".into());
    }
    let jkt = thumbprint(jwk).ok_or("The DPoP proof 'jwk' is not a public key.")?;
    Ok(Proof {
        jkt,
        claims: jws.claims,
    })
}

// ---------------------------------------------------------------------------------------------
// The token endpoint.

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

/// Whether `granted` covers `scope` (`okta.x.manage` covers `okta.x.read`).
fn covers(granted: &[String], scope: &str) -> bool {
    granted.iter().any(|g| g == scope)
        || scope
            .strip_suffix(".read")
            .is_some_and(|base| granted.iter().any(|g| *g == format!("{base}.manage")))
}

/// `POST /oauth2/v1/token`. `base` is this server's origin as the client addressed it.
pub(crate) fn token_endpoint(
    sim: &OktaSim,
    headers: &HeaderMap,
    body: &[u8],
    base: &str,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    if field("client_assertion_type") != ASSERTION_TYPE || field("client_assertion").is_empty() {
        return invalid_client(
            "Client authentication failed. Either the client or the client credentials are \
             invalid.",
        );
    }
    let token_url = format!("{base}{TOKEN_PATH}");
    let mut guard = sim.lock();
    let st = &mut guard.oauth;
    let now = now_secs(sim, st.clock_offset);

    // Client authentication: the assertion.
    let jws = match decode_jws(field("client_assertion")) {
        Ok(j) => j,
        Err(e) => return invalid_client(&format!("The client_assertion is malformed: {e}.")),
    };
    let claim = |k: &str| jws.claims.get(k).and_then(Value::as_str).unwrap_or("");
    let client_id = claim("iss").to_string();
    let Some(client) = st.clients.get(&client_id).cloned() else {
        return invalid_client("Invalid value for 'client_id' parameter.");
    };
    if claim("sub") != client_id {
        return invalid_client("The 'sub' claim of the client_assertion must equal 'iss'.");
    }
    let alg = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
    let kid = jws.header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&Value> = client
        .jwks
        .iter()
        .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid)
        .collect();
    if candidates.is_empty() {
        return invalid_client("No public key registered on the client matches the 'kid'.");
    }
    if !candidates
        .iter()
        .any(|k| verify(k, alg, jws.input.as_bytes(), &jws.signature).is_ok())
    {
        return invalid_client("The client_assertion signature is invalid.");
    }
    if claim("aud") != token_url {
        return invalid_client(&format!(
            "The audience of the client_assertion must be {token_url}."
        ));
    }
    let Some(exp) = jws.claims.get("exp").and_then(Value::as_u64) else {
        return invalid_client("The client_assertion has no 'exp' claim.");
    };
    if exp <= now {
        return invalid_client("The client_assertion token is expired.");
    }
    if exp > now + MAX_ASSERTION_LIFETIME {
        return invalid_client(
            "The client_assertion token has an expiration too far into the future.",
        );
    }
    if let Some(iat) = jws.claims.get("iat").and_then(Value::as_u64) {
        if iat > now + MAX_FUTURE_SKEW {
            return invalid_client("The client_assertion 'iat' is in the future.");
        }
    }
    let jti = claim("jti");
    if jti.is_empty() {
        return invalid_client("The client_assertion has no 'jti' claim.");
    }
    if !st.assertion_jtis.insert(jti.to_string()) {
        return invalid_client("The client_assertion token has already been used.");
    }

    // Scopes.
    let requested: Vec<String> = field("scope")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if requested.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The authorization server requires a 'scope' for the client credentials grant.",
        );
    }
    let denied: Vec<&str> = requested
        .iter()
        .filter(|s| !covers(&client.scopes, s))
        .map(String::as_str)
        .collect();
    if !denied.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!(
                "The following scopes are not allowed: [{}]",
                denied.join(", ")
            ),
        );
    }

    // DPoP.
    let proof_header = headers.get("dpop").and_then(|v| v.to_str().ok());
    let jkt = match proof_header {
        None if client.dpop_required => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "The DPoP proof JWT header is missing.",
            )
        }
        None => None,
        Some(value) => {
            let proof = match verify_proof(st, value, "POST", &token_url, now) {
                Ok(p) => p,
                Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", &e),
            };
            if proof.claims.get("nonce").and_then(Value::as_str) != Some(st.nonce.as_str()) {
                let mut r = oauth_error(
                    StatusCode::BAD_REQUEST,
                    "use_dpop_nonce",
                    "Authorization server requires nonce in DPoP proof.",
                );
                if let Ok(v) = HeaderValue::from_str(&st.nonce) {
                    r.headers_mut().insert("dpop-nonce", v);
                }
                return r;
            }
            Some(proof.jkt)
        }
    };

    let access_token = format!("eyJ{}", random_alnum(120));
    let lifetime = st.token_lifetime;
    let expires_at = sim.clock().system_now() + st.clock_offset + lifetime;
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    st.tokens.insert(
        access_token.clone(),
        Issued {
            scopes: requested.clone(),
            expires_at,
            jkt,
        },
    );
    drop(guard);
    let body = json!({
        "token_type": token_type,
        "expires_in": lifetime.as_secs(),
        "access_token": access_token,
        "scope": requested.join(" "),
    })
    .to_string();
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

// ---------------------------------------------------------------------------------------------
// API calls.

/// Why an API call's OAuth credentials were refused.
pub(crate) enum ApiAuthError {
    /// Unknown or expired token: 401 E0000011 with a challenge.
    InvalidToken { scheme: &'static str },
    /// 401, challenge only, no body.
    InvalidProof { description: String },
    /// 403, challenge only, no body.
    InsufficientScope { scope: String, resource: String },
}

impl ApiAuthError {
    /// The `WWW-Authenticate` value.
    pub(crate) fn challenge(&self) -> String {
        match self {
            ApiAuthError::InvalidToken { scheme } => format!(
                "{scheme} algs=\"{ALGS}\", error=\"invalid_token\", error_description=\"The access token is invalid.\""
            ),
            ApiAuthError::InvalidProof { description } => format!(
                "DPoP algs=\"{ALGS}\", error=\"invalid_dpop_proof\", error_description=\"{}\"",
                description.replace('"', "'")
            ),
            ApiAuthError::InsufficientScope { scope, resource } => format!(
                "DPoP algs=\"{ALGS}\", error=\"insufficient_scope\", error_description=\"The access token provided does not contain the required scopes.\", resource=\"{resource}\", scope=\"{scope}\""
            ),
        }
    }
}

/// Checks `Authorization: DPoP|Bearer <token>` (+ `DPoP` proof) for `method path` needing
/// `scope`. `token` is the Authorization header without the scheme.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_api_call(
    sim: &OktaSim,
    dpop_scheme: bool,
    token: &str,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    base: &str,
    scope: Option<&str>,
) -> Result<(), ApiAuthError> {
    let scheme = if dpop_scheme { "DPoP" } else { "Bearer" };
    let mut guard = sim.lock();
    let st = &mut guard.oauth;
    let now_time = sim.clock().system_now() + st.clock_offset;
    let now = now_secs(sim, st.clock_offset);
    let issued = match st.tokens.get(token) {
        Some(i) if i.expires_at > now_time => i.clone(),
        _ => return Err(ApiAuthError::InvalidToken { scheme }),
    };
    match (&issued.jkt, dpop_scheme) {
        (Some(jkt), true) => {
            let Some(value) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
                return Err(ApiAuthError::InvalidProof {
                    description: "The DPoP proof JWT header is missing.".into(),
                });
            };
            let htu = format!("{base}{path}");
            let proof = verify_proof(st, value, method.as_str(), &htu, now)
                .map_err(|description| ApiAuthError::InvalidProof { description })?;
            if &proof.jkt != jkt {
                return Err(ApiAuthError::InvalidProof {
                    description: "The DPoP proof key does not match the access token.".into(),
                });
            }
            let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            if proof.claims.get("ath").and_then(Value::as_str) != Some(ath.as_str()) {
                return Err(ApiAuthError::InvalidProof {
                    description: "The DPoP proof 'ath' does not match the access token.".into(),
                });
            }
        }
        // A DPoP-bound token used as a bearer token, or a bearer token as DPoP.
        (Some(_), false) | (None, true) => return Err(ApiAuthError::InvalidToken { scheme }),
        (None, false) => {}
    }
    if let Some(scope) = scope {
        if !covers(&issued.scopes, scope) {
            return Err(ApiAuthError::InsufficientScope {
                scope: scope.to_string(),
                resource: path.to_string(),
            });
        }
    }
    Ok(())
}

/// A challenge-only error response (no body), as Okta sends for scope and proof problems.
pub(crate) fn challenge_response(status: StatusCode, challenge: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_covers_read() {
        let g = vec!["okta.apps.manage".to_string()];
        assert!(covers(&g, "okta.apps.read"));
        assert!(covers(&g, "okta.apps.manage"));
        assert!(!covers(&g, "okta.users.read"));
    }

    #[test]
    fn thumbprints_follow_rfc7638() {
        // RFC 7638 §3.1 example.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn malformed_jws_is_refused() {
        assert!(decode_jws("a.b").is_err());
        assert!(decode_jws("!!.e30.AA").is_err());
    }
}
