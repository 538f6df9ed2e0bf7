"""Running ffmpeg, with probe.py the only place in the project that runs ffmpeg or ffprobe.

Three jobs here: ``extract_audio`` and ``grab_frame`` at upload (what a conversion needs, taken out of
the video once), and ``convert_to_mp3`` (with ``measure_loudness`` for two-pass normalization). Every run reads a local file. Uploaded files are untrusted, so every
ffmpeg/ffprobe run here opens the input as ``file:<absolute path>`` with two whitelists:

* ``-protocol_whitelist file``: the input may only be read through the file protocol,
  never http, tcp, concat, subfile, pipe, ...
* ``-format_whitelist <ALLOWED_DEMUXERS>``: only ordinary single-file containers.
  Playlist-like demuxers (hls, concat, dash, image2 sequences, ...) would open *other*
  local files through the file protocol; the whitelist makes ffmpeg refuse them right
  after detecting the format and before the demuxer reads anything else.

An AVI can also carry a whole file inside a subtitle packet (GAB2), which ffmpeg opens with a
nested demuxer; that is how playlists were smuggled into AVIs to read local files. Current
ffmpeg only accepts subtitle formats there, and the whitelists apply to the nested demuxer too,
but an AVI carrying a playlist is refused outright so no ffmpeg version ever gets the chance.

User-facing failures are ``MediaError`` with a sentence the user can act on, in their words: what
ffmpeg printed goes with it (``ffmpeg_lines``) for the logs, never into the sentence. An operational
failure (ffmpeg missing, unreadable path) is left as the ordinary OSError.
"""

import functools
import json
import logging
import math
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

logger = logging.getLogger(__name__)

# Demuxer names as ffmpeg registers them (`ffmpeg -demuxers`). ffmpeg compares its
# format_whitelist alias by alias, so "mov,mp4,m4a,3gp,3g2,mj2" may be listed whole.
# m4a/3gp come through mov, webm through matroska, standalone opus through ogg.
ALLOWED_DEMUXERS: tuple[str, ...] = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",  # MPEG program stream (.mpg, .vob)
    "asf",  # wmv / wma
    "ogg",
    "wav",
    "w64",
    "mp3",
    "flac",
    "aac",
    "aiff",
    "caf",
    "amr",
    "wv",
)
_FORMAT_WHITELIST = ",".join(ALLOWED_DEMUXERS)
ALLOWED_ALIASES = frozenset(_FORMAT_WHITELIST.split(","))

CANCEL_CHECK_INTERVAL = 0.5  # seconds between should_cancel() calls
TERMINATE_GRACE = 5.0  # seconds ffmpeg gets to exit after SIGTERM before SIGKILL
_STDERR_TAIL = 20  # stderr lines kept for the logs and for telling one failure from another
_LINE_LIMIT = 4096  # pipes are read in pieces of at most this many bytes, so the kept stderr tail stays small


class MediaError(Exception):
    """The input cannot be converted; str(exc) is a sentence a user can act on, never a traceback."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "not_media", "no_audio", "container_not_allowed", "decode_failed", "extract_failed", ...
        self.ffmpeg_lines: list[str] = []  # ffmpeg's last stderr lines: for operators' logs, never shown to users

    @property
    def ffmpeg_said(self) -> str:
        """ffmpeg's last lines on one line, for a log entry."""
        return " | ".join(line.strip() for line in self.ffmpeg_lines if line.strip()) or "nothing"

    def __reduce__(self):  # keep code and message when pickled (e.g. across processes)
        return (type(self), (self.code, str(self)))


@dataclass(frozen=True)
class Encoding:
    """What one conversion asks of ffmpeg, beyond the file names: built by conversion/encoding.py, run here."""

    input_args: tuple[str, ...]  # before `-i source` (seeking)
    output_args: tuple[str, ...]  # maps, filters, codec, tags
    output_duration: float | None  # for progress
    stream_copy: bool
    audio_map: str | None  # e.g. "0:a:1"; None: ffmpeg's own choice (no cover can be added then)


class FfmpegCancelled(Exception):
    """convert_to_mp3 stopped because should_cancel() returned True."""


# ---------------------------------------------------------------------------
# Child process limits


