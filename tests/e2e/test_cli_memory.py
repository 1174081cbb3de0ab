"""``aiosrun memory`` and the ``memory`` adapter, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Runner

WORKSPACE = "apiVersion: aiosrun/v1\nkind: Workspace\n"

PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: recall
memory: [customers]
inputs:
  email: {type: string}
  domain: {type: string, default: customers}
steps:
  - id: note
    uses: memory.remember
    with: {domain: customers, text: "scratch note about ${{ inputs.email }}", layer: working}
  - id: keep
    uses: memory.remember
    with: {domain: customers, text: "${{ inputs.email }} signed up for the Pro plan",
           metadata: {email: "${{ inputs.email }}"}}
  - id: find
    uses: memory.search
    with: {domain: "${{ inputs.domain }}", query: "${{ inputs.email }}", k: 3}
outputs:
  hits: ${{ steps.find.outputs.hits }}
"""


def test_add_search_batch_eval_forget_stats_rebuild(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps(line) for line in [
        {"id": "ada", "text": "Ada moved to the Starter plan", "domain": "customers",
         "metadata": {"plan": "starter"}},
        {"text": "Refunds take 14 days", "domain": "operations"},
        {"id": "tax", "text": "VAT is filed quarterly", "domain": "finances",
         "layer": "episodic"},
    ]) + "\n")
    added = aiosrun("memory", "add", "--file", str(items))
    assert added.returncode == 0 and "3 items remembered" in added.stdout, added.stderr
    single = aiosrun("memory", "add", "Bob pays by card", "--domain", "customers",
                     "--id", "bob")
    assert single.stdout.strip() == "bob"

    found = aiosrun("memory", "search", "starter plan", "--format", "json")
    hits = json.loads(found.stdout)
    assert hits[0]["id"] == "ada" and hits[0]["domain"] == "customers"
    assert set(hits[0]) >= {"id", "text", "score", "domain", "layer", "metadata", "found_by"}
    only = aiosrun("memory", "search", "plan", "--domain", "finances", "--mode", "bm25",
                   "--format", "json")
    assert json.loads(only.stdout) == []

    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"query": "VAT quarterly"}\n{"query": "card", "domain": "customers",'
                       ' "k": 1, "mode": "bm25"}\n')
    batch = aiosrun("memory", "search", "--batch", str(queries), "--format", "json")
    lines = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["VAT quarterly", "card"]
    assert lines[0]["hits"][0]["id"] == "tax"
    assert [h["id"] for h in lines[1]["hits"]] == ["bob"]

    qrels = tmp_path / "qrels.jsonl"
    qrels.write_text('{"query": "starter plan", "relevant": ["ada"]}\n'
                     '{"query": "filing VAT", "domain": "finances", "relevant": ["tax"]}\n')
    evaluated = aiosrun("memory", "eval", str(qrels), "--format", "json")
    metrics = json.loads(evaluated.stdout)
    assert set(metrics) == {"hybrid", "bm25", "vector"}
    assert metrics["hybrid"]["recall@5"] == 1.0 and metrics["bm25"]["mrr"] == 1.0
    table = aiosrun("memory", "eval", str(qrels))
    assert "recall@5" in table.stdout and "nDCG@10" in table.stdout

    stats = json.loads(aiosrun("memory", "stats", "--format", "json").stdout)
    assert stats["domains"]["customers"]["items"] == 2
    assert stats["domains"]["finances"]["layers"]["episodic"] == 1

    forgot = aiosrun("memory", "forget", "--where", '{"plan": "starter"}')
    assert forgot.stdout.strip() == "1 item(s) forgotten"
    assert aiosrun("memory", "forget", "bob").stdout.strip() == "1 item(s) forgotten"
    assert json.loads(aiosrun("memory", "search", "starter plan", "--domain", "customers",
                              "--format", "json").stdout) == []
    assert aiosrun("memory", "rebuild").returncode == 0
    assert json.loads(aiosrun("memory", "search", "refunds", "--format",
                              "json").stdout)[0]["domain"] == "operations"


