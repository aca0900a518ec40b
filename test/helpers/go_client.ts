// The Go job API client (test/clients/go): built once per test run into a temp folder with Debian's Go and
// NATS Go client packages, offline (GOPATH mode over /usr/share/gocode, no module proxy).
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "./processes.js";

const run = promisify(execFile);
const GOCODE = "/usr/share/gocode";
const NATS_GO = path.join(GOCODE, "src/github.com/nats-io/nats.go");

/** Why the Go client cannot be built here, or undefined when it can. */
export function goUnavailable(): string | undefined {
  const hasGo = (process.env.PATH ?? "").split(path.delimiter).some((d) => existsSync(path.join(d, "go")));
  if (!hasGo) return "no 'go' on PATH (Debian package golang-go; make deps installs it)";
  if (!existsSync(NATS_GO)) return `no NATS Go client at ${NATS_GO} (Debian package golang-github-nats-io-go-nats-dev)`;
  return undefined;
}

/** Builds the client; returns the binary's path. */
export async function buildGoClient(): Promise<string> {
  const out = mkdtempSync(path.join(tmpdir(), "ringtune-go-client-"));
  const binary = path.join(out, "jobapi_client");
  await run("go", ["build", "-o", binary, "jobapi_client.go"], {
    cwd: path.join(REPO_ROOT, "test/clients/go"),
    env: {
      ...process.env,
      GO111MODULE: "off",
      GOPATH: GOCODE,
      GOCACHE: path.join(out, "cache"),
      GOPROXY: "off",
      GOFLAGS: "",
    },
    timeout: 600_000,
  });
  return binary;
}

export interface GoResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runGoClient(binary: string, natsUrl: string, args: string[]): Promise<GoResult> {
  try {
    const { stdout, stderr } = await run(binary, ["-url", natsUrl, ...args], { timeout: 300_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}
