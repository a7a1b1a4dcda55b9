//! What a Spot user can see: the types of `GET /setup/user/{userId}` (organization role and
//! direct policy mappings), the "gone" outcome of that read, the [`SpotUserDetails`] trait the
//! access planner reads through, and the strict parsing of one detail item.
//!
//! This module owns the shape of a user's access as read, nothing more. It must never decide
//! what a user *should* have, never compute a union of grants (the caller does: a
//! `PUT …/policyMapping` replaces the user's whole set, so what is written must include what
//! the user has), and never expand `"*"` (an account id list holding [`ALL_ACCOUNTS`] covers
//! every account, present and future, and is kept as read so it can be written back as is).
//!
//! Parsing is strict where a lenient reading could remove access: a missing or non-array
//! `policies`, a policy without an id, or `accountIds` that is missing or not a list of
//! strings is [`Error::Malformed`], never "no policies" — a union computed against a list that
//! was not really read would drop real grants when written back.

use std::future::Future;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Api, Error};
use crate::http::from_json_object;
use crate::model::{Email, PolicyGrant, SpotUserId, SpotUserKind};

/// The `accountIds` entry meaning "all current accounts and any accounts created in the
/// future" (Spot's OpenAPI, `updatePolicyMapping.yaml`; docs/api-facts.md "Spot access").
pub const ALL_ACCOUNTS: &str = "*";

/// One direct policy mapping of a user, as `GET /setup/user/{userId}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicy {
    pub policy_id: String,
    /// As read: explicit `act-…` ids, or a list holding [`ALL_ACCOUNTS`]. Empty for an
    /// organization-level policy.
    pub account_ids: Vec<String>,
    /// `policyName`, when the answer had one (informational).
    pub policy_name: Option<String>,
    /// `policyType` (`ACCOUNT`, `ORGANIZATION`, …), when the answer had one (informational).
    pub policy_type: Option<String>,
}

impl UserPolicy {
    /// Does the mapping hold `"*"` (every account, those added later included)?
    pub fn covers_all_accounts(&self) -> bool {
        self.account_ids.iter().any(|a| a == ALL_ACCOUNTS)
    }

    /// Does the mapping cover `account_id`, explicitly or through `"*"`?
    pub fn covers(&self, account_id: &str) -> bool {
        self.covers_all_accounts() || self.account_ids.iter().any(|a| a == account_id)
    }

    /// The mapping as a `PUT …/policyMapping` entry, exactly as read.
    pub fn to_grant(&self) -> PolicyGrant {
        PolicyGrant {
            policy_id: self.policy_id.clone(),
            account_ids: self.account_ids.clone(),
        }
    }
}

/// A user's access as `GET /setup/user/{userId}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    pub user_id: SpotUserId,
    /// `email`, parsed as [`Email`] (trimmed, ASCII case folded); `None` when absent or invalid.
    pub email: Option<Email>,
    /// Decided as for the user list (`type`, then the id prefix).
    pub kind: SpotUserKind,
    /// The organization role (`viewer`, `editor`, `admin`, …), trimmed, as sent (not case
    /// folded). `None` when the answer carries no `role` string: the OpenAPI schema of this
    /// response does not list it (only the Go SDK's `User` type has it), so a caller must treat
    /// `None` as "unknown", never as "differs".
    pub role: Option<String>,
    /// Direct policy mappings, in the order read. Group-inherited policies are not here.
    pub policies: Vec<UserPolicy>,
}

impl UserDetails {
    /// The mappings as `PUT …/policyMapping` entries, exactly as read: the starting point of a
    /// union (the caller adds what is missing and writes the whole list).
    pub fn grants(&self) -> Vec<PolicyGrant> {
        self.policies.iter().map(UserPolicy::to_grant).collect()
    }

    /// The user's mappings of one policy (Spot may list a policy more than once).
    pub fn policy<'a>(&'a self, policy_id: &'a str) -> impl Iterator<Item = &'a UserPolicy> + 'a {
        self.policies
            .iter()
            .filter(move |p| p.policy_id == policy_id)
    }
}

