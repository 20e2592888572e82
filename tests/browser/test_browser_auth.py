"""`dlx ui` in a real browser: on this machine only by default; its login gate asks for the secret when exposed."""
from __future__ import annotations

import contextlib
import re
import socket

import pytest

from tests.helpers.browser import free_port, new_page
from tests.helpers.ui import ctrl_c, first_line, listening_addresses, start_ui

pytestmark = [pytest.mark.browser]

LAUNCH = "Launch a training run"


def other_address() -> str | None:
    """A non-loopback address of this machine (the one its default route leaves from), if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP: picks a route, sends nothing
        address = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


def reachable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex((address, port)) == 0


@contextlib.contextmanager
def ui(*args: str, env: dict[str, str] | None = None):
    """`dlx ui` (no worker: these tests are about who gets in) until the block ends; yields its URL line."""
    process = start_ui(*args, env={"DLX_AUTOSTART_WORKER": "0", "DLX_PASSWORD": "", **(env or {})})
    try:
        yield first_line(process)
    finally:
        assert ctrl_c(process) == 0


def test_ui_listens_on_this_machine_only_and_needs_no_secret_there(browser_page):
    port = free_port()
    with ui("--port", str(port)) as line:
        assert line.startswith(f"dlx: http://127.0.0.1:{port}/ ")
        assert listening_addresses(port) == {"127.0.0.1"}
        if other := other_address():
            assert not reachable(other, port), f"the app answers on {other}"
        browser_page.goto(f"http://127.0.0.1:{port}/")
        browser_page.get_by_role("heading", name=LAUNCH).wait_for(timeout=60_000)
        browser_page.get_by_test_id("stSidebar").get_by_text("Store").wait_for()


def test_exposed_ui_asks_for_its_token_before_showing_anything(browser_page):
    port, host = free_port(), other_address()
    with ui("--host", host or "0.0.0.0", "--port", str(port), env={"DLX_TOKEN": None}) as line:
        match = re.fullmatch(rf"dlx: (http://\S+:{port}/)\?token=([0-9a-f]{{48}})  \(Ctrl-C stops the app\)", line)
        assert match, line
        token = match.group(2)
        if host:
            assert listening_addresses(port) == {host}
        base = f"http://{host or '127.0.0.1'}:{port}"

        page = browser_page
        page.goto(f"{base}/runs")  # a deep link gets the login form too
        page.get_by_text("Password or token").wait_for(timeout=60_000)
        assert page.get_by_role("heading", name="Runs").count() == 0
        assert page.get_by_test_id("stSidebar").count() == 0

        secret = page.get_by_label("Password or token", exact=True)
        secret.fill("not-the-token")
        secret.press("Enter")
        page.get_by_text("That password or token is not right.").wait_for()
        assert page.get_by_role("heading", name="Runs").count() == 0

        secret.fill(token)
        secret.press("Enter")
        page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)  # the page the link named
        page.get_by_test_id("stSidebar").get_by_text("Store").wait_for()

        navigation_shown(page)
        page.reload()  # the cookie keeps the visitor in
        page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)
        navigation_shown(page)

        linked = new_page(page.context.browser)  # another browser session, with the printed link
        linked.goto(f"{base}/?token={token}")
        linked.get_by_role("heading", name=LAUNCH).wait_for(timeout=60_000)
        linked.wait_for_url(f"{base}/")  # the token left the address bar
        navigation_shown(linked)


def navigation_shown(page) -> None:
    """Every page's link is in the sidebar (the navigation a logged-in visitor gets)."""
    nav = page.get_by_test_id("stSidebarNav")
    for title in ("Launch", "Runs", "Compare", "Explain", "Data"):
        nav.get_by_role("link", name=title).wait_for(timeout=60_000)


def test_the_printed_token_url_logs_in_for_the_whole_browser_until_a_restart(browser_page):
    port = free_port()
    with ui("--host", "0.0.0.0", "--port", str(port), env={"DLX_TOKEN": None}) as line:
        token = re.search(r"\?token=([0-9a-f]{48})", line).group(1)
        base = f"http://127.0.0.1:{port}"
        page = browser_page
        page.goto(f"{base}/runs?run=3&token={token}")  # the printed link, with a deep link's query
        page.get_by_text("There is no run #3").wait_for(timeout=60_000)  # the Runs page read run=3
        page.wait_for_url(f"{base}/runs?run=3")  # the token out of the address bar, the query kept
        navigation_shown(page)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
        page.get_by_role("heading", name="Compare runs").wait_for(timeout=60_000)

        page.reload()
        page.get_by_role("heading", name="Compare runs").wait_for(timeout=60_000)
        navigation_shown(page)

        tab = page.context.new_page()  # a new tab of the same browser: logged in too
        tab.goto(f"{base}/explain")
        tab.get_by_role("heading", name="Explain").first.wait_for(timeout=60_000)
        navigation_shown(tab)
        assert tab.get_by_text("Password or token").count() == 0
        cookie = next(c for c in page.context.cookies() if c["name"] == f"dlx-gate-{port}")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    with ui("--host", "0.0.0.0", "--port", str(port), env={"DLX_TOKEN": None}):
        tab.goto(f"{base}/runs")  # the app restarted: its old cookie no longer opens it
        tab.get_by_text("Password or token").wait_for(timeout=60_000)
        assert tab.get_by_test_id("stSidebar").count() == 0
