// LLaMA-Factory data folders: `dataset_info.json` names each dataset's file (or folder of files), its
// formatting (alpaca, sharegpt or openai) and its column and tag names. `resolveDatasets` turns the names a job
// asks for into ordinary data sources, so a LLaMA-Factory user's folder works as it is; `ranking: true`
// entries (preference pairs) become ranking sources for `stage: dpo`. What ringtune cannot train on (KTO
// labels, images, datasets fetched from a hub) is refused by name rather than read half-way.
import { listInputFolder, readRegularFile } from "../../files/input_files.js";
import path from "node:path";
import { columnsSchema, tagsSchema, type Columns, type Tags } from "./llamafactory_columns.js";
import { DATA_FILE_EXTENSIONS } from "../readers/read.js";

export const DATASET_INFO = "dataset_info.json";

export class DatasetInfoError extends Error {
  override name = "DatasetInfoError";
}

/** One data source a dataset entry resolves to (a folder entry gives one per file). */
export interface ResolvedDataset {
  path: string;
  format: "alpaca" | "sharegpt" | "openai";
  columns: Columns;
  tags?: Tags;
  /** preference pairs (chosen/rejected) */
  ranking: boolean;
}

/** Keys of an entry that ringtune reads (the rest are refused below, by name, with the reason). */
const READ_KEYS = new Set(["file_name", "formatting", "columns", "tags", "ranking", "split", "file_sha1"]);

const REFUSED_KEYS: Record<string, string> = {
  hf_hub_url: "datasets on the Hugging Face hub are not fetched: download it and name the file in file_name",
  ms_hub_url: "datasets on ModelScope are not fetched: download it and name the file in file_name",
  om_hub_url: "datasets on Modelers are not fetched: download it and name the file in file_name",
  script_url: "dataset loading scripts are not run: convert the data to JSON, JSONL, .txt or .parquet",
  cloud_file_name: "cloud files are not fetched: download it and name the file in file_name",
  subset: "subsets belong to hub datasets; name a local file in file_name",
  folder: "hub folders are not fetched; name a local file or folder in file_name",
  num_samples: "sampling a dataset is not supported: cut the file, or weight the source in `data`",
};

const RANKING_COLUMNS = new Set(["chosen", "rejected"]);

const REFUSED_COLUMNS: Record<string, string> = {
  kto_tag: "KTO data is for KTO training, which ringtune does not do",
  images: "images are not supported: ringtune trains text-only models",
  videos: "videos are not supported: ringtune trains text-only models",
  audios: "audio is not supported: ringtune trains text-only models",
};

/** Why a path may not be read (it leads out of the allowed folders), or undefined when it may. */
export type Confine = (file: string) => string | undefined;

/**
 * `names`: "a,b" or a list, as LLaMA-Factory's `dataset` takes them. `confine` is asked about
 * dataset_info.json and every file or folder it names before that is read, listed or even looked at.
 */
export function resolveDatasets(
  datasetDir: string,
  names: string | string[],
  confine: Confine = () => undefined,
): ResolvedDataset[] {
  const infoFile = path.join(datasetDir, DATASET_INFO);
  // LLaMA-Factory's special dataset_dir values that fetch from a hub instead of reading a folder
  if (path.basename(datasetDir) === "ONLINE" || datasetDir.includes("REMOTE:"))
    throw new DatasetInfoError(`dataset_dir ${datasetDir}: hub datasets are not fetched; download them into a folder`);
  const outside = confine(infoFile);
  if (outside) throw new DatasetInfoError(outside);
  let text: string;
  try {
    text = readRegularFile(infoFile);
  } catch (err) {
    throw new DatasetInfoError(`${infoFile}: ${(err as Error).message}`);
  }
  let info: unknown;
  try {
    info = JSON.parse(text);
  } catch (err) {
    // Only where it broke: the parser's message quotes the text, which a refusal never echoes.
    const at = /position (\d+)/.exec((err as Error).message);
    throw new DatasetInfoError(`${infoFile}: not valid JSON${at ? ` (at byte ${at[1]})` : ""}`);
  }
  if (typeof info !== "object" || info === null || Array.isArray(info))
    throw new DatasetInfoError(`${infoFile}: expected an object of dataset entries`);
  const list = (Array.isArray(names) ? names : names.split(",")).map((n) => n.trim()).filter((n) => n !== "");
  const out: ResolvedDataset[] = [];
  for (const name of list) {
    const entry = (info as Record<string, unknown>)[name];
    if (entry === undefined)
      throw new DatasetInfoError(
        `${infoFile}: no dataset '${name}' (it has: ${Object.keys(info).join(", ") || "none"})`,
      );
    out.push(...resolveEntry(datasetDir, entry, `${infoFile}: dataset '${name}'`, confine));
  }
  return out;
}

