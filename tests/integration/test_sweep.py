"""`client-sut sweep` against the emitter with K slots and a fixed engine step: the curve it
measures is the model the emitter implements, sweep.json keeps its contract, and a server that
dies ends the sweep with the points it measured."""

from __future__ import annotations

import json
import subprocess
import sys

from client_sut.analysis.curve import CurvePoint, pareto_front
from tests.conftest import REPO, SHARED_DATA

SLOTS, STEP_MS, TOKENS, SAMPLES = 4, 5.0, 16, 24
EMITTER = ("--max-running", str(SLOTS), "--engine-step-ms", f"{STEP_MS:g}", "--output-tokens",
           str(TOKENS))
POINT_KEYS = {"name", "kind", "concurrency", "target_qps", "region", "dir", "exit_status",
              "wall_s", "planned", "aborted", "on_front", "requests", "errors", "output_tokens",
              "duration_s", "system_tokens_per_s", "tokens_per_s_per_user",
              "tokens_per_s_per_user_mean", "ttft_ms", "tpot_ms", "goodput", "loadgen_result",
              "mean_latency_s", "failed", "notes"}


def sweep(url: str, demo_tokenizer, output_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client_sut", "sweep", "--endpoint", url, "--tokenizer",
         str(demo_tokenizer), "--dataset", str(SHARED_DATA), "--total-sample-count",
         str(SAMPLES), "--point-duration", "2", "--warmup", "0", "--output-dir",
         str(output_dir), *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_the_curve_is_the_model_the_emitter_implements(start_emitter, demo_tokenizer, tmp_path):
    emitter = start_emitter(*EMITTER)
    done = sweep(emitter.url, demo_tokenizer, tmp_path, "--concurrency", "1,4,8")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "sweep.json").read_text())
    assert result["verdict"] == "complete" and result["plan"]["points"] == [
        "c0001", "c0004", "c0008", "offline"]
    points = {p["name"]: p for p in result["points"]}
    for point in points.values():
        assert set(point) == POINT_KEYS, set(point) ^ POINT_KEYS
        assert point["errors"] == 0 and point["loadgen_result"] == "VALID"
        # Whole passes over the dataset, as planned, in a folder as `run` writes it.
        assert point["requests"] == point["planned"]["queries"]
        assert point["requests"] % SAMPLES == 0
        assert (tmp_path / point["dir"] / "results.json").is_file()
        # Every stream gets a token each engine step, whatever the concurrency.
        assert STEP_MS * 0.9 <= point["tpot_ms"]["p90"] <= STEP_MS * 1.5, point["tpot_ms"]
        assert point["tokens_per_s_per_user"] == round(1000 / point["tpot_ms"]["p90"], 3)
    tps = {name: p["system_tokens_per_s"] for name, p in points.items()}
    # System tokens/s rises with concurrency up to the slots, then holds...
    assert 3.2 <= tps["c0004"] / tps["c0001"] <= 4.8
    assert 0.85 <= tps["c0008"] / tps["c0004"] <= 1.15
    # ...and past them the requests queue for a slot: the first token waits.
    assert points["c0008"]["ttft_ms"]["p90"] > 2 * points["c0004"]["ttft_ms"]["p90"]
    # The front is the non-dominated set, each point marked.
    expected = pareto_front([CurvePoint(p["name"], p["system_tokens_per_s"],
                                        p["tokens_per_s_per_user"]) for p in points.values()])
    assert result["front"] == expected
    assert {name for name, p in points.items() if p["on_front"]} == set(expected)
    assert max(tps, key=tps.get) in expected  # nothing beats the most tokens/s on both axes
    assert not result["compliant"]
    assert any("--point-duration 2 s" in note for note in result["compliance_notes"])
    assert result["definitions"]["tokens_per_s_per_user"].startswith("1000 / TPOT p90")
    assert [pilot["name"] for pilot in result["pilots"]] == ["pilot-offline", "pilot-c0001"]
    assert "front:" in done.stdout


def test_a_server_that_dies_ends_the_sweep_with_what_it_measured(start_emitter, demo_tokenizer,
                                                                 tmp_path):
    # The pilots and c0001 take about 80 requests; the server dies at the 100th, in c0004.
    emitter = start_emitter(*EMITTER, "--die-after", "100")
    done = sweep(emitter.url, demo_tokenizer, tmp_path, "--concurrency", "1,4",
                 "--first-byte-timeout", "5")
    assert done.returncode == 3, done.stderr[-3000:]
    result = json.loads((tmp_path / "sweep.json").read_text())
    assert result["verdict"] == "server_lost" and result["aborted"]["during"] == "c0004"
    assert emitter.url in result["aborted"]["reason"]
    first, lost = result["points"]
    assert first["name"] == "c0001" and not first["failed"] and first["on_front"]
    assert lost["name"] == "c0004" and lost["aborted"]
    assert "the sweep stops (exit 3)" in done.stderr


def test_a_sweep_at_fixed_concurrency_or_rates_not_both(demo_tokenizer, tmp_path):
    done = sweep("http://127.0.0.1:9", demo_tokenizer, tmp_path, "--concurrency", "1,2",
                 "--rates", "3")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "client-sut sweep: error: give --concurrency or --rates, not both: a curve is at fixed "
        "concurrency or at fixed rates")
