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
    webhook.py   the webhook body as `changes` (pure; raise a `ValueError` it cannot read)
    auth or signatures module for its webhook scheme (compare with `signatures.matches`)
    rest.py      a `RestClient` subclass reading deals back (`fetch_deal`, `iter_deals`)
    adapter.py   `ADAPTER`: kind, api_hosts, webhooks (`WebhookEndpoint`s: path, summary,
                 delivery kind, `admit` then read, `replay`), resync_missing, resync_client
    __init__.py  exporting `ADAPTER`
then add one line to `registry.ADAPTERS`. Source kinds, webhook routes, archive replay,
the outbound host policy and re-sync clients all follow from it.

A CRM that needs a source setting or secret of its own (as Salesforce has `oauth`,
`own_client_ids`) still adds the field to `sources/schemas.py` `SourceIn` (and a secret
to `SECRET_PATHS`): the API shape is the contract, one model for every kind. Its
adapter's `check_source` then refuses, with a `ValueError`, a source whose settings do not
fit its kind; the message is the API's 422 text.
"""
