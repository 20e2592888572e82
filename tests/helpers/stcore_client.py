"""What a script (an attacker's, or a test's) does to Streamlit's own endpoints without a browser.

`open_session` takes the XSRF cookie (the health check sets it), opens the websocket and asks for a run, as the
frontend does, and returns the session id Streamlit sends back; `put_file` then uploads to
`/_stcore/upload_file/<session>/<id>` streaming the body, reporting the status and how much the
server took before it answered.
"""
from __future__ import annotations

import contextlib
import http.client
import urllib.request
from dataclasses import dataclass

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect


@dataclass
class Session:
    xsrf: str  # the _streamlit_xsrf cookie ("" when the page did not give one)
    cookies: str  # every cookie to send back
    socket: ClientConnection | None  # kept open: an upload needs a live session
    session_id: str  # "" when the websocket was refused
    refused_with: int | None = None  # the HTTP status that refused the websocket

    def close(self) -> None:
        if self.socket is not None:
            with contextlib.suppress(Exception):
                self.socket.close()


def _xsrf_cookie(base: str, cookie: str) -> str:
    request = urllib.request.Request(f"{base}/_stcore/health", headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = response.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as err:
        headers = err.headers.get_all("Set-Cookie") or []
    for header in headers:
        name, _, value = header.split(";")[0].partition("=")
        if name == "_streamlit_xsrf":
            return value
    return ""


def open_session(base: str, cookie: str = "", timeout: float = 60) -> Session:
    """The frontend's handshake: the XSRF cookie (from the health check), websocket with the token, a rerun, the new session's id."""
    xsrf = _xsrf_cookie(base, cookie)
    cookies = "; ".join(c for c in (cookie, f"_streamlit_xsrf={xsrf}" if xsrf else "") if c)
    host = base.removeprefix("http://")
    try:
        ws = connect(f"ws://{host}/_stcore/stream", subprotocols=["streamlit", xsrf or "PLACEHOLDER_AUTH_TOKEN"],
                     origin=f"http://{host}", additional_headers={"Cookie": cookies} if cookies else None,
                     open_timeout=30, max_size=None, legacy=True)  # kept open past this call
    except InvalidStatus as err:
        return Session(xsrf, cookies, None, "", err.response.status_code)
    rerun = BackMsg()
    rerun.rerun_script.query_string = ""
    rerun.rerun_script.page_script_hash = ""
    ws.send(rerun.SerializeToString())
    while True:
        message = ForwardMsg()
        message.ParseFromString(ws.recv(timeout=timeout))
        if message.WhichOneof("type") == "new_session":
            return Session(xsrf, cookies, ws, message.new_session.initialize.session_id)


@dataclass
class Upload:
    status: int | None  # None: the connection ended with no answer
    sent: int  # bytes of the body the server took before it answered or hung up


def put_file(base: str, session: Session, size: int, declared: int | None = None, chunk: int = 64 * 1024,
             file_id: str = "file-1") -> Upload:
    """PUT a multipart file of `size` bytes, streamed; `declared` (the Content-Length) may claim more."""
    boundary = "dlxboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = declared if declared is not None else len(head) + size + len(tail)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    sent = 0
    try:
        conn.putrequest("PUT", f"/_stcore/upload_file/{session.session_id or 'no-session'}/{file_id}")
        for name, value in (("Content-Type", f"multipart/form-data; boundary={boundary}"),
                            ("Content-Length", str(length)), ("X-Xsrftoken", session.xsrf),
                            ("Cookie", session.cookies), ("Origin", base)):
            if value:
                conn.putheader(name, value)
        conn.endheaders()
        body = [head, *(b"\0" * min(chunk, size - at) for at in range(0, size, chunk)), tail]
        try:
            for part in body:
                conn.sock.sendall(part)
                sent += len(part)
        except OSError:
            pass  # the server hung up: it would not take the rest
        try:
            return Upload(conn.getresponse().status, sent)
        except (OSError, http.client.HTTPException):
            return Upload(None, sent)
    finally:
        conn.close()


def rss(pid: int) -> int:
    """Resident memory of a process in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)

