//! The planner: from what Okta says should exist, what Spot has, and what the ledger owns, the
//! list of actions that brings Spot in line.
//!
//! Pure: no I/O, no clock, no randomness. Its output depends only on its inputs, never on their
//! order. It must never plan a write to a Spot user the ledger does not own (adoption only
//! records ownership), nor to a programmatic or protected user; `guard` re-checks this.
//!
//! It runs every cycle over every user (100,000 in production, 1,000,000 in the benchmark),
//! where each map over all users and each extra pass over them costs tens of milliseconds. So
//! it lines its inputs up by merging sorted lists (`Aligned`), and builds its email and owner
//! indexes only for the keys it can ask about, with a complete index as the fallback for any
//! other key (`ForecastIndex`): that forecast decides how fast the plan is, never what it is.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::access::ACCESS_MODEL;
use crate::ledger::{EntryState, Ledger, LedgerEntry, Origin};
use crate::model::{
    DesiredUser, Email, HeldUser, OktaSnapshot, OktaUserId, Role, SpotUser, SpotUserId, SpotUsers,
};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

pub use crate::action::{Action, ActionKind, ActionStatus, Adoption, Change, NewUser, Replace};

/// The plan for one cycle. Immutable once made: `guard` answers it with verdicts and `apply`
/// with outcomes; neither changes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Distinct Okta users listed by the app.
    pub okta_users: usize,
    /// Users in the Spot organization (all kinds).
    pub spot_users: usize,
    pub actions: Vec<Action>,
    pub held: Vec<HeldUser>,
    /// Ledger-only housekeeping: Okta users no longer entitled whose Spot user is already gone.
    pub forget: Vec<OktaUserId>,
    /// `Some(n)`: a partial plan (events mode) for the `n` Okta users an event named; every
    /// other user was out of scope. `None`: a full plan over every user.
    pub partial: Option<usize>,
}

impl Plan {
    /// True when applying would change nothing, in Spot or in the ledger.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.forget.is_empty()
    }
}

/// The settings the planner reads.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub adopt_existing: bool,
    pub update_roles: bool,
    pub protected_emails: BTreeSet<Email>,
    /// The Spot organization role each Okta role is created with. A role change between two
    /// roles with different Spot roles cannot be done in place (Spot has no user update), so it
    /// is a recreate.
    pub spot_roles: BTreeMap<Role, String>,
}

/// Computes the plan. `spot_users` is the complete list of the organization's users.
pub fn plan(
    okta: &OktaSnapshot,
    spot_users: &SpotUsers,
    ledger: &Ledger,
    options: &PlanOptions,
) -> Plan {
    plan_scoped(okta, spot_users, ledger, options, None)
}

/// A partial plan (events mode): `okta` holds the fresh truth of exactly the Okta users in
/// `scope` (a user in `scope` that `okta` does not list is not assigned), `spot_users` and
/// `ledger` are complete. Users outside `scope` are out of scope, never absent: nothing is
/// planned for them, and whatever they own is treated as still theirs (an owner outside the
/// scope counts as entitled, so its Spot user is never handed to a named user).
pub fn plan_partial(
    okta: &OktaSnapshot,
    spot_users: &SpotUsers,
    ledger: &Ledger,
    options: &PlanOptions,
    scope: &BTreeSet<OktaUserId>,
) -> Plan {
    plan_scoped(okta, spot_users, ledger, options, Some(scope))
}

fn plan_scoped(
    okta: &OktaSnapshot,
    spot_users: &SpotUsers,
    ledger: &Ledger,
    options: &PlanOptions,
    scope: Option<&BTreeSet<OktaUserId>>,
) -> Plan {
    let (aligned, personal_by_email) = Aligned::new(okta, spot_users, ledger);
    let mut planner = Planner::new(
        okta,
        &aligned,
        personal_by_email,
        spot_users,
        ledger,
        options,
    );
    planner.scope = scope;
    planner.run()
}

/// The Okta users sorted by Okta user id and lined up with the ledger (also sorted by Okta
/// user id) and with Spot, by merges rather than maps.
///
/// At 1,000,000 users a map costs a cache miss per insert and more per lookup, and each pass
/// over the users costs a cache miss per user for every string it reads. So the desired users
/// and the ledger are merged once, that one walk of the ledger gathers everything else the
/// plan needs from it, and one pass over the Spot users gathers what is needed from them.
struct Aligned<'a> {
    /// Provisioned Okta users, sorted by Okta user id.
    desired: Vec<&'a DesiredUser>,
    /// For each of `desired`, its ledger entry.
    matches: Vec<Option<Match<'a>>>,
    /// Ids of the Okta users held by the classifier, sorted.
    held: Vec<&'a str>,
    /// Ledger entries (with their Okta user id) that no desired user has, in ledger order:
    /// the candidates for deletion.
    unmatched: Vec<(&'a str, Slot<'a>)>,
    /// For each ledger entry, by position, the index in `spot_users` of the Spot user its
    /// `spot_user_id` names, if Spot still lists it. Every by-id question the plan asks is
    /// about a ledger entry's Spot user, so this replaces a map of all Spot users by id.
    spot_user_of_entry: Vec<Option<usize>>,
    /// The old emails of managed users whose email changed: the only emails looked up among
    /// the desired users (is someone else given the old one?).
    changed_emails: HashSet<&'a str>,
    /// The tombstones Spot still lists: (Okta user id, its ledger entry, index in
    /// `spot_users`). Empty in a quiet cycle.
    listed_tombstones: Vec<(&'a str, Slot<'a>, usize)>,
}

/// A ledger entry and its position in the ledger's order, which indexes
/// [`Aligned::spot_user_of_entry`].
#[derive(Clone, Copy)]
struct Slot<'a> {
    position: usize,
    entry: &'a LedgerEntry,
}

/// A desired user's ledger entry, with what the plan reads of it for every user: read during
/// the merge, while the entry and both emails are in the cache, instead of in later passes
/// that would each fetch them again.
#[derive(Clone, Copy)]
struct Match<'a> {
    slot: Slot<'a>,
    /// The entry's state.
    state: EntryState,
    /// The entry's role.
    role: Option<Role>,
    /// Is the entry's email (as stored: normalised) the desired user's?
    same_email: bool,
}

