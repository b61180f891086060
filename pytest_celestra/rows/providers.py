"""The value domain of every Celestra column, as one Faker provider.

Both data paths draw from [`CelestraProvider`][pytest_celestra.rows.providers.CelestraProvider]:
the factories through `factory.Faker("<method>")` and the bulk scenario builder by calling
the methods of a seeded instance, so the two can never drift. Every method is cheap (a few
microseconds): word pools are built once at import and values are drawn with
`self.generator.random`; no per-call Faker formatter (`name()`, `sentence()` ...) is used.

Times are offsets in whole seconds from a reference instant (negative = past): the
scenario's anchor for the bulk path, "now" for the factories. The `*_times` methods
define what "expired", "active" and "future" mean for both paths.

Example:
    ```python
    provider = CelestraProvider.seeded(42)
    name = provider.company_name()
    provider.email_address(provider.person_name(), company_domain(name))
    ```
"""

from __future__ import annotations

import base64
import bisect
import functools
import itertools
import re
import uuid
import zlib
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from faker import Generator
from faker.providers import BaseProvider
from faker.providers.person.en_US import Provider as _EnUsPerson

from pytest_celestra.schema import spec
from pytest_celestra.schema import vocabulary as words
from pytest_celestra.schema.models import (
    AgentStatus,
    AuditEventType,
    CompanySize,
    CompanyStatus,
    CompanyVertical,
    KnowledgeBaseStatus,
    NotificationStatus,
    UserStatus,
)
from pytest_celestra.schema.spec import *  # noqa: F403  (the spec's names stay importable here)

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from pytest_celestra.schema.models import (
        InvitationStatus,
        NotificationPriority,
        NotificationType,
    )

FIRST_NAMES: tuple[str, ...] = tuple(_EnUsPerson.first_names)
LAST_NAMES: tuple[str, ...] = tuple(_EnUsPerson.last_names)

T = TypeVar("T", bound=Hashable)
V = TypeVar("V")


class Weighted(Generic[T]):
    """A weighted choice prepared once; [`draw`][pytest_celestra.rows.providers.Weighted.draw]
    costs one `random()` and a bisect."""

    __slots__ = ("_cumulative", "_total", "values")

    def __init__(self, weights: Mapping[T, float]) -> None:
        self.values: tuple[T, ...] = tuple(weights)
        self._cumulative = list(itertools.accumulate(weights.values()))
        self._total = self._cumulative[-1]

    def draw(self, rng: random.Random) -> T:
        """One value, with probability proportional to its weight."""
        return self.values[bisect.bisect_right(self._cumulative, rng.random() * self._total)]


_FAILURE = Weighted(spec.KNOWN_USER_FAILURE_WEIGHTS)
_PRIORITY = {t: Weighted(entry[2]) for t, entry in spec.NOTIFICATIONS.items()}


def _drawn(weights: Mapping[T, float]) -> Callable[[CelestraProvider], T]:
    """A provider method drawing one value of `weights`."""
    weighted = Weighted(weights)
    return lambda provider: weighted.draw(provider.generator.random)


_ENUM_COLUMN_VALUES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("users", "role"): tuple(r.value for r in spec.USER_ROLE_WEIGHTS),
    ("users", "status"): tuple(s.value for s in UserStatus),
    ("agents", "status"): tuple(s.value for s in AgentStatus),
    ("agents", "agent_protocol"): tuple(spec.AGENT_PROTOCOL_WEIGHTS),
    ("knowledge_bases", "status"): tuple(s.value for s in KnowledgeBaseStatus),
    ("companies", "status"): tuple(s.value for s in CompanyStatus),
    ("companies", "size"): tuple(s.value for s in CompanySize),
    ("companies", "vertical"): tuple(v.value for v in CompanyVertical),
}


