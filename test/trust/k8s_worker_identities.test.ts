// Each Kubernetes worker pod its own NATS identity, checked as the cluster would run it: deploy/k8s rendered
// by the real kubectl with fresh passwords and TLS material (made by deploy/scripts/k8s-worker-users.sh, as a
// user makes them: one client certificate per worker pod), a real nats-server with the rendered users, the
// rendered TLS settings (verify_and_map) and the environment the NATS pod gets from the rendered Secrets,
// each worker pod's init container script run over those Secrets' keys as the kubelet mounts them, and the
// worker connecting over TLS with the environment its container gets. worker-0's credentials then reach its
// own subjects and none of worker-1's (nor a GPU worker's); its certificate cannot log in as worker-1 even with
// worker-1's password; and no pod of a worker beyond the users made starts.
import assert from "node:assert/strict";
import { spawnSync, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { natsAuth } from "../../cli/nats_credentials.js";
import { jobSubjects, subjects } from "../../proto/mod.js";
import { kubectlMissing, renderKustomization, type K8sObject } from "../helpers/kustomize.js";
import { delivered, overheard } from "../helpers/nats_probes.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { REPO_ROOT } from "../helpers/processes.js";

const skip = kubectlMissing();
const USERS_SCRIPT = path.join(REPO_ROOT, "deploy/scripts/k8s-worker-users.sh");

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  command?: string[];
  env?: EnvVar[];
  envFrom?: { secretRef?: { name: string } }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  configMap?: { name: string };
  emptyDir?: unknown;
}
interface Pod {
  initContainers?: Container[];
  containers: Container[];
  volumes: Volume[];
}

let rendered: K8sObject[] = [];
let server: NatsServer | undefined;
let work = "";
/** the NATS pod's TLS volume (server certificate and key, the CA), and the coordinator's certificate */
let natsTls = "";
const open: NatsConnection[] = [];

const find = (kind: string, name: string) => {
  const m = rendered.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(m, `no ${kind} ${name} in the render`);
  return m;
};
const pod = (name: string) => (find("StatefulSet", name).spec!.template as { spec: Pod }).spec;
const secretData = (name: string) =>
  Object.fromEntries(
    Object.entries(find("Secret", name).data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]),
  );

/** The environment the kubelet gives `c`: values, secret keys, whole Secrets, and $(VAR) of earlier ones. */
function containerEnv(c: Container, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) if (from.secretRef) Object.assign(env, secretData(from.secretRef.name));
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value.replace(/\$\(([A-Z_][A-Z0-9_]*)\)/g, (m, v) => env[v] ?? m);
    else if (e.valueFrom?.secretKeyRef)
      env[e.name] = secretData(e.valueFrom.secretKeyRef.name)[e.valueFrom.secretKeyRef.key]!;
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.name") env[e.name] = podName;
    else if (e.valueFrom?.fieldRef) env[e.name] = "10.0.0.1";
  }
  return env;
}

/**
 * One worker pod started the way its StatefulSet says: its volumes made in a temp folder (a Secret or a
 * ConfigMap as one file per key, an emptyDir empty), the init container's command run there, and the
 * worker container's environment with mount paths moved to where the volumes are. Returns that environment
 * and the init container's exit status and stderr.
 */
function startPod(statefulSet: string, podName: string) {
  const spec = pod(statefulSet);
  const root = mkdtempSync(path.join(work, `${podName}-`));
  const volumeDir = new Map<string, string>();
  for (const v of spec.volumes) {
    const dir = path.join(root, v.name);
    mkdirSync(dir);
    volumeDir.set(v.name, dir);
    const all = v.secret
      ? secretData(v.secret.secretName)
      : v.configMap
        ? find("ConfigMap", v.configMap.name).data!
        : {};
    // a Secret volume with items holds those keys alone, under their paths
    const data = v.secret?.items ? Object.fromEntries(v.secret.items.map((i) => [i.path, all[i.key]!])) : all;
    for (const [k, value] of Object.entries(data)) writeFileSync(path.join(dir, k), value, { mode: 0o440 });
  }
  /** A path inside the container, where its volume lies here. */
  const relocate = (c: Container, p: string) => {
    for (const m of c.volumeMounts ?? [])
      if (p === m.mountPath || p.startsWith(m.mountPath + "/"))
        return volumeDir.get(m.name)! + p.slice(m.mountPath.length);
    return p;
  };
  const relocateEnv = (c: Container) =>
    Object.fromEntries(Object.entries(containerEnv(c, podName)).map(([k, v]) => [k, relocate(c, v)]));
  const init = spec.initContainers?.find((c) => c.name === "nats-identity");
  assert.ok(init, `${statefulSet}: an init container picks the pod's NATS identity`);
  const [cmd, ...args] = init.command!.map((a) => relocate(init, a));
  const r = spawnSync(cmd!, args, { env: { PATH: process.env.PATH, ...relocateEnv(init) }, encoding: "utf8" });
  const worker = spec.containers.find((c) => c.name === "worker")!;
  const mounted = new Set((worker.volumeMounts ?? []).map((m) => m.name));
  return { status: r.status, stderr: r.stderr, env: relocateEnv(worker), mounted, volumeDir };
}

