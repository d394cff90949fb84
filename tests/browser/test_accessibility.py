"""Every page of the tool passes an axe-core scan at WCAG 2.1 A and AA with no violation.

Pages are reached as their users reach them: a launch from the emulated Canvas, then clicks.
Each page is scanned in the state people meet it in (empty, filled, with validation errors,
while a roster sync runs, after it failed) and kept as a screenshot.
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

from emulator import INSTRUCTOR
from playwright.sync_api import expect

from .browserkit import (add_question, assessment_id_of, create_published_assessment,
                         fill_choice_question, fill_numeric_question, open_assignment,
                         open_deep_linking, open_launch, show_response, start_new_assessment,
                         wait_until)


def test_home_page(page, tool, axe_check, shot):
    page.goto(tool.base_url + "/")
    shot("home")
    axe_check(page, "home page")


def test_instructor_pages_before_and_after_the_first_sync(page, lms, axe_check, shot, job_worker):
    open_launch(page, lms, lms.teacher)
    expect(page.get_by_role("heading", name="Course roster")).to_be_visible()
    shot("roster")
    axe_check(page, "instructor roster page")
    expect(page.get_by_role("table")).to_contain_text("Sam Student")
    page.get_by_role("button", name="Sync now").click()
    shot("roster-after-sync-now")
    axe_check(page, "roster after Sync now")

    page.get_by_role("link", name="Gradebook").click()
    shot("gradebook-empty")
    axe_check(page, "gradebook without assessments")


def test_assessment_forms_and_their_errors(page, lms, axe_check, shot):
    open_launch(page, lms, lms.teacher)
    start_new_assessment(page)
    shot("new-assessment")
    axe_check(page, "new assessment form")

    page.get_by_role("button", name="Save assessment").click()  # no title, no question
    expect(page.get_by_role("alert")).to_be_visible()
    shot("new-assessment-errors")
    axe_check(page, "new assessment form with errors")

    page.get_by_label("Title").fill("Quiz with errors")
    fill_choice_question(page, 1, "Which colour is the sky?", ["Red", "Blue"], right=7)
    page.get_by_role("button", name="Save assessment").click()
    expect(page.get_by_role("alert")).to_be_visible()
    shot("question-errors")
    axe_check(page, "question with errors")

    add_question(page, "Number")  # adding keeps what was typed, errors included
    shot("question-added")
    axe_check(page, "form after adding a question")
    page.get_by_label("Right option number").first.fill("2")
    fill_numeric_question(page, 2, "What is 6 × 7?", "42", points="4")
    page.get_by_role("button", name="Save assessment").click()
    expect(page.get_by_role("button", name="Publish")).to_be_visible()
    shot("edit-assessment")
    axe_check(page, "edit assessment form")

    page.get_by_role("link", name="Assessments", exact=True).click()
    shot("assessment-list")
    axe_check(page, "assessment list")


def test_deep_linking_taking_an_assessment_and_grades(page, lms, axe_check, shot, job_worker):
    # The picker before there is anything to pick, then with a published assessment.
    open_deep_linking(page, lms)
    shot("picker-empty")
    axe_check(page, "deep linking picker, no assessments")
    page.get_by_role("link", name="Create an assessment").click()
    page.get_by_label("Title").fill("Quiz 1")
    page.get_by_role("group", name="Question 1").get_by_label("Kind").select_option(label="Number")
    fill_numeric_question(page, 1, "What is 6 × 7?", "42", points="4")
    page.get_by_role("button", name="Save assessment").click()
    page.get_by_role("button", name="Add to Canvas").click()  # nothing picked yet
    expect(page.get_by_role("alert")).to_be_visible()
    shot("picker-error")
    axe_check(page, "deep linking picker with an error")
    page.get_by_label("Quiz 1").check()
    page.get_by_role("button", name="Add to Canvas").click()
    expect(page.get_by_role("heading", name="Content received")).to_be_visible()
    [assignment] = lms.platform.deep_link_responses[-1]["assignments"]

    # The student: the assessment before starting, while taking it, and the result.
    open_assignment(page, lms, assignment, status=409)
    shot("student-assessment-draft")
    axe_check(page, "student page of an unpublished assessment")
    open_launch(page, lms, lms.teacher)
    page.get_by_role("link", name="Quiz 1").click()
    page.get_by_role("button", name="Publish").click()
    open_assignment(page, lms, assignment)
    shot("student-assessment")
    axe_check(page, "student assessment page")
    page.get_by_role("button", name="Start").click()
    shot("taking")
    axe_check(page, "taking an assessment")
    page.get_by_label("Your answer (a number)").fill("42")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    shot("result")
    axe_check(page, "result page")
    open_launch(page, lms, lms.student)
    shot("student-home")
    axe_check(page, "student home")

    # The instructor: attempts, one attempt's review, the gradebook once the grade went out.
    assert wait_until(lambda: lms.platform.gradebook(lms.course).cell(assignment, lms.student).score)
    open_launch(page, lms, lms.teacher)
    page.get_by_role("link", name="Gradebook").click()
    shot("gradebook")
    axe_check(page, "gradebook")
    open_launch(page, lms, lms.teacher)
    page.get_by_role("link", name="1", exact=True).click()  # submitted attempts of Quiz 1
    shot("attempts")
    axe_check(page, "attempts of an assessment")
    page.get_by_role("link", name="Sam Student").first.click()
    shot("attempt-review")
    axe_check(page, "an attempt's review")
    page.get_by_label("Score (0 to 4)").fill("99")
    page.get_by_role("button", name="Set score").click()
    expect(page.get_by_label("Score (0 to 4)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Score (0 to 4)")).to_be_focused()  # the field to fix has the focus
    shot("attempt-score-error")
    axe_check(page, "an attempt's score set by hand, refused")


def test_assessment_preview_delete_and_course_copy_pages(page, lms, axe_check, shot):
    open_launch(page, lms, lms.teacher)
    create_published_assessment(page, "Quiz 1")
    source_id = assessment_id_of(page)
    page.get_by_role("link", name="Preview as a student").click()
    shot("preview")
    axe_check(page, "preview as a student")
    page.get_by_role("button", name="Start").click()
    shot("preview-taking")
    axe_check(page, "preview attempt")
    page.get_by_role("link", name="Back to editing").click()
    page.get_by_role("link", name="Delete…").click()
    shot("delete")
    axe_check(page, "delete confirmation")

    # A course copied in Canvas keeps links naming the old course's assessment.
    copy = lms.platform.add_course(label="BIO101-2", title="Biology, next term")
    lms.platform.enroll(copy, lms.teacher, roles=[INSTRUCTOR])
    lms.platform.enroll(copy, lms.student)
    copied_link = {"custom": {"assessment_id": str(source_id)}}
    open_launch(page, lms, lms.student, course=copy, resource_link={"id": "copied-link",
                                                                   "title": "Quiz 1"},
                status=409, **copied_link)
    shot("not-set-up")
    axe_check(page, "student: not set up in this course")
    open_launch(page, lms, lms.teacher, course=copy, resource_link={"id": "copied-link",
                                                                   "title": "Quiz 1"},
                **copied_link)
    shot("copy-offer")
    axe_check(page, "instructor: course copy offer")


def test_roster_sync_that_failed(page, lms, axe_check, shot, job_worker, tool):
    saved = (tool.settings.service_retry_budget, tool.settings.service_backoff)
    tool.settings.service_retry_budget, tool.settings.service_backoff = 1.0, 0.05
    try:
        lms.platform.faults.fail_at_page = 1
        open_launch(page, lms, lms.teacher)
        expect(page.locator("#sync-error")).to_be_visible()
    finally:
        tool.settings.service_retry_budget, tool.settings.service_backoff = saved
    shot("sync-failed")
    axe_check(page, "roster page after a failed sync")


def test_error_pages(page, lms, tool, axe_check, shot):
    from emulator import Browser
    refused = lms.launch(lms.teacher, browser=Browser(), tamper=True)
    assert refused.status_code == 400
    show_response(page, refused)
    shot("refused-launch")
    axe_check(page, "refused launch")

    for name, path in [("no-session", "/instructor"), ("bad-link", "/instructor?t=not-a-reference"),
                       ("not-found", "/no/such/page")]:
        page.goto(tool.base_url + path)
        expect(page.get_by_role("alert")).to_be_visible()
        shot(name)
        axe_check(page, name)

    student_url = open_launch(page, lms, lms.student)
    page.goto(student_url.replace("/student?", "/instructor?"))
    expect(page.get_by_role("alert")).to_be_visible()
    shot("forbidden")
    axe_check(page, "403 for a student on an instructor page")

    from tool.db import db
    from tool.models import PageSession
    from sqlalchemy import update
    with tool.app.app_context():
        db.session.execute(update(PageSession).where(
            PageSession.registration_id == lms.registration_id).values(
                expires_at=PageSession.created_at))
        db.session.commit()
        db.session.remove()
    page.goto(student_url)
    expect(page.get_by_role("alert")).to_contain_text("ended")
    shot("session-ended")
    axe_check(page, "session ended")


def _invite_url(tool) -> str:
    """``flask --app app platform invite``: the registration URL with a one-time code."""
    out = tool.app.test_cli_runner().invoke(args=["platform", "invite"]).output
    found = re.search(r"(http://\S+/lti/register\?invite=\S+)", out)
    assert found, out
    return found.group(1)


def test_dynamic_registration_pages(page, tool, axe_check, shot):
    from emulator import Platform
    page.goto(tool.base_url + "/lti/register")  # no invite: the page says how to get one
    shot("no-invite")
    axe_check(page, "registration without an invite")

    with Platform(name="Emulated School") as platform:
        page.goto(platform.dynreg.begin(_invite_url(tool), "canvas"))
        register = page.get_by_role("button", name=re.compile("^Register"))
        expect(register).to_be_visible()
        shot("confirm")
        axe_check(page, "registration: what will be registered")
        register.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Registered")
        shot("done")
        axe_check(page, "registration done")

        page.goto(platform.dynreg.begin(_invite_url(tool) + "x", "canvas"))  # a wrong code
        shot("bad-invite")
        axe_check(page, "registration with a wrong invite")


def _no_sideways_scroll(page, label):
    """WCAG 1.4.10 (Reflow): at a phone's width the page itself never scrolls sideways; a wide
    table scrolls inside its own labelled region instead."""
    wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"{label}: the page scrolls sideways by {wide}px at 375px wide"


def test_pages_on_a_phone(page, lms, tool, axe_check, shot, job_worker):
    page.set_viewport_size({"width": 375, "height": 740})
    long_name = lms.platform.add_user(
        name="Maximiliana Wolfeschlegelsteinhausenbergerdorff",
        email="maximiliana.wolfeschlegelsteinhausenbergerdorff.the.third@a-rather-long-school-name.example")
    lms.platform.enroll(lms.course, long_name)
    page.goto(tool.base_url + "/")
    shot("home")
    _no_sideways_scroll(page, "home page")
    axe_check(page, "home page at 375px")

    open_launch(page, lms, lms.teacher)
    expect(page.get_by_role("table")).to_contain_text("Maximiliana")
    shot("roster")
    _no_sideways_scroll(page, "roster")
    axe_check(page, "roster at 375px")

    create_published_assessment(page, "Quiz 1")
    shot("assessment")
    _no_sideways_scroll(page, "assessment form")
    axe_check(page, "assessment form at 375px")
    page.get_by_role("link", name="Assessments", exact=True).click()
    shot("assessments")
    _no_sideways_scroll(page, "assessment list")
    axe_check(page, "assessment list at 375px")

    open_launch(page, lms, lms.student)
    page.get_by_role("link", name="Quiz 1").click()
    page.get_by_role("button", name="Start").click()
    shot("taking")
    _no_sideways_scroll(page, "taking an assessment")
    axe_check(page, "taking an assessment at 375px")
    page.get_by_label("Your answer (a number)").fill("42")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("main")).to_contain_text("4 / 4")
    shot("result")
    _no_sideways_scroll(page, "result")

    open_launch(page, lms, lms.teacher)
    page.get_by_role("link", name="Gradebook").click()
    shot("gradebook")
    _no_sideways_scroll(page, "gradebook")
    axe_check(page, "gradebook at 375px")

    page.goto(tool.base_url + "/instructor?t=not-a-reference")
    shot("error")
    _no_sideways_scroll(page, "error page")


def test_pages_of_the_browser_bound_login(page, lms, axe_check, shot):
    """The two pages a launch passes through when it uses the platform's storage frame, held
    still (their script is not served) so they can be read, as a browser without the script
    or a slow connection shows them."""
    from emulator import Browser
    page.route("**/static/platform_storage.js", lambda route: route.abort())
    pending = lms.platform.resource_link_launch(lms.registration, lms.teacher, lms.course)
    page.goto(lms.tool.login_url + "?" + urlencode(pending.login_params))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Opening")
    shot("login")
    axe_check(page, "login page that stores the state in the platform")

    cookieless = Browser(block_cookies=True)
    pending = lms.platform.resource_link_launch(lms.registration, lms.teacher, lms.course)
    answer = cookieless.initiate(lms.tool.login_url, pending)
    action, fields = cookieless.authorize(cookieless.auth_location(answer, pending.auth_url))
    checking = cookieless.post_form(action, fields)
    assert checking.status_code == 200 and "data-lti-storage" in checking.text, checking.text
    show_response(page, checking)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Checking")
    shot("launch")
    axe_check(page, "launch page that reads the state back from the platform")
