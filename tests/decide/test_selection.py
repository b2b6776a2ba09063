"""Selection: plain individuals, DEAP selectors replayable from an explicit rng, archives, stats; one
contract over every registered selection, plugins included."""

from __future__ import annotations

import json
import pickle
import random
from typing import Any

import pytest

from metaexp.decide.archives import HallOfFame, MapElites
from metaexp.decide.selections import Selection, selections
from metaexp.decide.selectors import (
    Individual,
    SelectionError,
    admit,
    best,
    fitness,
    island_stats,
    select_parents,
)

MIN = (-1.0,)  # minimise one metric (val_bpb)
MAX = (1.0,)
PARETO = (-1.0, -1.0)  # minimise both (val_bpb, peak_mem_gb)


def ind(n: int, *values: float, features: tuple[float, ...] = (), island: int = 0) -> Individual:
    return Individual(f"c{n:03d}", n, tuple(values), features, island)


def population(count: int = 8) -> list[Individual]:
    return [ind(i, 1.0 + ((i * 7) % count) / 10) for i in range(count)]


def through_json(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data))


REGISTERED = list(selections())  # the built-ins, then every installed plugin's


def pareto_population() -> list[Individual]:
    front = [ind(0, 1.0, 5.0), ind(1, 2.0, 3.0), ind(2, 3.0, 1.0)]
    dominated = [ind(3, 2.5, 4.0), ind(4, 3.5, 3.5), ind(5, 4.0, 6.0)]
    return front + dominated


# ---------------------------------------------------------------------------
# Individuals and fitness


def test_fitness_folds_direction_into_one_sign() -> None:
    assert fitness(ind(1, 0.9), MIN) == (-0.9,)
    assert fitness(ind(1, 0.9), MAX) == (0.9,)
    assert fitness(ind(1, 1.0, 40.0), (-1.0, 1.0)) == (-1.0, 40.0)
    assert fitness(ind(1, 0.8), MIN) > fitness(ind(2, 0.9), MIN)


@pytest.mark.parametrize("bad", [ind(1, 1.0, 2.0), ind(1, float("nan"))])
def test_fitness_refuses_wrong_arity_and_nan(bad: Individual) -> None:
    with pytest.raises(SelectionError, match="c001"):
        fitness(bad, MIN)


def test_individuals_survive_pickle_and_json() -> None:
    x = ind(7, 0.93, 12.0, features=(0.5, 120.0), island=3)
    assert pickle.loads(pickle.dumps(x)) == x
    assert Individual.from_dict(through_json(x.to_dict())) == x


# ---------------------------------------------------------------------------
# Parents


@pytest.mark.parametrize(("method", "signs"), [("tournament", MIN), ("best", MIN), ("nsga2", PARETO)])
def test_select_parents_replays_from_rng_and_leaves_global_random_alone(
    method: str, signs: tuple[float, ...]
) -> None:
    pop = population() if len(signs) == 1 else pareto_population()
    random.seed(1234)
    before = random.getstate()
    first = select_parents(pop, 6, method, signs, random.Random(7))
    assert random.getstate() == before
    again = select_parents(pop, 6, method, signs, random.Random(7))
    assert first == again
    assert len(first) == 6 and all(p in pop for p in first)
    assert random.random() == random.Random(1234).random()  # the global sequence did not move


def test_tournament_differs_across_rng_states_and_favours_the_fit() -> None:
    pop = population()
    runs = {tuple(p.n for p in select_parents(pop, 8, "tournament", MIN, random.Random(s))) for s in range(5)}
    assert len(runs) > 1
    picks = select_parents(pop, 400, "tournament", MIN, random.Random(0))
    champion = best(pop, MIN)
    worst = max(pop, key=lambda x: x.values[0])
    assert picks.count(champion) > picks.count(worst)


