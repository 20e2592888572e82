"""`dlx ui --host` behind its login gate, attacked as a script would: real processes, real HTTP and websockets.

One exposed app serves the module (its uploads capped at 4 MB); every request goes to 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import http.client
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.helpers.browser import free_port
from tests.helpers.stcore_client import open_session, put_file, rss
from tests.helpers.ui import children, ctrl_c, first_line, listening_addresses, running, start_ui

MB = 2**20
UPLOAD_MAX = 4 * MB


@dataclass
class Ui:
    process: object
    port: int
    token: str
    stderr: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app_pid(self) -> int:
        """The Streamlit process: `dlx ui` itself where it became the app (no gate), else its child."""
        candidates = [self.process.pid, *children(self.process.pid)]
        [pid] = [p for p in candidates if b"streamlit" in Path(f"/proc/{p}/cmdline").read_bytes()]
        return pid

    def app_port(self) -> int:
        command = Path(f"/proc/{self.app_pid()}/cmdline").read_bytes().decode().split("\0")
        return int(command[command.index("--server.port") + 1])

    def log(self) -> str:
        return "".join(self.stderr)


@contextlib.contextmanager
def dlx_ui(home: Path, *args: str, env: dict[str, str | None] | None = None):
    """`dlx ui` with no worker until the block ends (Ctrl-C, which must end it cleanly); stderr kept as it comes."""
    port = free_port()
    process = start_ui(*args, "--port", str(port), env={"DLX_HOME": str(home), "DLX_AUTOSTART_WORKER": "0",
                                                        "DLX_PASSWORD": None, "DLX_TOKEN": None, **(env or {})})
    line = first_line(process)
    token = re.search(r"\?token=([0-9a-f]{48})", line)
    ui = Ui(process, port, token.group(1) if token else "")
    drain = threading.Thread(target=lambda: ui.stderr.extend(iter(process.stderr.readline, "")), daemon=True)
    drain.start()
    try:
        yield ui
    finally:
        app = ui.app_pid()
        assert ctrl_c(process) == 0
        assert not running(app)  # the app went with it


@pytest.fixture(scope="module")
def exposed(tmp_path_factory):
    with dlx_ui(tmp_path_factory.mktemp("gate"), "--host", "0.0.0.0",
                env={"DLX_UPLOAD_MAX_BYTES": str(UPLOAD_MAX)}) as ui:
        yield ui


def request(ui: Ui, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def log_in(ui: Ui) -> str:
    """The gate's cookie, as `name=value`, from the printed token URL."""
    response = request(ui, "GET", f"/?token={ui.token}")
    assert response.status == 303
    return response.getheader("set-cookie").split(";")[0]


def test_the_app_listens_on_loopback_behind_the_gate_and_is_told_it_is_exposed(exposed):
    assert listening_addresses(exposed.port) == {"0.0.0.0"}
    assert listening_addresses(exposed.app_port()) == {"127.0.0.1"}
    environment = dict(item.split("=", 1) for item in
                       Path(f"/proc/{exposed.app_pid()}/environ").read_text().split("\0") if "=" in item)
    assert environment.get("DLX_EXPOSED") == "1"
    assert "DLX_TOKEN" not in environment and "DLX_PASSWORD" not in environment  # only the gate knows it


def test_an_unauthenticated_upload_is_refused_unread_and_takes_no_memory(exposed):
    app, gate = exposed.app_pid(), exposed.process.pid
    before = rss(app), rss(gate)
    session = open_session(exposed.base)  # the attack: a session, then uploads to it
    assert session.refused_with == 403 and not session.session_id
    for attempt in range(4):
        upload = put_file(exposed.base, session, 40 * MB, declared=150 * MB, file_id=f"big-{attempt}")
        assert upload.status == 401
        assert upload.sent < 20 * MB  # answered and hung up: no more than the sockets' buffers went out
    after = rss(app), rss(gate)
    assert after[0] - before[0] < 3 * MB, (before, after)
    assert after[1] - before[1] < 3 * MB, (before, after)


def test_a_websocket_without_the_cookie_or_from_another_site_is_refused(exposed):
    url = f"ws://127.0.0.1:{exposed.port}/_stcore/stream"
    origin = f"http://127.0.0.1:{exposed.port}"
    cookie = log_in(exposed)
    for headers, sent_origin in (({}, origin), ({"Cookie": "dlx-gate-1=a.b"}, origin),
                                 ({"Cookie": cookie}, "http://evil.example"), ({"Cookie": cookie}, None)):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, subprotocols=["streamlit"], origin=sent_origin, additional_headers=headers, open_timeout=30)
        assert refused.value.response.status_code == 403
    with connect(url, subprotocols=["streamlit"], origin=origin, additional_headers={"Cookie": cookie},
                 open_timeout=30) as ws:  # with both, the gate lets it through to Streamlit
        assert ws.subprotocol == "streamlit"


