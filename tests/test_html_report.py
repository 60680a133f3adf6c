"""The instructors' HTML report (`bot.html_report`).

1. Its figures on the known data set (`tests/report_data.py`), worked out by hand here.
2. One self-contained page: no script, nothing fetched, learners' text escaped; opened in
   a real headless Chromium (Debian's package, driven by Playwright), which must render it
   without a console error or any network request, and whose screenshot is kept.
3. The benchmark's generator and writer on a few learners (no timing).
"""

from __future__ import annotations

import io
import os
import re
import shutil
from html import escape

import pytest

from bot.engine import Answer, Check, Choose, Continue
from bot.html_report import write_html
from bot.lesson import ChoiceNode
from bot.reports import Filters
from bot.store import Store
from bot.tutor import Tutor
from tests.core_lesson import REMEDIED
from tests.report_data import ANN, BEN, NAMES, REFLECTION, build

LESSON = "madman-core"
EVIL_NAME = "<script>alert(1)</script>"
EVIL_ANSWER = '<img src=x onerror="alert(2)"> & <b>bold</b>: trust must run both ways, it\'s "said" here'
EVIL = "tg:666"


def render(store: Store, lessons: dict, **kwargs) -> str:
    out = io.StringIO()
    write_html(store, lessons, out, **kwargs)
    return out.getvalue()


@pytest.fixture(scope="module")
def page() -> str:
    store, lessons, _ = build()
    return render(store, lessons)


def between(page: str, start: str, end: str) -> str:
    """The text from `start` up to the next `end` (both must be there)."""
    at = page.index(start)
    return page[at: page.index(end, at)]


# --- 1. the figures, by hand --------------------------------------------------------------------


def test_headline_figures(page):
    # Ann and Ben finish, Cat stops after one question, Dan only starts.
    assert "<b>4</b><span>learners started</span>" in page
    assert "<b>2</b><span>finished (50%)</span>" in page
    # Ann's way: start, 3 messages, a question, a message, 2 questions, her written answer
    # and its self-check: 10 events, 9 gaps of 30 s = 4 min 30 s. Ben answers one question
    # wrong first and reads its remedy: 2 events more, 5 min 30 s. The median: 5 min 00 s.
    assert "<b>5 min 00 s</b><span>median time to finish</span>" in page
    # First-try scores 3 (Ann) and 2 (Ben), of 3 graded questions.
    assert "<b>2.5</b><span>mean first-try score, of 3</span>" in page


def test_parts_reached(page):
    # Everyone is in part 1; Dan never leaves it; Cat's right answer takes her to part 3;
    # only Ann and Ben reach part 4, the written question.
    for part, count in ((1, 4), (2, 3), (3, 3), (4, 2)):
        assert re.search(rf"<title>Part {part}: [^<]*: {count} of 4 attempts</title>", page), part


def test_questions_facility_and_discrimination(page):
    remedied = between(page, f'<tr id="q-{LESSON}-{REMEDIED}">', "</tr>")
    # Answered by Ann (right) and Ben (wrong, the misconception): 1 of 2 right at the first try.
    cells = re.findall(r'<td class="n">([^<]*)</td>', remedied)
    assert cells[1:4] == ["2", "1", "50%"]
    assert '<rect width="50.0" height="12"' in remedied  # the facility bar, half full
    # Point-biserial over the finished: right (Ann, 3) vs wrong (Ben, 2); the scores' mean
    # is 2.5 and their standard deviation 0.5; p = 1/2: (3 - 2) / 0.5 * sqrt(1/4) = +1.00.
    assert cells[4] == "+1.00"
    first = between(page, f'<tr id="q-{LESSON}-q-madman-aim">', "</tr>")
    assert re.findall(r'<td class="n">([^<]*)</td>', first)[1:5] == ["3", "3", "100%", "—"]  # Cat too; no spread
    assert "point-biserial" in page and "Discrimination is the point-biserial correlation" in page


def test_misconception_with_its_summary(page):
    row = between(page, f'<tr id="m-{LESSON}-M1">', "</tr>")
    summary = "Misreading: the theory fails because opponents stop believing the threats."
    assert escape(summary) in row
    assert row.endswith('<td class="n">1</td>')  # Ben, once


def test_graph_counts_the_ways_taken(page):
    # Ben went to the remedy and back once; everyone who finished went on from the question.
    assert f"<title>{REMEDIED} → remedy-m1: 1</title>" in page
    assert f"<title>remedy-m1 → {REMEDIED}: 1</title>" in page
    assert "<title>welcome → how-it-works: 3</title>" in page  # all but Dan


def test_each_row_links_to_the_transcript(page):
    rows = between(page, '<table class="learners">', "</table>")
    ann = next(row for row in rows.split("<tr>") if NAMES[ANN] in row)
    (anchor,) = re.findall(r'href="#(t-\d+)"', ann)
    assert ">3</td>" in ann and "4 min 30 s" in ann  # her score and time
    article = between(page, f'<article id="{anchor}">', "</article>")
    assert NAMES[ANN] in article
    assert escape(REFLECTION[ANN]) in article  # her written answer, as she wrote it
    assert NAMES[BEN] not in article
    anchors = re.findall(r'<article id="(t-\d+)">', page)
    assert len(anchors) == len(set(anchors)) == 4
    assert set(re.findall(r'href="#(t-\d+)"', rows)) == set(anchors)


