"""docker-compose.yml and the Dockerfile line up (no Docker engine runs here): the services
exist, web and worker reach the same Redis and PostgreSQL services, share the data volume,
and the image installs what the code needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


# What an operator puts in .env: compose has no defaults for these (see test_no_default_secrets).
DOT_ENV = {"POSTGRES_PASSWORD": "pg-password-from-env",
           "FABQUEUE_SECRET_KEY": "k" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz"}
REQUIRED = re.compile(r"\$\{([A-Z_]+):\?([^}]*)\}")


def expand(value: str, dot_env: dict[str, str] = DOT_ENV) -> str:
    """``${NAME:-default}`` and ``${NAME:?message}`` as compose expands them from ``dot_env``;
    a required variable that is missing raises, as ``docker compose up`` refuses to start."""
    def required(match: re.Match[str]) -> str:
        if match.group(1) not in dot_env:
            raise LookupError(f"compose refuses: {match.group(2)}")
        return dot_env[match.group(1)]

    value = REQUIRED.sub(required, value)
    return re.sub(r"\$\{([A-Z_]+):-([^}]*)\}",
                  lambda m: dot_env.get(m.group(1), m.group(2)), value)


def test_no_default_secrets(services: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    assert "change-me" not in text
    for name in ("FABQUEUE_SECRET_KEY", "POSTGRES_PASSWORD"):
        assert f"${{{name}:-" not in text and f"${{{name}-" not in text, name
        assert f"${{{name}:?" in text, name
    web = env(services["web"])
    with pytest.raises(LookupError, match="FABQUEUE_SECRET_KEY"):
        expand(web["FABQUEUE_SECRET_KEY"], {})
    with pytest.raises(LookupError, match="POSTGRES_PASSWORD"):
        expand(web["DATABASE_URL"], {})
    assert expand(web["FABQUEUE_SECRET_KEY"]) == DOT_ENV["FABQUEUE_SECRET_KEY"]
    # Every variable compose substitutes with a default is harmless (none names a secret).
    for name, _default in re.findall(r"\$\{([A-Z_]+):?-([^}]*)\}", text):
        assert not re.search(r"KEY|PASSWORD|SECRET|TOKEN", name), name


def test_the_four_services(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", "postgres", "web", "worker"}
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("web", "worker"):
        assert services[name]["build"] == "."


def test_web_and_worker_use_the_same_redis_and_database(services: dict[str, Any]) -> None:
    web, worker = env(services["web"]), env(services["worker"])
    for key in ("REDIS_URL", "DATABASE_URL", "FABQUEUE_DATA_DIR"):
        assert web[key] == worker[key], key
    redis = urlsplit(web["REDIS_URL"])
    assert redis.scheme == "redis" and redis.hostname == "redis" and redis.port == 6379
    db = urlsplit(expand(web["DATABASE_URL"]))
    assert db.scheme.startswith("postgresql") and db.hostname == "postgres"
    assert db.port == 5432
    pg = {k: expand(v) for k, v in env(services["postgres"]).items()}
    assert db.path == "/" + pg["POSTGRES_DB"]
    assert db.username == pg["POSTGRES_USER"] and db.password == pg["POSTGRES_PASSWORD"]


def test_the_settings_read_those_urls(services: dict[str, Any], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from fabqueue.config import Settings

    for key, value in env(services["worker"]).items():
        monkeypatch.setenv(key, expand(value))
    monkeypatch.setenv("FABQUEUE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.redis_url == "redis://redis:6379/0" and not settings.embedded_redis
    assert settings.sqlalchemy_url.startswith("postgresql+psycopg://fabqueue:")
    assert settings.sqlalchemy_url.endswith("@postgres:5432/fabqueue")


def test_dependencies_and_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name in ("web", "worker"):
        assert {"redis", "postgres"} <= set(services[name]["depends_on"]), name
    mounts: dict[str, set[str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert source in declared, f"{name} mounts undeclared volume {source}"
            mounts.setdefault(name, set()).add(f"{source}:{target}")
    data_dir = env(services["web"])["FABQUEUE_DATA_DIR"]
    shared = mounts["web"] & mounts["worker"]
    assert any(m.endswith(":" + data_dir) for m in shared), "web and worker share the files"
    assert any(m.endswith(":/data") for m in mounts["redis"])
    assert any(m.endswith(":/var/lib/postgresql/data") for m in mounts["postgres"])


def test_commands(services: dict[str, Any]) -> None:
    web = " ".join(services["web"]["command"])
    assert web.startswith("fabqueue serve") and "--host 0.0.0.0" in web
    assert "8000:8000" in services["web"]["ports"]
    assert " ".join(services["worker"]["command"]).startswith("fabqueue worker")


def test_dockerfile() -> None:
    text = (REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert re.search(r"apt-get install[^\n]*prusa-slicer", text)
    assert 'pip install ".[postgres]"' in text
    assert lines[-1] == 'CMD ["fabqueue", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"COPY of missing {source}"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(d.startswith("psycopg") for d in extras["postgres"])
    profiles = re.search(r"FABQUEUE_PROFILES_DIR=(\S+)", text)
    assert profiles and "COPY slicer_profiles ./slicer_profiles" in text
    assert profiles.group(1) == "/app/slicer_profiles"


def test_dockerignore_keeps_the_image_clean() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "data", ".env"} <= ignored
    assert "fabqueue" not in ignored and "slicer_profiles" not in ignored
