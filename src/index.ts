/**
 * shardws: a worker-thread sharded WebSocket server runtime. This entry loads no broker client
 * and no load generator: `shardws/redis` has the Redis bridge, `shardws/client` the client.
 */
export { listen } from './main/listen.ts';
export type { ListenOptions, ServerStats, ShardServer } from './main/listen.ts';
export type { AcceptMode } from './main/accept-mode.ts';
export type { AnyTopicBridge, BridgeStats, DurableTopicBridge, TopicBridge } from './main/topic-bridge.ts';
export { defineApp, ReadyState } from './shared/app.ts';
export { isStreamId as isMessageId } from './shared/stream-id.ts';
export type {
  App,
  BridgeNotice,
  ConnectionInfo,
  CountOptions,
  Delivery,
  FragmentOptions,
  MessageData,
  Priority,
  ProxyTarget,
  PublishOptions,
  Recovery,
  SendOptions,
  SubscribeOptions,
  SendStatus,
  ServerWebSocket,
  Shard,
  SlowClientCause,
  SlowClientDecision,
  TlsPeer,
  UpgradeAccept,
  UpgradeProxy,
  UpgradeRejection,
  UpgradeRequest,
  UpgradeResult,
  ResponseHeaders,
  WorkerStats,
} from './shared/app.ts';
export type { AcceptChoice, CompressionMode, DeflateConfig, DeflateOptions, DeflatePreset, DeflateSide, LogFormat, LogLevel, RouteOptions, ServerOptions, SlowClientPolicy, TlsOptions } from './shared/config.ts';
export { DEFLATE_PRESETS } from './shared/config.ts';
export { CloseCode } from './shared/close.ts';
export { HandshakeError, ProtocolError } from './shared/errors.ts';
