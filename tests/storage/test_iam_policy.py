"""helm/iam-policy.json against the table of S3 calls in compactor/storage/_iam.py: every boto3 S3
call in the source is in the table, a small IAM evaluator shows the policy allows each call
the table lists, and denies what a compromised worker must not do."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from compactor.storage._iam import S3_CALLS, Placeholders, S3Call

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "helm" / "iam-policy.json"
IN_PLACE = REPO / "helm" / "iam-policy-in-place.json"

ARCHIVE_CLASS = "DEEP_ARCHIVE"

#: The placeholders as a site fills them in (README's sed line), and left as they are.
SITE = {
    "SOURCE_BUCKET": "raw-scenes",
    "SOURCE_PREFIX": "landsat/",
    "DEST_BUCKET": "cogs",
    "DEST_PREFIX": "landsat/",
    "ARCHIVE_BUCKET": "cold-archive",
    "ARCHIVE_PREFIX": "landsat/",
}
LAYOUTS = {
    "placeholders": Placeholders(),
    "site": Placeholders(
        source_bucket="raw-scenes",
        source_prefix="landsat/",
        dest_bucket="cogs",
        dest_prefix="landsat/",
        archive_bucket="cold-archive",
        archive_prefix="landsat/",
    ),
}


def load(path: Path, layout: str) -> list[dict[str, Any]]:
    text = path.read_text()
    if layout == "site":
        for placeholder, value in SITE.items():
            text = text.replace(placeholder, value)
    statements: list[dict[str, Any]] = json.loads(text)["Statement"]
    return statements


# --- a small IAM evaluator -------------------------------------------------------------------


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _like(pattern: str, value: str) -> bool:
    """IAM wildcards: * any run of characters, ? one character (case-sensitive)."""
    return fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition_holds(operator: str, key: str, wanted: list[str], context: dict[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    if op == "Null":
        (flag,) = wanted
        return (key not in context) == (flag == "true")
    if key not in context:
        return if_exists
    value = context[key]
    if op == "StringEquals":
        return value in wanted
    if op == "StringNotEquals":
        return value not in wanted
    if op == "StringLike":
        return any(_like(w, value) for w in wanted)
    if op == "Bool":
        return value.lower() in [w.lower() for w in wanted]
    raise AssertionError(f"the evaluator does not know the condition operator {operator}")


def _applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]):
    if not any(_like(a, action) for a in _listed(statement["Action"])):
        return False
    if not any(_like(r, resource) for r in _listed(statement["Resource"])):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, _listed(wanted), context):
                return False
    return True


def allowed(
    statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, str]
) -> bool:
    """Explicit Deny wins; otherwise some Allow must match; otherwise denied."""
    matching = [s for s in statements if _applies(s, action, resource, context)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def context_of(
    call: S3Call, layout: Placeholders, *, copy_from: tuple[str, str] | None = None
) -> dict[str, str]:
    """The request's condition keys, from the headers the table says the call sends."""
    context: dict[str, str] = {}
    if call.creation is not None:
        context["s3:ObjectCreationOperation"] = "true" if call.creation else "false"
    if "If-None-Match" in call.headers:
        context["s3:if-none-match"] = "*"
    if "If-Match" in call.headers:
        context["s3:if-match"] = '"0123456789abcdef"'
    if "x-amz-storage-class" in call.headers:
        context["s3:x-amz-storage-class"] = ARCHIVE_CLASS
    if "x-amz-copy-source" in call.headers:
        bucket, key = copy_from or layout.location(call.source_role or "source")
        context["s3:x-amz-copy-source"] = f"{bucket}/{key}"
    return context


def arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def requests(call: S3Call, layout: Placeholders) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs the call needs, including on a copy's source."""
    bucket, key = layout.location(call.role)
    target = arn(bucket) if call.bucket_level else arn(bucket, key)
    needed = [(action, target) for action in call.actions]
    if call.source_role:
        src_bucket, src_key = layout.location(call.source_role)
        needed += [(action, arn(src_bucket, src_key)) for action in call.source_actions]
    return needed


def grants(statements: list[dict[str, Any]], call: S3Call, layout: Placeholders) -> bool:
    context = context_of(call, layout)
    return all(allowed(statements, a, r, context) for a, r in requests(call, layout))


# --- (1) every boto3 S3 call of compactor is in the table -----------------------------------


def s3_client_methods() -> set[str]:
    """The methods of a boto3 S3 client (API operations and boto3's transfer helpers)."""
    import boto3

    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    generic = {"close", "can_paginate", "get_paginator", "get_waiter", "exceptions", "meta"}
    return {
        name
        for name in dir(client)
        if not name.startswith("_") and name not in generic and callable(getattr(client, name))
    }


