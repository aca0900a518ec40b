// What `git status` says about the repository, ignored files included, so a test can show it wrote
// nothing there (pid files in .run/, outputs in runs/, a stray file anywhere).
import { spawnSync } from "node:child_process";
import { REPO_ROOT } from "./processes.js";

/** The status lines, or undefined where the tree is not a git checkout (an unpacked release). */
export function repoStatus(): string | undefined {
  const r = spawnSync("git", ["status", "--porcelain", "--ignored", "--untracked-files=all"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  });
  return r.status === 0 ? r.stdout : undefined;
}
