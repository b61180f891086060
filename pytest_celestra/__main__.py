"""`python -m pytest_celestra`: the same as the `celestra-seed` command."""

from pytest_celestra.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
