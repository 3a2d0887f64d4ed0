"""`client-sut report`: one self-contained report.html from run, sla and sweep folders, with its
figures also written beside it as SVG files (report_figures/)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from client_sut.errors import UsageError
from client_sut.report.folders import RunFolder, SlaFolder, SweepFolder, read_folder

REPORT_FILE = "report.html"
FIGURES_FOLDER = "report_figures"


def write_report(dirs: Sequence[Path], output_dir: Path, nodes: bool = False) -> Path:
    """Reads each folder (a run's, an sla search's or a sweep's) and writes
    output_dir/report.html; several runs or several sweeps are also set side by side, the
    first sweep the baseline of the others. nodes: the runs are the nodes of one benchmark,
    combined (analysis/nodes.py)."""
    from client_sut.report.page import PageBuilder

    if not dirs:
        raise UsageError("give at least one run or sla folder")
    folders = [read_folder(Path(d)) for d in dirs]
    page = PageBuilder()
    for number, folder in enumerate(folders):
        prefix = f"{number + 1}-{_slug(folder.label)}-" if len(folders) > 1 else ""
        if isinstance(folder, RunFolder):
            page.run(folder, prefix)
        elif isinstance(folder, SlaFolder):
            page.sla(folder, prefix)
        else:
            page.sweep(folder, prefix)
    runs = [f for f in folders if isinstance(f, RunFolder)]
    if nodes:
        if len(runs) < 2 or len(runs) != len(folders):
            raise UsageError("--nodes combines run folders, one per node: give two or more, "
                             "and only run folders")
        scenarios = {run.results["scenario"] for run in runs}
        if len(scenarios) > 1:
            raise UsageError(f"--nodes: the nodes of one benchmark run one scenario, these ran "
                             f"{', '.join(sorted(scenarios))}")
        page.nodes(runs)
    elif len(runs) > 1:
        page.comparison(runs)
    sweeps = [f for f in folders if isinstance(f, SweepFolder)]
    if len(sweeps) > 1:
        page.sweep_comparison(sweeps)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        figures_dir = output_dir / FIGURES_FOLDER
        figures_dir.mkdir(exist_ok=True)
        for name, svg in page.figures.items():
            (figures_dir / name).write_text(svg, encoding="utf-8")
        path = output_dir / REPORT_FILE
        title = "client-sut report: " + ", ".join(folder.label for folder in folders)
        path.write_text(page.html(title), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report in {output_dir} ({exc.strerror})") from None
    return path


def report_after_run(dirs: Sequence[Path], output_dir: Path,
                     message: Callable[[str], None]) -> Path | None:
    """The report at the end of `run` or `sla`: what was measured is written already, so a
    report that cannot be made is said, and changes nothing else."""
    try:
        path = write_report(dirs, output_dir)
    except Exception as exc:  # noqa: BLE001 -- the run's results stand without it
        message(f"report not written: {type(exc).__name__}: {exc}")
        return None
    message(f"report: {path}")
    return path


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
