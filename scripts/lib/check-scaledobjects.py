"""Checks the KEDA ScaledObjects of a rendered kustomization (multi-document YAML on
stdin) against KEDA's own schema (cloudcoil's models, generated from KEDA's CRDs), with
no field the schema does not know, and against the rest of the render: each scales a
Deployment that is there, no HorizontalPodAutoscaler of the render targets the same
one (KEDA makes its own), and each redis-streams trigger names its address, stream and
consumer group. Writes every other document to stdout, for the Kubernetes validator.

    python check-scaledobjects.py < rendered.yaml > others.yaml
"""

import sys

import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject


def unknown_fields(given, parsed, path=""):
    """Paths of `given` that parsing dropped: fields the schema does not have."""
    if isinstance(given, dict):
        if not isinstance(parsed, dict):
            return [path or "."]
        missing = []
        for key, value in given.items():
            if key not in parsed:
                missing.append(f"{path}.{key}")
            else:
                missing += unknown_fields(value, parsed[key], f"{path}.{key}")
        return missing
    if isinstance(given, list) and isinstance(parsed, list):
        return [m for i, (g, p) in enumerate(zip(given, parsed)) for m in unknown_fields(g, p, f"{path}[{i}]")]
    return []


def main():
    documents = [d for d in yaml.safe_load_all(sys.stdin) if d]
    scaled = [d for d in documents if d.get("kind") == "ScaledObject"]
    others = [d for d in documents if d.get("kind") != "ScaledObject"]
    deployments = {d["metadata"]["name"] for d in others if d.get("kind") == "Deployment"}
    autoscaled = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in others
        if d.get("kind") == "HorizontalPodAutoscaler"
    }
    errors = []
    for document in scaled:
        name = document["metadata"]["name"]
        try:
            parsed = ScaledObject.model_validate(document)
        except Exception as error:  # pydantic's ValidationError, with every reason
            errors.append(f"ScaledObject {name}: {error}")
            continue
        dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
        errors += [f"ScaledObject {name}: unknown field {p}" for p in unknown_fields(document, dumped)]
        target = document["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            errors.append(f"ScaledObject {name} scales {target}, which is no Deployment here")
        if target in autoscaled:
            errors.append(f"ScaledObject {name}: a HorizontalPodAutoscaler also scales {target}")
        for trigger in document["spec"]["triggers"]:
            if trigger["type"] == "redis-streams":
                for needed in ("address", "stream", "consumerGroup"):
                    if not trigger.get("metadata", {}).get(needed):
                        errors.append(f"ScaledObject {name}: a redis-streams trigger without {needed}")
    if errors:
        sys.exit("\n".join(errors))
    yaml.safe_dump_all(others, sys.stdout, sort_keys=False)
    print(f"{len(scaled)} ScaledObjects valid", file=sys.stderr)


if __name__ == "__main__":
    main()
