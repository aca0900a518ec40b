// The Kubernetes manifests (deploy/k8s) as `kubectl apply -k` reads them: rendered by the real kubectl's
// kustomize, every object checked against the Kubernetes API's schemas (kubernetes-models, no cluster
// needed), KEDA's for the ScaledObject and the Prometheus Operator's for monitoring.yaml; and what running
// them safely takes: probes on every long-running container, a coordinator that is never two (Recreate),
// NATS credentials from the Secret only, non-root containers with a read-only root filesystem, the NATS
// users the same as deploy/nats/auth.conf, TLS with client certificates from their own Secret, GPU workers
// on GPU nodes scaled from the job queue, a disruption budget and network policies.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service } from "kubernetes-models/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { PodMonitor, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { CoordinatorMetrics } from "../../coordinator/observe/coordinator_metrics.js";
import { REPO_ROOT } from "../helpers/processes.js";
import { K8S_DIR, kubectlMissing, renderKustomization, type K8sObject } from "../helpers/kustomize.js";

const skip = kubectlMissing();
const rendered = skip ? [] : renderKustomization();

/** The validating model of each kind the manifests use; a kind missing here fails the test by name. */
const MODELS: Record<string, (m: K8sObject) => { validate(): void }> = {
  "v1/ConfigMap": (m) => new ConfigMap(m as never),
  "v1/Namespace": (m) => new Namespace(m as never),
  "v1/PersistentVolumeClaim": (m) => new PersistentVolumeClaim(m as never),
  "v1/Secret": (m) => new Secret(m as never),
  "v1/Service": (m) => new Service(m as never),
  "apps/v1/Deployment": (m) => new Deployment(m as never),
  "apps/v1/StatefulSet": (m) => new StatefulSet(m as never),
  "policy/v1/PodDisruptionBudget": (m) => new PodDisruptionBudget(m as never),
  "networking.k8s.io/v1/NetworkPolicy": (m) => new NetworkPolicy(m as never),
  // KEDA's CRD, against the schema KEDA publishes
  "keda.sh/v1alpha1/ScaledObject": (m) => new ScaledObject(m as never),
  // the Prometheus Operator's resources (monitoring.yaml), against the operator's published schemas
  "monitoring.coreos.com/v1/ServiceMonitor": (m) => new ServiceMonitor(m as never),
  "monitoring.coreos.com/v1/PodMonitor": (m) => new PodMonitor(m as never),
};

const id = (m: K8sObject) => `${m.kind} ${m.metadata.name}`;

interface Container {
  name: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  readinessProbe?: unknown;
  livenessProbe?: unknown;
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
}
interface PodSpec {
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  containers: Container[];
}
interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: PodSpec;
}
const template = (m: K8sObject) => m.spec!.template as PodTemplate;
const podSpec = (m: K8sObject) => template(m).spec;
const workloads = () => rendered.filter((m) => m.kind === "Deployment" || m.kind === "StatefulSet");
const named = (name: string) => {
  const found = workloads().find((m) => m.metadata.name === name);
  assert.ok(found, `no workload named ${name} in the render`);
  return found;
};
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

test("kubectl kustomize renders every manifest, each valid against the schema of its kind", { skip }, () => {
  assert.ok(rendered.length >= 12, `only ${rendered.length} objects rendered`);
  for (const m of rendered) {
    const model = MODELS[`${m.apiVersion}/${m.kind}`];
    assert.ok(model, `${id(m)}: no schema for ${m.apiVersion} ${m.kind} in this test`);
    assert.doesNotThrow(() => model(m).validate(), id(m));
    if (m.kind !== "Namespace") assert.equal(m.metadata.namespace, "ringtune", `${id(m)}: namespace`);
  }
  // Every manifest in the folder is applied, except monitoring.yaml (applied by hand where its CRDs exist).
  const files = readdirSync(K8S_DIR).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
  const kustomization = readFileSync(path.join(K8S_DIR, "kustomization.yaml"), "utf8");
  for (const f of files.filter((f) => f !== "monitoring.yaml"))
    assert.match(
      kustomization,
      new RegExp(`^\\s*- ${f.replace(".", "\\.")}\\s*$`, "m"),
      `${f} is not in kustomization`,
    );
});

