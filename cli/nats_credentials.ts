// How a ringtune process proves who it is to NATS: the usual NATS client options, from flags or the
// environment (flags win): a creds file (--creds, NATS_CREDS), a user and password (--user/--password,
// NATS_USER/NATS_PASSWORD, or the password read from --password-file/NATS_PASSWORD_FILE), an nkey seed file (--nkey, NATS_NKEY) and TLS files (--tls-ca/--tls-cert/
// --tls-key, NATS_CA/NATS_CERT/NATS_KEY). A local cluster's own credentials (written by `make cluster-up`
// under its run dir) are used when none are given. Without any, a process refuses to start unless
// `--insecure` (or RINGTUNE_INSECURE=1) says that running without authentication is meant.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { credsAuthenticator, nkeyAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";
import { UsageError } from "./args.js";

/** The flags every command that talks to NATS accepts (merge into its parseFlags options). */
export const natsCredentialFlags = {
  creds: { type: "string" },
  user: { type: "string" },
  password: { type: "string" },
  "password-file": { type: "string" },
  nkey: { type: "string" },
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "inbox-prefix": { type: "string" },
  insecure: { type: "boolean" },
} as const;

export const NATS_CREDENTIAL_USAGE =
  "  NATS credentials (else NATS_CREDS, NATS_USER/NATS_PASSWORD[_FILE], NATS_NKEY, NATS_CA/NATS_CERT/NATS_KEY; else\n" +
  "  a local cluster's own, from make cluster-up): --creds FILE | --user U --password P | --user U --password-file F\n" +
  "  | --nkey SEEDFILE,\n" +
  "  --tls-ca FILE [--tls-cert FILE --tls-key FILE]; --insecure: connect without authentication;\n" +
  "  --inbox-prefix P (NATS_INBOX_PREFIX): where replies arrive (default _INBOX_<user> with --user, else _INBOX)";

/**
 * The inbox prefix of a NATS user: replies to its requests arrive under `_INBOX_<user>.`, which the cluster's
 * permissions let only that user read (deploy/nats/auth.conf), so no one else sees its replies.
 */
export function inboxPrefixOf(user: string): string {
  return `_INBOX_${user}`;
}

/** Connection options that carry the credentials; `described` says which kind, for logs (never the secret). */
export interface NatsAuth {
  options: Partial<NodeConnectionOptions>;
  described: string;
}

/** Where `make cluster-up` leaves a role's credentials: RINGTUNE_RUN_DIR, else .run/ in the checkout. */
export function localCredentialsFile(role: string, env: NodeJS.ProcessEnv = process.env): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
  const runDir = env.RINGTUNE_RUN_DIR && env.RINGTUNE_RUN_DIR !== "" ? env.RINGTUNE_RUN_DIR : path.join(root, ".run");
  return path.join(runDir, "auth", `${role}.env`);
}

/** KEY=VALUE lines (a cluster's credentials file): blank lines and # comments skipped. */
export function readEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((line, i) => {
      const t = line.trim();
      if (t === "" || t.startsWith("#")) return;
      const eq = t.indexOf("=");
      if (eq <= 0) throw new Error(`${file}:${i + 1}: expected KEY=VALUE`);
      out[t.slice(0, eq)] = t.slice(eq + 1);
    });
  return out;
}

function readSecretFile(file: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (err) {
    throw new UsageError(`${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The credentials for one process. `role` names the local cluster's credentials file to fall back on
 * (client, coordinator, worker). Throws a UsageError when there are none and `--insecure` was not given.
 */
export function natsAuth(
  values: Record<string, unknown>,
  role: string,
  env: NodeJS.ProcessEnv = process.env,
  warn: (line: string) => void = (line) => console.error(line),
): NatsAuth {
  const pick = (flag: string, name: string) => {
    const v = values[flag] ?? env[name];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const creds = pick("creds", "NATS_CREDS");
  let user = pick("user", "NATS_USER");
  let password = pick("password", "NATS_PASSWORD");
  const passwordFile = pick("password-file", "NATS_PASSWORD_FILE");
  // A file keeps the secret out of the environment and the command line (a Kubernetes worker's own password).
  if (password === undefined && passwordFile !== undefined)
    password = new TextDecoder().decode(readSecretFile(passwordFile, "--password-file")).trim();
  const nkey = pick("nkey", "NATS_NKEY");
  let ca = pick("tls-ca", "NATS_CA");
  let cert = pick("tls-cert", "NATS_CERT");
  let key = pick("tls-key", "NATS_KEY");
  let inboxPrefix = pick("inbox-prefix", "NATS_INBOX_PREFIX");
  const insecure = values.insecure === true || env.RINGTUNE_INSECURE === "1";

  let from = "";
  // A TLS certificate alone does not name a user: the local cluster's user is still wanted with it.
  if (!creds && !user && !nkey && !insecure) {
    const file = localCredentialsFile(role, env);
    if (existsSync(file)) {
      const local = readEnvFile(file);
      user = local.NATS_USER;
      password = local.NATS_PASSWORD;
      from = ` (from ${file})`;
      // the cluster's users read replies only under their own prefix (deploy/nats/auth.conf)
      inboxPrefix ??= local.NATS_INBOX_PREFIX;
      // a cluster started with TLS=1 names its CA and this role's certificate there too
      if (!ca && !cert) ({ NATS_CA: ca, NATS_CERT: cert, NATS_KEY: key } = local);
    }
  }
  if ((cert && !key) || (key && !cert)) throw new UsageError("--tls-cert and --tls-key go together");
  if (user && password === undefined) throw new UsageError(`--user ${user} needs --password (or NATS_PASSWORD)`);

  const options: Partial<NodeConnectionOptions> = {};
  const kinds: string[] = [];
  if (creds) {
    options.authenticator = credsAuthenticator(readSecretFile(creds, "--creds"));
    kinds.push(`creds file ${creds}`);
  } else if (nkey) {
    const seed = new TextDecoder().decode(readSecretFile(nkey, "--nkey")).trim();
    options.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
    kinds.push(`nkey ${nkey}`);
  } else if (user) {
    options.user = user;
    options.pass = password;
    kinds.push(`user ${user}${from}`);
  }
  // A named user's replies arrive under its own prefix, which the cluster's permissions let only it read.
  inboxPrefix ??= user ? inboxPrefixOf(user) : undefined;
  if (inboxPrefix) options.inboxPrefix = inboxPrefix;
  if (ca || cert) {
    options.tls = { ...(ca ? { caFile: ca } : {}), ...(cert && key ? { certFile: cert, keyFile: key } : {}) };
    kinds.push(cert ? "TLS client certificate" : "TLS");
  }
  if (kinds.length === 0 || (kinds.length === 1 && !creds && !nkey && !user && !cert)) {
    if (!insecure) {
      throw new UsageError(
        "no NATS credentials: give --creds, --user/--password, --nkey or a TLS client certificate (or NATS_CREDS, " +
          "NATS_USER/NATS_PASSWORD, NATS_NKEY, NATS_CERT/NATS_KEY), start a local cluster with 'make cluster-up', " +
          "or pass --insecure to connect without authentication",
      );
    }
    warn("warning: connecting to NATS without authentication (--insecure): anyone who reaches the server is trusted");
    kinds.push("no authentication (--insecure)");
  }
  return { options, described: kinds.join(", ") };
}
