"""The schema's description: our 15 tables (names, enums, models), the spec's figures,
volumes, the live catalog's reader, and your schema's rules.

Internal: import what you use from `pytest_celestra`."""
