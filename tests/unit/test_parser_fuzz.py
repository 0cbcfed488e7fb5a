"""Hypothesis fuzzes every CRM parser with random bodies and mutated real payloads.

A parser either returns changes or raises its declared parse error (`ValueError`, which
every parser's error derives from), never anything else. What it returns must also be
storable: each change maps and validates (or is parked with a reason) and serialises as
the event log and the DLQ will write it. Deterministic and bounded: derandomized, no
example database, a fixed number of examples per parser.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.pipeline_api.crm.changes import (
    AccountMerged,
    ActivityChange,
    CrmChange,
    DealChange,
    Ignored,
    ResyncRequest,
    Unsupported,
    to_json,
)
from services.pipeline_api.crm.hubspot.webhook import batch as hubspot_batch
from services.pipeline_api.crm.json_body import exact_json
from services.pipeline_api.sources.schemas import Mapping, SourceIn, StageMapping
from services.pipeline_api.webhooks.deliveries import parse_delivery, storable
from services.pipeline_api.webhooks.ingest import to_row
from shared.events import MAX_FUTURE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SOURCES = {
    "hubspot": SourceIn(
        id="hs",
        kind="hubspot",
        account_id="48975575",
        mapping=Mapping(
            stages={"appointmentscheduled": StageMapping(stage="discovery")},
            default_currency="EUR",
        ),
    ),
    "pipedrive": SourceIn(
        id="pd", kind="pipedrive", account_id="12882925", mapping=Mapping(default_currency="EUR")
    ),
    "salesforce": SourceIn(
        id="sf",
        kind="salesforce",
        account_id="00D5w000004q0bdEAA",
        mapping=Mapping(multi_currency=True),
    ),
}

# Numbers and texts that broke, or could break, a parser: sizes, exponents, NUL, digits
# int() cannot read, deep nesting.
RAW_NUMBERS = [
    "1e999999999",
    "-1E+999999999",
    "1e-999999999",
    "1e9999999999999999999",
    "9" * 5000,
    "-" + "9" * 40,
    str(2**64),
    str(2**63),
    "123.4500",
    "0",
    "NaN",
    "-Infinity",
]
NASTY_TEXT = [
    "1e999999999",
    "-1E+999999999",
    "9" * 5000,
    "0." + "0" * 3000 + "1",
    "NaN",
    "Infinity",
    "\u0000",
    "deal\u0000name",
    "²³",
    "١٢٣",
    "9999-12-31T23:59:59-05:00",
    "2024-02-30",
    "",
    " ",
    "x" * 300,
]


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=20)
    | st.sampled_from(NASTY_TEXT),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
replacements = (
    json_values
    | st.sampled_from([f"__RAW_{n}__" for n in range(len(RAW_NUMBERS))])
    | st.sampled_from([_deep(70), _deep(200), {"a": _deep(63)}])
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.extend(_paths(child, (*prefix, index)))
    return out


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    return [_replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def _dumped(value: Any) -> bytes:
    text = json.dumps(value)
    for n, raw in enumerate(RAW_NUMBERS):
        text = text.replace(f'"__RAW_{n}__"', raw)
    return text.encode()


@st.composite
def mutated_json(draw: st.DrawFn, fixtures: list[Path]) -> bytes:
    """A real payload with one to three subtrees (or keys' values) replaced."""
    value = json.loads(draw(st.sampled_from(fixtures)).read_text())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(value)))
        value = _replaced(value, path, draw(replacements))
    return _dumped(value)


@st.composite
def mutated_bytes(draw: st.DrawFn, fixtures: list[Path]) -> bytes:
    """A real payload with a few bytes changed, cut or repeated."""
    body = bytearray(draw(st.sampled_from(fixtures)).read_bytes())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=max(len(body) - 1, 0)))
        how = draw(st.sampled_from(["flip", "cut", "repeat"]))
        if how == "flip" and body:
            body[at] = draw(st.integers(min_value=0, max_value=255))
        elif how == "cut":
            del body[at : at + draw(st.integers(min_value=1, max_value=40))]
        else:
            body[at:at] = body[at : at + draw(st.integers(min_value=1, max_value=40))]
    return bytes(body)