def test_self_contained(page):
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href|xlink:href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", page, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    for tag in ("<link", "<img", "<iframe", "<object", "<embed", "@import", "@font-face"):
        assert tag not in page.lower()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def _with_evil_learner():
    """The known data set and one more learner, whose name and written answer are HTML."""
    store, lessons, _ = build()
    lesson = lessons[LESSON].lesson
    store.ensure_learner(EVIL, EVIL_NAME)
    tutor = Tutor(store, lessons, seeds=lambda: 3)
    reply = tutor.begin(EVIL, EVIL, LESSON)
    while reply.step is not None and reply.step.kind != "end":
        step = reply.step
        if step.kind == "message":
            value = Continue(step.node)
        elif step.kind == "choice":
            node = lesson.nodes[step.node]
            assert isinstance(node, ChoiceNode)
            value = Choose(step.node, next(i for i, o in enumerate(node.options) if o.correct or not node.graded))
        elif step.kind == "check":
            value = Check(step.node, ())
        else:
            value = Answer(EVIL_ANSWER)
        reply = tutor.act(EVIL, EVIL, value)
    return store, lessons


def test_learners_text_is_escaped():
    store, lessons = _with_evil_learner()
    page = render(store, lessons)
    assert "<script" not in page.lower() and "<img" not in page.lower() and "<b>bold" not in page
    rows = between(page, '<table class="learners">', "</table>")
    row = next(row for row in rows.split("<tr>") if EVIL in row)
    assert f"<td>{escape(EVIL_NAME)} <span" in row
    (anchor,) = re.findall(r'href="#(t-\d+)"', row)
    article = between(page, f'<article id="{anchor}">', "</article>")
    assert escape(EVIL_NAME) in article and escape(EVIL_ANSWER) in article
    assert "<b>5</b><span>learners started</span>" in page


def test_filters_and_nothing_to_show():
    store, lessons, _ = build()
    page = render(store, lessons, filters=Filters(learner=ANN))
    assert "<b>1</b><span>learners started</span>" in page and NAMES[BEN] not in page
    assert "learner tg:101" in page  # what the page covers
    empty = render(store, lessons, filters=Filters(lesson="no-such-lesson"))
    assert "No attempt matches." in empty and empty.rstrip().endswith("</html>")


def test_progress_is_reported():
    store, lessons, _ = build()
    seen: list[int] = []
    render(store, lessons, progress=seen.append)
    assert seen and seen[-1] == 4


# --- 2. in a real browser -----------------------------------------------------------------------


def chromium() -> str | None:
    """Debian's Chromium (package `chromium`), or another one named by TUTORBOT_CHROMIUM."""
    named = os.environ.get("TUTORBOT_CHROMIUM")
    candidates = [named] if named else []
    candidates += ["/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def test_opens_offline_in_headless_chromium(tmp_path, tmp_path_factory, capsys):
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="no Playwright for Python: pip install -e '.[test]'")
    store, lessons = _with_evil_learner()
    report = tmp_path / "report.html"
    with report.open("w", encoding="utf-8") as out:
        write_html(store, lessons, out)
    url = report.as_uri()
    requests: list[str] = []
    blocked: list[str] = []
    problems: list[str] = []

    def route(route_, request):
        if request.url.startswith(("file:", "data:")):
            route_.continue_()
        else:
            blocked.append(request.url)
            route_.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            context.route("**/*", route)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
            page.on("console", lambda message: message.type == "error" and problems.append(f"console {message.type}: {message.text}"))
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
            page.goto(url, wait_until="load")
            assert page.title() == "Lesson report"
            assert page.locator("h1").inner_text() == "Lesson report"
            assert page.locator("section.lesson svg").count() >= 3
            box = page.locator("section.lesson svg").first.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
            assert page.get_by_text(EVIL_NAME).count() >= 1  # shown as text, not run
            ann = page.locator("table.learners tr", has_text=NAMES[ANN])
            ann.get_by_role("link", name="transcript").click()
            anchor = page.url.rsplit("#", 1)[1]
            assert re.fullmatch(r"t-\d+", anchor)
            assert NAMES[ANN] in page.locator(f"article#{anchor} h4").inner_text()
            shot = tmp_path / "report.png"
            page.goto(url, wait_until="load")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert requests and all(r.startswith(("file:", "data:")) for r in requests), requests
    assert {r for r in requests if r.startswith("file:")} == {url}
    assert not blocked and not problems, blocked + problems
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    kept = tmp_path_factory.getbasetemp() / "reports-screenshot.png"
    shutil.copyfile(shot, kept)
    with capsys.disabled():
        print(f"\nscreenshot of the HTML report: {shot}\n  and a copy: {kept}")


# --- 3. the benchmark, small ------------------------------------------------------------------


def test_benchmark_generator_and_writer(tmp_path):
    from benchmarks.report_html import LESSON_ID, generate, lessons, measure

    path = tmp_path / "bench.db"
    loaded = lessons()
    generate(path, 20, loaded)
    store = Store(path)
    try:
        page = render(store, loaded)
        assert store.db.execute("SELECT COUNT(DISTINCT learner) FROM events").fetchone()[0] == 20
        finished = store.db.execute("SELECT COUNT(*) FROM progress WHERE finished = 1 AND lesson = ?", [LESSON_ID]).fetchone()[0]
    finally:
        store.close()
    assert finished == 20
    assert "<b>20</b><span>learners started</span>" in page and "<b>20</b><span>finished (100%)</span>" in page
    assert len(re.findall(r'<article id="t-\d+">', page)) == 20
    assert "Learner 7 writes: the promise matters" in page  # each learner's own written answer
    figures = measure(path, trace=False)
    assert figures["chars"] == len(page) and figures["seconds"] > 0

