"""Webhook benchmark: signed HubSpot batches and Pipedrive singles against a bare-endpoint ceiling.

    .venv/bin/python -m benchmarks.webhooks [--batches N] [--singles N] [--concurrency C]
        [--paced-seconds S] [--client raw|httpx] [--wait-quiet S] [--py-spy PATH]

What it does, in one run (infra and helpers come from benchmarks/intake.py):

1. Infra: embedded PostgreSQL + embedded Tansu (or the SALESOPS_* URLs), schema migrated; the
   pipeline_api service under uvicorn in its own process, relay in-process as in production;
   a bare FastAPI endpoint (benchmarks/webhook_server.py) under uvicorn in another process
   with the same flags. Two sources are created through `PUT /v1/sources/{id}` with the
   admin key: HubSpot (v3 signatures, a secret, stage + owner mapping of the payloads) and
   Pipedrive (HTTP Basic, stage + owner mapping).
2. HubSpot, closed loop: `--batches` POSTs of 100 items (per deal: `deal.creation` and
   `deal.propertyChange` for dealname, dealstage, amount, hubspot_owner_id; 20 fresh deals,
   fresh eventIds per batch), C in flight. Each request gets a fresh
   X-HubSpot-Request-Timestamp and its v3 signature, computed in the load generator just
   BEFORE its latency clock starts (signing is not timed). Events/s, requests/s, latencies.
3. HubSpot, paced open loop at 50% of the requests/s just measured for `--paced-seconds`:
   requests leave on a fixed schedule whatever the answers do. Target: p99 < 100 ms.
4. Pipedrive: `--singles` POSTs of one v2 event each (deal create, then a stage change of the
   same deal; unique meta.id), Basic auth, C in flight.
5. Ceiling, same client, same concurrency: the bare endpoint gets the same Pipedrive bodies
   and headers (target: Pipedrive requests/s >= 0.6 x bare), and, for reference, the same
   HubSpot batches (signed for its URL); each cycled for `--bare-seconds`.
6. Checks: every webhook answer is 200 with `accepted` == the events it carried; after the
   relay drained, pipeline.events holds exactly what was sent per source; the slowest answer
   against HubSpot's 5 s and Pipedrive's 10 s answer limits.

Load generator (`--client`): by default a minimal keep-alive HTTP/1.1 client on asyncio
streams (RawClient below), one connection per request in flight; `--client httpx` uses
httpx.AsyncClient as benchmarks/intake.py does. httpx costs ~1.2 ms of CPU per request here,
four times the bare endpoint's own cost, so with it the "ceiling" is httpx's and not the
server's (see RESULTS.md). The generator's garbage collector is paused while measuring.

Warm-ups (not measured, but stored and counted) come before each measured phase, and the
relay drains between phases so each starts from an empty backlog. CPU per process comes
from /proc. `--py-spy PATH` profiles the API server during the HubSpot and Pipedrive phases
(summarise with `python -m benchmarks.profile_summary FILE`).

Everything talks to 127.0.0.1 only, every loop is bounded in count and time, and the exit
code is 0 whether or not the targets are met (this is a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import gc
import itertools
import json
import math
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import orjson
from sqlalchemy.engine import make_url

from benchmarks.intake import (
    API_KEY,
    PROJECT_ROOT,
    PhaseResult,
    _run,
    api_server,
    backlog,
    broker,
    cpu_delta,
    cpu_snapshot,
    database,
    machine,
    percentile,
    postmaster_pid,
    profiler,
    server_metrics,
    wait_drained,
    wait_quiet,
)
from services.pipeline_api.crm.hubspot.signatures import hubspot_v3

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "pipedrive"
HUBSPOT_PATH = "/v1/webhooks/hubspot"
PIPEDRIVE_PATH = "/v1/webhooks/pipedrive"
BARE_PATH = "/bare"

TARGET_P99_HALF_MS = 100.0  # HubSpot 100-event batches, p99 at half the max rate
TARGET_RATIO = 0.6  # Pipedrive single-event requests/s over the bare endpoint's
HUBSPOT_LIMIT_S = 5.0  # HubSpot counts a delivery as failed past 5 s
PIPEDRIVE_LIMIT_S = 10.0  # Pipedrive's answer timeout

HS_SECRET = "bench-hs-" + uuid.uuid4().hex
PD_USER, PD_PASSWORD = "salesops", "bench-pd-" + uuid.uuid4().hex
HS_STAGES = {  # HubSpot dealstage ids (the fixture's custom one and defaults) -> ours
    "1f4f1ec1-8174-49f3-a112-4eaa4748e38e": {"stage": "discovery", "pipeline": "sales"},
    "appointmentscheduled": {"stage": "discovery"},
    "qualifiedtobuy": {"stage": "qualified"},
    "presentationscheduled": {"stage": "proposal"},
}
HS_OWNERS = {"75761595": "rep-ana", "75761596": "rep-bo", "75761597": "rep-cy"}
DEALS_PER_BATCH = 20  # x 5 items = 100 events per HubSpot request


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class Delivery:
    body: bytes
    text: str  # the body as text, decoded ahead of time for HubSpot's signature
    events: int  # canonical events it should store


class HubSpotBatches:
    """100-item batches as HubSpot sends them: a creation is `deal.creation` plus one
    `deal.propertyChange` per property, same occurredAt; fresh objectIds and eventIds."""

    def __init__(self, portal: int, rng: random.Random) -> None:
        self.portal, self.rng = portal, rng
        self.next_object = 300_000_000_000 + rng.randrange(10**9) * 100
        self.next_event = rng.randrange(10**9)

    def _item(self, deal: int, at: int, kind: str, **extra: Any) -> dict[str, Any]:
        self.next_event += 1
        return {
            "attemptNumber": 0,
            "sourceId": "userId:45678",
            "eventId": self.next_event,
            "changeSource": "CRM_UI",
            "occurredAt": at,
            "subscriptionType": kind,
            "portalId": self.portal,
            "appId": 39522895,
            "objectId": deal,
            **extra,
        }

    def batch(self) -> Delivery:
        items: list[dict[str, Any]] = []
        now_ms = int(time.time() * 1000)
        for _ in range(DEALS_PER_BATCH):
            deal = self.next_object
            self.next_object += 1
            at = now_ms - self.rng.randrange(60_000)

            def change(name: str, value: str, sub: int, deal: int = deal, at: int = at) -> None:
                items.append(
                    self._item(
                        deal,
                        at,
                        "deal.propertyChange",
                        propertyName=name,
                        propertyValue=value,
                        subscriptionId=sub,
                    )
                )

            items.append(
                self._item(deal, at, "deal.creation", changeFlag="CREATED", subscriptionId=6547118)
            )
            change(
                "dealname", f"Account {deal % 100_000} - {self.rng.randint(5, 200)} seats", 6547120
            )
            change("dealstage", self.rng.choice(list(HS_STAGES)), 6547121)
            change("amount", str(self.rng.randrange(500, 250_000, 50)), 6547123)
            change("hubspot_owner_id", self.rng.choice(list(HS_OWNERS)), 6547126)
        body = orjson.dumps(items)
        return Delivery(body=body, text=body.decode(), events=len(items))

    def make(self, n: int) -> list[Delivery]:
        return [self.batch() for _ in range(n)]


class PipedriveEvents:
    """v2 single-event bodies in the published shape: a deal create, then a stage change
    (1 -> 2) of the same deal; every one with a unique meta.id."""

    def __init__(self, company: int, rng: random.Random) -> None:
        self.company, self.rng = company, rng
        self.create = json.loads((FIXTURES / "v2_deal_create_pipedream.json").read_text())
        self.change = json.loads((FIXTURES / "v2_deal_change_stage.json").read_text())
        self.next_deal = rng.randrange(10**6, 10**8)

    def _event(self, template: dict[str, Any], deal: int, stamp: str) -> Delivery:
        body = copy.deepcopy(template)
        body["meta"].update(
            id=str(uuid.uuid4()),
            correlation_id=str(uuid.uuid4()),
            company_id=self.company,
            entity_id=deal,
            timestamp=stamp,
        )
        body["data"].update(id=deal, title=f"Deal {deal}", owner_id=123123)
        if body.get("previous"):  # the change: stage 1 -> 2, just now
            body["data"].update(stage_id=2, update_time=stamp[:19] + "Z")
            body["previous"] = {"stage_id": 1}
        else:
            body["data"].update(stage_id=1, value=self.rng.randrange(500, 90_000))
        raw = orjson.dumps(body)
        return Delivery(body=raw, text=raw.decode(), events=1)

    def make(self, n: int) -> list[Delivery]:
        out: list[Delivery] = []
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        while len(out) < n:
            deal = self.next_deal
            self.next_deal += 1
            out.append(self._event(self.create, deal, stamp))
            if len(out) < n:
                out.append(self._event(self.change, deal, stamp))
        return out


def hubspot_signer(url: str) -> Callable[[Delivery], dict[str, str]]:
    """Headers of one HubSpot delivery to `url`: fresh timestamp, v3 signature."""

    def headers(d: Delivery) -> dict[str, str]:
        ts = str(int(time.time() * 1000))
        return {
            "content-type": "application/json",
            "x-hubspot-request-timestamp": ts,
            "x-hubspot-signature-v3": hubspot_v3(HS_SECRET, "POST", url, d.text, ts),
        }

    return headers


def pipedrive_headers(_: Delivery) -> dict[str, str]:
    return _PD_HEADERS


_PD_HEADERS = {
    "content-type": "application/json",
    "authorization": "Basic " + base64.b64encode(f"{PD_USER}:{PD_PASSWORD}".encode()).decode(),
}


def check_ingested(response: Answer, d: Delivery) -> str | None:
    """None when the webhook answer says every event of `d` was stored."""
    if response.status != 200:
        return f"{response.status} {response.body[:200]!r}"
    answer = response.json()
    if answer.get("accepted") != d.events or answer.get("parked") or answer.get("unsupported"):
        return f"partial: {str(answer)[:300]}"
    return None


def check_ok(response: Answer, _: Delivery) -> str | None:
    return None if response.status == 200 else f"{response.status}"


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Client(Protocol):
    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer: ...

    async def aclose(self) -> None: ...


class RawClient:
    """A minimal HTTP/1.1 keep-alive client (asyncio streams), for loopback load only.

    It sends `POST` with Content-Length and reads answers framed by Content-Length or
    chunked encoding (uvicorn sends one or the other), keeping up to `max_connections`
    open. It exists because httpx, measured against the bare endpoint on this 2-core
    machine, spent ~1.2 ms of CPU per request (the endpoint ~0.3 ms), so the "ceiling" was
    httpx's own, with multi-second tails from its connection pool; this client spends ~55 µs.
    """

    def __init__(self, base: str, max_connections: int, timeout: float = 30.0) -> None:
        hostport = base.removeprefix("http://").rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.hostport = hostport
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        async with self._slots, asyncio.timeout(self.timeout):
            for _ in range(2):
                conn, reused = await self._checkout()
                try:
                    answer, keep = await self._exchange(conn, path, body, headers)
                except asyncio.IncompleteReadError as exc:
                    conn[1].close()
                    if exc.partial or not reused:
                        raise
                    continue  # closed by the server's keep-alive timeout as we reused it
                except BaseException:
                    conn[1].close()
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    conn[1].close()
                return answer
            raise ConnectionError("the server closed two connections in a row")

    async def _checkout(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        while self._idle:  # skip connections the server closed while they were idle
            conn = self._idle.pop()
            if not conn[0].at_eof():
                return conn, True
            conn[1].close()
        return await self._connect(), False

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def _exchange(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        path: str,
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[Answer, bool]:
        reader, writer = conn
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {self.hostport}\r\n"
            f"content-length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            content = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # no trailers from uvicorn
            content = b"".join(parts)
        else:
            content = await reader.read()
            return Answer(status, content), False
        return Answer(status, content), fields.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


class HttpxClient:
    """httpx.AsyncClient, as benchmarks/intake.py drives its server (`--client httpx`)."""

    def __init__(self, base: str, max_connections: int, timeout: float = 30.0) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        response = await self._client.post(path, content=body, headers=headers)
        return Answer(response.status_code, response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


CLIENTS: dict[str, Callable[[str, int], Client]] = {"raw": RawClient, "httpx": HttpxClient}


# --------------------------------------------------------------------------- load


@dataclass
class Phase(PhaseResult):
    """`batches` counts answered requests, `events` the events of those answered right."""

    sent_events: int = 0  # events in every request that was sent
    statuses: dict[int, int] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)  # paced: actual start - scheduled
    from_schedule: list[float] = field(default_factory=list)  # paced: answer - scheduled
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (scheduled, latency)
    target_rps: float = 0.0
    commits: float = 0.0  # event log group commits during the phase (server /metrics)
    commit_s: float = 0.0
    published: float = 0.0  # events the relay published to Kafka during the phase
    backlog_at_end: int = 0  # events stored but not yet published when the phase ended

    @property
    def rps(self) -> float:
        return self.batches / self.seconds if self.seconds else 0.0

    def ms(self, values: list[float], p: float) -> float:
        return percentile(sorted(values), p) * 1000


Headers = Callable[[Delivery], dict[str, str]]
Check = Callable[[Answer, Delivery], str | None]


async def _exchange(
    client: Client,
    path: str,
    d: Delivery,
    headers: dict[str, str],
    check: Check,
    result: Phase,
    started: float,
    scheduled: float | None = None,
) -> None:
    result.sent_events += d.events
    try:
        response = await client.post(path, d.body, headers)
    except Exception as exc:  # a benchmark counts failures (refused, reset, timeout), no more
        result.errors += 1
        result.statuses[0] = result.statuses.get(0, 0) + 1  # 0: no answer
        if len(result.error_samples) < 3:
            result.error_samples.append(repr(exc))
        return
    done = time.perf_counter()
    result.latencies.append(done - started)
    if scheduled is not None:
        result.from_schedule.append(done - scheduled)
        result.timeline.append((scheduled, done - started))
    result.statuses[response.status] = result.statuses.get(response.status, 0) + 1
    result.batches += 1
    problem = check(response, d)
    if problem is None:
        result.events += d.events
    else:
        result.errors += 1
        if len(result.error_samples) < 3:
            result.error_samples.append(problem)


async def closed_loop(
    client: Client,
    path: str,
    deliveries: Iterable[Delivery],
    headers_of: Headers,
    check: Check,
    concurrency: int,
    max_seconds: float,
) -> Phase:
    """C workers, each sends its next request when its previous one was answered."""
    result = Phase()
    todo = iter(deliveries)
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        for d in todo:
            if time.perf_counter() > deadline:
                return
            headers = headers_of(d)  # signing happens here, before the clock starts
            await _exchange(client, path, d, headers, check, result, time.perf_counter())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def paced(
    client: Client,
    path: str,
    deliveries: list[Delivery],
    headers_of: Headers,
    check: Check,
    rps: float,
    max_seconds: float,
) -> Phase:
    """Open loop: request i leaves at t0 + i/rps whether or not earlier ones were answered.

    `latencies` run from the moment the signed request is handed to the client; `from_schedule`
    from its scheduled time, so they also hold any lag of the load generator (and the
    ~0.1 ms of signing).
    """
    result = Phase(target_rps=rps)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(d: Delivery, at: float) -> None:
        headers = headers_of(d)
        started = time.perf_counter()
        result.lags.append(started - at)
        await _exchange(client, path, d, headers, check, result, started, scheduled=at)

    t0 = time.perf_counter() + 0.01
    for i, d in enumerate(deliveries):
        at = t0 + i / rps
        if at - t0 > max_seconds:
            break
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(d, at))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    while in_flight:
        await asyncio.gather(*list(in_flight))
    result.seconds = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------- infra


@contextlib.contextmanager
def bare_server(tmp: Path) -> Iterator[tuple[str, int]]:
    """benchmarks.webhook_server under uvicorn, same flags as intake.api_server's."""
    from shared.embedded import free_port

    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", "benchmarks.webhook_server:create_bare_app"),
        *("--factory", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        *("--log-level", "warning", "--timeout-graceful-shutdown", "10"),
    ]
    log_path = tmp / "bare.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=log, stderr=log, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the bare server exited:\n" + log_path.read_text()[-2000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the bare server was not ready in 60 s")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def stored_counts(
    dsn: str, sources: dict[str, tuple[str, str]]
) -> dict[str, tuple[int, int]]:
    """Per label (event source, source id): rows in pipeline.events and in
    pipeline.webhook_requests."""
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for label, (event_source, source_id) in sources.items():
            events = await conn.fetchval(
                "SELECT count(*) FROM pipeline.events WHERE source = $1", event_source
            )
            requests = await conn.fetchval(
                "SELECT count(*) FROM pipeline.webhook_requests WHERE source_id = $1", source_id
            )
            out[label] = (int(events), int(requests))
        return out
    finally:
        await conn.close()