def test_best_parents_are_drawn_by_rank_so_every_member_breeds() -> None:
    pop = [ind(1, 3.0), ind(2, 1.0), ind(3, 2.0)]  # minimised: 2 is the best, then 3, then 1
    picks = [p.n for p in select_parents(pop, 3000, "best", MIN, random.Random(0))]
    shares = {n: picks.count(n) / len(picks) for n in (1, 2, 3)}
    assert shares == pytest.approx({2: 3 / 6, 3: 2 / 6, 1: 1 / 6}, abs=0.03)  # linear ranking
    again = [p.n for p in select_parents(pop, 3000, "best", MIN, random.Random(0))]
    assert again == picks  # the same rng, the same parents


def test_tournament_picks_a_non_best_parent_as_often_as_it_should() -> None:
    pop = [ind(i, float(i)) for i in range(1, 7)]  # minimised: 1 is the best of six
    picks = select_parents(pop, 6000, "tournament", MIN, random.Random(1), tournament_size=3)
    best_share = sum(p.n == 1 for p in picks) / len(picks)
    assert best_share == pytest.approx(1 - (5 / 6) ** 3, abs=0.02)  # the best wins when it is drawn
    assert {p.n for p in picks} >= {1, 2, 3, 4}  # others breed too


def test_tournament_larger_than_population_still_works() -> None:
    pop = [ind(1, 3.0), ind(2, 1.0)]
    picks = select_parents(pop, 10, "tournament", MIN, random.Random(0), tournament_size=5)
    assert len(picks) == 10 and set(picks) <= set(pop)


def test_nsga2_parents_favour_the_first_front_for_two_objectives() -> None:
    pop = pareto_population()
    picks = select_parents(pop, 300, "nsga2", PARETO, random.Random(3))
    front = {0, 1, 2}
    assert sum(p.n in front for p in picks) > 0.6 * len(picks)
    assert {p.n for p in select_parents(pop[:1], 3, "nsga2", PARETO, random.Random(0))} == {0}


def test_select_parents_refuses_bad_input() -> None:
    with pytest.raises(SelectionError, match="map_elites"):
        select_parents(population(), 2, "map_elites", MIN, random.Random(0))
    with pytest.raises(SelectionError, match="empty"):
        select_parents([], 2, "tournament", MIN, random.Random(0))
    assert select_parents([], 0, "tournament", MIN, random.Random(0)) == []


@pytest.mark.parametrize("signs", [MIN, MAX])
@pytest.mark.parametrize("method", REGISTERED)
def test_every_registered_selection_draws_parents_from_its_rng_alone(
    method: str, signs: tuple[float, ...]
) -> None:
    assert isinstance(selections()[method], Selection)
    pop = population()
    random.seed(99)
    before = random.getstate()
    first = select_parents(pop, 7, method, signs, random.Random(5), tournament_size=3)
    assert random.getstate() == before  # nobody else's random sequence moved
    assert first == select_parents(pop, 7, method, signs, random.Random(5), tournament_size=3)
    assert len(first) == 7 and all(p in pop for p in first)
    assert select_parents(pop[:1], 3, method, signs, random.Random(0)) == pop[:1] * 3


# ---------------------------------------------------------------------------
# Survivors


@pytest.mark.parametrize("signs", [MIN, MAX])
@pytest.mark.parametrize("method", REGISTERED)
def test_every_registered_selection_admits_within_its_size(method: str, signs: tuple[float, ...]) -> None:
    """At most `size` of the members and the child, each once, the same every time; a population
    not yet full keeps every child."""
    pop = population(5)
    for size in (1, 3, 5, 8):
        members = pop[:size]
        for value in (0.5, 1.2, 9.0):
            child = ind(50, value)
            survivors, kept = admit(members, child, size, method, signs)
            assert set(survivors) <= {*members, child}
            assert len({m.commit for m in survivors}) == len(survivors)  # each once
            assert len(survivors) == min(size, len(members) + 1)
            assert kept is (child in survivors)
            assert admit(members, child, size, method, signs) == (survivors, kept)
            if len(members) < size:
                assert kept