impl<'a> Match<'a> {
    /// Managed with the same email: unless its Spot user is gone, this user looks nothing up
    /// by email (nearly everyone, in steady state).
    fn is_unchanged(&self) -> bool {
        self.state == EntryState::Managed && self.same_email
    }
}

impl<'a> Aligned<'a> {
    /// Also returns the personal Spot users by email, built during the pass over the Spot
    /// users for the emails the plan can look up.
    fn new(
        okta: &'a OktaSnapshot,
        spot_users: &'a [SpotUser],
        ledger: &'a Ledger,
    ) -> (Self, ForecastIndex<'a, &'a SpotUser>) {
        let mut held: Vec<&str> = okta.held.iter().map(|h| h.okta_user_id.as_str()).collect();
        held.sort_unstable();
        let mut desired: Vec<&DesiredUser> = okta.provision.iter().collect();
        // The classifier emits the users sorted, so the merge checks the order as it goes
        // instead of sorting first (which reads every id once more).
        let walk = match LedgerWalk::new(&desired, ledger) {
            Some(walk) => walk,
            None => {
                desired.sort_unstable_by(|a, b| a.okta_user_id.cmp(&b.okta_user_id));
                LedgerWalk::new(&desired, ledger).expect("the desired users were just sorted")
            }
        };
        let (spot_emails, changed_emails) = foreseen_emails(&desired, &walk);
        let (spot_keys, personal) = scan_spot_users(spot_users, &spot_emails);
        let personal_by_email = ForecastIndex {
            covered: Some(spot_emails),
            partial: personal,
            complete: OnceCell::new(),
            build: Box::new(move |only| personal_by_email(spot_users, only)),
        };
        // One join for the entries' Spot users and the tombstones: the tombstones' positions
        // follow the entries'.
        let entries = ledger.users.len();
        let mut wanted = walk.spot_user_ids;
        wanted.extend(
            walk.tombstones
                .iter()
                .enumerate()
                .map(|(i, &(_, _, id))| (IdKey::new(id), entries + i)),
        );
        let mut spot_user_of_entry =
            join_on_spot_user_id(wanted, spot_keys, entries + walk.tombstones.len());
        let listed_tombstones = spot_user_of_entry
            .drain(entries..)
            .zip(walk.tombstones)
            .filter_map(|(found, (okta_id, slot, _))| found.map(|index| (okta_id, slot, index)))
            .collect();
        let aligned = Aligned {
            desired,
            matches: walk.matches,
            held,
            unmatched: walk.unmatched,
            spot_user_of_entry,
            changed_emails,
            listed_tombstones,
        };
        (aligned, personal_by_email)
    }
}

/// What one walk of the ledger, merged with the desired users, finds.
struct LedgerWalk<'a> {
    matches: Vec<Option<Match<'a>>>,
    unmatched: Vec<(&'a str, Slot<'a>)>,
    /// The emails of the pending entries (`plan_absent` may look them up).
    pending_emails: Vec<&'a str>,
    /// The Spot user id of each ledger entry that has one, with the entry's position.
    spot_user_ids: Vec<(IdKey<'a>, usize)>,
    /// Every tombstone, with its entry.
    tombstones: Vec<(&'a str, Slot<'a>, &'a str)>,
}

impl<'a> LedgerWalk<'a> {
    /// `None` when `desired` is not sorted by Okta user id.
    fn new(desired: &[&'a DesiredUser], ledger: &'a Ledger) -> Option<Self> {
        let mut walk = LedgerWalk {
            matches: Vec::with_capacity(desired.len()),
            unmatched: Vec::new(),
            pending_emails: Vec::new(),
            spot_user_ids: Vec::with_capacity(ledger.users.len()),
            tombstones: Vec::new(),
        };
        let mut entries = ledger.users.iter().enumerate().peekable();
        // The Okta user id of the last entry a desired user matched: that entry is left in
        // `entries` (a duplicate desired user would match it too) and passed over later.
        let mut matched: Option<&str> = None;
        let mut previous: Option<&str> = None;
        for user in desired {
            let id = user.okta_user_id.as_str();
            if previous.is_some_and(|previous| previous > id) {
                return None;
            }
            previous = Some(id);
            while let Some((position, (okta_id, entry))) =
                entries.next_if(|(_, (entry_id, _))| entry_id.as_str() < id)
            {
                walk.pass(okta_id, Slot { position, entry }, matched);
            }
            let found = entries
                .peek()
                .filter(|(_, (entry_id, _))| entry_id.as_str() == id)
                .map(|&(position, (_, entry))| Match {
                    slot: Slot { position, entry },
                    state: entry.state,
                    role: entry.role,
                    same_email: entry.email == user.email.as_str(),
                });
            if found.is_some() {
                matched = Some(id);
            }
            walk.matches.push(found);
        }
        for (position, (okta_id, entry)) in entries {
            walk.pass(okta_id, Slot { position, entry }, matched);
        }
        Some(walk)
    }

    /// Notes what the plan needs from a ledger entry the walk has passed.
    fn pass(&mut self, okta_id: &'a str, slot: Slot<'a>, matched: Option<&str>) {
        if matched != Some(okta_id) {
            self.unmatched.push((okta_id, slot));
        }
        if slot.entry.state == EntryState::Pending {
            self.pending_emails.push(slot.entry.email.as_str());
        }
        if let Some(id) = slot.entry.spot_user_id.as_deref() {
            self.spot_user_ids.push((IdKey::new(id), slot.position));
        }
        for id in &slot.entry.tombstones {
            self.tombstones.push((okta_id, slot, id));
        }
    }
}

/// The emails the plan can look up: (among personal Spot users, among desired users).
///
/// Every desired user but an unchanged one ([`Match::is_unchanged`]) may look for a Spot user
/// by its email, and so may a pending entry whose Okta user has left (`plan_absent`); a
/// managed user whose email changed also looks for a desired user with its old email. Known
/// before the Spot users are read, so it misses unchanged users whose Spot user is gone:
/// their lookups (rare: the user was deleted outside this tool) use the complete index.
fn foreseen_emails<'a>(
    desired: &[&'a DesiredUser],
    walk: &LedgerWalk<'a>,
) -> (HashSet<&'a str>, HashSet<&'a str>) {
    let mut spot_emails: HashSet<&str> = walk.pending_emails.iter().copied().collect();
    let mut changed_emails = HashSet::default();
    for (user, found) in desired.iter().zip(&walk.matches) {
        match found {
            Some(found) if found.is_unchanged() => {}
            Some(found) if found.state == EntryState::Managed => {
                spot_emails.insert(user.email.as_str());
                changed_emails.insert(found.slot.entry.email.as_str());
            }
            _ => {
                spot_emails.insert(user.email.as_str());
            }
        }
    }
    (spot_emails, changed_emails)
}

/// One pass over the Spot users: the key of each id for the join, and, while each user's
/// email is in the cache, the personal users with one of `emails`.
fn scan_spot_users<'a>(
    spot_users: &'a [SpotUser],
    emails: &HashSet<&'a str>,
) -> (Vec<(IdKey<'a>, usize)>, HashMap<&'a str, &'a SpotUser>) {
    let mut keys = Vec::with_capacity(spot_users.len());
    let mut personal = HashMap::default();
    for (index, user) in spot_users.iter().enumerate() {
        keys.push((IdKey::new(&user.user_id), index));
        if !emails.is_empty() {
            add_personal(&mut personal, user, Some(emails));
        }
    }
    (keys, personal)
}

/// The personal Spot users with one of `emails` (all with `None`) by email.
fn personal_by_email<'a>(
    spot_users: &'a [SpotUser],
    emails: Option<&HashSet<&'a str>>,
) -> HashMap<&'a str, &'a SpotUser> {
    let mut personal = HashMap::with_capacity_and_hasher(
        emails.map_or(spot_users.len(), HashSet::len),
        Default::default(),
    );
    for user in spot_users {
        add_personal(&mut personal, user, emails);
    }
    personal
}

/// Adds `user` if it is personal with one of `emails` (any with `None`). Of several with one
/// email, the lowest user id is kept, so duplicates resolve the same way whatever order Spot
/// listed them in.
fn add_personal<'a>(
    personal: &mut HashMap<&'a str, &'a SpotUser>,
    user: &'a SpotUser,
    emails: Option<&HashSet<&'a str>>,
) {
    let Some(email) = user.email.as_ref().map(Email::as_str) else {
        return;
    };
    if !user.is_personal() || emails.is_some_and(|emails| !emails.contains(email)) {
        return;
    }
    personal
        .entry(email)
        .and_modify(|kept| {
            if user.user_id < kept.user_id {
                *kept = user;
            }
        })
        .or_insert(user);
}

