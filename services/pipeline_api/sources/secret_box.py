"""Source secrets sealed at rest, so a database dump or a read replica holds no CRM keys.

With `SALESOPS_SECRETS_KEYS` set (a JSON list of Fernet keys; make one with
`salesops secrets key`), every secret a source stores (signing secrets, API token, OAuth
client secret and refresh token) is written as `sealed:v1:<Fernet token>` (AES-128-CBC with
HMAC-SHA256, from the `cryptography` package). The first key seals; every key in the list
opens. A key is rotated in three steps: roll out `[new, old]` to every replica (each can
then open what any other seals), run `salesops secrets reseal` (every stored secret
re-sealed under the first key, secrets stored in clear sealed too; `--check` counts those
not yet), then drop the old key. Resealing while a replica still seals with `[old]` alone
would leave secrets that the new list, once the old key is dropped, cannot open.
Without keys, secrets are stored as given, as in development (production mode refuses to
start so unless told to); a sealed value then cannot be opened and says so.

The box travels with the SQLAlchemy session factory (`session.info`), so the repository
seals and opens without every caller passing it along.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.settings import Settings

PREFIX = "sealed:v1:"
INFO_KEY = "secret_box"


class SecretBoxError(Exception):
    """A sealed secret that cannot be opened: no key configured, or none of them fits.
    The repository adds which source's secret it was."""


class SecretBox:
    def __init__(self, keys: Sequence[str] = ()) -> None:
        try:
            fernets = [Fernet(k.encode()) for k in keys]
        except ValueError as exc:
            raise ValueError(
                "SALESOPS_SECRETS_KEYS must hold Fernet keys (32 url-safe base64 bytes each)"
            ) from exc
        self._fernet = MultiFernet(fernets) if fernets else None
        self._first = fernets[0] if fernets else None

    @property
    def seals(self) -> bool:
        return self._fernet is not None

    def seal(self, value: str) -> str:
        if self._fernet is None:
            return value
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str) -> str:
        if not value.startswith(PREFIX):
            return value  # stored before keys were configured: still readable
        if self._fernet is None:
            raise SecretBoxError("a source secret is sealed but SALESOPS_SECRETS_KEYS is not set")
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretBoxError(
                "a source secret was sealed with a key not in SALESOPS_SECRETS_KEYS"
            ) from exc

    def under_first_key(self, value: str) -> bool:
        """Whether `value` is sealed and opens with the first key: what `reseal` makes, so
        an old key can be dropped once no stored secret fails this."""
        if self._first is None or not value.startswith(PREFIX):
            return False
        try:
            self._first.decrypt(value[len(PREFIX) :].encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, value: str) -> str:
        """`value` sealed under the first key: a sealed one re-encrypted (opened with any
        key), one stored in clear sealed."""
        if self._fernet is None:
            raise SecretBoxError("nothing to seal with: SALESOPS_SECRETS_KEYS is not set")
        if not value.startswith(PREFIX):
            return self.seal(value)
        try:
            return PREFIX + self._fernet.rotate(value[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretBoxError(
                "a source secret was sealed with a key not in SALESOPS_SECRETS_KEYS"
            ) from exc


def new_key() -> str:
    return Fernet.generate_key().decode()


def secret_box(settings: Settings) -> SecretBox:
    return SecretBox([k.get_secret_value() for k in settings.secrets_keys])
