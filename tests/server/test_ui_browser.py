"""The operator's page in a real browser: Playwright driving Debian's Chromium against a real
``aiosrun serve --http``. Login, approve, reject, skip with outputs, a timeline that grows
while the run runs, a phone's width, XSS attempts and a POST without the CSRF token. The
screenshots in docs/ui/ are taken here (``AIOS_SCREENSHOTS=1`` writes them there)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import TOKEN, Server, aiosrun_command, clean_env, free_port, make_workspace

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "ui"


def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``docs/ui`` with ``AIOS_SCREENSHOTS=1`` (to refresh the
    docs), else the test's own folder, so a test run leaves the work tree as it was."""
    folder = DOCS_SHOTS if os.environ.get("AIOS_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
XSS = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2">'

UI_PLAYBOOKS = {
    "welcome": """apiVersion: aiosrun/v1
kind: Playbook
name: welcome
inputs:
  customer: {type: object}
  note: {type: string, default: ""}
steps:
  - id: draft
    uses: debug.echo
    with:
      value: "Hello ${{ inputs.customer.name }}, your ${{ inputs.customer.plan }} plan is ready."
  - id: review
    gate:
      message: "Send the welcome mail to ${{ inputs.customer.email }}? ${{ inputs.note }}"
      show:
        to: ${{ inputs.customer.email }}
        subject: Welcome aboard
        body: ${{ steps.draft.outputs.value }}
        account: {plan: "${{ inputs.customer.plan }}", seats: 3, trial_days: 14}
  - id: send
    uses: debug.echo
    with: {value: sent}
""",
    "sync": """apiVersion: aiosrun/v1
kind: Playbook
name: sync
steps:
  - id: fetch
    uses: debug.fail
    with: {times: 1, error: transient, value: fetched}
    retry: {max_attempts: 2, max_delay: 200ms}
  - id: crm
    uses: debug.fail
    with: {times: 5, error: permanent, value: pushed}
    escalate: {after_attempts: 1, message: "The CRM refused the record"}
  - id: after
    uses: debug.echo
    with: {value: "${{ steps.crm.outputs.value }}"}
outputs:
  crm: ${{ steps.crm.outputs.value }}
""",
    "steady": """apiVersion: aiosrun/v1
kind: Playbook
name: steady
steps:
  - id: one
    uses: debug.sleep
    with: {seconds: 0.7}
  - id: two
    uses: debug.sleep
    with: {seconds: 0.7}
  - id: three
    uses: debug.sleep
    with: {seconds: 0.7}
""",
}


@pytest.fixture(scope="module")
def starting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Future[Any]]]:
    """The workspace, and `serve` coming up in a thread while Chromium starts."""
    root = tmp_path_factory.mktemp("ui") / "shop"
    root.mkdir()
    (root / "playbooks").mkdir()
    for name, text in UI_PLAYBOOKS.items():
        (root / "playbooks" / f"{name}.yaml").write_text(text, "utf-8")
    make_workspace(root, "apiVersion: aiosrun/v1\nkind: Workspace\nserver:\n  tokens: "
                   '["${{ secrets.API_TOKEN }}"]\n')
    (root / "playbooks" / "steady.yaml").write_text(  # a second version, for the diff
        UI_PLAYBOOKS["steady"].replace("seconds: 0.7}\n  - id: three", "seconds: 0.6}\n"
                                       "  - id: three"), "utf-8")
    (root / "knowledge" / "customers").mkdir(parents=True)  # memory ingests it when opened
    (root / "knowledge" / "customers" / "ada.md").write_text(
        "Ada Lovelace pays yearly for the pro plan.\n", "utf-8")
    done = subprocess.run([*aiosrun_command(), "apply"], cwd=root, capture_output=True,
                          text=True, timeout=60, env=clean_env())
    assert done.returncode == 0, done.stderr
    server = Server(root, free_port())
    with ThreadPoolExecutor(1) as pool:
        coming = pool.submit(server.start)
        yield server, coming
        coming.result(timeout=60)
    server.stop()


@pytest.fixture(scope="module")
def site(starting: tuple[Server, Future[Any]], browser: Any) -> Server:
    server, coming = starting
    coming.result(timeout=60)
    return server


@pytest.fixture(scope="module")
def browser(starting: tuple[Server, Future[Any]]) -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def api(site: Server) -> Iterator[httpx.Client]:
    with site.client() as client:
        yield client


