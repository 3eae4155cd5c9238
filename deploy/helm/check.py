#!/usr/bin/env python3
"""Checks for the Herald Helm chart (deploy/helm/herald) without a cluster.

    python3 deploy/helm/check.py

Always (standard library + PyYAML):
  1. files/alerts.yml is a byte-for-byte copy of deploy/prometheus/alerts.yml.
  2. Every values key that a template reads (.Values.a.b, and the aliases
     $v = .Values, $r = .Values.<role>, $s = .Values.ingest.service) exists in
     values.yaml.

When the `helm_python` module is importable (pip install helm-python-sdk: the
Helm v4 SDK as a library, no helm binary needed):
  3. helm lint --strict on several value sets.
  4. helm template on those value sets; every document parses; for each role
     the herald.toml that the init container assembles (ConfigMap + role file +
     Secret) parses as TOML and has the expected role, listen, paths and
     tenants; the HPA for dispatch is capped at the partitions.
  5. Render failures that must happen do (too many dispatch replicas, a
     non-tenant table in tenantsToml, a grace period below the drain timeout,
     chart-owned keys in config).
  6. With `kubernetes_validate` importable (pip install kubernetes-validate),
     every built-in kind is validated against the Kubernetes schema (--strict).

Exit status 0 when everything that could run passed; it prints what it skipped.
"""

from __future__ import annotations

import copy
import pathlib
import re
import sys
import tomllib

import yaml

HERE = pathlib.Path(__file__).resolve().parent
CHART = HERE / "herald"
REPO = HERE.parent.parent
failures: list[str] = []
skipped: list[str] = []


def check(cond: bool, msg: str) -> None:
    if cond:
        print(f"ok    {msg}")
    else:
        print(f"FAIL  {msg}")
        failures.append(msg)


# 1. alerts copy -------------------------------------------------------------
src = (REPO / "deploy/prometheus/alerts.yml").read_bytes()
copy_ = (CHART / "files/alerts.yml").read_bytes()
check(src == copy_, "files/alerts.yml equals deploy/prometheus/alerts.yml "
      "(cp deploy/prometheus/alerts.yml deploy/helm/herald/files/alerts.yml)")

