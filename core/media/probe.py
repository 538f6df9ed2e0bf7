"""Probing: what is in an uploaded file, and may we convert it? Runs ffprobe (or ffmpeg where there is
no ffprobe beside it) under the same whitelists and child limits as every ffmpeg run (ffmpeg.py).

User-facing failures are ``MediaError`` with a sentence the user can act on.
"""

import json
import math
import os
import re
import subprocess
from dataclasses import dataclass, field

from core.media.ffmpeg import (
    ALLOWED_ALIASES,
    ChildLimits,
    MediaError,
    child_environment,
    confined,
    ffmpeg_path,
    ffprobe_path,
    file_url,
    input_options,
)

PROBE_TIMEOUT = 60.0  # seconds; probing a local file takes well under a second

# ffmpeg's probe score for "only the file extension matched" (AVPROBE_SCORE_EXTENSION).
_EXTENSION_ONLY_SCORE = 50
# ffmpeg's text-art demuxers: they claim plain text (tty) and arbitrary bytes named .bin etc.
_TEXT_ART_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})

NOT_MEDIA = (
    "This file is not a video or audio file we can read; it may be damaged. Please upload a video or audio file."
)
NO_AUDIO = "This video has no audio track, so there is nothing to convert to MP3."
# Neither audio nor video (only subtitles or data): calling it a video would puzzle its owner.
NO_STREAMS = "This file has no audio track, so there is nothing to convert to MP3."
PLAYLIST_NOT_ALLOWED = (
    "Playlists and scripts that point to other files (such as .m3u8 or ffconcat) can't be converted. "
    "Please upload the video file itself."
)
EMBEDDED_PLAYLIST = (
    "This file carries an embedded playlist that points to other files, so it can't be converted. "
    "Please upload an ordinary video file."
)
TOO_SLOW_TO_READ = (
    "This file could not be read in time; it may be damaged. Re-export it, or upload the original file, and try again."
)


@dataclass(frozen=True)
class MediaInfo:
    container: str  # demuxer name as probed, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration: float | None  # seconds
    audio_codecs: list[str]
    video_codecs: list[str]  # without cover art (attached pictures)
    # Every audio stream in order (their position is ffmpeg's 0:a:N): codec, channels, sample_rate,
    # language (as tagged, or None) and default (flagged as the default track).
    audio_streams: list[dict] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # title, artist, album, date of the container, when present

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_codecs)


