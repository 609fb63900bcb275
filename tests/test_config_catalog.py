"""The shipped providers.yaml, .env.example and docs stay complete and consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from multicloud_collector.config import load_config, load_config_text
from multicloud_collector.config.model import CAPABILITIES, CATEGORIES
from multicloud_collector.config.overrides import provider_enabled_var

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "providers.yaml"
REQUIRED_PROVIDERS = {
    "vultr", "runpod", "digitalocean", "lambda", "coreweave", "paperspace", "linode", "hetzner", "ovhcloud",
    "kubernetes", "docker", "aws", "gcp", "azure", "scaleway", "vastai", "tensordock", "crusoe", "nebius",
    "onprem", "oci", "genesiscloud", "fluidstack", "jarvislabs", "latitude",
}  # fmt: skip
# Base URLs documented in research/providers.md; nothing else may be filled in.
RESEARCHED_BASE_URLS = {
    "vultr": "https://api.vultr.com/v2",
    "runpod": "https://api.runpod.io",  # GraphQL host (research: api.runpod.io/graphql)
    "digitalocean": "https://api.digitalocean.com/v2",
    "lambda": "https://cloud.lambda.ai/api/v1",
    "coreweave": "https://api.coreweave.com",
    "paperspace": "https://api.paperspace.com/v1",
    "linode": "https://api.linode.com/v4",
    "hetzner": "https://api.hetzner.cloud/v1",
    "ovhcloud": "https://eu.api.ovh.com/1.0",
    "kubernetes": "https://kubernetes.default.svc",
}


def env_example_vars() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def test_shipped_config_loads_without_errors_and_without_env() -> None:
    config = load_config(SHIPPED, env={})
    assert config.enabled_accounts() == ()  # examples are disabled
    assert len(config.accounts) >= 2
    assert all(w.severity == "warning" for w in config.warnings)
    assert [str(w) for w in config.warnings] == [
        "accounts[1].api.api_key: environment variable VULTR_API_KEY is not set (ignored: disabled)"
    ]


def test_shipped_catalog_is_complete() -> None:
    config = load_config(SHIPPED, env={})
    assert len(config.providers) >= 24
    assert set(config.providers) >= REQUIRED_PROVIDERS
    categories = set()
    for name, spec in config.providers.items():
        assert spec.display_name and spec.display_name != name, name
        assert spec.category in CATEGORIES, name
        assert spec.capabilities and set(spec.capabilities) <= set(CAPABILITIES), name
        assert "prometheus" in spec.capabilities, name
        assert spec.exporter_ports.get("node") == 9100, name
        assert spec.requirements, name
        assert spec.enabled, name
        categories.add(spec.category)
    assert categories == set(CATEGORIES)


def test_api_base_urls_come_from_research_only() -> None:
    config = load_config(SHIPPED, env={})
    filled = {n: s.api_base_url for n, s in config.providers.items() if s.api_base_url}
    assert filled == RESEARCHED_BASE_URLS
    for name, spec in config.providers.items():
        if spec.api_base_url is None and name not in {"docker", "onprem"}:
            assert spec.api_auth is None and spec.adapter is None, name


def test_shipped_example_accounts_validate_when_enabled() -> None:
    env = {
        "MCC_ACCOUNT_LOCAL_NODE_ENABLED": "true",
        "MCC_ACCOUNT_VULTR_MAIN_ENABLED": "true",
        "MCC_ACCOUNT_K8S_PROMETHEUS_ENABLED": "true",
        "VULTR_API_KEY": "vk-canary",
    }
    config = load_config(SHIPPED, env=env)
    assert [a.id for a in config.enabled_accounts()] == ["local-node", "vultr-main", "k8s-prometheus"]
    assert config.warnings == ()


def test_env_example_lists_every_provider_switch_and_variable() -> None:
    listed = env_example_vars()
    config = load_config(SHIPPED, env={})
    for name in config.providers:
        assert provider_enabled_var(name) in listed, name
    for account in config.accounts:
        assert f"MCC_ACCOUNT_{account.id.upper().replace('-', '_')}_ENABLED" in listed
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", SHIPPED.read_text()))
    assert referenced, "providers.yaml references no variables?"
    assert referenced <= listed, referenced - listed
    assert {"MCC_CONFIG", "MCC_LISTEN", "MCC_SINK_KIND", "MCC_DATA_DIR", "CLICKHOUSE_PASSWORD"} <= listed


def test_env_example_has_a_comment_above_each_variable() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", line):
            above = lines[i - 1]
            assert above.startswith("# ") and "=" not in above.split(" ", 2)[1], line


def test_docs_mention_every_key() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    keys = {
        "interval", "scrape_timeout", "max_concurrency", "listen", "state_dir", "shutdown_grace", "max_tries",
        "base_delay", "max_delay", "body_size", "samples_per_scrape", "labels_per_series",
        "label_name_length",
        "label_value_length", "line_length", "level", "format", "index", "count", "kind", "max_rows",
        "max_bytes", "max_age", "max_buffer_bytes", "path", "database", "url", "user", "password", "ca_file",
        "verify", "timeout", "compression", "cluster", "display_name", "category", "capabilities",
        "api_base_url", "api_auth", "exporter_ports", "requirements", "docs_url", "adapter", "enabled", "id",
        "customer", "provider", "labels", "prometheus", "exporters", "api", "name", "headers", "bearer_token",
        "queries", "expr", "MCC_CONFIG", "MCC_LISTEN", "MCC_SINK_KIND", "MCC_DATA_DIR",
    }  # fmt: skip
    missing = {k for k in keys if not re.search(rf"`(?:[\w\[\]]+\.)*{k}`", docs)}
    assert not missing, missing


def test_docs_prometheus_only_example_loads() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    match = re.search(r"<!-- example: prometheus-only -->\s*```yaml\n(.*?)```", docs, re.DOTALL)
    assert match, "prometheus-only example missing from docs"
    config = load_config_text(match.group(1), env={"ACME_PROM_TOKEN": "t-canary"})
    (account,) = config.enabled_accounts()
    assert config.providers[account.provider].capabilities == ("prometheus", "dcgm")
    assert config.warnings == ()


@pytest.mark.parametrize("var", ["MCC_PROVIDER_VULTR_ENABLED", "MCC_PROVIDER_ONPREM_ENABLED"])
def test_shipped_provider_switch_works(var: str) -> None:
    config = load_config(SHIPPED, env={var: "false"})
    name = var.removeprefix("MCC_PROVIDER_").removesuffix("_ENABLED").lower()
    assert config.providers[name].enabled is False


def test_every_variable_named_in_the_docs_is_in_env_example() -> None:
    """Adapter READMEs and docs show `${VAR}` references; users look them up in .env.example."""
    root = Path(__file__).resolve().parents[1]
    docs = [
        *root.glob("docs/*.md"),
        *root.glob("multicloud_collector/providers/*/README.md"),
        *root.glob("plugins/*/README.md"),
    ]
    named = {m for p in docs for m in re.findall(r"\$\{([A-Z][A-Z0-9_]+)", p.read_text())} - {"ENV", "VAR"}
    env_example = (root / ".env.example").read_text()
    assert named and sorted(v for v in named if f"{v}=" not in env_example) == []
