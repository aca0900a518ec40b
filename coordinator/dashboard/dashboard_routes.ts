// The coordinator's dashboard over HTTP: the page and its script (coordinator/dashboard/public), the
// chart library from node_modules (no CDN, nothing to build), JSON views of jobs, their metric lines and
// the workers, and the live event stream.
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { metricsFile, type WorkerInfo } from "../../proto/mod.js";
import type { Route } from "../../observe/http_server.js";
import type { Job } from "../jobs/store.js";
import type { EventStream } from "./event_stream.js";

/** The repository root, from this file's place in src (coordinator/dashboard) or in dist/. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("dashboard: no package.json above " + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

const ROOT = repoRoot();
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "coordinator/dashboard/public/index.html", type: "text/html; charset=utf-8" },
  "/dashboard.js": { file: "coordinator/dashboard/public/dashboard.js", type: "text/javascript; charset=utf-8" },
  "/dashboard.css": { file: "coordinator/dashboard/public/dashboard.css", type: "text/css; charset=utf-8" },
  "/vendor/uPlot.iife.min.js": { file: "node_modules/uplot/dist/uPlot.iife.min.js", type: "text/javascript" },
  "/vendor/uPlot.min.css": { file: "node_modules/uplot/dist/uPlot.min.css", type: "text/css" },
};

export interface DashboardView {
  jobs(): readonly Job[];
  job(id: string): Job | undefined;
  /** the registry's workers, each with its last step's compute time when it has run one */
  workers(): readonly (WorkerInfo & { last_step_ms?: number })[];
  events: EventStream;
}

function json(res: import("node:http").ServerResponse, status: number, body: unknown): true {
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-cache" });
  res.end(JSON.stringify(body));
  return true;
}

/** Every line of the job's metrics.jsonl that parses (a line being written may not yet). */
async function metricLines(job: Job): Promise<unknown[]> {
  const text = await readFile(metricsFile(job.output), "utf8").catch(() => "");
  return text.split("\n").flatMap((line) => {
    try {
      return line.trim() ? [JSON.parse(line) as unknown] : [];
    } catch {
      return [];
    }
  });
}

export function dashboardRoutes(view: DashboardView): Route[] {
  const staticRoute: Route = (_req, res, url) => {
    const entry = STATIC_FILES[url.pathname];
    if (!entry) return false;
    res.writeHead(200, { "Content-Type": entry.type, "Cache-Control": "no-cache" });
    res.end(readFileSync(path.join(ROOT, entry.file)));
    return true;
  };
  const apiRoute: Route = async (req, res, url) => {
    const p = url.pathname;
    if (p === "/api/jobs") return json(res, 200, { jobs: view.jobs() });
    if (p === "/api/workers") return json(res, 200, { workers: view.workers() });
    if (p === "/api/events") {
      view.events.attach(req, res);
      return true;
    }
    const m = /^\/api\/jobs\/([^/]+)\/metrics$/.exec(p);
    if (m) {
      const job = view.job(decodeURIComponent(m[1]!));
      if (!job) return json(res, 404, { error: `no job '${m[1]}'` });
      return json(res, 200, { job: job.id, lines: await metricLines(job) });
    }
    return false;
  };
  return [staticRoute, apiRoute];
}
