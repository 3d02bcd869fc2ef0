"""The collector drop-in's files as installed with the package: the config and the builder manifest.

``pip install otel-openreplay`` is enough to run the drop-in: ``otel-openreplay collector config`` writes
``otelcol-openreplay.yaml`` for a stock ``otelcol-contrib`` (or the minimal build), ``... manifest`` writes
the OpenTelemetry Collector Builder manifest. The files are the ones under ``collector/`` in the
repository, packaged as ``otel_openreplay._collector`` (pyproject.toml maps that folder): never a copy.

Reads package data only; never writes anywhere but where the caller says (the CLI).
"""

from __future__ import annotations

from importlib import resources

FILES = {
    "config": "otelcol-openreplay.yaml",
    "manifest": "builder-config.yaml",
}
"""What ``otel-openreplay collector <what>`` writes: the name of each file in the package."""

_PACKAGE = "otel_openreplay._collector"


def read(what: str) -> str:
    """The text of the collector file ``what`` (a key of :data:`FILES`); ``KeyError`` for another name."""
    return resources.files(_PACKAGE).joinpath(FILES[what]).read_text(encoding="utf-8")