test("monitoring.yaml is valid against the Prometheus Operator's schemas", () => {
  for (const doc of parseAllDocuments(readFileSync(path.join(K8S_DIR, "monitoring.yaml"), "utf8"))) {
    const m = doc.toJS() as K8sObject;
    assert.doesNotThrow(() => MODELS[`${m.apiVersion}/${m.kind}`]!(m).validate(), id(m));
  }
});

test("the schemas catch a broken manifest (the checks above can fail)", { skip }, () => {
  const coordinator = structuredClone(named("ringtune-coordinator"));
  (coordinator.spec as { replicas: unknown }).replicas = "one";
  assert.throws(() => new Deployment(coordinator as never).validate(), /replicas must be integer/);
  const scaled = structuredClone(rendered.find((m) => m.kind === "ScaledObject")!);
  (scaled.spec as { maxReplicaCount: unknown }).maxReplicaCount = "eight";
  assert.throws(() => new ScaledObject(scaled as never).validate(), /maxReplicaCount must be integer/);
});

test("every long-running container has liveness and readiness probes", { skip }, () => {
  for (const m of workloads())
    for (const c of podSpec(m).containers) {
      assert.ok(c.readinessProbe, `${id(m)}: ${c.name} has no readinessProbe`);
      assert.ok(c.livenessProbe, `${id(m)}: ${c.name} has no livenessProbe`);
    }
});

test("the coordinator is replaced with the Recreate strategy, one replica, never two at once", { skip }, () => {
  const coordinator = named("ringtune-coordinator");
  assert.deepEqual(coordinator.spec!.strategy, { type: "Recreate" });
  assert.equal(coordinator.spec!.replicas, 1);
});

test(
  "NATS passwords come from the Secrets only, one per role, and no pod runs as root or writes its image",
  { skip },
  () => {
    // the keys of ringtune-nats-credentials each workload's containers name; workers take theirs from a file
    // their init container writes (k8s_worker_identities.test.ts)
    const wanted: Record<string, string[]> = {
      "ringtune-coordinator": ["coordinator-password"],
      "ringtune-worker": [],
      "ringtune-worker-gpu": [],
      nats: ["coordinator-password", "client-password", "serve-password"],
    };
    assert.deepEqual(
      workloads()
        .map((m) => m.metadata.name)
        .sort(),
      Object.keys(wanted).sort(),
    );
    for (const m of workloads()) {
      const pod = podSpec(m) as PodSpec & { initContainers?: Container[] };
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${id(m)}: runAsNonRoot`);
      assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, `${id(m)}: runAsUser`);
      const keys: string[] = [];
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${id(m)}: ${c.name} readOnlyRootFilesystem`);
        assert.equal(
          c.securityContext?.allowPrivilegeEscalation,
          false,
          `${id(m)}: ${c.name} allowPrivilegeEscalation`,
        );
        for (const e of c.env ?? []) {
          if (/PASSWORD/.test(e.name) && !e.name.endsWith("_FILE")) {
            assert.equal(e.value, undefined, `${id(m)}: ${e.name} is written into the manifest`);
            assert.equal(e.valueFrom?.secretKeyRef?.name, "ringtune-nats-credentials", `${id(m)}: ${e.name}`);
            keys.push(e.valueFrom!.secretKeyRef!.key);
          }
        }
        assert.ok(!(c.args ?? []).includes("--insecure"), `${id(m)}: ${c.name} runs with --insecure`);
      }
      assert.deepEqual(keys.sort(), wanted[m.metadata.name]!.sort(), `${id(m)}: secret keys`);
    }
    // the Secret holds every key the pods name, from the example env file
    const secret = rendered.find((m) => m.kind === "Secret" && m.metadata.name === "ringtune-nats-credentials");
    assert.ok(secret, "the ringtune-nats-credentials Secret is rendered");
    for (const key of new Set(Object.values(wanted).flat())) assert.ok(secret.data?.[key], `Secret key ${key}`);
  },
);

