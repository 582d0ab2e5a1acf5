"""What a run reads back over the network: DNS answers, signed asset URLs, secret-named
settings and objects that change between their listing and their read (issue 22). Real
components: loopback HTTP servers, the moto server, ``rustac serve``, the session's Dask
processes."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from compactor.errors import ConfigError, SceneTooLargeError, TransientStorageError
from compactor.records._state import state_relative_key
from compactor.redact import is_secret_name, redact_url, url_identity
from compactor.settings import resolve_settings
from compactor.storage import HttpPolicy, HttpStore, Location, S3Options
from compactor.storage._s3 import S3Store

from .. import rasters
from ..conftest import S3
from ..reports import readable
from ..runner.test_hostile import http_server
from ..sources.test_stac import COLLECTION, image, item, stac_api

# --- 7. DNS rebinding -------------------------------------------------------------------

PUBLIC = "8.8.8.8"


def test_a_second_dns_answer_never_decides_where_the_request_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name answers a public address when it is vetted, then 127.0.0.1: the request
    goes to the address vetted (refused here, no network), never to the loopback server
    holding the content."""
    tif = rasters.gray(tmp_path / "h.tif", size=64).read_bytes()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.create_connection
    answers: list[str] = []
    connected: list[tuple[str, int]] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "assets.rebind.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = PUBLIC if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append((str(address[0]), int(address[1])))
        if address[0] == PUBLIC:  # no network here: what a firewall would answer
            raise ConnectionRefusedError("refused (test)")
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    with http_server("127.0.0.1", {"/a.tif": tif}) as (origin, seen):
        port = int(origin.rsplit(":", 1)[1])
        store = HttpStore(HttpPolicy(hosts=(f"*.rebind.example:{port}",)))
        url = f"http://assets.rebind.example:{port}/a.tif"
        with pytest.raises(TransientStorageError):
            store.download(Location.parse(url), tmp_path / "got.tif", 10**6)
    assert seen == [], "the loopback server must never be asked"
    assert not (tmp_path / "got.tif").exists() or (tmp_path / "got.tif").read_bytes() == b""
    assert answers == [PUBLIC], "the name is resolved once"
    assert connected == [(PUBLIC, port)]


def test_an_exactly_named_host_is_still_read_at_its_one_address(tmp_path: Path) -> None:
    """The pinned connection keeps the Host header (the name, with its port) and reads."""
    tif = rasters.gray(tmp_path / "h.tif", size=64).read_bytes()
    with http_server("127.0.0.1", {"/a.tif": tif}) as (origin, seen):
        port = origin.rsplit(":", 1)[1]
        url = f"http://localhost:{port}/a.tif"
        HttpStore(HttpPolicy(hosts=(f"localhost:{port}",))).download(
            Location.parse(url), tmp_path / "got.tif", 10**6
        )
    assert (tmp_path / "got.tif").read_bytes() == tif
    assert [h.get("Host") for _, _, h in seen] == [f"localhost:{port}"]


# --- 8. signed query strings ------------------------------------------------------------

SIGNED = {
    "sig": "sigSECRET-" + "1" * 16,
    "X-Amz-Signature": "amzSECRET-" + "2" * 16,
    "api-key": "apiSECRET-" + "3" * 16,
    "key": "keySECRET-" + "4" * 16,
    "subscription-key": "subSECRET-" + "5" * 16,
}


def _query(values: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in values.items()) + "&se=2030-01-01"


def test_redact_url_masks_every_signed_parameter_and_keeps_the_rest() -> None:
    url = "https://cdn.example.com/a/b.tif?" + _query(SIGNED)
    shown = redact_url(url)
    assert all(v not in shown for v in SIGNED.values())
    assert shown.startswith("https://cdn.example.com/a/b.tif?")
    assert "se=2030-01-01" in shown
    assert redact_url(shown) == shown
    # Not http(s): a "?" in an S3 key or a path is no query, and stays exactly as it is.
    for plain in ("s3://b/a?token=1.tif", "s3://b/a?", "/data/a?sig=1.tif"):
        assert redact_url(plain) == plain


