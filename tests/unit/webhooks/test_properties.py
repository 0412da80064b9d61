"""Whatever arrives, only the declared errors escape: never a 500 from the adapters or signers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.webhooks import (
    ADAPTERS,
    WebhookError,
    WebhookRequest,
    adapt,
    delivery_id,
    verify_signature,
)

from ._helpers import NOW, config

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