def test_bad_input_gets_a_positioned_error(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    bad = tmp_path / "items.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken}\n')
    done = aiosrun("memory", "add", "--file", str(bad))
    assert done.returncode == 1 and "items.jsonl:2:" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(aiosrun("memory", "stats", "--format", "json").stdout)[
        "domains"]["customers"]["items"] == 0  # nothing half-added
    unknown = aiosrun("memory", "add", "x", "--domain", "secrets")
    assert unknown.returncode == 1 and "unknown memory domain 'secrets'" in unknown.stderr
    usage = aiosrun("memory", "search")
    assert usage.returncode == 2


def test_playbooks_use_their_declared_domains_only(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    (tmp_path / "recall.yaml").write_text(PLAYBOOK)
    run = aiosrun("run", "recall.yaml", "-i", "email=ada@example.com", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    texts = [hit["text"] for hit in result["outputs"]["hits"]]
    assert "ada@example.com signed up for the Pro plan" in texts
    keep_id = result["steps"][1]["outputs"]["id"]

    again = aiosrun("memory", "search", "scratch note", "--format", "json")
    assert all(h["layer"] != "working" for h in json.loads(again.stdout))  # run is over
    episodes = json.loads(aiosrun("memory", "search", "recall succeeded", "--domain",
                                  "operations", "--layer", "episodic", "--format",
                                  "json").stdout)
    assert episodes and episodes[0]["metadata"]["playbook"] == "recall"
    assert episodes[0]["metadata"]["outcome"] == "succeeded"

    episode_id = episodes[0]["id"]
    assert aiosrun("memory", "forget", episode_id).stdout.strip() == "1 item(s) forgotten"
    stats = json.loads(aiosrun("memory", "stats", "--format", "json").stdout)
    assert stats["domains"]["operations"]["layers"]["episodic"] == 0  # it stays forgotten

    # a retry or a second run of the same step does not store the item twice
    stats = json.loads(aiosrun("memory", "stats", "--format", "json").stdout)
    assert stats["domains"]["customers"]["items"] == 1 and keep_id.startswith("mem-")

    refused = aiosrun("run", "recall.yaml", "-i", "email=a@b.c", "-i", "domain=finances",
                      "--format", "json")
    assert refused.returncode == 1
    find = json.loads(refused.stdout)["steps"][2]
    assert "domain 'finances' is not declared" in json.dumps(find) or \
        "domain 'finances' is not declared" in refused.stdout

    (tmp_path / "static.yaml").write_text(PLAYBOOK.replace(
        'domain: "${{ inputs.domain }}"', "domain: finances"))
    invalid = aiosrun("validate", "static.yaml")
    assert invalid.returncode == 1
    assert "static.yaml:18:20:" in invalid.stdout and "[memory-domain]" in invalid.stdout


FACT_PLAYBOOK = """apiVersion: aiosrun/v1
kind: Playbook
name: plan-change
memory: [customers]
inputs:
  plan: {type: string}
steps:
  - id: keep
    uses: memory.remember
    with: {domain: customers, text: "Ada Lovelace is on the ${{ inputs.plan }} plan",
           key: "customer:ada@example.com:plan"}
  - id: find
    uses: memory.search
    with: {domain: customers, query: "Ada Lovelace plan", k: 5}
outputs:
  texts: ${{ steps.find.outputs.hits }}
"""


def test_facts_change_through_playbooks_and_files(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    (tmp_path / "plan.yaml").write_text(FACT_PLAYBOOK)
    for plan in ("Starter", "Pro"):
        run = aiosrun("run", "plan.yaml", "-i", f"plan={plan}", "--format", "json")
        assert run.returncode == 0, run.stdout + run.stderr
    hits = json.loads(run.stdout)["outputs"]["texts"]
    assert [h["text"] for h in hits] == ["Ada Lovelace is on the Pro plan"]
    assert hits[0]["key"] == "customer:ada@example.com:plan" and hits[0]["valid_to"] is None

    items = tmp_path / "facts.jsonl"
    items.write_text("\n".join(json.dumps(line) for line in [
        {"id": "bob-1", "text": "Bob Marley pays by card", "domain": "customers",
         "key": "customer:bob:payment", "time": "2026-01-01T00:00:00Z"},
        {"id": "bob-2", "text": "Bob Marley pays by bank transfer", "domain": "customers",
         "key": "customer:bob:payment", "time": "2026-02-01T00:00:00Z"},
    ]) + "\n")
    assert aiosrun("memory", "add", "--file", str(items)).returncode == 0
    now = json.loads(aiosrun("memory", "search", "Bob Marley pays", "-d", "customers",
                             "--format", "json").stdout)
    assert [h["id"] for h in now] == ["bob-2"]
    then = json.loads(aiosrun("memory", "search", "Bob Marley pays", "-d", "customers",
                              "--as-of", "2026-01-15T00:00:00Z", "--format", "json").stdout)
    assert [h["id"] for h in then] == ["bob-1"]
    assert then[0]["valid_to"] == "2026-02-01T00:00:00Z"
    items.write_text('{"text": "x", "key": 3}\n')
    bad = aiosrun("memory", "add", "--file", str(items))
    assert bad.returncode == 1 and "facts.jsonl:1:1: \"key\" must be a string" in bad.stderr


def _playbook(name: str, steps: str) -> str:
    return (f"apiVersion: aiosrun/v1\nkind: Playbook\nname: {name}\nmemory: [customers]\n"
            f"steps:\n{steps}outputs:\n  done: \"yes\"\n")


LOOKUP = "  - id: look\n    uses: memory.search\n    with: {domain: customers, query: ada}\n"
WRITE = ("  - id: save\n    uses: files.write\n"
         "    with: {path: out/report.txt, content: \"quarterly report\"}\n")


def test_episodes_are_summaries_of_runs_of_note(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(
        WORKSPACE + "memory:\n  episodes:\n    default: auto\n    playbooks:\n"
        "      audited-lookup: always\n      noisy: never\n")
    (tmp_path / "lookup.yaml").write_text(_playbook("lookup", LOOKUP))
    (tmp_path / "audited.yaml").write_text(_playbook("audited-lookup", LOOKUP))
    (tmp_path / "report.yaml").write_text(_playbook("report", WRITE))
    (tmp_path / "noisy.yaml").write_text(_playbook("noisy", WRITE + LOOKUP))
    runs = {}
    for name in ("lookup", "audited", "report", "noisy"):
        run = aiosrun("run", f"{name}.yaml", "--format", "json")
        assert run.returncode == 0, run.stdout + run.stderr
        runs[name] = json.loads(run.stdout)["id"]
    found = json.loads(aiosrun("memory", "search", "Playbook succeeded", "-d", "operations",
                               "--layer", "episodic", "-k", "10", "--format", "json").stdout)
    by_playbook = {hit["metadata"]["playbook"]: hit for hit in found}
    # a lone read is not an episode unless asked for; `never` keeps even an effect out
    assert sorted(by_playbook) == ["audited-lookup", "report"]
    report = by_playbook["report"]
    assert report["metadata"]["run_id"] == runs["report"]
    assert report["metadata"]["timeline"] == f"aiosrun timeline {runs['report']}"
    assert report["metadata"]["outputs"] == {"done": "yes"}
    assert report["text"].startswith("Playbook report succeeded on ") and len(report["text"]) < 400
    timeline = aiosrun("timeline", report["metadata"]["run_id"])
    assert timeline.returncode == 0 and "save" in timeline.stdout


SECRET_NOTE = "Quentin Zarathustra keeps his spare key under the blue flowerpot"
TELLING = """apiVersion: aiosrun/v1
kind: Playbook
name: telling
memory: [customers]
inputs:
  note: {type: string}
steps:
  - id: keep
    uses: memory.remember
    with: {domain: customers, text: "${{ inputs.note }}", id: quentin}
  - id: find
    uses: memory.search
    with: {domain: customers, query: "Quentin Zarathustra key", k: 3}
  - id: echo
    uses: debug.echo
    with: {value: "${{ steps.find.outputs.hits[0].text }}"}
outputs:
  said: ${{ steps.find.outputs.hits[0].text }}
"""


def test_forget_erases_every_copy_under_aios(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    (tmp_path / "telling.yaml").write_text(TELLING)
    aiosrun("memory", "add", "Quentin Zarathustra prefers phone calls", "-d", "customers",
            "--id", "other")
    run = aiosrun("run", "telling.yaml", "-i", f"note={SECRET_NOTE}", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    run_id = json.loads(run.stdout)["id"]
    assert json.loads(run.stdout)["outputs"]["said"] == SECRET_NOTE
    aiosrun("memory", "stats")  # the episode is recorded
    needle = SECRET_NOTE.encode()
    holders = [p for p in (tmp_path / ".aios").rglob("*") if p.is_file() and
               needle in p.read_bytes()]
    assert any("log" in p.parts for p in holders), holders  # the copies are there

    forgot = aiosrun("memory", "forget", "quentin")
    assert forgot.returncode == 0, forgot.stderr
    for path in (tmp_path / ".aios").rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    doctor = aiosrun("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert aiosrun("timeline", run_id).returncode == 0
    log = b"".join(p.read_bytes() for p in sorted((tmp_path / ".aios" / "log").glob("*.jsonl")))
    assert log.count(b"[forgotten]") >= 3  # the search hit, the echo and the run's outputs
    again = aiosrun("run", "telling.yaml", "-i", "note=a later note about Quentin Zarathustra",
                    "--format", "json")
    assert again.returncode == 0, again.stdout + again.stderr  # the log goes on, seq whole
    found = json.loads(aiosrun("memory", "search", "Quentin Zarathustra", "-d", "customers",
                               "--format", "json").stdout)
    assert {h["id"] for h in found} >= {"other"}


def test_eval_reads_locomo_conversations(aiosrun: Runner, tmp_path: Path) -> None:
    (tmp_path / "aios.yaml").write_text(WORKSPACE)
    turns = [{"speaker": "Ada", "dia_id": "D1:1", "text": "I adopted a grey cat named Pixel"},
             {"speaker": "Bob", "dia_id": "D1:2", "text": "Lovely! I started pottery classes"},
             {"speaker": "Ada", "dia_id": "D1:3", "text": "My sister visits from Lisbon",
              "blip_caption": "a photo of a tram"}]
    conversation = {"conversation": {"speaker_a": "Ada", "speaker_b": "Bob",
                                     "session_1_date_time": "1:56 pm on 8 May, 2023",
                                     "session_1": turns},
                    "qa": [{"question": "What is the name of Ada's cat?", "answer": "Pixel",
                            "evidence": ["D1:1"], "category": 4},
                           {"question": "What classes did Bob start?", "answer": "pottery",
                            "evidence": ["D1:2"], "category": 4},
                           {"question": "Unanswerable", "evidence": ["D1:3"], "category": 5}]}
    (tmp_path / "7.json").write_text(json.dumps(conversation))
    found = aiosrun("memory", "eval", str(tmp_path / "7.json"), "--k", "1", "--format", "json")
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)
    assert results["hybrid"]["overall"]["queries"] == 2
    assert results["hybrid"]["overall"]["recall@1"] == 1.0
    assert set(results["bm25"]["by_category"]) == {"4"}
    table = aiosrun("memory", "eval", str(tmp_path / "7.json"))
    assert "1 conversations, 2 questions (recall@5)" in table.stdout
    (tmp_path / "bad.json").write_text('{"qa": [], "session_1": [{"text": "no id"}]}')
    bad = aiosrun("memory", "eval", str(tmp_path / "bad.json"))
    assert bad.returncode == 1 and "session_1: a turn without `dia_id`" in bad.stderr
