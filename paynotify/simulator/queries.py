"""Serve the providers' order-query APIs on loopback for ``paynotify simulate`` (the I/O half of
``paynotify.simulator.answers``), so that ``paynotify reconcile`` can recover lost payments.

An account is played when it configures reconciliation with a loopback ``query_url`` of the form
``http://127.0.0.1:PORT/<provider>/<account>[/...]``: the server listens on that address and
routes on the first two path segments. Every account played must use the same host and port.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from gateway.providers.alipay import AlipayAccount
from gateway.providers.query import LOOPBACK, Reconcilable
from gateway.providers.stripe import StripeAccount
from gateway.providers.wechatpay import WechatPayAccount
from gateway.providers.wechatpay_query import PATH as WECHAT_PATH
from paynotify.errors import SimulationError
from paynotify.simulator import answers
from paynotify.simulator.answers import Asked, Reply
from paynotify.simulator.plan import Plan, PlannedOrder
from paynotify.simulator.signers import SigningKeys

Played = Mapping[tuple[str, str], SigningKeys]


def played_accounts(keys: Played) -> dict[tuple[str, str], SigningKeys]:
    """Return the accounts whose query API the simulator plays (reconciling, loopback URL)."""
    out = {}
    for where, signing in keys.items():
        account = signing.account
        if (
            isinstance(account, Reconcilable)
            and account.reconciles
            and _loopback(account.query_url)
        ):
            out[where] = signing
    return out


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK


def listen_address(played: Played) -> tuple[str, int]:
    """Return the one host and port the played accounts' ``query_url`` name.

    Raises:
        SimulationError: they name several, or no port.
    """
    places = set()
    for signing in played.values():
        assert isinstance(signing.account, Reconcilable)
        parts = urlsplit(signing.account.query_url)
        places.add((parts.hostname or "", parts.port))
    if len(places) != 1 or None in {port for _, port in places}:
        raise SimulationError("the simulated accounts' query_url must share one host:port")
    host, port = places.pop()
    assert port is not None
    return host, port


def reply(
    asked: Asked, played: Played, orders: Mapping[str, PlannedOrder], now: float
) -> tuple[str | None, Reply]:
    """Route a query to its account and answer it as the provider would; return the order asked
    about (None for a request the provider would refuse) and the answer."""
    _, provider, name, *_ = [*asked.path.split("/", 3), "", "", ""]
    signing = played.get((provider, name))
    if signing is None:
        return None, Reply(404, {}, b"")
    account = signing.account

    def order_of(number: str) -> PlannedOrder | None:
        order = orders.get(number)
        return order if order is not None and order.account == name else None

    if isinstance(account, AlipayAccount):
        number = answers.alipay_order_no(asked, account)
        if number is None:
            return None, answers.ALIPAY_REFUSAL
        return number, answers.alipay_reply(order_of(number), number, signing, now=now)
    if isinstance(account, WechatPayAccount):
        if not answers.wechat_genuine(asked, account) or WECHAT_PATH not in asked.path:
            return None, answers.WECHAT_REFUSAL
        number = unquote(asked.path.rpartition("/")[2])
        nonce = secrets.token_hex(16)
        return number, answers.wechat_reply(order_of(number), number, signing, now=now, nonce=nonce)
    assert isinstance(account, StripeAccount)
    number = answers.stripe_order_no(asked, account)
    if number is None:
        return None, answers.STRIPE_REFUSAL
    return number, answers.stripe_reply(order_of(number), number, account, now=now)


class QueryServer:
    """The providers' query APIs for one plan, on a loopback port, in a background thread."""

    def __init__(self, plan: Plan, played: Played) -> None:
        self.played = dict(played)
        self.orders = {o.out_trade_no: o for o in plan.orders}
        self.asked = 0  # queries answered (refusals included)
        self.asked_orders: set[str] = set()  # orders a genuine query asked about
        host, port = listen_address(self.played)
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="query-apis")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                asked = Asked(self.command, self.path, headers, body)
                number, answer = reply(asked, server.played, server.orders, time.time())
                server.asked += 1
                if number is not None:
                    server.asked_orders.add(number)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                return None  # the reconciler logs what it asked

        return Handler

    def was_asked(self, out_trade_no: str) -> bool:
        """Return whether a genuine query asked about the order."""
        return out_trade_no in self.asked_orders

    def start(self) -> None:
        """Start serving in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
