"""Writes plaid-link.json: the schemas of Plaid's OpenAPI document that the
fake Plaid's link-flow answers, the requests AccuBooks sends for it and the
webhooks it receives are checked against, trimmed to their validation
keywords.

    git -C <plaid-openapi> show HEAD:2020-09-14.yml > /tmp/plaid.yml
    python vendor_plaid.py /tmp/plaid.yml <commit>   # needs PyYAML
"""

import json
import pathlib
import sys

import yaml

ROOTS = {
    "answers": {
        "/link/token/create": "LinkTokenCreateResponse",
        "/item/remove": "ItemRemoveResponse",
        "/webhook_verification_key/get": "WebhookVerificationKeyGetResponse",
        "/accounts/get": "AccountsGetResponse",
        "error": "PlaidError",
    },
    "requests": {
        "/link/token/create": "LinkTokenCreateRequest",
        "/item/remove": "ItemRemoveRequest",
        "/webhook_verification_key/get": "WebhookVerificationKeyGetRequest",
    },
    "webhooks": {
        "TRANSACTIONS.SYNC_UPDATES_AVAILABLE": "SyncUpdatesAvailableWebhook",
        "ITEM.ERROR": "ItemErrorWebhook",
        "ITEM.LOGIN_REPAIRED": "ItemLoginRepairedWebhook",
        "ITEM.PENDING_EXPIRATION": "PendingExpirationWebhook",
        "ITEM.PENDING_DISCONNECT": "PendingDisconnectWebhook",
    },
}
KEEP = {
    "$ref",
    "additionalProperties",
    "allOf",
    "anyOf",
    "enum",
    "format",
    "items",
    "maxItems",
    "maxLength",
    "maximum",
    "minItems",
    "minLength",
    "minimum",
    "nullable",
    "oneOf",
    "properties",
    "required",
    "type",
}


def refs(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                found.add(value.split("/")[-1])
            else:
                refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def strip(node, in_properties=False):
    if isinstance(node, dict):
        if in_properties:
            return {k: strip(v) for k, v in node.items()}
        return {k: strip(v, k == "properties") for k, v in node.items() if k in KEEP}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main(path, commit):
    spec = yaml.load(open(path), Loader=yaml.CSafeLoader)
    schemas = spec["components"]["schemas"]
    seen, todo = set(), [n for group in ROOTS.values() for n in group.values()]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            found = set()
            refs(schemas[name], found)
            todo += sorted(found - seen)
    out = {
        "source": "https://github.com/plaid/plaid-openapi",
        "file": "2020-09-14.yml",
        "version": spec["info"]["version"],
        "commit": commit,
        "trimmed": "Only the schemas named below and those they reference, keeping only the "
        "validation keywords (type, nullable, required, properties, additionalProperties, "
        "items, allOf, enum, $ref, formats and bounds); descriptions and examples removed. "
        "Regenerate with vendor_plaid.py beside this file.",
        **ROOTS,
        "schemas": {name: strip(schemas[name]) for name in sorted(seen)},
    }
    target = pathlib.Path(__file__).with_name("plaid-link.json")
    target.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
