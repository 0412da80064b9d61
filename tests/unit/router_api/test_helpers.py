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
