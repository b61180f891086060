"""pytest-celestra: realistic, FK-consistent PostgreSQL test data for the Celestra schema.

What a test imports is here, at the top level:

```python
from pytest_celestra import UserFactory, User, UserStatus, Volume, scenario_builder
```

Each name is imported from its module when first used, so `import pytest_celestra` (which
pytest does for the plugin in every run) imports neither SQLAlchemy nor Faker. The modules
named in `_EXPORTS` remain where each name lives; this package never imports the plugin.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # one factory per table
    "CelestraFactory": "pytest_celestra.factories",
    "CompanyFactory": "pytest_celestra.factories",
    "KnowledgeTypeFactory": "pytest_celestra.factories",
    "UserFactory": "pytest_celestra.factories",
    "AgentFactory": "pytest_celestra.factories",
    "KnowledgeBaseFactory": "pytest_celestra.factories",
    "AgentKnowledgeBaseFactory": "pytest_celestra.factories",
    "KnowledgeSourceFactory": "pytest_celestra.factories",
    "AuditLogFactory": "pytest_celestra.factories",
    "FailedLoginFactory": "pytest_celestra.factories",
    "InvitationFactory": "pytest_celestra.factories",
    "NotificationFactory": "pytest_celestra.factories",
    "PasswordHistoryFactory": "pytest_celestra.factories",
    "UserLockoutFactory": "pytest_celestra.factories",
    "UserSessionFactory": "pytest_celestra.factories",
    "AuditChangeLogFactory": "pytest_celestra.factories",
    "bound_session": "pytest_celestra.factories",
    # the SQLAlchemy models
    "Base": "pytest_celestra.models",
    "Company": "pytest_celestra.models",
    "KnowledgeType": "pytest_celestra.models",
    "User": "pytest_celestra.models",
    "Agent": "pytest_celestra.models",
    "KnowledgeBase": "pytest_celestra.models",
    "AgentKnowledgeBase": "pytest_celestra.models",
    "KnowledgeSource": "pytest_celestra.models",
    "AuditLog": "pytest_celestra.models",
    "FailedLogin": "pytest_celestra.models",
    "Invitation": "pytest_celestra.models",
    "Notification": "pytest_celestra.models",
    "PasswordHistory": "pytest_celestra.models",
    "UserLockout": "pytest_celestra.models",
    "UserSession": "pytest_celestra.models",
    "AuditChangeLog": "pytest_celestra.models",
    # the enum types
    "AgentStatus": "pytest_celestra.enums",
    "AuditEventType": "pytest_celestra.enums",
    "CompanySize": "pytest_celestra.enums",
    "CompanyStatus": "pytest_celestra.enums",
    "CompanyVertical": "pytest_celestra.enums",
    "InvitationStatus": "pytest_celestra.enums",
    "KnowledgeBaseStatus": "pytest_celestra.enums",
    "NotificationDeliveryMethod": "pytest_celestra.enums",
    "NotificationPriority": "pytest_celestra.enums",
    "NotificationStatus": "pytest_celestra.enums",
    "NotificationType": "pytest_celestra.enums",
    "UserRole": "pytest_celestra.enums",
    "UserStatus": "pytest_celestra.enums",
    # rows per table
    "Volume": "pytest_celestra.volumes",
    # the whole scenario
    "ScenarioSummary": "pytest_celestra.scenario",
    "anchor_for": "pytest_celestra.scenario",
    "generate_scenario": "pytest_celestra.scenario",
    "seed_scenario": "pytest_celestra.scenario",
    # your own scenarios
    "ScenarioBuildError": "pytest_celestra.user_scenarios",
    "ScenarioBuilder": "pytest_celestra.user_scenarios",
    "scenario_builder": "pytest_celestra.user_scenarios",
    # your schema's rules
    "SchemaRules": "pytest_celestra.app_rules",
    "factory_for": "pytest_celestra.app_models",
    # passwords
    "DEFAULT_PASSWORD": "pytest_celestra.passwords",
    "verify": "pytest_celestra.passwords",
    # errors
    "CelestraError": "pytest_celestra.errors",
    "ConfigError": "pytest_celestra.errors",
    "FactoryArgumentError": "pytest_celestra.errors",
    "NoSessionError": "pytest_celestra.errors",
    "RuleError": "pytest_celestra.errors",
    "ServerError": "pytest_celestra.errors",
    "UnsafeDatabaseError": "pytest_celestra.errors",
}
"""Each public name and the module it lives in."""

__all__ = [
    "DEFAULT_PASSWORD",
    "Agent",
    "AgentFactory",
    "AgentKnowledgeBase",
    "AgentKnowledgeBaseFactory",
    "AgentStatus",
    "AuditChangeLog",
    "AuditChangeLogFactory",
    "AuditEventType",
    "AuditLog",
    "AuditLogFactory",
    "Base",
    "CelestraError",
    "CelestraFactory",
    "Company",
    "CompanyFactory",
    "CompanySize",
    "CompanyStatus",
    "CompanyVertical",
    "ConfigError",
    "FactoryArgumentError",
    "FailedLogin",
    "FailedLoginFactory",
    "Invitation",
    "InvitationFactory",
    "InvitationStatus",
    "KnowledgeBase",
    "KnowledgeBaseFactory",
    "KnowledgeBaseStatus",
    "KnowledgeSource",
    "KnowledgeSourceFactory",
    "KnowledgeType",
    "KnowledgeTypeFactory",
    "NoSessionError",
    "Notification",
    "NotificationDeliveryMethod",
    "NotificationFactory",
    "NotificationPriority",
    "NotificationStatus",
    "NotificationType",
    "PasswordHistory",
    "PasswordHistoryFactory",
    "RuleError",
    "ScenarioBuildError",
    "ScenarioBuilder",
    "ScenarioSummary",
    "SchemaRules",
    "ServerError",
    "UnsafeDatabaseError",
    "User",
    "UserFactory",
    "UserLockout",
    "UserLockoutFactory",
    "UserRole",
    "UserSession",
    "UserSessionFactory",
    "UserStatus",
    "Volume",
    "__version__",
    "anchor_for",
    "bound_session",
    "factory_for",
    "generate_scenario",
    "scenario_builder",
    "seed_scenario",
    "verify",
]


def __getattr__(name: str) -> Any:
    """`name` from its module, imported on first use.

    Not cached here: the module's current object is returned each time, so a run that
    unloads and re-imports our modules (pytester's in-process runs restore `sys.modules`)
    never gets a stale class.
    """
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from pytest_celestra.app_models import (
        factory_for,
    )
    from pytest_celestra.app_rules import (
        SchemaRules,
    )
    from pytest_celestra.enums import (
        AgentStatus,
        AuditEventType,
        CompanySize,
        CompanyStatus,
        CompanyVertical,
        InvitationStatus,
        KnowledgeBaseStatus,
        NotificationDeliveryMethod,
        NotificationPriority,
        NotificationStatus,
        NotificationType,
        UserRole,
        UserStatus,
    )
    from pytest_celestra.errors import (
        CelestraError,
        ConfigError,
        FactoryArgumentError,
        NoSessionError,
        RuleError,
        ServerError,
        UnsafeDatabaseError,
    )
    from pytest_celestra.factories import (
        AgentFactory,
        AgentKnowledgeBaseFactory,
        AuditChangeLogFactory,
        AuditLogFactory,
        CelestraFactory,
        CompanyFactory,
        FailedLoginFactory,
        InvitationFactory,
        KnowledgeBaseFactory,
        KnowledgeSourceFactory,
        KnowledgeTypeFactory,
        NotificationFactory,
        PasswordHistoryFactory,
        UserFactory,
        UserLockoutFactory,
        UserSessionFactory,
        bound_session,
    )
    from pytest_celestra.models import (
        Agent,
        AgentKnowledgeBase,
        AuditChangeLog,
        AuditLog,
        Base,
        Company,
        FailedLogin,
        Invitation,
        KnowledgeBase,
        KnowledgeSource,
        KnowledgeType,
        Notification,
        PasswordHistory,
        User,
        UserLockout,
        UserSession,
    )
    from pytest_celestra.passwords import (
        DEFAULT_PASSWORD,
        verify,
    )
    from pytest_celestra.scenario import (
        ScenarioSummary,
        anchor_for,
        generate_scenario,
        seed_scenario,
    )
    from pytest_celestra.user_scenarios import (
        ScenarioBuilder,
        ScenarioBuildError,
        scenario_builder,
    )
    from pytest_celestra.volumes import (
        Volume,
    )
