"""${VAR} interpolation, *_file secrets and Secret wrapping; no secret value ever in a message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from multicloud_collector.config import ConfigError, format_problems, load_config, load_config_text
from multicloud_collector.config.resolve import is_secret_header, is_secret_key
from multicloud_collector.secrets import Secret

CANARY = "canary-s3cr3t-7f3a9"
PROVIDERS = "providers:\n  vultr: {category: gpu-cloud}\n  onprem: {category: on-prem}\n"


def account(body: str, enabled: bool = True) -> str:
    return (
        PROVIDERS
        + "accounts:\n"
        + f"  - id: a\n    customer: c\n    provider: vultr\n    enabled: {str(enabled).lower()}\n"
        + "\n".join("    " + line for line in body.strip().splitlines())
        + "\n"
    )


def load_errors(text: str, env: dict[str, str], **kw: object) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, env=env, **kw)  # type: ignore[arg-type]
    return exc.value


def all_text(exc: ConfigError) -> str:
    return format_problems(exc.problems + exc.warnings) + str(exc) + repr(exc.problems)


def test_env_variable_is_interpolated_and_wrapped() -> None:
    config = load_config_text(account("api: {api_key: '${VULTR_API_KEY}'}"), env={"VULTR_API_KEY": CANARY})
    key = config.accounts[0].api["api_key"]
    assert isinstance(key, Secret) and key.reveal() == CANARY
    assert CANARY not in repr(config)
    assert config.warnings == ()


def test_interpolation_in_any_string_with_default_and_escape() -> None:
    text = account(
        """
labels: {region: "${REGION:-eu}", zone: "${ZONE:-z1}", price: "$$5", mixed: "a-${REGION}-b"}
exporters:
  - url: "http://${HOST}:9100/metrics"
    kind: node
