"""`edgevae serve` never leaves SITE (issue 21, item 3): a real server on 127.0.0.1 fed raw requests, as an
attacker sends them. Only regular files inside SITE are served, never through a symbolic link; every malformed
or refused request gets a 4xx and one log line, never a traceback. Needs no web/ or node (the SITE is made by
hand with the two files make_server looks for)."""

import os
import socket
import stat
import subprocess
import sys
import threading

import pytest

from edgevae.runtime import InputError
from edgevae.runtime.site import server as site_server
from edgevae.runtime.site.page import make_server

SECRET = b"TOP-SECRET-outside-the-site"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    (root / "secret.txt").write_bytes(SECRET)
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_bytes(SECRET)
    site = root / "site"
    (site / "model").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>page</title>")
    (site / "page.js").write_text("export const x = 1;")
    (site / "model" / "manifest.json").write_text("{}")
    (site / ".edgevae-site").write_text("marker")
    (site / "link-out.txt").symlink_to(root / "secret.txt")  # a link to a file outside
    (site / "link-dir").symlink_to(root / "outside", target_is_directory=True)  # a linked folder outside
    (site / "link-in.js").symlink_to(site / "page.js")  # even a link that stays inside is not followed
    (site / "link-abs").symlink_to("/etc")
    os.mkfifo(site / "fifo.js")
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(site / "socket.js"))  # the socket file stays after close
    try:  # a character device (/dev/zero's numbers): needs CAP_MKNOD, so not everywhere
        os.mknod(site / "zero.js", 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    except OSError:
        pass
    (site / "emptydir").mkdir()
    return site


@pytest.fixture(scope="module")
def server(site):
    srv = make_server(site, 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def send(port: int, data: bytes, timeout: float = 120.0) -> tuple:
    """(status, headers, body) of the server's answer to the raw bytes `data`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.decode("latin-1").split(": ", 1) for line in lines[1:] if b": " in line)
    return int(lines[0].split()[1]), headers, body


def get(port: int, target: bytes, method: bytes = b"GET") -> tuple:
    return send(port, method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")


SERVED = [
    (b"/", b"<!doctype html>", "text/html; charset=utf-8"),
    (b"/index.html", b"<!doctype html>", "text/html; charset=utf-8"),
    (b"/page.js?v=1", b"export const", "text/javascript"),
    (b"/model/manifest.json", b"{}", "application/json"),
    (b"/%70age.js", b"export const", "text/javascript"),  # percent-encoding of an ordinary letter
    (b"http://127.0.0.1/page.js", b"export const", "text/javascript"),  # absolute form (RFC 9112 3.2.2)
]


@pytest.mark.parametrize("target, start, kind", SERVED, ids=[t.decode() for t, _, _ in SERVED])
def test_files_of_the_site_are_served_with_isolation_headers(server, target, start, kind, capsys):
    status, headers, body = get(server.server_address[1], target)
    assert status == 200 and body.startswith(start) and headers["Content-Type"] == kind
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert int(headers["Content-Length"]) == len(body)
    assert capsys.readouterr().err == ""  # files served: no log line


REFUSED = [
    # symbolic links, to files or folders, outside or inside
    (b"/link-out.txt", 404), (b"/link-dir/secret.txt", 404), (b"/link-dir/", 404), (b"/link-in.js", 404),
    (b"/link-abs/passwd", 404),
    # climbing out, plain and encoded in every case
    (b"/../secret.txt", 400), (b"/%2e%2e/secret.txt", 400), (b"/%2E%2E/secret.txt", 400), (b"/.%2e/secret.txt", 400),
    (b"/model/..%2f..%2fsecret.txt", 400), (b"/model/%2e%2e%2F%2e%2e%2Fsecret.txt", 400), (b"/./index.html", 400),
    (b"/model//manifest.json", 400), (b"http://127.0.0.1/../secret.txt", 400),
    # NUL and other control characters, raw and encoded
    (b"/%00", 400), (b"/index.html%00.js", 400), (b"/page.js%0a", 400), (b"/%7f", 400),
    # backslashes, raw and encoded
    (b"/..\\secret.txt", 400), (b"/%5c..%5csecret.txt", 400), (b"/model\\manifest.json", 400),
    # invalid UTF-8: a lone byte, an overlong encoding of '.', a raw byte in the request line
    (b"/%ff", 400), (b"/%c0%ae%c0%ae/secret.txt", 400), (b"/\xff\xfe", 400),
    # over-long targets: past our limit, past http.server's request-line limit
    (b"/" + b"a" * 3000, 414), (b"/" + b"a%2f" * 600, 414), (b"/" + b"a" * 70000, 414),
    # not a file: FIFO (must not hang), folders (no listing), missing, dot-files, non-path targets
    (b"/fifo.js", 404), (b"/socket.js", 404), (b"/zero.js", 404), (b"/model/", 404), (b"/model", 404), (b"/emptydir/", 404), (b"/nothing.js", 404),
    (b"/.edgevae-site", 404), (b"*", 400), (b"index.html", 400), (b"127.0.0.1:80", 400), (b"ftp://x/index.html", 400),
]


@pytest.mark.parametrize("target, status", REFUSED, ids=[repr(t[:40])[2:-1] for t, _ in REFUSED])
def test_hostile_targets_get_a_4xx_and_one_log_line(server, target, status, capsys):
    got, _, body = get(server.server_address[1], target)  # a blocked server (a FIFO opened) times the socket out
    assert got == status and SECRET not in body and b"root:" not in body
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f" {status}") and len(err[0]) < 300, err


def test_head_sends_headers_only_and_other_methods_get_405(server, capsys):
    port = server.server_address[1]
    status, headers, body = get(port, b"/page.js", b"HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(b"export const x = 1;")
    assert get(port, b"/link-out.txt", b"HEAD")[0] == 404
    for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"PATCH"):
        status, headers, body = get(port, b"/index.html", method)
        assert status == 405 and headers["Allow"] == "GET, HEAD" and body == b"", method
    assert len(capsys.readouterr().err.strip().splitlines()) == 7


MALFORMED = [b"garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n", b"GET\r\n\r\n",
             b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"GET / HTTP/1.1\r\nBad header line\r\n\r\n"]


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_get_a_4xx_and_at_most_one_log_line(server, request_bytes, capsys):
    status, _, _ = send(server.server_address[1], request_bytes)
    assert 400 <= status < 500 or status == 505  # 505: HTTP version not supported, http.server's own answer
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err


def test_idle_connection_is_closed_after_the_timeout(site, monkeypatch, capsys):
    monkeypatch.setattr(site_server.SiteHandler, "timeout", 0.5)
    srv = make_server(site, 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        # the socket's timeout only turns a server that never hangs up into a failure; 0.5 s is the server's own
        with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=120) as s:
            s.sendall(b"GET /index.html HTTP/1.1\r\n")  # and then nothing
            assert s.recv(100) == b""  # the server hung up
    finally:
        srv.shutdown()
        srv.server_close()
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1


def test_target_names_decodes_once_and_refuses_everything_but_plain_names():
    assert site_server.target_names("/model/manifest.json") == ["model", "manifest.json"]
    assert site_server.target_names("/") == [""]
    assert site_server.target_names("/%2541") == ["%41"]  # decoded once: %25 is '%', the rest stays a name
    assert site_server.target_names("/caf%C3%A9.js") == ["café.js"]
    for bad in ("/a/../b", "/%2e%2e", "/a%00", "/a%5cb", "/%80", "relative", ""):
        with pytest.raises(site_server.Refused):
            site_server.target_names(bad)


def test_make_server_refuses_bad_arguments_naming_them(site):
    for kwargs, name in (({"port": "8000"}, "port"), ({"port": 70000}, "port"), ({"port": -1}, "port"),
                         ({"port": True}, "port"), ({"port": 80.0}, "port"), ({"host": 127}, "host")):
        with pytest.raises(InputError, match=name):
            make_server(site, **{"port": 0, **kwargs})
    for bad in (None, 3, b"/tmp", "", "a\0b"):
        with pytest.raises(InputError, match="site"):
            make_server(bad, 0)


def test_serve_cli_logs_one_line_per_refused_request_and_no_traceback(site):
    proc = subprocess.Popen([sys.executable, "-m", "edgevae", "serve", "--site", str(site), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/")[0])
        targets = [b"/link-out.txt", b"/%00", b"/index.html%00", b"/%2e%2e/secret.txt", b"/%ff", b"/fifo.js", b"/model/"]
        for target in targets:
            assert get(port, target)[0] in (400, 404)
        assert get(port, b"/index.html")[0] == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1] == "edgevae serve: terminated by SIGTERM", err
    assert len(lines) == len(targets) + 1, err


def test_a_second_request_with_the_etag_gets_a_304_and_no_body(server, site):
    """The page's second visit revalidates (Cache-Control: no-cache) instead of downloading its scripts again;
    a changed file is sent again."""
    port = server.server_address[1]
    status, headers, body = get(port, b"/page.js")
    assert status == 200 and body and headers["ETag"].startswith('"')
    ask = lambda etag: send(port, b"GET /page.js HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: " + etag.encode()  # noqa: E731
                            + b"\r\nConnection: close\r\n\r\n")
    status, again, body = ask(headers["ETag"])
    assert status == 304 and body == b"" and again["ETag"] == headers["ETag"]
    assert ask('"other", ' + headers["ETag"])[0] == 304  # a list of validators
    original = (site / "page.js").read_bytes()  # the site is shared by this module's tests
    try:
        (site / "page.js").write_text("export const changed = 1;\n")
        status, _, body = ask(headers["ETag"])
        assert status == 200 and b"changed" in body
    finally:
        (site / "page.js").write_bytes(original)
