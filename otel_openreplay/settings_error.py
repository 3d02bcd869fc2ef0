"""The error every setting's parser raises: :class:`SettingsError`, its message naming the variable.

Its own module so that a parser living beside what it parses (:func:`otel_openreplay.replay.parse_replay_url`)
can raise it without importing :mod:`otel_openreplay.settings`, which imports that parser: the two would
import each other. Import it from :mod:`otel_openreplay.settings` as before; both names are the same class.

Standard library only, and nothing else here: the propagator loads the settings while
``opentelemetry.propagate`` is still importing.
"""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable and what is expected."""
