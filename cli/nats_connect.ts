// How a ringtune command finds the cluster: --nats URL, else $NATS_URL, else the local default that
// `make cluster-up` starts. A refused connection becomes an error that says how to get a server.
import { connect, errors, type NatsConnection } from "@nats-io/transport-node";
import type { NatsAuth } from "./nats_credentials.js";

export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

export class NoNatsServerError extends Error {
  override name = "NoNatsServerError";
}

/** The server a command talks to: the flag wins over the environment, which wins over the default. */
export function natsUrl(flag?: string): string {
  if (flag) return flag;
  const env = process.env.NATS_URL;
  return env && env.trim() !== "" ? env.trim() : DEFAULT_NATS_URL;
}

/**
 * The first connect is not retried (nats.js fails it at once unless waitOnFirstConnect), so a command
 * run against a cluster that is down says so at once; later drops reconnect, so a long `--wait`
 * survives a server restart. `name` shows in the server's connection list.
 */
export async function connectNats(url: string, auth: NatsAuth, name = "ringtune-cli"): Promise<NatsConnection> {
  try {
    return await connect({ ...auth.options, servers: url, name, timeout: 3_000 });
  } catch (err) {
    const refused = err instanceof errors.ConnectionError || (err as { code?: string }).code === "ECONNREFUSED";
    if (refused || err instanceof errors.TimeoutError) {
      throw new NoNatsServerError(`no NATS server at ${url}: start a cluster with 'make cluster-up' or set NATS_URL`, {
        cause: err,
      });
    }
    if (err instanceof errors.AuthorizationError)
      throw new Error(`NATS at ${url} refused the credentials (${auth.described})`, { cause: err });
    throw err;
  }
}

/** Runs `body` with a connection and always closes it, so a command's process can exit. */
export async function withNats<T>(url: string, auth: NatsAuth, body: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectNats(url, auth);
  try {
    return await body(nc);
  } finally {
    await nc.close().catch(() => {});
  }
}
