"""The report as one HTML page: the verdict first, then tables and the figures inline as SVG.

Nothing is fetched when it is opened: no script at all, the style inline, system fonts only, the
figures' text drawn as paths. It opens offline, from a file, years later.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from client_sut.analysis.metrics import NS_PER_MS
from client_sut.report import figures
from client_sut.report.folders import RunFolder, SlaFolder, SweepFolder

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.verdict { font-size: 1.4em; font-weight: bold; padding: .5em .8em; border-radius: 6px; }
.ok { background: #e8f8ef; color: #1e7e46; } .bad { background: #fdecea; color: #a93226; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f6f6f6; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0 2em; } figcaption { color: #555; font-size: .9em; max-width: 60em; }
figure svg { max-width: 100%; height: auto; }
.note { color: #555; font-size: .9em; }
"""

CAPTIONS = {
    "latency-cdfs": "Client-measured latency distributions (cumulative): TTFT (send to first "
                    "token), TPOT (per request), ITL (every gap between token events) and E2E. "
                    "Dots mark p50 and p99; the dashed red line is the p99 limit the run is "
                    "judged by (LoadGen judges its own TTFT, from the scheduled issue, which sits "
                    "above the client's by the issue lag).",
    "over-time": "The run in 1 s bins from its first issue: requests completed per second, "
                 "output tokens per second (counted as their events arrived), requests in "
                 "flight, and the TTFT p50/p99 of the requests sent in each bin.",
    "endpoints": "Per endpoint: output tokens/s, requests (errors in red), and TTFT/TPOT p99. "
                 "An endpoint out of line with the others stands out here.",
    "server-metrics": "The servers' own Prometheus metrics, scraped about once a second by a "
                      "process of its own, on the same time axis: requests running and waiting, "
                      "KV-cache use, the server's generated tokens/s beside the client's, and the "
                      "client's TTFT p99. A TTFT that rises with waiting requests or a full KV "
                      "cache is the server queueing, not the network or the client.",
    "sla": "The sla search: each probe's p99 TTFT and TPOT against its target QPS, coloured by "
           "verdict (the larger dot is the confirmation run), with the limits; and tokens/s "
           "against QPS.",
    "runs": "The runs side by side: p99 TTFT and TPOT (LoadGen's) and tokens/s.",
    "sweep": "The throughput-interactivity curve as MLPerf Endpoints draws it: system tokens/s "
             "against tokens/s per user (1000 / TPOT p90), the official front a step function "
             "through the non-dominated points (filled; nothing interpolated); then system "
             "tokens/s, TTFT p90 and tokens/s per user against concurrency, the Endpoints "
             "regions shaded; and goodput (requests within both limits) against the load.",
    "sweeps": "Every point both sweeps measured, figure by figure. A figure's noise is how far "
              "it would move on a rerun, estimated within each point (system tokens/s by batch "
              "means over 10 windows, the p90 figures by a seeded bootstrap); a change is beyond "
              "the noise past 1.96 times the two errors combined, which noise alone passes about "
              "one time in twenty.",
}
SWEEP_FIGURES = {"system_tokens_per_s": "system tokens/s",
                 "tokens_per_s_per_user": "tokens/s per user (1000/TPOT p90)",
                 "ttft_p90_ms": "TTFT p90 ms"}
METHOD = ("Percentiles interpolate linearly between closest ranks (numpy's default). Times are "
          "the client's CLOCK_MONOTONIC (perf_counter_ns), the clock LoadGen uses; the servers' "
          "histograms are turned into percentiles as Prometheus' histogram_quantile does, to "
          "their bucket's resolution.")


def _e(value) -> str:
    return html.escape("-" if value is None else str(value))


