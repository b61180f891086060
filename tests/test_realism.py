"""A seeded scenario is realistic: every rule of ``realism_checks`` holds at every volume.

Each volume is seeded once into ``celestra_session`` (rolled back afterwards) and each rule
runs as its own subtest, so a failure names the rule and shows the offending rows. The
large volume (~130k rows, a few seconds) is marked ``slow``: ``-m "not slow"`` skips it.
"""

from __future__ import annotations

from datetime import UTC

import pytest
from passlib.hash import bcrypt
from realism_checks import CHECKS, Seeded
from sqlalchemy import text

from pytest_celestra.rows.scenario import DEFAULT_SEED, anchor_for, seed_scenario
from pytest_celestra.schema.volumes import Volume

VOLUMES = [
    pytest.param("small", DEFAULT_SEED, id="small"),
    pytest.param("small", 20240229, id="small-other-seed"),
    pytest.param("medium", DEFAULT_SEED, id="medium"),
    pytest.param("small,users=40,agents=12", DEFAULT_SEED, id="custom"),
    pytest.param("large", DEFAULT_SEED, id="large", marks=pytest.mark.slow),
]


def seed(session, volume_text: str, seed_value: int = DEFAULT_SEED) -> Seeded:
    volume = Volume.parse(volume_text)
    # The anchor of the database's now(), so a test running across midnight UTC still
    # sees now() on the anchor's day.
    now = session.execute(text("SELECT now()")).scalar_one()
    anchor = anchor_for(now.astimezone(UTC).date())
    summary = seed_scenario(session, volume, seed=seed_value, anchor=anchor)
    # Planner statistics for the fresh rows, so no check falls into a quadratic plan; and
    # should one still do, it fails its rule instead of hanging the run.
    session.execute(text("ANALYZE"))
    session.execute(text("SET LOCAL statement_timeout = '60s'"))
    return Seeded(session, volume, summary)


@pytest.mark.parametrize(("volume", "seed_value"), VOLUMES)
def test_seeded_scenario_is_realistic(celestra_session, subtests, volume, seed_value):
    seeded = seed(celestra_session, volume, seed_value)
    for check in CHECKS:
        # A savepoint per rule: an SQL error in one rule cannot abort the others.
        with subtests.test(msg=check.rule), celestra_session.begin_nested():
            check(seeded)


# A password hash that is not the default password's.
OTHER_PASSWORD_HASH = bcrypt.using(rounds=4).hash("Not-The-Default-1!")

