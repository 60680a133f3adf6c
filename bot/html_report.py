"""The instructors' report as one self-contained HTML file: what this module owns is the
page, its inline CSS and its inline SVG charts; the figures come from `bot.reports`.

The file opens offline and fetches nothing: no script, no external font, image, stylesheet
or link to another site. Everything a learner typed (names, written answers) is escaped,
and so is every lesson text.

Per lesson: the headline figures, how many attempts reached each part (a bar chart), a
table of the graded questions (facility with a bar, point-biserial discrimination), the
misconceptions chosen, the lesson's graph with how many learners passed along each edge,
and a row per attempt linking to the learner's transcript further down the same page.

The events are read once, in the order `bot.reports` reads them (learner by learner): each
attempt is added to its lesson's summary, its row is written to a temporary file, and the
learner's answers (a short transcript, from the attempt as read) to another, both per lesson; then the page is
written to `out`, a lesson's figures first, then its rows and transcripts copied from the
temporary files. Memory stays flat whatever the number of learners: no list of attempts
is kept, and the times to finish are counted in whole seconds (a histogram), not one per
attempt.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html import escape
from typing import TextIO

from bot.graph import edges as graph_edges
from bot.lesson import ChoiceNode, EndNode, Lesson, MessageNode, WriteNode
from bot.loader import LoadedLesson
from bot.reports import EVERYTHING, Attempt, Filters, LessonSummary, Scope, add, attempts, duration
from bot.store import Store

Progress = Callable[[int], None]  # called with the number of attempts read so far
PROGRESS_EVERY = 1000

DISCRIMINATION_NOTE = (
    "Discrimination is the point-biserial correlation, over finished attempts, between being right "
    "at the first try on this question and the first-try score over the whole lesson: near +1, those "
    "who got it right did better overall; near 0 or below, the question does not tell stronger "
    "learners from weaker ones (— where it is undefined: everyone right, or everyone wrong)."
)


def write_html(
    store: Store,
    lessons: dict[str, LoadedLesson],
    out: TextIO,
    filters: Filters = Filters(),
    scope: Scope = EVERYTHING,
    progress: Progress | None = None,
) -> None:
    """Write the report on the events that `filters` and `scope` allow to `out`, as one
    self-contained HTML page. `progress`, if given, is called with the number of attempts
    read so far, every thousand attempts and once at the end."""
    with ExitStack() as stack:
        found = _read(store, lessons, filters, scope, progress, stack)
        out.write(_head(filters))
        if not found:
            out.write('<p class="empty">No attempt matches.</p>\n')
        else:
            out.write("<nav><h2>Lessons</h2><ul>\n")
            for part in found:
                out.write(f'<li><a href="#l-{_e(part.summary.lesson)}">{_e(part.summary.title)}</a> '
                          f'<span class="muted">({part.summary.started} started)</span></li>\n')
            out.write("</ul></nav>\n")
        for index, part in enumerate(found):
            out.write(_lesson_head(part.summary, part.lesson, index))
            out.write(_rows_head(part.summary))
            part.rows.seek(0)
            shutil.copyfileobj(part.rows, out)
            out.write('</tbody></table></div>\n<h3>Transcripts</h3>\n<div class="transcripts">\n')
            part.transcripts.seek(0)
            shutil.copyfileobj(part.transcripts, out)
            out.write("</div>\n</section>\n")
        out.write(_FOOT)


# --- reading the events: one pass -------------------------------------------------------------


class _Seconds:
    """Times to finish, counted in whole seconds: a histogram, so that it does not grow with
    the number of learners. Takes the place of `LessonSummary.finish_minutes` (`add` appends
    minutes to it)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0

    def append(self, minutes: float) -> None:
        self.counts[round(minutes * 60)] += 1
        self.total += 1

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[float]:
        for seconds in sorted(self.counts):
            for _ in range(self.counts[seconds]):
                yield seconds / 60

    def median_minutes(self) -> float | None:
        if not self.total:
            return None
        middle = [(self.total - 1) // 2, self.total // 2]  # the one or two middle ranks
        found: list[int] = []
        seen = 0
        for seconds in sorted(self.counts):
            seen += self.counts[seconds]
            while middle and middle[0] < seen:
                found.append(seconds)
                middle.pop(0)
            if not middle:
                break
        return sum(found) / len(found) / 60


@dataclass
class _Part:
    """What one lesson's part of the page is made of, while the events are read."""

    lesson: Lesson
    summary: LessonSummary
    rows: TextIO  # temporary files
    transcripts: TextIO


def _read(
    store: Store, lessons: dict[str, LoadedLesson], filters: Filters, scope: Scope, progress: Progress | None, stack: ExitStack
) -> list[_Part]:
    """Every lesson with attempts, in the lessons' order: its summary (as `reports.summarize`
    makes it, but without the count of reflections waiting, and with
    the times to finish as a histogram), its rows and its transcripts."""
    found: dict[str, _Part] = {}
    read = anchor = 0
    current: tuple[str, str, str] | None = None
    for attempt in attempts(store, lessons, filters, scope):
        read += 1
        if progress is not None and read % PROGRESS_EVERY == 0:
            progress(read)
        loaded = lessons.get(attempt.lesson)
        if loaded is None:
            continue
        lesson = loaded.lesson
        part = found.get(lesson.id)
        if part is None:
            summary = LessonSummary.empty(lesson)
            summary.finish_minutes = _Seconds()  # type: ignore[assignment]
            spool = [stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8")) for _ in range(2)]
            part = found[lesson.id] = _Part(lesson, summary, *spool)
        add(part.summary, lesson, attempt)
        if (attempt.learner, attempt.lesson, attempt.chat) != current:  # a restart's attempts share one
            current = (attempt.learner, attempt.lesson, attempt.chat)
            anchor += 1
            part.transcripts.write(_transcript(lesson, attempt, anchor))
        part.rows.write(_row(attempt, anchor))
    if progress is not None:
        progress(read)
    return [found[lesson_id] for lesson_id in lessons if lesson_id in found]


# --- the page ---------------------------------------------------------------------------------


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _cut(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def _when(at: str | None) -> str:
    """A recorded time, to the second; its offset shown unless it is UTC."""
    if not at:
        return "—"
    offset = at[19:].lstrip(".0123456789")
    shown = at[:19].replace("T", " ")
    return _e(shown if offset in ("", "+00:00", "Z") else f"{shown} {offset}")


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{round(share * 100)}%"


_STYLE = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5d6675; --line: #d8dde5; --bar: #3a6ea5;
  --good: #2e7d4f; --bad: #b3452c; --paper: #ffffff; --band: #f3f5f8; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem clamp(1rem, 4vw, 3rem); font: 15px/1.45 system-ui, -apple-system,
  "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: var(--paper); }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .6rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
h4 { font-size: .98rem; margin: 0 0 .4rem; }
a { color: #1f5b99; }
.muted, .note { color: var(--muted); }
.note { font-size: .88rem; max-width: 60rem; }
.lesson { margin-top: 2.5rem; }
.figures { display: flex; flex-wrap: wrap; gap: .8rem; margin: .8rem 0; padding: 0; list-style: none; }
.figures li { background: var(--band); border-radius: 8px; padding: .6rem .9rem; min-width: 9.5rem; }
.figures b { display: block; font-size: 1.45rem; }
.figures span { color: var(--muted); font-size: .85rem; }
table { border-collapse: collapse; margin: .4rem 0; font-size: .9rem; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.q { max-width: 34rem; }
.scroll { max-height: 80vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px;
  width: fit-content; max-width: 100%; }
.wide { overflow-x: auto; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--ink); }
svg .halo { paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.transcripts article { border: 1px solid var(--line); border-radius: 8px; padding: .7rem .9rem; margin: .8rem 0; }
.transcripts article:target { border-color: var(--bar); box-shadow: 0 0 0 2px #c9dbef; }
.transcripts ol { list-style: none; margin: 0; padding: 0; }
.transcripts li { margin: .25rem 0; padding: .25rem .5rem; border-radius: 6px; white-space: pre-wrap; }
.transcripts li.bot { background: var(--band); }
.transcripts li.learner { background: #e7f0e8; margin-left: 2.5rem; }
.transcripts .at { color: var(--muted); font-size: .78rem; white-space: nowrap; }
.empty { font-style: italic; }
.up { font-weight: normal; font-size: .8rem; margin-left: .6rem; }
@media print { .scroll { max-height: none; overflow: visible; } }
"""

_FOOT = (
    '<footer class="note"><p>This page is one self-contained file: it runs no script and fetches '
    "nothing.</p></footer>\n</body>\n</html>\n"
)


def _head(filters: Filters) -> str:
    shown = [f"{name} {value}" for name, value in (("lesson", filters.lesson), ("chat", filters.chat),
             ("since", filters.since), ("learner", filters.learner)) if value]
    covers = "; ".join(shown) if shown else "all events"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Lesson report</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<header><h1>Lesson report</h1><p class="muted">Covers: {_e(covers)}.</p></header>\n'
    )


def _lesson_head(summary: LessonSummary, lesson: Lesson, index: int) -> str:
    minutes = summary.finish_minutes.median_minutes() if isinstance(summary.finish_minutes, _Seconds) else summary.median_minutes
    mean = summary.mean_score
    parts = [
        f'<section class="lesson" id="l-{_e(lesson.id)}">\n<h2>{_e(lesson.title)} <span class="muted">({_e(lesson.id)})</span></h2>\n',
        '<ul class="figures">',
        f"<li><b>{summary.learners}</b><span>learners started</span></li>",
        f"<li><b>{summary.finishers}</b><span>finished ({_percent(summary.finishers / summary.learners if summary.learners else None)})</span></li>",
        *([f"<li><b>{summary.started}</b><span>attempts, {summary.finished} finished</span></li>"]
          if (summary.started, summary.finished) != (summary.learners, summary.finishers) else []),
        f"<li><b>{duration(None if minutes is None else minutes * 60)}</b><span>median time to finish</span></li>",
        f"<li><b>{'—' if mean is None else f'{mean:.1f}'}</b><span>mean first-try score, of {summary.questions_total}</span></li>",
        "</ul>\n",
        '<p class="note">Counted per attempt (a restart begins another). Time is the sum of the gaps '
        "between a learner's events, a break of more than 30 minutes left out; the score is the "
        "number of graded questions answered right at the first try, over finished attempts. Times are "
        "UTC unless marked.</p>\n",
        "<h3>How far learners got</h3>\n",
        _parts_chart(summary, lesson),
        "<h3>Questions</h3>\n",
        _questions(summary),
        "<h3>Misconceptions chosen</h3>\n",
        _misconceptions(summary, lesson),
        "<h3>The lesson's graph: how many passed along each way</h3>\n",
        '<p class="note">Nodes in file order, top to bottom; ways forward curve right, ways back left. '
        "The number on a way, and its thickness, is how many times learners went along it. Blue: a "
        "right answer or the way on; red: a wrong answer; purple: a remedy's way back to its question; "
        "dashed grey: a way nobody took; orange: a move outside the graph (a look back at a part, or a "
        "lesson that changed).</p>\n",
        f'<div class="scroll">{_graph_svg(summary, lesson, index)}</div>\n',
    ]
    return "".join(parts)


def _parts_chart(summary: LessonSummary, lesson: Lesson) -> str:
    label_w, bar_w, row = 260, 380, 24
    top = max(summary.started, 1)
    height = row * len(lesson.sections) + 8
    width = label_w + bar_w + 70
    out = [f'<svg role="img" aria-label="Attempts reaching each part" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    for number, section in enumerate(lesson.sections, 1):
        count = summary.parts_reached.get(number, 0)
        y = 4 + (number - 1) * row
        w = bar_w * count / top
        out.append(
            f'<g><title>Part {number}: {_e(section.title)}: {count} of {summary.started} attempts</title>'
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">Part {number}: {_e(_cut(section.title, 34))}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row - 8}" fill="#eef1f5"/>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#3a6ea5"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{count}</text></g>'
        )
    out.append("</svg>\n")
    return "".join(out)


def _facility_bar(share: float | None) -> str:
    if share is None:
        return ""
    colour = "#2e7d4f" if share >= 0.7 else "#c28a1b" if share >= 0.4 else "#b3452c"
    return (f'<svg width="100" height="12" viewBox="0 0 100 12" aria-hidden="true">'
            f'<rect width="100" height="12" fill="#eef1f5"/><rect width="{share * 100:.1f}" height="12" fill="{colour}"/></svg>')


def _questions(summary: LessonSummary) -> str:
    if not summary.questions:
        return '<p class="empty">This lesson has no graded question.</p>\n'
    rows = []
    for number, q in enumerate(summary.questions.values(), 1):
        d = summary.discrimination(q.node)
        rows.append(
            f'<tr id="q-{_e(summary.lesson)}-{_e(q.node)}"><td class="n">{number}</td>'
            f'<td class="q">{_e(_cut(q.ask, 220))}<br><span class="muted">{_e(q.node)}</span></td>'
            f'<td class="n">{q.answered}</td><td class="n">{q.right}</td>'
            f'<td class="n">{_percent(q.facility)}</td><td>{_facility_bar(q.facility)}</td>'
            f'<td class="n">{"—" if d is None else f"{d:+.2f}"}</td></tr>\n'
        )
    hardest = ", ".join(f"{_e(q.node)} ({_percent(q.facility)})" for q in summary.hardest(3))
    return (
        '<div class="wide"><table><thead><tr><th class="n">#</th><th>Question</th><th class="n">Answered</th>'
        '<th class="n">Right</th><th colspan="2">Facility (share right at the first try)</th>'
        '<th class="n">Discrimination (point-biserial)</th></tr></thead><tbody>\n'
        + "".join(rows)
        + "</tbody></table></div>\n"
        + f'<p class="note">Answered: learners who answered it; right: of them, right at the first try. '
        f"Facility is the share right at the first try. {_e(DISCRIMINATION_NOTE)}</p>\n"
        + (f'<p class="note">Hardest: {hardest}.</p>\n' if hardest else "")
    )


def _misconceptions(summary: LessonSummary, lesson: Lesson) -> str:
    if not summary.misconceptions:
        return '<p class="empty">No misconception was chosen.</p>\n'
    rows = "".join(
        f'<tr id="m-{_e(lesson.id)}-{_e(map_id)}"><td><b>{_e(map_id)}</b></td>'
        f"<td>{_e(lesson.lesson.argument_map.get(map_id, '(not in the argument map)'))}</td>"
        f'<td class="n">{count}</td></tr>\n'
        for map_id, count in sorted(summary.misconceptions.items(), key=lambda item: (-item[1], item[0]))
    )
    return (
        '<table><thead><tr><th>Id</th><th>Misconception (argument map)</th><th class="n">Attempts that chose it</th>'
        "</tr></thead><tbody>\n" + rows + "</tbody></table>\n"
    )


_NODE_FILL = {MessageNode: "#eef1f5", ChoiceNode: "#dde8f5", WriteNode: "#e3f1e5", EndNode: "#e9e1f3"}
_NODE_KIND = {MessageNode: "message", ChoiceNode: "question", WriteNode: "written", EndNode: "end"}


def _graph_svg(summary: LessonSummary, lesson: Lesson, index: int) -> str:
    """An arc diagram: one row per node in file order (a header row per section); ways
    forward as arcs on the right, ways back on the left, thickness and label by count."""
    row, box_w, box_h = 22, 220, 16
    rows: dict[str, int] = {}
    headers: list[tuple[int, str]] = []
    line = 0
    for number, section in enumerate(lesson.sections, 1):
        headers.append((line, f"{number}. {section.title}"))
        line += 1
        for node in section.nodes:
            rows.setdefault(node.id, line)
            line += 1
    ways: dict[tuple[str, str], list[str]] = {}
    for source, target, style, _ in graph_edges(lesson):
        if source in rows and target in rows and source != target:
            ways.setdefault((source, target), []).append(style)
    extra = [(pair, count) for pair, count in summary.edges.items()
             if pair not in ways and pair[0] in rows and pair[1] in rows and pair[0] != pair[1]]
    counts = [summary.edges.get(pair, 0) for pair in ways] + [count for _, count in extra]
    top = max(counts, default=0) or 1

    def bulge(a: int, b: int) -> float:  # wider for longer ways, so that their labels part
        d = abs(b - a)
        return 16.0 * d if d <= 4 else 64 + 20 * math.sqrt(d - 4)

    reach = max((bulge(rows[s], rows[t]) for s, t in list(ways) + [p for p, _ in extra]), default=20) * 0.8 + 30
    left = reach + 10
    right = left + box_w
    width = int(right + reach + 10)
    height = line * row + 10
    marker = f"arrow-{index}"
    out = [
        f'<svg role="img" aria-label="The graph of {_e(lesson.title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<defs><marker id="{marker}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
        f'markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#55606e"/></marker></defs>',
    ]
    for at, title in headers:
        y = 5 + at * row
        out.append(f'<rect x="0" y="{y}" width="{width}" height="{row - 2}" fill="#f3f5f8"/>'
                   f'<text x="{left}" y="{y + 15}" font-weight="600">{_e(_cut(title, 70))}</text>')

    def arc(source: str, target: str, count: int, colour: str, dashed: bool) -> str:
        a, b = rows[source], rows[target]
        y0, y1 = 5 + a * row + row / 2 - 1, 5 + b * row + row / 2 - 1
        forward = b > a
        x = right if forward else left
        bend = bulge(a, b) * (1 if forward else -1)
        stroke = 1 + 6 * count / top if count else 1
        dash = ' stroke-dasharray="3 3"' if dashed else ""
        label_x, label_y = x + 0.75 * bend, (y0 + y1) / 2 + 4
        label = (f'<text class="halo" x="{label_x:.1f}" y="{label_y:.1f}" text-anchor="middle">{count}</text>'
                 if count else "")
        return (f'<g><title>{_e(source)} → {_e(target)}: {count}</title>'
                f'<path d="M{x:.1f},{y0:.1f} C{x + bend:.1f},{y0:.1f} {x + bend:.1f},{y1:.1f} {x:.1f},{y1:.1f}" '
                f'fill="none" stroke="{colour}" stroke-width="{stroke:.1f}" stroke-opacity="0.75"{dash} '
                f'marker-end="url(#{marker})"/>{label}</g>')

    for (source, target), styles in ways.items():
        count = summary.edges.get((source, target), 0)
        colour = "#3a6ea5" if "solid" in styles else "#b3452c" if "dashed" in styles else "#7a5ca8"
        out.append(arc(source, target, count, colour if count else "#a8b0bb", not count))
    for (source, target), count in extra:
        out.append(arc(source, target, count, "#d9822b", False))
    for node_id, at in rows.items():
        node = lesson.nodes[node_id]
        y = 5 + at * row + (row - box_h) / 2 - 1
        kind = _NODE_KIND.get(type(node), "node")
        out.append(
            f'<g><title>{_e(node_id)} ({kind}): {_e(_cut(node.text, 200))}</title>'
            f'<rect x="{left}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="4" '
            f'fill="{_NODE_FILL.get(type(node), "#eee")}" stroke="#8a94a3" stroke-width="0.8"/>'
            f'<text x="{left + 6}" y="{y + 12:.1f}">{_e(_cut(node_id, 30))} <tspan fill="#5d6675">· {kind}</tspan></text></g>'
        )
    out.append("</svg>")
    return "".join(out)


# --- the learners --------------------------------------------------------------------------------


def _rows_head(summary: LessonSummary) -> str:
    return (
        '<h3>Learners</h3>\n<p class="note">One row per attempt; its transcript is further down.</p>\n'
        '<div class="wide"><table class="learners"><thead><tr><th>Learner</th><th>Chat</th>'
        f'<th>Started</th><th>Finished</th><th class="n">Score (of {summary.questions_total})</th>'
        '<th class="n">Time</th><th>Transcript</th></tr></thead><tbody>\n'
    )


def _who(attempt: Attempt) -> str:
    if attempt.name:
        return f'{_e(attempt.name)} <span class="muted">{_e(attempt.learner)}</span>'
    return f'<span class="muted">{_e(attempt.learner)}</span>'


def _row(attempt: Attempt, anchor: int) -> str:
    return (
        f"<tr><td>{_who(attempt)}</td><td>{_e(attempt.chat)}</td><td>{_when(attempt.started_at)}</td>"
        f"<td>{_when(attempt.finished_at)}</td><td class=\"n\">{attempt.score}</td>"
        f'<td class="n">{duration(attempt.seconds)}</td><td><a href="#t-{anchor}">transcript</a></td></tr>\n'
    )


def _transcript(lesson: Lesson, attempt: Attempt, anchor: int) -> str:
    """The learner's answers in this attempt, in order: the question, what they answered,
    whether it was right, and the time they took. Made from the attempt as read, with no
    further query, so the page costs the same per learner however many there are; the whole
    transcript, with every step shown, is `tutorbot transcript <learner>`."""
    parts = [f'<article id="t-{anchor}"><h4>{_who(attempt)} · {_e(attempt.chat)} '
             f'<a class="up" href="#l-{_e(attempt.lesson)}">↑ the lesson</a></h4>'
             f'<p class="note">Full transcript: <code>tutorbot transcript {_e(attempt.learner)}</code></p><ol>\n']
    for response in attempt.responses:
        node = lesson.nodes.get(response.node)
        asked = getattr(node, "ask", None) or getattr(node, "write", None) or response.node
        if response.kind == "choice" and isinstance(node, ChoiceNode) and response.option is not None and 0 <= response.option < len(node.options):
            said = node.options[response.option].text
        elif response.kind == "check":
            said = "covered points " + (", ".join(str(p + 1) for p in response.covered) or "none")
        else:
            said = response.text or ""
        verdict = {True: " ✓", False: " ✗"}.get(response.correct, "") if response.kind == "choice" else ""
        after = f" · after {duration(response.seconds)}" if response.seconds else ""
        parts.append(f'<li class="bot"><span class="at">{_when(response.at)}</span>\n{_e(_cut(asked, 160))}</li>\n')
        parts.append(f'<li class="learner"><span class="at">{after.lstrip(" ·")}</span>\n{_e(said)}{verdict}</li>\n')
    if not attempt.responses:
        parts.append('<li class="bot">No answer yet.</li>\n')
    parts.append("</ol></article>\n")
    return "".join(parts)