_SLUG_TOKENS = re.compile(r"[a-z0-9]+")
_NAME_PARTS = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=4096)  # a batch reads it for every row of a company
def company_domain(name: str) -> str:
    """The email domain of the company called `name`: a slug of the name plus a TLD.

    Pure and deterministic (the TLD comes from a CRC of the slug), so a company's
    domain can always be recomputed from its name:
    `company_domain("Bright Harbor Labs Inc.") == "brightharborlabs.com"`.
    """
    tokens = _SLUG_TOKENS.findall(name.lower())
    slug = "".join(t for t in tokens if t not in words.DOMAIN_STOPWORDS) or "company"
    return f"{slug}.{words.TLDS[zlib.crc32(slug.encode()) % len(words.TLDS)]}"


def email_address(name: str, domain: str, number: int | None = None) -> str:
    """The lower-case work email of `name` at `domain` (`number` makes it unique), in the
    domain's one convention: `first.last`, `flast` or `first_last`."""
    local = _local_part(name, _convention(domain))
    return f"{local}{'' if number is None else number}@{domain}"


@functools.lru_cache(maxsize=4096)  # a batch's rows share a few domains
def _convention(domain: str) -> int:
    return zlib.crc32(domain.encode()) % 3


def _local_part(name: str, convention: int) -> str:
    parts = _NAME_PARTS.findall(name.lower()) or ["user"]
    first, last = parts[0], parts[-1]
    return (f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}")[convention]


def knowledge_type_description(name: str) -> str | None:
    """The catalogue description of a knowledge type, or None for a type of your own."""
    entry = spec.KNOWLEDGE_TYPES.get(name)
    return entry[0] if entry else None


def session_created_window(state: str, lower: int, upper: int = 0) -> tuple[int, int]:
    """(earliest, latest) moment a session in `state` was created: not before `lower` (its
    user's creation), nor, when expired, after `upper`."""
    if state == "expired":
        earliest, latest = spec.SESSION_EXPIRED_CREATED
        return max(lower, earliest), min(upper, latest)
    if state == "active":
        return max(lower, spec.SESSION_ACTIVE_CREATED_EARLIEST), spec.LAST_MOMENT
    return max(lower, spec.SESSION_LONG_CREATED_EARLIEST), spec.LAST_MOMENT


def session_held_window(state: str, lower: int, upper: int = 0) -> tuple[int, int]:
    """(earliest, latest) moment a session in `state` of a user created at `lower` and
    ACTIVE until `upper` can be in progress (a sign-out's moment): from its
    [`session_created_window`][pytest_celestra.rows.providers.session_created_window] to the
    latest it can expire, not after `upper`."""
    earliest, latest = session_created_window(state, lower, upper)
    if earliest > latest:
        return earliest, latest  # no such session: none can be in progress
    if state == "expired":
        latest += spec.SESSION_EXPIRED_LENGTH[1]
    else:
        latest = spec.LAST_MOMENT  # a live session expires after now
    return earliest, min(latest, spec.LAST_MOMENT, upper)


def invitation_sent_window(state: str, lower: int, upper: int = 0) -> tuple[int, int]:
    """(earliest, latest) moment an invitation in `state` was sent: not before `lower`
    (the user's creation), nor, unless it is open now, after `upper`."""
    if state == "open":
        return max(lower, spec.INVITATION_OPEN_SENT_EARLIEST), spec.LAST_MOMENT
    if state == "far":
        return max(lower, spec.INVITATION_FAR_SENT_EARLIEST), spec.LAST_MOMENT
    return max(lower, spec.ACTIVITY_EARLIEST), min(spec.INVITATION_SENT_LATEST[state], upper)


def lockout_start_window(state: str, lower: int) -> tuple[int, int]:
    """(earliest, latest) moment a lockout in `state` of a user created at `lower` starts
    (an hour after it at least: room for the failed logins before it)."""
    earliest = lower + spec.LOCKOUT_AFTER_CREATED
    if state == "ended":
        return max(earliest, spec.ACTIVITY_EARLIEST), spec.LOCKOUT_ENDED_START_LATEST
    if state == "active":
        return max(earliest, spec.LOCKOUT_ACTIVE_START_EARLIEST), spec.LAST_MOMENT
    return max(earliest, spec.LOCKOUT_LONG_START_EARLIEST), spec.LAST_MOMENT


