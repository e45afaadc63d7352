"""Flows on a real Dask LocalCluster: blocking nodes run as tasks in worker processes."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest
from pydantic import BaseModel

from atomiton_core import Conductor, create_conductor, hookimpl, loads_flow, node, wire
from atomiton_core.conductor.dask_executor import DaskExecutor

pytest.importorskip("distributed")

# worker processes cannot import test modules: ship this one's functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class WorkParams(BaseModel):
    seconds: float = 0.3


@node("dask-test.work", params=WorkParams, outputs={"pid": int, "value": Any, "root": Any})
def work(ctx: Any, params: WorkParams, value: Any = None) -> dict[str, Any]:
    """Blocking work: runs on a worker, reports progress and where it ran."""
    ctx.progress(0.5, f"half way on {os.getpid()}")
    time.sleep(params.seconds)
    rendered = ctx.render("{{ greeting }} {{ value }}", value=value)
    return {"pid": os.getpid(), "value": rendered, "root": list(ctx.security.allowed_roots or ())}


@node("dask-test.boom", outputs={"x": int})
def boom(ctx: Any, params: BaseModel) -> dict[str, Any]:
    raise ValueError(f"failed on a worker at attempt {ctx.attempt}")


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [work, boom, uses_secret]


@pytest.fixture(scope="module")
def cluster_conductor() -> Iterator[Conductor]:
    executor = DaskExecutor(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    conductor = create_conductor(
        f"memory://dask-{uuid.uuid4().hex}",
        plugins=[Plugin()],
        autoload=False,
        record_runs=False,
        executor=executor,
        config={"allowedRoots": ["/tmp"], "unpicklable": lambda: None},
    )
    yield conductor
    conductor.close()


FLOW = """
id: on-dask
name: On Dask
variables: {greeting: {defaultValue: hello}}
nodes:
  - {id: a, type: dask-test.work, parameters: {seconds: 0.6}}
  - {id: b, type: dask-test.work, parameters: {seconds: 0.6}}
  - {id: c, type: dask-test.work, parameters: {seconds: 0.6}}
  - {id: d, type: dask-test.work, parameters: {seconds: 0.6}}
  - {id: join, type: dask-test.work, parameters: {seconds: 0}}
edges:
  - {source: a, sourceHandle: value, target: join, targetHandle: value}
"""


@pytest.mark.slow
def test_blocking_nodes_run_on_cluster_workers(cluster_conductor: Conductor) -> None:
    from atomiton_core import signals

    cluster_conductor.run(loads_flow(FLOW))  # warm up: workers import the node code once
    progress: list[Any] = []
    with signals.node_progress.connected_to(
        lambda s, event: progress.append(event), sender=cluster_conductor
    ):
        t0 = time.perf_counter()
        result = cluster_conductor.run(loads_flow(FLOW), {"greeting": "hi"})
        elapsed = time.perf_counter() - t0
    assert result.ok, result.error
    pids = {result.nodes[n].outputs["pid"] for n in "abcd"}  # type: ignore[index]
    assert os.getpid() not in pids and len(pids) == 2  # two worker processes shared the work
    assert 1.1 < elapsed < 2.4  # 4 x 0.6 s on 2 single-threaded workers: two waves
    assert result.outputs["join"]["value"] == "hi hi None"
    assert result.outputs["join"]["root"] == ["/tmp"]
    relayed = {e.node_id: e for e in progress}  # progress reported on workers reached us
    assert set("abcd") <= set(relayed)
    assert relayed["a"].fraction == 0.5 and relayed["a"].message.startswith("half way on ")
    assert relayed["a"].message != f"half way on {os.getpid()}"


@pytest.mark.slow
def test_errors_retries_and_timeouts_on_the_cluster(cluster_conductor: Conductor) -> None:
    failed = cluster_conductor.run(
        loads_flow(
            "id: f\nname: F\nnodes:\n  - {id: x, type: dask-test.boom, parameters: {retries: 1, retryDelay: 10}}\n"
        )
    )
    err = failed.nodes["x"].error
    assert failed.status == "failed" and err is not None and err.code == "EXECUTION_FAILED"
    assert "failed on a worker at attempt 2" in err.message and failed.nodes["x"].attempts == 2
    t0 = time.perf_counter()
    slow = cluster_conductor.run(
        loads_flow(
            "id: t\nname: T\nnodes:\n  - {id: s, type: dask-test.work, parameters: {seconds: 5, timeout: 300}}\n"
        )
    )
    assert slow.nodes["s"].error is not None and slow.nodes["s"].error.code == "TIMEOUT"
    assert time.perf_counter() - t0 < 2


@pytest.mark.slow
def test_cli_runs_a_flow_on_a_dask_cluster(tmp_path: Any) -> None:
    import json
    import subprocess

    flow = tmp_path / "f.flow.yaml"
    flow.write_text(
        "id: cli-dask\nname: CLI dask\nnodes:\n"
        "  - {id: a, type: edit-fields, parameters: {values: {x: 1}, keepOnlySet: true}}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "atomiton_core.cli",
            "run",
            str(flow),
            "--json",
            "--executor",
            "dask",
            "--storage",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"a": {"output": {"x": 1}}}
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "atomiton_core.cli",
            "run",
            str(flow),
            "--executor",
            "nonsense",
            "--storage",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "unknown executor 'nonsense'" in bad.stderr


@pytest.fixture
def dashboard_port_taken() -> Iterator[None]:
    """127.0.0.1:8787, Dask's default dashboard port, held by a listening socket."""
    import errno
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 8787))
            sock.listen()
        except OSError as exc:  # someone else holds it already: just as good
            if exc.errno != errno.EADDRINUSE:
                raise
        yield


