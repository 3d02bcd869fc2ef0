"""Run under opentelemetry-instrument with no configurator: the app sets its SDK up itself, later.

opentelemetry-instrumentation-logging's handler on the root logger sends records to whatever provider is set.
"""

import json
import logging

from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter

import otel_openreplay

exporter = InMemoryLogRecordExporter()
provider = LoggerProvider()
provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
set_logger_provider(provider)

with otel_openreplay.session(session_id="4"):
    logging.getLogger("job").error("late provider")
provider.force_flush()
first = provider._multi_log_record_processor._log_record_processors[0]
print(json.dumps({"bodies": [d.log_record.body for d in exporter.get_finished_logs()], "first": type(first).__name__}))
