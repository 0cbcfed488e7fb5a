"""A client of the running stack's public API, for the CLI commands that feed it.

Loaders (`salesops dataset load`, `salesops forecast config load`, hierarchy imports) go
through the same API as any other client, so what they store is validated, deduplicated
and ordered exactly as a production integration's events would be. The base URL and key
are those of `salesops dev` unless given: `--base-url` / `SALESOPS_API_URL`, `--api-key` /
`SALESOPS_API_KEY`, else the dev key file in the data folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
EVENTS_PER_REQUEST = 500
"""Well under the intake's per-request limits (SALESOPS_INTAKE_MAX_EVENTS / _BYTES)."""


class ApiError(Exception):
    """The API refused a request; the message carries its problem document."""


@dataclass
class EventTotals:
    """What the intake answered, summed over every request of a load."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.accepted + self.duplicates + len(self.rejected)


def resolve_key(api_key: str | None, data_dir: Path) -> str:
    """The key to send: given, from SALESOPS_API_KEY, or the one `salesops dev` wrote."""
    key = api_key or os.environ.get("SALESOPS_API_KEY")
    if key:
        return key
    key_file = data_dir / "dev-api-key"
    if key_file.exists():
        return key_file.read_text().strip()
    raise ApiError(
        f"no API key: pass --api-key, set SALESOPS_API_KEY, or run `salesops dev` "
        f"(it writes {key_file})"
    )


class StackClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    @classmethod
    def of(cls, base_url: str | None, api_key: str | None, data_dir: Path) -> StackClient:
        url = base_url or os.environ.get("SALESOPS_API_URL") or DEFAULT_BASE_URL
        return cls(url, resolve_key(api_key, data_dir))

    def __enter__(self) -> StackClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; a 4xx/5xx raises `ApiError` with the problem's detail."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise ApiError(f"{method} {path}: {response.status_code} {response.text[:2000]}")
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def post_events(
        self, events: Iterable[dict[str, Any]], *, total: int | None = None, label: str = "events"
    ) -> EventTotals:
        """POST events in batches of EVENTS_PER_REQUEST, in the given order, with a progress
        bar. Order matters only within a deal (the ordering rule orders by CRM time), but
        keeping it makes a load read like the history it replays."""
        totals = EventTotals()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(label, total=total)
            offset = 0
            for batch in _batches(events, EVENTS_PER_REQUEST):
                answer = self.request("POST", "/v1/events", json=batch)
                totals.accepted += int(answer["accepted"])
                totals.duplicates += int(answer["duplicates"])
                # The intake numbers rejections within the request; renumber them within
                # the whole load, so the caller can find each rejected event.
                totals.rejected.extend(
                    {**r, "index": offset + int(r["index"])} for r in answer["rejected"]
                )
                offset += len(batch)
                progress.advance(task, len(batch))
        return totals


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
