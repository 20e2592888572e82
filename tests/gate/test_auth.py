"""Safe by default: which addresses need a secret, how secrets are checked, and where the app refuses to run."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from db.engine import database_label
from dlx import settings
from dlx.errors import DlxError
from dlx.gate import auth

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "streamlit_app.py"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def no_secrets_no_worker(monkeypatch):
    """Each test sets the secrets it means; the app starts no worker here."""
    monkeypatch.delenv(auth.PASSWORD_VARIABLE, raising=False)
    monkeypatch.delenv(auth.TOKEN_VARIABLE, raising=False)
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses_are_this_machine_only(host):
    assert auth.is_loopback(host)


@pytest.mark.parametrize("host", [None, "", "0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "fe80::1",
                                  "example.com", "127.0.0.1.example.com"])
def test_every_other_address_counts_as_exposed(host):
    assert not auth.is_loopback(host)


def test_a_secret_is_accepted_only_when_it_matches_exactly():
    secrets = auth.Secrets(password=PASSWORD, token="t0k3n-ß")
    assert secrets.required
    assert secrets.accepts(PASSWORD) and secrets.accepts("t0k3n-ß")
    for wrong in ("", None, "correct horse", PASSWORD + " ", "t0k3n-s", "\udcff"):
        assert not secrets.accepts(wrong)


def test_no_secret_set_means_nothing_is_required_and_nothing_accepted():
    secrets = auth.Secrets.from_env()
    assert not secrets.required
    assert not secrets.accepts("")


def test_loopback_needs_no_secret():
    assert auth.secrets_for("127.0.0.1") == auth.Secrets()


def test_an_exposed_address_gets_a_generated_token(monkeypatch):
    first, second = auth.secrets_for("0.0.0.0"), auth.secrets_for("0.0.0.0")
    assert len(first.token) == 48 and first.token != second.token
    assert first.password == ""
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)
    assert auth.secrets_for("0.0.0.0") == auth.Secrets(password=PASSWORD)  # the user's password, no token


def test_an_exposed_address_with_the_token_turned_off_and_no_password_is_refused(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_VARIABLE, "")
    with pytest.raises(DlxError) as refused:
        auth.secrets_for("192.168.1.5")
    assert refused.value.field == "host"
    assert "refusing to listen on 192.168.1.5" in str(refused.value)
    assert "DLX_PASSWORD" in str(refused.value)


def test_the_printed_url_carries_the_token():
    assert auth.app_url("127.0.0.1", 8501) == "http://127.0.0.1:8501/"
    assert auth.app_url("10.0.0.1", 80, "abc") == "http://10.0.0.1:80/?token=abc"
    assert auth.app_url("::1", 8501) == "http://[::1]:8501/"
    assert auth.app_url("0.0.0.0", 8501).startswith("http://") and "0.0.0.0" not in auth.app_url("0.0.0.0", 8501)


# -- the app where it is not guarded ----------------------------------------------------------------

def open_app(**query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shows_nothing_but(at: AppTest, reason: str) -> bool:
    """The app stopped before its frame: no title, no sidebar, only an error saying why."""
    return ([t.value for t in at.title] == [] and len(at.sidebar.children) == 0 and len(at.error) == 1
            and reason in at.error[0].value)


# The secret is asked for by dlx ui's login gate (dlx/gate/proxy.py, tests/gate/test_gate.py), no longer by a form
# in the page: a Streamlit process that sees a secret was not started behind that gate.

def test_with_a_secret_set_an_app_not_started_by_dlx_ui_shows_nothing(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)
    at = open_app()
    assert shows_nothing_but(at, "was not started by `dlx ui`")
    at.switch_page("pages/runs.py").run()
    assert shows_nothing_but(at, "was not started by `dlx ui`")


def test_a_page_run_on_its_own_with_a_secret_set_shows_nothing(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_VARIABLE, "s3cret-token")
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60).run()
    assert not at.exception
    assert [t.value for t in at.title] == [] and "was not started by `dlx ui`" in at.error[0].value


def test_the_token_in_the_url_opens_nothing_in_the_app_itself(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_VARIABLE, "s3cret-token")
    assert shows_nothing_but(open_app(token="s3cret-token"), "was not started by `dlx ui`")


def test_the_upload_limit_follows_the_setting(monkeypatch):
    assert settings.upload_max_bytes() == 2 * 1024**3
    monkeypatch.setenv("DLX_UPLOAD_MAX_BYTES", "5000000")
    assert settings.upload_max_bytes() == 5_000_000
    for bad in ("0", "-1", "2GB"):
        monkeypatch.setenv("DLX_UPLOAD_MAX_BYTES", bad)
        with pytest.raises(DlxError, match="DLX_UPLOAD_MAX_BYTES"):
            settings.upload_max_bytes()


def test_without_a_secret_on_loopback_the_app_opens_and_names_its_store():
    at = open_app()
    assert [t.value for t in at.title] == ["Launch a training run"]
    sidebar = [m.value for m in at.sidebar.markdown]
    assert "**Store**" in sidebar
    assert database_label() in [c.value for c in at.sidebar.code]


@pytest.fixture
def exposed_server_address():
    """The app as `streamlit run --server.address 0.0.0.0` would start it (bypassing dlx ui's checks)."""
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


def test_an_app_exposed_without_a_secret_shows_nothing(exposed_server_address):
    assert shows_nothing_but(open_app(), "listens on 0.0.0.0 directly")


def test_an_app_exposed_directly_shows_nothing_even_with_a_secret(exposed_server_address, monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)  # a form in the page would not guard Streamlit's endpoints
    assert shows_nothing_but(open_app(), "`dlx ui --host 0.0.0.0`")
