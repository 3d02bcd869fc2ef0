"""Retention of `logs`: the rules (unit), and on every supported server the migration under both writers,
`es rotate` as the maintenance account, and OpenReplay's two reads before and after, counting records."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AuthorizationException, Elasticsearch
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_openreplay import cli
from otel_openreplay.exporter import ElasticsearchLogExporter
from otel_openreplay.keys import role_descriptors
from otel_openreplay.retention import (
    Member,
    Policy,
    RetentionState,
    enable,
    is_backing_index,
    parse_duration,
    plan,
)
from otel_openreplay.template import index_template, meta_from_mapping
from tests.stack import collector as collector_stack
from tests.stack import es
from tests.stack.es import ElasticsearchNode
from tests.stack.fixtures import SERVER_VERSIONS, Accounts
from tests.test_pipeline_e2e import new_token

DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000


def member(name: str, *, created_days_ago: float, docs: int = 1, young: int | None = 0, write: bool = False) -> Member:
    return Member(name, write, NOW_MS - int(created_days_ago * DAY_MS), docs, 100, None if write else young)


class TestPolicy:
    """The retention as typed, checked, and stored in the mapping's `_meta`."""

    def test_durations(self):
        """One number and one unit; zero and compound values are refused with what was wrong."""
        assert parse_duration("30d") == 30 * 86400
        assert parse_duration("12h") == 43200
        assert parse_duration("2w") == 14 * 86400
        for bad in ("0d", "30", "1d12h", "d", "-1d", "30y"):
            with pytest.raises(ValueError, match="not a duration"):
                parse_duration(bad)

    def test_rollover_longer_than_retention_is_refused(self):
        """A rollover period longer than the retention would keep documents far beyond it."""
        with pytest.raises(ValueError, match="longer than the retention"):
            Policy("1d", "2d")

    def test_meta_round_trip(self):
        """The template's mapping `_meta` holds the policy; what it holds reads back as the same policy."""
        policy = Policy("30d", "1d")
        template = index_template("logs", policy.as_meta())
        assert template["index_patterns"] == ["logs", "logs-0*"]
        mapping = {"logs-000002": {"mappings": template["template"]["mappings"]}, "logs-000001": {"mappings": {}}}
        assert Policy.from_meta(meta_from_mapping(mapping)) == policy

    def test_no_retention_no_backing_pattern(self):
        """Without a retention the template is what it always was: the index's own name only, no `_meta`."""
        template = index_template("logs")
        assert template["index_patterns"] == ["logs"]
        assert "_meta" not in template["template"]["mappings"]
        assert Policy.from_meta(None) is None
        assert Policy.from_meta({"retention": "nonsense"}) is None

    def test_backing_names(self):
        """Only `<index>-` and six or more digits are the alias's numbered indices."""
        assert is_backing_index("logs", "logs-000001")
        assert is_backing_index("logs", "logs-1000000")
        assert not is_backing_index("logs", "logs-setup")
        assert not is_backing_index("logs", "logs")
        assert not is_backing_index("app.logs", "appXlogs-000001")


class TestPlan:
    """What `es rotate` decides for each index behind the alias."""

    policy = Policy("30d", "1d")

    def kinds(self, *members: Member) -> dict[str, str]:
        return {a.index: a.kind for a in plan(members, self.policy, NOW_MS)}

    def test_rolls_over_an_old_write_index_with_documents(self):
        """The write index rolls over once older than the period, and only if it holds a document."""
        assert self.kinds(member("logs-000001", created_days_ago=2, write=True)) == {"logs-000001": "rollover"}
        assert self.kinds(member("logs-000001", created_days_ago=0.5, write=True)) == {"logs-000001": "keep"}
        assert self.kinds(member("logs-000001", created_days_ago=9, docs=0, write=True)) == {"logs-000001": "keep"}

    def test_deletes_only_what_is_wholly_expired(self):
        """An index goes only when no document in it is younger than the retention."""
        kinds = self.kinds(
            member("logs-000001", created_days_ago=50, young=0),
            member("logs-000002", created_days_ago=40, young=3),
            member("logs-000003", created_days_ago=10, young=0),
            member("logs-000004", created_days_ago=2, write=True),
        )
        assert kinds == {
            "logs-000001": "delete",
            "logs-000002": "keep",
            "logs-000003": "delete",
            "logs-000004": "rollover",
        }

    def test_never_the_write_index(self):
        """The write index is never deleted, however old and expired its documents."""
        actions = plan([member("logs-000001", created_days_ago=90, write=True)], self.policy, NOW_MS)
        assert [a.kind for a in actions] == ["rollover"]

    def test_waits_a_period_after_the_rollover(self):
        """Writes resolved to an index just before its rollover have landed before it may go."""
        kinds = self.kinds(
            member("logs-000001", created_days_ago=40, young=0),
            member("logs-000002", created_days_ago=0.5, write=True),
        )
        assert kinds["logs-000001"] == "keep"

    def test_unknown_age_is_kept(self):
        """An index whose documents were not counted (not one of the numbered indices) is kept."""
        kinds = self.kinds(
            member("imported", created_days_ago=400, young=None),
            member("logs-000002", created_days_ago=300, write=True),
        )
        assert kinds["imported"] == "keep"


