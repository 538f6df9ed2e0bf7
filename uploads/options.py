"""Per-job output options: parsing, validation and presets. The ffmpeg arguments they mean are built by
conversion/encoding.py.

Pure Python: nothing here runs ffmpeg or touches the database.

Options arrive as strings (multipart form fields) or JSON values (the `options` field); `parse_options`
turns either into a `JobOptions` or a dict of field errors, each a sentence. What can only be checked
against the probed file (trim times within the duration, the chosen audio track) is checked by
`check_against_media` once the upload is probed. `JobOptions.canonical()` is what the Job stores: every
field present, defaults filled in, fields that do not apply nulled, so equal requests store equal JSON
(the future dedup key is owner + content_sha256 + this JSON).
"""

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields, replace

# MPEG-1 Layer III bitrates from 32 kb/s up: the constant bitrates LAME accepts at 32/44.1/48 kHz.
CBR_BITRATES: tuple[int, ...] = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
# At 22.05 kHz MP3 is MPEG-2 Layer III, whose frames top out at 160 kb/s.
MPEG2_MAX_BITRATE = 160
SAMPLE_RATES: tuple[int, ...] = (22050, 32000, 44100, 48000)
# Every rate LAME encodes (MPEG-1, 2 and 2.5 Layer III): a 96 kHz source must be brought down to one.
LAME_SAMPLE_RATES: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
CHANNELS = {"mono": 1, "stereo": 2}
LOUDNESS_TARGET_RANGE = (-70.0, -5.0)  # what ffmpeg's loudnorm accepts for I
TRUE_PEAK_RANGE = (-9.0, 0.0)  # and for TP
LOUDNESS_RANGE_TARGET = 11.0  # loudnorm's LRA default, fixed here
DEFAULT_LOUDNESS_TARGET = -16.0
DEFAULT_TRUE_PEAK = -1.5
TAG_FIELDS = ("title", "artist", "album", "date")
TAG_MAX_LENGTH = 200
COVER_AT_FRACTION = 0.10  # the cover frame is taken at 10 % of the duration unless a time is chosen

PRESETS: dict[str, dict] = {
    "podcast": {
        "description": "Speech for podcasts: mono, 64 kb/s, loudness normalized to -16 LUFS.",
        "options": {"bitrate": 64, "channels": "mono", "normalize": True},
    },
    "music": {
        "description": "Music: best VBR quality (V0), stereo.",
        "options": {"vbr_quality": 0, "channels": "stereo"},
    },
    "voice-small": {
        "description": "Smallest files for speech: mono, 32 kb/s, 22.05 kHz, normalized.",
        "options": {"bitrate": 32, "sample_rate": 22050, "channels": "mono", "normalize": True},
    },
    "audiobook": {
        "description": "Long spoken recordings: mono, 48 kb/s, normalized to -18 LUFS, chapters kept, no cover.",
        "options": {"bitrate": 48, "channels": "mono", "normalize": True, "loudness_target": -18, "cover": False},
    },
}


