"""The create path's shortcuts say exactly what the long way says: uids, the validator that refuses unknown
fields, the stored JSON answered as is, and the SQLite backend's multi-row inserts.

Each shortcut is compared with the way it replaced (uuid.uuid4, the model's own validator and the walk for
unknown fields, orjson.dumps of the answer, one INSERT per row).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from emulator import errors
from emulator.kinds import DEPLOYMENTS, PODS, SERVICES, kind_of
from emulator.models.base import unknown_fields
from emulator.registry.registry import _EXACT_VALIDATORS, Registry, WriteOptions, exact_validator, new_uid
from emulator.store.backend import INSERT_CHUNK, Row, SqliteBackend
from tests.unit.test_registry import NS, deployment, make_world, pod


@pytest.fixture
def registry() -> Registry:
    return make_world().registry


def test_uids_are_random_version_4_uuids_written_as_uuid_writes_them() -> None:
    made = [new_uid() for _ in range(5000)]  # more than one batch of random bytes
    assert len(set(made)) == len(made)
    for uid in made[:300]:
        parsed = uuid.UUID(uid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == uid


@pytest.mark.parametrize("body", [
    pod(),
    pod(labels={"app": "web"}, annotations={"a": "b"}),
    {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}],
                                                            "env": [{"name": "A", "value": "1"}]}]}},
])
def test_the_exact_validator_accepts_what_the_model_does_and_dumps_the_same(body: dict[str, Any]) -> None:
    model_class = kind_of(PODS).strategy.model  # type: ignore[union-attr]
    model = model_class.model_validate(body)
    assert unknown_fields(model) == []
    exact = exact_validator(model_class)
    assert exact is not None
    assert exact.validate_python(body).model_dump(exclude_none=True) == model.model_dump(exclude_none=True)


def test_the_exact_validator_refuses_unknown_fields_and_strings_for_numbers() -> None:
    model_class = kind_of(PODS).strategy.model  # type: ignore[union-attr]
    exact = exact_validator(model_class)
    assert exact is not None
    for body in (
        {"metadata": {"name": "p", "bogus": 1}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "zzz": 2}]}},
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": "80"}]}]}},
    ):
        with pytest.raises(Exception):  # noqa: B017 - whichever: the registry then takes the model's own way
            exact.validate_python(body)


def test_unknown_fields_are_still_reported_once_the_exact_validator_is_built(registry: Registry) -> None:
    registry.create(PODS, NS, pod("first"))
    registry.create(PODS, NS, pod("first-again"))  # the kind's second decode builds its exact validator
    assert kind_of(PODS).strategy.model in _EXACT_VALIDATORS  # type: ignore[union-attr]
    body = pod("second")
    body["metadata"]["bogus"] = 1
    body["spec"]["containers"][0]["zzz"] = 2
    result = registry.create(PODS, NS, body)
    assert result.warnings == ['unknown field "metadata.bogus"', 'unknown field "spec.containers[0].zzz"']
    assert "bogus" not in result.obj["metadata"] and "zzz" not in result.obj["spec"]["containers"][0]
    with pytest.raises(errors.StatusError) as refused:
        registry.create(PODS, NS, pod("third") | {"extra": 1}, WriteOptions(field_validation="Strict"))
    assert refused.value.code == 400 and 'unknown field "extra"' in refused.value.message
    broken = pod("fourth")
    broken["spec"]["containers"][0]["ports"] = [{"containerPort": "80"}]
    with pytest.raises(errors.StatusError) as decode_error:
        registry.create(PODS, NS, broken)
    assert decode_error.value.code == 400 and "cannot unmarshal string into Go struct field" in decode_error.value.message


def test_a_create_answers_with_the_json_it_stored(registry: Registry) -> None:
    for rt, body in ((PODS, pod("web")), (DEPLOYMENTS, deployment("web")), (SERVICES, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})):
        result = registry.create(rt, NS, body)
        assert result.raw is not None
        assert result.raw == orjson.dumps(result.obj) == registry.store.get_raw(rt.key, NS, result.obj["metadata"]["name"])[1]  # type: ignore[index]
    dry = registry.create(PODS, NS, pod("dry"), WriteOptions(dry_run=True))
    assert dry.raw is None


def test_sqlite_commits_many_rows_in_chunks_and_loads_them_all_back(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "store.db", "NORMAL")
    count = INSERT_CHUNK * 2 + 7
    rows = [Row("pods", NS, f"p{i}", i + 1, orjson.dumps({"i": i})) for i in range(count)]
    backend.commit(count, rows, [])
    backend.commit(count + 2, iter([Row("pods", NS, "p0", count + 1, b'{"i":"again"}')]), [("pods", NS, "p1")])
    backend.close()
    reopened = SqliteBackend(tmp_path / "store.db", "NORMAL")
    rv, loaded = reopened.load()
    stored = {row.name: row for row in loaded}
    reopened.close()
    assert rv == count + 2
    assert len(stored) == count - 1 and "p1" not in stored
    assert stored["p0"].raw == b'{"i":"again"}' and stored["p0"].rv == count + 1
    assert stored[f"p{count - 1}"].raw == orjson.dumps({"i": count - 1})