/// For each ledger entry, by position, the index of the Spot user whose id `wanted` gives for
/// that position, found among `spot` (the key of each Spot user's id, with its index).
///
/// A sort-merge join instead of a map of Spot users by id: at 1,000,000 users the map costs a
/// cache miss per insert and several per lookup (about half a second together), while two
/// sorts of inline keys are sequential work, and linear when both lists already come in id
/// order. When Spot lists one id twice, the one listed last is taken, as a map would keep.
fn join_on_spot_user_id(
    mut wanted: Vec<(IdKey<'_>, usize)>,
    mut spot: Vec<(IdKey<'_>, usize)>,
    entries: usize,
) -> Vec<Option<usize>> {
    spot.sort_unstable();
    wanted.sort_unstable();
    let mut found = vec![None; entries];
    let mut next = 0;
    for (key, position) in wanted {
        while next < spot.len() && spot[next].0 < key {
            next += 1;
        }
        // The run of equal ids is sorted by index: its last is the one listed last.
        found[position] = spot[next..]
            .iter()
            .take_while(|(id, _)| *id == key)
            .last()
            .map(|&(_, index)| index);
    }
    found
}

/// An id for sorting and merging: its first 16 bytes inline as two numbers, so comparisons
/// are integer comparisons that read the string itself only for ids longer than 16 bytes
/// (Spot user ids have 10). Equal keys are equal ids; the order is not alphabetical, but
/// both sides of a merge use the same one.
#[derive(Clone, Copy)]
struct IdKey<'a> {
    head: (u64, u64),
    id: &'a str,
}

impl<'a> IdKey<'a> {
    fn new(id: &'a str) -> Self {
        let mut bytes = [0u8; 16];
        let n = id.len().min(16);
        bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        let (high, low) = bytes.split_at(8);
        let word = |half: &[u8]| u64::from_be_bytes(half.try_into().expect("8 bytes"));
        IdKey {
            head: (word(high), word(low)),
            id,
        }
    }
}

impl Ord for IdKey<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Same head and same length up to 16 bytes: the same id, without reading it.
        self.head
            .cmp(&other.head)
            .then(self.id.len().cmp(&other.id.len()))
            .then_with(|| match self.id.len() {
                0..=16 => Ordering::Equal,
                _ => self.id.cmp(other.id),
            })
    }
}

impl PartialOrd for IdKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for IdKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for IdKey<'_> {}

/// A Spot user an Okta user may take over.
#[derive(Clone, Copy)]
struct Claim<'a> {
    user: &'a SpotUser,
    previous_owner: Option<&'a str>,
    /// The claiming Okta user owned it before (one of its tombstones): taking it back is not
    /// adopting someone else's user, whatever `sync.adopt_existing` says.
    ours: bool,
}

impl Claim<'_> {
    /// May this claim be adopted? A Spot user that was never this tool's is adopted only with
    /// `sync.adopt_existing`.
    fn may_adopt(&self, adopt_existing: bool) -> bool {
        adopt_existing || self.ours || self.previous_owner.is_some()
    }
}

struct Planner<'a> {
    okta: &'a OktaSnapshot,
    ledger: &'a Ledger,
    options: &'a PlanOptions,
    spot_users: &'a [SpotUser],
    aligned: &'a Aligned<'a>,
    /// Personal Spot users by email.
    personal_by_email: ForecastIndex<'a, &'a SpotUser>,
    /// Provisioned Okta users by email (unique: shared emails are held by the classifier),
    /// built on first use: only when an email changed.
    desired_by_email: OnceCell<ForecastIndex<'a, &'a DesiredUser>>,
    /// Spot user id -> Okta user id of the live ledger entry that owns it or, when none does,
    /// of an entry that holds it as a tombstone.
    owner_of: OnceCell<ForecastIndex<'a, &'a str>>,
    spot_count: usize,
    actions: Vec<Action>,
    held: Vec<HeldUser>,
    forget: Vec<OktaUserId>,
    /// Spot users adopted this cycle (including those handed from an absent owner to a new
    /// one): not to be deleted.
    claimed: HashSet<SpotUserId>,
    /// Provisioned Okta users sorted by Okta user id (binary search, merge with the ledger).
    desired_sorted: &'a [&'a DesiredUser],
    /// Okta users held by the classifier, sorted: with `desired_sorted`, the entitled users.
    held_sorted: &'a [&'a str],
    /// A partial plan's Okta users (`None`: every user is in scope).
    scope: Option<&'a BTreeSet<OktaUserId>>,
}

