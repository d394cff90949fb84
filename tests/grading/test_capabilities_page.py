"""The instructor's pages say plainly what the platform lets the tool do with grades (AGS 2.0 §3.1:
the scopes granted in the launch's AGS claim), and lead to the gradebook."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from support import Lms

from tool.lti import ags, nrps


def _token(resp) -> str:
    return parse_qs(urlsplit(resp.url).query)["t"][0]


def test_the_home_and_gradebook_say_what_canvas_allows(lms):
    home = lms.launch(lms.teacher)
    assert home.status_code == 200
    assert "Canvas lets the tool create gradebook columns, send scores and read the gradebook." in home.text
    assert "/instructor/gradebook?t=" in home.text
    book = requests.get(lms.tool.base_url + "/instructor/gradebook", params={"t": _token(home)}, timeout=5)
    assert book.status_code == 200 and "create gradebook columns" in book.text


def test_a_grade_sync_only_platform_is_explained(tool):
    env = Lms(tool, scopes=[ags.SCOPE_SCORE, ags.SCOPE_LINEITEM_READONLY, ags.SCOPE_RESULT_READONLY,
                            nrps.SCOPE])
    try:
        home = env.launch(env.teacher)
        assert home.status_code == 200
        assert "lets the tool find gradebook columns, send scores and read the gradebook" in home.text
        assert "cannot create gradebook columns" in home.text
    finally:
        env.stop()
