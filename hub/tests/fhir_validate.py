"""Validates a FHIR R4 Bundle with an independent model (fhir.resources 6.4, FHIR 4.0.1) and
prints what the tests compare with what the gateway sent: per Observation its identifier, profile,
codings, value (quantity or sampled data), and every Device's identifier. Given the server's
CapabilityStatement instead, validates it and prints what it says the server serves.

Usage: fhir_validate.py BUNDLE.json  (exit 1 with the validation error when it does not validate)
"""
import json
import sys

import fhir.resources
from fhir.resources.bundle import Bundle

assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__

with open(sys.argv[1]) as f:
    raw = json.load(f)

if raw.get("resourceType") == "CapabilityStatement":
    # The server's statement: what it says it serves, for the test to try.
    from fhir.resources.capabilitystatement import CapabilityStatement

    try:
        cs = CapabilityStatement.parse_obj(raw)
    except Exception as e:
        print(f"INVALID: {e}")
        sys.exit(1)
    rest = cs.rest[0]
    print(json.dumps({
        "fhirVersion": cs.fhirVersion,
        "kind": cs.kind,
        "format": cs.format,
        "mode": rest.mode,
        "security": [c.code for s in rest.security.service for c in s.coding],
        "resources": {
            r.type: {
                "interactions": [i.code for i in r.interaction or []],
                "search": {p.name: p.type for p in r.searchParam or []},
                "profiles": list(r.supportedProfile or []),
            }
            for r in rest.resource
        },
    }))
    sys.exit(0)

try:
    bundle = Bundle.parse_obj(raw)
except Exception as e:  # pydantic.ValidationError: print it for the test's message
    print(f"INVALID: {e}")
    sys.exit(1)


def reference(ref):
    """A Reference as the tests compare it: its literal reference, or its type and identifier."""
    if ref.reference is not None:
        return {"reference": ref.reference}
    return {"type": ref.type, "identifier": f"{ref.identifier.system}|{ref.identifier.value}"}


out = {"type": bundle.type, "observations": [], "devices": []}
for entry in bundle.entry or []:
    r = entry.resource
    if r.resource_type == "Device":
        out["devices"].append(
            {"identifier": r.identifier[0].value, "profile": r.meta.profile[0], "fullUrl": entry.fullUrl}
        )
    elif r.resource_type == "Observation":
        o = {
            "identifier": r.identifier[0].value,
            "profile": r.meta.profile[0],
            "codings": {c.system: c.code for c in r.code.coding},
            "device": reference(r.device),
            "gateway": [reference(e.valueReference) for e in r.extension or []],
            "encounter": r.encounter.identifier.value if r.encounter else None,
        }
        if r.valueQuantity is not None:
            q = r.valueQuantity
            o["quantity"] = {"value": float(q.value), "unit": q.unit, "system": q.system, "code": q.code}
        if r.valueSampledData is not None:
            s = r.valueSampledData
            o["sampled"] = {
                "origin": float(s.origin.value),
                "unit": s.origin.code,
                "period": float(s.period),
                "factor": float(s.factor),
                "dimensions": s.dimensions,
                "data": [int(x) for x in s.data.split()],
            }
        if entry.request is not None:
            o["request"] = f"{entry.request.method} {entry.request.url}"
        out["observations"].append(o)
print(json.dumps(out))
