"""The journeys by keyboard alone: Tab, Shift+Tab, Enter, Space, arrows and typing; no click.
Every control the journey uses is reached with Tab and shows a visible focus when it is.

They run through the emulated Canvas's course pages, with the tool framed from another site,
as a person using a keyboard meets it: the course navigation, then into the frame.
"""
from __future__ import annotations

from playwright.sync_api import expect

from .browserkit import focused, quiz_assignment_by_script, tab_to, wait_until
from .test_journeys import course_home, tool_frame


def _open_tool(page, site):
    """From the course home page: Tab to the tool in the course navigation, Enter."""
    page.goto(course_home(site))
    tab_to(page, site.registration.title, tag="a")
    page.keyboard.press("Enter")
    expect(tool_frame(page).get_by_role("heading", level=2).first).to_be_visible()
    return page.frame(name="tool_content")


def test_instructor_syncs_the_roster_by_keyboard(page, course_site, shot, job_worker):
    site = course_site
    frame = _open_tool(page, site)
    framed = tool_frame(page)
    expect(framed.get_by_role("table")).to_contain_text("Sam Student")  # the launch's own sync
    late = site.platform.add_user(name="Lena Latecomer")
    site.platform.enroll(site.course, late)

    tab_to(page, "Sync now", frame, tag="button")
    shot("sync-now-focused")
    page.keyboard.press("Enter")
    expect(framed.get_by_role("table")).to_contain_text("Lena Latecomer")
    shot("synced")


def test_instructor_creates_deep_links_and_publishes_an_assessment_by_keyboard(page, course_site,
                                                                              shot):
    site = course_site
    page.goto(course_home(site))
    tab_to(page, f"Add assignment from {site.registration.title}", tag="a")
    page.keyboard.press("Enter")
    framed = tool_frame(page)
    expect(framed.get_by_role("heading", name="Choose an assessment to add")).to_be_visible()
    frame = page.frame(name="tool_content")

    tab_to(page, "Create an assessment", frame, tag="a")
    page.keyboard.press("Enter")
    expect(framed.get_by_role("heading", name="New assessment")).to_be_visible()
    # Saving too early: the errors are listed and focus lands on the first field to fix.
    tab_to(page, "Save assessment", frame, tag="button")
    page.keyboard.press("Enter")
    expect(framed.get_by_role("alert")).to_be_visible()
    shot("errors")
    now = wait_until(lambda: (focused(frame) or {}).get("name") == "Title" and focused(frame))
    assert now and now["tag"] == "input" and now["visible"], f"focus after the errors: {focused(frame)}"
    page.keyboard.type("Keyboard quiz")
    tab_to(page, "Kind", frame, tag="select")
    page.keyboard.type("Number")  # typing an option's first letters picks it, as in any select
    tab_to(page, "Points", frame)
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    tab_to(page, "Question", frame, tag="textarea")
    page.keyboard.type("What is 2 + 2?")
    tab_to(page, "Right answer (number questions)", frame)
    page.keyboard.type("4")
    # A second question: the new question's first field gets the focus.
    tab_to(page, "Add a question:", frame, tag="select")
    page.keyboard.type("Number")
    tab_to(page, "Add question", frame, tag="button")
    page.keyboard.press("Enter")
    expect(framed.get_by_role("group", name="Question 2", exact=True)).to_be_visible()
    now = wait_until(lambda: (focused(frame) or {}).get("tag") == "textarea" and focused(frame))
    assert now and now["name"] == "Question" and now["visible"], f"focus: {focused(frame)}"
    page.keyboard.type("What is 3 + 3?")
    tab_to(page, "Right answer (number questions)", frame)
    page.keyboard.type("6")
    shot("written")
    tab_to(page, "Save assessment", frame, tag="button")
    page.keyboard.press("Enter")

    # Back in the picker: Space picks it, Enter sends it to Canvas.
    expect(framed.get_by_role("heading", name="Choose an assessment to add")).to_be_visible()
    tab_to(page, "Keyboard quiz…", frame, tag="input")
    page.keyboard.press("Space")
    tab_to(page, "Add to Canvas", frame, tag="button")
    shot("picked")
    page.keyboard.press("Enter")
    expect(framed.get_by_role("heading", name="Assignment added")).to_be_visible()
    tab_to(page, "Keyboard quiz", frame, tag="a")
    page.keyboard.press("Enter")  # Canvas's page of the new assignment, the tool framed in it
    expect(page.get_by_role("heading", level=1, name="Keyboard quiz")).to_be_visible()
    expect(framed.get_by_role("heading", level=1)).to_contain_text("Keyboard quiz")
    frame = page.frame(name="tool_content")

    tab_to(page, "Publish", frame, tag="button")
    shot("publish-focused")
    page.keyboard.press("Space")
    expect(framed.get_by_text("Published", exact=True).first).to_be_visible()
    shot("published")
    # Back up the page with Shift+Tab: the way back to the list is reachable too.
    tab_to(page, "Assessments", frame, tag="a", back=True)
    page.keyboard.press("Enter")
    expect(framed.get_by_role("table")).to_contain_text("Keyboard quiz")
    shot("listed")


def test_student_takes_and_submits_an_assessment_by_keyboard(page, course_site, shot, job_worker):
    site = course_site
    quiz_assignment_by_script(site)  # the teacher's part (its own journey is clicked elsewhere)

    page.goto(course_home(site, site.student))
    tab_to(page, "Quiz 1", tag="a")
    page.keyboard.press("Enter")
    framed = tool_frame(page)
    expect(framed.get_by_role("heading", name="Quiz 1")).to_be_visible()
    frame = page.frame(name="tool_content")
    tab_to(page, "Start…", frame, tag="button")
    page.keyboard.press("Enter")
    expect(framed.get_by_label("Your answer (a number)")).to_be_visible()
    tab_to(page, "Your answer (a number)", frame, tag="input")
    page.keyboard.type("42")
    shot("answered")
    tab_to(page, "Submit", frame, tag="button")
    page.keyboard.press("Enter")
    expect(framed.locator("main")).to_contain_text("4 / 4")
    shot("result")