def bodies(fixtures: list[Path]) -> st.SearchStrategy[bytes]:
    return (
        mutated_json(fixtures)
        | mutated_bytes(fixtures)
        | st.builds(_dumped, json_values)
        | st.binary(max_size=64)
    )


def _check(kind: str, body: bytes) -> None:
    source = SOURCES[kind.split("-")[0]]
    try:
        changes = parse_delivery(kind, source=source, body=body)
    except ValueError:
        return  # the declared parse error: the endpoint answers 400
    assert isinstance(changes, list)
    for change in changes:
        _assert_storable(source, change)


def _assert_storable(source: SourceIn, change: CrmChange) -> None:
    if isinstance(change, DealChange | ActivityChange):
        # Maps and validates, or says why it waits.
        to_row(source, change, max_bytes=1 << 20, max_future=MAX_FUTURE)
        stored = orjson.dumps(to_json(change))
    elif isinstance(change, Unsupported):
        stored = json.dumps(change.item, default=str).encode()
    elif isinstance(change, Ignored):
        stored = json.dumps(change.reason).encode()
    elif isinstance(change, AccountMerged):
        stored = json.dumps([change.merged_id, change.survivor_id, change.event_key]).encode()
    else:
        assert isinstance(change, ResyncRequest)
        stored = json.dumps([change.reason, *change.crm_ids]).encode()
    assert b"\\u0000" not in stored, "PostgreSQL refuses NUL in text and jsonb"


def _fixtures(crm: str, pattern: str) -> list[Path]:
    found = sorted((FIXTURES / crm).glob(pattern))
    assert found, f"no {crm} fixtures match {pattern}"
    return found


def _variant(path: str, old: str, new: str) -> bytes:
    """A fixture with one exact text replaced: the known hostile inputs, always tried."""
    text = (FIXTURES / path).read_text()
    assert old in text, f"{old!r} not in {path}"
    return text.replace(old, new, 1).encode()


DEEP_JSON = b"[" * 5000 + b"]" * 5000
DEEP_XML_FIELD = "<sf:x>" * 5000 + "1" + "</sf:x>" * 5000
HUBSPOT_AMOUNT = '"propertyValue": "2000"'
HUBSPOT_CREATION = '"subscriptionType": "deal.creation"'
HUBSPOT_BAD_MERGE = '"subscriptionType": "deal.merge", "mergedObjectIds": 5'
PD_VALUE = '"value": 2,'
PD_ID = '"id": 1,'
CDC_AMOUNT = '"Amount": 45000.50'
OM_AMOUNT = "<sf:Amount>45000.0</sf:Amount>"

HUBSPOT = _fixtures("hubspot", "*.json")
PIPEDRIVE_V1 = _fixtures("pipedrive", "v1_*.json")
PIPEDRIVE_V2 = _fixtures("pipedrive", "v2_*.json")
CDC = {
    "cometd": _fixtures("salesforce", "cdc_cometd_*.json"),
    "eventbridge": _fixtures("salesforce", "*eventbridge*.json"),
    "pubsub": _fixtures("salesforce", "pubsub_*.json"),
    "avro": _fixtures("salesforce", "opportunity_change_event_avro_fields.json"),
}
OUTBOUND = _fixtures("salesforce", "outbound_*.xml")


@FUZZ
@given(bodies(HUBSPOT))
@example(DEEP_JSON)
@example(
    _variant("hubspot/deal_creation_batch.json", HUBSPOT_AMOUNT, '"propertyValue": "1e999999999"')
)
@example(
    _variant("hubspot/deal_creation_batch.json", HUBSPOT_AMOUNT, '"propertyValue": "-1E+999999999"')
)
@example(
    _variant("hubspot/deal_creation_batch.json", HUBSPOT_AMOUNT, f'"propertyValue": "{"9" * 5000}"')
)
@example(_variant("hubspot/deal_creation_batch.json", HUBSPOT_AMOUNT, '"propertyValue": "NaN"'))
@example(_variant("hubspot/deal_creation_batch.json", "Acme - 40 seats", "Acme\\u0000"))
@example(
    _variant(
        "hubspot/deal_creation_batch.json", '"portalId": 48975575', f'"portalId": {"9" * 5000}'
    )
)
@example(_variant("hubspot/deal_creation_batch.json", HUBSPOT_CREATION, HUBSPOT_BAD_MERGE))
def test_hubspot_parser_returns_changes_or_its_error(body: bytes) -> None:
    _check("hubspot", body)
    # The webhook route's own entry point: the batch split by portal, one not configured.
    try:
        by_portal = hubspot_batch(exact_json(body), {SOURCES["hubspot"].account_id, "1"})
    except ValueError:
        return
    for changes in by_portal.values():
        for change in storable(body, changes):  # as the route ingests them
            _assert_storable(SOURCES["hubspot"], change)


