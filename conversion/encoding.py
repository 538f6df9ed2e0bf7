"""The ffmpeg arguments a job's options mean: trim, track choice, loudness normalization, codec, tags and
chapters. Built here from uploads.options, run by core.media.ffmpeg."""

from core.media.ffmpeg import Encoding
from uploads.options import (
    CHANNELS,
    LAME_SAMPLE_RATES,
    LOUDNESS_RANGE_TARGET,
    JobOptions,
    audio_stream_position,
)
from uploads.tags import id3_tags


def copies_stream(options: JobOptions, *, audio_codec: str | None) -> bool:
    """Stream copy: asked for, the chosen audio is MP3, and nothing asks to change the audio."""
    return (
        options.stream_copy
        and audio_codec == "mp3"
        and not options.trimmed
        and not options.normalize
        and options.sample_rate is None
        and options.channels == "source"
    )


def trim_args(options: JobOptions, *, duration: float | None) -> tuple[list[str], list[str], float | None]:
    """(input args, output args, the output's duration) for the trim."""
    input_args: list[str] = []
    output_args: list[str] = []
    start = options.start or 0.0
    end = options.end if options.end is not None else duration
    if options.start:
        input_args += ["-ss", f"{options.start:.3f}"]
    if options.end is not None:
        output_args += ["-t", f"{options.end - start:.3f}"]
    return input_args, output_args, (end - start if end is not None else None)


def lame_sample_rate(rate: int) -> int:
    """The source's rate when LAME takes it, else the highest LAME rate below it that divides it evenly
    (96000 -> 48000, 88200 -> 44100), else the highest below it."""
    if rate in LAME_SAMPLE_RATES:
        return rate
    below = [candidate for candidate in LAME_SAMPLE_RATES if candidate <= rate] or [LAME_SAMPLE_RATES[0]]
    even = [candidate for candidate in below if rate % candidate == 0]
    return max(even or below)


def loudnorm_filter(options: JobOptions, measured: dict | None = None) -> str:
    """loudnorm's first pass (measure only) or, given its measurement, the second (linear) pass."""
    parts = [f"I={options.loudness_target:g}", f"TP={options.true_peak:g}", f"LRA={LOUDNESS_RANGE_TARGET:g}"]
    if measured is None:
        return "loudnorm=" + ":".join([*parts, "print_format=json"])
    parts += [
        f"measured_I={measured['input_i']}",
        f"measured_TP={measured['input_tp']}",
        f"measured_LRA={measured['input_lra']}",
        f"measured_thresh={measured['input_thresh']}",
        f"offset={measured['target_offset']}",
        "linear=true",
        "print_format=none",
    ]
    return "loudnorm=" + ":".join(parts)


def loudness_analysis_args(
    options: JobOptions, *, audio_streams: list[dict], duration: float | None
) -> tuple[list[str], list[str]]:
    """(input args, output args) for loudnorm's measuring pass over exactly the audio that will be converted."""
    input_args, trim_output, _ = trim_args(options, duration=duration)
    position = audio_stream_position(options, audio_streams)
    audio_map = ["-map", f"0:a:{position}"] if position is not None else ["-vn", "-sn", "-dn"]
    return input_args, [*audio_map, *trim_output, "-af", loudnorm_filter(options)]


def encoding_for(
    options: JobOptions,
    *,
    audio_streams: list[dict],
    duration: float | None,
    source_tags: dict | None,
    filename_title: str,
    loudness: dict | None = None,
) -> Encoding:
    position = audio_stream_position(options, audio_streams)
    audio_codec = audio_streams[position].get("codec") if position is not None and audio_streams else None
    copy = copies_stream(options, audio_codec=audio_codec)
    input_args, output_args, output_duration = trim_args(options, duration=duration)

    if position is not None:
        output_args += ["-map", f"0:a:{position}"]
    else:
        output_args += ["-vn", "-sn", "-dn"]  # no -map: ffmpeg's own choice of one audio stream

    if copy:
        output_args += ["-c:a", "copy"]
    else:
        if options.normalize and loudness is not None:
            output_args += ["-af", loudnorm_filter(options, loudness)]
            if options.sample_rate is None:
                # loudnorm works (and would write) at 192 kHz; go back to the source's rate, or the
                # nearest one LAME takes (88.2 and 96 kHz sources are common from cameras and DAWs).
                source_rate = audio_streams[position].get("sample_rate") if position is not None else None
                if source_rate:
                    output_args += ["-ar", str(lame_sample_rate(source_rate))]
        output_args += ["-c:a", "libmp3lame"]
        if options.vbr_quality is not None:
            output_args += ["-q:a", str(options.vbr_quality)]
        else:
            output_args += ["-b:a", f"{options.bitrate}k"]
        if options.sample_rate is not None:
            output_args += ["-ar", str(options.sample_rate)]
        if options.channels != "source":
            output_args += ["-ac", str(CHANNELS[options.channels])]

    output_args += ["-id3v2_version", "4"]
    for tag, value in id3_tags(options, source_tags=source_tags, filename_title=filename_title).items():
        output_args += ["-metadata", f"{tag}={value}"]
    output_args += ["-map_chapters", "0" if options.chapters else "-1"]

    return Encoding(
        input_args=tuple(input_args),
        output_args=tuple(output_args),
        output_duration=output_duration,
        stream_copy=copy,
        audio_map=f"0:a:{position}" if position is not None else None,
    )