class TestRetentionState:
    """The retention part of `es check`."""

    def test_plain_index_says_there_is_none(self):
        """A plain index: no retention, and the command that sets one."""
        text = RetentionState("logs", layout="plain", docs=5, size_bytes=10).text()
        assert "none (a plain index: it grows forever" in text
        assert "documents: 5" in text

    def test_unknown_parts_name_their_privilege(self):
        """What the credentials may not read is said, with the privilege it needs, also in JSON."""
        state = RetentionState("logs", unknown=["the size needs `monitor` on the index"])
        assert "note: the size needs `monitor`" in state.text()
        assert state.as_json()["unknown"] == ["the size needs `monitor` on the index"]
        assert set(state.as_json()) >= {"layout", "retention", "docs", "size_bytes", "oldest", "newest"}


# --- end to end, on every supported server ---------------------------------------------------------

COLLECTOR_RECORDS = 300
"""Records sent through the collector while the migration runs (one session)."""

DIRECT_RECORDS = 50
"""Records the direct exporter sends before the migration, during it, and again after it."""

MAINTENANCE_ROLE = role_descriptors("maintenance", "logs")["otel_openreplay_maintenance"]


@pytest.fixture(scope="module", params=SERVER_VERSIONS)
def retention_node(request: pytest.FixtureRequest) -> Iterator[ElasticsearchNode]:
    """A node of each supported version of this module's own: these tests turn `logs` into an alias."""
    with ElasticsearchNode(version=request.param) as node:
        yield node


@pytest.fixture(scope="module")
def accounts(retention_node: ElasticsearchNode) -> Accounts:
    """The writer and the reader (the keys' roles) and a plain `logs`, as a deployment has before retention."""
    return Accounts(retention_node)


@pytest.fixture(scope="module")
def maintenance(retention_node: ElasticsearchNode) -> tuple[str, str]:
    """A user holding exactly the maintenance key's role."""
    account = (f"otelor-maintenance-{time.time_ns()}", "maintenance-password-1")
    es.add_user(retention_node, *account, f"otelor_maintenance_{time.time_ns()}", MAINTENANCE_ROLE)
    return account


@pytest.fixture
def admin(retention_node: ElasticsearchNode) -> Iterator[Elasticsearch]:
    with contextlib.closing(es.client(retention_node)) as made:
        yield made


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def as_account(node: ElasticsearchNode, account: tuple[str, str]) -> list[str]:
    return ["--url", node.url, "--user", account[0], "--password", account[1]]


def provider_for(exporter: Any, service: str) -> LoggerProvider:
    provider = LoggerProvider(resource=Resource({"service.name": service}), shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=100))
    return provider


def emit(provider: LoggerProvider, token: str, bodies: list[str], *, time_ns: int | None = None, pause: float = 0):
    logger = provider.get_logger("tests.retention")
    for body in bodies:
        logger.emit(
            body=body,
            timestamp=time_ns,
            severity_text="ERROR",
            severity_number=SeverityNumber.ERROR,
            attributes={"openReplaySessionToken": token},
        )
        if pause:
            time.sleep(pause)
    provider.force_flush()


def messages(admin: Elasticsearch, service: str, want: int, timeout: float = 90) -> list[str]:
    """The raw messages of ``service`` in `logs` once ``want`` are there (or at ``timeout``), 2 s later for extras."""
    deadline = time.monotonic() + timeout
    query = {"term": {"service.name": service}}
    while admin.count(index="logs", query=query)["count"] < want and time.monotonic() < deadline:
        time.sleep(0.5)
        admin.indices.refresh(index="logs")
    time.sleep(2)
    admin.indices.refresh(index="logs")
    hits = admin.search(index="logs", query=query, size=want + 100)["hits"]["hits"]
    return [hit["_source"]["message"].rsplit("] ", 1)[-1] for hit in hits]


