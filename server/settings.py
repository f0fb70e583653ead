"""Load configs/*.yaml into validated models, with a user overlay and environment overrides.

Precedence, lowest first: the shipped file, the same file in the user's config directory
(merged key by key), then `TRAINING_PACKAGE_MCP__<FILE>__<KEY>__...` environment variables.
Every problem is reported with the file (or variable) it came from, the key path and the reason,
so a typo fails at start-up instead of silently doing nothing.
"""

import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from server.paths import shipped_dir, user_data_dir
from tools.config_base import ConfigModel
from tools.dataset_validator import DatasetsConfig
from tools.deployment_estimator import DeploymentConfig
from tools.model_browser import ModelsConfig
from tools.package_builder import PackageConfig
from tools.template_loader import TemplatesConfig
from tools.training_launcher import LaunchConfig

ENV_PREFIX = "TRAINING_PACKAGE_MCP"
"""Every variable of this server's own starts with it (settings, secrets, token hashes)."""
CONFIG_DIR_ENV = f"{ENV_PREFIX}_CONFIG_DIR"
OVERRIDE_PREFIX = f"{ENV_PREFIX}__"


# --- configs/server.yaml ------------------------------------------------------------------


class HttpConfig(ConfigModel):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    path: Annotated[str, Field(pattern=r"^/")]
    stateless: bool = Field(description="No per-session state, so any replica can answer.")
    max_request_bytes: Annotated[int, Field(ge=1024)]
    allowed_hosts: list[str] = Field(description="Host headers accepted besides loopback.")
    allowed_origins: list[str] = Field(description="Origin headers accepted besides loopback.")


class TransportConfig(ConfigModel):
    default: Literal["stdio", "http"]
    http: HttpConfig


class SqliteConfig(ConfigModel):
    path: Path | None = Field(default=None, description="None: the user's data directory.")
    busy_timeout_s: Annotated[float, Field(gt=0, le=600)]

    def resolved_path(self) -> Path:
        return self.path.expanduser() if self.path else user_data_dir() / "drafts.sqlite3"


PostgresIdentifier = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class NotificationsConfig(ConfigModel):
    """Draft changes reach every replica's listeners through LISTEN/NOTIFY on one channel."""

    channel: PostgresIdentifier
    keepalive_s: Annotated[float, Field(gt=0, le=3600)]
    reconnect_min_s: Annotated[float, Field(gt=0, le=600)]
    reconnect_max_s: Annotated[float, Field(gt=0, le=3600)]

    @model_validator(mode="after")
    def _ordered(self) -> "NotificationsConfig":
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s ({self.reconnect_min_s}) exceeds "
                f"reconnect_max_s ({self.reconnect_max_s})"
            )
        return self


class PostgresConfig(ConfigModel):
    """The URL is a secret: TRAINING_PACKAGE_MCP_DATABASE_URL, never a config file."""

    schema_name: PostgresIdentifier
    pool_min: Annotated[int, Field(ge=0)]
    pool_max: Annotated[int, Field(ge=1)]
    connect_timeout_s: Annotated[float, Field(gt=0, le=300)]
    notifications: NotificationsConfig


class StorageConfig(ConfigModel):
    backend: Literal["sqlite", "postgres"]
    sqlite: SqliteConfig
    postgres: PostgresConfig


