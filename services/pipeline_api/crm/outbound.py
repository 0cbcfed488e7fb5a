"""Where a re-sync may send a CRM's credentials, and how much of an answer it reads.

A source's `api_base_url` and OAuth `token_url` receive its API token or refresh token, and
an admin types them in. So they may name only https hosts of the source's own CRM
(each adapter's `api_hosts`) or hosts an operator allowed (`SALESOPS_OUTBOUND_ALLOWED_HOSTS`, for
sandboxes and self-hosted instances), and never an address inside our own network:
loopback, private, link-local (cloud metadata at 169.254.169.254) and other non-global
or special-purpose addresses are refused after DNS resolution, so a public name pointing
inward is refused too; an IPv4 address embedded in IPv6 (mapped, NAT64, 6to4, Teredo) is
judged as itself. `SALESOPS_OUTBOUND_ALLOW_LOOPBACK` (development and tests) admits
127.0.0.1 / ::1 / localhost over http or https.

The rules apply twice: when a source is stored (a clear 422) and on every request
(`GuardedTransport`). At request time the address is resolved once, checked, and connected
to as checked, so a name cannot resolve to a public address for the check and to an
inward one for the connection. Answers are read up to `max_response_bytes`, and only
uncompressed (`Accept-Encoding: identity`), so a small compressed answer cannot expand
into gigabytes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from services.pipeline_api.crm.registry import api_hosts
from shared.settings import Settings

if TYPE_CHECKING:
    from services.pipeline_api.sources.schemas import SourceIn

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class OutboundRefused(Exception):
    """A call the policy does not allow; the message names the URL or host, never a body."""


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _bad_name(host: str) -> OutboundRefused:
    return OutboundRefused(f"{host!r} is not a valid host name (an empty or too long label)")


def _check_name(host: str) -> None:
    """What the resolver will accept: IDNA-encodable, no empty label, none over 63 chars.
    Checked here so a bad name is a clear refusal, not an encoding error from DNS."""
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise _bad_name(host) from exc


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class OutboundPolicy:
    extra_hosts: tuple[str, ...] = ()
    allow_loopback: bool = False
    max_response_bytes: int = 32 * 1024 * 1024
    resolver: Resolver = resolve
    verify_seconds: float = 5.0
    """How long storing a source waits for DNS: a hung resolver must not hang the PUT."""

    @classmethod
    def of(cls, settings: Settings) -> OutboundPolicy:
        return cls(
            extra_hosts=tuple(h.lower() for h in settings.outbound_allowed_hosts),
            allow_loopback=settings.outbound_allow_loopback,
            max_response_bytes=settings.outbound_max_response_bytes,
        )

    def check_url(self, url: str, kind: str | None = None) -> httpx.URL:
        """Scheme and host of `url` allowed for a source of `kind` (None: of any kind)."""
        try:
            parsed = httpx.URL(url)
            host = parsed.host.lower()  # decodes IDNA: an invalid A-label raises here
        except (httpx.InvalidURL, ValueError) as exc:  # IDNAError is a ValueError
            raise OutboundRefused(f"{url!r} is not a URL") from exc
        if not host or parsed.userinfo:
            raise OutboundRefused(f"{url!r} must be https://host[:port][/path], without userinfo")
        literal = _literal(host)
        if literal is None:
            _check_name(host)
        loopback = self.allow_loopback and (
            host == "localhost" or (literal is not None and _unmapped(literal).is_loopback)
        )
        if loopback:
            if parsed.scheme not in ("http", "https"):
                raise OutboundRefused(f"{url!r} must use http or https")
            return parsed
        if parsed.scheme != "https":
            raise OutboundRefused(f"{url!r} must use https")
        if not self._host_allowed(host, kind):
            crm = kind or "CRM"
            raise OutboundRefused(
                f"{host!r} is not a {crm} host; add it to SALESOPS_OUTBOUND_ALLOWED_HOSTS "
                "if it is a sandbox or self-hosted instance"
            )
        if literal is not None:
            self.check_address(host, literal)
        return parsed

    def _host_allowed(self, host: str, kind: str | None) -> bool:
        return any(fnmatchcase(host, p) for p in (*api_hosts(kind), *self.extra_hosts))

    def check_address(self, host: str, address: IPAddress) -> None:
        """Refuse an address inside our own network (loopback only when allowed)."""
        if self.allow_loopback and _unmapped(address).is_loopback:
            return
        if not all(_public(judged) for judged in _judged(address)):
            raise OutboundRefused(
                f"{host!r} resolves to {address}, an address inside the network "
                "(loopback, private, link-local or reserved); CRM calls go only to public hosts"
            )

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`, each one checked."""
        literal = _literal(host)
        try:
            found = [str(literal)] if literal is not None else await self.resolver(host, port)
        except ValueError as exc:  # the resolver's IDNA encoding: an empty or long label
            raise _bad_name(host) from exc
        for address in found:
            self.check_address(host, ipaddress.ip_address(address))
        return found

    def check_source(self, source: SourceIn) -> None:
        """Every URL a source's re-sync would call, by scheme and host."""
        for url in _urls(source):
            self.check_url(url, source.kind)

    async def verify_source(self, source: SourceIn) -> None:
        """`check_source`, and the hosts' addresses as they resolve now. A host that does
        not resolve yet, or not within `verify_seconds`, is accepted: it is resolved and
        checked again on every call."""
        self.check_source(source)
        for url in _urls(source):
            parsed = httpx.URL(url)
            try:
                async with asyncio.timeout(self.verify_seconds):
                    await self.addresses(parsed.host, parsed.port or 443)
            except (OSError, TimeoutError):
                continue


