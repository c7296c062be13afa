"""The differences between ROS 2 distributions (sgdn_ros.ros.compat), checked on the one this
environment was built for: the Fast DDS profile reaches Fast DDS (its 32 MB shared-memory
segment is mapped) under the name that distribution reads, without a deprecation warning."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from conftest import ROS_MISSING

from sgdn_ros.ros.compat import (
    FAST_DDS_2_PROFILES_VARIABLE,
    FAST_DDS_3_PROFILES_VARIABLE,
    PROFILES_VARIABLES,
    fast_dds_profiles_variable,
    rmw_fastrtps_major,
)
from sgdn_ros.ros.dds_isolation import isolate_dds, large_images_profile

pytest.importorskip("rclpy", reason=ROS_MISSING or "")

# The rmw_fastrtps each distribution ships (ROS_DISTRO is set by scripts/env.sh, as by a ROS
# installation's setup script).
RMW_FASTRTPS_MAJOR = {"jazzy": 8, "kilted": 9}
PROFILE_SEGMENT_MB = 32  # config/fastdds_local_large_images.xml: <segment_size>33554432

# A participant in a process of its own, started with the environment isolate_dds prepares;
# prints the largest Fast DDS shared-memory segment mapped into it, in MiB.
PROBE = """
import rclpy
from rclpy.context import Context
context = Context()
rclpy.init(context=context)
node = rclpy.create_node("profile_probe", context=context)
sizes = [0]
for line in open("/proc/self/maps"):
    fields = line.split()
    name = fields[5] if len(fields) > 5 else ""
    if name.startswith(("/dev/shm/fastdds_", "/dev/shm/fastrtps_")) and "_port" not in name:
        low, high = (int(address, 16) for address in fields[0].split("-"))
        sizes.append((high - low) >> 20)
print(max(sizes))
node.destroy_node()
context.shutdown()
"""


def test_the_rmw_fastrtps_found_is_the_distributions():
    distro = os.environ.get("ROS_DISTRO", "")
    if distro not in RMW_FASTRTPS_MAJOR:
        pytest.skip(f"ROS_DISTRO={distro!r} is not one this project builds (source scripts/env.sh)")
    assert rmw_fastrtps_major() == RMW_FASTRTPS_MAJOR[distro]
    expected = FAST_DDS_2_PROFILES_VARIABLE if distro == "jazzy" else FAST_DDS_3_PROFILES_VARIABLE
    assert fast_dds_profiles_variable() == expected


def test_the_profile_reaches_fast_dds_without_a_warning(tmp_path):
    if not pathlib.Path("/proc/self/maps").is_file():
        pytest.skip("no /proc/self/maps here: the mapped segments cannot be read")
    environ = {name: value for name, value in os.environ.items() if name not in PROFILES_VARIABLES}
    isolate_dds(environ)
    assert [name for name in PROFILES_VARIABLES if name in environ] == [
        fast_dds_profiles_variable()]
    probe = subprocess.run([sys.executable, "-c", PROBE], env=environ, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert int(probe.stdout.split()[-1]) >= PROFILE_SEGMENT_MB, probe.stdout + probe.stderr
    assert "deprecated" not in probe.stderr, probe.stderr


@pytest.mark.parametrize("chosen", PROFILES_VARIABLES)
def test_a_profile_the_user_chose_is_kept(chosen):
    environ = {chosen: "/somewhere/my_profile.xml"}
    isolate_dds(environ)
    assert large_images_profile() is not None
    assert {name: environ.get(name) for name in PROFILES_VARIABLES} == {
        name: ("/somewhere/my_profile.xml" if name == chosen else None)
        for name in PROFILES_VARIABLES}
