"""ffmpeg and ffprobe: probing an upload (probe.py) and running ffmpeg on it (ffmpeg.py), the only importers of subprocess."""
