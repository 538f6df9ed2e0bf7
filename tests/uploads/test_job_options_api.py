"""Output options on POST /api/jobs/ (form fields and the JSON `options` field), presets, and the
field-level 400s, in-process against the real stores and ffmpeg's probe (no worker running)."""

import json

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from core import broker, storage
from tests.support import media
from tests.support.pipeline import stored_file_count
from tests.support.uploads import upload
from uploads.models import Job
from uploads.options import PRESETS

pytestmark = [pytest.mark.django_db(transaction=True)]


def assert_nothing_stored():
    assert Job.objects.count() == 0
    assert stored_file_count(storage.VIDEOS) == 0
    assert broker.queue_depth(broker.VIDEO) == 0


def test_form_fields_are_validated_normalized_and_stored(alice, media_files):
    response = upload(
        alice,
        media.make_media(media_files, "mp4_faststart"),
        bitrate="128",
        sample_rate="48000",
        channels="Mono",
        start="00:00:00.500",
        end="2.5",
        normalize="true",
        title="  My talk ",
        cover="false",
    )
    assert response.status_code == 202, response.content
    options = response.json()["options"]
    assert options == Job.objects.get().options
    assert options["bitrate"] == 128 and options["vbr_quality"] is None
    assert options["sample_rate"] == 48000 and options["channels"] == "mono"
    assert options["start"] == 0.5 and options["end"] == 2.5
    assert options["normalize"] is True and options["loudness_target"] == -16.0 and options["true_peak"] == -1.5
    assert options["title"] == "My talk" and options["artist"] is None
    assert options["cover"] is False and options["chapters"] is True
    assert options["stream_copy"] is False  # an explicit bitrate asks for an encode


def test_the_json_options_field_stores_the_same_canonical_options_as_form_fields(alice, media_files):
    path = media.make_media(media_files, "wav_pcm")
    by_form = upload(alice, path, vbr_quality="0", channels="stereo", start="1").json()["options"]
    as_json = json.dumps({"vbr_quality": 0, "channels": "stereo", "start": "00:00:01"})
    by_json = upload(alice, path, options=as_json).json()["options"]
    assert by_form == by_json
    assert by_json["vbr_quality"] == 0 and by_json["bitrate"] is None


def test_no_options_store_the_defaults(alice, media_files):
    options = upload(alice, media.make_media(media_files, "wav_pcm")).json()["options"]
    assert options["bitrate"] == settings.MP3_BITRATE_KBPS
    assert options["sample_rate"] is None and options["channels"] == "source"
    assert options["normalize"] is False and options["loudness_target"] is None
    assert options["cover"] is True and options["chapters"] is True


def test_a_preset_is_applied_and_fields_override_it(alice, media_files):
    path = media.make_media(media_files, "wav_pcm")
    podcast = upload(alice, path, preset="podcast").json()["options"]
    assert podcast["bitrate"] == 64 and podcast["channels"] == "mono" and podcast["normalize"] is True
    overridden = upload(alice, path, preset="podcast", bitrate="96").json()["options"]
    assert overridden["bitrate"] == 96 and overridden["channels"] == "mono"
    # A preset's constant bitrate gives way to a VBR quality chosen with it, and JSON may name the preset.
    vbr = upload(alice, path, options=json.dumps({"preset": "podcast", "vbr_quality": 4})).json()["options"]
    assert vbr["vbr_quality"] == 4 and vbr["bitrate"] is None
    music = upload(alice, path, preset="music").json()["options"]
    assert music["vbr_quality"] == 0 and music["channels"] == "stereo"


def test_form_fields_override_the_json_options(alice, media_files):
    response = upload(alice, media.make_media(media_files, "wav_pcm"), options='{"bitrate": 64}', bitrate="320")
    assert response.json()["options"]["bitrate"] == 320


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"bitrate": "100"}, "bitrate"),
        ({"bitrate": "loud"}, "bitrate"),
        ({"bitrate": "16"}, "bitrate"),
        ({"bitrate": "192", "sample_rate": "22050"}, "bitrate"),
        ({"vbr_quality": "10"}, "vbr_quality"),
        ({"vbr_quality": "3", "bitrate": "128"}, "vbr_quality"),
        ({"sample_rate": "11025"}, "sample_rate"),
        ({"channels": "5.1"}, "channels"),
        ({"start": "1:75"}, "start"),
        ({"start": "-2"}, "start"),
        ({"start": "2", "end": "1"}, "end"),
        ({"audio_track": "-1"}, "audio_track"),
        ({"audio_language": "english"}, "audio_language"),
        ({"audio_track": "0", "audio_language": "eng"}, "audio_language"),
        ({"normalize": "maybe"}, "normalize"),
        ({"normalize": "true", "loudness_target": "3"}, "loudness_target"),
        ({"normalize": "true", "true_peak": "-20"}, "true_peak"),
        ({"title": "x" * 201}, "title"),
        ({"cover_time": "soon"}, "cover_time"),
        ({"preset": "loud"}, "preset"),
        ({"bitrat": "128"}, "bitrat"),
        ({"options": "{not json"}, "options"),
        ({"options": "[1, 2]"}, "options"),
        ({"options": '{"channels": "quad"}'}, "channels"),
    ],
)
def test_invalid_options_get_field_errors_and_nothing_is_stored(alice, media_files, fields, field):
    response = upload(alice, media.make_media(media_files, "wav_pcm"), **fields)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_options"
    assert set(body["errors"]) == {field}
    sentence = body["errors"][field][0]
    assert sentence.endswith(".") and body["detail"].endswith(sentence)
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"start": "4"}, "start", "lasts 3.003 seconds"),
        ({"end": "00:00:03.500"}, "end", "lasts 3.003 seconds"),
        ({"cover_time": "10"}, "cover_time", "lasts 3.003 seconds"),
        ({"audio_track": "2"}, "audio_track", "2 audio tracks; choose 0 to 1"),
        ({"audio_language": "fra"}, "audio_language", "tagged deu, eng"),
    ],
)
def test_options_are_checked_against_the_probed_file(alice, media_files, fields, field, words):
    response = upload(alice, media.make_media(media_files, "mkv_two_languages"), **fields)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_options" and set(body["errors"]) == {field}
    assert words in body["errors"][field][0]
    assert_nothing_stored()


def test_the_job_detail_shows_options_audio_streams_and_input_loudness(alice, media_files):
    created = upload(alice, media.make_media(media_files, "mkv_two_languages"), audio_language="ENG").json()
    detail = alice.get(f"/api/jobs/{created['id']}/").json()
    assert detail["options"]["audio_language"] == "eng"
    assert [s["language"] for s in detail["audio_streams"]] == ["eng", "deu"]
    assert detail["input_loudness"] is None  # measured by the converter when normalizing


def test_presets_are_listed_without_signing_in(db):
    response = APIClient().get("/api/presets/")
    assert response.status_code == 200
    presets = {preset["name"]: preset for preset in response.json()["results"]}
    assert set(presets) == set(PRESETS) >= {"podcast", "music", "voice-small"}
    assert presets["podcast"]["options"] == {"bitrate": 64, "channels": "mono", "normalize": True}
    assert all(preset["description"].endswith(".") for preset in presets.values())


def test_the_original_upload_endpoint_keeps_the_default_options(alice, media_files):
    response = upload(alice, media.make_media(media_files, "wav_pcm"), url="/upload")
    assert response.status_code == 200, response.content
    assert response.json()["options"]["bitrate"] == settings.MP3_BITRATE_KBPS
