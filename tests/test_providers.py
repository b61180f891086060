"""CelestraProvider on its own: value domains, purity, cost, and the time windows that
define "expired", "active" and "future" for both data paths."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

import faker
import pytest

from pytest_celestra.rows import providers, story
from pytest_celestra.rows.providers import (
    CHANGEABLE_COLUMNS,
    DAY,
    INVITATION_STATUS_FOR_STATE,
    KNOWLEDGE_TYPES,
    NOTIFICATIONS,
    PLATFORM_DOMAIN,
    SIGNED_EVENT_TYPES,
    UNKNOWN_EMAIL_REASON,
    CelestraProvider,
    Weighted,
    company_domain,
    email_address,
)
from pytest_celestra.schema.models import AuditEventType, NotificationStatus, NotificationType

URL_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
DRAWS = 2000


@pytest.fixture
def p() -> CelestraProvider:
    return CelestraProvider.seeded(20240229)


def public_methods() -> list[str]:
    return [
        name
        for name in vars(CelestraProvider)
        if not name.startswith("_") and callable(getattr(CelestraProvider, name))
    ]


def test_no_method_shadows_a_standard_faker_formatter():
    standard = {name for provider in faker.Faker().providers for name in dir(provider)}
    assert not set(public_methods()) & standard


def test_seeded_providers_are_reproducible_and_seed_dependent():
    def draws(seed):
        p = CelestraProvider.seeded(seed)
        return [p.company_name(), p.person_name(), p.url_token(), p.celestra_uuid()]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


CHEAP_CALLS = {
    "company_name": lambda p: p.company_name(),
    "person_name": lambda p: p.person_name(),
    "email_address": lambda p: p.email_address("Ada Lovelace", "brightharbor.com"),
    "agent_name": lambda p: p.agent_name(),
    "agent_description": lambda p: p.agent_description(),
    "knowledge_base_description": lambda p: p.knowledge_base_description(),
    "knowledge_source_name": lambda p: p.knowledge_source_name("Web page", "acme.com"),
    "url_token": lambda p: p.url_token(),
    "ip_address": lambda p: p.ip_address(),
    "celestra_uuid": lambda p: p.celestra_uuid(),
    "user_status": lambda p: p.user_status(),
    "audit_change": lambda p: p.audit_change("agents", "name"),
    "session_times": lambda p: p.session_times("active", -100 * DAY),
    "notification_times": lambda p: p.notification_times(
        NotificationStatus.DELIVERED, True, "past", -100 * DAY
    ),
}


class _CountingRandom:
    """A random generator that counts the draws made from it."""

    def __init__(self, rng):
        self.rng, self.draws = rng, 0

    def __getattr__(self, name):
        self.draws += 1
        return getattr(self.rng, name)


@pytest.mark.parametrize("name", CHEAP_CALLS)
def test_every_draw_is_cheap(p, name, monkeypatch):
    """A draw takes a few values of the random generator and no Faker formatter (which
    costs tens of microseconds): the cost does not depend on the machine's load."""
    counting = _CountingRandom(p.generator.random)
    monkeypatch.setattr(p.generator, "random", counting)

    def no_formatter(*args, **kwargs):
        raise AssertionError(f"{name} calls a Faker formatter")

    monkeypatch.setattr(p.generator, "format", no_formatter)
    for _ in range(200):
        CHEAP_CALLS[name](p)
    assert counting.draws / 200 <= 12, f"{name}: {counting.draws / 200:.1f} draws per call"


# --- names, domains, emails --------------------------------------------------------------


def test_company_domain_is_a_pure_slug_with_a_tld(p):
    for _ in range(DRAWS):
        name = p.company_name(p.company_vertical())
        domain = company_domain(name)
        assert DOMAIN.match(domain), (name, domain)
        assert domain == company_domain(name)
        assert domain != PLATFORM_DOMAIN
    assert company_domain("Bright Harbor Labs Inc.").startswith("brightharborlabs.")
    assert company_domain("Moore & Patel") == company_domain("Moore and Patel LLC")


def test_company_names_vary(p):
    names = [p.company_name() for _ in range(DRAWS)]
    assert len(set(names)) > 0.9 * DRAWS


def test_email_is_lower_case_on_the_domain_and_numbered_on_request():
    assert email_address("Ada Lovelace", "acme.com").endswith("@acme.com")
    plain = email_address("Ada Lovelace", "acme.com")
    numbered = email_address("Ada Lovelace", "acme.com", 7)
    assert plain != numbered
    assert numbered.split("@")[0].endswith("7")
    assert email_address("ADA LOVELACE", "acme.com") == plain
    assert re.match(r"^[a-z0-9._]+@acme\.com$", plain)


