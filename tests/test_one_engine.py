"""One engine: every row of a scenario is its table's factory's row (the factory's
declarations are the recipe), with the step's plan as the given values; a scenario draws
only from its own seed and leaves factory_boy's state alone."""

from __future__ import annotations

import dataclasses
from datetime import date

import factory.random
import pytest

from pytest_celestra.errors import CelestraError
from pytest_celestra.rows import factories, factory_internals, loader, steps
from pytest_celestra.rows.batches import Recipes
from pytest_celestra.rows.providers import CelestraProvider
from pytest_celestra.rows.scenario import anchor_for, generate_scenario

ANCHOR = anchor_for(date(2025, 6, 1))


def collect(volume: str = "small", seed: int = 5) -> dict[str, list[tuple]]:
    tables: dict[str, list[tuple]] = {}
    for table, rows in generate_scenario(volume, seed=seed, anchor=ANCHOR):
        tables.setdefault(table, []).extend(rows)
    return tables


def test_every_table_of_the_scenario_is_made_by_its_factory(monkeypatch):
    made: dict[str, int] = {}
    recipe = Recipes.recipe

    def counted(self, factory_class, given):
        table = factory_internals.model_class(factory_class).__tablename__
        row = recipe(self, factory_class, given)

        def counting(**values):
            made[table] = made.get(table, 0) + 1
            return row(**values)

        return counting

    monkeypatch.setattr(Recipes, "recipe", counted)
    tables = collect()
    assert made == {table: len(rows) for table, rows in tables.items()}
    assert set(made) == set(loader.COLUMNS)


def test_a_recipe_makes_no_parent():
    recipes = Recipes(CelestraProvider.seeded(1), ANCHOR)
    agent = recipes.recipe(factories.AgentFactory, "status")
    with pytest.raises(CelestraError, match="AgentFactory made a CompanyFactory"):
        agent(status=None)


def test_a_scenario_reads_and_moves_no_state_of_factory_boy():
    """Reseeding factory_boy changes nothing in a scenario, and a scenario moves neither
    factory_boy's random generators nor a factory's sequence."""
    factory.random.reseed_random(1)
    first = collect()
    faker_random = factory_internals.faker_instance().random
    states = factory.random.randgen.getstate(), faker_random.getstate()
    counter = factory_internals.sequence_counter(factories.UserFactory)
    before = counter()
    collect()
    assert counter() == before + 1  # the scenario's users took no number of the factory's
    assert (factory.random.randgen.getstate(), faker_random.getstate()) == states
    factory.random.reseed_random(2)
    assert collect() == first


def test_cyclic_collection_is_off_only_while_rows_are_made(monkeypatch):
    """A scenario makes its rows without cyclic garbage collection (a sixth of its time),
    but the caller holding a chunk, or a scenario left half read, keeps collection on."""
    import gc

    from pytest_celestra.rows.steps import tenants

    seen: list[bool] = []
    users = tenants.users

    def watched(d, c):
        seen.append(gc.isenabled())
        return (yield from users(d, c))

    monkeypatch.setattr(
        "pytest_celestra.rows.steps.STEPS",
        tuple(
            dataclasses.replace(step, run=lambda d, f: watched(d, f["companies"]))
            if step.name == "users"
            else step
            for step in steps.STEPS
        ),
    )
    assert gc.isenabled()
    chunks = generate_scenario("small", seed=5, anchor=ANCHOR)
    next(chunks)
    assert gc.isenabled()  # the caller holds the first chunk
    for table, _ in chunks:
        assert gc.isenabled()
        if table == "users":
            break
    assert seen == [False]
    chunks.close()
    assert gc.isenabled()


def test_a_step_that_raises_leaves_cyclic_collection_on(monkeypatch):
    import gc

    def broken(d, f):
        yield "users", ()
        raise RuntimeError("a rule of yours failed")

    replaced = tuple(
        dataclasses.replace(step, run=broken) if step.name == "users" else step
        for step in steps.STEPS
    )
    monkeypatch.setattr("pytest_celestra.rows.steps.STEPS", replaced)
    with pytest.raises(RuntimeError, match="a rule of yours failed"):
        for _ in generate_scenario("small", seed=5, anchor=ANCHOR):
            pass
    assert gc.isenabled()
