from __future__ import annotations

from datetime import timedelta

import pytest

from services.intake.webhooks import (
    SignatureError,
    SourceConfig,
    WebhookRequest,
    delivery_id,
    verify_signature,
)

from ._helpers import NEXT_SECRET, NOW, SECRET, basic, config, fixture, hub, zendesk_signature

BODY = b'{"hello": "world"}'

HUB_SCHEMES = [
    ("github", "X-Hub-Signature-256", "sha256"),
    ("jira", "X-Hub-Signature", "sha256"),
    ("intercom", "X-Hub-Signature", "sha1"),
    ("zammad", "X-Hub-Signature", "sha1"),
]


def test_github_documented_test_vector() -> None:
    # From GitHub's "Validating webhook deliveries" docs: an oracle independent of our signer.
    cfg = config("github", secrets=["It's a Secret to Everybody"])
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_signature(cfg, WebhookRequest({"X-Hub-Signature-256": header}, b"Hello, World!"), NOW)
    with pytest.raises(SignatureError):
        verify_signature(cfg, WebhookRequest({"X-Hub-Signature-256": header}, b"Hello, World?"), NOW)


@pytest.mark.parametrize(("adapter", "header", "algorithm"), HUB_SCHEMES)
class TestHubSignatures:
    def test_valid(self, adapter: str, header: str, algorithm: str) -> None:
        verify_signature(config(adapter), WebhookRequest({header: hub(BODY, SECRET, algorithm)}, BODY), NOW)

    def test_header_name_is_case_insensitive(self, adapter: str, header: str, algorithm: str) -> None:
        request = WebhookRequest({header.upper(): hub(BODY, SECRET, algorithm)}, BODY)
        verify_signature(config(adapter), request, NOW)

    def test_second_secret_accepted_during_rotation(self, adapter: str, header: str, algorithm: str) -> None:
        cfg = config(adapter, secrets=[SECRET, NEXT_SECRET])
        verify_signature(cfg, WebhookRequest({header: hub(BODY, NEXT_SECRET, algorithm)}, BODY), NOW)
        verify_signature(cfg, WebhookRequest({header: hub(BODY, SECRET, algorithm)}, BODY), NOW)

    def test_wrong_secret(self, adapter: str, header: str, algorithm: str) -> None:
        with pytest.raises(SignatureError):
            verify_signature(
                config(adapter), WebhookRequest({header: hub(BODY, "other", algorithm)}, BODY), NOW
            )

    def test_tampered_body(self, adapter: str, header: str, algorithm: str) -> None:
        request = WebhookRequest({header: hub(BODY, SECRET, algorithm)}, BODY + b" ")
        with pytest.raises(SignatureError):
            verify_signature(config(adapter), request, NOW)

    def test_missing_header(self, adapter: str, header: str, algorithm: str) -> None:
        with pytest.raises(SignatureError, match="missing"):
            verify_signature(config(adapter), WebhookRequest({}, BODY), NOW)

    def test_wrong_algorithm_prefix(self, adapter: str, header: str, algorithm: str) -> None:
        other = "sha1" if algorithm == "sha256" else "sha256"
        with pytest.raises(SignatureError):
            verify_signature(config(adapter), WebhookRequest({header: hub(BODY, SECRET, other)}, BODY), NOW)


