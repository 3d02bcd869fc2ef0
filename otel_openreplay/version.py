"""The package's version, read from its installed metadata (``pyproject.toml`` is the one source)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("otel-openreplay")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
