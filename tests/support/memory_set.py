# ruff: noqa: E501  (a table of sentences reads better unwrapped)
"""A labelled memory set: long operator chats with customers, and questions with evidence.

Each conversation is many turns, most of them small talk and near misses about the same
people; a few turns are the evidence for a question. About a third of the questions use the
evidence's words; the rest ask in other words (``moved to a cheaper plan`` for
``downgraded``), which is where retrievers differ. The set is deterministic: the same
items and questions on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    query: str
    relevant: tuple[str, ...]
    worded_like_evidence: bool


# (customer, evidence turns, question, worded like the evidence)
FACTS: list[tuple[str, list[str], str, bool]] = [
    ("Ada Lovelace", ["Ada: we downgraded to the Starter plan because the team shrank to two people"],
     "Which plan did Ada move to when her company got smaller?", False),
    ("Ada Lovelace", ["Ada: please send invoices to accounts@analytical.example from now on",
                      "Operator: noted, the billing contact for Analytical Engines is updated"],
     "Where should Ada's invoices be sent?", True),
    ("Grace Hopper", ["Grace: our renewal date moved to the first of September"],
     "When does Grace's contract come up again?", False),
    ("Grace Hopper", ["Grace: the export button times out for files over 2 GB",
                      "Operator: engineering reproduced the timeout on large exports"],
     "Is there a known issue with big exports for Grace?", False),
    ("Alan Turing", ["Alan: we are evaluating a competitor because of the price increase"],
     "Is Alan at risk of churning?", False),
    ("Alan Turing", ["Alan: the annual prepayment of 4,800 euros was wired on Monday"],
     "Did Alan pay the annual prepayment?", True),
    ("Katherine Johnson", ["Katherine: I am on parental leave until March, contact Dorothy meanwhile"],
     "Who should we talk to while Katherine is away?", False),
    ("Katherine Johnson", ["Katherine: the API rate limit of 100 requests per minute is too low for us",
                           "Operator: we raised Katherine's rate limit to 500 requests per minute"],
     "What API rate limit does Katherine have now?", True),
    ("Linus Torvalds", ["Linus: we need the invoice to show our VAT number DE123456789"],
     "What tax identifier must appear on Linus's bills?", False),
    ("Linus Torvalds", ["Linus: the onboarding call is booked for Thursday at 10:00"],
     "When is the onboarding call with Linus?", True),
    ("Margaret Hamilton", ["Margaret: our security team requires SSO with SAML before rollout"],
     "What does Margaret's company need before deploying widely?", False),
    ("Margaret Hamilton", ["Margaret: we renewed for three years at the enterprise tier"],
     "How long is Margaret's commitment?", False),
    ("Tim Berners-Lee", ["Tim: the webhook to our CRM stopped firing after the update",
                         "Operator: the webhook signing secret was rotated, which broke Tim's integration",
                         "Tim: after updating the secret the CRM webhook works again"],
     "Why did Tim's integration break and is it fixed?", False),
    ("Tim Berners-Lee", ["Tim: we would like a discount for our non-profit foundation"],
     "Did Tim ask for a charity price reduction?", False),
    ("Barbara Liskov", ["Barbara: the dashboard is slow every morning around 9"],
     "Does Barbara complain about dashboard performance?", True),
    ("Barbara Liskov", ["Barbara: we are hiring five engineers next quarter and will need more seats"],
     "Will Barbara's team need additional licences soon?", False),
    ("Donald Knuth", ["Donald: a typo in the PDF report header, it says Reciept"],
     "What error did Donald find in the report?", False),
    ("Donald Knuth", ["Donald: prefers to be contacted by postal mail, not by phone"],
     "How does Donald like to be contacted?", True),
    ("Frances Allen", ["Frances: the trial ends on Friday and we have not decided yet"],
     "When does Frances's evaluation period finish?", False),
    ("Frances Allen", ["Frances: our procurement needs a signed data processing agreement",
                       "Operator: the DPA was countersigned and sent to Frances"],
     "Has the data processing agreement for Frances been signed?", True),
    ("Edsger Dijkstra", ["Edsger: two invoices were charged twice in April",
                         "Operator: refunded the duplicate April charges to Edsger's card"],
     "Was Edsger billed double, and what did we do about it?", False),
    ("Edsger Dijkstra", ["Edsger: we want to move our data to the EU region"],
     "Does Edsger want his data hosted in Europe?", False),
    ("Radia Perlman", ["Radia: the mobile app crashes when uploading photos on Android 14"],
     "What breaks in the phone app for Radia?", False),
    ("Radia Perlman", ["Radia: loved the new reporting feature, she will write a case study"],
     "Will Radia write a case study?", True),
    ("Ken Thompson", ["Ken: our company was acquired and the account will move to the parent"],
     "What happened to Ken's company ownership?", False),
    ("Ken Thompson", ["Ken: asked to cancel the add-on for extra storage at month end"],
     "Does Ken want to stop paying for additional space?", False),
    ("Hedy Lamarr", ["Hedy: the password reset email never arrives at her domain",
                     "Operator: Hedy's mail server was rejecting our sender, SPF record fixed"],
     "Why could Hedy not reset her login?", False),
    ("Hedy Lamarr", ["Hedy: she prefers calls on Tuesday afternoons"],
     "When does Hedy prefer calls?", True),
    ("John McCarthy", ["John: we run the scheduler on a Raspberry Pi cluster"],
     "What hardware does John use for scheduling jobs?", False),
    ("John McCarthy", ["John: the monthly bill went from 90 to 140 dollars without warning"],
     "Did John's monthly bill go up?", True),
    ("Sophie Wilson", ["Sophie: wants a quote for 40 seats with annual billing"],
     "How many users is Sophie pricing?", False),
    ("Sophie Wilson", ["Sophie: the CSV import mangles accented names like Zoë"],
     "Does Sophie have problems importing special characters?", False),
    ("Dennis Ritchie", ["Dennis: asked whether we offer on-premise installation"],
     "Can Dennis self-host the product?", False),
    ("Dennis Ritchie", ["Dennis: their finance team pays only by bank transfer, never card"],
     "How does Dennis's finance team pay?", True),
    ("Lynn Conway", ["Lynn: referred two other founders to us last week"],
     "Has Lynn brought us new customers?", False),
    ("Lynn Conway", ["Lynn: the calendar sync duplicates recurring events"],
     "Is there a calendar sync problem for Lynn?", True),
]

SMALL_TALK = [
    "{first}: thanks for the quick answer yesterday",
    "{first}: hope your week is going well",
    "Operator: good morning {first}, how can I help today?",
    "{first}: the team says hello",
    "Operator: thanks {first}, I will get back to you shortly",
    "{first}: we had a company offsite last week",
    "{first}: sorry for the late reply, busy quarter",
    "Operator: happy to hear the rollout went smoothly, {first}",
    "{first}: can we talk about the roadmap sometime?",
    "{first}: our accountant will be in touch about the invoice",
    "Operator: I sent the slides from our call to {first}",
    "{first}: the plan page looks nice after the redesign",
    "{first}: I will forward this to our engineering lead",
    "Operator: reminder for {first}: the webinar starts at 3pm",
    "{first}: the support chat was very helpful",
    "{first}: we might need a call about billing next month",
]


def build(turns_per_chat: int = 40, seed: int = 7) -> tuple[list[dict[str, str]],
                                                             list[Question]]:
    """Items (``id``, ``text``, ``domain``) and questions with their evidence ids."""
    rng = random.Random(seed)
    by_customer: dict[str, list[tuple[list[str], str, bool]]] = {}
    for customer, evidence, question, literal in FACTS:
        by_customer.setdefault(customer, []).append((evidence, question, literal))
    items: list[dict[str, str]] = []
    questions: list[Question] = []
    for number, (customer, facts) in enumerate(by_customer.items()):
        first = customer.split()[0]
        chat = [rng.choice(SMALL_TALK).format(first=first) for _ in range(turns_per_chat)]
        placed: list[tuple[int, list[str], str, bool]] = []
        for evidence, question, literal in facts:
            at = rng.randrange(0, len(chat))
            placed.append((at, evidence, question, literal))
        for at, evidence, _, _ in sorted(placed, key=lambda p: -p[0]):
            chat[at:at] = evidence
        for turn, text in enumerate(chat):
            items.append({"id": f"c{number}-t{turn}", "text": text, "domain": "customers"})
        for _, evidence, question, literal in placed:
            ids = tuple(f"c{number}-t{chat.index(line)}" for line in evidence)
            questions.append(Question(question, ids, literal))
    return items, questions
