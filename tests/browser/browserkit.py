"""Steps the browser tests share, written as a person would do them: by role and label."""
from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from .conftest import landing_url


def open_launch(page: Page, lms, user=None, status: int = 200, **options) -> str:
    """Launch as ``user`` with the scripted browser (``lms.launch``), then open the tool page the
    launch landed on in the real browser (its ``?t=`` reference carries the session)."""
    url = landing_url(lms.launch(user, **options), status)
    page.goto(url)
    return url


def start_new_assessment(page: Page) -> None:
    """From any instructor page that offers it: "Create an assessment"."""
    page.get_by_role("link", name="Create an assessment").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("assessment", ignore_case=True)


def add_question(page: Page, kind: str) -> None:
    """Pick a kind under "Add a question:" and press "Add question" (a round trip)."""
    page.get_by_label("Add a question:").select_option(label=kind)
    page.get_by_role("button", name="Add question").click()


def question_box(page: Page, n: int):
    """The fieldset of question ``n`` on the assessment form (a new form starts with one)."""
    return page.get_by_role("group", name=f"Question {n}", exact=True)


def fill_numeric_question(page: Page, n: int, prompt: str, answer: str, points: str = "1") -> None:
    box = question_box(page, n)
    box.get_by_label("Question", exact=True).fill(prompt)
    box.get_by_label("Points").fill(points)
    box.get_by_label("Right answer (number questions)").fill(answer)


def fill_choice_question(page: Page, n: int, prompt: str, options: list[str], right: int,
                         points: str = "1") -> None:
    box = question_box(page, n)
    box.get_by_label("Question", exact=True).fill(prompt)
    box.get_by_label("Points").fill(points)
    box.get_by_label("Options (multiple choice and multiple answers)").fill("\n".join(options))
    box.get_by_label("Right option number").fill(str(right))


def create_published_assessment(page: Page, title: str = "Quiz 1") -> None:
    """Create a one-question number assessment (6 × 7 = 42, 4 points) and publish it."""
    start_new_assessment(page)
    page.get_by_label("Title").fill(title)
    question_box(page, 1).get_by_label("Kind").select_option(label="Number")
    fill_numeric_question(page, 1, "What is 6 × 7?", "42", points="4")
    page.get_by_role("button", name="Save assessment").click()
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published", exact=True).first).to_be_visible()


def wait_until(read, timeout: float = 20.0, step: float = 0.1):
    """``read()``'s first truthy value within ``timeout`` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = read()
    return value


def page_reference(url: str) -> str:
    found = re.search(r"[?&]t=([^&#]+)", url)
    assert found, f"no page reference in {url}"
    return found.group(1)


def open_deep_linking(page: Page, lms, user=None, **options) -> str:
    """An assignment_selection launch (deep linking request) opened in the real browser."""
    from emulator import Browser
    pending = lms.platform.deep_linking_launch(lms.registration, user or lms.teacher, lms.course,
                                               **options)
    url = landing_url(Browser().launch(lms.tool.login_url, pending))
    page.goto(url)
    return url


def open_assignment(page: Page, lms, assignment, user=None, status: int = 200) -> str:
    """The launch Canvas sends when ``user`` (the student by default) opens ``assignment``."""
    from emulator import Browser
    pending = lms.platform.assignment_launch(lms.registration, user or lms.student, lms.course,
                                             assignment)
    url = landing_url(Browser().launch(lms.tool.login_url, pending), status)
    page.goto(url)
    return url


def show_response(page: Page, response) -> None:
    """Open, in the real browser, a page the scripted browser received (a refused launch answers
    a POST, which a browser cannot revisit): served again at its own address, headers and all,
    so its styles load from the tool as they did."""
    url = response.url
    headers = {k: v for k, v in response.headers.items()
               if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")}

    def fulfill(route):
        route.fulfill(status=response.status_code, headers=headers, body=response.content)

    page.route(url, fulfill)
    try:
        page.goto(url)
    finally:
        page.unroute(url, fulfill)


def assessment_id_of(page: Page) -> int:
    """The id in an assessment page's address (``/instructor/assessments/<id>``)."""
    found = re.search(r"/assessments/(\d+)", page.url)
    assert found, f"not an assessment page: {page.url}"
    return int(found.group(1))


