"""Getting a stored video to ffmpeg: streamed through a pipe while ffmpeg converts, or downloaded first.

Downloading the whole video before ffmpeg starts costs as long as the conversion itself (GridFS is
read at about the speed ffmpeg decodes). Streaming overlaps the two: ffmpeg reads the video from its
stdin while a thread copies it out of GridFS. A pipe, not a growing temp file: ffmpeg sees the true
end of the input when the writer closes it, whatever the container, and nothing is written to disk.

A pipe cannot seek, so only inputs that ffmpeg reads front to back are streamed:

* MP4/MOV whose index (moov) comes before the media data (mdat) as they are;
* MP4/MOV with the moov at the end (what most cameras and ffmpeg itself write) in "faststart"
  layout: the moov is fetched from the end of the stored file first, its chunk offsets (stco/co64)
  moved by the moov's size, and the stream is ftyp.. + moov + mdat.., like qt-faststart does;
* Matroska/WebM, Ogg, FLAC, FLV, MPEG-TS, AVI and WAV (RIFF).

Anything else, or an MP4 whose index is unusual (compressed moov, fragments, offsets that would
overflow 32 bits or point outside the media data, an index larger than MOOV_LIMIT), is downloaded
to a temp file first, as before. Pure Python plus uploads.storage; conversion.ffmpeg runs ffmpeg.
"""

import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from uploads import storage

logger = logging.getLogger(__name__)

# An index bigger than this is not fetched into memory (a 60-minute 720p MP4's moov is a few MiB).
MOOV_LIMIT = 64 * 1024 * 1024
# More top-level boxes than this is not an ordinary MP4; download it instead of asking for each header.
_MAX_TOP_LEVEL_BOXES = 64
# A GridFS read that makes no progress for this long fails the conversion (the store is retried later).
STALL_SECONDS = 60.0
# The pipe to ffmpeg holds this much, so short GridFS pauses do not starve ffmpeg (Linux F_SETPIPE_SZ).
PIPE_SIZE = 1024 * 1024

STALLED = "Reading the uploaded video from the file store stalled; the conversion will be tried again."

# Top-level ISO BMFF (MP4/MOV) box types that may start a file.
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"})
# Boxes inside moov that hold the stco/co64 tables.
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})


class _Unusual(Exception):
    """This MP4 cannot be streamed safely; download it instead."""


@dataclass(frozen=True)
class _Box:
    kind: bytes
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def stage_source(bucket: str, file_id: str, *, workdir: Path, stream: bool = True) -> "Path | StreamedSource":
    """What ffmpeg.convert_to_mp3 should read: a StreamedSource, or the path of a full download in workdir
    (always, with stream=False: for a conversion that reads its source more than once).

    Raises StoredFileNotFound or StorageError like every storage read.
    """
    if not stream:
        return _download(bucket, file_id, workdir)
    with storage.open_file(bucket, file_id) as stored:  # only its files document: for the length
        length = stored.length
    head = _read(bucket, file_id, 0, min(16, length)) if length else b""
    pieces: list[bytes | tuple[int, int]] | None
    if head[4:8] in _MP4_FIRST_BOXES:
        try:
            pieces = _mp4_pieces(bucket, file_id, length)
        except _Unusual as exc:
            logger.info("%s/%s: downloading first (%s)", bucket, file_id, exc)
            pieces = None
    else:
        pieces = [(0, length)] if _streams_front_to_back(head) else None
    if pieces is None:
        return _download(bucket, file_id, workdir)
    return StreamedSource(bucket, file_id, pieces)


def _download(bucket: str, file_id: str, workdir: Path) -> Path:
    path = workdir / "source"
    storage.copy_to_path(bucket, file_id, path)
    return path


def _streams_front_to_back(head: bytes) -> bool:
    return (
        # Not MP3: from a pipe ffmpeg cannot read the encoder's end padding, and the MP3 came out a frame longer.
        head.startswith((b"\x1a\x45\xdf\xa3", b"OggS", b"fLaC", b"FLV"))
        or (head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"WAVE"))
        or head[:1] == b"\x47"  # MPEG-TS sync byte; the pipe suits TS, it was made for broadcast
    )


