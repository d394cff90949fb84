"""The instructor's and the student's journeys, clicked in a real browser through the emulated
Canvas's course pages, with the tool framed from another site (``localhost`` framing
``127.0.0.1``) and third-party cookies blocked. A screenshot of each step is kept.
"""
from __future__ import annotations

import html

from playwright.sync_api import expect

from .browserkit import fill_numeric_question, question_box


def course_home(site, user=None) -> str:
    """The course's home page on the emulated Canvas, seen as ``user`` (the teacher by default)."""
    user = user or site.teacher
    return f"{site.platform.base_url}/courses/{site.course.course_id}?as={user.canvas_user_id}"


def tool_frame(page):
    return page.frame_locator("iframe#tool_content")


def course_nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Course navigation").get_by_role(
        "link", name=name, exact=True).click()


def view_as(page, name: str) -> None:
    """Canvas's "View as" switcher (the emulator's stand-in for logging in as someone else)."""
    page.get_by_label("View as").select_option(label=name)
    page.get_by_role("button", name="Switch").click()


def add_quiz_from_the_tool(page, site, shot, title="Quiz 1"):
    """The teacher adds an assignment from the tool: creates a one-question assessment in the
    tool's picker, picks it, then publishes it from the new assignment. Returns the assignment."""
    page.goto(course_home(site))
    shot("course-home")
    page.get_by_role("link", name=f"Add assignment from {site.registration.title}").click()
    frame = tool_frame(page)
    expect(frame.get_by_role("heading", name="Choose an assessment to add")).to_be_visible()
    shot("picker")
    frame.get_by_role("link", name="Create an assessment").click()
    frame.get_by_label("Title").fill(title)
    question_box(frame, 1).get_by_label("Kind").select_option(label="Number")
    fill_numeric_question(frame, 1, "What is 6 × 7?", "42", points="4")
    shot("assessment-written")
    frame.get_by_role("button", name="Save assessment").click()
    frame.get_by_label(title).check()
    shot("assessment-picked")
    frame.get_by_role("button", name="Add to Canvas").click()
    expect(frame.get_by_role("heading", name="Assignment added")).to_be_visible()
    shot("assignment-added")
    [assignment] = site.platform.deep_link_responses[-1]["assignments"]
    frame.get_by_role("link", name=title).click()  # Canvas's assignment page (target=_top)
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()
    frame = tool_frame(page)
    frame.get_by_role("button", name="Publish").click()
    expect(frame.get_by_text("Published", exact=True).first).to_be_visible()
    shot("published")
    return assignment


def test_instructor_opens_the_tool_from_course_navigation_and_watches_the_roster_fill(
        page, course_site, shot, job_worker):
    site = course_site
    for n in range(12):
        site.platform.enroll(site.course, site.platform.add_user(name=f"Student Number{n:02d}"))
    page.goto(course_home(site))
    shot("course-home")
    course_nav(page, site.registration.title)
    frame = tool_frame(page)
    expect(frame.get_by_role("heading", name="Course roster")).to_be_visible()
    shot("tool-opened")
    table = frame.get_by_role("table")
    expect(table).to_contain_text("Student Number11")
    expect(table).to_contain_text("Sam Student")
    expect(frame.locator("#roster-counts")).to_contain_text("14 active")
    shot("roster-filled")


def test_instructor_deep_links_an_assessment_then_a_student_takes_it_and_canvas_holds_the_score(
        page, course_site, shot, job_worker):
    site = course_site
    assignment = add_quiz_from_the_tool(page, site, shot)
    assert assignment.title == "Quiz 1" and assignment.points_possible == 4.0
    course_nav(page, "Home")
    expect(page.get_by_role("region", name="Assignments").get_by_role("link", name="Quiz 1")
           ).to_be_visible()
    shot("course-lists-the-assignment")

    # The student opens the assignment, answers, submits, sees the result.
    view_as(page, "Sam Student (Student)")
    page.get_by_role("link", name="Quiz 1").click()
    frame = tool_frame(page)
    expect(frame.get_by_role("heading", name="Quiz 1")).to_be_visible()
    shot("student-opens-assignment")
    frame.get_by_role("button", name="Start").click()
    frame.get_by_label("Your answer (a number)").fill("42")
    shot("answered")
    frame.get_by_role("button", name="Submit").click()
    expect(frame.locator("main")).to_contain_text("4 / 4")
    shot("result")

    # Canvas's gradebook holds the score the tool sent.
    view_as(page, "Ada Teacher (Teacher)")
    course_nav(page, "Grades")
    row = page.get_by_role("table").get_by_role("row", name="Sam Student")
    for _ in range(100):  # the grade leaves with a background job: reload as a person would
        if "4" in row.inner_text().split():
            break
        page.wait_for_timeout(200)
        page.reload()
    expect(row).to_contain_text("4")
    shot("canvas-gradebook")
    assert site.platform.gradebook(site.course).cell(assignment, site.student).score == 4.0


def test_a_refused_launch_shows_its_reason_inside_the_frame(page, course_site, shot, axe_check):
    site = course_site
    # Canvas launches with a deployment the tool was never told about (the tool installed again).
    site.registration.deployment_ids.insert(0, "99:" + "0" * 40)
    page.goto(course_home(site))
    course_nav(page, site.registration.title)
    frame = tool_frame(page)
    alert = frame.get_by_role("alert")
    expect(alert).to_contain_text("deployment")
    expect(alert).to_contain_text("What to do")
    shot("refused-in-frame")
    axe_check(page.frame(name="tool_content"), "refused launch, in the frame")


def test_a_login_csrf_attempt_is_refused_inside_the_frame(page, course_site, other_site, shot,
                                                          axe_check):
    """Login CSRF: an attacker starts a launch as themself in their own browser, stops before
    the last step, and makes the victim's browser post the signed answer to the tool (from a
    page on another site, framing it). The tool must not open the attacker's session there."""
    from emulator import Browser
    site = course_site
    attacker = site.platform.add_user(name="Eve Attacker")
    site.platform.enroll(site.course, attacker)
    pending = site.platform.resource_link_launch(site.registration, attacker, site.course)
    theirs = Browser()
    answer = theirs.initiate(site.tool.login_url, pending)
    action, fields = theirs.authorize(theirs.auth_location(answer, pending.auth_url))

    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    other_site.pages.update({
        "/": '<!DOCTYPE html><title>Free prizes</title><h1>Free prizes</h1>'
             '<iframe name="prize" title="prize" src="/post" width="900" height="500"></iframe>',
        "/post": f'<!DOCTYPE html><title>.</title><form method="post" action="{html.escape(action)}">'
                 f'{inputs}</form><script>document.forms[0].submit()</script>',
    })
    page.goto(other_site.url + "/")
    frame = page.frame_locator("iframe[name=prize]")
    expect(frame.get_by_role("alert")).to_contain_text("browser")
    shot("csrf-refused")
    axe_check(page.frame(name="prize"), "login CSRF refusal, in the frame")
    assert "Eve Attacker" not in frame.locator("body").inner_text()
    expect(frame.get_by_role("heading", name="Your assessments")).to_have_count(0)
