#!/usr/bin/env python3
"""Trims Stripe's published OpenAPI spec to the component schemas the fake
Stripe answers with (tests/integration/support/saas/schemas/stripe.json).

    git -C <stripe/openapi mirror> show <commit>:openapi/spec3.json > spec3.json
    scripts/trim_stripe_schemas.py spec3.json <commit> > tests/integration/support/saas/schemas/stripe.json

Kept of each schema: `type`, `nullable`, `enum`, `required`, `properties`,
`items`, `additionalProperties`, `anyOf` and `$ref`; descriptions and
formats are dropped. A `$ref` to a schema not kept becomes `{"type":
"object"}`: its inside is not checked.
"""
import json
import sys

KEPT = [
    "api_errors", "balance", "balance_amount", "charge", "error", "event",
    "notification_event_data", "payment_intent", "refund",
]
KEYS = ["type", "nullable", "enum", "required", "properties", "items",
        "additionalProperties", "anyOf", "$ref"]


def trim(node):
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return {"$ref": node["$ref"]} if name in KEPT else {"type": "object"}
    out = {}
    for key in KEYS:
        if key not in node:
            continue
        value = node[key]
        if key == "properties":
            value = {k: trim(v) for k, v in value.items()}
        elif key in ("items",):
            value = trim(value)
        elif key == "additionalProperties" and isinstance(value, dict):
            value = trim(value)
        elif key == "anyOf":
            value = [trim(v) for v in value]
        out[key] = value
    return out


def main():
    spec = json.load(open(sys.argv[1]))
    commit = sys.argv[2]
    schemas = spec["components"]["schemas"]
    listing = spec["paths"]["/v1/payment_intents"]["get"]["responses"]["200"]
    out = {
        "x-source": {
            "repository": "github:stripe/openapi",
            "file": "openapi/spec3.json",
            "commit": commit,
            "api_version": spec["info"]["version"],
            "trimmed_by": "scripts/trim_stripe_schemas.py",
        },
        "components": {"schemas": {name: trim(schemas[name]) for name in KEPT}},
    }
    out["components"]["schemas"]["payment_intent_list"] = trim(
        listing["content"]["application/json"]["schema"])
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
