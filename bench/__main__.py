"""`make bench`: run every benchmark script in turn; results merge into bench/results/latest.json."""

import sys
import time

from bench import _common, api_reads, converter_memory, default_path, stream_copy, upload, worker_scaling

SCRIPTS = [
    ("default_path", default_path.main),
    ("upload", upload.main),
    ("worker_scaling", worker_scaling.main),
    ("converter_memory", converter_memory.main),
    ("stream_copy", stream_copy.main),
    ("api_reads", api_reads.main),
]


def main() -> int:
    started = time.perf_counter()
    failed = []
    for name, run in SCRIPTS:
        print(f"\n### {name} (load average {_common.load_average()})", flush=True)
        try:
            run([])
        except Exception as exc:  # noqa: BLE001 - one broken script must not hide the others' figures
            print(f"{name} FAILED: {exc!r}", file=sys.stderr)
            failed.append(name)
    print(f"\nmake bench took {time.perf_counter() - started:.0f} s; results in bench/results/latest.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
