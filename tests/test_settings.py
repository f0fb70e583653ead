"""Settings: shipped files load, an overlay merges key by key, every bad file is named."""

from pathlib import Path

import pytest

from server.paths import shipped_dir
from server.settings import CONFIG_FILES, ConfigError, Secrets, load_settings


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_shipped_configs_load_and_cover_every_step() -> None:
    settings = load_settings(env={})
    assert settings.server.storage.backend == "sqlite"
    assert set(settings.templates.templates) == {"lora", "qlora", "full", "dpo", "kto"}
    assert {"a100-large", "t4-small", "l4x1", "h200"} <= set(settings.deployment.flavors)
    assert settings.models.popular, "the offline fallback needs popular models"
    assert settings.sources == [str(shipped_dir("configs"))]
    assert {p.stem for p in shipped_dir("configs").glob("*.yaml")} == set(CONFIG_FILES)


def test_overlay_merges_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "server.yaml", "logging:\n  level: debug\nlimits:\n  max_title_chars: 40\n")
    settings = load_settings(tmp_path, env={})
    assert settings.server.logging.level == "DEBUG"
    assert settings.server.limits.max_title_chars == 40
    # siblings the overlay did not mention keep their shipped values
    assert settings.server.limits.max_drafts_per_owner == 500
    assert settings.server.transport.http.port == 8000
    assert settings.sources[-1] == str(tmp_path)


def test_overlay_replaces_lists_whole(tmp_path: Path) -> None:
    write(tmp_path, "models.yaml", "search:\n  allowed_tasks: [text-generation]\n")
    settings = load_settings(tmp_path, env={})
    assert settings.models.search.allowed_tasks == ["text-generation"]


def test_config_dir_from_environment(tmp_path: Path) -> None:
    write(tmp_path, "server.yaml", "logging:\n  level: ERROR\n")
    settings = load_settings(env={"TRAINING_PACKAGE_MCP_CONFIG_DIR": str(tmp_path)})
    assert settings.server.logging.level == "ERROR"


def test_environment_override_wins_over_overlay(tmp_path: Path) -> None:
    write(tmp_path, "server.yaml", "transport:\n  http:\n    port: 9000\n")
    env = {"TRAINING_PACKAGE_MCP__SERVER__TRANSPORT__HTTP__PORT": "9100"}
    settings = load_settings(tmp_path, env=env)
    assert settings.server.transport.http.port == 9100
    assert "TRAINING_PACKAGE_MCP__SERVER__TRANSPORT__HTTP__PORT" in settings.sources


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "server.yaml",
            "storage:\n  backnd: sqlite\n",
            "server.yaml: storage.backnd: unknown key (did you mean 'backend'?)",
        ),
        (
            "templates.yaml",
            "templates:\n  lora:\n    defaults:\n      learning_rate: 1.0e-4\n    descripton: x\n",
            "templates.yaml: templates.lora.descripton: unknown key (did you mean 'description'?)",
        ),
        (
            "server.yaml",
            "transport:\n  http:\n    port: eighty\n",
            "server.yaml: transport.http.port: Input should be a valid integer",
        ),
        (
            "server.yaml",
            "storage:\n  postgres:\n    notifications:\n      channel: drafts-changed\n",
            "server.yaml: storage.postgres.notifications.channel: String should match pattern",
        ),
        (
            "server.yaml",
            "storage:\n  postgres:\n    notifications:\n      reconnect_min_s: 60\n",
            "server.yaml: storage.postgres.notifications: reconnect_min_s (60.0) exceeds "
            "reconnect_max_s (30.0)",
        ),
        (
            "models.yaml",
            "search:\n  max_limit: 0\n",
            "models.yaml: search.max_limit: Input should be greater than or equal to 1",
        ),
        (
            "deployment.yaml",
            "flavors:\n  t4-small: {gpu: T5, gpu_count: 1, vcpu: 4, ram_gb: 15, usd_per_hour: 1}\n",
            "deployment.yaml: these GPUs are used but not in `gpus`: T5",
        ),
        (
            "datasets.yaml",
            "split:\n  min_validation_split: 0.4\n  max_validation_split: 0.2\n",
            "datasets.yaml: split: min_validation_split (0.4) exceeds max_validation_split (0.2)",
        ),
        (
            "datasets.yaml",
            "warnings:\n  kto_weighted_ratio: {min: 1.5, max: 1.2}\n",
            "datasets.yaml: warnings.kto_weighted_ratio: min (1.5) exceeds max (1.2)",
        ),
        (
            "datasets.yaml",
            "formats:\n  method_formats:\n    kto: []\n",
            "datasets.yaml: formats.method_formats.kto: List should have at least 1 item",
        ),
        (
            "datasets.yaml",
            "limits:\n  max_decompressed_bytes_per_file: 1000000\n",
            "datasets.yaml: limits: max_parquet_column_chunk_bytes (536870912) exceeds "
            "max_decompressed_bytes_per_file (1000000)",
        ),
    ],
)
def test_bad_values_name_file_key_and_reason(
    tmp_path: Path, file: str, text: str, expected: str
) -> None:
    write(tmp_path, file, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, env={})
    assert any(expected in p and p.startswith(str(tmp_path)) for p in problems(exc)), problems(exc)


