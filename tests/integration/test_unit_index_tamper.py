"""A persisted index file rewritten consistently (each region's digest and the header recomputed) passes
its own checks at open; `verify --read-models` must still find a forged rating or principal flag — in the
read models of a process (`Projections.verify_read_models`, which then rebuilds) and from the CLI, which
maps the file as an open would — because the log decides.

Method: D1 rated 90 and D2 rated 50 by E1 in 2024Q1 (plain means, bottom 1: D2 at the bottom, L2 its
principal leader; L3 a deputy of D2). Forging D2's score to 99 swaps the ranking; forging the principal
flags makes L3 the leader named.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger import Ledger
from ledger.cli import app
from ledger.domain.events import Rater, RatingPanelDrawn, UnitRated
from ledger.projections.service import Projections
from tests.conftest import fixed_clock, registration, source
from tests.integration.test_persisted_index import Layout, persist
from tests.property.naive_units import units_policy_text


@pytest.fixture
def ledger(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv("LEDGER_INDEX_DIR", str(tmp_path / "indexes"))
    with Ledger.open(store_url, clock=fixed_clock) as opened:
        opened.publish_policy(units_policy_text("units-bottom-1", ratings_min=1, bottom_count=1))
        events = [
            registration("L1", unit_id="D1", principal=True, key="r1"),
            registration("L2", unit_id="D2", principal=True, key="r2"),
            registration("L3", unit_id="D2", key="r3"),
            RatingPanelDrawn(
                effective_on=date(2024, 1, 5),
                source=source("survey"),
                period="2024Q1",
                rater_kind="enterprise",
                raters=("E1",),
                method="lot",
                seed="s",
            ),
        ]
        events += [
            UnitRated(
                effective_on=date(2024, 2, 1),
                source=source("survey"),
                unit_id=unit_id,
                period="2024Q1",
                rater=Rater(kind="enterprise", id="E1"),
                score=score,
                verdict="satisfied",
            )
            for unit_id, score in (("D1", "90"), ("D2", "50"))
        ]
        opened.post(events, posted_by="test")
        yield opened


def forge(ledger: Ledger, root: Path, what: str) -> None:
    layout = Layout(persist(ledger, root))
    if what == "rating":
        assert layout.column("ratings.cents").tolist() == [9000, 5000]
        layout.put("ratings.cents", 1, 9900, redigest=True)
    else:  # principal flags in registration order L1, L2, L3: L2 no longer, L3 now
        assert layout.column("principals.value").tolist() == [1, 1, 0]
        layout.put("principals.value", 1, 0, redigest=True)
        layout.put("principals.value", 2, 1, redigest=True)
    layout.save()


def served(projections: Projections) -> tuple[list[tuple[str, str]], list[str | None]]:
    ranking = [(e.unit_id, str(e.score)) for e in projections.unit_rankings("2024Q1").entries]
    leaders = [
        e.leader.cadre_id if e.leader else None for e in projections.unit_escalations("2024Q1").escalations
    ]
    return ranking, leaders


HONEST = ([("D1", "90.00"), ("D2", "50.00")], ["L2"])


@pytest.mark.parametrize(
    ("what", "forged"),
    [("rating", ([("D2", "99.00"), ("D1", "90.00")], ["L1"])), ("principal", (HONEST[0], ["L3"]))],
)
def test_a_forged_index_file_is_found_by_verify_and_rebuilt(
    ledger: Ledger, tmp_path: Path, what: str, forged: object
) -> None:
    forge(ledger, tmp_path / "indexes", what)
    projections = Projections.open(ledger)
    try:
        assert served(projections) == forged  # the file passes its own checks: it is served
        findings = projections.verify_read_models()
        assert [(f.reason, f.detail.split(":")[0]) for f in findings][:1] in (
            [("index_mismatch", "the units' ratings or details differ from those of the log")],
            [("index_mismatch", "principal")],
        )
        assert served(projections) == HONEST  # rebuilt from the log
    finally:
        projections.close()


@pytest.mark.parametrize("what", ["rating", "principal"])
def test_the_cli_verify_maps_the_file_and_finds_the_forgery(
    ledger: Ledger, tmp_path: Path, what: str
) -> None:
    forge(ledger, tmp_path / "indexes", what)
    result = CliRunner().invoke(app, ["verify", "--read-models", "--database", ledger.url])
    assert result.exit_code == 1, result.output
    assert "index_mismatch" in result.output or "index file" in result.output
