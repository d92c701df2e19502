"""Settings: environment (``FABQUEUE_*``, ``DATABASE_URL``, ``REDIS_URL``) and ``.env``.

With nothing set, FabQueue keeps everything in one data folder: SQLite, the file store and an
embedded Redis owned by ``fabqueue serve``. ``DATABASE_URL``/``REDIS_URL`` switch to
PostgreSQL and an external Redis without code changes.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FABQUEUE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "FABQUEUE_DATABASE_URL")
    )
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "FABQUEUE_REDIS_URL")
    )
    secret_key: str | None = None
    profiles_dir: Path = REPO_ROOT / "slicer_profiles"

    # uploads and analysis limits
    max_upload_bytes: int = 100 * 1024 * 1024
    max_triangles: int = 2_000_000
    max_batch_files: int = 200
    analysis_timeout_s: int = 120
    analysis_memory_mb: int = 2048
    analysis_attempts: int = 2

    # workers started by `fabqueue serve`
    workers: int = 2
    web_concurrency: int = 2  # requests the web works on at once; the rest wait in order
    reconcile_interval_s: float = 15.0
    stale_after_s: float = 45.0

    # shop floor
    max_heating_per_site: int = 2
    operator_confirmation_ttl_s: int = 300
    default_quality: str = "normal"

    # people
    timezone: str = "Europe/Vilnius"
    default_locale: str = "lt"
    currency: str = "EUR"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "fabqueue@localhost"
    session_https_only: bool = False
    public_url: str | None = None  # the address people reach FabQueue at, for e-mail links

    @cached_property
    def data_path(self) -> Path:
        path = self.data_dir.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def files_path(self) -> Path:
        return self.data_path / "files"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Prefer psycopg 3, the driver we ship, for plain postgres URLs.
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{self.data_path / 'fabqueue.sqlite3'}"

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def redis_socket(self) -> Path:
        return self.data_path / "redis.sock"

    def effective_secret(self) -> str:
        """The session/token signing key: configured, or generated once into the data folder."""
        if self.secret_key:
            return self.secret_key
        path = self.data_path / "secret.key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
