"""uploads/options.py and conversion/encoding.py on their own: parsing, canonical form, media checks and the ffmpeg arguments."""

import pytest

from conversion import encoding
from uploads import options as o


def parse(**raw):
    return o.parse_options(raw, default_bitrate=192)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12", 12.0), ("12.5", 12.5), ("01:02", 62.0), ("00:01:02.500", 62.5), ("1:00:00", 3600.0), (7, 7.0)],
)
def test_times_in_seconds_or_clock_form(text, seconds):
    assert o.parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-1", "1:60", "00:61:00", "1::2", "inf", True, "1e3"])
def test_times_that_are_refused(text):
    with pytest.raises(ValueError):
        o.parse_time(text)


def test_the_canonical_form_has_every_field_with_defaults_filled_in():
    canonical = parse().canonical()
    assert set(canonical) == set(o.OPTION_NAMES)
    assert canonical["bitrate"] == 192 and canonical["cover"] is True and canonical["loudness_target"] is None
    # Equal requests in different spellings store equal JSON (the future dedup key).
    assert parse(channels="MONO", start="00:00:01", normalize="yes").canonical() == (
        parse(channels="mono", start=1, normalize=True, loudness_target=-16).canonical()
    )
    # Values that change nothing are not kept: targets without normalizing, a cover time without a cover.
    assert parse(loudness_target=-20).loudness_target is None
    assert parse(cover=False, cover_time=3).cover_time is None


def test_every_error_is_collected_per_field():
    with pytest.raises(o.OptionsInvalid) as caught:
        parse(bitrate=100, channels="quad", start="x", colour="blue")
    assert set(caught.value.errors) == {"bitrate", "channels", "start", "colour"}
    assert all(sentence.endswith(".") for sentences in caught.value.errors.values() for sentence in sentences)


def test_every_preset_is_valid():
    for name in o.PRESETS:
        assert parse(preset=name).canonical()


def test_media_checks_name_the_field():
    streams = [{"codec": "aac", "channels": 2, "language": "eng", "default": True}]
    o.check_against_media(parse(start=1, end=2, audio_language="eng"), duration=3.0, audio_streams=streams)
    with pytest.raises(o.OptionsInvalid) as caught:
        o.check_against_media(parse(start=3, audio_track=1), duration=3.0, audio_streams=streams)
    assert set(caught.value.errors) == {"start", "audio_track"}


def test_default_track_is_the_flagged_one_else_the_one_with_most_channels():
    flagged = [{"channels": 6, "default": False}, {"channels": 2, "default": True}]
    unflagged = [{"channels": 1, "default": False}, {"channels": 2, "default": False}]
    assert o.audio_stream_position(parse(), flagged) == 1
    assert o.audio_stream_position(parse(), unflagged) == 1
    assert o.audio_stream_position(parse(), []) is None


def test_encoding_arguments():
    streams = [{"codec": "mp3", "channels": 2, "sample_rate": 44100, "default": True}]

    def encode(**raw):
        return encoding.encoding_for(
            parse(**raw), audio_streams=streams, duration=10.0, source_tags={}, filename_title="talk"
        )

    default = encode()
    assert default.stream_copy and default.audio_map == "0:a:0"  # MP3 in, nothing asked: copied
    reencoded = encode(stream_copy=False)
    assert not reencoded.stream_copy and ["-b:a", "192k"] == list(reencoded.output_args[4:6])
    assert not encode(bitrate=192).stream_copy and not encode(vbr_quality=2).stream_copy
    assert "title=talk" in default.output_args
    aac = encoding.encoding_for(
        parse(), audio_streams=[{**streams[0], "codec": "aac"}], duration=10.0, source_tags={}, filename_title="t"
    )
    assert not aac.stream_copy and ["-b:a", "192k"] == list(aac.output_args[4:6])
    vbr = encode(vbr_quality=3, sample_rate=22050, channels="mono", start=2, end=5)
    assert vbr.input_args == ("-ss", "2.000") and vbr.output_duration == 3.0
    args = " ".join(vbr.output_args)
    assert "-q:a 3" in args and "-ar 22050" in args and "-ac 1" in args and "-t 3.000" in args
    assert encode(stream_copy=True).stream_copy
    assert not encode(stream_copy=True, normalize=True).stream_copy
    assert "-map_chapters -1" in " ".join(encode(chapters=False).output_args)
