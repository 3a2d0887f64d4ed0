"""A point's run-to-run noise, estimated from within it, and two sweeps told apart by it."""

from __future__ import annotations

import math
import random
from array import array

from client_sut.analysis.curve import point_figures
from client_sut.analysis.noise import FIGURES, Z, compare_sweeps, standard_errors
from client_sut.records import RequestRecord, TokenIdSource

MS = 1_000_000


def records(step_ms: float, count: int = 400, seed: int = 1) -> list[RequestRecord]:
    """Requests one after another, 16 tokens each at about step_ms apart (jittered)."""
    rng = random.Random(seed)
    made, start = [], 0
    for index in range(count):
        ttft = int(rng.uniform(20, 40) * MS)
        gaps = [int(rng.gauss(step_ms, step_ms * 0.1) * MS) for _ in range(15)]
        times = [start + ttft]
        for gap in gaps:
            times.append(times[-1] + gap)
        made.append(RequestRecord(
            sample_index=index, endpoint="http://e", issue_ns=start, send_ns=start,
            first_byte_ns=start + ttft, end_ns=times[-1], event_ns=array("q", times),
            event_tokens=array("i", [1] * 16), token_ids=array("i", range(16)),
            token_id_source=TokenIdSource.SERVER, server_completion_tokens=16,
            finish_reason="length", http_status=200))
        start = times[-1]
    return made


def point(made: list[RequestRecord]) -> dict:
    """A sweep.json point measured from these requests."""
    return {"name": "c0001", **point_figures(made, 2000.0, 100.0)}


def test_standard_errors_are_small_against_the_figures_and_reproducible():
    made = records(5.0)
    errors = standard_errors(made)
    assert set(errors) == set(FIGURES) and all(v > 0 for v in errors.values())
    assert errors == standard_errors(made)  # a fixed seed: the report reads the same each time
    # 400 requests of 16 tokens at 5 ms: the bootstrap's error of 1000/TPOT p90 is a few tokens/s
    assert errors["tokens_per_s_per_user"] < 0.02 * 1000 / 5.0
    assert standard_errors(made[:5])["system_tokens_per_s"] is None  # too few to cut in windows


def test_a_slower_step_is_beyond_the_noise_and_a_rerun_is_not():
    base, slower = point(records(5.0, seed=1)), point(records(6.0, seed=99))
    # Reruns of the same server: a figure is called changed about 5% of the time, no more.
    reruns = [compare_sweeps([base], [point(records(5.0, seed=seed))]) for seed in range(2, 42)]
    called = [d.beyond_noise for differences in reruns for d in differences]
    assert len(called) == 3 * 40 and sum(called) <= 0.1 * len(called)
    per_user = reruns[0][1]
    assert per_user.figure == "tokens_per_s_per_user"
    assert per_user.noise == Z * math.hypot(base["standard_errors"]["tokens_per_s_per_user"],
                                            point(records(5.0, seed=2))["standard_errors"][
                                                "tokens_per_s_per_user"])
    changed = {d.figure: d for d in compare_sweeps([base], [slower])}
    assert changed["tokens_per_s_per_user"].beyond_noise
    assert changed["system_tokens_per_s"].beyond_noise
    assert -0.2 < changed["tokens_per_s_per_user"].change < -0.12  # 5 ms to 6 ms: -17%
    # Points only one sweep measured are not compared; an error not estimated says so.
    assert compare_sweeps([base], [dict(slower, name="c0002")]) == []
    unknown = compare_sweeps([dict(base, standard_errors={})], [slower])
    assert all(d.noise is None and d.beyond_noise is None for d in unknown)