_PROBE_LIMITS = ChildLimits(cpu_seconds=int(PROBE_TIMEOUT), memory_bytes=1024 * 1024 * 1024)


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe a media file; raise MediaError when it is not something we can convert to MP3."""
    with open(path, "rb") as fh:  # also raises the ordinary OSError for a missing or unreadable path
        head = fh.read(64)
    if not head:
        raise MediaError("not_media", NOT_MEDIA)
    if _is_playlist_or_script(head):
        # ffmpeg would refuse these through format_whitelist too; saying so here gives the clearer sentence.
        raise MediaError("container_not_allowed", PLAYLIST_NOT_ALLOWED)

    info, unreadable_audio = _probe_with_ffprobe(path) if ffprobe_path() else _probe_with_ffmpeg(path)

    # Belt and braces: the whitelist already stopped anything else from opening.
    if not ALLOWED_ALIASES.intersection(info.container.split(",")):
        raise MediaError("container_not_allowed", _not_allowed_message(info.container))
    if "avi" in info.container.split(",") and _carries_playlist(path):
        raise MediaError("container_not_allowed", EMBEDDED_PLAYLIST)
    if not info.has_audio:
        # Noise named .flac or .aac is opened by extension and shows an "audio" stream with no sample rate.
        if unreadable_audio:
            raise MediaError("not_media", NOT_MEDIA)
        raise MediaError("no_audio", NO_AUDIO if info.video_codecs else NO_STREAMS)
    return info


def media_duration(path: str | os.PathLike) -> float | None:
    return probe(path).duration


def _is_playlist_or_script(head: bytes) -> bool:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return text.startswith((b"#EXTM3U", b"ffconcat"))


# What the nested-demuxer trick needs to find at the start of an embedded file.
_PLAYLIST_SIGNATURES = (b"#EXTM3U", b"ffconcat version")
_SCAN_BLOCK = 1 << 20


def _carries_playlist(path: str | os.PathLike) -> bool:
    """Whether a playlist or concat script is embedded anywhere in the file (read in 1 MiB blocks)."""
    overlap = max(len(signature) for signature in _PLAYLIST_SIGNATURES) - 1
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(_SCAN_BLOCK):
            window = tail + block
            if any(signature in window for signature in _PLAYLIST_SIGNATURES):
                return True
            tail = window[-overlap:]
    return False


def _run_probe(command: list[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            confined(command, _PROBE_LIMITS),
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MediaError("not_media", TOO_SLOW_TO_READ) from None


# The parsers return the MediaInfo, and whether there were audio streams too broken to count: ones
# whose sample rate ffmpeg could not tell.


def _probe_with_ffprobe(path: str | os.PathLike) -> tuple[MediaInfo, bool]:
    probe_exe = ffprobe_path()
    assert probe_exe is not None
    # fmt: off
    command = [
        probe_exe, "-v", "error", "-hide_banner", *input_options(),
        # Only what MediaInfo needs: keeps the output small whatever tags the file carries.
        "-show_entries",
        "format=format_name,duration:stream=codec_type,codec_name,sample_rate,channels"
        f":stream_disposition=attached_pic,default:stream_tags=language:format_tags={_TAG_ENTRIES}",
        "-print_format", "json",
        "-i", file_url(path),
    ]
    # fmt: on
    result = _run_probe(command)
    if result.returncode != 0:
        raise _probe_failure(path, result.stderr.decode(errors="replace"))
    try:
        data = json.loads(result.stdout.decode(errors="replace"))
        container = data["format"]["format_name"]
    except (ValueError, KeyError, TypeError):
        raise MediaError("not_media", NOT_MEDIA) from None

    audio, video, unreadable_audio, audio_streams = [], [], False, []
    for stream in data.get("streams", []):
        codec = stream.get("codec_name", "unknown")
        if stream.get("codec_type") == "audio":
            sample_rate = _number(stream.get("sample_rate"))
            if sample_rate:  # 0 or absent: unreadable
                audio.append(codec)
            else:
                unreadable_audio = True
            audio_streams.append(
                {
                    "codec": codec,
                    "channels": stream.get("channels"),
                    "sample_rate": int(sample_rate) if sample_rate else None,
                    "language": _language(stream.get("tags", {}).get("language")),
                    "default": bool(stream.get("disposition", {}).get("default")),
                }
            )
        elif stream.get("codec_type") == "video" and not stream.get("disposition", {}).get("attached_pic"):
            video.append(codec)
    tags = {key.lower(): str(value)[:200] for key, value in data["format"].get("tags", {}).items() if value}
    duration = _number(data["format"].get("duration"))
    return MediaInfo(container, duration, audio, video, audio_streams, tags), unreadable_audio


_TAG_NAMES = ("title", "artist", "album", "date")
# ffprobe matches tag names case-sensitively, and containers spell them either way (Matroska: ARTIST).
_TAG_ENTRIES = ",".join([*_TAG_NAMES, *(name.upper() for name in _TAG_NAMES)])


def _language(tag: object) -> str | None:
    text = str(tag).strip().lower() if tag else ""
    return text if text and text != "und" else None


# The human-readable dump of `ffmpeg -i`, used when there is no ffprobe (imageio-ffmpeg ships none).
_INPUT_RE = re.compile(r"^Input #0, (.+?), from '", re.MULTILINE)
_DURATION_RE = re.compile(r"^\s+Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)", re.MULTILINE)
_STREAM_RE = re.compile(r"^\s+Stream #0:\d+(\S*): (Audio|Video): ([^\s,]+)(.*)$", re.MULTILINE)
_STREAM_LANGUAGE_RE = re.compile(r"\(([a-z]{2,3})\)")
_CHANNEL_COUNTS = {"mono": 1, "stereo": 2}
_SAMPLE_RATE_VALUE_RE = re.compile(r", ([1-9]\d*) Hz\b")


def _probe_with_ffmpeg(path: str | os.PathLike) -> tuple[MediaInfo, bool]:
    # Without an output file ffmpeg prints the input's description and exits with status 1, so
    # success is "the Input #0 block is there", not the exit status.
    result = _run_probe([ffmpeg_path(), "-nostdin", "-hide_banner", *input_options(), "-i", file_url(path)])
    stderr = result.stderr.decode(errors="replace")
    input_match = _INPUT_RE.search(stderr)
    if not input_match:
        raise _probe_failure(path, stderr)

    dump = stderr[input_match.end() :]
    duration = None
    duration_match = _DURATION_RE.search(dump)
    if duration_match and duration_match.group(1) is not None:
        hours, minutes, seconds = duration_match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)

    audio, video, unreadable_audio, audio_streams = [], [], False, []
    for label, kind, codec, rest in _STREAM_RE.findall(dump):
        if kind == "Audio":
            rate_match = _SAMPLE_RATE_VALUE_RE.search(rest)
            if rate_match:
                audio.append(codec)
            else:
                unreadable_audio = True
            language = _STREAM_LANGUAGE_RE.search(label)
            layout = rest.split(",")[2].strip() if rest.count(",") >= 2 else ""
            audio_streams.append(
                {
                    "codec": codec,
                    "channels": _CHANNEL_COUNTS.get(layout),
                    "sample_rate": int(rate_match.group(1)) if rate_match else None,
                    "language": _language(language.group(1) if language else None),
                    "default": "(default)" in rest,
                }
            )
        elif "(attached pic)" not in rest:
            video.append(codec)
    return MediaInfo(input_match.group(1), duration, audio, video, audio_streams), unreadable_audio


def _number(value: object) -> float | None:
    """A finite, non-negative number from ffprobe's JSON (which writes numbers as strings), else None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


