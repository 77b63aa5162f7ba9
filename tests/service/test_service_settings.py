"""Settings precedence, one "A beats B" rule per test, and the exact deployment env names."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbilling.config.settings import DEFAULT_DATABASE_URL, PROXY_ENV_FIELDS, Settings
from llmbilling.core.provisioning import ProxySettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("LLMBILLING_DATABASE_URL", "MOLECULE_LLM_BILLING_MODE", *PROXY_ENV_FIELDS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_default_database_is_a_sqlite_file_in_the_working_directory() -> None:
    assert Settings().database_url == DEFAULT_DATABASE_URL == "sqlite:///./llmbilling.sqlite3"


def test_precedence_dotenv_over_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LLMBILLING_DATABASE_URL=sqlite:///dotenv.db\n")
    assert Settings().database_url == "sqlite:///dotenv.db"


def test_precedence_env_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("LLMBILLING_DATABASE_URL=sqlite:///dotenv.db\n")
    monkeypatch.setenv("LLMBILLING_DATABASE_URL", "sqlite:///env.db")
    assert Settings().database_url == "sqlite:///env.db"


def test_precedence_cli_flag_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBILLING_DATABASE_URL", "sqlite:///env.db")
    assert Settings(database_url="sqlite:///flag.db").database_url == "sqlite:///flag.db"


def test_the_deployment_org_default_is_read_by_its_exact_platform_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOLECULE_LLM_BILLING_MODE", " BYOK")
    monkeypatch.setenv("LLMBILLING_MOLECULE_LLM_BILLING_MODE", "disabled")
    assert Settings().deployment_billing_mode == " BYOK"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"MOLECULE_LLM_BASE_URL": "https://a", "MOLECULE_LLM_USAGE_TOKEN": "t"},
            ("https://a", True),
        ),
        ({"OPENAI_BASE_URL": "https://b", "OPENAI_API_KEY": "k"}, ("https://b", True)),
        ({"MOLECULE_LLM_BASE_URL": "https://a"}, ("https://a", False)),
        ({}, (None, False)),
    ],
)
def test_proxy_settings_come_from_the_deployment_env(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple[str | None, bool]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxy = ProxySettings.from_env(Settings().proxy_env())
    assert (proxy.base_url, proxy.configured) == expected


def test_secret_settings_never_show_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLECULE_LLM_USAGE_TOKEN", "token-SENTINEL")
    monkeypatch.setenv("LLMBILLING_SECRET_KEYS", "v1:key-SENTINEL")
    assert "SENTINEL" not in repr(Settings())
