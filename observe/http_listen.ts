// The `--http` address of a process: ":9464" (every interface), "127.0.0.1:9464" or "9464". Port 0 picks a
// free port (tests); the bound port is read back from the server.
export interface ListenAddress {
  host: string | undefined;
  port: number;
}

export function parseListenAddress(text: string, flag = "--http"): ListenAddress {
  const m = /^(?:(.*):)?(\d+)$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`${flag}: '${text}' is not an address to listen on (:PORT or HOST:PORT, port 0-65535)`);
  const host = m[1] === undefined || m[1] === "" ? undefined : m[1].replace(/^\[(.*)\]$/, "$1");
  return { host, port };
}
