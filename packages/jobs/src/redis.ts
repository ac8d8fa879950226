/// <reference path="./cluster-key-slot.d.ts" />
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/**
 * Where Redis is, as REDIS_URL, REDIS_CLUSTER and REDIS_PREFIX say (docs/configuration.md):
 * one server, or a Redis Cluster reached through one or more seed nodes (`url` is then a
 * comma-separated list; the client learns the rest of the cluster from whichever answers).
 */
export interface RedisSettings {
  url: string;
  cluster: boolean;
  prefix: string;
}

/** The settings of a parsed api or worker configuration. */
export function redisSettingsOf(config: { REDIS_URL: string; REDIS_CLUSTER: boolean; REDIS_PREFIX: string }): RedisSettings {
  return { url: config.REDIS_URL, cluster: config.REDIS_CLUSTER, prefix: config.REDIS_PREFIX };
}

/** A connection to either: ioredis's `Cluster` follows MOVED/ASK redirects, `Redis` talks to one server. */
export type RedisClient = Redis | Cluster;

/**
 * BullMQ's key prefix. On a cluster it is a hash tag, `{<REDIS_PREFIX>}`: BullMQ's scripts
 * touch several keys of a queue in one call, and a cluster runs a script only when all its
 * keys share a slot. Every queue then lives on one shard; Tenantry's queues are small next to
 * the per-request keys (rate limits, spread by tenant) and the realtime streams (their own tag).
 */
export function queuePrefix(settings: RedisSettings): string {
  return settings.cluster ? `{${settings.prefix}}` : settings.prefix;
}

/**
 * One connection, to a server or to a cluster, with `options` applied to every node. On a
 * cluster, the credentials and TLS of the first seed URL are used for every node (the nodes
 * it discovers are named by address only), and every command goes to a master: the rate
 * limits, counters and streams must be read where they were just written.
 *
 * Connection errors are not logged here: each owner reports them where they matter (failed
 * commands and /readyz, a failed add, BullMQ's 'error' event, a subscription's owner).
 * Without a listener, ioredis would print every reconnection attempt.
 */
function connect(settings: RedisSettings, connectionName: string, options: RedisOptions): RedisClient {
  const client = settings.cluster ? connectCluster(settings, connectionName, options) : new Redis(settings.url, { connectionName, ...options });
  client.on('error', () => undefined);
  return client;
}

function connectCluster(settings: RedisSettings, connectionName: string, options: RedisOptions): Cluster {
  const seeds = settings.url.split(',').map((seed) => seed.trim());
  const first = new URL(seeds[0]!);
  const { enableOfflineQueue, enableAutoPipelining, retryStrategy, ...nodeOptions } = options;
  const cluster = new Cluster(seeds, {
    redisOptions: {
      ...nodeOptions,
      connectionName,
      ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
      ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
      ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
    },
    scaleReads: 'master',
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    // The cluster reconnects as a whole (its nodes' own retry strategies are not used).
    ...(retryStrategy ? { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null } : {}),
  });
  return settlingConnect(cluster);
}

/**
 * ioredis's `Cluster.connect()` can return a promise that never settles. Once the slot map
 * is refreshed it stops listening for 'close'; if the ready check then fails (CLUSTERDOWN
 * while a replica takes over from a lost master) the cluster reconnects on its own and that
 * first promise is forgotten (ioredis 6.0.0, built/cluster/index.js, `connect()`).
 *
 * BullMQ awaits exactly that promise when its watchdog re-arms a worker's blocking
 * connection (RedisConnection.reconnect). So a master failover at the wrong moment parked a
 * worker's fetch loop for good while its connection was healthy again: the maintenance
 * worker stopped, and with it every schedule, the signup reconciler included (found by
 * test/faults/redis-cluster-failover.test.ts, about one run in three under load).
 *
 * Here `connect()` settles on whichever comes first: the attempt itself, the cluster
 * becoming ready (after any number of internal reconnections), or the cluster ending.
 * Duplicates (BullMQ's blocking connections are duplicates) get the same treatment.
 */
