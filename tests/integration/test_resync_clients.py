"""The CRM re-sync clients against a local server shaped like each CRM's REST API.

The server (tests/support/fake_crm.py) stands in for HubSpot, Salesforce and Pipedrive,
which cannot be reached from a test; it is served over real HTTP, so the clients' paging,
auth headers, JSON decoding, retries and rate-limit handling all run as in production.
Backoff sleeps are injected and recorded, so no test waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest

from services.pipeline_api.crm.changes import ActivityChange, DealChange
from services.pipeline_api.crm.http import (
    CrmAuthError,
    CrmUnavailableError,
    RetryPolicy,
    retry_after_seconds,
)
from services.pipeline_api.crm.hubspot.rest import HubSpotClient
from services.pipeline_api.crm.mapping import map_activity, map_deal
from services.pipeline_api.crm.pipedrive.rest import PipedriveClient
from services.pipeline_api.crm.registry import client_for
from services.pipeline_api.crm.resync import ResyncClient, resync_all, resync_each
from services.pipeline_api.crm.salesforce.rest import SalesforceClient
from services.pipeline_api.sources.schemas import Mapping, SourceIn, StageMapping
from shared.embedded import free_port
from shared.events import validate_event
from tests.support.fake_crm import (
    CrmState,
    FakeCrms,
    create_app,
    hubspot_deal,
    pipedrive_deal,
    salesforce_activity,
    salesforce_opportunity,
)
from tests.support.infra import serve_in_loop

pytestmark = pytest.mark.integration

KINDS = ["hubspot", "salesforce", "pipedrive"]
TOKENS = {"hubspot": "hs-token", "salesforce": "sf-token", "pipedrive": "pd-token"}
PD_CUSTOM = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SF_ID = "006000000000001AAA"
KNOWN = {"hubspot": "101", "salesforce": SF_ID, "pipedrive": "42"}
UNKNOWN = {"hubspot": "999999", "salesforce": "006000000000999AAA", "pipedrive": "999999"}


class Sleeps:
    """An injected `sleep` that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Changes:
    def __init__(self) -> None:
        self.items: list[DealChange] = []

    async def __call__(self, change: DealChange) -> None:
        self.items.append(change)


@pytest.fixture(scope="module")
async def crm_server() -> AsyncIterator[tuple[FakeCrms, str]]:
    crms = FakeCrms()
    async with serve_in_loop(create_app(crms)) as url:
        yield crms, url


@pytest.fixture
def crms(crm_server: tuple[FakeCrms, str]) -> FakeCrms:
    crm_server[0].reset()
    seed(crm_server[0])
    return crm_server[0]


@pytest.fixture
def base_url(crm_server: tuple[FakeCrms, str]) -> str:
    return crm_server[1]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def seed(crms: FakeCrms) -> None:
    crms.hubspot.add(
        hubspot_deal(
            "101",
            companies=[("9002", "deal_to_company_unlabeled"), ("9001", "deal_to_company")],
            dealname="Acme renewal",
            amount="1234.50",
            deal_currency_code="EUR",
            dealstage="qualifiedtobuy",
            pipeline="default",
            hubspot_owner_id="5501",
            closedate="2025-06-30T00:00:00Z",
            dealtype="newbusiness",
            hs_is_closed="false",
            hs_is_closed_won="false",
            region="emea",
            internal_note="not asked for",
        ),
        hubspot_deal(
            "102",
            dealname="Epoch close",
            amount="10",
            closedate="1751241600000",  # 2025-06-30T00:00:00Z as epoch milliseconds
            dealstage="closedwon",
            hs_is_closed="true",
            hs_is_closed_won="true",
        ),
    )
    crms.salesforce.add(
        salesforce_opportunity(
            SF_ID,
            Name="Globex expansion",
            Amount=Decimal("1234.50"),
            StageName="Negotiation/Review",
            CloseDate="2025-07-15",
            OwnerId="005000000000001AAA",
            AccountId="001000000000001AAA",
            Type="Existing Customer - Upgrade",
            ForecastCategoryName="Commit",
            Probability=90,
            Region__c="EMEA",
        ),
        salesforce_opportunity(
            "006000000000002AAA", Name="Won one", StageName="Closed Won", IsClosed=True, IsWon=True
        ),
        salesforce_opportunity(
            "006000000000003AAA", Name="Lost one", StageName="Closed Lost", IsClosed=True
        ),
    )
    crms.pipedrive.add(
        pipedrive_deal(
            42,
            title="Initech pilot",
            value=Decimal("1234.50"),
            currency="USD",
            stage_id=3,
            pipeline_id=2,
            owner_id=777,
            org_id=55,
            expected_close_date="2025-08-01",
            probability=Decimal("37.5"),
            custom_fields={PD_CUSTOM: "Enterprise"},
        ),
        pipedrive_deal(43, status="won", value=5),
        pipedrive_deal(44, is_deleted=True),
    )