# --------------------------------------------------------------------------- run


@dataclass
class Args:
    batches: int
    singles: int
    concurrency: int
    paced_seconds: float
    warmup_batches: int
    warmup_singles: int
    max_seconds: float
    wait_quiet: float
    seed: int
    py_spy: str | None
    client: str
    bare_seconds: float


def parse_args(argv: list[str] | None) -> Args:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.webhooks", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--batches", type=int, default=500, help="HubSpot 100-event batches (500)")
    p.add_argument("--singles", type=int, default=4000, help="Pipedrive single events (4000)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    p.add_argument("--paced-seconds", type=float, default=15.0, help="paced HubSpot run (15 s)")
    p.add_argument("--bare-seconds", type=float, default=5.0, help="each bare-endpoint phase (5 s)")
    p.add_argument("--warmup-batches", type=int, default=20)
    p.add_argument("--warmup-singles", type=int, default=300)
    p.add_argument("--max-seconds", type=float, default=60.0, help="time bound per phase")
    p.add_argument("--wait-quiet", type=float, default=0.0, help="wait for a quiet machine")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--py-spy", help="py-spy binary: profile the API server while measured")
    p.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="raw",
        help="load generator: a minimal keep-alive HTTP/1.1 client (raw, default) or httpx",
    )
    a = p.parse_args(argv)
    if min(a.batches, a.singles, a.concurrency) < 1 or a.paced_seconds <= 0:
        p.error("--batches, --singles, --concurrency and --paced-seconds must be positive")
    return Args(
        a.batches,
        a.singles,
        a.concurrency,
        a.paced_seconds,
        max(0, a.warmup_batches),
        max(0, a.warmup_singles),
        a.max_seconds,
        a.wait_quiet,
        a.seed,
        a.py_spy,
        a.client,
        a.bare_seconds,
    )


