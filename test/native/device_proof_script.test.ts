// deploy/gpu/run_device_checks.sh, the one-command proof on a lent GPU, tested where no GPU is: the summary is
// written first and grows as each step ends (its writer, with a fake step), and a host whose driver is older
// than the CUDA runtime needs, or whose GPU the build has no code for, stops after the driver and compute
// capability lines, saying why. The GPU is a fake `nvidia-smi` on PATH: the script's only view of the driver.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const repo = process.cwd();
const script = path.join(repo, "deploy/gpu/run_device_checks.sh");

/** A PATH whose nvidia-smi answers like a driver supporting CUDA `cuda` on a GPU of compute capability `cc`. */
function fakeDriver(cuda: string, cc: string): string {
  const bin = mkdtempSync(path.join(tmpdir(), "ringtune-fake-smi-"));
  const smi = path.join(bin, "nvidia-smi");
  writeFileSync(
    smi,
    `#!/usr/bin/env bash
case "$*" in
  -L) echo "GPU 0: NVIDIA Fake GPU (UUID: GPU-0)" ;;
  *driver_version*) echo "550.54.15" ;;
  *compute_cap*) echo "${cc}" ;;
  *name,memory.total*) echo "NVIDIA Fake GPU, 81559 MiB" ;;
  *) echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: ${cuda}     |" ;;
esac
`,
  );
  chmodSync(smi, 0o755);
  return `${bin}:${process.env.PATH}`;
}

function runChecks(PATH: string): { code: number | null; summary: string[]; files: string[] } {
  const out = mkdtempSync(path.join(tmpdir(), "ringtune-gpu-out-"));
  // a bundle as deploy/gpu/bundle.sh records its archs
  const bundle = mkdtempSync(path.join(tmpdir(), "ringtune-gpu-bundle-"));
  writeFileSync(path.join(bundle, "cuda_archs.txt"), "80-real;86-real;89-real;90\n");
  const env = { ...process.env, PATH, OUT: out, TOTAL: "60", BUNDLE: bundle };
  const r = spawnSync("bash", [script], { env, encoding: "utf8" });
  return {
    code: r.status,
    summary: readFileSync(path.join(out, "summary.txt"), "utf8").trim().split("\n"),
    files: readdirSync(out),
  };
}

test("a driver older than the CUDA runtime needs stops the proof after the driver line, naming both versions", () => {
  const r = runChecks(fakeDriver("12.4", "9.0"));
  assert.equal(r.code, 2);
  assert.match(r.summary[1]!, /driver: 550\.54\.15 \(CUDA 12\.4\); compute capability: 9\.0/);
  assert.match(
    r.summary[2]!,
    /STOP: the driver supports CUDA 12\.4, ringtune's CUDA runtime needs CUDA 13\.0 or newer/,
  );
  assert.equal(r.summary.length, 3, r.summary.join("\n"));
  assert.ok(r.files.length <= 8);
});

test("a GPU the build has no code for stops the proof, naming its compute capability and the built archs", () => {
  const r = runChecks(fakeDriver("13.0", "7.5"));
  assert.equal(r.code, 2);
  assert.match(r.summary[1]!, /compute capability: 7\.5/);
  assert.match(
    r.summary[2]!,
    /STOP: compute capability 7\.5: the build has GPU code only for sm_80, sm_86, sm_89, sm_90/,
  );
});

