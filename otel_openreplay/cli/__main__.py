"""``python -m otel_openreplay.cli``: the same command as ``otel-openreplay``."""

import sys

from otel_openreplay.cli import main

sys.exit(main())