/// Builds an index over all of its source (`None`) or over the given keys only.
type BuildIndex<'a, V> = Box<dyn Fn(Option<&HashSet<&'a str>>) -> HashMap<&'a str, V> + 'a>;

/// A map built only for the keys the planner foresaw it would ask about, because at
/// 1,000,000 users a complete map (a cache miss per insert) costs more than the rest of the
/// plan while a cycle asks about a few thousand keys. The forecast is an optimisation, never
/// a premise: a key outside it is answered from the complete map, built on first need, so a
/// forecast that misses a case (say, after a change to the planner) costs time, never a wrong
/// answer such as "no Spot user has this email" and thus a duplicate create.
struct ForecastIndex<'a, V> {
    /// The keys `partial` answers for; `None` when `partial` is complete.
    covered: Option<HashSet<&'a str>>,
    partial: HashMap<&'a str, V>,
    complete: OnceCell<HashMap<&'a str, V>>,
    build: BuildIndex<'a, V>,
}

impl<'a, V: Copy> ForecastIndex<'a, V> {
    /// `covered`: the keys foreseen, `None` for all.
    fn new(covered: Option<HashSet<&'a str>>, build: BuildIndex<'a, V>) -> Self {
        let partial = match &covered {
            Some(keys) if keys.is_empty() => HashMap::default(),
            keys => build(keys.as_ref()),
        };
        ForecastIndex {
            covered,
            partial,
            complete: OnceCell::new(),
            build,
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        match &self.covered {
            Some(keys) if !keys.contains(key) => self
                .complete
                .get_or_init(|| (self.build)(None))
                .get(key)
                .copied(),
            _ => self.partial.get(key).copied(),
        }
    }

    /// The values of the partial index (all of them when it is complete).
    fn partial_values(&self) -> impl Iterator<Item = V> + '_ {
        self.partial.values().copied()
    }

    fn is_complete(&self) -> bool {
        self.covered.is_none()
    }
}

impl<'a> Planner<'a> {
    fn new(
        okta: &'a OktaSnapshot,
        aligned: &'a Aligned<'a>,
        personal_by_email: ForecastIndex<'a, &'a SpotUser>,
        spot_users: &'a [SpotUser],
        ledger: &'a Ledger,
        options: &'a PlanOptions,
    ) -> Self {
        Planner {
            okta,
            ledger,
            options,
            spot_users,
            aligned,
            personal_by_email,
            desired_by_email: OnceCell::new(),
            owner_of: OnceCell::new(),
            spot_count: spot_users.len(),
            actions: Vec::new(),
            held: okta.held.clone(),
            forget: Vec::new(),
            claimed: HashSet::default(),
            desired_sorted: &aligned.desired,
            held_sorted: &aligned.held,
            scope: None,
        }
    }

    /// Is this Okta user planned for? Always in a full plan; in a partial one, only the users
    /// an event named.
    fn in_scope(&self, okta_id: &str) -> bool {
        self.scope.is_none_or(|scope| scope.contains(okta_id))
    }

    /// The Spot user of the ledger entry in `slot`, if Spot still lists it.
    fn spot_user_of(&self, slot: Slot<'a>) -> Option<&'a SpotUser> {
        self.aligned.spot_user_of_entry[slot.position].map(|index| &self.spot_users[index])
    }

    /// The personal Spot user with this email (the lowest user id if Spot has several).
    fn personal_with_email(&self, email: &Email) -> Option<&'a SpotUser> {
        self.personal_by_email.get(email.as_str())
    }

