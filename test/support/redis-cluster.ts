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
 * on loopback (and `replicas` more per master), joined and given all 16,384 slots by
 * `redis-cli --cluster create`, as an operator would. Both come with Debian's redis-server package, which the
 * suite already needs. Nothing is simulated: clients meet MOVED redirects, and a script whose
 * keys span slots fails with CROSSSLOT as on any cluster.
 */
export class PrivateRedisCluster {
  private constructor(
    readonly ports: number[],
    private readonly processes: ChildProcess[],
    private readonly dir: string,
    private readonly nodeTimeoutMs: number,
  ) {}

  /**
   * `replicas` per master; `nodeTimeoutMs` is how long a master may be unreachable before
   * its replica takes over (Redis's default is 15 s; a test wants a failover in seconds).
   */
  static async start(masters = 3, options: { replicas?: number; nodeTimeoutMs?: number } = {}): Promise<PrivateRedisCluster> {
    const replicas = options.replicas ?? 0;
    const dir = mkdtempSync(path.join(tmpdir(), 'tenantry-redis-cluster-'));
    const ports: number[] = [];
    const processes: ChildProcess[] = [];
    const cluster = new PrivateRedisCluster(ports, processes, dir, options.nodeTimeoutMs ?? 15_000);
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const port = await freePort();
        ports.push(port);
        mkdirSync(path.join(dir, String(port)));
        processes.push(cluster.spawnNode(port));
      }
      for (const port of ports) await waitFor(port, async (redis) => (await redis.ping()) === 'PONG');
      await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 30_000 });
      // Every node must agree that all slots are served before a client can rely on any.
      await cluster.waitUntilHealthy();
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

  /** The keys matching `pattern`, per master (port): each master holds only the keys of its own slots. */
  async keysByNode(pattern: string): Promise<Map<number, string[]>> {
    const found = new Map<number, string[]>();
    for (const port of this.livePorts()) {
      const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
      try {
        // A replica holds copies of its master's keys.
        if (((await redis.call('ROLE')) as string[])[0] !== 'master') continue;
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

  /** Until every live node reports all slots served and every replica is in sync with its master (after a create, or a failover). */
  async waitUntilHealthy(): Promise<void> {
    for (const port of this.livePorts()) {
      await waitFor(port, async (redis) => {
        if (!String(await redis.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
        const replication = String(await redis.call('INFO', 'replication'));
        return replication.includes('role:master') || replication.includes('master_link_status:up');
      });
    }
  }

  /** One command sent to one node (not routed by slot). */
  async nodeCall(port: number, ...command: [string, ...string[]]): Promise<unknown> {
    const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      return await redis.call(...command);
    } finally {
      redis.disconnect();
    }
  }

  /** The port of the master that serves `key`'s slot now. */
  async masterOf(key: string): Promise<number> {
    const redis = new Redis(this.livePorts()[0]!, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      const slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key));
      const ranges = (await redis.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>;
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no node serves slot ${slot}`);
      return range[2][1];
    } finally {
      redis.disconnect();
    }
  }

  /** SIGKILL the node on `port`, like a crashed or lost machine; resolves once it is gone. */
  async kill(port: number): Promise<void> {
    const child = this.processes[this.ports.indexOf(port)];
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });
  }

  /**
   * Start the node on `port` again after a kill, from its own nodes.conf: it rejoins as the
   * node it was, with the slots it served if no replica took them over.
   */
  async restart(port: number): Promise<void> {
    const i = this.ports.indexOf(port);
    const child = this.processes[i];
    if (!child || (child.exitCode === null && child.signalCode === null)) throw new Error(`node ${port} is running`);
    this.processes[i] = this.spawnNode(port);
    await waitFor(port, async (redis) => (await redis.ping()) === 'PONG');
  }

  private spawnNode(port: number): ChildProcess {
    return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(this.nodeTimeoutMs),
      // A replica may take over however long ago it last heard its master, and syncs at once (not after Redis's 5 s wait for more replicas).
      '--cluster-replica-validity-factor', '0', '--repl-diskless-sync-delay', '0', '--save', '', '--appendonly', 'no', '--dir', path.join(this.dir, String(port))], {
      stdio: 'ignore',
    });
  }

  private livePorts(): number[] {
    return this.ports.filter((_, i) => this.processes[i]!.exitCode === null && this.processes[i]!.signalCode === null);
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
    for (let i = 0; i < 600; i++) {
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
