#!/usr/bin/env python3
"""Validates OpenLineage events against the official JSON schemas: each file named is one event,
checked as a RunEvent against spec 2-0-2 (tests/data/openlineage/OpenLineage.json), its run facets
against the spec's ErrorMessageRunFacet and each dataset's facets against shotrouter's own
docs/openlineage-version-facet.json, with the date-time, uri and uuid formats checked too. The
official Python client (openlineage-python) vouches for the schema versions: the schemas' ids and
every schemaURL sent must be the ones its generated classes write.

Usage: validate_openlineage.py EVENT.json... Prints one line per event; exits 1 on the first
event that does not validate (with every error of it). Used by tests/integration/openlineage.rs.
"""
import json
import pathlib
import sys

import jsonschema
from openlineage.client.generated.base import RunEvent as ClientRunEvent
from openlineage.client.generated.error_message_run import ErrorMessageRunFacet as ClientErrorFacet
from referencing import Registry, Resource

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


class Mismatch:
    """An error of our own, shaped like jsonschema's."""

    json_path = "$"

    def __init__(self, message):
        self.message = message


def load(path):
    return json.loads((ROOT / path).read_text())


def main(paths):
    spec = load("tests/data/openlineage/OpenLineage.json")
    error_facet = load("tests/data/openlineage/ErrorMessageRunFacet.json")
    version_facet = load("docs/openlineage-version-facet.json")
    run_event_url = ClientRunEvent._get_schema()
    error_facet_url = ClientErrorFacet._get_schema()
    if run_event_url != spec["$id"] + "#/$defs/RunEvent" or not error_facet_url.startswith(error_facet["$id"]):
        sys.exit(f"the schemas kept are not the client's: {run_event_url}, {error_facet_url}")
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in (spec, error_facet, version_facet)
    )
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    # Without its optional packages jsonschema skips a format silently: refuse to pass then.
    missing = {"date-time", "uri", "uuid"} - set(checker.checkers)
    if missing:
        sys.exit(f"jsonschema cannot check formats {sorted(missing)}: install jsonschema[format-nongpl]")

    def validator(schema):
        return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=checker)

    run_event = validator({"$ref": SPEC + "#/$defs/RunEvent"})
    run_facets = validator(error_facet)
    dataset_facets = validator(version_facet)
    for path in paths:
        event = json.loads(pathlib.Path(path).read_text())
        errors = list(run_event.iter_errors(event))
        facets = event.get("run", {}).get("facets", {})
        errors += run_facets.iter_errors(facets)
        urls = [(event.get("schemaURL"), run_event_url)]
        if "errorMessage" in facets:
            urls.append((facets["errorMessage"].get("_schemaURL"), error_facet_url))
        errors += [Mismatch(f"schemaURL `{sent}` is not the client's `{want}`") for sent, want in urls if sent != want]
        for dataset in event.get("inputs", []) + event.get("outputs", []):
            errors += dataset_facets.iter_errors(dataset.get("facets", {}))
        if errors:
            for error in errors:
                print(f"{path}: {error.json_path}: {error.message}")
            sys.exit(1)
        print(f"{path}: valid {event['eventType']}")


if __name__ == "__main__":
    main(sys.argv[1:])
