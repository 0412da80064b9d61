"""Pure pieces of the admin API: If-Match parsing, JSON merge patch, team references."""

from __future__ import annotations

import pytest

from services.router.errors import Invalid
from services.router.rules import RuleSet
from services.router.rulesets.service import merge_patch, team_references, validated
from shared.http.preconditions import (
    ANY,
    MISSING,
    NO_MATCH,
    PreconditionRequired,
    Seen,
    Stale,
    check_expected,
    etag,
    expected_revision,
    expected_version,
    new_generation,
)


def test_if_match_parsing() -> None:
    assert etag("ruleset", 7) == 'W/"ruleset-7"'
    assert expected_revision('W/"ruleset-7"', "ruleset") == 7
    assert expected_revision('"ruleset-7"', "ruleset") == 7  # strong form accepted
    assert expected_revision('W/"team-a-1", W/"ruleset-3"', "ruleset") == 3
    assert expected_revision("*", "ruleset") is ANY
    assert expected_revision(None, "ruleset") == MISSING
    assert expected_revision("  ", "ruleset") == MISSING
    assert expected_revision('W/"team-access-2"', "ruleset") == NO_MATCH
    assert expected_revision('W/"team-access-2"', "team-access") == 2
    assert expected_revision('W/"team-access-x-2"', "team-access") == NO_MATCH


def test_if_match_with_generations() -> None:
    """Resources that can be deleted and created again carry a generation: an ETag without one,
    or with another one, never matches."""
    gen, other = new_generation(), new_generation()
    assert gen != other and len(gen) == 16
    assert etag("team-access", 2, gen) == f'W/"team-access-2.{gen}"'
    assert expected_version(f'W/"team-access-2.{gen}"', "team-access") == Seen(2, gen)
    assert expected_version(f'"team-access-2.{gen}"', "team-access") == Seen(2, gen)
    assert expected_version('W/"team-access-2"', "team-access") == NO_MATCH  # from before generations
    assert expected_version(f'W/"team-access-2.{gen}x"', "team-access") == NO_MATCH
    assert expected_version(f'W/"team-access-x-2.{gen}"', "team-access") == NO_MATCH
    assert expected_version(f'W/"x-1", W/"team-access-2.{gen}"', "team-access") == Seen(2, gen)
    assert expected_version("*", "team-access") is ANY
    assert expected_version(None, "team-access") == MISSING
    current = etag("team-access", 2, gen)
    check_expected(Seen(2, gen), 2, current, gen)
    check_expected(ANY, 2, current, gen)
    for seen in (Seen(2, other), Seen(1, gen), NO_MATCH):
        with pytest.raises(Stale):
            check_expected(seen, 2, current, gen)
    with pytest.raises(PreconditionRequired):
        check_expected(MISSING, 2, current, gen)


def test_check_expected() -> None:
    check_expected(3, 3, 'W/"ruleset-3"')
    check_expected(ANY, 3, 'W/"ruleset-3"')
    with pytest.raises(PreconditionRequired):
        check_expected(MISSING, 3, 'W/"ruleset-3"')
    with pytest.raises(Stale) as stale:
        check_expected(2, 3, 'W/"ruleset-3"')
    assert stale.value.current_etag == 'W/"ruleset-3"'
    with pytest.raises(Stale):
        check_expected(NO_MATCH, 3, 'W/"ruleset-3"')


@pytest.mark.parametrize(
    ("if_match", "holds"),
    [
        ('W/"ruleset-2", W/"ruleset-3"', True),  # any listed ETag may match (RFC 9110 13.1.1)
        ('W/"ruleset-3", W/"ruleset-2"', True),
        ('W/"team-a-3",W/"ruleset-1" ,  "ruleset-3"', True),
        (', W/"ruleset-1",, W/"ruleset-3" ,', True),  # empty list elements are allowed
        ('W/"ruleset-1", W/"ruleset-2"', False),
        ("*", True),
        (" * ", True),
        ('W/"ruleset-1", *', False),  # "*" is the whole value or nothing: malformed, no match
        ('*, W/"ruleset-1"', False),
        ('*, W/"ruleset-3"', False),
        ('W/"ruleset-3', False),  # unterminated
        ("ruleset-3", False),  # unquoted
        ('W/"ruleset-3" W/"ruleset-3"', False),  # no comma between them
        ('W/"ruleset-3", garbage', False),
        ('"', False),
        (",", False),
        ('"ruleset-99999999999999999999999"', False),
    ],
)
def test_if_match_lists(if_match: str, holds: bool) -> None:
    """Rule sets (and SLA configurations): plain revision ETags, listed."""
    expected = expected_revision(if_match, "ruleset")
    if holds:
        check_expected(expected, 3, 'W/"ruleset-3"')
    else:
        with pytest.raises(Stale) as stale:
            check_expected(expected, 3, 'W/"ruleset-3"')
        assert not isinstance(stale.value, PreconditionRequired)
        assert stale.value.current_etag == 'W/"ruleset-3"'


