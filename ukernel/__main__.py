"""``python -m ukernel``: the same as the ``ukernel`` command."""

import sys

from .cli import main

sys.exit(main())
