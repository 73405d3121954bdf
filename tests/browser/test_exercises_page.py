"""Exercises as a reader meets them: the verdict under a run, graduated hints, progress kept in the browser.

Two kinds of test:

- the widget's behaviour, on a small page built by the real MkDocs build in a copy of the repository
  (so the course's pages stay as they are) with the markup of EXERCISES.md around two real samples:
  its HTML and assets come from the copy's build, runs go to the session's real runner, and a route
  adds a verdict to the runner's real NDJSON stream, judged on the run's real output the way a check
  does (`check` event before `finished`, the same object as `finished.check`);
- the real thing: the chapter's own exercises on the built site, through the session's runner and
  its real checks.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Locator, Page, Route, expect

from runner import lessons
from runner.settings import REPO_ROOT

from ..repo_copy import add_to_nav, build, copy_repo, write

PAGE = "/exercise-test/"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
CONNECT = "chapter_05/01_connect"
GENERATOR = "chapter_05/07_async_generator"
REAL = "chapter_05/ex04_pool_lookups"
"""The exercise the progress test solves for real (any would do)."""
WRONG_ANSWERS = REPO_ROOT / "tests" / "exercises"
"""Per exercise, `wrong_<what>.py` files whose first line is `# message: <part of the check's message>`."""


def chapter_exercises(root: Path = REPO_ROOT) -> list[str]:
    """The chapter's exercises: its starters with a check beside them."""
    return [
        lessons.snippet_id(root, sample)
        for lesson in lessons.lessons(root)
        if lesson.name == "chapter_05"
        for sample in lesson.samples()
        if lessons.is_exercise(sample)
    ]


def wrong_answer(exercise_id: str) -> tuple[str, str]:
    """The first typical wrong answer of an exercise, and a part of the message it must get."""
    answers = sorted((WRONG_ANSWERS / exercise_id).glob("wrong_*.py"))
    assert answers, f"no wrong answers for {exercise_id} in {WRONG_ANSWERS / exercise_id}"
    code = answers[0].read_text(encoding="utf-8")
    return code, code.splitlines()[0].removeprefix("# message:").strip()


MARKDOWN = f"""\
# Exercise test

A lesson page with two exercises.

## Connecting

### Exercise 1: connect and say so {{ #exercise-connect }}

<div class="workshop-exercise" data-exercise="{CONNECT}" markdown>

Print the server's version.

<div class="workshop-run" data-snippet="{CONNECT}" markdown>

```python title="code/{CONNECT}.py"
--8<-- "{CONNECT}.py"
```

</div>

??? hint "Hint 1"

    A first nudge.

??? hint "Hint 2"

    A stronger one.

??? hint "Hint 3"

    Nearly the answer.

??? success "Solution"

    The published code is the solution.

</div>

## Generators

### Exercise 2: count to three {{ #exercise-count }}

<div class="workshop-exercise" data-exercise="{GENERATOR}" markdown>

Print 0, 1 and 2.

<div class="workshop-run" data-snippet="{GENERATOR}" markdown>

```python title="code/{GENERATOR}.py"
--8<-- "{GENERATOR}.py"
```

</div>

??? hint "Hint 1"

    The only hint.

??? success "Solution"

    The published code again.

</div>
"""

# What each exercise's check looks for in the run's real output: (passes, solved message, not-yet message).
Check = tuple[Callable[[str], bool], str, str]
CHECKS: dict[str, Check] = {
    CONNECT: (
        lambda out: "Connected! Postgres version is" in out,
        "Solved: the program connected and printed the server's version.",
        "Not yet: print 'Connected! Postgres version is ...' once connected.",
    ),
    GENERATOR: (
        lambda out: out == "0\n1\n2\n",
        "Solved: 0, 1 and 2, one a line.",
        "Not yet: the program should print 0, 1 and 2, one a line.",
    ),
}


@pytest.fixture(scope="module")
def exercise_site(tmp_path_factory: pytest.TempPathFactory, runner_url: str) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("exercise-site") / "repo")
    write(repo, "docs/exercise-test.md", MARKDOWN)
    add_to_nav(repo, "Exercise test: exercise-test.md")
    # With a site URL the sitemap lists the pages, and Material's instant navigation takes links to
    # them (it matches the host and port too: the runner's own address).
    config = repo / "mkdocs.yml"
    config.write_text(config.read_text().replace("# site_url:\n", f"site_url: {runner_url}/\n"))
    result = build(repo)
    assert result.returncode == 0, result.stdout
    return repo / "site"


