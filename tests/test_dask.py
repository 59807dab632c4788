"""Jobs' segments on a Dask cluster (DASK_SCHEDULER): a LocalCluster of separate worker processes
on 127.0.0.1, as a cluster of machines would run them."""

from __future__ import annotations

import pytest

from test_jobs import CROSSINGS, big_clip, wait_for, write_grainy_clip  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as local:
        yield local


def test_segments_run_on_the_dask_workers(cluster, big_clip, monkeypatch):
    from distributed import Client, get_task_stream

    from vimo import runners
    from vimo.analysis import analyze_clip
    from vimo.config import Options, Settings

    monkeypatch.setenv("DASK_SCHEDULER", cluster.scheduler_address)
    monkeypatch.setenv("FANOUT_THRESHOLD", "20")
    monkeypatch.setenv("SEGMENT_SECONDS", "8")
    settings = Settings.from_env()
    fractions = []
    with Client(cluster.scheduler_address, set_as_default=False) as client, get_task_stream(client) as stream:
        result = runners.analyze_job_clip(str(big_clip), Options(), settings, fractions.append)
    segments = [task for task in stream.data if task["key"].startswith("_analyze_segment")]
    # 48 s in 8 s segments, each on one of the cluster's worker processes (not this one).
    assert len(segments) == 6 == len(fractions) and fractions[-1] == 1
    assert {task["worker"] for task in segments} <= set(cluster.scheduler_info["workers"])
    single = analyze_clip(big_clip, Options(), Settings())
    assert [(e.start, e.end) for e in result.events] == [(e.start, e.end) for e in single.events]
    assert len(result.events) == len(CROSSINGS) and result.complete


def segments_done(cluster) -> int:
    """How many segments the cluster's scheduler has seen finish, from its transition log."""
    from distributed import Client

    with Client(cluster.scheduler_address, set_as_default=False) as client:
        return client.run_on_scheduler(lambda dask_scheduler: sum(
            1 for entry in dask_scheduler.transition_log
            if str(entry[0]).startswith("_analyze_segment") and entry[2] == "memory"))


def test_a_job_on_the_local_server_uses_the_cluster(cluster, big_clip, monkeypatch, tmp_path):
    import requests

    from conftest import serving, serving_files
    from vimo import gateway

    monkeypatch.setenv("DASK_SCHEDULER", cluster.scheduler_address)
    monkeypatch.setenv("FANOUT_THRESHOLD", "20")
    monkeypatch.setenv("SEGMENT_SECONDS", "8")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VIMO_ALLOW_LOOPBACK_URLS", "1")
    before = segments_done(cluster)
    with serving_files(big_clip.parent) as files, serving(gateway.Gateway(("127.0.0.1", 0), workers=1)) as api:
        answer = requests.post(f"{api}/jobs", json={"movie_url": f"{files}/{big_clip.name}"}, timeout=10)
        job = wait_for(answer.json()["url"])
    assert job["status"] == "done" and len(job["result"]["events"]) == 2, job
    assert segments_done(cluster) - before == 6  # every segment of the job ran on the cluster
