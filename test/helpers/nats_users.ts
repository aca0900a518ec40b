// A nats-server with the cluster's users, as `make cluster-up` starts it: deploy/nats/auth.conf, which reads
// each role's password from the environment. Each start makes fresh passwords (starting with a letter:
// nats-server would read a leading digit as a number).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startNatsServer, type NatsServer, type NatsServerOptions } from "./nats_server.js";
import { REPO_ROOT } from "./processes.js";

export type Role = "coordinator" | "worker" | "client" | "serve";

export interface NatsWithUsers {
  server: NatsServer;
  passwords: Record<Role, string>;
  /** A role's credentials, as the coordinator, workers and clients take them. */
  as(role: Role): { user: Role; pass: string };
}

export async function startNatsServerWithUsers(options: NatsServerOptions = {}): Promise<NatsWithUsers> {
  const password = () => "p" + randomBytes(12).toString("hex");
  const passwords = { coordinator: password(), worker: password(), client: password(), serve: password() };
  for (const [role, pass] of Object.entries(passwords)) process.env[`RINGTUNE_${role.toUpperCase()}_PASSWORD`] = pass;
  const auth = readFileSync(path.join(REPO_ROOT, "deploy/nats/auth.conf"), "utf8");
  const server = await startNatsServer({ ...options, config: [auth, ...(options.config ?? [])] });
  return { server, passwords, as: (role) => ({ user: role, pass: passwords[role] }) };
}
