"""Keep DDS traffic of demos, benchmarks and tests on this machine and to this run."""

from __future__ import annotations

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