@pytest.mark.parametrize("method", ["best", "tournament"])
@pytest.mark.parametrize(("child", "kept"), [(0.9, True), (1.0, True), (1.1, False)])
def test_a_population_of_one_takes_better_and_equal_children(method: str, child: float, kept: bool) -> None:
    incumbent = ind(1, 1.0)
    new = ind(2, child)
    pop, admitted = admit([incumbent], new, 1, method, MIN)
    assert admitted is kept
    assert pop == ([new] if kept else [incumbent])


def test_empty_population_admits_the_baseline() -> None:
    assert admit([], ind(0, 5.0), 1, "best", MIN) == ([ind(0, 5.0)], True)


def test_full_population_keeps_the_best_size_and_a_tie_of_the_worst_drifts_in() -> None:
    pop = [ind(1, 1.0), ind(2, 3.0), ind(3, 2.0)]
    grown, admitted = admit(pop, ind(4, 2.5), 4, "best", MIN)
    assert admitted and [x.n for x in grown] == [1, 3, 4, 2]  # not full yet: any child joins
    kept, admitted = admit(pop, ind(4, 2.5), 3, "best", MIN)
    assert admitted and [x.n for x in kept] == [1, 3, 4]
    tied, admitted = admit(pop, ind(4, 3.0), 3, "best", MIN)
    assert admitted and [x.n for x in tied] == [1, 3, 4]  # a neutral move: the newcomer replaces its equal
    worse, admitted = admit(pop, ind(4, 9.0), 3, "tournament", MIN)
    assert not admitted and ind(4, 9.0) not in worse


def test_admit_never_takes_a_commit_twice() -> None:
    pop = [ind(1, 2.0)]
    same_commit = Individual("c001", 5, (1.0,))
    assert admit(pop, same_commit, 3, "best", MIN) == (pop, False)


def test_nsga2_admits_a_non_dominated_child_and_rejects_a_dominated_one() -> None:
    pop = pareto_population()[:4]  # the front of three and (2.5, 4.0)
    kept, admitted = admit(pop, ind(9, 1.5, 2.0), 4, "nsga2", PARETO)
    assert admitted and ind(9, 1.5, 2.0) in kept and len(kept) == 4
    assert ind(3, 2.5, 4.0) not in kept  # the dominated incumbent made room
    kept, admitted = admit(pop, ind(9, 5.0, 5.0), 4, "nsga2", PARETO)
    assert not admitted and set(kept) == set(pop)
    kept, admitted = admit(pop, ind(9, 2.0, 3.0), 4, "nsga2", PARETO)  # same point as c001
    assert not admitted and set(kept) == set(pop)


def test_best_single_and_pareto() -> None:
    assert best([ind(1, 2.0), ind(2, 1.0), ind(3, 1.0)], MIN).n == 2
    assert best([ind(1, 2.0), ind(2, 1.0)], MAX).n == 1
    pop = [*pareto_population(), ind(9, 0.5, 9.0)]  # best first value, still non-dominated
    assert best(pop, PARETO).n == 9
    with pytest.raises(SelectionError):
        best([], MIN)


# ---------------------------------------------------------------------------
# Hall of fame


def test_hall_of_fame_keeps_the_k_best_distinct_commits() -> None:
    hof = HallOfFame(MIN, k=2)
    assert hof.update(ind(1, 3.0)) and hof.update(ind(2, 2.0))
    assert not hof.update(Individual("c002", 9, (0.1,)))  # a commit enters once
    assert not hof.update(ind(3, 3.0))  # ties keep the incumbent
    assert hof.update(ind(4, 1.0))
    assert [m.n for m in hof.members] == [4, 2]


def test_hall_of_fame_is_the_pareto_front_for_several_objectives() -> None:
    hof = HallOfFame(PARETO)
    entered = [hof.update(x) for x in pareto_population()]
    assert entered == [True, True, True, False, False, False]
    assert hof.update(ind(9, 1.5, 2.0))  # dominates c001
    assert {m.n for m in hof.members} == {0, 2, 9}
    assert not hof.update(ind(10, 1.5, 2.0))  # same point: the incumbent stays


