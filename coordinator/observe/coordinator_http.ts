// The coordinator's HTTP side: Prometheus /metrics and the dashboard with its live events, fed by the job
// store's writes and the jobs' metric lines.
import type { Logger } from "pino";
import type { WorkerInfo } from "../../proto/mod.js";
import type { ListenAddress } from "../../observe/http_listen.js";
import { metricsRoute, startHttpServer, type RunningHttpServer } from "../../observe/http_server.js";
import { dashboardRoutes } from "../dashboard/dashboard_routes.js";
import { EventStream } from "../dashboard/event_stream.js";
import type { JobStore } from "../jobs/store.js";
import type { MetricLine } from "../train/metrics_file.js";
import { CoordinatorMetrics } from "./coordinator_metrics.js";

/** How often the dashboard's clients get the workers' state (heartbeat ages move even when nothing else does). */
const WORKERS_EVENT_MS = 1000;

export class CoordinatorHttp {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly metrics: CoordinatorMetrics,
    /** each worker's compute time in its last step, for the dashboard's worker tables */
    private readonly lastStepMs: Map<string, number>,
    private readonly events: EventStream,
    readonly server: RunningHttpServer,
  ) {}

  get port(): number {
    return this.server.port;
  }

  static async start(
    listen: ListenAddress,
    store: JobStore,
    workers: () => WorkerInfo[],
    log: Logger,
  ): Promise<CoordinatorHttp> {
    const events = new EventStream();
    const metrics = new CoordinatorMetrics({ jobs: () => store.all(), workers });
    const lastStepMs = new Map<string, number>();
    const workersWithSteps = () => workers().map((w) => ({ ...w, last_step_ms: lastStepMs.get(w.worker_id) }));
    const routes = [
      metricsRoute(metrics.registry),
      ...dashboardRoutes({
        jobs: () => store.all(),
        job: (id) => store.get(id),
        workers: workersWithSteps,
        events,
      }),
    ];
    const http = new CoordinatorHttp(metrics, lastStepMs, events, await startHttpServer(listen, routes, log));
    store.listeners.add((job) => events.send("job", job));
    http.timer = setInterval(() => events.send("workers", workersWithSteps()), WORKERS_EVENT_MS);
    return http;
  }

  onMetric(job: string, line: MetricLine): void {
    this.metrics.observe(job, line);
    const perWorker = line.worker_compute_ms;
    if (perWorker && typeof perWorker === "object")
      for (const [worker, ms] of Object.entries(perWorker)) if (typeof ms === "number") this.lastStepMs.set(worker, ms);
    this.events.send("metric", { job, line });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.server.close();
  }
}