/// The outcome of reading a user's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLookup {
    Found(UserDetails),
    /// Spot says the user does not exist: a 400 or 404 with a not-found-like error code, a 404
    /// with no code, or a 200 with no item (docs/api-facts.md "Spot access"). A hint only: the
    /// complete user list decides whether an owned user is gone.
    Gone,
}

/// Reads one user's access. Implemented by the HTTP client and the test fake.
pub trait SpotUserDetails: Send + Sync {
    /// `GET /setup/user/{userId}`: role and direct policies, or [`UserLookup::Gone`]. Any
    /// other failure (transport, 5xx after retries, 401/403, a malformed answer) is an `Err`.
    fn get_user_details(
        &self,
        user_id: &SpotUserId,
    ) -> impl Future<Output = Result<UserLookup, Error>> + Send;
}

/// Parses the items of a `GET /setup/user/{userId}` answer for `user_id`. No item is
/// [`UserLookup::Gone`]; an item for another user id, or a second item, is malformed (never
/// read as someone else's access). Public so the parser can be fuzzed; never panics.
pub fn parse_user_details(
    user_id: &str,
    items: &[&RawValue],
    what: &str,
) -> Result<UserLookup, Error> {
    let bad = |detail: String| Error::Malformed {
        api: Api::Spot,
        what: what.to_string(),
        detail,
    };
    let first = match items {
        [] => return Ok(UserLookup::Gone),
        [one] => one,
        _ => {
            return Err(bad(format!(
                "{} items for one user; expected one",
                items.len()
            )))
        }
    };
    parse_item(first.get(), user_id)
        .map(UserLookup::Found)
        .map_err(|detail| bad(format!("item 0: {detail}")))
}