class TestZendesk:
    timestamp = "2024-04-17T17:18:10Z"
    body = fixture("zendesk", "ticket.created.json")

    def request(
        self, signature: str, timestamp: str | None = None, body: bytes | None = None
    ) -> WebhookRequest:
        return WebhookRequest(
            {
                "X-Zendesk-Webhook-Signature": signature,
                "X-Zendesk-Webhook-Signature-Timestamp": timestamp or self.timestamp,
            },
            body if body is not None else self.body,
        )

    def test_valid(self) -> None:
        verify_signature(
            config("zendesk"), self.request(zendesk_signature(self.body, SECRET, self.timestamp)), NOW
        )

    def test_rotation(self) -> None:
        cfg = config("zendesk", secrets=[SECRET, NEXT_SECRET])
        verify_signature(cfg, self.request(zendesk_signature(self.body, NEXT_SECRET, self.timestamp)), NOW)

    def test_wrong_secret(self) -> None:
        with pytest.raises(SignatureError):
            verify_signature(
                config("zendesk"), self.request(zendesk_signature(self.body, "x", self.timestamp)), NOW
            )

    def test_tampered_body(self) -> None:
        signature = zendesk_signature(self.body, SECRET, self.timestamp)
        with pytest.raises(SignatureError):
            verify_signature(
                config("zendesk"), self.request(signature, body=self.body.replace(b"35436", b"35437")), NOW
            )

    def test_timestamp_is_signed(self) -> None:
        # Re-stamping an old delivery with a fresh timestamp must break the signature.
        signature = zendesk_signature(self.body, SECRET, "2024-04-17T17:00:00Z")
        with pytest.raises(SignatureError, match="does not match"):
            verify_signature(config("zendesk"), self.request(signature, timestamp=self.timestamp), NOW)

    @pytest.mark.parametrize("skew", [timedelta(seconds=301), timedelta(seconds=-301), timedelta(days=3)])
    def test_stale_or_future_timestamp(self, skew: timedelta) -> None:
        timestamp = (NOW - skew).strftime("%Y-%m-%dT%H:%M:%SZ")
        request = self.request(zendesk_signature(self.body, SECRET, timestamp), timestamp=timestamp)
        with pytest.raises(SignatureError, match="window"):
            verify_signature(config("zendesk"), request, NOW)

    def test_tolerance_is_configurable(self) -> None:
        timestamp = (NOW - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%SZ")
        request = self.request(zendesk_signature(self.body, SECRET, timestamp), timestamp=timestamp)
        verify_signature(config("zendesk", timestamp_tolerance=900), request, NOW)
        with pytest.raises(SignatureError):
            verify_signature(config("zendesk"), request, NOW)

    @pytest.mark.parametrize("stored", [None, "5m", 1e12, float("inf")])
    def test_an_invalid_stored_tolerance_means_the_default(self, stored: object) -> None:
        # Saved before sources were checked: signed deliveries still pass, replays still do not.
        fresh = self.request(zendesk_signature(self.body, SECRET, self.timestamp))
        verify_signature(config("zendesk", timestamp_tolerance=stored), fresh, NOW)
        old = (NOW - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%SZ")
        replayed = self.request(zendesk_signature(self.body, SECRET, old), timestamp=old)
        with pytest.raises(SignatureError, match="window"):
            verify_signature(config("zendesk", timestamp_tolerance=stored), replayed, NOW)

    @pytest.mark.parametrize(
        "missing", ["X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"]
    )
    def test_missing_headers(self, missing: str) -> None:
        headers = dict(self.request(zendesk_signature(self.body, SECRET, self.timestamp)).headers)
        del headers[missing.lower()]
        with pytest.raises(SignatureError, match="missing"):
            verify_signature(config("zendesk"), WebhookRequest(headers, self.body), NOW)

    def test_garbage_timestamp(self) -> None:
        with pytest.raises(SignatureError):
            verify_signature(config("zendesk"), self.request("abc", timestamp="yesterday"), NOW)


@pytest.mark.parametrize("adapter", ["freshdesk", "generic", "native"])
class TestSharedSecret:
    def test_default_header(self, adapter: str) -> None:
        verify_signature(config(adapter), WebhookRequest({"X-Webhook-Secret": SECRET}, BODY), NOW)

    def test_configured_header(self, adapter: str) -> None:
        cfg = config(adapter, auth_header="X-Acme-Token")
        verify_signature(cfg, WebhookRequest({"x-acme-token": SECRET}, BODY), NOW)
        with pytest.raises(SignatureError):
            verify_signature(cfg, WebhookRequest({"X-Webhook-Secret": SECRET}, BODY), NOW)

    def test_basic_auth_password(self, adapter: str) -> None:
        verify_signature(
            config(adapter), WebhookRequest({"Authorization": basic("freshdesk", SECRET)}, BODY), NOW
        )

    def test_rotation(self, adapter: str) -> None:
        cfg = config(adapter, secrets=[SECRET, NEXT_SECRET])
        verify_signature(cfg, WebhookRequest({"X-Webhook-Secret": NEXT_SECRET}, BODY), NOW)
        verify_signature(cfg, WebhookRequest({"Authorization": basic("u", NEXT_SECRET)}, BODY), NOW)

    @pytest.mark.parametrize(
        "headers",
        [
            {"X-Webhook-Secret": "wrong"},
            {"Authorization": basic("u", "wrong")},
            {"Authorization": "Bearer " + SECRET},
            {"Authorization": "Basic !!notbase64"},
            {"X-Webhook-Secret": SECRET + " x"},
        ],
    )
    def test_rejected(self, adapter: str, headers: dict[str, str]) -> None:
        with pytest.raises(SignatureError):
            verify_signature(config(adapter), WebhookRequest(headers, BODY), NOW)

    def test_missing(self, adapter: str) -> None:
        with pytest.raises(SignatureError, match="missing"):
            verify_signature(config(adapter), WebhookRequest({}, BODY), NOW)

    def test_a_non_ascii_secret_sent_in_the_header_as_utf8(self, adapter: str) -> None:
        # The server reads header bytes as latin-1: "é" sent as UTF-8 arrives as "Ã©".
        secret = "clé-secrète-42"
        on_the_wire = secret.encode().decode("latin-1")
        cfg = config(adapter, secrets=[secret])
        verify_signature(cfg, WebhookRequest({"X-Webhook-Secret": on_the_wire}, BODY), NOW)
        verify_signature(cfg, WebhookRequest({"Authorization": basic("u", secret)}, BODY), NOW)
        with pytest.raises(SignatureError):
            verify_signature(
                cfg,
                WebhookRequest({"X-Webhook-Secret": "clé-secrète-43".encode().decode("latin-1")}, BODY),
                NOW,
            )


def test_source_config_requires_one_or_two_secrets() -> None:
    with pytest.raises(ValueError):
        SourceConfig(name="x", adapter="github", secrets=[])
    with pytest.raises(ValueError):
        SourceConfig(name="x", adapter="github", secrets=["a", "b", "c"])
    with pytest.raises(ValueError):
        SourceConfig(name="x", adapter="github", secrets=[""])
    assert SECRET not in repr(config("github")) and SECRET not in str(config("github"))


class TestDeliveryId:
    def test_vendor_headers(self) -> None:
        assert (
            delivery_id(config("github"), WebhookRequest({"X-GitHub-Delivery": "72d3162e"}, BODY))
            == "github:72d3162e"
        )
        assert (
            delivery_id(config("jira"), WebhookRequest({"X-Atlassian-Webhook-Identifier": "123"}, BODY))
            == "jira:123"
        )
        assert (
            delivery_id(config("zammad"), WebhookRequest({"X-Zammad-Delivery": "abc"}, BODY)) == "zammad:abc"
        )

    def test_intercom_notification_id_from_body(self) -> None:
        body = fixture("intercom", "ticket.created.json")
        assert delivery_id(config("intercom"), WebhookRequest({}, body)) == (
            "intercom:notif_3f1b0c52-7c1d-4b1e-9a1e-1f2d3c4b5a69"
        )

    def test_zendesk_webhook_id_plus_event_id(self) -> None:
        body = fixture("zendesk", "ticket.created.json")
        request = WebhookRequest({"X-Zendesk-Webhook-Id": "01GK8E6B"}, body)
        assert delivery_id(config("zendesk"), request) == "zendesk:01GK8E6B:01HVXK3QG2N7ZJ6Y3W4R5T6Y7U"

    def test_zendesk_trigger_payload_id_is_a_ticket_id_not_a_delivery(self) -> None:
        body = fixture("zendesk", "trigger.json")
        request = WebhookRequest({"X-Zendesk-Webhook-Id": "01GK8E6B"}, body)
        assert delivery_id(config("zendesk"), request).startswith("sha256:")
        with_invocation = WebhookRequest(
            {"X-Zendesk-Webhook-Id": "01GK", "X-Zendesk-Webhook-Invocation-Id": "9"}, body
        )
        assert delivery_id(config("zendesk"), with_invocation) == "zendesk:01GK:9"

    def test_generic_delivery_header(self) -> None:
        cfg = config("generic", delivery_header="X-Request-Id")
        assert delivery_id(cfg, WebhookRequest({"x-request-id": "r-1"}, BODY)) == "generic:r-1"

    @pytest.mark.parametrize("adapter", ["freshdesk", "github", "intercom", "zendesk", "generic"])
    def test_falls_back_to_body_hash(self, adapter: str) -> None:
        first = delivery_id(config(adapter), WebhookRequest({}, BODY))
        assert first == "sha256:" + __import__("hashlib").sha256(BODY).hexdigest()
        assert delivery_id(config(adapter), WebhookRequest({}, BODY + b"\n")) != first

    def test_never_raises_on_garbage(self) -> None:
        assert delivery_id(config("intercom"), WebhookRequest({}, b"\xff\x00{")).startswith("sha256:")
        assert delivery_id(config("zendesk"), WebhookRequest({}, b"[1, 2]")).startswith("sha256:")
