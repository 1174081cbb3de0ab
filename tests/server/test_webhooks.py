"""Webhooks through a real server: each signature scheme good, bad, stale and with rotated
keys; a redelivery acknowledged and starting nothing; kill -9 after the 2xx loses nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from .conftest import (
    FORMS_OLD,
    FORMS_SECRET,
    GITHUB_SECRET,
    PLAIN_SECRET,
    STRIPE_SECRET,
    WORKSPACE,
    Server,
    free_port,
    make_workspace,
)


def standard(body: bytes, delivery: str, secret: str = FORMS_SECRET,
             at: float | None = None) -> dict[str, str]:
    moment = time.time() if at is None else at
    stamp = str(int(moment))
    import datetime as dt

    signature = Webhook(secret).sign(delivery, dt.datetime.fromtimestamp(int(moment), dt.UTC),
                                     body.decode())
    return {"webhook-id": delivery, "webhook-timestamp": stamp,
            "webhook-signature": signature, "content-type": "application/json"}


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def runs_of(api: httpx.Client, playbook: str) -> list[dict[str, object]]:
    return [r for r in api.get("/api/v1/runs").json() if r["playbook"] == playbook]


def lines(root: Path, name: str) -> list[str]:
    path = root / name
    return path.read_text().splitlines() if path.exists() else []


def wait_until(check: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_standard_webhook_is_recorded_once_and_starts_its_playbook_once(
        server: Server, api: httpx.Client) -> None:
    body = json.dumps({"email": "lead-1@example.com"}).encode()
    headers = standard(body, "msg_lead_1")
    first = httpx.post(f"{server.url}/hooks/forms", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["duplicate"] is False and first.json()["id"] == "forms:msg_lead_1"
    again = httpx.post(f"{server.url}/hooks/forms", content=body, headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["seq"] == first.json()["seq"]
    wait_until(lambda: "lead-1@example.com" in lines(server.root, "leads-done.txt"))
    time.sleep(0.5)  # a second run, if the redelivery had started one, would be seen now
    assert lines(server.root, "leads.txt").count("lead-1@example.com") == 1
    assert lines(server.root, "leads-done.txt").count("lead-1@example.com") == 1


def test_standard_webhooks_refuse_bad_stale_and_unsigned(server: Server) -> None:
    body = b'{"email": "x@example.com"}'
    url = f"{server.url}/hooks/forms"
    tampered = standard(body, "msg_bad")
    assert httpx.post(url, content=body + b" ", headers=tampered).status_code == 401
    wrong_key = standard(body, "msg_wrong", secret="whsec_" + base64.b64encode(
        b"not-the-key-at-all-0123456789abc").decode())
    assert httpx.post(url, content=body, headers=wrong_key).status_code == 401
    stale = standard(body, "msg_stale", at=time.time() - 6 * 60)
    refused = httpx.post(url, content=body, headers=stale)
    assert refused.status_code == 401 and "too old" in refused.json()["error"]["message"]
    assert httpx.post(url, content=body).status_code == 401
    garbled = {**standard(body, "msg_garbled"), "webhook-signature": "v1"}
    assert httpx.post(url, content=body, headers=garbled).status_code == 401
    assert httpx.post(f"{server.url}/hooks/nobody", content=body).status_code == 404


def test_standard_webhooks_accept_either_key_while_one_is_rotated(server: Server) -> None:
    body = b'{"email": "rotated@example.com"}'
    url = f"{server.url}/hooks/forms"
    with_old = standard(body, "msg_rot_old", secret=FORMS_OLD)
    assert httpx.post(url, content=body, headers=with_old).status_code == 202
    # a sender mid-rotation signs with both keys: one signature header, two signatures
    both = standard(body, "msg_rot_both", secret=FORMS_OLD)
    new = standard(body, "msg_rot_both")["webhook-signature"]
    both["webhook-signature"] = f"v1,{base64.b64encode(b'x' * 32).decode()} {new}"
    assert httpx.post(url, content=body, headers=both).status_code == 202


def test_github_signature_event_header_and_delivery_id(server: Server,
                                                        api: httpx.Client) -> None:
    body = json.dumps({"action": "opened", "number": 7}).encode()
    headers = {"X-Hub-Signature-256": "sha256=" + hex_hmac(GITHUB_SECRET, body),
               "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "gh-delivery-1",
               "content-type": "application/json"}
    url = f"{server.url}/hooks/gh"
    ok = httpx.post(url, content=body, headers=headers)
    assert ok.status_code == 202 and ok.json()["event"] == "github.pull_request"
    assert httpx.post(url, content=body, headers=headers).json()["duplicate"] is True
    bad = {**headers, "X-Hub-Signature-256": "sha256=" + hex_hmac("other", body)}
    assert httpx.post(url, content=body, headers=bad).status_code == 401
    missing = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    assert httpx.post(url, content=body, headers=missing).status_code == 401


def stripe_header(body: bytes, at: float | None = None, secret: str = STRIPE_SECRET) -> str:
    stamp = str(int(time.time() if at is None else at))
    return f"t={stamp},v1={hex_hmac(secret, stamp.encode() + b'.' + body)}"


def test_stripe_signature_type_as_event_and_tolerance(server: Server) -> None:
    body = json.dumps({"id": "evt_123", "type": "invoice.paid",
                       "data": {"object": {"amount": 4900}}}).encode()
    url = f"{server.url}/hooks/shop"
    ok = httpx.post(url, content=body, headers={"Stripe-Signature": stripe_header(body)})
    assert ok.status_code == 202 and ok.json() == {
        "event": "invoice.paid", "id": "shop:evt_123", "seq": ok.json()["seq"],
        "duplicate": False}
    again = httpx.post(url, content=body, headers={"Stripe-Signature": stripe_header(body)})
    assert again.json()["duplicate"] is True
    stale = httpx.post(url, content=body,
                       headers={"Stripe-Signature": stripe_header(body, time.time() - 400)})
    assert stale.status_code == 401 and "replay" in stale.json()["error"]["message"]
    forged = httpx.post(url, content=body, headers={"Stripe-Signature": stripe_header(
        body, secret="whsec_other")})
    assert forged.status_code == 401
    assert httpx.post(url, content=body, headers={"Stripe-Signature": "nonsense"}
                      ).status_code == 401


def test_hmac_sha256_with_a_named_header(server: Server) -> None:
    body = b'{"ping": 1}'
    url = f"{server.url}/hooks/plain"
    signed = {"X-Signature": hex_hmac(PLAIN_SECRET, body), "X-Delivery-Id": "p-1"}
    first = httpx.post(url, content=body, headers=signed)
    assert first.status_code == 202 and first.json()["id"] == "plain:p-1"
    assert httpx.post(url, content=body, headers=signed).json()["duplicate"] is True
    # without a delivery id the body's digest is the id: a replay is recognised too
    no_id = {"X-Signature": "sha256=" + hex_hmac(PLAIN_SECRET, b'{"ping": 2}')}
    assert httpx.post(url, content=b'{"ping": 2}', headers=no_id).status_code == 202
    assert httpx.post(url, content=b'{"ping": 2}', headers=no_id).status_code == 200
    assert httpx.post(url, content=body, headers={"X-Signature": "00" * 32}).status_code == 401
    not_json = {"X-Signature": hex_hmac(PLAIN_SECRET, b"{nope")}
    assert httpx.post(url, content=b"{nope", headers=not_json).status_code == 400


def test_an_event_expression_that_gives_no_event_name_is_422(server: Server) -> None:
    body = json.dumps({"id": "evt_bad", "type": "not an event"}).encode()
    response = httpx.post(f"{server.url}/hooks/shop", content=body,
                          headers={"Stripe-Signature": stripe_header(body)})
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_event"


@pytest.mark.parametrize("seconds", [0.05])
def test_kill_9_after_the_2xx_loses_nothing_and_runs_once(tmp_path: Path, seconds: float,
                                                          store: str) -> None:
    """The 2xx comes after the event is durable: serve killed with SIGKILL right after it
    (the triggered run mid-way), then restarted, has the event and runs it exactly once
    (on PostgreSQL once the killed serve's lease on the run has lapsed)."""
    root = make_workspace(tmp_path / "shop", WORKSPACE + store)
    server = Server(root, free_port()).start()
    body = json.dumps({"email": "durable@example.com"}).encode()
    headers = standard(body, "msg_durable")
    try:
        ack = httpx.post(f"{server.url}/hooks/forms", content=body, headers=headers)
        assert ack.status_code == 202
        wait_until(lambda: "durable@example.com" in lines(root, "leads.txt"), 10)
        time.sleep(seconds)
    finally:
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    assert lines(root, "leads-done.txt") == []  # killed mid-run
    server.start()
    try:
        with server.client() as api:
            wait_until(lambda: lines(root, "leads-done.txt") == ["durable@example.com"])
            again = httpx.post(f"{server.url}/hooks/forms", content=body, headers=headers)
            assert again.status_code == 200 and again.json()["duplicate"] is True
            assert again.json()["seq"] == ack.json()["seq"]
            wait_until(lambda: all(r["status"] == "succeeded"
                                   for r in runs_of(api, "on-lead")))
            assert len(runs_of(api, "on-lead")) == 1
        time.sleep(0.5)
        assert lines(root, "leads.txt") == ["durable@example.com"]
        assert lines(root, "leads-done.txt") == ["durable@example.com"]
    finally:
        server.stop()
