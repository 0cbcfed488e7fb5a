"""Which failures blame one event and which the infrastructure: the split that decides
between rejecting or setting aside a single event and retrying everything."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)
from asyncpg.exceptions._base import DataError as ClientDataError
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services.pipeline_api.events.relay import refused_before_sending
from shared.db_errors import blames_the_record, is_transient, refused_by_data, sqlstate
from shared.kafka import make_producer
from shared.settings import Settings


def wrapped(exc: BaseException, *, invalidated: bool = False) -> DBAPIError:
    """As SQLAlchemy's asyncpg dialect raises it: a DBAPIError over an adapter error
    caused by asyncpg's own."""
    adapter = Exception(str(exc))
    adapter.__cause__ = exc
    return OperationalError("INSERT", {}, adapter, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence"),
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence for encoding"),
        asyncpg.CheckViolationError("check"),
        asyncpg.ProgramLimitExceededError("index row size exceeds maximum"),
        ClientDataError("invalid input for query argument $7"),
    ],
)
def test_data_the_database_refuses(exc: BaseException) -> None:
    assert refused_by_data(exc)
    assert refused_by_data(wrapped(exc))
    assert not is_transient(wrapped(exc))


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.LockNotAvailableError("could not obtain lock"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
    ],
)
def test_transient_database_errors(exc: BaseException) -> None:
    assert is_transient(exc)
    assert is_transient(wrapped(exc))
    assert not refused_by_data(wrapped(exc))


def test_a_bug_is_neither_transient_nor_the_datas_fault() -> None:
    for exc in (asyncpg.UndefinedColumnError("no such column"), ValueError("bug")):
        assert not is_transient(wrapped(exc))
        assert not refused_by_data(wrapped(exc))
    assert sqlstate(wrapped(asyncpg.DeadlockDetectedError("x"))) == "40P01"


@pytest.mark.parametrize(
    "exc",
    [
        PoolTimeoutError("QueuePool limit of size 2 overflow 2 reached"),
        wrapped(asyncpg.InvalidPasswordError("password authentication failed")),
        wrapped(asyncpg.UndefinedTableError('relation "forecast.deal_changes" does not exist')),
        wrapped(asyncpg.InsufficientPrivilegeError("permission denied for table")),
        wrapped(asyncpg.QueryCanceledError("canceling statement due to statement timeout")),
        wrapped(asyncpg.AdminShutdownError("terminating connection")),
        wrapped(RuntimeError("gone"), invalidated=True),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        ConnectionRefusedError("connect call failed"),
        TimeoutError(),
    ],
)
def test_the_worker_never_blames_a_record_for_the_infrastructure(exc: BaseException) -> None:
    assert not blames_the_record(exc)


@pytest.mark.parametrize(
    "exc",
    [
        wrapped(asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence")),
        wrapped(asyncpg.NumericValueOutOfRangeError("numeric field overflow")),
        wrapped(asyncpg.UniqueViolationError("duplicate key")),
        wrapped(asyncpg.ProgramLimitExceededError("index row size exceeds maximum")),
        wrapped(ClientDataError("invalid input for query argument $7")),
        StatementError("binding a value failed", "INSERT", {}, ValueError("bad value")),
        KeyError("amount"),
        ValueError("projection bug"),
    ],
)
def test_the_worker_blames_a_record_for_its_values_and_projection_errors(
    exc: BaseException,
) -> None:
    assert blames_the_record(exc)


def test_an_invalidated_connection_is_transient() -> None:
    assert is_transient(wrapped(RuntimeError("gone"), invalidated=True))


def test_a_row_too_large_for_the_producer_is_its_own_fault() -> None:
    """aiokafka raises this from `send()`, for the one record, before anything is sent."""
    assert refused_before_sending(MessageSizeTooLargeError())


def test_a_row_the_client_cannot_encode_is_its_own_fault() -> None:
    assert refused_before_sending(UnicodeEncodeError("utf-8", "x", 0, 1, "surrogate"))


@pytest.mark.parametrize(
    "exc",
    [
        KafkaConnectionError(),
        KafkaTimeoutError(),
        RequestTimedOutError(),
        NotLeaderForPartitionError(),
        UnknownTopicOrPartitionError(),
        UnknownError(),  # a wedged partition answers this for every record: heal, not skip
        TimeoutError(),
        # A broker-wide rule or condition fails every record of a produce request, and
        # the next request may pass: never one row's fault.
        InvalidTimestampError(),
        PolicyViolationError(),
        UnsupportedForMessageFormatError(),
        InvalidTopicError(),
        CorruptRecordException(),
        RecordTooLargeError(),
        RecordListTooLargeError(),
    ],
)
def test_broker_errors_keep_the_rows_in_the_log(exc: BaseException) -> None:
    assert not refused_before_sending(exc)


async def test_the_event_size_limit_fits_what_the_relay_can_send() -> None:
    producer = make_producer("localhost:9", client_id="size-check")
    limit = producer._max_request_size
    await producer.stop()
    assert Settings.model_fields["event_max_bytes"].default < limit
