"""Driving an avatar live (jobs/drive.py): expression streams read (streams), a per-frame landmark fit
(fastfit), sources paced like a camera and posed (pipeline), the newest frame served to the browser
viewer over a WebSocket (live), a rendered talking head to drive with where no camera is (synthetic)."""
