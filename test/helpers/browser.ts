// Headless Chromium for tests: the system's browser (Debian's chromium package, which `make deps`
// installs) driven by playwright-core; no browser is downloaded. A missing browser fails the test with
// the way to install it, it never skips.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function chromiumPath(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  const found = fromEnv ? [fromEnv] : CANDIDATES.filter((p) => existsSync(p));
  if (found.length === 0 || !existsSync(found[0]!))
    throw new Error(
      `no Chromium at ${fromEnv ?? CANDIDATES.join(", ")}: run make deps (apt-get install chromium) or set CHROMIUM_PATH`,
    );
  return found[0]!;
}

export function launchChromium(): Promise<Browser> {
  // --no-sandbox: tests run as root in CI containers, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ["--no-sandbox"] });
}
