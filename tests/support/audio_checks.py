"""Read what a conversion produced, independently of the code under test: ffprobe, ffmpeg's own
analysis filters (astats, ebur128, md5) and mutagen for the ID3 frames."""

import json
import re
import subprocess
from pathlib import Path

_FFMPEG = "ffmpeg"
_FFPROBE = "ffprobe"


def ffprobe_json(path: Path) -> dict:
    result = subprocess.run(
        [_FFPROBE, "-v", "error", "-show_format", "-show_streams", "-show_chapters", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout)


def audio_stream(path: Path) -> dict:
    return next(s for s in ffprobe_json(path)["streams"] if s["codec_type"] == "audio")


def duration(path: Path) -> float:
    return float(ffprobe_json(path)["format"]["duration"])


def _analysis(path: Path, audio_filter: str, *, stream: str = "0:a:0") -> str:
    result = subprocess.run(
        [_FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-map", stream]
        + ["-af", audio_filter, "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stderr


def dominant_frequency(path: Path, *, stream: str = "0:a:0") -> float:
    """A pure tone's frequency from astats' zero-crossing rate (two crossings per period)."""
    stderr = _analysis(path, "astats", stream=stream)
    rates = re.findall(r"Zero crossings rate: ([\d.]+)", stderr)
    sample_rate = int(audio_stream(path)["sample_rate"])
    return float(rates[-1]) * sample_rate / 2


def integrated_loudness(path: Path) -> float:
    """EBU R128 integrated loudness (LUFS) as ffmpeg's ebur128 filter measures it."""
    stderr = _analysis(path, "ebur128")
    summary = stderr[stderr.rindex("Summary:") :]
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))


def audio_packets_md5(path: Path, *, stream: str = "0:a:0") -> str:
    """MD5 over the audio packets as stored (stream copy), so equal means bit-identical audio."""
    result = subprocess.run(
        [_FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", stream, "-c", "copy", "-f", "md5", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def decoded_audio_md5(path: Path, *, stream: str = "0:a:0") -> str:
    """MD5 over the decoded samples: equal means the same audio, whatever container or codec holds it."""
    result = subprocess.run(
        [_FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", stream, "-f", "md5", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout.strip()


def id3(path: Path):
    from mutagen.id3 import ID3

    return ID3(str(path))


def image_size(data: bytes, tmp_dir: Path) -> tuple[int, int]:
    """Width and height of an image as ffprobe reads it."""
    picture = Path(tmp_dir) / "picture.jpg"
    picture.write_bytes(data)
    stream = ffprobe_json(picture)["streams"][0]
    return stream["width"], stream["height"]
