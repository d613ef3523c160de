"""`python -m netscope ...` is the same as the `netscope` command."""

from netscope.cli import entry

entry()
