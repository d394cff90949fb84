"""The emulated Canvas's own pages pass the same axe-core scan: the sandbox shows them to every
newcomer, framing the tool."""
from __future__ import annotations

from playwright.sync_api import expect

from .browserkit import quiz_assignment_by_script
from .test_journeys import course_home, course_nav, tool_frame


def test_course_pages(page, course_site, axe_check, shot):
    site = course_site
    quiz_assignment_by_script(site)
    page.goto(site.platform.base_url + "/")
    shot("courses")
    axe_check(page, "emulated Canvas: course list")
    page.goto(course_home(site))
    shot("course-home")
    axe_check(page, "emulated Canvas: course home")
    for name in ("People", "Grades"):
        course_nav(page, name)
        shot(name)
        axe_check(page, f"emulated Canvas: {name}")
    course_nav(page, site.registration.title)
    expect(tool_frame(page).get_by_role("heading", name="Course roster")).to_be_visible()
    shot("tool-page")
    axe_check(page, "emulated Canvas: the tool's page (with the tool framed)")
