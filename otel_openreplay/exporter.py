"""Direct export: an OTel ``LogRecordExporter`` that writes layout documents to Elasticsearch.

For services that send error logs straight to Elasticsearch instead of through a collector. Each kept
record (severity ≥ the threshold) becomes :func:`otel_openreplay.layout.to_document` and is written
with the bulk helper as ``create`` with ``_id = document_id(record)``: a batch retried after a timeout
creates nothing twice (409 on create means "already there" and counts as success). 429 and 5xx are
retried by the helper with exponential backoff; connection failures, timeouts and refusals of the
whole request (any HTTP error, 401/403 included: a node answers them for a moment after it starts)
are retried for the whole remaining batch until a deadline, then kept as an outage (below).

The rule for documents Elasticsearch refuses one by one (:mod:`otel_openreplay.write_errors`): only a
refusal of the document itself (a mapping conflict, a 400) is a rejection, reported with its reason
on the ``otel_openreplay.exporter`` Python logger and not retried. Every refusal that is the cluster's
state of the moment is an outage, not a rejection: an index block (the flood-stage disk watermark's
``read_only_allow_delete``, per item 429 ``cluster_block_exception``; ``index.blocks.write``, 403), a
429 that outlasted the helper's retries, a 503 (shards unavailable), a closed or missing index, a
writer without the privilege, an alias without a write index. Those documents stay in the backlog and
are written when the cause is gone; the bulk requests stop at the first chunk that met it.

An outage, a block included, loses nothing the exporter accepted, up to a bound: the unwritten
documents wait in an in-memory backlog (``backlog_size`` documents, oldest dropped first, each drop
counted in the log) and go first in every later export, and in ``force_flush``/``shutdown``; a timer
also retries the backlog when the backoff ends, so it is written even if no new record comes. While
Elasticsearch cannot write, exports do not wait again until the backoff (at most ``max_backoff``) has
passed, and then try once without the helper's retries, so the batch processor's queue keeps draining
into the backlog instead of overflowing. Each episode is logged once: one WARNING when it starts
(naming the cause, for a block which one and what to do), one INFO when everything kept is written
again ("written again, N records kept during …"); the attempts in between log at DEBUG. The backlog
lives in the process: for records that must survive the process too, use the collector's persistent
queue.

What it must never do:

* raise into its caller: it runs in the ``BatchLogRecordProcessor``'s thread; failures return
  ``FAILURE`` and are logged;
* take a document out of the backlog before it is stored, or finally rejected as a document error;
* advise a mapping fix for anything but a document error;
* export its own reports, or the Elasticsearch client's logs, in a loop. Its log records go through
  the application's logging like any other (so they reach the console or a collector), and two guards
  keep them out of Elasticsearch via this exporter: records whose logger (instrumentation scope) is
  ``otel_openreplay``, ``elastic_transport`` or ``elasticsearch`` (or below them) are never written,
  which covers the batch processor case (the report is exported in a LATER batch, from the worker
  thread, where no flag set during this export could see it); and a context flag makes a nested
  ``export`` (a synchronous processor calling back into the exporter while it logs) return at once;
* create spans in the application's traces: its client has the native OTel spans switched off.

``OTEL_LOGS_EXPORTER=openreplay_elasticsearch`` makes the SDK call this class with no arguments: then
every setting comes from the ``OPENREPLAY_*`` variables (:mod:`otel_openreplay.connection`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, helpers
from opentelemetry.sdk._logs.export import LogRecordExporter as _BaseExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult as ExportResult

from otel_openreplay.connection import (
    DEFAULT_BACKLOG_SIZE,
    DEFAULT_BULK_INITIAL_BACKOFF_SECONDS,
    DEFAULT_BULK_MAX_BACKOFF_SECONDS,
    DEFAULT_BULK_MAX_RETRIES,
    DEFAULT_EXPORT_DEADLINE_SECONDS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    ConnectionSettings,
    describe_api_error,
    make_client,
    redact_url,
)
from otel_openreplay.layout import document_id, to_document
from otel_openreplay.settings import SPECS as _APP_SPECS
from otel_openreplay.settings import SettingsError, read_specs
from otel_openreplay.write_errors import Hold, classify_item, classify_request

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

LOGGER_NAME = "otel_openreplay.exporter"
"""The Python logger that reports rejected documents and lost batches."""

OWN_LOGGERS: tuple[str, ...] = ("otel_openreplay", "elastic_transport", "elasticsearch")
"""Loggers (and their children) whose records this exporter never writes: its own and its client's."""

