// Fault injection for the process fault tests: RINGTUNE_FAILPOINT=COMMAND:SIGNAL[@N] makes a worker send
// itself SIGNAL as it begins its N-th COMMAND (the first by default). "save:SIGKILL" dies as a checkpoint
// write begins; "save:SIGSTOP@4" hangs in the fourth save. The variable is read once; unset, nothing happens.
import type { WorkerCommand } from "../proto/mod.js";

const SIGNALS = ["SIGKILL", "SIGSTOP", "SIGTERM"] as const;

interface Failpoint {
  command: string;
  signal: (typeof SIGNALS)[number];
  nth: number;
}

/** The failpoint `spec` describes; throws naming the variable when it is malformed. */
export function parseFailpoint(spec: string | undefined): Failpoint | undefined {
  if (spec === undefined || spec === "") return undefined;
  const m = /^([a-z]+):([A-Z]+)(?:@(\d+))?$/.exec(spec);
  const signal = m?.[2] as Failpoint["signal"] | undefined;
  if (!m || !SIGNALS.includes(signal!) || (m[3] !== undefined && Number(m[3]) < 1))
    throw new Error(
      `RINGTUNE_FAILPOINT: expected COMMAND:SIGNAL[@N] with SIGNAL one of ${SIGNALS.join(", ")} and N >= 1, got '${spec}'`,
    );
  return { command: m[1]!, signal: signal!, nth: m[3] === undefined ? 1 : Number(m[3]) };
}

const failpoint = parseFailpoint(process.env.RINGTUNE_FAILPOINT);
let seen = 0;

/** Called as each command begins: signals this process when the failpoint's command comes round. */
export function failpointAt(command: WorkerCommand): void {
  if (!failpoint || failpoint.command !== command) return;
  if (++seen === failpoint.nth) process.kill(process.pid, failpoint.signal);
}
