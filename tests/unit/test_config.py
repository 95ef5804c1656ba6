from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harvester.config import load_settings, settings_from_mapping
from harvester.errors import ConfigError
from tests.helpers import config_dict, write_config

REPO = Path(__file__).resolve().parents[2]


def test_example_config_loads_through_the_real_loader() -> None:
    settings = load_settings(REPO / "config.example.yaml")
    assert settings.jenkins.url == "https://jenkins.example.com/"
    assert settings.jenkins.include == ["**"]
    assert settings.sei.auth_scheme == "Bearer"
    assert settings.sei.max_attempts == 10
    assert settings.harvest.since == "7d"
    assert settings.mapping.result["UNSTABLE"] == "failure"
    assert settings.instance_url == "https://jenkins.example.com/"


def test_example_config_documents_every_key() -> None:
    example = yaml.safe_load((REPO / "config.example.yaml").read_text())
    settings = load_settings(REPO / "config.example.yaml")
    for section, model in settings:
        documented = set(example[section])
        # *_file alternatives are documented as comments next to their secret
        fields = {name for name in type(model).model_fields if not name.endswith("_file")}
        assert fields <= documented, (section, fields - documented)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["sei"].update(instance_guid="nope"), "sei.instance_guid: not a valid UUID"),
        (lambda d: d.update(bogus=1), "bogus: unknown key"),
        (lambda d: d["jenkins"].update(colour="blue"), "jenkins.colour: unknown key"),
        (
            lambda d: d["jenkins"].update(verify_ssl=False),
            "jenkins.verify_ssl: unknown key; did you mean verify_tls?",
        ),
        (lambda d: d.update(jenkin={}), "jenkin: unknown key; did you mean jenkins?"),
        (lambda d: d["jenkins"].pop("api_token"), "jenkins.api_token: required"),
        (lambda d: d["sei"].pop("token"), "sei.token: required"),
        (lambda d: d["jenkins"].pop("url"), "jenkins.url: required"),
        (lambda d: d["jenkins"].update(url="jenkins.local"), "jenkins.url: must be an http"),
        (lambda d: d["harvest"].update(since="last week"), "harvest.since: 'last week' is not"),
        (lambda d: d["server"].update(listen="9465"), "server.listen: must be HOST:PORT"),
        (lambda d: d["jenkins"].update(max_concurrency=0), "jenkins.max_concurrency:"),
    ],
)
def test_errors_name_the_field(change, field: str) -> None:
    data = config_dict(harvest={}, server={})
    change(data)
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data)
    assert str(caught.value).startswith(field)
    assert "secret-token" not in str(caught.value)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path / "c.yaml")
    monkeypatch.setenv("HARVESTER_SEI__INSTANCE_NAME", "from-env")
    monkeypatch.setenv("HARVESTER_JENKINS__MAX_CONCURRENCY", "7")
    monkeypatch.setenv("HARVESTER_JENKINS__INCLUDE", '["team-a/**"]')
    settings = load_settings(path)
    assert settings.sei.instance_name == "from-env"
    assert settings.sei.instance_guid == config_dict()["sei"]["instance_guid"]  # rest of file kept
    assert settings.jenkins.max_concurrency == 7
    assert settings.jenkins.include == ["team-a/**"]


def test_unknown_environment_key_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "c.yaml")
    monkeypatch.setenv("HARVESTER_SEI__INSTANCE_NAM", "typo")
    with pytest.raises(ConfigError, match=r"^HARVESTER_SEI__INSTANCE_NAM: .*names no setting"):
        load_settings(path)


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "jt").write_text("from-file-token\n")
    (tmp_path / "st").write_text("sei-file-token")
    data = config_dict()
    data["jenkins"].pop("api_token")
    data["jenkins"]["api_token_file"] = str(tmp_path / "jt")
    data["sei"].pop("token")
    data["sei"]["token_file"] = str(tmp_path / "st")
    settings = settings_from_mapping(data)
    assert settings.jenkins.secret.get_secret_value() == "from-file-token"
    assert settings.sei.secret.get_secret_value() == "sei-file-token"
    assert "from-file-token" not in repr(settings)


def test_secret_and_secret_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "jt").write_text("x")
    data = config_dict()
    data["jenkins"]["api_token_file"] = str(tmp_path / "jt")
    with pytest.raises(ConfigError, match=r"^jenkins.api_token: set either"):
        settings_from_mapping(data)


def test_unreadable_secret_file_names_it(tmp_path: Path) -> None:
    data = config_dict()
    data["sei"].pop("token")
    data["sei"]["token_file"] = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"^sei.token_file: .*missing cannot be read"):
        settings_from_mapping(data)


def test_instance_url_ends_in_exactly_one_slash() -> None:
    data = config_dict()
    data["sei"]["instance_url"] = "https://ci.example.com/jenkins//"
    assert settings_from_mapping(data).instance_url == "https://ci.example.com/jenkins/"
    data["sei"]["instance_url"] = None
    data["jenkins"]["url"] = "https://j.example.com"
    assert settings_from_mapping(data).instance_url == "https://j.example.com/"


def test_missing_config_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HARVESTER_CONFIG"):
        load_settings(tmp_path / "nope.yaml")


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("jenkins: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path)


def test_the_ledger_password_from_a_file(tmp_path: Path) -> None:
    # A PostgreSQL password held in a secret file, never in the URL (or the config's text).
    secret = tmp_path / "ledger-password"
    secret.write_text("s3cr/t@pw\n", encoding="utf-8")
    url = "postgresql+psycopg://harvester@db/harvester"
    settings = settings_from_mapping(
        config_dict(ledger_url=url, ledger={"password_file": str(secret)})
    )
    assert settings.ledger.password == "s3cr/t@pw"
    assert "s3cr" not in repr(settings.ledger)
    for ledger_url, why in (
        ("sqlite:///l.db", "a SQLite ledger has no password"),
        ("postgresql+psycopg://harvester:inline@db/h", "has a password too"),
    ):
        with pytest.raises(ConfigError, match=why):
            settings_from_mapping(
                config_dict(ledger_url=ledger_url, ledger={"password_file": str(secret)})
            )
