"""Plumbing that no app owns: the broker, workers, storage, media (ffmpeg), API errors and small helpers.

Nothing here imports an app (accounts, uploads, conversion, notifications) or the wiring (videomp3)."""