def _num(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return _e(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><tr>{head}</tr>{body}</table>"


def _list(items: Sequence[str], css: str = "") -> str:
    if not items:
        return ""
    return f'<ul class="{css}">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _figure(name: str, svg: str) -> str:
    return (f'<figure id="fig-{name}" class="figure">{svg}'
            f"<figcaption>{_e(CAPTIONS[name])}</figcaption></figure>")


class PageBuilder:
    """Collects the page's sections and each figure's SVG (written beside it as files too)."""

    def __init__(self) -> None:
        self.sections: list[str] = []
        self.figures: dict[str, str] = {}  # file name -> SVG

    def figure(self, prefix: str, name: str, svg: str) -> str:
        self.figures[f"{prefix}{name}.svg"] = svg
        return _figure(name, svg)

    def run(self, folder: RunFolder, prefix: str) -> None:
        from client_sut.report import plots

        results, records = folder.results, folder.records
        loadgen, client = results["loadgen"], results["client"]
        verdict = figures.run_verdict(results)
        parts = [f"<h2>Run {_e(folder.label)}: {_e(results['scenario'])} "
                 f"{_e(results['mode'])}, model {_e(results.get('model'))}</h2>",
                 f'<div class="verdict {"ok" if verdict.ok else "bad"}" data-verdict>'
                 f"{_e(verdict.headline)}</div>", _list(verdict.reasons)]
        parts.append("<p>" + ("Compliant." if results.get("compliant") else
                              "Not compliant:") + "</p>" + _list(results.get("compliance_notes",
                                                                              [])))
        warnings = results.get("self_check", {}).get("warnings", [])
        parts.append("<h3>Self-check warnings</h3>" + (_list(warnings) or "<p>none</p>"))
        server_notes = results.get("server_metrics", {}).get("notes", [])
        if server_notes:
            parts.append("<h3>Server metrics notes</h3>" + _list(server_notes))
        parts.append(self._accuracy(results))
        parts.append("<h3>Headline figures</h3>" + _table(
            ["", "LoadGen", "client"],
            [["tokens/s", _num(loadgen.get("tokens_per_second")),
              _num(client.get("output_tokens_per_second"))],
             *[[f"{name} {pct} ms", _num(loadgen[key].get(pct), 2),
                _num(client[key].get(pct), 2)]
               for name, key in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"))
               for pct in ("p50", "p90", "p99")],
             ["TTFT / TPOT p99 limits ms", f"{_num(loadgen.get('ttft_limit_ms'), 0)} / "
                                           f"{_num(loadgen.get('tpot_limit_ms'), 0)}", ""],
             ["requests / errors", "", f"{client['requests']:,} / {client['errors']:,}"]]))
        limits = (loadgen.get("ttft_limit_ms"), loadgen.get("tpot_limit_ms"))
        parts.append(self.figure(prefix, "latency-cdfs",
                                 plots.latency_cdfs(figures.latency_cdfs(records, *limits))))
        line = figures.timeline(records, limits[0])
        ejections = figures.ejection_spans(results.get("endpoints", []),
                                           figures.run_start_ns(records))
        parts.append(self.figure(prefix, "over-time", plots.over_time(line, ejections)))
        rows = figures.endpoint_rows(records, results.get("endpoints", []))
        parts.append("<h3>Endpoints</h3>" + self._endpoint_table(rows))
        parts.append(self.figure(prefix, "endpoints", plots.endpoints(rows)))
        parts.append("<h3>The servers' own metrics</h3>" + self._server_table(results))
        start = figures.run_start_ns(records)
        series = figures.server_series(folder.scrapes, start)
        window = results.get("server_metrics", {}).get("window_ms") or [start / NS_PER_MS] * 2
        window_s = tuple((w * NS_PER_MS - start) / 1e9 for w in window)
        parts.append(self.figure(prefix, "server-metrics",
                                 plots.server_metrics(series, window_s, line)))
        parts.append(self._system(results.get("system")))
        self.sections.append(f'<section class="run">{"".join(parts)}</section>')

    @staticmethod
    def _accuracy(results: dict) -> str:
        accuracy = results.get("accuracy")
        if not accuracy:
            return ""
        judged = accuracy.get("judged_targets", accuracy["targets"])  # gen_len scaled to size
        rows = [[key, _num(accuracy.get(key), 4), _num(judged.get(key), 4),
                 "yes" if accuracy["checks"].get(key) else "NO"]
                for key in ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len")]
        against = ("the reference implementation's scores on the same samples"
                   if accuracy.get("category") == "reference" else "the published targets")
        note = "".join(f"<p>{_e(n)}</p>" for n in accuracy.get("notes", []))
        outputs = accuracy.get("outputs") or {}
        if outputs.get("tokens"):
            tokens, finish = outputs["tokens"], outputs["finish"]
            note += (f"<p>outputs: {tokens['min']}-{tokens['max']} tokens (median "
                     f"{tokens['p50']}); ended at EOS {finish['eos']}, at the token limit "
                     f"{finish['length']}, otherwise {finish['other']}</p>")
        return (f"<h3>Accuracy: {'PASSED' if accuracy['passed'] else 'FAILED'}, against "
                f"{against}</h3>" + _table(["metric", "score", "target", "ok"], rows) + note)

    @staticmethod
    def _endpoint_table(rows: Sequence[figures.EndpointRow]) -> str:
        extra = sorted({k for row in rows for k in row.extra})
        return _table(
            ["endpoint", "requests", "errors", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99",
             "tokens/s", *extra],
            [[_e(r.url), _num(r.requests), _num(r.errors), _num(r.ttft_p50_ms, 2),
              _num(r.ttft_p99_ms, 2), _num(r.tpot_p50_ms, 3), _num(r.tpot_p99_ms, 3),
              _num(r.tokens_per_s), *[_num(r.extra.get(k)) for k in extra]] for r in rows],
            "endpoints")

    @staticmethod
    def _server_table(results: dict) -> str:
        rows = []
        for endpoint in results.get("endpoints", []):
            s = endpoint.get("server") or {}
            if not s.get("scraped"):
                rows.append([_e(endpoint["url"]), _e(s.get("note", "not scraped"))] + [""] * 7)
                continue
            ttft = s.get("ttft_ms") or {}
            rows.append([
                _e(endpoint["url"]),
                f"{_num(s.get('server_generation_tokens'))} / "
                f"{_num(s.get('client_output_tokens'))}",
                f"{_num(s.get('server_prompt_tokens'))} / {_num(s.get('client_prompt_tokens'))}",
                _num(s.get("preemptions")), _num(s.get("prefix_cache_hit_rate"), 3),
                f"{_num(s['running']['mean'])} / {_num(s['running']['max'])}",
                f"{_num(s['waiting']['mean'])} / {_num(s['waiting']['max'])}",
                _num(None if s.get("kv_cache_usage_max") is None
                     else s["kv_cache_usage_max"] * 100),
                f"{_num(ttft.get('p50'), 1)} / {_num(ttft.get('p99'), 1)}"])
        return _table(["endpoint", "generated tokens server / client",
                       "prompt tokens server / client", "preemptions", "prefix-cache hits",
                       "running mean / max", "waiting mean / max", "KV cache max %",
                       "server TTFT p50 / p99 ms"], rows, "server")

    @staticmethod
    def _system(system: dict | None) -> str:
        if not system:
            return ""
        host = system.get("client_host", {})
        parts = ["<h3>What ran</h3>",
                 _table(["client host", ""], [[_e(k), _e(v)] for k, v in host.items()]),
                 _table(["server", "version", "model", "max_model_len"],
                        [[_e(s["url"]), _e(s.get("version")), _e(s.get("model")),
                          _num(s.get("max_model_len"))] for s in system.get("servers", [])])]
        gpus = system.get("gpus", [])
        if gpus:
            parts.append(_table(["GPU", "name", "memory MiB", "util % mean / max",
                                 "power W mean / max"],
                                [[_e(g.get("index")), _e(g.get("name")),
                                  _num(g.get("memory_total_mib"), 0),
                                  _mean_max(g.get("utilization_pct")), _mean_max(g.get("power_w"))]
                                 for g in gpus]))
        return "".join(parts)

    def sla(self, folder: SlaFolder, prefix: str) -> None:
        from client_sut.report import plots

        sla = folder.sla
        confirmed, answer = sla.confirmed, sla.answer_qps
        failed = confirmed and sla.confirmation and sla.confirmation.failed_requests
        headline = (f"FAILED: {failed} in the confirmation at {answer:g} QPS" if failed
                    else f"{answer:g} QPS within the limits" if answer is not None
                    else "no answer: the search stopped" if sla.aborted
                    else "no QPS kept the limits") + ("" if confirmed else " (not confirmed)")
        limits = sla.limits
        facts = [f"limits: TTFT p99 {limits.ttft_ms:g} ms, TPOT p99 {limits.tpot_ms:g} "
                 f"ms ({'official' if limits.official else 'not the official ones'})",
                 f"binding constraint: {sla.binding_constraint}",
                 f"lowest failing QPS: {sla.lowest_failing_qps}",
                 figures.goodput_sentence(sla.goodput),
                 *(f"not compliant: {note}" for note in sla.compliance_notes),
                 *(f"client self-check at the answer: {warning}"
                   for warning in (sla.self_check.warnings if sla.self_check else ()))]
        if sla.interrupted:
            facts.append("the search was interrupted")
        if sla.aborted:
            facts.append(f"the search stopped: {sla.aborted.reason}")
        points = figures.sla_points(sla, folder.probe_tokens_per_s)
        def p99(point: figures.SlaPoint, constraint: str, limit, digits: int) -> str:
            shown = point.shown_p99(constraint)
            if shown is None and point.lost is not None:  # stopped for it: over, by proof
                return f"&gt; {_num(limit, 0)} (stopped)"
            return _num(shown, digits)

        rows = [[_num(p.target_qps, 2), _e(p.verdict), _num(p.duration_s, 0), _num(p.requests),
                 p99(p, "ttft", limits.ttft_ms, 1), p99(p, "tpot", limits.tpot_ms, 2),
                 _num(p.tokens_per_s), "confirmation" if p.confirmation else "probe", _e(p.reason)]
                for p in points]
        self.sections.append(
            f'<section class="sla"><h2>SLA search {_e(folder.label)}: {_e(sla.scenario)}'
            f'</h2><div class="verdict {"ok" if confirmed and not failed else "bad"}" '
            f'data-verdict>'
            f"{_e(headline)}</div>{_list(facts)}"
            + _table(["target QPS", "verdict", "least s", "requests", "TTFT p99 ms",
                      "TPOT p99 ms", "tokens/s", "", "why"], rows, "probes")
            + self.figure(prefix, "sla", plots.sla(points, limits, answer)) + "</section>")

    def sweep(self, folder: SweepFolder, prefix: str) -> None:
        from client_sut.report import plots

        sweep = folder.sweep
        points = figures.sweep_points(sweep)
        headline = (f"{len(points)} points measured ({sweep.verdict}); front: "
                    f"{', '.join(sweep.front) or 'none'}")
        facts = [f"goodput counts requests within TTFT {sweep.limits.ttft_ms:g} ms and TPOT "
                 f"{sweep.limits.tpot_ms:g} ms",
                 *(f"not compliant: {note}" for note in sweep.compliance_notes)]
        if sweep.aborted:
            facts.append(f"the sweep stopped: {sweep.aborted.reason}")
        rows = [[_e(p.name), _e(p.region), _num(p.concurrency), _num(p.target_qps, 2),
                 _num(p.system_tokens_per_s), _num(p.tokens_per_s_per_user),
                 _num(p.tokens_per_s_per_user_mean), _num((p.ttft_ms or {}).get("p90")),
                 _num((p.tpot_ms or {}).get("p90"), 2), _num(p.requests), _num(p.errors),
                 "front" if p.on_front else ""]
                for p in sweep.points]
        self.sections.append(
            f'<section class="sweep"><h2>Sweep {_e(folder.label)}</h2>'
            f'<div class="verdict {"ok" if sweep.verdict == "complete" else "bad"}" '
            f"data-verdict>{_e(headline)}</div>{_list(facts)}"
            + _table(["point", "region", "concurrency", "QPS", "system tokens/s",
                      "tokens/s per user (1000/TPOT p90)", "mean per user", "TTFT p90 ms",
                      "TPOT p90 ms", "requests", "errors", ""], rows, "points")
            + self.figure(prefix, "sweep", plots.sweep(points, sweep.step_function,
                                                       sweep.plan.regions))
            + "</section>")

    def sweep_comparison(self, sweeps: Sequence[SweepFolder]) -> None:
        """Each sweep against the first (the baseline), point by point: the change in each
        figure and whether it lies beyond the run-to-run noise (analysis/noise.py)."""
        from client_sut.analysis.noise import compare_sweeps
        from client_sut.report import plots

        baseline = sweeps[0]
        rows = []
        for candidate in sweeps[1:]:
            for d in compare_sweeps(baseline.sweep.point_figures(),
                                    candidate.sweep.point_figures()):
                verdict = {True: "yes", False: "no", None: "not estimated"}[d.beyond_noise]
                rows.append([_e(candidate.label), _e(d.point), _e(SWEEP_FIGURES[d.figure]),
                             _num(d.baseline), _num(d.candidate),
                             "-" if d.change is None else f"{d.change * 100:+.1f}%",
                             "-" if d.noise is None else f"±{_num(d.noise)}", verdict])
        curves = [(folder.label, figures.sweep_points(folder.sweep),
                   folder.sweep.step_function) for folder in sweeps]
        self.sections.insert(0, (
            f'<section class="sweeps"><h2>Sweeps side by side: against {_e(baseline.label)}</h2>'
            + _table(["sweep", "point", "figure", "baseline", "this sweep", "change",
                      "noise (1.96 x combined error)", "beyond the noise"], rows, "differences")
            + self.figure("", "sweeps", plots.sweeps_side_by_side(curves)) + "</section>"))

    def nodes(self, runs: Sequence[RunFolder]) -> None:
        """The runs as the nodes of one benchmark: each node's row, the combined figures, and
        how each was combined."""
        from client_sut.analysis.nodes import Node, combine_nodes

        combined = combine_nodes([Node(run.label, run.results, run.records) for run in runs])
        total = combined["combined"]
        rows = [[_e(r["node"]), _e(r["host"]), _e(", ".join(r["endpoints"])), _e(r["result"]),
                 _num(r["requests"]), _num(r["errors"]), _num(r["tokens_per_s"]),
                 _num(r["ttft_p99_ms"], 1), _num(r["tpot_p99_ms"], 2)]
                for r in combined["rows"]]
        rows.append([f"all {total['nodes']} nodes", "", "", _e(total["result"]),
                     _num(total["requests"]), _num(total["errors"]), _num(total["tokens_per_s"]),
                     _num(total["ttft_ms"]["p99"], 1), _num(total["tpot_ms"]["p99"], 2)])
        how = [f"{name.replace('_', ' ')}: {text}"
               for name, text in combined["how_combined"].items()]
        self.sections.insert(0, (
            f"<section class=\"nodes\"><h2>{total['nodes']} nodes, one benchmark "
            f"({_e(total['scenario'])})</h2>"
            + _table(["node", "client host", "endpoints", "result", "requests", "errors",
                      "tokens/s", "TTFT p99 ms", "TPOT p99 ms"], rows, "nodes")
            + _list(how) + "</section>"))

    def comparison(self, runs: Sequence[RunFolder]) -> None:
        from client_sut.report import plots

        rows = [figures.run_row(run.label, run.results) for run in runs]
        table = _table(["run", "scenario", "result", "TTFT p99 ms", "TPOT p99 ms", "tokens/s",
                        "requests", "errors"],
                       [[_e(r.label), _e(r.scenario), _e(r.result), _num(r.ttft_p99_ms, 1),
                         _num(r.tpot_p99_ms, 2), _num(r.tokens_per_s), _num(r.requests),
                         _num(r.errors)] for r in rows], "runs")
        self.sections.insert(0, "<section><h2>Runs side by side</h2>" + table
                             + self.figure("", "runs", plots.runs_side_by_side(rows))
                             + "</section>")

    def html(self, title: str) -> str:
        return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
                f"<h1>{_e(title)}</h1>{''.join(self.sections)}"
                f'<p class="note" id="method">{_e(METHOD)}</p></body></html>\n')


def _mean_max(figure: dict | None) -> str:
    if not figure:
        return "-"
    return f"{_num(figure.get('mean'))} / {_num(figure.get('max'))}"
