"""`python -m farm`: the same as the `farm` command."""

from farm.cli import entry

entry()
