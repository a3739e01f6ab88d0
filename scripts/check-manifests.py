#!/usr/bin/env python3
"""The promises the manifests make about not losing events, checked on the rendered overlays.

`make deploy-check` renders each overlay and runs this over the result. Schemas and checkov say
whether the objects are valid and sane; this says whether they keep what docs/operations.md
promises an operator:

- the gateway's spool is a volume that outlives its pod (a volumeClaimTemplate or a claim), not
  an emptyDir, so events answered 2xx survive a pod's deletion;
- the gateway's stop fits in its pod's grace period: preStop's sleep, then
  GATEWAY_SHUTDOWN_GRACE_SECS to forward the spool, with time to spare before the SIGKILL;
- no object that a HorizontalPodAutoscaler scales sets `replicas` (each apply would reset the
  count and delete scaled-out pods), and the gateway's scale-down goes one pod at a time, slower
  than a pod drains;
- NATS nodes are required to be on different Kubernetes nodes and are spread over zones;
  max_file_store is about 90% of the data volume (JetStream refuses writes before the disk is
  full); GOMEMLIMIT is about 90% of the memory limit;
- in production, every volume that holds events names its storage class;
- the webhooks Ingress keeps no access log (the webhook URL carries the tenant's token);
- NATS has users (nats-users.conf, included by nats.conf) whose passwords come from the
  c2d-nats-users Secret, and every service that reaches NATS presents its own user, with its
  password from that Secret: no anonymous client, no service borrowing another's rights, and no
  two services sharing one user (but `reader`, which is your own services' shared one);
- the consumers that read the whole log through one durable consumer (analytics, crm-sync,
  alerting) run one replica unless they share the log's partitions (docs/scaling.md); a service
  with `*_PARTITIONS` > 0 reads as many partitions as the gateway files (GATEWAY_PARTITIONS),
  runs as a StatefulSet (stable pod names: the replicas' names in the partition leases, from
  metadata.name when set) and, with several replicas, mounts no claim they would all share;
  partitioned analytics advertises an address the other replicas can reach, and its pods may
  reach each other's gRPC port (NetworkPolicy); partitioned crm-sync stores in PostgreSQL, the
  URL from a Secret.

Usage: check-manifests.py OVERLAY RENDERED.yaml [--self-test]
With --self-test, it breaks each promise in turn in a copy of the objects and fails unless every
break is refused.
"""

import copy
import re
import sys

import yaml


class Refused(Exception):
    pass


def find(objects, kind, name):
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            return obj
    raise Refused(f"no {kind} {name} in the rendered manifests")