def test_a_method_without_formats_stops_the_server(tmp_path: Path) -> None:
    """A template whose method datasets.yaml lists no formats for: its data could not be
    judged, so the server does not start."""
    defaults = (
        "{method: orpo, adapter: lora, learning_rate: 1.0e-5, num_epochs: 1, batch_size: 2, "
        "gradient_accumulation_steps: 4, max_seq_length: 1024, lr_scheduler: cosine, "
        "optimizer: adamw_torch, bf16: true}"
    )
    write(
        tmp_path,
        "templates.yaml",
        "keys:\n  method:\n    enum: [sft, dpo, kto, orpo]\ntemplates:\n  orpo:\n"
        "    name: ORPO\n    description: A method no dataset format is listed for.\n"
        f"    defaults: {defaults}\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, env={})
    assert problems(exc) == [
        f"{tmp_path}: datasets.yaml formats.method_formats: no formats for orpo, which "
        "templates in templates.yaml train; the datasets step could not judge data against them"
    ]


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    write(tmp_path, "server.yaml", "logging:\n  levle: INFO\nlimits:\n  max_title_chars: -1\n")
    write(tmp_path, "models.yaml", "cache:\n  ttl_s: 0\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, env={})
    keys = {p.key for p in exc.value.problems}
    assert keys == {"logging.levle", "limits.max_title_chars", "cache.ttl_s"}


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server.yaml", "logging:\n  level: [INFO\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, env={})
    (problem,) = exc.value.problems
    assert problem.source == str(path)
    assert "line 3" in problem.message


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "datasets.yaml", "- just\n- a list\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, env={})
    assert "must be a mapping" in problems(exc)[0]


def test_missing_config_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path / "nope", env={})
    assert "config directory not found" in problems(exc)[0]


def test_malformed_environment_override() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env={"TRAINING_PACKAGE_MCP__NOPE__X": "1"})
    assert problems(exc)[0].startswith("TRAINING_PACKAGE_MCP__NOPE__X: expected")


def test_environment_override_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env={"TRAINING_PACKAGE_MCP__DEPLOYMENT__LOCAL__PUE": "0.5"})
    (problem,) = exc.value.problems
    assert problem.source == "TRAINING_PACKAGE_MCP__DEPLOYMENT__LOCAL__PUE"
    assert problem.key == "local.pue"


def test_secrets_come_from_the_environment_and_never_print() -> None:
    secrets = Secrets.from_env(
        {"HF_TOKEN": "hf_abc123", "SUPABASE_KEY": "sb-key", "SUPABASE_URL": "https://x.supabase.co"}
    )
    assert secrets.values() == ["hf_abc123", "sb-key"]
    assert "hf_abc123" not in repr(secrets) and "sb-key" not in str(secrets.model_dump())


def test_secrets_cannot_be_put_in_a_config_file(tmp_path: Path) -> None:
    write(tmp_path, "models.yaml", "hub:\n  token: hf_abc123\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path, env={})
    assert "hub.token: unknown key" in problems(exc)[0]
    assert "hf_abc123" not in str(exc.value)