test(
  "the NATS server in Kubernetes has the roles' users of deploy/nats/auth.conf and a user per worker pod",
  { skip },
  () => {
    const config = rendered.find((m) => m.kind === "ConfigMap" && m.metadata.name === "nats-config")!;
    const auth = readFileSync(path.join(REPO_ROOT, "deploy/nats/auth.conf"), "utf8");
    // the workers' users go at the marker, as cluster-up puts them (render_auth_conf)
    const [before, after] = auth.split("    # @worker-users@\n") as [string, string];
    const k8s = config.data!["auth.conf"]!;
    assert.ok(k8s.includes(before.trim()), "the users before the workers' differ from deploy/nats/auth.conf");
    assert.ok(k8s.trim().endsWith(after.trim()), "the end of auth.conf differs from deploy/nats/auth.conf");
    assert.match(k8s, /user: "worker-ringtune-worker-0"\n/);
    assert.match(k8s, /user: "worker-ringtune-worker-gpu-0"\n/);
    assert.match(config.data!["nats-server.conf"]!, /include "auth.conf"/);
  },
);

test("the GPU workers are the CPU workers' StatefulSet patched, not a copy that drifts", { skip }, () => {
  // what the GPU patch changes; everything else must be the CPU workers' own
  const cpu = structuredClone(named("ringtune-worker")) as K8sObject & { spec: Record<string, unknown> };
  const gpu = structuredClone(named("ringtune-worker-gpu")) as K8sObject & { spec: Record<string, unknown> };
  const gpuPod = podSpec(gpu) as PodSpec & { initContainers: (Container & { image: string })[] };
  const cpuPod = podSpec(cpu) as PodSpec & { initContainers: (Container & { image: string })[] };
  const worker = gpuPod.containers[0] as Container & { image: string };
  const device = worker.args!.indexOf("--device");
  assert.deepEqual(worker.args!.splice(device, 2), ["--device", "cuda"]);
  assert.match(worker.image, /^ringtune-cuda[:@]/);
  assert.match(gpuPod.initContainers[0]!.image, /^ringtune-cuda[:@]/);
  for (const [from, to] of [
    [gpuPod, cpuPod],
    [gpu.spec, cpu.spec],
  ] as const)
    for (const key of Object.keys(from)) if (!(key in to)) delete (from as Record<string, unknown>)[key];
  worker.image = (cpuPod.containers[0] as Container & { image: string }).image;
  gpuPod.initContainers[0]!.image = cpuPod.initContainers[0]!.image;
  worker.resources = cpuPod.containers[0]!.resources;
  gpu.spec.replicas = cpu.spec.replicas;
  gpu.spec.selector = cpu.spec.selector;
  template(gpu).metadata.labels = template(cpu).metadata.labels;
  gpu.metadata = cpu.metadata;
  assert.deepEqual(gpu, cpu);
  // the folder holds one workers' manifest; the GPU workers' is a kustomize patch of it
  assert.deepEqual(readdirSync(path.join(K8S_DIR, "workers-gpu")).sort(), ["gpu.yaml", "kustomization.yaml"]);
});

interface SecretVolume {
  name: string;
  secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
}
interface Mount {
  name: string;
  mountPath: string;
}

