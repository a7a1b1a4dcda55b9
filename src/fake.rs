//! In-memory stand-ins for the two APIs, for unit and property tests of the apply path and for
//! the planner benchmark. They keep the rules that matter to the reconciler (unique emails,
//! programmatic users, delete of a missing user, a policy mapping replacing the set, details
//! of a missing user being "gone") and nothing else.
//!
//! Compiled only for tests (`cfg(test)`, or the `testing` feature that this package's own
//! tests and benches turn on), never into the binary; the HTTP emulators of the `okta-spot-sim`
//! crate are the faithful ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::Api;
use crate::model::{
    AppUserRow, Email, IdentitySource, NewSpotUser, PolicyGrant, SpotDirectory, SpotPolicy,
    SpotUser, SpotUserId, SpotUserKind, SpotUsers,
};
use crate::spot::access::{SpotUserDetails, UserDetails, UserLookup, UserPolicy};
use crate::Error;

/// A fake Okta app: returns the rows it was given.
#[derive(Debug, Default)]
pub struct FakeIdentitySource {
    pub rows: Mutex<Vec<AppUserRow>>,
    pub fail: Mutex<Option<String>>,
}

impl IdentitySource for FakeIdentitySource {
    async fn read_assignments(&self) -> Result<Vec<AppUserRow>, Error> {
        if let Some(why) = self.fail.lock().unwrap().clone() {
            return Err(Error::IncompleteRead(why));
        }
        Ok(self.rows.lock().unwrap().clone())
    }
}

/// A Spot user as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSpotUser {
    pub user: SpotUser,
    pub spot_role: String,
    pub policies: Vec<PolicyGrant>,
}

/// A fake Spot organization.
#[derive(Debug)]
pub struct FakeSpotDirectory {
    pub users: Mutex<BTreeMap<String, FakeSpotUser>>,
    pub accounts: Vec<String>,
    pub policies: Vec<SpotPolicy>,
    next_id: AtomicU64,
    pub writes: AtomicU64,
    /// Emails whose create fails, to test partial failure.
    pub fail_create_for: Mutex<Vec<String>>,
    /// Scheduled failures by write-call number (1-based, all write kinds counted together).
    pub faults: Mutex<BTreeMap<u64, FakeFault>>,
    /// Every id a create answered with, in order.
    pub created_ids: Mutex<Vec<String>>,
    /// How many times the user list was read.
    pub lists: AtomicU64,
    /// How many times a user's details were read (`GET /setup/user/{userId}`).
    pub detail_reads: AtomicU64,
}

/// How a scheduled write failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeFault {
    /// Refused: nothing happened (a 5xx before the server acted).
    Refuse,
    /// The write happened but the answer was lost (a timeout or reset after the server acted).
    LandThenFail,
    /// Answered success, did nothing (a delete that leaves the user listed). A create so
    /// answered returns an id no user has.
    Ignore,
}

impl Default for FakeSpotDirectory {
    fn default() -> Self {
        FakeSpotDirectory {
            users: Mutex::new(BTreeMap::new()),
            accounts: vec!["act-00000001".into(), "act-00000002".into()],
            policies: vec![
                SpotPolicy {
                    id: "3".into(),
                    name: "Account Viewer".into(),
                },
                SpotPolicy {
                    id: "2".into(),
                    name: "Account Editor".into(),
                },
            ],
            next_id: AtomicU64::new(1),
            created_ids: Mutex::default(),
            lists: AtomicU64::new(0),
            detail_reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            fail_create_for: Mutex::new(Vec::new()),
            faults: Mutex::new(BTreeMap::new()),
        }
    }
}

impl FakeSpotDirectory {
    pub fn add(&self, user_id: &str, email: &str, kind: SpotUserKind) {
        self.users.lock().unwrap().insert(
            user_id.to_string(),
            FakeSpotUser {
                user: SpotUser {
                    user_id: SpotUserId::new(user_id),
                    email: Email::parse(email),
                    username: email.to_string(),
                    kind,
                },
                spot_role: "viewer".into(),
                policies: Vec::new(),
            },
        );
    }

    pub fn snapshot(&self) -> Vec<SpotUser> {
        self.users
            .lock()
            .unwrap()
            .values()
            .map(|u| u.user.clone())
            .collect()
    }

    pub fn get(&self, user_id: &str) -> Option<FakeSpotUser> {
        self.users.lock().unwrap().get(user_id).cloned()
    }