# --- MP4 / MOV -------------------------------------------------------------------------------


def _read(bucket: str, file_id: str, start: int, size: int) -> bytes:
    return b"".join(storage.iter_range(bucket, file_id, start, start + size - 1, chunk_size=storage.CHUNK_SIZE))


def _top_level_boxes(bucket: str, file_id: str, length: int) -> list[_Box]:
    boxes, position = [], 0
    while position < length:
        if len(boxes) == _MAX_TOP_LEVEL_BOXES:
            raise _Unusual("too many top-level boxes")
        header = _read(bucket, file_id, position, min(16, length - position))
        box = _parse_header(header, position, length)
        boxes.append(box)
        position = box.end
    return boxes


def _parse_header(data: bytes, start: int, limit: int) -> _Box:
    if len(data) < 8:
        raise _Unusual("truncated box header")
    size, kind = struct.unpack(">I4s", data[:8])
    if size == 1:
        if len(data) < 16:
            raise _Unusual("truncated box header")
        (size,) = struct.unpack(">Q", data[8:16])
    elif size == 0:  # extends to the end
        size = limit - start
    if size < 8 or start + size > limit:
        raise _Unusual(f"box {kind!r} does not fit")
    return _Box(kind, start, size)


def _mp4_pieces(bucket: str, file_id: str, length: int) -> list[bytes | tuple[int, int]]:
    boxes = _top_level_boxes(bucket, file_id, length)
    kinds = [box.kind for box in boxes]
    if kinds.count(b"moov") != 1 or b"mdat" not in kinds:
        raise _Unusual("not exactly one moov, or no mdat")
    moov = boxes[kinds.index(b"moov")]
    first_mdat = boxes[kinds.index(b"mdat")]
    if moov.start < first_mdat.start:
        return [(0, length)]  # already faststart: ffmpeg reads it front to back
    if b"moof" in kinds:
        raise _Unusual("fragmented with the moov at the end")
    if moov.size > MOOV_LIMIT:
        raise _Unusual(f"moov of {moov.size} bytes")
    moov_bytes = _read(bucket, file_id, moov.start, moov.size)
    moved = range(first_mdat.start, moov.start)  # these bytes move up by the moov's size
    rewritten = _moov_with_offsets_moved(moov_bytes, moved, moov.size, unmoved_from=moov.end)
    return [(0, first_mdat.start), rewritten, (first_mdat.start, moov.start), (moov.end, length)]


def _moov_with_offsets_moved(moov: bytes, moved: range, delta: int, *, unmoved_from: int) -> bytes:
    """The moov with every chunk offset inside `moved` increased by delta; _Unusual for anything unexpected."""
    out = bytearray(moov)
    tables = tracks = 0

    def move(offset: int) -> int:
        if offset in moved:
            return offset + delta
        if offset >= unmoved_from:
            return offset
        raise _Unusual(f"chunk offset {offset} outside the media data")

    def walk(start: int, end: int) -> None:
        nonlocal tables, tracks
        position = start
        while position < end:
            box = _parse_header(bytes(out[position : position + 16]), position, end)
            body = position + (16 if struct.unpack(">I", out[position : position + 4])[0] == 1 else 8)
            if box.kind in (b"cmov", b"mvex"):
                raise _Unusual(f"{box.kind.decode()} in moov")
            if box.kind in _CONTAINERS:
                tracks += box.kind == b"trak"
                walk(body, box.end)
            elif box.kind in (b"stco", b"co64"):
                width, code = (4, "I") if box.kind == b"stco" else (8, "Q")
                if box.end - body < 8:
                    raise _Unusual("truncated chunk offset table")
                (count,) = struct.unpack(">I", out[body + 4 : body + 8])
                table = body + 8
                if table + count * width > box.end:
                    raise _Unusual("chunk offset table longer than its box")
                fmt = f">{count}{code}"
                offsets = [move(offset) for offset in struct.unpack_from(fmt, out, table)]
                if width == 4 and offsets and max(offsets) > 0xFFFFFFFF:
                    raise _Unusual("32-bit chunk offsets would overflow")
                struct.pack_into(fmt, out, table, *offsets)
                tables += 1
            position = box.end

    walk(8 if struct.unpack(">I", moov[:4])[0] != 1 else 16, len(out))
    if not tables or tables != tracks:
        raise _Unusual(f"{tables} chunk offset tables for {tracks} tracks")
    return bytes(out)


