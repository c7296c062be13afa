"""What differs between the ROS 2 distributions this package runs on, in one place.

Executed here: Jazzy (rclpy 7, rmw_fastrtps 8 on Fast DDS 2.14) and Kilted (rclpy 9,
rmw_fastrtps 9 on Fast DDS 3.2); Humble (rclpy 3, Fast DDS 2.6) is targeted, not executed.

The one difference met: the environment variable that names Fast DDS's XML profiles file.
Fast DDS 3 reads FASTDDS_DEFAULT_PROFILES_FILE and warns about the old name at every start;
Fast DDS 2 reads only FASTRTPS_DEFAULT_PROFILES_FILE and silently ignores the new one, which
on Jazzy left camera frames between processes on the default 512 KB shared-memory segment
(measured on the loaded 2-core project machine: about a third of 640x480 frames lost at 10 Hz,
the detector's first answer up to 30 s late; with the profile: none lost).

The rclpy calls this package makes behave alike on rclpy 7 and 9. Added in rclpy 9 and absent
from Jazzy, so not to be used here: ``with rclpy.init()``, ``try_shutdown(uninstall_handlers=)``,
``Executor.create_future``, ``TimerCancelledError``, timer callbacks taking a ``TimerInfo``.
"""

from __future__ import annotations

import pathlib
import xml.etree.ElementTree as ElementTree

FAST_DDS_3_PROFILES_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
FAST_DDS_2_PROFILES_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
PROFILES_VARIABLES = (FAST_DDS_3_PROFILES_VARIABLE, FAST_DDS_2_PROFILES_VARIABLE)

# rmw_fastrtps moved to Fast DDS 3 with its release 9 (Kilted).
_FIRST_RMW_FASTRTPS_ON_FAST_DDS_3 = 9


def rmw_fastrtps_major() -> int | None:
    """The major version of the installed rmw_fastrtps_cpp; None without it."""
    try:
        from ament_index_python.packages import get_package_share_directory

        manifest = pathlib.Path(get_package_share_directory("rmw_fastrtps_cpp")) / "package.xml"
        version = ElementTree.parse(manifest).findtext("version") or ""
        return int(version.split(".")[0])
    except (ImportError, LookupError, OSError, ElementTree.ParseError, ValueError):
        return None


def fast_dds_profiles_variable() -> str:
    """The variable the installed Fast DDS reads its XML profiles file from (the current name
    where no rmw_fastrtps is found: then no Fast DDS reads either)."""
    major = rmw_fastrtps_major()
    if major is not None and major < _FIRST_RMW_FASTRTPS_ON_FAST_DDS_3:
        return FAST_DDS_2_PROFILES_VARIABLE
    return FAST_DDS_3_PROFILES_VARIABLE
