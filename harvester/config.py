"""Configuration: one YAML file, overridden key by key from ``HARVESTER_<SECTION>__<KEY>``.

Loading never raises anything but :class:`~harvester.errors.ConfigError`, whose message names the
field path (``sei.instance_guid: not a valid UUID``), so the CLI can exit 2 with a useful line.
"""

from __future__ import annotations

import difflib
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from harvester.errors import ConfigError
from harvester.util import envvars
from harvester.util.timeparse import parse_duration
from harvester.util.urls import without_userinfo

DEFAULT_CONFIG_PATH = Path("config.yaml")
CONFIG_PATH_ENV = "HARVESTER_CONFIG"

DEFAULT_RESULT_MAP = {
    "SUCCESS": "success",
    "UNSTABLE": "failure",
    "FAILURE": "failure",
    "ABORTED": "failure",
    "NOT_BUILT": "failure",
}
DEFAULT_REDACT = ["*PASSWORD*", "*PASSWD*", "*SECRET*", "*TOKEN*", "*API_KEY*", "*CREDENTIAL*"]
DEFAULT_LIBRARY_REMOTES = [
    "*jenkins-library*",
    "*pipeline-lib*",
    "*shared-lib*",
    "*-lib",
    "*-lib.git",
]


class _Section(BaseModel):
    # Unknown keys are an error: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(value: SecretStr | None, file: Path | None, name: str) -> SecretStr:
    if value is not None and file is not None:
        raise ValueError(f"{name}: set either {name} or {name}_file, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{name}_file: {file} cannot be read ({exc.strerror})") from None
        # Secret files written by `echo` or Kubernetes often end in a newline that is not part of it.
        value = SecretStr(text.rstrip("\r\n"))
    if value is None or not value.get_secret_value():
        raise ValueError(f"{name}: required; set {name} or {name}_file")
    return value


class _SecretSection(_Section):
    """A section with one secret, set inline (``credential_key``) or read from a file
    (``<credential_key>_file``, for Docker and Kubernetes secrets)."""

    credential_key: ClassVar[str]

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        key = self.credential_key
        secret = _read_secret(getattr(self, key), getattr(self, f"{key}_file"), key)
        object.__setattr__(self, key, secret)
        return self

    @property
    def secret(self) -> SecretStr:
        value = getattr(self, self.credential_key)
        assert isinstance(value, SecretStr)  # guaranteed by _load_secret
        return value


class JenkinsConfig(_SecretSection):
    credential_key = "api_token"

    url: str
    # The controller's key in the ledger: processes with different names never see
    # each other's rows; processes with the same name are replicas of one harvester.
    name: str | None = Field(None, min_length=1, max_length=255, pattern=r"^\S(.*\S)?$")
    username: str
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    verify_tls: bool | Path = True
    timeout_seconds: float = Field(30, gt=0)
    max_concurrency: int = Field(4, ge=1, le=64)
    # The largest answer read from Jenkins (after decompression): a bound, not a tuning knob.
    max_response_mib: int = Field(64, ge=1, le=4096)
    include: list[str] = Field(default_factory=lambda: ["**"])
    exclude: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(
                "must be an http:// or https:// URL, e.g. https://jenkins.example.com/"
            )
        return value if value.endswith("/") else value + "/"

    @property
    def controller(self) -> str:
        """``name``, else host[:port][/path] of ``url`` (never its credentials)."""
        if self.name is not None:
            return self.name
        parts = urlsplit(without_userinfo(self.url))
        # Host names are case-insensitive; the path is not.
        return (parts.netloc.lower() + parts.path).rstrip("/")