@pytest.fixture(scope="module")
def runner_csp(runner_url: str) -> str:
    """The runner's Content-Security-Policy: the copy's pages get it too (their inline scripts are the same)."""
    return httpx.get(runner_url + "/", timeout=10).headers["content-security-policy"]


def serve_site(page: Page, runner_url: str, site: Path, csp: str) -> None:
    """The page and its assets from the copy's build; /api/ goes on to the real runner."""

    def serve(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path.startswith("/api/"):
            route.fallback()
            return
        file = site / path.lstrip("/")
        if path.endswith("/"):
            file = file / "index.html"
        if not file.is_file():
            route.fulfill(status=404, body="not found")
            return
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        route.fulfill(
            status=200, body=file.read_bytes(), headers={"Content-Type": kind, "Content-Security-Policy": csp}
        )

    page.route(f"{runner_url}/**", serve)


class Judge:
    """Adds a verdict to the runner's real stream: as a `check` event and in `finished.check` (`both`), or one only."""

    def __init__(self) -> None:
        self.send = "both"  # or "event", or "finished"
        self.judged = True  # False: the check could not run (the run is not judged)
        self.runs: list[dict[str, Any]] = []

    def __call__(self, route: Route) -> None:
        request = json.loads(route.request.post_data or "{}")
        response = route.fetch()
        events = [json.loads(line) for line in response.text().splitlines() if line.strip()]
        finished = events[-1]
        assert finished["event"] == "finished", events
        out = "".join(e["text"] for e in events if e["event"] == "output" and e["stream"] == "stdout")
        passes, solved, not_yet = CHECKS[request["snippet"]]
        passed = finished["status"] == "ok" and passes(out)
        verdict = {"exercise": request["snippet"], "passed": passed, "message": solved if passed else not_yet}
        if not self.judged:
            verdict = {**verdict, "passed": False, "judged": False, "message": "The check could not run."}
        if self.send in ("both", "finished"):
            finished["check"] = verdict
        else:
            finished.pop("check", None)
        if self.send in ("both", "event"):
            events.insert(len(events) - 1, {"event": "check", **verdict})
        self.runs.append({"snippet": request["snippet"], "edited": "code" in request, "verdict": verdict})
        body = "".join(json.dumps(event) + "\n" for event in events)
        route.fulfill(status=200, headers={"Content-Type": "application/x-ndjson"}, body=body)


@pytest.fixture
def judge() -> Judge:
    return Judge()


@pytest.fixture
def exercises(page: Page, runner_url: str, exercise_site: Path, runner_csp: str, judge: Judge) -> Iterator[Page]:
    """The exercise page, open, with the verdicts added to real runs."""
    serve_site(page, runner_url, exercise_site, runner_csp)
    page.route("**/api/runs", judge)  # registered last: runs before serve_site's handler
    page.goto(runner_url + PAGE)
    expect(page.locator(".workshop-exercise[data-workshop-exercise-ready]")).to_have_count(2)
    yield page


# ---------------------------------------------------------------------------------- helpers


def exercise(page: Page, exercise_id: str) -> Locator:
    return page.locator(f'.workshop-exercise[data-exercise="{exercise_id}"]')


def run_block(page: Page, exercise_id: str) -> Locator:
    block = exercise(page, exercise_id).locator("[data-snippet][data-workshop-ready]")
    expect(block).to_have_count(1)
    return block


def verdict(page: Page, exercise_id: str) -> Locator:
    return run_block(page, exercise_id).locator(".workshop-exercise__verdict")


def activate(button: Locator) -> None:
    """Press a button with the keyboard, as `show_anyway` does, and for the same reason: a click deep in the
    long chapter can wait forever for the button to be "stable" (see there)."""
    button.focus()
    button.press("Enter")


def run(page: Page, exercise_id: str) -> None:
    block = run_block(page, exercise_id)
    activate(block.get_by_role("button", name="Run", exact=False).first)
    expect(block.get_by_role("status")).to_contain_text(re.compile("Done in|Failed"))


def set_code(block: Locator, code: str) -> None:
    if not block.locator(".cm-editor").count():
        activate(block.get_by_role("button", name="Edit"))
    expect(block.locator(".cm-content")).to_be_visible()
    block.evaluate(
        "(b, code) => { const v = b.workshop.view;"
        " v.dispatch({changes: {from: 0, to: v.state.doc.length, insert: code}}); }",
        code,
    )


def show_anyway(box: Locator) -> None:
    """Answer the question with the keyboard: its first answer has the focus.

    (A click deep in the long chapter can keep Playwright waiting for the button to be "stable": its
    scroll into view alternates between two scroll positions a pixel apart.)
    """
    yes = box.get_by_role("button", name="Show the solution anyway")
    expect(yes).to_be_focused()
    yes.press("Enter")
    expect(box.locator("details.success")).to_be_visible()


def heading(page: Page, anchor: str) -> Locator:
    return page.locator(f"article h3#{anchor}")


def toc_link(page: Page, anchor: str) -> Locator:
    """The entry in the table of contents shown beside the page (desktop width)."""
    return page.locator(f'.md-sidebar--secondary a.md-nav__link[href$="#{anchor}"]')


def indicator(page: Page) -> Locator:
    box = page.locator(".workshop-progress")
    expect(box).to_have_count(1)
    return box


def expect_progress(page: Page, solved: int, total: int = 2) -> None:
    box = indicator(page)
    said = f"{solved} of {total} {'exercise' if total == 1 else 'exercises'} solved"
    expect(box.locator(".workshop-progress__text")).to_have_text(said)
    bar = box.get_by_role("progressbar", name="Exercises solved")
    expect(bar).to_have_attribute("aria-valuenow", str(solved))
    expect(bar).to_have_attribute("aria-valuemin", "0")
    expect(bar).to_have_attribute("aria-valuemax", str(total))
    expect(bar).to_have_attribute("aria-valuetext", said)


def stored(page: Page, key: str) -> Any:
    return page.evaluate("k => localStorage.getItem(k)", key)


# ---------------------------------------------------------------------------------- verdicts and progress


def test_a_passing_verdict_marks_the_exercise_solved_and_it_survives_a_reload(exercises: Page, judge: Judge) -> None:
    page = exercises
    judge.send = "event"  # the verdict only as a `check` event: enough on its own
    # The indicator sits right under the page title.
    title_box, box = page.locator("article h1").bounding_box(), indicator(page).bounding_box()
    assert title_box and box and 0 <= box["y"] - (title_box["y"] + title_box["height"]) < 60
    expect_progress(page, 0)
    expect(heading(page, "exercise-connect").locator(".workshop-exercise__mark")).to_have_count(0)

    run(page, CONNECT)
    result = verdict(page, CONNECT)
    expect(result).to_have_attribute("aria-live", "polite")
    expect(result).to_contain_text("Solved. The program connected and printed the server's version.")
    expect(result).to_contain_text("1 of 2 exercises on this page solved.")
    expect(result.locator("[data-passed='true']")).to_have_count(1)
    assert judge.runs == [{"snippet": CONNECT, "edited": False, "verdict": judge.runs[0]["verdict"]}]
    assert judge.runs[0]["verdict"]["passed"] is True
    # Under the output, inside the run's panel.
    assert run_block(page, CONNECT).evaluate(
        "b => b.querySelector('.workshop-run__output').nextElementSibling.matches('.workshop-exercise__verdict')"
    )

    expect(heading(page, "exercise-connect")).to_contain_text("Solved")
    expect(toc_link(page, "exercise-connect")).to_have_accessible_name(
        re.compile(r"Exercise 1: connect and say so \(solved\)")
    )
    expect(toc_link(page, "exercise-connect").locator(".workshop-toc__mark")).to_be_visible()
    expect(toc_link(page, "exercise-count").locator(".workshop-toc__mark")).to_have_count(0)
    # Every copy of the table of contents (the sidebar's, and the one in the navigation drawer on a phone).
    every_copy = page.locator('a.md-nav__link[href$="#exercise-connect"]')
    assert every_copy.count() >= 2
    expect(every_copy.locator(".workshop-toc__mark")).to_have_count(every_copy.count())
    expect_progress(page, 1)
    assert json.loads(stored(page, f"workshop:solved:{CONNECT}"))["solved"]
    assert stored(page, f"workshop:solved:{GENERATOR}") is None

    page.reload()
    expect(page.locator(".workshop-exercise[data-workshop-exercise-ready]")).to_have_count(2)
    expect_progress(page, 1)
    expect(heading(page, "exercise-connect").locator(".workshop-exercise__mark")).to_have_text("Solved")
    expect(heading(page, "exercise-count").locator(".workshop-exercise__mark")).to_have_count(0)
    expect(toc_link(page, "exercise-connect").locator(".workshop-toc__mark")).to_be_visible()
    expect(exercise(page, CONNECT)).to_have_attribute("data-solved", "")


def test_a_failing_verdict_shows_its_message_and_marks_nothing(exercises: Page, judge: Judge) -> None:
    page = exercises
    judge.send = "finished"  # the verdict only in `finished.check`: shown all the same
    set_code(run_block(page, GENERATOR), "for i in range(2):\n    print(i)\n")
    run(page, GENERATOR)
    result = verdict(page, GENERATOR)
    expect(result).to_contain_text("Not yet. The program should print 0, 1 and 2, one a line.")
    expect(result.locator("[data-passed='false']")).to_have_count(1)
    assert judge.runs[-1]["edited"] and judge.runs[-1]["verdict"]["passed"] is False
    expect_progress(page, 0)
    expect(heading(page, "exercise-count").locator(".workshop-exercise__mark")).to_have_count(0)
    expect(toc_link(page, "exercise-count").locator(".workshop-toc__mark")).to_have_count(0)
    assert stored(page, f"workshop:solved:{GENERATOR}") is None

    # Right, but the check could not run: neither solved nor not.
    judge.judged = False
    set_code(run_block(page, GENERATOR), "for i in range(3):\n    print(i)\n")
    run(page, GENERATOR)
    expect(result).to_contain_text("Not checked. The check could not run.")
    expect(result.locator("[data-passed='false']")).to_have_count(1)
    expect_progress(page, 0)
    judge.judged = True

    # Fixed, it passes; the next run first clears the old verdict.
    set_code(run_block(page, GENERATOR), "for i in range(3):\n    print(i)\n")
    run(page, GENERATOR)
    expect(result).to_contain_text("Solved. 0, 1 and 2, one a line.")
    expect(result).not_to_contain_text("Not yet")
    expect_progress(page, 1)


# ---------------------------------------------------------------------------------- hints


def test_hints_open_one_at_a_time_and_the_solution_waits_for_them(exercises: Page) -> None:
    page = exercises
    box = exercise(page, CONNECT)
    hints = box.locator("details.hint")
    solution = box.locator("details.success")
    expect(hints.nth(0)).to_be_visible()
    expect(hints.nth(1)).to_be_hidden()
    expect(hints.nth(2)).to_be_hidden()
    expect(solution).to_be_hidden()
    expect(box.get_by_role("button", name=re.compile("Show hint"))).to_be_hidden()

    # With the keyboard: open hint 1, then hint 2 is offered.
    hints.nth(0).locator("summary").focus()
    page.keyboard.press("Enter")
    expect(hints.nth(0)).to_have_attribute("open", "")
    show_next = box.get_by_role("button", name="Show hint 2")
    expect(show_next).to_be_visible()
    show_next.focus()
    page.keyboard.press("Enter")
    expect(hints.nth(1)).to_be_visible()
    expect(hints.nth(1)).to_have_attribute("open", "")
    expect(hints.nth(1).locator("summary")).to_be_focused()
    expect(hints.nth(2)).to_be_hidden()
    expect(box.get_by_role("button", name="Show hint 3")).to_be_visible()

    # The solution before the last hint: only after saying so; Escape says no.
    show_solution = box.get_by_role("button", name="Show the solution")
    show_solution.click()
    question = box.get_by_role("group", name="You have opened 2 of 3 hints. Show the solution anyway?")
    expect(question).to_be_visible()
    expect(question.get_by_role("button", name="Show the solution anyway")).to_be_focused()
    page.keyboard.press("Escape")
    expect(question).to_have_count(0)
    expect(solution).to_be_hidden()
    expect(show_solution).to_be_focused()
    show_solution.click()
    box.get_by_role("button", name="Show the solution anyway").click()
    expect(solution).to_be_visible()
    expect(solution).to_have_attribute("open", "")
    expect(solution.locator("summary")).to_be_focused()
    expect(box.get_by_role("button", name="Show the solution")).to_be_hidden()

    # What was revealed stays revealed after a reload.
    page.reload()
    box = exercise(page, CONNECT)
    expect(box.locator("details.hint").nth(1)).to_be_visible()
    expect(box.locator("details.hint").nth(2)).to_be_hidden()
    expect(box.locator("details.success")).to_be_visible()

    # Every hint opened: the solution is offered with no question.
    other = exercise(page, GENERATOR)
    other.locator("details.hint summary").click()
    expect(other.get_by_role("button", name=re.compile("Show hint"))).to_be_hidden()  # there is no hint 2
    other.get_by_role("button", name="Show the solution").click()
    expect(other.locator(".workshop-exercise__ask")).to_have_count(0)
    expect(other.locator("details.success")).to_be_visible()


def test_hints_and_the_solution_need_no_runner(
    page: Page, static_url: str, exercise_site: Path, runner_csp: str
) -> None:
    serve_site(page, static_url, exercise_site, runner_csp)  # /api/ reaches a plain static server
    page.goto(static_url + PAGE)
    box = exercise(page, CONNECT)
    run_block(page, CONNECT).get_by_role("button", name="Run", exact=False).first.click()
    expect(run_block(page, CONNECT).get_by_role("status")).to_contain_text("Runner unreachable")
    expect(verdict(page, CONNECT)).to_be_empty()
    box.locator("details.hint summary").first.focus()
    page.keyboard.press("Enter")
    box.get_by_role("button", name="Show hint 2").focus()
    page.keyboard.press("Enter")
    expect(box.locator("details.hint").nth(1)).to_have_attribute("open", "")
    box.get_by_role("button", name="Show the solution").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # the question's first answer has the focus: show it anyway
    expect(box.locator("details.success")).to_be_visible()
    expect(box.locator("details.success")).to_contain_text("The published code is the solution.")


# ---------------------------------------------------------------------------------- start over


def test_start_over_forgets_progress_hints_and_edits_after_a_confirm(exercises: Page) -> None:
    page = exercises
    run(page, CONNECT)
    expect_progress(page, 1)
    exercise(page, CONNECT).locator("details.hint summary").first.click()
    expect(exercise(page, CONNECT).get_by_role("button", name="Show hint 2")).to_be_visible()
    edited = run_block(page, GENERATOR)
    set_code(edited, "print('mine')\n")
    edit_key = f"workshop:edit:{GENERATOR}"
    page.wait_for_function("k => localStorage.getItem(k) !== null", arg=edit_key)
    assert json.loads(stored(page, edit_key))["sha256"] == edited.get_attribute("data-sha256")

    restart = indicator(page).get_by_role("button", name="Start over")
    restart.click()
    question = indicator(page).get_by_role("group")
    expect(question).to_contain_text("Forget which exercises you solved on this page")
    expect(question.get_by_role("button", name="Keep it")).to_be_focused()  # the safe answer first
    question.get_by_role("button", name="Keep it").click()
    expect_progress(page, 1)
    assert stored(page, edit_key) is not None
    expect(restart).to_be_focused()

    restart.click()
    indicator(page).get_by_role("button", name="Forget my progress").click()
    expect_progress(page, 0)
    expect(indicator(page).locator(".workshop-progress__said")).to_have_text(
        "Progress forgotten: 0 of 2 exercises solved, your code as published."
    )
    expect(indicator(page).locator(".workshop-progress__said")).to_have_attribute("aria-live", "polite")
    expect(restart).to_be_focused()
    expect(heading(page, "exercise-connect").locator(".workshop-exercise__mark")).to_have_count(0)
    expect(toc_link(page, "exercise-connect").locator(".workshop-toc__mark")).to_have_count(0)
    expect(verdict(page, CONNECT)).to_be_empty()
    expect(edited.locator(".cm-editor")).to_have_count(0)  # the published code is back, with no Undo
    expect(edited.locator("pre code")).to_be_visible()
    expect(edited.locator(".workshop-run__notice")).to_be_hidden()
    expect(exercise(page, CONNECT).locator("details.hint").first).not_to_have_attribute("open", "")
    expect(exercise(page, CONNECT).get_by_role("button", name="Show hint 2")).to_be_hidden()
    keys = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('workshop:'))")
    assert not [k for k in keys if k.startswith(("workshop:solved:", "workshop:hints:", "workshop:edit"))], keys

    page.reload()
    expect_progress(page, 0)
    expect(run_block(page, GENERATOR).locator(".cm-editor")).to_have_count(0)


