"""Word pools and catalogues [`pytest_celestra.rows.providers`][pytest_celestra.rows.providers]
draws from: pure data (the person names are Faker's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_celestra.schema.enums import (
    AuditEventType,
    CompanyVertical,
    NotificationPriority,
    NotificationType,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

PLATFORM_DOMAIN = "celestra.io"
"""Domain of the platform's own staff; super admins have their email there."""
APP_URL = "https://app.celestra.io"
"""Base of every notification `action_url`."""

# --- word pools -------------------------------------------------------------------------

LEGAL_SUFFIXES = ("Inc.", "LLC", "Ltd", "GmbH", "PLC", "Corp.")
DOMAIN_STOPWORDS = frozenset({"inc", "llc", "ltd", "gmbh", "plc", "corp", "and"})
TLDS = ("com",) * 7 + ("io", "io", "ai", "co", "net", "dev")
NAME_ADJECTIVES = (
    "Blue", "Bright", "Clear", "Silver", "Northern", "Quiet", "Swift", "Golden", "Open",
    "True", "Red", "Green", "Iron", "Summit", "Polar", "Solar", "Lunar", "Crimson",
    "Cedar", "Granite", "Harbor", "Maple", "Nimble", "Prime", "Rapid", "Vivid", "Bold",
    "Keen", "Lucid", "Atlas",
)  # fmt: skip
NAME_NOUNS = (
    "Harbor", "River", "Peak", "Field", "Bridge", "Stone", "Forge", "Beacon", "Grove",
    "Orbit", "Signal", "Vector", "Anchor", "Compass", "Falcon", "Lantern", "Meadow",
    "Pine", "Ridge", "Tide", "Wave", "Canyon", "Delta", "Ember", "Horizon", "Quarry",
    "Spark", "Willow", "Arrow", "Cloud",
)  # fmt: skip
VERTICAL_SUFFIXES: Mapping[CompanyVertical, tuple[str, ...]] = {
    CompanyVertical.TECH: ("Labs", "Systems", "Software", "Technologies", "Data", "Cloud",
                           "Networks", "AI"),
    CompanyVertical.FINANCE: ("Capital", "Financial", "Partners", "Bank", "Insurance",
                              "Advisors", "Payments", "Credit"),
    CompanyVertical.PHARMACEUTICAL: ("Therapeutics", "Biosciences", "Pharma", "Biotech",
                                     "Health", "Genomics", "Labs", "Medical"),
    CompanyVertical.RETAIL: ("Outfitters", "Goods", "Market", "Stores", "Supply", "Home",
                             "Apparel", "Brands"),
    CompanyVertical.OTHER: ("Group", "Holdings", "Services", "Consulting", "Logistics",
                            "Energy", "Media", "Industries"),
}  # fmt: skip
VERTICAL_OFFERINGS: Mapping[CompanyVertical, tuple[str, ...]] = {
    CompanyVertical.TECH: ("Cloud cost analytics", "Developer tooling",
                           "Identity and access software", "Observability platforms",
                           "Data integration services",
                           "Managed Kubernetes hosting", "Low-code workflow automation"),
    CompanyVertical.FINANCE: ("Commercial lending", "Wealth management", "Payment processing",
                              "Specialty insurance", "Treasury management software",
                              "Retail banking"),
    CompanyVertical.PHARMACEUTICAL: ("Oncology drug development", "Clinical trial services",
                                     "Rare disease therapeutics", "Generic medicines",
                                     "Vaccine research", "Diagnostics"),
    CompanyVertical.RETAIL: ("Outdoor apparel", "Home furnishings", "Online grocery delivery",
                             "Consumer electronics retail", "Specialty coffee",
                             "Sporting goods"),
    CompanyVertical.OTHER: ("Freight logistics", "Renewable energy projects",
                            "Facilities management", "Engineering consulting",
                            "Regional media", "Industrial maintenance"),
}  # fmt: skip
AUDIENCES = (
    "mid-market companies", "regulated industries", "enterprise IT teams",
    "small businesses", "healthcare providers", "public sector agencies",
    "engineering teams", "customers across Europe and North America",
    "independent retailers", "global manufacturers",
)  # fmt: skip
DESCRIPTION_TAILS = (
    "", " Founded by industry veterans.", " Headquartered in Austin.", " Remote-first.",
    " Headquartered in Berlin.", " Backed by venture capital.", " Family-owned since 1987.",
    " Listed on NASDAQ.", " Headquartered in Toronto.", " Operating in 14 countries.",
)  # fmt: skip
AGENT_FUNCTIONS = (
    "Customer Support", "IT Helpdesk", "HR Onboarding", "Sales Enablement",
    "Contract Review", "Compliance", "Incident Triage", "Invoice Processing", "Research",
    "Marketing Content", "Procurement", "Security Operations", "Knowledge", "Field Service",
    "Claims Intake", "Fraud Detection", "Release Notes", "Recruiting", "Data Quality",
    "Order Tracking",
)  # fmt: skip
AGENT_KINDS = ("Assistant", "Agent", "Copilot", "Bot", "Advisor", "Concierge", "Analyst")
AGENT_VERBS = (
    "Answers", "Triages", "Summarizes", "Drafts replies to", "Routes", "Classifies",
    "Escalates", "Researches",
)  # fmt: skip
AGENT_OBJECTS = (
    "support tickets", "employee questions", "vendor contracts", "security alerts",
    "sales inquiries", "policy questions", "incoming invoices", "bug reports",
    "customer emails", "access requests",
)  # fmt: skip
TEAMS = (
    "the support team", "new hires", "the legal team", "the finance team",
    "account managers", "on-call engineers", "the whole company", "field technicians",
    "the compliance office", "product managers",
)  # fmt: skip
DEPARTMENTS = (
    "Engineering", "Sales", "Support", "HR", "Legal", "Finance", "Product", "Marketing",
    "Security", "IT", "Operations", "Compliance", "Research", "Customer Success",
)  # fmt: skip
COLLECTIONS = (
    "Handbook", "Playbooks", "Runbooks", "FAQ", "Policies", "Documentation", "Wiki",
    "Knowledge Base", "Guidelines", "Release Notes", "Templates", "Training Material",
)  # fmt: skip
KB_CADENCES = ("nightly", "hourly", "weekly", "on every change", "every Monday")
PDF_FOLDERS = ("policies", "handbooks", "contracts", "specs", "reports", "onboarding",
                "compliance", "product")  # fmt: skip
