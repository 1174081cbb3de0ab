"""The billing ledger: exactly once per key, mismatches refused, voiding as compensation."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosrun.adapters.base import PermanentError
from aiosrun.adapters.billing import BillingAdapter

from .conftest import call

billing = BillingAdapter()


def test_create_is_once_per_key_and_listed(tmp_path: Path) -> None:
    first = call(billing, "create_invoice", {"customer": "a@x", "amount": 49}, tmp_path, "k1")
    again = call(billing, "create_invoice", {"customer": "a@x", "amount": 49}, tmp_path, "k1")
    other = call(billing, "create_invoice", {"customer": "b@x", "amount": 99}, tmp_path, "k2")
    assert first == again and first["id"] == "INV-00001" and first["status"] == "open"
    assert other["id"] == "INV-00002"
    ledger = (tmp_path / ".aios" / "billing" / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == 2
    listed = call(billing, "list_invoices", {"customer": "a@x"}, tmp_path)
    assert listed["count"] == 1 and listed["by_id"]["INV-00001"]["amount"] == 49


def test_payments_must_match_an_open_invoice(tmp_path: Path) -> None:
    call(billing, "create_invoice", {"customer": "a@x", "amount": 49}, tmp_path, "c")
    with pytest.raises(PermanentError, match="does not match invoice INV-00001"):
        call(billing, "record_payment", {"invoice_id": "INV-00001", "amount": 40}, tmp_path, "p")
    with pytest.raises(PermanentError, match="no invoice INV-00009"):
        call(billing, "record_payment", {"invoice_id": "INV-00009", "amount": 49}, tmp_path, "q")
    paid = call(billing, "record_payment", {"invoice_id": "INV-00001", "amount": 49,
                                            "reference": "bank-1"}, tmp_path, "r")
    assert paid["status"] == "paid" and paid["payment_id"] == "PAY-00001"
    assert call(billing, "list_invoices", {"status": "paid"}, tmp_path)["count"] == 1
    assert call(billing, "list_payments", {}, tmp_path)["payments"][0]["reference"] == "bank-1"
    with pytest.raises(PermanentError, match="is paid"):
        call(billing, "void_invoice", {"invoice_id": "INV-00001"}, tmp_path, "v")


def test_void_is_the_compensation(tmp_path: Path) -> None:
    assert billing.actions["create_invoice"].compensation == "void_invoice"
    call(billing, "create_invoice", {"customer": "a@x", "amount": 5}, tmp_path, "c")
    voided = call(billing, "void_invoice", {"invoice_id": "INV-00001"}, tmp_path, "v")
    assert voided["status"] == "void"
    assert call(billing, "list_invoices", {"status": "open"}, tmp_path)["count"] == 0
