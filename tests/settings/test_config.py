"""Settings precedence: defaults < environment < config file < arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from compactor.errors import ConfigError
from compactor.settings import resolve_settings
from compactor.settings._meta import DEFAULT_INCLUDE


def test_defaults_apply_when_nothing_is_given() -> None:
    s = resolve_settings({}, environ={})
    assert s.codec == "auto"
    assert s.storage_class == "GLACIER"
    assert s.min_ssim == 0.95
    assert s.include == DEFAULT_INCLUDE
    assert s.cluster.kind == "local"
    assert s.endpoint_url is None


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    env = {"COMPACTOR_CODEC": "deflate", "COMPACTOR_QUALITY": "60", "COMPACTOR_MIN_SSIM": "0.9"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("codec: zstd\nquality: 70\ncluster:\n  workers: 3\n")
    s = resolve_settings({"codec": "jpeg"}, config_file=cfg, environ=env)
    assert s.codec == "jpeg"  # argument beats file
    assert s.quality == 70  # file beats environment
    assert s.min_ssim == 0.9  # environment beats default
    assert s.cluster.workers == 3


def test_none_arguments_do_not_mask_lower_layers(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("codec: webp\n")
    s = resolve_settings({"codec": None, "workers": None}, config_file=cfg, environ={})
    assert s.codec == "webp"


def test_endpoint_comes_from_the_standard_aws_variables() -> None:
    s = resolve_settings(
        {}, environ={"AWS_ENDPOINT_URL": "http://a:1", "AWS_DEFAULT_REGION": "eu-west-1"}
    )
    assert s.endpoint_url == "http://a:1"
    assert s.region == "eu-west-1"
    s = resolve_settings(
        {}, environ={"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://b:2"}
    )
    assert s.endpoint_url == "http://b:2"  # the service-specific variable wins


def test_scheduler_selects_an_address_cluster() -> None:
    s = resolve_settings({"scheduler": "tcp://h:8786"}, environ={})
    assert (s.cluster.kind, s.cluster.address) == ("address", "tcp://h:8786")
    s = resolve_settings({}, environ={"COMPACTOR_SCHEDULER": "tcp://x:1"})
    assert (s.cluster.kind, s.cluster.address) == ("address", "tcp://x:1")


def test_globs_split_from_strings() -> None:
    s = resolve_settings({}, environ={"COMPACTOR_INCLUDE": "*.tif, *.jp2"})
    assert s.include == ("*.tif", "*.jp2")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"quality": 0}, "quality"),
        ({"min_ssim": 1.5}, "min_ssim"),
        ({"codec": "png"}, "codec"),
        ({"storage_class": "ICE"}, "storage_class"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_values_are_config_errors(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_settings(arguments, environ={})


def test_bad_config_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_settings({}, config_file=bad, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_settings({}, config_file=tmp_path / "missing.yaml", environ={})


def test_the_option_reference_is_the_model() -> None:
    """docs/options.md holds the table the model gives (python -m compactor.settings
    rewrites it), and the table names every flag of run and plan."""
    from compactor.cli._run import run as run_command
    from compactor.settings import options_table
    from compactor.settings._reference import OPTIONS_DOC, render

    text = (Path(__file__).resolve().parents[2] / OPTIONS_DOC).read_text(encoding="utf-8")
    assert render(text) == text, "docs/options.md drifted: run python -m compactor.settings"
    table = options_table()
    for param in run_command.params:
        for flag in param.opts:
            assert f"`{flag}" in table, flag


def test_environment_names_and_flags_come_from_the_model() -> None:
    from compactor.settings._env import ENV_VARS
    from compactor.settings._resolve import CLUSTER_FLAGS, STAC_FLAGS

    assert ENV_VARS["COMPACTOR_SOURCE_CLASS"] == "source_classes"
    assert ENV_VARS["COMPACTOR_SCHEDULER"] == "cluster.address"
    assert ENV_VARS["COMPACTOR_STAC_COLLECTION"] == "stac.collections"
    assert "COMPACTOR_GDAL_OPTIONS" not in ENV_VARS
    assert CLUSTER_FLAGS == {"cluster_kind": "kind", "scheduler": "address",
                             "workers": "workers", "worker_memory": "worker_memory"}  # fmt: skip
    assert STAC_FLAGS["allow_bucket"] == STAC_FLAGS["allow_buckets"] == "allow_buckets"
    assert "url" not in STAC_FLAGS
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2",
           "AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://b:2"}  # fmt: skip
    s = resolve_settings({}, environ=env)
    assert (s.region, s.endpoint_url) == ("eu-west-1", "http://b:2")
    assert resolve_settings({}, environ={"AWS_DEFAULT_REGION": "us-west-2"}).region == "us-west-2"
