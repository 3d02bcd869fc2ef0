"""Property tests: whatever a client puts in the session headers, no prefix is forged or broken.

Header values go through the real propagators (W3C baggage, then ours) and the real log processor
in front of the batch processor, exactly as a request's logs do.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider

from otel_openreplay import configure
from otel_openreplay.propagator import OpenReplayPropagator
from tests.conftest import LogPipeline

PREFIX = re.compile(r"^(\[openReplaySessionToken=[0-9A-Za-z._-]{1,256}\] )?(\[openReplaySession\.id=[0-9]{1,20}\] )?")

nasty = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from("]\r\n [=.-_aZ09é\x00\t"), max_size=64),
    st.builds(lambda s: f"{s}] [openReplaySessionToken=forged", st.text(max_size=20)),
    st.builds(lambda s: f"abc.def] {s}", st.text(max_size=20)),
    st.just("x" * 10_000),
    st.from_regex(r"[0-9A-Za-z._-]{1,300}", fullmatch=True),
    st.from_regex(r"[0-9]{1,25}", fullmatch=True),
)

HEADERS = ["X-OpenReplay-SessionToken", "X-OpenReplay-Session-Token", "openReplaySession.id", "baggage"]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(values=st.dictionaries(st.sampled_from(HEADERS), nasty, min_size=1))
def test_no_forged_or_broken_prefix(values: dict[str, str]) -> None:
    """Any header values: the exported body is `<valid prefix>message`, with no second token anywhere."""
    if "baggage" in values:
        values["baggage"] = f"openReplaySessionToken={values['baggage']}"
    pipeline = LogPipeline()
    wiring = configure(logger_provider=pipeline.provider, capture_exceptions=False)
    try:
        propagator = CompositePropagator([W3CBaggagePropagator(), OpenReplayPropagator()])
        token = context.attach(propagator.extract(values))
        try:
            pipeline.provider.get_logger("app").emit(body="payment declined", severity_text="ERROR")
        finally:
            context.detach(token)
        (record,) = pipeline.records()
    finally:
        wiring.undo()
        pipeline.provider.shutdown()
    assert_well_formed(record.body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(values=st.dictionaries(st.sampled_from(HEADERS), nasty, min_size=1))
def test_no_forged_prefix_through_the_span_or_an_asgi_scope(values: dict[str, str]) -> None:
    """The same through the two framework paths: aiohttp's (only the span current) and the ASGI scope read."""
    if "baggage" in values:
        values["baggage"] = f"openReplaySessionToken={values['baggage']}"
    pipeline = LogPipeline()
    tracer_provider = TracerProvider()
    wiring = configure(logger_provider=pipeline.provider, tracer_provider=tracer_provider, capture_exceptions=False)
    try:
        propagator = CompositePropagator([W3CBaggagePropagator(), OpenReplayPropagator()])
        logger = pipeline.provider.get_logger("app")
        with tracer_provider.get_tracer("aiohttp-like").start_as_current_span(
            "GET /", context=propagator.extract(values)
        ):
            logger.emit(body="payment declined", severity_text="ERROR")
        scope = {
            "type": "http",
            "headers": [(k.lower().encode(), v.encode("utf-8", "replace")) for k, v in values.items()],
        }
        token = context.attach(wiring.propagator.extract_asgi_scope(scope, context.get_current()))
        try:
            logger.emit(body="payment declined", severity_text="ERROR")
        finally:
            context.detach(token)
        records = pipeline.records()
    finally:
        wiring.undo()
        pipeline.provider.shutdown()
    assert len(records) == 2
    for record in records:
        assert_well_formed(record.body)


def assert_well_formed(body: str) -> None:
    prefix = PREFIX.match(body)
    assert prefix is not None
    assert body[prefix.end() :] == "payment declined"
    assert body.count("openReplaySessionToken=") <= 1
    assert "\n" not in body
    assert "\r" not in body