    /// The desired user with this email.
    fn desired_with_email(&self, email: &Email) -> Option<&'a DesiredUser> {
        self.desired_by_email
            .get_or_init(|| {
                let provision = &self.okta.provision;
                ForecastIndex::new(
                    Some(self.aligned.changed_emails.clone()),
                    Box::new(move |only| {
                        provision
                            .iter()
                            .map(|d| (d.email.as_str(), d))
                            .filter(|(email, _)| only.is_none_or(|keys| keys.contains(email)))
                            .collect()
                    }),
                )
            })
            .get(email.as_str())
    }

    /// The Okta user whose live ledger entry owns this Spot user, or else whose entry holds it
    /// as a tombstone.
    ///
    /// Only Spot users returned by [`Planner::personal_with_email`] are asked about, so the
    /// index is built for those alone: one pass over the ledger instead of a 1,000,000-entry
    /// map. Any other id falls back to the complete index (see [`ForecastIndex`]).
    fn owner_of(&self, spot_user_id: &str) -> Option<&'a str> {
        self.owner_of
            .get_or_init(|| {
                let by_email = &self.personal_by_email;
                let covered = (!by_email.is_complete()).then(|| {
                    by_email
                        .partial_values()
                        .map(|user| user.user_id.as_str())
                        .collect()
                });
                let ledger = self.ledger;
                ForecastIndex::new(
                    covered,
                    Box::new(move |only| {
                        let mut map = HashMap::with_capacity_and_hasher(
                            only.map_or(ledger.users.len(), HashSet::len),
                            Default::default(),
                        );
                        let wanted = |id: &str| only.is_none_or(|keys| keys.contains(id));
                        for (okta_id, entry) in &ledger.users {
                            // A live owner wins over a tombstone, whichever comes first.
                            if entry.state != EntryState::Deleted {
                                if let Some(spot_id) = entry.spot_user_id.as_deref() {
                                    if wanted(spot_id) {
                                        map.insert(spot_id, okta_id.as_str());
                                    }
                                }
                            }
                            for spot_id in &entry.tombstones {
                                if wanted(spot_id) {
                                    map.entry(spot_id.as_str()).or_insert(okta_id.as_str());
                                }
                            }
                        }
                        map
                    }),
                )
            })
            .get(spot_user_id)
    }

    /// Is this Okta user entitled? A user outside a partial plan's scope is taken to be: its
    /// truth was not read, and "not read" must never mean "gone".
    fn is_entitled(&self, okta_id: &str) -> bool {
        !self.in_scope(okta_id)
            || self
                .desired_sorted
                .binary_search_by(|d| d.okta_user_id.as_str().cmp(okta_id))
                .is_ok()
            || self.held_sorted.binary_search(&okta_id).is_ok()
    }

    /// Is `owner` (an entitled Okta user) letting go of `spot_user` because its email in Okta
    /// changed to something else?
    fn releases(&self, owner: &str, spot_user: &SpotUser) -> bool {
        self.desired_sorted
            .binary_search_by(|d| d.okta_user_id.as_str().cmp(owner))
            .ok()
            .is_some_and(|i| spot_user.email.as_ref() != Some(&self.desired_sorted[i].email))
    }

    fn run(mut self) -> Plan {
        let aligned = self.aligned;
        for (&user, &found) in aligned.desired.iter().zip(&aligned.matches) {
            self.plan_desired(user, found);
        }
        self.plan_absent();
        self.plan_tombstones();
        self.actions
            .sort_by(|a, b| (&a.okta_user_id, a.kind()).cmp(&(&b.okta_user_id, b.kind())));
        self.held
            .sort_by(|a, b| a.okta_user_id.cmp(&b.okta_user_id));
        self.forget.sort();
        Plan {
            okta_users: self.okta.listed,
            spot_users: self.spot_count,
            actions: self.actions,
            held: self.held,
            forget: self.forget,
            partial: self.scope.map(BTreeSet::len),
        }
    }

    fn is_protected(&self, email: &Email) -> bool {
        self.options.protected_emails.contains(email)
    }

    fn hold(&mut self, user: &DesiredUser, reason: String) {
        self.held.push(HeldUser {
            okta_user_id: user.okta_user_id.clone(),
            email: Some(user.email_display().to_string()),
            reason,
        });
    }

    /// Plans `change` for `user`.
    fn push(&mut self, user: &DesiredUser, reason: String, change: Change) -> &mut Action {
        self.actions.push(Action {
            okta_user_id: user.okta_user_id.clone(),
            email: user.email.to_string(),
            reason,
            change,
        });
        self.actions.last_mut().expect("just pushed")
    }

    /// The personal Spot user with this email, if this Okta user may take it: free, already
    /// its own, or owned by an entry whose Okta user is no longer entitled (ownership then
    /// moves instead of a delete followed by a create). `Err(owner)` names an entitled owner.
    fn free_personal_user(
        &self,
        email: &Email,
        okta_id: &str,
    ) -> Option<Result<Claim<'a>, &'a str>> {
        let user = self.personal_with_email(email)?;
        match self.owner_of(user.user_id.as_str()) {
            Some(owner)
                if owner != okta_id && self.is_entitled(owner) && !self.releases(owner, user) =>
            {
                Some(Err(owner))
            }
            Some(owner) if owner != okta_id => Some(Ok(Claim {
                user,
                previous_owner: Some(owner),
                ours: false,
            })),
            owner => Some(Ok(Claim {
                user,
                previous_owner: None,
                ours: owner.is_some(),
            })),
        }
    }

    /// Plans an adoption of `claim` for `user`; `apply_role_mapping` completes an interrupted
    /// create.
    fn adopt(
        &mut self,
        user: &DesiredUser,
        claim: Claim<'a>,
        origin: Origin,
        reason: String,
        apply_role_mapping: bool,
    ) {
        let id = claim.user.user_id.clone();
        self.claimed.insert(id.clone());
        let reason = match claim.previous_owner {
            Some(owner) => {
                format!(
                    "{reason} (it was managed for Okta user {owner}, who is no longer assigned)"
                )
            }
            None => reason,
        };
        let adoption = Adoption {
            spot_user_id: id,
            role: user.role,
            origin,
            previous_owner: claim.previous_owner.map(OktaUserId::new),
            apply_role_mapping,
        };
        self.push(user, reason, Change::Adopt(adoption));
    }

    fn plan_desired(&mut self, user: &DesiredUser, found: Option<Match<'a>>) {
        if self.is_protected(&user.email) {
            self.hold(
                user,
                "protected email (sync.protected_emails): never touched".into(),
            );
            return;
        }
        match found {
            Some(found) if found.state == EntryState::Managed => self.plan_managed(user, found),
            Some(found) if found.state == EntryState::Pending => {
                self.plan_pending(user, found.slot)
            }
            Some(_) => self.plan_returning(user),
            None => self.plan_new(user),
        }
    }

    /// A user this tool already manages.
    fn plan_managed(&mut self, user: &DesiredUser, found: Match<'a>) {
        let entry = found.slot.entry;
        let Some(spot_user) = self.spot_user_of(found.slot) else {
            let gone = entry.spot_user_id.clone().unwrap_or_else(|| "?".into());
            match self.free_personal_user(&user.email, &user.okta_user_id) {
                Some(Ok(claim)) => {
                    let reason = format!(
                        "managed Spot user {gone} no longer exists; re-linking to Spot user {} with the same email",
                        claim.user.user_id
                    );
                    self.adopt(user, claim, entry.origin, reason, false);
                }
                Some(Err(owner)) => self.hold_owned(user, owner),
                None => {
                    let reason = format!(
                        "managed Spot user {gone} no longer exists in Spot (deleted outside okta-spot-sync); creating it again"
                    );
                    self.push(user, reason, Change::Create(new_user(user)));
                }
            }
            return;
        };
        // The ledger stores normalised emails: equal text is the common case, no parse needed.
        if !found.same_email {
            let ledger_email = Email::parse(&entry.email);
            if ledger_email.as_ref() != Some(&user.email) {
                self.plan_email_change(user, entry, spot_user, ledger_email.as_ref());
                return;
            }
        }
        match found.role {
            None => {
                let reason = format!(
                    "the {} role's Spot mapping has not been applied yet",
                    user.role
                );
                self.update_role(user, spot_user, reason, None);
            }
            Some(current) if current != user.role && self.options.update_roles => {
                let same_spot_role = self.options.spot_roles.get(&current)
                    == self.options.spot_roles.get(&user.role);
                if same_spot_role {
                    let reason = format!("role changed in Okta from {current} to {}", user.role);
                    self.update_role(user, spot_user, reason, Some(current));
                } else {
                    let reason = format!(
                        "role changed in Okta from {current} to {}; Spot cannot change a user's organization role in place, so the user is recreated",
                        user.role
                    );
                    let change = Change::Recreate {
                        user: new_user(user),
                        replaces: Some(Replace::DeleteFirst(spot_user.user_id.clone())),
                    };
                    self.push(user, reason, change);
                }
            }
            Some(current) if current == user.role && entry.access < ACCESS_MODEL => {
                let reason = format!(
                    "brings its access in line: each {} policy on every account, the ones added later included (grants it has are kept)",
                    user.role
                );
                self.update_role(user, spot_user, reason, None);
            }
            Some(_) => {}
        }
    }

    fn update_role(
        &mut self,
        user: &DesiredUser,
        spot_user: &SpotUser,
        reason: String,
        from: Option<Role>,
    ) {
        let change = Change::UpdateRole {
            spot_user_id: spot_user.user_id.clone(),
            role: user.role,
            from,
        };
        self.push(user, reason, change);
    }

    /// A managed user's email changed in Okta. Spot cannot change an email, so the user moves
    /// to a Spot user with the new email (an existing one is adopted, otherwise one is
    /// created) and the old Spot user is deleted — unless another Okta user now has the old
    /// email, in which case it passes to them.
    fn plan_email_change(
        &mut self,
        user: &DesiredUser,
        entry: &LedgerEntry,
        old: &'a SpotUser,
        old_email: Option<&Email>,
    ) {
        if old_email.is_some_and(|e| self.is_protected(e)) {
            let reason = format!(
                "email changed in Okta, but the Spot user's email {} is protected",
                entry.email
            );
            self.hold(user, reason);
            return;
        }
        let old_passes_on = old_email
            .and_then(|e| self.desired_with_email(e))
            .is_some_and(|next| next.okta_user_id != user.okta_user_id);
        let change = format!(
            "email changed in Okta from {} to {}",
            entry.email, user.email
        );
        match self.free_personal_user(&user.email, &user.okta_user_id) {
            Some(Err(owner)) => self.hold_owned(user, owner),
            Some(Ok(claim)) if claim.may_adopt(self.options.adopt_existing) => {
                let reason = format!("{change}; a Spot user with the new email exists");
                self.adopt(user, claim, entry.origin, reason, false);
                if !old_passes_on {
                    let reason =
                        format!("{change}; the Spot user with the old email is no longer needed");
                    self.actions.push(Action {
                        okta_user_id: user.okta_user_id.clone(),
                        email: entry.email.clone(),
                        reason,
                        change: Change::Delete {
                            spot_user_id: old.user_id.clone(),
                            role: entry.role,
                        },
                    });
                }
            }
            Some(Ok(claim)) => {
                let reason = format!(
                    "{change}, but Spot user {} has the new email and sync.adopt_existing is false",
                    claim.user.user_id
                );
                self.hold(user, reason);
            }
            None if old_passes_on => {
                let reason = format!("{change}; the Spot user with the old email passes to the Okta user who has it now");
                self.push(user, reason, Change::Create(new_user(user)));
            }
            None => {
                let reason = format!(
                    "{change}; Spot cannot change an email, so a Spot user with the new email is created, then the old one deleted"
                );
                let change = Change::Recreate {
                    user: new_user(user),
                    replaces: Some(Replace::DeleteAfter(old.user_id.clone())),
                };
                self.push(user, reason, change);
            }
        }
    }

    /// A create was started and not confirmed (crash or failure): finish it. The `pending`
    /// record claims the email, so a Spot user found by it is taken as the one we created.
    fn plan_pending(&mut self, user: &DesiredUser, slot: Slot<'a>) {
        let entry = slot.entry;
        let by_id = self
            .spot_user_of(slot)
            .filter(|found| found.email.as_ref() == Some(&user.email));
        let found = match by_id {
            Some(found) => Some(Ok(Claim {
                user: found,
                previous_owner: None,
                ours: true,
            })),
            None => self.free_personal_user(&user.email, &user.okta_user_id),
        };
        match found {
            Some(Ok(claim)) => {
                let reason = "completing an interrupted create: the Spot user exists, recording it and applying its role".to_string();
                self.adopt(user, claim, entry.origin, reason, true);
            }
            Some(Err(owner)) => self.hold_owned(user, owner),
            None => {
                let reason = "retrying an interrupted create".into();
                self.push(user, reason, Change::Create(new_user(user)));
            }
        }
    }

    /// A user this tool deleted earlier is entitled again (reactivated or reassigned in Okta).
    fn plan_returning(&mut self, user: &DesiredUser) {
        match self.free_personal_user(&user.email, &user.okta_user_id) {
            Some(Ok(claim)) if claim.may_adopt(self.options.adopt_existing) => {
                let reason = "reactivated in Okta; a Spot user with this email already exists".to_string();
                self.adopt(user, claim, Origin::Adopted, reason, false);
            }
            Some(Ok(_)) => self.hold(
                user,
                "reactivated in Okta, but a Spot user with this email exists and sync.adopt_existing is false".into(),
            ),
            Some(Err(owner)) => self.hold_owned(user, owner),
            None => {
                let change = Change::Recreate {
                    user: new_user(user),
                    replaces: None,
                };
                let reason = "reactivated or reassigned in Okta after okta-spot-sync deleted it";
                self.push(user, reason.into(), change);
            }
        }
    }

    /// An Okta user the ledger has never seen.
    fn plan_new(&mut self, user: &DesiredUser) {
        match self.free_personal_user(&user.email, &user.okta_user_id) {
            None => {
                let reason = "assigned in Okta, missing in Spot".into();
                self.push(user, reason, Change::Create(new_user(user)));
            }
            Some(Err(owner)) => self.hold_owned(user, owner),
            Some(Ok(claim)) if claim.may_adopt(self.options.adopt_existing) => {
                let reason = "existing Spot user matches an assigned Okta user".to_string();
                self.adopt(user, claim, Origin::Adopted, reason, false);
            }
            Some(Ok(_)) => self.hold(
                user,
                "a Spot user with this email exists and sync.adopt_existing is false".into(),
            ),
        }
    }

    fn hold_owned(&mut self, user: &DesiredUser, owner: &str) {
        let reason = format!(
            "its email belongs to a Spot user managed for Okta user {owner}, who is still assigned; give each Okta user a unique email"
        );
        self.hold(user, reason);
    }

    /// Ledger entries whose Okta user is no longer entitled: of those no desired user has,
    /// the ones not held by the classifier either.
    fn plan_absent(&mut self) {
        let absent_reason: HashMap<&str, &str> = self
            .okta
            .absent
            .iter()
            .map(|a| (a.okta_user_id.as_str(), a.reason.as_str()))
            .collect();
        for &(okta_id, slot) in &self.aligned.unmatched {
            let entry = slot.entry;
            if entry.state == EntryState::Deleted
                || !self.in_scope(okta_id)
                || self.held_sorted.binary_search(&okta_id).is_ok()
            {
                continue;
            }
            let Some(target) = self.spot_user_of(slot) else {
                if entry.state == EntryState::Pending {
                    if let Some(email) = Email::parse(&entry.email) {
                        if let Some(found) = self.personal_with_email(&email) {
                            if self.owner_of(found.user_id.as_str()).is_none() {
                                self.held.push(HeldUser {
                                    okta_user_id: OktaUserId::new(okta_id),
                                    email: Some(entry.email.clone()),
                                    reason: format!(
                                        "no longer assigned in Okta; a create for it was never confirmed, so Spot user {} with its email is not known to be ours and is left alone",
                                        found.user_id
                                    ),
                                });
                            }
                        }
                    }
                }
                self.forget.push(OktaUserId::new(okta_id));
                continue;
            };
            if self.claimed.contains(&target.user_id) {
                continue;
            }
            let reason = match absent_reason.get(okta_id) {
                Some(why) => format!("{why}: no longer entitled"),
                None => "no longer assigned to the app in Okta".to_string(),
            };
            self.delete_owned(okta_id, entry, target, reason);
        }
    }

    /// Plans the delete of `target`, a Spot user `okta_id`'s entry owns or owned, unless it is
    /// programmatic or protected (then it is reported as held).
    fn delete_owned(
        &mut self,
        okta_id: &str,
        entry: &LedgerEntry,
        target: &SpotUser,
        reason: String,
    ) {
        if !self.deletable(entry, target) {
            self.held.push(HeldUser {
                okta_user_id: OktaUserId::new(okta_id),
                email: Some(entry.email.clone()),
                reason: format!(
                    "{reason}, but Spot user {} is programmatic or protected: never deleted",
                    target.user_id
                ),
            });
            return;
        }
        self.actions.push(Action {
            okta_user_id: OktaUserId::new(okta_id),
            email: target
                .email
                .as_ref()
                .map_or_else(|| entry.email.clone(), Email::to_string),
            reason,
            change: Change::Delete {
                spot_user_id: target.user_id.clone(),
                role: entry.role,
            },
        });
    }

    /// May `target`, a Spot user `entry` owns or owned, be deleted? Never a programmatic or
    /// protected one.
    fn deletable(&self, entry: &LedgerEntry, target: &SpotUser) -> bool {
        let protected = |email: Option<&Email>| email.is_some_and(|e| self.is_protected(e));
        target.is_personal()
            && !protected(Email::parse(&entry.email).as_ref())
            && !protected(target.email.as_ref())
    }

    /// Tombstones that Spot still lists: Spot users this tool deleted (the delete answered
    /// success but did nothing, or a list missed the user), or let go of (an email change, a
    /// create that replaced a record). Each is deleted again when its Okta user is gone, and
    /// when its Okta user has a live replacement; otherwise it is left for the Okta user to take
    /// back (`plan_returning`, `plan_pending`) or for another Okta user to take over.
    fn plan_tombstones(&mut self) {
        let listed = &self.aligned.listed_tombstones;
        if listed.is_empty() {
            return;
        }
        // Spot users a live entry owns now: another Okta user's, never deleted as a tombstone.
        let live: HashSet<usize> = self
            .ledger
            .users
            .values()
            .zip(&self.aligned.spot_user_of_entry)
            .filter(|(entry, _)| entry.state != EntryState::Deleted)
            .filter_map(|(_, found)| *found)
            .collect();
        for &(okta_id, slot, index) in listed {
            let target = &self.spot_users[index];
            if live.contains(&index)
                || !self.in_scope(okta_id)
                || self.claimed.contains(&target.user_id)
                || self.held_sorted.binary_search(&okta_id).is_ok()
            {
                continue;
            }
            let entry = slot.entry;
            let reason = if self.is_entitled(okta_id) {
                if !self.deletable(entry, target) {
                    continue; // kept; its Okta user is entitled, nothing to report
                }
                // Deleted only once the replacement exists, so the person is never left
                // without a Spot user: after this cycle's create, or now when it exists.
                let mut acting = self.actions.iter_mut().filter(|a| {
                    a.okta_user_id == okta_id && !matches!(a.change, Change::UpdateRole { .. })
                });
                let replaced = match acting.next() {
                    Some(a) => {
                        if let Change::Create(user) = &a.change {
                            let user = user.clone();
                            a.change = Change::Recreate {
                                user,
                                replaces: None,
                            };
                        }
                        match &mut a.change {
                            Change::Recreate { replaces, .. } => {
                                if replaces.is_none() {
                                    *replaces = Some(Replace::DeleteAfter(target.user_id.clone()));
                                    a.reason = format!(
                                        "{}; then Spot user {}, which okta-spot-sync deleted or let go of earlier but Spot still lists, is deleted",
                                        a.reason, target.user_id
                                    );
                                }
                                false // deleted by this action, or by the next cycle
                            }
                            Change::Adopt(_) => true,
                            Change::Create(_)
                            | Change::Delete { .. }
                            | Change::UpdateRole { .. } => false,
                        }
                    }
                    None => entry.state == EntryState::Managed && self.spot_user_of(slot).is_some(),
                };
                if !replaced {
                    continue;
                }
                format!(
                    "Spot user {} was replaced for this Okta user (an email change or a return), but Spot still lists it",
                    target.user_id
                )
            } else {
                format!(
                    "no longer entitled in Okta; okta-spot-sync deleted or let go of Spot user {} earlier, but Spot still lists it",
                    target.user_id
                )
            };
            self.delete_owned(okta_id, entry, target, reason);
        }
    }
}