# 2. values keys --------------------------------------------------------------
values = yaml.safe_load((CHART / "values.yaml").read_text())
ALIASES = {"$v": [""], "$r": ["ingest.", "dispatch."], "$s": ["ingest.service."]}
ref = re.compile(r"(\.Values|\$v|\$r|\$s)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def has_path(root: dict, path: list[str]) -> bool:
    node = root
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


missing = []
for tpl in sorted((CHART / "templates").glob("*")):
    text = tpl.read_text()
    for m in ref.finditer(text):
        base, rest = m.group(1), m.group(2).lstrip(".")
        prefixes = [""] if base == ".Values" else ALIASES[base]
        for p in prefixes:
            path = (p + rest).split(".")
            # Keys under `config` mirror herald.toml and are optional by design;
            # `pdb.minAvailable` is an optional alternative to maxUnavailable.
            if path[0] == "config" or path[-1] == "minAvailable":
                continue
            if not has_path(values, path):
                missing.append(f"{tpl.name}: {m.group(0)} -> {'.'.join(path)}")
check(not missing, "every values key read by a template exists in values.yaml"
      + ("".join(f"\n        missing: {x}" for x in missing)))

# 3-6. helm ---------------------------------------------------------------
try:
    import helm_python as helm  # type: ignore
except ImportError:
    helm = None
    skipped.append("helm lint/template (pip install helm-python-sdk)")
try:
    import kubernetes_validate  # type: ignore
except ImportError:
    kubernetes_validate = None
    skipped.append("Kubernetes schema validation (pip install kubernetes-validate)")

TENANTS = """[[tenants]]
id = "acme"
name = "Acme \\"Ltd\\""
api_keys = ["hk_live_change_me_0123456789"]
channel_rate_per_sec = { email = 200 }

[[tenants.accounts]]
name = "ops-hook"
plugin = "webhook"
config = { url = "https://hooks.acme.example/herald", secret = "s3cr3t", batch = true }

[[tenants.templates]]
id = "welcome"
text = "Hello {{ name }}"
"""

BASE = {"secrets": {"adminToken": "tok-\"quoted\"", "tenantsToml": TENANTS}}


def merged(*overrides: dict) -> dict:
    out = copy.deepcopy(BASE)
    for o in overrides:
        stack = [(out, o)]
        while stack:
            dst, srcd = stack.pop()
            for k, v in srcd.items():
                if isinstance(v, dict) and isinstance(dst.get(k), dict):
                    stack.append((dst[k], v))
                else:
                    dst[k] = copy.deepcopy(v)
    return out


SCENARIOS = {
    "defaults+tenants": merged(),
    "everything-on": merged({
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "ingest": {"autoscaling": {"enabled": True}, "service": {"type": "LoadBalancer",
                   "externalTrafficPolicy": "Local"}},
        "dispatch": {"autoscaling": {"enabled": True, "maxReplicas": 40}},
        "plugins": {"extraImages": [{"name": "acme-sms", "image": "registry.example.com/acme/sms:1.2.0",
                                     "path": "/plugins"}]},
        "config": {"retry": {"max_attempts": 7}, "plugins": {"allow_hosts": {"webhook": ["hooks.acme.example"]},
                   "redirect_hosts": {"oapi.dingtalk.com": "http://mock:9000"}},
                   "prices": [{"channel": "email", "unit_minor": 2, "currency": "CNY"}],
                   "dispatch": {"drain_timeout_ms": 25500, "concurrency": 32}},
        "port": 9000,
        "log": {"format": "text"},
    }),
    "existing-secret+pvc": merged({
        "secrets": {"existingSecret": "herald-prod", "tenantsToml": "", "adminToken": ""},
        "plugins": {"persistence": {"enabled": True, "existingClaim": "herald-plugins", "seedBuiltin": "never",
                                    "readOnly": True}},
        "terminationGracePeriodSeconds": 60,
        "dispatch": {"replicaCount": 24},
    }),
}

MUST_FAIL = {
    "dispatch replicas > partitions": (merged({"dispatch": {"replicaCount": 25}}), "exceeds config.queue.kafka.partitions"),
    "non-tenant table in tenantsToml": (merged({"secrets": {"tenantsToml": TENANTS + "\n[dispatch]\nconcurrency = 1\n"}}),
                                        "may only hold [[tenants]] blocks"),
    "grace period below drain": (merged({"terminationGracePeriodSeconds": 12}), "must exceed"),
    "chart-owned key in config": (merged({"config": {"dispatch": {"enabled": True}}}), "set per role by the chart"),
    "no tenants": (merged({"secrets": {"tenantsToml": ""}}), "no tenants"),
    "pvc without claim": (merged({"plugins": {"persistence": {"enabled": True}}}), "existingClaim"),
}


def docs_of(manifests: dict[str, str]) -> list[dict]:
    out = []
    for name, text in manifests.items():
        if name.endswith("NOTES.txt"):
            continue
        for d in yaml.safe_load_all(text):
            if d:
                out.append(d)
    return out


def assemble(docs: list[dict], role: str, secret_toml: str | None) -> str:
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    parts = [cm["data"]["herald.toml"], cm["data"][f"{role}.toml"]]
    if secret_toml is None:
        sec = next(d for d in docs if d["kind"] == "Secret")
        secret_toml = sec["stringData"]["secrets.toml"]
    parts.append(secret_toml)
    return "\n".join(parts)


if helm is not None:
    for name, vals in SCENARIOS.items():
        lint = helm.lint(str(CHART), vals, strict=True)
        errs = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2] + list(lint.get("errors") or [])
        check(not errs, f"[{name}] helm lint --strict" + (f": {errs}" if errs else ""))
        with helm.Chart.load(str(CHART)) as chart:
            manifests = chart.render(vals, name="herald", namespace="notify")
        docs = docs_of(manifests)
        kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
        print(f"      rendered: {', '.join(kinds)}")
        deploys = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
        check(set(deploys) == {"herald-ingest", "herald-dispatch"}, f"[{name}] two Deployments")
        secret = None if vals["secrets"].get("existingSecret") else None
        existing = bool(vals["secrets"].get("existingSecret"))
        for role in ("ingest", "dispatch"):
            fake_secret = 'admin_token = "t"\n' + TENANTS if existing else None
            text = assemble(docs, role, fake_secret)
            try:
                cfg = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                check(False, f"[{name}] assembled herald.toml for {role} parses: {e}\n{text}")
                continue
            port = vals.get("port", 8080)
            check(cfg["dispatch"]["enabled"] is (role == "dispatch")
                  and cfg["listen"] == f"0.0.0.0:{port}"
                  and cfg["plugins"]["dir"] == "/opt/herald/plugins"
                  and cfg["data_dir"] == "/var/lib/herald"
                  and cfg["tenants"][0]["id"] == "acme"
                  and cfg["tenants"][0]["accounts"][0]["config"]["batch"] is True
                  and isinstance(cfg["queue"]["kafka"]["partitions"], int),
                  f"[{name}] assembled herald.toml for {role}: role, listen, paths, tenants, integer partitions")
            if not existing:
                check(cfg.get("admin_token") == 'tok-"quoted"', f"[{name}] admin_token survives quoting")
            pod = deploys[f"herald-{role}"]["spec"]["template"]["spec"]
            drain = -(-cfg["dispatch"].get("drain_timeout_ms", 10000) // 1000)
            check(pod["terminationGracePeriodSeconds"] > drain + vals.get("preStopSleepSeconds", 5),
                  f"[{name}] {role}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > drain {drain} s + preStop")
            c = pod["containers"][0]
            check(c["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"],
                  f"[{name}] {role}: non-root, read-only root filesystem")
            env = {e["name"]: e.get("value") for e in c["env"]}
            check(env["HERALD_DISPATCH__ENABLED"] == ("true" if role == "dispatch" else "false"),
                  f"[{name}] {role}: HERALD_DISPATCH__ENABLED matches the role")
        if name == "defaults+tenants":
            cm = next(d for d in docs if d["kind"] == "ConfigMap")
            check("admin_token" not in cm["data"]["herald.toml"] and "tenants" not in cm["data"]["herald.toml"]
                  and "hk_live" not in yaml.safe_dump(cm),
                  f"[{name}] no secret in the ConfigMap")
        for d in docs:
            if d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"].endswith("dispatch"):
                check(d["spec"]["maxReplicas"] <= 24, f"[{name}] dispatch HPA maxReplicas {d['spec']['maxReplicas']} <= partitions")
            if d["kind"] == "PrometheusRule":
                check(len(d["spec"]["groups"]) > 0 and sum(len(g["rules"]) for g in d["spec"]["groups"]) == 12,
                      f"[{name}] PrometheusRule carries the 12 alert rules")
        if kubernetes_validate is not None:
            bad = []
            for d in docs:
                if d["apiVersion"].startswith("monitoring.coreos.com/"):
                    continue
                try:
                    kubernetes_validate.validate(d, "1.30.0", strict=True)
                except Exception as e:  # ValidationError, or a schema the package lacks
                    bad.append(f"{d['kind']}/{d['metadata']['name']}: {str(e)[:300]}")
            check(not bad, f"[{name}] Kubernetes 1.30 schema (strict)" + "".join(f"\n        {b}" for b in bad))

    for name, (vals, expect) in MUST_FAIL.items():
        try:
            with helm.Chart.load(str(CHART)) as chart:
                chart.render(vals, name="herald", namespace="notify")
            check(False, f"render refuses: {name}")
        except Exception as e:  # helm_python raises HelmError subclasses
            check(expect in str(e), f"render refuses: {name} ({expect!r})" + ("" if expect in str(e) else f": {e}"))

for s in skipped:
    print(f"skip  {s}")
print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
