//! The Spot API client: organization users, accounts, policies, user create/delete, user
//! details (role and policies, [`super::access`]) and policy mapping, over the envelope `{"request":{…},"response":{status,kind,items,count}}`.
//!
//! It owns the lenient parsing of Spot's responses and the defenses on writes:
//! - an item without the id that identifies it (`userId`, `accountId`, policy `id`) is an
//!   error ([`Error::Malformed`] naming the index), never a skipped item;
//! - a user's kind comes from `type`; when `type` is missing or unknown it is decided by the
//!   id: `pu-…` is programmatic; with `type` missing, `u-…` is personal; anything else is
//!   [`SpotUserKind::Unknown`] (never touched). A `type: personal` on a `pu-` id is
//!   programmatic: the id wins, in the safe direction;
//! - programmatic users (`pu-…`) are refused by `delete_user` and `set_policy_mapping`;
//! - a "does not exist" answer to a delete is success (already gone);
//! - `POST /setup/user` is never retried after a timeout, a connection error or a 5xx (the
//!   user may have been created; `apply` decides from a fresh read of the user list, and the
//!   `pending` record claims it by email), only after a 429;
//! - the password of a new user is generated here with the OS CSPRNG, sent once, and never
//!   logged, returned or stored; error texts are scrubbed of it;
//! - every request waits for its slot in the per-route throttle ([`super::throttle`]), which
//!   keeps each route under Spot's advertised limit.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::OsRng;
use rand::seq::SliceRandom;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use url::Url;

use crate::config::{HttpSettings, SpotSettings};
use crate::error::{Api, Error};
use crate::http::{from_json_object, AuthScheme, Call, HttpClient, Observer, Retry};
use crate::model::{
    Email, NewSpotUser, PolicyGrant, SpotDirectory, SpotPolicy, SpotUser, SpotUserId, SpotUserKind,
    SpotUsers,
};
use crate::spot::access::{parse_user_details, SpotUserDetails, UserLookup};
use crate::spot::throttle::SpotThrottle;

pub const ROUTE_ORG_USERS: &str = "/setup/organization/user";
pub const ROUTE_ACCOUNTS: &str = "/setup/account";
pub const ROUTE_POLICIES: &str = "/setup/organization/policy";
pub const ROUTE_CREATE_USER: &str = "/setup/user";
pub const ROUTE_USER: &str = "/setup/user/{userId}";
pub const ROUTE_POLICY_MAPPING: &str = "/setup/user/{userId}/policyMapping";

/// What `check` learnt about the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpotCheckInfo {
    pub personal_users: usize,
    pub programmatic_users: usize,
    pub unknown_users: usize,
}

/// Talks to the Spot organization API.
#[derive(Debug)]
pub struct SpotClient {
    http: HttpClient,
    base: Url,
    writes: AtomicU64,
}

/// True when `err` is Spot's "user already exists" answer to a create (a 400 or 409 whose
/// error code contains `ALREADY_EXIST` or `EXISTS`).
pub fn is_already_exists(err: &Error) -> bool {
    match err {
        Error::Status {
            status: 400 | 409,
            code: Some(code),
            ..
        } => {
            let code = code.to_ascii_uppercase();
            code.contains("ALREADY_EXIST") || code.contains("EXISTS")
        }
        _ => false,
    }
}

/// True when `err` says the user does not exist (400 or 404 with a code like
/// `USER_DOESNT_EXIST`, `USER_NOT_FOUND`, `USER_DOES_NOT_EXIST`).
pub fn is_not_found(err: &Error) -> bool {
    match err {
        Error::Status {
            status: 400 | 404,
            code: Some(code),
            ..
        } => {
            let code = code.to_ascii_uppercase();
            ["DOESNT_EXIST", "DOES_NOT_EXIST", "NOT_EXIST", "NOT_FOUND"]
                .iter()
                .any(|needle| code.contains(needle))
        }
        _ => false,
    }
}

