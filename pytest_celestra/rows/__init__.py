"""The row engine: value domains and rules across rows, the factories (one row, or a
batch by COPY), the scenario generator's steps, COPY and the SQL script.

Internal: import what you use from `pytest_celestra`."""