fn parse_item(text: &str, wanted: &str) -> Result<UserDetails, String> {
    #[derive(Deserialize)]
    struct Item {
        #[serde(rename = "userId", default)]
        user_id: Option<serde_json::Value>,
        #[serde(default)]
        email: Option<serde_json::Value>,
        #[serde(rename = "type", default)]
        kind: Option<serde_json::Value>,
        #[serde(default)]
        role: Option<serde_json::Value>,
        #[serde(default)]
        policies: Option<serde_json::Value>,
        // `username`, `mfa`, `groups`, `tokens` and anything else: ignored.
    }
    let item: Item = from_json_object(text).map_err(|_| "not a JSON object".to_string())?;
    let user_id = match item.user_id {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
        _ => return Err("no userId string".into()),
    };
    if user_id.trim() != wanted.trim() {
        return Err(format!("userId {user_id:?} is not the user asked for"));
    }
    let string = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    let email = string(item.email).and_then(|e| Email::parse(&e));
    let kind_present = !matches!(item.kind, None | Some(serde_json::Value::Null));
    let kind = super::client::user_kind(&user_id, string(item.kind).as_deref(), kind_present);
    let role = string(item.role)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    let policies = match item.policies {
        Some(serde_json::Value::Array(list)) => list
            .into_iter()
            .enumerate()
            .map(|(i, p)| parse_policy(p).map_err(|e| format!("policies[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(serde_json::Value::Null) => {
            return Err("no policies list: the user's access is unknown".into())
        }
        Some(_) => return Err("policies is not a list".into()),
    };
    Ok(UserDetails {
        user_id: SpotUserId::new(user_id),
        email,
        kind,
        role,
        policies,
    })
}

fn parse_policy(v: serde_json::Value) -> Result<UserPolicy, String> {
    let serde_json::Value::Object(mut o) = v else {
        return Err("not an object".into());
    };
    let policy_id = match o.remove("policyId") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
        // Built-in policies have numeric-string ids; a bare number is read as its digits.
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("no policyId".into()),
    };
    let account_ids = match o.remove("accountIds") {
        Some(serde_json::Value::Array(a)) => a
            .into_iter()
            .map(|x| match x {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(format!("policy {policy_id}: accountIds holds a non-string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(format!(
                "policy {policy_id}: accountIds is missing or not a list"
            ))
        }
    };
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(UserPolicy {
        policy_id,
        account_ids,
        policy_name: text(o.remove("policyName")),
        policy_type: text(o.remove("policyType")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(item: &str) -> Result<UserLookup, Error> {
        let raw: Box<RawValue> = serde_json::from_str(item).unwrap();
        parse_user_details("u-a1b2c3d4", &[&raw], "GET /setup/user/u-a1b2c3d4")
    }

    fn found(item: &str) -> UserDetails {
        match parse(item).unwrap() {
            UserLookup::Found(d) => d,
            UserLookup::Gone => panic!("gone"),
        }
    }

    #[test]
    fn the_reference_example_parses() {
        let d = found(
            r#"{"userId": "u-a1b2c3d4", "username": "John Doe", "type": "personal", "email": "john.doe@company.com", "mfa": "false",
                "groups": [{"id": "ugr-12345678", "name": "DevOps", "policyNames": ["DevOps-PROD"]}],
                "policies": [{"policyId": "pol-12345678", "policyName": "TriggerDeployment", "policyType": "ACCOUNT", "accountIds": ["act-12345678", "act-87654321"]},
                             {"policyId": "pol-87654321", "policyName": "UpdateScheduling", "policyType": "ORGANIZATION", "accountIds": []}],
                "tokens": [{"name": "t", "createdAt": "2020-06-01T12:17:51.000+000", "tokenId": 11111, "tokenLastDigits": "2323"}]}"#,
        );
        assert_eq!(d.kind, SpotUserKind::Personal);
        assert_eq!(d.email.unwrap().as_str(), "john.doe@company.com");
        assert_eq!(d.role, None, "the OAS example has no role");
        assert_eq!(d.policies.len(), 2);
        assert_eq!(d.policies[0].account_ids, ["act-12345678", "act-87654321"]);
        assert_eq!(d.policies[1].policy_type.as_deref(), Some("ORGANIZATION"));
        assert!(d.policies[0].covers("act-87654321"));
        assert!(!d.policies[0].covers("act-00000000"));
    }

    #[test]
    fn star_covers_every_account_and_is_kept_as_read() {
        let d = found(
            r#"{"userId":"u-a1b2c3d4","role":" viewer ","policies":[{"policyId":3,"accountIds":["*"]}]}"#,
        );
        assert_eq!(d.role.as_deref(), Some("viewer"));
        assert!(d.policies[0].covers_all_accounts());
        assert!(d.policies[0].covers("act-added-later"));
        assert_eq!(
            d.grants(),
            [PolicyGrant {
                policy_id: "3".into(),
                account_ids: vec!["*".into()]
            }]
        );
        assert_eq!(d.policy("3").count(), 1);
    }

    #[test]
    fn what_could_drop_grants_is_malformed() {
        for item in [
            r#"{"userId":"u-a1b2c3d4"}"#,
            r#"{"userId":"u-a1b2c3d4","policies":null}"#,
            r#"{"userId":"u-a1b2c3d4","policies":{}}"#,
            r#"{"userId":"u-a1b2c3d4","policies":[{"accountIds":[]}]}"#,
            r#"{"userId":"u-a1b2c3d4","policies":[{"policyId":"3"}]}"#,
            r#"{"userId":"u-a1b2c3d4","policies":[{"policyId":"3","accountIds":"*"}]}"#,
            r#"{"userId":"u-a1b2c3d4","policies":[{"policyId":"3","accountIds":[7]}]}"#,
            r#"{"userId":"u-00000000","policies":[]}"#,
            r#"{"policies":[]}"#,
            r#"[]"#,
        ] {
            let err = parse(item).unwrap_err();
            assert!(matches!(err, Error::Malformed { .. }), "{item}: {err:?}");
        }
    }

    #[test]
    fn no_item_is_gone_and_two_items_are_malformed() {
        assert_eq!(
            parse_user_details("u-1", &[], "GET x").unwrap(),
            UserLookup::Gone
        );
        let raw: Box<RawValue> = serde_json::from_str(r#"{"userId":"u-1","policies":[]}"#).unwrap();
        assert!(parse_user_details("u-1", &[&raw, &raw], "GET x").is_err());
        // Odd optional fields are ignored, whatever their type.
        let d = found(r#"{"userId":"u-a1b2c3d4","role":5,"email":7,"type":"robot","policies":[]}"#);
        assert_eq!(d.role, None);
        assert_eq!(d.email, None);
        assert_eq!(d.kind, SpotUserKind::Unknown);
    }
}
