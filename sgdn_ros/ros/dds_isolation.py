"""Keep DDS traffic of demos, benchmarks and tests on this machine and to this run."""

from __future__ import annotations

import fcntl
import os
import pathlib
import random
from collections.abc import MutableMapping

from sgdn_ros.ros.compat import PROFILES_VARIABLES, fast_dds_profiles_variable

LARGE_IMAGES_PROFILE = "fastdds_local_large_images.xml"

# Domain ids 1..101 map to UDP ports that Fast DDS can use on Linux without clashing with the
# ephemeral port range; 0 is left to whatever else runs on the machine.
_FIRST_DOMAIN, _LAST_DOMAIN = 1, 101


def large_images_profile() -> pathlib.Path | None:
    """The installed Fast DDS profile that carries whole camera frames between processes."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = pathlib.Path(get_package_share_directory("sgdn_ros")) / "config"
    except (ImportError, LookupError, OSError):  # no ROS, not installed, no AMENT_PREFIX_PATH
        return None
    return path / LARGE_IMAGES_PROFILE if (path / LARGE_IMAGES_PROFILE).is_file() else None


def isolate_dds(environ: MutableMapping[str, str] = os.environ) -> int:
    """Discovery on loopback only, a domain of this run's own unless one is already set, and
    (unless a profile is already chosen) the Fast DDS profile for large frames, under the
    variable name this distribution's Fast DDS reads.

    Must run before rclpy.init() (and is inherited by child processes). Returns the domain id.
    """
    environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    environ.setdefault("ROS_DOMAIN_ID", str(random.randint(_FIRST_DOMAIN, _LAST_DOMAIN)))
    profile = large_images_profile()
    if profile is not None and not any(name in environ for name in PROFILES_VARIABLES):
        environ[fast_dds_profiles_variable()] = str(profile)
    return int(environ["ROS_DOMAIN_ID"])


def remove_stale_shared_memory(folder: str | os.PathLike[str] = "/dev/shm") -> int:
    """Delete the Fast DDS shared-memory segments no process holds any more; returns the bytes
    freed.

    Each participant's segment (`fastdds_<id>` from Fast DDS 3, `fastrtps_<id>` from Fast DDS 2;
    35 MB with the large-frames profile) comes with a lock file (`<segment>_el`) its process
    holds while it lives. Segments of ended processes stay behind: a full test run left about
    1 GB, growing run after run (2.9 GB after a few). A lock file nobody holds means a dead
    owner, as Fast DDS's own `shm clean` decides.
    """
    freed = 0
    for lock_path in [path for prefix in ("fastdds_", "fastrtps_")
                      for path in pathlib.Path(folder).glob(f"{prefix}*_el")]:
        segment = lock_path.with_name(lock_path.name[:-len("_el")])
        try:
            descriptor = os.open(lock_path, os.O_RDWR)
        except OSError:  # removed meanwhile, or not ours to touch
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its participant is alive
            os.close(descriptor)
            continue
        try:
            if segment.exists():
                freed += segment.stat().st_size
                segment.unlink()
            lock_path.unlink()
        except OSError:
            pass
        finally:
            os.close(descriptor)
    return freed