impl SpotClient {
    pub fn new(settings: &SpotSettings, http: &HttpSettings) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let client = HttpClient::new(
            Api::Spot,
            &settings.base_url,
            AuthScheme::Bearer,
            settings.token.clone(),
            http,
            headers,
        )?
        // Paces every route under Spot's advertised limit (`spot::throttle`).
        .with_pacer(std::sync::Arc::new(SpotThrottle::new()));
        Ok(SpotClient {
            http: client,
            base: settings.base_url.clone(),
            writes: AtomicU64::new(0),
        })
    }

    /// Installs a per-request observer (metrics).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.http = self.http.with_observer(observer);
        self
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.http.requests_sent()
    }

    /// Write calls (create, delete, mapping) started so far.
    pub fn writes_started(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(segments);
        }
        url
    }

    /// `GET route`, each item of `response.items` turned into a `T` by `parse(index, item)`.
    /// Items are borrowed from the body, never copied: the user list of a large organization
    /// is tens of megabytes.
    async fn get_items<T: Send + 'static>(
        &self,
        route: &'static str,
        segments: &[&str],
        parse: impl Fn(usize, &RawValue) -> Result<T, Error> + Send + 'static,
    ) -> Result<Vec<T>, Error> {
        let url = self.url(segments);
        let what = format!("GET {route}");
        let call = Call {
            what: &what,
            route,
            retry: Retry::Auto,
        };
        let response = self.http.send(call, |c| c.get(url.clone())).await?;
        let body = response.body;
        let parse_all = move || -> Result<Vec<T>, Error> {
            let items = envelope_items(&body, &what)?.ok_or_else(|| Error::Malformed {
                api: Api::Spot,
                what,
                detail: "response.items is missing".into(),
            })?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, raw)| parse(i, raw))
                .collect()
        };
        crate::http::parse_off_worker(parse_all).await
    }

    /// `GET /setup/organization/user`.
    pub async fn fetch_users(&self) -> Result<Vec<SpotUser>, Error> {
        self.get_items(
            ROUTE_ORG_USERS,
            &["setup", "organization", "user"],
            |i, raw| {
                parse_user(raw).map_err(|detail| Error::Malformed {
                    api: Api::Spot,
                    what: format!("GET {ROUTE_ORG_USERS}"),
                    detail: format!("item {i}: {detail}"),
                })
            },
        )
        .await
    }

    /// Counts the organization's users by kind (the `check` command warns at ≤ 1 personal).
    pub async fn check(&self) -> Result<SpotCheckInfo, Error> {
        let users = self.fetch_users().await?;
        let mut info = SpotCheckInfo {
            personal_users: 0,
            programmatic_users: 0,
            unknown_users: 0,
        };
        for user in &users {
            match user.kind {
                SpotUserKind::Personal if user.is_personal() => info.personal_users += 1,
                SpotUserKind::Programmatic => info.programmatic_users += 1,
                _ => info.unknown_users += 1,
            }
        }
        Ok(info)
    }

    async fn create(&self, user: &NewSpotUser) -> Result<String, Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct CreateBody<'a> {
            email: &'a str,
            first_name: &'a str,
            last_name: &'a str,
            password: &'a str,
            role: &'a str,
        }
        let password = generate_password();
        let body = serde_json::to_vec(&CreateBody {
            email: &user.email,
            first_name: &user.first_name,
            last_name: &user.last_name,
            password: password.expose_secret(),
            role: &user.spot_role,
        })
        .map_err(|e| Error::Config(format!("cannot encode the create-user body: {e}")))?;
        let body = secrecy::SecretBox::new(Box::new(body));
        let url = self.url(&["setup", "user"]);
        let what = format!("POST {ROUTE_CREATE_USER}");
        // Retry::Auto on a POST: retried only on 429 (see the module documentation).
        let call = Call {
            what: &what,
            route: ROUTE_CREATE_USER,
            retry: Retry::Auto,
        };
        self.writes.fetch_add(1, Ordering::Relaxed);
        let result = self
            .http
            .send(call, |c| {
                c.post(url.clone()).body(body.expose_secret().clone())
            })
            .await;
        let response = result.map_err(|e| scrub(e, password.expose_secret()))?;
        let items = envelope_items(&response.body, &what)?.unwrap_or_default();
        let first = items.first().ok_or_else(|| Error::Malformed {
            api: Api::Spot,
            what: what.clone(),
            detail: "response.items is empty; the created user's id is unknown".into(),
        })?;
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "userId", default)]
            user_id: Option<serde_json::Value>,
        }
        let created: Created = from_json_object(first.get()).map_err(|_| Error::Malformed {
            api: Api::Spot,
            what: what.clone(),
            detail: "response.items[0] is not an object".into(),
        })?;
        match created.user_id {
            Some(serde_json::Value::String(id)) if !id.trim().is_empty() => Ok(id),
            _ => Err(Error::Malformed {
                api: Api::Spot,
                what,
                detail: "response.items[0].userId is missing or not a string".into(),
            }),
        }
    }

    async fn delete(&self, user_id: &str) -> Result<(), Error> {
        refuse_programmatic(user_id, "delete")?;
        let url = self.url(&["setup", "user", user_id]);
        let what = format!("DELETE /setup/user/{user_id}");
        let call = Call {
            what: &what,
            route: ROUTE_USER,
            retry: Retry::Auto,
        };
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.http.send(call, |c| c.delete(url.clone())).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => {
                tracing::debug!(user_id, "Spot user already gone");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /setup/user/{userId}`: the user's organization role and direct policy mappings
    /// ([`super::access`]). Retried like every read (429 after `X-RateLimit-Reset`, 5xx and
    /// transport failures up to `http.max_retries`), paced on its own route. "The user does not
    /// exist" is [`UserLookup::Gone`], never an `Err`: a 400 or 404 with a not-found-like code
    /// ([`is_not_found`]), a 404 with no code, or a 200 with no item. A 404 with any other code
    /// (a wrong base URL, a proxy) stays an error.
    async fn user_details(&self, user_id: &str) -> Result<UserLookup, Error> {
        let id = user_id.trim();
        if id.is_empty() {
            return Err(Error::Config(
                "refusing to read the details of a Spot user with an empty id".into(),
            ));
        }
        let url = self.url(&["setup", "user", id]);
        let what = format!("GET /setup/user/{id}");
        let call = Call {
            what: &what,
            route: ROUTE_USER,
            retry: Retry::Auto,
        };
        let response = match self.http.send(call, |c| c.get(url.clone())).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) || is_bare_404(&e) => {
                tracing::debug!(user_id = id, "Spot says the user does not exist");
                return Ok(UserLookup::Gone);
            }
            Err(e) => return Err(e),
        };
        let items = envelope_items(&response.body, &what)?.unwrap_or_default();
        parse_user_details(id, &items, &what)
    }

    async fn policy_mapping(&self, user_id: &str, grants: &[PolicyGrant]) -> Result<(), Error> {
        refuse_programmatic(user_id, "change the policies of")?;
        #[derive(Serialize)]
        struct Body<'a> {
            policies: &'a [PolicyGrant],
        }
        let body = serde_json::to_vec(&Body { policies: grants })
            .map_err(|e| Error::Config(format!("cannot encode the policy mapping: {e}")))?;
        let url = self.url(&["setup", "user", user_id, "policyMapping"]);
        let what = format!("PUT /setup/user/{user_id}/policyMapping");
        let call = Call {
            what: &what,
            route: ROUTE_POLICY_MAPPING,
            retry: Retry::Auto,
        };
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.http
            .send(call, |c| c.put(url.clone()).body(body.clone()))
            .await?;
        Ok(())
    }
}

impl SpotDirectory for SpotClient {
    async fn list_users(&self) -> Result<SpotUsers, Error> {
        let users = SpotUsers::distinct(self.fetch_users().await?);
        if !users.repeated().is_empty() {
            tracing::warn!(
                repeated = users.repeated().len(),
                spot_user_ids = %users.repeated().join(","),
                "Spot listed {} user id(s) more than once; each is counted once",
                users.repeated().len()
            );
        }
        Ok(users)
    }

    async fn list_account_ids(&self) -> Result<Vec<String>, Error> {
        #[derive(Deserialize)]
        struct Account {
            #[serde(rename = "accountId", default)]
            account_id: Option<serde_json::Value>,
        }
        self.get_items(
            ROUTE_ACCOUNTS,
            &["setup", "account"],
            |i, raw| match from_json_object::<Account>(raw.get()) {
                Ok(Account {
                    account_id: Some(serde_json::Value::String(id)),
                }) if !id.trim().is_empty() => Ok(id),
                _ => Err(Error::Malformed {
                    api: Api::Spot,
                    what: format!("GET {ROUTE_ACCOUNTS}"),
                    detail: format!("item {i} has no accountId string"),
                }),
            },
        )
        .await
    }

    async fn list_policies(&self) -> Result<Vec<SpotPolicy>, Error> {
        #[derive(Deserialize)]
        struct Policy {
            #[serde(default)]
            id: Option<serde_json::Value>,
            #[serde(default)]
            name: Option<serde_json::Value>,
        }
        self.get_items(
            ROUTE_POLICIES,
            &["setup", "organization", "policy"],
            |i, raw| {
                let bad = |detail: &str| Error::Malformed {
                    api: Api::Spot,
                    what: format!("GET {ROUTE_POLICIES}"),
                    detail: format!("item {i}: {detail}"),
                };
                let policy: Policy =
                    from_json_object(raw.get()).map_err(|_| bad("not an object"))?;
                let id = match policy.id {
                    Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => return Err(bad("no policy id (string or number)")),
                };
                let name = match policy.name {
                    Some(serde_json::Value::String(s)) => s,
                    _ => String::new(),
                };
                Ok(SpotPolicy { id, name })
            },
        )
        .await
    }

    async fn create_user(&self, user: &NewSpotUser) -> Result<SpotUserId, Error> {
        self.create(user).await.map(SpotUserId::new)
    }

    async fn delete_user(&self, user_id: &SpotUserId) -> Result<(), Error> {
        self.delete(user_id).await
    }

    /// `PUT /setup/user/{userId}/policyMapping` with `grants` as the body's `policies`.
    /// **The PUT replaces the user's whole set of direct policies**: a grant not in `grants` is
    /// removed. This method sends `grants` as given (an `accountIds` of `["*"]` included) and
    /// never computes a union; a caller that must keep what the user has reads it first
    /// ([`SpotUserDetails::get_user_details`]) and passes the union. Refused without a request
    /// for a programmatic (`pu-…`) or empty id. Retried like other writes to an idempotent
    /// method (429, 5xx, transport); an unknown user is an `Err` ([`is_not_found`] says so).
    async fn set_policy_mapping(
        &self,
        user_id: &SpotUserId,
        grants: &[PolicyGrant],
    ) -> Result<(), Error> {
        self.policy_mapping(user_id, grants).await
    }
}

impl SpotUserDetails for SpotClient {
    async fn get_user_details(&self, user_id: &SpotUserId) -> Result<UserLookup, Error> {
        self.user_details(user_id).await
    }
}

/// A 404 without an API error code: read as "no such user" on `GET /setup/user/{userId}`.
fn is_bare_404(err: &Error) -> bool {
    matches!(
        err,
        Error::Status {
            status: 404,
            code: None,
            ..
        }
    )
}

fn refuse_programmatic(user_id: &str, verb: &str) -> Result<(), Error> {
    let id = user_id.trim();
    if id.is_empty() {
        return Err(Error::Config(format!(
            "refusing to {verb} a Spot user with an empty id"
        )));
    }
    if id.to_ascii_lowercase().starts_with("pu-") {
        return Err(Error::Config(format!(
            "refusing to {verb} programmatic user {id}: programmatic Spot users are never touched"
        )));
    }
    Ok(())
}

/// Removes the password from an error's texts, should the API have echoed it.
fn scrub(err: Error, secret: &str) -> Error {
    let clean = |s: String| {
        if !secret.is_empty() && s.contains(secret) {
            s.replace(secret, "[redacted]")
        } else {
            s
        }
    };
    match err {
        Error::Status {
            api,
            what,
            status,
            code,
            detail,
        } => Error::Status {
            api,
            what,
            status,
            code: code.map(clean),
            detail: clean(detail),
        },
        Error::Credentials {
            api,
            what,
            status,
            detail,
        } => Error::Credentials {
            api,
            what,
            status,
            detail: clean(detail),
        },
        Error::Transport { api, what, detail } => Error::Transport {
            api,
            what,
            detail: clean(detail),
        },
        Error::Malformed { api, what, detail } => Error::Malformed {
            api,
            what,
            detail: clean(detail),
        },
        other => other,
    }
}

/// `response.items` of a 2xx envelope: `Ok(None)` when `items` is absent, an error when the
/// body is not JSON, has no `response` object, or `items` is not an array.
fn envelope_items<'a>(body: &'a [u8], what: &str) -> Result<Option<Vec<&'a RawValue>>, Error> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow, default)]
        response: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Inner<'a> {
        #[serde(borrow, default)]
        items: Option<&'a RawValue>,
    }
    let bad = |detail: String| Error::Malformed {
        api: Api::Spot,
        what: what.to_string(),
        detail,
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not valid UTF-8".into()))?;
    let envelope: Envelope =
        from_json_object(text).map_err(|e| bad(format!("the body is not a JSON object: {e}")))?;
    let inner = envelope
        .response
        .filter(|r| r.get() != "null")
        .ok_or_else(|| bad("the envelope has no \"response\"".into()))?;
    let inner: Inner =
        from_json_object(inner.get()).map_err(|_| bad("\"response\" is not an object".into()))?;
    match inner.items {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str::<Vec<&RawValue>>(raw.get())
            .map(Some)
            .map_err(|_| bad("response.items is not an array".into())),
    }
}

/// Parses a whole `GET /setup/organization/user` response body: the envelope, then every
/// item. Public so the parser can be fuzzed; never panics, whatever the bytes.
pub fn parse_user_list(body: &[u8]) -> Result<Vec<SpotUser>, Error> {
    let what = format!("GET {ROUTE_ORG_USERS}");
    let items = envelope_items(body, &what)?.ok_or_else(|| Error::Malformed {
        api: Api::Spot,
        what,
        detail: "response.items is missing".into(),
    })?;
    parse_user_items(&items)
}

fn parse_user_items(items: &[&RawValue]) -> Result<Vec<SpotUser>, Error> {
    items
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            parse_user(raw).map_err(|detail| Error::Malformed {
                api: Api::Spot,
                what: format!("GET {ROUTE_ORG_USERS}"),
                detail: format!("item {i}: {detail}"),
            })
        })
        .collect()
}

/// One item of `GET /setup/organization/user`; `Err` only when it has no `userId`.
fn parse_user(raw: &RawValue) -> Result<SpotUser, String> {
    #[derive(Deserialize)]
    struct Item {
        #[serde(rename = "userId", default)]
        user_id: Option<serde_json::Value>,
        #[serde(default)]
        email: Option<serde_json::Value>,
        #[serde(default)]
        username: Option<serde_json::Value>,
        #[serde(rename = "userName", default)]
        user_name: Option<serde_json::Value>,
        #[serde(rename = "type", default)]
        kind: Option<serde_json::Value>,
        // `mfa`, `groupNames` and anything else: ignored, whatever their type.
    }
    let item: Item = from_json_object(raw.get()).map_err(|_| "not a JSON object".to_string())?;
    let user_id = match item.user_id {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
        Some(serde_json::Value::String(_)) => return Err("empty userId".into()),
        Some(_) => return Err("userId is not a string".into()),
        None => return Err("no userId".into()),
    };
    let as_string = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    let email = as_string(item.email).and_then(|e| Email::parse(&e));
    let username = as_string(item.username)
        .or_else(|| as_string(item.user_name))
        .unwrap_or_default();
    let kind_present = !matches!(item.kind, None | Some(serde_json::Value::Null));
    let kind = user_kind(&user_id, as_string(item.kind).as_deref(), kind_present);
    Ok(SpotUser {
        user_id: SpotUserId::new(user_id),
        email,
        username,
        kind,
    })
}

/// Decides the user's kind; the rule is in the module documentation.
pub(crate) fn user_kind(user_id: &str, kind: Option<&str>, present: bool) -> SpotUserKind {
    let id = user_id.trim().to_ascii_lowercase();
    if id.starts_with("pu-") {
        return SpotUserKind::Programmatic;
    }
    match kind.map(|k| k.trim().to_ascii_lowercase()).as_deref() {
        Some("personal") => SpotUserKind::Personal,
        Some("programmatic") => SpotUserKind::Programmatic,
        _ if !present && id.starts_with("u-") => SpotUserKind::Personal,
        _ => SpotUserKind::Unknown,
    }
}

/// The characters a generated password is made of. The special set leaves out `+ = @` (Spot
/// rejects them in names; kept out of passwords too, just in case), quotes and backslash.
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGIT: &[u8] = b"23456789";
const SPECIAL: &[u8] = b"!#$%*-_.?~^";
/// Length of a generated password.
pub const PASSWORD_LEN: usize = 24;

/// A random password from the OS CSPRNG: [`PASSWORD_LEN`] characters with at least one
/// upper-case letter, lower-case letter, digit and special character.
pub fn generate_password() -> SecretString {
    let mut rng = OsRng;
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SPECIAL].concat();
    let mut chars: Vec<u8> = Vec::with_capacity(PASSWORD_LEN);
    for class in [UPPER, LOWER, DIGIT, SPECIAL] {
        chars.push(class[rng.gen_range(0..class.len())]);
    }
    while chars.len() < PASSWORD_LEN {
        chars.push(all[rng.gen_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    let password: String = chars.iter().map(|&b| b as char).collect();
    secrecy::zeroize::Zeroize::zeroize(&mut chars);
    SecretString::from(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: &str) -> Result<SpotUser, String> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        parse_user(&raw)
    }

    #[test]
    fn spec_example_items_parse() {
        let a = user(r#"{"userId": "u-a1b2c3d4", "username": "John Doe", "type": "personal", "email": "John.Doe@company.com", "mfa": "false", "groupNames": ["Developers", "DevOps"]}"#).unwrap();
        assert_eq!(a.user_id, "u-a1b2c3d4");
        assert_eq!(a.email.unwrap().as_str(), "john.doe@company.com");
        assert_eq!(a.username, "John Doe");
        assert_eq!(a.kind, SpotUserKind::Personal);
        let b = user(r#"{"userId": "u-4d3c2b1a", "userName": "Jane Doe", "type": "personal", "email": "jane.doe@company.com", "mfa": true}"#).unwrap();
        assert_eq!(b.username, "Jane Doe");
    }

    #[test]
    fn kinds_follow_the_documented_rule() {
        assert_eq!(
            user_kind("pu-1", Some("personal"), true),
            SpotUserKind::Programmatic
        );
        assert_eq!(user_kind("pu-1", None, false), SpotUserKind::Programmatic);
        assert_eq!(user_kind("u-1", None, false), SpotUserKind::Personal);
        assert_eq!(user_kind("u-1", Some("robot"), true), SpotUserKind::Unknown);
        assert_eq!(user_kind("u-1", None, true), SpotUserKind::Unknown); // e.g. type: 5
        assert_eq!(user_kind("x-1", None, false), SpotUserKind::Unknown);
        assert_eq!(
            user_kind("u-1", Some("PROGRAMMATIC"), true),
            SpotUserKind::Programmatic
        );
    }

    #[test]
    fn odd_fields_do_not_fail() {
        let u =
            user(r#"{"userId":"u-1","email":"not an email","mfa":{"x":1},"type":7,"username":5}"#)
                .unwrap();
        assert_eq!(u.email, None);
        assert_eq!(u.username, "");
        assert_eq!(u.kind, SpotUserKind::Unknown);
        assert_eq!(user(r#"{"email":"a@b.co"}"#).unwrap_err(), "no userId");
        assert_eq!(
            user(r#"{"userId":9}"#).unwrap_err(),
            "userId is not a string"
        );
        assert_eq!(user("[]").unwrap_err(), "not a JSON object");
    }

    #[test]
    fn passwords_are_strong_and_safe() {
        for _ in 0..200 {
            let p = generate_password();
            let p = p.expose_secret();
            assert_eq!(p.len(), PASSWORD_LEN);
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()));
            assert!(p.bytes().any(|b| b.is_ascii_digit()));
            assert!(p.bytes().any(|b| SPECIAL.contains(&b)));
            assert!(!p.contains(['+', '=', '@', '"', '\\', '\'']));
        }
        assert_ne!(
            generate_password().expose_secret(),
            generate_password().expose_secret()
        );
    }

    #[test]
    fn error_predicates() {
        let status = |status: u16, code: &str| Error::Status {
            api: Api::Spot,
            what: "x".into(),
            status,
            code: Some(code.into()),
            detail: String::new(),
        };
        assert!(is_already_exists(&status(400, "USER_ALREADY_EXISTS")));
        assert!(is_already_exists(&status(409, "EMAIL_EXISTS")));
        assert!(!is_already_exists(&status(500, "USER_ALREADY_EXISTS")));
        assert!(is_not_found(&status(400, "USER_DOESNT_EXIST")));
        assert!(is_not_found(&status(404, "NOT_FOUND")));
        assert!(!is_not_found(&status(400, "BAD_REQUEST")));
    }
}
