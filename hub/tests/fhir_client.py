"""SMART on FHIR's Python client (fhirclient 4, its own R4 models) against the hub, as a
hospital's system uses it: its first request reads the CapabilityStatement (`metadata`), then it
searches Observations with HTTP Basic credentials, following the `next` links page by page, and
resolves each Observation's device reference (a logical one, by identifier) with a Device search.
Its models refuse JSON that R4 does not allow (an element of the wrong type, an unknown element),
so every page it reads is checked by an implementation other than ours.

Usage: fhir_client.py BASE_URL USER PASSWORD [PARAM=VALUE ...]
Prints what the test compares: the statement's FHIR version and Observation search parameters,
the pages read, each Observation's identifier, value, codes and device identifier, and each
device found by its identifier (with its names).
"""
import json
import sys

from fhirclient import server
from fhirclient.models.device import Device
from fhirclient.models.observation import Observation

base, user, password = sys.argv[1:4]
params = dict(a.split("=", 1) for a in sys.argv[4:])
srv = server.FHIRServer(None, base_uri=base.rstrip("/") + "/")
srv.session.auth = (user, password)
statement = srv.capabilityStatement
out = {
    "fhirVersion": statement.fhirVersion,
    "observation_search": sorted(
        p.name for r in statement.rest[0].resource if r.type == "Observation" for p in (r.searchParam or [])
    ),
    "pages": 0,
    "observations": [],
    "devices": [],
}
references = []
for bundle in Observation.where(struct=params).perform_iter(srv):
    out["pages"] += 1
    for entry in bundle.entry or []:
        r = entry.resource
        if r.resource_type != "Observation":
            continue
        out["observations"].append({
            "identifier": r.identifier[0].value,
            "value": r.valueQuantity.value,
            "codes": sorted(f"{c.system}|{c.code}" for c in r.code.coding),
            "device": r.device.identifier.value,
        })
        token = f"{r.device.identifier.system}|{r.device.identifier.value}"
        if token not in references:
            references.append(token)
for token in references:
    for d in Device.where(struct={"identifier": token}).perform_resources(srv):
        out["devices"].append({
            "identifier": d.identifier[0].value,
            "names": sorted(f"{n.type}:{n.name}" for n in d.deviceName or []),
        })
print(json.dumps(out))
