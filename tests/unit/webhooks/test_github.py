from __future__ import annotations

import json

import pytest

from services.intake.webhooks import IgnoredEvent, MalformedBodyError, UnmappableError, WebhookRequest, adapt
from services.intake.webhooks.github import priority_from_labels
from shared.events import EventType, Priority, TicketStatus, event_payload

from ._helpers import NOW, adapt_one, config, github_sample

CFG = config("github")


@pytest.mark.parametrize(
    ("sample", "event", "expected_type", "expected_status"),
    [
        ("issues.opened.json", "issues", EventType.TICKET_CREATED, TicketStatus.NEW),
        ("issues.edited.json", "issues", EventType.TICKET_UPDATED, TicketStatus.OPEN),
        ("issues.labeled.json", "issues", EventType.TICKET_UPDATED, TicketStatus.OPEN),
        ("issues.assigned.json", "issues", EventType.TICKET_REASSIGNED_EXTERNALLY, TicketStatus.OPEN),
        ("issues.reopened.json", "issues", EventType.TICKET_STATUS_CHANGED, TicketStatus.OPEN),
        ("issues.deleted.json", "issues", EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED),
        ("issue_comment.created.json", "issue_comment", EventType.TICKET_COMMENTED, TicketStatus.OPEN),
    ],
)
def test_real_samples(
    sample: str, event: str, expected_type: EventType, expected_status: TicketStatus
) -> None:
    result = adapt_one(CFG, github_sample(sample), {"X-GitHub-Event": event})
    assert result.type is expected_type
    snap = result.snapshot
    assert snap.status is expected_status
    assert snap.external_id == "Codertocat/Hello-World#1"
    assert snap.url == "https://github.com/Codertocat/Hello-World/issues/1"
    assert snap.subject == "Spelling error in the README file"
    assert snap.tags == ["bug"]
    assert snap.channel == "github"
    assert snap.requester.name == "Codertocat"
    assert snap.created_at is not None and snap.updated_at is not None


def test_opened_fields_and_time() -> None:
    result = adapt_one(CFG, github_sample("issues.opened.json"), {"X-GitHub-Event": "issues"})
    assert result.snapshot.description.startswith("It looks like you accidently spelled 'commit'")
    assert result.occurred_at.isoformat() == "2019-05-15T15:20:18+00:00"
    assert result.snapshot.comment is None


def test_comment_fields() -> None:
    result = adapt_one(CFG, github_sample("issue_comment.created.json"), {"X-GitHub-Event": "issue_comment"})
    comment = result.snapshot.comment
    assert comment is not None
    assert comment.body == "You are totally right! I'll get this fixed right away."
    # The OWNER comments on its own issue: the requester, not an agent answering it.
    assert comment.author == "Codertocat" and comment.public and not comment.from_agent
    member = _edit("issue_comment.created.json", comment__user__login="maintainer")
    answered = adapt_one(CFG, member, {"X-GitHub-Event": "issue_comment"}).snapshot.comment
    assert answered is not None and answered.from_agent  # another member answering


def _edit(sample: str, **changes: object) -> bytes:
    data = json.loads(github_sample(sample))
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return json.dumps(data).encode()


def test_comment_by_outsider_is_not_from_agent() -> None:
    body = _edit("issue_comment.created.json", comment__author_association="NONE")
    result = adapt_one(CFG, body, {"X-GitHub-Event": "issue_comment"})
    assert result.snapshot.comment is not None and not result.snapshot.comment.from_agent


def test_a_bots_comment_is_no_agents_answer() -> None:
    # A GitHub App's or an Action's comment (a triage bot's greeting, a stale bot's notice) comes
    # from a bot account, which may be a member: it was taken for a person's answer and met the
    # first-response target at once.
    changes = {"comment__user__login": "triage[bot]", "comment__author_association": "MEMBER"}
    bot = _edit("issue_comment.created.json", comment__user__type="Bot", **changes)
    comment = adapt_one(CFG, bot, {"X-GitHub-Event": "issue_comment"}).snapshot.comment
    assert comment is not None and comment.public and not comment.from_agent
    person = _edit("issue_comment.created.json", comment__user__type="User", **changes)
    comment = adapt_one(CFG, person, {"X-GitHub-Event": "issue_comment"}).snapshot.comment
    assert comment is not None and comment.from_agent


def test_closed_action() -> None:
    body = _edit("issues.opened.json", action="closed", issue__state="closed")
    result = adapt_one(CFG, body, {"X-GitHub-Event": "issues"})
    assert (result.type, result.snapshot.status) == (EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED)


def test_priority_label() -> None:
    labels = [{"name": "bug"}, {"name": "priority: high"}]
    result = adapt_one(CFG, _edit("issues.labeled.json", issue__labels=labels), {"X-GitHub-Event": "issues"})
    assert result.snapshot.priority is Priority.P2
    assert result.snapshot.tags == ["bug", "priority: high"]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["P1"], Priority.P1),
        (["priority/P3"], Priority.P3),
        (["Priority 2"], Priority.P2),
        (["prio-urgent"], Priority.P1),
        (["priority: low"], Priority.P4),
        (["bug", "print"], None),
        (["priority: whatever", "p4"], Priority.P4),
        ([], None),
        (["P9"], None),
    ],
)
def test_priority_from_labels(labels: list[str], expected: Priority | None) -> None:
    assert priority_from_labels(labels) is expected