def test_another_tab_follows(exercises: Page, runner_url: str, exercise_site: Path, runner_csp: str) -> None:
    page = exercises
    other = page.context.new_page()
    serve_site(other, runner_url, exercise_site, runner_csp)
    other.goto(runner_url + PAGE)
    expect_progress(other, 0)
    run(page, CONNECT)
    expect_progress(other, 1)  # no reload: the storage event
    expect(heading(other, "exercise-connect").locator(".workshop-exercise__mark")).to_have_count(1)
    indicator(other).get_by_role("button", name="Start over").click()
    indicator(other).get_by_role("button", name="Forget my progress").click()
    expect_progress(page, 0)
    expect(heading(page, "exercise-connect").locator(".workshop-exercise__mark")).to_have_count(0)


NO_STORAGE = "Storage.prototype.setItem = function () { throw new DOMException('full', 'QuotaExceededError'); };"


def test_with_no_storage_solved_lasts_the_visit(
    page: Page, runner_url: str, exercise_site: Path, runner_csp: str
) -> None:
    page.add_init_script(NO_STORAGE)
    serve_site(page, runner_url, exercise_site, runner_csp)
    page.route("**/api/runs", Judge())
    page.goto(runner_url + PAGE)
    run(page, CONNECT)
    expect(verdict(page, CONNECT)).to_contain_text("Solved.")
    expect_progress(page, 1)
    expect(heading(page, "exercise-connect").locator(".workshop-exercise__mark")).to_have_count(1)
    page.reload()
    expect(page.locator(".workshop-exercise[data-workshop-exercise-ready]")).to_have_count(2)
    expect_progress(page, 0)  # nothing could be kept