@dataclass(frozen=True)
class ChildLimits:
    """What one ffmpeg run may use: wall-clock and CPU seconds, and address space."""

    wall_seconds: float | None = None
    cpu_seconds: int | None = None
    memory_bytes: int | None = None

    @classmethod
    def for_duration(
        cls, duration: float | None, *, base_seconds: int, seconds_per_second: float, memory_mb: int
    ) -> "ChildLimits":
        """Time limits scaled to the input's duration, so a long film is not cut off and a hostile file cannot spin."""
        wall = base_seconds + seconds_per_second * (duration or 0)
        return cls(wall_seconds=wall, cpu_seconds=int(wall * 2) + 10, memory_bytes=memory_mb * 1024 * 1024)


@functools.cache
def _confinement_tools() -> tuple[str, str] | None:
    setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
    if setpriv and prlimit:
        return setpriv, prlimit
    logger.warning("setpriv/prlimit (util-linux) not found: ffmpeg runs without its death signal and limits")
    return None


def confined(command: list[str], limits: ChildLimits | None) -> list[str]:
    """The command, run so that ffmpeg dies with its worker (even one killed with SIGKILL) and stays
    inside its limits.

    util-linux's setpriv sets the parent-death signal and prlimit the limits, each then exec'ing the
    next, so ffmpeg keeps both (they survive exec) and keeps its pid. Setting them in the child with
    preexec_fn instead is unsafe in a threaded process, which every role is (the converter renews its
    lease from a thread, gunicorn serves from threads): Python's documentation warns it can deadlock.
    """
    tools = _confinement_tools()
    if tools is None:  # not Linux with util-linux: development only, the image has both
        return command
    setpriv, prlimit = tools
    confined = [setpriv, "--pdeathsig", "KILL", "--"]
    resources = []
    if limits and limits.cpu_seconds:
        resources.append(f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}")
    if limits and limits.memory_bytes:
        resources.append(f"--as={limits.memory_bytes}")
    if resources:
        confined += [prlimit, *resources, "--"]
    return [*confined, *command]


# What ffmpeg and ffprobe keep of the role's environment: where programs are, the locale, the temp
# dir and the home directory. The rest stays behind: a role's environment carries DATABASE_URL,
# SECRET_KEY and the other secrets, and a child that parses hostile files must not hold them (in its
# /proc/<pid>/environ, in a core dump, in anything an exploit of a demuxer could read).
CHILD_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")


def child_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in CHILD_ENVIRONMENT if name in os.environ}


# ---------------------------------------------------------------------------
# Binaries