RETRY_ON_STATUS: tuple[int, ...] = (429, 500, 502, 503, 504)
"""HTTP statuses (per document or per request) retried with backoff."""

REPORTED_REJECTIONS = 5
"""Rejected documents reported one by one per export; the rest are counted in one line."""

_CONFLICT = 409
_REPLAY_URL_SPEC = next(spec for spec in _APP_SPECS if spec.keyword == "replay_url")
_logger = logging.getLogger(LOGGER_NAME)
_exporting: contextvars.ContextVar[bool] = contextvars.ContextVar("otel_openreplay_exporting", default=False)


class ElasticsearchLogExporter(_BaseExporter):
    """Writes error-level log records to Elasticsearch in the layout OpenReplay reads.

    Every argument left ``None`` comes from its environment variable (see
    :mod:`otel_openreplay.connection`), so the class also works when the SDK builds it with no
    arguments. A bad setting raises :class:`~otel_openreplay.settings.SettingsError` here, naming the
    variable, except a bad ``OTEL_OPENREPLAY_REPLAY_URL`` variable (the link is optional): that one is
    logged at ERROR and the documents are written without links. Nothing is contacted until the first
    export.

    Args:
        url, api_key, user, password, ca_certs, index, min_severity_number: connection settings,
            overriding ``OPENREPLAY_ES_URL`` … ``OPENREPLAY_MIN_SEVERITY_NUMBER``.
        client: an Elasticsearch client to use instead of making one (it is not closed on shutdown).
        max_retries, initial_backoff, max_backoff: the bulk helper's 429/5xx retries (seconds);
            ``max_backoff`` is also the longest wait between attempts while Elasticsearch cannot write.
        deadline: total seconds one export may keep retrying after connection errors.
        request_timeout: seconds one request may take.
        chunk_size: documents per bulk request.
        backlog_size: documents kept in memory while Elasticsearch cannot take them (an outage, a
            block; oldest dropped).
        replay_url: OpenReplay dashboard URL with the project id (``OTEL_OPENREPLAY_REPLAY_URL``): each
            document gets ``openReplaySession.url`` built from it. Unset, a valid link the record
            already carries (from the log processor) is kept.
        environ: the environment to read instead of ``os.environ``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        user: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        index: str | None = None,
        min_severity_number: int | None = None,
        client: Elasticsearch | None = None,
        max_retries: int = DEFAULT_BULK_MAX_RETRIES,
        initial_backoff: float = DEFAULT_BULK_INITIAL_BACKOFF_SECONDS,
        max_backoff: float = DEFAULT_BULK_MAX_BACKOFF_SECONDS,
        deadline: float = DEFAULT_EXPORT_DEADLINE_SECONDS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        chunk_size: int = 500,
        backlog_size: int = DEFAULT_BACKLOG_SIZE,
        replay_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = ConnectionSettings.from_env(
            environ,
            url=url,
            api_key=api_key,
            user=user,
            password=password,
            ca_certs=ca_certs,
            index=index,
            min_severity_number=min_severity_number,
        )
        self.replay_url: str | None = None
        try:
            self.replay_url = read_specs((_REPLAY_URL_SPEC,), environ, {"replay_url": replay_url})["replay_url"]
        except SettingsError as error:
            if replay_url is not None:  # the caller's own argument: its mistake to see
                raise
            # The link is optional: a bad variable must not cost the app its telemetry (the SDK's
            # configurator builds this exporter; an exception there leaves the app without any).
            _logger.error("%s; documents are written without replay links", error)
        self._owns_client = client is None
        self._client = client or make_client(self.settings, request_timeout=request_timeout)
        self._max_retries = max_retries
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._deadline = deadline
        self._chunk_size = chunk_size
        self._backlog: dict[str, dict[str, Any]] = {}
        self._backlog_size = backlog_size
        self._retry_at = 0.0  # monotonic time before which a failing server is not tried again
        self._outage_backoff = initial_backoff
        self._lock = threading.Lock()  # export, force_flush/shutdown and the retry timer run on different threads
        self._shutdown = False
        self._episode: str | None = None  # what keeps documents from Elasticsearch now (None: nothing)
        self._episode_name = ""  # "the outage", "the block (index [logs] has a write block …)"
        self._episode_kept = 0  # records that went to the backlog during the episode
        self._episode_dropped = 0  # of those, dropped because the backlog was full
        self._timer: threading.Timer | None = None
        _logger.debug("Elasticsearch log exporter: %s", self.settings.describe())

    def export(self, batch: Sequence[Any]) -> ExportResult:
        """Write the batch's error-level records; ``SUCCESS`` when every one is stored (or was already).

        Never raises. Returns ``FAILURE`` when a document was refused, or Elasticsearch could not take
        the documents (unreachable until the deadline, a block, …: they are kept); the reason is logged.
        """
        if self._shutdown:
            return ExportResult.FAILURE
        if _exporting.get():
            return ExportResult.SUCCESS  # our own report, emitted while we export: never written
        token = _exporting.set(True)
        try:
            with self._lock:
                return self._export(batch, self._deadline)
        except Exception:  # the batch processor's thread must never see an exception from us
            _logger.exception("Elasticsearch export failed unexpectedly; %d records lost", len(batch))
            return ExportResult.FAILURE
        finally:
            _exporting.reset(token)

    def _export(self, batch: Sequence[Any], deadline_seconds: float) -> ExportResult:
        documents: dict[str, dict[str, Any]] = {}
        for record in batch:
            if _is_own_record(record):
                continue
            document = to_document(record, self.settings.min_severity_number, self.replay_url)
            if document is not None:
                documents[document_id(record)] = document
        # The batch joins the backlog, which stays the backlog while it is written: a document leaves it
        # only once stored (or rejected as a document error), so a flush or shutdown on another thread
        # never sees it empty while documents are in flight.
        pending = self._backlog
        fresh = len(documents.keys() - pending.keys())
        pending.update(documents)
        if not pending:
            return ExportResult.SUCCESS
        if time.monotonic() < self._retry_at:  # still in an episode's backoff: queue, do not wait
            self._episode_kept += fresh
            self._keep(pending)
            return ExportResult.FAILURE
        rejected: list[tuple[str, int, str]] = []
        deadline = time.monotonic() + deadline_seconds
        wait = self._initial_backoff
        # In an episode, one request tells whether it is over: no helper retries (they sleep ~15 s).
        retries = 0 if self._episode is not None else self._max_retries
        while pending:
            try:
                hold = self._write(pending, rejected, retries)
            except (TransportConnectionError, ConnectionTimeout, ApiError) as error:
                # Unreachable, stalled, or refusing the whole request (401/403 while a node starts,
                # 429/5xx after the helper's retries): an outage, the records wait for its end. A
                # cluster-wide block refuses the whole request too: a hold, known to last.
                hold = _request_hold(error, self.settings.index)
                if hold is None:
                    if time.monotonic() + wait <= deadline:
                        time.sleep(wait)
                        wait = min(wait * 2, self._max_backoff)
                        continue
                    self._trouble(pending, fresh, f"outage:{type(error).__name__}", "the outage", _describe(error))
                    self._report(rejected)
                    return ExportResult.FAILURE
            except Exception as error:  # an error of no known kind: the records are kept all the same
                _logger.debug("unexpected error writing to Elasticsearch", exc_info=True)
                self._trouble(pending, fresh, "outage:unexpected", "the outage", _describe(error))
                self._report(rejected)
                return ExportResult.FAILURE
            if hold is not None:
                noun = "the block" if hold.is_block else "the outage"
                self._trouble(pending, fresh, f"hold:{hold.kind}", f"{noun} ({hold.cause})", hold.describe(), hold)
                self._report(rejected)
                return ExportResult.FAILURE
        self._outage_backoff = self._initial_backoff
        self._recovered()
        if rejected:
            self._report(rejected)
            return ExportResult.FAILURE
        return ExportResult.SUCCESS

    def _write(
        self, pending: dict[str, dict[str, Any]], rejected: list[tuple[str, int, str]], retries: int
    ) -> Hold | None:
        """Bulk-create ``pending`` chunk by chunk, removing each document once it is stored or finally
        refused as a document error. Stops after the first chunk with documents Elasticsearch could not
        take for now (they stay in ``pending``) and returns why."""
        order = list(pending)
        for start in range(0, len(order), self._chunk_size):
            chunk = {doc_id: pending[doc_id] for doc_id in order[start : start + self._chunk_size]}
            hold: Hold | None = None
            for ok, item in helpers.streaming_bulk(
                self._client,
                _actions(self.settings.index, chunk),
                chunk_size=self._chunk_size,
                max_retries=retries,
                initial_backoff=self._initial_backoff,
                max_backoff=self._max_backoff,
                retry_on_status=RETRY_ON_STATUS,
                raise_on_error=False,
                raise_on_exception=True,
            ):
                info = next(iter(item.values()))
                doc_id = info.get("_id")
                status = int(info.get("status", 0))
                if ok or status == _CONFLICT:
                    pending.pop(doc_id, None)
                    continue
                held = classify_item(status, info.get("error"), self.settings.index)
                if held is None:  # the document itself: sending it again can never work
                    rejected.append((str(doc_id), status, _reason(info.get("error"))))
                    pending.pop(doc_id, None)
                elif hold is None:
                    hold = held
            if hold is not None:
                return hold
        return None

    def _trouble(
        self,
        pending: dict[str, dict[str, Any]],
        fresh: int,
        episode: str,
        name: str,
        text: str,
        hold: Hold | None = None,
    ) -> None:
        """Keep ``pending``, wait a growing backoff before trying again, and log the episode once."""
        self._outage_backoff = min(self._outage_backoff * 2, self._max_backoff)
        self._retry_at = time.monotonic() + self._outage_backoff
        if self._episode is None:
            self._episode_kept, self._episode_dropped = len(pending), 0
        else:
            self._episode_kept += fresh
        url = redact_url(self.settings.url)
        if episode != self._episode:
            self._episode, self._episode_name = episode, name
            if hold is None:
                _logger.warning("Elasticsearch at %s %s; %d records kept to retry", url, text, len(pending))
            else:
                _logger.warning(
                    "Elasticsearch at %s: %s; %d records kept to retry until it is over (at most %d, oldest "
                    "dropped first; the documents themselves are fine). To do: %s",
                    url,
                    text,
                    len(pending),
                    self._backlog_size,
                    hold.advice,
                )
        else:
            _logger.debug("Elasticsearch at %s still %s; %d records kept", url, text, len(pending))
        self._keep(pending)
        self._schedule_retry()

    def _recovered(self) -> None:
        """Everything kept is written: end the episode with one line."""
        if self._episode is None or self._backlog:
            return
        dropped = f" ({self._episode_dropped} of them dropped: backlog full)" if self._episode_dropped else ""
        _logger.info(
            "Elasticsearch at %s: written again, %d records kept during %s%s",
            redact_url(self.settings.url),
            self._episode_kept,
            self._episode_name,
            dropped,
        )
        self._episode = None
        self._episode_kept = self._episode_dropped = 0
        self._retry_at = 0.0

    def _schedule_retry(self) -> None:
        """Retry the backlog when the backoff ends, even if no new record comes to trigger an export."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(max(0.0, self._retry_at - time.monotonic()), self._retry_backlog)
        self._timer.daemon = True
        self._timer.name = "otel-openreplay-es-retry"
        try:
            self._timer.start()
        except RuntimeError:  # no thread to be had (interpreter exiting): the next export retries instead
            _logger.debug("could not start the Elasticsearch retry timer", exc_info=True)

    def _retry_backlog(self) -> None:
        """The retry timer: write the backlog unless an export is running (it does that itself)."""
        if self._shutdown or not self._backlog or not self._lock.acquire(blocking=False):
            return
        token = _exporting.set(True)
        try:
            if not self._shutdown:
                self._export((), self._deadline)
        except Exception:  # a timer thread must not die with a traceback either
            _logger.debug("retrying the Elasticsearch backlog failed", exc_info=True)
        finally:
            _exporting.reset(token)
            self._lock.release()

    def _report(self, rejected: list[tuple[str, int, str]]) -> None:
        for doc_id, status, reason in rejected[:REPORTED_REJECTIONS]:
            _logger.error(
                "Elasticsearch rejected document %s for index %r (HTTP %d): %s",
                doc_id,
                self.settings.index,
                status,
                reason,
            )
        if len(rejected) > REPORTED_REJECTIONS:
            _logger.error(
                "... and %d more documents rejected; check the mapping with `otel-openreplay es setup`",
                len(rejected) - REPORTED_REJECTIONS,
            )

    def _keep(self, pending: dict[str, dict[str, Any]]) -> None:
        """Put unwritten documents (oldest first) into the backlog, dropping the oldest beyond its size."""
        self._backlog = pending
        excess = len(pending) - self._backlog_size
        if excess > 0:
            for doc_id in list(pending)[:excess]:
                del pending[doc_id]
            self._episode_dropped += excess
            _logger.error(
                "Elasticsearch backlog full (%d documents): %d oldest records lost", self._backlog_size, excess
            )

    @property
    def backlog(self) -> int:
        """Documents waiting for Elasticsearch to take them again."""
        return len(self._backlog)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Try to write the backlog now; ``True`` when nothing is left waiting."""
        if not self._backlog or self._shutdown:
            return not self._backlog
        token = _exporting.set(True)
        try:
            # An export (or the retry timer) may be writing: wait for it, within the timeout.
            if self._lock.acquire(timeout=max(0.0, timeout_millis / 1000)):
                try:
                    self._retry_at = 0.0
                    self._export((), timeout_millis / 1000)
                finally:
                    self._lock.release()
        except Exception:  # never raise into the caller
            _logger.debug("flushing the Elasticsearch backlog failed", exc_info=True)
        finally:
            _exporting.reset(token)
        return not self._backlog

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Write what the backlog holds (within the timeout), then close the client this exporter made.

        A client passed in is left open. Documents still unwritten are counted in an error log.
        """
        if self._shutdown:
            return
        if self._timer is not None:
            self._timer.cancel()
        if self._backlog and not self.force_flush(timeout_millis):
            if self._episode is not None and self._episode.startswith("hold:"):
                _logger.error(
                    "Elasticsearch still not writable at shutdown, %s: %d records lost",
                    self._episode_name,
                    len(self._backlog),
                )
            else:
                _logger.error("Elasticsearch still unreachable at shutdown: %d records lost", len(self._backlog))
        self._shutdown = True
        if self._timer is not None:
            self._timer.cancel()
        if self._owns_client:
            try:
                self._client.close()
            except Exception:  # closing is best effort; shutdown must not raise
                _logger.debug("closing the Elasticsearch client failed", exc_info=True)


