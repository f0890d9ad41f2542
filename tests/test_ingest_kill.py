"""kill -9 of a real `rag ingest` process at seeded random moments (during
embedding, while BM25 and the catalog are written, during the switch to the
new generation) leaves an index that answers, passes `rag check`, holds
exactly the old or the new papers, and takes the next ingest. The cases are
benchmarks/reliability_faults.py's (10 kills there, 3 here)."""

from __future__ import annotations

import pytest

from benchmarks.reliability_faults import PHASES, QUICK_KILLS, SEED, ingest_kill_cases, kill_plans


def test_kill_moments_are_random_reproducible_and_cover_every_phase():
    plans = kill_plans(10, seed=SEED)
    assert plans == kill_plans(10, seed=SEED)
    assert plans != kill_plans(10, seed=SEED + 1)
    assert {p.phase for p in plans[:3]} == set(PHASES)  # each cycle of three hits each phase once
    assert len(set(plans)) == 10


@pytest.mark.slow
def test_kill_9_at_random_moments_of_an_ingest_loses_nothing(tmp_path):
    cases = ingest_kill_cases(tmp_path, kills=QUICK_KILLS)
    assert [c["failures"] for c in cases] == [[]] * QUICK_KILLS, cases
    assert sum(c["data_lost"] for c in cases) == 0
    # the kill planned during embedding interrupted real work: the old version stood
    embedding = [c for c in cases if c["planned"].endswith("into embedding")]
    assert embedding and embedding[0]["committed"] == "old", cases
    assert embedding[0]["phase"] in ("embedding", "store write"), cases