def test_one_local_part_convention_per_domain():
    shapes = {
        re.sub(r"[a-z]+", "w", email_address(n, "acme.com").split("@")[0])
        for n in ("Ada Lovelace", "Grace Hopper", "Alan Turing")
    }
    assert len(shapes) == 1


# --- tokens, addresses, signatures -----------------------------------------------------


def test_tokens_are_url_safe_long_and_unique(p):
    tokens = [p.url_token() for _ in range(DRAWS)]
    assert all(URL_SAFE_TOKEN.match(t) for t in tokens)
    assert len(set(tokens)) == DRAWS


def test_ip_addresses_parse_and_include_both_versions(p):
    versions = Counter(ipaddress.ip_address(p.ip_address()).version for _ in range(DRAWS))
    assert versions[4] > versions[6] > 0


def test_uuids_are_version_4(p):
    assert all(p.celestra_uuid().version == 4 for _ in range(100))


def test_signatures_are_base64_of_64_bytes(p):
    assert all(len(p.digital_signature()) == 88 for _ in range(100))


# --- catalogues ----------------------------------------------------------------------------


def test_every_notification_type_has_a_catalogue_entry(p):
    assert set(NOTIFICATIONS) == set(NotificationType)
    for kind in NotificationType:
        assert p.notification_title(kind)
        assert p.notification_message(kind) in NOTIFICATIONS[kind][1]
        assert p.notification_priority(kind) in NOTIFICATIONS[kind][2]


def test_knowledge_source_names_fit_their_type(p):
    patterns = {
        "PDF document": r"\.pdf$",
        "Web page": r"^https://[a-z]+\.acme\.com/",
        "Confluence space": r"^[A-Z]+ space$",
        "Git repository": r"^github\.com/acme/",
        "Slack channel": r"^#[a-z-]+$",
        "Jira project": r"^[A-Z]+ project$",
        "Zendesk help center": r"^acme\.zendesk\.com/",
    }
    assert len(KNOWLEDGE_TYPES) >= 10
    for type_name in KNOWLEDGE_TYPES:
        name = p.knowledge_source_name(type_name, "acme.com")
        assert name
        if type_name in patterns:
            assert re.search(patterns[type_name], name), (type_name, name)


def test_failure_reasons(p):
    assert p.failure_reason(known_user=False) == UNKNOWN_EMAIL_REASON
    assert all(p.failure_reason() != UNKNOWN_EMAIL_REASON for _ in range(200))


def test_audit_reasons_only_for_signed_events(p):
    for event in AuditEventType:
        reason = p.audit_reason(event)
        assert (reason is not None) == (event in SIGNED_EVENT_TYPES)


@pytest.mark.parametrize("table", CHANGEABLE_COLUMNS)
def test_audit_changes_change_something(p, table):
    assert len(CHANGEABLE_COLUMNS[table]) >= 3
    for _ in range(300):
        column = story.changed_columns(p, p.change_event(table), table, 1)[0]
        assert p.audit_change(table, column)[0] == column
        assert column in CHANGEABLE_COLUMNS[table]
        old, new = p.audit_change(table, column)[1:]
        assert old != new
    # Which column changes is story.changed_columns' rule alone: the provider draws none.
    with pytest.raises(TypeError, match="column"):
        p.audit_change(table)
    column = CHANGEABLE_COLUMNS[table][0]
    present = p.column_value(table, column)
    assert p.audit_change(table, column, new=present)[2] == present
    assert p.audit_change(table, column, old=present)[1] == present
    event = p.change_event(table)
    columns = story.changed_columns(p, event, table, len(CHANGEABLE_COLUMNS[table]))
    assert sorted(columns) == sorted(CHANGEABLE_COLUMNS[table])
    with pytest.raises(ValueError, match="changeable columns"):
        story.changed_columns(p, event, table, len(CHANGEABLE_COLUMNS[table]) + 1)


def test_role_changes_only_on_users(p):
    events = {p.change_event("users") for _ in range(200)}
    assert events == {AuditEventType.ROLE_ASSIGNMENT_CHANGE, AuditEventType.CONFIGURATION_UPDATE}
    assert {p.change_event("agents") for _ in range(50)} == {AuditEventType.CONFIGURATION_UPDATE}
    role_change = AuditEventType.ROLE_ASSIGNMENT_CHANGE
    firsts = {story.changed_columns(p, role_change, "users", 2)[0] for _ in range(50)}
    assert firsts == {"role"}


# --- weights ---------------------------------------------------------------------------------


