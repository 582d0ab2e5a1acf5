"""``compactor k8s-spec``."""

from __future__ import annotations

import click
import yaml

from ..settings import resolve_settings
from ._common import clean_errors, resolve, stdout


@click.command("k8s-spec")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML settings file (overrides the root --config); its cluster: section describes "
    "the Kubernetes cluster.",
)
@click.option("--image", help="Container image of the scheduler and workers.")
@click.option(
    "--name",
    metavar="NAME",
    help="Name of the DaskCluster.  [default: <cluster.name>-<random suffix>]",
)
@click.pass_context
def k8s_spec(
    ctx: click.Context, config_file: str | None, image: str | None, name: str | None
) -> None:
    """Print the DaskCluster manifest that --cluster kubernetes would create (YAML), without
    touching any cluster. Apply it with kubectl to try the image by hand, or diff it
    between releases."""

    with clean_errors():
        settings = resolve_settings({}, config_file=config_file) if config_file else resolve(ctx)
        if image:
            cluster = settings.cluster.model_copy(update={"image": image})
            settings = settings.model_copy(update={"cluster": cluster})
        from ..cluster import cluster_spec

        spec = cluster_spec(settings, name=name)
        stdout.print(yaml.safe_dump(spec, sort_keys=False), end="")
