"""The reproduction report: one row per claim of the paper, beside what we measured.

A :class:`ClaimResult` carries the paper's statement, our measurement, a verdict
(``reproduced`` / ``partly`` / ``not reproduced`` / ``failed to run``), the reason, the figures
and the raw numbers. :func:`write_report` renders ``report.md``, a self-contained
``report.html`` (figures embedded as base64 PNG) and ``report.json``.
"""

from __future__ import annotations

import base64
import html
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from dualjax import outputs

VERDICTS = ("reproduced", "partly", "not reproduced", "failed to run")
REPORT_FILES = ("report.json", "report.md", "report.html")  # report.json last written: the summary
_BADGE = {"reproduced": "#2e7d32", "partly": "#ef6c00", "not reproduced": "#c62828", "failed to run": "#6a1b9a"}


@dataclass
class ClaimResult:
    key: str
    title: str
    paper: str
    measured: str
    verdict: str
    why: str
    figures: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


class Finding(NamedTuple):
    """What a claim's ``row`` states about its measurement: the text, the verdict computed from it,
    the reason, its figures, and the numbers kept in report.json (None: the measurement itself).
    The runner adds the claim's KEY, TITLE and PAPER to make the :class:`ClaimResult`."""

    measured: str
    verdict: str
    why: str
    figures: Sequence[str] = ()
    data: dict[str, Any] | None = None


def graded(full: bool, partial: bool = False) -> str:
    """The verdict of a check: ``reproduced`` if ``full`` holds, else ``partly`` if ``partial``,
    else ``not reproduced``."""
    return "reproduced" if full else ("partly" if partial else "not reproduced")


def claim_result(module, finding: Finding, measured: dict[str, Any]) -> ClaimResult:
    """The report row of a claim module (its KEY, TITLE, PAPER) and its finding on ``measured``."""
    return ClaimResult(module.KEY, module.TITLE, module.PAPER, finding.measured, finding.verdict, finding.why,
                       list(finding.figures), measured if finding.data is None else finding.data)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def render_markdown(results: list[ClaimResult], meta: dict[str, Any], out_dir: Path) -> str:
    lines = [
        "# dualjax reproduction report",
        "",
        f"Paper: *Dual Perspectives on Non-Contrastive Self-Supervised Learning* (ICLR 2026). "
        f"Mode: **{meta.get('mode', 'quick')}**; total time {meta.get('seconds', 0):.0f} s; "
        f"devices: {meta.get('devices', '?')}; jax {meta.get('jax', '?')}.",
        "",
        "| claim | the paper says | we measured | verdict | why |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| **{_md_cell(r.title)}** | {_md_cell(r.paper)} | {_md_cell(r.measured)} | **{r.verdict}** | {_md_cell(r.why)} |"
        )
    lines += ["", "## Figures", ""]
    for r in results:
        for fig in r.figures:
            rel = Path(fig).resolve().relative_to(out_dir.resolve()) if Path(fig).resolve().is_relative_to(out_dir.resolve()) else fig
            lines.append(f"**{r.title}** — `{rel}`\n\n![{r.title}]({rel})\n")
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    lines += ["## Verdict counts", "", ", ".join(f"{v}: {n}" for v, n in counts.items() if n), ""]
    return "\n".join(lines)


def render_html(results: list[ClaimResult], meta: dict[str, Any]) -> str:
    rows = []
    for r in results:
        color = _BADGE[r.verdict]
        rows.append(
            "<tr>"
            f"<td><b>{html.escape(r.title)}</b></td><td>{html.escape(r.paper)}</td>"
            f"<td>{html.escape(r.measured)}</td>"
            f"<td><span style='background:{color};color:white;padding:2px 6px;border-radius:4px'>{html.escape(r.verdict)}</span></td>"
            f"<td>{html.escape(r.why)}</td></tr>"
        )
    figs = []
    for r in results:
        for fig in r.figures:
            path = Path(fig)
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                figs.append(f"<figure><img src='data:image/png;base64,{data}' style='max-width:100%'>"
                            f"<figcaption>{html.escape(r.title)} — {html.escape(path.name)}</figcaption></figure>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>dualjax reproduction report</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:6px;vertical-align:top;font-size:14px}"
        "figure{margin:1.5em 0}</style></head><body>"
        "<h1>dualjax reproduction report</h1>"
        f"<p>Paper: <i>Dual Perspectives on Non-Contrastive Self-Supervised Learning</i> (ICLR 2026). "
        f"Mode: <b>{html.escape(str(meta.get('mode', 'quick')))}</b>; total time {meta.get('seconds', 0):.0f} s; "
        f"devices: {html.escape(str(meta.get('devices', '?')))}.</p>"
        "<table><tr><th>claim</th><th>the paper says</th><th>we measured</th><th>verdict</th><th>why</th></tr>"
        + "".join(rows)
        + "</table><h2>Figures</h2>"
        + "".join(figs)
        + "</body></html>"
    )


def write_report(results: list[ClaimResult], meta: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """``report.md``, ``report.html`` and last ``report.json`` (strict JSON), each atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "report.json"}
    outputs.write_text(paths["md"], render_markdown(results, meta, out))
    outputs.write_text(paths["html"], render_html(results, meta))
    outputs.write_json(paths["json"], {"meta": _jsonable(meta), "claims": [_jsonable(asdict(r)) for r in results]})
    return paths
