import net from 'node:net';

/**
 * A TCP proxy in front of a real Postgres, for faults the network causes. In `pass` mode it
 * forwards both ways. Two modes act when a client sends COMMIT (a simple-query `commit`, as
 * node-postgres sends it):
 * - `stall-after-commit`: the COMMIT goes through, but no answer comes back on that
 *   connection from then on — the server committed, the client cannot know;
 * - `drop-at-commit`: the connection is cut before the COMMIT reaches the server — it
 *   rolls back, the client sees an error.
 */
export class TcpProxy {
  mode: 'pass' | 'stall-after-commit' | 'drop-at-commit' = 'pass';
  /** How many COMMITs the proxy acted on in a non-pass mode. */
  interventions = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      let stalled = false;
      for (const socket of [client, upstream]) {
        proxy!.sockets.add(socket);
        socket.on('close', () => proxy!.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.on('data', (chunk: Buffer) => {
        const commit = chunk[0] === 0x51 /* Q */ && chunk.toString('latin1').toLowerCase().includes('commit');
        if (commit && proxy!.mode === 'drop-at-commit') {
          proxy!.interventions += 1;
          client.destroy();
          upstream.destroy();
          return;
        }
        if (commit && proxy!.mode === 'stall-after-commit') {
          proxy!.interventions += 1;
          stalled = true;
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        if (!stalled) client.write(chunk);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    proxy = new TcpProxy(server, port);
    return proxy;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
