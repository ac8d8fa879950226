import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';

const run = promisify(execFile);

/**
 * A private Redis Cluster for a test file: `masters` redis-server processes in cluster mode
 * on loopback (no replicas), joined and given all 16,384 slots by `redis-cli --cluster
 * create`, as an operator would. Both come with Debian's redis-server package, which the
 * suite already needs. Nothing is simulated: clients meet MOVED redirects, and a script whose
 * keys span slots fails with CROSSSLOT as on any cluster.
 */
export class PrivateRedisCluster {
  private constructor(
    readonly ports: number[],
    private readonly processes: ChildProcess[],
    private readonly dir: string,
  ) {}

  static async start(masters = 3): Promise<PrivateRedisCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-redis-cluster-'));
    const ports: number[] = [];
    const processes: ChildProcess[] = [];
    const cluster = new PrivateRedisCluster(ports, processes, dir);
    try {
      for (let i = 0; i < masters; i++) {
        const port = await freePort();
        ports.push(port);
        const nodeDir = path.join(dir, String(port));
        mkdirSync(nodeDir);
        processes.push(
          spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--save', '', '--appendonly', 'no', '--dir', nodeDir], {
            stdio: 'ignore',
          }),
        );
      }
      for (const port of ports) await waitFor(port, async (redis) => (await redis.ping()) === 'PONG');
      await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
      // Every node must agree that all slots are served before a client can rely on any.
      for (const port of ports) await waitFor(port, async (redis) => String(await redis.call('CLUSTER', 'INFO')).includes('cluster_state:ok'));
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** The seed nodes, as REDIS_URL takes them with REDIS_CLUSTER=true. */
  get url(): string {
    return this.ports.map((p) => `redis://127.0.0.1:${p}`).join(',');
  }

  env(): Record<string, string> {
    return { REDIS_URL: this.url, REDIS_CLUSTER: 'true' };
  }

  /** The keys matching `pattern`, per node (port): each node holds only the keys of its own slots. */
  async keysByNode(pattern: string): Promise<Map<number, string[]>> {
    const found = new Map<number, string[]>();
    for (const port of this.ports) {
      const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      try {
        const keys: string[] = [];
        let cursor = '0';
        do {
          const [next, page] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          keys.push(...page);
          cursor = next;
        } while (cursor !== '0');
        if (keys.length > 0) found.set(port, keys);
      } finally {
        redis.disconnect();
      }
    }
    return found;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.processes.map(
        (child) =>
          new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
            child.once('exit', resolve);
            child.kill('SIGKILL');
          }),
      ),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function waitFor(port: number, check: (redis: Redis) => Promise<boolean>): Promise<void> {
  const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    for (let i = 0; i < 200; i++) {
      try {
        if (redis.status !== 'ready') await redis.connect();
        if (await check(redis)) return;
      } catch {
        // Not up yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`redis-server on ${port} did not become ready`);
  } finally {
    redis.disconnect();
  }
}