@functools.cache
def ffmpeg_path() -> str:
    """The system ffmpeg if there is one, else the static build shipped by imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # only needed on hosts without ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffprobe_path() -> str | None:
    """ffprobe from PATH, but only next to a PATH ffmpeg: mixing builds could make probe and conversion disagree."""
    if shutil.which("ffmpeg") != ffmpeg_path():
        return None
    return shutil.which("ffprobe")


def file_url(path: str | os.PathLike) -> str:
    # An explicit file: URL so a name such as "http:x" or "subfile,,..." is never read as another protocol.
    return "file:" + os.path.abspath(path)


def input_options(protocols: str = "file") -> list[str]:
    return ["-protocol_whitelist", protocols, "-format_whitelist", _FORMAT_WHITELIST]


# ---------------------------------------------------------------------------
# Conversion


def convert_to_mp3(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    duration: float | None,
    options: Encoding | None = None,
    cover: str | os.PathLike | None = None,
    bitrate_kbps: int = 192,
    on_progress: Callable[[int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    limits: ChildLimits | None = None,
) -> float | None:
    """Write the source's audio to destination as MP3; the seconds of audio written, as ffmpeg counted
    them (None when it printed no progress), so the MP3 needs no probe afterwards.

    `options` is the job's encoding as conversion/encoding.py builds it (maps, trim, codec, filters,
    tags); without it the audio is encoded at `bitrate_kbps` CBR as ffmpeg chooses the track. `cover`
    is a JPEG (from grab_frame) embedded as the front cover; it needs options with an explicit audio map.

    on_progress gets whole percentages (from `duration`, usually probe(source).duration), only
    increasing, and 100 once the MP3 is complete. should_cancel is polled about every
    CANCEL_CHECK_INTERVAL seconds, even while ffmpeg prints nothing. Callbacks run on the calling
    thread. Raises FfmpegCancelled or MediaError("decode_failed"); either way no partial
    destination is left behind.
    """
    if options is None:
        if not 8 <= bitrate_kbps <= 320:
            raise ValueError(f"MP3 bitrate must be 8-320 kbps, not {bitrate_kbps}")
        # No -map: ffmpeg's own choice is a single audio stream, preferring the track flagged default.
        input_args: tuple[str, ...] = ()
        output_args: tuple[str, ...] = ("-vn", "-sn", "-dn", "-c:a", "libmp3lame", "-b:a", f"{bitrate_kbps}k")
    else:
        input_args, output_args = options.input_args, options.output_args
        duration = options.output_duration if options.output_duration is not None else duration
    cover_args: list[str] = []
    if cover is not None:
        if options is None or options.audio_map is None:
            raise ValueError("a cover needs options that map the audio stream explicitly")
        # Our own JPEG: read as a single JPEG image through the file protocol only.
        # fmt: off
        cover_args = [
            "-protocol_whitelist", "file", "-f", "jpeg_pipe", "-i", file_url(cover),
        ]
        output_args = (
            *output_args,
            "-map", "1:v", "-c:v", "copy", "-disposition:v:0", "attached_pic",
            "-metadata:s:v", "title=Cover", "-metadata:s:v", "comment=Cover (front)",
        )
        # fmt: on
    # fmt: off
    command = [
        ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *input_options(), *input_args, "-i", file_url(source),
        *cover_args,
        *output_args,
        "-progress", "pipe:1", "-nostats",
        "-f", "mp3", file_url(destination),
    ]
    # fmt: on
    _, written = _run_ffmpeg(
        command,
        duration=duration,
        on_progress=on_progress,
        should_cancel=should_cancel,
        limits=limits,
        output=destination,
    )
    if on_progress is not None:
        on_progress(100)
    return written


def measure_loudness(
    source: str | os.PathLike,
    *,
    input_args: list[str],
    output_args: list[str],
    should_cancel: Callable[[], bool] | None = None,
    limits: ChildLimits | None = None,
) -> dict[str, str]:
    """loudnorm's measuring pass: its JSON report (input_i, input_tp, input_lra, input_thresh, target_offset)."""
    # fmt: off
    command = [
        ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "info", "-nostats",
        *input_options(), *input_args, "-i", file_url(source),
        *output_args, "-f", "null", "-",
    ]
    # fmt: on
    stderr, _ = _run_ffmpeg(
        command,
        should_cancel=should_cancel,
        limits=limits,
        output=None,
        tail_lines=_LOUDNORM_TAIL,
    )
    text = "\n".join(stderr)
    start, end = text.rfind("{"), text.rfind("}")
    try:
        report = json.loads(text[start : end + 1]) if 0 <= start < end else None
        measured = {key: str(report[key]) for key in _LOUDNORM_KEYS}
        for value in measured.values():
            float(value)  # "-inf" for silence is a float too; the check below refuses it
    except (ValueError, KeyError, TypeError):
        failure = MediaError("decode_failed", LOUDNESS_FAILED)
        failure.ffmpeg_lines = stderr[-5:]
        raise failure from None
    if not math.isfinite(float(measured["input_i"])):
        raise MediaError("silent", SILENT_AUDIO)
    return measured


_LOUDNORM_KEYS = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
_LOUDNORM_TAIL = 40  # the JSON report is a dozen lines, the last ffmpeg prints
LOUDNESS_FAILED = "The loudness of this file could not be measured. Try again without loudness normalization."
SILENT_AUDIO = "This audio is silent, so it cannot be loudness-normalized. Convert it without normalization."


def grab_frame(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    at: float,
    container: str = "",
    exact: bool = True,
    limits: ChildLimits | None = None,
) -> bool:
    """Write the video frame at `at` seconds as a JPEG of the video's dimensions; False when there is none.

    Not `exact` (a default cover): the first key frame from `at` on, which decodes one frame instead
    of every frame since the key frame before `at` (0.09 s against 0.2 s on a 720p clip).

    Exact: a container with an index (MP4, MKV, ...) is seeked to `at` directly: ffmpeg decodes from
    the key frame before it. One without (MPEG-TS, MPEG-PS) would land on a key frame after the asked
    time, so it is seeked COVER_SEEK_LEAD seconds early and decoded the rest of the way. Should that
    give nothing (a longer key frame interval, a clip with one key frame), the video is decoded from
    its start.
    """
    if not exact and _grab_frame(source, destination, input_seek=at, output_seek=0.0, limits=limits, key_only=True):
        return True
    if _UNINDEXED_ALIASES.isdisjoint(container.split(",")):
        lead = 0.0
    else:
        lead = min(at, COVER_SEEK_LEAD)
    return _grab_frame(source, destination, input_seek=at - lead, output_seek=lead, limits=limits) or (
        at > lead and _grab_frame(source, destination, input_seek=0.0, output_seek=at, limits=limits)
    )


