"""Running calls at the same moment from threads, to race them against the real database."""

import threading

from django.db import connections


def at_once(*calls) -> list:
    """Run each call in its own thread, all released together; their results (or exceptions), in order."""
    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            start.wait()
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[index] = exc
        finally:
            connections.close_all()  # each thread has its own database connection

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
