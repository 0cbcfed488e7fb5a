"""Everything that knows a CRM: one package per CRM behind one adapter protocol, and the
parts they share.

Shared, CRM-neutral:
    adapter.py     the `CrmAdapter` protocol, the webhook handler shapes, and
                   `TokenAdapter`, the re-sync half of a CRM with a fixed API token
    registry.py    `ADAPTERS` by kind: where every other module learns which CRMs exist
    changes.py     the change types every parser and client produces
    mapping.py     changes to canonical events, through a source's mapping
    json_body.py   exact JSON for every body (webhook, archive replay, REST answer)
    values.py      reading timestamps, dates, amounts, ids (`Unreadable`)
    http.py        `CrmHttp` (retries, rate limits, errors), `RetryPolicy`
    credentials.py `Credentials`, `StaticToken`
    resync.py      `ResyncClient`, the `RestClient` base, `resync_all` / `resync_each`
    signatures.py  constant-time comparison, decoy padding, timestamp headers and their
                   window (`outside_window`)
    outbound.py    which hosts a re-sync may call (each adapter's `api_hosts`)

One package per CRM (`hubspot/`, `pipedrive/`, `salesforce/`): its webhook
authentication and parsers, its REST client and record conversions, its OAuth if any, and
`adapter.py`, whose `ADAPTER` the package exports.

To add a CRM: create `crm/<kind>/` with
    webhook.py   the webhook body as `changes` (pure)
    auth or signatures module for its webhook scheme (compare with `signatures.matches`,
                 pad with `signatures.padded`, check a timestamp with `outside_window`)
    rest.py      a `RestClient` subclass reading deals back (`fetch_deal`, `iter_deals`)
    adapter.py   `ADAPTER`: kind, api_hosts, webhooks (`WebhookEndpoint`s: path, summary,
                 delivery kind, `admit` then read, `replay`), check_source,
                 resync_missing, resync_client; a CRM with a fixed API token subclasses
                 `adapter.TokenAdapter` and writes only `token_client`
    __init__.py  exporting `ADAPTER`
then edit `registry.py`: one import (`from services.pipeline_api.crm import <kind>`) and
one entry (`<kind>.ADAPTER,`) appended to `ADAPTERS`. Source kinds, webhook routes,
archive replay, the outbound host policy and re-sync clients all follow from it.

Errors in a delivery's body. A body that cannot be read as a whole (not JSON, not the
CRM's envelope, no account id where every item needs one) raises `BadDelivery` from the
reader: answered 400, nothing stored, and the CRM retries or shows the failure. Within a
readable body, each item stands alone and the delivery is answered 2xx, since a CRM
disables an endpoint that keeps failing: an item the parser cannot read or does not handle
is `Unsupported(reason, item)` (parked in /v1/dlq for an operator), and one that changes
nothing we keep is `Ignored(reason)` (counted and noted on the archived request only). So
`webhook.py` raises a `ValueError` only for the whole body, and the adapter's reader turns
it into `BadDelivery`; a bad item never fails its neighbours.

Which source a delivery is for. `SourceIn.account_id` is the CRM's id of the connected
account, as its payloads name it (HubSpot portalId, Salesforce OrganizationId, Pipedrive
company_id: say which in `account_id`'s description). `admit` narrows the enabled sources
of its kind to those whose credentials the request carries (a signature under a source's
secret, Basic credentials, a URL token, or a header naming the source, then its secret),
and the reader keeps the one whose `account_id` the body names; a body naming no
authenticated source is `Unauthenticated`, like a bad signature, so nobody learns which
accounts are configured. A `Delivery` is per source: a batch spanning accounts is several.

`replay` reads an archived body for the source it was accepted for: it must not
authenticate again (the signature was checked when the request arrived, and the secret or
timestamp window may have moved since); it only parses, as the reader would today.

Tests. `tests/unit/test_crm_registry.py` covers a new CRM as soon as it is registered
(its kind, routes, OpenAPI operations, delivery kinds, hosts, re-sync checks). For the
shared re-sync tests, add the CRM's REST API to `tests/support/fake_crm.py` and its kind,
token and known/unknown ids to `tests/integration/test_resync_clients.py`. Its own webhook
parsing and authentication get their own unit and integration tests.

A CRM that needs a source setting or secret of its own (as Salesforce has `oauth`,
`own_client_ids`) still adds the field to `sources/schemas.py` `SourceIn` (and a secret
to `SECRET_PATHS`): the API shape is the contract, one model for every kind. Its
adapter's `check_source` then refuses, with a `ValueError`, a source whose settings do not
fit its kind; the message is the API's 422 text.
"""
