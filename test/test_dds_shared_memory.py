"""Stale Fast DDS shared-memory segments are removed, live ones kept
(``sgdn_ros.ros.dds_isolation.remove_stale_shared_memory``, run after every test session)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROS_MISSING

from sgdn_ros.ros.dds_isolation import isolate_dds, remove_stale_shared_memory

SHARED_MEMORY = pathlib.Path("/dev/shm")

# Holds an exclusive flock on the lock file it is given, as a live participant does, until
# killed.
HOLDER = """
import fcntl, os, sys, time
descriptor = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""

# A participant with a publisher, in a process of its own with the tests' DDS settings.
PARTICIPANT = """
import time
import rclpy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("shared_memory_probe")
publisher = node.create_publisher(Image, "shared_memory_probe", 10)
print("up", flush=True)
time.sleep(60)
"""


def _segment(folder: pathlib.Path, name: str, size: int) -> tuple[pathlib.Path, pathlib.Path]:
    segment, lock = folder / name, folder / f"{name}_el"
    segment.write_bytes(bytes(size))
    lock.touch()
    return segment, lock


def _started(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                               text=True, env=env)
    assert process.stdout.readline().strip() in ("held", "up")
    return process


def test_only_segments_whose_lock_nobody_holds_are_removed(tmp_path):
    live, live_lock = _segment(tmp_path, "fastdds_00aa", 1000)
    dead, dead_lock = _segment(tmp_path, "fastrtps_00bb", 3000)
    port, port_lock = _segment(tmp_path, "fastdds_port7000", 500)
    unrelated = tmp_path / "other_el"
    unrelated.touch()
    holder = _started(HOLDER, str(live_lock))
    try:
        assert remove_stale_shared_memory(tmp_path) == 3500
        assert live.exists() and live_lock.exists()
        assert not any(path.exists() for path in (dead, dead_lock, port, port_lock))
        assert unrelated.exists()
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_shared_memory(tmp_path) == 1000
    assert not live.exists() and not live_lock.exists()


@pytest.mark.ros
def test_a_live_participant_keeps_its_segments_and_a_killed_one_loses_them():
    pytest.importorskip("rclpy", reason=ROS_MISSING or "")
    if not SHARED_MEMORY.is_dir():
        pytest.skip(f"{SHARED_MEMORY} does not exist here: Fast DDS has no shared memory")
    environment = dict(os.environ)
    isolate_dds(environment)
    before = set(SHARED_MEMORY.iterdir())
    participant = _started(PARTICIPANT, env=environment)
    try:
        time.sleep(1.0)  # the transport maps its segments while the participant starts
        created = set(SHARED_MEMORY.iterdir()) - before
        segments = {path for path in created if path.name.startswith(("fastdds_", "fastrtps_"))
                    and not path.name.endswith("_el") and "_port" not in path.name}
        assert segments, f"no participant segment appeared in {SHARED_MEMORY}: {created}"
        remove_stale_shared_memory()
        assert all(path.exists() for path in segments)
        sizes = sum(path.stat().st_size for path in segments)
    finally:
        participant.send_signal(signal.SIGKILL)
        participant.wait()
    assert remove_stale_shared_memory() >= sizes
    assert not any(path.exists() for path in segments)
