// ringtune's cluster as containers, started the way deploy/k8s describes it: nats-server with the
// manifests' config and users (the rendered nats-config ConfigMap), the coordinator and workers with the
// manifests' arguments and environment, each mounting only its role's TLS files, on one podman network
// where they find each other by name. Driven by testcontainers over podman's Docker-compatible API
// (DOCKER_HOST, set by deploy/scripts/test-containers.sh with the images `make image` built).
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { inboxPrefixOf } from "../../cli/nats_credentials.js";
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import { decodeJobRecord, JOBS_BUCKET, type JobRecordBody } from "../../proto/mod.js";
import { renderKustomization, type K8sObject } from "./kustomize.js";
import { REPO_ROOT, runRingtune, type ProcessResult } from "./processes.js";

/** KEY=VALUE lines, # comments skipped. */
function readEnvText(text: string): Record<string, string> {
  const lines = text.split("\n").filter((l) => l.includes("=") && !l.startsWith("#"));
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

/** The images under test, or why the container tests cannot run here. */
export function containerImages(): { ringtune: string; nats: string } | string {
  const ringtune = process.env.RINGTUNE_IMAGE;
  const nats = process.env.RINGTUNE_NATS_IMAGE;
  if (!ringtune || !nats || !process.env.DOCKER_HOST)
    return "run through `make test-containers` (images and podman's API)";
  return { ringtune, nats };
}

interface ManifestContainer {
  args: string[];
  envFrom?: unknown[];
  env: { name: string; value?: string; valueFrom?: { secretKeyRef?: { key: string } } }[];
  volumeMounts: { name: string; mountPath: string }[];
}
interface ManifestPod {
  containers: ManifestContainer[];
  volumes: { name: string; secret?: { items?: { key: string; path: string }[] } }[];
}

/**
 * A container whose root filesystem is read-only, as the manifests' securityContext asks, with the limits of
 * deploy/podman/containers.conf: podman's Docker API does not apply that file's default_ulimits, and its own
 * default process limit is above what these machines allow a container.
 */
class PodContainer extends GenericContainer {
  constructor(image: string) {
    super(image);
    this.withPullPolicy({ shouldPull: () => false }).withUlimits({
      nofile: { soft: 20000, hard: 20000 },
      nproc: { soft: 32768, hard: 32768 },
    });
    this.hostConfig.ReadonlyRootfs = true;
  }
}

export class ContainerCluster {
  readonly workers = new Map<string, StartedTestContainer>();
  private coordinator?: StartedTestContainer;
  private nats?: StartedTestContainer;
  /** the host's connection as the client user (what `ringtune` on the host uses), for reading job records */
  private client?: NatsConnection;
  private constructor(
    private readonly images: { ringtune: string; nats: string },
    /** a temp folder: tls/, the role folders, and shared/ (mounted at its own path in every container) */
    readonly dir: string,
    readonly shared: string,
    private readonly manifests: K8sObject[],
    private readonly passwords: Record<string, string>,
    /** each worker pod's password, by the variable nats-server reads it from (the workers' Secret) */
    private readonly workerPasswords: Record<string, string>,
    private readonly network: StartedNetwork,
  ) {}

  static async start(images: { ringtune: string; nats: string }, workers: string[]): Promise<ContainerCluster> {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ringtune-containers-"));
    const shared = path.join(dir, "shared");
    for (const d of ["data", "models", "outputs", "cache"]) mkdirSync(path.join(shared, d), { recursive: true });
    // the containers run as uid 10001, as in Kubernetes; the host's test reads what they write
    chmodSync(dir, 0o755);
    for (const d of ["", "outputs", "cache"]) chmodSync(path.join(shared, d), 0o777);
    // the TLS material as a user makes it for the manifests: the roles' certificates and one per worker pod
    execFileSync(path.join(REPO_ROOT, "deploy/scripts/k8s-worker-users.sh"), ["certs", path.join(dir, "tls")], {
      env: { ...process.env, TLS_HOSTS: "nats" },
      stdio: "ignore",
    });
    const passwords = Object.fromEntries(
      ["coordinator", "client", "serve"].map((r) => [`${r}-password`, `p${randomBytes(16).toString("hex")}`]),
    );
    // one password per worker pod, made as a user makes them
    const workerPasswords = readEnvText(
      execFileSync(path.join(REPO_ROOT, "deploy/scripts/k8s-worker-users.sh"), ["passwords"], { encoding: "utf8" }),
    );
    const manifests = renderKustomization(undefined, (copy) =>
      writeFileSync(
        path.join(copy, "nats-worker-credentials.env"),
        Object.entries(workerPasswords)
          .map(([k, v]) => `${k}=${v}\n`)
          .join(""),
      ),
    );
    const network = await new Network().start();
    const cluster = new ContainerCluster(images, dir, shared, manifests, passwords, workerPasswords, network);
    try {
      await cluster.startNats();
      // the client user receives replies only under its own inbox prefix (as `ringtune` on the host does)
      cluster.client = await connect({
        servers: cluster.natsUrl,
        ...cluster.clientAuth(),
        inboxPrefix: inboxPrefixOf("client"),
      });
      await cluster.startCoordinator();
      for (const w of workers) await cluster.startWorker(w);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  private pod(name: string): ManifestPod {
    const m = this.manifests.find(
      (o) => o.metadata.name === name && (o.kind === "Deployment" || o.kind === "StatefulSet"),
    );
    if (!m) throw new Error(`deploy/k8s renders no workload ${name}`);
    return (m.spec!.template as { spec: ManifestPod }).spec;
  }

  /** A folder with only the TLS files the manifest's Secret volume gives this pod, readable by its user. */
  private tlsFor(name: string): { source: string; target: string } {
    const pod = this.pod(name);
    const volume = pod.volumes.find((v) => v.secret)!;
    const source = path.join(this.dir, `tls-${name}`);
    mkdirSync(source, { recursive: true });
    for (const item of volume.secret!.items!) {
      copyFileSync(path.join(this.dir, "tls", item.key), path.join(source, item.path));
      chmodSync(path.join(source, item.path), 0o444);
    }
    const target = pod.containers[0]!.volumeMounts.find((m) => m.name === volume.name)!.mountPath;
    return { source, target };
  }

  /** The manifest's environment: literal values ($(VAR) expanded), the Secrets' passwords, the pod's own fields. */
  private envFor(name: string, fields: Record<string, string> = {}): Record<string, string> {
    const container = this.pod(name).containers[0]!;
    // envFrom names the workers' Secret only (NATS reads every worker's password)
    const env: Record<string, string> = container.envFrom ? { ...this.workerPasswords } : {};
    for (const e of container.env) {
      const key = e.valueFrom?.secretKeyRef?.key;
      if (e.value !== undefined)
        env[e.name] = e.value.replace(/\$\((\w+)\)/g, (m, v: string) => fields[v] ?? env[v] ?? m);
      else if (key) env[e.name] = this.passwords[key]!;
      else if (fields[e.name] !== undefined) env[e.name] = fields[e.name]!;
    }
    return env;
  }

  /** The manifest's arguments, /shared at this test's shared folder and $(VAR) expanded. */
  private argsFor(name: string, vars: Record<string, string> = {}): string[] {
    return this.pod(name).containers[0]!.args.map((a) =>
      a.replaceAll("/shared", this.shared).replace(/\$\((\w+)\)/g, (_, v: string) => vars[v] ?? ""),
    );
  }

  private ringtuneContainer(
    name: string,
    mounts: { source: string; target: string; mode: "ro" | "rw" }[] = [],
  ): PodContainer {
    const tls = this.tlsFor(name);
    return new PodContainer(this.images.ringtune)
      .withNetwork(this.network)
      .withBindMounts([
        { source: tls.source, target: tls.target, mode: "ro" },
        { source: this.shared, target: this.shared, mode: "rw" },
        ...mounts,
      ])
      .withTmpFs({ "/tmp": "rw,mode=1777" });
  }

  private async startNats(): Promise<void> {
    const config = this.manifests.find((m) => m.kind === "ConfigMap" && m.metadata.name === "nats-config")!;
    const confDir = path.join(this.dir, "nats-config");
    mkdirSync(confDir);
    for (const [file, text] of Object.entries(config.data!)) writeFileSync(path.join(confDir, file), text);
    const pod = this.pod("nats");
    const tls = this.tlsFor("nats");
    const env = this.envFor("nats");
    const confMount = pod.containers[0]!.volumeMounts.find((m) => m.name === "config")!.mountPath;
    this.nats = await new PodContainer(this.images.nats)
      .withNetwork(this.network)
      .withNetworkAliases("nats")
      .withExposedPorts(4222)
      .withEnvironment(env)
      .withCommand(pod.containers[0]!.args)
      .withBindMounts([
        { source: confDir, target: confMount, mode: "ro" },
        { source: tls.source, target: tls.target, mode: "ro" },
      ])
      .withTmpFs({ "/data": "rw,mode=1777" })
      .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
      .withStartupTimeout(60_000)
      .start();
  }

  private async startCoordinator(): Promise<void> {
    this.coordinator = await this.ringtuneContainer("ringtune-coordinator")
      .withNetworkAliases("coordinator")
      .withEnvironment({ ...this.envFor("ringtune-coordinator"), RINGTUNE_CACHE_DIR: path.join(this.shared, "cache") })
      .withCommand(this.argsFor("ringtune-coordinator"))
      .withWaitStrategy(Wait.forLogMessage(/coordinator ready/))
      .withStartupTimeout(90_000)
      .start();
  }

  /**
   * The folder a worker pod's init container fills: its own password, certificate and key alone
   * (deploy/k8s/pick-nats-identity.sh picks them from the workers' Secrets by the pod's name), mounted where the
   * worker container reads them.
   */
  private identityFor(id: string): { source: string; target: string } {
    const source = path.join(this.dir, `identity-${id}`);
    mkdirSync(source, { recursive: true });
    const key = `RINGTUNE_WORKER_PASSWORD_${id.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
    const password = this.workerPasswords[key];
    if (password === undefined) throw new Error(`no NATS user for worker pod ${id} (${key})`);
    writeFileSync(path.join(source, "password"), password);
    copyFileSync(path.join(this.dir, "tls", `worker-${id}.pem`), path.join(source, "cert.pem"));
    copyFileSync(path.join(this.dir, "tls", `worker-${id}-key.pem`), path.join(source, "key.pem"));
    for (const f of ["password", "cert.pem", "key.pem"]) chmodSync(path.join(source, f), 0o444);
    const target = this.pod("ringtune-worker").containers[0]!.volumeMounts.find((m) => m.name === "nats-identity")!;
    return { source, target: target.mountPath };
  }

  /**
   * A worker as the StatefulSet starts one: `id` is its pod name (ringtune-worker-N), which is its worker id,
   * picks its NATS user, and is its address on the network.
   */
  async startWorker(id: string): Promise<void> {
    const fields = { POD_NAME: id, POD_IP: id };
    const identity = this.identityFor(id);
    const worker = await this.ringtuneContainer("ringtune-worker", [{ ...identity, mode: "ro" }])
      .withNetworkAliases(id)
      // its hosts file then knows its own name, as a pod's does: it advertises the address, not the name
      .withHostname(id)
      .withEnvironment(this.envFor("ringtune-worker", fields))
      .withCommand(this.argsFor("ringtune-worker", fields))
      .withWaitStrategy(Wait.forLogMessage(/registered with the coordinator/))
      .withStartupTimeout(90_000)
      .start();
    this.workers.set(id, worker);
  }

  /** SIGKILL, as a node failure or an OOM kill ends a pod: no goodbye to the coordinator or the ring. */
  async killWorker(id: string): Promise<void> {
    await this.workers.get(id)!.stop({ timeout: 0 });
    this.workers.delete(id);
  }

  /** NATS as the host reaches it: the container's published port. */
  get natsUrl(): string {
    return `nats://127.0.0.1:${this.nats!.getMappedPort(4222)}`;
  }

  private clientAuth() {
    const tls = path.join(this.dir, "tls");
    return {
      user: "client",
      pass: this.passwords["client-password"]!,
      tls: {
        caFile: path.join(tls, "ca.pem"),
        certFile: path.join(tls, "client.pem"),
        keyFile: path.join(tls, "client-key.pem"),
      },
    };
  }

  /** `ringtune ARGS` on the host as the client user, over TLS to the container's published port. */
  cli(args: string[], timeoutMs = 60_000): Promise<ProcessResult> {
    const auth = this.clientAuth();
    return runRingtune(args, {
      timeoutMs,
      env: {
        NATS_URL: this.natsUrl,
        NATS_USER: auth.user,
        NATS_PASSWORD: auth.pass,
        NATS_CA: auth.tls.caFile,
        NATS_CERT: auth.tls.certFile,
        NATS_KEY: auth.tls.keyFile,
        RINGTUNE_RUN_DIR: path.join(this.dir, "no-local-cluster"),
      },
    });
  }

  /** A job's record, read from the job store as a client may. */
  async record(id: string): Promise<JobRecordBody | undefined> {
    const kv = await new Kvm(this.client!).open(JOBS_BUCKET);
    const e = await kv.get(id);
    return e && e.operation === "PUT" ? decodeJobRecord(e.value) : undefined;
  }

  /** The coordinator's log lines (JSON) so far. */
  async coordinatorLog(): Promise<Record<string, unknown>[]> {
    const text = await new Promise<string>((resolve, reject) => {
      let out = "";
      this.coordinator!.logs()
        .then((s) => {
          s.on("data", (b: Buffer) => (out += b.toString()));
          s.on("end", () => resolve(out));
          s.on("error", reject);
          // a finished container's log ends by itself; a running one's is read for what is there
          setTimeout(() => {
            s.destroy();
            resolve(out);
          }, 1500);
        })
        .catch(reject);
    });
    return text
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async stop(): Promise<void> {
    await this.client?.close().catch(() => undefined);
    const all = [...this.workers.values(), this.coordinator, this.nats].filter((c) => c !== undefined);
    await Promise.all(all.map((c) => c.stop({ timeout: 2 }).catch(() => undefined)));
    await this.network.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