@pytest.mark.parametrize("signs", [MIN, PARETO])
def test_hall_of_fame_round_trips(signs: tuple[float, ...]) -> None:
    hof = HallOfFame(signs, k=3)
    for x in pareto_population():
        hof.update(Individual(x.commit, x.n, x.values[: len(signs)]))
    for copy in (
        HallOfFame.from_dict(json.loads(json.dumps(hof.to_dict()))),
        pickle.loads(pickle.dumps(hof)),
    ):
        assert copy.members == hof.members and copy.signs == hof.signs and copy.k == hof.k
        assert copy.update(Individual("c099", 99, (0.1,) * len(signs)))  # still works after the trip


# ---------------------------------------------------------------------------
# MAP-Elites


def test_map_elites_bins_and_clips() -> None:
    grid = MapElites([(0.0, 1.0, 4), (0.0, 100.0, 2)])
    assert grid.cell(ind(1, 1.0, features=(0.0, 0.0))) == (0, 0)
    assert grid.cell(ind(1, 1.0, features=(0.26, 50.0))) == (1, 1)
    assert grid.cell(ind(1, 1.0, features=(0.99, 49.9))) == (3, 0)
    assert grid.cell(ind(1, 1.0, features=(-5.0, 1e9))) == (0, 1)
    assert grid.cell(ind(1, 1.0, features=(1.0, 100.0))) == (3, 1)
    with pytest.raises(SelectionError):
        grid.cell(ind(1, 1.0, features=(0.5,)))
    with pytest.raises(SelectionError):
        MapElites([(1.0, 1.0, 3)])


def test_map_elites_fills_empty_cells_and_replaces_only_when_strictly_better() -> None:
    grid = MapElites([(0.0, 1.0, 2)])
    assert grid.add(ind(1, 2.0, features=(0.1,)), MIN)
    assert grid.add(ind(2, 5.0, features=(0.9,)), MIN)  # an empty cell takes anything
    assert not grid.add(ind(3, 2.0, features=(0.2,)), MIN)  # tie
    assert not grid.add(ind(4, 3.0, features=(0.2,)), MIN)
    assert grid.add(ind(5, 1.0, features=(0.3,)), MIN)
    assert {c: e.n for c, e in grid.elites.items()} == {(0,): 5, (1,): 2}
    assert grid.coverage() == 1.0


def test_map_elites_sampling_coverage_and_round_trip() -> None:
    grid = MapElites([(0.0, 1.0, 5), (0.0, 1.0, 2)])
    assert grid.coverage() == 0.0
    with pytest.raises(SelectionError):
        grid.sample(1, random.Random(0))
    for i, f in enumerate([0.05, 0.45, 0.95]):
        grid.add(ind(i, float(i), features=(f, f)), MIN)
    assert grid.coverage() == pytest.approx(3 / 10)
    picks = grid.sample(30, random.Random(4))
    assert picks == grid.sample(30, random.Random(4))
    assert {p.n for p in picks} == {0, 1, 2}
    for copy in (
        MapElites.from_dict(json.loads(json.dumps(grid.to_dict()))),
        pickle.loads(pickle.dumps(grid)),
    ):
        assert copy.elites == grid.elites and copy.bins == grid.bins
        assert copy.sample(30, random.Random(4)) == picks  # replays after a reload


# ---------------------------------------------------------------------------
# Statistics


def test_island_stats_single_and_multi_objective() -> None:
    row = island_stats([ind(1, 1.0), ind(2, 3.0)], MIN, gen=4)
    assert row == {"gen": 4, "size": 2, "min": -3.0, "avg": -2.0, "max": -1.0, "std": 1.0}
    multi = island_stats([ind(1, 1.0, 4.0), ind(2, 3.0, 2.0)], (-1.0, 1.0), gen=0)
    assert multi["max_0"] == -1.0 and multi["max_1"] == 4.0 and multi["size"] == 2
    assert island_stats([], MIN, gen=1) == {"gen": 1, "size": 0}