STREAMLIT_PATHS = ["/_stcore/health", "/_stcore/host-config", "/_stcore/stream", "/_stcore/metrics",
                   "/_stcore/script-health-check", "/_stcore/upload_file/s/f", "/_stcore/anything/else",
                   "/_stcore/component/x/index.html", "/_stcore/bidi-components/x/y.js", "/media/abc.png",
                   "/media/abc.mp4", "/static/js/index.js", "/component/c/index.html", "/app/static/x.png"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
def test_every_streamlit_endpoint_is_refused_without_the_cookie(exposed, method):
    for path in STREAMLIT_PATHS:
        response = request(exposed, method, path, body=b"x" * 1000 if method in ("POST", "PUT") else None)
        assert response.status == 401, (method, path, response.status)
        assert b"ok" != response.body and b"<script" not in response.body
        assert response.getheader("set-cookie") is None  # not even Streamlit's XSRF cookie
    forged = {"Cookie": f"dlx-gate-{exposed.port}=00.{'0' * 64}"}
    assert request(exposed, method, "/_stcore/health", headers=forged).status == 401
    if method == "GET":  # the cookie opens them: the gate is not a wall
        response = request(exposed, "GET", "/_stcore/health", headers={"Cookie": log_in(exposed)})
        assert (response.status, response.body) == (200, b"ok")


def test_the_token_url_sets_a_strict_cookie_and_leaves_the_address_bar(exposed):
    response = request(exposed, "GET", f"/runs?run=3&token={exposed.token}")
    assert response.status == 303
    assert response.getheader("location") == "/runs?run=3"  # the deep link kept, the token gone
    name, _, flags = response.getheader("set-cookie").partition(";")
    assert name.startswith(f"dlx-gate-{exposed.port}=")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {flag.strip() for flag in flags.split(";")}
    page = request(exposed, "GET", "/runs?run=3", headers={"Cookie": name})
    assert page.status == 200 and b"<script" in page.body  # Streamlit's page now
    again = request(exposed, "GET", f"/?token={exposed.token}", headers={"Cookie": name})
    assert (again.status, again.getheader("location")) == (303, "/")  # a logged-in visitor's token is dropped too


def test_the_login_form_keeps_a_deep_link_and_never_sends_elsewhere(exposed):
    page = request(exposed, "GET", "/compare?runs=1,2")
    assert page.status == 401 and b'<label for="secret">Password or token</label>' in page.body
    assert b'value="/compare?runs=1,2"' in page.body
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for target, expected in (("/compare?runs=1%2C2", "/compare?runs=1,2"), ("//evil.example/", "/"),
                             ("https://evil.example/", "/"), ("/\\evil.example", "/")):
        body = f"secret={exposed.token}&next={target}".encode()
        response = request(exposed, "POST", "/_dlx/login", body=body, headers=form)
        assert (response.status, response.getheader("location")) == (303, expected)
    cross_site = request(exposed, "POST", "/_dlx/login", body=f"secret={exposed.token}".encode(),
                         headers={**form, "Origin": "http://evil.example"})
    assert cross_site.status == 403


def test_wrong_secrets_are_answered_ever_later_and_logged(exposed):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    took = []
    for guess in ("guess-1", "guess-2", "guess-3"):
        started = time.monotonic()
        response = request(exposed, "POST", "/_dlx/login", body=f"secret={guess}&next=/".encode(), headers=form)
        took.append(time.monotonic() - started)
        assert response.status == 401 and b"That password or token is not right." in response.body
        assert response.getheader("set-cookie") is None
    assert took[0] >= 0.5 and took[1] >= 1.0 and took[2] >= 2.0, took
    wrong_token = request(exposed, "GET", "/?token=" + "0" * 48)
    assert wrong_token.status == 401 and b"not right" in wrong_token.body
    lines = [line for line in exposed.log().splitlines() if "wrong password or token from 127.0.0.1" in line]
    assert len(lines) >= 4 and "(4 in a row)" in lines[-1]
    assert exposed.token not in exposed.log() and "guess-1" not in exposed.log()  # no secret in the log
    ok = request(exposed, "POST", "/_dlx/login", body=f"secret={exposed.token}".encode(), headers=form)
    assert ok.status == 303  # the right secret still gets in, and the count starts again
    started = time.monotonic()
    assert request(exposed, "POST", "/_dlx/login", body=b"secret=guess-4", headers=form).status == 401
    assert time.monotonic() - started < 2.0


def test_a_logged_in_upload_streams_through_and_is_capped(exposed):
    session = open_session(exposed.base, log_in(exposed))
    assert session.session_id
    try:
        assert put_file(exposed.base, session, 3 * MB).status == 204
        too_big = put_file(exposed.base, session, 12 * MB, file_id="too-big")
        assert too_big.status == 413 and too_big.sent < 12 * MB
    finally:
        session.close()


def test_a_loopback_ui_has_no_gate_and_caps_uploads_at_the_setting(tmp_path):
    with dlx_ui(tmp_path, env={"DLX_UPLOAD_MAX_BYTES": str(2 * MB)}) as ui:
        assert ui.token == "" and ui.app_port() == ui.port
        assert ui.app_pid() == ui.process.pid  # no launcher left beside the app: `dlx ui` became it
        environment = Path(f"/proc/{ui.app_pid()}/environ").read_bytes()
        assert b"DLX_EXPOSED" not in environment
        session = open_session(ui.base)  # this machine only: no secret
        try:
            assert put_file(ui.base, session, MB).status == 204
            assert put_file(ui.base, session, 3 * MB, file_id="too-big").status == 413  # 200 MB allowed before
        finally:
            session.close()


def test_a_password_puts_the_gate_in_front_on_loopback_too(tmp_path):
    with dlx_ui(tmp_path, env={"DLX_PASSWORD": "correct horse"}) as ui:
        assert ui.token == "" and ui.app_port() != ui.port
        assert listening_addresses(ui.port) == {"127.0.0.1"}
        assert request(ui, "GET", "/_stcore/health").status == 401
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        response = request(ui, "POST", "/_dlx/login", body=b"secret=correct+horse&next=/runs", headers=form)
        assert (response.status, response.getheader("location")) == (303, "/runs")
        cookie = response.getheader("set-cookie").split(";")[0]
        assert request(ui, "GET", "/_stcore/health", headers={"Cookie": cookie}).body == b"ok"
