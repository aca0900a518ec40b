// The Kubernetes manifests (deploy/k8s) against the Kubernetes API's schemas (kubernetes-models, no
// cluster needed; the Prometheus Operator's own for monitoring.yaml), and what running them safely
// takes: probes on every long-running container, a coordinator that is never two (Recreate), NATS
// credentials from the Secret only, non-root containers with a read-only root filesystem, the NATS
// users the same as deploy/nats/auth.conf, and TLS with client certificates from their own Secret.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import { ConfigMap, Namespace, PersistentVolumeClaim, Service } from "kubernetes-models/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodMonitor, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { REPO_ROOT } from "../helpers/processes.js";

const K8S = path.join(REPO_ROOT, "deploy/k8s");

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

/** The validating model of each kind the manifests use; a kind missing here fails the test by name. */
const MODELS: Record<string, (m: Manifest) => { validate(): void }> = {
  "v1/ConfigMap": (m) => new ConfigMap(m as never),
  "v1/Namespace": (m) => new Namespace(m as never),
  "v1/PersistentVolumeClaim": (m) => new PersistentVolumeClaim(m as never),
  "v1/Service": (m) => new Service(m as never),
  "apps/v1/Deployment": (m) => new Deployment(m as never),
  "apps/v1/StatefulSet": (m) => new StatefulSet(m as never),
  // the Prometheus Operator's resources (monitoring.yaml), against the operator's published schemas
  "monitoring.coreos.com/v1/ServiceMonitor": (m) => new ServiceMonitor(m as never),
  "monitoring.coreos.com/v1/PodMonitor": (m) => new PodMonitor(m as never),
};

function manifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(K8S).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")) {
    for (const doc of parseAllDocuments(readFileSync(path.join(K8S, file), "utf8"))) {
      assert.equal(doc.errors.length, 0, `${file}: ${doc.errors.join("; ")}`);
      const { metadata, ...rest } = doc.toJS() as Manifest;
      out.push({ ...rest, metadata, file });
    }
  }
  return out;
}

interface Container {
  name: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  readinessProbe?: unknown;
  livenessProbe?: unknown;
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
}
interface PodSpec {
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
}
const podSpec = (m: Manifest) => (m.spec!.template as { spec: PodSpec }).spec;
const workloads = () => manifests().filter((m) => m.kind === "Deployment" || m.kind === "StatefulSet");
const named = (name: string) => workloads().find((m) => m.metadata.name === name)!;

test("every manifest is valid against the Kubernetes API schema of its kind", () => {
  const all = manifests();
  assert.ok(all.length >= 6, `only ${all.length} manifests found`);
  for (const m of all) {
    const { file, ...object } = m;
    const model = MODELS[`${m.apiVersion}/${m.kind}`];
    assert.ok(model, `${file}: no schema for ${m.apiVersion} ${m.kind} in this test`);
    assert.doesNotThrow(() => model(object as Manifest).validate(), `${file}: ${m.kind} ${m.metadata.name}`);
  }
});

test("the schemas catch a broken manifest (the check above can fail)", () => {
  const coordinator = named("ringtune-coordinator");
  const { file: _file, ...object } = structuredClone(coordinator);
  (object.spec as { replicas: unknown }).replicas = "one";
  assert.throws(() => new Deployment(object as never).validate(), /replicas must be integer/);
});

test("every long-running container has liveness and readiness probes", () => {
  for (const m of workloads())
    for (const c of podSpec(m).containers) {
      assert.ok(c.readinessProbe, `${m.file}: ${c.name} has no readinessProbe`);
      assert.ok(c.livenessProbe, `${m.file}: ${c.name} has no livenessProbe`);
    }
});

test("the coordinator is replaced with the Recreate strategy, one replica, never two at once", () => {
  const coordinator = named("ringtune-coordinator");
  assert.deepEqual(coordinator.spec!.strategy, { type: "Recreate" });
  assert.equal(coordinator.spec!.replicas, 1);
});