"""
    )
    config = load_config_text(text, env={"HOST": "10.1.2.3", "REGION": "us", "ZONE": ""})
    a = config.accounts[0]
    assert a.labels == {"region": "us", "zone": "z1", "price": "$5", "mixed": "a-us-b"}
    assert a.exporters[0].url == "http://10.1.2.3:9100/metrics"


def test_interpolated_durations_and_numbers_are_typed() -> None:
    text = "collector: {interval: '${IV:-30s}', max_concurrency: '${MC}'}\n"
    config = load_config_text(text, env={"MC": "12"})
    assert config.collector.interval == 30.0 and config.collector.max_concurrency == 12


def test_missing_variable_names_variable_and_path_not_value() -> None:
    exc = load_errors(account("api: {api_key: '${VULTR_API_KEY}', other: '" + CANARY + "'}"), env={})
    assert [str(p) for p in exc.problems] == [
        "accounts[0].api.api_key: environment variable VULTR_API_KEY is not set"
    ]
    assert CANARY not in all_text(exc)


def test_missing_variable_in_disabled_account_is_warning() -> None:
    config = load_config_text(account("api: {api_key: '${VULTR_API_KEY}'}", enabled=False), env={})
    assert [str(w) for w in config.warnings] == [
        "accounts[0].api.api_key: environment variable VULTR_API_KEY is not set (ignored: disabled)"
    ]


def test_missing_variable_in_account_of_disabled_provider_is_warning() -> None:
    text = account("exporters: [{url: 'http://${HOST}:9100/m'}]").replace(
        "vultr: {category: gpu-cloud}", "vultr: {category: gpu-cloud, enabled: false}"
    )
    config = load_config_text(text, env={})
    assert [w.severity for w in config.warnings] == ["warning"]
    # the unresolved URL is not checked a second time
    assert "not a valid" not in format_problems(config.warnings)


def test_missing_variable_in_disabled_provider_is_warning() -> None:
    text = "providers:\n  p: {category: general, enabled: false, api_base_url: '${P_URL}'}\n"
    config = load_config_text(text, env={})
    assert [str(w) for w in config.warnings] == [
        "providers.p.api_base_url: environment variable P_URL is not set (ignored: disabled)"
    ]


def test_invalid_reference_syntax() -> None:
    exc = load_errors(account("labels: {x: '${1BAD}'}"), env={})
    assert [str(p) for p in exc.problems] == [
        "accounts[0].labels.x: invalid reference '${1BAD}' (use ${VAR} or ${VAR:-default})"
    ]


def test_inline_literal_secret_is_a_warning_without_value() -> None:
    config = load_config_text(account(f"api: {{api_key: {CANARY}, token: 12345}}"), env={})
    messages = [str(w) for w in config.warnings]
    hint = "inline secret; put secrets in the environment or a file (${VAR} or <key>_file)"
    assert messages == [f"accounts[0].api.api_key: {hint}", f"accounts[0].api.token: {hint}"]
    assert config.accounts[0].api["token"] == Secret("12345")
    assert CANARY not in format_problems(config.warnings)


def test_secret_file_is_read_and_trailing_newline_stripped(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(CANARY + "\n")
    config = load_config_text(account("api: {api_key_file: key}"), env={}, base_dir=tmp_path)
    assert config.accounts[0].api == {"api_key": Secret(CANARY)}
    assert config.warnings == ()


def test_secret_file_path_may_use_variables(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter22\r\n")
    text = "sink:\n  kind: clickhouse\n  clickhouse: {url: 'http://ch:8123', password_file: '${DIR}/pw'}\n"
    config = load_config_text(text, env={"DIR": str(tmp_path)})
    assert config.sink.clickhouse is not None and config.sink.clickhouse.password == Secret("hunter22")


def test_config_file_relative_secret_path(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "tok").write_text("tok-value")
    cfg = tmp_path / "providers.yaml"
    cfg.write_text(account("exporters: [{url: 'http://h:1/m', bearer_token_file: secrets/tok}]"))
    config = load_config(cfg, env={})
    assert config.accounts[0].exporters[0].bearer_token == Secret("tok-value")


def test_unreadable_secret_file_names_path_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    exc = load_errors(account(f"api: {{api_key_file: {missing}}}"), env={})
    assert [str(p) for p in exc.problems] == [
        f"accounts[0].api.api_key_file: cannot read file {missing}: No such file or directory"
    ]


def test_unreadable_secret_file_in_disabled_account_is_warning(tmp_path: Path) -> None:
    config = load_config_text(account(f"api: {{api_key_file: {tmp_path / 'x'}}}", enabled=False), env={})
    assert config.warnings[0].severity == "warning"
    assert "cannot read file" in config.warnings[0].message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_secret_file(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root here
    f = tmp_path / "k"
    f.write_text(CANARY)
    f.chmod(0)
    exc = load_errors(account(f"api: {{api_key_file: {f}}}"), env={})
    assert "Permission denied" in str(exc) and CANARY not in all_text(exc)


def test_secret_file_content_never_in_problems(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_text(CANARY * 10_000)
    exc = load_errors(account(f"api: {{api_key_file: {big}}}"), env={})
    assert "is larger than 64KiB" in str(exc)
    assert CANARY not in all_text(exc)


def test_binary_secret_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "bin"
    f.write_bytes(b"\xff\xfe\x00")
    exc = load_errors(account(f"api: {{api_key_file: {f}}}"), env={})
    assert [str(p) for p in exc.problems] == [
        f"accounts[0].api.api_key_file: cannot read file {f}: not UTF-8 text"
    ]


def test_empty_secret_file_is_warning(tmp_path: Path) -> None:
    (tmp_path / "e").write_text("\n")
    config = load_config_text(account("api: {api_key_file: e}"), env={}, base_dir=tmp_path)
    assert [str(w) for w in config.warnings] == [
        f"accounts[0].api.api_key_file: file {tmp_path / 'e'} is empty"
    ]


def test_both_value_and_file_is_an_error(tmp_path: Path) -> None:
    exc = load_errors(account("api: {api_key: '${K}', api_key_file: /x}"), env={"K": "v"})
    assert [str(p) for p in exc.problems] == [
        "accounts[0].api.api_key_file: give either 'api_key' or 'api_key_file', not both"
    ]


def test_secret_file_value_must_be_a_path() -> None:
    exc = load_errors(account("api: {api_key_file: [1]}"), env={})
    assert [str(p) for p in exc.problems] == ["accounts[0].api.api_key_file: must be a file path"]
    config = load_config_text(account("api: {api_key_file: null, region: x}"), env={})
    assert config.accounts[0].api == {"api_key": None, "region": "x"}


def test_missing_variable_in_secret_file_path() -> None:
    exc = load_errors(account("api: {api_key_file: '${NOPE}/k'}"), env={})
    assert [str(p) for p in exc.problems] == [
        "accounts[0].api.api_key_file: environment variable NOPE is not set"
    ]


def test_non_secret_file_keys_are_left_alone() -> None:
    text = "sink:\n  clickhouse: {url: 'http://ch:8123', ca_file: /etc/ca.pem}\n"
    config = load_config_text(text, env={})
    assert config.sink.clickhouse is not None and config.sink.clickhouse.ca_file == "/etc/ca.pem"
    acct = load_config_text(account("api: {credentials_file: /etc/gcp.json}"), env={})
    assert acct.accounts[0].api == {"credentials_file": "/etc/gcp.json"}


def test_labels_named_like_secrets_are_not_secrets() -> None:
    config = load_config_text(
        account("labels: {key: k1, token: t1}\nexporters: [{url: 'http://h:1/m'}]"), env={}
    )
    assert config.accounts[0].labels == {"key": "k1", "token": "t1"}
    assert config.warnings == ()


def test_empty_bearer_token_is_none() -> None:
    text = account(
        "prometheus: {url: 'http://p:9090', bearer_token: '${T:-}', queries: [{name: q, expr: up}]}"
    )
    config = load_config_text(text, env={})
    assert config.accounts[0].prometheus is not None and config.accounts[0].prometheus.bearer_token is None


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("key", True),
        ("bearer_token", True),
        ("password", True),
        ("application_secret", True),
        ("consumer_key", True),
        ("apikey", True),
        ("secret", True),
        ("region", False),
        ("monkey", False),
        ("tokens_per_page", False),
        ("keyring_path", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("X-Api-Key", True),
        ("X-Auth-Token", True),
        ("Cookie", True),
        ("Proxy-Authorization", True),
        ("Accept", False),
        ("X-Scope-OrgID", False),
    ],
)
def test_is_secret_header(name: str, secret: bool) -> None:
    assert is_secret_header(name) is secret


def test_password_in_url_is_warning_unless_from_environment() -> None:
    text = account(f"exporters: [{{url: 'http://u:{CANARY}@h:9100/m'}}]")
    config = load_config_text(text, env={})
    assert [str(w) for w in config.warnings] == [
        "accounts[0].exporters[0].url: password in URL; use ${VAR} for it, or headers/bearer_token"
    ]
    assert CANARY not in format_problems(config.warnings)
    text = account("exporters: [{url: 'http://u:${PW}@h:9100/m'}]")
    assert load_config_text(text, env={"PW": CANARY}).warnings == ()
