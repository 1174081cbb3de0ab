"""``billing``: a local ledger of invoices and payments, kept under ``.aios/billing/``.

Every change is one JSON line in ``ledger.jsonl``, written under a file lock with the step's
idempotency key: the same key returns the recorded result instead of writing again, so a
retry or a resume never bills twice. ``void_invoice`` undoes ``create_invoice`` (its
compensation). ``record_payment`` refuses a payment that does not match an open invoice, so
a playbook can hand the mismatch to the operator (``escalate:``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .base import Action, Adapter, CallContext, Journal, PermanentError
from .effects import journal


def _schema(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props,
            "additionalProperties": False}


_ID = {"type": "string", "minLength": 1}
_AMOUNT = {"type": "number", "exclusiveMinimum": 0}


class BillingAdapter(Adapter):
    name = "billing"
    description = "A local ledger of invoices and payments; each change once per key."
    actions: ClassVar[Mapping[str, Action]] = {
        "create_invoice": Action(
            "Creates an open invoice.",
            _schema(["customer", "amount"], customer=_ID, amount=_AMOUNT,
                    currency={"type": "string", "pattern": "^[A-Z]{3}$"},
                    description={"type": "string"}),
            compensation="void_invoice"),
        "void_invoice": Action("Voids an invoice (the undo of create_invoice).",
                               _schema(["invoice_id"], invoice_id=_ID)),
        "record_payment": Action(
            "Records a payment against an open invoice; refuses an unknown invoice or a "
            "different amount.",
            _schema(["invoice_id", "amount"], invoice_id=_ID, amount=_AMOUNT,
                    reference={"type": "string"}, paid_at={"type": "string"})),
        "list_invoices": Action(
            "Lists invoices (optionally by status or customer), also keyed by id.",
            _schema([], status={"enum": ["open", "paid", "void"]}, customer=_ID)),
        "list_payments": Action("Lists payments, optionally of one invoice.",
                                _schema([], invoice_id=_ID)),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        currency = str(ctx.settings.get("currency", "USD"))
        with _Ledger(journal(ctx, "billing/ledger")) as ledger:
            if action == "list_invoices":
                invoices = [i for i in ledger.invoices.values()
                            if args.get("status") in (None, i["status"])
                            and args.get("customer") in (None, i["customer"])]
                return {"invoices": invoices, "count": len(invoices),
                        "by_id": {i["id"]: i for i in invoices}}
            if action == "list_payments":
                payments = [p for p in ledger.payments
                            if args.get("invoice_id") in (None, p["invoice_id"])]
                return {"payments": payments, "count": len(payments)}
            done = ledger.results.get(ctx.idempotency_key)
            if done is not None:
                return done
            if action == "create_invoice":
                number = len(ledger.invoices) + 1
                invoice = {"id": f"INV-{number:05d}", "customer": args["customer"],
                           "amount": args["amount"],
                           "currency": args.get("currency", currency),
                           "description": args.get("description", ""), "status": "open"}
                return ledger.write(ctx.idempotency_key, "invoice", invoice)
            if action == "void_invoice":
                invoice = ledger.invoice(str(args["invoice_id"]))
                if invoice["status"] == "paid":
                    raise PermanentError(f"invoice {invoice['id']} is paid; refund it instead")
                return ledger.write(ctx.idempotency_key, "void",
                                    {**invoice, "status": "void"})
            invoice = ledger.invoice(str(args["invoice_id"]))
            if invoice["status"] != "open":
                raise PermanentError(f"invoice {invoice['id']} is {invoice['status']}, "
                                     "not open")
            if float(args["amount"]) != float(invoice["amount"]):
                raise PermanentError(f"payment of {args['amount']} does not match invoice "
                                     f"{invoice['id']} ({invoice['amount']})")
            payment = {"payment_id": f"PAY-{len(ledger.payments) + 1:05d}",
                       "invoice_id": invoice["id"], "amount": args["amount"],
                       "reference": args.get("reference", ""),
                       "paid_at": args.get("paid_at", ""), "status": "paid"}
            return ledger.write(ctx.idempotency_key, "payment", payment)


class _Ledger:
    """The ledger's journal, folded into invoices and payments, held while used."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.invoices: dict[str, dict[str, Any]] = {}
        self.payments: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> _Ledger:
        for entry in self.journal.__enter__():
            self._apply(entry)
        return self

    def __exit__(self, *exc: object) -> None:
        self.journal.__exit__(*exc)

    def _apply(self, entry: dict[str, Any]) -> None:
        record = entry["record"]
        if entry["kind"] in ("invoice", "void"):
            self.invoices[record["id"]] = record
        else:
            self.payments.append(record)
            self.invoices[record["invoice_id"]]["status"] = "paid"
        self.results[entry["key"]] = record

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise PermanentError(f"no invoice {invoice_id} in the ledger")
        return dict(invoice)

    def write(self, key: str, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        entry = {"key": key, "kind": kind, "record": record}
        self.journal.append(entry)
        self._apply(entry)
        return record