# -- keyboard ---------------------------------------------------------------------------------

# What a screen reader would call the focused element (roughly: its label, else its own text),
# how it is focused, and whether the focus is drawn: an outline at least 2 px wide, or a shadow.
_FOCUSED = """() => {
  let el = document.activeElement, doc = document;
  while (el && el.tagName === 'IFRAME' && el.contentDocument) {  // same-origin frames only
    doc = el.contentDocument; el = doc.activeElement;
  }
  if (!el || el === doc.body) return null;
  const label = (el.labels && el.labels[0] && el.labels[0].innerText)
    || el.getAttribute('aria-label') || el.innerText || el.value || '';
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const shadow = style.boxShadow && style.boxShadow !== 'none';
  return {tag: el.tagName.toLowerCase(), name: label.trim().replace(/\\s+/g, ' '),
          visible: outline || shadow, focusVisible: el.matches(':focus-visible')};
}"""


def focused(frame) -> dict | None:
    """The element focused in ``frame`` (a Page or Frame): tag, name, whether focus is drawn."""
    return frame.evaluate(_FOCUSED)


def tab_to(page: Page, name: str, frame=None, *, tag: str | None = None, back: bool = False,
           limit: int = 60) -> dict:
    """Press Tab (Shift+Tab with ``back``) until the focused element in ``frame`` (the page by
    default) is called ``name`` (exact, or a prefix ending in "…"); fails if never reached,
    or if the focus on it is not visibly drawn."""
    frame = frame or page
    key = "Shift+Tab" if back else "Tab"
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        now = _focused_in(frame)
        if now is None:
            seen.append(None)
            continue
        matches = (now["name"].startswith(name[:-1]) if name.endswith("…")
                   else now["name"] == name)
        if matches and (tag is None or now["tag"] == tag):
            assert now["visible"], f"focus on {name!r} is not visible: {now}"
            return now
        seen.append(f"{now['tag']}:{now['name'][:40]}")
    raise AssertionError(f"{key} never reached {name!r}; focus went through: {seen}")


def _focused_in(frame):
    try:
        # A key press may have started a navigation: ask only once the document is there (this
        # wait is bounded; an evaluate on a frame between documents is not).
        frame.wait_for_load_state("domcontentloaded", timeout=15_000)
        return focused(frame)
    except Exception:  # the frame navigated between the key press and the question
        return None


def quiz_assignment_by_script(lms, title: str = "Quiz 1"):
    """Set-up without the browser: the teacher's deep linking launch creates and publishes a
    one-question assessment (6 × 7 = 42, 4 points) and picks it, over HTTP with the scripted
    browser; Canvas makes the assignment. Returns the emulator's assignment."""
    from urllib.parse import urljoin

    from emulator import Browser
    from emulator.browser import parse_forms
    teacher = Browser()
    picker = teacher.launch(lms.tool.login_url, lms.platform.deep_linking_launch(
        lms.registration, lms.teacher, lms.course))
    t = page_reference(landing_url(picker))
    base = lms.tool.base_url
    created = teacher.post(base + "/instructor/assessments/new", data={
        "t": t, "title": title, "attempts_allowed": "1", "scoring_policy": "highest",
        "show_scores": "1", "q1_kind": "numeric", "q1_prompt": "What is 6 × 7?",
        "q1_points": "4", "q1_answer": "42", "q1_tolerance": "0"})
    assessment_id = int(re.search(r"/assessments/(\d+)", created.url).group(1))
    assert teacher.post(f"{base}/instructor/assessments/{assessment_id}/publish",
                        data={"t": t}).status_code == 200
    answer = teacher.post(base + "/lti/deep-linking/respond",
                          data={"t": t, "assessment": str(assessment_id)})
    [form] = [f for f in parse_forms(answer.text) if "JWT" in f["fields"]]
    assert teacher.post_form(urljoin(answer.url, form["action"]), form["fields"]).status_code == 200
    [assignment] = lms.platform.deep_link_responses[-1]["assignments"]
    return assignment
