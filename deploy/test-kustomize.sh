#!/usr/bin/env bash
# Renders the Kubernetes manifests (deploy/kubernetes/base and overlays/example) with
# kustomize and validates every resource against the Kubernetes OpenAPI schemas, offline.
#
#   deploy/test-kustomize.sh
#
# Tools:
# - rendering: `kustomize build` when a kustomize binary is on PATH, else `kubectl kustomize`
#   (kubectl 1.21+ embeds kustomize v4+; Debian's `kubectl` package is installed when neither
#   is there). Kustomize v4 or later is needed (the `labels` and `replicas` fields).
# - validation: kubernetes-validate from PyPI (it ships the JSON schemas of every Kubernetes
#   minor version, so it needs no network once installed), in a virtualenv under
#   ~/.cache/cellkv, in strict mode (an unknown field fails) against Kubernetes
#   $KUBE_VERSIONS (default: 1.29.0 and 1.37.0).
# Then a few checks the schemas cannot make: the peers list names every replica once, the
# pods' start command (run here with sh) gives each pod the id peers give its name, the
# probes and the preStop hook call cellkv-cli subcommands that exist, and the overlay
# changed what it says.
# And once, that the validator does reject a broken manifest (so a pass means something).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
versions="${KUBE_VERSIONS:-1.29.0 1.37.0}"
validator_version="1.37.0"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# --- The renderer.
render=()
if command -v kustomize >/dev/null 2>&1; then
    render=(kustomize build)
else
    if ! command -v kubectl >/dev/null 2>&1; then
        echo "installing kubectl (for kubectl kustomize)" >&2
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubectl >/dev/null 2>&1 ||
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubernetes-client >/dev/null
    fi
    render=(kubectl kustomize)
fi
kustomize_version="$("${render[0]}" version --client 2>/dev/null | awk -F': *' '/Kustomize/ { print $2 }')"
[ -n "$kustomize_version" ] || kustomize_version="$("${render[@]/build/version}" 2>/dev/null | head -1 || true)"
case "$kustomize_version" in
    v2*|v3*) echo "kustomize $kustomize_version is too old: v4 or later is needed" >&2; exit 1 ;;
esac
echo "renderer: ${render[*]} (kustomize ${kustomize_version:-version unknown})"

# --- The validator, in its own virtualenv, installed once.
venv="${KUBE_VALIDATE_VENV:-$HOME/.cache/cellkv/kubernetes-validate-venv}"
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$validator_version"; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$validator_version"
fi
echo "validator: $("$venv/bin/kubernetes-validate" --version 2>&1 | tail -1)"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
failures=0
resources=0

# The validator must reject an unknown field: proof that strict schemas are in use offline.
printf 'apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: x\nspec:\n  replicass: 1\n  serviceName: x\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: x, image: x}]}}\n' >"$out/broken.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet "$out/broken.yaml" >/dev/null 2>&1; then
    echo "FAIL: the validator accepted a StatefulSet with an unknown field" >&2
    exit 1
fi

for dir in base overlays/example; do
    name="${dir//\//-}"
    file="$out/$name.yaml"
    if ! "${render[@]}" "deploy/kubernetes/$dir" >"$file" 2>"$out/$name.err"; then
        echo "FAIL: rendering deploy/kubernetes/$dir" >&2
        cat "$out/$name.err" >&2
        failures=$((failures + 1))
        continue
    fi
    count=$(grep -c '^kind:' "$file")
    resources=$((resources + count))
    for version in $versions; do
        if "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$file" >"$out/$name.log" 2>&1; then
            echo "ok: deploy/kubernetes/$dir: $count resources valid against Kubernetes $version (strict)"
        else
            echo "FAIL: deploy/kubernetes/$dir against Kubernetes $version:" >&2
            cat "$out/$name.log" >&2
            failures=$((failures + 1))
        fi
    done
    # What the schemas cannot see.
    if ! "$venv/bin/python" - "$file" "$dir" "$root/client/src/main.rs" <<'EOF'
import re, sys, tomllib, yaml