class SeiConfig(_SecretSection):
    credential_key = "token"

    url: str
    token: SecretStr | None = None
    token_file: Path | None = None
    auth_scheme: str = "Bearer"
    instance_guid: str
    instance_name: str = Field(min_length=1)
    instance_url: str | None = None
    timeout_seconds: float = Field(30, gt=0)
    max_attempts: int = Field(10, ge=1)
    # Pacing across all delivery workers (a token bucket); Harness allows 1000 per API key per
    # minute. 0 turns pacing off.
    max_requests_per_minute: float = Field(900, ge=0)
    max_concurrency: int = Field(4, ge=1, le=64)
    # webhook: the custom CI/CD webhook's JSON. plugin: the SEI Jenkins plugin's multipart
    # channel (<base>/v1/generic-requests/multipart), which also carries logs and test results.
    channel: Literal["webhook", "plugin"] = "webhook"
    # On the plugin channel (where they default to true): the logs of failed steps, and JUnit
    # results of every build kind. The webhook cannot carry either.
    send_logs: bool | None = None
    send_tests: bool | None = None

    @model_validator(mode="after")
    def _plugin_only(self) -> Self:
        for key in ("send_logs", "send_tests"):
            if self.channel == "webhook" and getattr(self, key):
                raise ValueError(
                    f"{key}: the webhook channel cannot carry logs or tests; set "
                    "sei.channel: plugin (its request needs an API key with the Admin role)"
                )
        return self

    @property
    def logs(self) -> bool:
        return self.channel == "plugin" and self.send_logs is not False

    @property
    def tests(self) -> bool:
        return self.channel == "plugin" and self.send_tests is not False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL of the webhook")
        return value

    @field_validator("instance_guid")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError("not a valid UUID") from None
        return value


class MappingConfig(_Section):
    result: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RESULT_MAP))
    cd_jobs: list[str] = Field(default_factory=list)
    redact_parameters: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACT))
    # Remotes of Pipeline shared libraries: their checkouts are never the build's repository.
    library_remotes: list[str] = Field(default_factory=lambda: list(DEFAULT_LIBRARY_REMOTES))
    # rest: jobs named as Jenkins' REST API names them. plugin: as the SEI Jenkins plugin does
    # (their directories under $JENKINS_HOME/jobs), so that a team moving from the plugin keeps
    # one history per job in SEI.
    job_identity: Literal["rest", "plugin"] = "rest"


class HarvestConfig(_Section):
    interval_seconds: float = Field(60, gt=0)
    since: str = "7d"

    @field_validator("since")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)  # raises ValueError with the accepted forms
        return value


class LedgerConfig(_Section):
    url: str = "sqlite:///harvester.db"
    # PostgreSQL's password from a file (a Docker or Kubernetes secret), with a url that has none.
    password_file: Path | None = None
    _password: SecretStr | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @model_validator(mode="after")
    def _load_password(self) -> Self:
        if self.password_file is None:
            return self
        if self.url.startswith("sqlite:"):
            raise ValueError("password_file: a SQLite ledger has no password; remove it")
        userinfo = self.url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
        if ":" in userinfo:
            raise ValueError(
                "password_file: ledger.url has a password too; keep it in one place (the file)"
            )
        self._password = _read_secret(None, self.password_file, "password")
        return self

    @property
    def password(self) -> str | None:
        """The password read from ``password_file`` (None: the url's own, or none)."""
        return None if self._password is None else self._password.get_secret_value()


