/**
 * Prometheus metrics (prom-client), served at `GET /metrics`. One registry per app instance.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    wsConnections: new Gauge({ name: 'switchboard_ws_connections', help: 'Open WebSocket connections on this node', registers: [registry] }),
    messagesSent: new Counter({ name: 'switchboard_messages_sent_total', help: 'Messages stored', registers: [registry] }),
    eventsDelivered: new Counter({ name: 'switchboard_events_delivered_total', help: 'Room events written to sockets', registers: [registry] }),
    deliveryLatency: new Histogram({
      name: 'switchboard_delivery_latency_seconds',
      help: 'From a message event being written to the database to it being written to a live recipient socket',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'switchboard_http_request_duration_seconds',
      help: 'REST request durations',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
