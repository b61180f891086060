"""pytest-celestra: realistic, FK-consistent PostgreSQL test data for the Celestra schema.

The public names live in their modules (`pytest_celestra.models`, `.factories`,
`.scenario`); this package never imports the pytest plugin.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