# Seconds decoded before a cover frame's time in a container without an index: longer than the key
# frame interval of nearly every video.
COVER_SEEK_LEAD = 5.0
_UNINDEXED_ALIASES = frozenset({"mpegts", "mpeg", "mpegvideo"})


def _grab_frame(
    source, destination, *, input_seek: float, output_seek: float, limits: ChildLimits | None, key_only: bool = False
) -> bool:
    # One decoding thread: a single frame gains little from more, and each thread holds frames in memory.
    decoding = ["-threads", "1", *(["-skip_frame", "nokey"] if key_only else [])]
    # No input seek at all from the start: a seek to 0 in an FLV gave no frame at all (ffmpeg 5.1).
    seek = ["-ss", f"{input_seek:.3f}"] if input_seek > 0 else []
    output = ["-ss", f"{output_seek:.3f}"] if output_seek > 0 else []
    # fmt: off
    command = [
        ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *input_options(), *decoding, *seek, "-i", file_url(source), *output,
        # 0:V is video that is not an attached picture.
        "-map", "0:V:0", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3", "-f", "mjpeg", file_url(destination),
    ]
    # fmt: on
    try:
        _run_ffmpeg(command, limits=limits, output=destination)
    except MediaError:
        return False
    return os.path.exists(destination) and os.path.getsize(destination) > 0


# The audio source a conversion reads is written as QuickTime for ISO-BMFF uploads (MP4, MOV, M4A,
# 3GP) and as Matroska for everything else. Matroska carries any codec with chapters and tags, but
# this ffmpeg drops an MP4's edit list on the way (the AAC encoder delay it trims), so MP4 audio
# decoded from it would gain 1024 samples; the QuickTime muxer keeps the edit list. Either way the
# decoded audio is the upload's, sample for sample (tests/conversion/test_audio_source.py).
_ISO_BMFF_ALIASES = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})
AUDIO_SOURCE_SUFFIXES = {"mov": ".mov", "matroska": ".mka"}
# What ffmpeg says when the muxer cannot carry a codec as it is (the upload itself is kept then).
_MUXER_REFUSED_RE = re.compile(
    r"Could not write header|not supported|[Nn]o wav codec tag|can only be written|codec not currently supported"
)
EXTRACT_FAILED = (
    "The audio of this file could not be read; it may be damaged. Try re-exporting it, or upload the original file."
)


def audio_source_format(container: str) -> str:
    """The muxer ("mov" or "matroska") that keeps this container's audio exactly as it decodes."""
    return "mov" if _ISO_BMFF_ALIASES.intersection(container.split(",")) else "matroska"


def extract_audio(
    source: str | os.PathLike, destination: str | os.PathLike, *, container: str, limits: ChildLimits | None = None
) -> bool:
    """Stream-copy every audio track of source, in order, with its chapters and container tags, into
    destination (a small seekable file in audio_source_format(container)). Nothing is re-encoded.

    False when that container cannot carry the audio as it is (the caller keeps the upload itself);
    MediaError with a sentence when the file cannot be read within its limits.
    """
    # fmt: off
    command = [
        ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        *input_options(), "-i", file_url(source),
        "-map", "0:a", "-c", "copy", "-map_metadata", "0", "-map_chapters", "0",
        "-f", audio_source_format(container), file_url(destination),
    ]
    # fmt: on
    try:
        _run_ffmpeg(command, limits=limits, output=destination)
    except MediaError as exc:
        if exc.code == "decode_failed" and any(_MUXER_REFUSED_RE.search(line) for line in exc.ffmpeg_lines):
            return False
        if exc.code == "too_slow":
            raise
        failure = MediaError("extract_failed", EXTRACT_FAILED)
        failure.ffmpeg_lines = exc.ffmpeg_lines
        raise failure from None
    return True