def _actions(index: str, documents: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc_id, document in documents.items():
        yield {"_op_type": "create", "_index": index, "_id": doc_id, "_source": document}


def _is_own_record(record: Any) -> bool:
    """Whether the record comes from this exporter or its client (scope = Python logger name)."""
    scope = getattr(record, "instrumentation_scope", None)
    if scope is None:
        scope = getattr(getattr(record, "log_record", None), "instrumentation_scope", None)
    name = getattr(scope, "name", None) or ""
    return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


def _describe(error: Exception) -> str:
    """What went wrong with a bulk request, for the outage log line (after "Elasticsearch at <url>")."""
    if isinstance(error, ApiError):
        return f"refused the bulk request ({describe_api_error(error)})"
    if isinstance(error, ConnectionTimeout):
        return f"did not answer in time (ConnectionTimeout: {error})"
    if isinstance(error, TransportConnectionError):
        return f"unreachable ({error})"
    return f"failed ({type(error).__name__}: {error})"


def _request_hold(error: Exception, index: str) -> Hold | None:
    """The block behind a whole bulk request refused (a cluster-wide block), or None."""
    if not isinstance(error, ApiError):
        return None
    return classify_request(int(getattr(error, "status_code", 0) or 0), getattr(error, "body", None), index)


def _reason(error: Any) -> str:
    """``type: reason`` of a bulk item error, with its first cause (the useful part of mapping errors)."""
    if not isinstance(error, Mapping):
        return str(error)
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    if isinstance(cause, Mapping):
        text += f" (caused by {cause.get('type', '')}: {cause.get('reason', '')})"
    return text
