/** `shardws/redis`: topics across servers through Redis (loads ioredis). */
export { redisBridge } from './main/redis-bridge.ts';
export type { RedisBridgeOptions, Retention } from './main/redis-bridge.ts';
export type { AnyTopicBridge, BridgeStats, DurableTopicBridge, TopicBridge } from './main/topic-bridge.ts';
export { redisCluster } from './main/redis-cluster.ts';
export type { RedisClusterOptions } from './main/redis-cluster.ts';
export type { ClusterDirectory, ServerReport } from './main/cluster-directory.ts';