FILE_STEMS = (
    "travel-policy", "security-handbook", "q3-board-report", "onboarding-guide",
    "msa-template", "pricing-2024", "data-retention-policy", "incident-response-plan",
    "api-reference", "release-notes", "expense-policy", "soc2-report", "brand-guidelines",
    "benefits-overview", "architecture-overview", "support-sla", "gdpr-dpa",
    "sales-deck", "code-of-conduct", "product-roadmap",
)  # fmt: skip
WEB_HOSTS = ("docs", "help", "www", "support", "developer", "status")
WEB_SECTIONS = ("guides", "articles", "faq", "blog", "reference", "kb")
SPACE_KEYS = ("ENG", "OPS", "HR", "SALES", "SUP", "SEC", "PM", "FIN", "LEGAL", "MKT",
               "IT", "DATA")  # fmt: skip
REPOS = ("platform", "docs", "infra", "api", "web-app", "mobile", "data-pipelines",
          "handbook", "design-system", "sdk-python")  # fmt: skip
SLACK_CHANNELS = ("help-it", "eng-announcements", "support-escalations", "sales-deals",
                   "hr-questions", "security", "incidents", "product-feedback", "general",
                   "data-team")  # fmt: skip
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Celestra-Desktop/3.4.1 (Windows 11; x64)",
    "celestra-cli/2.8.0 python-httpx/0.27.0",
)
PUBLIC_FIRST_OCTETS = tuple(
    o for o in range(11, 224) if o not in (100, 127, 169, 172, 192, 198, 203)
)
LOCKOUT_REASONS: Mapping[str, tuple[str, ...]] = {
    "ended": ("Too many failed sign-in attempts", "Repeated failed MFA challenges"),
    "active": ("Too many failed sign-in attempts", "Repeated failed MFA challenges"),
    "long": (
        "Locked by administrator pending security review",
        "Suspicious sign-in activity from a new country",
    ),
}
AUDIT_DESCRIPTIONS: Mapping[AuditEventType, tuple[str, ...]] = {
    AuditEventType.SUCCESSFUL_LOGIN: ("Signed in with password", "Signed in with SSO (Okta)",
                                      "Signed in with SSO (Microsoft Entra ID)",
                                      "Signed in with password and authenticator app"),
    AuditEventType.FAILED_LOGIN: ("Sign-in failed: invalid password",
                                  "Sign-in failed: MFA code rejected",
                                  "Sign-in failed: expired password"),
    AuditEventType.SESSION_STARTED: ("Web session started", "API session started",
                                     "Desktop app session started", "Mobile session started"),
    AuditEventType.SESSION_ENDED: ("Signed out", "Session expired after inactivity",
                                   "Session revoked by an administrator"),
    AuditEventType.DATA_EXPORT: ("Exported the audit log as CSV", "Exported the user list",
                                 "Exported knowledge base contents",
                                 "Exported agent conversation history"),
    AuditEventType.OTHER: ("Created an API key", "Revoked an API key",
                           "Viewed the billing page", "Downloaded an invoice",
                           "Enabled two-factor authentication",
                           "Changed notification preferences"),
}  # fmt: skip
UNKNOWN_EMAIL_DESCRIPTION = "Sign-in failed: unknown email address"
CHANGE_DESCRIPTIONS: Mapping[str, str] = {
    "users": "Updated a user account",
    "agents": "Updated agent configuration",
    "knowledge_bases": "Updated knowledge base settings",
    "companies": "Updated company profile",
}
ROLE_CHANGE_DESCRIPTION = "Changed the role assignment of a user"
SIGNED_REASONS = (
    "Quarterly access review", "Customer request", "Security incident follow-up",
    "Offboarding", "Onboarding a new team member", "Compliance export for auditors",
    "Scheduled configuration change", "Requested by the account owner",
)  # fmt: skip
TICKET_KEYS = ("IT", "OPS", "SEC", "SUP", "HR")

