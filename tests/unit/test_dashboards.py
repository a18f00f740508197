"""The dashboard and the alert rules under ``compose/`` stay true to the code.

Every metric an expression names is one the services' metric objects export, every label value
it matches is a word the product code writes, every alert has a severity, a ``for:`` and a
runbook section in docs/operations.md, and every exported metric is on the dashboard and in the
docs. No promtool and no Grafana needed (docs/operations.md says how to check with promtool).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.metrics import build_metrics
from sinks.metrics import SinkMetrics
from stream.engines.metrics import StreamMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "compose" / "grafana" / "paynotify.json"
PROMETHEUS = ROOT / "compose" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "compose" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
PRODUCT = ("gateway", "stream", "sinks", "paynotify")

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset"}
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


@cache
def exported() -> dict[str, str]:
    """Return every series name the services export, mapped to its metric family's name."""
    families = [
        *build_metrics().registry.collect(),
        *StreamMetrics().registry.collect(),
        *SinkMetrics().registry.collect(),
    ]
    return {f.name + suffix: f.name for f in families for suffix in SUFFIXES[f.type]}


@cache
def product_words() -> frozenset[str]:
    """Return every string constant of the product code: the words a label value can be."""
    words: set[str] = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    words.add(node.value)
    return frozenset(words)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def panels() -> Iterator[dict[str, Any]]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p.get("targets", [])]


def all_exprs() -> list[str]:
    return dashboard_exprs() + [rule["expr"] for rule in rules()]


def jobs() -> set[str]:
    return {job["job_name"] for job in load_yaml(PROMETHEUS)["scrape_configs"]}


def metric_names(expr: str) -> set[str]:
    """Return the series names a PromQL expression selects (functions and labels left out)."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)\s*(\()?", text)
    return {m[1] for m in names if not m[2] and m[1] not in PROMQL_WORDS}


def matchers(expr: str) -> Iterator[tuple[str, str]]:
    """Yield (label, value) for each literal value a label matcher names (regex alternatives
    split; values with Grafana variables or wildcards left out)."""
    for label, op, value in MATCHER.findall(expr):
        for word in value.split("|") if "~" in op else [value]:
            if word and not re.search(r"[$*+?\\\[\]()]", word):
                yield label, word


def slugs(markdown: str) -> set[str]:
    """Return the anchors GitHub gives the headings of a Markdown text."""
    headings = re.findall(r"^#+\s+(.*)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_metric_names_selectors_and_functions_only_series() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[5m]))) / '
        "sum(rate(b_total[$__rate_interval])) > 0 and up == 0"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up"}


@pytest.mark.parametrize("expr", all_exprs())
def test_expression_names_only_exported_metrics(expr: str) -> None:
    unknown = metric_names(expr) - set(exported()) - {"up"}
    assert not unknown, f"not exported by any service: {sorted(unknown)}"
    assert metric_names(expr), "an expression selects no metric"


@pytest.mark.parametrize("expr", all_exprs())
def test_expression_label_values_are_written_by_the_code(expr: str) -> None:
    for label, value in matchers(expr):
        known = jobs() if label == "job" else product_words()
        assert value in known, f"{label}={value!r} is not a value the code or scrape config has"


def test_every_exported_metric_is_on_the_dashboard_and_in_the_docs() -> None:
    # the client library's process_* series (the stream worker's) need not all be shown; the one
    # that is (process_start_time_seconds, restarts) is checked by the expression tests above
    ours = {f for f in exported().values() if not f.startswith("process_")}
    shown = {exported()[n] for e in dashboard_exprs() for n in metric_names(e) if n in exported()}
    assert ours - shown == set()
    docs = OPERATIONS.read_text(encoding="utf-8")
    assert [f for f in ours if f not in docs] == []


def test_dashboard_structure_imports_in_grafana() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        pos = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(pos) and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] in ("row", "text"):
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_alert_rules_have_for_severity_and_a_runbook_section() -> None:
    anchors = slugs(OPERATIONS.read_text(encoding="utf-8"))
    names = [rule["alert"] for rule in rules()]
    assert names and len(names) == len(set(names))
    for rule in rules():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, rule["alert"]


def test_prometheus_config_loads_the_rules_and_scrapes_every_alerted_job() -> None:
    config = load_yaml(PROMETHEUS)
    assert [(PROMETHEUS.parent / f).resolve() for f in config["rule_files"]] == [ALERTS]
    for job in config["scrape_configs"]:
        assert job["static_configs"][0]["targets"], job["job_name"]
    alerted = {v for r in rules() for label, v in matchers(r["expr"]) if label == "job"}
    assert alerted and alerted <= jobs()
