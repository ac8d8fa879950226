import { createDnsProvider } from '@tenantry/dns';
import { createFileStorage } from '@tenantry/files';
import { sweepFiles } from './file-sweep.js';
import {
  GENERATED_KEY_NOTICE,
  type StorageSupervision,
  createDb,
  createIsolationRegistry,
  emptySupervision,
  ensureDatabase,
  isPostgresUnavailable,
  loadInstallationKey,
  migrateToLatest,
} from '@tenantry/db';
import {
  DeliverWebhookPayload,
  JOBS,
  MoveTenantPayload,
  ProvisionTenantPayload,
  QUEUES,
  createMoveQueue,
  createProvisioningQueue,
  createWebhookQueue,
  createWorkerRedis,
  queuePrefix,
  redisSettingsOf,
  enqueueWebhookDeliveries,
  entitlementsChannel,
  provisioningRetryPolicy,
  webhookRetryPolicy,
} from '@tenantry/jobs';
import { DelayedError, type Job, Queue, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { CloseMonthResult } from '@tenantry/domain';
import { type InvoiceSettings, closeMonth } from '@tenantry/invoices';
import type { Logger } from 'pino';
import type { WorkerConfig } from './config.js';
import { createLogger, serveMetrics } from '@tenantry/observability';
import { ProvisioningInterrupted, compensate, provisionTenant, recordAttemptFailure } from './provisioning/saga.js';
import { keepIdleTenantsReady, probeActiveTenants } from './health-probes.js';
import { type MoveContext, MoveInterrupted, giveUpMove, recordMoveError, runMove } from './moves/machine.js';
import { reconcileMoves } from './moves/reconciler.js';
import { createWorkerMetrics } from './metrics.js';
import { purgeDueTenants } from './purge.js';
import { expireTrials } from './trial-expiry.js';
import { reconcileSignups } from './reconciler.js';
import { forgetStaleUsageInstances, sampleDataPlane, sampleStorage } from './usage-sampler.js';
import { WORKER_ACTOR, closeDueMonths } from './month-close.js';
import { DeliveryAttemptFailed, deliverWebhook, reconcileWebhookDeliveries } from './webhooks/deliver.js';

/** Longest wait between provisioning tries while Postgres is unreachable. */
const OUTAGE_RETRY_MAX_MS = 5_000;

/** After the shutdown deadline: how long cancelled jobs get to hand themselves back. */
const HAND_BACK_GRACE_MS = 2_000;

/** True if `promise` did NOT settle within `ms` (it carries on regardless). */
async function timesOut(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  const done = promise.then(
    () => false,
    () => false,
  );
  const result = await Promise.race([done, timedOut]);
  clearTimeout(timer);
  return result;
}

export interface WorkerInstance {
  /** Stop taking jobs; finish the active ones or hand them back within SHUTDOWN_TIMEOUT_MS. */
  close(): Promise<void>;
  /** One reconciler pass now (it also runs on its schedule). */
  reconcile(): Promise<number>;
  /** One purge pass now, as if the time were `now` (it also runs on its schedule). */
  purge(now?: Date): Promise<number>;
  /** One trial-expiry pass now, as if the time were `now` (it also runs on its schedule). */
  expireTrials(now?: Date): Promise<number>;
  /**
   * One health-probe pass now (it also runs on its schedule): probes the active tenants, and
   * starts any cluster instance that is down, of suspended and pending-deletion tenants too.
   */
  probeTenants(): Promise<{ probed: number; failed: number }>;
  /** One cluster watch pass now (it also runs every TENANT_CLUSTER_WATCH_INTERVAL_MS): standbys, failover. */
  superviseClusters(): Promise<StorageSupervision>;
  /** One usage-sampling pass now, as if the time were `now` (it also runs on its schedule). */
  sampleUsage(now?: Date): Promise<{ sampled: number; overLimit: number }>;
  /**
   * One webhook reconciler pass now (it also runs on its schedule): re-enqueues pending
   * deliveries more than `slackSeconds` (default 30) past due.
   */
  reconcileWebhooks(slackSeconds?: number): Promise<number>;
  /**
   * Close one month now, as if the time were `now` (the schedule closes each month once its
   * grace period is over): its invoices are finalized, numbered and announced. `force`
   * closes a past month still within its grace period.
   */
  closeMonth(month: string, now?: Date, options?: { force?: boolean }): Promise<CloseMonthResult>;
  /** One scheduled month-close pass now, as if the time were `now`: every month that is due. */
  closeDueMonths(now?: Date): Promise<CloseMonthResult[]>;
  /** One file sweep now (it also runs on its schedule): expired uploads released, retired objects older than `graceMs` removed. */
  sweepFiles(graceMs?: number): Promise<{ released: number; removed: number }>;
  /** One pass of the moves reconciler now (it also runs on its schedule): re-enqueues open moves untouched for RECONCILE_STALE_AFTER_MS. */
  reconcileMoves(): Promise<number>;
  /** Where GET /metrics is served. */
  metricsPort: number;
}

/**
 * Build the worker: migrate, connect, and start consuming. The worker owns every job
 * handler; the api only ever enqueues.
 */
export async function createWorker(config: WorkerConfig, options: { logger?: Logger } = {}): Promise<WorkerInstance> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL, 'tenantry-worker');
  await ensureDatabase(config.DATABASE_URL);
  const db = createDb(config.DATABASE_URL, { maxConnections: config.DB_POOL_SIZE, applicationName: 'tenantry-worker', onError: (message) => logger.warn(message) });
  await migrateToLatest(db);

  // The isolation drivers: they provision and drop tenants' storage, and the health probes
  // reach database and cluster tenants through their own roles, whose passwords the
  // installation key opens.
  const secretKey = await loadInstallationKey({
    configured: config.TENANT_SECRET_KEY,
    dataDir: config.TENANTRY_DATA_DIR,
    onGenerated: (file) => logger.warn({ file }, GENERATED_KEY_NOTICE),
  });
  const isolation = createIsolationRegistry(db, {
    controlPlaneUrl: config.DATABASE_URL,
    secretKey,
    database: { servers: config.TENANT_DB_SERVERS },
    cluster: {
      driver: config.TENANT_CLUSTER_DRIVER,
      local: {
        dataDir: config.TENANT_CLUSTER_DATA_DIR,
        binDir: config.TENANT_CLUSTER_PG_BIN,
        osUser: config.TENANT_CLUSTER_OS_USER,
        settings: config.TENANT_CLUSTER_SETTINGS,
        replicas: config.TENANT_CLUSTER_REPLICAS,
        synchronous: config.TENANT_CLUSTER_SYNCHRONOUS,
        maxSlotWalKeepSize: config.TENANT_CLUSTER_MAX_SLOT_WAL_KEEP_SIZE,
        timings: {
          failoverAfterMs: config.TENANT_CLUSTER_FAILOVER_AFTER_MS,
          standbyTimeoutMs: config.TENANT_CLUSTER_STANDBY_TIMEOUT_MS,
          syncDegradeAfterMs: config.TENANT_CLUSTER_SYNC_DEGRADE_AFTER_MS,
          fencedRetentionMs: config.TENANT_CLUSTER_FENCED_RETENTION_MS,
          concurrency: Math.min(config.HEALTH_PROBE_CONCURRENCY, 4),
        },
      },
      namespace: config.TENANT_CLUSTER_NAMESPACE,
    },
    pools: { maxPools: config.TENANT_POOL_MAX, connectionsPerPool: 1, applicationName: 'tenantry-worker-probe' },
    warn: (message, fields) => logger.warn(fields ?? {}, message),
  });
  const dns = createDnsProvider(config);
  const files = createFileStorage(config);
  const tools = { isolation, dns, files };

  const redisSettings = redisSettingsOf(config);
  const redis = createWorkerRedis(redisSettings, 'tenantry-worker');
  const retry = provisioningRetryPolicy(config.PROVISION_ATTEMPTS, config.PROVISION_BACKOFF_MS);
  const provisioningQueue = createProvisioningQueue(redis, redisSettings);
  const maintenanceQueue = new Queue(QUEUES.maintenance, { connection: redis, prefix: queuePrefix(redisSettings) });
  const webhookQueue = createWebhookQueue(redis, redisSettings);
  const moveQueue = createMoveQueue(redis, redisSettings);
  const webhookRetry = webhookRetryPolicy(config.WEBHOOK_ATTEMPTS, config.WEBHOOK_BACKOFF_MS);
  // Deliveries committed by a saga or a purge: enqueue now; if Redis is away the reconciler will.
  const announce = async (deliveryIds: string[]) => {
    await enqueueWebhookDeliveries(webhookQueue, deliveryIds, webhookRetry).catch((err: Error) =>
      logger.warn({ err: err.message, deliveries: deliveryIds.length }, 'webhook enqueue failed; the reconciler will send them'),
    );
  };
  const reconcileWebhooks = (slackSeconds?: number) => reconcileWebhookDeliveries(db, webhookQueue, webhookRetry, slackSeconds);
  const metrics = createWorkerMetrics(
    db,
    { [QUEUES.provisioning]: provisioningQueue, [QUEUES.maintenance]: maintenanceQueue, [QUEUES.webhooks]: webhookQueue, [QUEUES.moves]: moveQueue },
    config.HEALTH_PROBE_INTERVAL_MS,
  );
  const reconcile = () => reconcileSignups(db, provisioningQueue, retry, config.RECONCILE_STALE_AFTER_MS);
  const runMovesReconciler = () => reconcileMoves(db, moveQueue, config.RECONCILE_STALE_AFTER_MS);
  const moves: MoveContext = {
    db,
    isolation,
    settings: { batchRows: config.MOVE_BATCH_ROWS, freezeTimeoutMs: config.MOVE_FREEZE_TIMEOUT_MS, sourceGraceMs: config.MOVE_SOURCE_GRACE_MS },
    observer: {
      finished({ from, to, status, durationSeconds, writePauseSeconds }) {
        metrics.moves.inc({ from, to, status });
        metrics.moveDuration.observe({ from, to }, durationSeconds);
        if (writePauseSeconds !== null) metrics.moveWritePause.observe({ from, to }, writePauseSeconds);
      },
    },
    log: (message, fields) => logger.info(fields ?? {}, message),
  };
  const probeTenants = async () => {
    const result = await probeActiveTenants(db, isolation, config.HEALTH_PROBE_CONCURRENCY, () => metrics.probeFailures.inc());
    await keepIdleTenantsReady(db, isolation);
    return result;
  };
  // The cluster watch: standbys and failover of replicated cluster tenants. A timer of its
  // own rather than a queued job, every second: detection time is part of the failover
  // time, and the maintenance queue runs long passes (purges) one at a time. Every worker
  // runs it; the tenant's advisory lock (tried, not waited for) keeps them apart.
  const supervise = async () => {
    const reports = [];
    for (const driver of isolation.drivers) if (driver.supervise) reports.push(await driver.supervise());
    for (const report of reports) metrics.recordSupervision(report);
    return reports;
  };
  let watchTimer: NodeJS.Timeout | undefined;
  let watching: Promise<unknown> = Promise.resolve();
  let stopWatching = false;
  const watchLoop = () => {
    watching = supervise()
      .catch((err: Error) => logger.warn({ err: err.message }, 'cluster watch pass failed'))
      .finally(() => {
        if (!stopWatching) watchTimer = setTimeout(watchLoop, config.TENANT_CLUSTER_WATCH_INTERVAL_MS);
      });
  };
  if (isolation.drivers.some((d) => d.supervise)) watchTimer = setTimeout(watchLoop, config.TENANT_CLUSTER_WATCH_INTERVAL_MS);

  const purge = async (now: Date) => {
    const purged = await purgeDueTenants(db, now, tools, announce);
    if (purged > 0) metrics.lifecycleTransitions.inc({ from: 'pending_deletion', to: 'deleted' }, purged);
    return purged;
  };
  const sampleUsage = async (now: Date) => {
    const result = await sampleStorage(db, isolation, now, config.USAGE_GAUGE_MAX_GAP_MS / 1000);
    await sampleDataPlane(db, redis, config.REDIS_PREFIX, now, config.USAGE_GAUGE_MAX_GAP_MS / 1000);
    await forgetStaleUsageInstances(db);
    return result;
  };
  const invoiceSettings: InvoiceSettings = {
    currency: config.INVOICE_CURRENCY,
    issuer: { name: config.INVOICE_ISSUER_NAME, address: config.INVOICE_ISSUER_ADDRESS },
    graceHours: config.BILLING_CLOSE_GRACE_HOURS,
  };
  const runMonthClose = async (now: Date) => {
    const results = await closeDueMonths(db, now, invoiceSettings, announce);
    for (const r of results) {
      if (r.created > 0) logger.info({ month: r.month, created: r.created, invoices: r.invoices }, 'month closed: invoices finalized');
      if (r.failed.length > 0) logger.error({ month: r.month, failed: r.failed }, 'month close: some invoices could not be computed');
    }
    return results;
  };
  const runTrialExpiry = (now: Date) => expireTrials(db, now, (tenantId) => redis.publish(entitlementsChannel(config.REDIS_PREFIX), tenantId));

  const provisioningWorker = new Worker<ProvisionTenantPayload>(
    QUEUES.provisioning,
    async (job: Job<ProvisionTenantPayload>, token?: string, signal?: AbortSignal) => {
      const parsed = ProvisionTenantPayload.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`invalid ${JOBS.provisionTenant} payload: ${parsed.error.message}`);
      const { signupId } = parsed.data;
      try {
        const outcome = await provisionTenant(db, parsed.data, signal, tools);
        logger.info({ signupId, outcome, attempt: job.attemptsMade + 1 }, 'provisioning finished');
        if (outcome.status === 'ready') {
          await announce(outcome.webhookDeliveries);
          metrics.provisions.inc({ status: 'succeeded', isolation: outcome.isolation });
          metrics.provisionDuration.observe({ isolation: outcome.isolation }, (Date.now() - job.timestamp) / 1000);
        }
        return outcome.status;
      } catch (err) {
        if (err instanceof ProvisioningInterrupted) {
          // Shutdown: put the job back in the queue without spending an attempt.
          await job.moveToWait(token);
          throw new WaitingError();
        }
        if (isPostgresUnavailable(err)) {
          // Postgres is away (a restart, a failover): that is no fault of this tenant's, so
          // wait it out without spending an attempt — a few seconds of outage must not
          // fail and compensate a signup. Nothing was committed; the saga resumes as usual.
          const delay = Math.min(OUTAGE_RETRY_MAX_MS, config.PROVISION_BACKOFF_MS * 2 ** Math.min(job.attemptsStarted, 10));
          logger.warn({ signupId, delayMs: delay, err: (err as Error).message }, 'postgres unavailable; provisioning waits');
          await job.moveToDelayed(Date.now() + delay, token);
          throw new DelayedError();
        }
        const finalAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        logger.warn({ signupId, attempt: job.attemptsMade + 1, finalAttempt, err: (err as Error).message }, 'provisioning attempt failed');
        if (finalAttempt) {
          await compensate(db, parsed.data, err, tools);
          const failed = await db.selectFrom('signups').select('isolation').where('id', '=', signupId).executeTakeFirst();
          metrics.provisions.inc({ status: 'failed', isolation: failed?.isolation ?? 'schema' });
          throw new UnrecoverableError(`provisioning failed for good: ${(err as Error).message}`);
        }
        await recordAttemptFailure(db, signupId, err);
        throw err;
      }
    },
    {
      connection: redis,
      prefix: queuePrefix(redisSettings),
      concurrency: config.WORKER_CONCURRENCY,
      lockDuration: config.WORKER_LOCK_DURATION_MS,
      stalledInterval: Math.min(config.WORKER_LOCK_DURATION_MS, 30_000),
      maxStalledCount: 2,
    },
  );

  const maintenanceWorker = new Worker(
    QUEUES.maintenance,
    async (job) => {
      switch (job.name) {
        case JOBS.reconcileSignups: {
          const requeued = await reconcile();
          if (requeued > 0) logger.info({ requeued }, 'reconciler re-enqueued stuck signups');
          return requeued;
        }
        case JOBS.expireTrials: {
          const expired = await runTrialExpiry(new Date());
          if (expired > 0) logger.info({ expired }, 'expired trials past their end date');
          return expired;
        }
        case JOBS.probeTenants: {
          const { probed, failed } = await probeTenants();
          if (failed > 0) logger.warn({ probed, failed }, 'tenant health probes failed');
          return probed;
        }
        case JOBS.sampleUsage: {
          const { sampled, overLimit } = await sampleUsage(new Date());
          if (overLimit > 0) logger.info({ sampled, overLimit }, 'sampled usage; tenants at or over their storage limit were vacuumed first');
          return sampled;
        }
        case JOBS.reconcileMoves: {
          const requeued = await runMovesReconciler();
          if (requeued > 0) logger.info({ requeued }, 'moves reconciler re-enqueued stalled moves');
          return requeued;
        }
        case JOBS.reconcileWebhooks: {
          const requeued = await reconcileWebhooks();
          if (requeued > 0) logger.info({ requeued }, 'webhook reconciler re-enqueued due deliveries');
          return requeued;
        }
        case JOBS.closeMonths: {
          const results = await runMonthClose(new Date());
          return results.reduce((n, r) => n + r.created, 0);
        }
        case JOBS.sweepFiles: {
          const { released, removed } = await sweepFiles(db, files);
          if (released + removed > 0) logger.info({ released, removed }, 'released expired uploads and removed retired file objects');
          return released + removed;
        }
        case JOBS.purgeTenants: {
          const purged = await purge(new Date());
          if (purged > 0) logger.info({ purged }, 'purged tenants past their retention');
          return purged;
        }
        default:
          throw new UnrecoverableError(`unknown maintenance job ${job.name}`);
      }
    },
    { connection: redis, prefix: queuePrefix(redisSettings), concurrency: 1 },
  );

  const deliveryOptions = {
    db,
    secretKey,
    allowPrivate: config.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    maxAttempts: config.WEBHOOK_ATTEMPTS,
    backoffMs: config.WEBHOOK_BACKOFF_MS,
    disableAfterMs: config.WEBHOOK_DISABLE_AFTER_MS,
    logger,
  };
  const webhookWorker = new Worker<DeliverWebhookPayload>(
    QUEUES.webhooks,
    async (job) => {
      const parsed = DeliverWebhookPayload.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`invalid ${JOBS.deliverWebhook} payload: ${parsed.error.message}`);
      try {
        return await deliverWebhook(deliveryOptions, parsed.data.deliveryId);
      } catch (err) {
        // A failed attempt is recorded already; rethrown so BullMQ schedules the retry.
        if (!(err instanceof DeliveryAttemptFailed)) logger.warn({ deliveryId: parsed.data.deliveryId, err: (err as Error).message }, 'webhook delivery could not be attempted');
        throw err;
      }
    },
    {
      connection: redis,
      prefix: queuePrefix(redisSettings),
      concurrency: config.WEBHOOK_CONCURRENCY,
      // An attempt is bounded by its timeout; the lock outlives it comfortably.
      lockDuration: Math.max(config.WORKER_LOCK_DURATION_MS, config.WEBHOOK_TIMEOUT_MS * 3),
      maxStalledCount: 2,
    },
  );

  const moveWorker = new Worker<MoveTenantPayload>(
    QUEUES.moves,
    async (job: Job<MoveTenantPayload>, token?: string, signal?: AbortSignal) => {
      const parsed = MoveTenantPayload.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`invalid ${JOBS.moveTenant} payload: ${parsed.error.message}`);
      const { moveId } = parsed.data;
      try {
        const outcome = await runMove(moves, moveId, signal);
        logger.info({ moveId, outcome: outcome.status, attempt: job.attemptsMade + 1 }, 'move run finished');
        return outcome.status;
      } catch (err) {
        if (err instanceof MoveInterrupted) {
          await job.moveToWait(token);
          throw new WaitingError();
        }
        if (isPostgresUnavailable(err)) {
          // As for provisioning: a Postgres outage is waited out without spending an attempt.
          const delay = Math.min(OUTAGE_RETRY_MAX_MS, 1_000 * 2 ** Math.min(job.attemptsStarted, 10));
          logger.warn({ moveId, delayMs: delay, err: (err as Error).message }, 'postgres unavailable; the move waits');
          await job.moveToDelayed(Date.now() + delay, token);
          throw new DelayedError();
        }
        const finalAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        logger.warn({ moveId, attempt: job.attemptsMade + 1, finalAttempt, err: (err as Error).message }, 'move step failed');
        if (finalAttempt) {
          const outcome = await giveUpMove(moves, moveId, err);
          throw new UnrecoverableError(`move gave up (${outcome.status}): ${(err as Error).message}`);
        }
        await recordMoveError(db, moveId, err);
        throw err;
      }
    },
    {
      connection: redis,
      prefix: queuePrefix(redisSettings),
      concurrency: config.MOVE_CONCURRENCY,
      lockDuration: config.WORKER_LOCK_DURATION_MS,
      stalledInterval: Math.min(config.WORKER_LOCK_DURATION_MS, 30_000),
      maxStalledCount: 2,
    },
  );

  const logConnectionError = (err: Error) => logger.error({ err: err.message }, 'queue connection error');
  webhookWorker.on('error', logConnectionError);
  webhookQueue.on('error', logConnectionError);
  provisioningWorker.on('error', logConnectionError);
  moveWorker.on('error', logConnectionError);
  moveQueue.on('error', logConnectionError);
  maintenanceWorker.on('error', logConnectionError);
  // A pass that failed (Postgres away mid-pass, say) is simply run again on its schedule.
  maintenanceWorker.on('failed', (job, err) => logger.warn({ job: job?.name, err: err.message }, 'maintenance job failed'));
  provisioningQueue.on('error', logConnectionError);
  maintenanceQueue.on('error', logConnectionError);
  // Every worker upserts the same scheduler ids, so N workers still mean one schedule each.
  const schedules: Array<[job: string, everyMs: number]> = [
    [JOBS.reconcileSignups, config.RECONCILE_INTERVAL_MS],
    [JOBS.probeTenants, config.HEALTH_PROBE_INTERVAL_MS],
    [JOBS.expireTrials, config.TRIAL_EXPIRY_INTERVAL_MS],
    [JOBS.purgeTenants, config.PURGE_INTERVAL_MS],
    [JOBS.sampleUsage, config.USAGE_SAMPLE_INTERVAL_MS],
    [JOBS.reconcileWebhooks, config.WEBHOOK_RECONCILE_INTERVAL_MS],
    [JOBS.closeMonths, config.BILLING_CLOSE_INTERVAL_MS],
    [JOBS.sweepFiles, config.FILE_SWEEP_INTERVAL_MS],
    [JOBS.reconcileMoves, config.RECONCILE_INTERVAL_MS],
  ];
  for (const [job, every] of schedules) {
    await maintenanceQueue.upsertJobScheduler(job, { every }, { name: job, opts: { removeOnComplete: true, removeOnFail: 100 } });
  }
  const metricsServer = await serveMetrics(metrics.registry, config.WORKER_METRICS_PORT, config.WORKER_METRICS_HOST, 'WORKER_METRICS_PORT');
  // A restarted worker looks for orphans at once instead of waiting a whole interval.
  await reconcile().catch((err: Error) => logger.warn({ err: err.message }, 'initial reconcile failed'));
  await runMovesReconciler().catch((err: Error) => logger.warn({ err: err.message }, 'initial moves reconcile failed'));

  return {
    reconcile,
    purge: (now = new Date()) => purge(now),
    probeTenants,
    superviseClusters: async () => {
      // One pass now, after the scheduled one in flight (they never overlap).
      await watching;
      return (await supervise())[0] ?? emptySupervision();
    },
    sampleUsage: (now = new Date()) => sampleUsage(now),
    metricsPort: metricsServer.port,
    expireTrials: (now = new Date()) => runTrialExpiry(now),
    reconcileWebhooks,
    closeMonth: (month, now = new Date(), options = {}) =>
      closeMonth(db, month, { now, force: options.force ?? false, actor: WORKER_ACTOR, settings: invoiceSettings, announce }),
    closeDueMonths: (now = new Date()) => runMonthClose(now),
    sweepFiles: (graceMs?: number) => sweepFiles(db, files, graceMs),
    reconcileMoves: runMovesReconciler,
    async close() {
      stopWatching = true;
      clearTimeout(watchTimer);
      const drained = Promise.all([provisioningWorker.close(), maintenanceWorker.close(), webhookWorker.close(), moveWorker.close()]);
      if (await timesOut(drained, config.SHUTDOWN_TIMEOUT_MS)) {
        // Past the deadline: ask running sagas to stop at their next step boundary and
        // hand their jobs back. A job we cannot hand back (Redis gone) is redelivered by
        // stall detection once its lock expires.
        logger.warn('shutdown deadline reached; handing active jobs back');
        provisioningWorker.cancelAllJobs('shutdown');
        moveWorker.cancelAllJobs('shutdown');
        await timesOut(drained, HAND_BACK_GRACE_MS);
      }
      // Every remaining step is bounded too: with Redis down, BullMQ's close would wait forever.
      await timesOut(
        Promise.allSettled([
          provisioningWorker.close(true),
          maintenanceWorker.close(true),
          webhookWorker.close(true),
          moveWorker.close(true),
          provisioningQueue.close(),
          moveQueue.close(),
          maintenanceQueue.close(),
          webhookQueue.close(),
        ]),
        HAND_BACK_GRACE_MS,
      );
      // A watch pass in flight finishes its step (a failover is resumable, but a half-run
      // pg_basebackup is wasted work); bounded like everything else here.
      await timesOut(watching, config.SHUTDOWN_TIMEOUT_MS);
      metricsServer.server.close();
      redis.disconnect();
      await isolation.close();
      await files.close();
      await db.destroy();
    },
  };
}
