"""The cross-table rules of ``pytest_celestra.rows.story``, as functions: what both data paths
call (the SQL checks of the rules on seeded and factory data are in ``test_realism`` and
``test_factories``)."""

from __future__ import annotations

import pytest

from pytest_celestra.rows import story
from pytest_celestra.rows.providers import DAY, MINUTE, CelestraProvider
from pytest_celestra.schema.models import (
    AgentStatus,
    CompanyStatus,
    KnowledgeBaseStatus,
    NotificationType,
    UserStatus,
)

ACTIVE, SUSPENDED, ARCHIVED = CompanyStatus.ACTIVE, CompanyStatus.SUSPENDED, CompanyStatus.ARCHIVED


@pytest.mark.parametrize(
    ("company", "expected"),
    [(None, UserStatus.ACTIVE), (ACTIVE, UserStatus.ACTIVE), (SUSPENDED, UserStatus.SUSPENDED),
     (ARCHIVED, UserStatus.ARCHIVED)],
)  # fmt: skip
def test_members_follow_their_company(company, expected):
    assert story.member_status(company, UserStatus.ACTIVE) is expected
    # A status that is not ACTIVE already stays.
    assert story.member_status(company, UserStatus.BLOCKED) is UserStatus.BLOCKED


def test_agents_and_knowledge_bases_of_a_closed_company_are_not_live():
    for company in (SUSPENDED, ARCHIVED):
        assert story.agent_status(company, AgentStatus.ACTIVE) not in story.LIVE_AGENT_STATUSES
        for drawn in story.LIVE_KNOWLEDGE_BASE_STATUSES:
            status = story.knowledge_base_status(company, drawn)
            assert status not in story.LIVE_KNOWLEDGE_BASE_STATUSES
    assert story.agent_status(ACTIVE, AgentStatus.ACTIVE) is AgentStatus.ACTIVE
    assert story.agent_status(ARCHIVED, AgentStatus.DRAFT) is AgentStatus.DRAFT
    assert (
        story.knowledge_base_status(ACTIVE, KnowledgeBaseStatus.BUILDING)
        is KnowledgeBaseStatus.BUILDING
    )


def test_closed_companies_hold_a_minority_of_the_headcount():
    weights = [1.0, 2.5, 6.0, 15.0, 2.0]
    statuses = [ARCHIVED, SUSPENDED, ACTIVE, ARCHIVED, SUSPENDED]
    result = story.mostly_open(statuses, weights)
    closed = sum(w for s, w in zip(result, weights, strict=True) if s is not ACTIVE)
    assert closed <= story.CLOSED_HEADCOUNT_SHARE * sum(weights)
    # The largest closed company reopened; the small ones stay closed.
    assert result == [ARCHIVED, SUSPENDED, ACTIVE, ACTIVE, SUSPENDED]


def test_status_changes_fall_in_the_window_and_not_after_the_company_closed():
    p = CelestraProvider.seeded(3)
    lower, upper = story.STATUS_CHANGED
    for created in (-400 * DAY, -31 * DAY, -2 * DAY):
        for _ in range(50):
            changed = story.status_changed(p, created)
            assert changed >= created
            assert changed >= lower or changed == created
            assert changed <= upper or changed == created
            closed = story.status_changed(p, created, closed=-10 * DAY)
            assert closed <= max(created, -10 * DAY)


def test_notifications_follow_their_event_within_the_delay():
    p = CelestraProvider.seeded(5)
    for event in (-300 * DAY, -DAY, -5 * MINUTE):
        for _ in range(50):
            notified = story.notified_after(p, event)
            assert story.NOTIFICATION_DELAY[0] <= notified - event <= story.NOTIFICATION_DELAY[1]
            assert notified <= -MINUTE
            before = story.event_before(p, notified, lower=-400 * DAY)
            assert notified - story.NOTIFICATION_DELAY[1] <= before <= notified


def test_password_notices_come_while_the_password_is_old_and_still_in_use():
    set_at = -200 * DAY
    earliest, latest = story.password_notice_window(set_at, next_change=0)
    assert earliest == set_at + story.PASSWORD_EXPIRY_NOTICE[0]
    assert latest == set_at + story.PASSWORD_EXPIRY_NOTICE[1]
    # Changed again before it got old enough: no notice.
    assert story.password_notice_window(set_at, next_change=set_at + 30 * DAY) is None
    # Too recent to be old yet.
    assert story.password_notice_window(-10 * DAY, next_change=0) is None
    # Notices reach back a year at most, like all activity.
    assert story.password_notice_window(-500 * DAY, next_change=0) is None
    year = -365 * DAY
    assert story.password_notice_window(year - 80 * DAY, next_change=0) == (
        year,
        year + 10 * DAY,
    )


def test_every_notification_type_reports_an_event_or_is_event_free():
    reported = set(story.NOTIFICATION_EVENTS)
    free = set(story.EVENT_FREE_NOTIFICATION_TYPES)
    assert reported | free == set(NotificationType)
    assert not reported & free
    assert set(story.NOTIFICATION_EVENTS.values()) >= story.COMPANY_EVENTS