    fn create_now(&self, user: &NewSpotUser) -> Result<String, Error> {
        if self
            .fail_create_for
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.eq_ignore_ascii_case(&user.email))
        {
            return Err(Self::status(
                "POST /setup/user",
                "INTERNAL_ERROR",
                "injected failure",
            ));
        }
        let email = Email::parse(&user.email);
        let mut users = self.users.lock().unwrap();
        if users
            .values()
            .any(|u| u.user.is_personal() && u.user.email.is_some() && u.user.email == email)
        {
            return Err(Self::status(
                "POST /setup/user",
                "USER_ALREADY_EXISTS",
                "user already exists",
            ));
        }
        let id = loop {
            let candidate = format!("u-f{:07x}", self.next_id.fetch_add(1, Ordering::SeqCst));
            if !users.contains_key(&candidate) {
                break candidate;
            }
        };
        users.insert(
            id.clone(),
            FakeSpotUser {
                user: SpotUser {
                    user_id: SpotUserId::new(id.clone()),
                    email,
                    username: format!("{} {}", user.first_name, user.last_name),
                    kind: SpotUserKind::Personal,
                },
                spot_role: user.spot_role.clone(),
                policies: Vec::new(),
            },
        );
        Ok(id)
    }

    /// Counts a write and returns the fault scheduled for it, if any.
    fn next_fault(&self) -> Option<FakeFault> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        self.faults.lock().unwrap().get(&n).copied()
    }

    fn lost(what: &str) -> Error {
        Error::Transport {
            api: Api::Spot,
            what: what.into(),
            detail: "injected: connection reset".into(),
        }
    }

    /// Runs `write` unless the fault refuses it; reports a lost answer after it when asked;
    /// answers `ignored()` without writing for [`FakeFault::Ignore`].
    fn faulty<T>(
        &self,
        what: &str,
        ignored: impl FnOnce() -> T,
        write: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.next_fault() {
            Some(FakeFault::Ignore) => Ok(ignored()),
            Some(FakeFault::Refuse) => {
                Err(Self::status(what, "INTERNAL_ERROR", "injected failure"))
            }
            Some(FakeFault::LandThenFail) => {
                write()?;
                Err(Self::lost(what))
            }
            None => write(),
        }
    }

    fn status(what: &str, code: &str, detail: &str) -> Error {
        Error::Status {
            api: Api::Spot,
            what: what.into(),
            status: 400,
            code: Some(code.into()),
            detail: detail.into(),
        }
    }
}

impl SpotDirectory for FakeSpotDirectory {
    async fn list_users(&self) -> Result<SpotUsers, Error> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        Ok(SpotUsers::distinct(self.snapshot()))
    }

    async fn list_account_ids(&self) -> Result<Vec<String>, Error> {
        Ok(self.accounts.clone())
    }

    async fn list_policies(&self) -> Result<Vec<SpotPolicy>, Error> {
        Ok(self.policies.clone())
    }

    async fn create_user(&self, user: &NewSpotUser) -> Result<SpotUserId, Error> {
        let ignored = || format!("u-i{:07x}", self.next_id.fetch_add(1, Ordering::SeqCst));
        self.faulty("POST /setup/user", ignored, || {
            let id = self.create_now(user)?;
            self.created_ids.lock().unwrap().push(id.clone());
            Ok(id)
        })
        .map(SpotUserId::new)
    }

    async fn delete_user(&self, user_id: &SpotUserId) -> Result<(), Error> {
        self.faulty(
            "DELETE /setup/user/{userId}",
            || (),
            || {
                self.users.lock().unwrap().remove(user_id.as_str());
                Ok(())
            },
        )
    }

    async fn set_policy_mapping(
        &self,
        user_id: &SpotUserId,
        grants: &[PolicyGrant],
    ) -> Result<(), Error> {
        self.faulty(
            "PUT /setup/user/{userId}/policyMapping",
            || (),
            || match self.users.lock().unwrap().get_mut(user_id.as_str()) {
                Some(u) => {
                    u.policies = grants.to_vec();
                    Ok(())
                }
                None => Err(Self::status(
                    "PUT /setup/user/{userId}/policyMapping",
                    "USER_DOESNT_EXIST",
                    "no such user",
                )),
            },
        )
    }
}

/// Details as the HTTP client returns them: role, and the stored grants as read (`"*"` kept);
/// an unknown id is [`UserLookup::Gone`]. Not a write: no fault applies.
impl SpotUserDetails for FakeSpotDirectory {
    async fn get_user_details(&self, user_id: &SpotUserId) -> Result<UserLookup, Error> {
        self.detail_reads.fetch_add(1, Ordering::SeqCst);
        let Some(u) = self.get(user_id) else {
            return Ok(UserLookup::Gone);
        };
        Ok(UserLookup::Found(UserDetails {
            user_id: u.user.user_id.clone(),
            email: u.user.email.clone(),
            kind: u.user.kind,
            role: (u.user.kind == SpotUserKind::Personal).then(|| u.spot_role.clone()),
            policies: u
                .policies
                .iter()
                .map(|g| UserPolicy {
                    policy_id: g.policy_id.clone(),
                    account_ids: g.account_ids.clone(),
                    policy_name: self
                        .policies
                        .iter()
                        .find(|p| p.id == g.policy_id)
                        .map(|p| p.name.clone()),
                    policy_type: None,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn details_show_the_role_and_the_grants_as_written() {
        let spot = FakeSpotDirectory::default();
        spot.add("u-1", "a@example.com", SpotUserKind::Personal);
        let star = PolicyGrant {
            policy_id: "3".into(),
            account_ids: vec!["*".into()],
        };
        spot.set_policy_mapping(&"u-1".into(), std::slice::from_ref(&star))
            .await
            .unwrap();
        let UserLookup::Found(d) = spot.get_user_details(&"u-1".into()).await.unwrap() else {
            panic!("u-1 exists");
        };
        assert_eq!(d.role.as_deref(), Some("viewer"));
        assert_eq!(d.grants(), [star]);
        assert_eq!(d.policies[0].policy_name.as_deref(), Some("Account Viewer"));
        assert!(d.policies[0].covers("act-added-later"));
        assert_eq!(
            spot.get_user_details(&"u-2".into()).await.unwrap(),
            UserLookup::Gone
        );
        assert_eq!(spot.detail_reads.load(Ordering::SeqCst), 2);
    }
}