# Each rule must catch a violation: rule id -> SQL statement(s) that break that rule.
CORRUPTIONS: dict[str, str | tuple[str, ...]] = {
    "R01": "DELETE FROM failed_logins WHERE id = (SELECT min(id::text)::uuid FROM failed_logins)",
    "R02": "UPDATE audit_logs SET created_at = NULL"
    " WHERE id = (SELECT min(id::text)::uuid FROM audit_logs)",
    # The database enforces R03 too: drop its check to break the rule (rolled back after).
    "R03": (
        "ALTER TABLE agents DROP CONSTRAINT ck_agents_created_before_updated",
        "UPDATE agents SET created_at = updated_at + interval '1 hour'"
        " WHERE id = (SELECT min(id::text)::uuid FROM agents)",
    ),
    "R04a": "UPDATE user_sessions s SET created_at = u.created_at - interval '1 day'"
    " FROM users u WHERE u.id = s.user_id"
    " AND s.id = (SELECT min(id::text)::uuid FROM user_sessions)",
    "R04b": "UPDATE audit_logs SET created_at = now() + interval '1 hour'"
    " WHERE id = (SELECT min(id::text)::uuid FROM audit_logs)",
    "X04c": "UPDATE notifications SET read_at = now() + interval '1 hour'"
    " WHERE id = (SELECT min(id::text)::uuid FROM notifications WHERE read_at IS NOT NULL)",
    "R05a": "UPDATE user_sessions SET created_at = now() - interval '1 hour',"
    " expires_at = now() + interval '1 hour'",
    "R05b": "UPDATE invitations SET expires_at = sent_at + interval '1 second'"
    " WHERE sent_at IS NOT NULL",
    "R05c": "UPDATE user_lockouts SET lockout_end = lockout_start + interval '1 second'",
    "R05d": "UPDATE notifications SET read_at = NULL",
    "R06": "UPDATE users SET status = 'ACTIVE'",
    "R07": "UPDATE users SET role = 'SPACE_ADMIN' WHERE role = 'COMPANY_ADMIN'",
    "R08": "UPDATE agents SET company_id = (SELECT min(id::text)::uuid FROM companies)",
    "R09": "DELETE FROM failed_logins WHERE user_id IS NULL",
    "R10": "UPDATE audit_logs SET group_id = '00000000-0000-0000-0000-000000000001'",
    "R11": "UPDATE audit_logs SET record_id = gen_random_uuid() WHERE record_id IS NOT NULL",
    "X11a": "INSERT INTO audit_change_logs (audit_log_id, column_name, old_value, new_value)"
    " SELECT audit_log_id, column_name, 'before', 'after' FROM audit_change_logs LIMIT 1",
    "X11b": "UPDATE agents r SET company_id ="
    " (SELECT min(c.id::text)::uuid FROM companies c WHERE c.id <> r.company_id)"
    " WHERE r.id IN (SELECT a.record_id FROM audit_logs a JOIN users u ON u.id = a.user_id"
    "  WHERE a.table_name = 'agents' AND u.role = 'COMPANY_ADMIN')",
    "X11c": "UPDATE audit_change_logs SET new_value = new_value || ' (renamed)'"
    " WHERE column_name = 'name'",
    "R12": "UPDATE users SET email = split_part(email, '@', 1) || '@elsewhere.example'"
    " WHERE id = (SELECT min(id::text)::uuid FROM users WHERE role = 'REGULAR_USER')",
    "R13": "UPDATE user_sessions SET session_token = 'short token'"
    " WHERE id = (SELECT min(id::text)::uuid FROM user_sessions)",
    "R14": "UPDATE audit_logs SET signed_by ="
    " (SELECT min(id::text)::uuid FROM users WHERE role = 'REGULAR_USER')"
    " WHERE signed_by IS NOT NULL",
    "R15": "UPDATE notifications n SET company_id ="
    " (SELECT min(c.id::text)::uuid FROM companies c"
    "  WHERE c.id IS DISTINCT FROM (SELECT company_id FROM users WHERE id = n.user_id))",
    "R16": "UPDATE agent_knowledge_bases l SET knowledge_base_id ="
    " (SELECT min(k.id::text)::uuid FROM knowledge_bases k, agents a"
    "  WHERE a.id = l.agent_id AND k.company_id <> a.company_id)"
    " WHERE l.id = (SELECT min(id::text)::uuid FROM agent_knowledge_bases)",
    "R17a": "UPDATE password_history SET password_hash = 'hunter2'"
    " WHERE id = (SELECT min(id::text)::uuid FROM password_history)",
    "R17b": f"UPDATE users SET password_hash = '{OTHER_PASSWORD_HASH}'",
    "R18": "UPDATE notifications SET priority = 'LOW'",
    "X19": "UPDATE notifications SET delivered_at = NULL WHERE status = 'DELIVERED'",
    # One story across tables (pytest_celestra.rows.story).
    "S01": "UPDATE users u SET status = 'ACTIVE' FROM companies c"
    " WHERE c.id = u.company_id AND c.status = 'ARCHIVED'",
    "S02": "UPDATE user_sessions s SET expires_at = now() + interval '3 days' FROM users u"
    " WHERE u.id = s.user_id AND u.status <> 'ACTIVE'",
    "S03": "UPDATE invitations SET status = 'SENT', created_at = now() - interval '2 hours',"
    " sent_at = now() - interval '1 hour', updated_at = now() - interval '1 hour',"
    " expires_at = now() + interval '6 days',"
    " user_id = (SELECT min(id::text)::uuid FROM users WHERE status <> 'ACTIVE')"
    " WHERE id = (SELECT min(id::text)::uuid FROM invitations)",
    "S04": "UPDATE knowledge_bases k SET status = 'ARCHIVED', updated_at = k.created_at"
    " WHERE k.id IN (SELECT knowledge_base_id FROM knowledge_sources)",
    "S05": "UPDATE notifications SET created_at = created_at - interval '1 hour'"
    " WHERE notification_type IN ('FAILED_LOGIN_NOTIFICATION', 'NEW_DEVICE_LOGIN')",
    "S06": "UPDATE notifications SET notification_type = 'ROLE_CHANGED'"
    " WHERE notification_type IN ('SYSTEM_ANNOUNCEMENT', 'MAINTENANCE_SCHEDULED',"
    " 'SESSION_EXPIRY', 'INVITATION_SENT')",
    "S07": "UPDATE notifications SET notification_type = 'AGENT_STATUS_CHANGED'"
    " WHERE notification_type IN ('SYSTEM_ANNOUNCEMENT', 'MAINTENANCE_SCHEDULED',"
    " 'SESSION_EXPIRY', 'INVITATION_SENT')",
    "S08": "UPDATE audit_logs SET created_at = created_at - interval '2 hours'"
    " WHERE event_type = 'SESSION_STARTED'",
    "S09": "UPDATE audit_logs SET created_at = created_at - interval '2 hours'"
    " WHERE event_type = 'FAILED_LOGIN'",
    "S10": "DELETE FROM audit_logs WHERE event_type = 'SESSION_ENDED'",
    "S11": "UPDATE users SET status = 'SUSPENDED', updated_at = created_at"
    " WHERE id = (SELECT min(record_id::text)::uuid FROM audit_logs WHERE table_name = 'users')",
}


def test_each_rule_catches_its_violation(celestra_session, subtests):
    seeded = seed(celestra_session, "small")
    checks = {check.rule.split()[0]: check for check in CHECKS}
    assert sorted(CORRUPTIONS) == sorted(checks), "every rule needs a corruption here"
    for rule, corruption in CORRUPTIONS.items():
        with subtests.test(msg=rule):
            savepoint = celestra_session.begin_nested()
            try:
                checks[rule](seeded)  # the unbroken data passes ...
                for statement in (corruption,) if isinstance(corruption, str) else corruption:
                    celestra_session.execute(text(statement))
                with pytest.raises(AssertionError, match=rule):
                    checks[rule](seeded)  # ... and the broken data does not.
            finally:
                savepoint.rollback()