@pytest.mark.parametrize(
    ("draw", "weights", "live"),
    [
        ("invitation_state", "INVITATION_STATE_WEIGHTS", story.OPEN_INVITATION_STATES),
        ("session_state", "SESSION_STATE_WEIGHTS", story.LIVE_SESSION_STATES),
    ],
)
def test_a_user_who_left_holds_the_other_states_with_their_weights(draw, weights, live):
    """story.state_of_user: no live state for a user who is not ACTIVE, the others in the
    proportions of the spec's table (within 3 points of 4,000 draws); an ACTIVE user's
    states follow the whole table."""
    from collections import Counter

    from pytest_celestra.schema import spec

    p = CelestraProvider.seeded(5)
    table = getattr(spec, weights)
    left = Counter(story.state_of_user(getattr(p, draw), live, active=False) for _ in range(4000))
    assert not set(left) & live
    others = {state: w for state, w in table.items() if state not in live}
    for state, weight in others.items():
        assert abs(left[state] / 4000 - weight / sum(others.values())) < 0.03, state
    active = Counter(story.state_of_user(getattr(p, draw), live, active=True) for _ in range(4000))
    assert set(active) == set(table)


def test_a_state_whose_moment_is_known_is_one_whose_window_holds_it():
    """story.state_of_user with `fits` (story.states_holding over the provider's windows):
    an invitation sent 20 days ago is accepted, expired or cancelled, in the table's
    proportions; one sent an hour ago is open, far or cancelled (a user who left: cancelled);
    a moment no window holds leaves the whole table."""
    from collections import Counter

    from pytest_celestra.rows.providers import invitation_sent_window
    from pytest_celestra.schema import spec

    p = CelestraProvider.seeded(5)
    table, live = spec.INVITATION_STATE_WEIGHTS, story.OPEN_INVITATION_STATES

    def holding(moment: int) -> list[str]:
        return story.states_holding(moment, table, lambda s: invitation_sent_window(s, -DAY * 900))

    old = holding(-20 * DAY)
    assert sorted(old) == ["accepted", "cancelled", "expired"]
    drawn = Counter(story.state_of_user(p.invitation_state, live, True, old) for _ in range(4000))
    for state in old:
        share = table[state] / sum(table[s] for s in old)
        assert abs(drawn[state] / 4000 - share) < 0.03, state
    recent = holding(-2 * 3600)
    assert sorted(recent) == ["cancelled", "far", "open"]
    left = {story.state_of_user(p.invitation_state, live, False, recent) for _ in range(200)}
    assert left == {"cancelled"}
    assert story.states_holding(-1000 * DAY, table, lambda s: invitation_sent_window(s, 0)) == []
    anything = {story.state_of_user(p.invitation_state, live, True, []) for _ in range(400)}
    assert anything == set(table)


def test_a_sign_out_ends_a_session_of_a_state_that_holds_its_moment():
    """A sign-out's moment picks the session it ends as a sign-in's picks the session it
    starts: story.states_holding over providers.session_held_window gives the states whose
    session can be in progress then (an expired one until a week after its latest start, a
    live one from its earliest start on, none after the user left), and
    session_times_holding gives that state's times around the moment: created in the
    state's window at or before it, expiring at or after it. A moment no window holds
    still lies inside its session."""
    from pytest_celestra.rows.providers import (
        HOUR,
        session_created_window,
        session_held_window,
    )
    from pytest_celestra.schema import spec

    p = CelestraProvider.seeded(5)
    table, lower = spec.SESSION_STATE_WEIGHTS, -400 * DAY

    def holding(moment: int, until: int = 0) -> list[str]:
        return story.states_holding(moment, table, lambda s: session_held_window(s, lower, until))

    assert holding(-100 * DAY) == ["expired"]
    assert sorted(holding(-2 * DAY)) == ["expired", "long"]
    assert sorted(holding(-2 * HOUR)) == ["active", "long"]
    assert holding(-2 * HOUR, until=-3 * HOUR) == []  # the user had left
    assert holding(-300 * DAY) == []
    # A user created a week ago had no expired session (one started 8 days ago or more),
    # and no state's session holds five days ago; a sign-out then still lies inside the
    # session it ends, started after the user's creation.
    assert session_held_window("expired", -7 * DAY)[0] > session_held_window("expired", -7 * DAY)[1]
    assert story.states_holding(-5 * DAY, table, lambda s: session_held_window(s, -7 * DAY)) == []
    created, expires = p.session_times_holding("expired", -5 * DAY, -7 * DAY)
    assert -7 * DAY <= created <= -5 * DAY <= expires
    lengths = []
    for moment in (-100 * DAY, -20 * DAY, -2 * DAY, -6 * HOUR, -2 * HOUR, -300 * DAY):
        fits = holding(moment)
        for state in fits or table:
            for _ in range(50):
                created, expires = p.session_times_holding(state, moment, lower)
                assert created <= moment <= expires, (state, moment)
                assert expires - created >= spec.MIN_VALIDITY
                if state in fits:
                    earliest, latest = session_created_window(state, lower)
                    assert earliest <= created <= latest, (state, moment)
                    assert state != "expired" or expires <= spec.LAST_MOMENT
                lengths.append(expires - created)
    assert max(lengths) > 7 * DAY  # sessions of the spec's states, not one-hour ones
    assert sum(length > HOUR for length in lengths) > len(lengths) / 2


def test_only_active_users_can_be_locked_out():
    assert [s.value for s in UserStatus if story.lockable(s.value)] == ["ACTIVE"]


def test_mostly_active_makes_the_last_drawn_users_active_keeping_each_status():
    A, S, B, X = (UserStatus.ACTIVE, UserStatus.SUSPENDED, UserStatus.BLOCKED, UserStatus.ARCHIVED)
    statuses = [A, S, S, B, X, X, S, B]
    drawn = [True, False, True, True, True, True, True, True]
    # From the end, each drawn one whose status another user keeps, until 5 of 8 are ACTIVE:
    # the last of each status stays (index 3, 4), and so does one not drawn (index 1).
    assert story.mostly_active(statuses, drawn) == [A, S, A, B, X, A, A, A]
    assert story.mostly_active([A, A, S], [True] * 3) == [A, A, S]  # most are ACTIVE already