def s3_calls_in_source() -> dict[str, set[str]]:
    """boto3 S3 client methods named in compactor/ after ``client.`` (called, or passed to
    ``_call``), by method: the files naming them."""
    methods = s3_client_methods()
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "compactor").rglob("*.py")):
        text = path.read_text()
        for name in re.findall(r"(?:\bclient|\bs3_client\([^)]*\))\.([a-z_][a-z0-9_]*)\b", text):
            if name in methods:
                found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_scan_finds_the_calls_it_should() -> None:
    found = s3_calls_in_source()
    # Spot checks: calls on a client from s3_client(...), passed to S3Store._call, in the demo.
    assert "compactor/storage/_multipart.py" in found["abort_multipart_upload"]
    assert "compactor/storage/_s3.py" in found["copy_object"]
    assert "compactor/demo/_flow.py" in found["create_bucket"]
    # Dask's and pystac-client's clients are not S3 clients.
    assert not {"submit", "run", "gather", "search"} & set(found)


def test_every_s3_call_in_the_source_is_in_the_table() -> None:
    tabled = {call.method for call in S3_CALLS}
    missing = {m: sorted(f) for m, f in s3_calls_in_source().items() if m not in tabled}
    assert missing == {}, "add these to compactor/storage/_iam.py and the policy"
    # And the table lists nothing the code does not call (list_objects_v2 comes from a paginator).
    stale = tabled - set(s3_calls_in_source()) - {"list_objects_v2"}
    assert stale == set()
    for call in S3_CALLS:
        assert all(a.startswith("s3:") for a in call.actions), call
        assert call.where


# --- (2) the policy allows every call of the table --------------------------------------------


def _policy_for(call: S3Call, layout: str) -> list[dict[str, Any]]:
    statements = load(POLICY, layout)
    if call.policy == "iam-policy-in-place.json":
        statements += load(IN_PLACE, layout)
    return statements


GRANTED = [c for c in S3_CALLS if c.policy != "none"]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(
    "call", GRANTED, ids=[f"{c.method}-{c.role}-{'+'.join(sorted(c.headers))}" for c in GRANTED]
)
def test_the_policy_allows_each_call_compactor_makes(call: S3Call, layout: str) -> None:
    assert grants(_policy_for(call, layout), call, LAYOUTS[layout])


def test_archive_completions_without_if_none_match_are_denied() -> None:
    """An archive copy above 5 GiB completes with If-None-Match (never replacing an archived
    original); the same completion without it is refused."""
    (call,) = [c for c in S3_CALLS if (c.method, c.role) == ("complete_multipart_upload",
                                                                "archive")]  # fmt: skip
    assert "If-None-Match" in call.headers
    layout = LAYOUTS["site"]
    statements = load(POLICY, "site")
    assert grants(statements, call, layout)
    bare = S3Call(call.method, call.actions, call.role, call.where, headers=frozenset())
    assert not grants(statements, bare, layout)


def test_the_nightly_policy_does_not_grant_in_place_rewrites() -> None:
    layout = LAYOUTS["site"]
    for call in S3_CALLS:
        if call.policy == "iam-policy-in-place.json" and call.method != "list_multipart_uploads":
            assert not grants(load(POLICY, "site"), call, layout), call


# --- (3) what a compromised worker must not do -----------------------------------------------


def _write(
    method: str,
    bucket: str,
    key: str,
    *,
    headers: frozenset[str] = frozenset(),
    storage_class: str | None = ARCHIVE_CLASS,
    copy_from: str | None = None,
) -> tuple[str, str, dict[str, str]]:
    """(action, resource, context) of an object write."""
    context: dict[str, str] = {}
    if method in ("put_object", "copy_object", "complete_multipart_upload"):
        context["s3:ObjectCreationOperation"] = "true"
    else:
        context["s3:ObjectCreationOperation"] = "false"
    if "If-None-Match" in headers:
        context["s3:if-none-match"] = "*"
    if "If-Match" in headers:
        context["s3:if-match"] = '"etag"'
    if storage_class is not None and method in ("copy_object", "create_multipart_upload"):
        context["s3:x-amz-storage-class"] = storage_class
    if copy_from is not None:
        context["s3:x-amz-copy-source"] = copy_from
    return "s3:PutObject", arn(bucket, key), context


SCENE_COPY = "raw-scenes/landsat/2021/05/LC08_scene.tif"
NONE_MATCH = frozenset({"If-None-Match"})


