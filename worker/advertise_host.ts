// The address a worker gives its ring neighbours. A name given as --advertise-host is resolved here, once,
// at start, and neighbours get the address: each of them would otherwise look the name up in its own DNS at
// every ring formation, and a cluster DNS that is slow to learn a new pod's name fails the ring where the
// worker's own lookup (its hosts file knows its own name) succeeds.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "pino";

/** how long a worker waits at start for its own name to resolve */
export const ADVERTISE_LOOKUP_TIMEOUT_MS = 60_000;

export async function resolveAdvertiseHost(
  host: string,
  log: Logger,
  timeoutMs = ADVERTISE_LOOKUP_TIMEOUT_MS,
): Promise<string> {
  if (isIP(host)) return host;
  const until = Date.now() + timeoutMs;
  let pause = 100;
  for (;;) {
    try {
      const { address } = await lookup(host);
      log.info({ advertise_host: host, address }, "advertising the data-plane address this host name resolves to");
      return address;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const transient = code === "ENOTFOUND" || code === "EAI_AGAIN";
      if (!transient || Date.now() + pause > until)
        throw new Error(
          `--advertise-host ${host}: does not resolve on this worker (${code ?? (err as Error).message})` +
            (transient ? ` within ${Math.round(timeoutMs / 1000)} s` : ""),
          { cause: err },
        );
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 2_000);
    }
  }
}