# --- the writer ------------------------------------------------------------------------------


class StreamedSource:
    """A stored file (possibly re-laid-out) written into the pipe that is ffmpeg's stdin, by a thread.

    conversion.ffmpeg drives it: start(fd) with the pipe's write end once ffmpeg runs, failure()
    while it runs (the store's error, or a stall), stop() at the end. The thread owns the write end:
    it closes it after the last byte (ffmpeg's end of input); after a failure it is closed only by
    stop(), once ffmpeg has been stopped, so ffmpeg never mistakes a broken read for the end of the file.
    """

    def __init__(self, bucket: str, file_id: str, pieces: list, *, stall_seconds: float | None = None):
        self.bucket = bucket
        self.file_id = file_id
        self.pieces = pieces  # bytes to send as they are, or (start, end) ranges of the stored file
        self.stall_seconds = STALL_SECONDS if stall_seconds is None else stall_seconds
        self.bytes_written = 0
        self._error: BaseException | None = None
        self._reading_since: float | None = None
        self._fd: int | None = None
        self._fd_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"<StreamedSource {self.bucket}/{self.file_id}>"

    def start(self, fd: int) -> None:
        self._fd = fd
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # above /proc/sys/fs/pipe-max-size: the default 64 KiB pipe still works
            pass
        self._thread = threading.Thread(target=self._write, name=f"stream-{self.file_id}", daemon=True)
        self._thread.start()

    def failure(self) -> BaseException | None:
        if self._error is not None:
            return self._error
        since = self._reading_since
        if since is not None and time.monotonic() - since > self.stall_seconds:
            return storage.StorageError(STALLED)
        return None

    def stop(self, timeout: float = 1.0) -> None:
        """ffmpeg has exited or is about to be stopped: stop writing and end ffmpeg's input."""
        self._stopping.set()
        with self._fd_lock:
            if self._fd is not None:
                # /dev/null takes the write end's place: ffmpeg sees the end of its input now, and a
                # write still in flight (or a read stuck in the store that returns later) lands nowhere.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._fd, inheritable=False)
                os.close(devnull)
        if self._thread is not None:
            self._thread.join(timeout)  # a read stuck in the store is abandoned (daemon thread)
            if self._thread.is_alive():
                return  # it closes the descriptor itself when its read returns
        self._close()

    def _close(self) -> None:
        with self._fd_lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _chunks(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            start, end = piece
            if end <= start:
                continue
            self._reading_since = time.monotonic()
            chunks = storage.iter_range(self.bucket, self.file_id, start, end - 1, chunk_size=storage.CHUNK_SIZE)
            while True:
                self._reading_since = self._reading_since or time.monotonic()
                chunk = next(chunks, None)
                self._reading_since = None
                if chunk is None:
                    break
                yield chunk

    def _write(self) -> None:
        try:
            for chunk in self._chunks():
                view = memoryview(chunk)
                while view:
                    if self._stopping.is_set():
                        return
                    view = view[os.write(self._fd, view) :]
                self.bytes_written += len(chunk)
            self._close()  # the true end of the input
        except BrokenPipeError:
            pass  # ffmpeg stopped reading (finished, failed or stopped): its own outcome decides
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that runs ffmpeg
            self._reading_since = None
            self._error = exc
        finally:
            if self._stopping.is_set():
                self._close()