@FUZZ
@given(bodies(PIPEDRIVE_V1))
def test_pipedrive_v1_parser_returns_changes_or_its_error(body: bytes) -> None:
    _check("pipedrive", body)


@FUZZ
@given(bodies(PIPEDRIVE_V2))
@example(DEEP_JSON)
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_VALUE, '"value": 1e999999999,'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_VALUE, '"value": -1E+999999999,'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_VALUE, f'"value": {2**70},'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_VALUE, '"value": NaN,'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_VALUE, '"value": "Infinity",'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_ID, f'"id": {2**64},'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_ID, '"id": 1e999999999,'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_ID, '"id": "\\u0000",'))
@example(_variant("pipedrive/v2_deal_create_pipedream.json", PD_VALUE, '"value": [[{"v": [2]}]],'))
def test_pipedrive_v2_parser_returns_changes_or_its_error(body: bytes) -> None:
    _check("pipedrive", body)


@pytest.mark.parametrize("envelope", sorted(CDC))
def test_salesforce_cdc_parser_returns_changes_or_its_error(envelope: str) -> None:
    @FUZZ
    @given(bodies(CDC[envelope]))
    @example(DEEP_JSON)
    def fuzz(body: bytes) -> None:
        _check("salesforce-cdc", body)

    fuzz()


_FIELD_TEXT = re.compile(rb"(<sf:(\w+)>)([^<]*)(</sf:\2>)")


@st.composite
def mutated_outbound(draw: st.DrawFn) -> bytes:
    """An Outbound Message with field texts replaced, or a field nested very deep."""
    body = draw(st.sampled_from(OUTBOUND)).read_bytes()
    fields = list(_FIELD_TEXT.finditer(body))
    if not fields:
        return body
    field = draw(st.sampled_from(fields))
    if draw(st.booleans()):
        text = draw(st.sampled_from(NASTY_TEXT).filter(lambda t: "\u0000" not in t))
        new = field.group(1) + escape(text).encode() + field.group(4)
    else:
        levels = draw(st.sampled_from([40, 5000]))
        new = field.group(1) + b"<sf:x>" * levels + b"1" + b"</sf:x>" * levels + field.group(4)
    return body[: field.start()] + new + body[field.end() :]


@pytest.mark.parametrize(
    "amount", ["1e999999999", "-1E+999999999", "9" * 5000, "NaN", "-Infinity", "{}"]
)
def test_salesforce_cdc_amounts_are_never_expanded(amount: str) -> None:
    _check(
        "salesforce-cdc",
        _variant(
            "salesforce/cdc_cometd_opportunity_create.json", CDC_AMOUNT, f'"Amount": {amount}'
        ),
    )


OUTBOUND_FIXTURE = "salesforce/outbound_two_notifications.xml"


@FUZZ
@given(mutated_outbound() | mutated_bytes(OUTBOUND) | st.binary(max_size=64))
@example(_variant(OUTBOUND_FIXTURE, OM_AMOUNT, "<sf:Amount>1e999999999</sf:Amount>"))
@example(_variant(OUTBOUND_FIXTURE, OM_AMOUNT, "<sf:Amount>-1E+999999999</sf:Amount>"))
@example(_variant(OUTBOUND_FIXTURE, OM_AMOUNT, f"<sf:Amount>{DEEP_XML_FIELD}</sf:Amount>"))
@example(_variant(OUTBOUND_FIXTURE, "2020-05-09T03:04:32.000Z", "²" * 3))
@example(_variant(OUTBOUND_FIXTURE, "2020-05-09T03:04:32.000Z", "9" * 5000))
def test_salesforce_outbound_parser_returns_changes_or_its_error(body: bytes) -> None:
    _check("salesforce-outbound", body)
