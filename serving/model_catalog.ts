// What a server answers for: its base model under one name and any number of PEFT adapters under theirs
// (the `model` field of a request names one, as vLLM does), loaded at start or while serving and
// unloaded again. The base weights exist once; an adapter adds only its A and B matrices.
import type { TextSetup } from "../spec/text_setup.js";
import { chatStopIds } from "../text/stop_ids.js";
import type { BatchedDecoder, NativeModel } from "../native/js/addon.js";
import { loadAdapter } from "../hf/peft_adapter.js";
import { badRequest, ServeError, unknownModel } from "./errors.js";
import { baseTextChoice, recordedTextChoice, textSetupFor, type TextChoice } from "./text_setup.js";

export interface ServedModel {
  name: string;
  /** the decoder's adapter id; -1 for the base */
  adapterId: number;
  /** the adapter folder, null for the base */
  adapterDir: string | null;
  rank: number | null;
  setup: TextSetup;
  /** the template, its options and the tokenizer, and where they were found */
  choice: TextChoice;
  /** what ends an answer to a chat, as in the generation eval: the model's EOS ids, the tokenizer's EOS and the template's end of turn */
  chatStopIds: ReadonlySet<number>;
  /** what ends a plain completion: the model's EOS ids, as `ringtune generate` stops */
  completionStopIds: ReadonlySet<number>;
  /** seconds since the epoch, when it was loaded */
  created: number;
}

export interface BaseModel {
  name: string;
  dir: string;
  model: NativeModel;
  /** EOS ids from generation_config.json, else config.json */
  eosIds: readonly number[];
  vocabSize: number;
  /** the template for the base and for adapters whose job recorded none */
  choice: TextChoice;
}

type Change = { type: "loaded" | "unloaded"; model: ServedModel };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

export class ModelCatalog {
  private readonly models = new Map<string, ServedModel>();
  /** names being loaded: a second load of the same name is refused, not raced */
  private readonly loading = new Set<string>();
  private nextAdapterId = 0;
  private readonly listeners: ((c: Change) => void)[] = [];

  constructor(
    readonly base: BaseModel,
    private readonly decoder: BatchedDecoder,
  ) {
    if (!NAME.test(base.name)) throw new Error(`served model name '${base.name}' must match ${NAME}`);
    this.models.set(base.name, this.served(base.name, -1, null, null, base.choice));
  }

  /** the served model a request names; unknown names are a 404 that lists what is served */
  get(name: unknown): ServedModel {
    if (typeof name !== "string" || name === "") throw badRequest("model must be a non-empty string", "model");
    const m = this.models.get(name);
    if (!m) throw unknownModel(name, [...this.models.keys()]);
    return m;
  }

  list(): ServedModel[] {
    return [...this.models.values()];
  }

  onChange(listener: (c: Change) => void): void {
    this.listeners.push(listener);
  }

  /** Loads the PEFT adapter folder `dir` as `name`; its job's recorded template, else the base's. */
  async load(name: string, dir: string): Promise<ServedModel> {
    if (!NAME.test(name)) throw badRequest(`adapter name '${name}' must match ${NAME}`, "lora_name");
    if (this.models.has(name) || this.loading.has(name))
      throw badRequest(`a model named '${name}' is already loaded; unload it first`, "lora_name", "adapter_exists");
    this.loading.add(name);
    try {
      let adapter, choice;
      try {
        adapter = await loadAdapter(dir, this.base.model.params());
        choice = recordedTextChoice(dir) ?? this.base.choice;
      } catch (err) {
        throw new ServeError(
          400,
          "invalid_request_error",
          `adapter '${name}': ${(err as Error).message}`,
          "lora_path",
          "bad_adapter",
          { cause: err },
        );
      }
      const id = this.nextAdapterId++;
      const { params, data } = this.decoder.addAdapter(id, adapter.settings);
      let served: ServedModel;
      try {
        for (const p of params) {
          const t = adapter.tensors.get(p.name);
          if (!t || t.data.length !== p.size)
            throw new Error(`adapter '${name}': tensor ${p.name} does not fit the decoder's table`);
          data.set(t.data, p.offset);
        }
        served = this.served(name, id, dir, adapter.settings.rank, choice);
      } catch (err) {
        this.decoder.removeAdapter(id);
        throw err;
      }
      this.models.set(name, served);
      for (const l of this.listeners) l({ type: "loaded", model: served });
      return served;
    } finally {
      this.loading.delete(name);
    }
  }

  /** Unloads adapter `name`; requests already running on it finish on the weights they started with. */
  unload(name: string): void {
    const m = this.get(name);
    if (m.adapterId < 0) throw badRequest(`'${name}' is the base model, which cannot be unloaded`, "lora_name");
    this.models.delete(name);
    this.decoder.removeAdapter(m.adapterId);
    for (const l of this.listeners) l({ type: "unloaded", model: m });
  }

  private served(
    name: string,
    adapterId: number,
    dir: string | null,
    rank: number | null,
    choice: TextChoice,
  ): ServedModel {
    const setup = textSetupFor(this.base.dir, choice);
    const completionStopIds = new Set(this.base.eosIds);
    return {
      name,
      adapterId,
      adapterDir: dir,
      rank,
      setup,
      choice,
      chatStopIds: new Set(chatStopIds(setup, this.base.eosIds)),
      completionStopIds,
      created: Math.floor(Date.now() / 1000),
    };
  }
}

export { baseTextChoice };
