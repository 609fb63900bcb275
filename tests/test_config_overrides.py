"""MCC_* environment overrides."""

from __future__ import annotations

import pytest

from multicloud_collector.config import ConfigError, load_config_text
from multicloud_collector.config.overrides import account_enabled_var, env_token, provider_enabled_var

BASE = """
providers:
  vultr: {category: gpu-cloud}
  my-cloud: {category: general}
accounts:
  - {id: acct-1, customer: c, provider: vultr, exporters: [{url: "http://h:1/m"}]}
  - {id: eu.2, customer: c, provider: my-cloud, enabled: false, exporters: [{url: "http://h:2/m"}]}
"""


def test_variable_names() -> None:
    assert env_token("my-cloud.eu") == "MY_CLOUD_EU"
    assert provider_enabled_var("vultr") == "MCC_PROVIDER_VULTR_ENABLED"
    assert account_enabled_var("acct-1") == "MCC_ACCOUNT_ACCT_1_ENABLED"


@pytest.mark.parametrize(("word", "value"), [("false", False), ("0", False), ("No", False), ("TRUE", True)])
def test_provider_override(word: str, value: bool) -> None:
    config = load_config_text(BASE, env={"MCC_PROVIDER_VULTR_ENABLED": word})
    assert config.providers["vultr"].enabled is value
    assert [a.id for a in config.enabled_accounts()] == (["acct-1"] if value else [])


def test_account_override_enables_disabled_account() -> None:
    config = load_config_text(BASE, env={"MCC_ACCOUNT_EU_2_ENABLED": "yes"})
    assert [a.id for a in config.enabled_accounts()] == ["acct-1", "eu.2"]


def test_account_override_disables_and_makes_missing_variables_warnings() -> None:
    text = BASE.replace('"http://h:1/m"', '"http://${HOST}:1/m"')
    with pytest.raises(ConfigError):
        load_config_text(text, env={})
    config = load_config_text(text, env={"MCC_ACCOUNT_ACCT_1_ENABLED": "false"})
    assert config.enabled_accounts() == ()
    assert [w.severity for w in config.warnings] == ["warning"]


def test_invalid_boolean_names_the_variable() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config_text(BASE, env={"MCC_PROVIDER_MY_CLOUD_ENABLED": "maybe"})
    assert [str(p) for p in exc.value.problems] == [
        "MCC_PROVIDER_MY_CLOUD_ENABLED: invalid boolean 'maybe' (use true/false/1/0/yes/no)"
    ]


def test_empty_override_is_ignored() -> None:
    config = load_config_text(BASE, env={"MCC_PROVIDER_VULTR_ENABLED": "", "MCC_LISTEN": " "})
    assert config.providers["vultr"].enabled and config.collector.listen == "127.0.0.1:9464"


def test_unmatched_override_is_a_warning() -> None:
    config = load_config_text(BASE, env={"MCC_PROVIDER_VULTER_ENABLED": "true", "MCC_ACCOUNT_X_ENABLED": "1"})
    assert [str(w) for w in config.warnings] == [
        "MCC_ACCOUNT_X_ENABLED: matches no account in the config; ignored",
        "MCC_PROVIDER_VULTER_ENABLED: matches no provider in the config; ignored",
    ]


def test_sink_kind_listen_and_data_dir() -> None:
    env = {"MCC_SINK_KIND": "embedded", "MCC_LISTEN": "0.0.0.0:9000", "MCC_DATA_DIR": "/data/mcc/"}
    config = load_config_text("sink: {kind: clickhouse}\ncollector: {listen: '127.0.0.1:1'}\n", env=env)
    assert config.sink.kind == "embedded"
    assert config.collector.listen == "0.0.0.0:9000"
    assert config.sink.embedded.path == "/data/mcc/chdb"
    assert config.collector.state_dir == "/data/mcc/state"


def test_overrides_create_missing_sections_and_are_not_interpolated() -> None:
    config = load_config_text("", env={"MCC_DATA_DIR": "/d/${X}", "MCC_LISTEN": "127.0.0.1:9999"})
    assert config.sink.embedded.path == "/d/${X}/chdb"
    assert config.collector.listen == "127.0.0.1:9999"
    config = load_config_text("sink:\ncollector:\n", env={"MCC_DATA_DIR": "/d"})
    assert config.collector.state_dir == "/d/state"


def test_sink_kind_override_is_validated() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config_text("", env={"MCC_SINK_KIND": "clickhouse"})
    assert [str(p) for p in exc.value.problems] == [
        "sink.clickhouse.url: is required when sink.kind is clickhouse"
    ]


def test_overrides_skip_sections_of_wrong_type() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config_text("sink: 3\ncollector: [1]\n", env={"MCC_DATA_DIR": "/d", "MCC_SINK_KIND": "embedded"})
    assert [str(p) for p in exc.value.problems] == [
        "sink: expected a mapping, got integer",
        "collector: expected a mapping, got list",
    ]
