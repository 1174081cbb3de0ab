"""Secrets masked in every form: escaped, encoded and truncated renderings in outputs, gate
``show:``, errors, the outbox and the terminal; internal error messages too; on either store
(every column of every table of a PostgreSQL store is searched as ``.aios/`` is)."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from .conftest import Runner, rows_holding, store_url
from .test_cli_runs import workspace

TOKEN = "it's \"quoted\" \\ back/slash +?&=ü-5c2e"
API_KEY = "s3cr3t-from-dotenv-91a7"
ENCODER = '''
import base64, json, urllib.parse
from aiosrun.adapters.base import Action, Adapter, PermanentError

class Encoder(Adapter):
    name = "enc"
    actions = {"encode": Action("Renders a value in many ways."),
               "explode": Action("Fails, quoting the value."),
               "crash": Action("Raises a bug, quoting the value.")}

    async def call(self, action, args, ctx):
        v = args["value"]
        forms = {"json": json.dumps(v), "ascii": json.dumps(v, ensure_ascii=True),
                 "repr": repr(v), "b64": base64.b64encode(v.encode()).decode(),
                 "b64url": base64.urlsafe_b64encode(v.encode()).decode(),
                 "basic": base64.b64encode(("user:" + v).encode()).decode(),
                 "url": urllib.parse.quote(v, safe=""), "plus": urllib.parse.quote_plus(v)}
        if action == "explode":
            raise PermanentError(f"refused {forms['repr']} / {forms['basic']} / {v[:9]}")
        if action == "crash":
            raise RuntimeError(f"bug with {v} {forms['json']}")
        return forms
'''
PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: leaky
steps:
  - {id: enc, uses: enc.encode, with: {value: "${{ secrets.TOKEN }}"}}
  - {id: key, uses: enc.encode, with: {value: "${{ secrets.API_KEY }}"}}
  - id: fails
    uses: enc.explode
    with: {value: "${{ secrets.TOKEN }}"}
    continue_on_error: true
  - id: cut
    uses: http.request
    with: {url: "${{ inputs.url }}"}
    continue_on_error: true
  - id: mail
    uses: email.send
    with: {to: ops@example.com, subject: "key ${{ secrets.API_KEY }}",
           body: "token ${{ secrets.TOKEN }} and ${{ toJSON(secrets.API_KEY) }}"}
  - id: ask
    gate: {message: "Send ${{ steps.enc.outputs.basic }}?", show: "${{ steps.enc.outputs }}"}
inputs:
  url: {type: string}
outputs:
  all: ${{ steps.enc.outputs }}
  key: ${{ steps.key.outputs }}
  json: ${{ toJSON(secrets.TOKEN) }}
"""
CRASHY = """apiVersion: aiosrun/v1
kind: Playbook
name: crashy
steps:
  - {id: bug, uses: enc.crash, with: {value: "${{ secrets.TOKEN }}"}}
"""


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    found = [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=True)[1:-1],
             repr(secret)[1:-1], urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret), base64.b64encode(raw).decode().rstrip("="),
             base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    basic = base64.b64encode(b"user:" + raw).decode()
    found.append(basic[8:-4])  # the secret's part of a Basic header, whatever its alignment
    found.append(secret[:9])  # a message cut inside the secret keeps no prefix of it
    return found


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = ("x" * 195 + TOKEN).encode()  # cut at 200 characters: inside the secret
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_no_rendering_of_a_secret_is_kept_or_shown(aiosrun: Runner, tmp_path: Path,
                                                   store: str) -> None:
    workspace(tmp_path, leaky=PLAYBOOK, crashy=CRASHY)
    (tmp_path / "aios.yaml").write_text(
        "apiVersion: aiosrun/v1\nkind: Workspace\n" + store + "secrets:\n  env: [TOKEN]\n"
        "adapters:\n  http:\n    allow_hosts: ['127.0.0.1']\n")
    (tmp_path / ".env").write_text(f"API_KEY={API_KEY}\n")
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "enc.py").write_text(ENCODER)
    env = {"TOKEN": TOKEN}
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert aiosrun("apply", env=env).returncode == 0
        url = f"http://127.0.0.1:{server.server_port}/x"
        run = aiosrun("run", "leaky", "-i", f"url={url}", "--format", "json", env=env)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    assert run.returncode == 3, run.stderr
    run_id = json.loads(run.stdout)["id"]
    printed = [run.stdout + run.stderr]
    for args in (["inbox"], ["status", run_id], ["status", run_id, "--format", "json"],
                 ["timeline", run_id], ["timeline", run_id, "--format", "json"],
                 ["approve", run_id], ["run", "crashy"]):
        done = aiosrun(*args, env=env)
        assert "Traceback" not in done.stderr
        printed.append(done.stdout + done.stderr)
    assert "answered 400" in printed[3]  # the cut error body is there, masked
    assert list((tmp_path / ".aios" / "outbox").glob("*.eml"))
    kept = [p for p in (tmp_path / ".aios").rglob("*") if p.is_file()]
    for secret in (TOKEN, API_KEY):
        for form in forms(secret):
            for output in printed:
                assert form not in output, (form, output)
            for path in kept:
                assert form.encode() not in path.read_bytes(), (form, path)
    url = store_url(tmp_path)
    if url is not None:
        assert rows_holding(url, [f.encode() for s in (TOKEN, API_KEY) for f in forms(s)]) == []
