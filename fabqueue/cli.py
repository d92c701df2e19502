"""The ``fabqueue`` command: serve, worker, users, devices, db, backup, restore, demo."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from fabqueue.cli_common import DataDir, open_db, settings_for
from fabqueue.config import Settings

app = typer.Typer(help="FabQueue: job queue for the printers and lasers of a makerspace.",
                  no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
devices_app = typer.Typer(help="Sites, machines and materials.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(devices_app, name="devices")
app.add_typer(db_app, name="db")
from fabqueue.cli_trainings import trainings_app  # noqa: E402  (issue 17)

app.add_typer(trainings_app, name="trainings")

def _logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    demo: Annotated[bool, typer.Option(help="seed demo sites, users, materials, "
                                             "machines (once, into an empty database)")] = False,
    workers: Annotated[int | None, typer.Option(help="analysis/slicing workers")] = None,
    verbose: bool = False,
) -> None:
    """Run the whole service: web, embedded Redis, workers, machine workers."""
    import uvicorn

    from fabqueue.core.worker_scale import warm_count
    from fabqueue.queue.context import Context, set_context
    from fabqueue.queue.supervisor import Supervisor
    from fabqueue.web.app import create_app

    _logging(verbose)
    settings = settings_for(data_dir)
    if workers is not None:
        settings.workers = workers
    check_profiles(settings)
    check_secret_key(settings)
    from fabqueue.queue.instance import AlreadyRunning

    sup = Supervisor(settings)
    try:
        sup.claim_data_dir()
    except AlreadyRunning as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    db = open_db(settings, migrate_in_child=True)
    try:
        sup.start_redis()
        os.environ["REDIS_URL"] = sup.redis_url
        ctx = Context(settings)
        ctx.__dict__["redis_url"] = sup.redis_url
        ctx.__dict__["db"] = db
        ctx.install_publisher()
        set_context(ctx)
        if demo:
            from fabqueue.demo import seed_demo

            # The demo laser is the real GRBL driver talking to the emulator on a pty.
            laser_link = settings.data_path / "demo-laser.tty"
            sup.add_child("grbl-emulator", "--link", str(laser_link), "--time-scale", "0.2",
                          module="fabqueue.simulators.grbl_emulator")
            seed_demo(ctx, echo=typer.echo, laser_port=str(laser_link))
        for i in range(warm_count(settings.warm_workers, settings.workers)):
            sup.add_child(f"worker-{i + 1}", "worker", "--name-suffix", str(i + 1))
        from fabqueue.queue.device_host import device_children

        device_children(sup, ctx)
        sup.start_children()
        sup.start_reconciler(ctx)
        sup.start_periodic(ctx)
        typer.echo(f"FabQueue on http://{host}:{port}/  (data: {settings.data_path})")
        # uvicorn re-raises the signal it caught once it has shut down; let that become an
        # exception here so the children and Redis are stopped below, in order.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        server = uvicorn.Server(uvicorn.Config(create_app(ctx), host=host, port=port,
                                               log_level="info" if verbose else "warning"))
        server.run()
    finally:
        sup.stop()


def check_profiles(settings: Settings) -> None:
    """A missing or broken slicer profile or laser material stops start-up, naming the file."""
    from fabqueue.laser.materials import LibraryError, load_library
    from fabqueue.slicing.profiles import ProfileError, load_profiles

    try:
        load_profiles(settings.profiles_dir / "printers")
        load_library(settings.profiles_dir / "laser")
    except (ProfileError, LibraryError) as exc:
        typer.echo(f"error: slicer profiles in {settings.profiles_dir}: {exc}", err=True)
        raise typer.Exit(2) from None


def check_secret_key(settings: Settings) -> None:
    """A short or placeholder FABQUEUE_SECRET_KEY stops start-up, saying how to make one."""
    from fabqueue.config import WeakSecret

    try:
        settings.effective_secret()
    except WeakSecret as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)




@app.command()
def worker(
    data_dir: DataDir = None,
    queues: Annotated[str, typer.Option(help="comma-separated queues")] = "analysis,slicing",
    burst: Annotated[bool, typer.Option(help="exit when the queues are empty")] = False,
    name_suffix: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run analysis and slicing workers alone, against REDIS_URL and DATABASE_URL."""
    import socket

    from rq import Queue

    from fabqueue.queue.context import get_context
    from fabqueue.queue.rq_worker import FabWorker, work_forever

    _logging()
    settings_for(data_dir)
    ctx = get_context()
    ctx.db.migrate()
    name = f"fabqueue-{socket.gethostname()}-{os.getpid()}"
    if name_suffix:
        name += f"-{name_suffix}"

    def make() -> FabWorker:
        qs = [Queue(q.strip(), connection=ctx.redis) for q in queues.split(",") if q.strip()]
        return FabWorker(qs, connection=ctx.redis, name=name)

    work_forever(make, burst=burst)


@app.command("device-worker")
def device_worker(
    device_id: str,
    data_dir: DataDir = None,
) -> None:
    """Drive one machine: take its jobs and watch it (started by serve for each machine)."""
    from fabqueue.queue.context import get_context
    from fabqueue.queue.device_worker import run_device_worker

    _logging()
    settings_for(data_dir)
    run_device_worker(get_context(), device_id)


