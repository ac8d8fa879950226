/**
 * Redis keys of the realtime streams, shared by the api (which publishes, subscribes and
 * holds connection slots) and the worker (which samples the slots into the usage meter).
 * Every key carries one hash tag, so a Redis Cluster keeps them on one shard: XREAD and the
 * scripts touch several at once.
 */
export function realtimeKeys(prefix: string) {
  const tag = `{${prefix}-rt}`;
  return {
    /** The tenant's change stream (XADD, trimmed to the resume window). */
    stream: (tenantId: string) => `${tag}:s:${tenantId}`,
    /** The stream's epoch: a new one whenever the stream starts afresh (expired, or Redis lost it), so old ids cannot be resumed from. */
    epoch: (tenantId: string) => `${tag}:e:${tenantId}`,
    /** Tenants with document writes under way, per api instance (member `<tenant>|<instance>`, score: the deadline by which their events must be out). */
    pending: `${tag}:pending`,
    /** The tenant's open streams across all instances (member: stream id, score: when its slot expires). */
    slots: (tenantId: string) => `${tag}:c:${tenantId}`,
    /** The tenant's highest number of open streams per UTC hour (field: the hour's epoch ms). */
    peaks: (tenantId: string) => `${tag}:p:${tenantId}`,
    /** Pub/sub: a tenant id whose open streams every instance must check again (suspended, credential revoked). */
    recheck: `${prefix}:realtime:recheck`,
  };
}