def _urls(source: SourceIn) -> list[str]:
    urls = [source.api_base_url.strip()] if source.api_base_url else []
    if source.oauth is not None:
        urls.append(source.oauth.token_url)
    return urls


def _unmapped(address: IPAddress) -> IPAddress:
    """An IPv4 address written as IPv6 (::ffff:127.0.0.1) is judged as the IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        # IPv4, RFC 6890 and the IANA special-purpose registry
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        # IPv6 (:: and ::1 are judged as IPv4 0.0.0.0/8): local-use NAT64, discard,
        # IETF protocols (Teredo among them), documentation, SRv6, unique-local,
        # site-local, link-local, multicast
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fec0::/10",
        "fe80::/10",
        "ff00::/8",
    )
)
"""Networks never called, whatever `is_global` says in this Python version."""

_CARRY_IPV4 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765)
        "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052)
    )
)
"""IPv6 networks whose last 32 bits are an IPv4 address that the traffic reaches."""


def _judged(address: IPAddress) -> list[IPAddress]:
    """The addresses a connection to `address` reaches: itself, and any IPv4 address
    embedded in it (the forms above, 6to4 and Teredo), since a translator or tunnel
    would deliver to that one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return [address]
    judged: list[IPAddress] = [address]
    if any(address in network for network in _CARRY_IPV4):
        judged = [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        judged.append(address.sixtofour)
    if address.teredo is not None:
        judged.extend(address.teredo)
    return judged


def _public(address: IPAddress) -> bool:
    return address.is_global and not any(address in network for network in _SPECIAL)


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows, to the very address it checked."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.addresses(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"{host!r} did not resolve in time") from exc
        except OSError as exc:  # DNS failure: a connection error, retried like one
            raise httpcore.ConnectError(f"{host!r} does not resolve: {exc}") from exc
        failure: Exception = httpcore.ConnectError(f"{host!r} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("CRM calls do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int, url: httpx.URL) -> None:
        self._inner = inner
        self._limit = limit
        self._url = url

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise _too_large(self._url, self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _too_large(url: httpx.URL, limit: int) -> OutboundRefused:
    return OutboundRefused(
        f"the answer to {url.host}{url.path} is larger than {limit} bytes "
        "(SALESOPS_OUTBOUND_MAX_RESPONSE_BYTES)"
    )


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's transport with the policy applied to every request and answer.

    httpx offers no public way to give its transport a network backend, so the
    connection pool is replaced with one built on `_CheckedBackend` (httpx is pinned).
    """

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpx.AsyncHTTPTransport(trust_env=False)
        self._inner._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_CheckedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_url(str(request.url))
        request.headers["Accept-Encoding"] = "identity"
        response = await self._inner.handle_async_request(request)
        limit = self._policy.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding != "identity" or (declared.isdigit() and int(declared) > limit):
            await response.aclose()
            if encoding != "identity":
                raise OutboundRefused(
                    f"the answer to {request.url.host}{request.url.path} is compressed "
                    f"({encoding}) though identity was asked for"
                )
            raise _too_large(request.url, limit)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, limit, request.url),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(policy: OutboundPolicy, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The client re-syncs use. `trust_env=False`: a proxy from the environment would be
    another transport, outside the policy."""
    return httpx.AsyncClient(timeout=timeout, transport=GuardedTransport(policy), trust_env=False)