def both_reads(capsys: pytest.CaptureFixture[str], accounts: Accounts, token: str) -> dict[str, int]:
    """`es check --token` as OpenReplay's reader: the records each generation shows."""
    code, out, err = run_cli(
        capsys, "es", "check", "--json", "--token", token, *as_account(accounts.node, accounts.reader)
    )
    assert code == 0, err or out
    return {g["name"]: len(g["shown"]) for g in json.loads(out)["generations"]}


def aliases(admin: Elasticsearch) -> dict[str, bool]:
    return {
        name: bool(body["aliases"]["logs"].get("is_write_index"))
        for name, body in admin.indices.get_alias(name="logs").body.items()
    }


class BlockProbe(threading.Thread):
    """A writer (the writer's account) creating one document after another, each retried while Elasticsearch
    answers the migration's write block, as the collector does; counts the blocked answers."""

    def __init__(self, node: ElasticsearchNode, account: tuple[str, str]) -> None:
        super().__init__(daemon=True)
        self.client = es.client(node, basic_auth=account)
        self.done = threading.Event()
        self.blocked = 0
        self.written: list[str] = []

    def run(self) -> None:
        serial = 0
        while not self.done.is_set():
            doc_id = f"probe-{serial}"
            (item,) = self.client.bulk(
                operations=[{"create": {"_index": "logs", "_id": doc_id}}, {"message": f"probe {serial}"}]
            )["items"]
            status = item["create"]["status"]
            if status == 403 and "block" in json.dumps(item).lower():
                self.blocked += 1
                time.sleep(0.05)
                continue
            assert status == 201, item
            self.written.append(doc_id)
            serial += 1

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)
        self.client.close()


