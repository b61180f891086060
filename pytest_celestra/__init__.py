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
    "CelestraFactory": "pytest_celestra.rows.factories",
    "CompanyFactory": "pytest_celestra.rows.factories",
    "KnowledgeTypeFactory": "pytest_celestra.rows.factories",
    "UserFactory": "pytest_celestra.rows.factories",
    "AgentFactory": "pytest_celestra.rows.factories",
    "KnowledgeBaseFactory": "pytest_celestra.rows.factories",
    "AgentKnowledgeBaseFactory": "pytest_celestra.rows.factories",
    "KnowledgeSourceFactory": "pytest_celestra.rows.factories",
    "AuditLogFactory": "pytest_celestra.rows.factories",
    "FailedLoginFactory": "pytest_celestra.rows.factories",
    "InvitationFactory": "pytest_celestra.rows.factories",
    "NotificationFactory": "pytest_celestra.rows.factories",
    "PasswordHistoryFactory": "pytest_celestra.rows.factories",
    "UserLockoutFactory": "pytest_celestra.rows.factories",
    "UserSessionFactory": "pytest_celestra.rows.factories",
    "AuditChangeLogFactory": "pytest_celestra.rows.factories",
    "bound_session": "pytest_celestra.rows.factories",
    # the SQLAlchemy models
    "Base": "pytest_celestra.schema.models",
    "Company": "pytest_celestra.schema.models",
    "KnowledgeType": "pytest_celestra.schema.models",
    "User": "pytest_celestra.schema.models",
    "Agent": "pytest_celestra.schema.models",
    "KnowledgeBase": "pytest_celestra.schema.models",
    "AgentKnowledgeBase": "pytest_celestra.schema.models",
    "KnowledgeSource": "pytest_celestra.schema.models",
    "AuditLog": "pytest_celestra.schema.models",
    "FailedLogin": "pytest_celestra.schema.models",
    "Invitation": "pytest_celestra.schema.models",
    "Notification": "pytest_celestra.schema.models",
    "PasswordHistory": "pytest_celestra.schema.models",
    "UserLockout": "pytest_celestra.schema.models",
    "UserSession": "pytest_celestra.schema.models",
    "AuditChangeLog": "pytest_celestra.schema.models",
    # the enum types
    "AgentStatus": "pytest_celestra.schema.enums",
    "AuditEventType": "pytest_celestra.schema.enums",
    "CompanySize": "pytest_celestra.schema.enums",
    "CompanyStatus": "pytest_celestra.schema.enums",
    "CompanyVertical": "pytest_celestra.schema.enums",
    "InvitationStatus": "pytest_celestra.schema.enums",
    "KnowledgeBaseStatus": "pytest_celestra.schema.enums",
    "NotificationDeliveryMethod": "pytest_celestra.schema.enums",
    "NotificationPriority": "pytest_celestra.schema.enums",
    "NotificationStatus": "pytest_celestra.schema.enums",
    "NotificationType": "pytest_celestra.schema.enums",
    "UserRole": "pytest_celestra.schema.enums",
    "UserStatus": "pytest_celestra.schema.enums",
    # rows per table
    "Volume": "pytest_celestra.schema.volumes",
    # the whole scenario
    "ScenarioSummary": "pytest_celestra.rows.scenario",
    "anchor_for": "pytest_celestra.rows.scenario",
    "generate_scenario": "pytest_celestra.rows.scenario",
    "seed_scenario": "pytest_celestra.rows.scenario",
    # your own scenarios
    "ScenarioBuildError": "pytest_celestra.db.user_scenarios",
    "ScenarioBuilder": "pytest_celestra.db.user_scenarios",
    "scenario_builder": "pytest_celestra.db.user_scenarios",
    # your schema's rules
    "SchemaRules": "pytest_celestra.schema.app_rules",
    "factory_for": "pytest_celestra.rows.app_factories",
    # passwords
    "DEFAULT_PASSWORD": "pytest_celestra.rows.passwords",
    "verify": "pytest_celestra.rows.passwords",
    "passwords": "pytest_celestra.rows",
    "company_domain": "pytest_celestra.rows.providers",
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
    "company_domain",
    "factory_for",
    "generate_scenario",
    "passwords",
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
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError:  # a module of ours (`passwords`), not imported yet
        return importlib.import_module(f"{module}.{name}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from pytest_celestra.db.user_scenarios import (
        ScenarioBuilder,
        ScenarioBuildError,
        scenario_builder,
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
    from pytest_celestra.rows import passwords
    from pytest_celestra.rows.app_factories import (
        factory_for,
    )
    from pytest_celestra.rows.factories import (
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
    from pytest_celestra.rows.passwords import (
        DEFAULT_PASSWORD,
        verify,
    )
    from pytest_celestra.rows.providers import company_domain
    from pytest_celestra.rows.scenario import (
        ScenarioSummary,
        anchor_for,
        generate_scenario,
        seed_scenario,
    )
    from pytest_celestra.schema.app_rules import (
        SchemaRules,
    )
    from pytest_celestra.schema.enums import (
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
    from pytest_celestra.schema.models import (
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
    from pytest_celestra.schema.volumes import (
        Volume,
    )
