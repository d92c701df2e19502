"""Settings: environment (``FABQUEUE_*``, ``DATABASE_URL``, ``REDIS_URL``) and ``.env``.

With nothing set, FabQueue keeps everything in one data folder: SQLite, the file store and an
embedded Redis owned by ``fabqueue serve``. ``DATABASE_URL``/``REDIS_URL`` switch to
PostgreSQL and an external Redis without code changes.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
# The signing key forges any login when guessed: at least this long, and not a placeholder.
MIN_SECRET_BYTES = 32
PLACEHOLDER_WORDS = ("changeme", "changeit", "pleasechange", "yoursecret", "secretkey",
                     "replaceme", "insecure", "example", "default", "placeholder")
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "secret", "please-change",
                                 "password", "fabqueue", "test", "dev", "development"})
MAKE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


class WeakSecret(ValueError):
    """FABQUEUE_SECRET_KEY is too short or a known placeholder (the message says what to do)."""


def check_secret(key: str) -> None:
    """Raise WeakSecret unless ``key`` is a real secret: 32+ bytes, no placeholder."""
    plain = "".join(ch for ch in key.lower() if ch.isalnum())
    if key.strip().lower() in PLACEHOLDER_SECRETS or any(w in plain for w in PLACEHOLDER_WORDS):
        problem = "is a known placeholder"
    elif len(key.encode()) < MIN_SECRET_BYTES:
        problem = f"is shorter than {MIN_SECRET_BYTES} bytes"
    elif len(set(key)) < 10:
        problem = "repeats too few characters to be random"
    else:
        return
    raise WeakSecret(
        f"FABQUEUE_SECRET_KEY {problem}: anyone who guesses it can sign in as any user. "
        f"Make one with {MAKE_SECRET} and set it in the environment (or unset it: FabQueue "
        "then generates one into the data folder)."
    )


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
    max_body_bytes: int = 64 * 1024  # JSON and form bodies (uploads use max_upload_bytes)
    max_storage_per_user_bytes: int = 1024 * 1024 * 1024  # a resident's uploads, all jobs
    max_triangles: int = 2_000_000
    max_batch_files: int = 200
    analysis_timeout_s: int = 120
    analysis_memory_mb: int = 2048
    analysis_attempts: int = 2  # tries of one analysis before it is invalid
    slicing_attempts: int = 2  # tries of one slicing before the job is invalid

    # analysis/slicing workers started by `fabqueue serve`: warm_workers always, more while
    # jobs wait in the queues (each leaves when they are empty), up to workers
    # (core.worker_scale)
    workers: int = 2
    warm_workers: int = 1
    web_concurrency: int = 2  # requests the web works on at once; the rest wait in order
    # A dead worker's job is tried again within ~reconcile_interval_s (+ a heartbeat grace);
    # a job with no queue entry at all waits stale_after_s first (the web queues it just
    # after its commit).
    reconcile_interval_s: float = 4.0
    stale_after_s: float = 10.0

    # shop floor
    max_heating_per_site: int = 2
    # a device worker's lease on its machine (queue.lease): renewed every third of this; a
    # second worker for the machine takes over only after it expires
    lease_ttl_s: float = 15.0
    # a device worker's loop not back within this is hung (a driver call that never returns):
    # its lease lapses; in a device host a fresh worker then takes the machine over.
    # (Not named FABQUEUE_DEVICE_*: that prefix is the devices file's secrets', which
    # FabQueue may send to a machine; core.device_secrets.)
    machine_stall_s: float = 600.0
    # `serve` drives every machine from one `fabqueue device-host` process, a thread each
    # (a few MB a machine); false: one `fabqueue device-worker` process per machine (~70 MB
    # each), as before the device host
    machines_in_one_process: bool = True
    # a file host (Bambu) receives the next job's program while its bed waits to be cleared,
    # so the start after the bed-clear is one command (queue.staging); off: sent at the start
    prestage: bool = True
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
    login_backoff_max_s: float = 300.0  # the longest a sign-in lockout lasts
    public_url: str | None = None  # the address people reach FabQueue at, for e-mail links

    # pickup (issue 18): the owner is reminded after these days on the shelf; after the
    # keeping days the part is uncollected and goes on the staff disposal list
    pickup_remind_days: str = "3,10"
    pickup_keep_days: int = 21
    # notifications: no message in these hours (the lab's time zone; a site may set its own);
    # a failing channel is tried again with back-off this many times, then shown to admins
    quiet_hours: str = "21:00-08:00"
    notify_attempts: int = 8

    # spools (issue 18): staff hear ``filament_low`` when a site's spools of a material hold
    # less than this together; per material or site+material in JSON, e.g.
    # FABQUEUE_SPOOL_LOW_THRESHOLDS='{"PLA": 1000, "kc:PETG": 500}'
    spool_low_g: float = 250.0
    spool_low_thresholds: dict[str, float] = Field(default_factory=dict)
    # optional Spoolman (https://github.com/Donkie/Spoolman): its spools are the truth, and
    # each job's use is sent to it once from the ledger (queue.spoolman_sync)
    spoolman_url: str | None = None

    # privacy (issue 21): how long personal data is kept (the purge runs daily in serve).
    # Files of ended jobs, counted from pickup or end; pupils' names after their class's
    # end date; accounts without a sign-in or job (told 30 days before being erased).
    retain_files_days: int = Field(90, ge=1)
    retain_pupil_names_days: int = Field(30, ge=0)
    retain_inactive_accounts_days: int = Field(730, ge=31)

    @cached_property
    def data_path(self) -> Path:
        path = self.data_dir.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)  # hashes, addresses, uploads and the key: the owner's only
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
        """The session/token signing key: configured, or generated once into the data folder.

        Raises WeakSecret for a short or placeholder key (configured or in the file)."""
        if self.secret_key:
            check_secret(self.secret_key)
            return self.secret_key
        path = self.data_path / "secret.key"
        if not path.exists():
            # Created 0600 from the start: never readable by others, not even for a moment.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        path.chmod(0o600)  # an older data folder's key file too
        key = path.read_text().strip()
        check_secret(key)
        return key


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