GEN, OLD = "5f1c09e2a4b7d3c8", "0b7e41d29c3a8f56"  # the current row's generation; a deleted one's


@pytest.mark.parametrize(
    ("if_match", "holds"),
    [
        # Only a later tag of the list is current: a stale revision, then the deleted row's.
        (f'W/"team-a-2.{GEN}", W/"team-a-3.{OLD}", W/"team-a-3.{GEN}"', True),
        (f'W/"team-a-3.{GEN}", W/"team-a-2.{GEN}"', True),
        (f'W/"ruleset-3", "team-a-3.{GEN}"', True),
        (f'W/"team-a-2.{GEN}", W/"team-a-3.{OLD}"', False),  # revision or generation wrong in each
        ('W/"team-a-2", W/"team-a-3"', False),  # from before generations: no generation, no match
        ("*", True),
        (f'*, W/"team-a-3.{GEN}"', False),  # malformed: "*" inside a list
        (f'W/"team-a-3.{GEN}" W/"team-a-3.{GEN}"', False),  # no comma
        (f'W/"team-a-3.{GEN}', False),  # unterminated
        (f"team-a-3.{GEN}", False),  # unquoted
    ],
)
def test_if_match_lists_with_generations(if_match: str, holds: bool) -> None:
    """Teams, write-back targets and sources: ETags with a generation, listed."""
    expected = expected_version(if_match, "team-a")
    current = f'W/"team-a-3.{GEN}"'
    if holds:
        check_expected(expected, 3, current, GEN)
    else:
        with pytest.raises(Stale) as stale:
            check_expected(expected, 3, current, GEN)
        assert not isinstance(stale.value, PreconditionRequired)
        assert stale.value.current_etag == current


def test_if_match_list_values() -> None:
    assert expected_revision('W/"ruleset-2", W/"ruleset-3"', "ruleset") == frozenset({2, 3})
    assert expected_revision('W/"ruleset-3", W/"ruleset-3"', "ruleset") == 3
    assert expected_version(f'W/"team-a-2.{GEN}", W/"team-a-3.{OLD}"', "team-a") == frozenset(
        {Seen(2, GEN), Seen(3, OLD)}
    )
    assert expected_version('*, W/"x-1"', "x") == NO_MATCH


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "keep": 1}
    assert merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}, "keep": 1}
    assert merge_patch(target, {"c": ["x"]})["c"] == ["x"]
    assert merge_patch({"when": {"field": "x"}}, {"when": None}) == {}
    assert target["c"] == {"d": "e", "f": "g"}  # not mutated


def test_team_references_and_pointer_errors() -> None:
    ruleset = RuleSet.model_validate(
        {
            "default_team": "desk",
            "rules": [
                {"id": "a", "name": "A", "actions": {"assign_team": "net"}},
                {"id": "b", "name": "B", "actions": {"assign_pool": {"teams": ["desk", "net"]}}},
            ],
        }
    )
    refs = team_references(ruleset)
    assert refs["net"] == [
        ("/rules/0/actions/assign_team", "a"),
        ("/rules/1/actions/assign_pool/teams/1", "b"),
    ]
    assert refs["desk"] == [("/rules/1/actions/assign_pool/teams/0", "b"), ("/default_team", "default_team")]
    with pytest.raises(Invalid) as invalid:
        validated(
            {
                "rules": [
                    {
                        "id": "a",
                        "name": "A",
                        "when": {"field": "subject", "op": "gt", "value": 1},
                        "actions": {"assign_team": "x"},
                    }
                ]
            }
        )
    assert invalid.value.errors[0]["field"] == "/rules/0/when/op"
