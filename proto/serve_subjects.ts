// The serving subjects. A request names its model in the subject, so NATS delivers it only to servers
// that hold that model, and servers of one model share a queue group, so replicas share the load.
// Bodies are OpenAI's request and response JSON; a streamed reply is one message per chunk on the
// request's reply subject, closed by an empty message.

const ROOT = "ringtune.serve";

/** Replicas of one model answer in turn: each request goes to one member of this group. */
export const SERVE_QUEUE = "ringtune-serve";

/** A model name as one subject token: characters NATS gives meaning to (and any other) become '_'. */
export function modelToken(model: string): string {
  if (model === "") throw new RangeError("a served model name cannot be empty");
  return model.replace(/[^A-Za-z0-9_-]/g, "_");
}

export const serveSubjects = {
  /** request/reply: an OpenAI chat completion request for `model` */
  chat: (model: string) => `${ROOT}.${modelToken(model)}.chat`,
  /** request/reply: an OpenAI completion request for `model` */
  completions: (model: string) => `${ROOT}.${modelToken(model)}.completions`,
  /** request/reply, every server of base `base`: {lora_name, lora_path}, as vLLM's load_lora_adapter */
  loadAdapter: (base: string) => `${ROOT}.${modelToken(base)}.load_adapter`,
  /** request/reply, every server of base `base`: {lora_name} */
  unloadAdapter: (base: string) => `${ROOT}.${modelToken(base)}.unload_adapter`,
  /** request/reply, every server: the models it serves ({object: "list", data}) */
  models: `${ROOT}.models`,
  /**
   * publish, every server: {reply} names the reply subject of a running request (streamed or not); the
   * server generating it stops before its next step and closes the stream.
   */
  cancel: `${ROOT}.cancel`,
  /**
   * One serving worker's own subjects (no queue group), where the coordinator forwards the requests it
   * routes to that worker: chat, completions, load_adapter and unload_adapter, with the model in the body.
   */
  node: (workerId: string, op: NodeOp) => `${ROOT}.node.${modelToken(workerId)}.${op}`,
} as const;

export const NODE_OPS = ["chat", "completions", "load_adapter", "unload_adapter"] as const;
export type NodeOp = (typeof NODE_OPS)[number];