function settlingConnect(cluster: Cluster): Cluster {
  const attempt = cluster.connect.bind(cluster);
  cluster.connect = () =>
    new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        cluster.off('ready', onReady);
        cluster.off('end', onEnd);
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => settle();
      const onEnd = () => settle(new Error('Connection is closed.'));
      cluster.once('ready', onReady);
      cluster.once('end', onEnd);
      attempt().then(() => settle(), (error: Error) => settle(error));
    });
  const duplicate = cluster.duplicate.bind(cluster);
  cluster.duplicate = ((...args: Parameters<Cluster['duplicate']>) => settlingConnect(duplicate(...args))) as Cluster['duplicate'];
  return cluster;
}

/**
 * Redis connections come in four temperaments, and mixing them up is a classic outage:
 *
 * - request path (api: limiter, realtime publish): fail fast. No offline queue, one retry,
 *   a short command timeout — a signup must answer 503 within a second or two when Redis
 *   is away, never hang. Commands issued in one event-loop turn go out as one write
 *   (auto-pipelining): under load, concurrent requests share a socket write.
 * - queueing (api: the queue producer, the realtime reader): BullMQ sends INFO the moment a
 *   Queue is built and treats a refusal as fatal, and a blocking read should wait out a
 *   reconnection, so the offline queue stays on; callers bound each add with their own
 *   timeout, and maxRetriesPerRequest: 1 keeps a Redis outage from piling up commands.
 * - worker (BullMQ consumers): never give up. BullMQ requires maxRetriesPerRequest: null
 *   for its blocking connections and reconnects on its own.
 * - subscriber (cache invalidation, realtime rechecks): in subscriber mode, and must come
 *   back by itself after a restart, its subscriptions renewed: offline queue on, no retry limit.
 */
export function createFailFastRedis(settings: RedisSettings, connectionName: string): RedisClient {
  return connect(settings, connectionName, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1_000,
    connectTimeout: 1_000,
    enableAutoPipelining: true,
    // Keep trying to reconnect in the background, capped at 1 s between tries, so the
    // api heals by itself when Redis comes back.
    retryStrategy: (times) => Math.min(times * 100, 1_000),
  });
}

export function createQueueingRedis(settings: RedisSettings, connectionName: string): RedisClient {
  return connect(settings, connectionName, {
    maxRetriesPerRequest: 1,
    connectTimeout: 1_000,
    retryStrategy: (times) => Math.min(times * 100, 1_000),
  });
}

export function createWorkerRedis(settings: RedisSettings, connectionName: string): RedisClient {
  return connect(settings, connectionName, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
}

/**
 * `commandTimeoutMs`: for an owner that renews its subscription on every 'ready' and must
 * not wait on a Redis that is down at boot; without it, SUBSCRIBE waits for the connection.
 */
export function createSubscriberRedis(settings: RedisSettings, connectionName: string, commandTimeoutMs?: number): RedisClient {
  return connect(settings, connectionName, {
    maxRetriesPerRequest: null,
    connectTimeout: 1_000,
    ...(commandTimeoutMs === undefined ? {} : { commandTimeout: commandTimeoutMs }),
    retryStrategy: (times) => Math.min(times * 100, 1_000),
  });
}

/**
 * The single-server connection that serves `key`: the client itself, or on a cluster the
 * master holding the key's slot. For the commands that name a connection rather than a key
 * (CLIENT ID, CLIENT UNBLOCK), which must reach the server that runs the blocked command.
 * After a failover the client's slot map may still name the lost master until a keyed
 * command meets a redirect; this refreshes it instead.
 */
export async function connectionFor(client: RedisClient, key: string): Promise<Redis> {
  if (!(client instanceof Cluster)) return client;
  const slot = calculateSlot(key);
  const serving = () => {
    // The first node of a slot is its master. Looked up among all nodes: a replica just
    // promoted may still be filed as a replica in the client's pool.
    const owner = client.slots[slot]?.[0];
    return owner === undefined ? undefined : client.nodes('all').find((n) => `${n.options.host}:${n.options.port}` === owner);
  };
  let node = serving();
  if (!node) {
    await new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve()));
    node = serving();
  }
  if (!node) throw new Error(`no cluster node serves ${key} yet`);
  return node;
}
