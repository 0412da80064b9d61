"""Request and response bodies of the write-back API. No response carries a target's secret."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.router.writeback.connectors import OptionsInvalid, check_options
from services.router.writeback.queue import WRITEBACK_KINDS
from shared.db.storable import reject_nul
from shared.http.json_types import JsonBool

TOKEN = re.compile(r"[\x21-\x7e]+")
URL_MAX = 2000  # the column's length
USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@]*@")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (as pydantic gives it: IPv6 in brackets) names this machine."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: only "localhost" is known not to leave the machine
        return False


def sends_token_in_clear(connector: str, url: str) -> bool:
    """Whether a target would send a credential over the network unencrypted: to an address that
    is not https, on a host other than this machine (loopback: local mock helpdesks, the tests),
    a helpdesk's API token (sent with every request) or the ``user:password@`` of a URL (sent as
    Basic auth; refused on save, but a target stored before may have them). A webhook's secret is
    an HMAC key that is never sent, so its scheme is left to its owner. Checked on save and again
    at send time (a target stored before the save refused it)."""
    try:
        parts = urlsplit(url)
        in_clear = parts.scheme.lower() != "https" and not is_loopback(parts.hostname)
        credentials = parts.username is not None or parts.password is not None
    except ValueError:  # an address that does not parse (a stored one): not known to be safe
        return connector != "webhook"
    return in_clear and (connector != "webhook" or credentials)


def clear_text_refusal(connector: str, url: str) -> str | None:
    """Why a target is not sent to (sends_token_in_clear), or None. Names neither the URL nor a
    credential: it is stored with the delivery, logged and shown to viewers."""
    if not sends_token_in_clear(connector, url):
        return None
    if connector == "webhook":
        what, fix = "the credentials in its url (user:password@)", "remove them from its url"
    else:
        what, fix = "its API token", "change its url to https (http is taken for loopback only)"
    return (
        f"not sent: this {connector} target's address is not https, so {what} would cross the "
        f"network in clear text; {fix}, then retry its failed deliveries"
    )


def hide_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` shown as ``***@``."""
    return USERINFO.sub(r"\1***@", url)


HIDDEN = "***"


def _hide_value(part: str) -> str:
    key, eq, _value = part.partition("=")
    if not part:
        return part
    # A part with no "=" may be the token itself (``?<token>``): all of it is hidden.
    return f"{key}={HIDDEN}" if eq else HIDDEN


def query_values(query: str) -> list[str]:
    """Each part's value (a part with no "=" is its own value): what a URL's query may hide."""
    return [part.partition("=")[2] if "=" in part else part for part in query.split("&") if part]


def hide_url_secrets(url: str) -> str:
    """``url`` as answers and the audit log show it: credentials hidden, and every query value
    (a webhook receiver's ``?token=...``, which viewers must not read), keys kept."""
    url = hide_userinfo(url)
    base, hash_, fragment = url.partition("#")  # the fragment is never sent: nothing to hide
    path, question, query = base.partition("?")
    if not query:
        return url
    hidden = "&".join(_hide_value(part) for part in query.split("&"))
    return f"{path}{question}{hidden}{hash_}{fragment}"


Connector = Literal["webhook", "zendesk", "freshdesk", "zammad", "jira", "github", "intercom"]


