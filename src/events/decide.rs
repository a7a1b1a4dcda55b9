//! Events mode's decisions, pure: which System Log events matter, which Okta users they name,
//! when a batch must become a full cycle, and whether a stored position can still be trusted.
//!
//! No I/O, no clock (the caller passes `now`). It must never turn an event into an action:
//! events are hints that name users whose truth is then read again, and an event this module
//! cannot resolve to users asks for a full cycle, never for nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::ledger::LogCursor;
use crate::model::OktaUserId;
use crate::okta::logs::LogEvent;

/// Event types that name an Okta user whose access to the app may have changed
/// (docs/api-facts.md "Okta System Log"). `application.user_membership.*` are kept only for
/// this app.
pub const USER_EVENT_TYPES: [&str; 13] = [
    "application.user_membership.add",
    "application.user_membership.remove",
    "application.user_membership.update",
    "user.lifecycle.activate",
    "user.lifecycle.deactivate",
    "user.lifecycle.reactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.delete.initiated",
    "user.lifecycle.delete.completed",
    "user.account.update_profile",
    "group.user_membership.add",
    "group.user_membership.remove",
];

/// Event types that name a group and no user: a group assigned to or unassigned from the app
/// changes the access of every member at once (Okta records no per-member event), so only a
/// full read can tell who.
pub const GROUP_EVENT_TYPES: [&str; 2] = [
    "group.application_assignment.add",
    "group.application_assignment.remove",
];

/// Event types that concern one app; their events about other apps are ignored.
const APP_SCOPED: [&str; 5] = [
    "application.user_membership.add",
    "application.user_membership.remove",
    "application.user_membership.update",
    "group.application_assignment.add",
    "group.application_assignment.remove",
];

/// How far before a full cycle's read its polling start point is taken: the System Log orders
/// polling requests by Okta's persistence time, so this covers a host clock that runs ahead of
/// Okta's. Events seen twice are harmless.
pub const START_MARGIN: TimeDelta = TimeDelta::seconds(60);

/// A stored position older than this (since its last complete poll) is not trusted: Okta keeps
/// the System Log for 90 days, and a gap it may have dropped cannot be proven empty.
pub const MAX_CURSOR_AGE: TimeDelta = TimeDelta::days(80);

/// Points of `okta.max_api_capacity_percent` a full read leaves unused in events mode: the
/// walk of 100,000 assignments spends its whole share of each minute, and an events batch right
/// after it would wait for the bucket's next minute before reading a single user. With this
/// headroom it reads up to that many users at once (a 100/min bucket, 50 %: the walk stops at
/// 40 a minute, 10 reads are left).
pub const FULL_READ_HEADROOM_PERCENT: u8 = 10;

/// Polls that check a deleted Spot user is gone from the Spot list (one Spot request a poll
/// while any is watched): enough for a list that misses a user once, or lags a few answers.
pub const WATCH_POLLS: u32 = 5;

/// Batches that read a user again whose change could not be done (a failed read or action)
/// before it is left to the next full cycle: a failure that lasts more than a minute or two
/// (a Spot refusal, an outage) should not cost an Okta request every poll.
pub const MAX_RETRY_ATTEMPTS: u32 = 5;

/// A batch never becomes a full cycle for naming fewer users than this: re-reading a handful
/// of users one by one is always cheap, even where the whole list is one page.
pub const MIN_FULL_CYCLE_USERS: usize = 20;

