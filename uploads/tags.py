"""The ID3 tags a job's MP3 is written with. Pure Python: conversion/encoding.py writes them, and
dedup (uploads.services.intake.dedup_key) compares them, so an MP3 is only shared by jobs whose tags
would be the same."""

from uploads.options import TAG_FIELDS, JobOptions


def id3_tags(options: JobOptions, *, source_tags: dict | None, filename_title: str) -> dict[str, str]:
    """The source's own tags (as probed), then the job's overrides; the file name when there is no title."""
    tags = {tag: (source_tags or {}).get(tag) for tag in TAG_FIELDS}
    tags.update({tag: getattr(options, tag) for tag in TAG_FIELDS if getattr(options, tag)})
    tags["title"] = tags["title"] or filename_title
    return {tag: value for tag, value in tags.items() if value}