function resolveEntry(datasetDir: string, entry: unknown, where: string, confine: Confine): ResolvedDataset[] {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry))
    throw new DatasetInfoError(`${where}: expected an object`);
  const e = entry as Record<string, unknown>;
  for (const key of Object.keys(e)) {
    if (REFUSED_KEYS[key]) throw new DatasetInfoError(`${where}: '${key}' is not supported: ${REFUSED_KEYS[key]}`);
    if (!READ_KEYS.has(key)) throw new DatasetInfoError(`${where}: unknown key '${key}'`);
  }
  if (e.ranking !== undefined && typeof e.ranking !== "boolean")
    throw new DatasetInfoError(`${where}: 'ranking' must be true or false`);
  const ranking = e.ranking === true;
  if (e.split !== undefined && e.split !== "train")
    throw new DatasetInfoError(`${where}: split '${String(e.split)}' is not supported: local files have only 'train'`);
  const formatting = e.formatting ?? "alpaca";
  if (formatting !== "alpaca" && formatting !== "sharegpt" && formatting !== "openai")
    throw new DatasetInfoError(
      `${where}: formatting '${String(formatting)}' is not supported (alpaca, sharegpt or openai)`,
    );
  if (e.columns !== undefined && typeof e.columns === "object" && e.columns !== null)
    for (const column of Object.keys(e.columns))
      if (REFUSED_COLUMNS[column])
        throw new DatasetInfoError(`${where}: column '${column}' is not supported: ${REFUSED_COLUMNS[column]}`);
      else if (RANKING_COLUMNS.has(column) && !ranking)
        throw new DatasetInfoError(`${where}: column '${column}' is for preference data: add 'ranking: true'`);
  const columns = columnsSchema.safeParse(e.columns ?? {});
  if (!columns.success) throw new DatasetInfoError(`${where}: columns: ${columns.error.issues[0].message}`);
  const tags = tagsSchema.safeParse(e.tags ?? {});
  if (!tags.success) throw new DatasetInfoError(`${where}: tags: ${tags.error.issues[0].message}`);
  if (e.tags !== undefined && formatting === "alpaca")
    throw new DatasetInfoError(`${where}: 'tags' are for formatting: sharegpt or openai`);
  if (typeof e.file_name !== "string" || e.file_name === "")
    throw new DatasetInfoError(`${where}: 'file_name' is missing`);
  const target = path.resolve(datasetDir, e.file_name);
  const outside = confine(target);
  if (outside) throw new DatasetInfoError(`${where}: file_name: ${outside}`);
  const files = dataFiles(target, where);
  return files.map((file) => ({
    path: file,
    format: formatting,
    columns: columns.data,
    tags: e.tags === undefined ? undefined : tags.data,
    ranking,
  }));
}

/** A file, or every data file in a folder (sorted by name, as LLaMA-Factory loads a folder). */
function dataFiles(target: string, where: string): string[] {
  let entries;
  try {
    entries = listInputFolder(target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR") return [target];
    if (code === "ENOENT") throw new DatasetInfoError(`${where}: file_name: ${target} does not exist`);
    throw new DatasetInfoError(`${where}: file_name: ${(err as Error).message}`);
  }
  const files = entries
    .map((e) => e.name)
    .filter((f) => DATA_FILE_EXTENSIONS.some((ext) => f.endsWith(ext)))
    .map((f) => path.join(target, f));
  if (files.length === 0)
    throw new DatasetInfoError(`${where}: folder ${target} has no data file (${DATA_FILE_EXTENSIONS.join(", ")})`);
  return files;
}
