"""How a command shows what it does: rich bars and tables on a terminal, plain lines when stdout is not one
(a pipe, a log file), one JSON document with --json. Errors always go to stderr."""

import json
import sys
import threading

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

RESULT_STYLES = {"converted": "green", "reused": "cyan", "skipped": "dim", "failed": "red"}


def human_size(size: int) -> str:
    return decimal(size)


class _DetailColumn(ProgressColumn):
    """Bytes, rate and time left while uploading or downloading; the server's phase while converting."""

    def render(self, task) -> Text:
        phase = task.fields.get("phase", "")
        if phase in ("uploading", "downloading") and task.total:
            parts = [f"{decimal(int(task.completed))}/{decimal(int(task.total))}"]
            if task.speed:
                parts.append(f"{decimal(int(task.speed))}/s")
            if task.time_remaining is not None and not task.finished:
                minutes, seconds = divmod(int(task.time_remaining), 60)
                parts.append(f"{minutes}:{seconds:02d} left")
            return Text(f"{phase} " + " · ".join(parts))
        return phase if isinstance(phase, Text) else Text(phase)


class Reporter:
    """The plain-lines reporter; RichReporter and JsonReporter change how the same events are shown."""

    def __init__(self):
        self.out = sys.stdout
        self._lock = threading.Lock()
        self._shown_percent: dict[str, int] = {}
        self._phases: dict[str, str] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # --- a file's life
    def phase(self, name: str, phase: str, completed: float = 0, total: float | None = None, note: str = "") -> None:
        self._phases[name] = phase
        self._shown_percent.pop(name, None)
        if phase in ("uploading", "downloading") and total:
            note = ", ".join(filter(None, [human_size(int(total)), note]))
        self.line(f"{name}: {phase}{f' ({note})' if note else ''}")

    def advance(self, name: str, completed: float, total: float | None) -> None:
        """Progress within a phase: plain output says each quarter once."""
        if not total:
            return
        percent = int(completed * 100 / total) // 25 * 25
        if percent > self._shown_percent.get(name, -1) and 0 < percent < 100:
            self._shown_percent[name] = percent
            self.line(f"{name}: {self._phases.get(name, '')} {percent}%")

    def finish(self, name: str, result: str, detail: str) -> None:
        self._shown_percent.pop(name, None)
        self.line(f"{name}: {result} {detail}".rstrip())

    # --- endings
    def summary(self, results: list[dict]) -> None:
        counts = _counts(results)
        self.line(", ".join(f"{count} {result}" for result, count in counts.items()))
        for result in results:
            if result["result"] == "failed":
                self.line(f"failed: {result['source']}: {result['detail']}")

    def data(self, value, table=None) -> None:
        """A command's answer (jobs, one job): table rows as tab-separated lines."""
        if table is None:
            self.line(json.dumps(value, indent=1))
            return
        columns, rows = table
        for row in rows:
            self.line("\t".join(str(cell) for cell in row))


class RichReporter(Reporter):
    def __init__(self):
        super().__init__()
        self.console = Console()
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            TaskProgressColumn(),
            _DetailColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()
        return False

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def error(self, text: str) -> None:
        Console(stderr=True).print(f"[red]{text}[/red]", highlight=False)

    def _task(self, name: str) -> int:
        if name not in self._tasks:
            self._tasks[name] = self.progress.add_task(name, total=None, phase="waiting")
        return self._tasks[name]

    def phase(self, name, phase, completed=0, total=None, note=""):
        task = self._task(name)
        self.progress.reset(task, total=total, completed=completed, phase=f"{phase}{f' ({note})' if note else ''}")

    def advance(self, name, completed, total):
        self.progress.update(self._task(name), completed=completed, total=total)

    def finish(self, name, result, detail):
        task = self._task(name)
        style = RESULT_STYLES.get(result, "")
        self.progress.update(
            task, total=1, completed=1, phase=Text(result, style=style) if style else result, refresh=True
        )

    def summary(self, results):
        self.progress.stop()
        table = Table(title="Summary", show_lines=False)
        table.add_column("file")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for result in results:
            style = RESULT_STYLES.get(result["result"], "")
            table.add_row(result["source"], Text(result["result"], style=style), result["detail"])
        self.console.print(table)
        counts = _counts(results)
        self.console.print(", ".join(f"{count} {result}" for result, count in counts.items()), highlight=False)

    def data(self, value, table=None):
        if table is None:
            self.console.print_json(json.dumps(value))
            return
        columns, rows = table
        rendered = Table()
        for column in columns:
            rendered.add_column(column)
        for row in rows:
            rendered.add_row(*(str(cell) for cell in row))
        self.console.print(rendered)


class JsonReporter(Reporter):
    """Nothing while it works; the result as one JSON document on stdout at the end."""

    def phase(self, name, phase, completed=0, total=None, note=""):
        pass

    def advance(self, name, completed, total):
        pass

    def finish(self, name, result, detail):
        pass

    def summary(self, results):
        self.line(json.dumps({"files": results, "counts": _counts(results)}, indent=1))

    def data(self, value, table=None):
        self.line(json.dumps(value, indent=1))


def _counts(results: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(("converted", "reused", "skipped", "failed"), 0)
    for result in results:
        counts[result["result"]] = counts.get(result["result"], 0) + 1
    return counts


def reporter_for(*, json_output: bool) -> Reporter:
    if json_output:
        return JsonReporter()
    if sys.stdout.isatty():
        return RichReporter()
    return Reporter()