@app.command("device-host")
def device_host(
    data_dir: DataDir = None,
    site: Annotated[str | None, typer.Option(help="drive only this site's machines")] = None,
) -> None:
    """Drive many machines from one process, a thread each (serve runs one for all)."""
    from fabqueue.queue.context import get_context
    from fabqueue.queue.device_host import run_device_host

    _logging()
    settings_for(data_dir)
    run_device_host(get_context(), site)


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option(help="resident, teacher, staff or admin")],
    site: Annotated[str | None, typer.Option(help="site (staff and teachers)")] = None,
    email: Annotated[str | None, typer.Option()] = None,
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin")] = False,
    data_dir: DataDir = None,
) -> None:
    """Add a user; asks for the password (or reads it from stdin)."""
    from fabqueue.store.users import AccountError, create_user

    settings = settings_for(data_dir)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    db = open_db(settings)
    try:
        with db.session() as s:
            user = create_user(s, name, password, role, site, email)
            typer.echo(f"added {user.role} {user.name} (id {user.id})")
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@users_app.command("list")
def users_list(data_dir: DataDir = None) -> None:
    from sqlalchemy import select

    from fabqueue.store.models import User

    db = open_db(settings_for(data_dir))
    with db.session() as s:
        for u in s.scalars(select(User).order_by(User.name)):
            state = "disabled" if u.disabled else "active"
            typer.echo(f"{u.id}\t{u.name}\t{u.role}\t{u.site_id or '-'}\t{state}")


@devices_app.command("import")
def devices_import(file: Path, data_dir: DataDir = None) -> None:
    """Import sites, materials and machines from a TOML file (re-importing updates)."""
    from pydantic import ValidationError

    from fabqueue.store import inventory

    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        typer.echo(f"error: can't read {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    db = open_db(settings_for(data_dir))
    try:
        with db.session() as s:
            summary = inventory.apply(s, doc)
    except ValidationError as exc:
        typer.echo(f"error in {file}:", err=True)
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            typer.echo(f"  {where}: {err['msg']}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"error in {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    for what in ("added", "updated"):
        for item in summary[what]:
            typer.echo(f"{what} {item}")


@devices_app.command("list")
def devices_list(data_dir: DataDir = None) -> None:
    from sqlalchemy import select

    from fabqueue.store.models import Device

    db = open_db(settings_for(data_dir))
    with db.session() as s:
        for d in s.scalars(select(Device).order_by(Device.site_id, Device.id)):
            typer.echo(f"{d.id}\t{d.site_id}\t{d.kind}\t{d.driver}\t{d.state}")


@app.command()
def backup(
    to: Annotated[Path | None, typer.Option(
        "--to", help="archive to write (default: ./fabqueue-backup-DATE.tar.gz)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write one archive of the database and the file store (safe while FabQueue runs)."""
    from fabqueue.store.backup import BackupError, default_name
    from fabqueue.store.backup import backup as make_backup

    settings = settings_for(data_dir)
    dest = to or Path(default_name())
    try:
        manifest = make_backup(settings, dest)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"backup written: {dest} ({manifest['database']}, {manifest['files']} files)")


@app.command()
def restore(
    archive: Path,
    force: Annotated[bool, typer.Option(
        help="replace what is in a non-empty data folder or database")] = False,
    data_dir: DataDir = None,
) -> None:
    """Bring a backup back into an empty data folder (stop FabQueue first)."""
    from fabqueue.queue.instance import AlreadyRunning, held_quietly
    from fabqueue.store.backup import BackupError
    from fabqueue.store.backup import restore as restore_backup

    settings = settings_for(data_dir)
    try:
        # a running serve would go on writing into what is being replaced
        with held_quietly(settings.data_dir):
            manifest = restore_backup(settings, archive, force=force)
    except (BackupError, AlreadyRunning) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    open_db(settings)  # a backup from an older FabQueue is brought up to this one's schema
    typer.echo(f"restored {archive} (made {manifest['created']}) into {settings.data_path}")


@app.command()
def purge(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="only count what would be removed")] = False,
    data_dir: DataDir = None,
) -> None:
    """Remove what the retention settings no longer keep (serve does this daily): files
    of ended jobs, pupils' names after their class, inactive accounts. Prints counts."""
    from datetime import UTC, datetime

    from fabqueue.store.files import FileStore
    from fabqueue.store.retention import purge as run_purge

    settings = settings_for(data_dir)
    db = open_db(settings)
    with db.session() as s:
        counts = run_purge(s, FileStore(settings.files_path), settings, datetime.now(UTC),
                           dry_run=dry_run)
    typer.echo("dry run: nothing removed; would remove:" if dry_run else "removed:")
    for kind, count in counts.items():
        typer.echo(f"{kind}\t{count}")


@db_app.command("migrate")
def db_migrate(data_dir: DataDir = None) -> None:
    """Create or upgrade the database schema."""
    settings = settings_for(data_dir)
    open_db(settings)
    typer.echo(f"database ready: {settings.sqlalchemy_url.split('@')[-1]}")


if __name__ == "__main__":
    app()