@pytest.mark.e2e
class TestMigration:
    def test_plain_logs_becomes_an_alias_while_both_writers_write(
        self,
        retention_node: ElasticsearchNode,
        accounts: Accounts,
        admin: Elasticsearch,
        collector_binary: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`es setup --retention 30d` on a plain `logs`, while the shipped collector config and the direct exporter
        write: every record of both (the exporter's before, during and after the migration) is stored exactly
        once, and both OpenReplay generations find them all, in the old index and in the new."""
        assert admin.indices.exists(index="logs")
        assert not admin.indices.exists_alias(name="logs")
        token, _ = new_token()
        stamp = time.time_ns()
        collector_service, direct_service = f"ret-collector-{stamp}", f"ret-direct-{stamp}"
        user, password = accounts.writer
        direct = provider_for(
            ElasticsearchLogExporter(retention_node.url, user=user, password=password), direct_service
        )
        before = [f"direct before {n:03d}" for n in range(DIRECT_RECORDS)]
        emit(direct, token, before)
        with collector_stack.Collector(
            collector_stack.CONFIG, accounts.basic_env(), binary=collector_binary
        ) as collector:
            through_collector = provider_for(OTLPLogExporter(endpoint=collector.http_logs_url), collector_service)
            sent = [f"collector {n:04d}" for n in range(COLLECTOR_RECORDS)]
            stream = threading.Thread(target=emit, args=(through_collector, token, sent), kwargs={"pause": 0.02})
            stream.start()
            # The direct exporter writes all through the migration too: what meets the write block waits in
            # its backlog and is written once the block is gone.
            during = [f"direct during {n:03d}" for n in range(DIRECT_RECORDS)]
            direct_stream = threading.Thread(target=emit, args=(direct, token, during), kwargs={"pause": 0.1})
            time.sleep(1.5)  # the collector is writing to the plain index
            direct_stream.start()
            probe = BlockProbe(retention_node, accounts.writer)
            probe.start()
            code, out, err = run_cli(
                capsys,
                "es",
                "setup",
                "--retention",
                "30d",
                *as_account(retention_node, (retention_node.user, retention_node.password)),
            )
            probe.stop()
            stream.join()
            direct_stream.join()
            through_collector.shutdown()
            assert code == 0, err
            assert "replaced the index logs by the alias logs" in out
            got_collector = messages(admin, collector_service, COLLECTOR_RECORDS)
            log = collector.log_text()
        after = [f"direct after {n:03d}" for n in range(DIRECT_RECORDS)]
        emit(direct, token, after)
        direct.shutdown()
        got_direct = messages(admin, direct_service, 3 * DIRECT_RECORDS)

        assert Counter(got_collector) == Counter(sent), log[-3000:]
        assert probe.blocked > 0  # writers did meet the write block, and writing again after it stored each once
        probe_ids = [
            hit["_id"]
            for hit in admin.search(index="logs", query={"match": {"message": "probe"}}, size=10_000)["hits"]["hits"]
        ]
        assert Counter(probe_ids) == Counter(probe.written)
        assert Counter(got_direct) == Counter(before + during + after)
        assert aliases(admin) == {"logs-000001": False, "logs-000002": True}
        old = admin.count(index="logs-000001", query={"term": {"service.name": direct_service}})["count"]
        new = admin.count(index="logs-000002", query={"term": {"service.name": direct_service}})["count"]
        assert old >= DIRECT_RECORDS  # the records before, and those during that made it before the block
        assert new >= DIRECT_RECORDS  # the records after, and those held during the block
        assert old + new == 3 * DIRECT_RECORDS
        total = COLLECTOR_RECORDS + 3 * DIRECT_RECORDS
        assert both_reads(capsys, accounts, token) == {"1.20": total, "1.21": total}
        with contextlib.closing(accounts.reader_client()) as reader:  # <= 1.20's default pattern: each record once
            hits = reader.search(index="*log*", query={"match_phrase": {"message": token}}, size=1000)["hits"]
            assert len(hits["hits"]) == total

        code, out, err = run_cli(
            capsys, "es", "setup", *as_account(retention_node, (retention_node.user, retention_node.password))
        )
        assert code == 0, err  # setup again without --retention keeps it
        policy = meta_from_mapping(admin.indices.get_mapping(index="logs").body)
        assert policy == {"retention": "30d", "rollover": "1d"}


@pytest.mark.e2e
class TestRotate:
    def test_rotate_deletes_whole_expired_indices_and_nothing_younger(
        self,
        retention_node: ElasticsearchNode,
        accounts: Accounts,
        maintenance: tuple[str, str],
        admin: Elasticsearch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """With the maintenance account, on a schedule of rotations: the write index rolls over, an index whose
        newest record is older than the retention goes, one holding a younger record stays whole, and
        OpenReplay's two reads still find every young record."""
        superuser = as_account(retention_node, (retention_node.user, retention_node.password))
        left = list(admin.indices.get(index="logs")) if admin.indices.exists(index="logs") else []
        for name in left:  # a fresh layout, whatever the test before left (8.x refuses wildcard deletes)
            admin.indices.delete(index=name)
        code, out, err = run_cli(capsys, "es", "setup", "--retention", "30d", "--rollover", "3s", *superuser)
        assert code == 0, err
        assert aliases(admin) == {"logs-000001": True}

        token, _ = new_token()
        service = f"ret-rotate-{time.time_ns()}"
        user, password = accounts.writer
        writer = provider_for(ElasticsearchLogExporter(retention_node.url, user=user, password=password), service)
        old_ns = time.time_ns() - 45 * DAY_MS * 1_000_000
        first_old = [f"old A {n:02d}" for n in range(20)]
        emit(writer, token, first_old, time_ns=old_ns)
        assert len(messages(admin, service, 20)) == 20

        def rotate() -> dict[str, Any]:
            time.sleep(3.5)
            code, out, err = run_cli(capsys, "es", "rotate", "--json", *as_account(retention_node, maintenance))
            assert code == 0, err
            return json.loads(out)

        first = rotate()
        assert first["rolled_over_to"] == "logs-000002"
        assert first["deleted"] == []  # rolled over just now

        second_old, young = [f"old B {n:02d}" for n in range(20)], [f"young {n:02d}" for n in range(20)]
        emit(writer, token, second_old, time_ns=old_ns)
        emit(writer, token, young)
        writer.shutdown()
        assert len(messages(admin, service, 60)) == 60

        time.sleep(3.5)
        code, out, err = run_cli(capsys, "es", "rotate", "--dry-run", *as_account(retention_node, maintenance))
        assert code == 0, err
        assert "logs-000001: would delete (every document is older than 30d)" in out
        assert "logs-000002: would roll over (the write index is older than 3s)" in out
        assert aliases(admin) == {"logs-000001": False, "logs-000002": True}  # a dry run changes nothing

        second = rotate()
        assert second["rolled_over_to"] == "logs-000003"
        assert second["deleted"] == ["logs-000001"]
        third = rotate()
        assert third["rolled_over_to"] is None  # the write index is empty
        assert third["deleted"] == []  # logs-000002 holds young records
        assert aliases(admin) == {"logs-000002": False, "logs-000003": True}

        assert Counter(messages(admin, service, 40)) == Counter(second_old + young)
        assert both_reads(capsys, accounts, token) == {"1.20": 20, "1.21": 40}  # 1.20 polls the last 24 h only

        code, out, err = run_cli(capsys, "es", "check", "--json", "--session-id", "1", *superuser)
        state = json.loads(out)["retention"]
        assert state["layout"] == "alias"
        assert (state["retention"], state["rollover"]) == ("30d", "3s")
        assert state["docs"] == 40
        assert state["indices"] == 2
        assert state["size_bytes"] > 0
        assert state["oldest"][:10] == time.strftime("%Y-%m-%d", time.gmtime(old_ns / 1e9))

    def test_maintenance_account_cannot_touch_documents(
        self, retention_node: ElasticsearchNode, maintenance: tuple[str, str], admin: Elasticsearch
    ) -> None:
        """The maintenance role rolls over and deletes whole indices only: no write, no delete of a document,
        no other index, no template."""
        if not admin.indices.exists_alias(name="logs"):
            enable(admin, "logs", Policy("30d"))
        admin.index(index="other-index", document={"message": "x"}, refresh=True)
        with contextlib.closing(es.client(retention_node, basic_auth=maintenance)) as keeper:
            write_index = next(name for name, write in aliases(admin).items() if write)
            for refused in (
                lambda: keeper.index(index="logs", document={"message": "forged"}),
                lambda: keeper.index(index=write_index, document={"message": "forged"}),
                lambda: keeper.delete(index=write_index, id="any"),
                lambda: keeper.search(index="other-index"),
                lambda: keeper.indices.delete(index="other-index"),
                lambda: keeper.indices.put_index_template(name="x", index_patterns=["x"]),
            ):
                with pytest.raises(AuthorizationException):
                    refused()


class TestCommandLine:
    """The retention flags' usage errors, before any server is asked."""

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["es", "setup", "--rollover", "1d"], "--rollover needs --retention"),
            (["es", "setup", "--retention", "1d", "--rollover", "2d"], "longer than the retention"),
            (["es", "setup", "--retention", "30 days"], "is not a duration"),
        ],
    )
    def test_value_errors(self, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
        """Bad retention values: exit 2, ERROR and TIP, no traceback."""
        code, _, err = run_cli(capsys, *argv)
        assert code == 2
        assert message in err
        assert "TIP: " in err

    def test_rotate_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`es rotate` has help naming the connection variables and the maintenance key."""
        code, out, _ = run_cli(capsys, "es", "rotate", "--help")
        assert code == 0
        assert "$OPENREPLAY_ES_URL" in out
        assert "api-key --for maintenance" in out


class _Indices:
    """Stand-in for ``client.indices``: records each call; the clone lands one document short."""

    def __init__(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return False if name == "exists" else {}

        return call


class _ShortCloneClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.indices = _Indices(self.calls)

    def count(self, index: str) -> dict[str, int]:
        return {"count": 5 if index == "logs" else 4}


class TestMigrationUndo:
    """A migration that cannot prove it lost nothing is undone, and the writers can write again."""

    def test_a_short_clone_is_deleted_and_the_block_lifted(self) -> None:
        """The clone holds fewer documents than the source: the clone goes, the write block goes, no alias swap."""
        from otel_openreplay.retention import RetentionError, migrate

        fake = _ShortCloneClient()
        with pytest.raises(RetentionError, match="holds 4 documents, `logs` 5: migration undone"):
            migrate(fake, "logs", {"retention": "30d"})  # type: ignore[arg-type]
        names = [name for name, _ in fake.calls]
        assert names[names.index("add_block") :] == [
            "add_block", "flush", "refresh", "clone", "refresh", "delete", "put_settings",
        ]  # fmt: skip
        assert ("delete", {"index": "logs-000001"}) in fake.calls
        assert ("put_settings", {"index": "logs", "settings": {"index.blocks.write": None}}) in fake.calls
        assert "update_aliases" not in names