test("no driver at all: one line saying so, exit status 2", () => {
  // this PATH without any folder that holds an nvidia-smi
  const dirs = (process.env.PATH ?? "").split(":").filter((d) => d && !existsSync(path.join(d, "nvidia-smi")));
  const r = runChecks(dirs.join(":"));
  assert.equal(r.code, 2);
  assert.match(r.summary.at(-1)!, /gpu: none \(nvidia-smi not found/);
});

test("the summary writer: a step's line and its FAIL lines reach the file as the step ends", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "ringtune-summary-"));
  const stepOut = path.join(dir, "step.txt");
  writeFileSync(stepOut, "noise\nFAIL cuda_rmsnorm_bf16: max diff 0.5\nmore noise\n");
  const r = spawnSync(
    "bash",
    [
      "-c",
      `START=$(date +%s); SUMMARY=${dir}/summary.txt; failed=0; . deploy/gpu/summary_lib.sh
       log "first"; step_result "fake ok" 0 /dev/null; cp "$SUMMARY" ${dir}/after_first.txt
       step_result "fake op tests" 3 ${stepOut}; echo "failed=$failed"`,
    ],
    { cwd: repo, encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /failed=1/);
  const after = readFileSync(path.join(dir, "after_first.txt"), "utf8");
  assert.match(after, /^\[0s\] first\n\[0s\] fake ok: ok\n$/);
  const summary = readFileSync(path.join(dir, "summary.txt"), "utf8").split("\n");
  assert.match(summary[2]!, /fake op tests: FAILED \(exit status 3; .*step\.txt\)/);
  assert.equal(summary[3], "FAIL cuda_rmsnorm_bf16: max diff 0.5");
});

