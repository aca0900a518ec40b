// `ringtune cluster status`: the workers the coordinator knows, their device, state and job.
import type { Command } from "../args.js";
import { parseFlags } from "../args.js";
import { clusterStatus, type ClusterStatus } from "../job_client.js";
import { natsUrl, withNats } from "../nats_connect.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";
import { formatTable } from "../table.js";

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(0)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`;
}

export function formatClusterStatus(s: ClusterStatus): string {
  const lines: string[] = [];
  if (s.workers.length === 0) lines.push("no workers registered ('make cluster-up' starts some)");
  else
    lines.push(
      formatTable(
        ["WORKER", "HOST", "DEVICE", "CORES", "MEMORY", "STATE", "JOB", "SEEN"],
        s.workers.map((w) => [
          w.worker_id,
          w.host,
          `${w.device.kind} ${w.device.name}`,
          String(w.device.cores),
          formatBytes(w.device.memory_bytes),
          w.state,
          w.job ?? "-",
          `${(w.last_seen_ms_ago / 1000).toFixed(1)}s ago`,
        ]),
      ),
    );
  lines.push(`jobs running: ${s.jobs_running.length ? s.jobs_running.join(", ") : "none"}`);
  return lines.join("\n");
}

export const clusterStatusCommand: Command = {
  name: "cluster status",
  summary: "the coordinator's workers: device, state, job",
  usage: "usage: ringtune cluster status [--json] [--nats URL]" + "\n" + NATS_CREDENTIAL_USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, {
      json: { type: "boolean" },
      nats: { type: "string" },
      ...natsCredentialFlags,
    });
    const s = await withNats(natsUrl(values.nats), natsAuth(values, "client"), (nc) => clusterStatus(nc));
    console.log(values.json ? JSON.stringify(s) : formatClusterStatus(s));
    return 0;
  },
};
