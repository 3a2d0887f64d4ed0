"""The system description (`systems/<system>.json`) and `measurements.json`: pure.

Every field MLCommons' checker requires is present; the fields it requires a meaningful answer
for are never empty. Values come from what the tool saw (`probe`) and from a small TOML file the
user writes for what it cannot see; the user's word wins. A missing answer is a UsageError that
lists every missing field, raised before anything is copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import tomllib

from client_sut.errors import UsageError

# The fields of a v6.x system description that must have an answer (MLPerf's submission rules).
MEANINGFUL_FIELDS = (
    "division", "submitter", "system_type", "status", "system_name", "number_of_nodes",
    "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
    "host_memory_capacity", "host_memory_configuration", "host_storage_capacity",
    "host_storage_type", "host_networking", "host_network_card_count",
    "host_networking_topology", "accelerators_per_node", "accelerator_model_name",
    "accelerator_memory_capacity", "accelerator_host_interconnect",
    "accelerator_memory_configuration", "accelerator_interconnect", "cooling", "framework",
    "operating_system", "other_software_stack",
)
# Fields that must be present but may be left empty.
OPTIONAL_FIELDS = (
    "host_processor_frequency", "host_processor_caches", "host_processor_interconnect",
    "accelerator_frequency", "accelerator_interconnect_topology", "accelerator_on-chip_memories",
    "hw_notes", "sw_notes", "system_type_detail",
)
STATUSES = ("available", "preview", "rdi")
SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")
MEASUREMENT_FIELDS = ("input_data_types", "retraining", "starting_weights_filename",
                      "weight_data_types", "weight_transformations")


@dataclass(frozen=True, slots=True)
class UserDescription:
    """What the user wrote: the system's id (its file and folder name) and the answers."""
    system_id: str
    system: Mapping[str, object]
    measurements: Mapping[str, object]


def read_user_description(path: Path) -> UserDescription:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"system file {path} does not exist; pass --system-file with the TOML "
                         f"file describing the system (see docs/submission.md)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read system file {path}: {exc}") from None
    system_id = data.get("system_id")
    if not isinstance(system_id, str) or not system_id.strip() or "/" in system_id:
        raise UsageError(f"{path} needs a top-level `system_id = \"...\"` (the system's folder "
                         f"and file name, no '/')")
    for table in ("system", "measurements"):
        if not isinstance(data.get(table, {}), dict):
            raise UsageError(f"{path}: [{table}] must be a table of `field = value` lines")
    return UserDescription(system_id.strip(), data.get("system", {}), data.get("measurements", {}))


def _answered(value: object) -> bool:
    return value is not None and str(value).strip() != ""


def system_description(detected: Mapping[str, object], user: UserDescription,
                       division: str) -> dict:
    """The merged description; raises UsageError naming every field still without an answer."""
    merged = {key: "" for key in OPTIONAL_FIELDS}
    merged.update({k: v for k, v in detected.items() if _answered(v)})
    merged.update(user.system)
    merged["division"] = division
    missing = [key for key in MEANINGFUL_FIELDS if not _answered(merged.get(key))]
    if missing:
        raise UsageError(f"the system description lacks {', '.join(missing)}: add them under "
                         f"[system] in the system file (the tool could not see them)")
    if str(merged["status"]).lower() not in STATUSES:
        raise UsageError(f"system status {merged['status']!r} is not one of {', '.join(STATUSES)}")
    if merged["system_type"] not in SYSTEM_TYPES:
        raise UsageError(f"system_type {merged['system_type']!r} is not one of "
                         f"{', '.join(SYSTEM_TYPES)}")
    # Strings throughout, as published descriptions have them: the checker reads a 0 (a CPU
    # system's accelerators_per_node) as an empty answer, and "0" as an answer.
    return {key: str(value) for key, value in merged.items()}


def measurements(detected: Mapping[str, object], user: UserDescription) -> dict:
    merged = {**{k: v for k, v in detected.items() if _answered(v)}, **user.measurements}
    missing = [key for key in MEASUREMENT_FIELDS if not _answered(merged.get(key))]
    if missing:
        raise UsageError(f"measurements lack {', '.join(missing)}: add them under "
                         f"[measurements] in the system file")
    return {key: str(value) for key, value in merged.items()}


def sources(detected: Mapping[str, object], user: UserDescription, description: Mapping) -> dict:
    """Where each field's value came from, for the report: user, detected or default."""
    def origin(key: str) -> str:
        if key in user.system or key in user.measurements:
            return "user"
        return "detected" if _answered(detected.get(key)) else "default"
    return {key: origin(key) for key in description}