def test_weighted_draws_follow_the_weights(p):
    weighted = Weighted({"a": 80, "b": 15, "c": 5})
    counts = Counter(weighted.draw(p.rng) for _ in range(20000))
    assert 0.77 < counts["a"] / 20000 < 0.83
    assert 0.03 < counts["c"] / 20000 < 0.07


def test_covering_draws_give_each_value_once_then_draw(p):
    """The generator's one rule for small volumes: every value first, then weighted."""
    from pytest_celestra.rows.steps.draw import covering

    weighted = Weighted({"a": 80, "b": 15, "c": 5})
    draw = covering({"a": 80, "b": 15, "c": 5}, lambda: weighted.draw(p.rng))
    assert [draw() for _ in range(3)] == ["a", "b", "c"]
    assert Counter(draw() for _ in range(2000))["a"] > 1400


def test_weights_are_module_constants_over_every_value():
    from pytest_celestra.schema.models import AgentStatus, CompanyStatus, UserStatus

    assert set(providers.USER_STATUS_WEIGHTS) == set(UserStatus)
    assert set(providers.AGENT_STATUS_WEIGHTS) == set(AgentStatus)
    assert set(providers.COMPANY_STATUS_WEIGHTS) == set(CompanyStatus)
    top = max(providers.USER_STATUS_WEIGHTS, key=providers.USER_STATUS_WEIGHTS.__getitem__)
    assert top is UserStatus.ACTIVE


# --- time windows ----------------------------------------------------------------------------

LOWERS = [-400 * DAY, -31 * DAY, -2 * DAY, -90]


@pytest.mark.parametrize("lower", LOWERS)
def test_session_windows(p, lower):
    for _ in range(300):
        for state in ("expired", "active", "long"):
            created, expires = p.session_times(state, lower)
            assert created >= lower
            assert expires > created
            if lower <= -30 * DAY:
                assert created <= 0
                if state == "expired":
                    assert expires < 0
                elif state == "active":
                    assert expires >= 2 * DAY
                else:
                    assert expires > 7 * DAY


@pytest.mark.parametrize("lower", LOWERS)
def test_invitation_windows(p, lower):
    for _ in range(300):
        for state, statuses in INVITATION_STATUS_FOR_STATE.items():
            created, sent, expires, updated = p.invitation_times(state, lower)
            assert lower <= created <= sent < expires
            assert created <= updated
            assert p.invitation_status(state) in statuses
            if lower <= -30 * DAY:
                assert max(sent, updated) <= 0
                if state == "open":
                    assert expires >= 2 * DAY
                elif state == "far":
                    assert expires > 7 * DAY
                elif state == "expired":
                    assert expires < 0


@pytest.mark.parametrize("lower", LOWERS)
def test_lockout_windows(p, lower):
    for _ in range(300):
        for state in ("ended", "active", "long"):
            start, end, updated = p.lockout_times(state, lower)
            assert start >= lower
            assert end > start
            assert updated >= start
            if lower <= -30 * DAY:
                assert start - 30 * 60 >= lower
                assert max(start, updated) <= 0
                if state == "ended":
                    assert end < 0
                elif state == "active":
                    assert end >= 2 * DAY
                else:
                    assert end > 7 * DAY


@pytest.mark.parametrize("lower", LOWERS)
@pytest.mark.parametrize("status", list(NotificationStatus))
def test_notification_windows(p, lower, status):
    for _ in range(200):
        for expiry in ("past", "future"):
            read = status is NotificationStatus.DELIVERED and p.notification_is_read()
            created, delivered, read_at, expires, updated = p.notification_times(
                status, read, expiry, lower
            )
            assert created >= lower
            assert expires > created
            assert (delivered is not None) == (status is NotificationStatus.DELIVERED)
            assert (read_at is not None) == read
            assert created <= (delivered or created) <= (read_at or delivered or created)
            assert updated == max(t for t in (created, delivered, read_at) if t is not None) or (
                status is NotificationStatus.FAILED and updated >= created
            )
            if lower <= -30 * DAY:
                assert max(t for t in (created, delivered, read_at, updated) if t is not None) <= 0
                assert (expires < 0) if expiry == "past" else (expires >= 2 * DAY)


def test_a_column_no_audit_change_touches_is_an_error_not_another_columns_value(p):
    """`audit_change("companies", "name")` gave a knowledge base's name, and
    `("users", "description")` a company's description."""
    for table, column in [("companies", "name"), ("users", "description"), ("agents", "x")]:
        with pytest.raises(ValueError, match=rf"{table}\.{column} is not a column an audit"):
            p.audit_change(table, column)
    for table, columns in CHANGEABLE_COLUMNS.items():
        for column in columns:  # every changeable column has its values
            assert p.column_value(table, column)
