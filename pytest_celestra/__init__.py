"""pytest-celestra: realistic, FK-consistent PostgreSQL test data for the Celestra schema.

What a test imports is here, at the top level:

```python
from pytest_celestra import UserFactory, User, UserStatus, Volume, scenario_builder
```

Each name is imported from its module when first used, so `import pytest_celestra` (which
pytest does for the plugin in every run) imports neither SQLAlchemy nor Faker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_NAMES_BY_MODULE: dict[str, str] = {
    "pytest_celestra.rows.factories": (
        "CelestraFactory CompanyFactory KnowledgeTypeFactory UserFactory AgentFactory "
        "KnowledgeBaseFactory AgentKnowledgeBaseFactory KnowledgeSourceFactory AuditLogFactory "
        "FailedLoginFactory InvitationFactory NotificationFactory PasswordHistoryFactory "
        "UserLockoutFactory UserSessionFactory AuditChangeLogFactory bound_session"
    ),
    "pytest_celestra.schema.models": (
        "Base Company KnowledgeType User Agent KnowledgeBase AgentKnowledgeBase KnowledgeSource "
        "AuditLog FailedLogin Invitation Notification PasswordHistory UserLockout UserSession "
        "AuditChangeLog"
    ),
    "pytest_celestra.schema.enums": (
        "AgentStatus AuditEventType CompanySize CompanyStatus CompanyVertical InvitationStatus "
        "KnowledgeBaseStatus NotificationDeliveryMethod NotificationPriority NotificationStatus "
        "NotificationType UserRole UserStatus"
    ),
    "pytest_celestra.schema.volumes": "Volume",
    "pytest_celestra.rows.scenario": "ScenarioSummary anchor_for generate_scenario seed_scenario",
    "pytest_celestra.db.user_scenarios": "ScenarioBuildError ScenarioBuilder scenario_builder",
    "pytest_celestra.schema.app_rules": "SchemaRules",
    "pytest_celestra.rows.app_factories": "factory_for",
    "pytest_celestra.rows.passwords": "DEFAULT_PASSWORD verify",
    "pytest_celestra.rows": "passwords",
    "pytest_celestra.rows.providers": "company_domain",
    "pytest_celestra.errors": (
        "CelestraError ConfigError FactoryArgumentError NoSessionError RuleError ServerError "
        "UnsafeDatabaseError"
    ),
}
_EXPORTS: dict[str, str] = {
    name: module for module, names in _NAMES_BY_MODULE.items() for name in names.split()
}
"""Each public name and the module it lives in."""

# Derived: the `TYPE_CHECKING` imports below re-export each name explicitly (`X as X`),
# so type checkers need no literal `__all__`.
__all__ = [*_EXPORTS, "__version__"]


if not TYPE_CHECKING:  # hidden from type checkers, so a misspelt name is their error

    def __getattr__(name: str) -> Any:
        """`name` from its module, imported on first use. Not cached, so a run that re-imports
        our modules (pytester's in-process runs restore `sys.modules`) gets no stale class."""
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            return getattr(importlib.import_module(module), name)
        except AttributeError:  # a module of ours (`passwords`), not imported yet
            return importlib.import_module(f"{module}.{name}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from pytest_celestra.db.user_scenarios import ScenarioBuilder as ScenarioBuilder
    from pytest_celestra.db.user_scenarios import ScenarioBuildError as ScenarioBuildError
    from pytest_celestra.db.user_scenarios import scenario_builder as scenario_builder
    from pytest_celestra.errors import CelestraError as CelestraError
    from pytest_celestra.errors import ConfigError as ConfigError
    from pytest_celestra.errors import FactoryArgumentError as FactoryArgumentError
    from pytest_celestra.errors import NoSessionError as NoSessionError
    from pytest_celestra.errors import RuleError as RuleError
    from pytest_celestra.errors import ServerError as ServerError
    from pytest_celestra.errors import UnsafeDatabaseError as UnsafeDatabaseError
    from pytest_celestra.rows import passwords as passwords
    from pytest_celestra.rows.app_factories import factory_for as factory_for
    from pytest_celestra.rows.factories import AgentFactory as AgentFactory
    from pytest_celestra.rows.factories import (
        AgentKnowledgeBaseFactory as AgentKnowledgeBaseFactory,
    )
    from pytest_celestra.rows.factories import AuditChangeLogFactory as AuditChangeLogFactory
    from pytest_celestra.rows.factories import AuditLogFactory as AuditLogFactory
    from pytest_celestra.rows.factories import CelestraFactory as CelestraFactory
    from pytest_celestra.rows.factories import CompanyFactory as CompanyFactory
    from pytest_celestra.rows.factories import FailedLoginFactory as FailedLoginFactory
    from pytest_celestra.rows.factories import InvitationFactory as InvitationFactory
    from pytest_celestra.rows.factories import KnowledgeBaseFactory as KnowledgeBaseFactory
    from pytest_celestra.rows.factories import KnowledgeSourceFactory as KnowledgeSourceFactory
    from pytest_celestra.rows.factories import KnowledgeTypeFactory as KnowledgeTypeFactory
    from pytest_celestra.rows.factories import NotificationFactory as NotificationFactory
    from pytest_celestra.rows.factories import PasswordHistoryFactory as PasswordHistoryFactory
    from pytest_celestra.rows.factories import UserFactory as UserFactory
    from pytest_celestra.rows.factories import UserLockoutFactory as UserLockoutFactory
    from pytest_celestra.rows.factories import UserSessionFactory as UserSessionFactory
    from pytest_celestra.rows.factories import bound_session as bound_session
    from pytest_celestra.rows.passwords import DEFAULT_PASSWORD as DEFAULT_PASSWORD
    from pytest_celestra.rows.passwords import verify as verify
    from pytest_celestra.rows.providers import company_domain as company_domain
    from pytest_celestra.rows.scenario import ScenarioSummary as ScenarioSummary
    from pytest_celestra.rows.scenario import anchor_for as anchor_for
    from pytest_celestra.rows.scenario import generate_scenario as generate_scenario
    from pytest_celestra.rows.scenario import seed_scenario as seed_scenario
    from pytest_celestra.schema.app_rules import SchemaRules as SchemaRules
    from pytest_celestra.schema.enums import AgentStatus as AgentStatus
    from pytest_celestra.schema.enums import AuditEventType as AuditEventType
    from pytest_celestra.schema.enums import CompanySize as CompanySize
    from pytest_celestra.schema.enums import CompanyStatus as CompanyStatus
    from pytest_celestra.schema.enums import CompanyVertical as CompanyVertical
    from pytest_celestra.schema.enums import InvitationStatus as InvitationStatus
    from pytest_celestra.schema.enums import KnowledgeBaseStatus as KnowledgeBaseStatus
    from pytest_celestra.schema.enums import (
        NotificationDeliveryMethod as NotificationDeliveryMethod,
    )
    from pytest_celestra.schema.enums import NotificationPriority as NotificationPriority
    from pytest_celestra.schema.enums import NotificationStatus as NotificationStatus
    from pytest_celestra.schema.enums import NotificationType as NotificationType
    from pytest_celestra.schema.enums import UserRole as UserRole
    from pytest_celestra.schema.enums import UserStatus as UserStatus
    from pytest_celestra.schema.models import Agent as Agent
    from pytest_celestra.schema.models import AgentKnowledgeBase as AgentKnowledgeBase
    from pytest_celestra.schema.models import AuditChangeLog as AuditChangeLog
    from pytest_celestra.schema.models import AuditLog as AuditLog
    from pytest_celestra.schema.models import Base as Base
    from pytest_celestra.schema.models import Company as Company
    from pytest_celestra.schema.models import FailedLogin as FailedLogin
    from pytest_celestra.schema.models import Invitation as Invitation
    from pytest_celestra.schema.models import KnowledgeBase as KnowledgeBase
    from pytest_celestra.schema.models import KnowledgeSource as KnowledgeSource
    from pytest_celestra.schema.models import KnowledgeType as KnowledgeType
    from pytest_celestra.schema.models import Notification as Notification
    from pytest_celestra.schema.models import PasswordHistory as PasswordHistory
    from pytest_celestra.schema.models import User as User
    from pytest_celestra.schema.models import UserLockout as UserLockout
    from pytest_celestra.schema.models import UserSession as UserSession
    from pytest_celestra.schema.volumes import Volume as Volume