def source(kind: str, base_url: str, token: str | None = None, **mapping: Any) -> SourceIn:
    return SourceIn(
        id=f"{kind}-test",
        kind=kind,
        account_id="acct-1",
        api_base_url=base_url,
        api_token=token or TOKENS[kind],
        mapping=Mapping(**mapping),
    )


def client(
    kind: str,
    base_url: str,
    http: httpx.AsyncClient,
    sleeps: Sleeps,
    *,
    token: str | None = None,
    policy: RetryPolicy | None = None,
) -> ResyncClient:
    keep = ["region", "Region__c"]
    return client_for(
        source(kind, base_url, token, keep_properties=keep), http, policy=policy, sleep=sleeps
    )


# --- one deal, canonical fields ---------------------------------------------------------


async def test_hubspot_deal_has_canonical_fields(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    change = await client("hubspot", base_url, http, sleeps).fetch_deal("101")

    assert change is not None
    assert change.crm_id == "101"
    assert change.op == "updated"
    assert change.fields == {
        "name": "Acme renewal",
        "amount": "1234.50",
        "currency": "EUR",
        "stage": "qualifiedtobuy",
        "pipeline": "default",
        "owner_id": "5501",
        "close_date": "2025-06-30",
        "created_at": "2025-01-02T03:04:05.678000+00:00",
        "deal_type": "newbusiness",
        "status": "open",
        "account_id": "9001",  # the primary company, not the unlabeled one
    }
    assert change.occurred_at == datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    assert change.event_key == "resync:101:2025-03-04T05:06:07.890000+00:00"
    assert change.properties == {"region": "emea"}  # asked for as a kept property
    sent = crms.hubspot.log[-1]
    assert sent.headers["authorization"] == "Bearer hs-token"
    assert "region" in sent.params["properties"].split(",")
    assert sent.params["associations"] == "companies"


async def test_hubspot_epoch_close_date_and_won_status(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    change = await client("hubspot", base_url, http, sleeps).fetch_deal("102")

    assert change is not None
    assert change.fields["close_date"] == "2025-06-30"
    assert change.fields["status"] == "won"
    assert change.fields["amount"] == "10"
    assert change.fields["account_id"] is None  # no company association at all


async def test_salesforce_opportunity_has_canonical_fields(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    change = await client("salesforce", base_url, http, sleeps).fetch_deal(SF_ID)

    assert change is not None
    assert change.fields["amount"] == "1234.50"  # a JSON number, never through float
    assert {k: change.fields[k] for k in change.fields if k != "amount"} == {
        "name": "Globex expansion",
        "stage": "Negotiation/Review",
        "owner_id": "005000000000001AAA",
        "account_id": "001000000000001AAA",
        "close_date": "2025-07-15",
        "created_at": "2025-01-10T08:00:00Z",
        "deal_type": "Existing Customer - Upgrade",
        "forecast_category": "commit",
        "status": "open",
    }
    assert change.occurred_at == datetime(2025, 3, 1, 12, 30, 45, tzinfo=UTC)
    assert change.event_key == f"resync:{SF_ID}:2025-03-01T12:30:45+00:00"
    assert change.properties["Region__c"] == "EMEA"
    assert change.properties["Probability"] == 90
    assert "attributes" not in change.properties
    assert crms.salesforce.log[-1].path == f"/services/data/v60.0/sobjects/Opportunity/{SF_ID}"
    assert crms.salesforce.log[-1].headers["authorization"] == "Bearer sf-token"


async def test_salesforce_status_from_is_closed_and_is_won(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    sf = client("salesforce", base_url, http, sleeps)
    won = await sf.fetch_deal("006000000000002AAA")
    lost = await sf.fetch_deal("006000000000003AAA")

    assert won is not None
    assert lost is not None
    assert won.fields["status"] == "won"
    assert lost.fields["status"] == "lost"
    assert won.fields["amount"] is None  # Amount null: no amount


async def test_salesforce_currency_in_a_multi_currency_org(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crms.salesforce_multi_currency = True
    crms.salesforce.deals[SF_ID]["CurrencyIsoCode"] = "GBP"
    sf = client("salesforce", base_url, http, sleeps)

    one = await sf.fetch_deal(SF_ID)
    everything = {c.crm_id: c async for c in sf.iter_deals()}

    assert one is not None
    assert one.fields["currency"] == "GBP"
    assert everything[SF_ID].fields["currency"] == "GBP"  # FIELDS(STANDARD) carries it


async def test_pipedrive_deal_has_canonical_fields(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    change = await client("pipedrive", base_url, http, sleeps).fetch_deal("42")

    assert change is not None
    assert change.fields == {
        "name": "Initech pilot",
        "amount": "1234.50",
        "currency": "USD",
        "stage": "3",
        "pipeline": "2",
        "owner_id": "777",
        "account_id": "55",
        "close_date": "2025-08-01",
        "created_at": "2025-02-01T10:00:00Z",
        "status": "open",
    }
    assert change.occurred_at == datetime(2025, 3, 5, 11, 22, 33, tzinfo=UTC)
    assert change.event_key == "resync:42:2025-03-05T11:22:33+00:00"
    assert change.properties[PD_CUSTOM] == "Enterprise"
    assert change.properties["probability"] == "37.5"  # a Decimal, kept as exact text
    sent = crms.pipedrive.log[-1]
    assert sent.path == "/api/v2/deals/42"
    assert sent.headers["x-api-token"] == "pd-token"
    assert "authorization" not in sent.headers


@pytest.mark.parametrize("kind", KINDS)
async def test_a_fetched_deal_maps_to_a_valid_storable_event(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    stage = {"hubspot": "qualifiedtobuy", "salesforce": "Negotiation/Review", "pipedrive": "3"}
    owner = {"hubspot": "5501", "salesforce": "005000000000001AAA", "pipedrive": "777"}
    src = source(
        kind,
        base_url,
        stages={stage[kind]: StageMapping(stage="negotiation")},
        owners={owner[kind]: "rep-1"},
        keep_properties=["region", "Region__c", PD_CUSTOM],
    )
    change = await client_for(src, http, sleep=sleeps).fetch_deal(KNOWN[kind])
    assert change is not None

    event = map_deal(src, change=change)

    assert isinstance(event, dict), event
    accepted = validate_event(event)
    assert str(accepted.payload.amount) == "1234.50"  # type: ignore[attr-defined]
    assert accepted.payload.owner_id == "rep-1"  # type: ignore[attr-defined]
    assert orjson.loads(orjson.dumps(accepted.raw))["id"] == change.event_key


# --- full re-sync across pages ----------------------------------------------------------


def paged_client(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> ResyncClient:
    """A client over 8 deals served 3 to a page (3 pages)."""
    state = crms.of(kind)
    state.deals.clear()
    if kind == "hubspot":
        state.add(
            *(hubspot_deal(str(200 + n), dealname=f"d{n}", amount=f"{n}.10") for n in range(8))
        )
        return HubSpotClient(base_url, TOKENS[kind], http, page_size=3, sleep=sleeps)
    if kind == "salesforce":
        state.page_size = 3
        state.add(
            *(
                salesforce_opportunity(f"0060000000002{n:02d}AAA", Name=f"d{n}", Amount=n)
                for n in range(8)
            )
        )
        return SalesforceClient(base_url, TOKENS[kind], http, sleep=sleeps)
    state.add(*(pipedrive_deal(200 + n, value=Decimal(f"{n}.10")) for n in range(8)))
    state.add(pipedrive_deal(300, is_deleted=True))
    return PipedriveClient(base_url, TOKENS[kind], http, page_size=3, sleep=sleeps)


@pytest.mark.parametrize("kind", KINDS)
async def test_full_resync_returns_every_deal_once_across_pages(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = paged_client(kind, crms, base_url, http, sleeps)
    changes = Changes()
    progress: list[int] = []

    count = await resync_all(crm.iter_deals(), changes, progress.append, progress_every=2)

    state = crms.of(kind)
    live = {k for k, r in state.deals.items() if not r.get("is_deleted")}
    ids = [c.crm_id for c in changes.items]
    assert count == 8
    assert sorted(ids) == sorted(live)
    assert len(ids) == len(set(ids))
    assert progress == [2, 4, 6, 8]
    assert len(state.log) == 3  # three pages, three requests
    assert all(c.op == "updated" and c.event_key.startswith("resync:") for c in changes.items)
    assert sleeps.calls == []


async def test_salesforce_pages_by_next_records_url_with_one_soql(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = paged_client("salesforce", crms, base_url, http, sleeps)
    crms.salesforce.deals["006000000000200AAA"]["Region__c"] = "APAC"
    crm = SalesforceClient(base_url, "sf-token", http, extra_fields=["Region__c", "Name"])

    changes = [c async for c in crm.iter_deals()]

    first, *rest = crms.salesforce.log
    assert first.path == "/services/data/v60.0/query"
    assert first.params["q"] == "SELECT FIELDS(STANDARD), Region__c FROM Opportunity"
    assert [r.path.rsplit("-", 1)[-1] for r in rest] == ["3", "6"]
    assert all(r.params == {} for r in rest)
    assert {c.properties.get("Region__c") for c in changes} == {"APAC", None}


async def test_progress_is_reported_at_the_end_too(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = paged_client("pipedrive", crms, base_url, http, sleeps)
    progress: list[int] = []

    count = await resync_all(crm.iter_deals(), Changes(), progress.append, progress_every=3)

    assert count == 8
    assert progress == [3, 6, 8]


# --- deals the CRM no longer has --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_missing_deal_is_none_and_reported_missing(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = client(kind, base_url, http, sleeps)
    assert await crm.fetch_deal(UNKNOWN[kind]) is None

    changes = Changes()
    fetched, missing = await resync_each(
        crm.fetch_deal, [KNOWN[kind], UNKNOWN[kind], KNOWN[kind]], changes
    )

    assert fetched == 1
    assert missing == [UNKNOWN[kind]]
    assert [c.crm_id for c in changes.items] == [KNOWN[kind]]
    assert sleeps.calls == []  # a 404 is an answer, not a failure to retry


async def test_pipedrive_deleted_deal_counts_as_missing(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = client("pipedrive", base_url, http, sleeps)
    assert await crm.fetch_deal("44") is None
    assert await resync_each(crm.fetch_deal, ["44", "43"], Changes()) == (1, ["44"])


# --- Salesforce activities ---------------------------------------------------------------


TASK = "00T000000000001AAA"


def seed_activities(crms: FakeCrms) -> None:
    crms.salesforce.engagements.update(
        {
            f"Task/{TASK}": salesforce_activity(
                "Task",
                TASK,
                Subject="Call",
                TaskSubtype="Call",
                WhatId=SF_ID,
                AccountId="001000000000001AAA",
                OwnerId="005000000000001AAA",
                ActivityDate="2025-03-03",
                Status="Completed",
                CallDurationInSeconds=312,
            ),
            "Task/00T000000000002AAA": salesforce_activity(
                "Task", "00T000000000002AAA", Subject="Send pricing", TaskSubtype="Email"
            ),
            "Task/00T000000000003AAA": salesforce_activity(
                "Task", "00T000000000003AAA", Subject="Removed", IsDeleted=True
            ),
            "Event/00U000000000001AAA": salesforce_activity(
                "Event",
                "00U000000000001AAA",
                Subject="Demo",
                StartDateTime="2025-03-04T15:00:00.000+0000",
                ActivityDate="2025-03-04",
                WhatId="001000000000001AAA",
            ),
        }
    )


def salesforce(base_url: str, http: httpx.AsyncClient, sleeps: Sleeps) -> SalesforceClient:
    crm = client("salesforce", base_url, http, sleeps)
    assert isinstance(crm, SalesforceClient)
    return crm


async def test_salesforce_task_is_read_like_its_change_event(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    seed_activities(crms)
    task = await salesforce(base_url, http, sleeps).fetch_activity("task", TASK)

    assert crms.salesforce.log[-1].path == f"/services/data/v60.0/sobjects/Task/{TASK}"
    assert task is not None
    assert (task.crm_id, task.kind, task.op) == (TASK, "call", "logged")
    assert (task.deal_crm_id, task.account_id, task.rep_crm_id) == (
        SF_ID,
        "001000000000001AAA",
        "005000000000001AAA",
    )
    assert task.occurred_at == datetime(2025, 3, 3, tzinfo=UTC)
    assert task.changed_at == datetime(2025, 3, 1, 12, 30, 45, tzinfo=UTC)
    assert task.event_key == f"resync:activity:{TASK}:2025-03-01T12:30:45+00:00"
    assert task.properties["CallDurationInSeconds"] == 312
    assert task.properties["Subject"] == "Call"
    for left_out in (
        "attributes",
        "LastModifiedDate",
        "SystemModstamp",
        "IsDeleted",
        "Description",
    ):
        assert left_out not in task.properties
    event = map_activity(
        source("salesforce", base_url, owners={"005000000000001AAA": "r"}), change=task
    )
    assert isinstance(event, dict)
    assert validate_event(event).envelope.time == task.changed_at


async def test_salesforce_meeting_is_fetched_as_an_event(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    seed_activities(crms)
    meeting = await salesforce(base_url, http, sleeps).fetch_activity(
        "meeting", "00U000000000001AAA"
    )

    assert crms.salesforce.log[-1].path.endswith("/sobjects/Event/00U000000000001AAA")
    assert meeting is not None
    assert meeting.kind == "meeting"
    assert meeting.deal_crm_id is None, "its WhatId is an account"
    assert meeting.occurred_at == datetime(2025, 3, 4, 15, tzinfo=UTC)


async def test_salesforce_deleted_or_unknown_activity_is_none(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    seed_activities(crms)
    crm = salesforce(base_url, http, sleeps)

    assert await crm.fetch_activity("task", "00T000000000003AAA") is None
    assert await crm.fetch_activity("task", "00T000000000999AAA") is None
    assert await crm.fetch_activity("meeting", TASK) is None, "a Task is not an Event"
    assert sleeps.calls == []


async def test_salesforce_every_task_across_pages(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    seed_activities(crms)
    for n in range(4, 9):
        record_id = f"00T00000000000{n}AAA"
        crms.salesforce.engagements[f"Task/{record_id}"] = salesforce_activity("Task", record_id)
    crms.salesforce.page_size = 2
    changes: list[ActivityChange] = []

    async def collect(change: ActivityChange) -> None:
        changes.append(change)

    count = await resync_all(salesforce(base_url, http, sleeps).iter_activities("call"), collect)

    first, *rest = crms.salesforce.log
    assert first.params["q"] == "SELECT FIELDS(STANDARD) FROM Task"
    assert len(rest) == 3
    ids = [c.crm_id for c in changes]
    assert count == len(ids) == len(set(ids)) == 7, "every live Task once, the deleted left out"
    assert "00T000000000003AAA" not in ids
    assert {c.kind for c in changes} == {"call", "email", "task"}


# --- rate limits and failures -----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_429_waits_retry_after_then_succeeds(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crms.of(kind).rate_limit(times=2, retry_after="7")

    change = await client(kind, base_url, http, sleeps).fetch_deal(KNOWN[kind])

    assert change is not None
    assert change.fields["amount"] == "1234.50"
    assert sleeps.calls == [7.0, 7.0]
    assert crms.of(kind).requests == 3


async def test_retry_after_as_an_http_date(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    crms.hubspot.rate_limit(retry_after=format_datetime(when, usegmt=True))

    change = await client("hubspot", base_url, http, sleeps).fetch_deal("101")

    assert change is not None
    assert len(sleeps.calls) == 1
    assert 25 <= sleeps.calls[0] <= 30


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 01 Jan 2025 00:01:30 GMT", now=now) == 90.0
    assert retry_after_seconds("Tue, 31 Dec 2024 23:00:00 GMT", now=now) == 0.0  # past
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_429_without_retry_after_uses_the_rate_limit_window(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crms.pipedrive.rate_limit(retry_after=None)  # x-ratelimit-remaining 0, reset 2

    assert await client("pipedrive", base_url, http, sleeps).fetch_deal("42") is not None
    assert sleeps.calls == [2.0]


async def test_salesforce_request_limit_exceeded_is_retried_with_backoff(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crms.salesforce.request_limit_exceeded(times=2)

    change = await client("salesforce", base_url, http, sleeps).fetch_deal(SF_ID)

    assert change is not None
    assert crms.salesforce.requests == 3
    first, second = sleeps.calls
    assert 0.5 <= first <= 0.75  # base 0.5 s plus up to 50 % jitter
    assert 1.0 <= second <= 1.5  # doubled


@pytest.mark.parametrize("kind", KINDS)
async def test_a_500_is_retried_then_succeeds(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crms.of(kind).server_error()

    change = await client(kind, base_url, http, sleeps).fetch_deal(KNOWN[kind])

    assert change is not None
    assert crms.of(kind).requests == 2
    assert len(sleeps.calls) == 1
    assert 0.5 <= sleeps.calls[0] <= 0.75


async def test_a_500_mid_listing_is_retried_without_losing_a_page(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = paged_client("hubspot", crms, base_url, http, sleeps)
    deals = crm.iter_deals()
    first = await anext(deals)
    crms.hubspot.server_error(status=503)  # the second page's first try fails
    rest = [c async for c in deals]

    assert len({first.crm_id, *(c.crm_id for c in rest)}) == 8
    assert len(rest) == 7
    assert len(sleeps.calls) == 1
    assert len(crms.hubspot.log) == 4  # three pages, one of them asked twice


async def test_gives_up_after_max_attempts(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crms.hubspot.rate_limit(times=10, retry_after="1")
    crm = client("hubspot", base_url, http, sleeps, policy=RetryPolicy(max_attempts=3))

    with pytest.raises(CrmUnavailableError, match=r"429.*all 3 attempts"):
        await crm.fetch_deal("101")

    assert crms.hubspot.requests == 3
    assert sleeps.calls == [1.0, 1.0]


async def test_a_retry_after_beyond_max_wait_fails_at_once(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crms.pipedrive.rate_limit(retry_after="86400")

    with pytest.raises(CrmUnavailableError, match="asks to wait 86400s"):
        await client("pipedrive", base_url, http, sleeps).fetch_deal("42")

    assert crms.pipedrive.requests == 1
    assert sleeps.calls == []


async def test_connection_errors_are_retried_then_reported(
    http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    crm = HubSpotClient(closed, "hs-token", http, sleep=sleeps, policy=RetryPolicy(max_attempts=4))

    with pytest.raises(CrmUnavailableError, match=r"could not be reached.*after 4 attempts"):
        await crm.fetch_deal("101")

    assert len(sleeps.calls) == 3
    assert sleeps.calls[0] < sleeps.calls[1] < sleeps.calls[2]  # exponential


@pytest.mark.parametrize("kind", ["hubspot", "pipedrive"])
async def test_an_exhausted_quota_pauses_before_the_next_request(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = client(kind, base_url, http, sleeps)
    crms.of(kind).quota_exhausted = True  # the next answer says 0 remaining

    assert await crm.fetch_deal(KNOWN[kind]) is not None
    assert sleeps.calls == []
    assert await crm.fetch_deal(KNOWN[kind]) is not None

    window = {"hubspot": 10.0, "pipedrive": 2.0}[kind]  # interval ms / x-ratelimit-reset
    assert len(sleeps.calls) == 1
    assert window - 1 < sleeps.calls[0] <= window
    assert crms.of(kind).requests == 2


async def test_salesforce_usage_header_is_read(
    crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = SalesforceClient(base_url, "sf-token", http, sleep=sleeps)
    await crm.fetch_deal(SF_ID)
    await crm.fetch_deal(SF_ID)
    assert crm.api_usage == (2, 15000)


# --- a wrong token ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_wrong_token_fails_at_once_with_a_clear_message(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = client(kind, base_url, http, sleeps, token="not-the-token-xyz")

    with pytest.raises(CrmAuthError) as caught:
        await crm.fetch_deal(KNOWN[kind])
    with pytest.raises(CrmAuthError):
        await resync_all(crm.iter_deals(), Changes())

    message = str(caught.value)
    assert "refused the API token (401" in message
    assert "api_token" in message
    assert "not-the-token-xyz" not in message
    assert crms.of(kind).requests == 2  # one each: no retry
    assert sleeps.calls == []


# --- the same deal twice ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_refetching_an_unchanged_deal_gives_the_same_event_key(
    kind: str, crms: FakeCrms, base_url: str, http: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    crm = client(kind, base_url, http, sleeps)
    first = await crm.fetch_deal(KNOWN[kind])
    second = await client(kind, base_url, http, sleeps).fetch_deal(KNOWN[kind])
    listed = {c.crm_id: c async for c in crm.iter_deals()}[KNOWN[kind]]

    assert first is not None
    assert second is not None
    assert first.event_key == second.event_key == listed.event_key
    assert first == second

    touch(crms.of(kind), KNOWN[kind])
    changed = await crm.fetch_deal(KNOWN[kind])

    assert changed is not None
    assert changed.event_key != first.event_key
    assert changed.occurred_at > first.occurred_at


def touch(state: CrmState, crm_id: str) -> None:
    """Edit the deal in the CRM: a new name and a later last-modified time."""
    record = state.deals[crm_id]
    if state.kind == "hubspot":
        record["properties"]["dealname"] = "renamed"
        record["properties"]["hs_lastmodifieddate"] = "2025-05-01T00:00:00.000Z"
        record["updatedAt"] = "2025-05-01T00:00:00.000Z"
    elif state.kind == "salesforce":
        record["Name"] = "renamed"
        record["LastModifiedDate"] = "2025-05-01T00:00:00.000+0000"
    else:
        record["title"] = "renamed"
        record["update_time"] = "2025-05-01T00:00:00Z"


# --- choosing a client ------------------------------------------------------------------


async def test_client_for_picks_by_kind_and_needs_url_and_token(http: httpx.AsyncClient) -> None:
    assert isinstance(client_for(source("hubspot", "https://api.hubapi.com"), http), HubSpotClient)
    assert isinstance(
        client_for(source("salesforce", "https://x.my.salesforce.com"), http), SalesforceClient
    )
    assert isinstance(
        client_for(source("pipedrive", "https://x.pipedrive.com"), http), PipedriveClient
    )
    no_url = source("hubspot", "https://api.hubapi.com").model_copy(update={"api_base_url": None})
    no_token = source("pipedrive", "https://x.pipedrive.com").model_copy(update={"api_token": None})
    with pytest.raises(ValueError, match="api_base_url not set"):
        client_for(no_url, http)
    with pytest.raises(ValueError, match="api_token not set"):
        client_for(no_token, http)
    assert "hs-token" not in repr(client_for(source("hubspot", "https://api.hubapi.com"), http))