@dataclass(frozen=True)
class JobOptions:
    bitrate: int | None = None  # CBR kb/s; None with vbr_quality None means the server default (MP3_BITRATE_KBPS)
    vbr_quality: int | None = None  # LAME -V 0 (best) .. 9
    sample_rate: int | None = None  # None: the source's
    channels: str = "source"  # "source", "mono", "stereo"
    start: float | None = None  # trim, seconds from the start of the source
    end: float | None = None
    audio_track: int | None = None  # 0-based among the source's audio streams
    audio_language: str | None = None  # ISO 639 code as tagged in the source, e.g. "eng"
    normalize: bool = False
    loudness_target: float | None = None  # LUFS, filled in when normalize
    true_peak: float | None = None  # dBTP, filled in when normalize
    title: str | None = None  # tag overrides; None: from the source (title: else the file name)
    artist: str | None = None
    album: str | None = None
    date: str | None = None
    cover: bool = True
    cover_time: float | None = None  # seconds; None: 10 % of the duration
    chapters: bool = True
    # Copy MP3 audio as is when nothing asks to change it; an explicit bitrate or VBR quality turns it off.
    stream_copy: bool = True

    def canonical(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """A digest of the canonical options: equal options, equal key (the dedup key's options part)."""
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_stored(cls, stored: dict | None) -> "JobOptions":
        """The options a Job stored ({} for jobs from before options, and for POST /upload)."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in (stored or {}).items() if key in known})

    @property
    def trimmed(self) -> bool:
        return self.start is not None or self.end is not None


OPTION_NAMES: tuple[str, ...] = tuple(field.name for field in fields(JobOptions))
FORM_FIELDS: tuple[str, ...] = ("preset", "options", *OPTION_NAMES)


# The upload form's labels (uploads/templates/uploads/jobs.html): sentences name fields as the page does;
# API clients get the field names as the keys of `errors`.
FIELD_LABELS = {
    "preset": "Preset",
    "options": "Options",
    "bitrate": "Constant bitrate",
    "vbr_quality": "VBR quality",
    "sample_rate": "Sample rate",
    "channels": "Channels",
    "start": "Start at",
    "end": "End at",
    "audio_track": "Audio track number",
    "audio_language": "Track language",
    "normalize": "Loudness",
    "loudness_target": "Target loudness (LUFS)",
    "true_peak": "True peak limit (dBTP)",
    "title": "Title",
    "artist": "Artist",
    "album": "Album",
    "date": "Date",
    "cover": "No cover picture",
    "cover_time": "Cover frame at (s)",
    "chapters": "No chapters",
    "stream_copy": "Always re-encode",
}


def field_label(field: str) -> str:
    return FIELD_LABELS.get(field, field)


class OptionsInvalid(Exception):
    """errors: {field: [sentence, ...]}; str() is every sentence, each after its field's form label."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(
            " ".join(f"{field_label(field)}: {message}" for field, messages in errors.items() for message in messages)
        )


# ---------------------------------------------------------------------------
# Parsing


