"""The sandbox as a newcomer meets it (``python app.py``, with a password as on a shared
server), scanned with axe-core at WCAG 2.1 AA: the home page's offer, the password page with and
without a mistake, the demo course, the tool framed in it, the gradebook."""
from __future__ import annotations

from playwright.sync_api import expect

from test_sandbox import Served

from .test_journeys import course_nav, tool_frame


def test_sandbox_pages(page, tmp_path, axe_check, shot):
    served = Served(tmp_path, f"sqlite:///{tmp_path / 'tool.db'}", SANDBOX_PASSWORD="open sesame")
    served.start()
    try:
        page.goto(served.url + "/")
        shot("home")
        axe_check(page, "home page with the sandbox offer")
        page.get_by_role("link", name="Open the sandbox").click()
        expect(page.get_by_label("Password")).to_be_visible()
        shot("password")
        axe_check(page, "sandbox password page")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Open the sandbox").click()
        expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
        shot("password-wrong")
        axe_check(page, "sandbox password page after a wrong password")
        page.get_by_label("Password").fill("open sesame")
        page.get_by_role("button", name="Open the sandbox").click()
        expect(page.get_by_role("navigation", name="Course navigation")).to_be_visible()
        shot("course")
        axe_check(page, "sandbox course page")
        course_nav(page, "Roster & Grades")
        expect(tool_frame(page).get_by_role("heading", name="Course roster")).to_be_visible()
        shot("tool")
        axe_check(page, "sandbox page framing the tool")
        axe_check(page.frame(name="tool_content"), "the tool in the sandbox")
        course_nav(page, "Grades")
        shot("grades")
        axe_check(page, "sandbox gradebook")
    finally:
        served.stop()
