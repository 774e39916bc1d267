"""`python -m hipbridge.cli …` — the same as the `hipbridge` command."""

import sys

from hipbridge.cli import main

sys.exit(main())