@pytest.fixture(scope="module")
def tab(browser: Any, site: Server) -> Iterator[Any]:
    """One logged-in tab for the module (a new browser context costs about a second)."""
    context = browser.new_context(viewport={"width": 1000, "height": 900}, base_url=site.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/ui/inbox")
    page.fill("#token", TOKEN)
    page.click("button:has-text(\"Log in\")")
    page.wait_for_url("**/ui/inbox")
    yield page
    assert dialogs == []  # no alert() from anything the page showed
    context.close()


def open_page(tab: Any, path: str = "/ui/inbox", width: int = 1000) -> Any:
    tab.set_viewport_size({"width": width, "height": 900})
    tab.goto(path)
    return tab


def start(api: httpx.Client, playbook: str, inputs: dict[str, Any] | None = None,
          wait: str = "10s") -> dict[str, Any]:
    answer = api.post(f"/api/v1/runs?wait={wait}", json={"playbook": playbook,
                                                         "inputs": inputs or {}})
    assert answer.status_code in (200, 202), answer.text
    run: dict[str, Any] = answer.json()
    return run


def customer(name: str = "Ada Lovelace", note: str = "") -> dict[str, Any]:
    return {"customer": {"name": name, "email": "ada@example.com", "plan": "pro"},
            "note": note}


def test_login_sets_a_strict_httponly_cookie_and_refuses_a_wrong_token(
        browser: Any, site: Server) -> None:
    context = browser.new_context(base_url=site.url)
    page = context.new_page()
    page.goto("/ui/runs")
    assert page.url.endswith("/ui/login?next=/ui/runs")
    page.fill("#token", "not-the-token")
    page.click("button:has-text(\"Log in\")")
    page.wait_for_selector(".flash.error")
    assert "That token is not one of server.tokens." in page.inner_text("main")
    page.fill("#token", TOKEN)
    page.click("button:has-text(\"Log in\")")
    page.wait_for_url("**/ui/runs")
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # out of the page's scripts' reach
    context.close()


def test_approve_a_gate_from_the_inbox(
        tab: Any, site: Server, api: httpx.Client, tmp_path: Path) -> None:
    run = start(api, "welcome", customer())
    escalated = start(api, "sync")
    assert run["status"] == "waiting" and escalated["status"] == "waiting"
    page = open_page(tab)
    card = page.locator(f"[id='{run['id']}-review']")
    assert "Send the welcome mail to ada@example.com?" in card.inner_text()
    assert card.locator("table.kv th", has_text="trial_days").count() == 1
    assert "send" in card.locator("section.next").inner_text()  # what approving starts
    page.screenshot(path=str(shots(tmp_path) / "inbox.png"), full_page=True)
    card.locator("textarea").fill("looks right")
    card.locator("button", has_text="Approve").click()
    page.wait_for_selector(".flash.ok")
    assert f"Approved gate 'review' of run {run['id']}." in page.inner_text(".flash.ok")
    after = api.get(f"/api/v1/runs/{run['id']}").json()
    assert after["status"] == "succeeded"
    assert page.locator(f"[id='{run['id']}-review']").count() == 0


def test_reject_a_gate(
        tab: Any, site: Server, api: httpx.Client) -> None:
    run = start(api, "welcome", customer("Grace"))
    page = open_page(tab)
    card = page.locator(f"[id='{run['id']}-review']")
    card.locator("textarea").fill("wrong address")
    card.locator("button", has_text="Reject").click()
    page.wait_for_selector(".flash.ok")
    after = api.get(f"/api/v1/runs/{run['id']}").json()
    assert after["status"] in ("failed", "compensated")
    timeline = api.get(f"/api/v1/runs/{run['id']}/timeline").json()
    decided = [e for e in timeline["events"] if e["type"] == "GateDecided"]
    assert decided[0]["decision"] == "rejected" and decided[0]["comment"] == "wrong address"


def test_skip_an_escalation_with_outputs_then_see_the_run(
        tab: Any, site: Server, api: httpx.Client, tmp_path: Path) -> None:
    run = start(api, "sync")
    page = open_page(tab)
    card = page.locator(f"[id='{run['id']}-crm']")
    assert "The CRM refused the record" in card.inner_text()
    assert "permanent" in card.inner_text()
    card.locator("textarea").fill('{"value": "typed in by hand"}')
    card.locator("button", has_text="Skip with outputs").click()
    page.wait_for_selector(".flash.ok")
    after = api.get(f"/api/v1/runs/{run['id']}").json()
    assert after["status"] == "succeeded"
    assert after["outputs"] == {"crm": "typed in by hand"}
    page.goto(f"/ui/runs/{run['id']}")
    bars = page.locator("svg.gantt rect.bar")
    assert page.locator("svg.gantt rect.bar.failed").count() >= 2  # fetch's retry, crm
    assert page.locator("svg.gantt rect.bar.escalation").count() == 1
    assert bars.count() >= 5
    page.screenshot(path=str(shots(tmp_path) / "run-timeline.png"), full_page=True)


def test_the_timeline_grows_while_the_run_runs(
        tab: Any, site: Server, api: httpx.Client) -> None:
    page = open_page(tab)
    run = start(api, "steady", wait="0ms")  # the second version: 0.7 s, 0.6 s, 0.7 s
    page.goto(f"/ui/runs/{run['id']}")
    seen = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen.append(page.locator("svg.gantt rect.bar").count())
        if page.locator(".run-facts[data-status='succeeded']").count():
            break
        page.wait_for_timeout(100)
    assert page.locator(".run-facts[data-status='succeeded']").count() == 1  # no reload
    assert page.locator("svg.gantt rect.bar.ok").count() == 3
    assert len(set(seen)) >= 3, seen  # bars appeared one after another


def test_a_phone_sees_everything_without_scrolling_sideways(
        tab: Any, site: Server, api: httpx.Client, tmp_path: Path) -> None:
    run = start(api, "welcome", customer("Katherine Johnson, with a long name " * 3))
    page = open_page(tab, width=375)
    for path in ("/ui/inbox", f"/ui/runs/{run['id']}", "/ui/runs", "/ui/playbooks",
                 "/ui/playbooks/sync", "/ui/memory?q=welcome", "/ui/spend"):
        page.goto(path)
        assert "That did not work" not in page.inner_text("main"), path
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
    page.goto("/ui/inbox")
    page.screenshot(path=str(shots(tmp_path) / "phone-inbox.png"), full_page=True)
    page.keyboard.press("Tab")  # the skip link first, then the page by keyboard
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.locator("textarea:not([id])").count() == 0
    for control in page.locator("textarea, select, input:not([type=hidden])").all():
        assert page.locator(f"label[for='{control.get_attribute('id')}']").count() == 1


def test_no_script_runs_from_a_gate_message_or_a_playbook_name(
        tab: Any, site: Server, api: httpx.Client) -> None:
    run = start(api, "welcome", customer("<b>Mallory</b>", note=XSS))
    page = open_page(tab)
    page.goto("/ui/inbox")
    card = page.locator(f"[id='{run['id']}-review']")
    assert XSS in card.inner_text()  # shown as the text it is
    page.goto(f"/ui/runs/{run['id']}")
    page.goto("/ui/runs?playbook=" + httpx.QueryParams({"x": XSS})["x"])
    assert XSS in page.inner_text("main")
    page.goto("/ui/playbooks/%3Cimg%20src%3Dx%20onerror%3D%22window.__xss%3D3%22%3E")
    assert "No playbook named '<img" in page.inner_text("main")
    for path in ("/ui/inbox", f"/ui/runs/{run['id']}"):
        page.goto(path)
        page.wait_for_timeout(100)
        assert page.evaluate("window.__xss") is None, path
    assert page.locator("main script, main img").count() == 0


def test_a_form_post_without_the_csrf_token_is_refused(
        tab: Any, site: Server, api: httpx.Client) -> None:
    run = start(api, "welcome", customer())
    page = open_page(tab)
    target = f"/ui/runs/{run['id']}/gates/review"
    for form in ({"decision": "approve"}, {"decision": "approve", "csrf": "guessed"}):
        answer = page.request.post(target, form=form)  # the session cookie goes along
        assert answer.status == 403
        assert "CSRF token is missing or out of date" in answer.text()
    assert api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "waiting"
    logged_out = httpx.post(site.url + target, data={"decision": "approve"})
    assert logged_out.status_code == 403
    assert api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "waiting"


def test_the_inbox_shows_a_new_gate_without_a_reload(
        tab: Any, site: Server, api: httpx.Client) -> None:
    page = open_page(tab)
    page.evaluate("window.__same_page = true")
    run = start(api, "welcome", customer("Hedy"))
    page.wait_for_selector(f"[id='{run['id']}-review']")
    assert page.evaluate("window.__same_page") is True


def test_runs_filters_playbook_versions_diff_plan_and_memory(
        tab: Any, site: Server, api: httpx.Client) -> None:
    start(api, "sync")
    start(api, "three", {"who": "Ada"})
    page = open_page(tab, "/ui/runs?status=waiting&playbook=sync")
    listed = page.locator("ul.runs li").all_inner_texts()
    assert listed and all("sync" in t and "waiting" in t for t in listed)
    page.select_option("#status", "succeeded")
    page.select_option("#playbook", "three")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**status=succeeded**")
    listed = page.locator("ul.runs li").all_inner_texts()
    assert listed and all("three" in t and "succeeded" in t for t in listed)
    page.goto("/ui/playbooks/steady")
    assert page.locator("ol.versions li").count() == 2, page.inner_text("main")
    assert page.locator("pre.diff .del", has_text='seconds: 0.7').count() == 1
    assert page.locator("pre.diff .add", has_text='seconds: 0.6').count() == 1
    assert "Worst-case cost" in page.inner_text("#plan-title + dl")
    page.goto("/ui/memory")
    page.select_option("#domain", "customers")
    page.fill("#q", "who pays yearly")
    page.click("button:has-text('Search')")
    page.wait_for_selector("ol.hits")
    assert "Ada Lovelace pays yearly for the pro plan." in page.inner_text("ol.hits")
    page.goto("/ui/spend")
    assert "No model spend yet." in page.inner_text("main")
