"""The requests the intake bench sends: native tickets for ``POST /v1/tickets`` and signed webhook
deliveries for ``POST /v1/webhooks/{name}``, built as raw HTTP/1.1 bytes.

Every request is a new ticket (a unique external id) and every delivery has a unique delivery id,
so intake claims one delivery row per webhook. What does not change between requests is built once:
a request costs the generator a few byte joins, and for GitHub one HMAC-SHA256 over the body.

* ``github``: an ``issues`` / ``opened`` delivery shaped as GitHub sends it (GitHub's documented
  example payload, ``samples/github-issues.opened.json``, compact JSON, ~11.6 kB; the repository is
  renamed per run and the issue number is the request's index + 1, so the external id
  ``Codertocat/<repo>#<n>`` is new for every request), with ``X-GitHub-Event``, a uuid-like
  ``X-GitHub-Delivery`` and ``X-Hub-Signature-256`` over the exact body.
* ``native``: the ``/v1/tickets`` body posted to a ``native`` source, authenticated by the shared
  secret header and deduplicated on ``X-Delivery-Id`` (the ``delivery_header`` option).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from services.intake.webhooks import AdapterName, SourceConfig

GITHUB_SAMPLE = Path(__file__).resolve().parent / "samples" / "github-issues.opened.json"
SAMPLE_OWNER = "Codertocat"
SAMPLE_REPO = "Hello-World"
_NUMBER_MARK = 987_654_321_012_345  # stands for the issue number in the template; not in the sample

Builder = Callable[[int], bytes]  # request index -> the raw HTTP request


@dataclass(frozen=True)
class BenchSource:
    """A webhook source the bench configures in intake's database (and the bare baseline mirrors)."""

    mode: str
    name: str
    adapter: AdapterName
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/v1/webhooks/{self.name}"

    def config(self, secret: str) -> SourceConfig:
        return SourceConfig(name=self.name, adapter=self.adapter, secrets=[secret], options=self.options)


SOURCES: dict[str, BenchSource] = {
    "github": BenchSource("github", "bench-github", "github"),
    "native": BenchSource("native", "bench-native", "native", {"delivery_header": "X-Delivery-Id"}),
}
MODES = tuple(SOURCES)


def ticket_body(prefix: str, index: int) -> bytes:
    """The native ticket the ``/v1/tickets`` rows post (and the ``native`` webhook mode)."""
    return (
        b'{"external_id":"%s-%d","subject":"Cannot log in to the VPN since this morning",'
        b'"description":"The VPN client says my password is wrong, but it works for email.",'
        b'"requester":{"email":"user%d@example.com"},"priority":"high","tags":["vpn"],"channel":"email"}'
        % (prefix.encode(), index, index % 997)
    )


def ticket_request(host: str, port: int, path: str, token: str, prefix: str) -> Builder:
    head = (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\n" % (path.encode(), host.encode(), port, token.encode())
    )

    def build(index: int) -> bytes:
        body = ticket_body(prefix, index)
        return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)

    return build


def delivery_ids(prefix: str) -> Callable[[int], str]:
    """uuid-shaped delivery ids, unique per index and (through ``prefix``) per run."""
    h = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-delivery:{prefix}").hex
    base = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"
    return lambda index: f"{base}{index:012x}"


def repo_name(prefix: str) -> str:
    """The repository the run's issues are in: a new one per run, so issue numbers never repeat."""
    return f"{SAMPLE_REPO}-{prefix}"


def github_template(prefix: str) -> list[bytes]:
    """The compact sample with the run's repository, split where the issue number goes."""
    data = json.loads(GITHUB_SAMPLE.read_bytes())
    issue = data["issue"]
    issue["number"] = _NUMBER_MARK
    for key in ("url", "labels_url", "comments_url", "events_url", "html_url"):
        issue[key] = issue[key].replace("/issues/1", f"/issues/{_NUMBER_MARK}")
    raw = orjson.dumps(data).replace(f"/{SAMPLE_REPO}".encode(), f"/{repo_name(prefix)}".encode())
    raw = raw.replace(f'"{SAMPLE_REPO}"'.encode(), f'"{repo_name(prefix)}"'.encode())  # "name"
    parts = raw.split(str(_NUMBER_MARK).encode())
    assert len(parts) == 7, "the sample's issue number and URLs moved"
    return parts


def github_external_id(prefix: str, index: int) -> str:
    return f"{SAMPLE_OWNER}/{repo_name(prefix)}#{index + 1}"


def github_body(parts: list[bytes], index: int) -> bytes:
    return str(index + 1).encode().join(parts)


def github_request(host: str, port: int, path: str, secret: str, prefix: str) -> Builder:
    parts = github_template(prefix)
    key = secret.encode()
    ids = delivery_ids(prefix)
    head = (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: GitHub-Hookshot/bench\r\nAccept: */*\r\n"
        b"Content-Type: application/json\r\nX-GitHub-Event: issues\r\nX-GitHub-Hook-ID: 292430182\r\n"
        b"X-GitHub-Hook-Installation-Target-ID: 79929171\r\n"
        b"X-GitHub-Hook-Installation-Target-Type: repository\r\n" % (path.encode(), host.encode(), port)
    )

    def build(index: int) -> bytes:
        body = github_body(parts, index)
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        tail = b"X-GitHub-Delivery: %s\r\nX-Hub-Signature-256: sha256=%s\r\nContent-Length: %d\r\n\r\n" % (
            ids(index).encode(),
            signature.encode(),
            len(body),
        )
        return head + tail + body

    return build


def native_request(host: str, port: int, path: str, secret: str, prefix: str) -> Builder:
    ids = delivery_ids(prefix)
    header = str(SOURCES["native"].options["delivery_header"]).encode()
    head = (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"X-Webhook-Secret: %s\r\n" % (path.encode(), host.encode(), port, secret.encode())
    )

    def build(index: int) -> bytes:
        body = ticket_body(prefix, index)
        tail = b"%s: %s\r\nContent-Length: %d\r\n\r\n" % (header, ids(index).encode(), len(body))
        return head + tail + body

    return build


def ticket_key_of(mode: str | None, prefix: str, index: int) -> str:
    """The ticket key intake gives request ``index`` of a run (``mode`` None: a native ticket of
    ``POST /v1/tickets``, source ``api``), as ``source:external_id``."""
    if mode is None:
        return f"api:{prefix}-{index}"
    if mode == "github":
        return f"{SOURCES[mode].name}:{github_external_id(prefix, index)}"
    if mode == "native":
        return f"{SOURCES[mode].name}:{prefix}-{index}"
    raise ValueError(f"unknown webhook mode {mode!r}; choose from {', '.join(MODES)}")


def webhook_request(mode: str, host: str, port: int, secret: str, prefix: str) -> Builder:
    """The request builder of a webhook mode, posting to that mode's bench source."""
    path = SOURCES[mode].path
    if mode == "github":
        return github_request(host, port, path, secret, prefix)
    if mode == "native":
        return native_request(host, port, path, secret, prefix)
    raise ValueError(f"unknown webhook mode {mode!r}; choose from {', '.join(MODES)}")


def parse_request(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """Path, headers and body of a request a builder made (for checks and tests)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    assert int(headers["Content-Length"]) == len(body)
    return request_line.split(" ")[1], headers, body
