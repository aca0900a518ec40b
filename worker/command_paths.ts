// The paths in the coordinator's commands, checked against the worker's own roots before anything is read
// or written: a worker reads models, configs, checkpoints and adapters only under its data or output roots
// and writes only under its output roots, so a command (a forged one, or a coordinator set up with wider
// roots) cannot make it touch files elsewhere with its rights. Refusals name the command's field.
import { outsideRoots, type PathRoots } from "../files/path_roots.js";
import type { CommandRequest } from "../proto/mod.js";

export class CommandPathError extends Error {
  override name = "CommandPathError";
}

function refuse(field: string, why: string | undefined): void {
  if (why) throw new CommandPathError(`${field}: ${why}`);
}

/** The weights, config, checkpoint and adapter an assign names: inputs, under the data or output roots. */
export function checkAssignPaths(m: CommandRequest<"assign">, roots: PathRoots): void {
  const readable = [...roots.data, ...roots.output];
  const inputs: [string, string | undefined][] = [
    ["model.path", m.model.path],
    ["model.init.config", m.model.init?.config],
    ["model.resume", m.model.resume],
    ["model.adapter", m.model.adapter],
  ];
  for (const [field, file] of inputs)
    if (file !== undefined) refuse(field, outsideRoots(file, readable, "data", "worker"));
}

/** The folder a save writes: an output, under the output roots. */
export function checkSavePath(m: CommandRequest<"save">, roots: PathRoots): void {
  refuse("dir", outsideRoots(m.dir, roots.output, "output", "worker"));
}
