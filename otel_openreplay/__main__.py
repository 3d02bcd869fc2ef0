"""``python -m otel_openreplay``: the same command as ``otel-openreplay``."""

import sys

from otel_openreplay.cli import main

sys.exit(main())
