"""Safe by default: which addresses need a secret, how secrets are checked, and the app's login gate."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from dlx import auth, settings
from dlx.errors import DlxError

ROOT = Path(__file__).resolve().parent.parent
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


# -- the gate in the app ------------------------------------------------------------------------------

def open_app(**query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shows_only_the_login_form(at: AppTest) -> bool:
    return ([t.value for t in at.title] == ["dlx"] and [t.label for t in at.text_input] == ["Password or token"]
            and len(at.sidebar.children) == 0)


def log_in(at: AppTest, secret: str) -> AppTest:
    at.text_input(key="login.secret").input(secret)
    at.button[0].click()
    return at.run()


def test_with_a_password_set_the_app_shows_only_a_login_form(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)
    at = open_app()
    assert shows_only_the_login_form(at)
    assert not at.error


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_app(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)
    at = log_in(open_app(), "guess")
    assert shows_only_the_login_form(at)
    assert [e.value for e in at.error] == ["That password or token is not right."]

    at = log_in(at, PASSWORD)
    assert not at.exception
    assert [t.value for t in at.title] == ["Launch a training run"]
    assert settings.database_label() in [c.value for c in at.sidebar.code]
    at.switch_page("pages/runs.py").run()  # the session stays in
    assert [t.value for t in at.title] == ["Runs"]


def test_a_page_url_opened_before_login_shows_the_login_form(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)
    at = open_app()
    at.switch_page("pages/runs.py").run()
    assert shows_only_the_login_form(at)
    at = log_in(at, PASSWORD)
    assert [t.value for t in at.title] == ["Runs"]  # the page asked for, after the login


def test_a_page_run_on_its_own_still_asks_for_the_secret(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["dlx"] and [t.label for t in at.text_input] == ["Password or token"]


def test_the_token_in_the_url_logs_in_and_leaves_the_url(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_VARIABLE, "s3cret-token")
    at = open_app(token="s3cret-token", run="7")
    assert [t.value for t in at.title] == ["Launch a training run"]
    assert "token" not in at.query_params and at.query_params["run"] == "7"


def test_a_wrong_token_in_the_url_is_refused(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_VARIABLE, "s3cret-token")
    at = open_app(token="s3cret-tokem")
    assert shows_only_the_login_form(at)
    assert [e.value for e in at.error] == ["That password or token is not right."]


def test_without_a_secret_on_loopback_the_app_opens_and_names_its_store():
    at = open_app()
    assert [t.value for t in at.title] == ["Launch a training run"]
    sidebar = [m.value for m in at.sidebar.markdown]
    assert "**Store**" in sidebar
    assert settings.database_label() in [c.value for c in at.sidebar.code]


@pytest.fixture
def exposed_server_address():
    """The app as `streamlit run --server.address 0.0.0.0` would start it (bypassing dlx ui's checks)."""
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield
    config.set_option("server.address", before)


def test_an_app_exposed_without_a_secret_shows_nothing(exposed_server_address):
    at = open_app()
    assert [t.value for t in at.title] == []
    assert len(at.sidebar.children) == 0
    [error] = at.error
    assert "listens on 0.0.0.0 without a secret" in error.value


def test_an_app_exposed_with_a_secret_asks_for_it(exposed_server_address, monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VARIABLE, PASSWORD)
    assert shows_only_the_login_form(open_app())
