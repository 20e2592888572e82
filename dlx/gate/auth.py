"""Who may use the app: the secret `dlx ui` requires before exposing it beyond this machine.

On a loopback address (the default) nobody else can reach the app and no secret is needed.
Listening on any other address needs a secret, as Jupyter does: a password (`DLX_PASSWORD`) or a
token (`DLX_TOKEN`, or one `dlx ui` generates and prints in the URL `http://host:port/?token=...`).
This module holds the rules; the login gate that applies them, in front of Streamlit, is `dlx.gate.proxy`.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass

from dlx.errors import DlxError

PASSWORD_VARIABLE = "DLX_PASSWORD"
TOKEN_VARIABLE = "DLX_TOKEN"
WILDCARDS = {"", "0.0.0.0", "::"}  # addresses that mean every interface


@dataclass(frozen=True)
class Secrets:
    """The secrets any of which lets a visitor in; none set means the app is open."""

    password: str = ""
    token: str = ""

    @classmethod
    def from_env(cls) -> Secrets:
        return cls(os.environ.get(PASSWORD_VARIABLE, ""), os.environ.get(TOKEN_VARIABLE, ""))

    @property
    def required(self) -> bool:
        return bool(self.password or self.token)

    def accepts(self, given: str | None) -> bool:
        """Whether `given` is one of the secrets; compared in constant time so timing tells nothing."""
        if not given:
            return False
        offered = given.encode("utf-8", "surrogatepass")
        return any(hmac.compare_digest(offered, secret.encode("utf-8", "surrogatepass"))
                   for secret in (self.password, self.token) if secret)


def is_loopback(host: str | None) -> bool:
    """Whether only this machine can reach `host`: 127.0.0.0/8, ::1 or `localhost` (None: every interface)."""
    if host is None or host.strip() in WILDCARDS:
        return False
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so it is treated as exposed
        return False


def generate_token() -> str:
    """A fresh token for one `dlx ui` (48 hex characters, as Jupyter's)."""
    return secrets.token_hex(24)


def secrets_for(host: str) -> Secrets:
    """The secrets the app at `host` will require, generating a token where one is needed.

    Loopback: whatever the environment sets (usually nothing). Any other address: the environment's
    password or token, or a generated token when `DLX_TOKEN` is not set at all. `DLX_TOKEN=""`
    turns the generated token off (as Jupyter's empty token does), which is refused here unless a
    password is set: no app is exposed without a secret.
    """
    current = Secrets.from_env()
    if is_loopback(host) or current.required:
        return current
    if TOKEN_VARIABLE not in os.environ:
        return Secrets(token=generate_token())
    raise DlxError(f"--host: refusing to listen on {host}, which other machines can reach, without a "
                   f"secret: set {PASSWORD_VARIABLE} or {TOKEN_VARIABLE} (or unset {TOKEN_VARIABLE} to "
                   "have a token generated), or leave out --host to listen on 127.0.0.1 only", field="host")


def app_url(host: str, port: int, token: str = "") -> str:
    """The address to open: a wildcard host is shown as this machine's name; a token logs the visitor in."""
    shown = socket.gethostname() if host.strip() in WILDCARDS else host
    if ":" in shown:  # an IPv6 address
        shown = f"[{shown.strip('[]')}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
