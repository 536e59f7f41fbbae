"""Validation of deploy/: the Dockerfile, the Kubernetes manifests and any nginx configs.

None of these can run here (no Docker, no cluster), so this test checks what matters in them
against the code they deploy:

* every manifest parses (python3-yaml) and the fields that fit together do: probes are gRPC on
  the served port with service names the server answers, the drain timings add up, Service,
  PDB and anti-affinity selectors match the pod labels, the HPA targets the Deployment and a
  metric the server exports, the adapter rule serves that metric, Redis keeps an fsync'd AOF;
* every flag, environment variable, port and metric a manifest names exists in the server:
  its --help, main.c's environment table, a live start on the ConfigMap's JSON and a live
  /metrics scrape; Redis's config is started with the real redis-server;
* the Dockerfile is multi-stage on Debian 12, runs as a non-root user, and its runtime
  packages cover the shared libraries the built binaries need (objdump + dpkg -S), each a
  Debian package (apt-cache, when apt's lists are present);
* nginx configs under deploy/ pass `nginx -t` (templates get test values first).

Each problem is reported as "FILE: FIELD: what is wrong".  The negative tests mutate a
manifest in memory and check the validator names the problem.
"""
import copy
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DR_BUILD_DIR", os.path.join(REPO, "build"))
SERVER_BIN = os.environ.get("DR_SERVER_BIN", os.path.join(BUILD, "server/driftrec-server"))
CLI_BIN = os.environ.get("DR_CLI_BIN", os.path.join(BUILD, "server/driftrec-cli"))
HISTORY_BIN = os.environ.get("DR_HISTORY_BIN", os.path.join(BUILD, "server/driftrec-history"))
K8S = os.path.join(REPO, "deploy/k8s")
DOCKERFILE = os.path.join(REPO, "deploy/Dockerfile")

# The ConfigMap's model options (the registry on the models volume).
MODEL_KEYS = ("model", "model-root", "model-name", "model-poll-ms")

# The probe service names: "" is the whole server (alive), the Recommender is ready once a
# model is loaded and warm (server/server.c's health handler).
LIVE_SERVICE = ""
READY_SERVICE = "driftrec.v1.Recommender"


def rel(path):
    return os.path.relpath(path, REPO)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_of(addr):
    """The port of "host:port"; None if there is none."""
    m = re.fullmatch(r".*:(\d+)", addr or "")
    return int(m.group(1)) if m else None


# --- what the server accepts, read from the server itself ---------------------------------