test(
  "NATS speaks TLS and maps client certificates to users; each pod mounts only its own role's key from the Secret",
  { skip },
  () => {
    const config = rendered.find((m) => m.kind === "ConfigMap" && m.metadata.name === "nats-config")!;
    const server = config.data!["nats-server.conf"]!;
    const tlsBlock = /tls \{([^}]*)\}/.exec(server)?.[1] ?? "";
    assert.match(tlsBlock, /verify_and_map: true/, "a client certificate is required and names the user");
    // role -> the certificate files its pod must get, and where its process is told to find them
    const wanted: Record<string, string[]> = {
      nats: ["ca.pem", "server.pem", "server-key.pem"],
      "ringtune-coordinator": ["ca.pem", "coordinator.pem", "coordinator-key.pem"],
      // a worker's certificate is its own, not the role's (k8s_worker_identities.test.ts)
      "ringtune-worker": ["ca.pem"],
      "ringtune-worker-gpu": ["ca.pem"],
    };
    const tlsSecret = rendered.find((m) => m.kind === "Secret" && m.metadata.name === "ringtune-nats-tls");
    assert.ok(tlsSecret, "the ringtune-nats-tls Secret is rendered");
    for (const [name, files] of Object.entries(wanted)) {
      const m = named(name);
      const pod = podSpec(m) as PodSpec & { volumes: SecretVolume[] };
      const volume = pod.volumes.find((v) => v.secret?.secretName === "ringtune-nats-tls");
      assert.ok(volume, `${id(m)}: a volume from the ringtune-nats-tls Secret`);
      assert.deepEqual(
        volume.secret!.items!.map((i) => i.key).sort(),
        [...files].sort(),
        `${id(m)}: only its own keys`,
      );
      assert.equal(volume.secret!.defaultMode, 0o440, `${id(m)}: keys not world-readable`);
      for (const f of files) assert.ok(tlsSecret.data?.[f], `${id(m)}: ${f} is in the Secret`);
      const container = pod.containers[0] as Container & { volumeMounts: Mount[] };
      const dir = container.volumeMounts.find((v) => v.name === volume.name)!.mountPath;
      // What the process reads: the server's config for nats, NATS_CA/NATS_CERT/NATS_KEY for ringtune's.
      const serverFiles = [...tlsBlock.matchAll(/_file: (\S+)/g)].map((x) => x[1]!);
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
      const worker = name.startsWith("ringtune-worker");
      const read = name === "nats" ? serverFiles : worker ? [env.NATS_CA] : [env.NATS_CA, env.NATS_CERT, env.NATS_KEY];
      assert.deepEqual(
        read.sort(),
        files.map((f) => path.posix.join(dir, f)).sort(),
        `${id(m)}: the files named are the files mounted`,
      );
    }
  },
);

test("GPU workers ask for one GPU each, run on CUDA, and land on GPU nodes; CPU workers stay", { skip }, () => {
  const gpu = named("ringtune-worker-gpu");
  const pod = podSpec(gpu);
  const c = pod.containers[0]!;
  assert.equal(c.resources?.limits?.["nvidia.com/gpu"], 1);
  const device = c.args!.indexOf("--device");
  assert.equal(c.args![0], "worker");
  assert.equal(c.args![device + 1], "cuda", "ringtune worker --device cuda");
  assert.ok(
    Object.keys(pod.nodeSelector ?? {}).some((k) => k.startsWith("nvidia.com/")),
    "a GPU node selector",
  );
  assert.ok(
    pod.tolerations?.some((t) => t.key === "nvidia.com/gpu" && t.effect === "NoSchedule"),
    "tolerates the GPU pool's taint",
  );
  const cpu = podSpec(named("ringtune-worker")).containers[0]!;
  assert.ok(!(cpu.args ?? []).includes("cuda") && !cpu.resources?.limits?.["nvidia.com/gpu"], "CPU workers use no GPU");
});