/// What a create sends to Spot for `user`.
fn new_user(user: &DesiredUser) -> NewUser {
    NewUser {
        email_display: user.email_display().to_string(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        role: user.role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Origin;
    use crate::model::SpotUserKind;

    fn desired(okta_id: &str, email: &str) -> DesiredUser {
        DesiredUser {
            okta_user_id: okta_id.into(),
            email: Email::parse(email).unwrap(),
            email_spelling: None,
            first_name: "First".into(),
            last_name: "Last".into(),
            role: Role::Viewer,
        }
    }

    fn spot_user(user_id: &str, email: &str) -> SpotUser {
        SpotUser {
            user_id: user_id.into(),
            email: Email::parse(email),
            username: email.into(),
            kind: SpotUserKind::Personal,
        }
    }

    fn managed(email: &str, spot_user_id: &str) -> LedgerEntry {
        LedgerEntry {
            email: email.into(),
            spot_user_id: Some(spot_user_id.into()),
            tombstones: Vec::new(),
            role: Some(Role::Viewer),
            access: crate::access::ACCESS_MODEL,
            origin: Origin::Created,
            state: EntryState::Managed,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    fn options() -> PlanOptions {
        PlanOptions {
            adopt_existing: true,
            update_roles: true,
            protected_emails: BTreeSet::new(),
            spot_roles: BTreeMap::from([
                (Role::Viewer, "viewer".to_string()),
                (Role::Editor, "admin".to_string()),
            ]),
        }
    }

    fn snapshot(provision: Vec<DesiredUser>) -> OktaSnapshot {
        OktaSnapshot {
            listed: provision.len(),
            provision,
            ..OktaSnapshot::default()
        }
    }

    /// The indexes are built only for what the planner foresees it will look up. A lookup
    /// outside that forecast must still get the right answer, or a later change to what the
    /// planner looks up could make it miss a Spot user and create a duplicate.
    #[test]
    fn lookups_outside_the_forecast_still_find_the_spot_user() {
        // 00u1 is unchanged (managed, same email, its Spot user there): not foreseen.
        // 00u2 is new: its email is foreseen.
        let okta = snapshot(vec![
            desired("00u1", "ann@example.com"),
            desired("00u2", "bob@example.com"),
        ]);
        let spot_users = vec![
            spot_user("u-1", "ann@example.com"),
            spot_user("u-2", "bob@example.com"),
        ];
        let mut ledger = Ledger::default();
        ledger
            .users
            .insert("00u1".into(), managed("ann@example.com", "u-1"));
        let (aligned, personal_by_email) = Aligned::new(&okta, &spot_users, &ledger);
        let covered = personal_by_email.covered.as_ref().unwrap();
        assert!(covered.contains("bob@example.com") && !covered.contains("ann@example.com"));
        assert!(aligned.changed_emails.is_empty());
        let options = options();
        let planner = Planner::new(
            &okta,
            &aligned,
            personal_by_email,
            &spot_users,
            &ledger,
            &options,
        );

        // Asked first, so the owner index is built for the restricted index's users (u-2).
        assert_eq!(planner.owner_of("u-1"), Some("00u1"));
        let ann = Email::parse("ann@example.com").unwrap();
        let found = planner
            .personal_with_email(&ann)
            .map(|u| u.user_id.as_str());
        assert_eq!(found, Some("u-1"));
        let found = planner
            .desired_with_email(&ann)
            .map(|d| d.okta_user_id.as_str());
        assert_eq!(found, Some("00u1"));
        // Each answer came from the complete index, built because the key was not foreseen.
        let owner_of = planner.owner_of.get().unwrap();
        let desired_by_email = planner.desired_by_email.get().unwrap();
        assert!(!planner.personal_by_email.is_complete());
        assert!(planner.personal_by_email.complete.get().is_some());
        assert!(!owner_of.is_complete() && owner_of.complete.get().is_some());
        assert!(!desired_by_email.is_complete() && desired_by_email.complete.get().is_some());
        let bob = Email::parse("bob@example.com").unwrap();
        let found = planner
            .personal_with_email(&bob)
            .map(|u| u.user_id.as_str());
        assert_eq!(found, Some("u-2"));
        assert_eq!(planner.owner_of("u-2"), None);
    }

    /// The forecast is made before the Spot users are read, so it cannot know that a managed
    /// user's Spot user is gone; the planner then looks up an email it did not foresee, and
    /// must re-link to the Spot user that has it rather than create a second one.
    #[test]
    fn a_managed_user_whose_spot_user_is_gone_is_relinked_by_email() {
        let okta = snapshot(vec![
            desired("00u1", "ann@example.com"),
            desired("00u2", "bob@example.com"),
        ]);
        let spot_users = vec![
            spot_user("u-ann-again", "ann@example.com"),
            spot_user("u-2", "bob@example.com"),
        ];
        let mut ledger = Ledger::default();
        ledger
            .users
            .insert("00u1".into(), managed("ann@example.com", "u-ann-gone"));
        ledger
            .users
            .insert("00u2".into(), managed("bob@example.com", "u-2"));
        let plan = plan(&okta, &SpotUsers::distinct(spot_users), &ledger, &options());
        assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
        assert_eq!(plan.actions[0].kind(), ActionKind::Adopt);
        assert_eq!(
            plan.actions[0].spot_user_id().map(|id| id.as_str()),
            Some("u-ann-again")
        );
    }

    #[test]
    fn ids_compare_by_their_inline_head_and_exactly_when_longer() {
        let key = IdKey::new;
        assert!(key("u-00000001") < key("u-00000002"));
        assert!(key("u-0000000") != key("u-0000000\0"));
        assert!(key("u-0123456789abcdef-1") != key("u-0123456789abcdef-2"));
        assert!(key("u-0123456789abcdef-1") == key("u-0123456789abcdef-1"));
        assert!(key("u-0123456789abcdef") != key("u-0123456789abcdef-1"));
    }
}
