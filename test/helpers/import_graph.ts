// Which top-level folders of the source tree import which: the coordinator and the workers meet only in
// proto/, so neither may import the other, and proto/ may import neither.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export interface SourceFile {
  /** path relative to the repository root, with forward slashes (e.g. "coordinator/train/run_job.ts") */
  path: string;
  text: string;
}

export interface ImportViolation {
  file: string;
  specifier: string;
  rule: string;
}

/** Folders that must not import from the listed folders. */
export const FORBIDDEN_IMPORTS: Record<string, readonly string[]> = {
  coordinator: ["worker"],
  worker: ["coordinator"],
  proto: ["coordinator", "worker"],
};

// Static imports and re-exports (`import ... from "x"`, `export ... from "x"`, `import "x"`) and dynamic
// `import("x")`; comments are stripped first so a commented-out import does not count.
const SPECIFIER = /(?:\bimport|\bexport)\s[^"';]*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(?\s*["']([^"']+)["']/g;

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'])\/\/.*$/gm, "$1");
}

export function importSpecifiers(text: string): string[] {
  return [...stripComments(text).matchAll(SPECIFIER)].map((m) => (m[1] ?? m[2])!);
}

/** The top-level folder a relative specifier of `file` lands in, or undefined for a package import. */
function targetFolder(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
  return resolved.split("/")[0];
}

export function importViolations(files: readonly SourceFile[]): ImportViolation[] {
  const out: ImportViolation[] = [];
  for (const f of files) {
    const from = f.path.split("/")[0]!;
    const forbidden = FORBIDDEN_IMPORTS[from] ?? [];
    for (const specifier of importSpecifiers(f.text)) {
      const to = targetFolder(f.path, specifier);
      if (to !== undefined && forbidden.includes(to))
        out.push({ file: f.path, specifier, rule: `${from}/ must not import from ${to}/` });
    }
  }
  return out;
}

/** Every .ts file under the given top-level folders of `root`. */
export function readSourceFiles(root: string, folders: readonly string[]): SourceFile[] {
  const files: SourceFile[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith(".ts"))
        files.push({ path: child, text: readFileSync(path.join(root, child), "utf8") });
    }
  };
  for (const folder of folders) walk(folder);
  return files;
}
