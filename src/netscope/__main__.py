"""`python -m netscope ...` is the same as the `netscope` command."""

import sys

from netscope.cli import main

sys.exit(main())