/** A connection made with the credentials the worker process takes from its container's environment. */
async function connectAsWorkerPod(env: Record<string, string>): Promise<NatsConnection> {
  const auth = natsAuth({}, "worker", env);
  const nc = await connect({ servers: server!.url, reconnect: false, ...auth.options });
  open.push(nc);
  // the server may refuse a connection just after the handshake: a round trip tells
  await nc.flush();
  return nc;
}

/** The coordinator as its pod connects: its role's certificate from the TLS Secret. */
async function connectAsCoordinator(): Promise<NatsConnection> {
  const nc = await connect({
    servers: server!.url,
    user: "coordinator",
    pass: process.env.RINGTUNE_COORDINATOR_PASSWORD!,
    tls: {
      caFile: path.join(natsTls, "ca.pem"),
      certFile: path.join(natsTls, "coordinator.pem"),
      keyFile: path.join(natsTls, "coordinator-key.pem"),
    },
  });
  open.push(nc);
  return nc;
}

/** The tls block of the rendered nats-server.conf, its files where the NATS pod's TLS volume lies here. */
function renderedTlsBlock(): string {
  const conf = find("ConfigMap", "nats-config").data!["nats-server.conf"]!;
  const block = /^tls \{[^}]*\}/m.exec(conf)?.[0];
  assert.ok(block, "nats-server.conf has a tls block");
  const nats = pod("nats");
  const mount = nats.containers[0]!.volumeMounts!.find((m) => m.name === "tls")!.mountPath;
  return block.replaceAll(mount, natsTls);
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(path.join(os.tmpdir(), "ringtune-k8s-identities-"));
  rendered = renderKustomization(undefined, (copy) => {
    const pw = () => "p" + randomBytes(12).toString("hex");
    writeFileSync(
      path.join(copy, "nats-credentials.env"),
      ["coordinator", "client", "serve"].map((r) => `${r}-password=${pw()}\n`).join(""),
    );
    writeFileSync(
      path.join(copy, "nats-worker-credentials.env"),
      execFileSync(USERS_SCRIPT, ["passwords"], { encoding: "utf8" }),
    );
    // the TLS material as a user makes it, for the pods the tests start (the other pods' files are placeholders)
    execFileSync(USERS_SCRIPT, ["certs", path.join(copy, "tls")], {
      env: { ...process.env, CPU_WORKER_SLOTS: "2", GPU_WORKER_SLOTS: "2" },
      stdio: "ignore",
    });
  });
  natsTls = path.join(work, "nats-tls");
  mkdirSync(natsTls);
  for (const [k, v] of Object.entries(secretData("ringtune-nats-tls"))) writeFileSync(path.join(natsTls, k), v);
  // nats-server with the rendered users and TLS, in the environment the rendered NATS pod gets
  const natsPod = pod("nats").containers[0]!;
  Object.assign(process.env, containerEnv(natsPod, "nats-0"));
  const config = find("ConfigMap", "nats-config").data!["auth.conf"]!;
  server = await startNatsServer({ config: [config, renderedTlsBlock()] });
});