path, which, cli_source = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
docs = [d for d in yaml.safe_load_all(open(path)) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
problems = []
sts = by_kind["StatefulSet"][0]
spec = sts["spec"]
pod = spec["template"]["spec"]
container = pod["containers"][0]
config_map = by_kind["ConfigMap"][0]
config = tomllib.loads(config_map["data"]["cellkv.toml"])
replicas = spec["replicas"]
peers = config["peers"]
# Every replica has one peers entry under its stable name, and ids are distinct.
by_host = {}
for entry in peers:
    node_id, addr = entry.split("@", 1)
    by_host.setdefault(addr, []).append(int(node_id))
hosts = [f"{sts['metadata']['name']}-{i}.{spec['serviceName']}:{config['raft-port']}" for i in range(replicas)]
if sorted(by_host) != sorted(hosts) or any(len(ids) != 1 for ids in by_host.values()):
    problems.append(f"peers {peers} do not name each of the {replicas} replicas once: {hosts}")
if len({int(e.split("@")[0]) for e in peers}) != len(peers):
    problems.append(f"peers {peers} repeat a node id")
# The pod's start command, run by sh for each pod name with a stand-in cellkv, must pick
# the id its name has in peers.
import os, subprocess, tempfile
with tempfile.TemporaryDirectory() as tmp:
    conf = os.path.join(tmp, "cellkv.toml")
    open(conf, "w").write(config_map["data"]["cellkv.toml"])
    fake = os.path.join(tmp, "cellkv")
    open(fake, "w").write('#!/bin/sh\necho "$@"\n')
    os.chmod(fake, 0o755)
    for i, host in enumerate(hosts):
        env = {"PATH": f"{tmp}:/usr/bin:/bin", "HOSTNAME": f"{sts['metadata']['name']}-{i}",
               "CELLKV_CONFIG": conf}
        run = subprocess.run(["/bin/sh", "-c", container["args"][0]], env=env,
                             capture_output=True, text=True)
        want = f"--node-id {by_host.get(host, ['?'])[0]}"
        if run.stdout.strip() != want:
            problems.append(f"pod {env['HOSTNAME']} starts with '{run.stdout.strip()}{run.stderr.strip()}', not '{want}'")
mounted = [v for v in pod["volumes"] if "configMap" in v]
if not mounted or mounted[0]["configMap"]["name"] != config_map["metadata"]["name"]:
    problems.append("the StatefulSet does not mount the generated ConfigMap")
headless = [s for s in by_kind["Service"] if s["spec"].get("clusterIP") == "None"]
if not headless or headless[0]["metadata"]["name"] != spec["serviceName"] or not headless[0]["spec"].get("publishNotReadyAddresses"):
    problems.append("the peers Service must be headless, named by serviceName, and publish not-ready pods")
if spec.get("podManagementPolicy") != "Parallel":
    problems.append("podManagementPolicy must be Parallel (a node is ready only once a majority runs)")
pdb = by_kind["PodDisruptionBudget"][0]["spec"]
if pdb.get("maxUnavailable") != 1:
    problems.append("the PodDisruptionBudget must allow one pod down at most")
sc = container["securityContext"]
if not sc.get("readOnlyRootFilesystem") or not pod["securityContext"].get("runAsNonRoot"):
    problems.append("the pod must run as non-root on a read-only root filesystem")
# Every cellkv-cli subcommand the probes and the hook run exists in the tool.
commands = [container[p]["exec"]["command"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
commands.append(container["lifecycle"]["preStop"]["exec"]["command"])
for command in commands:
    words = [w for w in command[1:] if not w.startswith("--") and not re.fullmatch(r"[0-9.:]+", w)]
    for word in words:
        variant = "".join(part.capitalize() for part in word.split("-"))
        if not re.search(rf"^\s*{variant}\b", cli_source, re.M):
            problems.append(f"cellkv-cli has no subcommand '{word}' ({' '.join(command)})")
claim = spec["volumeClaimTemplates"][0]["spec"]
if which == "base":
    if replicas != 3 or claim["resources"]["requests"]["storage"] != "2Gi":
        problems.append("the base is three replicas with 2Gi volumes")
else:
    if replicas == 3 or "storageClassName" not in claim:
        problems.append("the example overlay changes the replica count and the storage class")
for p in problems:
    print(f"FAIL: deploy/kubernetes/{which}: {p}", file=sys.stderr)
if not problems:
    print(f"ok: deploy/kubernetes/{which}: {replicas} replicas, each pod starts with its own id from peers, probes and preStop call existing cellkv-cli subcommands")
sys.exit(1 if problems else 0)
EOF
    then
        failures=$((failures + 1))
    fi
done

if [ "$failures" -gt 0 ]; then
    echo "kustomize: $failures check(s) failed" >&2
    exit 1
fi
echo "kustomize: base and overlays/example render; $resources resources valid against Kubernetes ${versions// /, } (strict)"
