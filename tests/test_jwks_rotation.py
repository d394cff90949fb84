"""The platform's key set: forged kids cannot lock out a real key rotation, and a key set that is
down or broken is answered as the platform's fault (503/502), never as the caller's or a 500.

The tests' tool refetches an unknown kid at most every 2 seconds (jwks_refetch_interval=2).
"""
from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from emulator import Browser


def _unknown_kid(resp):
    assert resp.status_code == 400 and "<code>unknown_kid</code>" in resp.text, resp.text[:500]


def test_a_forged_kid_then_a_rotation_the_rotated_key_works_at_once(lms):
    assert lms.launch(lms.student).status_code == 200
    _unknown_kid(lms.launch(lms.student, header={"kid": "2999-01-01T00:00:00Z"}))
    lms.platform.rotate_key()
    resp = lms.launch(lms.teacher)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/instructor"
    assert lms.platform.jwks_requests == 3


def _forge_steadily(lms, stop: threading.Event, kids):
    while not stop.is_set():
        lms.launch(lms.student, header={"kid": next(kids)})
        time.sleep(0.2)


def test_a_trickle_of_one_forged_kid_costs_one_request_and_blocks_no_rotation(lms):
    assert lms.launch(lms.student).status_code == 200
    stop = threading.Event()
    forger = threading.Thread(target=_forge_steadily, args=(lms, stop, iter(lambda: "forged-kid", None)))
    forger.start()
    try:
        time.sleep(1.0)
        assert lms.platform.jwks_requests == 2  # the first forgery's refetch, then none
        lms.platform.rotate_key()
        for user in (lms.teacher, lms.student):
            assert lms.launch(user).status_code == 200
    finally:
        stop.set()
        forger.join()
    assert lms.platform.jwks_requests == 3


def test_a_trickle_of_new_forged_kids_delays_a_rotation_but_never_fails_it(lms):
    assert lms.launch(lms.student).status_code == 200
    counter = iter(range(10**6))
    stop = threading.Event()
    forger = threading.Thread(target=_forge_steadily,
                              args=(lms, stop, (f"forged-{n}" for n in counter)))
    began = time.monotonic()
    forger.start()
    try:
        time.sleep(0.5)
        lms.platform.rotate_key()
        for user in (lms.teacher, lms.student, lms.teacher):
            assert lms.launch(user).status_code == 200
        time.sleep(2.5)
    finally:
        stop.set()
        forger.join()
    elapsed = time.monotonic() - began
    # Bounded: one refetch per interval, however many kids were forged.
    assert lms.platform.jwks_requests <= 2 + elapsed / lms.tool.settings.jwks_refetch_interval


def test_a_platform_key_set_that_is_down_answers_503(lms):
    lms.platform.jwks_down = True
    resp = lms.launch(lms.student)
    assert resp.status_code == 503 and "<code>platform_jwks_unavailable</code>" in resp.text
    assert "did not answer as expected" in resp.text and "Traceback" not in resp.text
    browser = Browser()
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    action, fields = browser.authorize(browser.auth_location(browser.initiate(lms.tool.login_url, pending)))
    answer = browser.post(action, data=fields, headers={"Accept": "application/json"})
    assert answer.status_code == 503 and answer.json()["error"] == "platform_jwks_unavailable"


def test_a_platform_key_set_that_is_not_a_key_set_answers_502(lms):
    lms.platform.jwks_broken = True
    resp = lms.launch(lms.student)
    assert resp.status_code == 502 and "<code>platform_jwks_invalid</code>" in resp.text
    assert "not a JSON Web Key Set" in resp.text
    lms.platform.jwks_broken = False
    time.sleep(lms.tool.settings.jwks_refetch_interval + 0.1)
    assert lms.launch(lms.student).status_code == 200


def test_an_unreachable_platform_key_set_answers_503(lms):
    lms.platform.stop()  # nothing listens at the key set URL any more
    keys = lms.tool.app.extensions["platform_keys"]
    try:
        keys.key_for(lms.platform.jwks_url, "any")
    except Exception as exc:
        assert exc.status == 503 and exc.code == "platform_jwks_unavailable", exc
    else:
        raise AssertionError("an unreachable key set must raise")


def test_a_burst_of_forged_kids_parks_only_a_few_launches(lms):
    """Launches waiting for the next allowed refetch are capped, so a flood of forged kids
    cannot hold every server thread; the ones turned away are refused at once."""
    from tool.lti import platform_keys

    cache = lms.tool.app.extensions["platform_keys"]
    url = lms.platform.jwks_url
    assert lms.launch(lms.student).status_code == 200
    _unknown_kid(lms.launch(lms.student, header={"kid": "forged-first"}))  # starts the spacing
    outcomes = []

    def forge(n):
        try:
            cache.key_for(url, f"forged-burst-{n}")
            outcomes.append("found")
        except Exception as exc:  # noqa: BLE001 (the refusal type is what is recorded)
            outcomes.append(getattr(exc, "code", type(exc).__name__))

    threads = [threading.Thread(target=forge, args=(n,)) for n in range(platform_keys.MAX_WAITING + 3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # well inside the 2 s spacing: the capped ones are already answered
    entry = cache._entry(url)
    assert entry.waiting == platform_keys.MAX_WAITING
    assert outcomes.count("unknown_kid") == 3
    for thread in threads:
        thread.join()
    assert outcomes.count("unknown_kid") == len(threads)
    lms.platform.rotate_key()
    assert lms.launch(lms.teacher).status_code == 200
