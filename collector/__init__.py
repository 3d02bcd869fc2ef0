"""The collector drop-in's files, shipped in the wheel as ``otel_openreplay._collector``.

pyproject.toml maps this folder onto that package, so the YAML files here stay the single source for the
repository and for pip users (``otel-openreplay collector config``); read them through
:mod:`otel_openreplay.collector_files`. Nothing to import here.
"""
