"""Hypothesis state machine: the Butler behaves like a dict keyed by (run, data ID)."""

from __future__ import annotations

import uuid

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from repo_butler import Butler
from repo_butler.errors import DatasetExistsError, DatasetNotFoundError

CONFIG = {
    "dataset_types": {
        "meta": {
            "dimensions": ["visit", "ccd"],
            "formatter": "json",
            "template": "m/{visit:07d}/{ccd:03d}.json",
        }
    }
}
visits = st.integers(0, 3)
ccds = st.integers(0, 3)
values = st.integers(-5, 5)


class ButlerModel(RuleBasedStateMachine):
    """Random put/overwrite/remove/get/query sequences on a root run and one rerun."""

    def __init__(self) -> None:
        super().__init__()
        root = f"memory://rb-stateful-{uuid.uuid4().hex}/repo"
        self.root_butler = Butler.create(root, config=CONFIG)
        self.rerun = Butler(root, rerun="r")
        self.model: dict[str, dict[tuple[int, int], int]] = {"": {}, "r": {}}

    def _butler(self, in_rerun: bool) -> Butler:
        return self.rerun if in_rerun else self.root_butler

    @rule(in_rerun=st.booleans(), visit=visits, ccd=ccds, value=values, overwrite=st.booleans())
    def put(self, in_rerun: bool, visit: int, ccd: int, value: int, overwrite: bool) -> None:
        run = "r" if in_rerun else ""
        exists = (visit, ccd) in self.model[run]
        try:
            self._butler(in_rerun).put(value, "meta", visit=visit, ccd=ccd, overwrite=overwrite)
        except DatasetExistsError:
            assert exists and not overwrite
            return
        assert overwrite or not exists
        self.model[run][visit, ccd] = value

    @rule(in_rerun=st.booleans(), visit=visits, ccd=ccds)
    def remove(self, in_rerun: bool, visit: int, ccd: int) -> None:
        run = "r" if in_rerun else ""
        try:
            self._butler(in_rerun).remove("meta", visit=visit, ccd=ccd)
        except DatasetNotFoundError:
            assert (visit, ccd) not in self.model[run]
            return
        del self.model[run][visit, ccd]

    @rule(in_rerun=st.booleans(), visit=visits, ccd=ccds)
    def get(self, in_rerun: bool, visit: int, ccd: int) -> None:
        expected = self.model[""].get((visit, ccd))
        if in_rerun:
            expected = self.model["r"].get((visit, ccd), expected)
        try:
            got = self._butler(in_rerun).get("meta", visit=visit, ccd=ccd)
        except DatasetNotFoundError:
            assert expected is None
            return
        assert got == expected

    @invariant()
    def queries_match_model(self) -> None:
        root_refs = self.root_butler.query_datasets("meta")
        assert {(r.data_id["visit"], r.data_id["ccd"]) for r in root_refs} == set(self.model[""])
        merged = {**dict.fromkeys(self.model[""], ""), **dict.fromkeys(self.model["r"], "r")}
        rerun_refs = self.rerun.query_datasets("meta")
        assert {(r.data_id["visit"], r.data_id["ccd"]): r.run for r in rerun_refs} == merged
        keys = [(r.data_id["visit"], r.data_id["ccd"]) for r in rerun_refs]
        assert keys == sorted(keys)

    def teardown(self) -> None:
        self.rerun.close()
        self.root_butler.close()


TestButlerModel = ButlerModel.TestCase
TestButlerModel.settings = settings(max_examples=15, stateful_step_count=20, deadline=None)