after(async () => {
  await Promise.all(open.map((nc) => nc.close().catch(() => {})));
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test(
  "the committed NATS users are what k8s-worker-users.sh renders, a user per worker pod and no shared one",
  { skip },
  () => {
    const auth = find("ConfigMap", "nats-config").data!["auth.conf"]!;
    assert.equal(
      auth,
      execFileSync(USERS_SCRIPT, ["auth"], { encoding: "utf8" }),
      "nats-auth.conf is stale: rerun the script",
    );
    assert.doesNotMatch(auth, /user: worker\n/, "a user all workers share");
    const users = [...auth.matchAll(/user: "worker-([^"]+)"/g)].map((m) => m[1]);
    // enough users for every pod the StatefulSets may run: their replicas, and KEDA's most GPU workers
    const scaled = rendered.find((m) => m.kind === "ScaledObject")!.spec as { maxReplicaCount: number };
    const want = [
      ...Array.from(
        { length: find("StatefulSet", "ringtune-worker").spec!.replicas as number },
        (_, i) => `ringtune-worker-${i}`,
      ),
      ...Array.from({ length: scaled.maxReplicaCount }, (_, i) => `ringtune-worker-gpu-${i}`),
    ];
    for (const id of want) assert.ok(users.includes(id), `no NATS user for pod ${id}`);
    // and the workers' Secret has a password for each, which the NATS pod reads whole
    const secret = secretData("ringtune-nats-worker-credentials");
    assert.equal(Object.keys(secret).length, users.length);
    assert.deepEqual(pod("nats").containers[0]!.envFrom, [{ secretRef: { name: "ringtune-nats-worker-credentials" } }]);
  },
);

test(
  "a worker pod holds its own password and certificate only: the workers' Secrets reach its init container, not the worker",
  { skip },
  () => {
    for (const set of ["ringtune-worker", "ringtune-worker-gpu"]) {
      const spec = pod(set);
      const worker = spec.containers.find((c) => c.name === "worker")!;
      for (const secret of ["ringtune-nats-worker-credentials", "ringtune-nats-worker-tls"]) {
        const volume = spec.volumes.find((v) => v.secret?.secretName === secret);
        assert.ok(volume, `${set}: the init container mounts ${secret}`);
        assert.ok(
          !(worker.volumeMounts ?? []).some((m) => m.name === volume.name),
          `${set}: the worker mounts ${secret}, every worker's credentials`,
        );
      }
      // the TLS Secret all pods share gives a worker the CA alone
      const shared = spec.volumes.find((v) => v.secret?.secretName === "ringtune-nats-tls")!;
      assert.deepEqual(
        shared.secret!.items!.map((i) => i.key),
        ["ca.pem"],
      );
      for (const e of worker.env ?? [])
        assert.equal(e.valueFrom?.secretKeyRef, undefined, `${set}: ${e.name} from a Secret`);
      assert.equal(worker.envFrom, undefined, `${set}: the worker's environment from a Secret`);
    }
    const p = startPod("ringtune-worker", "ringtune-worker-0");
    assert.equal(p.status, 0, p.stderr);
    const file = p.env.NATS_PASSWORD_FILE!;
    const secret = secretData("ringtune-nats-worker-credentials");
    assert.equal(readFileSync(file, "utf8"), secret.RINGTUNE_WORKER_PASSWORD_RINGTUNE_WORKER_0);
    const certs = secretData("ringtune-nats-worker-tls");
    assert.equal(readFileSync(p.env.NATS_CERT!, "utf8"), certs["worker-ringtune-worker-0.pem"]);
    assert.equal(readFileSync(p.env.NATS_KEY!, "utf8"), certs["worker-ringtune-worker-0-key.pem"]);
    assert.deepEqual(
      readdirSync(path.dirname(file)).sort(),
      ["cert.pem", "key.pem", "password"],
      "the identity folder holds one password and one certificate",
    );
    for (const f of [p.env.NATS_CERT!, p.env.NATS_KEY!, file])
      assert.equal(path.dirname(f), path.dirname(file), `${f}: outside the identity folder`);
    assert.equal(p.env.NATS_USER, "worker-ringtune-worker-0");
  },
);

test("a pod beyond the NATS users made stops in its init container and says why", { skip }, () => {
  const p = startPod("ringtune-worker-gpu", "ringtune-worker-gpu-99");
  assert.notEqual(p.status, 0);
  assert.match(
    p.stderr,
    /no NATS user for worker ringtune-worker-gpu-99: .*RINGTUNE_WORKER_PASSWORD_RINGTUNE_WORKER_GPU_99/,
  );
  assert.match(p.stderr, /k8s-worker-users\.sh/);
});

test("worker-0's credential reaches its own subjects and none of worker-1's or a GPU worker's", { skip }, async () => {
  const w0 = await connectAsWorkerPod(startPod("ringtune-worker", "ringtune-worker-0").env);
  const gpu1 = startPod("ringtune-worker-gpu", "ringtune-worker-gpu-1");
  assert.equal(gpu1.status, 0, gpu1.stderr);
  const g1 = await connectAsWorkerPod(gpu1.env);
  const coordinator = await connectAsCoordinator();

  // the controls: each reaches its own subjects, so a 0 below is the permission and not a broken probe
  for (const [nc, id] of [
    [w0, "ringtune-worker-0"],
    [g1, "ringtune-worker-gpu-1"],
  ] as const) {
    assert.equal(
      await overheard(`ringtune.worker.${id}.cmd.*`, jobSubjects.workerCommand(id, "assign"), nc, coordinator),
      1,
      id,
    );
    assert.equal(await delivered(subjects.workerHeartbeat(id), nc, coordinator), 1, id);
    assert.equal(await overheard(`_INBOX_worker-${id}.>`, `_INBOX_worker-${id}.r`, nc, coordinator), 1, id);
  }

  // every probe at once: each counts only its own marker
  const probes: Promise<string | undefined>[] = [];
  for (const [nc, self, other] of [
    [w0, "ringtune-worker-0", "ringtune-worker-1"],
    [w0, "ringtune-worker-0", "ringtune-worker-gpu-0"],
    [g1, "ringtune-worker-gpu-1", "ringtune-worker-0"],
  ] as const) {
    const reads: [string, string][] = [
      [`ringtune.worker.${other}.cmd.*`, jobSubjects.workerCommand(other, "assign")], // its ring secret
      [`ringtune.worker.${other}.cmd.>`, jobSubjects.workerCommand(other, "step")], // its batches
      ["ringtune.worker.*.cmd.*", jobSubjects.workerCommand(other, "assign")],
      [`_INBOX_worker-${other}.>`, `_INBOX_worker-${other}.reply`], // its replies
      ["_INBOX.>", "_INBOX.reply"],
      ["_INBOX_client.>", "_INBOX_client.reply"],
    ];
    for (const [pattern, subject] of reads)
      probes.push(
        overheard(pattern, subject, nc, coordinator).then((n) =>
          n > 0 ? `${self} read ${subject} (${pattern})` : undefined,
        ),
      );
    const writes = [
      subjects.workerHeartbeat(other), // keeping another alive
      subjects.workerRegister(other), // registering as another
      jobSubjects.workerCommand(other, "step"), // commanding another
      jobSubjects.submit,
      jobSubjects.coordinatorHello,
      `_INBOX_worker-${other}.forged`,
    ];
    for (const subject of writes)
      probes.push(
        delivered(subject, nc, coordinator).then((n) => (n > 0 ? `${self} published ${subject}` : undefined)),
      );
  }
  const leaks = (await Promise.all(probes)).filter((l) => l !== undefined);
  assert.deepEqual(leaks, []);
});

test("a worker pod's certificate is its user: naming another worker's user it is still itself", { skip }, async () => {
  const p = startPod("ringtune-worker", "ringtune-worker-0");
  // with the user's name changed only, NATS takes the user from the certificate (verify_and_map)
  const nc = await connectAsWorkerPod({ ...p.env, NATS_USER: "worker-ringtune-worker-1" });
  const coordinator = await connectAsCoordinator();
  assert.equal(await delivered(subjects.workerHeartbeat("ringtune-worker-0"), nc, coordinator), 1, "its own");
  assert.equal(await delivered(subjects.workerHeartbeat("ringtune-worker-1"), nc, coordinator), 0, "worker-1's");
});

test(
  "every worker user has its own certificate in the workers' TLS Secret, listed as the script renders it",
  { skip },
  () => {
    const auth = find("ConfigMap", "nats-config").data!["auth.conf"]!;
    const users = [...auth.matchAll(/user: "worker-([^"]+)"/g)].map((m) => m[1]!);
    const certs = Object.keys(secretData("ringtune-nats-worker-tls")).sort();
    assert.deepEqual(certs, users.flatMap((id) => [`worker-${id}-key.pem`, `worker-${id}.pem`]).sort());
    const listed = readFileSync(path.join(REPO_ROOT, "deploy/k8s/kustomization.yaml"), "utf8");
    assert.ok(listed.includes(execFileSync(USERS_SCRIPT, ["tls-files"], { encoding: "utf8" })), "rerun tls-files");
  },
);

test("worker-0's certificate cannot log in as worker-1, even with worker-1's password", { skip }, async () => {
  const w0 = startPod("ringtune-worker", "ringtune-worker-0");
  const w1 = startPod("ringtune-worker", "ringtune-worker-1");
  assert.equal(w1.status, 0, w1.stderr);
  // the control: worker-1's own identity gets in
  await connectAsWorkerPod(w1.env);
  // worker-0's certificate and key with everything else of worker-1's (a stolen password)
  await assert.rejects(
    connectAsWorkerPod({ ...w1.env, NATS_CERT: w0.env.NATS_CERT!, NATS_KEY: w0.env.NATS_KEY! }),
    /Authorization Violation|AUTHORIZATION_VIOLATION/i,
  );
  // and no certificate at all
  const { NATS_CERT: _c, NATS_KEY: _k, ...noCert } = w1.env;
  await assert.rejects(connectAsWorkerPod(noCert));
});
