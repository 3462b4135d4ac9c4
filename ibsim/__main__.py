"""`python -m ibsim`: run the gateway simulator."""

import sys

from .cli import main

sys.exit(main())