def _run_ffmpeg(
    command: list[str],
    *,
    duration: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    limits: ChildLimits | None,
    output: str | os.PathLike | None,
    tail_lines: int = _STDERR_TAIL,
) -> tuple[list[str], float | None]:
    """Run one ffmpeg command to the end; returns its last stderr lines and the seconds it wrote (from
    its -progress lines, None without them). Removes `output` unless it succeeded."""
    process = subprocess.Popen(
        confined(command, limits),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_environment(),
    )
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + limits.wall_seconds if limits and limits.wall_seconds else math.inf

    # Reader threads drain both pipes so ffmpeg never blocks on a full pipe, and so this thread can
    # poll should_cancel() on a timer however quiet ffmpeg is. Progress lines come back through a
    # queue (None = stdout closed); of stderr only a bounded tail is kept.
    progress_lines: queue.Queue[str | None] = queue.Queue()
    stderr_tail: deque[str] = deque(maxlen=tail_lines)
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, progress_lines.put, progress_lines.put), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, stderr_tail.append), daemon=True),
    ]
    for reader in readers:
        reader.start()

    finished = False
    try:
        reported = 0
        written: float | None = None
        last_check = float("-inf")  # so a job cancelled before we started stops at once
        while True:
            try:
                line = progress_lines.get(timeout=0.1)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if time.monotonic() > deadline:
                raise MediaError("too_slow", too_slow_sentence(limits.wall_seconds))
            if should_cancel is not None and time.monotonic() - last_check >= CANCEL_CHECK_INTERVAL:
                last_check = time.monotonic()
                if should_cancel():
                    raise FfmpegCancelled()
            position = _position(line)
            if position is None:
                continue
            written = position
            percent = _progress_percent(position, duration)
            if on_progress is not None and percent is not None and percent > reported:
                reported = percent
                on_progress(percent)

        returncode = process.wait()
        for reader in readers:
            reader.join()
        if returncode != 0:
            failure = MediaError("decode_failed", DECODE_FAILED)
            failure.ffmpeg_lines = list(stderr_tail)
            raise failure
        finished = True
    finally:
        if process.poll() is None:
            _stop(process)
        for reader in readers:
            reader.join(timeout=TERMINATE_GRACE)
        process.stdout.close()
        process.stderr.close()
        if not finished and output is not None:
            _remove(output)
    return list(stderr_tail), written


def _pump(stream: IO[bytes], sink: Callable[[str], object], at_end: Callable[[None], object] | None = None) -> None:
    for raw in iter(lambda: stream.readline(_LINE_LIMIT), b""):
        sink(raw.decode(errors="replace").rstrip())
    if at_end is not None:
        at_end(None)


def _position(line: str) -> float | None:
    """Seconds written so far, from a -progress line; None for other lines."""
    # -progress prints blocks of key=value lines. out_time_us is the position in microseconds;
    # out_time_ms carries microseconds as well (ffmpeg misnames it), so both are read the same way.
    key, _, value = line.partition("=")
    if key not in ("out_time_us", "out_time_ms"):
        return None
    try:
        return int(value) / 1_000_000
    except ValueError:  # "N/A" before the first frame
        return None


def _progress_percent(position: float, duration: float | None) -> int | None:
    if not duration or duration <= 0:
        return None
    # 100 is only reported once ffmpeg has exited successfully.
    return max(0, min(99, int(position / duration * 100)))


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # lets ffmpeg exit cleanly
    try:
        process.wait(timeout=TERMINATE_GRACE)
    except subprocess.TimeoutExpired:  # e.g. blocked in a read that SIGTERM does not interrupt
        process.kill()
        process.wait()


def _remove(path: str | os.PathLike) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ffmpeg exits with an error when it could decode too little of the audio (more than -max_error_rate,
# two thirds, of the packets failed) or could not read on past a damaged stretch; what it printed
# ("Error while decoding stream #0:0: Invalid data found ...") names streams and codecs the user never
# chose, so it goes to the logs and the user gets what to do.
DECODE_FAILED = (
    "The audio in this file could not be decoded: the file may be damaged or cut short. "
    "Re-export it, or upload the original file, and try again."
)


def too_slow_sentence(seconds: float) -> str:
    return (
        f"This file took longer to convert than this server allows ({seconds:.0f} seconds for its length); "
        "it may be damaged. Re-export it, or upload the original file, and try again."
    )
