"""How a REST client authenticates: the headers of its next request, renewed after a 401.

A fixed token (`StaticToken`) suits HubSpot private apps and Pipedrive API tokens, which
do not expire; a CRM whose access tokens expire brings its own `Credentials` (Salesforce:
`salesforce/oauth.py`), which `CrmHttp` asks to `renew` once per refused request.
"""

from __future__ import annotations

from typing import Protocol


class CredentialsError(Exception):
    """The CRM would not issue an access token; the message never holds a secret."""


class Credentials(Protocol):
    async def headers(self) -> dict[str, str]:
        """The authentication headers for the next request."""
        ...

    async def renew(self, refused: dict[str, str]) -> bool:
        """After a 401 to a request sent with `refused`: get fresh credentials (unless
        another request already did); False when there is nothing to renew."""
        ...


class StaticToken:
    """A token that is what it is; a 401 means it is wrong, expired or revoked."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    async def headers(self) -> dict[str, str]:
        return self._headers

    async def renew(self, refused: dict[str, str]) -> bool:
        return False
