"""Streaming multipart uploads straight into the content-addressed store.

Starlette's own form parser spools a whole file before the handler sees it; here each file
part is hashed and written as it arrives, and the size limit stops the upload the moment it
is passed. The client's file name is kept as text only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from fabqueue.store.files import FileStore, StoreWriter, TooLarge
from fabqueue.web.storage import note_new

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 1000


class UploadError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class UploadedFile:
    field: str
    filename: str
    sha256: str
    size: int


@dataclass
class ParsedUpload:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else default


class _Collector:
    def __init__(self, store: FileStore, max_file_bytes: int, max_files: int) -> None:
        self.store = store
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.result = ParsedUpload()
        self.parts = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._writer: StoreWriter | None = None
        self._name = ""
        self._filename: str | None = None
        self._buf = bytearray()
        self.error: UploadError | None = None
        self.writers: list[StoreWriter] = []

    # -- parser callbacks
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError("too_many_parts", "too many form parts")
        self._headers = {}
        self._writer = None
        self._buf = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = opts.get(b"name", b"").decode("utf-8", "replace")
        raw = opts.get(b"filename")
        self._filename = raw.decode("utf-8", "replace") if raw is not None else None
        if self._filename is not None:
            if len(self.result.files) >= self.max_files:
                raise UploadError("too_many_files", "too many files in one upload")
            self._writer = self.store.writer(self.max_file_bytes)
            self.writers.append(self._writer)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._writer is not None:
            self._writer.write(data[start:end])
        else:
            self._buf += data[start:end]
            if len(self._buf) > MAX_FIELD_BYTES:
                raise UploadError("field_too_long", "a form field is too long")

    def on_part_end(self) -> None:
        if self._writer is not None:
            sha, size = self._writer.commit()
            note_new(sha, self._writer.created)  # the request's scope removes it if refused
            self.writers.remove(self._writer)
            self.result.files.append(UploadedFile(self._name, self._filename or "", sha, size))
            self._writer = None
        else:
            value = self._buf.decode("utf-8", "replace")
            self.result.fields.setdefault(self._name, []).append(value)


async def parse_upload(request: Request, store: FileStore, *, max_file_bytes: int,
                       max_files: int = 1) -> ParsedUpload:
    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in opts:
        raise UploadError("not_multipart", "send the file as multipart/form-data")
    declared = request.headers.get("content-length")
    # A declared length far over the limit is refused before reading a byte.
    slack = 1024 * 1024
    if declared and declared.isdigit() and int(declared) > max_file_bytes * max_files + slack:
        raise TooLarge(max_file_bytes)
    collector = _Collector(store, max_file_bytes, max_files)
    callbacks = {name: getattr(collector, name) for name in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished", "on_part_data", "on_part_end")}
    parser = MultipartParser(opts[b"boundary"], callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        for w in collector.writers:
            w.abort()
        raise UploadError("malformed", "the form data is cut off or malformed") from None
    except BaseException:
        for w in collector.writers:
            w.abort()
        raise
    return collector.result
