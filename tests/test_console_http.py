"""The operator console's HTTP side (`tonne serve --http-port`): every endpoint behind an
operator credential, typed 400s for bad queries, the settlement log paged and followed
live, certificates verified, and `/metrics` parsed with prometheus_client's own parser and
checked against what a client did."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.console.app import QUERY_BYTES_MAX
from settlement.certificate_proof import decode_proof
from settlement.certificate_verify import verify_proof
from tests.console_exchange import TOKEN, basic, buy_to_retire, console_exchange, trade

ENDPOINTS = [
    "/",
    "/console.js",
    "/console.css",
    "/metrics",
    "/api/health",
    "/api/log",
    "/api/market",
    "/api/registry",
    "/api/certificate?id=RC-00000001",
    "/api/certificate/proof?id=RC-00000001",
    "/no/such/page",
]


def run(body):
    asyncio.run(asyncio.wait_for(body(), 120))


async def get(session, url, headers=None) -> tuple[int, bytes, dict]:
    async with session.get(url, headers=headers or {}) as r:
        return r.status, await r.read(), dict(r.headers)


def test_without_a_good_operator_credential_every_endpoint_answers_401_and_nothing(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            await trade(x)
            wrong = [
                {},
                basic("token", "not-the-token"),
                {"Authorization": "Bearer not-the-token"},
                basic(x.operator.key_id, "not-its-secret"),
                basic(x.not_operator.key_id, x.not_operator.secret),  # no operator permission
                basic("no-such-key", "x"),
                {"Authorization": "Basic %%%not-base64"},
                {"Authorization": "Basic " + "QQ==" * 400},  # oversized
                {"Authorization": "Digest whatever"},
            ]
            for path in ENDPOINTS:
                for headers in wrong:
                    status, data, h = await get(s, x.base + path, headers)
                    assert status == 401, (path, headers, status)
                    assert data == b"an operator credential is needed\n", (path, data)
                    assert h["WWW-Authenticate"].startswith("Basic realm=")
                oversized = x.base + path + ("&" if "?" in path else "?") + "a=" + "x" * 5000
                status, data, _ = await get(s, oversized)
                assert status == 401 and b"record" not in data
            status, data, _ = await get(s, x.base + "/healthz")  # the one open endpoint
            assert (status, data) == (200, b"ok\n")

    run(body)


def test_an_operator_key_or_the_start_token_opens_every_page(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            for headers in (x.auth, basic("token", TOKEN), {"Authorization": f"Bearer {TOKEN}"}):
                for path in ENDPOINTS[:-3]:
                    status, _, _ = await get(s, x.base + path, headers)
                    assert status == 200, (path, status)
            status, _, _ = await get(s, x.base + "/no/such/page", x.auth)
            assert status == 404  # only once the credential is good

    run(body)


BAD_QUERIES = [
    ("/api/log?bogus=1", "unknown parameter 'bogus'"),
    ("/api/log?limit=0", "limit must be within"),
    ("/api/log?limit=501", "limit must be within"),
    ("/api/log?limit=ten", "limit must be a whole number"),
    ("/api/log?limit=%C2%B2", "limit must be a whole number"),  # a digit, not an ASCII one
    ("/api/log?account=%EF%BC%91", "account must be a whole number"),  # fullwidth 1
    ("/api/log?before=-1", "before must be a whole number"),
    ("/api/log?before=99999999999999999999999", "before must be a whole number"),
    ("/api/log?before=5&after=1", "one or the other"),
    ("/api/log?wait=5", "wait goes with after"),
    ("/api/log?after=0&wait=26", "wait must be within"),
    ("/api/log?kind=fill,teleport", "'teleport' is not a record kind"),
    ("/api/log?account=x", "account must be a whole number"),
    ("/api/log?limit=1&limit=2", "given twice"),
    ("/api/log?series=" + "S" * 65, "series is longer than 64"),
    ("/api/log?serial=%00", "cannot be printed"),
    ("/api/log?serial=" + "9" * (QUERY_BYTES_MAX + 1), "longer than 2048 bytes"),
    ("/api/certificate", "id is needed"),
    ("/api/certificate?id=" + "R" * 33, "id is longer than 32"),
    ("/api/certificate?id=RC-1&x=1", "unknown parameter 'x'"),
    ("/api/health?x=1", "unknown parameter 'x'"),
    ("/api/market?x=1", "unknown parameter 'x'"),
    ("/api/registry?x=1", "unknown parameter 'x'"),
    ("/metrics?x=1", "unknown parameter 'x'"),
    ("/?x=1", "unknown parameter 'x'"),
]


def test_a_bad_query_gets_400_naming_what_is_wrong(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            for path, says in BAD_QUERIES:
                status, data, _ = await get(s, x.base + path, x.auth)
                assert status == 400, (path, status, data[:200])
                assert says in json.loads(data)["error"], (path, data)

    run(body)


def test_metrics_parse_and_count_what_the_client_did(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            _, before, _ = await get(s, x.base + "/metrics", x.auth)
            sent = await trade(x)
            watcher = await x.client(x.traders[0])  # one session open while scraped
            try:
                status, data, h = await get(s, x.base + "/metrics", x.auth)
            finally:
                await watcher.close()
            assert status == 200 and h["Content-Type"].startswith("text/plain; version=")
            was, now = samples(before.decode()), samples(data.decode())

            def grew(name: str, **labels: str) -> float:
                key = (name, tuple(sorted(labels.items())))
                return now.get(key, 0.0) - was.get(key, 0.0)

            assert grew("tonne_commands_total", kind="new_order") == sent["new_order"]
            assert grew("tonne_rejects_total", reason="INVALID_PRICE") == sent["rejects"]
            assert grew("tonne_fills_total") == sent["trades"]
            assert grew("tonne_fill_reports_total") == 2 * sent["trades"]
            assert grew("tonne_settlement_records_total") == sent["trades"]  # one fill record
            assert now[("tonne_sessions", (("transport", "tcp"),))] == 1
            assert now[("tonne_sessions", (("transport", "ws"),))] == 0
            assert grew("tonne_received_bytes_total", transport="tcp") > 0
            assert grew("tonne_sent_bytes_total", transport="tcp") > 0
            assert grew("tonne_commit_latency_seconds_count") >= 1
            assert grew("tonne_commit_batch_commands_sum") >= 2  # the orders, journaled
            buckets = [
                v for (n, lab), v in now.items() if n == "tonne_commit_latency_seconds_bucket"
            ]
            assert buckets == sorted(buckets)  # cumulative
            assert ("tonne_snapshot_pause_seconds_count", ()) in now
            assert ("tonne_slow_consumer_drops_total", ()) in now
            assert ("tonne_journal_lag_commands", ()) in now

    run(body)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_the_log_pages_newest_first_and_filters(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            for _ in range(3):
                await trade(x)
            _, data, _ = await get(s, x.base + "/api/log?limit=7", x.auth)
            first = json.loads(data)
            head = first["head"]
            seqs = [r["seq"] for r in first["records"]]
            assert seqs == list(range(head, head - 7, -1))
            seen, before = list(seqs), first["next_before"]
            while before is not None:  # page to the start: every record once
                _, data, _ = await get(s, f"{x.base}/api/log?limit=7&before={before}", x.auth)
                page = json.loads(data)
                seen += [r["seq"] for r in page["records"]]
                before = page["next_before"]
            assert seen == list(range(head, 0, -1))
            _, data, _ = await get(s, x.base + "/api/log?kind=fill", x.auth)
            fills = json.loads(data)["records"]
            assert len(fills) == 3 and {r["kind"] for r in fills} == {"fill"}
            buyer = x.traders[1].account
            _, data, _ = await get(s, f"{x.base}/api/log?kind=fill&account={buyer}", x.auth)
            assert [r["seq"] for r in json.loads(data)["records"]] == [r["seq"] for r in fills]
            _, data, _ = await get(s, f"{x.base}/api/log?account=999999", x.auth)
            assert json.loads(data)["records"] == []
            _, data, _ = await get(s, f"{x.base}/api/log?series={x.series.id}", x.auth)
            assert {r["series"] for r in json.loads(data)["records"]} == {x.series.id}
            serial = fills[0]["serials"][0]
            _, data, _ = await get(s, f"{x.base}/api/log?kind=fill&serial={serial}", x.auth)
            assert [r["seq"] for r in json.loads(data)["records"]] == [fills[0]["seq"]]
            _, data, _ = await get(s, f"{x.base}/api/log?after={head - 2}", x.auth)
            assert [r["seq"] for r in json.loads(data)["records"]] == [head - 1, head]

    run(body)


def test_a_live_log_request_returns_a_record_as_it_commits(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            _, data, _ = await get(s, x.base + "/api/log?limit=1", x.auth)
            head = json.loads(data)["head"]
            url = f"{x.base}/api/log?after={head}&wait=20&kind=fill"
            waiting = asyncio.ensure_future(get(s, url, x.auth))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # nothing new yet: it waits
            await trade(x)
            status, data, _ = await waiting
            page = json.loads(data)
            assert status == 200 and [r["kind"] for r in page["records"]] == ["fill"]
            assert page["records"][0]["seq"] > head
            _, data, _ = await get(s, f"{x.base}/api/log?after={page['head']}&wait=1", x.auth)
            assert json.loads(data)["records"] == []  # a quiet second: an empty answer

    run(body)


def test_a_certificate_is_looked_up_and_verified_against_the_chain(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            cert_id = await buy_to_retire(x)
            await trade(x)  # more records after it: the chain runs on to the head
            c: dict = {}
            for _ in range(100):
                status, data, _ = await get(s, f"{x.base}/api/certificate?id={cert_id}", x.auth)
                c = json.loads(data)
                if c["found"]:
                    break
                await asyncio.sleep(0.05)
            assert status == 200 and c["verified"], c
            kinds = [r["kind"] for r in c["records"]]
            assert "fill_retirement" in kinds
            for r in c["records"]:
                assert r["hash"] == r["recomputed_hash"]
            assert c["linked_through"] == c["head"]["seq"]
            assert c["proof"]["ok"] and c["proof"]["summary"].startswith(
                f"OK certificate {cert_id}"
            )
            # the proof file the console hands out verifies offline, pinned to the log's head
            status, data, h = await get(s, f"{x.base}/api/certificate/proof?id={cert_id}", x.auth)
            assert status == 200 and "attachment" in h["Content-Disposition"]
            proof = decode_proof(data)
            head = c["head"]
            assert verify_proof(proof, head=head["hash"], head_seq=head["seq"]).ok
            altered = data.replace(b"Console Test Airline", b"Console Test Airlinf")
            verdict = verify_proof(decode_proof(altered), head=head["hash"])
            assert not verdict.ok and verdict.field.endswith("beneficiary"), verdict
            status, _, _ = await get(s, f"{x.base}/api/certificate/proof?id=RC-99999999", x.auth)
            assert status == 404
            status, data, _ = await get(s, f"{x.base}/api/certificate?id=RC-99999999", x.auth)
            assert status == 404 and json.loads(data)["found"] is False

    run(body)


def test_no_page_or_endpoint_shows_a_secret(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            await trade(x)
            master = (tmp_path / "master.key").read_text().strip()
            assert len(master) == 64  # the key, as hex: what must not be shown
            stored = json.loads((tmp_path / "accounts.json").read_text())["keys"]
            sealed = [k["secret_sealed"] for k in stored if k.get("secret_sealed")]
            secrets = [x.operator.secret, x.not_operator.secret, TOKEN, master, *sealed]
            secrets += [k.secret for k in x.traders]
            for path in ENDPOINTS[:-1]:
                _, data, _ = await get(s, x.base + path, x.auth)
                text = data.decode()
                for secret in secrets:
                    assert secret not in text, path

    run(body)


def test_the_console_is_off_unless_asked(tmp_path):
    from gateway.cli.serve import running

    async def body():
        async with running(tmp_path, tcp_port=0, ws_port=0) as ex:
            assert ex.console is None and "http_port" not in ex.info
            assert ex.server.metrics is None  # and the hot path counts nothing

    run(body)


def test_the_follower_misses_no_release_that_comes_while_it_reads(tmp_path):
    """A batch released while the follower's thread is reading wakes it again: the fill
    and the certificate it brings are seen without anything else committing after them."""
    import threading

    from gateway.console.app import Console
    from gateway.durability.store import SQLiteStore

    in_read, go_on = threading.Event(), threading.Event()

    class HeldRead(SQLiteStore):
        """Reads the head, then waits to be let go on: a release comes meanwhile."""

        def head(self):
            head = super().head()
            if not go_on.is_set():
                in_read.set()
                go_on.wait(30)
            return head

    async def body():
        async with console_exchange(tmp_path) as x:
            ex = x.ex
            console = Console(
                ex.server, ex.journal, tmp_path, ex.info, ex.server.metrics,
                open_store=lambda: HeldRead(tmp_path, readonly=True),
            )  # fmt: skip
            await console.start("127.0.0.1", 0)
            try:
                await asyncio.to_thread(in_read.wait, 30)  # the follower is mid-read
                cert_id = await buy_to_retire(x)  # released now
                go_on.set()
                head = ex.journal.log_seq
                for _ in range(200):
                    if console.followed_seq >= head:
                        break
                    await asyncio.sleep(0.05)
                assert console.followed_seq == head, (console.followed_seq, head)
                assert console.certificate_span(cert_id) is not None
                assert console.trades and console.trades[-1][0] == head - 1  # the fill
            finally:
                go_on.set()
                await console.close()

    run(body)


def test_closing_answers_an_open_long_poll_at_once(tmp_path):
    async def body():
        async with console_exchange(tmp_path) as x, aiohttp.ClientSession() as s:
            _, data, _ = await get(s, x.base + "/api/log?limit=1", x.auth)
            head = json.loads(data)["head"]
            url = f"{x.base}/api/log?after={head}&wait=25"
            waiting = asyncio.ensure_future(get(s, url, x.auth))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            # closing does not wait out the poll's 25 s (bounded here well below it)
            await asyncio.wait_for(x.ex.console.close(), 10)
            status, data, _ = await asyncio.wait_for(waiting, 10)
            assert status == 200 and json.loads(data)["records"] == []

    run(body)