@pytest.mark.parametrize("in_place", [False, True], ids=["nightly", "with-in-place"])
@pytest.mark.parametrize(
    ("what", "action", "resource", "context"),
    [
        # deletes outside the source prefix, of archived originals, of COGs
        (
            "delete outside the source prefix",
            "s3:DeleteObject",
            arn("raw-scenes", "other/x.tif"),
            {},
        ),
        (
            "delete of an archived original",
            "s3:DeleteObject",
            arn("cold-archive", "landsat/a.tif"),
            {},
        ),
        (
            "delete a version of an archived original",
            "s3:DeleteObjectVersion",
            arn("cold-archive", "landsat/a.tif"),
            {},
        ),
        ("delete of a COG", "s3:DeleteObject", arn("cogs", "landsat/2021/a_cog.tif"), {}),
        # state/lease deletes only under <dest>/_compactor/
        (
            "delete under another _compactor/ folder",
            "s3:DeleteObject",
            arn("cogs", "landsat/sub/_compactor/state/x.json"),
            {},
        ),
        (
            "delete under a _compactor/ folder outside dest",
            "s3:DeleteObject",
            arn("cogs", "other/_compactor/leases/x.json"),
            {},
        ),
        (
            "write under a _compactor/ folder outside dest",
            *_write("put_object", "cogs", "other/_compactor/leases/x.json", headers=NONE_MATCH)[:2],
            _write("put_object", "cogs", "other/_compactor/leases/x.json", headers=NONE_MATCH)[2],
        ),
        # the archive: no creation without If-None-Match, only archive classes
        (
            "archive PutObject without If-None-Match",
            *_write("put_object", "cold-archive", "landsat/a.tif")[:2],
            _write("put_object", "cold-archive", "landsat/a.tif")[2],
        ),
        (
            "archive PutObject with If-Match (overwrite)",
            *_write("put_object", "cold-archive", "landsat/a.tif", headers=frozenset({"If-Match"}))[
                :2
            ],
            _write("put_object", "cold-archive", "landsat/a.tif", headers=frozenset({"If-Match"}))[
                2
            ],
        ),
        (
            "archive CopyObject without If-None-Match",
            *_write("copy_object", "cold-archive", "landsat/a.tif", copy_from=SCENE_COPY)[:2],
            _write("copy_object", "cold-archive", "landsat/a.tif", copy_from=SCENE_COPY)[2],
        ),
        (
            "archive CompleteMultipartUpload without If-None-Match",
            *_write("complete_multipart_upload", "cold-archive", "landsat/a.tif")[:2],
            _write("complete_multipart_upload", "cold-archive", "landsat/a.tif")[2],
        ),
        (
            "archive CopyObject into STANDARD",
            *_write(
                "copy_object",
                "cold-archive",
                "landsat/a.tif",
                headers=NONE_MATCH,
                storage_class="STANDARD",
                copy_from=SCENE_COPY,
            )[:2],
            _write(
                "copy_object",
                "cold-archive",
                "landsat/a.tif",
                headers=NONE_MATCH,
                storage_class="STANDARD",
                copy_from=SCENE_COPY,
            )[2],
        ),
        (
            "archive CopyObject without a storage class",
            *_write(
                "copy_object",
                "cold-archive",
                "landsat/a.tif",
                headers=NONE_MATCH,
                storage_class=None,
                copy_from=SCENE_COPY,
            )[:2],
            _write(
                "copy_object",
                "cold-archive",
                "landsat/a.tif",
                headers=NONE_MATCH,
                storage_class=None,
                copy_from=SCENE_COPY,
            )[2],
        ),
        (
            "archive CreateMultipartUpload into STANDARD",
            *_write(
                "create_multipart_upload", "cold-archive", "landsat/a.tif", storage_class="STANDARD"
            )[:2],
            _write(
                "create_multipart_upload", "cold-archive", "landsat/a.tif", storage_class="STANDARD"
            )[2],
        ),
        (
            "archive CreateMultipartUpload without a storage class",
            *_write("create_multipart_upload", "cold-archive", "landsat/a.tif", storage_class=None)[
                :2
            ],
            _write("create_multipart_upload", "cold-archive", "landsat/a.tif", storage_class=None)[
                2
            ],
        ),
        (
            "archive CopyObject from outside the source prefix",
            *_write(
                "copy_object",
                "cold-archive",
                "landsat/a.tif",
                headers=NONE_MATCH,
                copy_from="raw-scenes/other/x.tif",
            )[:2],
            _write(
                "copy_object",
                "cold-archive",
                "landsat/a.tif",
                headers=NONE_MATCH,
                copy_from="raw-scenes/other/x.tif",
            )[2],
        ),
        (
            "archive UploadPart with a body (no copy source)",
            *_write("upload_part", "cold-archive", "landsat/a.tif", storage_class=None)[:2],
            _write("upload_part", "cold-archive", "landsat/a.tif", storage_class=None)[2],
        ),
        (
            "archive write outside the archive prefix",
            *_write(
                "copy_object",
                "cold-archive",
                "other/a.tif",
                headers=NONE_MATCH,
                copy_from=SCENE_COPY,
            )[:2],
            _write(
                "copy_object",
                "cold-archive",
                "other/a.tif",
                headers=NONE_MATCH,
                copy_from=SCENE_COPY,
            )[2],
        ),
        (
            "COG write outside the dest prefix",
            *_write("put_object", "cogs", "other/a_cog.tif")[:2],
            _write("put_object", "cogs", "other/a_cog.tif")[2],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_the_policy_denies_what_compactor_never_does(
    in_place: bool, what: str, action: str, resource: str, context: dict[str, str]
) -> None:
    statements = load(POLICY, "site") + (load(IN_PLACE, "site") if in_place else [])
    assert not allowed(statements, action, resource, context), what


def test_the_nightly_policy_never_writes_the_source() -> None:
    statements = load(POLICY, "site")
    for method in (
        "put_object",
        "copy_object",
        "create_multipart_upload",
        "complete_multipart_upload",
    ):
        for storage_class in (None, ARCHIVE_CLASS):
            write = _write(
                method,
                "raw-scenes",
                "landsat/2021/a.tif",
                storage_class=storage_class,
                copy_from="raw-scenes/landsat/2021/a.tif" if method == "copy_object" else None,
            )
            assert not allowed(statements, *write), (method, storage_class)


def test_in_place_completion_is_the_one_weak_spot_and_optional() -> None:
    """IAM cannot tell a CompleteMultipartUpload from a PutObject without a storage class:
    the statement that completes in-place copies above 5 GiB would also let a plain PUT
    replace an original. It is its own statement, so sites without such originals drop it."""
    in_place = load(IN_PLACE, "site")
    plain_put = _write("put_object", "raw-scenes", "landsat/2021/a.tif", storage_class=None)
    complete = _write("complete_multipart_upload", "raw-scenes", "landsat/2021/a.tif")
    weak = "InPlaceCompleteMultipartCopiesOfOriginalsOver5GiB"
    assert allowed(load(POLICY, "site") + in_place, *complete)
    assert allowed(load(POLICY, "site") + in_place, *plain_put)
    without = [s for s in in_place if s["Sid"] != weak]
    assert len(without) == len(in_place) - 1
    assert not allowed(load(POLICY, "site") + without, *complete)
    assert not allowed(load(POLICY, "site") + without, *plain_put)


def test_in_place_rewrites_stay_within_the_source_prefix_and_archive_classes() -> None:
    statements = load(POLICY, "site") + load(IN_PLACE, "site")
    scene = "landsat/2021/a.tif"
    ok = _write("copy_object", "raw-scenes", scene, copy_from=f"raw-scenes/{scene}")
    assert allowed(statements, *ok)
    for bad in (
        _write("copy_object", "raw-scenes", scene, storage_class="STANDARD",
               copy_from=f"raw-scenes/{scene}"),
        _write("copy_object", "raw-scenes", "other/a.tif", copy_from="raw-scenes/other/a.tif"),
        _write("copy_object", "raw-scenes", scene, copy_from="attacker-bucket/x.tif"),
        _write("create_multipart_upload", "raw-scenes", scene, storage_class=None),
    ):  # fmt: skip
        assert not allowed(statements, *bad), bad


def test_the_evaluator_is_not_vacuous() -> None:
    """It allows what a plain statement grants and honours Deny, wildcards and conditions."""
    statements = [
        {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/p/*"},
        {
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::b/p/*",
            "Condition": {"Null": {"s3:if-none-match": "false"}},
        },
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/p/secret*"},
    ]
    assert allowed(statements, "s3:GetObjectTagging", "arn:aws:s3:::b/p/x", {})
    assert not allowed(statements, "s3:GetObject", "arn:aws:s3:::b/q/x", {})
    assert not allowed(statements, "s3:GetObject", "arn:aws:s3:::b/p/secret.txt", {})
    assert allowed(statements, "s3:PutObject", "arn:aws:s3:::b/p/x", {"s3:if-none-match": "*"})
    assert not allowed(statements, "s3:PutObject", "arn:aws:s3:::b/p/x", {})


def test_every_statement_is_explained_in_the_readme() -> None:
    readme = (REPO / "helm" / "README.md").read_text()
    for path in (POLICY, IN_PLACE):
        for statement in json.loads(path.read_text())["Statement"]:
            assert f"`{statement['Sid']}`" in readme, statement["Sid"]