def container(workload, name):
    for c in workload["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise Refused(f"{workload['metadata']['name']} has no container {name}")


def env(c, name, default=None):
    for var in c.get("env", []):
        if var["name"] == name:
            return var.get("value", default)
    return default


def env_var(c, name):
    """The whole `env` entry (value or valueFrom), or None."""
    return next((var for var in c.get("env", []) if var["name"] == name), None)


def workload(objects, name):
    """The Deployment or StatefulSet `name`, whichever kind it is."""
    for obj in objects:
        if obj.get("kind") in ("Deployment", "StatefulSet") and obj["metadata"]["name"] == name:
            return obj
    raise Refused(f"no Deployment or StatefulSet {name} in the rendered manifests")


def quantity(text):
    """Kubernetes quantities (Gi, Mi, G, M) and NATS sizes (G, M: decimal) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "MiB": 2**20, "GiB": 2**30,
             "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "": 1}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(text).strip())
    if not match or match.group(2) not in units:
        raise Refused(f"cannot read the size {text!r}")
    return float(match.group(1)) * units[match.group(2)]


def claim_template(workload, volume):
    for template in workload["spec"].get("volumeClaimTemplates", []):
        if template["metadata"]["name"] == volume:
            return template
    return None


def check_gateway(objects, production):
    gateway = find(objects, "StatefulSet", "gateway")
    pod = gateway["spec"]["template"]["spec"]
    c = container(gateway, "gateway")
    spool_dir = env(c, "GATEWAY_SPOOL_DIR")
    if spool_dir in (None, "off"):
        raise Refused("the gateway has no GATEWAY_SPOOL_DIR: without a spool it answers 503 whenever NATS cannot store")
    mount = next((m for m in c.get("volumeMounts", []) if m["mountPath"] == spool_dir), None)
    if mount is None:
        raise Refused(f"nothing is mounted at the gateway's spool {spool_dir}: it would be on the container's filesystem")
    volume = next((v for v in pod.get("volumes", []) if v["name"] == mount["name"]), None)
    template = claim_template(gateway, mount["name"])
    if volume is not None and "persistentVolumeClaim" not in volume:
        raise Refused(f"the gateway's spool is on a volume of kind {', '.join(k for k in volume if k != 'name')}, lost with its pod: events answered 2xx would be lost")
    if volume is None and template is None:
        raise Refused(f"the gateway's spool volume {mount['name']} is neither a claim nor a volumeClaimTemplate")
    retention = gateway["spec"].get("persistentVolumeClaimRetentionPolicy", {})
    if template is not None and retention.get("whenScaled") != "Retain":
        raise Refused("the gateway's spool claims are deleted on scale-down (persistentVolumeClaimRetentionPolicy.whenScaled must be Retain)")
    if production and template is not None and not template["spec"].get("storageClassName"):
        raise Refused("the gateway's spool volume names no storage class in production")

    grace = int(env(c, "GATEWAY_SHUTDOWN_GRACE_SECS", "25"))
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    period = pod.get("terminationGracePeriodSeconds", 30)
    if period < pre_stop + grace + 5:
        raise Refused(f"the gateway's terminationGracePeriodSeconds ({period}) is shorter than preStop ({pre_stop}) + GATEWAY_SHUTDOWN_GRACE_SECS ({grace}) + 5: the kubelet would kill it mid-drain")
    return period


def check_autoscaled(objects, drain_seconds):
    for hpa in (o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        scaled = find(objects, target["kind"], target["name"])
        if "replicas" in scaled["spec"]:
            raise Refused(f"{target['kind']} {target['name']} sets replicas although HorizontalPodAutoscaler {hpa['metadata']['name']} owns the count: every apply would reset it")
        if target["name"] == "gateway":
            down = hpa["spec"].get("behavior", {}).get("scaleDown", {})
            policies = down.get("policies", [])
            if not policies or any(p["type"] != "Pods" or p["value"] != 1 or p["periodSeconds"] < drain_seconds for p in policies):
                raise Refused(f"the gateway's HorizontalPodAutoscaler scales down faster than one pod per {drain_seconds} s (its drain)")


def check_nats(objects, production):
    nats = find(objects, "StatefulSet", "nats")
    pod = nats["spec"]["template"]["spec"]
    required = pod.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
    if not any(term.get("topologyKey") == "kubernetes.io/hostname" for term in required):
        raise Refused("NATS pods are not required to be on different Kubernetes nodes (requiredDuringScheduling podAntiAffinity on kubernetes.io/hostname)")
    spread = pod.get("topologySpreadConstraints", [])
    if not any(s.get("topologyKey") == "topology.kubernetes.io/zone" for s in spread):
        raise Refused("NATS pods are not spread over zones (topologySpreadConstraints on topology.kubernetes.io/zone)")
    c = container(nats, "nats")
    data = claim_template(nats, "data")
    if data is None:
        raise Refused("NATS has no data volumeClaimTemplate")
    if production and not data["spec"].get("storageClassName"):
        raise Refused("NATS's data volume names no storage class in production")
    volume = quantity(data["spec"]["resources"]["requests"]["storage"])
    store = env(c, "JS_MAX_FILE_STORE")
    if store is None:
        raise Refused("NATS has no JS_MAX_FILE_STORE (max_file_store in nats.conf)")
    ratio = quantity(store) / volume
    if not 0.85 <= ratio <= 0.95:
        raise Refused(f"NATS's max_file_store ({store}) is {ratio:.0%} of its volume; keep it about 90%")
    limit = c.get("resources", {}).get("limits", {}).get("memory")
    gomemlimit = env(c, "GOMEMLIMIT")
    if limit is None or gomemlimit is None:
        raise Refused("NATS needs a memory limit and GOMEMLIMIT")
    ratio = quantity(gomemlimit) / quantity(limit)
    if not 0.8 <= ratio <= 0.95:
        raise Refused(f"NATS's GOMEMLIMIT ({gomemlimit}) is {ratio:.0%} of its memory limit ({limit}); keep it about 90%")
    return f"NATS max_file_store {store} of {data['spec']['resources']['requests']['storage']}, GOMEMLIMIT {gomemlimit} of {limit}"


def check_ingress(objects):
    ingress = find(objects, "Ingress", "webhooks")
    annotations = ingress["metadata"].get("annotations", {})
    if annotations.get("nginx.ingress.kubernetes.io/enable-access-log") != "false":
        raise Refused("the webhooks Ingress keeps an access log: every line would hold a tenant's token from the webhook URL")


def config_map(objects, prefix):
    """A generated ConfigMap, whose name kustomize suffixes with a hash."""
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj.get("kind") == "ConfigMap" and generated(name, prefix):
            return obj
    raise Refused(f"no ConfigMap {prefix} in the rendered manifests")


def generated(name, prefix):
    """Whether `name` is `prefix` as kustomize renders it: with a hash suffix when generated."""
    return re.fullmatch(rf"{prefix}(-[a-z0-9]{{10}})?", name or "") is not None


def check_nats_users(objects):
    config = config_map(objects, "nats-config")["data"]
    users_conf = config.get("nats-users.conf")
    if users_conf is None or "include ./nats-users.conf" not in config.get("nats.conf", ""):
        raise Refused("nats.conf does not include nats-users.conf: NATS would let anyone publish events")
    users = dict(re.findall(r'user:\s*"?([a-z-]+)"?\s*\n?\s*,?\s*password:\s*\$(\w+)', users_conf))
    nats = container(find(objects, "StatefulSet", "nats"), "nats")
    if not any(generated(e.get("secretRef", {}).get("name"), "c2d-nats-users") for e in nats.get("envFrom", [])):
        raise Refused("the nats container does not take the users' passwords from the c2d-nats-users Secret")
    # Who uses each user: one workload each, but `reader` (nats-users.conf: your own services').
    used_by = {}
    clients = 0
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "StatefulSet", "Job") or obj["metadata"]["name"] == "nats":
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            reaches_nats = env(c, "NATS_URL") is not None or any(
                e.get("configMapRef", {}).get("name", "").startswith("c2d-common") for e in c.get("envFrom", []))
            if not reaches_nats:
                continue
            where = f"{obj['kind']} {obj['metadata']['name']}"
            user = env(c, "NATS_USER")
            if user not in users:
                raise Refused(f"{where} reaches NATS without a user of nats-users.conf (NATS_USER={user!r})")
            password = next((v for v in c.get("env", []) if v["name"] == "NATS_PASSWORD"), {})
            ref = password.get("valueFrom", {}).get("secretKeyRef", {})
            if not generated(ref.get("name"), "c2d-nats-users") or ref.get("key") != users[user]:
                raise Refused(f"{where}: NATS_PASSWORD must come from the c2d-nats-users Secret, key {users[user]} (user {user})")
            if user != "reader" and used_by.get(user, where) != where:
                raise Refused(f"{where} and {used_by[user]} share the NATS user {user}: each service has its own, with only the rights it needs")
            used_by[user] = where
            clients += 1
    return f"{clients} NATS clients each with its own user"


# The consumers that read the whole log in order through one durable consumer, and the prefix of
# their *_PARTITIONS variable when they can share the log's partitions instead (docs/scaling.md).
IN_ORDER_CONSUMERS = {"analytics": "ANALYTICS", "crm-sync": "CRM", "alerting": None}


def partitions_of(c, variable):
    value = env(c, variable, "0")
    if not re.fullmatch(r"\d+", str(value)):
        raise Refused(f"{variable}={value!r} is not a number of partitions")
    return int(value)


def check_partitions(objects):
    gateway = container(find(objects, "StatefulSet", "gateway"), "gateway")
    filed = partitions_of(gateway, "GATEWAY_PARTITIONS")
    partitioned = []
    # Every service's partitions are the gateway's: another count reads partitions that hold
    # other tenants than it computes (or that do not exist), and some tenants are read by nobody.
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "StatefulSet") or obj["metadata"]["name"] == "gateway":
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            for var in c.get("env", []):
                if not re.fullmatch(r"[A-Z_]+_PARTITIONS", var["name"]):
                    continue
                count = partitions_of(c, var["name"])
                if count > 0 and count != filed:
                    raise Refused(f"{obj['kind']} {obj['metadata']['name']} reads {count} partitions ({var['name']}) but the gateway files the log in {filed} (GATEWAY_PARTITIONS): a service's partitions must be the gateway's")
                if count > 0:
                    partitioned.append((obj, c, var["name"][: -len("_PARTITIONS")]))
    for name, prefix in IN_ORDER_CONSUMERS.items():
        obj = workload(objects, name)
        c = container(obj, name)
        replicas = obj["spec"].get("replicas", 1)
        if replicas > 1 and (prefix is None or partitions_of(c, f"{prefix}_PARTITIONS") == 0):
            remedy = f"run one, or share the partitions with {prefix}_PARTITIONS" if prefix else "run one"
            raise Refused(f"{obj['kind']} {name} runs {replicas} replicas over the whole log: they would share one durable consumer and each see part of the events ({remedy})")
    for obj, c, prefix in partitioned:
        where = f"{obj['kind']} {obj['metadata']['name']}"
        if obj["kind"] != "StatefulSet":
            raise Refused(f"{where} shares partitions ({prefix}_PARTITIONS) with names that change at every restart: run it as a StatefulSet, each pod's name its replica's name in the leases")
        replica = env_var(c, f"{prefix}_REPLICA")
        if replica is not None and replica.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
            raise Refused(f"{where}: {prefix}_REPLICA must be the pod's name (fieldRef metadata.name): replicas with one name would take each other's partitions")
        if prefix == "CRM":
            store = env_var(c, "CRM_STORE_URL") or {}
            secret = store.get("valueFrom", {}).get("secretKeyRef", {})
            if not secret.get("name") and not str(store.get("value", "")).startswith("postgres"):
                raise Refused(f"{where} shares partitions without PostgreSQL: its replicas apply into one directory, so CRM_STORE_URL must be a postgres:// URL, from a Secret (crm-sync refuses CRM_PARTITIONS on SQLite)")
        if prefix == "ANALYTICS":
            address = env(c, "ANALYTICS_ADVERTISE_ADDR")
            if not address or re.match(r"(0\.0\.0\.0|127\.|localhost|\[::\])", address):
                raise Refused(f"{where} advertises no address the other replicas can reach (ANALYTICS_ADVERTISE_ADDR={address!r}; e.g. $(POD_IP):50052): calls for the tenants it owns could not be forwarded to it")
            # Kubernetes expands $(NAME) only from variables defined above it; else it stays as is.
            earlier = [var["name"] for var in c["env"][: c["env"].index(env_var(c, "ANALYTICS_ADVERTISE_ADDR"))]]
            for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", address):
                if name not in earlier:
                    raise Refused(f"{where}: ANALYTICS_ADVERTISE_ADDR={address!r} names $({name}), which is not defined above it in env: the pod would advertise it literally")
        replicas = obj["spec"].get("replicas", 1)
        pod = obj["spec"]["template"]["spec"]
        shared = [v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v]
        if replicas > 1 and shared:
            raise Refused(f"{where} runs {replicas} replicas on one claim ({', '.join(shared)}): each replica needs a volume of its own (volumeClaimTemplates)")
    check_analytics_peers(objects)
    services = " and ".join(f"{obj['metadata']['name']} ({obj['spec'].get('replicas', 1)} replicas)" for obj, _, _ in partitioned)
    return f"{services} over the gateway's {filed} partitions" if partitioned else f"in-order consumers at one replica (GATEWAY_PARTITIONS={filed})"


def check_analytics_peers(objects):
    """Analytics replicas forward calls to each other: its policies must let its pods in on 50052."""
    labels = workload(objects, "analytics")["spec"]["template"]["metadata"]["labels"]

    def selects(selector):
        return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

    policies = [p for p in objects if p.get("kind") == "NetworkPolicy" and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not any(selects(p["spec"]["podSelector"]) for p in policies):
        return
    for policy in (p for p in policies if selects(p["spec"]["podSelector"])):
        for rule in policy["spec"].get("ingress", []):
            ports = [port.get("port") for port in rule.get("ports", [])]
            peers = rule.get("from")
            if (not ports or 50052 in ports) and (peers is None or any(
                    "podSelector" in peer and "namespaceSelector" not in peer and selects(peer["podSelector"]) for peer in peers)):
                return
    raise Refused("no NetworkPolicy lets analytics pods reach each other's gRPC port 50052: replicas could not forward a tenant's call to its owner")


def check(objects, production):
    check_ingress(objects)
    clients = check_nats_users(objects)
    drain = check_gateway(objects, production)
    check_autoscaled(objects, drain)
    partitions = check_partitions(objects)
    return f"no access log of webhook URLs, spool on a retained claim, a {drain} s stop, no replicas under an HPA, {clients}, {partitions}, NATS anti-affinity required; {check_nats(objects, production)}"


def breaks(objects):
    """Each promise broken once, in a copy: (what, objects)."""
    def edit(what, change):
        broken = copy.deepcopy(objects)
        change(broken)
        return what, broken

    def spool_empty_dir(o):
        gateway = find(o, "StatefulSet", "gateway")
        gateway["spec"].pop("volumeClaimTemplates")
        gateway["spec"]["template"]["spec"]["volumes"] = [{"name": "spool", "emptyDir": {}}]

    def replicas(o):
        find(o, "StatefulSet", "gateway")["spec"]["replicas"] = 3

    def preferred(o):
        affinity = find(o, "StatefulSet", "nats")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        term = affinity.pop("requiredDuringSchedulingIgnoredDuringExecution")[0]
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [{"weight": 100, "podAffinityTerm": term}]

    def short_grace(o):
        find(o, "StatefulSet", "gateway")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30

    def access_log(o):
        find(o, "Ingress", "webhooks")["metadata"]["annotations"].pop("nginx.ingress.kubernetes.io/enable-access-log")

    def anonymous(o):
        analytics = container(workload(o, "analytics"), "analytics")
        analytics["env"] = [v for v in analytics["env"] if not v["name"].startswith("NATS_")]

    def borrowed(o):
        crm = container(workload(o, "crm-sync"), "crm-sync")
        for var in crm["env"]:
            if var["name"] == "NATS_USER":
                var["value"] = "gateway"

    def shared(o):
        console = container(find(o, "Deployment", "console"), "console")
        for var in console["env"]:
            if var["name"] == "NATS_USER":
                var["value"] = "analytics"
            if var["name"] == "NATS_PASSWORD":
                var["valueFrom"]["secretKeyRef"]["key"] = "NATS_PASSWORD_ANALYTICS"

    def no_users(o):
        config = config_map(o, "nats-config")
        config["data"]["nats.conf"] = config["data"]["nats.conf"].replace("include ./nats-users.conf", "")

    def set_env(c, name, entry):
        c["env"] = [v for v in c.get("env", []) if v["name"] != name] + ([dict(name=name, **entry)] if entry else [])

    def partitioned(o, name, prefix):
        """`name` as the production overlay runs it: 3 replicas over the gateway's 16 partitions."""
        set_env(container(find(o, "StatefulSet", "gateway"), "gateway"), "GATEWAY_PARTITIONS", {"value": "16"})
        obj = workload(o, name)
        obj["spec"]["replicas"] = 3
        c = container(obj, name)
        set_env(c, f"{prefix}_PARTITIONS", {"value": "16"})
        set_env(c, f"{prefix}_REPLICA", {"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        if prefix == "ANALYTICS":
            set_env(c, "POD_IP", {"valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
            set_env(c, "ANALYTICS_ADVERTISE_ADDR", {"value": "$(POD_IP):50052"})
        return obj, c

    def other_partitions(o):
        gateway = container(find(o, "StatefulSet", "gateway"), "gateway")
        analytics = container(workload(o, "analytics"), "analytics")
        set_env(analytics, "ANALYTICS_PARTITIONS", {"value": str(int(env(gateway, "GATEWAY_PARTITIONS", "0")) + 8)})

    def unpartitioned_replicas(o):
        analytics = workload(o, "analytics")
        analytics["spec"]["replicas"] = 2
        set_env(container(analytics, "analytics"), "ANALYTICS_PARTITIONS", None)

    def as_deployment(o):
        partitioned(o, "analytics", "ANALYTICS")[0]["kind"] = "Deployment"

    def one_replica_name(o):
        _, c = partitioned(o, "crm-sync", "CRM")
        set_env(c, "CRM_REPLICA", {"value": "crm-sync"})

    def crm_on_sqlite(o):
        _, c = partitioned(o, "crm-sync", "CRM")
        set_env(c, "CRM_STORE_URL", None)

    def no_advertised_address(o):
        _, c = partitioned(o, "analytics", "ANALYTICS")
        set_env(c, "ANALYTICS_ADVERTISE_ADDR", None)

    def address_before_ip(o):
        _, c = partitioned(o, "analytics", "ANALYTICS")
        address = env_var(c, "ANALYTICS_ADVERTISE_ADDR")
        c["env"].remove(address)
        c["env"].insert(0, address)

    def one_claim(o):
        obj, _ = partitioned(o, "analytics", "ANALYTICS")
        obj["spec"].pop("volumeClaimTemplates", None)
        obj["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "analytics-data"}}]

    def no_peers(o):
        policy = find(o, "NetworkPolicy", "analytics-from-clients")
        policy["spec"]["ingress"] = [r for r in policy["spec"]["ingress"]
                                     if not any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "analytics" for p in r.get("from", []))]

    return [
        edit("analytics reading other partitions than the gateway files", other_partitions),
        edit("two analytics replicas over the whole log", unpartitioned_replicas),
        edit("partitioned analytics as a Deployment (no stable names)", as_deployment),
        edit("crm-sync replicas all named crm-sync", one_replica_name),
        edit("crm-sync replicas on the SQLite default", crm_on_sqlite),
        edit("analytics replicas advertising no address", no_advertised_address),
        edit("analytics replicas advertising $(POD_IP) before POD_IP is defined", address_before_ip),
        edit("analytics replicas on one claim", one_claim),
        edit("analytics pods that may not reach each other", no_peers),
        edit("an access log of webhook URLs", access_log),
        edit("an anonymous NATS client", anonymous),
        edit("a service with the gateway's NATS user and its own password", borrowed),
        edit("the console with analytics' NATS user and password", shared),
        edit("NATS without users", no_users),
        edit("the spool as an emptyDir", spool_empty_dir),
        edit("replicas on the autoscaled gateway", replicas),
        edit("NATS anti-affinity only preferred", preferred),
        edit("a grace period shorter than the drain", short_grace),
    ]


def main():
    overlay, rendered = sys.argv[1], sys.argv[2]
    objects = [o for o in yaml.safe_load_all(open(rendered)) if o]
    production = overlay == "production"
    try:
        said = check(objects, production)
    except Refused as refused:
        print(f"deploy/overlays/{overlay}: {refused}", file=sys.stderr)
        return 1
    print(f"deploy/overlays/{overlay}: {said}")
    if "--self-test" in sys.argv:
        for what, broken in breaks(objects):
            try:
                check(broken, production)
            except Refused as refused:
                print(f"  self-test: {what} is refused ({refused})")
                continue
            print(f"check-manifests accepted {what}: the check itself is broken", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
