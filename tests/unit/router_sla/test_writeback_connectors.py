"""Write-back connectors: the exact request each helpdesk's API gets, per notification kind."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any, get_args

import orjson
import pytest

from services.router.writeback.connectors import (
    CONNECTORS,
    HELPDESKS,
    RenderError,
    Target,
    check_options,
    render,
)
from services.router.writeback.connectors.common import OutboundRequest, is_router_note
from services.router.writeback.schemas import Connector
from services.router.writeback.sender import redact, request_digest, still_to_send

TOKEN = "tok-0123456789abcdef"


def notification(kind: str = "assignment", **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "4f1c0d8e-0000-4000-8000-000000000001",
        "kind": kind,
        "event_type": "ticket.routed",
        "ticket_key": "helpdesk:4711",
        "source": "helpdesk",
        "external_id": "4711",
        "occurred_at": "2026-12-05T10:00:00+00:00",
        "team": "billing",
        "previous_team": None,
        "priority": "P2",
        "previous_priority": None,
        "status": "open",
        "sla": {},
        "reasons": ["rule 'invoices' matched", "billing has room (3 of 10)"],
    }
    return {**doc, **changes}


def requests_for(
    connector: str, options: dict[str, Any], doc: dict[str, Any], url: str = "https://desk.example"
):
    return render(
        orjson.dumps(doc).decode(), Target(connector, url, TOKEN, check_options(connector, options)), 0.0
    )


def send(connector: str, options: dict[str, Any], doc: dict[str, Any], url: str = "https://desk.example"):
    """The one request a notification takes (asserted), and its JSON body."""
    [request] = requests_for(connector, options, doc, url)
    return request, orjson.loads(request.body or b"null")


def calls(requests) -> list[tuple[str, str, Any]]:
    return [(r.method, r.url, None if r.body is None else orjson.loads(r.body)) for r in requests]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


NOTE = (
    "Routed to billing at P2.\n\nWhy:\n- rule 'invoices' matched\n- billing has room (3 of 10)\n\n"
    "(ticket router, event 4f1c0d8e-0000-4000-8000-000000000001)"
)


def test_zendesk_assignment_sets_group_priority_and_a_private_comment():
    request, body = send(
        "zendesk", {"username": "bot@acme.com", "groups": {"billing": 360001}}, notification()
    )
    assert (request.method, request.url) == ("PUT", "https://desk.example/api/v2/tickets/4711.json")
    assert request.headers["Authorization"] == basic("bot@acme.com/token", TOKEN)
    assert body == {
        "ticket": {"group_id": 360001, "priority": "high", "comment": {"body": NOTE, "public": False}}
    }


def test_zendesk_unmapped_team_keeps_the_group_and_sla_events_add_a_tag():
    options = {"username": "bot@acme.com", "groups": {"access": 7}, "note": False}
    _, body = send("zendesk", options, notification("priority_change", priority="P1", previous_priority="P3"))
    assert body == {"ticket": {"priority": "urgent"}}
    request, body = send("zendesk", options, notification("sla_breach"))
    assert (request.method, request.url) == ("PUT", "https://desk.example/api/v2/tickets/4711/tags")
    assert body == {"tags": ["router_sla_breach"]}


def test_freshdesk_moves_with_an_update_and_notes_sla_events_privately():
    options = {"groups": {"billing": 42}, "group_names": {"billing": "Billing"}}
    request, body = send("freshdesk", {**options, "note": False}, notification("escalation", priority="P1"))
    assert (request.method, request.url) == ("PUT", "https://desk.example/api/v2/tickets/4711")
    assert request.headers["Authorization"] == basic(TOKEN, "X")
    assert body == {"priority": 4, "group_id": 42}
    request, body = send("freshdesk", options, notification("sla_warning"))
    assert (request.method, request.url) == ("POST", "https://desk.example/api/v2/tickets/4711/notes")
    assert body["private"] is True and body["body"].startswith("SLA warning: billing at P2")
    assert "<br>- rule &#x27;invoices&#x27; matched" in body["body"]  # HTML, escaped


def test_freshdesk_says_why_it_moved_a_ticket_in_a_private_note():
    # ``note`` (on by default) is "add an internal note saying why": a move is what most needs it.
    options = {"groups": {"billing": 42}, "group_names": {"billing": "Billing"}}
    requests = requests_for("freshdesk", options, notification())
    assert [(r.method, r.url) for r in requests] == [
        ("PUT", "https://desk.example/api/v2/tickets/4711"),
        ("POST", "https://desk.example/api/v2/tickets/4711/notes"),
    ]
    note = orjson.loads(requests[1].body or b"")
    assert note["private"] is True and note["body"].startswith("Routed to billing at P2.<br><br>Why:")
    assert is_router_note(note["body"])


def test_zammad_sets_group_by_name_and_priority_with_an_internal_note():
    request, body = send("zammad", {"groups": {"billing": "Billing 2nd level"}}, notification())
    assert (request.method, request.url) == ("PUT", "https://desk.example/api/v1/tickets/4711")
    assert request.headers["Authorization"] == f"Token token={TOKEN}"
    assert body["group"] == "Billing 2nd level" and body["priority"] == "3 high"
    assert body["article"] == {
        "subject": "Ticket router",
        "body": NOTE,
        "type": "note",
        "internal": True,
        "content_type": "text/plain",
    }
    _, body = send("zammad", {"note": False, "priorities": {"P4": "0 trivial"}}, notification(priority="P4"))
    assert body == {"priority": "0 trivial"}
    # A default Zammad has no priority that reads back as P1: none is written.
    _, body = send("zammad", {"note": False, "groups": {"billing": "B"}}, notification(priority="P1"))
    assert body == {"group": "B"}


JIRA_NOTE = (
    "{noformat}\nRouted to billing at P2.\n\nWhy:\n- rule 'invoices' matched\n- billing has room (3 of 10)\n"
    "{noformat}\n\n(ticket router, event 4f1c0d8e-0000-4000-8000-000000000001)"
)


def test_jiras_comment_shows_the_reasons_as_they_are_not_as_wiki_markup():
    # API v2 reads a comment as wiki markup: a rule's regex would show as a link ([A-Z]), an
    # "Unknown macro: {4}" and bold text (*).
    reason = 'rule "refs" matched: subject matches "[A-Z]{3}-\\d{4}" and *vip*'
    doc = notification(external_id="SUP-42", reasons=[reason, "no {noformat} escape"])
    _, comment = requests_for("jira", {"username": "u"}, doc)
    body = orjson.loads(comment.body or b"")["body"]
    assert body.startswith("{noformat}\nRouted to billing at P2.") and f"- {reason}\n" in body
    assert body.count("{noformat}") == 2 and "- no (noformat} escape" in body
    assert body.endswith("{noformat}\n\n(ticket router, event 4f1c0d8e-0000-4000-8000-000000000001)")
    assert is_router_note(body)


def test_jira_labels_the_team_sets_priority_and_comments_internally():
    doc = notification(external_id="SUP-42")
    edit, comment = requests_for("jira", {"username": "bot@acme.com"}, doc, "https://acme.atlassian.net/")
    issue = "https://acme.atlassian.net/rest/api/2/issue/SUP-42"
    assert calls([edit, comment]) == [
        (
            "PUT",
            issue,
            {"fields": {"priority": {"name": "High"}}, "update": {"labels": [{"add": "team-billing"}]}},
        ),
        # Without the property a Service Management comment is public: the customer would get it.
        (
            "POST",
            issue + "/comment",
            {"body": JIRA_NOTE, "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]},
        ),
    ]
    assert edit.headers["Authorization"] == basic("bot@acme.com", TOKEN)
    options = {"username": "u", "note": False, "priorities": {"P1": "Blocker"}}
    _, body = send("jira", options, notification("sla_breach", external_id="SUP-42"))
    assert body == {"update": {"labels": [{"add": "router-sla-breach"}]}}
    _, body = send("jira", options, notification("priority_change", external_id="SUP-42", priority="P1"))
    assert body == {"fields": {"priority": {"name": "Blocker"}}}  # the rest keep their defaults
    _, body = send("jira", options, notification("priority_change", external_id="SUP-42", priority="P4"))
    assert body == {"fields": {"priority": {"name": "Low"}}}


def test_jira_removes_the_team_label_a_move_replaces():
    # A ticket moved from access to billing is no longer in access's filters (labels = team-access).
    doc = notification("escalation", external_id="SUP-42", previous_team="access")
    _, body = send("jira", {"username": "u", "note": False}, doc)
    assert body["update"] == {
        "labels": [{"remove": "team-access"}, {"add": "team-billing"}, {"add": "router-escalated"}]
    }
    doc = notification("assignment", external_id="SUP-42", previous_team="billing")
    _, body = send("jira", {"username": "u", "note": False}, doc)
    assert body["update"] == {"labels": [{"add": "team-billing"}]}  # the same team: kept


def test_github_adds_labels_and_removes_the_ones_they_replace():
    request, body = send("github", {}, notification(external_id="acme/widgets#17"), "https://api.github.com")
    labels = "https://api.github.com/repos/acme/widgets/issues/17/labels"
    assert (request.method, request.url) == ("POST", labels)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert body == {"labels": ["team:billing", "P2"]}
    # Intake reads an issue's priority from its first priority label: the old one goes first.
    doc = notification(
        "escalation", external_id="acme/widgets#17", previous_team="access", previous_priority="P3"
    )
    requests = requests_for("github", {"team_label_prefix": "squad/"}, doc, "https://api.github.com")
    assert calls(requests) == [
        ("DELETE", labels + "/squad%2Faccess", None),
        ("DELETE", labels + "/P3", None),
        ("POST", labels, {"labels": ["squad/billing", "P2", "escalated"]}),
    ]
    assert requests[0].also_done == frozenset({404}) and requests[-1].also_done == frozenset()
    _, body = send("github", {}, notification("sla_warning", external_id="a/b#1"))
    assert body == {"labels": ["sla:warning"]}


NOTE_HTML = (
    "<p>Routed to billing at P2.</p><p>Why:<br>- rule &#x27;invoices&#x27; matched<br>"
    "- billing has room (3 of 10)</p><p>(ticket router, event 4f1c0d8e-0000-4000-8000-000000000001)</p>"
)


def test_intercom_assigns_to_the_team_inbox_and_notes_why_internally():
    options = {"admin_id": "814860", "groups": {"billing": "5017691"}}
    requests = requests_for("intercom", options, notification(), "https://api.intercom.io")
    assert calls(requests) == [
        (
            "POST",
            "https://api.intercom.io/conversations/4711/parts",
            # No body: an assignment's body may reach the customer.
            {"message_type": "assignment", "type": "team", "admin_id": "814860", "assignee_id": "5017691"},
        ),
        (
            "POST",
            "https://api.intercom.io/conversations/4711/reply",
            {"message_type": "note", "type": "admin", "admin_id": "814860", "body": NOTE_HTML},
        ),
    ]
    assert requests[0].headers["Intercom-Version"] == "2.11"
    request, body = send("intercom", options, notification("sla_breach"), "https://api.intercom.io")
    assert request.url == "https://api.intercom.io/conversations/4711/reply"
    assert body["message_type"] == "note" and body["body"].startswith("<p>SLA breached: billing at P2")
    [request] = requests_for(
        "intercom", {**options, "note": False}, notification(), "https://api.intercom.io"
    )
    assert request.url.endswith("/parts")


def test_intercoms_note_is_html_its_reasons_escaped():
    # Intercom reads a note's body as HTML: a reason quoting "<b>" or "a<b" would vanish or
    # become markup, and the lines would run together.
    doc = notification("sla_warning", reasons=['rule "vip" matched: subject contains "<b>urgent"', "a & b"])
    _, body = send("intercom", {"admin_id": "1"}, doc, "https://api.intercom.io")
    assert body["body"] == (
        "<p>SLA warning: billing at P2 is close to its deadline.</p>"
        "<p>Why:<br>- rule &quot;vip&quot; matched: subject contains &quot;&lt;b&gt;urgent&quot;"
        "<br>- a &amp; b</p>"
        "<p>(ticket router, event 4f1c0d8e-0000-4000-8000-000000000001)</p>"
    )
    assert is_router_note(body["body"])


@pytest.mark.parametrize(
    ("connector", "options", "external_id", "problem"),
    [
        ("zendesk", {"username": "u@x"}, "ZD-1", "not a numeric ticket id"),
        ("freshdesk", {}, None, "no external id"),
        ("jira", {"username": "u"}, "42", "not a Jira issue key"),
        ("github", {}, "widgets#17", "not <owner>/<repo>#<number>"),
    ],
)
def test_a_ticket_the_api_cannot_address_is_a_render_error(connector, options, external_id, problem):
    with pytest.raises(RenderError, match=problem):
        send(connector, options, notification(external_id=external_id))


@pytest.mark.parametrize(
    ("connector", "options", "problem"),
    [
        ("zendesk", {}, "username: Field required"),
        (
            "zendesk",
            {"username": "u@x", "groups": {"billing": "Billing"}},
            "groups.billing: Input should be a valid integer",
        ),
        (
            "freshdesk",
            {"groups": {"billing": 1, "access": 1}},
            "'billing' and 'access' name the same group 1",
        ),
        (
            "freshdesk",
            {"groups": {"billing": 1}},
            "give the Freshdesk name of each group in groups (missing ['billing'])",
        ),
        (
            "zammad",
            {"groups": {"billing": "1"}, "group_names": {"access": "1"}},
            "'billing' and 'access' name the same",
        ),
        # A group the helpdesk cannot have: every move would be refused, delivery after delivery.
        ("zendesk", {"username": "u@x", "groups": {"billing": 0}}, "groups.billing: no group"),
        ("freshdesk", {"groups": {"billing": -4}, "group_names": {"billing": "B"}}, "groups.billing: no"),
        ("zammad", {"groups": {"billing": " "}}, "groups.billing: no group"),
        ("intercom", {"admin_id": "1", "groups": {"billing": ""}}, "groups.billing: no group"),
        ("zendesk", {"username": "u@x", "group_names": {"billing": ""}}, "group_names.billing: no group"),
        ("jira", {"username": "u", "priorities": {"P0": "Blocker"}}, "unknown priorities ['P0']"),
        ("intercom", {"groups": {}}, "admin_id: Field required"),
        ("webhook", {"username": "u"}, "username: Extra inputs are not permitted"),
        ("github", {"labels": True}, "labels: Extra inputs are not permitted"),
    ],
)
def test_options_are_checked_per_connector(connector, options, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_options(connector, options)


def test_every_connector_renders_every_kind():
    assert set(get_args(Connector)) == set(CONNECTORS) == {"webhook", *HELPDESKS}  # the API's names
    kinds = ("assignment", "escalation", "priority_change", "sla_warning", "sla_breach")
    required = {"zendesk": {"username": "u@x"}, "jira": {"username": "u"}, "intercom": {"admin_id": "1"}}
    ids = {"jira": "SUP-1", "github": "a/b#1"}
    for connector in CONNECTORS:
        for kind in kinds:
            doc = notification(kind, external_id=ids.get(connector, "4711"), previous_priority="P3")
            requests = requests_for(connector, required.get(connector, {}), doc)
            assert requests and all(r.url.startswith("https://desk.example") for r in requests)
            assert all(r.body is not None for r in requests if r.method != "DELETE")


def test_every_note_ends_with_the_mark_the_router_knows_its_own_notes_by():
    assert is_router_note(NOTE) and not is_router_note("on it, the ticket router is great")
    html = "<p>" + NOTE.replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>\n"  # as Intercom shows it
    assert is_router_note(html)
    assert not is_router_note(f"> {NOTE}\n\nThanks, refund issued.")  # a reply quoting it
    assert not is_router_note("see (ticket router, event 1234)")


def test_a_note_with_many_reasons_fits_the_helpdesks_limit_and_keeps_its_mark():
    # 5,000 rules may match one ticket: Jira refuses a comment over 32,767 characters (400, a
    # final answer), and the delivery would fail after its edit went through.
    reasons = [f'rule "tag-{n}" matched: {"subject contains x or " * 12}x' for n in range(200)]
    doc = notification(external_id="SUP-42", reasons=reasons)
    _, comment = requests_for("jira", {"username": "u"}, doc)
    body = orjson.loads(comment.body or b"")["body"]
    assert len(body) <= 32_767 and is_router_note(body)
    assert reasons[0] in body and "more reasons" in body
    for connector, options in (("zendesk", {"username": "u@x"}), ("intercom", {"admin_id": "1"})):
        [request] = requests_for(connector, options, {**doc, "external_id": "4711"})  # the note is sent
        body_bytes = request.body or b""
        assert len(body_bytes) < 32_767 and b"more reasons" in body_bytes, connector
        assert b"(ticket router, event " in body_bytes, connector  # the mark survives the cut


def test_errors_are_redacted_whole_before_they_are_cut():
    token = "ghp_" + "Q" * 36
    [request] = requests_for("github", {}, notification(external_id="a/b#1"))
    target = Target("github", "https://api.github.com", token, {})
    echoed = "x" * 155 + " rejected: Authorization: Bearer " + token
    assert token[:12] not in redact(echoed, target, [request])[:200]
    basic_request, _ = send("zendesk", {"username": "bot@acme.com"}, notification())
    credential = basic_request.headers["Authorization"].split(" ", 1)[1]  # base64 of user/token:secret
    assert credential not in redact(
        f"bad credential {credential}", Target("zendesk", "u", TOKEN, {}), [basic_request]
    )
    leaky = TOKEN + "\n"
    quoted = f"Illegal header value {('Token token=' + leaky).encode()!r}"
    assert TOKEN not in redact(quoted, Target("zammad", "u", leaky, {}), [])


def test_webhook_signs_the_queued_bytes_as_they_are():
    body = b'{"kind": "assignment",  "team":"billing"}'  # not orjson's spelling: sent byte for byte
    [request] = render(
        body.decode(), Target("webhook", "https://hooks.example/in", TOKEN, {}), 1_700_000_000.9
    )
    assert request.body == body and request.method == "POST" and request.url == "https://hooks.example/in"
    assert (
        request.headers["X-Ticket-Router-Signature"]
        == "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    )
    assert request.headers["X-Ticket-Router-Timestamp"] == "1700000000"
    assert "Authorization" not in request.headers


def test_webhook_signs_its_timestamp_too_so_a_replay_cannot_pass_as_fresh():
    # The body's signature alone holds for any timestamp: a captured request replayed later with
    # a new X-Ticket-Router-Timestamp passed a receiver's staleness check.
    body = b'{"kind": "assignment"}'
    [request] = render(
        body.decode(), Target("webhook", "https://hooks.example/in", TOKEN, {}), 1_700_000_000.9
    )
    expected = hmac.new(TOKEN.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert request.headers["X-Ticket-Router-Timestamp-Signature"] == f"sha256={expected}"


def test_a_targets_repr_hides_its_token():
    assert TOKEN not in repr(Target("zendesk", "https://x", TOKEN, {}))


def test_a_retry_skips_each_request_got_through_once_and_sends_what_an_edit_changed():
    def post(path: str, body: bytes, signature: str = "a") -> OutboundRequest:
        url = f"https://api.intercom.io/conversations/7/{path}"
        return OutboundRequest("POST", url, {"X": signature}, body)

    assign, note = post("parts", b'{"assignee_id":"1"}'), post("reply", b'{"body":"why"}')
    sent = [request_digest(assign)]
    # Headers (a fresh signature, a date) do not make a request another one.
    assert still_to_send([post("parts", b'{"assignee_id":"1"}', "b"), note], sent) == [note]
    # A target edited since renders another assignment: that one is sent.
    reassign = post("parts", b'{"assignee_id":"2"}')
    assert still_to_send([reassign, note], sent) == [reassign, note]
    # Two equal requests, one got through: the other is still to send.
    assert still_to_send([assign, assign, note], sent) == [assign, note]
    assert still_to_send([assign, note], [request_digest(assign), request_digest(note)]) == []
