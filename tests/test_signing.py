"""Signed values and timed tokens: itsdangerous's formats, read and written both ways."""
from __future__ import annotations

import hashlib
import time

import pytest
from itsdangerous import Signer, URLSafeTimedSerializer

from tool.signing import BadSignature, SignatureExpired, SignedValue, TimedToken


def test_a_signed_value_is_itsdangerous_signers_byte_for_byte():
    ours = SignedValue("secret", "page-session", hashlib.sha256)
    theirs = Signer("secret", salt="page-session", digest_method=hashlib.sha256)
    for value in ("abc", "k" * 43, "-_09AZaz"):
        assert ours.sign(value) == theirs.sign(value).decode()
        assert ours.unsign(theirs.sign(value).decode()) == value
        assert theirs.unsign(ours.sign(value)).decode() == value


@pytest.mark.parametrize("tamper", [
    lambda s: "x" + s,                      # value changed
    lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"),  # signature changed
    lambda s: s + "=",                      # padding is not the format
    lambda s: s.replace(".", ""),           # no separator
    lambda s: s + "é",                      # not ascii
    lambda s: s.rpartition(".")[0] + ".",   # empty signature
])
def test_a_signed_value_changed_anywhere_is_refused(tamper):
    ours = SignedValue("secret", "salt")
    with pytest.raises(BadSignature):
        ours.unsign(tamper(ours.sign("session-key")))


def test_a_value_signed_with_another_secret_or_salt_is_refused():
    signed = SignedValue("secret", "salt").sign("v")
    with pytest.raises(BadSignature):
        SignedValue("other", "salt").unsign(signed)
    with pytest.raises(BadSignature):
        SignedValue("secret", "other-salt").unsign(signed)


def test_a_timed_token_reads_with_itsdangerous_and_the_other_way():
    data = {"n": "nonce-é", "r": 7, "t": "post_message_forwarding"}
    ours = TimedToken("secret", "lti-login-state")
    theirs = URLSafeTimedSerializer("secret", salt="lti-login-state")
    assert theirs.loads(ours.dumps(data), max_age=60) == data
    assert ours.loads(theirs.dumps(data), max_age=60) == data  # compressed or not
    plain = theirs.dumps({"n": "x", "r": 1})
    assert not plain.startswith(".") and ours.loads(plain, 60) == {"n": "x", "r": 1}


def test_a_timed_token_too_old_or_from_the_future_is_refused(monkeypatch):
    ours = TimedToken("secret", "salt")
    token = ours.dumps({"a": 1})
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    with pytest.raises(SignatureExpired):
        ours.loads(token, 60)
    assert ours.loads(token, 120) == {"a": 1}
    monkeypatch.setattr(time, "time", lambda: now - 5)
    with pytest.raises(SignatureExpired):
        ours.loads(token, 60)


@pytest.mark.parametrize("tamper", [
    lambda s: s[1:],
    lambda s: s.replace(".", "!", 1),
    lambda s: s.split(".")[0],
    lambda s: s + "x",
    lambda s: "é" + s,
    lambda s: "",
])
def test_a_timed_token_changed_anywhere_is_refused(tamper):
    ours = TimedToken("secret", "salt")
    with pytest.raises(BadSignature):
        ours.loads(tamper(ours.dumps({"n": "x", "r": 1})), 60)


def test_a_timed_token_of_another_secret_is_refused_before_its_payload_is_read():
    forged = URLSafeTimedSerializer("not-the-secret", salt="salt").dumps({"n": "x"})
    with pytest.raises(BadSignature):
        TimedToken("secret", "salt").loads(forged, 60)
    # A validly signed payload that is not JSON is still refused, not raised as a ValueError.
    from itsdangerous import TimestampSigner
    junk = TimestampSigner("secret", salt="salt").sign(b"bm90LWpzb24").decode()
    with pytest.raises(BadSignature):
        TimedToken("secret", "salt").loads(junk, 60)
