// Reads a job file (YAML or JSON), validates it, and resolves its paths against the file's folder.
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { DatasetInfoError, resolveDatasets } from "../text/formats/dataset_info.js";
import { jobSpecSchema, type DataSource, type JobSpec } from "./job_spec.js";

export class SpecError extends Error {
  override name = "SpecError";
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

export function parseSpec(value: unknown, where: string, baseDir: string): JobSpec {
  const r = jobSpecSchema.safeParse(value);
  if (!r.success)
    throw new SpecError(`${where}: invalid job spec:\n  ${formatSpecIssues(r.error.issues).join("\n  ")}`);
  const spec = withLlamaFactoryDatasets(resolvePaths(r.data, baseDir), where);
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
function withLlamaFactoryDatasets(spec: JobSpec, where: string): JobSpec {
  if (spec.dataset === undefined || spec.dataset_dir === undefined) return spec;
  let resolved;
  try {
    resolved = resolveDatasets(spec.dataset_dir, spec.dataset);
  } catch (err) {
    if (err instanceof DatasetInfoError) throw new SpecError(`${where}: dataset: ${err.message}`);
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
