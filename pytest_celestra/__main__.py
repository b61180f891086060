"""``python -m pytest_celestra``: the same as the ``celestra-seed`` command."""

from pytest_celestra.cli import main

raise SystemExit(main())
