"""A physics bin-picking bench: pybullet clutter in a tray, an RGB-D camera, a parallel-jaw
gripper executing grasps, and the clearance protocol that scores them."""