_DETECTED_RE = re.compile(r"Format (\S+) (?:probed with size=\d+ and score=|detected only with low score of )(\d+)")


def _probe_failure(path: str | os.PathLike, stderr: str) -> MediaError:
    if "not on whitelist" not in stderr:
        return MediaError("not_media", NOT_MEDIA)
    # ffmpeg recognised a format we refuse. Ask again at debug level, still with both whitelists so
    # nothing more is opened, to learn which format and how sure ffmpeg was: the error line itself
    # does not name it in every ffmpeg version.
    result = _run_probe(
        [ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "debug", *input_options(), "-i", file_url(path)]
    )
    detections = _DETECTED_RE.findall(result.stderr.decode(errors="replace"))
    if not detections:  # picked from the file name alone, e.g. an image2 "%03d" pattern
        return MediaError("container_not_allowed", _not_allowed_message(None))
    name, score = detections[-1]
    if int(score) <= _EXTENSION_ONLY_SCORE or name in _TEXT_ART_DEMUXERS:
        # A guess from the extension alone, or text / noise taken for ANSI art: not media at all.
        return MediaError("not_media", NOT_MEDIA)
    return MediaError("container_not_allowed", _not_allowed_message(name))


def _not_allowed_message(demuxer: str | None) -> str:
    if demuxer in ("hls", "concat", "dash", "webm_dash_manifest"):
        return PLAYLIST_NOT_ALLOWED
    kind = f" ({demuxer.removesuffix('_pipe')})" if demuxer else ""
    return (
        f"This kind of file{kind} can't be converted. "
        "Please upload a video or audio file such as MP4, MKV, WebM, MOV, AVI, MP3 or WAV."
    )


# --- chapters -------------------------------------------------------------------------------------------

# What one chapter looks like in ffmpeg's FFMETADATA1 text: TIMEBASE=num/den, START, END, then its tags.
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _metadata_value(raw: str) -> str:
    return _ESCAPED.sub(r"\1", raw)


def chapters(path: str | os.PathLike) -> list[dict]:
    """The chapters a media file carries, in order: [{"start": s, "end": s, "title": str | None}], [] for none.

    Read with ffmpeg's ffmetadata muxer, which needs no ffprobe (imageio-ffmpeg ships none)."""
    result = _run_probe(
        [ffmpeg_path(), "-nostdin", "-v", "error", *input_options(), "-i", file_url(path), "-f", "ffmetadata", "-"]
    )
    if result.returncode != 0:
        raise _probe_failure(path, result.stderr.decode(errors="replace"))
    found: list[dict] = []
    current: dict | None = None
    # A value may hold an escaped newline ("\" at the end of a line): join those before splitting into lines.
    text = result.stdout.decode(errors="replace").replace("\\\n", "\x00")
    for line in text.splitlines():
        if line.startswith("["):
            current = {"timebase": "1/1000", "start": None, "end": None, "title": None} if line == "[CHAPTER]" else None
            if current is not None:
                found.append(current)
            continue
        if current is None or "=" not in line or line.startswith((";", "#")):
            continue
        key, _, value = line.partition("=")
        key = key.lower()
        if key == "timebase":
            current["timebase"] = value
        elif key in ("start", "end"):
            current[key] = int(value) if value.lstrip("-").isdigit() else None
        elif key == "title":
            current["title"] = _metadata_value(value).replace("\x00", " ")[:200] or None
    return [chapter for chapter in (_chapter_seconds(raw) for raw in found) if chapter is not None]


def _chapter_seconds(raw: dict) -> dict | None:
    numerator, _, denominator = raw["timebase"].partition("/")
    try:
        unit = int(numerator) / int(denominator)
    except (ValueError, ZeroDivisionError):
        return None
    if raw["start"] is None or unit <= 0:
        return None
    start = round(max(0, raw["start"]) * unit, 3)
    end = round(raw["end"] * unit, 3) if raw["end"] is not None and raw["end"] * unit > start else None
    return {"start": start, "end": end, "title": raw["title"]}