class ServerConfig(_Section):
    listen: str | None = None
    # The status page offers changes (retry dead rows, forget a build) only with a token set;
    # each change is a POST that carries it. Unset: the page is read-only.
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None

    @model_validator(mode="after")
    def _load_token(self) -> Self:
        if self.admin_token is not None or self.admin_token_file is not None:
            token = _read_secret(self.admin_token, self.admin_token_file, "admin_token")
            if len(token.get_secret_value()) < 16:
                raise ValueError(
                    "admin_token: shorter than 16 characters; use a random one, e.g. "
                    "`openssl rand -hex 16`"
                )
            object.__setattr__(self, "admin_token", token)
        return self

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9465")
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class _FileThenEnvironment(BaseSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (given as init kwargs); no .env or secrets-dir magic.
        return (env_settings, init_settings)


class Settings(_FileThenEnvironment):
    model_config = SettingsConfigDict(
        env_prefix="HARVESTER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    jenkins: JenkinsConfig
    sei: SeiConfig
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    harvest: HarvestConfig = Field(default_factory=HarvestConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @property
    def instance_url(self) -> str:
        """``sei.instance_url`` (default ``jenkins.url``), ending in exactly one ``/``."""
        # Never with credentials: a jenkins.url with user:password@ must not reach SEI.
        return without_userinfo(self.sei.instance_url or self.jenkins.url).rstrip("/") + "/"


S = TypeVar("S", Settings, "LedgerSettings")


def _friendly(error: dict[str, Any]) -> ConfigError:
    field = ".".join(str(part) for part in error["loc"]) or "config"
    kind = error["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(error["loc"][-1]), _known_keys(error["loc"]), n=1)
        problem = "unknown key; " + (
            f"did you mean {close[0]}?"
            if close
            else "check its spelling against config.example.yaml"
        )
    elif kind == "missing":
        problem = "required; set it in the config file or the environment"
    else:
        problem = str(error["msg"]).removeprefix("Value error, ")
        # Model-level checks (secrets) name their key first: "api_token: required; ..."
        key, sep, rest = problem.partition(": ")
        if sep and re.fullmatch(r"[a-z_]+", key):
            field, problem = f"{field}.{key}", rest
    return ConfigError(field, problem)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys that may stand where ``loc`` names an unknown one (a section's, or the sections)."""
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def yaml_text(data: Mapping[str, Any]) -> str:
    """``data`` as a YAML config file (``demo --serve`` prints one)."""
    return str(yaml.safe_dump(dict(data), sort_keys=False))


def config_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_PATH_ENV) or DEFAULT_CONFIG_PATH)


class LedgerSettings(_FileThenEnvironment):
    """What ``ledger ...`` and ``db upgrade`` need: the ``ledger`` and ``logging`` sections. The
    others may be there (one file serves every command) but are not validated, so these commands
    need no Jenkins or webhook secrets."""

    model_config = Settings.model_config

    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    jenkins: dict[str, Any] | None = None
    sei: dict[str, Any] | None = None
    mapping: dict[str, Any] | None = None
    harvest: dict[str, Any] | None = None
    server: dict[str, Any] | None = None


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Every ``HARVESTER_...`` variable must name a setting: a typo such as
    ``HARVESTER_SEI_TOKEN`` (one underscore) is reported, not silently ignored."""
    unknown = envvars.unknown_variable(Settings, "HARVESTER_", {CONFIG_PATH_ENV}, environ)
    if unknown is not None:
        name, close = unknown
        hint = f"did you mean {close}? " if close else ""
        raise ConfigError(
            name,
            f"this environment variable names no setting; {hint}(HARVESTER_<SECTION>__<KEY>, "
            "section and key joined by two underscores)",
        )


def _environment_problem(exc: ValueError) -> ConfigError:
    """Which variable pydantic-settings could not read: a list or mapping not written as JSON."""
    name = envvars.unparsable_collection(Settings, "HARVESTER_")
    if name is not None:
        return ConfigError(
            name, f"""a list or mapping is written as JSON, e.g. {name}='["team-a/**"]'"""
        )
    return ConfigError("environment", str(exc).split(" from source")[0])


def load_settings(path: Path) -> Settings:
    """Read ``path`` (YAML) and the environment into validated settings, or raise ConfigError."""
    return _load(path, Settings)


def load_ledger_settings(path: Path) -> LedgerSettings:
    """Like :func:`load_settings`, but only the ``ledger`` and ``logging`` sections count."""
    return _load(path, LedgerSettings)


def _load(path: Path, model: type[S]) -> S:
    check_environment()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(path), "config file not found; pass --config PATH or set HARVESTER_CONFIG"
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the config file ({exc.strerror})") from None
    return settings_from_mapping(_yaml(text, str(path)), model)


def _yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Name the place, never the text: the offending line may hold a token.
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(source, f"not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            source, "the top level must be a mapping of sections (jenkins:, sei:, ...)"
        )
    return data


def settings_from_yaml(text: str, *, source: str = "config") -> Settings:
    return settings_from_mapping(_yaml(text, source))


def settings_from_mapping(data: dict[str, Any], model: type[S] = Settings) -> S:  # type: ignore[assignment]
    try:
        return model(**data)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        first = _friendly(dict(errors[0]))
        if len(errors) > 1:
            more = "; ".join(str(_friendly(dict(e))) for e in errors[1:])
            raise ConfigError(
                first.field, f"{first.message.split(': ', 1)[1]}; also {more}"
            ) from None
        raise first from None
    except ValueError as exc:
        # pydantic-settings' SettingsError (it moved between releases; a ValueError in all): a
        # variable it could not read.
        raise _environment_problem(exc) from None