/// `filter` for the polling request: every event type events mode reads.
pub fn filter_expression() -> String {
    USER_EVENT_TYPES
        .iter()
        .chain(GROUP_EVENT_TYPES.iter())
        .map(|t| format!("eventType eq \"{t}\""))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Why the daemon runs a full cycle (the `reason` label of the full-cycle metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FullCycleReason {
    /// At start, or the first cycle of events mode: there is no position to poll from.
    Start,
    /// `sync.schedule`: the safety net.
    Schedule,
    /// The stored position is older than [`MAX_CURSOR_AGE`].
    CursorTooOld,
    /// Okta refused the stored position (400).
    CursorRejected,
    /// A group was assigned to or unassigned from the app.
    GroupAssignment,
    /// An event of a type that names users named none this build can read.
    UnresolvedEvent,
    /// A batch named more users than a full read costs.
    TooManyUsers,
    /// The System Log was refused: the first full cycle of the fallback.
    EventsOff,
    /// The first cycle after a reload ended a halt.
    Other,
}

impl FullCycleReason {
    pub const ALL: [FullCycleReason; 9] = [
        FullCycleReason::Start,
        FullCycleReason::Schedule,
        FullCycleReason::CursorTooOld,
        FullCycleReason::CursorRejected,
        FullCycleReason::GroupAssignment,
        FullCycleReason::UnresolvedEvent,
        FullCycleReason::TooManyUsers,
        FullCycleReason::EventsOff,
        FullCycleReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FullCycleReason::Start => "start",
            FullCycleReason::Schedule => "schedule",
            FullCycleReason::CursorTooOld => "cursor_too_old",
            FullCycleReason::CursorRejected => "cursor_rejected",
            FullCycleReason::GroupAssignment => "group_assignment",
            FullCycleReason::UnresolvedEvent => "unresolved_event",
            FullCycleReason::TooManyUsers => "too_many_users",
            FullCycleReason::EventsOff => "events_off",
            FullCycleReason::Other => "other",
        }
    }
}

/// What a run of events says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// The Okta users to read again, each with the earliest `published` of the events that
    /// named it (the start of its propagation delay).
    pub users: BTreeMap<OktaUserId, DateTime<Utc>>,
    /// Set when only a full read can answer (a group event, an event naming no user).
    pub full_cycle: Option<FullCycleReason>,
    /// Events read, by type (the app-scoped types of other apps included).
    pub by_type: BTreeMap<String, u64>,
    /// The newest `published` among the events.
    pub newest: Option<DateTime<Utc>>,
}

/// Reads `events` (in any order, duplicates included) for the app `app_id`.
pub fn hints(events: &[LogEvent], app_id: &str) -> Hints {
    let mut hints = Hints::default();
    for event in events {
        *hints.by_type.entry(event.event_type.clone()).or_default() += 1;
        hints.newest = hints.newest.max(Some(event.published));
        let kind = event.event_type.as_str();
        if APP_SCOPED.contains(&kind) && !event.target_ids("AppInstance").any(|id| id == app_id) {
            // Another app's; an app-scoped event with no app at all is not ours to guess.
            if event.target_ids("AppInstance").next().is_some() {
                continue;
            }
        }
        if GROUP_EVENT_TYPES.contains(&kind) {
            hints.full_cycle = hints.full_cycle.max(Some(FullCycleReason::GroupAssignment));
            continue;
        }
        if !USER_EVENT_TYPES.contains(&kind) {
            continue; // not asked for; an unknown type names nothing this mode reads
        }
        let mut named = false;
        for id in event.target_ids("User").filter(|id| !id.trim().is_empty()) {
            named = true;
            let at = hints
                .users
                .entry(OktaUserId::new(id))
                .or_insert(event.published);
            *at = (*at).min(event.published);
        }
        if !named {
            hints.full_cycle = hints.full_cycle.max(Some(FullCycleReason::UnresolvedEvent));
        }
    }
    hints
}

/// The most users a batch re-reads one by one: more than the pages of a full read
/// (`listed` assignments at `page_size` a page) costs more than that read, so a full cycle
/// runs instead. Never below [`MIN_FULL_CYCLE_USERS`].
pub fn max_batch_users(listed: usize, page_size: u32) -> usize {
    let page_size = usize::try_from(page_size.max(1)).unwrap_or(usize::MAX);
    listed.div_ceil(page_size).max(MIN_FULL_CYCLE_USERS)
}

/// Can polling resume from `cursor` at `now`? `Err` names why a full cycle must come first.
pub fn resumable(cursor: Option<&LogCursor>, now: DateTime<Utc>) -> Result<(), FullCycleReason> {
    match cursor {
        None => Err(FullCycleReason::Start),
        Some(c) if now - c.polled_at > MAX_CURSOR_AGE => Err(FullCycleReason::CursorTooOld),
        Some(_) => Ok(()),
    }
}