@pytest.mark.parametrize("label", ["priority ²", "priority ①", "prio-١", "pri_𝟙"])
def test_a_label_with_a_digit_that_is_not_ascii_is_no_priority_not_a_crash(label: str) -> None:
    # GitHub labels are any Unicode text; each of these was a ValueError, a 500 for the delivery.
    assert priority_from_labels([label, "P3"]) is Priority.P3
    labels = [{"name": label}]
    result = adapt_one(CFG, _edit("issues.labeled.json", issue__labels=labels), {"X-GitHub-Event": "issues"})
    assert result.snapshot.priority is None and result.snapshot.tags == [label]


@pytest.mark.parametrize(
    ("event", "body"),
    [("ping", b'{"zen": "Design for failure."}'), ("push", b"{}"), ("issues", None), ("issue_comment", None)],
)
def test_ignored(event: str, body: bytes | None) -> None:
    if body is None:
        sample = "issues.opened.json" if event == "issues" else "issue_comment.created.json"
        body = (
            _edit(sample, action="pinned")
            if event == "issues"
            else _edit(sample, issue__pull_request={"url": "https://api.github.com/repos/o/r/pulls/1"})
        )
    with pytest.raises(IgnoredEvent):
        adapt(CFG, WebhookRequest({"X-GitHub-Event": event}, body), NOW)


def test_comment_edits_are_ignored() -> None:
    with pytest.raises(IgnoredEvent):
        adapt(
            CFG,
            WebhookRequest(
                {"X-GitHub-Event": "issue_comment"}, _edit("issue_comment.created.json", action="edited")
            ),
            NOW,
        )


def test_missing_event_header() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, github_sample("issues.opened.json")), NOW)
    assert info.value.field == "header:X-GitHub-Event"


def test_unmappable_names_the_field() -> None:
    data = json.loads(github_sample("issues.opened.json"))
    del data["issue"]["number"]
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({"X-GitHub-Event": "issues"}, json.dumps(data).encode()), NOW)
    assert info.value.field == "/issue/number"


def test_malformed_json() -> None:
    with pytest.raises(MalformedBodyError):
        adapt(CFG, WebhookRequest({"X-GitHub-Event": "issues"}, b'{"action": '), NOW)


def test_the_last_label_removed_is_in_the_event_and_a_payload_without_tags_keeps_them() -> None:
    # An empty label list is the snapshot's default: it was left out, and the old labels stayed.
    body = _edit("issues.labeled.json", action="unlabeled", issue__labels=[])
    result = adapt_one(CFG, body, {"X-GitHub-Event": "issues"})
    assert event_payload(result.snapshot)["tags"] == []


def test_an_issue_templates_hidden_comments_are_no_text() -> None:
    # Issue templates guide the reporter with HTML comments, which GitHub does not show: they were
    # the description's text (every issue of a repository read alike to the classifier), and a
    # comment answering with the template's leftovers read as its instructions.
    template = (
        "<!-- Thanks for reporting! Please fill in the sections below. -->\n"
        "### What happened\n"
        "It looks like you accidently spelled 'commit' with two 't's.\n"
        "<!--\nSteps to reproduce: list them here (1. ... 2. ...)\n-->\n"
        "`a <!-- b` is text: a comment never closed is none"
    )
    opened = _edit("issues.opened.json", issue__body=template)
    description = adapt_one(CFG, opened, {"X-GitHub-Event": "issues"}).snapshot.description
    assert description == (
        "### What happened\nIt looks like you accidently spelled 'commit' with two 't's.\n\n"
        "`a <!-- b` is text: a comment never closed is none"
    )
    reply = _edit("issue_comment.created.json", comment__body="<!-- reply template -->\nFixed in #2.")
    comment = adapt_one(CFG, reply, {"X-GitHub-Event": "issue_comment"}).snapshot.comment
    assert comment is not None and comment.body == "Fixed in #2."


@pytest.mark.parametrize("body", [5, ["text"], {"text": "x"}, True])
def test_a_body_that_is_not_text_is_named_by_githubs_field(body: object) -> None:
    # It was named "/description", which no GitHub payload has.
    data = json.loads(github_sample("issues.opened.json"))
    data["issue"]["body"] = body
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({"X-GitHub-Event": "issues"}, json.dumps(data).encode()), NOW)
    assert info.value.field == "/issue/body"
    comment = json.loads(github_sample("issue_comment.created.json"))
    comment["comment"]["body"] = body
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({"X-GitHub-Event": "issue_comment"}, json.dumps(comment).encode()), NOW)
    assert info.value.field == "/comment/body"