test("the bundle's archive unpacks with the xz tool, and through python3 where the host has none", (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "ringtune-unpack-"));
  const src = path.join(dir, "src");
  mkdirSync(path.join(src, "tree/bin"), { recursive: true });
  writeFileSync(path.join(src, "tree/bin/tool"), "#!/bin/sh\necho hello from the archive\n");
  chmodSync(path.join(src, "tree/bin/tool"), 0o755);
  symlinkSync("bin/tool", path.join(src, "tree/tool_link"));
  const archive = path.join(dir, "ringtune-gpu.tar.xz");
  const made = spawnSync("bash", ["-c", `tar -C "${src}" -cf - . | xz -0 > "${archive}"`], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  // a PATH holding tar and python3 but no xz: the GPU host's image may lack the tool
  const noXz = path.join(dir, "bin");
  mkdirSync(noXz);
  for (const tool of ["tar", "python3"]) {
    const found = spawnSync("bash", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    if (found) symlinkSync(found, path.join(noXz, tool));
  }
  const pythonLzma = spawnSync("python3", ["-c", "import lzma, tarfile"]).status === 0;
  for (const [name, PATH] of [
    ["xz", process.env.PATH ?? ""],
    ["python3", noXz],
  ] as const) {
    if (name === "python3" && !pythonLzma) {
      t.diagnostic("python3 with lzma not found: the fallback is not checked here");
      continue;
    }
    const into = path.join(dir, `into-${name}`);
    mkdirSync(into);
    const r = spawnSync(
      "/bin/bash",
      ["-c", `. deploy/gpu/summary_lib.sh; unpack_bundle "$1" "$2"`, "_", archive, into],
      {
        cwd: repo,
        env: { ...process.env, PATH },
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    // the executable bit and the link inside the tree survive
    const ran = spawnSync(path.join(into, "tree/tool_link"), { encoding: "utf8" });
    assert.equal(ran.stdout, "hello from the archive\n", name);
  }
});

/** A folder whose `node` exits with status 97, saying it is the host's. */
function failingNode(): string {
  const bin = mkdtempSync(path.join(tmpdir(), "ringtune-no-node-"));
  writeFileSync(path.join(bin, "node"), "#!/bin/sh\necho 'the host node was run' >&2\nexit 97\n");
  chmodSync(path.join(bin, "node"), 0o755);
  return bin;
}

/** The bundle as deploy/gpu/bundle.sh packs it, from make build's outputs, as a fast zstd archive. */
function packedBundle(): string {
  const bundle = mkdtempSync(path.join(tmpdir(), "ringtune-gpu-bundle-"));
  const r = spawnSync("bash", ["deploy/gpu/bundle.sh"], {
    cwd: repo,
    env: { ...process.env, PACK_ONLY: "1", BUILD: "build/native", B: bundle, COMPRESS: "zst" },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return bundle;
}

test("the dry run takes every step against cuda-emu: op tests, NCCL, the bundle unpacked, the dump check in its tree", () => {
  const out = mkdtempSync(path.join(tmpdir(), "ringtune-gpu-dry-"));
  const bundle = packedBundle();
  // the bench's smoke run is cuda-tests.sh's in make test (half a minute on the emulator): not twice
  const env = {
    ...process.env,
    DRY: "1",
    DRY_BENCH: "0",
    OUT: out,
    TOTAL: "300",
    DRY_FILTER: "cuda_cublaslt cuda_library_nccl",
    BUNDLE: bundle,
    // the bundle's tree brings its own node and nats-server: a node on PATH that fails shows neither is needed
    PATH: `${failingNode()}:${process.env.PATH}`,
  };
  const r = spawnSync("bash", [script], { env, encoding: "utf8", timeout: 300_000 });
  rmSync(bundle, { recursive: true, force: true }); // tens of MiB
  const summary = readFileSync(path.join(out, "summary.txt"), "utf8");
  assert.equal(r.status, 0, summary + r.stderr);
  const lines = summary.trim().split("\n");
  // its shape: a header, then stamped lines, each step's result and the lines it copies (CHECK, FAIL, RESULT)
  assert.match(lines[0]!, /^\[\d+s\] ringtune device checks, \d{4}-\d\d-\d\d \d\d:\d\d UTC, host /);
  assert.match(lines[1]!, /dry run: every step against the CUDA emulator/);
  for (const line of lines) assert.match(line, /^(\[\d+s\] |CHECK |FAIL|RESULT )/, line);
  assert.match(summary, /^\[\d+s\] op tests: ok$/m);
  // the GPU library's NCCL data plane (its emulated twin) summed two ranks through the stand-in
  assert.match(
    summary,
    /^\[\d+s\] nccl: \S+nccl_standin\/libnccl\.so\.2 \(version \d+\), 2 rank\(s\), through \S+ringtune_cuda_device_emu\.so$/m,
  );
  // the carried archive unpacked into a temp folder, timed, and the end-to-end step run in its tree
  const unpacked =
    /^\[\d+s\] bundle: \S+ringtune-gpu\.tar\.zst \(\d+ MiB carried\) unpacked into (\S+) \(\d+ MiB\) in \d+\.\d{3}s$/m.exec(
      summary,
    );
  assert.ok(unpacked, summary);
  const tree = `${unpacked[1]}/tree`;
  assert.ok(summary.includes(`end to end: in the bundle's tree ${tree}, node v`), summary);
  const e2e = readFileSync(path.join(out, "e2e.txt"), "utf8");
  assert.ok(e2e.includes(`tree: ${tree}; node: ${tree}/bin/node v`), e2e);
  assert.ok(!existsSync(unpacked[1]!), "the unpacked bundle is removed at the end");
  assert.match(summary, /^CHECK dump cuda-emu fp32 vs cpu: ok \(max diff /m);
  assert.match(summary, /^CHECK dist\/test\/train\/cuda_emu_worker\.test\.js: NOT RUN/m);
  assert.match(summary, /^\[\d+s\] end to end: ok$/m);
  assert.match(summary, /^\[\d+s\] bench: skipped \(DRY_BENCH=0; make test runs bench_gpu\.sh --smoke/m);
  assert.match(lines.at(-1)!, /^\[\d+s\] done in \d+s: every step that ran passed$/);
  // the op tests ran on the emulator: their driver names its device, and both alignment tests passed
  const ops = readFileSync(path.join(out, "cuda_test.txt"), "utf8");
  assert.match(ops, /^device: /m);
  assert.match(ops, /cuda_cublaslt_plans_take_the_alignment_of_the_actual_pointers/);
  assert.ok(readdirSync(out).length <= 8, readdirSync(out).join(" "));
});
