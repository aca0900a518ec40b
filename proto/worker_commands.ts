// The coordinator's commands to one worker during a job: each command's request and reply schema in one
// table, so both ends derive their types from it and neither lists message types of its own.
import type { z } from "zod";
import { decodeMessage, encodeMessage, type Body, type Message, type MessageType } from "./codec.js";
import {
  DataPlaneProbe,
  DataPlaneProbeReply,
  EvalStep,
  EvalStepReply,
  Generate,
  GenerateReply,
  JobAssign,
  JobAssignReply,
  JobRelease,
  JobReleaseReply,
  SaveModel,
  SaveModelReply,
  TrainStep,
  TrainStepReply,
} from "./training.js";

export const workerCommands = {
  assign: { request: JobAssign, reply: JobAssignReply },
  step: { request: TrainStep, reply: TrainStepReply },
  eval: { request: EvalStep, reply: EvalStepReply },
  generate: { request: Generate, reply: GenerateReply },
  save: { request: SaveModel, reply: SaveModelReply },
  release: { request: JobRelease, reply: JobReleaseReply },
  data_plane: { request: DataPlaneProbe, reply: DataPlaneProbeReply },
} as const;

export type WorkerCommand = keyof typeof workerCommands;

export function isWorkerCommand(name: string): name is WorkerCommand {
  return Object.hasOwn(workerCommands, name);
}

/** What the coordinator sends for command C. */
export type CommandRequest<C extends WorkerCommand> = Body<(typeof workerCommands)[C]["request"]>;
/** The worker's decoded reply to command C. */
export type CommandReply<C extends WorkerCommand> = Message<(typeof workerCommands)[C]["reply"]>;
/** A reply's own fields: a worker fills these; `ok` and `error` are added when it is encoded. */
export type CommandResult<C extends WorkerCommand> = Omit<Body<(typeof workerCommands)[C]["reply"]>, "ok" | "error">;

// TypeScript cannot follow a generic C through the table lookup, so the four codecs below widen the
// schema once; the signatures keep request and reply tied to the command.
type AnyMessageType = MessageType<z.ZodRawShape>;
type AnyBody = Body<AnyMessageType>;

export function encodeCommandRequest<C extends WorkerCommand>(command: C, body: CommandRequest<C>): Uint8Array {
  return encodeMessage(workerCommands[command].request as AnyMessageType, body as AnyBody);
}

export function decodeCommandRequest<C extends WorkerCommand>(command: C, bytes: Uint8Array): CommandRequest<C> {
  return decodeMessage(workerCommands[command].request as AnyMessageType, bytes) as unknown as CommandRequest<C>;
}

/** `ok: true` with the handler's result, or `ok: false` with the error. */
export function encodeCommandReply<C extends WorkerCommand>(
  command: C,
  reply: ({ ok: true } & CommandResult<C>) | { ok: false; error: string },
): Uint8Array {
  return encodeMessage(workerCommands[command].reply as AnyMessageType, reply as AnyBody);
}

export function decodeCommandReply<C extends WorkerCommand>(command: C, bytes: Uint8Array): CommandReply<C> {
  return decodeMessage(workerCommands[command].reply as AnyMessageType, bytes) as CommandReply<C>;
}
