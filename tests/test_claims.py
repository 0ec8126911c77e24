"""Numbers in the book's prose cannot drift from the stored files they come from (issue 25).

Every row of book/claims.csv is checked twice: the stored number agrees with the written one within the
row's tolerance, and the chapter writes that value right after the row's ``<!-- claim:ID -->`` marker.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from inpaintlib import claims, results

REPO = Path(__file__).resolve().parents[1]
CLAIMS = claims.read_claims(REPO / "book" / "claims.csv")


def _markdown(chapter: str) -> str:
    notebook, page = REPO / "book" / f"{chapter}.ipynb", REPO / "book" / f"{chapter}.md"
    if notebook.is_file():
        return "\n\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "markdown")
    return page.read_text() if page.is_file() else (REPO / chapter).read_text()


@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{c['chapter']}:{c['id']}" for c in CLAIMS])
def test_claim_matches_its_stored_file_and_its_sentence(claim: dict) -> None:
    assert claims.check(claim, _markdown(claim["chapter"]), REPO) == []


def test_claim_ids_are_unique_and_every_marker_is_listed() -> None:
    ids = [(c["chapter"], c["id"]) for c in CLAIMS]
    assert len(ids) == len(set(ids))
    for chapter in {c["chapter"] for c in CLAIMS}:
        marked = set(claims._MARKER.findall(_markdown(chapter)))
        assert marked == {i for ch, i in ids if ch == chapter}, f"{chapter}: markers without a row or rows without one"


def test_a_wrong_value_or_a_missing_sentence_is_reported() -> None:
    claim = {**CLAIMS[0]}
    text = _markdown(claim["chapter"])
    wrong = f"{float(claim['value'].replace(',', '').lstrip('+')) + 10 * claim['tolerance'] + 1:.2f}"
    problems = claims.check({**claim, "value": wrong}, text, REPO)
    assert any("holds" in p for p in problems) and any("is not written" in p for p in problems)
    assert any("no marker" in p for p in claims.check({**claim, "id": "no-such-id"}, text, REPO))


def test_sources_read_csv_rows_json_paths_and_differences(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("method,bucket,psnr\npconv,all,25.5\ntelea,all,26.0\n")
    (tmp_path / "m.json").write_text('{"overall": {"psnr": 24.25}}')
    assert claims.source_value("s.csv[method=telea,bucket=all]:psnr", tmp_path) == 26.0
    assert claims.source_value("m.json:overall.psnr", tmp_path) == 24.25
    assert claims.source_value("s.csv[method=telea]:psnr - s.csv[method=pconv]:psnr", tmp_path) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 rows"):
        claims.source_value("s.csv[bucket=all]:psnr", tmp_path)


def test_every_role_names_a_stored_run() -> None:
    for run in claims.ROLES:
        assert (REPO / "data" / "runs" / run / "config.json").is_file(), run
    assert claims.BEST in claims.ROLES and "best" in claims.role(claims.BEST)


def test_standard_error_sentence_is_computed_from_the_pairs() -> None:
    rows = [{"file": f"p{i}", "mask": "m", "bucket": "b", "method": m, "psnr": 30.0 + lead, "l1_hole": 5.0 - lead}
            for i, d in enumerate([0.1, 0.3, 0.2, 0.4])
            for m, lead in (("net", d), ("telea", 0.0))]
    rows += [{**r, "method": "ns", "psnr": 29.0, "l1_hole": 6.0} for r in rows if r["method"] == "telea"]
    rows += [{**r, "method": "biharmonic", "psnr": 29.0, "l1_hole": 6.0} for r in rows if r["method"] == "telea"]
    table = [{"bucket": "b", "best_psnr": (30.0, "telea"), "best_l1": (5.0, "telea")}]
    margins = results.lead_margins(rows, table, method="net")
    assert [round(m["ratio"], 2) for m in margins] == [3.87, 3.87]  # mean 0.25, se 0.0645
    assert "every lead is at least 3.9 standard errors" in results.describe_margins(margins)
    assert "0 of 2 margins are smaller" in results.describe_margins(margins)


def test_no_marker_starts_a_line() -> None:
    """A line that starts with an HTML comment is an HTML block in Markdown: it would cut its paragraph in two."""
    for chapter in {c["chapter"] for c in CLAIMS}:
        starts = re.findall(r"^[ \t]*<!-- claim:([\w.\-]+)", _markdown(chapter), flags=re.M)
        assert starts == [], f"{chapter}: markers at the start of a line: {starts}"