def server_help():
    return subprocess.run([SERVER_BIN, "--help"], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def env_options():
    """main.c's table of environment variables: {"DR_LISTEN": "listen", ...}."""
    with open(os.path.join(REPO, "server/main.c")) as f:
        text = f.read()
    return dict(re.findall(r'\{"(DR_[A-Z_]+)",\s*"([a-z-]+)"\}', text))


def metric_names_in_source():
    with open(os.path.join(REPO, "server/metrics.c")) as f:
        return set(re.findall(r"# TYPE (driftrec_[a-z_]+) ", f.read()))


# --- loading -------------------------------------------------------------------------------

def load_k8s(directory=K8S):
    """{file name: [documents]} for every .yaml in the directory; a parse error names the
    file."""
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            try:
                out[os.path.basename(path)] = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                raise AssertionError(f"{rel(path)}: not valid YAML: {e}")
    return out


def find(manifests, kind, name=None):
    """(file, document) of the first object of this kind (and name)."""
    for fname, docs in manifests.items():
        for d in docs:
            if d.get("kind") == kind and (name is None or d["metadata"].get("name") == name):
                return fname, d
    return None, None


def get(doc, path, default=None):
    """doc["a"]["b"][0]... for path "a.b.0"; default when any step is missing."""
    cur = doc
    for part in path.split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return default
    return cur


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def config_json(manifests, errors):
    """The server's config file from the ConfigMap the Deployment mounts at DR_CONFIG."""
    fname, cm = find(manifests, "ConfigMap", "driftrec-config")
    if not cm:
        errors.append("configmap.yaml: no ConfigMap driftrec-config")
        return {}
    try:
        return json.loads(cm["data"]["config.json"])
    except (KeyError, TypeError, ValueError) as e:
        errors.append(f"{fname}: data.config.json: not a JSON object ({e})")
        return {}


def redis_conf(manifests):
    _, cm = find(manifests, "ConfigMap", "driftrec-redis-config")
    text = (cm.get("data") or {}).get("redis.conf", "") if cm else ""
    conf = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts and not parts[0].startswith("#"):
            conf[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return text, conf


def server_container(dep):
    for c in get(dep, "spec.template.spec.containers", []):
        if c.get("name") == "server":
            return c
    return None


# --- the manifest validator -----------------------------------------------------------------

def validate_k8s(m, help_text, env_table, metric_names):
    """Every problem found, as "FILE: FIELD: message"; [] when the manifests fit together."""
    errors = []
    for fname, docs in m.items():
        for i, d in enumerate(docs):
            for key in ("apiVersion", "kind"):
                if key not in d:
                    errors.append(f"{fname}: document {i}: no {key}")
            if not get(d, "metadata.name") and d.get("kind") != "Kustomization":
                errors.append(f"{fname}: document {i}: no metadata.name")

    # kustomization: every manifest listed (the adapter's rule lives with the adapter)
    kust = m.get("kustomization.yaml", [{}])[0]
    listed = set(kust.get("resources", []))
    for fname in m:
        if fname not in ("kustomization.yaml", "prometheus-adapter.yaml") and fname not in listed:
            errors.append(f"kustomization.yaml: resources: {fname} is not listed")
    for r in listed:
        if r not in m:
            errors.append(f"kustomization.yaml: resources: {r} does not exist")

    dfile, dep = find(m, "Deployment", "driftrec")
    if not dep:
        return errors + ["deployment.yaml: no Deployment driftrec"]
    pod = get(dep, "spec.template.spec", {})
    pod_labels = get(dep, "spec.template.metadata.labels", {})
    if not labels_match(get(dep, "spec.selector.matchLabels"), pod_labels):
        errors.append(f"{dfile}: spec.selector.matchLabels: does not match the pod labels")
    c = server_container(dep)
    if not c:
        return errors + [f"{dfile}: spec.template.spec.containers: no container 'server'"]
    P = f"{dfile}: containers[server]"
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    grpc_port, metrics_port = ports.get("grpc"), ports.get("metrics")
    if grpc_port is None or metrics_port is None:
        errors.append(f"{P}.ports: needs ports named grpc and metrics, has {sorted(ports)}")

    # environment: every name exists in the server; the ports are the container's
    help_envs = set(re.findall(r"\bDR_[A-Z_]+\b", help_text))
    for name in env:
        if name not in help_envs and name not in env_table:
            errors.append(f"{P}.env.{name}: not an environment variable driftrec-server reads")
    for name, port, field in (("DR_LISTEN", grpc_port, "grpc"),
                              ("DR_METRICS", metrics_port, "metrics")):
        if name not in env:
            errors.append(f"{P}.env.{name}: not set (the binary's default is loopback only)")
        elif not str(env[name]).startswith("0.0.0.0:") or port_of(env[name]) != port:
            errors.append(f"{P}.env.{name}: {env[name]!r}, expected 0.0.0.0:{port} "
                          f"(the {field} containerPort)")
    annotations = get(dep, "spec.template.metadata.annotations", {})
    if str(annotations.get("prometheus.io/port")) != str(metrics_port):
        errors.append(f"{dfile}: spec.template.metadata.annotations.prometheus.io/port: "
                      f"{annotations.get('prometheus.io/port')!r}, expected {metrics_port}")

    # the config file: mounted from the ConfigMap where DR_CONFIG says, no key that the
    # environment overrides (it would be silently ignored)
    cfg = config_json(m, errors)
    cm_file, _ = find(m, "ConfigMap", "driftrec-config")
    cfg_path = env.get("DR_CONFIG")
    mounts = {vm["name"]: vm for vm in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if not cfg_path:
        errors.append(f"{P}.env.DR_CONFIG: not set: the ConfigMap would not be read")
    else:
        ok = any(get(volumes.get(n), "configMap.name") == "driftrec-config"
                 and os.path.join(vm["mountPath"], "config.json") == cfg_path
                 for n, vm in mounts.items())
        if not ok:
            errors.append(f"{P}.volumeMounts: no mount of ConfigMap driftrec-config puts "
                          f"config.json at DR_CONFIG={cfg_path}")
    for var, option in env_table.items():
        if var in env and option in cfg:
            errors.append(f"{cm_file}: config.json.{option}: also set by {var} in {dfile}, "
                          "which wins: remove one")

    # probes: native gRPC on the served port, the right service names
    period = get(c, "readinessProbe.periodSeconds", 10)
    for probe, service in (("startupProbe", LIVE_SERVICE), ("livenessProbe", LIVE_SERVICE),
                           ("readinessProbe", READY_SERVICE)):
        g = get(c, f"{probe}.grpc")
        if probe == "startupProbe" and probe not in c:
            continue
        if not isinstance(g, dict):
            errors.append(f"{P}.{probe}: not a gRPC probe")
            continue
        if g.get("port") != grpc_port:
            errors.append(f"{P}.{probe}.grpc.port: {g.get('port')}, expected {grpc_port} "
                          "(the grpc containerPort)")
        if g.get("service", "") != service:
            errors.append(f"{P}.{probe}.grpc.service: {g.get('service', '')!r}, expected "
                          f"{service!r}")

    # drain: preStop sleep >= readiness period; grace period > preStop + delay + grace
    cmd = get(c, "lifecycle.preStop.exec.command", [])
    sleep_s = get(c, "lifecycle.preStop.sleep.seconds")
    if sleep_s is None and len(cmd) == 2 and cmd[0].endswith("sleep") and cmd[1].isdigit():
        sleep_s = int(cmd[1])
    if sleep_s is None:
        errors.append(f"{P}.lifecycle.preStop: expected a sleep (exec sleep N, or sleep)")
        sleep_s = 0
    elif sleep_s < period:
        errors.append(f"{P}.lifecycle.preStop: sleeps {sleep_s} s, less than the readiness "
                      f"period ({period} s)")
    delay_ms = int(cfg.get("drain-delay-ms", 0))
    grace_ms = int(cfg.get("drain-grace-ms", 5000))
    if delay_ms < period * 1000:
        errors.append(f"{cm_file}: config.json.drain-delay-ms: {delay_ms}, less than one "
                      f"readiness period ({period} s): a prober may never see NOT_SERVING")
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    # After the grace period the server cancels the calls left, but exits only once every
    # handler has returned: one blocked on Redis returns within history-timeout-ms.
    stuck_ms = int(cfg.get("history-timeout-ms", 2000)) if str(
        env.get("DR_HISTORY", "")).startswith(("redis://", "unix://")) else 0
    need = sleep_s + (delay_ms + grace_ms + stuck_ms) / 1000
    if not tgps > need:
        errors.append(f"{dfile}: spec.template.spec.terminationGracePeriodSeconds: {tgps}, must "
                      f"exceed preStop {sleep_s} s + drain-delay-ms {delay_ms} + drain-grace-ms "
                      f"{grace_ms} + history-timeout-ms {stuck_ms} = {need:g} s")
    live = get(c, "livenessProbe.periodSeconds", 10) * get(c, "livenessProbe.failureThreshold", 3)
    if live * 1000 <= delay_ms + grace_ms:
        errors.append(f"{P}.livenessProbe: fails after {live} s, within a drain "
                      f"({delay_ms + grace_ms} ms), when health \"\" answers NOT_SERVING")
    if int(cfg.get("max-connection-age-ms", 0)) <= 0:
        errors.append(f"{cm_file}: config.json.max-connection-age-ms: not set: behind a "
                      "Kubernetes Service, new replicas would get no calls")

    # resources; one worker per CPU of the limit
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            if get(c, f"resources.{kind}.{res}") is None:
                errors.append(f"{P}.resources.{kind}.{res}: not set")
    cpu = str(get(c, "resources.limits.cpu", ""))
    cpus = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu or 0)
    if "workers" not in cfg:
        errors.append(f"{cm_file}: config.json.workers: not set (the default, the node's CPU "
                      "count, ignores the pod's CPU limit)")
    elif cpus and int(cfg["workers"]) != int(cpus):
        errors.append(f"{cm_file}: config.json.workers: {cfg['workers']}, expected the CPU "
                      f"limit ({cpu}) of {dfile}")

    # security: non-root
    sc = pod.get("securityContext", {})
    if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
        errors.append(f"{dfile}: spec.template.spec.securityContext: runAsNonRoot and a "
                      "non-zero runAsUser expected")

    # anti-affinity over the pods' own labels
    terms = get(pod, "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution",
                []) + [{"podAffinityTerm": t} for t in get(
                    pod, "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution",
                    [])]
    if not any(labels_match(get(t, "podAffinityTerm.labelSelector.matchLabels"), pod_labels)
               and get(t, "podAffinityTerm.topologyKey") == "kubernetes.io/hostname"
               for t in terms):
        errors.append(f"{dfile}: spec.template.spec.affinity.podAntiAffinity: no term over the "
                      "pod labels with topologyKey kubernetes.io/hostname")

    # the model: one bundle (DR_MODEL / "model") or a registry ("model-root" + "model-name",
    # or their DR_ variables), not both (the server refuses that); under a mounted volume
    # (read-only), the claim defined.  The log key under a mounted volume.
    def option(var, key):
        """(where, value) of an option set by the Deployment's env or the ConfigMap."""
        if env.get(var):
            return f"{P}.env.{var}", env[var]
        if cfg.get(key) not in (None, ""):
            return f"{cm_file}: config.json.{key}", str(cfg[key])
        return None, ""
    model_at, model = option("DR_MODEL", "model")
    root_at, root = option("DR_MODEL_ROOT", "model-root")
    name_at, model_name = option("DR_MODEL_NAME", "model-name")
    if model and root:
        errors.append(f"{model_at}: {model!r} and {root_at}: {root!r}: the server refuses "
                      "both (--model and --model-root are exclusive): keep one")
    if root and not model_name:
        errors.append(f"{root_at}: {root!r} without model-name (DR_MODEL_NAME): the server "
                      "refuses a registry without the model's directory name")
    if model_name and (not root or "/" in model_name or model_name in (".", "..")):
        errors.append(f"{name_at}: {model_name!r}: a directory name without '/', with "
                      "model-root")
    path_at, path = (root_at, root) if root else (model_at, model)
    mvm = [vm for vm in mounts.values()
           if path.rstrip("/") == vm["mountPath"].rstrip("/")
           or path.startswith(vm["mountPath"].rstrip("/") + "/")]
    if not path:
        errors.append(f"{P}.env: no model: set model-root and model-name in the ConfigMap "
                      "(or DR_MODEL for one bundle)")
    elif not mvm:
        errors.append(f"{path_at}: {path!r} is not under a mounted volume")
    else:
        if not mvm[0].get("readOnly"):
            errors.append(f"{P}.volumeMounts.{mvm[0]['name']}: the models are mounted writable")
        claim = get(volumes.get(mvm[0]["name"]), "persistentVolumeClaim.claimName")
        if claim and not find(m, "PersistentVolumeClaim", claim)[1]:
            errors.append(f"{dfile}: volumes.{mvm[0]['name']}: claim {claim} is not defined")
    key = cfg.get("log-key-file")
    if key and not any(key.startswith(vm["mountPath"].rstrip("/") + "/")
                       and not vm.get("readOnly") for vm in mounts.values()):
        errors.append(f"{cm_file}: config.json.log-key-file: {key} is not on a mounted volume")

    # Services: selectors over the pod labels, target ports the container has
    services = [(f, d) for f, docs in m.items() for d in docs if d.get("kind") == "Service"
                and get(d, "metadata.labels", {}).get("app.kubernetes.io/name") != "driftrec-redis"]
    for f, d in services:
        name = d["metadata"]["name"]
        if not labels_match(get(d, "spec.selector"), pod_labels):
            errors.append(f"{f}: Service {name}: spec.selector does not match the pod labels")
        for p in get(d, "spec.ports", []):
            t = p.get("targetPort", p.get("port"))
            if (isinstance(t, str) and t not in ports) or (isinstance(t, int)
                                                           and t not in ports.values()):
                errors.append(f"{f}: Service {name}: ports.{p.get('name')}.targetPort: {t!r} "
                              "is not a container port")
    if not any(get(d, "spec.clusterIP") == "None" for _, d in services):
        errors.append("service.yaml: no headless Service (clusterIP: None) for client-side "
                      "balancing")

    # HPA: autoscaling/v2 on the Deployment and a per-pod metric the server exports
    hfile, hpa = find(m, "HorizontalPodAutoscaler")
    hpa_metric = None
    if not hpa:
        errors.append("hpa.yaml: no HorizontalPodAutoscaler")
    else:
        if hpa.get("apiVersion") != "autoscaling/v2":
            errors.append(f"{hfile}: apiVersion: {hpa.get('apiVersion')}, expected "
                          "autoscaling/v2")
        ref = get(hpa, "spec.scaleTargetRef", {})
        if (ref.get("kind"), ref.get("name"), ref.get("apiVersion")) != (
                "Deployment", dep["metadata"]["name"], "apps/v1"):
            errors.append(f"{hfile}: spec.scaleTargetRef: {ref}, expected the Deployment "
                          f"{dep['metadata']['name']} (apps/v1)")
        pods_metrics = [x for x in get(hpa, "spec.metrics", []) if x.get("type") == "Pods"]
        if not pods_metrics:
            errors.append(f"{hfile}: spec.metrics: no Pods metric (in-flight requests per pod)")
        for x in pods_metrics:
            hpa_metric = get(x, "pods.metric.name")
            if hpa_metric not in metric_names:
                errors.append(f"{hfile}: spec.metrics.pods.metric.name: {hpa_metric!r} is not a "
                              "metric driftrec-server exports")
            if get(x, "pods.target.type") != "AverageValue":
                errors.append(f"{hfile}: spec.metrics.pods.target.type: expected AverageValue")
        if get(hpa, "spec.minReplicas", 1) < 2:
            errors.append(f"{hfile}: spec.minReplicas: below 2, one node's loss stops serving")

    # the adapter rule serves the HPA's metric per pod
    afile, adapter = find(m, "ConfigMap", "driftrec-prometheus-adapter")
    if not adapter:
        errors.append("prometheus-adapter.yaml: no ConfigMap driftrec-prometheus-adapter")
    else:
        rules = (yaml.safe_load((adapter.get("data") or {}).get("config.yaml", "")) or {}).get("rules", [])
        served = [r for r in rules if get(r, "name.as") == hpa_metric]
        if not served:
            errors.append(f"{afile}: data.config.yaml.rules: none serves {hpa_metric!r} as the "
                          "HPA asks")
        for r in served:
            if not re.match(re.escape(hpa_metric) + r"\{", r.get("seriesQuery", "")):
                errors.append(f"{afile}: rules.seriesQuery: {r.get('seriesQuery')!r} does not "
                              f"select {hpa_metric}")
            if get(r, "resources.overrides.pod.resource") != "pod":
                errors.append(f"{afile}: rules.resources.overrides.pod: the series' pod label "
                              "must map to the pod resource")

    # PDB: over the pod labels, leaves replicas up
    pfile, pdb = find(m, "PodDisruptionBudget")
    if not pdb:
        errors.append("pdb.yaml: no PodDisruptionBudget")
    else:
        if not labels_match(get(pdb, "spec.selector.matchLabels"), pod_labels):
            errors.append(f"{pfile}: spec.selector.matchLabels: does not match the pod labels")
        min_replicas = get(hpa, "spec.minReplicas", 1) if hpa else 1
        if get(pdb, "spec.maxUnavailable", min_replicas) >= min_replicas:
            errors.append(f"{pfile}: spec.maxUnavailable: must be below minReplicas "
                          f"({min_replicas})")

    # Redis: the history URL names its Service; an fsync'd AOF, no eviction, on a PVC
    rfile, rsts = find(m, "StatefulSet", "driftrec-redis")
    _, rsvc = find(m, "Service", "driftrec-redis")
    history = env.get("DR_HISTORY", "")
    hm = re.fullmatch(r"redis://([^:/]+):(\d+)/(\d+)", history)
    if not hm:
        errors.append(f"{P}.env.DR_HISTORY: {history!r}, expected redis://HOST:PORT/DB: more "
                      "than one replica needs the shared store")
    elif not rsvc or hm.group(1) != rsvc["metadata"]["name"] or int(hm.group(2)) not in [
            p.get("port") for p in get(rsvc, "spec.ports", [])]:
        errors.append(f"{P}.env.DR_HISTORY: {history!r} does not name the Redis Service and "
                      "its port")
    if hm and int(cfg.get("state-cache", 100000)) != 0:
        errors.append(f"{cm_file}: config.json.state-cache: {cfg.get('state-cache', 'default')}"
                      ", expected 0: with a shared history a pod's cached states miss the "
                      "Ingests other pods take")
    nfile, netpol = find(m, "NetworkPolicy", "driftrec-redis")
    redis_labels = get(rsts, "spec.template.metadata.labels", {}) if rsts else {}
    if not netpol:
        errors.append("redis.yaml: no NetworkPolicy driftrec-redis (Redis has no password)")
    elif not labels_match(get(netpol, "spec.podSelector.matchLabels"), redis_labels) or not any(
            labels_match(get(f, "podSelector.matchLabels"), pod_labels)
            for rule in get(netpol, "spec.ingress", []) for f in rule.get("from", [])):
        errors.append(f"{nfile}: NetworkPolicy driftrec-redis: must select the Redis pods and "
                      "admit the driftrec pods")
    if not rsts:
        errors.append("redis.yaml: no StatefulSet driftrec-redis")
    else:
        _, conf = redis_conf(m)
        for k, v in (("appendonly", "yes"), ("appendfsync", "always"),
                     ("maxmemory-policy", "noeviction")):
            if conf.get(k) != v:
                errors.append(f"{rfile}: ConfigMap driftrec-redis-config: redis.conf: {k} "
                              f"{conf.get(k)!r}, expected {v!r}")
        rc = get(rsts, "spec.template.spec.containers.0", {})
        if not any(vm.get("mountPath") == conf.get("dir")
                   for vm in rc.get("volumeMounts", [])) or not any(
                       get(t, "metadata.name") == vm.get("name")
                       for t in get(rsts, "spec.volumeClaimTemplates", [])
                       for vm in rc.get("volumeMounts", [])):
            errors.append(f"{rfile}: StatefulSet driftrec-redis: the AOF dir "
                          f"{conf.get('dir')!r} is not on a volumeClaimTemplate")
    return errors


# --- the Dockerfile -----------------------------------------------------------------------

def dockerfile_instructions(text):
    """[(INSTRUCTION, arguments)] with comments dropped and continuation lines joined."""
    out, buf = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def validate_dockerfile(text, fname="deploy/Dockerfile"):
    errors = []
    ins = dockerfile_instructions(text)
    stages, final = [], []
    for word, args in ins:
        if word == "FROM":
            parts = args.split()
            image = [p for p in parts if not p.startswith("--")][0]
            alias = parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS" else None
            if image not in [a for _, a in stages] and not re.match(r"debian:12(-slim)?$", image):
                errors.append(f"{fname}: FROM {image}: expected debian:12 (bookworm)")
            stages.append((image, alias))
            final = []
        final.append((word, args))
    if len(stages) < 2:
        errors.append(f"{fname}: FROM: expected a multi-stage build (build, then runtime)")
    runs = " ".join(a for w, a in ins if w == "RUN")
    if "deploy/install-deps.sh build" not in runs:
        errors.append(f"{fname}: RUN: the build stage must run deploy/install-deps.sh build")
    if not re.search(r"\bmake build\b", runs):
        errors.append(f"{fname}: RUN: the build stage must run make build")
    users = [a for w, a in final if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        errors.append(f"{fname}: USER: the runtime stage must end as a non-root user, has "
                      f"{users[-1] if users else 'none'}")
    if not any(w == "COPY" and "--from=" in a for w, a in final):
        errors.append(f"{fname}: COPY --from: the runtime stage must copy the built binaries")
    exposed = {int(p.split("/")[0]) for w, a in final if w == "EXPOSE" for p in a.split()}
    entry = " ".join(a for w, a in final if w == "ENTRYPOINT")
    if "driftrec-server" not in entry:
        errors.append(f"{fname}: ENTRYPOINT: expected driftrec-server, has {entry!r}")
    env = {}
    for w, a in final:
        if w == "ENV":
            for tok in shlex.split(a):
                k, _, v = tok.partition("=")
                env[k] = v
    for var in ("DR_LISTEN", "DR_METRICS"):
        if not env.get(var, "").startswith("0.0.0.0:"):
            errors.append(f"{fname}: ENV {var}: {env.get(var)!r}, expected 0.0.0.0:PORT (the "
                          "binary's default is loopback, unreachable from outside)")
        elif port_of(env[var]) not in exposed:
            errors.append(f"{fname}: EXPOSE: {sorted(exposed)} lacks the {var} port")
    volumes = " ".join(a for w, a in final if w == "VOLUME")
    if "/models" not in volumes:
        errors.append(f"{fname}: VOLUME: the model directory /models is not a volume")
    return errors, runtime_packages(final), exposed, env


def runtime_packages(final_stage):
    """The packages the runtime stage's apt-get install names."""
    pkgs = []
    for w, a in final_stage:
        if w != "RUN":
            continue
        for cmd in re.split(r"&&|;", a):
            toks = cmd.split()
            if "apt-get" in toks and "install" in toks:
                pkgs += [t for t in toks[toks.index("install") + 1:] if not t.startswith("-")]
    return pkgs


def needed_packages(binaries):
    """{Debian package: [library]} of the shared libraries the binaries name (NEEDED)."""
    libs = set()
    for b in binaries:
        out = subprocess.run(["objdump", "-p", b], capture_output=True, text=True,
                             check=True).stdout
        libs |= set(re.findall(r"NEEDED\s+(\S+)", out))
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    pkgs = {}
    for lib in sorted(libs):
        paths = re.findall(rf"^\s*{re.escape(lib)} \(([^)]*)\) => (\S+)", cache, re.M)
        paths = [p for arch, p in paths if "x86-64" in arch or "AArch64" in arch] or \
            [p for _, p in paths]
        if not paths:
            pkgs.setdefault(f"?{lib}", []).append(lib)
            continue
        owner = None
        for p in (paths[0], os.path.realpath(paths[0])):
            for cand in (p, p.replace("/usr/lib/", "/lib/", 1)):
                r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0]
                    break
            if owner:
                break
        pkgs.setdefault(owner or f"?{lib}", []).append(lib)
    return pkgs


# --- nginx --------------------------------------------------------------------------------

TEMPLATE_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}|@([A-Z][A-Z0-9_]*)@")


def template_value(name, ports):
    """A test value for a template variable (${NAME} or @NAME@), by what its name says."""
    if "PORT" in name:
        return str(ports.setdefault(name, free_port()))
    if any(w in name for w in ("ADDR", "UPSTREAM", "BACKEND", "SERVER", "HOST", "LISTEN")):
        return f"127.0.0.1:{ports.setdefault(name, free_port())}"
    if any(w in name for w in ("PERCENT", "SHARE")):
        return "50%"
    if any(w in name for w in ("ARM", "VARIANT")):  # ARM_A -> A
        return name.rsplit("_", 1)[-1]
    if any(w in name for w in ("LOG", "PATH", "FILE")):
        return os.path.join(ports.setdefault("__dir", tempfile.mkdtemp(prefix="nginx-t-")),
                            name.lower() + ".log")
    if "DIR" in name:
        return ports.setdefault("__dir", tempfile.mkdtemp(prefix="nginx-t-"))
    return "test"


def nginx_check(text, workdir):
    """Runs nginx -t on a config (a whole nginx.conf, or http-level directives, which are
    wrapped); template variables get test values first.  Returns (ok, output)."""
    ports = {}
    text = TEMPLATE_VAR.sub(lambda mt: template_value(mt.group(1) or mt.group(2), ports), text)
    body = os.path.join(workdir, "body.conf")
    with open(body, "w") as f:
        f.write(text)
    temp = "".join(f"{d}_temp_path {workdir}/{d};\n"
                   for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    if re.search(r"^\s*http\s*\{", text, re.M):
        conf = body
    else:
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"pid {workdir}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
                    f"http {{\n{temp}access_log off;\ninclude {body};\n}}\n")
    r = subprocess.run(["nginx", "-t", "-q", "-p", workdir, "-e", "stderr", "-c", conf],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


# --- the tests ----------------------------------------------------------------------------

def running(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not running(SERVER_BIN):
            raise unittest.SkipTest(f"no driftrec-server at {SERVER_BIN}: build first")
        cls.m = load_k8s()
        cls.help = server_help()
        cls.env_table = env_options()
        cls.metrics = metric_names_in_source()

    def validate(self, m):
        return validate_k8s(m, self.help, self.env_table, self.metrics)

    def test_manifests_fit_together_and_the_code(self):
        errors = self.validate(self.m)
        self.assertFalse(errors, "in deploy/k8s/:\n  " + "\n  ".join(errors))

    def test_every_env_var_and_option_named_exists_in_the_server(self):
        _, dep = find(self.m, "Deployment", "driftrec")
        for e in server_container(dep)["env"]:
            self.assertIn(e["name"], self.help, f"deployment.yaml: env {e['name']} not in --help")
        cfg = config_json(self.m, [])
        for key in cfg:
            self.assertIn(f"--{key} ", self.help, f"configmap.yaml: config.json.{key}: no "
                          f"--{key} in driftrec-server --help")

    def expect_error(self, mutate, fragment):
        m = copy.deepcopy(self.m)
        mutate(m)
        errors = self.validate(m)
        self.assertTrue(any(fragment in e for e in errors),
                        f"expected an error containing {fragment!r}, got {errors}")

    def test_validator_catches_a_wrong_readiness_service(self):
        def mutate(m):
            c = server_container(find(m, "Deployment", "driftrec")[1])
            c["readinessProbe"]["grpc"]["service"] = "driftrec.v1.Ranker"
        self.expect_error(mutate, "deployment.yaml: containers[server].readinessProbe.grpc"
                                  ".service: 'driftrec.v1.Ranker', expected "
                                  "'driftrec.v1.Recommender'")

    def test_validator_catches_a_probe_on_the_metrics_port(self):
        def mutate(m):
            c = server_container(find(m, "Deployment", "driftrec")[1])
            c["livenessProbe"]["grpc"]["port"] = 9090
        self.expect_error(mutate, "livenessProbe.grpc.port: 9090, expected 50051")

    def test_validator_catches_a_grace_period_shorter_than_the_drain(self):
        def mutate(m):
            find(m, "Deployment", "driftrec")[1]["spec"]["template"]["spec"][
                "terminationGracePeriodSeconds"] = 30
        self.expect_error(mutate, "deployment.yaml: spec.template.spec."
                                  "terminationGracePeriodSeconds: 30, must exceed")

    def test_validator_catches_an_hpa_metric_the_server_does_not_export(self):
        def mutate(m):
            hpa = find(m, "HorizontalPodAutoscaler")[1]
            hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] = "driftrec_inflight"
        self.expect_error(mutate, "hpa.yaml: spec.metrics.pods.metric.name: "
                                  "'driftrec_inflight' is not a metric")

    def test_validator_catches_selectors_that_miss_the_pods(self):
        def mutate(m):
            find(m, "PodDisruptionBudget")[1]["spec"]["selector"]["matchLabels"][
                "app.kubernetes.io/name"] = "driftrec-server"
            find(m, "Service", "driftrec")[1]["spec"]["selector"]["app.kubernetes.io/component"] \
                = "api"
        self.expect_error(mutate, "pdb.yaml: spec.selector.matchLabels: does not match")
        self.expect_error(mutate, "service.yaml: Service driftrec: spec.selector")

    def test_validator_catches_redis_without_fsync_and_env_shadowing_the_config(self):
        def mutate(m):
            cm = find(m, "ConfigMap", "driftrec-redis-config")[1]
            cm["data"]["redis.conf"] = cm["data"]["redis.conf"].replace(
                "appendfsync always", "appendfsync everysec")
        self.expect_error(mutate, "redis.conf: appendfsync 'everysec', expected 'always'")

        def shadow(m):
            cm = find(m, "ConfigMap", "driftrec-config")[1]
            cfg = json.loads(cm["data"]["config.json"])
            cfg["listen"] = "0.0.0.0:50051"
            cm["data"]["config.json"] = json.dumps(cfg)
        self.expect_error(shadow, "configmap.yaml: config.json.listen: also set by DR_LISTEN")

    def test_validator_catches_two_model_sources_and_a_registry_without_a_name(self):
        def both(m):
            c = server_container(find(m, "Deployment", "driftrec")[1])
            c["env"].append({"name": "DR_MODEL", "value": "/models/demo/v1"})
        self.expect_error(both, "deployment.yaml: containers[server].env.DR_MODEL: "
                                "'/models/demo/v1' and configmap.yaml: config.json.model-root: "
                                "'/models': the server refuses both")

        def config(m, **changes):
            cm = find(m, "ConfigMap", "driftrec-config")[1]
            cfg = json.loads(cm["data"]["config.json"])
            for k, v in changes.items():
                cfg.pop(k.replace("_", "-"), None)
                if v is not None:
                    cfg[k.replace("_", "-")] = v
            cm["data"]["config.json"] = json.dumps(cfg)
        self.expect_error(lambda m: config(m, model_name=None),
                          "configmap.yaml: config.json.model-root: '/models' without model-name")
        self.expect_error(lambda m: config(m, model_root="/srv/models"),
                          "configmap.yaml: config.json.model-root: '/srv/models' is not under a "
                          "mounted volume")
        self.expect_error(lambda m: config(m, model_root=None, model_name=None),
                          "no model: set model-root and model-name")

    def test_validator_catches_an_env_var_the_server_does_not_read(self):
        def mutate(m):
            c = server_container(find(m, "Deployment", "driftrec")[1])
            c["env"].append({"name": "DR_WORKERS", "value": "4"})
        self.expect_error(mutate, "env.DR_WORKERS: not an environment variable")


class LiveServer(unittest.TestCase):
    """The ConfigMap's JSON on the real server; probes and metrics against it."""

    @classmethod
    def setUpClass(cls):
        for b in (SERVER_BIN, CLI_BIN):
            if not running(b):
                raise unittest.SkipTest(f"no {b}: build first")
        cls.m = load_k8s()
        cls.help = server_help()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cfg = config_json(cls.m, [])
        cls.config_path = os.path.join(cls.tmp.name, "config.json")
        # The model registry is the cluster's volume: this start serves none (the probes'
        # answers without a model); test_the_configmap_model_registry_is_read checks its keys.
        with open(cls.config_path, "w") as f:
            json.dump({k: v for k, v in cls.cfg.items() if k not in MODEL_KEYS}, f)
        cls.redis = None
        # The environment's options (listen, metrics, history) and the log key's path
        # are the cluster's: loopback and temporary ones here.  Everything else is the
        # ConfigMap's own value.
        history = os.path.join(cls.tmp.name, "history")
        if "redis://" in cls.help and shutil.which("redis-server"):
            # redis.yaml's own Redis config (the server refuses a Redis that would lose
            # acknowledged writes), on loopback with a temporary dir.
            text, _ = redis_conf(cls.m)
            conf = os.path.join(cls.tmp.name, "redis.conf")
            with open(conf, "w") as f:
                f.write(re.sub(r"(?m)^dir .*$", f"dir {cls.tmp.name}", text))
            rport = free_port()
            cls.redis = subprocess.Popen(
                ["redis-server", conf, "--port", str(rport), "--bind", "127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            history = f"redis://127.0.0.1:{rport}/0"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", rport), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            print(f"note: the ConfigMap is checked on a Redis history ({history})")
        else:
            print("note: this build's --history has no redis:// store; the ConfigMap is "
                  "checked on an LMDB history")
        cls.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DR_")}
        cls.log = tempfile.TemporaryFile()
        cls.proc = subprocess.Popen(
            [SERVER_BIN, "--config", cls.config_path, "--listen", f"127.0.0.1:{cls.port}",
             "--metrics", "127.0.0.1:0", "--history", history, "--drain-delay-ms", "0",
             "--log-key-file", os.path.join(cls.tmp.name, "log-key")],
            stderr=cls.log, env=env)
        deadline = time.monotonic() + 30
        while '"msg":"serving"' not in cls.stderr() and time.monotonic() < deadline:
            if cls.proc.poll() is not None:
                break
            time.sleep(0.02)

    @classmethod
    def stderr(cls):
        cls.log.seek(0)
        return cls.log.read().decode(errors="replace")

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.send_signal(signal.SIGTERM)
            cls.proc.wait(timeout=60)
        if cls.redis:
            cls.redis.terminate()
            cls.redis.wait(timeout=10)
        cls.log.close()
        cls.tmp.cleanup()

    def test_server_accepts_the_configmap_json(self):
        self.assertIsNone(self.proc.poll(), "configmap.yaml: config.json: the server refused it: "
                          + self.stderr()[-2000:])
        log = self.stderr()
        for key, field in (("workers", "workers"),
                           ("max-connection-age-ms", "max_connection_age_ms"),
                           ("max-connection-age-grace-ms", "max_connection_age_grace_ms"),
                           ("drain-grace-ms", "drain_grace_ms")):
            self.assertIn(f'"{field}":{self.cfg[key]}', log,
                          f"configmap.yaml: config.json.{key}: not in effect")

    def test_probe_service_names_are_answered(self):
        def health(service):
            return subprocess.run([CLI_BIN, "--addr", f"127.0.0.1:{self.port}", "--timeout-ms",
                                   "5000", "health", service], capture_output=True, text=True,
                                  timeout=30)
        r = health(LIVE_SERVICE)
        self.assertEqual((r.returncode, json.loads(r.stdout)["status"]), (0, "SERVING"), r.stderr)
        # Known (NOT_SERVING without a model: ready only once one is loaded; driftrec-cli exits 1
        # unless SERVING, so an exec probe fails); an unknown name would be NOT_FOUND, an error.
        r = health(READY_SERVICE)
        self.assertEqual((r.returncode, json.loads(r.stdout)["status"]), (1, "NOT_SERVING"),
                         r.stderr)
        r = health("driftrec.v1.NoSuchService")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("NOT_FOUND", r.stderr)

    def test_the_hpa_metric_is_scraped_live(self):
        port = int(re.search(r'"metrics_port":(\d+)', self.stderr()).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        hpa = find(self.m, "HorizontalPodAutoscaler")[1]
        for x in hpa["spec"]["metrics"]:
            if x["type"] == "Pods":
                self.assertIn(x["pods"]["metric"]["name"], exported,
                              "hpa.yaml: spec.metrics.pods.metric.name: not in a live scrape")

    def test_the_configmap_model_registry_is_read(self):
        # The ConfigMap's model-root and model-name, with the root moved to a temporary
        # registry that holds the model's directory but no version yet: the server reads both
        # keys (an unknown key would be refused before), looks in ROOT/NAME and stops with
        # exit status 2, as a pod does until the first version is copied in (docs/deploy.md).
        root, name = self.cfg.get("model-root"), self.cfg.get("model-name")
        if not root:
            self.skipTest("configmap.yaml: no model-root: the model is one bundle (DR_MODEL)")
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, name))
            path = os.path.join(d, "config.json")
            with open(path, "w") as f:
                json.dump(dict(self.cfg, **{"model-root": d}), f)
            env = {k: v for k, v in os.environ.items() if not k.startswith("DR_")}
            r = subprocess.run([SERVER_BIN, "--config", path, "--listen", f"127.0.0.1:{free_port()}",
                                "--metrics", "off", "--history", os.path.join(d, "history"),
                                "--drain-delay-ms", "0", "--log-key-file", os.path.join(d, "key")],
                               capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f'"model_root":"{d}"', r.stderr, "configmap.yaml: model-root not in effect")
        self.assertIn(f"model registry {d}/{name}: no version directory with a manifest.json",
                      r.stderr, "configmap.yaml: model-root/model-name not read as a registry")

    def test_a_bad_key_in_the_configmap_is_refused(self):
        path = os.path.join(self.tmp.name, "bad.json")
        with open(path, "w") as f:
            json.dump(dict(self.cfg, **{"max-conection-age-ms": 1000}), f)
        r = subprocess.run([SERVER_BIN, "--config", path, "--metrics", "off"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("unknown option 'max-conection-age-ms'", r.stderr)


class RedisConfig(unittest.TestCase):
    def test_redis_starts_on_the_manifest_config_with_an_fsynced_aof(self):
        if not shutil.which("redis-server") or not shutil.which("redis-cli"):
            self.skipTest("redis-server or redis-cli not installed (deploy/install-deps.sh test)")
        text, conf = redis_conf(load_k8s())
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "redis.conf")
            # The manifest's file with only where Redis listens and writes changed for this
            # machine (its dir, /data, is the StatefulSet's volume).
            self.assertRegex(text, r"(?m)^dir /data$")
            with open(path, "w") as f:
                f.write(re.sub(r"(?m)^dir .*$", f"dir {d}", text))
            port = free_port()
            p = subprocess.Popen(["redis-server", path, "--port", str(port), "--bind",
                                  "127.0.0.1"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
            try:
                def cli(*args):
                    return subprocess.run(["redis-cli", "-p", str(port), *args],
                                          capture_output=True, text=True, timeout=10).stdout
                deadline = time.monotonic() + 10
                while cli("ping").strip() != "PONG" and time.monotonic() < deadline:
                    if p.poll() is not None:
                        self.fail("redis.yaml: redis.conf: redis-server refused it: "
                                  + p.stdout.read())
                    time.sleep(0.05)
                for key, want in (("appendonly", "yes"), ("appendfsync", "always"),
                                  ("maxmemory-policy", "noeviction")):
                    self.assertEqual(cli("config", "get", key).split(), [key, want],
                                     f"redis.yaml: redis.conf: {key}")
                self.assertEqual(cli("set", "k", "v").strip(), "OK")
                aof = glob.glob(os.path.join(d, "appendonlydir", "*.aof")) + \
                    glob.glob(os.path.join(d, "*.aof"))
                self.assertTrue(any(os.path.getsize(a) > 0 for a in aof),
                                "redis.yaml: no AOF written after a SET")
            finally:
                p.terminate()
                p.wait(timeout=10)
                p.stdout.close()


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DOCKERFILE) as f:
            cls.text = f.read()

    def test_dockerfile(self):
        errors, pkgs, exposed, env = validate_dockerfile(self.text)
        self.assertFalse(errors, "\n  " + "\n  ".join(errors))
        m = load_k8s()
        c = server_container(find(m, "Deployment", "driftrec")[1])
        ports = {p["containerPort"] for p in c["ports"]}
        self.assertEqual(exposed, ports, "deploy/Dockerfile: EXPOSE: not the Deployment's "
                         "containerPorts")
        with open(os.path.join(REPO, ".dockerignore")) as f:
            ignored = f.read().split()
        for must in (".git", "build", "models/train/out"):
            self.assertIn(must, ignored, f".dockerignore: {must} would be sent to the builder")

    def test_runtime_packages_cover_the_binaries(self):
        bins = [SERVER_BIN, CLI_BIN, HISTORY_BIN]
        if not all(running(b) for b in bins) or not shutil.which("objdump"):
            self.skipTest("the built binaries or objdump are missing")
        _, pkgs, _, _ = validate_dockerfile(self.text)
        needed = needed_packages(bins)
        unknown = sorted(k for k in needed if k.startswith("?"))
        self.assertEqual(unknown, [], "libraries no Debian package owns here")
        missing = {p: libs for p, libs in needed.items() if p not in pkgs and p != "libc6"}
        self.assertEqual(missing, {}, "deploy/Dockerfile: runtime apt-get install lacks the "
                         "packages of these libraries")

    def test_runtime_packages_exist_in_debian(self):
        _, pkgs, _, _ = validate_dockerfile(self.text)
        self.assertTrue(pkgs, "deploy/Dockerfile: no apt-get install in the runtime stage")
        if not shutil.which("apt-cache") or not glob.glob("/var/lib/apt/lists/*Packages*"):
            self.skipTest("no apt lists here (apt-get update): package names not checked")
        for p in pkgs:
            r = subprocess.run(["apt-cache", "show", "--no-all-versions", p],
                               capture_output=True, text=True)
            self.assertTrue(r.returncode == 0 and "Package: " + p in r.stdout,
                            f"deploy/Dockerfile: runtime package {p}: not known to apt")

    def test_validator_catches_root_and_a_foreign_base(self):
        bad = self.text.replace("USER 10001:10001", "USER root").replace(
            "FROM debian:12-slim AS runtime", "FROM ubuntu:22.04 AS runtime")
        errors, _, _, _ = validate_dockerfile(bad)
        self.assertIn("deploy/Dockerfile: FROM ubuntu:22.04: expected debian:12 (bookworm)",
                      errors)
        self.assertTrue(any("USER: the runtime stage must end as a non-root user, has root" in e
                            for e in errors), errors)


class Nginx(unittest.TestCase):
    SAMPLE = """
map $http_x_user_id $ab_key { "" $request_id; default $http_x_user_id; }
split_clients "exp:${ab_key}" $ab_arm { @PERCENT_B@ @ARM_B@; * @ARM_A@; }
upstream arm_a { server ${UPSTREAM_A}; }
upstream arm_b { server ${UPSTREAM_B}; }
access_log @ACCESS_LOG@;
map $ab_arm $ab_upstream { A arm_a; B arm_b; }
server {
    listen 127.0.0.1:${LISTEN_PORT} http2;
    location / { grpc_pass grpc://$ab_upstream; grpc_set_header x-ab-variant $ab_arm; }
}
"""

    def setUp(self):
        if not shutil.which("nginx"):
            self.skipTest("nginx not installed (deploy/install-deps.sh test)")

    def test_nginx_check_on_a_template_and_a_broken_config(self):
        # The checker itself: a template with envsubst-style variables passes, a typo fails.
        with tempfile.TemporaryDirectory() as d:
            ok, out = nginx_check(self.SAMPLE, d)
            self.assertTrue(ok, out)
        with tempfile.TemporaryDirectory() as d:
            ok, out = nginx_check(self.SAMPLE.replace("grpc_pass", "grpc_pas"), d)
            self.assertFalse(ok)
            self.assertIn("grpc_pas", out)

    def test_nginx_configs_in_deploy_pass_nginx_t(self):
        confs = sorted(set(glob.glob(os.path.join(REPO, "deploy/**/*.conf"), recursive=True)
                           + glob.glob(os.path.join(REPO, "deploy/**/*.conf.template"),
                                       recursive=True)))
        if not confs:
            self.skipTest("no nginx config under deploy/ yet")
        for path in confs:
            with self.subTest(rel(path)), tempfile.TemporaryDirectory() as d:
                with open(path) as f:
                    ok, out = nginx_check(f.read(), d)
                self.assertTrue(ok, f"{rel(path)}: nginx -t: {out}")


class Kustomize(unittest.TestCase):
    def test_kustomization_renders_every_listed_object(self):
        # kubectl is no Debian 12 package: used where an operator's machine has it.
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl not installed: kustomization.yaml not rendered")
        r = subprocess.run([kubectl, "kustomize", K8S], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, f"deploy/k8s/kustomization.yaml: kubectl kustomize: "
                         f"{r.stderr}")
        rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
        m = load_k8s()
        listed = [d for f in m["kustomization.yaml"][0]["resources"] for d in m[f]]
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        self.assertEqual(sorted(map(key, rendered)), sorted(map(key, listed)))
        # The common label reaches every object but no selector (a changed selector would
        # orphan the pods of an earlier apply).
        dep = [d for d in rendered if key(d) == ("Deployment", "driftrec")][0]
        self.assertEqual(dep["spec"]["selector"], find(m, "Deployment", "driftrec")[1]["spec"][
            "selector"])
        for d in rendered:
            self.assertEqual(d["metadata"]["labels"].get("app.kubernetes.io/part-of"),
                             "driftrec", key(d))


def exported_metric_names():
    """Every metric family server/metrics.c renders, the ones whose names it formats included
    (driftrec_%s_seconds over its histogram names, driftrec_state_cache_%s_total)."""
    with open(os.path.join(REPO, "server/metrics.c")) as f:
        text = f.read()
    names = metric_names_in_source()
    hist = re.search(r"hist_names\[[A-Z_]+\] = \{([^}]*)\}", text)
    names |= {f"driftrec_{h}_seconds" for h in re.findall(r'"([a-z_]+)"', hist.group(1))}
    cache = text[text.index("counters[] = {"):text.index("driftrec_state_cache_%s_total")]
    names |= {f"driftrec_state_cache_{c}_total"
              for c in re.findall(r'\{"([a-z_]+)",', cache)}
    return names


# The operator-facing pages: every metric they name must be one the server exports.
OPERATOR_DOCS = ("README.md", "docs/deploy.md", "docs/ab-testing.md", "docs/history.md",
                 "docs/security.md", "docs/bundle.md", "docs/api.md")


class Docs(unittest.TestCase):
    def test_metrics_the_operator_docs_name_are_exported(self):
        exported = exported_metric_names()
        self.assertIn("driftrec_request_seconds", exported)
        self.assertIn("driftrec_state_cache_hits_total", exported)
        for page in OPERATOR_DOCS:
            with open(os.path.join(REPO, page)) as f:
                text = f.read()
            for name in sorted(set(re.findall(r"\bdriftrec_[a-z0-9_]*[a-z0-9]\b", text))):
                if name == "driftrec_train":  # the training package, not a metric
                    continue
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertTrue(name in exported or base in exported,
                                f"{page}: {name}: not a metric driftrec-server exports "
                                "(server/metrics.c)")

    def test_env_vars_the_deploy_doc_names_are_read_by_the_server(self):
        with open(os.path.join(REPO, "docs/deploy.md")) as f:
            named = set(re.findall(r"\bDR_[A-Z][A-Z_]*[A-Z]\b", f.read()))
        known = set(env_options()) | set(re.findall(r"\bDR_[A-Z_]+\b", server_help())) \
            if running(SERVER_BIN) else set(env_options()) | {"DR_CONFIG", "DR_ISA_MAX"}
        self.assertEqual(sorted(named - known), [], "docs/deploy.md: environment variables "
                         "driftrec-server does not read")

    def test_deploy_doc_covers_every_manifest_and_is_linked(self):
        with open(os.path.join(REPO, "docs/deploy.md")) as f:
            doc = f.read()
        for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))) + [DOCKERFILE]:
            self.assertIn(os.path.basename(path), doc, f"docs/deploy.md: {rel(path)} unexplained")
        for page in ("README.md", "docs/architecture.md"):
            with open(os.path.join(REPO, page)) as f:
                self.assertIn("deploy.md", f.read(), f"{page}: no link to docs/deploy.md")


if __name__ == "__main__":
    unittest.main()