@dataclass
class Context:
    args: Args
    dsn: str
    roots: dict[int, str]
    admin: httpx.AsyncClient  # the API with the admin key: sources, /metrics
    tag: str
    profiles: list[str] = field(default_factory=list)
    drain_timeouts: int = 0

    async def drain(self) -> None:
        if await wait_drained(self.dsn, 60.0) is None:
            self.drain_timeouts += 1

    async def timed(
        self, label: str, run: Callable[[], Awaitable[Phase]], profile: bool = False
    ) -> Phase:
        """One measured phase, with CPU per process, group commits, and py-spy if asked."""
        server = next(p for p, r in self.roots.items() if r == "api server")
        out = Path(tempfile.gettempdir()) / f"salesops-webhooks-{label}-{self.tag}.txt"
        py_spy = self.args.py_spy if profile else None
        before_m = await server_metrics(self.admin)
        # The load generator's own garbage collections paused its loop for up to ~80 ms
        # (seen as schedule lag in the paced run): collect now, not while measuring.
        gc.collect()
        gc.disable()
        try:
            with profiler(py_spy, server, out, self.roots):
                before = cpu_snapshot()
                result = await run()
                result.cpu = cpu_delta(before, cpu_snapshot(), self.roots)
        finally:
            gc.enable()
        result.backlog_at_end = await backlog(self.dsn)
        after_m = await server_metrics(self.admin)
        result.published = after_m.get("salesops_relay_published_total", 0.0) - before_m.get(
            "salesops_relay_published_total", 0.0
        )
        key = "salesops_event_log_commit_seconds_"
        result.commits = after_m.get(key + "count", 0.0) - before_m.get(key + "count", 0.0)
        result.commit_s = after_m.get(key + "sum", 0.0) - before_m.get(key + "sum", 0.0)
        if py_spy:
            self.profiles.append(str(out))
        return result