test("NATS passwords come from the Secret only, one per role, and no pod runs as root or writes its image", () => {
  const wanted: Record<string, string[]> = {
    "ringtune-coordinator": ["coordinator-password"],
    "ringtune-worker": ["worker-password"],
    nats: ["coordinator-password", "worker-password", "client-password", "serve-password"],
  };
  for (const m of workloads()) {
    const pod = podSpec(m);
    assert.equal(pod.securityContext?.runAsNonRoot, true, `${m.file}: runAsNonRoot`);
    assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, `${m.file}: runAsUser`);
    const keys: string[] = [];
    for (const c of pod.containers) {
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${m.file}: ${c.name} readOnlyRootFilesystem`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${m.file}: ${c.name} allowPrivilegeEscalation`);
      for (const e of c.env ?? []) {
        if (/PASSWORD/.test(e.name)) {
          assert.equal(e.value, undefined, `${m.file}: ${e.name} is written into the manifest`);
          assert.equal(e.valueFrom?.secretKeyRef?.name, "ringtune-nats-credentials", `${m.file}: ${e.name}`);
          keys.push(e.valueFrom!.secretKeyRef!.key);
        }
      }
      assert.ok(!(c.args ?? []).includes("--insecure"), `${m.file}: ${c.name} runs with --insecure`);
    }
    assert.deepEqual(keys.sort(), wanted[m.metadata.name]!.sort(), `${m.file}: secret keys`);
  }
  const kustomization = readFileSync(path.join(K8S, "kustomization.yaml"), "utf8");
  assert.match(kustomization, /name: ringtune-nats-credentials/);
});

test("the NATS server in Kubernetes has the same users and permissions as deploy/nats/auth.conf, and a worker user", () => {
  const config = manifests().find((m) => m.kind === "ConfigMap" && m.metadata.name === "nats-config")!;
  const auth = readFileSync(path.join(REPO_ROOT, "deploy/nats/auth.conf"), "utf8");
  // the workers' users go at the marker: in Kubernetes one user the worker pods share
  const [before, after] = auth.split("    # @worker-users@\n") as [string, string];
  const k8s = config.data!["auth.conf"]!;
  assert.ok(k8s.startsWith(before.trim()), "the users before the workers' differ from deploy/nats/auth.conf");
  assert.ok(k8s.trim().endsWith(after.trim()), "the end of auth.conf differs from deploy/nats/auth.conf");
  assert.match(k8s.slice(before.length), /user: worker\n/);
  assert.match(config.data!["nats-server.conf"]!, /include "auth.conf"/);
});

interface SecretVolume {
  name: string;
  secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
}
interface Mount {
  name: string;
  mountPath: string;
}

test("NATS speaks TLS and requires client certificates; each pod mounts only its own role's key from the Secret", () => {
  const config = manifests().find((m) => m.kind === "ConfigMap" && m.metadata.name === "nats-config")!;
  const server = config.data!["nats-server.conf"]!;
  const tlsBlock = /tls \{([^}]*)\}/.exec(server)?.[1] ?? "";
  assert.match(tlsBlock, /verify: true/, "the server asks every client for a certificate");
  // role -> the certificate files its pod must get, and where its process is told to find them
  const wanted: Record<string, string[]> = {
    nats: ["ca.pem", "server.pem", "server-key.pem"],
    "ringtune-coordinator": ["ca.pem", "coordinator.pem", "coordinator-key.pem"],
    "ringtune-worker": ["ca.pem", "worker.pem", "worker-key.pem"],
  };
  for (const [name, files] of Object.entries(wanted)) {
    const m = named(name);
    const pod = podSpec(m) as PodSpec & { volumes: SecretVolume[] };
    const volume = pod.volumes.find((v) => v.secret?.secretName === "ringtune-nats-tls");
    assert.ok(volume, `${m.file}: a volume from the ringtune-nats-tls Secret`);
    assert.deepEqual(volume.secret!.items!.map((i) => i.key).sort(), [...files].sort(), `${m.file}: only its own keys`);
    assert.equal(volume.secret!.defaultMode, 0o440, `${m.file}: keys not world-readable`);
    const container = pod.containers[0] as Container & { volumeMounts: Mount[] };
    const dir = container.volumeMounts.find((v) => v.name === volume.name)!.mountPath;
    // What the process reads: the server's config for nats, NATS_CA/NATS_CERT/NATS_KEY for ringtune's.
    const serverFiles = [...tlsBlock.matchAll(/_file: (\S+)/g)].map((x) => x[1]!);
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
    const read = name === "nats" ? serverFiles : [env.NATS_CA, env.NATS_CERT, env.NATS_KEY];
    assert.deepEqual(
      read.sort(),
      files.map((f) => path.posix.join(dir, f)).sort(),
      `${m.file}: the files named are the files mounted`,
    );
  }
  const kustomization = readFileSync(path.join(K8S, "kustomization.yaml"), "utf8");
  assert.match(kustomization, /name: ringtune-nats-tls/);
  for (const f of Object.values(wanted).flat())
    assert.ok(kustomization.includes(`tls/${f}`), `kustomization: tls/${f}`);
});
