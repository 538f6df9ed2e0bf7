import json
import subprocess
import sys

from tests.support.processes import PROJECT_DIR, role_env


def test_log_format_json_writes_one_json_object_per_line():
    script = "import django, logging; django.setup(); logging.getLogger('videomp3.test').warning('hello %s', 'world')"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_DIR,
        env={**role_env(), "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    entry = json.loads(line)
    assert entry["message"] == "hello world" and entry["level"] == "WARNING" and entry["logger"] == "videomp3.test"