def _sources(portal: int, company: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"bench-hs-{portal}",
            "kind": "hubspot",
            "account_id": str(portal),
            "hubspot_signature": "v3",
            "secrets": {"current": HS_SECRET},
            "mapping": {"stages": HS_STAGES, "owners": HS_OWNERS, "default_currency": "USD"},
        },
        {
            "id": f"bench-pd-{company}",
            "kind": "pipedrive",
            "account_id": str(company),
            "secrets": {"current": PD_PASSWORD, "basic_user": PD_USER},
            "mapping": {
                "stages": {"1": {"stage": "qualified"}, "2": {"stage": "proposal"}},
                "owners": {"123123": "rep-cy"},
            },
        },
    ]


async def measure(
    args: Args, api_base: str, bare_base: str, roots: dict[int, str], dsn: str
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:8]
    portal = 10**8 + uuid.uuid4().int % (9 * 10**8)
    company = 10**6 + uuid.uuid4().int % (9 * 10**6)
    if (pm := await postmaster_pid(dsn)) is not None:
        roots[pm] = "postgres"
    c, bound = args.concurrency, args.max_seconds
    make = CLIENTS[args.client]
    res: dict[str, Any] = {"portal": portal, "company": company}
    api, api_open, bare = make(api_base, c), make(api_base, 64), make(bare_base, c)
    async with (
        contextlib.AsyncExitStack() as stack,
        httpx.AsyncClient(
            base_url=api_base, timeout=30, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as admin,
    ):
        for client in (api, api_open, bare):
            stack.push_async_callback(client.aclose)
        for source in _sources(portal, company):
            r = await admin.put(f"/v1/sources/{source['id']}", json=source)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"PUT /v1/sources/{source['id']}: {r.status_code} {r.text}")
        ctx = Context(args, dsn, roots, admin, tag)
        hs, pd = HubSpotBatches(portal, rng), PipedriveEvents(company, rng)
        sign_api = hubspot_signer(api_base + HUBSPOT_PATH)
        sign_bare = hubspot_signer(bare_base + BARE_PATH)

        # HubSpot: closed loop at concurrency C, then paced at half its requests/s.
        warm_hs = hs.make(args.warmup_batches)
        res["warm_hs"] = await closed_loop(
            api, HUBSPOT_PATH, warm_hs, sign_api, check_ingested, c, bound
        )
        await ctx.drain()
        batches = hs.make(args.batches)
        res["hs_body_kib"] = sum(len(d.body) for d in batches) / len(batches) / 1024
        res["hs_max"] = hs_max = await ctx.timed(
            "hubspot",
            lambda: closed_loop(api, HUBSPOT_PATH, batches, sign_api, check_ingested, c, bound),
            profile=True,
        )
        await ctx.drain()
        rps = max(hs_max.rps / 2, 0.5)
        half = hs.make(max(1, math.ceil(rps * args.paced_seconds)))
        res["hs_half"] = await ctx.timed(
            "hubspot-paced",
            lambda: paced(
                api_open, HUBSPOT_PATH, half, sign_api, check_ingested, rps, args.paced_seconds
            ),
        )
        await ctx.drain()

        # Pipedrive: single events, closed loop at concurrency C.
        warm_pd = pd.make(args.warmup_singles)
        res["warm_pd"] = await closed_loop(
            api, PIPEDRIVE_PATH, warm_pd, pipedrive_headers, check_ingested, c, bound
        )
        await ctx.drain()
        singles = pd.make(args.singles)
        res["pd_body_kib"] = sum(len(d.body) for d in singles) / len(singles) / 1024
        res["pd"] = await ctx.timed(
            "pipedrive",
            lambda: closed_loop(
                api, PIPEDRIVE_PATH, singles, pipedrive_headers, check_ingested, c, bound
            ),
            profile=True,
        )
        res["drained"] = await wait_drained(dsn, 60.0) is not None

        # Ceiling: the same bodies and headers to the bare endpoint, same client settings,
        # cycled for --bare-seconds (it answers far faster than the webhooks do).
        def again(ds: list[Delivery]) -> Iterator[Delivery]:
            return itertools.islice(itertools.cycle(ds), 200_000)

        await closed_loop(bare, BARE_PATH, warm_pd, pipedrive_headers, check_ok, c, bound)
        secs = args.bare_seconds
        res["bare_pd"] = await ctx.timed(
            "bare-singles",
            lambda: closed_loop(
                bare, BARE_PATH, again(singles), pipedrive_headers, check_ok, c, secs
            ),
        )
        res["bare_hs"] = await ctx.timed(
            "bare-batches",
            lambda: closed_loop(bare, BARE_PATH, again(batches), sign_bare, check_ok, c, secs),
        )
        res["drain_timeouts"] = ctx.drain_timeouts
        res["profiles"] = ctx.profiles

    res["stored"] = await stored_counts(
        dsn,
        {
            "hubspot": (f"crm://hubspot/{portal}", f"bench-hs-{portal}"),
            "pipedrive": (f"crm://pipedrive/{company}", f"bench-pd-{company}"),
        },
    )
    return res


