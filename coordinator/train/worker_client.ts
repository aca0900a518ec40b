// Request/reply to one worker: encodes the command, waits for the reply, turns a refusal into an Error
// that names the worker and the command.
import type { NatsConnection } from "@nats-io/transport-node";
import {
  decodeCommandReply,
  encodeCommandRequest,
  jobSubjects,
  type CommandReply,
  type CommandRequest,
  type WorkerCommand,
} from "../../proto/mod.js";

export class WorkerCommandError extends Error {
  override name = "WorkerCommandError";
  constructor(
    message: string,
    /** the worker, and whether it did not answer at all (gone) rather than answered with an error */
    readonly worker: string,
    readonly unanswered: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A worker of the job stopped sending heartbeats while the job ran. */
export class WorkerLostError extends Error {
  override name = "WorkerLostError";
  constructor(
    message: string,
    /** the worker that went silent */
    readonly worker?: string,
  ) {
    super(message);
  }
}

/** The connection to NATS dropped while the job ran: replies in flight are lost, nobody is at fault. */
export class NatsOutageError extends Error {
  override name = "NatsOutageError";
}

/** Sends `cmd` to `worker`; request and reply types follow from the command (proto's workerCommands). */
export async function command<C extends WorkerCommand>(
  nc: NatsConnection,
  worker: string,
  cmd: C,
  body: CommandRequest<C>,
  timeoutMs: number,
): Promise<CommandReply<C>> {
  const payload = encodeCommandRequest(cmd, body);
  const limit = nc.info?.max_payload;
  if (limit !== undefined && payload.length > limit) {
    throw new Error(
      `'${cmd}' for worker ${worker} is ${payload.length} bytes, over the NATS server's max_payload of ${limit}: ` +
        `raise max_payload (deploy/nats/nats-server.conf sets 8MB) or lower micro/global batch rows`,
    );
  }
  let data: Uint8Array;
  try {
    data = (await nc.request(jobSubjects.workerCommand(worker, cmd), payload, { timeout: timeoutMs })).data;
  } catch (err) {
    throw new WorkerCommandError(`worker ${worker} did not answer '${cmd}' (${(err as Error).message})`, worker, true, {
      cause: err,
    });
  }
  const reply = decodeCommandReply(cmd, data);
  if (reply.ok === false)
    throw new WorkerCommandError(`worker ${worker}: ${cmd}: ${reply.error ?? "failed"}`, worker, false);
  return reply;
}