class TargetIn(BaseModel):
    """A whole target: POST creates one, PUT replaces every field (the secret included)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=200, pattern=r"^\S(.*\S)?$", description="What `notify` actions name."
    )
    source: str = Field(min_length=1, max_length=100, description="Whose tickets' events it receives.")
    connector: Connector = Field(
        default="webhook",
        description="webhook: a signed POST of the notification to `url`; a helpdesk's name: its "
        "own REST API at `url` (the account's address), so the ticket there gets the team, the "
        "priority and a note saying why.",
    )
    url: AnyHttpUrl
    secret: str = Field(
        min_length=16,
        max_length=500,
        description="The webhook's HMAC key, or the helpdesk's API token; write-only.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The connector's settings, e.g. zendesk: {username, groups: {team: group id}, "
        "note}; see the README's write-back section.",
    )
    enabled: JsonBool = True
    event_kinds: list[str] = Field(default_factory=list, description="Empty: every kind.")

    @field_validator("name", "source", "secret")
    @classmethod
    def _storable(cls, value: str) -> str:
        reject_nul(value)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, url: AnyHttpUrl, info: ValidationInfo) -> AnyHttpUrl:
        # Credentials in the address would be shown to viewers and quoted in delivery errors.
        if url.username is not None or url.password is not None:
            raise ValueError("the URL must not carry credentials (user:password@); put the token in `secret`")
        # A helpdesk's API paths are appended to its address: after a query or a fragment they
        # would not be paths, and every request would go to the front page.
        if info.data.get("connector", "webhook") != "webhook" and (url.query or url.fragment):
            raise ValueError("a helpdesk's address takes no query or fragment: its API paths are added to it")
        # A helpdesk's API token is sent in a header with every request: over http anyone on the
        # path reads it. Loopback never leaves the machine (local mock helpdesks, the tests). A
        # webhook's secret is an HMAC key that is never sent, so its scheme is left to its owner.
        if sends_token_in_clear(info.data.get("connector", "webhook"), str(url)):
            raise ValueError("a helpdesk's address must be https (its API token is sent with every request)")
        # A URL as answers show it: saved, the hidden value would replace the token.
        if url.query and HIDDEN in query_values(url.query):
            raise ValueError(f"{HIDDEN} is how answers hide a query's value: give the real value")
        if len(str(url)) > URL_MAX:  # as stored (normalized): a longer one the column refuses
            raise ValueError(f"the URL is longer than {URL_MAX} characters")
        return url

    @field_validator("secret")
    @classmethod
    def _header_safe(cls, secret: str, info: ValidationInfo) -> str:
        # A helpdesk's token goes into a header: printable ASCII, no spaces (a pasted newline
        # would make every request fail, quoting the token in the error).
        if info.data.get("connector", "webhook") != "webhook" and not TOKEN.fullmatch(secret):
            raise ValueError("an API token is printable ASCII without spaces")
        return secret

    @field_validator("options")
    @classmethod
    def _options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        reject_nul(options)
        connector = info.data.get("connector")
        if connector is None:  # the connector itself is invalid: that error is reported
            return options
        try:
            return check_options(connector, options)
        except OptionsInvalid as exc:
            # One error per option, each at its path (pydantic puts /options in front).
            details = [
                InitErrorDetails(
                    type=PydanticCustomError("option", "{message}", {"message": msg}), loc=loc, input=None
                )
                for loc, msg in exc.errors
            ]
            raise ValidationError.from_exception_data("options", details) from None

    @field_validator("event_kinds")
    @classmethod
    def _kinds(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(WRITEBACK_KINDS))
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; use {list(WRITEBACK_KINDS)}")
        return list(dict.fromkeys(kinds))  # a set of kinds: a repeat is kept once, in its first place


class TargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    source: str
    connector: str
    url: str
    options: dict[str, Any]
    enabled: bool
    event_kinds: list[str]
    revision: int = Field(
        description='The ETag is W/"writeback-target-<id>-<revision>.<generation>"; the generation is '
        "drawn when the target is created, so no ETag of a deleted target matches a later one."
    )
    created_at: datetime
    updated_at: datetime

    @field_validator("url")
    @classmethod
    def _hide_secrets(cls, url: str) -> str:
        # Viewers must not read a token in the query (a webhook's ``?token=``), nor the
        # credentials of a target saved before such URLs were refused. Stored whole: deliveries
        # go to the URL as given. Admins too see it hidden, as the secret is write-only.
        return hide_url_secrets(url)

    @computed_field(  # type: ignore[prop-decorator]
        description="Why the sender refuses every delivery to this target, failing each at once "
        "(a helpdesk's http:// address stored before such addresses were refused); null when none."
    )
    @property
    def problem(self) -> str | None:
        # Hiding the URL's secrets keeps its scheme and host, all the check reads.
        return clear_text_refusal(self.connector, self.url)


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    target_id: int
    event_id: str
    kind: str
    ticket_key: str
    status: str
    attempts: int
    requests_sent: int = Field(
        description="How many of the delivery's requests (an assignment, then a note, say) have got "
        "through; a retry sends only the rest."
    )
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