_TIME_RE = re.compile(r"^(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:\.\d+)?)$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_time(value) -> float:
    """Seconds (12.5) or [HH:]MM:SS[.mmm] ("00:01:02.500") -> seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _TIME_RE.match(str(value).strip())
        if not match:
            raise ValueError
        hours, minutes, rest = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(rest)
        if (minutes is not None and float(rest) >= 60) or (hours is not None and int(minutes) >= 60):
            raise ValueError
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError
    return round(seconds, 3)


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError


def _integer(value) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip().lower().removesuffix("k")
    return int(text)


def _number(value) -> float:
    if isinstance(value, bool):
        raise ValueError
    number = float(str(value).strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def merge_sources(*, form: dict[str, str], json_text: str | None) -> tuple[dict, dict[str, list[str]]]:
    """Raw option values from the `options` JSON field overlaid by the individual form fields."""
    raw: dict = {}
    errors: dict[str, list[str]] = {}
    if json_text is not None and json_text.strip():
        try:
            decoded = json.loads(json_text)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            errors["options"] = ['Send options as a JSON object, e.g. {"bitrate": 128, "channels": "mono"}.']
        else:
            raw.update(decoded)
    raw.update(form)
    return raw, errors


def parse_options(raw: dict, *, default_bitrate: int) -> JobOptions:
    """Validate raw values (preset applied first, the other fields override it); raise OptionsInvalid."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, sentence: str) -> None:
        errors.setdefault(field, []).append(sentence)

    values = dict(raw)
    unknown = sorted(set(values) - set(FORM_FIELDS) - {"file"})
    for name in unknown:
        fail(name[:40], f"Unknown option; use one of: {', '.join(FORM_FIELDS)}.")

    preset_name = values.pop("preset", None)
    values.pop("options", None)
    values.pop("file", None)
    merged: dict = {}
    if not _is_blank(preset_name):
        preset = PRESETS.get(str(preset_name).strip())
        if preset is None:
            fail("preset", f"Unknown preset; use one of: {', '.join(PRESETS)} (GET /api/presets/ lists them).")
        else:
            merged.update(preset["options"])
    # A preset's bitrate or VBR quality gives way to the other one chosen explicitly.
    if not _is_blank(values.get("vbr_quality")) and _is_blank(values.get("bitrate")):
        merged.pop("bitrate", None)
    if not _is_blank(values.get("bitrate")) and _is_blank(values.get("vbr_quality")):
        merged.pop("vbr_quality", None)
    merged.update({key: value for key, value in values.items() if key in OPTION_NAMES and not _is_blank(value)})

    parsed: dict = {}

    def take(field: str, convert, sentence: str):
        if field not in merged:
            return None
        try:
            parsed[field] = convert(merged[field])
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer no float can hold
            fail(field, sentence)
        return parsed.get(field)

    bitrate = take("bitrate", _integer, "Give the bitrate in kb/s as a whole number, e.g. 128.")
    if bitrate is not None and bitrate not in CBR_BITRATES:
        shown = f"{bitrate} kb/s" if abs(bitrate) < 10**6 else "That"
        fail("bitrate", f"{shown} is not an MP3 bitrate; use one of {', '.join(map(str, CBR_BITRATES))}.")
    vbr = take("vbr_quality", _integer, "Give the VBR quality as a whole number from 0 (best) to 9 (smallest).")
    if vbr is not None and not 0 <= vbr <= 9:
        fail("vbr_quality", "VBR quality goes from 0 (best) to 9 (smallest); choose one of those.")
    if bitrate is not None and vbr is not None:
        fail("vbr_quality", "Choose either a constant bitrate or a VBR quality, not both.")

    if "sample_rate" in merged and str(merged["sample_rate"]).strip().lower() == "source":
        merged.pop("sample_rate")
    rates = ", ".join(map(str, SAMPLE_RATES))
    rate = take("sample_rate", _integer, f"Give the sample rate in Hz: source, {rates}.")
    if rate is not None and rate not in SAMPLE_RATES:
        fail("sample_rate", f"{rate if abs(rate) < 10**6 else 'That'} Hz is not offered; use source, {rates}.")
    if rate is not None and rate < 32000 and bitrate is not None and bitrate > MPEG2_MAX_BITRATE:
        fail("bitrate", f"At {rate} Hz MP3 goes up to {MPEG2_MAX_BITRATE} kb/s; choose a lower bitrate.")

    channels = take("channels", lambda v: str(v).strip().lower(), "")
    if channels is not None and channels not in ("source", *CHANNELS):
        fail("channels", "Channels must be source, mono or stereo.")

    time_sentence = "Give a time as seconds (e.g. 12.5) or HH:MM:SS.mmm (e.g. 00:01:02.500)."
    start = take("start", parse_time, time_sentence)
    end = take("end", parse_time, time_sentence)
    if start is not None and end is not None and end <= start:
        fail("end", "The end must come after the start.")
    take("cover_time", parse_time, time_sentence)

    track = take("audio_track", _integer, "Give the audio track as a number: 0 is the first audio track.")
    if track is not None and track < 0:
        fail("audio_track", "Audio tracks are numbered from 0; choose 0 or more.")
    language = take("audio_language", lambda v: str(v).strip().lower(), "")
    if language is not None and not _LANGUAGE_RE.match(language):
        fail("audio_language", "Give the track's language as an ISO 639 code as the file tags it, e.g. eng or de.")
    if track is not None and language is not None:
        fail("audio_language", "Choose the audio track either by number or by language, not both.")

    for flag in ("normalize", "cover", "chapters", "stream_copy"):
        take(flag, _boolean, "Use true or false.")
    target = take("loudness_target", _number, "Give the target loudness in LUFS, e.g. -16.")
    low, high = LOUDNESS_TARGET_RANGE
    if target is not None and not low <= target <= high:
        fail("loudness_target", f"The target loudness must be between {low:g} and {high:g} LUFS.")
    peak = take("true_peak", _number, "Give the true peak limit in dBTP, e.g. -1.5.")
    low, high = TRUE_PEAK_RANGE
    if peak is not None and not low <= peak <= high:
        fail("true_peak", f"The true peak limit must be between {low:g} and {high:g} dBTP.")

    for tag in TAG_FIELDS:
        text = take(tag, lambda v: str(v).strip(), "")
        if text is not None and (len(text) > TAG_MAX_LENGTH or any(ord(c) < 32 for c in text)):
            fail(tag, f"Tags are one line of at most {TAG_MAX_LENGTH} characters.")

    if errors:
        raise OptionsInvalid(errors)

    options = JobOptions(**parsed)
    if options.vbr_quality is not None or options.bitrate is not None:
        # Asking for a quality asks for an encode: an MP3 source is re-encoded to it, not copied.
        options = replace(options, stream_copy=False)
    if options.vbr_quality is None and options.bitrate is None:
        options = replace(options, bitrate=default_bitrate)
    if options.normalize:
        options = replace(
            options,
            loudness_target=options.loudness_target if options.loudness_target is not None else DEFAULT_LOUDNESS_TARGET,
            true_peak=options.true_peak if options.true_peak is not None else DEFAULT_TRUE_PEAK,
        )
    else:  # targets without normalizing change nothing; keep them out of the stored options
        options = replace(options, loudness_target=None, true_peak=None)
    if not options.cover:
        options = replace(options, cover_time=None)
    return options


def parse_what_is_valid(raw: dict, *, default_bitrate: int) -> tuple[JobOptions, dict[str, list[str]]]:
    """The options parsed without the fields that have errors, and those errors: so what can be checked
    against a file is checked even while other fields are wrong, and every error is said at once."""
    errors: dict[str, list[str]] = {}
    values = dict(raw)
    for _ in range(len(values) + 1):  # each round drops at least one field, until none is wrong
        try:
            return parse_options(values, default_bitrate=default_bitrate), errors
        except OptionsInvalid as exc:
            for field, messages in exc.errors.items():
                errors.setdefault(field, messages)
            # An unknown field's error is keyed by its name cut to 40 characters.
            values = {
                name: value for name, value in values.items() if name not in exc.errors and name[:40] not in exc.errors
            }
    return default_options(default_bitrate=default_bitrate), errors


def default_options(*, default_bitrate: int) -> JobOptions:
    return parse_options({}, default_bitrate=default_bitrate)


# ---------------------------------------------------------------------------
# Checks against the probed file


def check_against_media(options: JobOptions, *, duration: float | None, audio_streams: list[dict]) -> None:
    """Raise OptionsInvalid when the options do not fit this file (trim past its end, a missing track)."""
    errors: dict[str, list[str]] = {}
    if duration is not None:
        length = f"{duration:.3f}".rstrip("0").rstrip(".")
        for field in ("start", "end", "cover_time"):
            value = getattr(options, field)
            if value is not None and value > duration + 0.001:
                errors[field] = [f"This file lasts {length} seconds; choose a time within it."]
        if options.start is not None and "start" not in errors and options.start >= duration:
            errors["start"] = [f"This file lasts {length} seconds; the start must be before its end."]
    if audio_streams:
        if options.audio_track is not None and options.audio_track >= len(audio_streams):
            count = len(audio_streams)
            choose = "choose 0 or leave it empty" if count == 1 else f"choose 0 to {count - 1}"
            errors["audio_track"] = [
                f"This file has {'one audio track, number 0' if count == 1 else f'{count} audio tracks'}; {choose}."
            ]
        if options.audio_language is not None and audio_stream_position(options, audio_streams) is None:
            tagged = sorted({s["language"] for s in audio_streams if s.get("language")})
            have = f"its tracks are tagged {', '.join(tagged)}" if tagged else "its tracks carry no language tags"
            errors["audio_language"] = [f"No audio track in this file is tagged '{options.audio_language}'; {have}."]
    if errors:
        raise OptionsInvalid(errors)


def audio_stream_position(options: JobOptions, audio_streams: list[dict]) -> int | None:
    """Which audio stream (0-based among audio streams) to convert; None: let ffmpeg choose."""
    if options.audio_track is not None:
        return options.audio_track
    if options.audio_language is not None:
        for position, stream in enumerate(audio_streams):
            if _language_matches(stream.get("language"), options.audio_language):
                return position
        return None
    if not audio_streams:
        return None
    # The container's default track, as ffmpeg picks it: flagged default first, then most channels.
    ranked = sorted(
        range(len(audio_streams)),
        key=lambda i: (not audio_streams[i].get("default"), -(audio_streams[i].get("channels") or 0), i),
    )
    return ranked[0]


def _language_matches(tagged: str | None, wanted: str) -> bool:
    return bool(tagged) and tagged.strip().lower() == wanted


def cover_time(options: JobOptions, *, duration: float | None) -> float | None:
    """When the MP3's cover frame is from; None: no cover."""
    if not options.cover:
        return None
    return cover_grab_time(options, duration=duration)


def cover_grab_time(options: JobOptions, *, duration: float | None) -> float:
    """When the upload's cover frame is taken: the chosen time, else 10 % in. It is taken with the cover
    off too, so that converting the job again can turn the cover on without the video."""
    if options.cover_time is not None:
        return options.cover_time
    return round((duration or 0.0) * COVER_AT_FRACTION, 3)


def presets_listing() -> list[dict]:
    return [{"name": name, **preset} for name, preset in PRESETS.items()]
