import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A port another process holds: reported at boot as one line naming the setting to change. */
export class PortInUseError extends Error {
  constructor(
    readonly variable: string,
    readonly port: number,
    readonly host: string,
  ) {
    super(`${variable}=${port} is already in use on ${host}: stop what holds it, or set ${variable} to another port`);
  }
}

/** Listen on `port` (0 picks a free one); resolves with the bound port. `variable` names the setting, for errors. */
export function listenOn(server: Server, port: number, host: string, variable: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new PortInUseError(variable, port, host) : err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * End a process that could not start, with one line a person can act on, when the cause
 * is a known one (a port in use, a dependency out of reach, a bad license: each app passes
 * its describers). Anything else is a bug: its stack trace is printed as it would be.
 */
export function exitOnBootFailure(err: unknown, describers: ReadonlyArray<(err: unknown) => string | undefined> = []): never {
  const known = err instanceof PortInUseError ? err.message : describers.map((describe) => describe(err)).find((line) => line !== undefined);
  if (known === undefined) throw err;
  console.error(known);
  process.exit(1);
}
