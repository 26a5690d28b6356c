"""`edgevae serve`'s HTTP server: the files of one SITE folder, and nothing outside it.

http.server's SimpleHTTPRequestHandler maps a URL onto a path and opens it: it follows symbolic links out of its
folder (a link to /etc/passwd is served), lists folders, and an encoded NUL reaches open() and prints a traceback.
Here a request target is decoded once, strictly, and refused (400) unless it is a path of plain names; the file
is then opened one name at a time under the site folder's own descriptor with O_NOFOLLOW, so no symbolic link
is followed anywhere (in SITE or below it), and served only when it is a regular file (404 for links, FIFOs,
devices and folders; a path ending in / serves that folder's index.html, never a listing). GET and HEAD only.
Every refused request gets a 4xx status and one log line on stderr; served ones log nothing.

Stdlib only (base install).
"""

import http.server
import os
import stat
import sys
import urllib.parse

from ..contract.safe_files import escape

MAX_TARGET_CHARS = 2048  # the page's own URLs are < 64 characters; longer targets are refused unread (414)
TIMEOUT_S = 30  # a connection that sends nothing for this long is closed, so idle clients cannot pin threads
COPY_BYTES = 1 << 16
LOG_CHARS = 200  # request lines are attacker-chosen (up to 64 KiB): the log shows their start
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
                 ".wasm": "application/wasm", ".json": "application/json", ".onnx": "application/octet-stream"}
SECURITY_HEADERS = (
    # COOP same-origin + COEP require-corp make the page cross-origin isolated, which browsers require before
    # they give wasm SharedArrayBuffer, and so onnxruntime-web its threads.
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-cache"),
)


class Refused(Exception):
    """A request answered with an HTTP error status instead of a file."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def target_names(target: str) -> list:
    """The names of the file a request target asks for, relative to the site (a last name of "": the target
    ends in / and asks for that folder's index.html). Refused(4xx) for anything but a plain path: a target of another form, invalid
    percent-encoding or UTF-8, control characters (NUL included) or backslashes once decoded, empty, "." or
    ".." names (decoding comes first, so %2e%2e is ".."), and over-long targets."""
    if len(target) > MAX_TARGET_CHARS:
        raise Refused(414, f"request target longer than {MAX_TARGET_CHARS} characters")
    if target[:8].lower().startswith(("http://", "https://")):  # absolute form (RFC 9112, 3.2.2): its path counts
        target = urllib.parse.urlsplit(target).path or "/"
    if not target.startswith("/"):
        raise Refused(400, "request target is not a path")
    path = target.split("?", 1)[0].split("#", 1)[0]
    try:
        # http.server decoded the request line as latin-1; undo that, then percent-decode once, as UTF-8
        decoded = urllib.parse.unquote_to_bytes(path.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise Refused(400, "path is not UTF-8") from None
    if any(c < " " or c == "\x7f" or c == "\\" for c in decoded):
        raise Refused(400, "path holds a control character or a backslash")
    names = decoded.split("/")[1:]
    if any(name in ("", ".", "..") for name in names[:-1]) or names[-1] in (".", ".."):
        raise Refused(400, "path has an empty, '.' or '..' segment")
    return names


def open_in_site(site: str, names: list) -> tuple:
    """(descriptor, os.stat_result) of the regular file `names` inside the folder site, opened one name at a
    time with O_NOFOLLOW: a symbolic link anywhere on the way is not followed. Refused(404) otherwise."""
    if any(name.startswith(".") for name in names):  # dot-files (the site's marker) are not part of the page
        raise Refused(404, "not found")
    fd = None
    try:
        fd = os.open(site, os.O_RDONLY | os.O_DIRECTORY)
        for name in names[:-1]:
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        seen = os.stat(names[-1], dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(seen.st_mode):  # checked before open(): opening a device can have effects
            raise Refused(404, "not a regular file")
        # O_NONBLOCK: should a FIFO be swapped in after the check above, opening it must not hang
        file = os.open(names[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError:  # missing, a link (ELOOP), not a folder, unreadable, name too long
        raise Refused(404, "not found") from None
    finally:
        if fd is not None:
            os.close(fd)
    info = os.fstat(file)
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (seen.st_dev, seen.st_ino):
        os.close(file)
        raise Refused(404, "not a regular file")
    return file, info


class SiteHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the regular files inside `site` (a class attribute set by make_handler)."""

    site = ""
    timeout = TIMEOUT_S
    server_version = "edgevae-serve"
    default_request_version = "HTTP/1.0"  # not 0.9: an error to a garbled request line still carries its status

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False  # already answered with a 4xx (bad request line, version or headers)
        if self.headers.defects:  # e.g. a header line without a colon, which http.client skips silently
            self.send_error(400, "malformed header")
            return False
        if self.command not in ("GET", "HEAD"):
            self.send_response(405)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return False
        return True

    def do_GET(self):
        self._serve(body=True)

    def do_HEAD(self):
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        try:
            names = target_names(self.path)
            names[-1] = names[-1] or "index.html"
            file, info = open_in_site(self.site, names)
        except Refused as refused:
            self.send_error(refused.status, str(refused))
            return
        # A validator from the file's identity, so that a second visit with `no-cache` revalidates (a 304 with
        # no body) instead of fetching the page's scripts again; a changed file gets a new one.
        etag = f'"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"'
        with os.fdopen(file, "rb") as f:
            if etag in (self.headers.get("If-None-Match") or "").replace(" ", "").split(","):
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            kind = CONTENT_TYPES.get(os.path.splitext(names[-1])[1].lower(), "application/octet-stream")
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(info.st_size))
            self.send_header("ETag", etag)
            self.end_headers()
            left = info.st_size if body else 0
            while left > 0:
                chunk = f.read(min(COPY_BYTES, left))
                if not chunk:
                    break  # the file shrank while being sent: the client sees a short body
                self.wfile.write(chunk)
                left -= len(chunk)

    def end_headers(self):
        for key, value in SECURITY_HEADERS:
            self.send_header(key, value)
        super().end_headers()

    def log_request(self, code="-", size="-"):
        """One line for a request answered with 4xx/5xx, none for files served: the start of the request line
        (escaped: it is the client's text) and the status."""
        if int(code) >= 400:
            line = escape(getattr(self, "requestline", "")[:LOG_CHARS])
            print(f'{self.address_string()} "{line}" {int(code)}', file=sys.stderr, flush=True)

    def log_message(self, format, *args):
        pass  # the rest of http.server's logging (send_error's own line, timeouts): log_request says it all


class SiteServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer whose errors in a connection (client gone, timed out) log one line, not a traceback."""

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        if isinstance(err, ConnectionError):  # the client went away mid-answer (a page closed): nothing to report
            return
        print(f"{client_address[0]} connection dropped ({type(err).__name__}: {escape(str(err)[:LOG_CHARS])})",
              file=sys.stderr, flush=True)


def make_handler(site) -> type:
    """SiteHandler bound to site, resolved once (a SITE given as a link is served from where the link points)."""
    return type("BoundSiteHandler", (SiteHandler,), {"site": os.path.realpath(site)})
