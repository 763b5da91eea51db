import logging

import pytest

from cts_desktop.redaction import MASK, RedactingFilter, Redactor


@pytest.fixture
def redactor() -> Redactor:
    r = Redactor()
    r.register("k3yABCDEF123456", "s3cretXYZ987654321")
    return r


@pytest.mark.parametrize(
    ("raw", "must_not_contain"),
    [
        ("key k3yABCDEF123456 in text", "k3yABCDEF123456"),
        ("https://api.binance.com/api/v3/order?symbol=BTCUSDT&signature=9f8e7d6c5b4a", "9f8e7d6c5b4a"),
        ("{'X-MBX-APIKEY': 'unregisteredKEY999', 'Content-Type': 'json'}", "unregisteredKEY999"),
        ('{"apiKey": "AAAABBBBCCCC", "secret": "DDDDEEEEFFFF"}', "AAAABBBBCCCC"),
        ('{"apiKey": "AAAABBBBCCCC", "secret": "DDDDEEEEFFFF"}', "DDDDEEEEFFFF"),
        ("OK-ACCESS-PASSPHRASE: hunter2hunter2", "hunter2hunter2"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "eyJhbGciOiJIUzI1NiJ9"),
        ("X-BAPI-SIGN=abcdef0123456789", "abcdef0123456789"),
    ],
)
def test_secret_values_and_credential_fields_are_masked(
    redactor: Redactor, raw: str, must_not_contain: str
) -> None:
    out = redactor.redact(raw)
    assert must_not_contain not in out
    assert MASK in out


def test_ordinary_text_is_left_alone(redactor: Redactor) -> None:
    text = "BTC/USDT last 64123.5, design=flat, 20 positions, signal long"
    assert redactor.redact(text) == text


def test_short_values_are_not_registered() -> None:
    r = Redactor()
    r.register("ab", "", None)
    assert r.redact("ab cd") == "ab cd"


def test_secret_containing_another_is_masked_whole() -> None:
    r = Redactor()
    r.register("abcdef", "abcdefghijkl")
    assert r.redact("x abcdefghijkl y") == f"x {MASK} y"


def test_filter_redacts_message_args_and_traceback(redactor: Redactor) -> None:
    logger = logging.getLogger("test.redaction.filter")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    try:
        logger.warning("headers %s", {"X-MBX-APIKEY": "k3yABCDEF123456"})
        try:
            raise RuntimeError("signed url ...&signature=deadbeefcafe and s3cretXYZ987654321")
        except RuntimeError:
            logger.exception("request failed for %s", "k3yABCDEF123456")
    finally:
        logger.removeHandler(handler)
    rendered = "\n".join(handler.format(r) for r in records)
    for secret in ("k3yABCDEF123456", "s3cretXYZ987654321", "deadbeefcafe"):
        assert secret not in rendered
    assert "RuntimeError" in rendered  # the traceback is kept, only the secrets are gone
    assert records[1].exc_info is None and records[1].exc_text


def test_redact_exception(redactor: Redactor) -> None:
    text = redactor.redact_exception(ValueError("bad key k3yABCDEF123456"))
    assert text == f"ValueError: bad key {MASK}"


def test_unformattable_record_does_not_leak_args(redactor: Redactor) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("k3yABCDEF123456",), None)
    RedactingFilter(redactor).filter(record)
    assert "k3yABCDEF123456" not in record.getMessage()