/// The position a full cycle that starts reading at `now` leaves for polling: `START_MARGIN`
/// before the read, so no change made during the read is lost.
pub fn start_point(now: DateTime<Utc>) -> LogCursor {
    LogCursor {
        after: None,
        since: now - START_MARGIN,
        polled_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::logs::LogTarget;

    const APP: &str = "0oa-app";

    fn at(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_760_000_000 + i64::from(s), 0).unwrap()
    }

    fn target(kind: &str, id: &str) -> LogTarget {
        LogTarget {
            id: id.into(),
            kind: kind.into(),
            alternate_id: None,
        }
    }

    fn event(kind: &str, s: u32, targets: Vec<LogTarget>) -> LogEvent {
        LogEvent {
            uuid: format!("{kind}-{s}"),
            published: at(s),
            event_type: kind.into(),
            targets,
        }
    }

    fn user_ids(h: &Hints) -> Vec<&str> {
        h.users.keys().map(|k| k.as_str()).collect()
    }

    #[test]
    fn user_events_name_their_users_with_the_earliest_time() {
        let events = vec![
            event("user.lifecycle.deactivate", 5, vec![target("User", "00u1")]),
            event(
                "application.user_membership.remove",
                3,
                vec![
                    target("AppUser", "0ua9"),
                    target("AppInstance", APP),
                    target("User", "00u2"),
                ],
            ),
            // A duplicate and a late copy: the earliest time wins.
            event("user.lifecycle.deactivate", 2, vec![target("User", "00u1")]),
            event(
                "user.account.update_profile",
                9,
                vec![target("User", "00u3")],
            ),
        ];
        let h = hints(&events, APP);
        assert_eq!(user_ids(&h), ["00u1", "00u2", "00u3"]);
        assert_eq!(h.users[&OktaUserId::new("00u1")], at(2));
        assert_eq!(h.full_cycle, None);
        assert_eq!(h.newest, Some(at(9)));
        assert_eq!(h.by_type["user.lifecycle.deactivate"], 2);
    }

    #[test]
    fn other_apps_are_ignored_and_group_assignments_ask_for_a_full_cycle() {
        let other = vec![target("AppInstance", "0oa-other"), target("User", "00u1")];
        let h = hints(&[event("application.user_membership.add", 1, other)], APP);
        assert!(h.users.is_empty());
        assert_eq!(h.full_cycle, None);
        let ours = vec![target("UserGroup", "00g1"), target("AppInstance", APP)];
        let h = hints(
            &[event("group.application_assignment.remove", 1, ours)],
            APP,
        );
        assert_eq!(h.full_cycle, Some(FullCycleReason::GroupAssignment));
        let theirs = vec![target("UserGroup", "00g1"), target("AppInstance", "0oa-x")];
        let h = hints(&[event("group.application_assignment.add", 1, theirs)], APP);
        assert_eq!(h.full_cycle, None);
    }

    #[test]
    fn an_event_that_names_no_user_is_never_dropped() {
        let h = hints(
            &[event(
                "user.lifecycle.deactivate",
                1,
                vec![target("User", " ")],
            )],
            APP,
        );
        assert_eq!(h.full_cycle, Some(FullCycleReason::UnresolvedEvent));
        // Membership of a group: the user is read again (the group may be assigned).
        let h = hints(
            &[event(
                "group.user_membership.remove",
                1,
                vec![target("User", "00u7"), target("UserGroup", "00g1")],
            )],
            APP,
        );
        assert_eq!(user_ids(&h), ["00u7"]);
    }

    #[test]
    fn the_filter_asks_for_every_type_read() {
        let f = filter_expression();
        for t in USER_EVENT_TYPES.iter().chain(GROUP_EVENT_TYPES.iter()) {
            assert!(f.contains(&format!("eventType eq \"{t}\"")), "{t}");
        }
        assert_eq!(f.matches(" or ").count(), 14);
    }

    #[test]
    fn batch_limits_follow_the_cost_of_a_full_read() {
        assert_eq!(max_batch_users(100_000, 500), 200);
        assert_eq!(max_batch_users(6, 500), MIN_FULL_CYCLE_USERS);
        assert_eq!(max_batch_users(0, 0), MIN_FULL_CYCLE_USERS);
    }

    #[test]
    fn old_or_missing_positions_are_not_resumed() {
        let now = at(0) + TimeDelta::days(100);
        assert_eq!(resumable(None, now), Err(FullCycleReason::Start));
        let mut c = start_point(now - TimeDelta::days(81));
        assert_eq!(resumable(Some(&c), now), Err(FullCycleReason::CursorTooOld));
        c.polled_at = now - TimeDelta::days(1);
        assert_eq!(resumable(Some(&c), now), Ok(()));
        assert_eq!(start_point(now).since, now - START_MARGIN);
    }
}
