"""Test media made on the fly with ffmpeg's own sources (lavfi testsrc2 / sine): nothing binary is committed.

Every helper caches its result in the given directory and writes atomically (temporary name, then
rename), so parallel or interrupted runs never see half a file.
"""

import os
import random
import struct
import subprocess
import uuid
from pathlib import Path

from core.media.ffmpeg import ffmpeg_path

# Resolved once, at import: tests that hide ffmpeg from PATH must not change how media files are made.
_FFMPEG = ffmpeg_path()
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_VPX_FAST = ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "100k"]


def _video(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=10:duration={seconds}"]


def _audio(seconds: float, frequency: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=44100:duration={seconds}"]


def _kinds(s: float) -> dict[str, tuple[str, list[str]]]:
    """kind -> (file suffix, ffmpeg arguments before the output name)."""
    av = _video(s) + _audio(s)
    return {
        # The mp4 muxer writes the index (moov) after the media data unless asked for faststart.
        "mp4_h264_aac_moov_end": (".mp4", av + _H264 + ["-c:a", "aac", "-f", "mp4"]),
        "mp4_faststart": (".mp4", av + _H264 + ["-c:a", "aac", "-movflags", "+faststart", "-f", "mp4"]),
        "mkv_vp9_opus": (".mkv", av + ["-c:v", "libvpx-vp9", *_VPX_FAST, "-c:a", "libopus", "-f", "matroska"]),
        "webm_vp8_vorbis": (".webm", av + ["-c:v", "libvpx", *_VPX_FAST, "-c:a", "libvorbis", "-f", "webm"]),
        "avi_mpeg4_mp3": (".avi", av + ["-c:v", "mpeg4", "-c:a", "libmp3lame", "-f", "avi"]),
        "mov_h264_aac": (".mov", av + _H264 + ["-c:a", "aac", "-f", "mov"]),
        "ts_h264_aac": (".ts", av + _H264 + ["-c:a", "aac", "-f", "mpegts"]),
        "wav_pcm": (".wav", _audio(s) + ["-c:a", "pcm_s16le", "-f", "wav"]),
        # Small on disk but slow to convert: long enough to catch a conversion in progress.
        "opus_long_lowrate": (".opus", _audio(s) + ["-c:a", "libopus", "-b:a", "12k", "-ac", "1", "-f", "ogg"]),
        "ogg_vorbis": (".ogg", _audio(s) + ["-c:a", "libvorbis", "-f", "ogg"]),
        "mp3_audio": (".mp3", _audio(s) + ["-c:a", "libmp3lame", "-f", "mp3"]),
        "m4a_aac": (".m4a", _audio(s) + ["-c:a", "aac", "-movflags", "+faststart", "-f", "mp4"]),
        "mp4_no_audio": (".mp4", _video(s) + _H264 + ["-f", "mp4"]),
        # An MP3 with a cover picture: a video stream that is not video.
        "mp3_cover_art": (
            ".mp3",
            _audio(s)
            + ["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1:duration=1"]
            + ["-map", "0:a", "-map", "1:v", "-frames:v", "1", "-c:a", "libmp3lame", "-c:v", "png"]
            + ["-disposition:v", "attached_pic", "-id3v2_version", "3", "-f", "mp3"],
        ),
        # Two audio tracks: the first lasts `s` seconds, the second (flagged default) half as long.
        "mkv_default_audio_second": (
            ".mkv",
            _audio(s)
            + _audio(s / 2, frequency=880)
            + ["-map", "0:a", "-map", "1:a", "-c:a", "libvorbis"]
            + ["-disposition:a:0", "0", "-disposition:a:1", "default", "-f", "matroska"],
        ),
        # Two audio tracks told apart by frequency and language: English 440 Hz, German 1000 Hz (default).
        "mkv_two_languages": (
            ".mkv",
            _video(s)
            + _audio(s)
            + _audio(s, frequency=1000)
            + ["-map", "0:v", "-map", "1:a", "-map", "2:a", *_H264, "-c:a", "libvorbis"]
            + ["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=deu"]
            + ["-disposition:a:0", "0", "-disposition:a:1", "default", "-f", "matroska"],
        ),
        # MP3 audio in a container, with tags: what stream copy is for.
        "mkv_mp3_tagged": (
            ".mkv",
            _video(s)
            + _audio(s)
            + ["-map", "0:v", "-map", "1:a", *_H264, "-c:a", "libmp3lame", "-b:a", "128k"]
            + ["-metadata", "title=Source Title", "-metadata", "artist=Source Artist"]
            + ["-metadata", "album=Source Album", "-metadata", "date=2021", "-f", "matroska"],
        ),
        "png_image": (
            ".png",
            ["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1", "-frames:v", "1", "-c:v", "png", "-f", "image2pipe"],
        ),
    }


def make_media(directory: Path, kind: str, *, seconds: float = 3.0) -> Path:
    """A small media file of the given kind, generated once per (kind, seconds) in directory."""
    suffix, args = _kinds(seconds)[kind]
    target = Path(directory) / f"{kind}-{seconds:g}s{suffix}"
    if not target.exists():
        _ffmpeg_atomically(target, args)
    return target


def make_media_with_chapters(directory: Path, *, chapters: int = 3, seconds_each: float = 2.0) -> Path:
    """An MP4 video (160x120) with AAC audio, container tags and `chapters` chapters named "Part N"."""
    target = Path(directory) / f"chapters-{chapters}x{seconds_each:g}s.mp4"
    if target.exists():
        return target
    milliseconds = int(seconds_each * 1000)
    lines = [";FFMETADATA1", "title=Chaptered", "artist=Chapter Artist"]
    for number in range(chapters):
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={number * milliseconds}"]
        lines += [f"END={(number + 1) * milliseconds}", f"title=Part {number + 1}"]
    metadata = Path(directory) / f".chapters-{chapters}x{seconds_each:g}s.ffmetadata"
    _write_atomically(metadata, ("\n".join(lines) + "\n").encode())
    total = chapters * seconds_each
    args = _video(total) + _audio(total) + ["-f", "ffmetadata", "-i", str(metadata)]
    args += ["-map", "0:v", "-map", "1:a", "-map_metadata", "2", "-map_chapters", "2", *_H264, "-c:a", "aac"]
    _ffmpeg_atomically(target, [*args, "-f", "mp4"])
    return target


def make_random_bytes(directory: Path, size: int, *, suffix: str = ".bin") -> Path:
    """size bytes of (seeded, so reproducible) noise."""
    target = Path(directory) / f"random-{size}{suffix}"
    if not target.exists():
        _write_atomically(target, random.Random(size).randbytes(size))
    return target


def make_hls_playlist(directory: Path) -> Path:
    """An HLS playlist whose one segment is a real local MPEG-TS file."""
    segment = make_media(directory, "ts_h264_aac")
    target = Path(directory) / "playlist.m3u8"
    if not target.exists():
        text = f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.0,\n{segment.name}\n#EXT-X-ENDLIST\n"
        _write_atomically(target, text.encode())
    return target


def make_concat_script(directory: Path) -> Path:
    """An ffconcat script naming a real local media file."""
    segment = make_media(directory, "mp4_faststart")
    target = Path(directory) / "list.ffconcat"
    if not target.exists():
        _write_atomically(target, f"ffconcat version 1.0\nfile '{segment.name}'\n".encode())
    return target


def make_avi_with_embedded_playlist(directory: Path, referred: Path, *, seconds: int = 2) -> Path:
    """An AVI with a PCM audio track and a GAB2 subtitle packet that carries an HLS playlist naming
    `referred`: the shape of the known trick for making ffmpeg read a local file into its output.
    Written by hand because no muxer writes GAB2."""
    rate = 8000
    playlist = f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile://{referred}\n#EXT-X-ENDLIST\n".encode()
    title = "subtitles".encode("utf-16le")
    gab2 = b"GAB2\0" + struct.pack("<HI", 2, len(title)) + title + struct.pack("<HI", 4, len(playlist)) + playlist
    pcm = bytes(rate * 2 * seconds)

    def stream_header(kind: bytes, rate_: int, length: int, sample_size: int) -> bytes:
        # AVISTREAMHEADER: type, handler, flags, priority, language, initial frames, scale, rate, start,
        # length, buffer size, quality, sample size, frame rectangle.
        return struct.pack(
            "<4s4sIHHIIIIIIIIhhhh",
            kind,
            b"\0" * 4,
            0,
            0,
            0,
            0,
            1,
            rate_,
            0,
            length,
            0,
            -1 & 0xFFFFFFFF,
            sample_size,
            0,
            0,
            0,
            0,
        )

    audio_format = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 16-bit
    main_header = struct.pack("<14I", 0, rate * 2, 0, 0x10, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0)  # has an index, 2 streams
    header_list = _riff_list(
        b"hdrl",
        _riff_chunk(b"avih", main_header)
        + _riff_list(
            b"strl",
            _riff_chunk(b"strh", stream_header(b"auds", rate, rate * seconds, 2)) + _riff_chunk(b"strf", audio_format),
        )
        + _riff_list(b"strl", _riff_chunk(b"strh", stream_header(b"txts", 1000, 1, 0)) + _riff_chunk(b"strf", b"")),
    )
    movie, index, offset = b"", b"", 4
    for chunk_id, data in ((b"01tx", gab2), (b"00wb", pcm)):
        index += struct.pack("<4sIII", chunk_id, 0x10, offset, len(data))
        chunk = _riff_chunk(chunk_id, data)
        movie, offset = movie + chunk, offset + len(chunk)
    body = b"AVI " + header_list + _riff_list(b"movi", movie) + _riff_chunk(b"idx1", index)
    target = Path(directory) / f"embedded-playlist-{uuid.uuid4().hex[:8]}.avi"
    _write_atomically(target, b"RIFF" + struct.pack("<I", len(body)) + body)
    return target


def _riff_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _riff_list(kind: bytes, body: bytes) -> bytes:
    return _riff_chunk(b"LIST", kind + body)


def make_truncated(directory: Path, kind: str, *, keep: float = 0.5) -> Path:
    """The first `keep` fraction of a make_media file, as an interrupted upload would leave it."""
    source = make_media(directory, kind)
    target = Path(directory) / f"truncated-{keep:g}-{source.name}"
    if not target.exists():
        data = source.read_bytes()
        _write_atomically(target, data[: int(len(data) * keep)])
    return target


def make_damaged_m4a(directory: Path, *, damage: str) -> Path:
    """An AAC .m4a whose index is intact (so it probes fine) but whose audio data is noise.

    damage="all" overwrites every audio byte, damage="middle" only the middle third.
    """
    source = make_media(directory, "m4a_aac")
    target = Path(directory) / f"damaged-{damage}.m4a"
    if not target.exists():
        data = bytearray(source.read_bytes())
        start = data.index(b"mdat") + 4  # faststart: the media data is the last box
        if damage == "middle":
            third = (len(data) - start) // 3
            start, end = start + third, start + 2 * third
        elif damage == "all":
            end = len(data)
        else:
            raise ValueError(damage)
        data[start:end] = random.Random(damage).randbytes(end - start)
        _write_atomically(target, bytes(data))
    return target


def make_undecodable_audio(directory: Path) -> Path:
    """A file that probes as ordinary AAC audio but none of whose audio can be decoded."""
    return make_damaged_m4a(directory, damage="all")


def _temporary_name(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _write_atomically(target: Path, data: bytes) -> None:
    temporary = _temporary_name(target)
    temporary.write_bytes(data)
    os.replace(temporary, target)


def _ffmpeg_atomically(target: Path, args: list[str]) -> None:
    temporary = _temporary_name(target)  # each kind names its muxer with -f, so the suffix does not matter
    command = [_FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(temporary)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"could not make {target.name}: {result.stderr.strip()[-2000:]}")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def make_disguised(directory: Path, name: str, content: bytes) -> Path:
    """content saved under a misleading name (a script or a program posing as a video)."""
    target = Path(directory) / "disguised" / name
    if not target.exists():
        _write_atomically(target, content)
    return target


def make_elf_as_mp4(directory: Path) -> Path:
    """A real executable of this machine (the ffmpeg binary's first 64 KiB: an ELF header and code) named .mp4."""
    with open(_FFMPEG, "rb") as program:
        return make_disguised(directory, "program.mp4", program.read(64 * 1024))


def make_png_as_mp4(directory: Path) -> Path:
    return make_disguised(directory, "picture.mp4", make_media(directory, "png_image").read_bytes())


def make_polyglot(directory: Path) -> Path:
    """One file that is at once a PNG, an HTML page with a script and a ZIP archive, named .mp4."""
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("payload.php", "<?php system($_GET['c']); ?>")
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"
    content = make_media(directory, "png_image").read_bytes() + html + archive.getvalue()
    return make_disguised(directory, "polyglot.mp4", content)


# ---------------------------------------------------------------------------
# Audio-first media (tests/conversion/test_audio_source.py)

# A tone whose pitch steps up every second: second n sounds stepped_tone_hz(n). Every frequency is a whole
# number of hertz, so each second starts at phase 0 and the steps are continuous (no clicks).
STEPPED_TONE_EXPRESSION = "0.5*sin(2*PI*(300+200*floor(t))*t)"


def stepped_tone_hz(second: int) -> int:
    return 300 + 200 * second


def _stepped_tone(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"aevalsrc={STEPPED_TONE_EXPRESSION}:s=44100:d={seconds}"]


def _stepped_tone_kinds(s: float) -> dict[str, tuple[str, list[str]]]:
    """kind -> (file suffix, ffmpeg arguments): the stepped tone in each container a trim must cut right."""
    av = _video(s) + _stepped_tone(s)
    return {
        "mp4_aac_moov_end": (".mp4", av + _H264 + ["-c:a", "aac", "-f", "mp4"]),
        "mkv_opus": (".mkv", av + _H264 + ["-c:a", "libopus", "-f", "matroska"]),
        "webm_vorbis": (".webm", av + ["-c:v", "libvpx", *_VPX_FAST, "-c:a", "libvorbis", "-f", "webm"]),
        "flv_aac": (".flv", av + ["-c:v", "flv", "-c:a", "aac", "-f", "flv"]),
        "ts_aac": (".ts", av + _H264 + ["-c:a", "aac", "-f", "mpegts"]),
        "avi_mp3": (".avi", av + ["-c:v", "mpeg4", "-c:a", "libmp3lame", "-f", "avi"]),
        "mov_aac": (".mov", av + _H264 + ["-c:a", "aac", "-f", "mov"]),
        "wav_pcm": (".wav", _stepped_tone(s) + ["-c:a", "pcm_s16le", "-f", "wav"]),
    }


STEPPED_TONE_KINDS: tuple[str, ...] = tuple(_stepped_tone_kinds(1.0))


def make_stepped_tone(directory: Path, kind: str, *, seconds: float = 6.0) -> Path:
    """A video (160x120) or WAV of the given kind whose audio is the stepped tone, generated once."""
    suffix, args = _stepped_tone_kinds(seconds)[kind]
    return _cached(directory, f"stepped-{kind}-{seconds:g}s{suffix}", args)


def make_mp4_two_languages(directory: Path, *, seconds: float = 3.0) -> Path:
    """mkv_two_languages as an MP4 (AAC): English 440 Hz, German 1000 Hz (flagged default)."""
    args = (
        _video(seconds)
        + _audio(seconds)
        + _audio(seconds, frequency=1000)
        + ["-map", "0:v", "-map", "1:a", "-map", "2:a", *_H264, "-c:a", "aac"]
        + ["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=deu"]
        + ["-disposition:a:0", "0", "-disposition:a:1", "default", "-f", "mp4"]
    )
    return _cached(directory, f"mp4-two-languages-{seconds:g}s.mp4", args)


_COLOUR_CONTAINERS: dict[str, list[str]] = {
    "mp4": [*_H264, "-c:a", "aac", "-f", "mp4"],  # the index at the end
    "mkv": [*_H264, "-c:a", "libvorbis", "-f", "matroska"],
    "webm": ["-c:v", "libvpx", *_VPX_FAST, "-c:a", "libvorbis", "-f", "webm"],
    "flv": ["-c:v", "flv", "-c:a", "aac", "-f", "flv"],
    "ts": [*_H264, "-c:a", "aac", "-f", "mpegts"],
    "avi": ["-c:v", "mpeg4", "-c:a", "libmp3lame", "-f", "avi"],
    "mov": [*_H264, "-c:a", "aac", "-f", "mov"],
}
COLOUR_CONTAINERS: tuple[str, ...] = tuple(_COLOUR_CONTAINERS)


def make_colour_segments(
    directory: Path, colours: tuple[str, ...], *, container: str = "mp4", keyframe_every: int = 10
) -> Path:
    """A video (160x120, 10 frames a second, with a 440 Hz audio track) showing each colour, by ffmpeg's name,
    for one second in turn: the frame at t seconds is all colours[int(t)]. A keyframe every `keyframe_every`
    frames (10: one a second, at each colour change)."""
    sources = [f"color=c={colour}:s=160x120:r=10:d=1[c{index}]" for index, colour in enumerate(colours)]
    inputs = "".join(f"[c{index}]" for index in range(len(colours)))
    graph = ";".join([*sources, f"{inputs}concat=n={len(colours)}:v=1:a=0[out0]"])
    seconds = len(colours)
    args = ["-f", "lavfi", "-i", graph] + _audio(seconds) + ["-g", str(keyframe_every)]
    name = f"colours-{'-'.join(colours)}-g{keyframe_every}.{container}"
    return _cached(directory, name, args + _COLOUR_CONTAINERS[container])


def make_high_rate_audio(directory: Path, kind: str, *, rate: int = 96000, seconds: float = 3.0) -> Path:
    """A 440 Hz tone at a rate LAME does not take (96 kHz by default) as "wav" (PCM) or "flac"."""
    codec, muxer = {"wav": ("pcm_s16le", "wav"), "flac": ("flac", "flac")}[kind]
    tone = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}"]
    return _cached(directory, f"tone-{rate}hz-{seconds:g}s.{kind}", tone + ["-c:a", codec, "-f", muxer])


def make_flv_nellymoser(directory: Path, *, seconds: float = 3.0) -> Path:
    """An FLV (Flash video, Nellymoser audio): a codec no container we write can carry as it is."""
    args = _video(seconds) + _audio(seconds) + ["-c:v", "flv", "-c:a", "nellymoser", "-ar", "44100", "-ac", "1"]
    return _cached(directory, f"flv-nellymoser-{seconds:g}s.flv", [*args, "-f", "flv"])


def _cached(directory: Path, name: str, args: list[str]) -> Path:
    target = Path(directory) / name
    if not target.exists():
        _ffmpeg_atomically(target, args)
    return target


def make_mkv_with_chapters(directory: Path, *, chapters: int = 3, seconds_each: float = 2.0) -> Path:
    """make_media_with_chapters remuxed into Matroska (same streams, tags and chapters)."""
    source = make_media_with_chapters(directory, chapters=chapters, seconds_each=seconds_each)
    args = ["-i", str(source), "-map", "0:v", "-map", "0:a", "-c", "copy", "-map_metadata", "0", "-map_chapters", "0"]
    return _cached(directory, f"chapters-{chapters}x{seconds_each:g}s.mkv", [*args, "-f", "matroska"])


def make_large_video(directory: Path, *, seconds: float = 4.0) -> Path:
    """A video of several MB (lossless H.264 of a moving pattern, with a tone): many GridFS chunks, for
    uploads that must cross chunk boundaries."""
    video = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}"]
    args = video + _audio(seconds) + ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-c:a", "aac"]
    return _cached(directory, f"large-h264-{seconds:g}s.mkv", [*args, "-f", "matroska"])


def make_raw_video(directory: Path, *, seconds: float = 20.0) -> Path:
    """Uncompressed video (320x240 at 25 fps: 2.75 MiB a second) with a tone, made in a moment: a file of tens
    of MB whose audio, all the server keeps, is small."""
    video = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}"]
    args = video + _audio(seconds) + ["-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le"]
    return _cached(directory, f"raw-{seconds:g}s.mkv", [*args, "-f", "matroska"])