@pytest.mark.slow
def test_dask_executor_starts_while_port_8787_is_taken(dashboard_port_taken: None) -> None:
    from atomiton_core.conductor.executors import create_executor

    executor = create_executor("dask")
    try:
        assert isinstance(executor, DaskExecutor)
        assert executor.client.submit(sum, [1, 2]).result(timeout=60) == 3
    finally:
        executor.close()


class SecretParams(BaseModel):
    template: str = ""
    other: str = ""


@node("dask-test.secret", params=SecretParams, outputs={"text": str, "other": str, "pid": int})
def uses_secret(ctx: Any, params: SecretParams) -> dict[str, Any]:
    """Renders its own templates on the worker, as a node with runtime values does."""
    out = {"text": ctx.render(params.template), "pid": os.getpid()}
    if params.other:
        try:
            ctx.render(params.other)
        except Exception as exc:
            out["other"] = str(exc)
    return out


def test_a_node_on_the_cluster_gets_the_secrets_its_parameters_name(tmp_path: Any) -> None:
    """The conductor looks the named secrets up and sends their values with the node; the
    run masks them; a name the parameters do not spell out is refused on the worker with a
    clear message, and its value never leaves the conductor."""
    vault = tmp_path / "vault.json"
    vault.write_text('{"API_TOKEN": "s3cr3t-value-42", "UNNAMED": "never-sent-99"}')
    flow = loads_flow(
        """
id: secret-on-dask
name: Secret on Dask
variables: {name: {defaultValue: UNNAMED}}
nodes:
  - id: s
    type: dask-test.secret
    parameters:
      template: "Bearer {{ secrets.API_TOKEN }} / {{ secrets['API_TOKEN'] | length }}"
      other: "{{ secrets[name] }}"
"""
    )
    executor = DaskExecutor(n_workers=1, threads_per_worker=1, processes=True)
    with create_conductor(
        f"memory://dask-{uuid.uuid4().hex}",
        plugins=[Plugin()],
        autoload=False,
        record_runs=False,
        executor=executor,
        secrets=[f"file:{vault}"],
    ) as conductor:
        # the second template names its secret through a variable: not known before it runs
        result = conductor.run(flow)
    assert result.ok, result.error
    out = result.nodes["s"].outputs
    assert out is not None and out["pid"] != os.getpid()
    assert out["text"] == "Bearer *** / 15"  # the value reached the worker; the run masks it
    assert "'UNNAMED' is not available on this worker" in out["other"]
    assert "never-sent-99" not in json.dumps(wire.dump(result))
