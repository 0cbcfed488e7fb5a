"""Summarise a py-spy `--format raw` profile (collapsed stacks) of the API server.

    .venv/bin/python -m benchmarks.profile_summary PROFILE [--top 25]

Prints where the sampled time went: by area of the code (a sample counts for the first
area in AREAS that any frame of its stack belongs to), the heaviest leaf functions (self
time), and the project's own functions (services/, shared/) inclusive of what they call.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (area, substring of a frame), checked in this order: the more specific areas come first.
AREAS: list[tuple[str, str]] = [
    ("intake: event validation (pydantic, validate_event)", "validate_event (shared/events.py"),
    ("intake: LogRow.of (model_dump + orjson of the envelope)", "LogRow.of ("),
    ("intake: body read + orjson parse", "read_events ("),
    ("intake: response model / serialisation", "serialize_response ("),
    ("event log: group-commit write (asyncpg, unnest insert)", "EventLogWriter._write ("),
    ("relay: claim/mark SQL + send to Kafka", "Relay.publish_batch ("),
    ("relay: broker check", "Relay.check_broker ("),
    ("aiokafka (producer sender / client I/O)", "aiokafka/"),
    ("asyncpg / SQLAlchemy (outside the above)", "asyncpg/"),
    ("asyncpg / SQLAlchemy (outside the above)", "sqlalchemy/"),
    ("intake: auth dependency", "shared/auth.py"),
    ("fastapi/starlette request handling (rest)", "fastapi/"),
    ("fastapi/starlette request handling (rest)", "starlette/"),
    ("uvicorn http protocol", "uvicorn/protocols"),
    ("event loop / other", ""),
]

_LINE = re.compile(r"^(.*) (\d+)$")


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            frames = m.group(1).split(";")
            if frames and frames[0].startswith("process "):  # py-spy --subprocesses
                frames = frames[1:] or ["(native / no Python frame)"]
            stacks.append((frames, int(m.group(2))))
    return stacks


def func(frame: str) -> str:
    """`name (file.py:123)` -> `name (file.py)`, so lines of one function add up."""
    return re.sub(r":\d+\)$", ")", frame)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    stacks = load(a.profile)
    total = sum(n for _, n in stacks)
    print(f"{total} samples in {a.profile}")

    areas: Counter[str] = Counter()
    for frames, n in stacks:
        joined = ";".join(frames)
        for area, needle in AREAS:
            if needle in joined:
                areas[area] += n
                break
    print("\nby area (inclusive, first match in the list order):")
    for area, n in areas.most_common():
        print(f"  {n / total * 100:5.1f}%  {area}")

    leaf: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, n in stacks:
        leaf[func(frames[-1])] += n
        for f in {func(x) for x in frames}:
            incl[f] += n
    print(f"\ntop {a.top} leaf functions (self time):")
    for f, n in leaf.most_common(a.top):
        print(f"  {n / total * 100:5.1f}%  {f}")
    print(f"\ntop {a.top} project functions, inclusive:")
    own = [(f, n) for f, n in incl.most_common() if "(services/" in f or "(shared/" in f]
    for f, n in own[: a.top]:
        print(f"  {n / total * 100:5.1f}%  {f}")


if __name__ == "__main__":
    main()
