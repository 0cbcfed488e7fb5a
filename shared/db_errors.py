"""Which database errors are worth retrying, and which blame the data that was sent.

Both asyncpg's own exceptions and SQLAlchemy's wrappers of them carry the SQLSTATE; a
lost connection often carries none (the socket died before the server could say why).
The event log writer uses `refused_by_data` to tell one bad event from a database outage;
the API uses `is_transient` to answer 503 rather than 500; the forecast worker uses
`blames_the_record`, the other way round, so that only a record's own fault dead-letters it.
"""

from __future__ import annotations

import asyncpg
from asyncpg.exceptions._base import DataError as ClientDataError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

# SQLSTATE classes: 22 data exception (e.g. NUL in text or jsonb), 23 integrity constraint
# violation, 54 program limit exceeded (e.g. a value too large to index or store).
_DATA_CLASSES = ("22", "23", "54")
# What PostgreSQL says about the values themselves: 22 data exception, 23 integrity
# constraint violation, 54000 a value too large (e.g. for an index row).
_RECORD_CLASSES = ("22", "23", "54000")
# 08 connection exception, 53 insufficient resources (too many connections, disk full),
# 57P0x operator intervention (pg_terminate_backend, shutdown), 40001 serialization
# failure, 40P01 deadlock, 55P03 lock not available.
_TRANSIENT_CLASSES = ("08", "53", "57P01", "57P02", "57P03", "40001", "40P01", "55P03")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps, through SQLAlchemy's `orig` and `__cause__`."""
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in out:
        out.append(seen)
        seen = seen.orig if isinstance(seen, DBAPIError) else seen.__cause__
    return out


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE the server answered, looking through SQLAlchemy's wrapper."""
    for seen in _chain(exc):
        code = getattr(seen, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None


def refused_by_data(exc: BaseException) -> bool:
    """Whether the values sent were refused, by the server or by asyncpg encoding them
    (a value out of its type's range); sending them again would fail again."""
    if any(isinstance(seen, ClientDataError) for seen in _chain(exc)):
        return True
    code = sqlstate(exc)
    return code is not None and code.startswith(_DATA_CLASSES)


def is_transient(exc: BaseException) -> bool:
    """Whether the same statement may well succeed if sent again a little later."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    code = sqlstate(exc)
    if code is not None:
        return code.startswith(_TRANSIENT_CLASSES)
    if refused_by_data(exc):
        return False
    lost = (OSError, TimeoutError, asyncpg.InterfaceError)
    return any(isinstance(seen, lost) for seen in _chain(exc))


def blames_the_record(exc: BaseException) -> bool:
    """Whether a record that raised `exc` while being applied would raise it again on any
    healthy database: PostgreSQL refused its values, or the projection code raised a plain
    Python error. Any other database, driver, pool or network error is the infrastructure's
    (an exhausted pool, a bad password, a table a migration has not created yet, a
    permission, a cancelled statement) and must never condemn a good record."""
    chain = _chain(exc)
    if any(isinstance(seen, ClientDataError) for seen in chain):
        return True
    code = sqlstate(exc)
    if code is not None:
        return code.startswith(_RECORD_CLASSES)
    return not any(_infrastructure(seen) for seen in chain)


def _infrastructure(exc: BaseException) -> bool:
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return False  # SQLAlchemy wrapping what binding a value raised: see its cause
    lost = (SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
    return isinstance(exc, lost)
