"""Face tracking: a video or a few portraits -> clips in sa0's contract (METHOD §5), offline.

Stages, one module each: frames (reading), detect (the LandmarkDetector protocol; MediaPipe in
its own environment, mediapipe_env / mediapipe_worker), crop (a stable square face crop and its
intrinsics), fit (FLAME + camera from landmarks), overlay (the check video), run (the whole job).
"""
