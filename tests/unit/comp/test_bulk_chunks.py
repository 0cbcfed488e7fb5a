"""How the bulk recompute cuts reps into chunks: by the deals they read, a heavy manager's
team in the manager's own chunk (its deals are read there anyway), lowest managers first."""

from __future__ import annotations

from services.comp_engine.recalc.bulk import chunks


def test_reps_are_cut_where_the_next_would_pass_the_limit() -> None:
    weights = {"a": 20, "b": 15, "c": 10, "d": 50}
    assert chunks(weights, limit=40) == [["a", "b"], ["c"], ["d"]]


def test_a_manager_over_the_limit_takes_its_team() -> None:
    weights = {"m": 60, "a": 20, "b": 25, "c": 5, "d": 3}
    found = chunks(weights, limit=40, teams={"m": {"a", "b"}})
    assert found == [["m", "a", "b"], ["c", "d"]]


def test_a_manager_under_the_limit_is_chunked_like_any_rep() -> None:
    weights = {"m": 30, "a": 20, "b": 5}
    assert chunks(weights, limit=40, teams={"m": {"a"}}) == [["a", "b"], ["m"]]


def test_lower_managers_claim_their_teams_before_a_director() -> None:
    weights = {"dir": 90, "m1": 45, "m2": 45, "a": 20, "b": 25, "c": 20, "d": 25, "x": 1}
    teams = {"dir": {"m1", "m2", "a", "b", "c", "d"}, "m1": {"a", "b"}, "m2": {"c", "d"}}
    found = chunks(weights, limit=30, teams=teams)
    assert found == [["m1", "a", "b"], ["m2", "c", "d"], ["dir"], ["x"]]
    every = [rep for chunk in found for rep in chunk]
    assert sorted(every) == sorted(weights), "each rep in exactly one chunk"


def test_reps_outside_the_weights_are_left_out_of_a_team() -> None:
    weights = {"m": 60, "a": 20}
    assert chunks(weights, limit=40, teams={"m": {"a", "gone"}}) == [["m", "a"]]
