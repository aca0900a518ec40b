// Reads a job file (YAML or JSON), validates it, and resolves its paths against the file's folder.
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { DatasetInfoError, resolveDatasets } from "../text/formats/dataset_info.js";
import { jobSpecSchema, type DataSource, type JobSpec } from "./job_spec.js";
import { outsideRoots, type PathRoots } from "../files/path_roots.js";

export class SpecError extends Error {
  override name = "SpecError";
  constructor(
    message: string,
    /** the spec key at fault, when one is */
    readonly key: string | null = null,
  ) {
    super(message);
  }
}

/** Every zod issue as `where: what`, unknown keys named. */
export function formatSpecIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((i) => {
    const where = i.path.length
      ? i.path
          .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
          .join("")
          .replace(/^\./, "")
      : "(top level)";
    if (i.code === "unrecognized_keys")
      return `${where}: unknown key${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => `'${k}'`).join(", ")}`;
    return `${where}: ${i.message}`;
  });
}

/**
 * The spec validated, its paths resolved against `baseDir` and its LLaMA-Factory datasets read. With `roots`
 * (the coordinator's), `dataset_dir`, its dataset_info.json and every file it names are confined to them
 * before anything there is read.
 */
export function parseSpec(value: unknown, where: string, baseDir: string, roots?: PathRoots): JobSpec {
  const r = jobSpecSchema.safeParse(value);
  if (!r.success)
    throw new SpecError(`${where}: invalid job spec:\n  ${formatSpecIssues(r.error.issues).join("\n  ")}`);
  const spec = withLlamaFactoryDatasets(resolvePaths(r.data, baseDir), where, roots);
  if (spec.stage !== "dpo") {
    const i = spec.data.findIndex((d) => d.ranking);
    if (i >= 0)
      throw new SpecError(
        `${where}: data[${i}] (${path.basename(spec.data[i].path)}): ranking data (chosen/rejected pairs) needs stage: dpo`,
      );
  }
  return spec;
}

/** `dataset` names resolved through `dataset_dir`'s dataset_info.json into entries of `data`. */
function withLlamaFactoryDatasets(spec: JobSpec, where: string, roots: PathRoots | undefined): JobSpec {
  if (spec.dataset === undefined || spec.dataset_dir === undefined) return spec;
  const confine = (file: string) => roots && outsideRoots(file, [...roots.data, ...roots.output], "data");
  const outside = confine(spec.dataset_dir);
  if (outside) throw new SpecError(`${where}: dataset_dir: ${outside}`, "dataset_dir");
  let resolved;
  try {
    resolved = resolveDatasets(spec.dataset_dir, spec.dataset, confine);
  } catch (err) {
    if (err instanceof DatasetInfoError) throw new SpecError(`${where}: dataset: ${err.message}`, "dataset");
    throw err;
  }
  const sources: DataSource[] = resolved.map((d) => ({ ...d, epochs: 1, text_split: "line" }));
  return { ...spec, data: [...spec.data, ...sources] };
}

export function loadSpec(file: string): JobSpec {
  const text = readFileSync(file, "utf8");
  let value: unknown;
  try {
    value = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new SpecError(`${file}: ${(err as Error).message}`);
  }
  return parseSpec(value, file, path.dirname(path.resolve(file)));
}

function resolvePaths(spec: JobSpec, baseDir: string): JobSpec {
  const abs = (p: string) => path.resolve(baseDir, p);
  return {
    ...spec,
    model: {
      ...spec.model,
      path: spec.model.path && abs(spec.model.path),
      init: spec.model.init && { ...spec.model.init, config: abs(spec.model.init.config) },
      adapter: spec.model.adapter && abs(spec.model.adapter),
    },
    tokenizer: spec.tokenizer === undefined || spec.tokenizer === "byte" ? spec.tokenizer : abs(spec.tokenizer),
    data: spec.data.map((d) => ({ ...d, path: abs(d.path) })),
    // LLaMA-Factory reads `data/` under where it runs; a job file stands in for that place
    dataset_dir: spec.dataset === undefined ? spec.dataset_dir : abs(spec.dataset_dir ?? "data"),
    cache_dir: spec.cache_dir && abs(spec.cache_dir),
    output: spec.output && abs(spec.output),
    resume_from: spec.resume_from && abs(spec.resume_from),
    generation_eval: spec.generation_eval && { ...spec.generation_eval, path: abs(spec.generation_eval.path) },
  };
}