def fast_uuid(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from `rng`: reproducible, unlike `uuid.uuid4`."""
    # What `uuid.UUID(int=..., version=4)` makes, without its checks (half its cost).
    made = _new_object(uuid.UUID)
    _set_slot(made, "int", rng.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    _set_slot(made, "is_safe", uuid.SafeUUID.unknown)
    return made


_new_object, _set_slot = object.__new__, object.__setattr__
#: The variant (RFC 4122) and version (4) bits of a version-4 UUID.
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


_FREE_TEXT_COLUMNS: Mapping[tuple[str, str], str] = {
    ("users", "name"): "person_name",
    ("agents", "name"): "agent_name",
    ("agents", "description"): "agent_description",
    ("knowledge_bases", "name"): "knowledge_base_name",
    ("knowledge_bases", "description"): "knowledge_base_description",
    ("companies", "description"): "company_description",
}
"""The changeable columns of free text, and the method that makes a value of each."""


class CelestraProvider(BaseProvider):
    """Faker provider of every Celestra column's values (see the module docstring): the
    factories' through factory_boy's Faker, the scenario's
    [`seeded`][pytest_celestra.rows.providers.CelestraProvider.seeded]."""

    @classmethod
    def seeded(cls, seed: int) -> CelestraProvider:
        """A provider with its own `random.Random(seed)`, independent of global state."""
        generator = Generator()
        generator.seed_instance(seed)
        return cls(generator)

    @property
    def rng(self) -> random.Random:
        """The random generator every draw uses."""
        rng: random.Random = self.generator.random
        return rng

    # --- identifiers and secrets --------------------------------------------------------

    def celestra_uuid(self) -> uuid.UUID:
        """A version-4 UUID from this provider's random generator."""
        return fast_uuid(self.generator.random)

    def url_token(self) -> str:
        """A URL-safe token of 43 characters (32 random bytes, base64url, no padding)."""
        raw: bytes = self.generator.random.randbytes(32)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def digital_signature(self) -> str:
        """A base64 Ed25519-sized signature (64 random bytes)."""
        raw: bytes = self.generator.random.randbytes(64)
        return base64.b64encode(raw).decode("ascii")

    def ip_address(self) -> str:
        """A client IP address: public IPv4 mostly, some IPv6, a few office-network IPv4."""
        rng = self.generator.random
        roll = rng.random()
        bits = rng.getrandbits(32)
        if roll < spec.IP_ADDRESS_SHARES[0]:
            return f"2a0{bits & 7}:{bits >> 16:x}:{bits & 0xFFFF:x}::{rng.getrandbits(16):x}"
        if roll < spec.IP_ADDRESS_SHARES[1]:
            return f"10.{bits >> 16 & 255}.{bits >> 8 & 255}.{(bits & 253) + 1}"
        first = words.PUBLIC_FIRST_OCTETS[bits % len(words.PUBLIC_FIRST_OCTETS)]
        return f"{first}.{bits >> 8 & 255}.{bits >> 16 & 255}.{(bits >> 24 & 253) + 1}"

    def browser_user_agent(self) -> str:
        """A browser, desktop-app or CLI user agent string."""
        return words.USER_AGENTS[int(self.generator.random.random() * len(words.USER_AGENTS))]

    # --- companies ----------------------------------------------------------------------

    company_size = _drawn(spec.COMPANY_SIZE_WEIGHTS)
    company_vertical = _drawn(spec.COMPANY_VERTICAL_WEIGHTS)
    company_status = _drawn(spec.COMPANY_STATUS_WEIGHTS)

    def company_name(self, vertical: CompanyVertical | None = None) -> str:
        """A plausible company name whose last word fits `vertical` ("Bright Harbor Labs")."""
        rng = self.generator.random
        suffixes = words.VERTICAL_SUFFIXES[vertical or CompanyVertical.OTHER]
        pattern = rng.random()
        if pattern < spec.COMPANY_NAME_SHARES[0]:
            base = f"{_pick(rng, words.NAME_ADJECTIVES)} {_pick(rng, words.NAME_NOUNS)}"
        elif pattern < spec.COMPANY_NAME_SHARES[1]:
            base = _pick(rng, LAST_NAMES)
        else:
            return f"{_pick(rng, LAST_NAMES)} & {_pick(rng, LAST_NAMES)}"
        name = f"{base} {_pick(rng, suffixes)}"
        if rng.random() < spec.COMPANY_LEGAL_SUFFIX_SHARE:
            name = f"{name} {_pick(rng, words.LEGAL_SUFFIXES)}"
        return name

    def company_domain(self, name: str) -> str:
        """See [`company_domain`][pytest_celestra.rows.providers.company_domain]."""
        return company_domain(name)

    def company_description(self, vertical: CompanyVertical | None = None) -> str:
        """One sentence on what the company does and for whom."""
        rng = self.generator.random
        offering = _pick(rng, words.VERTICAL_OFFERINGS[vertical or CompanyVertical.OTHER])
        return f"{offering} for {_pick(rng, words.AUDIENCES)}.{_pick(rng, words.DESCRIPTION_TAILS)}"

    # --- users --------------------------------------------------------------------------

    def person_name(self) -> str:
        """First and last name from Faker's en_US pools."""
        rng = self.generator.random
        return f"{_pick(rng, FIRST_NAMES)} {_pick(rng, LAST_NAMES)}"

    def email_address(self, name: str, domain: str, number: int | None = None) -> str:
        """See [`email_address`][pytest_celestra.rows.providers.email_address]."""
        return email_address(name, domain, number)

    user_role = _drawn(spec.USER_ROLE_WEIGHTS)
    """The role of a company member (never SUPER_ADMIN)."""

    user_status = _drawn(spec.USER_STATUS_WEIGHTS)

    # --- agents and knowledge -----------------------------------------------------------

    def agent_name(self) -> str:
        rng = self.generator.random
        return f"{_pick(rng, words.AGENT_FUNCTIONS)} {_pick(rng, words.AGENT_KINDS)}"

    def agent_description(self) -> str:
        rng = self.generator.random
        verb, thing = _pick(rng, words.AGENT_VERBS), _pick(rng, words.AGENT_OBJECTS)
        return f"{verb} {thing} for {_pick(rng, words.TEAMS)}."

    agent_protocol = _drawn(spec.AGENT_PROTOCOL_WEIGHTS)
    """How the agent is wired: "MCP", "A2A", "OpenAI Assistants", "REST webhook" ..."""

    agent_status = _drawn(spec.AGENT_STATUS_WEIGHTS)

    def knowledge_base_name(self) -> str:
        rng = self.generator.random
        return f"{_pick(rng, words.DEPARTMENTS)} {_pick(rng, words.COLLECTIONS)}"

    def knowledge_base_description(self) -> str:
        rng = self.generator.random
        return (
            f"Curated {_pick(rng, words.COLLECTIONS).lower()} for {_pick(rng, words.TEAMS)}, "
            f"re-indexed {_pick(rng, words.KB_CADENCES)}."
        )

    knowledge_base_status = _drawn(spec.KNOWLEDGE_BASE_STATUS_WEIGHTS)
    knowledge_type_name = _drawn(
        {name: weight for name, (_, weight) in spec.KNOWLEDGE_TYPES.items()}
    )
    """A name from [`KNOWLEDGE_TYPES`][pytest_celestra.schema.spec.KNOWLEDGE_TYPES]."""

    def knowledge_type_description(self, name: str) -> str | None:
        """See
        [`knowledge_type_description`][pytest_celestra.rows.providers.knowledge_type_description]."""
        return knowledge_type_description(name)

    def knowledge_source_name(self, type_name: str, domain: str = "example.com") -> str:
        """What a source of `type_name` is called: a path, a URL, a space or channel name."""
        rng = self.generator.random
        org = domain.partition(".")[0]
        stem = _pick(rng, words.FILE_STEMS)
        match type_name:
            case "PDF document":
                return f"{_pick(rng, words.PDF_FOLDERS)}/{stem}.pdf"
            case "Web page":
                host, section = _pick(rng, words.WEB_HOSTS), _pick(rng, words.WEB_SECTIONS)
                return f"https://{host}.{domain}/{section}/{stem}"
            case "Confluence space":
                return f"{_pick(rng, words.SPACE_KEYS)} space"
            case "Git repository":
                return f"github.com/{org}/{_pick(rng, words.REPOS)}"
            case "Google Drive folder":
                return (
                    f"Shared drives/{_pick(rng, words.DEPARTMENTS)}/{_pick(rng, words.COLLECTIONS)}"
                )
            case "Notion workspace":
                return f"{_pick(rng, words.DEPARTMENTS)} wiki"
            case "SharePoint site":
                site = _pick(rng, words.DEPARTMENTS).replace(" ", "")
                return f"sites/{site}/Shared Documents"
            case "Jira project":
                return f"{_pick(rng, words.SPACE_KEYS)} project"
            case "Slack channel":
                return f"#{_pick(rng, words.SLACK_CHANNELS)}"
            case "Zendesk help center":
                return f"{org}.zendesk.com/hc/en-us"
            case "Markdown file":
                return f"{_pick(rng, words.REPOS)}/docs/{stem}.md"
            case "CSV dataset":
                return f"exports/{stem}.csv"
            case _:
                return f"{type_name} {stem}"

    # --- security events ----------------------------------------------------------------

    def failure_reason(self, known_user: bool = True) -> str:
        """Why a sign-in failed (for an unknown email: `UNKNOWN_EMAIL_REASON`)."""
        return _FAILURE.draw(self.generator.random) if known_user else spec.UNKNOWN_EMAIL_REASON

    def lockout_reason(self, state: str = "ended") -> str:
        return _pick(self.generator.random, words.LOCKOUT_REASONS[state])

    lockout_threshold = _drawn(spec.LOCKOUT_THRESHOLD_WEIGHTS)
    """Failed attempts after which an account locks (3, 5 or 10)."""

    audit_event_type = _drawn(spec.AUDIT_EVENT_WEIGHTS)
    """An event type that changes no row (row changes come from explicit choices)."""

    audit_action = _drawn(spec.AUDIT_ACTION_WEIGHTS)
    """A key of [`AUDIT_ACTIONS`][pytest_celestra.schema.spec.AUDIT_ACTIONS]: what a user did."""

    change_table = _drawn(spec.CHANGE_TABLE_WEIGHTS)
    """The table a row-changing audit log changed."""

    def change_event(self, table_name: str) -> AuditEventType:
        """ROLE_ASSIGNMENT_CHANGE for some changes of users, else CONFIGURATION_UPDATE."""
        if table_name == "users" and self.generator.random.random() < spec.ROLE_CHANGE_SHARE:
            return AuditEventType.ROLE_ASSIGNMENT_CHANGE
        return AuditEventType.CONFIGURATION_UPDATE

    def audit_description(
        self,
        event_type: AuditEventType,
        table_name: str | None = None,
        known_user: bool = True,
    ) -> str:
        """What happened, in the words of the audit trail."""
        if event_type is AuditEventType.ROLE_ASSIGNMENT_CHANGE:
            return words.ROLE_CHANGE_DESCRIPTION
        if event_type is AuditEventType.CONFIGURATION_UPDATE:
            return words.CHANGE_DESCRIPTIONS.get(table_name or "", "Updated configuration")
        if event_type is AuditEventType.FAILED_LOGIN and not known_user:
            return words.UNKNOWN_EMAIL_DESCRIPTION
        return _pick(self.generator.random, words.AUDIT_DESCRIPTIONS[event_type])

    def audit_reason(self, event_type: AuditEventType) -> str | None:
        """The stated reason of a signed event; None for events nobody signs."""
        if event_type not in spec.SIGNED_EVENT_TYPES:
            return None
        rng = self.generator.random
        if rng.random() < spec.TICKET_REASON_SHARE:
            return f"Requested in ticket {_pick(rng, words.TICKET_KEYS)}-{rng.randint(100, 9999)}"
        return _pick(rng, words.SIGNED_REASONS)

    def audit_change(
        self,
        table_name: str,
        column: str,
        old: str | None = None,
        new: str | None = None,
    ) -> tuple[str, str, str]:
        """`(column, old_value, new_value)` of one changed `column`, old != new; give the
        value before the change as `old` (factories) or after it as `new` (the scenario)."""
        if new is None:
            new = self.column_value(table_name, column, unlike=old)
        if old is None:
            old = self.column_value(table_name, column, unlike=new)
        return column, old, new

    def shuffled(self, values: Sequence[V]) -> list[V]:
        """`values` in a random order."""
        result = list(values)
        self.generator.random.shuffle(result)
        return result

    def column_value(self, table_name: str, column: str, unlike: str | None = None) -> str:
        """A value of a changeable column (as text), other than `unlike`."""
        domain = _ENUM_COLUMN_VALUES.get((table_name, column))
        if domain is not None:
            return _pick(self.generator.random, tuple(v for v in domain if v != unlike))
        value = self._free_text(table_name, column)
        while value == unlike:
            value = self._free_text(table_name, column)
        return value

    def _free_text(self, table_name: str, column: str) -> str:
        method = _FREE_TEXT_COLUMNS.get((table_name, column))
        if method is None:
            changeable = ", ".join(
                f"{table}.{name}"
                for table, names in spec.CHANGEABLE_COLUMNS.items()
                for name in names
            )
            raise ValueError(
                f"{table_name}.{column} is not a column an audit change touches; these are: "
                f"{changeable}"
            )
        return str(getattr(self, method)())

    # --- notifications ------------------------------------------------------------------

    notification_type = _drawn(spec.NOTIFICATION_TYPE_WEIGHTS)

    def notification_title(self, notification_type: NotificationType) -> str:
        return spec.NOTIFICATIONS[notification_type][0]

    def notification_message(self, notification_type: NotificationType) -> str:
        return _pick(self.generator.random, spec.NOTIFICATIONS[notification_type][1])

    def notification_priority(self, notification_type: NotificationType) -> NotificationPriority:
        return _PRIORITY[notification_type].draw(self.generator.random)

    def notification_action_url(self, notification_type: NotificationType) -> str | None:
        return spec.NOTIFICATIONS[notification_type][3]

    notification_status = _drawn(spec.NOTIFICATION_STATUS_WEIGHTS)
    notification_delivery_method = _drawn(spec.NOTIFICATION_DELIVERY_WEIGHTS)

    # --- time ---------------------------------------------------------------------------

    def moment(self, lower: int, upper: int) -> int:
        """An offset uniformly in `[lower, upper]`; `lower` if the range is empty."""
        if lower >= upper:
            return lower
        return lower + int(self.generator.random.random() * (upper - lower))

    def recent_moment(self, lower: int, upper: int) -> int:
        """An offset in `[lower, upper]`, recent ones (near `upper`) more likely."""
        if lower >= upper:
            return lower
        r = self.generator.random.random()
        return upper - int(r * r * (upper - lower))

    session_state = _drawn(spec.SESSION_STATE_WEIGHTS)

    def session_times(self, state: str, lower: int, upper: int = 0) -> tuple[int, int]:
        """`(created_at, expires_at)` of a session in `state`, created at/after `lower`
        (and, when expired, not after `upper`)."""
        earliest, latest = session_created_window(state, lower, upper)
        draw = self.recent_moment if state == "expired" else self.moment
        return self.session_times_from(state, draw(earliest, latest))

    def session_times_from(
        self, state: str, created: int, holding: int | None = None
    ) -> tuple[int, int]:
        """[`session_times`][pytest_celestra.rows.providers.CelestraProvider.session_times] of
        a session in `state` created at `created`; with `holding`, it expires at or after
        that moment."""
        if state == "expired":
            shortest, longest = spec.SESSION_EXPIRED_LENGTH
            if holding is not None:
                shortest = max(shortest, holding - created)
            expires = min(created + self.moment(shortest, longest), spec.LAST_MOMENT)
        else:
            live = spec.SESSION_ACTIVE_EXPIRES if state == "active" else spec.SESSION_LONG_EXPIRES
            expires = self.moment(*live)
        latest = created if holding is None else holding
        return created, max(expires, created + spec.MIN_VALIDITY, latest)

    def session_times_holding(
        self, state: str, moment: int, lower: int, upper: int = 0
    ) -> tuple[int, int]:
        """[`session_times`][pytest_celestra.rows.providers.CelestraProvider.session_times] of
        a session in `state` (of a user created at `lower`, ACTIVE until `upper`) in
        progress at `moment`, a moment of its
        [`session_held_window`][pytest_celestra.rows.providers.session_held_window] (outside
        it, as close to the window as `moment` allows)."""
        earliest, latest = session_created_window(state, lower, upper)
        if state == "expired":
            earliest = max(earliest, moment - spec.SESSION_EXPIRED_LENGTH[1])
        floor = min(lower, moment)
        latest = max(floor, min(latest, moment))
        created = self.moment(max(floor, min(earliest, latest)), latest)
        return self.session_times_from(state, created, holding=moment)

    invitation_state = _drawn(spec.INVITATION_STATE_WEIGHTS)

    def invitation_status(self, state: str) -> InvitationStatus:
        return _pick(self.generator.random, spec.INVITATION_STATUS_FOR_STATE[state])

    def invitation_times(self, state: str, lower: int, upper: int = 0) -> tuple[int, int, int, int]:
        """`(created_at, sent_at, expires_at, updated_at)` of an invitation in `state`."""
        earliest, latest = invitation_sent_window(state, lower, upper)
        draw = self.moment if state in ("open", "far") else self.recent_moment
        return self.invitation_times_from(state, draw(earliest, latest), lower)

    def invitation_times_from(self, state: str, sent: int, lower: int) -> tuple[int, int, int, int]:
        """[`invitation_times`][pytest_celestra.rows.providers.CelestraProvider.invitation_times]
        of an invitation in `state` sent at `sent`, created not before `lower`."""
        validity = spec.INVITATION_FAR_VALIDITY if state == "far" else spec.INVITATION_VALIDITY
        expires = sent + validity
        created = max(lower, sent - self.moment(0, spec.INVITATION_CREATED_LEAD))
        sent = max(sent, created)
        if state == "expired":
            updated = max(sent, min(expires, spec.LAST_MOMENT))
        elif state in ("accepted", "cancelled"):
            soonest, latest = spec.INVITATION_ANSWERED
            updated = self.moment(sent + soonest, min(sent + latest, spec.LAST_MOMENT))
        else:
            updated = sent
        return created, sent, max(expires, sent + spec.MIN_VALIDITY), max(updated, created)

    def invitation_resend_count(self) -> int:
        rng = self.generator.random
        if rng.random() < spec.INVITATION_NOT_RESENT_SHARE:
            return 0
        resends: int = rng.randint(*spec.INVITATION_RESENDS)
        return resends

    lockout_state = _drawn(spec.LOCKOUT_STATE_WEIGHTS)

    def lockout_times(self, state: str, lower: int) -> tuple[int, int, int]:
        """`(lockout_start, lockout_end, updated_at)` of a user created at `lower`;
        created_at is lockout_start."""
        earliest, latest = lockout_start_window(state, lower)
        draw = self.recent_moment if state == "ended" else self.moment
        return self.lockout_times_from(state, draw(earliest, latest))

    def lockout_times_from(
        self, state: str, start: int, end: int | None = None
    ) -> tuple[int, int, int]:
        """[`lockout_times`][pytest_celestra.rows.providers.CelestraProvider.lockout_times] of
        a lockout in `state` that starts at `start` (and ends at `end`, when given)."""
        if end is None and state == "ended":
            end = start + self.moment(*spec.LOCKOUT_ENDED_LENGTH)
        elif end is None:
            live = spec.LOCKOUT_ACTIVE_END if state == "active" else spec.LOCKOUT_LONG_END
            end = self.moment(*live)
        updated = min(end, spec.LAST_MOMENT) if state == "ended" else start
        return start, max(end, start + spec.LOCKOUT_MIN_LENGTH), max(updated, start)

    notification_expiry = _drawn(spec.NOTIFICATION_EXPIRY_WEIGHTS)
    """"past" or "future": whether a notification's expires_at has passed."""

    def notification_is_read(self) -> bool:
        return bool(self.generator.random.random() < spec.NOTIFICATION_READ_SHARE)

    def notification_times(
        self, status: NotificationStatus, read: bool, expiry: str, lower: int
    ) -> tuple[int, int | None, int | None, int, int]:
        """`(created_at, delivered_at, read_at, expires_at, updated_at)`: delivered_at only
        for DELIVERED, read_at only when `read`."""
        if expiry == "future":
            earliest, latest = spec.NOTIFICATION_FUTURE_CREATED_EARLIEST, spec.LAST_MOMENT
        else:
            earliest, latest = spec.ACTIVITY_EARLIEST, spec.EXPIRED_NOTICE_LATEST
        created = self.recent_moment(max(lower, earliest), latest)
        return self.notification_times_from(created, status, read, expiry)

    def notification_times_from(
        self, created: int, status: NotificationStatus, read: bool, expiry: str
    ) -> tuple[int, int | None, int | None, int, int]:
        """[`notification_times`][pytest_celestra.rows.providers.CelestraProvider.notification_times]
        of a notification created at `created` (one created after
        [`EXPIRED_NOTICE_LATEST`][pytest_celestra.schema.spec.EXPIRED_NOTICE_LATEST] expires in
        the "future")."""
        if created > spec.EXPIRED_NOTICE_LATEST:
            expiry = "future"
        if expiry == "future":
            expires = self.moment(*spec.NOTIFICATION_FUTURE_EXPIRES)
        else:
            shortest, longest = spec.NOTIFICATION_PAST_LIFETIME
            longest = max(shortest, min(longest, spec.NOTIFICATION_EXPIRED_LATEST - created))
            expires = created + self.moment(shortest, longest)
        expires = max(expires, created + spec.MIN_VALIDITY)
        delivered = read_at = None
        updated = created
        if status is NotificationStatus.DELIVERED:
            delivered_by = min(created + spec.NOTIFICATION_DELIVERED_WITHIN, 0)
            delivered = updated = self.moment(created + 1, delivered_by)
            if read:
                soonest, latest = spec.NOTIFICATION_READ_AFTER
                read_at = self.moment(min(delivered + soonest, 0), min(delivered + latest, 0))
                read_at = updated = max(read_at, delivered)
        elif status is NotificationStatus.FAILED:
            updated = self.moment(created + 1, min(created + spec.NOTIFICATION_FAILED_WITHIN, 0))
        return created, delivered, read_at, expires, updated


def _pick(rng: random.Random, values: Sequence[V]) -> V:
    return values[int(rng.random() * len(values))]