def test_state_keys_of_signed_urls_hold_no_secret_and_are_stable() -> None:
    url = "https://cdn.example.com/a/b.tif?" + _query(SIGNED)
    rel = state_relative_key(Location.parse(url))
    assert all(v not in rel for v in SIGNED.values())
    assert rel.startswith("https/cdn.example.com/a/b.tif.q-")
    assert rel.endswith(".json")
    # The same key from the URL, from its redacted form (what the record holds), and from
    # the same URL signed again; another non-secret query value is another object.
    assert state_relative_key(Location.parse(redact_url(url))) == rel
    resigned = url.replace(SIGNED["sig"], "other-signature")
    assert state_relative_key(Location.parse(resigned)) == rel
    other = url.replace("se=2030-01-01", "se=2031-01-01")
    assert state_relative_key(Location.parse(other)) != rel
    assert url_identity("https://cdn.example.com/a/b.tif") == (
        "https://cdn.example.com/a/b.tif",
        None,
    )
    # Without a query, keys are as before.
    assert state_relative_key(Location.parse("https://cdn.example.com/a/b.tif")) == (
        "https/cdn.example.com/a/b.tif.json"
    )


def test_signed_asset_urls_show_nowhere_a_run_writes(cli: Any, tmp_path: Path) -> None:
    """STAC assets with signed hrefs (one readable, one answering 404): neither signature
    is in the report, the scene log, the state records, the updated items, the finished
    index or what the CLI prints; a second run finds the same state record."""
    tif = rasters.gray(tmp_path / "h.tif", size=200).read_bytes()
    query = _query(SIGNED)
    out = tmp_path / "out"
    with http_server("127.0.0.1", {f"/a.tif?{query}": tif}) as (origin, seen):
        items = [
            item("a", 0, "2020-03-01T00:00:00Z", {"image": image(f"{origin}/a.tif?{query}")}),
            item("gone", 0, "2020-03-01T00:00:00Z", {"image": image(f"{origin}/gone.tif?{query}")}),
        ]
        with stac_api(tmp_path, items) as api:
            args = ("run", "--stac", api, "--collection", COLLECTION, "--dest", str(out),
                    "--min-saving", "-1", "--allow-host", origin.removeprefix("http://"))  # fmt: skip
            first = cli(*args, quiet=False)
            second = cli(*args, quiet=False)
    assert seen, "the signed URL was read"
    assert first.exit_code == 1, first.output  # one scene failed
    secrets = [v.encode() for v in SIGNED.values()]
    for result in (first, second):
        assert "gone.tif" in result.output
        assert all(s.decode() not in result.output for s in secrets), result.output
    files = [p for p in out.rglob("*") if p.is_file()]
    written = {p: readable(p.read_bytes()) for p in files}
    assert any(b'"status":"compacted"' in body for body in written.values())  # the scene log
    assert any(b"sig=****" in body for body in written.values())  # redacted, not dropped
    leaks = [str(p) for p, body in written.items() if any(s in body for s in secrets)]
    assert leaks == []
    states = [p for p in files if "/_compactor/state/" in str(p)]
    assert len(states) == 1, states  # the failed scene records nothing; the second run reuses
    record = json.loads(states[0].read_text())
    assert record["source"] == redact_url(f"{origin}/a.tif?{query}")
    items_written = [p for p in files if p.name == "items.ndjson"]
    assert items_written
    for p in items_written:
        for line in p.read_text().splitlines():
            hrefs = [a["href"] for a in json.loads(line)["assets"].values()]
            assert any("sig=****" in h for h in hrefs)