# --------------------------------------------------------------------------- report

ROLES = ("api server", "bare server", "postgres", "broker (tansu)", "load generator", "py-spy")


def _shown(cpu: dict[str, float], role: str, seconds: float) -> bool:
    return cpu.get(role, 0.0) >= 0.02 * seconds  # idle processes' timers are noise


def fmt_cpu(cpu: dict[str, float], seconds: float) -> str:
    if seconds <= 0:
        return "-"
    parts = [f"{r} {cpu[r] / seconds * 100:.0f}%" for r in ROLES if _shown(cpu, r, seconds)]
    other = sum(v for k, v in cpu.items() if k.startswith("other:"))
    parts.append(f"other processes {other / seconds * 100:.0f}%")
    return ", ".join(parts) + f" (100% = one core, over {seconds:.1f} s)"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(args: Args, res: dict[str, Any], infra: list[str], command: str) -> None:
    hs: Phase = res["hs_max"]
    half: Phase = res["hs_half"]
    pd: Phase = res["pd"]
    bare_pd: Phase = res["bare_pd"]
    bare_hs: Phase = res["bare_hs"]
    warm_hs: Phase = res["warm_hs"]
    warm_pd: Phase = res["warm_pd"]
    ratio = pd.rps / bare_pd.rps if bare_pd.rps else math.nan
    p99_half = half.ms(half.latencies, 99)
    hs_worst = max(hs.ms(p.latencies, 100) for p in (warm_hs, hs, half) if p.latencies)
    pd_worst = max(pd.ms(p.latencies, 100) for p in (warm_pd, pd) if p.latencies)
    webhook_phases = (warm_hs, hs, half, warm_pd, pd)
    failed = sum(p.errors for p in webhook_phases)
    sent = {
        "hubspot": sum(p.sent_events for p in (warm_hs, hs, half)),
        "pipedrive": sum(p.sent_events for p in (warm_pd, pd)),
    }
    requests = {
        "hubspot": sum(p.statuses.get(200, 0) for p in (warm_hs, hs, half)),
        "pipedrive": sum(p.statuses.get(200, 0) for p in (warm_pd, pd)),
    }
    stored: dict[str, tuple[int, int]] = res["stored"]
    counts_ok = all(
        stored[k][0] == sent[k] and stored[k][1] == requests[k] for k in ("hubspot", "pipedrive")
    )

    def lat(p: Phase) -> str:
        return " / ".join(f"{p.ms(p.latencies, q):.1f}" for q in (50, 95, 99, 100))

    print()
    print("== salesops webhook benchmark ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"command:  {command}")
    for k, v in machine().items():
        print(f"{k + ':':<22}{v}")
    for line in infra:
        print(line)
    print(
        f"workload: HubSpot {args.batches} batches of 100 items (20 deals x creation + "
        f"dealname/dealstage/amount/hubspot_owner_id; mean body "
        f"{res['hs_body_kib']:.1f} KiB), v3-signed per "
        f"request outside the timed span; Pipedrive {args.singles} v2 singles (create + stage "
        f"change, mean body {res['pd_body_kib']:.2f} KiB), Basic auth; concurrency "
        f"{args.concurrency}; warm-ups {args.warmup_batches} batches / {args.warmup_singles} "
        f"singles"
    )
    print()
    rows = [
        ("HubSpot closed loop: events/s", f"{hs.rate:,.0f}", f"{hs.rps:.1f} requests/s"),
        ("HubSpot closed loop: p50/p95/p99/max ms", lat(hs), ""),
        (
            "HubSpot paced at 50%: requests/s (target)",
            f"{half.rps:.1f} ({half.target_rps:.1f})",
            f"{half.rate:,.0f} events/s, {half.batches} requests",
        ),
        ("HubSpot paced: p50/p95/p99/max ms", lat(half), ""),
        (
            "HubSpot paced: p99 ms",
            f"{p99_half:.1f}",
            f"target < {TARGET_P99_HALF_MS:g}: {verdict(p99_half < TARGET_P99_HALF_MS)}",
        ),
        (
            "HubSpot paced: p99 from schedule / lag p99 ms",
            f"{half.ms(half.from_schedule, 99):.1f} / {half.ms(half.lags, 99):.2f}",
            "incl. load-generator lag and signing",
        ),
        ("Pipedrive singles: requests/s", f"{pd.rps:,.0f}", ""),
        ("Pipedrive singles: p50/p95/p99/max ms", lat(pd), ""),
        ("bare endpoint, Pipedrive bodies: requests/s", f"{bare_pd.rps:,.0f}", lat(bare_pd)),
        (
            "ratio Pipedrive / bare",
            f"{ratio:.2f}",
            f"target >= {TARGET_RATIO}: {verdict(ratio >= TARGET_RATIO)}",
        ),
        (
            "bare endpoint, HubSpot bodies: requests/s",
            f"{bare_hs.rps:,.0f}",
            f"= {bare_hs.rps * 100:,.0f} events/s; HubSpot / bare "
            f"{hs.rps / bare_hs.rps if bare_hs.rps else math.nan:.2f} (reference)",
        ),
        (
            "HubSpot slowest answer ms",
            f"{hs_worst:.1f}",
            f"limit {HUBSPOT_LIMIT_S:g} s: {verdict(hs_worst < HUBSPOT_LIMIT_S * 1000)}",
        ),
        (
            "Pipedrive slowest answer ms",
            f"{pd_worst:.1f}",
            f"limit {PIPEDRIVE_LIMIT_S:g} s: {verdict(pd_worst < PIPEDRIVE_LIMIT_S * 1000)}",
        ),
        (
            "webhook requests not 200 + accepted",
            f"{failed}",
            f"of {sum(p.batches + p.statuses.get(0, 0) for p in webhook_phases)}: "
            f"{verdict(failed == 0)}",
        ),
        (
            "stored events sent / in pipeline.events",
            " | ".join(f"{k} {sent[k]:,}/{stored[k][0]:,}" for k in sent),
            f"webhook_requests {requests['hubspot']}/{stored['hubspot'][1]}, "
            f"{requests['pipedrive']}/{stored['pipedrive'][1]}: {verdict(counts_ok)}",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"| {'metric':<{w0}} | {'value':>{w1}} | note / target")
    print(f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|------")
    for name, value, note in rows:
        print(f"| {name:<{w0}} | {value:>{w1}} | {note}")
    print()
    phases = [
        ("HubSpot closed loop", hs),
        ("HubSpot paced 50%", half),
        ("Pipedrive singles", pd),
        ("bare, Pipedrive bodies", bare_pd),
        ("bare, HubSpot bodies", bare_hs),
    ]
    for name, p in phases:
        print(f"cpu {name + ':':<24}{fmt_cpu(p.cpu, p.seconds)}")
    for name, p in phases:
        if p.batches:
            costs = ", ".join(
                f"{r} {p.cpu[r] / p.batches * 1e6:,.0f}"
                for r in ROLES
                if _shown(p.cpu, r, p.seconds)
            )
            print(f"cpu per request, {name}: {costs} µs")
    if (
        pd.batches
        and bare_pd.batches
        and pd.cpu.get("api server")
        and bare_pd.cpu.get("bare server")
    ):
        server_ratio = (bare_pd.cpu["bare server"] / bare_pd.batches) / (
            pd.cpu["api server"] / pd.batches
        )
        print(
            "server-side only (CPU per request, bare / Pipedrive webhook): "
            f"{server_ratio:.2f}; the bare phase is bound by the load generator when its CPU "
            "per request exceeds the bare server's"
        )
    if half.timeline:
        t0 = min(t for t, _ in half.timeline)
        windows: dict[int, list[float]] = {}
        for t, latency in half.timeline:
            windows.setdefault(int((t - t0) // 3), []).append(latency)
        print(
            "HubSpot paced, p99 ms per 3 s window: "
            + " ".join(
                f"{percentile(sorted(v), 99) * 1000:.0f}" for _, v in sorted(windows.items())
            )
        )
    for name, p in phases[:3]:
        if p.commits and p.seconds:
            print(
                f"event log, {name}: {p.commits:.0f} group commits, "
                f"{p.events / p.commits:.1f} events per commit, "
                f"{p.commit_s / p.commits * 1000:.1f} ms per commit, writers committing "
                f"{p.commit_s / p.seconds * 100:.0f}% of the time; relay published "
                f"{p.published / p.seconds:,.0f} events/s, backlog at the end "
                f"{p.backlog_at_end:,}"
            )
    for name, p in phases:
        other = sum(v for k, v in p.cpu.items() if k.startswith("other:"))
        if p.seconds and other / p.seconds > 0.25:
            top = sorted(((v, k[6:]) for k, v in p.cpu.items() if k.startswith("other:")))[-3:]
            print(
                f"CONTENTION WARNING ({name}): other processes used "
                f"{other / p.seconds * 100:.0f}% of a core ("
                + ", ".join(f"{n} {v / p.seconds * 100:.0f}%" for v, n in reversed(top))
                + "); figures depressed"
            )
    if not res["drained"] or res["drain_timeouts"]:
        print("relay: the backlog did not drain within 60 s at least once")
    else:
        print("relay: every phase's events were published (backlog 0) before the next phase")
    for path in res["profiles"]:
        print(f"server profile (py-spy raw): {path}")
    for name, p in (("HubSpot warm-up", warm_hs), ("Pipedrive warm-up", warm_pd), *phases):
        for sample in p.error_samples:
            print(f"error sample ({name}): {sample}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.webhooks " + shlex.join(sys.argv[1:] if argv is None else argv)
    from services.cli import run_migrations

    load, busiest = wait_quiet(args.wait_quiet)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salesops-wh-bench-")))
        started = time.perf_counter()
        url, db_desc = stack.enter_context(database(tmp))
        bootstrap, broker_desc, broker_pid = stack.enter_context(broker(tmp))
        run_migrations(url)
        api_base, api_pid = stack.enter_context(api_server(url, bootstrap, tmp))
        bare_base, bare_pid = stack.enter_context(bare_server(tmp))
        infra = [
            f"{'database:':<22}{db_desc}",
            f"{'broker:':<22}{broker_desc} at {bootstrap}",
            f"{'api server:':<22}uvicorn (uvloop, httptools) pid {api_pid} at {api_base}, "
            "1 worker, pipeline_api with its relay in-process",
            f"{'bare server:':<22}uvicorn, same flags, pid {bare_pid} at {bare_base}",
            f"{'load generator:':<22}"
            + (
                "minimal HTTP/1.1 keep-alive client (asyncio streams)"
                if args.client == "raw"
                else "httpx.AsyncClient"
            )
            + f" on uvloop, one process (--client {args.client})",
            f"{'setup:':<22}{time.perf_counter() - started:.1f}s",
            f"{'background load:':<22}{load:.0f}% of one core before the run"
            + (f" ({busiest})" if busiest else ""),
        ]
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        roots = {api_pid: "api server", bare_pid: "bare server", os.getpid(): "load generator"}
        if broker_pid:
            roots[broker_pid] = "broker (tansu)"
        res = _run(measure(args, api_base, bare_base, roots, dsn))
        report(args, res, infra, command)
        print(f"total run time: {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
