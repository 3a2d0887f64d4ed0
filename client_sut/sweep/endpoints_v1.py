"""The MLPerf Endpoints v1.0 bundle's rules for a sweep's points: each concurrency point an
`r<N>/` folder with its `point.yaml`, and what keeps the bundle from the v1.0 rules. Pure.

Sources (docs/sweep.md): the policies' §8.1-8.3 and the submission
docs' point-yaml reference. Each region's required point is its highest concurrency measured
(the plan puts one at each region's end); the others are the submitter's choice. A dedicated
Offline point is `r<dataset size>` (its concurrency is the dataset), `offline: dedicated`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from client_sut.analysis.curve import min_duration_s
from client_sut.result_files.sweep import SweepPoint
from client_sut.sweep.plan import CONCURRENCY, OFFLINE

# The regions as point.yaml names them (the submission docs, 2026-09).
REGION_NAMES = {"ultra_low": "low_latency", "low": "low_concurrency",
                "medium": "med_concurrency", "high": "high_concurrency"}
CHOICE = "submitters_choice"
REQUIRED_REGIONS = tuple(REGION_NAMES)
DATASET_NAME = "cnn_dailymail"
DATASET_LINK = "https://huggingface.co/datasets/abisee/cnn_dailymail"
MODEL_LINK = "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct"
# v1.0's published seed set A: a bundle's runs must use a bound set; LoadGen's are v6.1's.
SEED_SET_A = {"scheduler_rng_seed": 10487924139932647040,
              "sample_index_rng_seed": 586478644936801402,
              "model_seed": 9315206023656308754}


def folder_name(point: SweepPoint, dataset_samples: int) -> str:
    return f"r{point.concurrency if point.kind == CONCURRENCY else dataset_samples}"


def region_labels(points: Sequence[SweepPoint]) -> dict[str, str]:
    """{point name: point.yaml region}: a region's highest concurrency is its required point."""
    required: dict[str, SweepPoint] = {}
    for point in points:
        if point.kind == CONCURRENCY and point.region in REGION_NAMES:
            best = required.get(point.region)
            if best is None or point.concurrency > best.concurrency:
                required[point.region] = point
    chosen = {p.name: REGION_NAMES[region] for region, p in required.items()}
    return {p.name: chosen.get(p.name, CHOICE) for p in points}


def point_yaml(point: SweepPoint, region: str, seeds: Mapping, warmup: Mapping | None,
               max_concurrency: int, dataset_samples: int, precision: str) -> dict:
    """point.yaml for one point: what the policies' §8.3 lists, from what the sweep knows;
    warmup is the run's own (results.json), all its requests sent at once."""
    offline = point.kind == OFFLINE
    warmup = {"requests": 0, "errors": 0, "seconds": 0.0, "prompts": "none", **(warmup or {})}
    return {
        "concurrency": dataset_samples if offline else point.concurrency,
        "region": region,
        "offline": "dedicated" if offline else "none",
        "dataset": DATASET_NAME,
        "runtime_settings": {
            "load_pattern": "max_throughput" if offline else "concurrency",
            "min_duration_ms": int(min_duration_s(point.concurrency) * 1000),
            "min_sample_count": point.planned.queries,
            "stream_all_chunks": True,
            "runtime": {"scheduler_rng_seed": seeds.get("scheduler_random_seed"),
                        "sample_index_rng_seed": seeds.get("dataloader_random_seed")},
        },
        "warmup": {"duration_s": warmup["seconds"], "requests_issued": warmup["requests"],
                   "requests_completed": warmup["requests"] - warmup["errors"],
                   "data_source": warmup["prompts"], "concurrency": max(1, warmup["requests"]),
                   "initialization_steps": [], "logs_retained": True},
        "division": "Standardized",
        "max_supported_concurrency": max_concurrency,
        "model_name": "meta-llama/Llama-3.1-8B-Instruct",
        "model_precision": precision,
        "link_to_model": MODEL_LINK,
        "dataset_name": DATASET_NAME,
        "dataset_type": "performance",
        "dataset_link": DATASET_LINK,
        "shared_src": "src",
    }


def v1_findings(points: Sequence[SweepPoint], labels: Mapping[str, str], seeds: Mapping,
                dataset_samples: int, official_samples: int, accuracy_at: str | None) -> list[str]:
    """What keeps these points from a v1.0 bundle: the checker is not at hand, so all of it."""
    findings = []
    for point in points:
        floor = min_duration_s(point.concurrency)
        if (point.duration_s or 0) < floor:
            findings.append(f"{point.name}: measured for {point.duration_s or 0:g} s, "
                            f"under its region's {floor:g} s")
    if dataset_samples != official_samples:
        findings.append(f"{dataset_samples:,} samples a pass, not the dataset's "
                        f"{official_samples:,}")
    missing = [region for region in REQUIRED_REGIONS
               if REGION_NAMES[region] not in labels.values()]
    if missing:
        findings.append(f"no point in the required region(s) {', '.join(missing)}")
    if any(seeds.get(k) != SEED_SET_A[v] for k, v in (("scheduler_random_seed",
                                                        "scheduler_rng_seed"),
                                                       ("dataloader_random_seed",
                                                        "sample_index_rng_seed"))):
        findings.append("the points ran with LoadGen's seeds, not a bound v1.0 seed set "
                        "(set A); the model seed is the server's")
    required = [name for name, label in labels.items() if label != CHOICE]
    if required:
        findings.append(f"accuracy was scored once ({accuracy_at or 'no accuracy run'}), not "
                        f"right after each required point ({', '.join(required)})")
    return findings
