// What `kubectl apply -k deploy/k8s` reads: the real kubectl's kustomize over a copy of the folder with the
// files a user makes before applying (the example credentials, placeholder TLS material), parsed by the
// YAML rules kubectl itself applied to render it.
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { REPO_ROOT } from "./processes.js";

export const K8S_DIR = path.join(REPO_ROOT, "deploy/k8s");

/** The tls/ files the kustomization's secretGenerators list (what a user makes with k8s-worker-users.sh certs). */
function tlsFilesListed(dir: string): string[] {
  const k = parse(readFileSync(path.join(dir, "kustomization.yaml"), "utf8")) as {
    secretGenerator?: { files?: string[] }[];
  };
  return (k.secretGenerator ?? []).flatMap((g) => g.files ?? []).filter((f) => f.startsWith("tls/"));
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

/** Why the render test cannot run here, or undefined when kubectl is on the PATH. */
export function kubectlMissing(): string | undefined {
  const r = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
  return r.status === 0 ? undefined : "kubectl not found: install it to check what `kubectl apply -k` renders";
}

/**
 * The objects `kubectl kustomize` renders from `dir` (deploy/k8s by default), in its order. `prepare` runs on
 * the copy after the example files are in place, before the render (to write files a user makes otherwise).
 */
export function renderKustomization(dir = K8S_DIR, prepare?: (copy: string) => void): K8sObject[] {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "ringtune-k8s-"));
  try {
    const copy = path.join(tmp, "k8s");
    cpSync(dir, copy, { recursive: true });
    for (const f of readdirSync(copy).filter((f) => f.endsWith(".example.env")))
      copyFileSync(path.join(copy, f), path.join(copy, f.replace(/\.example\.env$/, ".env")));
    mkdirSync(path.join(copy, "tls"), { recursive: true });
    prepare?.(copy);
    // every TLS file the Secrets list (the roles', one pair per worker pod) that `prepare` did not make
    for (const f of tlsFilesListed(copy))
      if (!existsSync(path.join(copy, f))) writeFileSync(path.join(copy, f), `placeholder ${path.basename(f)}\n`);
    const yaml = execFileSync("kubectl", ["kustomize", copy], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return parseAllDocuments(yaml).map((doc) => {
      if (doc.errors.length) throw new Error(`kubectl kustomize output: ${doc.errors.join("; ")}`);
      return doc.toJS() as K8sObject;
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
