/** shardws: a worker-thread sharded WebSocket server runtime. */
export { listen } from './main/listen.ts';
export type { ListenOptions, ServerStats, ShardServer } from './main/listen.ts';
export { redisBridge } from './main/redis-bridge.ts';
export type { RedisBridgeOptions } from './main/redis-bridge.ts';
export type { BridgeStats, TopicBridge } from './main/topic-bridge.ts';
export { defineApp, ReadyState } from './shared/app.ts';
export type {
  App,
  MessageData,
  Priority,
  SendOptions,
  SendStatus,
  ServerWebSocket,
  Shard,
  SlowClientDecision,
  UpgradeAccept,
  UpgradeRejection,
  UpgradeRequest,
  UpgradeResult,
  ResponseHeaders,
  WorkerStats,
} from './shared/app.ts';
export type { CompressionMode, DeflateConfig, LogLevel, ServerOptions, SlowClientPolicy } from './shared/config.ts';
export { CloseCode } from './shared/close.ts';
export { HandshakeError, ProtocolError } from './shared/errors.ts';
