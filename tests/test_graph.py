"""`tutorbot graph`: the lesson's graph as Graphviz DOT or as a Mermaid flowchart."""

from __future__ import annotations

from bot.graph import graph_dot, graph_mermaid
from tests.conftest import tiny_lesson


def test_dot_marks_right_wrong_and_the_way_back():
    out = graph_dot(tiny_lesson().lesson)
    assert out.startswith('digraph "tiny" {') and out.endswith("}")
    assert 'subgraph "cluster_1" { label="2. Why it backfires";' in out
    assert '"q1" -> "fix-m1" [style=dashed, label="1 M1"];' in out
    assert '"q1" -> "poll" [style=solid, label="2"];' in out
    assert '"q1" -> "q1" [style=dashed, label="3"];' in out
    assert '"fix-m1" -> "q1" [style=dotted];' in out  # a returning remedy goes back to its question
    assert '"hello" -> "claim";' in out


def test_mermaid_needs_nothing_installed_and_says_the_same():
    out = graph_mermaid(tiny_lesson().lesson)
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  subgraph s1["2. Why it backfires"]' in lines
    ids = {line.split('"')[1]: line.strip().split("[")[0].split("{")[0].split("(")[0] for line in lines if line.startswith("    n")}
    assert f"  {ids['q1']} -.-> |1 M1| {ids['fix-m1']}" in lines
    assert f"  {ids['q1']} --> |2| {ids['poll']}" in lines
    assert f"  {ids['fix-m1']} -.-> {ids['q1']}" in lines
    assert f"  {ids['hello']} --> {ids['claim']}" in lines


def test_mermaid_draws_wrong_answers_dashed_and_the_way_back_dotted():
    """Mermaid has a single broken-line arrow (-.->): `linkStyle` gives wrong answers long
    dashes and a remedy's way back short ones, so the two differ as the docs say."""
    lines = graph_mermaid(tiny_lesson().lesson).splitlines()
    ids = {line.split('"')[1]: line.strip().split("[")[0].split("{")[0].split("(")[0] for line in lines if line.startswith("    n")}
    links = [line for line in lines if line.startswith("  n")]  # in order: Mermaid numbers them from 0
    wrong = links.index(f"  {ids['q1']} -.-> |1 M1| {ids['fix-m1']}")
    retry = links.index(f"  {ids['q1']} -.-> |3| {ids['q1']}")
    back = links.index(f"  {ids['fix-m1']} -.-> {ids['q1']}")
    styles = [line for line in lines if line.startswith("  linkStyle ")]
    assert styles == [
        f"  linkStyle {min(wrong, retry)},{max(wrong, retry)} stroke-dasharray: 6 4",
        f"  linkStyle {back} stroke-dasharray: 1 3",
    ]
    assert lines[-2:] == styles  # after every link they number
