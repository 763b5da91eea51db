import uuid
from typing import Any

import keyring.backends.fail
import keyring.backends.null
import pytest

from cts_desktop.redaction import Redactor
from cts_desktop.storage.secrets import (
    SERVICE_NAME,
    Credentials,
    KeyringUnavailableError,
    SecretStore,
    install_hint,
)


@pytest.fixture
def connection_id() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.mark.keyring
def test_round_trip_on_the_real_backend(real_keyring: Any, connection_id: str) -> None:
    redactor = Redactor()
    store = SecretStore(redactor, real_keyring)
    assert store.status().available
    creds = Credentials("AKIAREALKEY0001", "verysecretvalue0001", "okxpassphrase1")
    try:
        store.save(connection_id, creds)
        assert store.load(connection_id) == creds
        # the backend itself holds it (not some cache of ours)
        assert real_keyring.get_password(SERVICE_NAME, f"{connection_id}:api_secret") == "verysecretvalue0001"
        # saving without a passphrase removes the stored one
        store.save(connection_id, Credentials("AKIAREALKEY0002", "verysecretvalue0002"))
        loaded = store.load(connection_id)
        assert loaded is not None and loaded.passphrase is None and loaded.api_key == "AKIAREALKEY0002"
        # every value that passed through the store is now redacted everywhere
        assert "verysecretvalue0001" not in redactor.redact("x verysecretvalue0001 y")
    finally:
        store.delete(connection_id)
    assert store.load(connection_id) is None
    assert store.has_credentials(connection_id) is False


@pytest.mark.keyring
@pytest.mark.asyncio
async def test_async_variants_run_off_the_loop(real_keyring: Any, connection_id: str) -> None:
    store = SecretStore(Redactor(), real_keyring)
    try:
        await store.asave(connection_id, Credentials("asyncKEY12345", "asyncSECRET12345"))
        loaded = await store.aload(connection_id)
        assert loaded is not None and loaded.api_secret == "asyncSECRET12345"
    finally:
        await store.adelete(connection_id)
    assert await store.aload(connection_id) is None


@pytest.mark.parametrize("backend", [keyring.backends.fail.Keyring(), keyring.backends.null.Keyring()])
def test_no_backend_gives_a_clear_message_and_no_fallback(backend: Any, connection_id: str) -> None:
    store = SecretStore(Redactor(), backend)
    status = store.status()
    assert not status.available
    assert status.error == install_hint()
    with pytest.raises(KeyringUnavailableError) as err:
        store.save(connection_id, Credentials("AKIAREALKEY0001", "verysecretvalue0001"))
    message = str(err.value)
    assert "gnome-keyring" in message or "Keychain" in message or "Credential Manager" in message
    assert "verysecretvalue0001" not in message
    with pytest.raises(KeyringUnavailableError):
        store.load(connection_id)


def test_install_hint_per_platform() -> None:
    assert "apt install gnome-keyring" in install_hint("linux")
    assert "Keychain" in install_hint("darwin")
    assert "Credential Manager" in install_hint("win32")


def test_credentials_repr_never_shows_values() -> None:
    text = repr(Credentials("AKIAREALKEY0001", "verysecretvalue0001", "pass-phrase-1"))
    assert "AKIAREALKEY0001" not in text and "verysecretvalue0001" not in text and "pass-phrase-1" not in text
