"""The ``compactor`` command line: a root group with shared options, one module per
subcommand. Only this package prints; the library logs.

A command imports the modules that do its work (the runner, Dask, GDAL) when it runs:
``compactor --help`` and a command's ``--help`` load only click, rich and the settings
their options are generated from."""

from __future__ import annotations

import atexit
import gc
import logging

import click
from rich.console import Console
from rich.logging import RichHandler

from .._version import __version__
from ..redact import RedactingFilter
from . import _demo as demo
from . import _k8s_spec as k8s_spec
from . import _plan as plan
from . import _restore as restore
from . import _run as run
from . import _verify as verify
from ._common import quiet_third_party


def quick_exit() -> None:
    """At the interpreter's exit, after the exit handlers of everything a command imports
    (registered before them, it runs after them): the objects still alive are frozen, so
    the exit's garbage collections do not walk them one by one (Dask, GDAL, pandas:
    0.4-0.7 s of a run's end on a loaded 2-core machine, 0.1 s frozen). Every exit handler
    still runs and output is flushed and closed as ever; only cyclic garbage left at exit
    is not collected, as the process ends. Registered once per process."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    handler.addFilter(RedactingFilter())  # URL passwords; settings add their secrets
    logging.basicConfig(level=level, format="%(name)s: %(message)s", handlers=[handler], force=True)
    quiet_third_party(verbosity)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="compactor")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bar.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="COMPACTOR_CONFIG",
    help="YAML file of settings (keys as the long options, e.g. source, dest, codec). "
    "Precedence: defaults < environment < this file < command-line flags.",
)
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, config_file: str | None) -> None:
    """Compact satellite-imagery archives: every scene re-encoded as a compressed,
    verified Cloud-Optimized GeoTIFF, originals moved to a Glacier storage class,
    and a report of what was saved.

    \b
    Start with a dry run, then run:
      compactor plan --source s3://bucket/scenes/ --dest s3://bucket/cogs/
      compactor run  --source s3://bucket/scenes/ --dest s3://bucket/cogs/ \\
                     --archive s3://bucket/archive/
    or try it all on generated data with an embedded S3 server:
      compactor demo
    """
    verbosity = -1 if quiet else verbose
    quick_exit()
    configure_logging(verbosity)
    ctx.obj = {"config_file": config_file, "verbosity": verbosity}


for command in (run.run, plan.plan, verify.verify, restore.restore, demo.demo, k8s_spec.k8s_spec):
    main.add_command(command)