class LoggingConfig(ConfigModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ServerLimits(ConfigModel):
    max_title_chars: Annotated[int, Field(ge=1, le=10_000)]
    max_drafts_per_owner: Annotated[int, Field(ge=1)]
    drafts_list_limit: Annotated[int, Field(ge=1, le=10_000)]
    max_argument_chars: Annotated[int, Field(ge=256)]
    max_heavy_calls_per_owner: Annotated[int, Field(ge=1)]
    draft_issue_lines: Annotated[int, Field(ge=1, le=1000)]


class SupabaseAuthConfig(ConfigModel):
    enabled: bool
    issuer: str | None = Field(default=None, description="None: $SUPABASE_URL/auth/v1.")
    audience: str
    jwks_url: str | None = Field(default=None, description="None: HS256, SUPABASE_JWT_SECRET.")
    timeout_s: Annotated[float, Field(gt=0, le=60)]
    leeway_s: Annotated[float, Field(ge=0, le=300)]


class AuthConfig(ConfigModel):
    static_tokens_file: Path | None = Field(
        default=None, description="Lines of '<subject>:<sha256 of the token>'."
    )
    supabase: SupabaseAuthConfig
    resource_server_url: str | None = Field(
        default=None, description="This server's public URL; None: http://host:port/path."
    )


class ServerConfig(ConfigModel):
    name: str
    transport: TransportConfig
    storage: StorageConfig
    auth: AuthConfig
    logging: LoggingConfig
    limits: ServerLimits


# --- all files together ---------------------------------------------------------------------

CONFIG_FILES: dict[str, type[ConfigModel]] = {
    "server": ServerConfig,
    "models": ModelsConfig,
    "templates": TemplatesConfig,
    "datasets": DatasetsConfig,
    "deployment": DeploymentConfig,
    "package": PackageConfig,
    "launch": LaunchConfig,
}


class Settings(ConfigModel):
    server: ServerConfig
    models: ModelsConfig
    templates: TemplatesConfig
    datasets: DatasetsConfig
    deployment: DeploymentConfig
    package: PackageConfig
    launch: LaunchConfig
    sources: list[str] = Field(description="Where the values came from, lowest precedence first.")


class Secrets(BaseModel):
    """Credentials, read from the environment only; SecretStr keeps them out of reprs and logs.
    Each field's alias is the variable it comes from: the one list of the server's secrets."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    hf_token: SecretStr | None = Field(None, validation_alias="HF_TOKEN")
    supabase_url: str | None = Field(None, validation_alias="SUPABASE_URL")
    supabase_key: SecretStr | None = Field(None, validation_alias="SUPABASE_KEY")
    supabase_jwt_secret: SecretStr | None = Field(None, validation_alias="SUPABASE_JWT_SECRET")
    database_url: SecretStr | None = Field(
        None, validation_alias="TRAINING_PACKAGE_MCP_DATABASE_URL"
    )

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Each field's environment variable, by field name."""
        return {name: str(field.validation_alias) for name, field in cls.model_fields.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Secrets":
        return cls.model_validate({var: env.get(var) or None for var in cls.env_names().values()})

    def values(self) -> list[str]:
        """The secret strings themselves, for log redaction."""
        found = [self.hf_token, self.supabase_key, self.supabase_jwt_secret, self.database_url]
        return [s.get_secret_value() for s in found if s is not None]


class ConfigProblem(BaseModel):
    source: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.key}" if self.key else self.source
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """Configuration that cannot be used; lists every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


# --- loading --------------------------------------------------------------------------------


def load_settings(config_dir: Path | None = None, env: Mapping[str, str] = os.environ) -> Settings:
    """Load, overlay and validate every config file; raise ConfigError naming each problem."""
    overlay_dir = config_dir or (Path(env[CONFIG_DIR_ENV]) if env.get(CONFIG_DIR_ENV) else None)
    if overlay_dir is not None and not overlay_dir.is_dir():
        raise ConfigError(
            [ConfigProblem(source=str(overlay_dir), key="", message="config directory not found")]
        )
    base_dir = shipped_dir("configs")
    overrides, problems = _env_overrides(env)
    sections: dict[str, ConfigModel] = {}
    for name, model in CONFIG_FILES.items():
        layers = [(str(base_dir / f"{name}.yaml"), _read_yaml(base_dir / f"{name}.yaml", problems))]
        if overlay_dir is not None and (overlay_dir / f"{name}.yaml").is_file():
            path = overlay_dir / f"{name}.yaml"
            layers.append((str(path), _read_yaml(path, problems)))
        layers.extend(overrides.get(name, []))
        merged: dict[str, Any] = {}
        for _, data in layers:
            merged = _deep_merge(merged, data)
        try:
            sections[name] = model.model_validate(merged)
        except ValidationError as exc:
            problems.extend(_describe(exc, model, layers))
    problems += _methods_without_formats(sections, overlay_dir or base_dir)
    if problems:
        raise ConfigError(problems)
    sources = [str(base_dir)]
    if overlay_dir is not None:
        sources.append(str(overlay_dir))
    sources.extend(var for layers in overrides.values() for var, _ in layers)
    return Settings(**sections, sources=sources)  # type: ignore[arg-type]


def _methods_without_formats(
    sections: dict[str, ConfigModel], config_dir: Path
) -> list[ConfigProblem]:
    """Every method a template trains needs its formats in datasets.yaml: the datasets step
    judges the data against the template's method with them."""
    templates, datasets = sections.get("templates"), sections.get("datasets")
    if not isinstance(templates, TemplatesConfig) or not isinstance(datasets, DatasetsConfig):
        return []
    known = datasets.formats.method_formats
    missing = [method for method in templates.templates_by_method if method not in known]
    if not missing:
        return []
    return [
        ConfigProblem(
            source=str(config_dir),
            key="datasets.yaml formats.method_formats",
            message=f"no formats for {', '.join(missing)}, which templates in templates.yaml "
            "train; the datasets step could not judge data against them",
        )
    ]


_FAST_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str) -> Any:
    """yaml.safe_load, through libyaml where PyYAML has it: about four times faster, and every
    start-up (and every test) reads all the config files. A document libyaml refuses is read
    again the pure-Python way, which words the problem better."""
    try:
        return yaml.load(text, Loader=_FAST_YAML_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)


