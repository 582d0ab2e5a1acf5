"""Options and helpers shared by subcommands."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import CompactorError, ConfigError, DiscoveryError
from ..redact import RedactingFilter
from ..settings import Settings, resolve_settings

if TYPE_CHECKING:
    from ..records import SceneResult

#: Exit codes: 0 nothing failed, 1 a scene failed, 2 usage error.
EXIT_FAILED_SCENES = 1
EXIT_USAGE = 2

# stdout prints data (keys, URLs, reasons): never interpret it as Rich markup.
stdout = Console(highlight=False, soft_wrap=True, markup=False)
stderr = Console(stderr=True, highlight=False)


#: Third-party loggers whose chatter stays at WARNING unless -vv.
NOISY_LOGGERS = ("distributed", "botocore", "boto3", "s3fs", "aiobotocore", "rasterio", "urllib3")


def quiet_third_party(verbosity: int) -> None:
    """Third-party chatter at WARNING unless -vv. Called again by a command once it has
    imported its work (importing ``distributed`` sets its loggers' levels)."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def imported(ctx: click.Context) -> None:
    """After a command imported the modules doing its work: the levels of the loggers they
    configured on import (``distributed``) set back to the command line's verbosity."""
    quiet_third_party(ctx.obj["verbosity"] if ctx.obj else 0)


def warm_local_workers(settings: Settings) -> None:
    """A command about to import its work and start a local cluster: the workers' fork
    server starts now, its imports overlapping the command's (the cluster forks its
    workers from it)."""
    if settings.cluster.kind == "local":
        from ..cluster import start_fork_server
        from ..codecs import may_be_lossy

        start_fork_server(lossy=may_be_lossy(settings.codec))


def resolve(ctx: click.Context, **flags: Any) -> Settings:
    """Settings from defaults < environment < --config file < these flags. Every secret
    they hold (URL passwords, say) is masked in log output from here on."""
    args = {k: v for k, v in flags.items() if v not in (None, ())}
    settings = resolve_settings(args, config_file=ctx.obj.get("config_file") if ctx.obj else None)
    mask_in_logs(settings.secrets())
    return settings


def mask_in_logs(secrets: set[str]) -> None:
    """Mask ``secrets`` (and URL passwords) in every record the CLI's log handlers print."""
    for handler in logging.getLogger().handlers:
        found = [f for f in handler.filters if isinstance(f, RedactingFilter)]
        if found:
            found[0].add(secrets)
        else:
            handler.addFilter(RedactingFilter(secrets))


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn compactor's errors into one-line messages and exit codes at the CLI edge."""
    try:
        yield
    except (ConfigError, DiscoveryError) as err:
        stderr.print(f"[bold red]Error:[/] {escape(str(err))}")
        sys.exit(EXIT_USAGE)
    except CompactorError as err:
        stderr.print(f"[bold red]Error:[/] {escape(str(err))}")
        sys.exit(EXIT_FAILED_SCENES)
    except KeyboardInterrupt:
        stderr.print(
            "[yellow]Interrupted.[/] Nothing is lost: rerun the same command to finish; "
            "completed scenes are not redone."
        )
        sys.exit(130)


class SceneProgress:
    """A progress bar over scenes (to stderr), with failed and held scenes printed as they
    happen (a held original needs someone to look at its Object Lock or bucket policy)."""

    def __init__(self, label: str, enabled: bool = True):
        self.enabled = enabled
        self.label = label
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            disable=not enabled,
        )
        self.task: Any = None
        self.counts = {"compacted": 0, "held": 0, "skipped": 0, "failed": 0}

    def __enter__(self) -> SceneProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def start(self, total: int) -> None:
        """The number of scenes known so far (it grows while the listing streams in)."""
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=total, counts="")
        else:
            self.progress.update(self.task, total=total)

    def dashboard(self, link: str) -> None:
        if self.enabled:
            self.progress.console.print(f"Dask dashboard: {escape(link)}")

    def advance(self, result: SceneResult | dict[str, Any]) -> None:
        from ..records import SceneResult  # loaded by then: the result is one

        status = result.status if isinstance(result, SceneResult) else str(result.get("action"))
        self.counts[status] = self.counts.get(status, 0) + 1
        if isinstance(result, SceneResult) and result.status == "failed" and self.enabled:
            self.progress.console.print(
                f"[red]failed[/] {escape(result.source)}: {escape(result.reason or '')}"
            )
        elif isinstance(result, SceneResult) and result.status == "held" and self.enabled:
            self.progress.console.print(
                f"[yellow]held[/] {escape(result.source)} (archived, not deleted): "
                f"{escape(result.reason or '')}"
            )
        text = " ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        if self.task is not None:
            self.progress.update(self.task, advance=1, counts=text)
