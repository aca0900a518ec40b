// What `kubectl apply -k deploy/k8s` reads from outside git, as a user makes it: deploy/scripts/k8s-secrets.sh
// over a copy of the folder, then the real kubectl's kustomize with nothing filled in by the test. Material made
// by an earlier ringtune (the roles' certificates alone, the example's placeholder passwords) is completed, its
// CA kept, and renders; without the script the render fails on the missing worker certificates.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { REPO_ROOT } from "../helpers/processes.js";
import { K8S_DIR, kubectlMissing } from "../helpers/kustomize.js";

const skip = kubectlMissing();
const tmp = mkdtempSync(path.join(os.tmpdir(), "ringtune-k8s-secrets-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const run = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, ...env } });
const script = (name: string) => path.join(REPO_ROOT, "deploy/scripts", name);

test("k8s-secrets.sh completes an earlier ringtune's material so that kubectl kustomize renders it", { skip }, () => {
  const dir = path.join(tmp, "k8s");
  cpSync(K8S_DIR, dir, { recursive: true, filter: (src) => !/\/(tls|[^/]*credentials\.env)$/.test(src) });
  // what the earlier instructions made: the example's credentials copied, the roles' certificates
  copyFileSync(path.join(dir, "nats-credentials.example.env"), path.join(dir, "nats-credentials.env"));
  assert.equal(run("bash", [script("tls-certs.sh"), path.join(dir, "tls")], { TLS_HOSTS: "nats" }).status, 0);
  const ca = readFileSync(path.join(dir, "tls/ca.pem"), "utf8");

  const before = run("kubectl", ["kustomize", dir]);
  assert.notEqual(before.status, 0, "the worker certificates are missing");
  assert.match(before.stderr, /tls\/worker-ringtune-worker-0\.pem|nats-worker-credentials\.env/);

  const made = run(script("k8s-secrets.sh"), [dir]);
  assert.equal(made.status, 0, made.stderr);
  const rendered = run("kubectl", ["kustomize", dir]);
  assert.equal(rendered.status, 0, rendered.stderr);
  assert.match(rendered.stdout, /name: ringtune-nats-worker-tls/);
  assert.equal(readFileSync(path.join(dir, "tls/ca.pem"), "utf8"), ca, "the CA the cluster trusts is kept");
  const roles = readFileSync(path.join(dir, "nats-credentials.env"), "utf8");
  assert.doesNotMatch(roles, /=CHANGE-ME$/m, "placeholder passwords are replaced");
  assert.match(roles, /^coordinator-password=p[0-9a-f]{48}$/m);

  // again: nothing changes
  const workers = readFileSync(path.join(dir, "nats-worker-credentials.env"), "utf8");
  assert.equal(run(script("k8s-secrets.sh"), [dir]).status, 0);
  assert.equal(readFileSync(path.join(dir, "nats-credentials.env"), "utf8"), roles);
  assert.equal(readFileSync(path.join(dir, "nats-worker-credentials.env"), "utf8"), workers);
});
