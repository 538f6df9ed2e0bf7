"""6. API reads: GET /api/jobs/{id}/ and GET /download?fid=… of a small MP3 under gunicorn, 8 concurrent clients.

A bounded load generator: 8 threads on 127.0.0.1, each with its own keep-alive http.client connection,
share a fixed number of requests per endpoint. Reported: requests per second, p50 and p99 latency (no target).

Usage: python -m bench.api_reads [--requests 2000] [--clients 8]
"""

import argparse
import http.client
import statistics
import threading
import time
import urllib.parse

from bench import _common


def _load(base_url: str, path: str, authorization: str, total: int, clients: int) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p99 ms) of `total` GETs of path spread over `clients` threads."""
    url = urllib.parse.urlsplit(base_url)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [total]

    def client() -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        mine = []
        try:
            while True:
                with lock:
                    if remaining[0] == 0:
                        break
                    remaining[0] -= 1
                started = time.perf_counter()
                connection.request("GET", path, headers={"Authorization": authorization})
                response = connection.getresponse()
                response.read()
                mine.append(time.perf_counter() - started)
                if response.status != 200:
                    errors.append(f"{path} answered {response.status}")
                    break
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    cut = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, cut[98] * 1000


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40 if _common.smoke() else 2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    clip = _common.wav(1)  # about 6 s of audio: a ~140 KiB MP3
    with _common.services() as (_env, workdir):
        from conversion import services
        from uploads.models import Job

        template = _common.stored_upload(clip, email="bench@example.com")  # the owner authorization() signs for
        if services.job_convert(job_id=str(template.id)) != "done":
            raise RuntimeError("could not make the MP3 to download")
        job = Job.objects.get(id=template.id)
        authorization = _common.authorization()
        endpoints = {  # name -> (label, path)
            "job": ("GET /api/jobs/{id}/", f"/api/jobs/{job.id}/"),
            "download": ("GET /download?fid=…", f"/download?fid={urllib.parse.quote(job.mp3_file_id)}"),
        }
        rows, results = [], {}
        with _common.gunicorn(workdir) as (base_url, _master, _log):
            for name, (label, path) in endpoints.items():
                _load(base_url, path, authorization, args.clients * 5, args.clients)  # warm-up
                rps, p50, p99 = _load(base_url, path, authorization, args.requests, args.clients)
                rows.append((label, f"{rps:.0f}", f"{p50:.1f}", f"{p99:.1f}"))
                for metric, value, unit in (("rps", rps, "requests/s"), ("p50", p50, "ms"), ("p99", p99, "ms")):
                    results[f"api_{name}_{metric}"] = {
                        "value": round(value, 1),
                        "unit": unit,
                        "target": "reported",
                        "met": True,
                    }
    _common.table(
        f"API reads: {args.requests} requests per endpoint, {args.clients} concurrent clients, "
        f"gunicorn (docker/gunicorn.conf.py, 1 worker), MP3 of {job.mp3_size / 1024:.0f} KiB",
        rows,
        ("endpoint", "requests/s", "p50 ms", "p99 ms"),
    )
    print("target: reported only (no target)")
    _common.record(results)
    return results


if __name__ == "__main__":
    main()