# ---------------------------------------------------------------------------------- navigation


def test_progress_follows_instant_navigation(exercises: Page, runner_url: str) -> None:
    page = exercises
    run(page, GENERATOR)
    expect_progress(page, 1)
    page.evaluate("window.__samePage = true")  # gone if a link loads a whole new document
    page.get_by_role("link", name="Home").first.click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(".workshop-progress")).to_have_count(0)  # no exercises on that page
    page.get_by_role("link", name="Exercise test").first.click()
    page.wait_for_url("**" + PAGE)
    expect(page.locator(".workshop-exercise[data-workshop-exercise-ready]")).to_have_count(2)
    assert page.evaluate("window.__samePage") is True, "Material's instant navigation did not take these links"
    expect_progress(page, 1)
    expect(toc_link(page, "exercise-count").locator(".workshop-toc__mark")).to_have_count(1)
    run(page, CONNECT)
    expect_progress(page, 2)


# ---------------------------------------------------------------------------------- accessibility


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core on the exercises, the indicator and the table of contents, WCAG 2.x A and AA rules.

    Material's highlighted code is left out (its faintest token colours are its own; the editor
    that replaces it is checked in test_widget.py).
    """
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        """() => axe.run(
             {include: [...document.querySelectorAll('.workshop-exercise, .workshop-progress, .md-sidebar--secondary')],
              exclude: [...document.querySelectorAll('.workshop-exercise .highlight')]},
             {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']},
              resultTypes: ['violations']})"""
    )
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["html"][:160] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_in_an_exercise(
    browser: Any, runner_url: str, exercise_site: Path, runner_csp: str, artifacts: Path, scheme: str
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme, bypass_csp=True)
    try:
        page = context.new_page()
        serve_site(page, runner_url, exercise_site, runner_csp)
        judge = Judge()
        page.route("**/api/runs", judge)
        page.goto(runner_url + PAGE)
        expect(page.locator("body")).to_have_attribute(
            "data-md-color-scheme", "slate" if scheme == "dark" else "default"
        )
        run(page, CONNECT)  # solved: the marks and the green verdict
        set_code(run_block(page, GENERATOR), "print(1)\n")
        run(page, GENERATOR)  # not yet: the other verdict
        expect(verdict(page, GENERATOR)).to_contain_text("Not yet.")
        exercise(page, CONNECT).locator("details.hint summary").first.click()
        expect(exercise(page, CONNECT).get_by_role("button", name="Show hint 2")).to_be_visible()
        exercise(page, CONNECT).get_by_role("button", name="Show the solution").click()  # solved: no question
        expect(exercise(page, CONNECT).locator("details.success")).to_be_visible()
        exercise(page, GENERATOR).get_by_role("button", name="Show the solution").click()  # the question open
        expect(exercise(page, GENERATOR).locator(".workshop-exercise__ask")).to_be_visible()
        assert run_axe(page) == []
        exercise(page, CONNECT).scroll_into_view_if_needed()
        page.screenshot(path=artifacts / f"exercise-{scheme}.png", full_page=False)

        # The chapter's own exercises (no route: the built site as served), a hint opened, a question asked.
        page.unroute_all()
        page.goto(runner_url + "/chapter-05/")
        first = exercise(page, chapter_exercises()[0])
        expect(first).to_have_attribute("data-workshop-exercise-ready", "")
        first.locator("details.hint summary").first.click()
        first.get_by_role("button", name="Show the solution").click()
        expect(first.locator(".workshop-exercise__ask")).to_be_visible()
        assert run_axe(page) == []
    finally:
        context.close()


# ---------------------------------------------------------------------------------- the real check


def test_the_real_check_marks_a_chapter_exercise_solved(page: Page, runner_url: str) -> None:
    """The runner's own check, run after the code: the starter and a wrong answer fail, the solution passes."""
    page.goto(runner_url + "/chapter-05/")
    box = exercise(page, REAL)
    expect(box).to_have_attribute("data-workshop-exercise-ready", "")
    total = len(chapter_exercises())
    block, result = run_block(page, REAL), verdict(page, REAL)
    anchor = str(
        box.evaluate(
            "b => { let h = b.previousElementSibling; while (!/^H[1-6]$/.test(h.tagName))"
            " h = h.previousElementSibling; return h.id; }"
        )
    )
    expect_progress(page, 0, total)

    run(page, REAL)  # the starter
    starter_message = (WRONG_ANSWERS / REAL / "starter.message").read_text(encoding="utf-8").strip()
    expect(result).to_contain_text("Not yet.")
    expect(result).to_contain_text(re.compile(re.escape(starter_message), re.I))
    expect_progress(page, 0, total)

    # The solution as the page shows it (no hint opened: after a confirm), run from the editor.
    activate(box.get_by_role("button", name="Show the solution"))
    show_anyway(box)
    set_code(block, box.locator("details.success pre code").inner_text())
    run(page, REAL)
    expect(result).to_contain_text("Solved.")
    expect(heading(page, anchor).locator(".workshop-exercise__mark")).to_have_text("Solved")
    expect(toc_link(page, anchor).locator(".workshop-toc__mark")).to_have_count(1)
    expect_progress(page, 1, total)

    code, message = wrong_answer(REAL)
    set_code(block, code)
    run(page, REAL)
    expect(result).to_contain_text("Not yet.")
    expect(result).to_contain_text(re.compile(re.escape(message), re.I))
    expect_progress(page, 1, total)  # solved once, solved: a later attempt does not take it back

    page.reload()
    expect_progress(page, 1, total)
    expect(heading(page, anchor).locator(".workshop-exercise__mark")).to_have_text("Solved")


@pytest.mark.parametrize("exercise_id", chapter_exercises())
def test_each_exercise_of_the_chapter_is_solved_by_its_solution_and_not_by_a_wrong_answer(
    page: Page, runner_url: str, exercise_id: str
) -> None:
    """As a reader does it: the solution the page reveals passes, a typical wrong answer gets its message."""
    page.goto(runner_url + "/chapter-05/")
    box = exercise(page, exercise_id)
    expect(box).to_have_attribute("data-workshop-exercise-ready", "")
    block, result = run_block(page, exercise_id), verdict(page, exercise_id)
    activate(box.get_by_role("button", name="Show the solution"))
    if box.locator(".workshop-exercise__ask").count():  # asked only while hints are left unopened
        show_anyway(box)
    set_code(block, box.locator("details.success pre code").inner_text())
    run(page, exercise_id)
    expect(result.locator("[data-passed='true']")).to_have_count(1)
    code, message = wrong_answer(exercise_id)
    set_code(block, code)
    run(page, exercise_id)
    expect(result.locator("[data-passed='false']")).to_have_count(1)
    expect(result).to_contain_text(re.compile(re.escape(message), re.I))  # its first letter may be capitalised