# --- catalogues -------------------------------------------------------------------------

KNOWLEDGE_TYPES: Mapping[str, tuple[str, int]] = {
    "PDF document": ("Uploaded PDF files, parsed page by page", 18),
    "Web page": ("Public or intranet web pages, crawled on a schedule", 14),
    "Confluence space": ("All pages of an Atlassian Confluence space", 12),
    "Git repository": ("Source code and Markdown docs of a Git repository", 10),
    "Google Drive folder": ("Documents, sheets and slides in a shared Google Drive folder", 10),
    "Notion workspace": ("Pages and databases of a Notion workspace", 8),
    "SharePoint site": ("Document libraries of a Microsoft SharePoint site", 8),
    "Jira project": ("Issues and comments of a Jira project", 7),
    "Slack channel": ("Messages and threads of a Slack channel", 7),
    "Zendesk help center": ("Articles of a Zendesk help center", 6),
    "Markdown file": ("A single Markdown file uploaded by a user", 4),
    "CSV dataset": ("Tabular data uploaded as CSV", 4),
}
"""The knowledge types a scenario uses, most common first: name -> (description, weight)."""


def _url(path: str) -> str:
    return f"{APP_URL}{path}"


NOTIFICATIONS: Mapping[
    NotificationType, tuple[str, tuple[str, ...], Mapping[NotificationPriority, int], str | None]
] = {
    NotificationType.FAILED_LOGIN_NOTIFICATION: (
        "Failed sign-in attempt",
        ("Someone tried to sign in to your account with a wrong password.",
         "We blocked a sign-in attempt to your account from an unknown location."),
        {NotificationPriority.HIGH: 50, NotificationPriority.MEDIUM: 40,
         NotificationPriority.CRITICAL: 10},
        _url("/settings/security"),
    ),
    NotificationType.SESSION_EXPIRY: (
        "Your session is about to expire",
        ("Save your work: your session expires in 15 minutes.",),
        {NotificationPriority.LOW: 60, NotificationPriority.MEDIUM: 40},
        None,
    ),
    NotificationType.ACCOUNT_LOCKED: (
        "Account locked",
        ("Your account was locked after repeated failed sign-in attempts.",
         "An administrator locked your account pending a security review."),
        {NotificationPriority.CRITICAL: 40, NotificationPriority.HIGH: 60},
        _url("/settings/security"),
    ),
    NotificationType.ACCOUNT_UNLOCKED: (
        "Account unlocked",
        ("Your account has been unlocked. You can sign in again.",),
        {NotificationPriority.MEDIUM: 70, NotificationPriority.LOW: 30},
        _url("/login"),
    ),
    NotificationType.PASSWORD_CHANGED: (
        "Password changed",
        ("Your password was changed. If this wasn't you, contact your administrator.",),
        {NotificationPriority.HIGH: 60, NotificationPriority.MEDIUM: 40},
        _url("/settings/security"),
    ),
    NotificationType.PASSWORD_EXPIRY: (
        "Password expires soon",
        ("Your password expires in 7 days. Choose a new one before then.",
         "Your password expires tomorrow."),
        {NotificationPriority.MEDIUM: 70, NotificationPriority.LOW: 30},
        _url("/settings/password"),
    ),
    NotificationType.NEW_DEVICE_LOGIN: (
        "New device sign-in",
        ("Your account was used to sign in from a new device.",
         "New sign-in from Chrome on Windows. Review your active sessions."),
        {NotificationPriority.HIGH: 60, NotificationPriority.MEDIUM: 40},
        _url("/settings/sessions"),
    ),
    NotificationType.INVITATION_SENT: (
        "Invitation sent",
        ("Your invitation to join the workspace has been sent.",),
        {NotificationPriority.LOW: 80, NotificationPriority.MEDIUM: 20},
        _url("/team/invitations"),
    ),
    NotificationType.INVITATION_ACCEPTED: (
        "Invitation accepted",
        ("A new member accepted your invitation and joined the workspace.",),
        {NotificationPriority.LOW: 70, NotificationPriority.MEDIUM: 30},
        _url("/team/members"),
    ),
    NotificationType.ROLE_CHANGED: (
        "Your role changed",
        ("An administrator changed your role. New permissions apply at your next sign-in.",),
        {NotificationPriority.MEDIUM: 70, NotificationPriority.HIGH: 30},
        _url("/settings/profile"),
    ),
    NotificationType.KNOWLEDGE_BASE_READY: (
        "Knowledge base ready",
        ("Indexing finished: your knowledge base is ready to use.",
         "All sources were indexed and your knowledge base is live."),
        {NotificationPriority.LOW: 60, NotificationPriority.MEDIUM: 40},
        _url("/knowledge-bases"),
    ),
    NotificationType.KNOWLEDGE_BASE_FAILED: (
        "Knowledge base build failed",
        ("Indexing failed for one or more sources. Check the source settings and retry.",),
        {NotificationPriority.HIGH: 70, NotificationPriority.CRITICAL: 30},
        _url("/knowledge-bases"),
    ),
    NotificationType.AGENT_STATUS_CHANGED: (
        "Agent status changed",
        ("One of your agents was disabled by an administrator.",
         "One of your agents is now active."),
        {NotificationPriority.MEDIUM: 70, NotificationPriority.LOW: 30},
        _url("/agents"),
    ),
    NotificationType.DATA_EXPORT_READY: (
        "Your export is ready",
        ("The data export you requested is ready to download for 7 days.",),
        {NotificationPriority.MEDIUM: 60, NotificationPriority.LOW: 40},
        _url("/exports"),
    ),
    NotificationType.SYSTEM_ANNOUNCEMENT: (
        "What's new in Celestra",
        ("New features are available in your workspace. See the release notes.",),
        {NotificationPriority.LOW: 90, NotificationPriority.MEDIUM: 10},
        _url("/changelog"),
    ),
    NotificationType.MAINTENANCE_SCHEDULED: (
        "Scheduled maintenance",
        ("Celestra will be briefly unavailable during scheduled maintenance this weekend.",),
        {NotificationPriority.MEDIUM: 50, NotificationPriority.HIGH: 50},
        "https://status.celestra.io",
    ),
}  # fmt: skip
"""type -> (title, messages, priority weights, action_url or None)."""
