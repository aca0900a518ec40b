// A nats-server with the cluster's users, as `make cluster-up` starts it: deploy/nats/auth.conf with one
// user per worker added by cluster_lib.sh's render_auth_conf (the very function cluster-up uses), each role's
// and each worker's password read from the environment. Each start makes fresh passwords (starting with a
// letter: nats-server would read a leading digit as a number).
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { inboxPrefixOf } from "../../cli/nats_credentials.js";
import { startNatsServer, type NatsServer, type NatsServerOptions } from "./nats_server.js";
import { REPO_ROOT } from "./processes.js";

export type Role = "coordinator" | "client" | "serve";

/** What a connection under one user takes: its credentials and the inbox prefix its permissions allow. */
export interface UserCredentials {
  user: string;
  pass: string;
  inboxPrefix: string;
}

export interface NatsWithUsers {
  server: NatsServer;
  passwords: Record<Role, string>;
  /** A role's credentials, as the coordinator and clients take them. */
  as(role: Role): UserCredentials;
  /** One worker's own credentials (its id among `workerIds`). */
  asWorker(id: string): UserCredentials;
}

/** The flags a `ringtune` process takes for these credentials. */
export function credentialFlags(c: UserCredentials): string[] {
  return ["--user", c.user, "--password", c.pass, "--inbox-prefix", c.inboxPrefix];
}

/** The cluster's auth.conf with a user per worker, rendered by cluster_lib.sh. */
export function renderAuthConf(workerIds: string[]): string {
  const lib = path.join(REPO_ROOT, "deploy/scripts/cluster_lib.sh");
  const r = spawnSync("bash", ["-c", `source "${lib}" && render_auth_conf "$@"`, "render", ...workerIds], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`render_auth_conf failed: ${r.stderr}`);
  return r.stdout;
}

/** The variable render_auth_conf names a worker's password by. */
export function workerPasswordVar(id: string): string {
  return `RINGTUNE_WORKER_PASSWORD_${id.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export async function startNatsServerWithUsers(
  options: NatsServerOptions & { workerIds?: string[] } = {},
): Promise<NatsWithUsers> {
  const password = () => "p" + randomBytes(12).toString("hex");
  const passwords = { coordinator: password(), client: password(), serve: password() };
  for (const [role, pass] of Object.entries(passwords)) process.env[`RINGTUNE_${role.toUpperCase()}_PASSWORD`] = pass;
  const workerIds = options.workerIds ?? ["w0", "w1"];
  const workerPasswords = new Map(workerIds.map((id) => [id, password()]));
  for (const [id, pass] of workerPasswords) process.env[workerPasswordVar(id)] = pass;
  const server = await startNatsServer({ ...options, config: [renderAuthConf(workerIds), ...(options.config ?? [])] });
  const credentials = (user: string, pass: string) => ({ user, pass, inboxPrefix: inboxPrefixOf(user) });
  return {
    server,
    passwords,
    as: (role) => credentials(role, passwords[role]),
    asWorker: (id) => {
      const pass = workerPasswords.get(id);
      if (!pass) throw new Error(`no NATS user for worker ${id} (workerIds: ${workerIds.join(", ")})`);
      return credentials(`worker-${id}`, pass);
    },
  };
}
