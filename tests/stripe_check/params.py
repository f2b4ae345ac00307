"""Writes the request types of the Stripe operations Autocrew uses, as JSON, for the fake
Stripe (tests/src/fakes/stripe) to check every request against.

The types come from Stripe's official Python SDK (`stripe` on PyPI), whose params are
generated from Stripe's OpenAPI description. Each type becomes a small schema:
  {"object": {name: {"required": bool, "schema": S}}}, {"array": S}, {"map": S},
  {"enum": [...]}, {"any_of": [S, ...]}, "string", "integer", "number", "boolean", "any".
Usage: python params.py OUT.json
"""

import json
import sys
import typing

import stripe
import typing_extensions as te
from stripe._request_options import RequestOptions
from stripe.params import (
    CustomerCreateParams,
    EphemeralKeyCreateParams,
    InvoicePaymentListParams,
    RefundCreateParams,
    SubscriptionCreateParams,
    SubscriptionUpdateParams,
)
from stripe.params.billing import MeterEventCreateParams
from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams

OPERATIONS = {
    "POST /v1/customers": CustomerCreateParams,
    "POST /v1/checkout/sessions": CheckoutSessionCreateParams,
    "POST /v1/billing_portal/sessions": PortalSessionCreateParams,
    "POST /v1/ephemeral_keys": EphemeralKeyCreateParams,
    "POST /v1/subscriptions": SubscriptionCreateParams,
    "POST /v1/subscriptions/{id}": SubscriptionUpdateParams,
    "GET /v1/invoice_payments": InvoicePaymentListParams,
    "POST /v1/billing/meter_events": MeterEventCreateParams,
    "POST /v1/refunds": RefundCreateParams,
}

# Options of the client, not parameters of the request.
CLIENT_OPTIONS = set(RequestOptions.__annotations__)


def hints_of(tp):
    """The TypedDict's field types, its forward references resolved in its module with
    the SDK's public names at hand."""
    module = sys.modules[tp.__module__]
    names = {**vars(stripe), **vars(typing), **vars(module)}
    hints = {}
    for key, hint in tp.__annotations__.items():
        if key in CLIENT_OPTIONS:
            continue
        if isinstance(hint, str):
            hint = typing.ForwardRef(hint)
        hints[key] = typing._eval_type(hint, names, names)
    return hints


def schema(tp, seen):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp in (typing.Any, object):
        return "any"
    if origin in (typing.Annotated, te.Annotated, te.NotRequired, te.Required):
        return schema(args[0], seen)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        members = [schema(a, seen) for a in args if a is not type(None)]
        return members[0] if len(members) == 1 else {"any_of": members}
    if origin in (typing.Literal, te.Literal):
        return {"enum": list(args)}
    if te.is_typeddict(tp):
        name = f"{tp.__module__}.{tp.__qualname__}"
        if name in seen:
            return "any"
        hints = hints_of(tp)
        required = getattr(tp, "__required_keys__", set())
        fields = {
            key: {"required": key in required, "schema": schema(hint, seen | {name})}
            for key, hint in hints.items()
            if key not in CLIENT_OPTIONS
        }
        return {"object": fields}
    if origin in (list, typing.List):
        return {"array": schema(args[0], seen) if args else "any"}
    if origin in (dict, typing.Dict):
        return {"map": schema(args[1], seen) if len(args) > 1 else "any"}
    if tp is bool:
        return "boolean"
    if tp is int:
        return "integer"
    if tp is float:
        return "number"
    if tp is str:
        return "string"
    # UntypedStripeObject[str] and the like: a map of strings.
    if getattr(origin, "__name__", "") == "UntypedStripeObject":
        return {"map": schema(args[0], seen) if args else "any"}
    return "any"


def main():
    out = {
        "source": f"stripe-python {stripe.VERSION} (API version {stripe.api_version})",
        "operations": {op: schema(tp, frozenset()) for op, tp in OPERATIONS.items()},
    }
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