def _read_yaml(path: Path, problems: list[ConfigProblem]) -> dict[str, Any]:
    try:
        data = _parse_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(ConfigProblem(source=str(path), key="", message=f"cannot read: {exc}"))
        return {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problems.append(ConfigProblem(source=str(path), key="", message=f"{where}{reason}"))
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(
            ConfigProblem(source=str(path), key="", message="must be a mapping of keys to values")
        )
        return {}
    return data


def _env_overrides(
    env: Mapping[str, str],
) -> tuple[dict[str, list[tuple[str, dict[str, Any]]]], list[ConfigProblem]]:
    """`TRAINING_PACKAGE_MCP__SERVER__LOGGING__LEVEL=DEBUG` -> {"server": [(var, {...})]}."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    problems: list[ConfigProblem] = []
    for var in sorted(env):
        if not var.startswith(OVERRIDE_PREFIX):
            continue
        parts = [p.lower() for p in var[len(OVERRIDE_PREFIX) :].split("__")]
        if len(parts) < 2 or parts[0] not in CONFIG_FILES or not all(parts):
            problems.append(
                ConfigProblem(
                    source=var,
                    key="",
                    message="expected TRAINING_PACKAGE_MCP__<FILE>__<KEY>[__<KEY>...], FILE one "
                    f"of {', '.join(n.upper() for n in CONFIG_FILES)}",
                )
            )
            continue
        try:
            value = yaml.safe_load(env[var])
        except yaml.YAMLError:
            value = env[var]
        for key in reversed(parts[1:]):
            value = {key: value}
        found.setdefault(parts[0], []).append((var, value))
    return found, problems


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(
    exc: ValidationError, model: type[BaseModel], layers: list[tuple[str, dict[str, Any]]]
) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
            suggestion = difflib.get_close_matches(
                str(loc[-1]), _allowed_keys(model, loc[:-1]), n=1
            )
            if suggestion:
                message += f" (did you mean '{suggestion[0]}'?)"
        problems.append(ConfigProblem(source=_origin(loc, layers), key=key, message=message))
    return problems


def _origin(loc: tuple[Any, ...], layers: list[tuple[str, dict[str, Any]]]) -> str:
    """The highest-precedence layer that set the deepest part of `loc`.

    A whole-file rule (empty `loc`) is blamed on the highest layer that set anything.
    """
    if not loc:
        return next((source for source, data in reversed(layers) if data), layers[0][0])
    best_source, best_depth = layers[0][0], -1
    for source, data in layers:
        node: Any = data
        depth = 0
        for part in loc:
            if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)
            ):
                node = node[part]
            else:
                break
            depth += 1
        if depth >= best_depth and depth > 0:
            best_source, best_depth = source, depth
    return best_source


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by following `loc` from `model`."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the one model type inside, if any."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if len(models) == 1 else members[0]
        else:
            return annotation
