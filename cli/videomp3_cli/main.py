"""The `videomp3` command: argument parsing, the commands, and the exit codes (api.EXIT_*)."""

import argparse
import getpass
import os
import sys
import threading
from pathlib import Path

from videomp3_cli import __version__, api, config
from videomp3_cli.api import ApiError, AuthError, CliError, Session, UsageError
from videomp3_cli.convert import Converter, Item, discover, download_mp3, remove_partial_files, wait_for_job
from videomp3_cli.output import human_size, reporter_for
from videomp3_cli.transfer import Interrupted

# The server's output options (uploads/options.py, the README's table) as flags: (flag, type, help).
VALUE_OPTIONS = [
    ("preset", str, "start from a named preset (videomp3 presets lists them); other flags override it"),
    ("bitrate", int, "constant bitrate in kb/s: 32 … 320"),
    ("vbr_quality", int, "LAME VBR quality instead of a bitrate: 0 (best) … 9 (smallest)"),
    ("sample_rate", str, "source, 22050, 32000, 44100 or 48000"),
    ("channels", str, "source, mono or stereo"),
    ("start", str, "start at: seconds (12.5) or [HH:]MM:SS[.mmm]"),
    ("end", str, "end at: seconds or [HH:]MM:SS[.mmm]"),
    ("audio_track", int, "which audio track, 0 for the first"),
    ("audio_language", str, "choose the track by its ISO 639 language tag, e.g. eng"),
    ("loudness_target", float, "integrated loudness to normalize to, in LUFS (-70 … -5)"),
    ("true_peak", float, "true-peak ceiling while normalizing, in dBTP (-9 … 0)"),
    ("title", str, "ID3 title (default: the source's, else the file name)"),
    ("artist", str, "ID3 artist"),
    ("album", str, "ID3 album"),
    ("date", str, "ID3 date"),
    ("cover_time", str, "which video frame becomes the cover: seconds or HH:MM:SS.mmm"),
]
SWITCH_OPTIONS = [
    ("normalize", "EBU R128 loudness normalization (two passes)"),
    ("cover", "embed a video frame as the cover (default on)"),
    ("chapters", "write the source's chapters (default on)"),
    ("stream_copy", "copy an MP3 track as it is when nothing changes the audio (default on)"),
]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON, for scripts"
    )
    parser = argparse.ArgumentParser(
        prog="videomp3",
        description="Turn videos into MP3s on a videomp3 server.",
        epilog="Exit codes: 0 all done, 1 some files failed, 2 usage, 3 sign-in, 4 server unreachable, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"videomp3 {__version__}")
    parser.add_argument("--json", action="store_true", default=False, help="print the result as JSON, for scripts")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", parents=[common], help="sign in to a server and keep the sign-in")
    login.add_argument("--server", required=True, help="the server's URL, e.g. https://videomp3.example.com")
    login.add_argument("--email", help="your account's email (asked when not given)")
    commands.add_parser("logout", parents=[common], help="sign out and forget the tokens")

    convert = commands.add_parser(
        "convert",
        parents=[common],
        help="convert files or folders to MP3s",
        description="Upload each file (resumably where the server offers it), convert it, and save its MP3 "
        "beside it or under --out. Files whose MP3 is there already are skipped.",
    )
    convert.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    convert.add_argument("-r", "--recursive", action="store_true", help="look in subfolders too")
    convert.add_argument("-o", "--out", metavar="DIR", help="save the MP3s here (subfolders mirrored)")
    convert.add_argument("-j", "--jobs", type=int, default=2, metavar="N", help="files at a time (default 2)")
    group = convert.add_argument_group("output options (the server's; see its README)")
    for name, kind, text in VALUE_OPTIONS:
        group.add_argument(
            f"--{name.replace('_', '-')}", dest=f"opt_{name}", type=kind, metavar=name.upper(), help=text
        )
    for name, text in SWITCH_OPTIONS:
        group.add_argument(
            f"--{name.replace('_', '-')}", dest=f"opt_{name}", action=argparse.BooleanOptionalAction, help=text
        )

    jobs = commands.add_parser("jobs", parents=[common], help="list your jobs")
    jobs.add_argument("--status", help="only jobs in this state: queued, converting, done, failed, …")
    get = commands.add_parser("get", parents=[common], help="download a job's MP3 (waiting until it is done)")
    get.add_argument("job_id", metavar="JOB")
    get.add_argument("-o", "--out", metavar="PATH", help="file or folder to save it to (default: its name, here)")
    remove = commands.add_parser("rm", parents=[common], help="delete jobs and their files")
    remove.add_argument("job_ids", nargs="+", metavar="JOB")
    commands.add_parser("presets", parents=[common], help="list the server's option presets")
    return parser


def chosen_options(args) -> dict:
    return {
        name.removeprefix("opt_"): value
        for name, value in vars(args).items()
        if name.startswith("opt_") and value is not None
    }


# --- the commands


def cmd_login(args, reporter) -> int:
    server = api.normalized_server(args.server)
    email = args.email
    if not email:
        if not sys.stdin.isatty():
            email = sys.stdin.readline().strip()
        else:
            email = input("Email: ").strip()
    # From a pipe (scripts, tests) the password is the next line; on a terminal it is asked without echo.
    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not email or not password:
        raise UsageError("Give an email and a password.")
    credentials = api.obtain_tokens(server, email, password)
    config.save_credentials(credentials)
    if args.json:
        reporter.data({"server": server, "email": email, "signed_in": True})
    else:
        reporter.line(f"Signed in to {server} as {email}.")
    return api.EXIT_OK


def cmd_logout(args, reporter) -> int:
    credentials = config.load_credentials()
    if credentials is None:
        reporter.line("You were not signed in.")
        return api.EXIT_OK
    session = Session(credentials)
    try:
        session.http.post("/api/auth/logout/", json={"refresh": credentials["refresh"]})
    except Exception as exc:  # noqa: BLE001 - signing out locally must not depend on the server
        reporter.error(f"The server was not told ({exc}); the tokens are forgotten here all the same.")
    finally:
        session.close()
        config.forget_credentials()
    reporter.line(f"Signed out of {credentials['server']}.")
    return api.EXIT_OK


def cmd_convert(args, reporter) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be 1 or more.")
    items: list[Item] = discover(args.paths, recursive=args.recursive, out=args.out)
    session = Session.from_config()
    stop = threading.Event()
    try:
        with reporter:
            converter = Converter(session, reporter, chosen_options(args), stop)
            try:
                converter.run(items, args.jobs)
            except KeyboardInterrupt:
                raise Interrupted() from None
            reporter.summary([item.as_dict() for item in items])
    finally:
        session.close()
    failed = [item for item in items if item.result == "failed"]
    if failed and all(item.unreachable for item in failed):
        return api.EXIT_UNREACHABLE
    return api.EXIT_SOME_FAILED if failed else api.EXIT_OK


STATUS_COLUMNS = ("id", "status", "progress", "filename", "mp3", "created")


def cmd_jobs(args, reporter) -> int:
    session = Session.from_config()
    try:
        jobs, page = [], 1
        while True:
            params = {"page": page, **({"status": args.status} if args.status else {})}
            answer = session.json("GET", "/api/jobs/", params=params)
            jobs.extend(answer["results"])
            if not answer.get("next"):
                break
            page += 1
    finally:
        session.close()
    rows = [
        (
            job["id"],
            job["status"],
            f"{job['progress']}%",
            job["filename"],
            human_size(job["mp3_size"]) if job.get("mp3_size") else "",
            job["created_at"][:19].replace("T", " "),
        )
        for job in jobs
    ]
    reporter.data(jobs, table=None if args.json else (STATUS_COLUMNS, rows))
    return api.EXIT_OK


def cmd_get(args, reporter) -> int:
    session = Session.from_config()
    stop = threading.Event()
    try:
        job = session.json("GET", f"/api/jobs/{args.job_id}/")
        with reporter:
            name = job["filename"]
            if job["status"] not in ("done", "failed", "cancelled", "expired"):
                reporter.phase(name, "converting", job.get("progress") or 0, 100)
                try:
                    job = wait_for_job(
                        session,
                        job,
                        stop=stop,
                        on_progress=lambda j: reporter.advance(name, j.get("progress") or 0, 100),
                    )
                except KeyboardInterrupt:
                    raise Interrupted() from None
            if job["status"] != "done":
                status = job["status"]
                raise CliError(f"{name}: {job.get('error') or f'the job is {status}, so it has no MP3.'}")
            mp3_name = Path(name).stem + ".mp3"
            target = Path(args.out).expanduser() if args.out else Path(mp3_name)
            if target.is_dir():
                target = target / mp3_name
            reporter.phase(name, "downloading", 0, job.get("mp3_size"))
            try:
                download_mp3(
                    session,
                    job["id"],
                    target,
                    stop=stop,
                    on_bytes=lambda got, total: reporter.advance(name, got, total),
                )
            except KeyboardInterrupt:
                stop.set()
                raise Interrupted() from None
            reporter.finish(name, "downloaded", str(target))
        if args.json:
            reporter.data({"job": job, "saved_to": str(target)})
    finally:
        session.close()
    return api.EXIT_OK


def cmd_rm(args, reporter) -> int:
    session = Session.from_config()
    failed = False
    results = []
    try:
        for job_id in args.job_ids:
            response = session.request("DELETE", f"/api/jobs/{job_id}/")
            if response.status_code in (202, 204):
                said = "cancelled and deleted" if response.status_code == 202 else "deleted"
                results.append({"id": job_id, "deleted": True})
                if not args.json:
                    reporter.line(f"{job_id}: {said}")
            else:
                failed = True
                sentence = str(ApiError(response))
                results.append({"id": job_id, "deleted": False, "detail": sentence})
                reporter.error(f"{job_id}: {sentence}")
    finally:
        session.close()
    if args.json:
        reporter.data(results)
    return api.EXIT_SOME_FAILED if failed else api.EXIT_OK


def cmd_presets(args, reporter) -> int:
    session = Session.from_config()
    try:
        presets = session.json("GET", "/api/presets/")["results"]
    finally:
        session.close()
    rows = [(p["name"], p["description"], ", ".join(f"{k}={v}" for k, v in p["options"].items())) for p in presets]
    reporter.data(presets, table=None if args.json else (("name", "description", "sets"), rows))
    return api.EXIT_OK


COMMANDS = {
    "login": cmd_login,
    "logout": cmd_logout,
    "convert": cmd_convert,
    "jobs": cmd_jobs,
    "get": cmd_get,
    "rm": cmd_rm,
    "presets": cmd_presets,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with argparse's message on a usage error
    reporter = reporter_for(json_output=args.json)
    try:
        return COMMANDS[args.command](args, reporter)
    except (Interrupted, KeyboardInterrupt):
        reporter.error("Interrupted; no half-written MP3 was left. Run the same command again to resume.")
        return api.EXIT_INTERRUPTED
    except AuthError as exc:
        reporter.error(str(exc))
        return exc.exit_code
    except CliError as exc:
        reporter.error(str(exc))
        return exc.exit_code
    except ApiError as exc:
        reporter.error(str(exc))
        return api.EXIT_SOME_FAILED


def run() -> None:
    code = main()
    if code == api.EXIT_INTERRUPTED and threading.active_count() > 1:
        # A transfer still blocked in the network would hold the exit until it ends: end now instead,
        # once no temp file is left behind.
        remove_partial_files()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
