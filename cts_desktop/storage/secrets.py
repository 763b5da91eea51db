"""API credentials live only in the OS keyring (D23): never in the database, a file, a log or an export.

There is deliberately no fallback. When no secure backend exists the store says what to
install; paper trading needs no secrets, so the application keeps running without one.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from enum import StrEnum

import keyring
import keyring.backend
import keyring.errors

from cts_desktop.redaction import Redactor

SERVICE_NAME = "cts-desktop"

# Backends that exist but do not keep a secret secure or at all.
_INSECURE_BACKEND_PREFIXES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")


class SecretField(StrEnum):
    API_KEY = "api_key"
    API_SECRET = "api_secret"  # noqa: S105 - a field name, not a secret
    PASSPHRASE = "passphrase"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Credentials:
    """One connection's credentials. ``repr`` masks them so they cannot leak through a debug print."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Credentials(api_key=***, api_secret=***, passphrase={'***' if self.passphrase else None})"


@dataclass(frozen=True, slots=True)
class KeyringStatus:
    available: bool
    backend: str
    error: str | None = None


class SecretStoreError(Exception):
    """A keyring operation failed; the message says what to do and never contains a secret."""


class KeyringUnavailableError(SecretStoreError):
    """No secure OS keyring backend: credentials cannot be stored on this machine as it is."""


def install_hint(platform: str = sys.platform) -> str:
    if platform.startswith("linux"):
        return (
            "No secure OS keyring is available. Install and start a Secret Service provider "
            "(GNOME Keyring: 'sudo apt install gnome-keyring', or KWallet) and unlock it by "
            "logging in to your desktop session, then restart cts-desktop. API keys are never "
            "stored anywhere else; paper trading works without them."
        )
    if platform == "darwin":
        return "The macOS Keychain is not reachable. Unlock your login keychain and restart cts-desktop."
    if platform.startswith("win"):
        return (
            "Windows Credential Manager is not reachable. "
            "Sign in to Windows normally and restart cts-desktop."
        )
    return "No secure OS keyring is available on this system; API keys cannot be stored."


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


class SecretStore:
    """Per-connection credentials in the OS keyring, registered with the redactor on every touch.

    Keyring calls block (D-Bus round trips, a possible unlock prompt), so async code uses the
    ``a*`` methods, which run them in a worker thread.
    """

    def __init__(self, redactor: Redactor, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self._redactor = redactor
        self._backend = backend if backend is not None else keyring.get_keyring()

    def status(self) -> KeyringStatus:
        name = _backend_name(self._backend)
        if name.startswith(_INSECURE_BACKEND_PREFIXES) or self._is_empty_chain():
            return KeyringStatus(False, name, install_hint())
        return KeyringStatus(True, name)

    def _is_empty_chain(self) -> bool:
        backends = getattr(self._backend, "backends", None)
        return backends is not None and not any(
            not _backend_name(b).startswith(_INSECURE_BACKEND_PREFIXES) for b in backends
        )

    def _require_backend(self) -> None:
        status = self.status()
        if not status.available:
            raise KeyringUnavailableError(status.error or install_hint())

    def save(self, connection_id: str, credentials: Credentials) -> None:
        """Store (or replace) all fields; a passphrase of None removes a stored one."""
        self._require_backend()
        self._redactor.register(credentials.api_key, credentials.api_secret, credentials.passphrase)
        values = {
            SecretField.API_KEY: credentials.api_key,
            SecretField.API_SECRET: credentials.api_secret,
            SecretField.PASSPHRASE: credentials.passphrase,
        }
        for secret_field, value in values.items():
            try:
                if value:
                    self._backend.set_password(SERVICE_NAME, _username(connection_id, secret_field), value)
                else:
                    self._delete_field(connection_id, secret_field)
            except keyring.errors.KeyringError as exc:
                raise SecretStoreError(
                    f"Could not save the {secret_field.value.replace('_', ' ')} of connection "
                    f"{connection_id} in the OS keyring ({type(exc).__name__}). "
                    "Unlock the keyring and try again."
                ) from None

    def load(self, connection_id: str) -> Credentials | None:
        """The stored credentials, or None when the connection has no API key and secret stored."""
        self._require_backend()
        try:
            api_key = self._backend.get_password(SERVICE_NAME, _username(connection_id, SecretField.API_KEY))
            api_secret = self._backend.get_password(
                SERVICE_NAME, _username(connection_id, SecretField.API_SECRET)
            )
            passphrase = self._backend.get_password(
                SERVICE_NAME, _username(connection_id, SecretField.PASSPHRASE)
            )
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"Could not read the credentials of connection {connection_id} from the OS keyring "
                f"({type(exc).__name__}). Unlock the keyring and try again."
            ) from None
        self._redactor.register(api_key, api_secret, passphrase)
        if not api_key or not api_secret:
            return None
        return Credentials(api_key, api_secret, passphrase or None)

    def delete(self, connection_id: str) -> None:
        """Remove every stored field of the connection; missing fields are fine."""
        self._require_backend()
        for secret_field in SecretField:
            self._delete_field(connection_id, secret_field)

    def has_credentials(self, connection_id: str) -> bool:
        return self.load(connection_id) is not None

    def _delete_field(self, connection_id: str, secret_field: SecretField) -> None:
        try:
            self._backend.delete_password(SERVICE_NAME, _username(connection_id, secret_field))
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"Could not delete the {secret_field.value.replace('_', ' ')} of connection "
                f"{connection_id} from the OS keyring ({type(exc).__name__})."
            ) from None

    async def asave(self, connection_id: str, credentials: Credentials) -> None:
        await asyncio.to_thread(self.save, connection_id, credentials)

    async def aload(self, connection_id: str) -> Credentials | None:
        return await asyncio.to_thread(self.load, connection_id)

    async def adelete(self, connection_id: str) -> None:
        await asyncio.to_thread(self.delete, connection_id)


def _username(connection_id: str, secret_field: SecretField) -> str:
    return f"{connection_id}:{secret_field.value}"
