"""``python -m armbus ...``: the same as the ``armbus`` command."""

import sys

from armbus.tools.cli import main

sys.exit(main())
