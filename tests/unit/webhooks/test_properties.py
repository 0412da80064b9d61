"""Whatever arrives, only the declared errors escape: never a 500 from the adapters or signers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.webhooks import (
    ADAPTERS,
    UnmappableError,
    WebhookError,
    WebhookRequest,
    adapt,
    delivery_id,
    verify_signature,
)

from ._helpers import FIXTURES, NOW, SHARED_GITHUB, config

OPTIONS: dict[str, dict[str, Any]] = {
    "generic": {"mapping": {"external_id": "/id", "tags": "$.tags[*]", "status": "/status"}},
}
HEADERS = {"X-GitHub-Event": "issues"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
# Objects shaped loosely like the vendors' payloads reach deeper than random bytes do.
vendorish = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["zen:event-type:ticket.created", "zen:event-type:ticket.comment_added", "ticket"]
        ),
        "webhookEvent": st.sampled_from(["jira:issue_created", "jira:issue_updated", "comment_created"]),
        "topic": st.sampled_from(["ticket.created", "conversation.admin.replied", "ping"]),
        "action": st.sampled_from(["opened", "closed", "created"]),
        "id": json_values,
        "status": json_values,
        "tags": json_values,
        "detail": json_values,
        "issue": json_values,
        "ticket": json_values,
        "data": json_values,
        "comment": json_values,
        "freshdesk_webhook": json_values,
        "repository": json_values,
        "external_id": json_values,
    },
)


def _check(body: bytes) -> None:
    for adapter in ADAPTERS:
        cfg = config(adapter, **OPTIONS.get(adapter, {}))
        request = WebhookRequest(HEADERS, body)
        assert delivery_id(cfg, request)
        try:
            verify_signature(cfg, request, NOW)
        except WebhookError:
            pass
        try:
            adapt(cfg, request, NOW)
        except WebhookError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    _check(body)


@settings(max_examples=300, deadline=None)
@given(vendorish)
def test_vendor_shaped_json(data: dict[str, Any]) -> None:
    _check(json.dumps(data).encode())


# Every node of every real payload replaced by a value of another JSON type: a vendor (or a
# misconfigured automation) sending a number where a list belongs must get a 4xx naming the field,
# not a 500 that makes it retry the same delivery for days.
_OTHER_TYPES: tuple[Any, ...] = (None, True, 7, 1.5, "word", [], [1, "x"], {}, {"x": 1})
_HEADERS_BY_ADAPTER = {
    "github": [{"X-GitHub-Event": "issues"}, {"X-GitHub-Event": "issue_comment"}],
    "zammad": [{"X-Zammad-Trigger": "t"}],
}


def _samples() -> list[tuple[str, str, bytes]]:
    samples: list[tuple[str, str, bytes]] = [
        (path.parent.name, path.name, path.read_bytes())
        for path in sorted(FIXTURES.glob("*/*.json"))
        if path.parent.name in ADAPTERS
    ]
    samples += [("github", path.name, path.read_bytes()) for path in sorted(SHARED_GITHUB.glob("*.json"))]
    return samples


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node[:3]):
            found += _paths(child, (*prefix, index))
    return found


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return copy


@pytest.mark.parametrize(
    ("adapter", "name", "body"), _samples(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_field_of_a_real_payload_with_another_type(adapter: str, name: str, body: bytes) -> None:
    doc = json.loads(body)
    cfg = config(adapter, **OPTIONS.get(adapter, {}))
    crashes = []
    for headers in _HEADERS_BY_ADAPTER.get(adapter, [{}]):
        for path in _paths(doc):
            for value in _OTHER_TYPES:
                request = WebhookRequest(headers, json.dumps(_replaced(doc, path, value)).encode())
                try:
                    adapt(cfg, request, NOW)
                except WebhookError:
                    pass
                except Exception as exc:
                    crashes.append(f"{'/'.join(map(str, path))} = {value!r}: {type(exc).__name__}: {exc}")
    assert not crashes, f"{len(crashes)} crashes, e.g.\n" + "\n".join(sorted(set(crashes))[:40])


@pytest.mark.parametrize(
    ("adapter", "sample", "status_path", "headers"),
    [
        ("zendesk", "ticket.created.json", ("detail", "status"), {}),
        ("jira", "issue_updated.status.json", ("issue", "fields", "status"), {}),
        ("intercom", "ticket.created.json", ("data", "item", "ticket_state"), {}),
        ("zammad", "ticket_created.json", ("ticket", "state"), {}),
        ("github", "issue_comment.created.json", ("issue", "state"), {"X-GitHub-Event": "issue_comment"}),
    ],
)
def test_a_missing_status_is_named_by_the_vendors_field(
    adapter: str, sample: str, status_path: tuple[str, ...], headers: dict[str, str]
) -> None:
    path = SHARED_GITHUB / sample if adapter == "github" else FIXTURES / adapter / sample
    if not path.is_file():
        pytest.skip(f"{path} not available")
    doc = json.loads(path.read_bytes())
    parent = doc
    for step in status_path[:-1]:
        parent = parent[step]
    del parent[status_path[-1]]
    with pytest.raises(UnmappableError) as info:
        adapt(config(adapter), WebhookRequest(headers, json.dumps(doc).encode()), NOW)
    assert (info.value.field, info.value.reason) == ("/" + "/".join(status_path), "required field is missing")