# --- 9. secret names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "PC_SDK_SUBSCRIPTION_KEY", "MAPBOX_KEY", "X-Api-Key", "Ocp-Apim-Subscription-Key",
        "AZURE_STORAGE_ACCOUNT_KEY", "DB_PASS", "GITHUB_PAT", "apiKey", "subscriptionKey",
        "sig", "key", "api-key", "X-Amz-Signature", "X-Amz-Credential", "MY_PASSWD",
        "SERVICE_TOKEN", "client.secret", "GOOGLE_APPLICATION_CREDENTIALS", "X-Auth",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    ],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "SSE_KMS_KEY", "sse_kms_key", "COMPACTOR_SSE_KMS_KEY", "GDAL_HTTP_AUTH", "AWS_REGION",
        "AWS_NO_SIGN_REQUEST", "GDAL_DISABLE_READDIR_ON_OPEN", "PATH", "se", "X-Amz-Date",
        "keep_versions", "max_pixels", "COMPASS", "bypass", "monkey", "keyword",
    ],
)  # fmt: skip
def test_names_that_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "config",
    [
        {"cluster": {"kind": "kubernetes", "image": "x", "env": {"PC_SDK_SUBSCRIPTION_KEY": "V"}}},
        {"cluster": {"kind": "kubernetes", "image": "x", "env": {"MAPBOX_KEY": "V"}}},
        {"gdal_options": {"AZURE_STORAGE_ACCOUNT_KEY": "V"}},
        {"gdal_options": {"DB_PASS": "V"}},
        {"cluster": {"kind": "kubernetes", "image": "x", "env": {"GITHUB_PAT": "V"}}},
        {"http_headers": {"example.com": {"X-Api-Key": "V"}}},
        {"http_headers": {"example.com": {"Ocp-Apim-Subscription-Key": "V"}}},
    ],
)
def test_secret_named_settings_are_refused(
    config: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    secret = "sekrit-" + "W" * 20
    text = json.dumps(config).replace('"V"', json.dumps(secret))
    with pytest.raises(ConfigError) as err:
        resolve_settings(json.loads(text))
    assert secret not in str(err.value)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = cli("k8s-spec", "--config", str(path))
    assert result.exit_code != 0
    assert secret not in result.output


def test_secret_headers_from_the_environment_and_kms_keys_still_validate() -> None:
    settings = resolve_settings(
        {
            "sse_kms_key": "arn:aws:kms:eu-west-1:123456789012:key/abc",
            "http_headers": {"example.com": {"X-Api-Key": "${API_KEY}", "Accept": "image/tiff"}},
        }
    )
    assert settings.redacted()["sse_kms_key"] == "arn:aws:kms:eu-west-1:123456789012:key/abc"


# --- 12. an object that grew after it was listed ---------------------------------------


def test_fetch_stops_at_the_listed_size(s3: S3, tmp_path: Path) -> None:
    store = S3Store(S3Options(endpoint_url=s3.endpoint))
    loc = Location("s3", "src-bucket", "scenes/a.tif")
    s3.put("src-bucket", "scenes/a.tif", b"x" * 1000)
    listed = store.head(loc)
    assert listed is not None
    s3.put("src-bucket", "scenes/a.tif", b"y" * 5_000_000)  # replaced before the read
    target = tmp_path / "scratch.tif"
    with pytest.raises(SceneTooLargeError, match="grew after it was listed"):
        store.fetch(loc, target, max_bytes=listed.size)
    assert not target.exists() or target.stat().st_size <= listed.size + 1
    got = store.fetch(loc, tmp_path / "ok.tif", max_bytes=5_000_000)
    assert got is not None
    assert got.info.size == 5_000_000


def test_a_source_replaced_by_a_bigger_one_after_its_listing_fails_its_scene(
    s3: S3, cli: Any, tmp_path: Path
) -> None:
    """An inventory lists a small object; the object read is bigger: the scene fails with
    the reason, nothing is written for it, the original stays."""
    from ..inventory_fixture import write_inventory

    small = rasters.gray(tmp_path / "s.tif", size=64).read_bytes()
    big = rasters.gray(tmp_path / "b.tif", size=600).read_bytes()
    s3.put("src-bucket", "scenes/a.tif", small)
    head = s3.client.head_object(Bucket="src-bucket", Key="scenes/a.tif")
    rows = [{"key": "scenes/a.tif", "size": len(small), "e_tag": head["ETag"].strip('"')}]
    url = write_inventory(s3.client, "dst-bucket", "inv", rows, fmt="CSV")
    s3.put("src-bucket", "scenes/a.tif", big)
    result = cli("run", "--inventory", url, "--source", "s3://src-bucket/", "--dest", "s3://dst-bucket/cogs/",
                 "--min-saving", "-1", quiet=False)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "grew after it was listed" in " ".join(result.output.split())
    assert [k for k in s3.keys("dst-bucket", "cogs/") if not k.startswith("cogs/_compactor/")] == []
    assert s3.read("src-bucket", "scenes/a.tif") == big