test(
  "KEDA scales the GPU workers between a min and a max on the coordinator's workers-wanted metric",
  { skip },
  async () => {
    const scaled = rendered.filter((m) => m.kind === "ScaledObject");
    assert.equal(scaled.length, 1);
    const spec = scaled[0]!.spec as {
      scaleTargetRef: { name: string; kind?: string };
      minReplicaCount: number;
      maxReplicaCount: number;
      triggers: { type: string; metadata: Record<string, string> }[];
    };
    const target = named(spec.scaleTargetRef.name);
    assert.equal(target.kind, spec.scaleTargetRef.kind ?? "Deployment");
    assert.ok(spec.minReplicaCount >= 0 && spec.maxReplicaCount > spec.minReplicaCount, "min < max replicas");
    const prometheus = spec.triggers.find((t) => t.type === "prometheus");
    assert.ok(prometheus, "a prometheus trigger");
    const metric = /ringtune_[a-z_]+/.exec(prometheus.metadata.query!)?.[0];
    assert.ok(metric, `the query reads a ringtune metric: ${prometheus.metadata.query}`);
    // the metric is one the coordinator serves
    const served = new CoordinatorMetrics({ jobs: () => [], workers: () => [] }).registry.getSingleMetric(metric);
    assert.ok(served, `the coordinator serves no ${metric}`);
    assert.ok(Number(prometheus.metadata.threshold) > 0, "a per-replica threshold");
  },
);

test(
  "the disruption budget covers CPU and GPU workers; NATS and the ring answer ringtune's pods only",
  { skip },
  () => {
    const labels = (name: string) => template(named(name)).metadata.labels;
    const workers = ["ringtune-worker", "ringtune-worker-gpu"];
    const pdb = rendered.find((m) => m.kind === "PodDisruptionBudget")!;
    const pdbSpec = pdb.spec as { maxUnavailable?: number; selector: { matchLabels: Record<string, string> } };
    for (const w of workers) assert.ok(selects(pdbSpec.selector.matchLabels, labels(w)), `the PDB covers ${w}`);
    assert.equal(pdbSpec.maxUnavailable, 1);

    interface Peer {
      podSelector?: { matchLabels: Record<string, string> };
      namespaceSelector?: unknown;
      ipBlock?: unknown;
    }
    interface Rule {
      from?: Peer[];
      ports?: { port: number }[];
    }
    const policies = rendered.filter((m) => m.kind === "NetworkPolicy");
    const policyFor = (name: string) => {
      const p = policies.find((p) =>
        selects(
          (p.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels,
          labels(name),
        ),
      );
      assert.ok(p, `no NetworkPolicy selects ${name}`);
      return (p.spec as { ingress: Rule[] }).ingress;
    };
    // Who may reach a port: the pods of this namespace the rule's peers select (all pods when it names none).
    const allowedOnPort = (rules: Rule[], port: number, pod: string) =>
      rules.some(
        (r) =>
          (!r.ports || r.ports.some((p) => p.port === port)) &&
          (!r.from ||
            r.from.some(
              (peer) => !peer.namespaceSelector && !peer.ipBlock && selects(peer.podSelector!.matchLabels, labels(pod)),
            )),
      );
    const anyPodOnPort = (rules: Rule[], port: number) =>
      rules.some(
        (r) =>
          (!r.ports || r.ports.some((p) => p.port === port)) && (!r.from || r.from.some((peer) => !peer.podSelector)),
      );
    const nats = policyFor("nats");
    for (const pod of ["ringtune-coordinator", ...workers])
      assert.ok(allowedOnPort(nats, 4222, pod), `${pod} reaches NATS`);
    assert.ok(!anyPodOnPort(nats, 4222), "NATS is closed to pods outside ringtune");
    // the ring listens on an ephemeral port: any port but the metrics port only from other workers
    const ring = policyFor("ringtune-worker");
    const ringPort = 40000;
    for (const w of workers) assert.ok(allowedOnPort(ring, ringPort, w), `${w} reaches the ring`);
    assert.ok(
      !allowedOnPort(ring, ringPort, "ringtune-coordinator") && !anyPodOnPort(ring, ringPort),
      "the ring is closed to others",
    );
    assert.ok(anyPodOnPort(ring, 9464), "Prometheus reaches the workers' /metrics");
  },
);
