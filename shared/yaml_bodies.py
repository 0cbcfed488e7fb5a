"""YAML request bodies, for documents people write by hand (commission plans): read into the
JSON a client could have sent instead, so the route's own models validate it and name each
error at the same path as for JSON.

PyYAML's safe loader, kept to what JSON can say: a date or timestamp stays its text (a
model reads it as it reads JSON's string; PyYAML's own `2026-13-01` raises a ValueError
outside its errors, with no position), so does a number with a point (amounts are decimal
strings: the text is exact, a float has already lost cents and is refused), and so does
an integer or boolean JSON would not write (YAML 1.1's `030`, `0x1F`, `yes`, `NO`); aliases are
refused (JSON has none, and a few hundred bytes of nested aliases expand to gigabytes), and
so are the tags JSON has no form for (binary, set, ordered map, pairs), where they stand.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import yaml
from starlette.requests import Request
from starlette.types import Message
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import Node

from shared.problems import Problem
from shared.values import json_has_nul

YAML_MEDIA_TYPE = "application/yaml"
YAML_MEDIA_TYPES = frozenset({YAML_MEDIA_TYPE, "application/x-yaml", "text/yaml"})
"""What a YAML body may declare: the registered type and the two still in common use."""


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ComposerError(None, None, "aliases are not accepted (JSON has none)", mark)
        return super().compose_node(parent, index)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:  # an integer of more digits than Python reads, say
            raise ConstructorError(None, None, str(exc), node.start_mark) from exc


def _as_text(loader: _Loader, node: Node) -> Any:
    return loader.construct_yaml_str(node)


_JSON_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_JSON_BOOL = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}


def _json_int(loader: _Loader, node: Node) -> Any:
    """An integer only as JSON writes one: YAML 1.1 reads `030` as 24, `0x1F` as 31 and
    `1:30` as 90, which a hand-written `window_days: 030` would silently become. Any
    other form stays text, for the models to read or refuse."""
    text = loader.construct_yaml_str(node)
    return int(text) if _JSON_INT.fullmatch(text) else text


def _json_bool(loader: _Loader, node: Node) -> Any:
    """`true` / `false` only (YAML 1.2): YAML 1.1 also reads `yes`, `no`, `on`, `off`
    (and a country code `NO`) as booleans; those stay text."""
    text = loader.construct_yaml_str(node)
    return _JSON_BOOL.get(text, text)


def _no_json_form(loader: _Loader, node: Node) -> Any:
    raise ConstructorError(None, None, f"{node.tag} has no JSON form", node.start_mark)


for _tag in ("timestamp", "float"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _as_text)
_Loader.add_constructor("tag:yaml.org,2002:int", _json_int)
_Loader.add_constructor("tag:yaml.org,2002:bool", _json_bool)
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _no_json_form)


def yaml_body_declared(openapi_extra: dict[str, Any] | None) -> bool:
    """Whether a route documents a YAML request body (`yaml_request_body`)."""
    content = (openapi_extra or {}).get("requestBody", {}).get("content", {})
    return YAML_MEDIA_TYPE in content


def yaml_request_body() -> dict[str, Any]:
    """`openapi_extra` of a route whose JSON body may also come as YAML; the OpenAPI
    document gives it the JSON body's schema (`edge.document_statuses`)."""
    return {"requestBody": {"content": {YAML_MEDIA_TYPE: {}}}}


def is_yaml(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() in YAML_MEDIA_TYPES


def _not_yaml(where: str) -> Problem:
    return Problem(
        422,
        f"The body is not valid YAML: {where}.",
        errors=[{"location": "body", "message": where}],
    )


def yaml_to_json(body: bytes) -> bytes:
    """The JSON text of a YAML body, or a 422 problem saying where it does not parse."""
    try:
        document = yaml.load(body, Loader=_Loader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as exc:
        what = exc.problem or exc.context or "not YAML"
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            raise _not_yaml(what) from exc
        raise _not_yaml(f"{what} at line {mark.line + 1}, column {mark.column + 1}") from exc
    except yaml.reader.ReaderError as exc:
        raise _not_yaml(f"{exc.reason} at byte {exc.position}") from exc
    except RecursionError as exc:
        raise _not_yaml("nested too deeply") from exc
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    if json_has_nul(text):
        raise Problem(422, "The body must not contain NUL characters.")
    return text


async def as_json_request(request: Request) -> Request:
    """`request` with its YAML body read (through the guard's bounded `receive`) and handed
    on as the same document in JSON. PyYAML's pure-Python parse of a body near the cap
    takes a while, so it runs off the event loop."""
    body = await asyncio.to_thread(yaml_to_json, await request.body())
    headers = [
        (name, value)
        for name, value in request.scope["headers"]
        if name not in (b"content-type", b"content-length")
    ]
    headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    pending = True

    async def receive() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return Request({**request.scope, "headers": headers}, receive)
