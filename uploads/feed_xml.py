"""A user's private podcast feed as RSS 2.0 with the iTunes namespace, and Podcasting 2.0 JSON chapters.

Built with ElementTree, so every file name and tag is escaped as XML needs. URLs come from the caller
(absolute, each carrying its own token)."""

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
# The Podcasting 2.0 namespace by its original URI, which the spec keeps valid and every reader knows
# (AntennaPod takes both spellings; gPodder's podcastparser only this one, not https://podcastindex.org/namespace/1.0).
PODCAST = "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md"
ATOM = "http://www.w3.org/2005/Atom"
for _prefix, _uri in (("itunes", ITUNES), ("podcast", PODCAST), ("atom", ATOM)):
    ET.register_namespace(_prefix, _uri)

CHAPTERS_TYPE = "application/json+chapters"
CHAPTERS_VERSION = "1.2.0"


@dataclass(frozen=True)
class FeedItem:
    guid: str
    title: str
    description: str
    published: datetime
    mp3_url: str
    mp3_size: int
    duration: float | None
    image_url: str | None
    chapters_url: str | None


def itunes_duration(seconds: float | None) -> str:
    whole = max(0, round(seconds or 0))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def feed_document(
    *, title: str, description: str, site_url: str, self_url: str, built: datetime, items: list[FeedItem]
) -> bytes:
    rss = ET.Element("rss", {"version": "2.0"})
    channel = _add(rss, "channel")
    _add(channel, "title", title)
    _add(channel, "link", site_url)
    _add(channel, "description", description)
    _add(channel, "language", "en")
    _add(channel, "lastBuildDate", format_datetime(built, usegmt=True))
    _add(channel, "generator", "videomp3")
    _add(channel, f"{{{ATOM}}}link", href=self_url, rel="self", type="application/rss+xml")
    _add(channel, f"{{{ITUNES}}}author", "videomp3")
    _add(channel, f"{{{ITUNES}}}summary", description)
    _add(channel, f"{{{ITUNES}}}explicit", "false")
    _add(channel, f"{{{ITUNES}}}type", "episodic")
    # A private feed: directories that honour these must not list it.
    _add(channel, f"{{{ITUNES}}}block", "Yes")
    _add(channel, f"{{{PODCAST}}}locked", "yes")
    for item in items:
        entry = _add(channel, "item")
        _add(entry, "title", item.title)
        _add(entry, f"{{{ITUNES}}}title", item.title)
        _add(entry, "description", item.description)
        _add(entry, "guid", item.guid, isPermaLink="false")
        _add(entry, "pubDate", format_datetime(item.published, usegmt=True))
        _add(entry, "enclosure", url=item.mp3_url, length=str(item.mp3_size), type="audio/mpeg")
        _add(entry, f"{{{ITUNES}}}duration", itunes_duration(item.duration))
        _add(entry, f"{{{ITUNES}}}episodeType", "full")
        if item.image_url:
            _add(entry, f"{{{ITUNES}}}image", href=item.image_url)
        if item.chapters_url:
            _add(entry, f"{{{PODCAST}}}chapters", url=item.chapters_url, type=CHAPTERS_TYPE)
    ET.indent(rss)
    return ET.tostring(rss, encoding="utf-8", xml_declaration=True) + b"\n"


def chapters_document(chapters: list[dict]) -> bytes:
    """Podcasting 2.0 JSON chapters (podcastindex.org, version 1.2.0) from a job's recorded chapters."""
    listed = []
    for number, chapter in enumerate(chapters, start=1):
        entry = {"startTime": chapter["start"], "title": chapter.get("title") or f"Chapter {number}"}
        if chapter.get("end") is not None:
            entry["endTime"] = chapter["end"]
        listed.append(entry)
    return json.dumps({"version": CHAPTERS_VERSION, "chapters": listed}, ensure_ascii=False).encode()
