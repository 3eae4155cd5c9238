#!/usr/bin/env python3
"""Checks for the Herald Helm chart (deploy/helm/herald) without a cluster.

    python3 deploy/helm/check.py

Always (standard library + PyYAML):
  1. files/alerts.yml is a byte-for-byte copy of deploy/prometheus/alerts.yml.
  2. Every values key that a template reads (.Values.a.b, and the aliases
     $v = .Values, $r = .Values.<role>, $s = .Values.<role>.service,
     $a = .Values.admin, $i = .Values.admin.ingress) exists in values.yaml.
  2b. Prometheus rules: every alert has a runbook_url annotation pointing at an
     anchor that docs/runbooks.md has.

When the `helm_python` module is importable (pip install helm-python-sdk: the
Helm v4 SDK as a library, no helm binary needed):
  3. helm lint --strict on several value sets.
  4. helm template on those value sets; every document parses; for each role
     the herald.toml that the init container assembles (ConfigMap + role file +
     Secret) parses as TOML and has the expected role, listen, paths and
     tenants; the HPA for dispatch is capped at the partitions.
     The admin service: its Deployment, Service, probes, Ingress option;
     its admin.toml (ConfigMap) parses and names the gateways' storage and
     queue; the secrets key reaches the gateways (TOML) and the admin (env
     from the Secret), never the ConfigMap.
  5. Render failures that must happen do (too many dispatch replicas, a
     non-tenant table in tenantsToml, a grace period below the drain timeout,
     chart-owned keys in config, the admin without a secrets key), and
     values.schema.json refuses wrong values.
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
ALIASES = {"$v": [""], "$r": ["ingest.", "dispatch."], "$s": ["ingest.service."], "$a": ["admin."],
           "$i": ["admin.ingress."]}
SERVICE_ALIAS = {"service-admin.yaml": ["admin.service."]}
ref = re.compile(r"(\.Values|\$v|\$r|\$s|\$a|\$i)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


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
        prefixes = [""] if base == ".Values" else SERVICE_ALIAS.get(tpl.name, ALIASES[base]) if base == "$s" else ALIASES[base]
        for p in prefixes:
            path = (p + rest).split(".")
            # Keys under `config` mirror herald.toml and are optional by design;
            # `pdb.minAvailable` is an optional alternative to maxUnavailable.
            if path[0] == "config" or path[-1] == "minAvailable" or path[:2] == ["admin", "config"]:
                continue
            if not has_path(values, path):
                missing.append(f"{tpl.name}: {m.group(0)} -> {'.'.join(path)}")
check(not missing, "every values key read by a template exists in values.yaml"
      + ("".join(f"\n        missing: {x}" for x in missing)))

# 2b. runbook_url ------------------------------------------------------------
rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
runbooks = (REPO / "docs/runbooks.md").read_text() if (REPO / "docs/runbooks.md").exists() else ""
anchors = {m.group(1) for m in re.finditer(r'<a id="([^"]+)"></a>', runbooks)}
bad_runbooks = []
for g in rules["groups"]:
    for r in g["rules"]:
        if "alert" not in r:
            continue
        ann = r.get("annotations", {})
        url = ann.get("runbook_url", "")
        anchor = url.split("#", 1)[1] if "#" in url else ""
        if "runbook" in ann or not url.endswith(f"docs/runbooks.md#{anchor}") or anchor not in anchors:
            bad_runbooks.append(f"{r['alert']}: runbook_url={url!r}")
check(not bad_runbooks, "every alert has a runbook_url to an anchor in docs/runbooks.md"
      + "".join(f"\n        {b}" for b in bad_runbooks))


def check_admin(name: str, vals: dict, docs: list[dict], deploys: dict, admin_on: bool) -> None:
    """The admin service's objects and configuration."""
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    ingresses = [d for d in docs if d["kind"] == "Ingress"]
    if not admin_on:
        check("admin.toml" not in cm["data"] and "herald-admin" not in services and not ingresses,
              f"[{name}] admin off: no admin objects")
        return
    a = merged_admin(vals)
    cfg = tomllib.loads(cm["data"]["admin.toml"])
    gw = vals.get("config") or yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    check(cfg["listen"] == f"0.0.0.0:{a['port']}" and cfg["data_dir"] == "/var/lib/herald"
          and cfg["plugins_dir"] == "/opt/herald/plugins"
          and cfg["storage"] == toml_of(gw.get("storage", defaults["storage"]))
          and cfg["queue"] == toml_of(gw.get("queue", defaults["queue"]))
          and cfg["secure_cookies"] is a["secureCookies"] and "secrets_key" not in cfg and "operator_token" not in cfg,
          f"[{name}] admin.toml: listen, paths, the gateways' storage and queue, no secrets")
    for k, v in (a.get("config") or {}).items():
        check(cfg.get(k) == v, f"[{name}] admin.config.{k} reaches admin.toml")
    check(SECRETS_KEY not in yaml.safe_dump(cm), f"[{name}] the secrets key is not in the ConfigMap")
    pod = deploys["herald-admin"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    ref = env["HERALD_ADMIN_SECRETS_KEY"]["valueFrom"]["secretKeyRef"]
    check(c["command"] == ["/usr/local/bin/herald-admin"] and env["HERALD_ADMIN_CONFIG"]["value"] == "/etc/herald/admin/admin.toml"
          and ref["key"] == "secrets-key" and "value" not in env["HERALD_ADMIN_SECRETS_KEY"]
          and env["HERALD_LOG"]["value"] == vals.get("log", {}).get("level", "info"),
          f"[{name}] admin container: herald-admin, its config, the secrets key from the Secret, HERALD_LOG")
    check(all(c[p]["httpGet"]["path"] == "/healthz" and c[p]["httpGet"]["port"] == "http"
              for p in ("startupProbe", "livenessProbe", "readinessProbe"))
          and c["ports"][0]["containerPort"] == a["port"],
          f"[{name}] admin probes on /healthz, port {a['port']}")
    check(c["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"],
          f"[{name}] admin: non-root, read-only root filesystem")
    svc = services.get("herald-admin")
    check(svc is not None and svc["spec"]["ports"][0]["port"] == a["service"]["port"]
          and svc["spec"]["selector"].get("app.kubernetes.io/component") == "admin",
          f"[{name}] admin Service selects the admin pods")
    if not vals["secrets"].get("existingSecret"):
        sec = next(d for d in docs if d["kind"] == "Secret")
        toml = tomllib.loads(sec["stringData"]["secrets.toml"])
        check(sec["stringData"].get("secrets-key") == SECRETS_KEY and toml.get("secrets_key") == SECRETS_KEY,
              f"[{name}] one secrets key for the gateways (TOML) and the admin (secrets-key)")
    otlp = (vals.get("otlp") or {}).get("endpoint")
    for d in deploys.values():
        e = {x["name"]: x.get("value") for x in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        check(e.get("OTEL_EXPORTER_OTLP_ENDPOINT") == (otlp or None), f"[{name}] {d['metadata']['name']}: OTLP endpoint {otlp or 'off'}")
    if a["ingress"]["enabled"]:
        check(len(ingresses) == 1 and ingresses[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "herald-admin"
              and ingresses[0]["spec"].get("tls"), f"[{name}] admin Ingress to the admin Service, with TLS")
    else:
        check(not ingresses, f"[{name}] no Ingress by default")


def merged_admin(vals: dict) -> dict:
    base = yaml.safe_load((CHART / "values.yaml").read_text())["admin"]
    out = copy.deepcopy(base)
    stack = [(out, vals.get("admin") or {})]
    while stack:
        dst, srcd = stack.pop()
        for k, v in srcd.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                stack.append((dst[k], v))
            else:
                dst[k] = copy.deepcopy(v)
    return out


def toml_of(v):
    """A values subtree as the chart renders it into TOML (whole floats as ints)."""
    if isinstance(v, dict):
        return {k: toml_of(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [toml_of(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


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

SECRETS_KEY = "UExBQ0VIT0xERVItY29tcG9zZS1kZW1vLWtleS0zMmI="
BASE = {"secrets": {"adminToken": "tok-\"quoted\"", "tenantsToml": TENANTS, "secretsKey": SECRETS_KEY,
                    "operatorToken": "operator-token-0123456789"}}


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
        "otlp": {"endpoint": "http://otel-collector.observability:4318"},
        "admin": {"ingress": {"enabled": True, "className": "nginx",
                              "hosts": [{"host": "herald-admin.example.com"}],
                              "tls": [{"secretName": "herald-admin-tls", "hosts": ["herald-admin.example.com"]}]},
                  "allowPrivate": ["10.0.0.0/8"], "config": {"max_upload_rows": 5000}},
    }),
    "admin-off": merged({"admin": {"enabled": False}, "secrets": {"secretsKey": "", "operatorToken": ""}}),
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
    "admin without a secrets key": (merged({"secrets": {"secretsKey": ""}}), "needs secrets.secretsKey"),
    "short operator token": (merged({"secrets": {"operatorToken": "short"}}), "at least 16"),
    "admin ingress without hosts": (merged({"admin": {"ingress": {"enabled": True}}}), "needs admin.ingress.hosts"),
    "chart-owned key in admin.config": (merged({"admin": {"config": {"storage": {"backend": "sqlite"}}}}), "set by the chart"),
    # values.schema.json
    "schema: unknown top-level key": (merged({"admn": {"enabled": True}}), "admn"),
    "schema: admin.port not a port": (merged({"admin": {"port": "http"}}), "/admin/port"),
    "schema: log.format": (merged({"log": {"format": "yaml"}}), "/log/format"),
    "schema: admin.ingress.hosts entry without host": (merged({"admin": {"ingress": {"enabled": True, "hosts": [{"paths": []}]}}}), "host"),
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
        admin_on = vals.get("admin", {}).get("enabled", True)
        want = {"herald-ingest", "herald-dispatch"} | ({"herald-admin"} if admin_on else set())
        check(set(deploys) == want, f"[{name}] Deployments {sorted(want)}")
        check_admin(name, vals, docs, deploys, admin_on)
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
