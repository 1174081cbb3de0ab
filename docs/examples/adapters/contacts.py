"""An example workspace adapter: a contact list in a JSON file of the workspace.

Drop this file into a workspace's ``adapters/`` folder and playbooks can use
``contacts.add`` and ``contacts.find``; ``aiosrun adapters contacts`` lists them and
``aiosrun validate`` checks their arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from aiosrun.adapters.base import Action, Adapter, CallContext, PermanentError


class ContactsAdapter(Adapter):
    name = "contacts"
    description = "A contact list kept in contacts.json."
    actions: ClassVar[Mapping[str, Action]] = {
        "add": Action(
            "Adds (or updates) a contact; the same idempotency key never adds twice.",
            {"type": "object", "required": ["email", "name"], "additionalProperties": False,
             "properties": {"email": {"type": "string"}, "name": {"type": "string"}}},
            compensation="remove"),
        "remove": Action("Removes a contact.",
                         {"type": "object", "required": ["email"],
                          "additionalProperties": False,
                          "properties": {"email": {"type": "string"}}}),
        "find": Action("Finds a contact by email.",
                       {"type": "object", "required": ["email"], "additionalProperties": False,
                        "properties": {"email": {"type": "string"}}}),
    }

    async def call(self, action: str, args: Mapping[str, Any],
                   ctx: CallContext) -> Mapping[str, Any]:
        path = ctx.workspace / "contacts.json"
        contacts: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        email = str(args["email"]).lower()
        if action == "find":
            if email not in contacts:
                raise PermanentError(f"no contact {email}")
            return contacts[email]
        if action == "add":
            contacts[email] = {"email": email, "name": args["name"],
                               "added_by": ctx.idempotency_key}
        else:
            contacts.pop(email, None)
        path.write_text(json.dumps(contacts, indent=2))  # setting a key twice is harmless
        return {"email": email, "count": len(contacts)}
