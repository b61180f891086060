"""The database and server side: starting a server, creating, seeding, sealing, cloning
and dropping our databases, the drift check, the seed service and your scenarios' layers.

Internal: import what you use from `pytest_celestra`."""
