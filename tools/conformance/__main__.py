"""``python -m armbus.tools.conformance --port PORT``: the same as ``armbus conform``."""

from armbus.tools.conformance import main

raise SystemExit(main())
