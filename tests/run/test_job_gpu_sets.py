"""One training per GPU set: a running job holds only the GPUs it was started on (`gpu_ids`; empty = every GPU),
so the "still running" refusal and the queue's wait apply to jobs whose GPU sets overlap. Real fake-trainer jobs."""
from __future__ import annotations

from lora_tui.run.launching import launch_gpus
from lora_tui.run.jobs import gpus_overlap, job_gpus, running_jobs, start_job
from run_helpers import fake


def test_launch_gpus_reads_the_accelerate_option():
    argv = ["accelerate", "launch", "--num_processes", "1", "--gpu_ids", "0,2", "/sd/train_network.py",
            "--gpu_ids", "9"]
    assert launch_gpus(argv) == ["0", "2"]  # the script's own arguments are not accelerate's
    assert launch_gpus(["accelerate", "launch", "--gpu_ids=1", "x.py"]) == ["1"]
    assert launch_gpus(["accelerate", "launch", "--gpu_ids", "all", "x.py"]) is None
    assert launch_gpus(["accelerate", "launch", "x.py"]) is None  # every GPU


def test_overlap_rules():
    assert gpus_overlap({"0"}, {"0", "1"}) and not gpus_overlap({"0"}, {"1"})
    assert gpus_overlap(None, {"1"}) and gpus_overlap({"1"}, None) and gpus_overlap(None, None)


def test_running_jobs_counts_only_the_jobs_on_an_overlapping_gpu_set(tmp_path):
    state = tmp_path / "state"
    on0 = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.05), meta={"gpu_ids": ["0"]}, state_dir=state)
    anywhere = None
    try:
        assert job_gpus(on0) == frozenset({"0"})
        assert [j.id for j in running_jobs(state_dir=state, gpus=["0", "1"])] == [on0.id]
        assert running_jobs(state_dir=state, gpus=["1"]) == []  # GPU 1 is free: a run there goes side by side
        assert [j.id for j in running_jobs(state_dir=state)] == [on0.id]  # every GPU: overlaps
        anywhere = start_job(fake("saving_trainer.py", tmp_path, 100000, 0.05), state_dir=state)  # no gpu_ids
        assert job_gpus(anywhere) is None
        assert [j.id for j in running_jobs(state_dir=state, gpus=["1"])] == [anywhere.id]
    finally:
        for job in (on0, anywhere):
            if job is not None:
                job.stop(grace_s=5, escalate=True)
