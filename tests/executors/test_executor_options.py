"""Executor specs and options are checked before any cluster starts (no Dask needed to run)."""

from __future__ import annotations

import pytest

from atomiton_core import create_conductor
from atomiton_core.conductor.cluster import ClusterValue, held, swap
from atomiton_core.conductor.executors import _dask_options, create_executor
from atomiton_core.errors import ConfigurationError


def test_options_by_query_and_by_name() -> None:
    assert _dask_options("dask", "workers=4&threads=2&memory=2GiB&adaptive=1-8", {}) == {
        "n_workers": 4,
        "threads_per_worker": 2,
        "memory_limit": "2GiB",
        "adaptive": (1, 8),
    }
    # options given by name win over the query
    given = _dask_options("dask", "workers=4", {"workers": 2, "timeout": 5, "adaptive": (0, 3)})
    assert given == {"n_workers": 2, "worker_timeout": 5.0, "adaptive": (0, 3)}
    assert _dask_options("dask", "shared_paths=/mnt/a,/mnt/b", {}) == {
        "shared_paths": ("/mnt/a", "/mnt/b")
    }


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("dask?workers=0", None, "option 'workers' is '0', not a whole number of at least 1"),
        ("dask?threads=two", None, "option 'threads' is 'two', not a whole number"),
        ("dask?adaptive=5-2", None, "option 'adaptive' is '5-2', not MIN-MAX workers"),
        ("dask?timeout=-1", None, "option 'timeout' is '-1', not seconds, over 0"),
        ("dask?wokers=2", None, "unknown option 'wokers'"),
        ("tcp://127.0.0.1:8786?workers=2", None, "are for a cluster started here"),
        ("local", {"workers": 2}, "executor options ['workers'] are for a Dask executor"),
        ("nonsense", None, "unknown executor 'nonsense'"),
    ],
)
def test_bad_options_are_refused_naming_them(
    spec: str, options: dict[str, object] | None, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_executor(spec, options=options)
    assert message in str(caught.value)


def test_create_conductor_takes_executor_options() -> None:
    with pytest.raises(ConfigurationError, match="option 'workers' is 'many'"):
        create_conductor("memory://opts", executor="dask", executor_options={"workers": "many"})


def test_cluster_values_are_found_and_swapped_where_they_sit() -> None:
    cv = ClusterValue(object(), "data", bytes, "bytes", 100 * 1024 * 1024, "make-a-1")
    inputs = {"x": 1, "rows": [cv, 2], "nested": {"t": (3, cv)}}
    assert held(inputs) and not held({"x": [1, {"y": (2,)}]})
    swapped = swap(inputs, lambda v: f"value of {v.port}")
    assert swapped == {"x": 1, "rows": ["value of data", 2], "nested": {"t": (3, "value of data")}}
    plain = {"x": [1, 2]}
    assert swap(plain, lambda v: None) is plain  # nothing held: the same object
    assert repr(cv) == "<bytes of 100.0 MB on the Dask cluster (make-a-1['data'])>"
    cv.release()
    assert repr(cv).endswith(", released>")
