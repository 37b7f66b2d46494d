"""Write the vendored Gateway API definitions (this package's *.json) from an upstream release.

    python -m emulator.kinds.gatewayapi.regenerate /path/to/gateway-api.git v1.6.1

reads `config/crd/standard/gateway.networking.k8s.io_<plural>.yaml` at the tag from a clone (bare or
not) of github.com/kubernetes-sigs/gateway-api and writes each as compact JSON next to this file (YAML
would cost start-up time). Then update SOURCE_TAG in __init__.py and the README.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from emulator.kinds.gatewayapi import DEFINITIONS, HERE


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    repo, tag = argv
    for plural in DEFINITIONS:
        path = f"config/crd/standard/gateway.networking.k8s.io_{plural}.yaml"
        text = subprocess.run(["git", "-C", repo, "show", f"{tag}:{path}"], check=True, capture_output=True, text=True).stdout
        crd = yaml.safe_load(text)
        Path(HERE, f"{plural}.json").write_bytes(orjson.dumps(crd, option=orjson.OPT_SORT_KEYS))
        print(f"{plural}: {crd['metadata']['annotations'].get('gateway.networking.k8s.io/bundle-version')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
